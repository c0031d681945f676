// echo_server: a TCP echo server on the ringflow runtime.
//
//   echo_server [--address 127.0.0.1] [--port 7000] [--threads 1]
//               [--max-connections 10000] [--grace-ms 2000]
//
// One accept loop (on worker 0) spawns a task per connection; each waits on
// worker 0 until it starts, and an idle worker takes half of those waiting
// (work stealing), so the connections spread over the workers. Each connection reads into a
// 64 KiB buffer and writes back what it read (write_all), with TCP_NODELAY
// like the baseline peers in bench/peers/. An error on one connection (a
// reset peer, ...) closes that connection only.
//
// Prints "listening <port>" (the real port when --port 0) once listening.
//
// Graceful shutdown, from the toolkit: SIGINT/SIGTERM (a ringflow::signal_set)
// request stop on a std::stop_source; the accept loop runs under with_stop,
// so it ends at once wherever it waits, and the listener closes ("stopped
// accepting" on stdout: new connections are refused from then on). The open
// connections, a task_group, get --grace-ms to end by themselves
// ("drained"); what is left is cancelled ("cancelled N connection(s)"), and
// the process exits 0. --max-connections bounds the group: at the limit the
// accept loop waits in task_group::spawn, so further connections queue in
// the kernel's backlog instead of costing memory here.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <signal.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stop_token>
#include <string>
#include <system_error>
#include <vector>

#include <ringflow/ringflow.hpp>

using namespace std::chrono_literals;

namespace {

// One connection: read up to 64 KiB, write it all back, until EOF or error.
ringflow::task<> serve_connection(ringflow::tcp_stream s) {
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

// Accepts until cancelled (with_stop) or the listener fails for good. At
// max_connections, spawn waits for a connection to end.
ringflow::task<> accept_loop(ringflow::tcp_listener& l, ringflow::task_group<>& conns) {
  for (;;) {
    ringflow::tcp_stream s = co_await l.accept();
    while (conns.try_next()) {
    }  // reap what ended (serve_connection throws nothing)
    co_await conns.spawn(serve_connection(std::move(s)));
  }
}

// Not `while (co_await conns.next()) {}`: g++ 12 compiles a loop whose
// condition awaits and whose body is empty into a trap (SIGILL) on resume.
ringflow::task<> drain(ringflow::task_group<>& conns) {
  for (;;) {
    bool more = co_await conns.next();
    if (!more) break;
  }
}

ringflow::task<> server_main(ringflow::tcp_listener& l, std::size_t max_connections, std::chrono::milliseconds grace) {
  // Before "listening": from then on a test or supervisor may signal us.
  ringflow::signal_set signals({SIGINT, SIGTERM});
  fmt::print("listening {}\n", l.local_port());
  std::fflush(stdout);
  std::stop_source stop;
  ringflow::task_group<> conns(max_connections);
  auto on_signal = [](ringflow::signal_set& sigs, std::stop_source& src) -> ringflow::task<> {
    int sig = co_await sigs.wait();
    fmt::print(stderr, "echo_server: {} received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    src.request_stop();
  };
  auto watcher = on_signal(signals, stop);  // a named task: it outlives the next statement
  auto watching = ringflow::spawn_local(std::move(watcher));
  try {
    co_await ringflow::with_stop(stop.get_token(), accept_loop(l, conns));
  } catch (const std::system_error& e) {
    fmt::print(stderr, "echo_server: accept failed: {}\n", e.what());
  }
  l.close();
  fmt::print("stopped accepting\n");
  std::fflush(stdout);
  watching.cancel();  // when the listener failed, no signal may ever come
  bool drained = co_await ringflow::timeout(grace, drain(conns));
  if (drained) {
    fmt::print("drained\n");
  } else {
    std::size_t left = conns.running();
    conns.cancel_all();
    co_await drain(conns);
    fmt::print("cancelled {} connection(s)\n", left);
  }
  std::fflush(stdout);
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
  std::size_t max_connections = 10000;
  app.add_option("--max-connections", max_connections, "connections served at once; more wait in the listen backlog")
      ->check(CLI::Range(std::size_t{1}, SIZE_MAX))
      ->capture_default_str();
  long grace_ms = 2000;
  app.add_option("--grace-ms", grace_ms, "after SIGINT/SIGTERM, how long open connections may go on")
      ->check(CLI::Range(0L, 86'400'000L))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    ringflow::runtime rt({.threads = threads});  // outlives the listener
    ringflow::tcp_listener listener =
        ringflow::tcp_listener::bind(address, static_cast<std::uint16_t>(port));
    rt.block_on(server_main(listener, max_connections, std::chrono::milliseconds(grace_ms)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo_server: {}\n", e.what());
    return 1;
  }
  return 0;
}
