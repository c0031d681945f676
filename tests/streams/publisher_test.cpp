#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <ringflow/ringflow.hpp>
#include <stdexcept>
#include <vector>

#include "../support/counters.hpp"
#include "../support/run.hpp"
#include "../support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringflow::emitter;
using ringflow::publisher;
using ringflow::task;
using test_support::lifetime_probe;
using test_support::run;

namespace {

// Emits 0..n-1 and counts how far it got (to prove it never runs ahead).
publisher<int> counting(int n, int* emitted) {
  return publisher<int>::create([n, emitted](emitter<int>& out) -> task<void> {
    for (int i = 0; i < n; ++i) {
      bool ok = co_await out.emit(i);
      if (!ok) co_return;
      ++*emitted;
    }
  });
}

publisher<int> endless_with_probe() {
  return publisher<int>::create([](emitter<int>& out) -> task<void> {
    lifetime_probe p;
    for (int i = 0;; ++i) {
      bool ok = co_await out.emit(i);
      if (!ok) co_return;
    }
  });
}

}  // namespace

TEST_CASE("streams: request(n) delivers 1..n values and never more than demanded", "[streams]") {
  run([]() -> task<void> {
    int emitted = 0;
    auto sub = counting(100, &emitted).subscribe();
    auto first = co_await sub.request(3);
    REQUIRE(first == std::vector<int>{0, 1, 2});
    co_await ringflow::yield();
    co_await ringflow::yield();
    REQUIRE(emitted == 3);  // suspended, not run ahead, once the demand was used
    std::vector<int> all = first;
    for (;;) {
      auto batch = co_await sub.request(10);
      if (batch.empty()) break;
      REQUIRE(batch.size() <= 10);
      all.insert(all.end(), batch.begin(), batch.end());
    }
    REQUIRE(all.size() == 100);
    for (int i = 0; i < 100; ++i) REQUIRE(all[i] == i);
  });
}

TEST_CASE("streams: a cold publisher runs its producer anew for every subscription", "[streams]") {
  run([]() -> task<void> {
    int emitted = 0;
    auto pub = counting(3, &emitted);
    auto a = pub.subscribe();
    auto b = pub.subscribe();
    auto va = co_await a.request(10);
    auto vb = co_await b.request(10);
    REQUIRE(va == std::vector<int>{0, 1, 2});
    REQUIRE(vb == std::vector<int>{0, 1, 2});
  });
}

TEST_CASE("streams: spec 3.9: request(0) signals invalid_argument and cancels", "[streams]") {
  run([]() -> task<void> {
    int emitted = 0;
    auto sub = counting(10, &emitted).subscribe();
    REQUIRE_THROWS_AS(sub.request(0), std::invalid_argument);
    auto after = co_await sub.request(5);
    REQUIRE(after.empty());  // cancelled: nothing more is delivered
  });
}

TEST_CASE("streams: spec 3.17: demand saturates at 2^63-1, request(MAX) twice neither hangs nor wraps", "[streams]") {
  run([]() -> task<void> {
    int emitted = 0;
    auto sub = counting(5, &emitted).subscribe();
    constexpr auto max = std::numeric_limits<std::uint64_t>::max();
    auto a = co_await sub.request(max);
    auto b = co_await sub.request(max);
    std::size_t total = a.size() + b.size();
    while (true) {
      auto more = co_await sub.request(max);
      if (more.empty()) break;
      total += more.size();
    }
    REQUIRE(total == 5);
  });
}

TEST_CASE("streams: cancel is idempotent, ends the producer and frees its frame", "[streams]") {
  lifetime_probe::reset();
  run([]() -> task<void> {
    auto sub = endless_with_probe().subscribe();
    auto v = co_await sub.request(2);
    REQUIRE(v.size() >= 1);
    REQUIRE(lifetime_probe::alive == 1);
    sub.cancel();
    sub.cancel();
    REQUIRE(lifetime_probe::alive == 0);
    auto after = co_await sub.request(1);
    REQUIRE(after.empty());
  });
}

TEST_CASE("streams: destroying the subscription frees the producer; the publisher may die first", "[streams]") {
  lifetime_probe::reset();
  run([]() -> task<void> {
    {
      auto sub = endless_with_probe().subscribe();  // the publisher is a temporary
      auto v = co_await sub.request(1);
      REQUIRE(v == std::vector<int>{0});
      REQUIRE(lifetime_probe::alive == 1);
    }
    REQUIRE(lifetime_probe::alive == 0);
  });
}

TEST_CASE("streams: an error is rethrown after the values before it", "[streams]") {
  run([]() -> task<void> {
    auto pub = publisher<int>::create([](emitter<int>& out) -> task<void> {
      co_await out.emit(1);
      co_await out.emit(2);
      throw std::runtime_error("boom");
    });
    auto sub = pub.subscribe();
    std::vector<int> got;
    bool threw = false;
    try {
      for (;;) {
        auto batch = co_await sub.request(1);
        if (batch.empty()) break;
        got.insert(got.end(), batch.begin(), batch.end());
      }
    } catch (const std::runtime_error&) {
      threw = true;
    }
    REQUIRE(threw);
    REQUIRE(got == std::vector<int>{1, 2});
  });
}

#if RINGFLOW_TEST_SANITIZED
constexpr long rule_3_3_values = 1'000'000;  // the sanitizers make each step ~10x slower
#else
constexpr long rule_3_3_values = 10'000'000;
#endif

TEST_CASE("streams: spec 3.3: requesting 1 at a time for 10 million values uses constant stack", "[streams]") {
  std::uintptr_t lo = UINTPTR_MAX, hi = 0;
  run([&]() -> task<void> {
    auto pub = publisher<long>::create([lo = &lo, hi = &hi](emitter<long>& out) -> task<void> {
      for (long i = 0; i < rule_3_3_values; ++i) {
        auto sp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
        *lo = std::min(*lo, sp);
        *hi = std::max(*hi, sp);
        bool ok = co_await out.emit(i);
        if (!ok) co_return;
      }
    });
    auto sub = pub.subscribe();
    long expected = 0;
    for (;;) {
      auto v = co_await sub.request(1);
      if (v.empty()) break;
      if (v.size() != 1 || v[0] != expected) FAIL("more than demanded, or out of order");
      ++expected;
    }
    REQUIRE(expected == rule_3_3_values);
  });
  REQUIRE(hi - lo < 4096);  // the producer is always resumed from the same depth
}

TEST_CASE("streams: a request cancelled by timeout loses nothing", "[streams]") {
  run([]() -> task<void> {
    auto pub = publisher<int>::create([](emitter<int>& out) -> task<void> {
      co_await ringflow::sleep_for(20ms);
      co_await out.emit(1);
      co_await out.emit(2);
    });
    auto sub = pub.subscribe();
    auto r = co_await ringflow::timeout(1ms, [](ringflow::subscription<int>* s) -> task<std::vector<int>> {
      co_return co_await s->request(1);
    }(&sub));
    REQUIRE_FALSE(r.has_value());
    std::vector<int> got;
    for (;;) {
      auto batch = co_await sub.request(1);
      if (batch.empty()) break;
      got.insert(got.end(), batch.begin(), batch.end());
    }
    REQUIRE(got == std::vector<int>{1, 2});
  });
}

TEST_CASE("streams: cancellation from another worker ends a producer", "[streams]") {
  lifetime_probe::reset();
  ringflow::runtime rt({.threads = 2});
  rt.block_on([](ringflow::runtime* rt) -> task<void> {
    auto sub = endless_with_probe().subscribe();
    auto v = co_await sub.request(4);
    REQUIRE_FALSE(v.empty());
    // Cancel from the other worker: the producer's frame is destroyed on its own.
    auto h = rt->spawn_on(1, [](ringflow::subscription<int>* s) -> task<void> {
      s->cancel();
      co_return;
    }(&sub));
    co_await std::move(h);
    while (lifetime_probe::alive != 0) co_await ringflow::yield();
    auto after = co_await sub.request(1);
    REQUIRE(after.empty());
  }(&rt));
  REQUIRE(lifetime_probe::alive == 0);
}

TEST_CASE("streams: publisher::from drains a channel by demand, and pump feeds one", "[streams]") {
  run([]() -> task<void> {
    ringflow::channel<int> source(16);
    for (int i = 0; i < 10; ++i) source.try_send(i);
    source.close();
    auto sub = publisher<int>::from(source).subscribe();
    auto first = co_await sub.request(3);
    REQUIRE(first == std::vector<int>{0, 1, 2});
    co_await ringflow::yield();
    REQUIRE(source.size() == 7);  // nothing taken beyond the demand

    ringflow::channel<int> sink(2);
    auto p = ringflow::spawn(ringflow::pump(sub, sink, 4));
    std::vector<int> got;
    for (;;) {
      auto v = co_await sink.recv();
      if (!v) break;
      got.push_back(*v);
    }
    co_await std::move(p);
    REQUIRE(got == std::vector<int>{3, 4, 5, 6, 7, 8, 9});
  });
}
