// semaphore: weighted first-in first-out acquires (a large request at the
// head is not overtaken), try_acquire never jumps the queue, cancelled
// acquires take nothing and let the next ones move up, add_permits wakes
// every acquire that then fits, permits give their units back exactly once,
// bad arguments throw, and many tasks on two workers keep the bound (TSan
// clean), also when the runtime goes away with acquires queued (ASan clean).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <ringflow/ringflow.hpp>
#include <ringflow/semaphore.hpp>
#include "../support/run.hpp"

using namespace std::chrono_literals;
using ringflow::channel;
using ringflow::semaphore;
using ringflow::task;
using permit = ringflow::semaphore::permit;

// co_await never goes inside REQUIRE: Catch repeats the expression in an
// unevaluated branch, and g++ 12 then resumes the coroutine wrongly.
using test_support::run;

namespace {

task<permit> take(semaphore& s, std::size_t n) { co_return co_await s.acquire(n); }

// Acquires n units, notes `id` in `log` (one worker: no lock needed), and
// hands the permit to whoever awaits the task.
task<permit> take_logged(semaphore& s, std::size_t n, std::vector<int>& log, int id) {
  permit p = co_await s.acquire(n);
  log.push_back(id);
  co_return p;
}

task<std::optional<permit>> take_within(semaphore& s, std::size_t n, std::chrono::nanoseconds d) {
  co_return co_await ringflow::timeout(d, take(s, n));
}

task<void> until_waiting(const semaphore& s, std::size_t n) {
  while (s.waiting() != n) co_await ringflow::yield();
}

}  // namespace

TEST_CASE("semaphore: acquire and try_acquire take units; permits give them back", "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(5);
    REQUIRE(s.available() == 5);
    permit a = co_await s.acquire();
    REQUIRE(a.count() == 1);
    permit b = co_await s.acquire(3);
    REQUIRE(b.count() == 3);
    REQUIRE(s.available() == 1);
    auto c = s.try_acquire(2);
    REQUIRE_FALSE(c);  // only 1 free
    auto d = s.try_acquire(1);
    REQUIRE(d);
    REQUIRE(d->count() == 1);
    REQUIRE(s.available() == 0);
    b.release();
    REQUIRE(b.count() == 0);
    REQUIRE(s.available() == 3);
    d.reset();
    REQUIRE(s.available() == 4);
    REQUIRE(s.waiting() == 0);
  }());
}

TEST_CASE("semaphore: a permit gives its units back exactly once, moved or released", "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(5);
    {
      permit p = co_await s.acquire(2);
      permit q = std::move(p);
      REQUIRE(p.count() == 0);  // NOLINT(bugprone-use-after-move): moved-from is specified
      REQUIRE(q.count() == 2);
      REQUIRE(s.available() == 3);
      p.release();  // holds nothing: gives nothing
      REQUIRE(s.available() == 3);
      q.release();
      REQUIRE(s.available() == 5);
      q.release();  // idempotent
      REQUIRE(s.available() == 5);
    }
    REQUIRE(s.available() == 5);  // neither destructor gave anything more

    {
      permit r = co_await s.acquire(1);
      std::optional<permit> three = s.try_acquire(3);
      REQUIRE(s.available() == 1);
      r = std::move(*three);  // r's own unit goes back first
      REQUIRE(r.count() == 3);
      REQUIRE(three->count() == 0);
      REQUIRE(s.available() == 2);
      permit& same = r;
      r = std::move(same);  // self-move keeps it
      REQUIRE(r.count() == 3);
      REQUIRE(s.available() == 2);
    }
    REQUIRE(s.available() == 5);

    {
      permit none;  // default-made: nothing
      REQUIRE(none.count() == 0);
      std::vector<permit> held;
      for (int i = 0; i < 5; ++i) held.push_back(co_await s.acquire());  // reallocations move them
      REQUIRE(s.available() == 0);
      held.erase(held.begin(), held.begin() + 2);
      REQUIRE(s.available() == 2);
    }
    REQUIRE(s.available() == 5);
  }());
}

TEST_CASE("semaphore: weighted acquires are served first-in first-out; a big head is not overtaken",
          "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(4);
    std::vector<int> log;
    permit mine = co_await s.acquire(2);  // 2 free
    auto big = ringflow::spawn(take_logged(s, 3, log, 1));
    co_await until_waiting(s, 1);
    // 1 unit would fit now, but the head asked for 3 first.
    auto small = ringflow::spawn(take_logged(s, 1, log, 2));
    co_await until_waiting(s, 2);
    auto tried = s.try_acquire(1);
    REQUIRE_FALSE(tried);  // try_acquire does not jump the queue either
    REQUIRE(s.available() == 2);
    REQUIRE(log.empty());

    mine.release();  // 4 free: the head takes 3, the next one 1
    permit p_big = co_await std::move(big);
    permit p_small = co_await std::move(small);
    REQUIRE(log == std::vector<int>{1, 2});
    REQUIRE(p_big.count() == 3);
    REQUIRE(p_small.count() == 1);
    REQUIRE(s.available() == 0);

    auto after = ringflow::spawn(take_logged(s, 2, log, 3));
    co_await until_waiting(s, 1);
    p_small.release();  // 1 free: not enough for 2
    for (int i = 0; i < 5; ++i) co_await ringflow::yield();
    REQUIRE(s.waiting() == 1);
    REQUIRE(s.available() == 1);
    p_big.release();  // 4 free: 2 taken
    permit p_after = co_await std::move(after);
    REQUIRE(p_after.count() == 2);
    REQUIRE(s.available() == 2);
    REQUIRE(log == std::vector<int>{1, 2, 3});
  }());
}

TEST_CASE("semaphore: try_acquire succeeds again once the queue is empty", "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(1);
    permit mine = co_await s.acquire();
    auto waiter = ringflow::spawn(take(s, 1));
    co_await until_waiting(s, 1);
    mine.release();  // handed straight to the waiter
    auto early = s.try_acquire();
    REQUIRE_FALSE(early);
    REQUIRE(s.available() == 0);
    { permit w = co_await std::move(waiter); }
    auto now = s.try_acquire();
    REQUIRE(now);
    REQUIRE(now->count() == 1);
  }());
}

TEST_CASE("semaphore: add_permits wakes every queued acquire that then fits, in order", "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(0);
    s.add_permits(3);  // owns 3 from now on: acquire(3) is valid
    permit all = co_await s.acquire(3);
    std::vector<int> log;
    std::vector<ringflow::join_handle<permit>> hs;
    const std::size_t wants[] = {2, 1, 3, 1};
    for (int i = 0; i < 4; ++i) {
      hs.push_back(ringflow::spawn(take_logged(s, wants[i], log, i)));
      co_await until_waiting(s, static_cast<std::size_t>(i) + 1);
    }
    s.add_permits(3);  // 2 + 1 fit; 3 does not, so 1 behind it waits too
    permit p0 = co_await std::move(hs[0]);
    permit p1 = co_await std::move(hs[1]);
    REQUIRE(log == std::vector<int>{0, 1});
    REQUIRE(s.waiting() == 2);
    REQUIRE(s.available() == 0);
    s.add_permits(4);
    permit p2 = co_await std::move(hs[2]);
    permit p3 = co_await std::move(hs[3]);
    REQUIRE(log == std::vector<int>{0, 1, 2, 3});
    REQUIRE(s.available() == 0);
    all.release();
    p0.release();
    p1.release();
    p2.release();
    p3.release();
    REQUIRE(s.available() == 10);
    REQUIRE(s.waiting() == 0);
  }());
}

TEST_CASE("semaphore: an acquire of 0 units gives an empty permit at once, even behind waiters", "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(1);
    permit mine = co_await s.acquire();
    auto waiter = ringflow::spawn(take(s, 1));
    co_await until_waiting(s, 1);
    permit none = co_await s.acquire(0);
    REQUIRE(none.count() == 0);
    auto none2 = s.try_acquire(0);
    REQUIRE(none2);
    REQUIRE(none2->count() == 0);
    none.release();
    none2.reset();
    REQUIRE(s.waiting() == 1);  // giving back nothing woke nobody
    mine.release();
    permit w = co_await std::move(waiter);
    REQUIRE(w.count() == 1);
  }());
}

TEST_CASE("semaphore: bad arguments throw and change nothing", "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(2);
    REQUIRE_THROWS_AS(co_await s.acquire(3), std::invalid_argument);
    REQUIRE_THROWS_AS(s.try_acquire(3), std::invalid_argument);
    REQUIRE(s.available() == 2);
    REQUIRE(s.waiting() == 0);
    // The check is against what the semaphore owns, add_permits included.
    s.add_permits(1);
    permit p = co_await s.acquire(3);
    REQUIRE(p.count() == 3);
    p.release();

    semaphore empty(0);
    REQUIRE_THROWS_AS(co_await empty.acquire(), std::invalid_argument);
    REQUIRE_THROWS_AS(empty.try_acquire(), std::invalid_argument);

    // The extreme: SIZE_MAX units are valid; one more is not.
    semaphore huge(SIZE_MAX);
    permit everything = co_await huge.acquire(SIZE_MAX);
    REQUIRE(everything.count() == SIZE_MAX);
    REQUIRE(huge.available() == 0);
    REQUIRE_THROWS_AS(huge.add_permits(1), std::invalid_argument);
    REQUIRE_THROWS_AS(huge.add_permits(SIZE_MAX), std::invalid_argument);
    huge.add_permits(0);
    REQUIRE(huge.available() == 0);
    everything.release();
    REQUIRE(huge.available() == SIZE_MAX);
    auto most = huge.try_acquire(SIZE_MAX);
    REQUIRE(most);
    most.reset();

    semaphore some(5);
    REQUIRE_THROWS_AS(some.add_permits(SIZE_MAX - 4), std::invalid_argument);
    REQUIRE(some.available() == 5);
    some.add_permits(SIZE_MAX - 5);
    REQUIRE(some.available() == SIZE_MAX);
  }());
}

TEST_CASE("semaphore: an acquire timed out at the head takes nothing; the ones behind it that fit move up",
          "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(2);
    permit mine = co_await s.acquire();  // 1 free, held for the whole test
    // Spawned together: they queue in this order before the timer is reaped.
    auto head = ringflow::spawn(take_within(s, 2, 5ms));
    auto next = ringflow::spawn(take(s, 1));
    auto last = ringflow::spawn(take(s, 1));
    std::optional<permit> timed_out = co_await std::move(head);
    REQUIRE_FALSE(timed_out);
    permit p_next = co_await std::move(next);  // the freed head let it fit
    REQUIRE(p_next.count() == 1);
    REQUIRE(s.available() == 0);
    co_await until_waiting(s, 1);
    p_next.release();
    permit p_last = co_await std::move(last);
    REQUIRE(p_last.count() == 1);
    p_last.release();
    REQUIRE(s.available() == 1);
  }());
}

TEST_CASE("semaphore: an acquire timed out in the middle takes nothing and wakes nobody", "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(1);
    std::vector<int> log;
    permit mine = co_await s.acquire();
    auto first = ringflow::spawn(take_logged(s, 1, log, 1));
    auto middle = ringflow::spawn(take_within(s, 1, 5ms));
    auto last = ringflow::spawn(take_logged(s, 1, log, 3));
    std::optional<permit> timed_out = co_await std::move(middle);
    REQUIRE_FALSE(timed_out);
    co_await until_waiting(s, 2);
    REQUIRE(s.available() == 0);
    REQUIRE(log.empty());
    mine.release();
    permit p1 = co_await std::move(first);
    REQUIRE(s.waiting() == 1);
    p1.release();
    permit p3 = co_await std::move(last);
    REQUIRE(log == std::vector<int>{1, 3});
    p3.release();
    REQUIRE(s.available() == 1);
  }());
}

TEST_CASE("semaphore: join_handle::cancel of a queued acquire, at the head and in the middle", "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(3);
    std::vector<int> log;
    permit mine = co_await s.acquire(2);  // 1 free
    auto head = ringflow::spawn(take_logged(s, 3, log, 1));
    co_await until_waiting(s, 1);
    auto middle = ringflow::spawn(take_logged(s, 1, log, 2));
    co_await until_waiting(s, 2);
    auto tail = ringflow::spawn(take_logged(s, 1, log, 3));
    co_await until_waiting(s, 3);

    middle.cancel();
    REQUIRE_THROWS_AS(co_await std::move(middle), ringflow::task_cancelled);
    REQUIRE(s.waiting() == 2);
    REQUIRE(s.available() == 1);  // the head still blocks the tail

    head.cancel();
    REQUIRE_THROWS_AS(co_await std::move(head), ringflow::task_cancelled);
    permit p3 = co_await std::move(tail);  // moved up and fits
    REQUIRE(log == std::vector<int>{3});
    REQUIRE(s.available() == 0);
    p3.release();
    mine.release();
    REQUIRE(s.available() == 3);
  }());
}

TEST_CASE("semaphore: an acquire cancelled after it was handed its units, before it ran, passes them on",
          "[semaphore][sync]") {
  run([]() -> task<void> {
    semaphore s(1);
    std::vector<int> log;
    permit mine = co_await s.acquire();
    auto first = ringflow::spawn(take_logged(s, 1, log, 1));
    co_await until_waiting(s, 1);
    auto second = ringflow::spawn(take_logged(s, 1, log, 2));
    co_await until_waiting(s, 2);
    // On one worker the canceller runs before the resumption queued next.
    first.cancel();
    mine.release();  // hands the unit to `first`, which is destroyed before it runs
    REQUIRE_THROWS_AS(co_await std::move(first), ringflow::task_cancelled);
    permit p2 = co_await std::move(second);
    REQUIRE(log == std::vector<int>{2});
    REQUIRE(p2.count() == 1);
    p2.release();
    REQUIRE(s.available() == 1);
    REQUIRE(s.waiting() == 0);
  }());
}

TEST_CASE("semaphore: a release on one worker wakes an acquire suspended on the other", "[semaphore][sync]") {
  semaphore s(1);
  std::atomic<bool> held{false};
  ringflow::runtime rt({.threads = 2});
  auto holder = rt.spawn_on(1, [](semaphore& sem, std::atomic<bool>& h) -> task<std::thread::id> {
    permit p = co_await sem.acquire();
    h.store(true);
    while (sem.waiting() == 0) co_await ringflow::yield();
    p.release();
    co_return std::this_thread::get_id();
  }(s, held));
  auto waiter = rt.spawn_on(0, [](semaphore& sem, std::atomic<bool>& h) -> task<bool> {
    while (!h.load()) co_await ringflow::yield();
    const auto before = std::this_thread::get_id();
    permit p = co_await sem.acquire();
    co_return p.count() == 1 && std::this_thread::get_id() == before;
  }(s, held));
  const std::thread::id releaser = holder.wait();
  REQUIRE(waiter.wait());
  REQUIRE(releaser != std::thread::id{});
  REQUIRE(s.available() == 1);
}

namespace {

unsigned worker_index() { return ringflow::detail::tls_worker->index(); }

task<permit> acquire_one(semaphore& sem) { co_return co_await sem.acquire(); }

// Takes the one unit n times and records where it ran after each acquire
// (each under a timeout, a wait that may be cancelled, when asked). It
// holds the unit until the other side is queued for it (or has finished),
// so every hand-over is a wake, however the threads are scheduled.
task<std::vector<unsigned>> take_turns(semaphore& sem, int n, std::atomic<int>& finished, bool under_timeout = false) {
  std::vector<unsigned> seen;
  for (int i = 0; i < n; ++i) {
    std::optional<permit> p;
    if (under_timeout) {
      p = co_await ringflow::timeout(1h, acquire_one(sem));
      if (!p) break;
    } else {
      p = co_await sem.acquire();
    }
    seen.push_back(worker_index());
    while (sem.waiting() == 0 && finished.load() == 0) co_await ringflow::yield();
  }
  finished.fetch_add(1);
  co_return seen;
}

// idle_spin 0: no worker steals, so only a wake moves a task.
constexpr ringflow::runtime_options wakes_move_only{.threads = 2, .idle_spin = std::chrono::nanoseconds(0)};

template <class T>
ringflow::join_handle<T> start_unpinned(ringflow::runtime& rt, unsigned index, task<T> t) {
  return ringflow::detail::spawn_on(rt.core().at(index), std::move(t), false);
}

}  // namespace

TEST_CASE("semaphore: two spawned tasks taking turns from different workers end up side by side",
          "[semaphore][sync]") {
  semaphore s(1);
  std::atomic<int> finished{0};
  ringflow::runtime rt(wakes_move_only);
  auto a = start_unpinned(rt, 0, take_turns(s, 2000, finished));
  auto b = start_unpinned(rt, 1, take_turns(s, 2000, finished));
  std::vector<unsigned> as = a.wait();
  std::vector<unsigned> bs = b.wait();
  REQUIRE(as.size() == 2000);
  REQUIRE(bs.size() == 2000);
  REQUIRE(s.available() == 1);
  // The first wake moved the woken one to the waker's worker; from there on
  // both ran on it (nothing moves them apart: no stealing).
  REQUIRE(as.back() == bs.back());
}

TEST_CASE("semaphore: pinned tasks and acquires under timeout never move", "[semaphore][sync]") {
  SECTION("spawn_on pins") {
    semaphore s(1);
    std::atomic<int> finished{0};
    ringflow::runtime rt(wakes_move_only);
    auto a = rt.spawn_on(0, take_turns(s, 500, finished));
    auto b = rt.spawn_on(1, take_turns(s, 500, finished));
    std::vector<unsigned> as = a.wait();
    std::vector<unsigned> bs = b.wait();
    REQUIRE(std::count(as.begin(), as.end(), 0u) == 500);
    REQUIRE(std::count(bs.begin(), bs.end(), 1u) == 500);
  }
  SECTION("a cancellable wait stays where it suspended") {
    semaphore s(1);
    std::atomic<int> finished{0};
    ringflow::runtime rt(wakes_move_only);
    auto a = start_unpinned(rt, 0, take_turns(s, 500, finished, true));
    auto b = start_unpinned(rt, 1, take_turns(s, 500, finished, true));
    std::vector<unsigned> as = a.wait();
    std::vector<unsigned> bs = b.wait();
    REQUIRE(std::count(as.begin(), as.end(), 0u) == 500);
    REQUIRE(std::count(bs.begin(), bs.end(), 1u) == 500);
  }
}

TEST_CASE("semaphore: many weighted tasks on two workers never hold more than the permits", "[semaphore][sync]") {
  constexpr std::size_t permits = 5;
  constexpr int tasks = 48, rounds = 150;
  semaphore s(permits);
  std::atomic<std::size_t> held{0}, most{0};
  std::atomic<long> acquired{0}, timed_out{0};
  {
    ringflow::runtime rt({.threads = 2});
    std::vector<ringflow::join_handle<void>> hs;
    for (int t = 0; t < tasks; ++t) {
      hs.push_back(rt.spawn([](semaphore& sem, std::atomic<std::size_t>& h, std::atomic<std::size_t>& m,
                               std::atomic<long>& ok, std::atomic<long>& late, int id) -> task<void> {
        for (int r = 0; r < rounds; ++r) {
          const std::size_t n = static_cast<std::size_t>((id + r) % 3) + 1;
          std::optional<permit> p;
          switch ((id * 7 + r) % 5) {
            case 0:
              p = sem.try_acquire(n);
              break;
            case 1:  // may be cancelled while queued, or just after it was handed its units
              p = co_await take_within(sem, n, std::chrono::microseconds((id + r) % 40));
              if (!p) late.fetch_add(1);
              break;
            default:
              p = co_await sem.acquire(n);
          }
          if (!p) continue;
          const std::size_t now = h.fetch_add(n) + n;
          std::size_t seen = m.load();
          while (now > seen && !m.compare_exchange_weak(seen, now)) {
          }
          ok.fetch_add(1);
          co_await ringflow::yield();
          h.fetch_sub(n);
          p.reset();
        }
      }(s, held, most, acquired, timed_out, t)));
    }
    for (auto& h : hs) h.wait();
  }
  REQUIRE(most.load() <= permits);
  REQUIRE(most.load() > 0);
  REQUIRE(acquired.load() > 0);
  REQUIRE(held.load() == 0);
  REQUIRE(s.available() == permits);
  REQUIRE(s.waiting() == 0);
}

TEST_CASE("semaphore: a runtime shut down with acquires queued and permits held leaks nothing", "[semaphore][sync]") {
  semaphore s(2);  // outlives the runtime, as it must
  {
    channel<int> never(1);  // so does this
    ringflow::runtime rt({.threads = 2});
    // Holders keep their permits in frames that only shutdown destroys;
    // their releases then hand units to acquires queued on either worker.
    for (int i = 0; i < 2; ++i) {
      rt.spawn([](semaphore& sem, channel<int>& ch) -> task<void> {
        permit p = co_await sem.acquire();
        co_await ch.recv();
      }(s, never)).detach();
    }
    for (int i = 0; i < 16; ++i) {
      rt.spawn([](semaphore& sem, channel<int>& ch, std::size_t n) -> task<void> {
        permit p = co_await sem.acquire(n);
        co_await ch.recv();
      }(s, never, static_cast<std::size_t>(i % 2) + 1)).detach();
    }
    rt.block_on([](semaphore& sem) -> task<void> {
      while (sem.waiting() < 16) co_await ringflow::yield();
    }(s));
  }
  REQUIRE(s.waiting() == 0);
  REQUIRE(s.available() == 2);
}
