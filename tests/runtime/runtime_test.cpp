#include <catch2/catch.hpp>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <ringflow/ringflow.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../support/counters.hpp"

using namespace std::chrono_literals;
using ringflow::task;
using test_support::lifetime_probe;

namespace {

task<int> add_one(int v) { co_return v + 1; }

task<void> sleep_forever_with_probe() {
  lifetime_probe p;
  co_await ringflow::sleep_for(std::chrono::hours(1));
}

task<void> yield_forever_with_probe() {
  lifetime_probe p;
  for (;;) co_await ringflow::yield();
}

task<int> join_forever_with_probe(ringflow::join_handle<void> h) {
  lifetime_probe p;
  co_await std::move(h);
  co_return 1;
}

double elapsed_ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("runtime: bad options throw invalid_argument", "[runtime]") {
  REQUIRE_THROWS_AS(ringflow::runtime({.threads = 0}), std::invalid_argument);
  REQUIRE_THROWS_AS(ringflow::runtime({.threads = 1, .ring_entries = 0}), std::invalid_argument);
  REQUIRE_THROWS_AS(ringflow::runtime({.threads = 1, .ring_entries = 1u << 20}), std::invalid_argument);
}

TEST_CASE("runtime: io_uring unavailable throws system_error in plain words", "[runtime]") {
  // In a child, a seccomp filter makes io_uring_setup fail as a container would.
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(3);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) _exit(3);
    try {
      ringflow::runtime rt;
      _exit(1);
    } catch (const std::system_error& e) {
      bool plain = std::string(e.what()).find("io_uring is unavailable") != std::string::npos;
      _exit(plain && e.code().value() == ENOSYS ? 0 : 2);
    } catch (...) {
      _exit(4);
    }
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

TEST_CASE("runtime: runtimes are created and destroyed back to back", "[runtime]") {
  // Regression: the start-up gate lived on the constructor's stack while a
  // worker could still be leaving its wait (use-after-free, ASan/TSan).
  for (int i = 0; i < 100; ++i) {
    ringflow::runtime rt({.threads = 2});
    REQUIRE(rt.block_on(add_one(i)) == i + 1);
  }
}

TEST_CASE("runtime: 10,000 spawned tasks are all joined", "[runtime]") {
  ringflow::runtime rt({.threads = 2});
  long total = rt.block_on([]() -> task<long> {
    std::vector<ringflow::join_handle<int>> hs;
    hs.reserve(10'000);
    for (int i = 0; i < 10'000; ++i) hs.push_back(ringflow::spawn(add_one(i)));
    long sum = 0;
    for (auto& h : hs) sum += co_await std::move(h);
    co_return sum;
  }());
  REQUIRE(total == 10'000L * 9'999 / 2 + 10'000);
}

TEST_CASE("runtime: an exception crosses spawn and join", "[runtime]") {
  ringflow::runtime rt({.threads = 2});
  auto boom = []() -> task<int> {
    throw std::out_of_range("from a spawned task");
    co_return 0;
  };
  REQUIRE_THROWS_AS(rt.block_on([&]() -> task<int> { co_return co_await ringflow::spawn(boom()); }()),
                    std::out_of_range);
}

namespace {
struct sleep_span {
  std::chrono::steady_clock::time_point began, ended;
};

task<void> timed_sleep(std::chrono::milliseconds d, sleep_span* out) {
  out->began = std::chrono::steady_clock::now();
  co_await ringflow::sleep_for(d);
  out->ended = std::chrono::steady_clock::now();
}
}  // namespace

// Asserted on the order of events, not on a total: each sleep lasts at least
// its 100 ms, and the second began before the first ended (a sleep that held
// the worker would run them one after the other). On one worker both start
// in the same turn of its loop, before it reaps any completion, so no delay
// of a loaded machine can separate them.
TEST_CASE("runtime: two concurrent 100 ms sleeps overlap instead of running one after the other",
          "[runtime][sleep]") {
  ringflow::runtime rt;
  sleep_span a_span, b_span;
  auto t0 = std::chrono::steady_clock::now();
  rt.block_on([](sleep_span* a_span, sleep_span* b_span) -> task<void> {
    auto a = ringflow::spawn(timed_sleep(100ms, a_span));
    auto b = ringflow::spawn(timed_sleep(100ms, b_span));
    co_await std::move(a);
    co_await std::move(b);
  }(&a_span, &b_span));
  const double ms = elapsed_ms(t0);
  INFO("both took " << ms << " ms");
  REQUIRE(a_span.ended - a_span.began >= 100ms);
  REQUIRE(b_span.ended - b_span.began >= 100ms);
  REQUIRE(b_span.began < a_span.ended);
  REQUIRE(a_span.began < b_span.ended);
}

TEST_CASE("runtime: timeout returns nullopt and destroys the loser", "[runtime]") {
  lifetime_probe::reset();
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    auto slow = [](lifetime_probe) -> task<int> {
      co_await ringflow::sleep_for(10s);
      co_return 1;
    };
    std::optional<int> r = co_await ringflow::timeout(10ms, slow(lifetime_probe{}));
    REQUIRE_FALSE(r.has_value());
    REQUIRE(lifetime_probe::alive == 0);

    std::optional<int> fast = co_await ringflow::timeout(1s, add_one(1));
    REQUIRE(fast == 2);

    bool done = co_await ringflow::timeout(1s, ringflow::sleep_for(1ms));
    REQUIRE(done);
    bool late = co_await ringflow::timeout(1ms, ringflow::sleep_for(1s));
    REQUIRE_FALSE(late);
  }());
}

TEST_CASE("runtime: timeout rethrows the task's exception when it finishes first", "[runtime]") {
  ringflow::runtime rt;
  REQUIRE_THROWS_AS(rt.block_on([]() -> task<std::optional<int>> {
    co_return co_await ringflow::timeout(1s, []() -> task<int> {
      throw std::length_error("x");
      co_return 0;
    }());
  }()),
                    std::length_error);
}

TEST_CASE("runtime: nested timeouts cancel from the outside in", "[runtime]") {
  lifetime_probe::reset();
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    auto inner = []() -> task<bool> { co_return co_await ringflow::timeout(10s, sleep_forever_with_probe()); };
    std::optional<bool> r = co_await ringflow::timeout(5ms, inner());
    REQUIRE_FALSE(r);
    REQUIRE(lifetime_probe::alive == 0);
  }());
}

TEST_CASE("runtime: a task cancelled while queued in yield is withdrawn", "[runtime]") {
  lifetime_probe::reset();
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    bool finished = co_await ringflow::timeout(5ms, yield_forever_with_probe());
    REQUIRE_FALSE(finished);
    REQUIRE(lifetime_probe::alive == 0);
    co_await ringflow::yield();  // the withdrawn entry must not be resumed
  }());
}

TEST_CASE("runtime: destroying a runtime destroys 50 suspended tasks", "[runtime][shutdown]") {
  lifetime_probe::reset();
  {
    ringflow::runtime rt({.threads = 2});
    rt.block_on([]() -> task<void> {
      std::vector<ringflow::join_handle<void>> forever;
      for (int i = 0; i < 20; ++i) ringflow::spawn(sleep_forever_with_probe()).detach();
      for (int i = 0; i < 20; ++i) ringflow::spawn(yield_forever_with_probe()).detach();
      for (int i = 0; i < 10; ++i) {
        ringflow::spawn(join_forever_with_probe(ringflow::spawn(ringflow::sleep_for(std::chrono::hours(1))))).detach();
      }
      // Until every task has started (its probe is alive), however long the
      // other worker takes to get to them: a fixed pause would race it.
      while (lifetime_probe::alive.load() < 50) co_await ringflow::yield();
    }());
    REQUIRE(lifetime_probe::alive == 50);
  }
  REQUIRE(lifetime_probe::alive == 0);
  REQUIRE(lifetime_probe::destroyed == 50);
}

TEST_CASE("runtime: a two-thread runtime runs tasks on both threads", "[runtime]") {
  // Spawned in a task, all eight wait on the spawning worker; each then
  // holds its thread until tasks have run on two threads. The first one
  // started holds that worker, so only the idle worker taking the others
  // (work stealing) lets them finish.
  ringflow::runtime rt({.threads = 2});
  std::mutex m;
  std::set<std::thread::id> seen;
  std::atomic<bool> gave_up{false};
  rt.block_on([&]() -> task<void> {
    std::vector<ringflow::join_handle<void>> hs;
    for (int i = 0; i < 8; ++i) {
      // Arguments, not captures: the closure dies before the spawned task runs.
      hs.push_back(ringflow::spawn([](std::mutex* m, std::set<std::thread::id>* seen,
                                      std::atomic<bool>* gave_up) -> task<void> {
        {
          std::lock_guard g(*m);
          seen->insert(std::this_thread::get_id());
        }
        const auto give_up_at = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        for (;;) {
          {
            std::lock_guard g(*m);
            if (seen->size() == 2) break;
          }
          if (std::chrono::steady_clock::now() > give_up_at) {
            gave_up->store(true);
            break;
          }
          std::this_thread::yield();
        }
        co_return;
      }(&m, &seen, &gave_up)));
    }
    for (auto& h : hs) co_await std::move(h);
  }());
  REQUIRE_FALSE(gave_up.load());
  REQUIRE(seen.size() == 2);
}

// Placement tests: tasks that record the thread they ran on, and a task that
// keeps its worker busy (setting *holding once it runs) until *release, or a
// ceiling only a hang reaches.
task<void> record_thread(std::mutex* m, std::set<std::thread::id>* seen) {
  std::lock_guard g(*m);
  seen->insert(std::this_thread::get_id());
  co_return;
}

struct placement_log {
  std::mutex m;
  std::set<std::thread::id> seen;
  std::thread::id spawner;

  // Called in a task: n tasks spawned from it, each recording its thread.
  std::vector<ringflow::join_handle<void>> spawn_recorders(int n) {
    spawner = std::this_thread::get_id();
    std::vector<ringflow::join_handle<void>> hs;
    for (int i = 0; i < n; ++i) hs.push_back(ringflow::spawn(record_thread(&m, &seen)));
    return hs;
  }
  bool any_ran() {
    std::lock_guard g(m);
    return !seen.empty();
  }
  bool all_on_spawner() {
    std::lock_guard g(m);
    return seen.size() == 1 && *seen.begin() == spawner;
  }
};

task<void> hold_worker(std::atomic<bool>* holding, const std::atomic<bool>* release) {
  holding->store(true);
  const auto give_up_at = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!release->load() && std::chrono::steady_clock::now() < give_up_at) std::this_thread::yield();
  co_return;
}

TEST_CASE("runtime: tasks spawned in a task start on its worker while no other is idle", "[runtime]") {
  // Worker 1 is held busy; tasks spawned on worker 0 must not queue behind
  // it (round-robin placement would put half there, to wait until the
  // holder lets go at its deadline).
  ringflow::runtime rt({.threads = 2});
  std::atomic<bool> holding{false}, release{false};
  auto holder = rt.spawn_on(1, hold_worker(&holding, &release));
  while (!holding.load()) std::this_thread::yield();
  placement_log log;
  rt.block_on([&]() -> task<void> {
    auto hs = log.spawn_recorders(64);
    for (auto& h : hs) co_await std::move(h);
  }());
  const bool all_here = log.all_on_spawner();
  release.store(true);
  holder.wait();
  REQUIRE(all_here);
}

TEST_CASE("runtime: a task woken from another thread resumes without any timer", "[runtime]") {
  ringflow::runtime rt({.threads = 2});
  // The waiter's worker has no timer armed: only the cross-ring wake can
  // resume it. A lost wake would hang here (and the test runner times out).
  auto t0 = std::chrono::steady_clock::now();
  for (int round = 0; round < 200; ++round) {
    rt.block_on([]() -> task<void> {
      auto h = ringflow::spawn([]() -> task<int> { co_return 7; }());
      int v = co_await std::move(h);
      REQUIRE(v == 7);
    }());
  }
  // Wide for a loaded machine; a wake that waited for a 100 ms timer
  // instead would take 20 s.
  REQUIRE(elapsed_ms(t0) < 15000);
}

TEST_CASE("runtime: the eventfd fallback wakes workers when MSG_RING is not used", "[runtime]") {
  // RINGFLOW_NO_MSG_RING makes the probe report no IORING_OP_MSG_RING, as on
  // an older kernel; idle_spin 0 makes every hand-off need a real wake-up.
  ::setenv("RINGFLOW_NO_MSG_RING", "1", 1);
  ringflow::runtime rt({.threads = 2, .idle_spin = std::chrono::nanoseconds(0)});
  ::unsetenv("RINGFLOW_NO_MSG_RING");
  for (int round = 0; round < 200; ++round) {
    int v = rt.block_on([]() -> task<int> {
      auto h = ringflow::spawn([]() -> task<int> { co_return 7; }());
      co_return co_await std::move(h);
    }());
    REQUIRE(v == 7);
  }
}

TEST_CASE("runtime: a negative idle_spin is refused", "[runtime]") {
  REQUIRE_THROWS_AS(ringflow::runtime({.threads = 2, .idle_spin = std::chrono::nanoseconds(-1)}), std::invalid_argument);
}

TEST_CASE("runtime: block_on from inside the same runtime is refused", "[runtime]") {
  ringflow::runtime rt;
  REQUIRE_THROWS_AS(rt.block_on([&]() -> task<void> {
    rt.block_on([]() -> task<void> { co_return; }());
    co_return;
  }()),
                    std::logic_error);
}

TEST_CASE("runtime: yield lets the other ready tasks run in turn", "[runtime]") {
  ringflow::runtime rt;
  std::vector<int> order;
  rt.block_on([&]() -> task<void> {
    auto worker = [&](int id) -> task<void> {
      for (int i = 0; i < 3; ++i) {
        order.push_back(id);
        co_await ringflow::yield();
      }
    };
    auto a = ringflow::spawn(worker(1));
    auto b = ringflow::spawn(worker(2));
    co_await std::move(a);
    co_await std::move(b);
  }());
  REQUIRE(order == std::vector<int>{1, 2, 1, 2, 1, 2});
}

TEST_CASE("runtime: spawn from a foreign thread and detached tasks finish", "[runtime]") {
  ringflow::runtime rt({.threads = 2});
  std::atomic<int> done{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&] {
      for (int j = 0; j < 100; ++j) {
        rt.spawn([](std::atomic<int>* d) -> task<void> {
            d->fetch_add(1);
            co_return;
          }(&done)).detach();
      }
    });
  }
  for (auto& t : ts) t.join();
  auto h = rt.spawn([&]() -> task<void> {
    while (done.load() < 400) co_await ringflow::sleep_for(1ms);
  }());
  h.wait();
  REQUIRE(done.load() == 400);
}

namespace {

ringflow::task<void> sleep_1ms() { co_await ringflow::sleep_for(std::chrono::milliseconds(1)); }
ringflow::task<int> immediate_one() { co_return 1; }

// Runs from the ready queue (not from the completion loop) while another
// task's timer CQE sits in the CQ, then cancels a timer of its own: the
// cancel_and_wait collects that CQE into the worker's backlog.
ringflow::task<void> cancel_while_a_cqe_waits() {
  co_await ringflow::sleep_for(std::chrono::microseconds(100));  // the other timer is submitted
  co_await ringflow::yield();
  // Busy on purpose (not a sleep to synchronise): it lets the 1 ms timer
  // expire while this task holds the worker.
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3);
  while (std::chrono::steady_clock::now() < until) {
  }
  auto v = co_await ringflow::timeout(std::chrono::seconds(1), immediate_one());
  REQUIRE(v == 1);
}

}  // namespace

// Bug: the worker went to sleep with completions still in its backlog, so
// the task owning one of them never woke (this test hung before the fix).
TEST_CASE("runtime: completions collected by a task's cancel are dispatched before the worker sleeps", "[runtime]") {
  ringflow::runtime rt({.threads = 1});
  rt.block_on([]() -> task<void> {
    auto a = ringflow::spawn_local(sleep_1ms());
    auto b = ringflow::spawn_local(cancel_while_a_cqe_waits());
    co_await std::move(b);
    co_await std::move(a);
  }());
}

namespace {

// Parks on its own channel (so every wake is a plain cross-worker hand-off,
// no spawn), then records the order in which it was resumed.
ringflow::task<void> record_wake(ringflow::channel<int>* ch, std::vector<int>* order, std::atomic<int>* parked, int id) {
  parked->fetch_add(1);
  auto v = co_await ch->recv();
  order->push_back(v ? *v : -1);
  (void)id;
}

// Holds worker 1 until released, so that every hand-off to it queues in its
// inbox. Busy on purpose: it waits on the flag itself, never on time.
ringflow::task<void> hold_worker(std::atomic<bool>* holding, std::atomic<bool>* release) {
  holding->store(true);
  while (!release->load()) {
  }
  co_return;
}

ringflow::task<void> wake_in_order(ringflow::runtime* rt, int n) {
  std::vector<std::unique_ptr<ringflow::channel<int>>> chs;
  for (int i = 0; i < n; ++i) {
    chs.push_back(std::make_unique<ringflow::channel<int>>(1));
    (void)chs.back()->try_recv();  // worker 0 owns it first: worker 1's recv asks for it, never the reverse
  }
  std::vector<int> order;
  std::atomic<int> parked{0};
  std::atomic<bool> holding{false}, release{false};
  std::vector<ringflow::join_handle<void>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(rt->spawn_on(1, record_wake(chs[i].get(), &order, &parked, i)));
  auto holder = rt->spawn_on(1, hold_worker(&holding, &release));
  while (!holding.load()) co_await ringflow::yield();  // the waiters ran first (FIFO) and are parked
  REQUIRE(parked.load() == n);
  // More wakes than the inbox's inline line holds: the rest spill over.
  for (int i = 0; i < n; ++i) {
    auto st = co_await chs[i]->send(i);
    REQUIRE(st == ringflow::send_status::sent);
  }
  release.store(true);
  co_await std::move(holder);
  for (auto& h : hs) co_await std::move(h);
  std::vector<int> expected(n);
  for (int i = 0; i < n; ++i) expected[i] = i;
  REQUIRE(order == expected);
}

}  // namespace

// The inbox keeps the first few cross-worker resumptions in one cache line
// and spills the rest to a vector: together they must still run first-in,
// first-out, and none may be lost.
TEST_CASE("runtime: hand-offs queued for a busy worker run in the order they were queued, past the inline inbox", "[runtime]") {
  ringflow::runtime rt({.threads = 2});
  for (int n : {1, 7, 8, 40}) {
    DYNAMIC_SECTION("wakes: " << n) { rt.block_on(wake_in_order(&rt, n)); }
  }
}

TEST_CASE("runtime: with idle_spin 0 no worker takes tasks spawned on another", "[runtime]") {
  // Worker 1 goes idle right after the spawns, while worker 0 still holds
  // them unstarted: a worker that stole would run some of them there.
  ringflow::runtime rt({.threads = 2, .idle_spin = std::chrono::nanoseconds(0)});
  std::atomic<bool> running{false}, spawned{false};
  auto other = rt.spawn_on(1, hold_worker(&running, &spawned));
  placement_log log;
  rt.block_on([&]() -> task<void> {
    auto hs = log.spawn_recorders(16);
    spawned.store(true);
    // Hold this worker until a task ran elsewhere, or long enough for an
    // idle worker to have taken some.
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (!log.any_ran() && std::chrono::steady_clock::now() <= until) std::this_thread::yield();
    for (auto& h : hs) co_await std::move(h);
  }());
  other.wait();
  REQUIRE(log.all_on_spawner());
}
