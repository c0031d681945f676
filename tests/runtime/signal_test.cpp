// signal_set: bad signals throw; a signal raised on the waiting worker or
// sent to the process is returned by wait(); two signals give two waits; a
// cancelled wait loses no signal; while a set lives its signals are blocked
// on every worker, and unblocked after; two workers (TSan clean).
#include <catch2/catch.hpp>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <stdexcept>

#include <ringflow/ringflow.hpp>
#include "../support/run.hpp"

using namespace std::chrono_literals;
using ringflow::signal_set;
using ringflow::task;

// co_await never goes inside REQUIRE: Catch repeats the expression in an
// unevaluated branch, and g++ 12 then resumes the coroutine wrongly.
using test_support::run;

namespace {

bool blocked_here(int s) {
  sigset_t m;
  pthread_sigmask(SIG_BLOCK, nullptr, &m);
  return sigismember(&m, s) == 1;
}

task<bool> blocked_on_worker(int s) { co_return blocked_here(s); }

}  // namespace

TEST_CASE("signal_set: bad signals are refused; outside a runtime is a logic error", "[signal][runtime]") {
  run([]() -> task<void> {
    REQUIRE_THROWS_AS(signal_set({}), std::invalid_argument);
    REQUIRE_THROWS_AS(signal_set({0}), std::invalid_argument);
    REQUIRE_THROWS_AS(signal_set({-1}), std::invalid_argument);
    REQUIRE_THROWS_AS(signal_set({65}), std::invalid_argument);
    REQUIRE_THROWS_AS(signal_set({SIGRTMAX + 1}), std::invalid_argument);
    REQUIRE_THROWS_AS(signal_set({SIGKILL}), std::invalid_argument);
    REQUIRE_THROWS_AS(signal_set({SIGUSR1, SIGSTOP}), std::invalid_argument);
    REQUIRE_THROWS_AS(signal_set({SIGSEGV}), std::invalid_argument);
    REQUIRE_THROWS_AS(signal_set({SIGRTMIN - 1}), std::invalid_argument);  // the C library's
    REQUIRE(!blocked_here(SIGUSR1));  // a refused set claimed nothing
    co_return;
  }());
  REQUIRE_THROWS_AS(signal_set({SIGUSR1}), std::logic_error);
}

TEST_CASE("signal_set: raise on the waiting worker, then wait returns it", "[signal][runtime]") {
  run([]() -> task<void> {
    signal_set s({SIGUSR1});
    REQUIRE(s.contains(SIGUSR1));
    REQUIRE(!s.contains(SIGUSR2));
    REQUIRE(::raise(SIGUSR1) == 0);  // blocked: stays pending
    int got = co_await s.wait();
    REQUIRE(got == SIGUSR1);
  }());
}

TEST_CASE("signal_set: a suspended wait wakes for a signal sent to the process", "[signal][runtime]") {
  run([]() -> task<void> {
    signal_set s({SIGUSR1, SIGUSR2});
    auto waiter = ringflow::spawn_local(s.wait());
    co_await ringflow::yield();  // the waiter polls the signalfd now
    REQUIRE(!waiter.is_finished());
    REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
    int got = co_await std::move(waiter);
    REQUIRE(got == SIGUSR2);
  }());
}

TEST_CASE("signal_set: stop_on_signal requests stop once a signal came, and not when cancelled before",
          "[signal][runtime]") {
  run([]() -> task<void> {
    signal_set s({SIGUSR1});
    std::stop_source stop;
    auto watching = ringflow::spawn_local(s.stop_on_signal(stop));
    co_await ringflow::yield();  // it polls the signalfd now
    REQUIRE(!stop.stop_requested());
    REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
    int got = co_await std::move(watching);
    REQUIRE(got == SIGUSR1);
    REQUIRE(stop.stop_requested());

    std::stop_source other;
    auto cancelled = ringflow::spawn_local(s.stop_on_signal(other));
    co_await ringflow::yield();
    cancelled.cancel();
    REQUIRE_THROWS_AS(co_await std::move(cancelled), ringflow::task_cancelled);
    REQUIRE(!other.stop_requested());
  }());
}

TEST_CASE("signal_set: two signals give two waits", "[signal][runtime]") {
  run([]() -> task<void> {
    signal_set s({SIGUSR1, SIGUSR2});
    REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
    REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
    std::set<int> got;
    got.insert(co_await s.wait());
    got.insert(co_await s.wait());
    REQUIRE(got == std::set<int>{SIGUSR1, SIGUSR2});
    auto none = co_await ringflow::timeout(1ms, s.wait());
    REQUIRE(!none);
  }());
}

TEST_CASE("signal_set: a cancelled wait loses no signal", "[signal][runtime]") {
  run([]() -> task<void> {
    signal_set s({SIGUSR1});
    auto none = co_await ringflow::timeout(2ms, s.wait());
    REQUIRE(!none);
    REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
    int got = co_await s.wait();
    REQUIRE(got == SIGUSR1);
    // Cancelled at any point of its way to the signal: either it returned
    // the signal, or the signal is still pending for the next wait.
    for (int i = 0; i < 50; ++i) {
      auto w = ringflow::spawn_local(s.wait());
      if (i % 2) co_await ringflow::yield();
      REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
      if (i % 3) co_await ringflow::yield();
      w.cancel();
      int result = 0;
      try {
        result = co_await std::move(w);
      } catch (const ringflow::task_cancelled&) {
      }
      if (result == 0) {
        auto next = co_await ringflow::timeout(10s, s.wait());
        result = next.value_or(0);
      }
      REQUIRE(result == SIGUSR1);
    }
  }());
}

TEST_CASE("signal_set: blocked on every worker while it lives, unblocked after; two workers", "[signal][runtime]") {
  ringflow::runtime rt({.threads = 2});
  auto on = [&](unsigned w) { return rt.spawn_on(w, blocked_on_worker(SIGUSR1)).wait(); };
  REQUIRE(!on(0));
  REQUIRE(!on(1));
  // block_on (worker 0): this thread blocks the signals while it waits.
  rt.block_on([](ringflow::runtime& rt) -> task<void> {
      signal_set s({SIGUSR1});
      auto other = rt.spawn_on(1, blocked_on_worker(SIGUSR1));
      bool there = co_await std::move(other);
      REQUIRE(there);
      REQUIRE(blocked_here(SIGUSR1));
      // Sent to the process from the other worker, many times: if any
      // worker let it through, its default action would end the test.
      for (int i = 0; i < 20; ++i) {
        auto sender = rt.spawn_on(1, []() -> task<void> {
          ::kill(::getpid(), SIGUSR1);
          co_return;
        }());
        co_await std::move(sender);
        int got = co_await s.wait();
        REQUIRE(got == SIGUSR1);
      }
    }(rt));
  // The last set claiming it is gone: each worker unblocks it by its next turn.
  REQUIRE(!on(0));
  REQUIRE(!on(1));
}

TEST_CASE("signal_set: a task sent to a worker after the last set went runs unblocked, however busy that worker",
          "[signal][runtime]") {
  // Worker 1 is kept turning (a task that yields until told to stop), so it
  // may have read the claims' generation just before a set went and drain
  // the probe sent just after: it must apply the new mask before running it.
  ringflow::runtime rt({.threads = 2});
  std::atomic<bool> stop{false};
  auto spinner = rt.spawn_on(1, [](std::atomic<bool>* st) -> task<void> {
    while (!st->load()) co_await ringflow::yield();
  }(&stop));
  int stale = 0;
  rt.block_on([](ringflow::runtime& rt, int* stale) -> task<void> {
    for (int i = 0; i < 300; ++i) {
      { signal_set s({SIGUSR1}); }
      if (co_await rt.spawn_on(1, blocked_on_worker(SIGUSR1))) ++*stale;
    }
  }(rt, &stale));
  stop = true;
  spinner.wait();
  REQUIRE(stale == 0);
}

TEST_CASE("signal_set: sets on two workers of two runtimes, moved and destroyed", "[signal][runtime]") {
  ringflow::runtime other({.threads = 1});
  run(
      [](ringflow::runtime& other) -> task<void> {
        signal_set a({SIGUSR1});
        signal_set b(std::move(a));
        REQUIRE_THROWS_AS(a.wait(), std::logic_error);
        // The other runtime's worker blocks it too.
        bool there = co_await other.spawn(blocked_on_worker(SIGUSR1));
        REQUIRE(there);
        REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
        int got = co_await b.wait();
        REQUIRE(got == SIGUSR1);
        {
          signal_set c({SIGUSR1, SIGUSR2});  // a second claim on SIGUSR1
        }
        REQUIRE(blocked_here(SIGUSR1));  // still claimed by b
      }(other),
      2);
}
