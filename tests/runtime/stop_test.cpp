// with_stop and stopped: std::stop_token as the cancellation signal. A task
// that finishes first keeps its value; a stop request (from a task, a
// foreign thread, or the child itself) cancels the child at its suspension
// with its waits withdrawn; a request made before the start means the child
// never runs; a stop notice queued for a race already decided is taken back;
// the awaiting task may be cancelled or shut down with a callback armed and
// the source used afterwards.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <vector>

#include <ringflow/ringflow.hpp>
#include <ringflow/stop.hpp>
#include "../support/run.hpp"

using namespace std::chrono_literals;
using ringflow::channel;
using ringflow::task;

// co_await never goes inside REQUIRE: Catch repeats the expression in an
// unevaluated branch, and g++ 12 then resumes the coroutine wrongly.
using test_support::run;

namespace {

struct alive_flag {
  std::atomic<int>* destroyed;
  ~alive_flag() { destroyed->fetch_add(1); }
};

task<int> recv_one(channel<int>& ch, std::atomic<int>& started, std::atomic<int>& destroyed) {
  alive_flag f{&destroyed};
  started.fetch_add(1);
  auto v = co_await ch.recv();
  co_return v.value_or(-1);
}

task<void> yield_once() { co_await ringflow::yield(); }

// Requests stop once `ready` delivers.
task<void> stop_when_ready(channel<int>& ready, std::stop_source& src) {
  co_await ready.recv();
  src.request_stop();
}

task<void> with_stop_recv(std::stop_token st, channel<int>& ch, std::atomic<int>& started, std::atomic<int>& destroyed) {
  co_await ringflow::with_stop(std::move(st), recv_one(ch, started, destroyed));
}

task<void> wait_stopped(std::stop_token st, std::atomic<bool>& woke) {
  co_await ringflow::stopped(std::move(st));
  woke = true;
}

task<int> deep(channel<int>& ch, std::atomic<int>& started, std::atomic<int>& destroyed, int depth) {
  if (depth == 0) co_return co_await recv_one(ch, started, destroyed);
  co_return co_await deep(ch, started, destroyed, depth - 1);
}

}  // namespace

TEST_CASE("with_stop: a child that finishes first gives its value", "[stop][runtime]") {
  std::stop_source src;
  int v = run([&]() -> task<int> {
    channel<int> ch(1);
    std::atomic<int> started{0}, destroyed{0};
    co_await ch.send(7);
    auto r = co_await ringflow::with_stop(src.get_token(), recv_one(ch, started, destroyed));
    REQUIRE(r == 7);
    src.request_stop();  // after the race: nothing left to cancel
    co_return *r;
  }());
  REQUIRE(v == 7);
}

TEST_CASE("with_stop: stop requested before the start: the child never runs", "[stop][runtime]") {
  std::stop_source src;
  src.request_stop();
  std::atomic<int> started{0}, destroyed{0};
  run([&]() -> task<void> {
    channel<int> ch(1);
    auto r = co_await ringflow::with_stop(src.get_token(), recv_one(ch, started, destroyed));
    REQUIRE(r == std::nullopt);
  }());
  REQUIRE(started == 0);
}

TEST_CASE("with_stop: a stop from another task cancels a child in a channel wait; its wait is withdrawn", "[stop][runtime]") {
  std::stop_source src;
  std::atomic<int> started{0}, destroyed{0};
  run([&]() -> task<void> {
    channel<int> ch(1);
    channel<int> ready(1);
    auto stopper = ringflow::spawn(stop_when_ready(ready, src));
    co_await ready.send(1);
    auto r = co_await ringflow::with_stop(src.get_token(), recv_one(ch, started, destroyed));
    REQUIRE(r == std::nullopt);
    REQUIRE(destroyed == 1);
    // The cancelled receiver took nothing: the value stays for the next one.
    co_await ch.send(5);
    auto v = co_await ch.recv();
    REQUIRE(v == 5);
    co_await stopper;
  }());
  REQUIRE(started == 1);
}

TEST_CASE("with_stop: a stop from a foreign thread reaches a child on either of two workers", "[stop][runtime]") {
  for (int round = 0; round < 200; ++round) {
    std::stop_source src;
    std::atomic<int> started{0}, destroyed{0};
    std::optional<int> r;
    run(
        [&]() -> task<void> {
          channel<int> ch(1);
          std::thread stopper([&] { src.request_stop(); });
          r = co_await ringflow::with_stop(src.get_token(), recv_one(ch, started, destroyed));
          stopper.join();
        }(),
        2);
    REQUIRE(r == std::nullopt);
    REQUIRE(destroyed == started);
  }
}

TEST_CASE("with_stop: the child's exception propagates; task<void> gives true or false", "[stop][runtime]") {
  std::stop_source src;
  run([&]() -> task<void> {
    auto thrower = []() -> task<int> {
      co_await ringflow::yield();
      throw std::runtime_error("boom");
    };
    REQUIRE_THROWS_AS(co_await ringflow::with_stop(src.get_token(), thrower()), std::runtime_error);
    bool finished = co_await ringflow::with_stop(src.get_token(), yield_once());
    REQUIRE(finished);
    src.request_stop();
    bool again = co_await ringflow::with_stop(src.get_token(), yield_once());
    REQUIRE_FALSE(again);
  }());
}

TEST_CASE("with_stop: a child that requests stop itself and finishes keeps its value", "[stop][runtime]") {
  // The request queues the stop notice on this worker while the child runs;
  // the child then finishes first, so the notice is taken back unrun.
  std::stop_source src;
  run([&]() -> task<void> {
    auto self_stopping = [&]() -> task<int> {
      src.request_stop();
      co_return 3;
    };
    auto r = co_await ringflow::with_stop(src.get_token(), self_stopping());
    REQUIRE(r == 3);
    // The same, but the child suspends after the request: it loses.
    std::stop_source src2;
    auto suspending = [&]() -> task<int> {
      src2.request_stop();
      co_await ringflow::yield();
      co_return 4;
    };
    auto r2 = co_await ringflow::with_stop(src2.get_token(), suspending());
    REQUIRE(r2 == std::nullopt);
  }());
}

TEST_CASE("with_stop: cancelling a chain 200,000 deep stays in constant stack", "[stop][runtime]") {
  std::stop_source src;
  std::atomic<int> started{0}, destroyed{0};
  run([&]() -> task<void> {
    channel<int> ch(1);
    channel<int> ready(1);
    auto stopper = ringflow::spawn(stop_when_ready(ready, src));
    co_await ready.send(1);
    auto r = co_await ringflow::with_stop(src.get_token(), deep(ch, started, destroyed, 200'000));
    REQUIRE(r == std::nullopt);
    co_await stopper;
  }());
  REQUIRE(started == 1);
  REQUIRE(destroyed == 1);
}

TEST_CASE("with_stop: the awaiting task cancelled with a callback armed; the source used afterwards", "[stop][runtime]") {
  std::stop_source src;
  std::atomic<int> started{0}, destroyed{0};
  run([&]() -> task<void> {
    channel<int> ch(1);
    // timeout cancels the task awaiting with_stop: the callback is withdrawn.
    auto r = co_await ringflow::timeout(1ms, ringflow::with_stop(src.get_token(), recv_one(ch, started, destroyed)));
    REQUIRE(r == std::nullopt);
    REQUIRE(destroyed == 1);
  }());
  src.request_stop();  // nothing is registered any more
  REQUIRE(src.stop_requested());
}

TEST_CASE("with_stop: a runtime shut down while tasks wait; the source outlives it", "[stop][runtime]") {
  std::stop_source src;
  std::atomic<int> started{0}, destroyed{0};
  {
    channel<int> ch(1);  // outlives the runtime, as do the flags
    std::atomic<bool> never{false};
    ringflow::runtime rt({.threads = 2});
    std::vector<ringflow::join_handle<void>> hs;
    for (int i = 0; i < 8; ++i) {
      hs.push_back(rt.spawn(with_stop_recv(src.get_token(), ch, started, destroyed)));
      hs.push_back(rt.spawn(wait_stopped(src.get_token(), never)));
    }
    rt.block_on([&]() -> task<void> {
      while (started.load() < 8) co_await ringflow::yield();
    }());
  }  // shutdown destroys every waiting frame, withdrawing its callback
  REQUIRE(destroyed == 8);
  src.request_stop();  // touches no freed frame (ASan)
}

TEST_CASE("stopped: resumes once stop is requested, at once when it already was", "[stop][runtime]") {
  std::stop_source src;
  run(
      [&]() -> task<void> {
        std::atomic<bool> woke{false};
        auto waiter = ringflow::spawn(wait_stopped(src.get_token(), woke));
        co_await ringflow::yield();
        REQUIRE_FALSE(woke);
        std::thread t([&] { src.request_stop(); });
        co_await waiter;
        t.join();
        REQUIRE(woke);
        co_await ringflow::stopped(src.get_token());  // already requested: no wait
      }(),
      2);
}

TEST_CASE("stopped: a token that can never stop waits until cancelled", "[stop][runtime]") {
  run([]() -> task<void> {
    bool finished = co_await ringflow::timeout(1ms, ringflow::stopped(std::stop_token{}));
    REQUIRE_FALSE(finished);
  }());
}

TEST_CASE("with_stop and stopped: many stops racing children on two workers", "[stop][runtime]") {
  // Requests from a foreign thread race children that finish on their own:
  // every race is decided once, and every child frame is destroyed once.
  std::atomic<int> started{0}, destroyed{0};
  std::atomic<int> won{0}, lost{0};
  run(
      [&]() -> task<void> {
        for (int i = 0; i < 500; ++i) {
          std::stop_source src;
          channel<int> ch(1);
          co_await ch.send(i);
          std::thread t([&] { src.request_stop(); });
          auto r = co_await ringflow::with_stop(src.get_token(), recv_one(ch, started, destroyed));
          (r ? won : lost).fetch_add(1);
          t.join();
        }
      }(),
      2);
  REQUIRE(won + lost == 500);
  REQUIRE(destroyed == started);
}
