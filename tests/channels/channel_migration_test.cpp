// Placement (worker::place_woken): a spawned task that is not pinned moves to
// the worker that wakes it from a channel wait, when that worker has nothing
// else ready; pinned tasks (spawn_on, spawn_local, block_on) and waits that
// may be cancelled (under timeout) never move. A moved task does io on its
// new worker, and shutdown frees it there. An idle worker asks a busy one for
// a task that waits in its queue, so busy tasks spread over the cores.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include <ringflow/ringflow.hpp>

#include <unistd.h>

#include <cstring>
#include <string>

#include "../support/channel_helpers.hpp"
#include "../support/counters.hpp"
#include "../support/tcp_helpers.hpp"

using namespace std::chrono_literals;
using namespace test_support::channel_tests;

namespace {

unsigned here() { return ringflow::detail::tls_worker->index(); }

// idle_spin 0: an idle worker sleeps at once and never watches another's
// queue, so nothing but a channel wake moves a task (no stealing).
constexpr ringflow::runtime_options wake_moves_only{.threads = 2, .idle_spin = std::chrono::nanoseconds(0)};

// Starts t on worker `index` without pinning it there (as spawn() does).
template <class T>
ringflow::join_handle<T> start_unpinned(ringflow::runtime& rt, unsigned index, task<T> t) {
  return ringflow::detail::spawn_on(rt.core().at(index), std::move(t), false);
}

// Records the worker it runs on before each send, and at the end.
task<std::vector<unsigned>> producer(channel<int>* ch, int n) {
  std::vector<unsigned> seen;
  for (int i = 0; i < n; ++i) {
    seen.push_back(here());
    co_await ch->send(i);
  }
  ch->close();
  seen.push_back(here());
  co_return seen;
}

// Records the worker it runs on after each receive; then sleeps (a timer on
// its ring) and records where that resumed.
task<std::vector<unsigned>> consumer(channel<int>* ch, int* received) {
  std::vector<unsigned> seen{here()};
  while (auto v = co_await ch->recv()) {
    if (*v != *received) break;  // out of order: the count the test checks stops short
    ++*received;
    seen.push_back(here());
  }
  co_await ringflow::sleep_for(1ms);
  seen.push_back(here());
  co_return seen;
}

task<std::vector<unsigned>> consumer_under_timeout(channel<int>* ch, int* received) {
  std::vector<unsigned> seen{here()};
  for (;;) {
    std::optional<std::optional<int>> v = co_await ringflow::timeout(1h, recv_one(ch));
    if (!v || !*v) break;
    ++*received;
    seen.push_back(here());
  }
  co_return seen;
}

bool all_equal(const std::vector<unsigned>& v, unsigned w) {
  for (unsigned x : v) {
    if (x != w) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("migration: two spawned tasks on different workers end up on one, and a moved task's io runs there",
          "[channels][migration]") {
  ringflow::runtime rt(wake_moves_only);
  channel<int> ch(1);
  int received = 0;
  auto c = start_unpinned(rt, 0, consumer(&ch, &received));
  auto p = start_unpinned(rt, 1, producer(&ch, 1000));
  std::vector<unsigned> ps = p.wait();
  std::vector<unsigned> cs = c.wait();
  REQUIRE(received == 1000);
  REQUIRE(cs.front() == 0);
  REQUIRE(ps.front() == 1);
  // Whichever moved, the last exchanges ran on one worker.
  REQUIRE(cs[cs.size() - 2] == ps.back());
  // The consumer's sleep was armed on the ring of the worker it had moved to, and resumed there.
  REQUIRE(cs.back() == cs[cs.size() - 2]);
}

namespace {

struct reader_report {
  std::string text;
  unsigned read_on = 0, moved_to = 0;
};

// Reads the first bytes of a connection where it started, is moved by a
// channel wake, then reads the rest (and waits under a timeout) on its new worker.
// Sends until the channel is closed.
task<void> producer_until_closed(channel<int>* ch) {
  for (int i = 0;; ++i) {
    ringflow::send_status st = co_await ch->send(i);
    if (st == ringflow::send_status::closed) break;
  }
}

task<reader_report> reader_that_moves(ringflow::tcp_listener* l, channel<int>* ch) {
  ringflow::tcp_stream s = co_await l->accept();
  reader_report r;
  char buf[64];
  std::size_t n = co_await s.read(std::as_writable_bytes(std::span(buf)));
  r.read_on = here();
  // A move happens when the producer's send wakes this task from a wait; on
  // a loaded machine this task may find a value ready many times in a row,
  // so it receives until it has moved (or a bound no scheduler reaches),
  // then closes the channel to stop the producer.
  for (int i = 0; i < 10'000'000 && here() != 1; ++i) {
    std::optional<int> v = co_await ch->recv();
    if (!v) break;
  }
  ch->close();
  r.moved_to = here();
  while (n < 10) {
    std::optional<std::size_t> m =
        co_await ringflow::timeout(10s, s.read(std::as_writable_bytes(std::span(buf + n, sizeof buf - n))));
    if (!m || *m == 0) break;
    n += *m;
  }
  r.text.assign(buf, n);
  co_return r;
}

}  // namespace

TEST_CASE("migration: a task moved after reading from a socket reads the rest, under timeout, on its new worker",
          "[channels][migration]") {
  ringflow::runtime rt(wake_moves_only);
  auto l = ringflow::tcp_listener::bind("127.0.0.1", 0);
  channel<int> ch(1);
  auto reader = start_unpinned(rt, 0, reader_that_moves(&l, &ch));
  int fd = test_support::tcp_tests::blocking_client(l.local_port());
  REQUIRE(::send(fd, "hello", 5, 0) == 5);
  auto p = rt.spawn_on(1, producer_until_closed(&ch));
  p.wait();
  REQUIRE(::send(fd, "world", 5, 0) == 5);
  reader_report r = reader.wait();
  ::close(fd);
  REQUIRE(r.read_on == 0);
  REQUIRE(r.moved_to == 1);
  REQUIRE(r.text == "helloworld");
}

TEST_CASE("migration: pinned tasks (spawn_on) never move", "[channels][migration]") {
  ringflow::runtime rt({.threads = 2});
  channel<int> ch(1);
  int received = 0;
  auto c = rt.spawn_on(0, consumer(&ch, &received));
  auto p = rt.spawn_on(1, producer(&ch, 1000));
  REQUIRE(all_equal(p.wait(), 1));
  REQUIRE(all_equal(c.wait(), 0));
  REQUIRE(received == 1000);
}

TEST_CASE("migration: spawn_local pins the task to the spawning worker", "[channels][migration]") {
  ringflow::runtime rt({.threads = 2});
  channel<int> ch(1);
  int received = 0;
  auto p = rt.spawn_on(1, producer(&ch, 500));
  std::vector<unsigned> cs = rt.block_on([](channel<int>* ch, int* received) -> task<std::vector<unsigned>> {
    co_return co_await ringflow::spawn_local(consumer(ch, received));
  }(&ch, &received));
  REQUIRE(all_equal(cs, 0));
  REQUIRE(all_equal(p.wait(), 1));
  REQUIRE(received == 500);
}

TEST_CASE("migration: a wait under timeout never moves (its timer stays armed on its worker)",
          "[channels][migration]") {
  ringflow::runtime rt({.threads = 2});
  channel<int> ch(1);
  int received = 0;
  auto c = start_unpinned(rt, 0, consumer_under_timeout(&ch, &received));
  auto p = rt.spawn_on(1, producer(&ch, 500));
  REQUIRE(all_equal(p.wait(), 1));
  REQUIRE(all_equal(c.wait(), 0));
  REQUIRE(received == 500);
}

namespace {

// Exchanges values until both sides have run on one worker, tells the test,
// then waits forever on `never` with a probe in its frame.
task<void> settle_then_park(channel<int>* ch, channel<int>* never, bool sending, std::atomic<int>* settled,
                            channel<int>* report) {
  test_support::lifetime_probe probe;
  for (int i = 0; i < 200; ++i) {
    if (sending) {
      co_await ch->send(i);
    } else {
      co_await ch->recv();
    }
  }
  if (settled->fetch_add(1) == 1) co_await report->send(1);
  co_await never->recv();
}

}  // namespace

TEST_CASE("migration: shutdown frees the frames of moved tasks, each on the worker it moved to",
          "[channels][migration]") {
  test_support::lifetime_probe::reset();
  std::atomic<int> settled{0};
  {
    ringflow::runtime rt({.threads = 2});
    channel<int> ch(1), never(1), report(1);
    auto c = start_unpinned(rt, 0, settle_then_park(&ch, &never, false, &settled, &report));
    auto p = start_unpinned(rt, 1, settle_then_park(&ch, &never, true, &settled, &report));
    rt.block_on([](channel<int>* report) -> task<void> { co_await report->recv(); }(&report));
    REQUIRE(test_support::lifetime_probe::alive == 2);
    // c and p are detached when the handles go; the runtime destroys both parked frames.
  }
  REQUIRE(settled == 2);
  REQUIRE(test_support::lifetime_probe::alive == 0);
  REQUIRE(test_support::lifetime_probe::destroyed == 2);
}

namespace {

// Busy for d of wall time: a stand-in for work that needs a core.
void burn(std::chrono::microseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

// Sends until the consumer says it has seen enough (or n items), each after
// a stretch of work.
task<void> busy_producer(channel<int>* ch, int n, std::atomic<unsigned>* at, const std::atomic<bool>* enough) {
  for (int i = 0; i < n && !enough->load(std::memory_order_relaxed); ++i) {
    at->store(here(), std::memory_order_relaxed);
    burn(20us);
    co_await ch->send(i);
  }
  ch->close();
}

struct spread_report {
  int taken = 0;        // items consumed
  int apart = 0;        // of those, while the producer ran on the other worker
  int longest_run = 0;  // the most consecutive items consumed apart
};

// Consumes (each item after a shorter stretch of work than the producer's,
// so it waits for every item once the two run side by side: every send then
// wakes it) until it has taken `wanted` items in a row while the producer ran
// on the other worker, then tells the producer to stop.
task<spread_report> busy_consumer(channel<int>* ch, const std::atomic<unsigned>* producer_at, int wanted,
                                  std::atomic<bool>* enough) {
  spread_report r;
  int run = 0;
  while (co_await ch->recv()) {
    burn(5us);
    ++r.taken;
    if (producer_at->load(std::memory_order_relaxed) != here()) {
      ++r.apart;
      r.longest_run = std::max(r.longest_run, ++run);
      if (r.longest_run >= wanted) enough->store(true, std::memory_order_relaxed);
    } else {
      run = 0;
    }
  }
  co_return r;
}

task<int> pinger(channel<int>* out, channel<int>* in, int rounds, const std::atomic<unsigned>* ponger_at) {
  int together = 0;
  for (int i = 0; i < rounds; ++i) {
    co_await out->send(i);
    co_await in->recv();
    if (ponger_at->load(std::memory_order_relaxed) == here()) ++together;
  }
  out->close();
  co_return together;
}

task<void> ponger(channel<int>* in, channel<int>* out, std::atomic<unsigned>* at) {
  while (auto v = co_await in->recv()) {
    at->store(here(), std::memory_order_relaxed);
    co_await out->send(*v);
  }
}

}  // namespace

// How quickly the idle worker asks, and how long the two then stay apart,
// depends on the clock and on what else the machine runs (a loaded CI core
// stalls a worker's queue as a busy task would): the share of items run side
// by side is a performance figure, not asserted. What is asserted: the
// pipeline does spread, and once spread it is left apart for a stretch of
// items (the pause on moves after a give-away) instead of being pulled
// together again by the next wake. It runs until that happens, so a slow or
// busy machine only makes it take longer; it fails when no such stretch
// comes in 20000 items (without stealing none is ever apart; without the
// pause the longest stretch is about a buffer's worth).
TEST_CASE("migration: two busy tasks of a pipeline started on one worker spread over both", "[channels][migration]") {
  ringflow::runtime rt({.threads = 2});
  channel<int> ch(4);
  std::atomic<unsigned> producer_at{0};
  std::atomic<bool> enough{false};
  // Without the pause the next send pulls the waiting consumer over to the
  // producer's worker: a give-away then lasts about a buffer's worth of items
  // (6 in a row, measured). The first pause (0.5 ms) lasts ~25 items, later
  // ones (doubled while give-aways keep coming) hundreds.
  constexpr int wanted = 16;
  auto c = start_unpinned(rt, 0, busy_consumer(&ch, &producer_at, wanted, &enough));
  auto p = start_unpinned(rt, 0, busy_producer(&ch, 20000, &producer_at, &enough));
  p.wait();
  const spread_report r = c.wait();
  INFO("items consumed: " << r.taken << ", while the producer ran on the other worker: " << r.apart
                          << ", most in a row: " << r.longest_run);
  REQUIRE(r.longest_run >= wanted);
}

// Wake moves only (no stealing): the first wake across workers moves one of
// the pair to the other, and from then on every wake is local, so every
// round after the first runs with both on one worker. This is the placement
// decision itself, independent of timing.
TEST_CASE("migration: a ping-pong pair started on two workers ends up on one and stays there",
          "[channels][migration]") {
  ringflow::runtime rt(wake_moves_only);
  channel<int> a(1), b(1);
  std::atomic<unsigned> ponger_at{9};
  constexpr int rounds = 20000;
  auto q = start_unpinned(rt, 1, ponger(&a, &b, &ponger_at));
  auto p = start_unpinned(rt, 0, pinger(&a, &b, rounds, &ponger_at));
  const int together = p.wait();
  q.wait();
  INFO("rounds with both on one worker: " << together);
  REQUIRE(together >= rounds - 1);
}

// With stealing on as well, an idle worker may still ask for one of the pair
// when the machine is loaded (a worker descheduled by the OS looks busy), and
// the pair is then apart until moves resume: how many rounds run together is
// a performance figure (bench/channel_bench.cpp, pingpong_spawned against
// pingpong_colocated). Asserted: a give-away does not keep the pair apart
// for good; it comes together again.
TEST_CASE("migration: with stealing on, a ping-pong pair still comes together", "[channels][migration]") {
  ringflow::runtime rt({.threads = 2});
  channel<int> a(1), b(1);
  std::atomic<unsigned> ponger_at{9};
  constexpr int rounds = 100000;
  auto q = start_unpinned(rt, 1, ponger(&a, &b, &ponger_at));
  auto p = start_unpinned(rt, 0, pinger(&a, &b, rounds, &ponger_at));
  const int together = p.wait();
  q.wait();
  INFO("rounds with both on one worker: " << together);
  REQUIRE(together > 0);
}

namespace {

// Passes values on until the runtime goes away, with a probe in its frame.
task<void> relay(channel<int>* in, channel<int>* out, std::atomic<int>* passed) {
  test_support::lifetime_probe probe;
  while (auto v = co_await in->recv()) {
    co_await out->send(*v + 1);
    passed->fetch_add(1, std::memory_order_relaxed);
  }
}

task<void> feed(channel<int>* out, channel<int>* report, std::atomic<int>* passed) {
  test_support::lifetime_probe probe;
  bool reported = false;
  for (int i = 0;; ++i) {
    co_await out->send(i);
    if (!reported && passed->load(std::memory_order_relaxed) >= 20000) {
      reported = true;
      co_await report->send(1);
    }
  }
}

task<void> drain(channel<int>* in) {
  test_support::lifetime_probe probe;
  while (co_await in->recv()) {
  }
}

}  // namespace

TEST_CASE("migration: a runtime destroyed while spawned tasks move between its workers frees every frame",
          "[channels][migration]") {
  test_support::lifetime_probe::reset();
  {
    // A line of stages, each spawned (movable), with capacities that make
    // some hand-offs park and some not: tasks keep moving and being asked for.
    std::vector<std::unique_ptr<channel<int>>> chs;
    for (int i = 0; i < 7; ++i) chs.push_back(std::make_unique<channel<int>>(i % 3 == 0 ? 1 : 16));
    channel<int> report(1);
    std::atomic<int> passed{0};
    ringflow::runtime rt({.threads = 2});
    for (int i = 0; i + 1 < 7; ++i) rt.spawn(relay(chs[i].get(), chs[i + 1].get(), &passed)).detach();
    rt.spawn(drain(chs[6].get())).detach();
    rt.spawn(feed(chs[0].get(), &report, &passed)).detach();
    rt.block_on([](channel<int>* report) -> task<void> { co_await report->recv(); }(&report));
    REQUIRE(test_support::lifetime_probe::alive == 8);
    // The runtime goes first (declared last): every stage is still running or parked.
  }
  REQUIRE(test_support::lifetime_probe::alive == 0);
  REQUIRE(test_support::lifetime_probe::destroyed == 8);
}
