// spawn_blocking: f runs on the runtime's pool (never on a worker), its value
// and exception come back through co_await, on the worker that waited; the
// pool holds blocking_threads threads and queues FIFO beyond; a cancelled
// wait takes a queued f out (it never runs) or lets a running one finish
// and drops its result on the pool; shutdown waits for running work; a
// closure temporary in the co_await expression survives (the g++ 12 case);
// tcp_stream::connect resolves names there. Two workers under TSan.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ringflow/ringflow.hpp>

#include "../support/tracked.hpp"
#include "../support/run.hpp"

using namespace std::chrono_literals;
using ringflow::channel;
using ringflow::spawn_blocking;
using ringflow::task;
using test_support::tracked;

// co_await never goes inside REQUIRE: Catch repeats the expression in an
// unevaluated branch, and g++ 12 then resumes the coroutine wrongly.
using test_support::run;

namespace {

// A gate a pool thread can block on until a task (or the test) opens it.
struct gate {
  std::atomic<bool> open{false};
  std::atomic<int> waiting{0};  // threads blocked in pass()
  void pass() {
    waiting.fetch_add(1);
    waiting.notify_all();
    while (!open.load()) open.wait(false);
    waiting.fetch_sub(1);
  }
  void release() {
    open.store(true);
    open.notify_all();
  }
};

// Polls a condition set by a pool thread without blocking the worker.
task<void> until(std::atomic<int>& v, int at_least) {
  while (v.load() < at_least) co_await ringflow::sleep_for(100us);
}

}  // namespace

TEST_CASE("spawn_blocking: blocking_threads 0 is refused", "[blocking][runtime]") {
  REQUIRE_THROWS_AS(ringflow::runtime({.blocking_threads = 0}), std::invalid_argument);
}

TEST_CASE("spawn_blocking: value, void and exception come back through co_await", "[blocking][runtime]") {
  run([]() -> task<void> {
    int v = co_await spawn_blocking([] { return 42; });
    REQUIRE(v == 42);
    std::atomic<bool> ran{false};
    co_await spawn_blocking([&ran] { ran = true; });
    REQUIRE(ran);
    bool threw = false;
    try {
      co_await spawn_blocking([]() -> int { throw std::runtime_error("boom"); });
    } catch (const std::runtime_error& e) {
      threw = std::string(e.what()) == "boom";
    }
    REQUIRE(threw);
    // A move-only result.
    auto p = co_await spawn_blocking([] { return std::make_unique<int>(7); });
    REQUIRE(*p == 7);
  }());
}

TEST_CASE("spawn_blocking: an exception from f is the task's alone once it is rethrown", "[blocking][runtime]") {
  // The pool thread's reference to the call may be the last to go, after
  // the task has caught the exception and let go of it: the call must not
  // still hold the exception then, or the pool thread frees what the task
  // read (TSan: libstdc++'s reference counts are invisible to it, so only
  // the call's own counter orders the two threads).
  run([]() -> task<void> {
    int caught = 0;
    for (int i = 0; i < 2000; ++i) {
      try {
        co_await spawn_blocking([]() -> int { throw std::runtime_error("a message longer than the small-string buffer"); });
      } catch (const std::runtime_error& e) {
        caught += std::string(e.what()).size() > 15;
      }
    }
    REQUIRE(caught == 2000);
  }());
}

// g++ 12 (at least) destroys twice the captures of a closure built inside a
// co_await expression, before spawn_blocking is even called (a probe capture
// shows one construction and two destructions at two addresses in the
// caller's frame): no callee can repair that, so the exact expression runs
// only where the compiler is sound; the forms blocking.hpp recommends for
// g++ 12 run everywhere.
#if defined(__clang__) || !defined(__GNUC__) || __GNUC__ >= 13
#define RINGFLOW_SOUND_CAPTURES_IN_CO_AWAIT 1
#endif

TEST_CASE("spawn_blocking: a closure temporary in the co_await expression survives", "[blocking][runtime]") {
#ifdef RINGFLOW_SOUND_CAPTURES_IN_CO_AWAIT
  run([]() -> task<void> {
    std::size_t n = co_await spawn_blocking([s = std::string(100, 'x')] { return s.size(); });
    REQUIRE(n == 100);
    std::string joined = co_await spawn_blocking([a = std::string(50, 'a'), b = std::string(60, 'b')] { return a + b; });
    REQUIRE(joined.size() == 110);
  }());
#endif
  // Safe with g++ 12 too: the closure in its own statement, or the values as
  // arguments (prvalues and lvalues) of a capture-free function.
  run([]() -> task<void> {
    auto job = spawn_blocking([s = std::string(100, 'x')] { return s.size(); });
    std::size_t n = co_await std::move(job);
    REQUIRE(n == 100);
    std::size_t m = co_await spawn_blocking([](const std::string& s) { return s.size(); }, std::string(100, 'x'));
    REQUIRE(m == 100);
    const std::string a(50, 'a'), b(60, 'b');
    std::string joined = co_await spawn_blocking([](std::string x, std::string y) { return x + y; }, a, b);
    REQUIRE(joined == a + b);
    int k = 0;
    co_await spawn_blocking([](int& r, int v) { r = v; }, std::ref(k), 5);
    REQUIRE(k == 5);
  }());
}

TEST_CASE("spawn_blocking: f runs on a pool thread, the task resumes on its worker", "[blocking][runtime]") {
  ringflow::runtime rt({.threads = 2});
  for (unsigned w = 0; w < 2; ++w) {
    rt.spawn_on(w, []() -> task<void> {
        const auto home = std::this_thread::get_id();
        auto where = co_await spawn_blocking([] { return std::this_thread::get_id(); });
        REQUIRE(where != home);
        REQUIRE(std::this_thread::get_id() == home);
      }()).wait();
  }
}

TEST_CASE("spawn_blocking: the worker keeps running tasks while f blocks", "[blocking][runtime]") {
  // One worker: if f ran on it, the task that opens the gate could never run.
  run([]() -> task<void> {
    gate g;
    auto opener = ringflow::spawn_local([](gate& g) -> task<void> {
      std::atomic<int>& w = g.waiting;
      co_await until(w, 1);
      g.release();
    }(g));
    int v = co_await spawn_blocking([&g] {
      g.pass();
      return 1;
    });
    REQUIRE(v == 1);
    co_await std::move(opener);
  }());
}

TEST_CASE("spawn_blocking: at most blocking_threads run at once, FIFO beyond", "[blocking][runtime]") {
  // f 0 holds its pool thread until every other f has finished, so 2..7 run
  // one at a time on the other thread and the order they start in is the
  // queue's order. (With both threads free, two dequeued in order may still
  // record in either order: CI saw 2, 4, 3.)
  run(
      []() -> task<void> {
        gate g, hold;
        std::mutex m;
        std::vector<int> order;
        std::atomic<int> running{0}, most{0};
        std::vector<ringflow::join_handle<void>> hs;
        for (int i = 0; i < 8; ++i) {
          hs.push_back(ringflow::spawn_local([](int i, gate& g, gate& hold, std::mutex& m, std::vector<int>& order,
                                                std::atomic<int>& running, std::atomic<int>& most) -> task<void> {
            co_await spawn_blocking([&, i] {
              int now = running.fetch_add(1) + 1;
              int seen = most.load();
              while (now > seen && !most.compare_exchange_weak(seen, now)) {
              }
              {
                std::lock_guard l(m);
                order.push_back(i);
              }
              (i == 0 ? hold : g).pass();
              running.fetch_sub(1);
            });
          }(i, g, hold, m, order, running, most)));
        }
        // Both threads become busy, and no third starts.
        co_await until(hold.waiting, 1);
        co_await until(g.waiting, 1);
        {
          std::lock_guard l(m);
          REQUIRE(order.size() == 2);
        }
        g.release();
        for (std::size_t i = 1; i < hs.size(); ++i) co_await std::move(hs[i]);
        hold.release();
        co_await std::move(hs[0]);
        REQUIRE(most.load() == 2);
        // 0 and 1 ran side by side (either may record first); the rest in
        // the order they were submitted.
        REQUIRE(order.size() == 8);
        for (int i = 2; i < 8; ++i) REQUIRE(order[i] == i);
      }(),
      {.blocking_threads = 2});
}

TEST_CASE("spawn_blocking: a wait cancelled while f is queued takes it out; f never runs", "[blocking][runtime]") {
  tracked::reset();
  run(
      []() -> task<void> {
        gate g;
        auto busy = ringflow::spawn_local(spawn_blocking([&g] { g.pass(); }));
        co_await until(g.waiting, 1);  // the only pool thread is taken
        std::atomic<bool> ran{false};
        auto job = spawn_blocking([&ran, t = tracked(1)] {  // own statement: see above
          ran = true;
          return t.id;
        });
        auto r = co_await ringflow::timeout(1ms, std::move(job));
        REQUIRE(!r);
        REQUIRE(tracked::times_destroyed(1) == 1);  // the closure went with the cancelled wait
        g.release();
        co_await std::move(busy);
        REQUIRE(!ran);
        // Every wait settled, the cancelled one included: the worker no
        // longer watches its inbox for a hand-back before it sleeps.
        REQUIRE(ringflow::detail::tls_worker->hand_backs_due() == 0);
      }(),
      {.blocking_threads = 1});
  REQUIRE(tracked::live == 0);
}

TEST_CASE("spawn_blocking: a wait cancelled while f runs lets it finish; its result goes on the pool",
          "[blocking][runtime]") {
  tracked::reset();
  gate g;
  std::atomic<bool> finished{false};
  run([](gate& g, std::atomic<bool>& finished) -> task<void> {
    auto job = spawn_blocking([&] {
      g.pass();
      finished = true;
      return tracked(5);
    });
    auto waiter = ringflow::spawn_local(std::move(job));
    co_await until(g.waiting, 1);  // f runs on the pool now (a deadline could fire before it starts)
    waiter.cancel();
    REQUIRE_THROWS_AS(co_await waiter, ringflow::task_cancelled);
    REQUIRE(ringflow::detail::tls_worker->hand_backs_due() == 0);
    g.release();
  }(g, finished));
  // The runtime's destructor waited for f; its result was destroyed once, on the pool.
  REQUIRE(finished);
  REQUIRE(tracked::times_destroyed(5) == 1);
  REQUIRE(tracked::live == 0);
}

TEST_CASE("spawn_blocking: a task never awaited runs nothing and frees its closure", "[blocking][runtime]") {
  tracked::reset();
  std::atomic<bool> ran{false};
  {
    auto t = spawn_blocking([&ran, x = tracked(3)] { ran = true; });
  }
  REQUIRE(!ran);
  REQUIRE(tracked::times_destroyed(3) == 1);
}

TEST_CASE("spawn_blocking: shutdown with blocking work in flight waits for it", "[blocking][runtime]") {
  tracked::reset();
  gate g;
  std::atomic<bool> finished{false};
  ringflow::join_handle<int> h;
  std::thread opener;
  {
    ringflow::runtime rt;
    h = rt.spawn([](gate& g, std::atomic<bool>& finished) -> task<int> {
      tracked t = co_await spawn_blocking([&] {
        g.pass();
        finished = true;
        return tracked(9);
      });
      co_return t.id;
    }(g, finished));
    while (g.waiting.load() == 0) g.waiting.wait(0);
    // Opened while the runtime is (most likely) being destroyed; the
    // destructor must wait for f either way. The pause only makes that
    // order likely: the assertions hold in both.
    opener = std::thread([&g] {
      std::this_thread::sleep_for(5ms);
      g.release();
    });
  }
  opener.join();
  REQUIRE(finished);
  REQUIRE(tracked::live == 0);
  REQUIRE(tracked::times_destroyed(9) == 1);
  bool ended = false;  // cancelled by the shutdown, or done just before it
  try {
    ended = h.wait() == 9;
  } catch (const ringflow::task_cancelled&) {
    ended = true;
  }
  REQUIRE(ended);
}

TEST_CASE("spawn_blocking: many calls from two workers, some cancelled, every result destroyed once",
          "[blocking][runtime]") {
  tracked::reset();
  constexpr int n = 400;
  std::atomic<long> sum{0};
  std::atomic<int> cancelled{0};
  {
    ringflow::runtime rt({.threads = 2, .blocking_threads = 3});
    std::vector<ringflow::join_handle<void>> hs;
    for (int i = 0; i < n; ++i) {
      hs.push_back(rt.spawn([](int i, std::atomic<long>& sum, std::atomic<int>& cancelled) -> task<void> {
        if (i % 3 == 0) {
          auto r = co_await ringflow::timeout(0ns, spawn_blocking([i] { return tracked(i); }));
          if (r) {
            sum += r->id;
          } else {
            cancelled.fetch_add(1);
          }
        } else {
          tracked t = co_await spawn_blocking([i] { return tracked(i); });
          sum += t.id;
        }
      }(i, sum, cancelled)));
    }
    for (auto& h : hs) h.wait();
  }  // joins the pool: results of cancelled calls are gone too
  long expect = 0, uncancellable = 0;
  for (int i = 0; i < n; ++i) {
    expect += i;
    if (i % 3 != 0) uncancellable += i;
  }
  REQUIRE(sum.load() >= uncancellable);
  REQUIRE(sum.load() <= expect);
  if (cancelled.load() == 0) REQUIRE(sum.load() == expect);
  REQUIRE(tracked::live == 0);
  for (int i = 0; i < n; ++i) REQUIRE(tracked::times_destroyed(i) <= 1);
}

TEST_CASE("spawn_blocking: tcp_stream::connect resolves a name on the pool, not on the worker",
          "[blocking][runtime]") {
  run(
      []() -> task<void> {
        auto l = ringflow::tcp_listener::bind("127.0.0.1", 0);
        auto accepted = ringflow::spawn_local([](ringflow::tcp_listener& l) -> task<void> {
          auto s = co_await l.accept();
          (void)s;
        }(l));
        gate g;
        auto busy = ringflow::spawn_local(spawn_blocking([&g] { g.pass(); }));
        co_await until(g.waiting, 1);  // the only pool thread is taken
        std::atomic<int> connected{0};
        auto conn = ringflow::spawn_local([](std::uint16_t port, std::atomic<int>& connected) -> task<void> {
          auto s = co_await ringflow::tcp_stream::connect("localhost", port);
          connected = 1;
        }(l.local_port(), connected));
        // The lookup waits behind the busy pool thread while this worker runs on.
        for (int i = 0; i < 10; ++i) co_await ringflow::yield();
        REQUIRE(connected.load() == 0);
        g.release();
        co_await std::move(busy);
        co_await std::move(conn);
        REQUIRE(connected.load() == 1);
        co_await std::move(accepted);
      }(),
      {.blocking_threads = 1});
}
