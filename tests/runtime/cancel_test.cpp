// join_handle::cancel: a task is destroyed at its current (or next)
// suspension on its own worker, its waits withdrawn; co_await on its handle
// throws task_cancelled; a finished task keeps its result; a task cancelled
// before it starts never runs; cancelling tasks in channel waits while values
// flow on two workers loses nothing that was not handed to them and destroys
// every value once.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <ringflow/ringflow.hpp>

#include "../support/tracked.hpp"

using namespace std::chrono_literals;
using ringflow::channel;
using ringflow::join_handle;
using ringflow::task;
using ringflow::task_cancelled;

namespace {

struct alive_flag {
  std::atomic<int>* destroyed;
  ~alive_flag() { destroyed->fetch_add(1); }
};

task<int> wait_forever(channel<int>& ch, std::atomic<int>& destroyed, std::atomic<int>& got) {
  alive_flag f{&destroyed};
  auto v = co_await ch.recv();
  got.fetch_add(1);
  co_return v.value_or(-1);
}

task<int> nested(channel<int>& ch, std::atomic<int>& destroyed, std::atomic<int>& got, int depth) {
  if (depth == 0) co_return co_await wait_forever(ch, destroyed, got);
  co_return co_await nested(ch, destroyed, got, depth - 1);
}

}  // namespace

TEST_CASE("cancel destroys a task blocked in a channel wait; co_await throws task_cancelled", "[runtime][cancel]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    channel<int> ch(4);
    std::atomic<int> destroyed{0}, got{0};
    auto h = ringflow::spawn(wait_forever(ch, destroyed, got));
    co_await ringflow::yield();  // let it block in recv
    REQUIRE_FALSE(h.is_finished());
    h.cancel();
    h.cancel();  // idempotent
    REQUIRE_THROWS_AS(co_await std::move(h), task_cancelled);
    REQUIRE(destroyed == 1);
    REQUIRE(got == 0);
    // Its wait was withdrawn: a value sent now stays in the channel.
    REQUIRE(ch.try_send(7) == ringflow::send_status::sent);
    REQUIRE(ch.try_recv() == 7);
  }());
}

TEST_CASE("cancel reaches a task sleeping for hours and one in a deep chain", "[runtime][cancel]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    auto sleeper = ringflow::spawn([]() -> task<void> { co_await ringflow::sleep_for(10h); }());
    channel<int> ch(1);
    std::atomic<int> destroyed{0}, got{0};
    auto deep = ringflow::spawn(nested(ch, destroyed, got, 20000));
    co_await ringflow::yield();
    co_await ringflow::yield();
    sleeper.cancel();
    deep.cancel();
    REQUIRE_THROWS_AS(co_await std::move(sleeper), task_cancelled);
    REQUIRE_THROWS_AS(co_await std::move(deep), task_cancelled);
    REQUIRE(destroyed == 1);
  }());
}

TEST_CASE("a task cancelled before it starts never runs", "[runtime][cancel]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    std::atomic<int> ran{0};
    auto h = ringflow::spawn([](std::atomic<int>& r) -> task<int> {
      r.fetch_add(1);
      co_return 1;
    }(ran));
    h.cancel();  // one worker: it is queued behind us, not started
    REQUIRE_THROWS_AS(co_await std::move(h), task_cancelled);
    REQUIRE(ran == 0);
  }());
}

TEST_CASE("cancelling a finished task keeps its result, and its exception", "[runtime][cancel]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    auto h = ringflow::spawn([]() -> task<int> { co_return 42; }());
    while (!h.is_finished()) co_await ringflow::yield();
    h.cancel();
    const int v = co_await std::move(h);
    REQUIRE(v == 42);
    auto e = ringflow::spawn([]() -> task<int> {
      throw std::runtime_error("boom");
      co_return 0;
    }());
    while (!e.is_finished()) co_await ringflow::yield();
    e.cancel();
    REQUIRE_THROWS_WITH(co_await std::move(e), "boom");
    join_handle<int> empty;
    empty.cancel();  // no-op
  }());
}

TEST_CASE("a running task is cancelled at its next suspension", "[runtime][cancel]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    std::atomic<int> turns{0};
    auto h = ringflow::spawn([](std::atomic<int>& t) -> task<void> {
      for (;;) {
        t.fetch_add(1);
        co_await ringflow::yield();
      }
    }(turns));
    while (turns < 3) co_await ringflow::yield();
    h.cancel();
    REQUIRE_THROWS_AS(co_await std::move(h), task_cancelled);
    const int at_end = turns;
    for (int i = 0; i < 10; ++i) co_await ringflow::yield();
    REQUIRE(turns == at_end);
  }());
}

TEST_CASE("cancel from a thread outside the runtime; wait() throws task_cancelled", "[runtime][cancel]") {
  ringflow::runtime rt({.threads = 2});
  channel<int> ch(1);
  std::atomic<int> destroyed{0}, got{0};
  std::atomic<bool> waiting{false};
  auto h = rt.spawn([](channel<int>& c, std::atomic<int>& d, std::atomic<int>& g,
                       std::atomic<bool>& w) -> task<int> {
    w = true;
    co_return co_await wait_forever(c, d, g);
  }(ch, destroyed, got, waiting));
  while (!waiting) std::this_thread::yield();  // started: cancel reaches it in its wait or just before
  std::thread([&] { h.cancel(); }).join();
  REQUIRE_THROWS_AS(h.wait(), task_cancelled);
  REQUIRE(destroyed == 1);
}

// Receivers spawned on two workers (they may move to whoever wakes them)
// are cancelled while a producer keeps sending: every value is either
// received by a task, still in the channel, or was handed to a task that was
// then cancelled, and each is destroyed exactly once.
TEST_CASE("cancelling receivers while values flow on two workers", "[runtime][cancel]") {
  using test_support::tracked;
  tracked::reset();
  constexpr int receivers = 16, values = 20000;
  std::atomic<int> received{0};
  {
    ringflow::runtime rt({.threads = 2});
    rt.block_on([&]() -> task<void> {
      channel<tracked> ch(8);
      std::vector<join_handle<void>> hs;
      for (int i = 0; i < receivers; ++i) {
        hs.push_back(ringflow::spawn([](channel<tracked>& c, std::atomic<int>& n) -> task<void> {
          while (auto v = co_await c.recv()) n.fetch_add(1);
        }(ch, received)));
      }
      auto producer = ringflow::spawn([](channel<tracked>& c) -> task<void> {
        for (int i = 0; i < values; ++i) co_await c.send(tracked(i));
        c.close();
      }(ch));
      // Cancel half of them part-way, the rest keep draining.
      while (received < values / 4) co_await ringflow::yield();
      for (int i = 0; i < receivers; i += 2) hs[i].cancel();
      co_await std::move(producer);
      int cancelled = 0;
      for (int i = 0; i < receivers; ++i) {
        try {
          co_await std::move(hs[i]);
        } catch (const task_cancelled&) {
          ++cancelled;
          REQUIRE(i % 2 == 0);
        }
      }
      REQUIRE(cancelled <= receivers / 2);
      REQUIRE(ch.try_recv() == std::nullopt);
    }());
  }
  REQUIRE(received <= values);
  REQUIRE(received >= values - receivers / 2);  // at most one handed value per cancelled task
  REQUIRE(tracked::live == 0);
}

TEST_CASE("cancelling many tasks at once on two workers, and shutting down right after", "[runtime][cancel]") {
  for (int round = 0; round < 20; ++round) {
    ringflow::runtime rt({.threads = 2});
    channel<int> ch(1);
    std::atomic<int> destroyed{0}, got{0};
    std::vector<join_handle<int>> hs;
    for (int i = 0; i < 50; ++i) hs.push_back(rt.spawn(wait_forever(ch, destroyed, got)));
    for (auto& h : hs) h.cancel();
    if (round % 2 == 0) {
      for (auto& h : hs) REQUIRE_THROWS_AS(h.wait(), task_cancelled);
      // Those that had started were destroyed in their wait; none received.
      REQUIRE(destroyed <= 50);
      REQUIRE(got == 0);
    }
    // Odd rounds: the runtime goes with cancellations still in flight.
  }
}
