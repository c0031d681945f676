// wait_readable / wait_writable: a POLL_ADD on the task's ring gives the
// revents of a pipe or socket; a wait cancelled by timeout withdraws its poll
// and consumes nothing; a hang-up wakes the waiter; a bad descriptor throws
// system_error; many waits on two workers (TSan clean).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <optional>
#include <system_error>
#include <vector>

#include <ringflow/ringflow.hpp>
#include "../support/run.hpp"

using namespace std::chrono_literals;
using ringflow::task;
using ringflow::wait_readable;
using ringflow::wait_writable;

// co_await never goes inside REQUIRE: Catch repeats the expression in an
// unevaluated branch, and g++ 12 then resumes the coroutine wrongly.
using test_support::run;

namespace {

struct fd_pair {
  int fd[2] = {-1, -1};
  static fd_pair pipe() {
    fd_pair p;
    REQUIRE(::pipe2(p.fd, O_CLOEXEC | O_NONBLOCK) == 0);
    return p;
  }
  static fd_pair sockets() {
    fd_pair p;
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, p.fd) == 0);
    return p;
  }
  fd_pair() = default;
  fd_pair(fd_pair&& o) noexcept : fd{o.fd[0], o.fd[1]} { o.fd[0] = o.fd[1] = -1; }
  fd_pair& operator=(fd_pair&&) = delete;
  void close(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
  ~fd_pair() {
    close(0);
    close(1);
  }
};

bool put_byte(int fd) {
  char c = 'x';
  return ::write(fd, &c, 1) == 1;
}

}  // namespace

TEST_CASE("fd_wait: a pipe becomes readable when written; the write end is writable", "[fd_wait][runtime]") {
  run([]() -> task<void> {
    auto p = fd_pair::pipe();
    unsigned w = co_await wait_writable(p.fd[1]);
    REQUIRE((w & POLLOUT) != 0);
    auto none = co_await ringflow::timeout(2ms, wait_readable(p.fd[0]));
    REQUIRE(!none);  // nothing written yet: the wait was cancelled
    REQUIRE(put_byte(p.fd[1]));
    unsigned r = co_await wait_readable(p.fd[0]);
    REQUIRE((r & POLLIN) != 0);
    // Level-triggered and consuming nothing: still readable.
    unsigned again = co_await wait_readable(p.fd[0]);
    REQUIRE((again & POLLIN) != 0);
  }());
}

TEST_CASE("fd_wait: a waiter suspended on a socket wakes when the peer writes", "[fd_wait][runtime]") {
  run([]() -> task<void> {
    auto s = fd_pair::sockets();
    auto waiter = ringflow::spawn_local(wait_readable(s.fd[0]));
    co_await ringflow::yield();  // the waiter is polling now
    REQUIRE(!waiter.is_finished());
    REQUIRE(put_byte(s.fd[1]));
    unsigned r = co_await std::move(waiter);
    REQUIRE((r & POLLIN) != 0);
  }());
}

TEST_CASE("fd_wait: a hang-up wakes the waiter with POLLHUP", "[fd_wait][runtime]") {
  run([]() -> task<void> {
    auto p = fd_pair::pipe();
    auto waiter = ringflow::spawn_local(wait_readable(p.fd[0]));
    co_await ringflow::yield();
    p.close(1);
    unsigned r = co_await std::move(waiter);
    REQUIRE((r & POLLHUP) != 0);
    auto s = fd_pair::sockets();
    auto sock_waiter = ringflow::spawn_local(wait_readable(s.fd[0]));
    co_await ringflow::yield();
    s.close(1);
    unsigned sr = co_await std::move(sock_waiter);
    REQUIRE((sr & (POLLHUP | POLLIN)) != 0);
  }());
}

TEST_CASE("fd_wait: a bad descriptor throws system_error", "[fd_wait][runtime]") {
  run([]() -> task<void> {
    REQUIRE_THROWS_AS(co_await wait_readable(-1), std::system_error);
    REQUIRE_THROWS_AS(co_await wait_writable(-5), std::system_error);
    int fd;
    {
      auto p = fd_pair::pipe();
      fd = p.fd[0];
    }  // closed
    int code = 0;
    try {
      co_await wait_readable(fd);
    } catch (const std::system_error& e) {
      code = e.code().value();
    }
    REQUIRE(code == EBADF);
  }());
}

TEST_CASE("fd_wait: waits cancelled by timeout again and again leave nothing behind", "[fd_wait][runtime]") {
  run([]() -> task<void> {
    auto p = fd_pair::pipe();
    int cancelled = 0;
    for (int i = 0; i < 500; ++i) {
      auto r = co_await ringflow::timeout(i % 2 ? 0ns : 20us, wait_readable(p.fd[0]));
      if (!r) ++cancelled;
    }
    REQUIRE(cancelled == 500);  // nothing was ever written
    REQUIRE(put_byte(p.fd[1]));
    unsigned r = co_await wait_readable(p.fd[0]);
    REQUIRE((r & POLLIN) != 0);
    char c;
    REQUIRE(::read(p.fd[0], &c, 1) == 1);  // the byte is still there
  }());
}

TEST_CASE("fd_wait: many waits on two workers, some cancelled", "[fd_wait][runtime]") {
  constexpr int n = 64;
  ringflow::runtime rt({.threads = 2});
  std::vector<fd_pair> pairs;
  for (int i = 0; i < n; ++i) pairs.push_back(fd_pair::sockets());
  std::atomic<int> woke{0}, cancelled{0};
  std::vector<ringflow::join_handle<void>> hs;
  for (int i = 0; i < n; ++i) {
    // Two waiters per socket: level-triggered, both see the byte.
    for (int k = 0; k < 2; ++k) {
      hs.push_back(rt.spawn([](int fd, std::atomic<int>& woke) -> task<void> {
        unsigned r = co_await wait_readable(fd);
        if (r & POLLIN) woke.fetch_add(1);
      }(pairs[i].fd[0], woke)));
    }
    hs.push_back(rt.spawn([](int fd, std::atomic<int>& cancelled) -> task<void> {
      auto r = co_await ringflow::timeout(0ns, wait_readable(fd));
      if (!r) cancelled.fetch_add(1);
    }(pairs[i].fd[0], cancelled)));
  }
  // Writers on both workers.
  for (int i = 0; i < n; ++i) {
    rt.spawn([](int fd) -> task<void> {
        co_await ringflow::yield();
        unsigned w = co_await wait_writable(fd);
        if (w & POLLOUT) put_byte(fd);
      }(pairs[i].fd[1])).wait();
  }
  for (auto& h : hs) h.wait();
  REQUIRE(woke.load() == 2 * n);
  REQUIRE(cancelled.load() <= n);
}
