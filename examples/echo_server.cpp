// echo_server: a TCP echo server on the ringflow runtime.
//
//   echo_server [--address 127.0.0.1] [--port 7000] [--threads 1]
//
// One accept loop (on worker 0) spawns a task per connection; spawn spreads
// the connections round-robin over the workers. Each connection reads into a
// 64 KiB buffer and writes back what it read (write_all), with TCP_NODELAY
// like the baseline peers in bench/peers/. An error on one connection (a
// reset peer, ...) closes that connection only.
//
// Prints "listening <port>" (the real port when --port 0) once listening.
// SIGINT/SIGTERM shut it down cleanly: the signals are blocked in every
// thread before the runtime starts and read through a signalfd that a task
// polls on worker 0's io_uring; that task then closes the listener (on the
// worker of the accept loop), gives the open connections up to 2 s to end,
// and returns; the runtime's destructor cancels whatever is left, and the
// process exits 0.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <system_error>
#include <vector>

#include <ringflow/detail/io_op.hpp>
#include <ringflow/ringflow.hpp>

using namespace std::chrono_literals;

namespace {

// IORING_OP_POLL_ADD on any fd: the public API only reads sockets (RECV), a
// signalfd needs a plain read, so wait for readiness on the ring and read(2)
// the non-blocking signalfd afterwards. res: the poll mask, or -errno.
class poll_in_op : public ringflow::detail::uring_op {
 public:
  explicit poll_in_op(int fd) noexcept : fd_(fd) {}
  void await_suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = begin(h);
    io_uring_prep_poll_add(sqe, fd_, POLLIN);
    submit(sqe);
  }

 private:
  int fd_;
};

// Waits until SIGINT or SIGTERM is pending and returns its number.
ringflow::task<int> wait_for_signal(int sfd) {
  for (;;) {
    poll_in_op op(sfd);
    std::int32_t res = co_await op;
    if (res < 0 && res != -EINTR) {
      throw std::system_error(-res, std::system_category(), "echo_server: polling the signalfd");
    }
    signalfd_siginfo info{};
    ssize_t n = ::read(sfd, &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) co_return static_cast<int>(info.ssi_signo);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      throw std::system_error(errno, std::system_category(), "echo_server: reading the signalfd");
    }
  }
}

struct counter_guard {
  std::atomic<int>* c;
  ~counter_guard() { c->fetch_sub(1, std::memory_order_acq_rel); }
};

// One connection: read up to 64 KiB, write it all back, until EOF or error.
// The caller has already counted it in *active.
ringflow::task<> serve_connection(ringflow::tcp_stream s, std::atomic<int>* active) {
  counter_guard guard{active};
  std::vector<std::byte> buf(64 * 1024);
  try {
    s.set_nodelay(true);
    for (;;) {
      std::size_t n = co_await s.read(buf);
      if (n == 0) break;
      co_await s.write_all({buf.data(), n});
    }
  } catch (const std::system_error&) {
    // Reset peer, broken pipe, ...: drop this connection only.
  }
}

// Accepts until the listener is closed (ECANCELED) or fails for good.
ringflow::task<> accept_loop(ringflow::tcp_listener* l, std::atomic<int>* active) {
  for (;;) {
    ringflow::tcp_stream s;
    try {
      ringflow::tcp_stream accepted = co_await l->accept();
      s = std::move(accepted);
    } catch (const std::system_error& e) {
      if (e.code().value() != ECANCELED) fmt::print(stderr, "echo_server: accept failed: {}\n", e.what());
      co_return;
    }
    active->fetch_add(1, std::memory_order_acq_rel);
    ringflow::spawn(serve_connection(std::move(s), active)).detach();
  }
}

// *active outlives the runtime: connection tasks still open at the end are
// destroyed by the runtime's destructor, and their guards decrement it then.
ringflow::task<> server_main(ringflow::tcp_listener* l, int sfd, std::atomic<int>* active) {
  // On this worker (0), like the signal wait: the listener is only touched here.
  auto acceptor = ringflow::spawn_local(accept_loop(l, active));
  int sig = co_await wait_for_signal(sfd);
  fmt::print(stderr, "echo_server: {} received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  l->close();  // the pending accept() throws ECANCELED
  co_await std::move(acceptor);
  // Let the open connections end by themselves for a while.
  auto give_up = std::chrono::steady_clock::now() + 2s;
  while (active->load(std::memory_order_acquire) > 0 && std::chrono::steady_clock::now() < give_up) {
    co_await ringflow::sleep_for(10ms);
  }
  int left = active->load(std::memory_order_acquire);
  if (left > 0) fmt::print(stderr, "echo_server: closing {} open connection(s)\n", left);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"TCP echo server on the ringflow io_uring runtime"};
  std::string address = "127.0.0.1";
  int port = 7000;
  unsigned threads = 1;
  app.add_option("-a,--address", address, "address to listen on (IPv4/IPv6 literal or host name)")
      ->capture_default_str();
  app.add_option("-p,--port", port, "TCP port to listen on (0: an ephemeral port, printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("-t,--threads", threads, "runtime worker threads (connections are spread over them)")
      ->check(CLI::Range(1u, 1024u))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // Block the shutdown signals in this thread before any worker exists, so
  // every thread inherits the mask and only the signalfd sees them.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (int err = pthread_sigmask(SIG_BLOCK, &mask, nullptr); err != 0) {
    fmt::print(stderr, "echo_server: pthread_sigmask: {}\n", std::system_category().message(err));
    return 1;
  }
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) {
    fmt::print(stderr, "echo_server: signalfd: {}\n", std::system_category().message(errno));
    return 1;
  }

  std::atomic<int> active{0};  // open connections; outlives the runtime
  try {
    ringflow::runtime rt({.threads = threads});  // outlives the listener
    ringflow::tcp_listener listener =
        ringflow::tcp_listener::bind(address, static_cast<std::uint16_t>(port));
    fmt::print("listening {}\n", listener.local_port());
    std::fflush(stdout);
    rt.block_on(server_main(&listener, sfd, &active));
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo_server: {}\n", e.what());
    ::close(sfd);
    return 1;
  }
  ::close(sfd);
  return 0;
}
