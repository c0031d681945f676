// task_group: spawn suspends at max_running (backpressure on spawning), next()
// reports in finishing order and rethrows, cancel_all and the destructor
// cancel what runs, cancelled spawns and next()s lose nothing, and many
// tasks on two workers keep the bound (TSan clean).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <vector>

#include <ringflow/ringflow.hpp>
#include <ringflow/task_group.hpp>

#include "../support/run.hpp"

using namespace std::chrono_literals;
using ringflow::channel;
using ringflow::task;
using ringflow::task_group;
using test_support::run;

// co_await never goes inside REQUIRE: Catch repeats the expression in an
// unevaluated branch, and g++ 12 then resumes the coroutine wrongly.
namespace {

// Finishes when `gate` delivers its value.
task<int> gated(channel<int>& gate) { co_return (co_await gate.recv()).value_or(-1); }

}  // namespace

TEST_CASE("task_group: max_running 0 is refused", "[sync][task_group]") {
  REQUIRE_THROWS_AS(task_group<int>(0), std::invalid_argument);
}

TEST_CASE("task_group: next() reports in finishing order; empty group gives nullopt", "[sync][task_group]") {
  run([]() -> task<void> {
    task_group<int> g;
    auto r1 = co_await g.next();
    REQUIRE(r1 == std::nullopt);
    channel<int> a(1), b(1), c(1);
    co_await g.spawn(gated(a));
    co_await g.spawn(gated(b));
    co_await g.spawn(gated(c));
    REQUIRE(g.running() == 3);
    co_await b.send(2);
    auto r2 = co_await g.next();
    REQUIRE(r2 == 2);
    co_await c.send(3);
    co_await a.send(1);
    auto r3 = co_await g.next();
    REQUIRE(r3 == 3);
    auto r4 = co_await g.next();
    REQUIRE(r4 == 1);
    auto r5 = co_await g.next();
    REQUIRE(r5 == std::nullopt);
    REQUIRE(g.running() == 0);
  }());
}

TEST_CASE("task_group: spawn suspends at max_running until a task finishes", "[sync][task_group]") {
  run([]() -> task<void> {
    task_group<int> g(2);
    channel<int> a(1), b(1), c(1);
    co_await g.spawn(gated(a));
    co_await g.spawn(gated(b));
    std::atomic<bool> third_spawned{false};
    auto spawner = ringflow::spawn([](task_group<int>& grp, channel<int>& gate, std::atomic<bool>& done) -> task<void> {
      co_await grp.spawn(gated(gate));
      done = true;
    }(g, c, third_spawned));
    for (int i = 0; i < 10; ++i) co_await ringflow::yield();
    REQUIRE_FALSE(third_spawned);  // the group is full
    REQUIRE(g.running() == 2);
    co_await a.send(1);
    co_await std::move(spawner);
    REQUIRE(third_spawned);
    REQUIRE(g.running() == 2);
    auto r6 = co_await g.next();
    REQUIRE(r6 == 1);
    co_await b.send(2);
    co_await c.send(3);
    int sum = 0;
    while (auto v = co_await g.next()) sum += *v;
    REQUIRE(sum == 5);
  }());
}

TEST_CASE("task_group: next() rethrows a task's exception and goes on", "[sync][task_group]") {
  run([]() -> task<void> {
    task_group<void> g;
    co_await g.spawn([]() -> task<void> {
      throw std::runtime_error("boom");
      co_return;
    }());
    REQUIRE_THROWS_WITH(co_await g.next(), "boom");
    co_await g.spawn([]() -> task<void> { co_return; }());
    auto r7 = co_await g.next();
    REQUIRE(r7);
    auto r8 = co_await g.next();
    REQUIRE_FALSE(r8);
  }());
}

TEST_CASE("task_group: cancel_all cancels running tasks; next() then reports only the finished", "[sync][task_group]") {
  run([]() -> task<void> {
    task_group<int> g;
    channel<int> never(1);
    co_await g.spawn([]() -> task<int> { co_return 7; }());
    for (int i = 0; i < 5; ++i) co_await g.spawn(gated(never));
    while (g.running() > 5) co_await ringflow::yield();
    g.cancel_all();
    auto r9 = co_await g.next();
    REQUIRE(r9 == 7);
    auto r10 = co_await g.next();
    REQUIRE(r10 == std::nullopt);  // waits for the cancelled ones to go
    REQUIRE(g.running() == 0);
  }());
}

TEST_CASE("task_group: the destructor cancels its tasks; they outlive it safely", "[sync][task_group]") {
  std::atomic<int> destroyed{0};
  struct on_destroy {
    std::atomic<int>* n;
    ~on_destroy() { n->fetch_add(1); }
  };
  run([](std::atomic<int>& d) -> task<void> {
    channel<int> never(1);
    {
      task_group<void> g;
      for (int i = 0; i < 10; ++i) {
        co_await g.spawn([](channel<int>& ch, std::atomic<int>& n) -> task<void> {
          on_destroy guard{&n};
          co_await ch.recv();
        }(never, d));
      }
      co_await ringflow::yield();
    }
    while (d < 10) co_await ringflow::yield();
  }(destroyed));
  REQUIRE(destroyed == 10);
}

TEST_CASE("task_group: a spawn cancelled while it waits for a place starts nothing and passes its place on",
          "[sync][task_group]") {
  run([]() -> task<void> {
    task_group<int> g(1);
    channel<int> a(1), b(1);
    co_await g.spawn(gated(a));
    std::atomic<int> started{0};
    auto starts = [](std::atomic<int>& n, channel<int>& gate) -> task<int> {
      n.fetch_add(1);
      co_return (co_await gate.recv()).value_or(-1);
    };
    auto spawn_one = [](task_group<int>& grp, task<int> t) -> task<void> { co_await grp.spawn(std::move(t)); };
    // Times out while the group is full (a never sent yet): its task never starts.
    auto r11 = co_await ringflow::timeout(1ms, spawn_one(g, starts(started, b)));
    REQUIRE_FALSE(r11);
    REQUIRE(started == 0);
    REQUIRE(g.running() == 1);
    auto waiting = ringflow::spawn(spawn_one(g, starts(started, b)));
    co_await a.send(1);
    co_await std::move(waiting);
    auto r12 = co_await g.next();
    REQUIRE(r12 == 1);
    co_await b.send(2);
    auto r13 = co_await g.next();
    REQUIRE(r13 == 2);
    REQUIRE(started == 1);
  }());
}

TEST_CASE("task_group: a next() cancelled while waiting loses no result", "[sync][task_group]") {
  run([]() -> task<void> {
    task_group<int> g;
    channel<int> a(1);
    co_await g.spawn(gated(a));
    auto early = co_await ringflow::timeout(1ms, [](task_group<int>& grp) -> task<std::optional<int>> {
      co_return co_await grp.next();
    }(g));
    REQUIRE_FALSE(early.has_value());  // timed out
    co_await a.send(5);
    auto r14 = co_await g.next();
    REQUIRE(r14 == 5);
  }());
}

TEST_CASE("task_group: many tasks on two workers never exceed max_running", "[sync][task_group]") {
  run(
      []() -> task<void> {
        constexpr int tasks = 2000, limit = 4;
        task_group<int> g(limit);
        std::atomic<int> now{0}, most{0};
        long sum = 0;
        int reported = 0;
        for (int i = 0; i < tasks; ++i) {
          co_await g.spawn([](std::atomic<int>& n, std::atomic<int>& m, int v) -> task<int> {
            int cur = n.fetch_add(1) + 1;
            int seen = m.load();
            while (cur > seen && !m.compare_exchange_weak(seen, cur)) {
            }
            co_await ringflow::yield();
            n.fetch_sub(1);
            co_return v;
          }(now, most, i));
          REQUIRE(g.running() <= static_cast<std::size_t>(limit));
          if (i % 3 == 0) {
            if (auto v = co_await g.next()) {
              sum += *v;
              ++reported;
            }
          }
        }
        while (auto v = co_await g.next()) {
          sum += *v;
          ++reported;
        }
        REQUIRE(reported == tasks);
        REQUIRE(sum == static_cast<long>(tasks) * (tasks - 1) / 2);
        REQUIRE(most <= limit);
      }(),
      2);
}

TEST_CASE("task_group: try_next() reaps finished tasks without waiting, in finishing order", "[task_group][sync]") {
  run([]() -> task<void> {
    task_group<int> g;
    auto r0 = g.try_next();
    REQUIRE(r0 == std::nullopt);  // empty: nothing to reap, no wait
    channel<int> a(1), b(1);
    co_await g.spawn(gated(a));
    co_await g.spawn(gated(b));
    auto r1 = g.try_next();
    REQUIRE(r1 == std::nullopt);  // both still running
    co_await b.send(2);
    while (g.running() == 2) co_await ringflow::yield();
    auto r2 = g.try_next();
    REQUIRE(r2 == 2);
    co_await a.send(1);
    auto r3 = co_await g.next();
    REQUIRE(r3 == 1);
    auto r4 = g.try_next();
    REQUIRE(r4 == std::nullopt);

    task_group<void> v;
    co_await v.spawn([]() -> task<void> {
      throw std::runtime_error("boom");
      co_return;
    }());
    while (v.running() == 1) co_await ringflow::yield();
    REQUIRE_THROWS_AS(v.try_next(), std::runtime_error);
    REQUIRE_FALSE(v.try_next());
    bool more = co_await v.next();
    REQUIRE_FALSE(more);
  }());
}

TEST_CASE("task_group: next() awaited inside a loop condition", "[task_group][sync]") {
  // Both spellings users write; g++ 12 once mishandled awaiters there.
  run(
      []() -> task<void> {
        task_group<int> g(2);
        for (int i = 0; i < 20; ++i) co_await g.spawn([](int v) -> task<int> {
          co_await ringflow::yield();
          co_return v;
        }(i));
        int total = 0;
        while (auto v = co_await g.next()) total += *v;
        REQUIRE(total == 190);
        task_group<void> h(2);
        for (int i = 0; i < 20; ++i) co_await h.spawn([]() -> task<void> { co_await ringflow::yield(); }());
        int n = 0;
        while (co_await h.next()) ++n;
        REQUIRE(n == 20);
      }(),
      2);
}

namespace {

// Records, when the frame holding it goes, how many tasks its group still
// counts as running.
struct running_probe {
  task_group<int>* g;
  std::size_t* seen;
  running_probe(task_group<int>* group, std::size_t* s) noexcept : g(group), seen(s) {}
  running_probe(running_probe&& o) noexcept : g(std::exchange(o.g, nullptr)), seen(o.seen) {}
  ~running_probe() {
    if (g) *seen = g->running();
  }
};

task<int> probed(running_probe p, channel<int>* gate) {
  (void)p;
  if (gate) co_return (co_await gate->recv()).value_or(-1);
  co_return 1;
}

}  // namespace

TEST_CASE("task_group: a task's frame, parameters included, is gone before the group reports it",
          "[task_group][sync]") {
  // Otherwise next() could say "finished" (or "empty") while the task's
  // parameters are still being destroyed on its worker, after their owner
  // has gone.
  std::size_t seen_finished = 99, seen_cancelled = 99, seen_unstarted = 99;
  run([&]() -> task<void> {
    task_group<int> g;
    co_await g.spawn(probed(running_probe(&g, &seen_finished), nullptr));
    auto r1 = co_await g.next();
    REQUIRE(r1 == 1);

    channel<int> never(1);
    co_await g.spawn(probed(running_probe(&g, &seen_cancelled), &never));
    co_await ringflow::yield();  // one turn: it now waits on `never`
    g.cancel_all();
    auto r2 = co_await g.next();
    REQUIRE(r2 == std::nullopt);

    co_await g.spawn(probed(running_probe(&g, &seen_unstarted), &never));
    g.cancel_all();  // before it had a turn: it never starts
    auto r3 = co_await g.next();
    REQUIRE(r3 == std::nullopt);
  }());
  REQUIRE(seen_finished == 1);
  REQUIRE(seen_cancelled == 1);
  REQUIRE(seen_unstarted == 1);
}
