// circuit_breaker: the state machine against a manual clock, ratio mode, the
// failure predicate, the callback sequence, cancellation, stale outcomes, and
// many calls on two workers (counters stay consistent; TSan clean).
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <ringflow/ringflow.hpp>
#include <ringflow/circuit_breaker.hpp>
#include <stdexcept>
#include <utility>
#include <vector>

#include "../support/counters.hpp"

#include "../support/manual_clock.hpp"
#include "../support/run.hpp"

using namespace std::chrono_literals;
using ringflow::breaker_options;
using ringflow::breaker_state;
using ringflow::breaker_trip;
using ringflow::channel;
using ringflow::circuit_breaker;
using ringflow::circuit_open;
using test_support::run;
using ringflow::task;

namespace {

using test_support::manual_clock;

struct downstream_error : std::runtime_error {
  int code;
  explicit downstream_error(int c) : std::runtime_error("downstream failed"), code(c) {}
};
struct not_found : std::runtime_error {
  not_found() : std::runtime_error("not found") {}
};

// The downstream: sets *ran when it starts, so a rejected call can be told apart.
task<int> succeed(bool* ran, int v) {
  *ran = true;
  co_return v;
}
task<int> fail(bool* ran, int code) {
  *ran = true;
  throw downstream_error(code);
  co_return 0;
}
// Runs until the gate lets it through (one value per call).
task<int> gated(channel<int>* gate, int* started) {
  ++*started;
  auto v = co_await gate->recv();
  if (!v || *v < 0) throw downstream_error(-1);
  co_return *v;
}

enum class outcome { ok, failed, rejected };

struct result {
  outcome what = outcome::ok;
  bool ran = false;
  int value = 0;
  std::chrono::nanoseconds remaining{-1};
};

task<result> attempt(circuit_breaker* b, bool should_fail) {
  result r;
  try {
    if (should_fail) {
      int v = co_await b->call(fail(&r.ran, 7));
      r.value = v;
    } else {
      int v = co_await b->call(succeed(&r.ran, 42));
      r.value = v;
    }
  } catch (const circuit_open& e) {
    r.what = outcome::rejected;
    r.remaining = e.remaining_cool_down();
  } catch (const downstream_error& e) {
    r.what = outcome::failed;
    r.value = e.code;
  }
  co_return r;
}

// A gated call; records what happened.
task<void> gated_attempt(circuit_breaker* b, channel<int>* gate, int* started, result* r) {
  try {
    int v = co_await b->call(gated(gate, started));
    r->value = v;
    r->ran = true;
    r->what = outcome::ok;
  } catch (const circuit_open& e) {
    r->what = outcome::rejected;
    r->remaining = e.remaining_cool_down();
  } catch (const downstream_error&) {
    r->ran = true;
    r->what = outcome::failed;
  }
}

task<void> settle() {
  for (int i = 0; i < 4; ++i) co_await ringflow::yield();
}

}  // namespace

TEST_CASE("circuit_breaker: bad options", "[flow][circuit_breaker]") {
  REQUIRE_THROWS_AS(circuit_breaker({.failure_threshold = 0}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.window = 0}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.minimum_calls = 0}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.trip = breaker_trip::failure_ratio, .failure_ratio = 0.0}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.trip = breaker_trip::failure_ratio, .failure_ratio = 1.5}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.failure_ratio = -0.1}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.failure_ratio = std::numeric_limits<double>::quiet_NaN()}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.cool_down = -1ms}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.half_open_max_calls = 0}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.success_threshold = 0}), std::invalid_argument);
  circuit_breaker ok({.trip = breaker_trip::failure_ratio, .failure_ratio = 1.0, .window = 4, .minimum_calls = 10,
                      .cool_down = 0ms});
  REQUIRE(ok.options().minimum_calls == 4);  // more than the window: the window
  REQUIRE(ok.state() == breaker_state::closed);
}

TEST_CASE("circuit_breaker: the full state machine with a manual clock", "[flow][circuit_breaker]") {
  static manual_clock clock;
  clock.ns = 0;
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 3, .cool_down = 10s, .half_open_max_calls = 1, .success_threshold = 2,
                       .clock = clock.fn()});
    // Closed: failures below the threshold, a success resets the run.
    auto r1 = co_await attempt(&b, true);
    REQUIRE((r1.what == outcome::failed && r1.ran && r1.value == 7));  // the error is rethrown unchanged
    auto r2 = co_await attempt(&b, true);
    auto r3 = co_await attempt(&b, false);
    REQUIRE((r3.what == outcome::ok && r3.value == 42));
    auto r4 = co_await attempt(&b, true);
    auto r5 = co_await attempt(&b, true);
    REQUIRE((r2.what == outcome::failed && r4.what == outcome::failed && r5.what == outcome::failed));
    REQUIRE(b.state() == breaker_state::closed);
    auto r6 = co_await attempt(&b, true);  // third in a row
    REQUIRE(r6.what == outcome::failed);
    REQUIRE(b.state() == breaker_state::open);

    // Open: rejected without running, carrying the remaining cool-down.
    auto r7 = co_await attempt(&b, false);
    REQUIRE(r7.what == outcome::rejected);
    REQUIRE_FALSE(r7.ran);
    REQUIRE(r7.remaining == 10s);
    clock.advance(4s);
    auto r8 = co_await attempt(&b, false);
    REQUIRE(r8.what == outcome::rejected);
    REQUIRE(r8.remaining == 6s);
    clock.advance(6s - 1ns);
    auto r9 = co_await attempt(&b, false);
    REQUIRE(r9.what == outcome::rejected);
    REQUIRE(r9.remaining == 1ns);
    clock.advance(1ns);
    REQUIRE(b.state() == breaker_state::open);  // lazily: nothing happens until a call comes

    // Half-open: a trial success, but two are needed.
    auto r10 = co_await attempt(&b, false);
    REQUIRE((r10.what == outcome::ok && r10.ran));
    REQUIRE(b.state() == breaker_state::half_open);
    auto r11 = co_await attempt(&b, false);
    REQUIRE(r11.what == outcome::ok);
    REQUIRE(b.state() == breaker_state::closed);

    // Closed again with a fresh count; then a failed trial re-opens at once.
    for (int i = 0; i < 3; ++i) {
      auto r = co_await attempt(&b, true);
      REQUIRE(r.what == outcome::failed);
    }
    REQUIRE(b.state() == breaker_state::open);
    clock.advance(10s);
    auto r12 = co_await attempt(&b, true);
    REQUIRE((r12.what == outcome::failed && r12.ran));
    REQUIRE(b.state() == breaker_state::open);
    auto r13 = co_await attempt(&b, false);
    REQUIRE(r13.what == outcome::rejected);
    REQUIRE(r13.remaining == 10s);  // a new cool-down from the failed trial

    auto s = b.stats();
    REQUIRE(s.calls == 12);
    REQUIRE(s.successes == 3);
    REQUIRE(s.failures == 9);
    REQUIRE(s.rejected == 4);
    REQUIRE(s.cancelled == 0);
    REQUIRE(s.opened == 3);
    REQUIRE(s.half_opened == 2);
    REQUIRE(s.closed == 1);
  });
}

TEST_CASE("circuit_breaker: a rejected call never starts its task and frees its frame at once", "[flow][circuit_breaker]") {
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 1, .cool_down = 1h});
    auto opener = co_await attempt(&b, true);
    REQUIRE(opener.what == outcome::failed);
    REQUIRE(b.state() == breaker_state::open);
    test_support::lifetime_probe::reset();
    bool ran = false;
    auto probed = [](test_support::lifetime_probe, bool* flag) -> task<int> {
      *flag = true;
      co_return 1;
    };
    task<int> guarded = b.call(probed(test_support::lifetime_probe{}, &ran));
    REQUIRE(test_support::lifetime_probe::alive == 1);  // the task's frame holds it, unstarted
    bool rejected = false;
    try {
      int v = co_await std::move(guarded);
      (void)v;
    } catch (const circuit_open& e) {
      rejected = true;
      REQUIRE(e.remaining_cool_down() > 59min);
      REQUIRE(std::string(e.what()).find("circuit open") != std::string::npos);
    }
    REQUIRE(rejected);
    REQUIRE_FALSE(ran);
    REQUIRE(test_support::lifetime_probe::alive == 0);
    REQUIRE(b.stats().rejected == 1);
    REQUIRE(b.stats().calls == 1);
  });
}

TEST_CASE("circuit_breaker: half-open admits exactly half_open_max_calls at a time", "[flow][circuit_breaker]") {
  static manual_clock clock;
  clock.ns = 0;
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 1, .cool_down = 5s, .half_open_max_calls = 2, .success_threshold = 3,
                       .clock = clock.fn()});
    auto opener = co_await attempt(&b, true);
    REQUIRE(opener.what == outcome::failed);
    clock.advance(5s);
    channel<int> gate(16);
    int started = 0;
    std::vector<result> rs(4);
    auto t0 = ringflow::spawn_local(gated_attempt(&b, &gate, &started, &rs[0]));
    auto t1 = ringflow::spawn_local(gated_attempt(&b, &gate, &started, &rs[1]));
    auto t2 = ringflow::spawn_local(gated_attempt(&b, &gate, &started, &rs[2]));
    co_await settle();
    REQUIRE(b.state() == breaker_state::half_open);
    REQUIRE(started == 2);  // two trials run
    REQUIRE(rs[2].what == outcome::rejected);
    REQUIRE(rs[2].remaining == 0ns);  // half-open: no cool-down left, only no slot
    co_await std::move(t2);

    // One trial succeeds: its slot frees; a third trial may start, a fourth not.
    REQUIRE(gate.try_send(1) == ringflow::send_status::sent);
    co_await std::move(t0);
    REQUIRE(rs[0].what == outcome::ok);
    REQUIRE(b.state() == breaker_state::half_open);  // 1 of 3 successes
    auto t3 = ringflow::spawn_local(gated_attempt(&b, &gate, &started, &rs[3]));
    co_await settle();
    REQUIRE(started == 3);
    auto extra = co_await attempt(&b, false);
    REQUIRE(extra.what == outcome::rejected);
    REQUIRE_FALSE(extra.ran);

    REQUIRE(gate.try_send(2) == ringflow::send_status::sent);
    REQUIRE(gate.try_send(3) == ringflow::send_status::sent);
    co_await std::move(t1);
    co_await std::move(t3);
    REQUIRE(b.state() == breaker_state::closed);
    auto s = b.stats();
    REQUIRE(s.successes == 3);
    REQUIRE(s.failures == 1);
    REQUIRE(s.rejected == 2);
    REQUIRE(s.closed == 1);
  });
}

TEST_CASE("circuit_breaker: failure-ratio mode over a sliding window", "[flow][circuit_breaker]") {
  run([]() -> task<void> {
    // 4 calls, a verdict from 4 on, open at >= 75% failures.
    circuit_breaker b({.trip = breaker_trip::failure_ratio, .failure_ratio = 0.75, .window = 4, .minimum_calls = 4,
                       .cool_down = 1h});
    // F F F: 100% but below minimum_calls.
    for (int i = 0; i < 3; ++i) co_await attempt(&b, true);
    REQUIRE(b.state() == breaker_state::closed);
    // The 4th call, a success, completes the window: [F F F S] = 75%: open.
    co_await attempt(&b, false);
    REQUIRE(b.state() == breaker_state::open);

    circuit_breaker c({.trip = breaker_trip::failure_ratio, .failure_ratio = 0.75, .window = 4, .minimum_calls = 2,
                       .cool_down = 1h});
    // S S S F F: windows [S S S F] 25%, [S S F F] 50%; then F: [S F F F] 75% -> open.
    bool pattern[] = {false, false, false, true, true};
    for (bool f : pattern) co_await attempt(&c, f);
    REQUIRE(c.state() == breaker_state::closed);
    co_await attempt(&c, true);
    REQUIRE(c.state() == breaker_state::open);
    REQUIRE(c.stats().opened == 1);

    // Minimum calls: 2 calls, both failures -> 100% >= 50%: open.
    circuit_breaker d({.trip = breaker_trip::failure_ratio, .failure_ratio = 0.5, .window = 10, .minimum_calls = 2,
                       .cool_down = 1h});
    co_await attempt(&d, true);
    REQUIRE(d.state() == breaker_state::closed);
    co_await attempt(&d, true);
    REQUIRE(d.state() == breaker_state::open);
  });
}

TEST_CASE("circuit_breaker: the predicate decides which errors count", "[flow][circuit_breaker]") {
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 2, .cool_down = 1h, .is_failure = [](const std::exception_ptr& e) {
                         try {
                           std::rethrow_exception(e);
                         } catch (const not_found&) {
                           return false;  // an answer, not an outage
                         } catch (...) {
                           return true;
                         }
                       }});
    auto nf = []() -> task<int> {
      throw not_found();
      co_return 0;
    };
    for (int i = 0; i < 5; ++i) {
      bool caught = false;
      try {
        co_await b.call(nf());
      } catch (const not_found&) {
        caught = true;  // still rethrown
      }
      REQUIRE(caught);
    }
    REQUIRE(b.state() == breaker_state::closed);
    auto s = b.stats();
    REQUIRE(s.successes == 5);
    REQUIRE(s.ignored_errors == 5);
    REQUIRE(s.failures == 0);
    co_await attempt(&b, true);
    co_await attempt(&b, true);
    REQUIRE(b.state() == breaker_state::open);
  });
}

TEST_CASE("circuit_breaker: on_state_change sees every transition in order", "[flow][circuit_breaker]") {
  static manual_clock clock;
  static std::vector<std::pair<breaker_state, breaker_state>> seen;
  clock.ns = 0;
  seen.clear();
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 2, .cool_down = 1s, .success_threshold = 1,
                       .on_state_change = [](breaker_state from, breaker_state to) { seen.emplace_back(from, to); },
                       .clock = clock.fn()});
    co_await attempt(&b, true);
    co_await attempt(&b, true);  // closed -> open
    clock.advance(1s);
    co_await attempt(&b, true);  // open -> half_open -> open
    clock.advance(1s);
    co_await attempt(&b, false);  // open -> half_open -> closed
    co_await attempt(&b, true);
    constexpr auto closed = breaker_state::closed, open = breaker_state::open, half_open = breaker_state::half_open;
    std::vector<std::pair<breaker_state, breaker_state>> want{
        {closed, open}, {open, half_open}, {half_open, open}, {open, half_open}, {half_open, closed}};
    REQUIRE(seen == want);
    auto s = b.stats();
    REQUIRE(s.opened == 2);
    REQUIRE(s.half_opened == 2);
    REQUIRE(s.closed == 1);
  });
}

TEST_CASE("circuit_breaker: a cancelled call releases its trial slot and counts as neither", "[flow][circuit_breaker]") {
  static manual_clock clock;
  clock.ns = 0;
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 3, .cool_down = 1s, .half_open_max_calls = 1, .clock = clock.fn()});
    channel<int> gate(4);
    int started = 0;
    // Closed: two failures, a cancelled call, one failure -> still three in a row.
    co_await attempt(&b, true);
    co_await attempt(&b, true);
    auto v = co_await ringflow::timeout(5ms, b.call(gated(&gate, &started)));
    REQUIRE_FALSE(v.has_value());
    REQUIRE(b.state() == breaker_state::closed);
    co_await attempt(&b, true);
    REQUIRE(b.state() == breaker_state::open);

    // Half-open, one slot: the trial is cancelled mid-call; the slot comes back.
    clock.advance(1s);
    auto v2 = co_await ringflow::timeout(5ms, b.call(gated(&gate, &started)));
    REQUIRE_FALSE(v2.has_value());
    REQUIRE(started == 2);
    REQUIRE(b.state() == breaker_state::half_open);
    auto s = b.stats();
    REQUIRE(s.cancelled == 2);
    REQUIRE(s.failures == 3);
    REQUIRE(s.successes == 0);
    auto after = co_await attempt(&b, false);  // not rejected: the slot is free again
    REQUIRE((after.what == outcome::ok && after.ran));
    REQUIRE(b.state() == breaker_state::closed);
    REQUIRE(b.stats().calls == b.stats().successes + b.stats().failures + b.stats().cancelled);
  });
}

TEST_CASE("circuit_breaker: outcomes of calls admitted before a state change do not steer the new state", "[flow][circuit_breaker]") {
  static manual_clock clock;
  clock.ns = 0;
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 1, .cool_down = 1s, .half_open_max_calls = 1, .clock = clock.fn()});
    channel<int> gate(4);
    int started = 0;
    result slow, trial;
    auto h_slow = ringflow::spawn_local(gated_attempt(&b, &gate, &started, &slow));  // admitted while closed
    co_await settle();
    co_await attempt(&b, true);  // opens
    clock.advance(1s);
    auto h_trial = ringflow::spawn_local(gated_attempt(&b, &gate, &started, &trial));
    co_await settle();
    REQUIRE(b.state() == breaker_state::half_open);
    REQUIRE(started == 2);
    // The slow call from the closed era fails now: the half-open state ignores it.
    REQUIRE(gate.try_send(-1) == ringflow::send_status::sent);
    co_await std::move(h_slow);
    REQUIRE(slow.what == outcome::failed);
    REQUIRE(b.state() == breaker_state::half_open);
    auto extra = co_await attempt(&b, false);  // the trial slot is still taken
    REQUIRE(extra.what == outcome::rejected);
    REQUIRE(gate.try_send(5) == ringflow::send_status::sent);
    co_await std::move(h_trial);
    REQUIRE((trial.what == outcome::ok && trial.value == 5));
    REQUIRE(b.state() == breaker_state::closed);
    REQUIRE(b.stats().failures == 2);  // still counted
  });
}

TEST_CASE("circuit_breaker: void tasks and an empty task", "[flow][circuit_breaker]") {
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 1, .cool_down = 1h});
    int runs = 0;
    auto ok = [](int* n) -> task<void> {
      ++*n;
      co_return;
    };
    co_await b.call(ok(&runs));
    REQUIRE(runs == 1);
    bool invalid = false;
    try {
      co_await b.call(task<void>{});
    } catch (const std::invalid_argument&) {
      invalid = true;
    }
    REQUIRE(invalid);
    REQUIRE(b.stats().calls == 1);
    // Move-only values pass through unchanged.
    auto boxed = [](int v) -> task<std::unique_ptr<int>> { co_return std::make_unique<int>(v); };
    std::unique_ptr<int> p = co_await b.call(boxed(9));
    REQUIRE((p && *p == 9));
    REQUIRE(b.stats().successes == 2);
  });
}

TEST_CASE("circuit_breaker: a throwing callback leaves the call that delivered it; the transition stands", "[flow][circuit_breaker]") {
  static manual_clock clock;
  static int delivered = 0;
  clock.ns = 0;
  delivered = 0;
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 1, .cool_down = 1s,
                       .on_state_change =
                           [](breaker_state, breaker_state to) {
                             ++delivered;
                             if (to == breaker_state::open) throw std::logic_error("callback failed");
                           },
                       .clock = clock.fn()});
    bool ran = false;
    bool callback_error = false;
    try {
      int v = co_await b.call(fail(&ran, 1));
      (void)v;
    } catch (const std::logic_error&) {
      callback_error = true;
    }
    REQUIRE(ran);
    REQUIRE(callback_error);  // not the downstream_error: the callback's exception replaced it
    REQUIRE(b.state() == breaker_state::open);
    REQUIRE(b.stats().failures == 1);
    clock.advance(1s);
    auto r = co_await attempt(&b, false);  // open -> half_open -> closed, both delivered
    REQUIRE(r.what == outcome::ok);
    REQUIRE(b.state() == breaker_state::closed);
    REQUIRE(delivered == 3);
  });
}

namespace {

struct hammer_result {
  std::uint64_t ok = 0, failed = 0, rejected = 0, other = 0;
};

task<int> flaky(std::uint32_t x) {
  if (x % 3 == 0) co_await ringflow::yield();
  if ((x >> 8) % 4 == 0) throw downstream_error(1);
  co_return 1;
}

task<int> hanging() {
  co_await ringflow::sleep_for(5ms);
  co_return 1;
}

task<void> hammer(circuit_breaker* b, unsigned seed, int calls, hammer_result* r) {
  std::uint32_t x = seed * 2654435761u + 7;
  for (int i = 0; i < calls; ++i) {
    x = x * 1664525u + 1013904223u;
    try {
      if ((x >> 16) % 8 == 0) {
        // Cancelled mid-call (the downstream outlasts the deadline), or rejected.
        auto v = co_await ringflow::timeout(100us, b->call(hanging()));
        if (v) ++r->ok;
        continue;
      }
      int got = co_await b->call(flaky(x));
      r->ok += static_cast<std::uint64_t>(got);
    } catch (const circuit_open&) {
      ++r->rejected;
    } catch (const downstream_error&) {
      ++r->failed;
    } catch (...) {
      ++r->other;
    }
    if (i % 16 == 0) co_await ringflow::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace

TEST_CASE("circuit_breaker: many calls from two workers keep the counters and callbacks consistent", "[flow][circuit_breaker]") {
  std::mutex m;
  std::vector<std::pair<breaker_state, breaker_state>> seen;
  std::atomic<int> in_callback{0};
  std::atomic<bool> overlapped{false};
  ringflow::runtime rt({.threads = 2});
  circuit_breaker b({.failure_threshold = 3, .cool_down = 200us, .half_open_max_calls = 2, .success_threshold = 2,
                     .on_state_change = [&](breaker_state from, breaker_state to) {
                       if (in_callback.fetch_add(1) != 0) overlapped = true;
                       {
                         std::lock_guard<std::mutex> l(m);
                         seen.emplace_back(from, to);
                       }
                       in_callback.fetch_sub(1);
                     }});
  constexpr int tasks = 6, calls = 1500;
  std::vector<hammer_result> rs(tasks);
  std::vector<ringflow::join_handle<void>> hs;
  for (int i = 0; i < tasks; ++i) {
    hs.push_back(rt.spawn_on(static_cast<unsigned>(i % 2), hammer(&b, static_cast<unsigned>(i + 1), calls, &rs[i])));
  }
  for (auto& h : hs) h.wait();
  hammer_result sum;
  for (auto& r : rs) {
    sum.ok += r.ok;
    sum.failed += r.failed;
    sum.rejected += r.rejected;
    sum.other += r.other;
  }
  auto s = b.stats();
  INFO("ok " << sum.ok << " failed " << sum.failed << " rejected " << sum.rejected << " transitions " << seen.size());
  REQUIRE(sum.other == 0);
  REQUIRE(s.calls == s.successes + s.failures + s.cancelled);  // nothing in flight any more
  REQUIRE(s.calls + s.rejected == std::uint64_t(tasks) * calls);
  REQUIRE(s.rejected == sum.rejected);
  REQUIRE(s.failures == sum.failed);
  REQUIRE(s.successes == sum.ok);
  REQUIRE(s.opened > 0);
  REQUIRE(s.cancelled > 0);
  REQUIRE_FALSE(overlapped.load());
  // The callback saw every transition, one at a time, as a chain.
  REQUIRE(seen.size() == s.opened + s.half_opened + s.closed);
  breaker_state at = breaker_state::closed;
  bool chained = true;
  for (auto& [from, to] : seen) {
    chained = chained && from == at;
    at = to;
  }
  REQUIRE(chained);
  REQUIRE(at == b.state());
}

// Durations at the edges of their range: the cool-down is compared with the
// time elapsed since opening (never added to a time point), so no value of it
// or of the clock overflows, and nanoseconds::max() means "open for good".
TEST_CASE("circuit_breaker: cool_down = nanoseconds::max() keeps it open whatever the clock says",
          "[flow][circuit_breaker]") {
  static manual_clock clock;
  clock.ns = std::chrono::nanoseconds(1h).count();  // opened_at + max would overflow
  run([]() -> task<void> {
    constexpr auto forever = std::chrono::nanoseconds::max();
    circuit_breaker b({.failure_threshold = 1, .cool_down = forever, .clock = clock.fn()});
    auto opener = co_await attempt(&b, true);
    REQUIRE(opener.what == outcome::failed);
    REQUIRE(b.state() == breaker_state::open);

    auto r1 = co_await attempt(&b, false);
    REQUIRE(r1.what == outcome::rejected);
    REQUIRE_FALSE(r1.ran);
    REQUIRE(r1.remaining == forever);

    clock.advance(std::chrono::hours(24 * 365 * 100));  // a century later
    auto r2 = co_await attempt(&b, false);
    REQUIRE(r2.what == outcome::rejected);
    REQUIRE(r2.remaining == forever - std::chrono::hours(24 * 365 * 100));

    clock.ns = std::numeric_limits<std::int64_t>::max();  // the clock's last tick: max - 1h elapsed
    auto r3 = co_await attempt(&b, false);
    REQUIRE(r3.what == outcome::rejected);
    REQUIRE(r3.remaining == 1h);

    // Clocks stepping back before opened_at count as no time elapsed, even
    // to the bottom of their range (now - opened_at does not fit there).
    clock.ns = 0;
    auto r4 = co_await attempt(&b, false);
    REQUIRE(r4.what == outcome::rejected);
    REQUIRE(r4.remaining == forever);
    clock.ns = std::numeric_limits<std::int64_t>::min();
    auto r5 = co_await attempt(&b, false);
    REQUIRE(r5.what == outcome::rejected);
    REQUIRE(r5.remaining == forever);

    REQUIRE(b.state() == breaker_state::open);
    auto s = b.stats();
    REQUIRE(s.calls == 1);
    REQUIRE(s.rejected == 5);
    REQUIRE(s.half_opened == 0);
  });
}

TEST_CASE("circuit_breaker: cool_down = nanoseconds::max() with the default steady clock stays open",
          "[flow][circuit_breaker]") {
  run([]() -> task<void> {
    circuit_breaker b({.failure_threshold = 1, .cool_down = std::chrono::nanoseconds::max()});
    co_await attempt(&b, true);
    for (int i = 0; i < 3; ++i) {
      auto r = co_await attempt(&b, false);
      REQUIRE(r.what == outcome::rejected);
      REQUIRE_FALSE(r.ran);
      REQUIRE(r.remaining > std::chrono::hours(24 * 365 * 200));
    }
    REQUIRE(b.state() == breaker_state::open);
    REQUIRE(b.stats().half_opened == 0);
  });
}

TEST_CASE("circuit_breaker: cool_down of zero, one tick and min; clocks jumping across their range",
          "[flow][circuit_breaker]") {
  REQUIRE_THROWS_AS(circuit_breaker({.cool_down = std::chrono::nanoseconds::min()}), std::invalid_argument);
  REQUIRE_THROWS_AS(circuit_breaker({.cool_down = -1ns}), std::invalid_argument);
  static manual_clock clock;
  clock.ns = 0;
  run([]() -> task<void> {
    // Zero: the very next call is a trial.
    circuit_breaker zero({.failure_threshold = 1, .cool_down = 0ns, .clock = clock.fn()});
    co_await attempt(&zero, true);
    REQUIRE(zero.state() == breaker_state::open);
    auto t = co_await attempt(&zero, false);
    REQUIRE((t.what == outcome::ok && t.ran));
    REQUIRE(zero.state() == breaker_state::closed);

    // One tick, opened at the top of the clock's range: the next tick cannot
    // come, so it stays open; one tick back counts as none.
    clock.ns = std::numeric_limits<std::int64_t>::max();
    circuit_breaker tick({.failure_threshold = 1, .cool_down = 1ns, .clock = clock.fn()});
    co_await attempt(&tick, true);
    auto r = co_await attempt(&tick, false);
    REQUIRE(r.what == outcome::rejected);
    REQUIRE(r.remaining == 1ns);

    // Opened near the bottom of the range; the clock jumps to the top: more
    // than nanoseconds::max() elapsed, which is past any cool-down.
    clock.ns = std::numeric_limits<std::int64_t>::min() + 1;
    circuit_breaker jump({.failure_threshold = 1, .cool_down = 1h, .clock = clock.fn()});
    co_await attempt(&jump, true);
    auto before = co_await attempt(&jump, false);
    REQUIRE(before.what == outcome::rejected);
    REQUIRE(before.remaining == 1h);
    clock.ns = std::numeric_limits<std::int64_t>::max();
    auto after = co_await attempt(&jump, false);
    REQUIRE((after.what == outcome::ok && after.ran));
    REQUIRE(jump.state() == breaker_state::closed);

    circuit_breaker forever({.failure_threshold = 1, .cool_down = std::chrono::nanoseconds::max(),
                             .clock = clock.fn()});
    clock.ns = std::numeric_limits<std::int64_t>::min() + 1;
    co_await attempt(&forever, true);
    clock.ns = std::numeric_limits<std::int64_t>::max();  // 2^64 - 2 ns elapsed: past max
    auto late = co_await attempt(&forever, false);
    REQUIRE((late.what == outcome::ok && late.ran));
  });
}
