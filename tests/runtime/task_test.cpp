#include <catch2/catch.hpp>

#include <cstdint>
#include <ringflow/ringflow.hpp>
#include <stdexcept>

#include "../support/counters.hpp"

using ringflow::task;
using test_support::lifetime_probe;

namespace {

task<int> ready_value(int v) { co_return v; }

task<int> level3() {
  throw std::runtime_error("deep");
  co_return 0;
}
task<int> level2() { co_return co_await level3() + 1; }
task<int> level1() { co_return co_await level2() + 1; }

std::uintptr_t stack_here() { return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)); }

task<std::uintptr_t> where_am_i() { co_return stack_here(); }

task<std::uintptr_t> many_ready_awaits(int n) {
  std::uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < n; ++i) {
    std::uintptr_t sp = co_await where_am_i();
    lo = std::min(lo, sp);
    hi = std::max(hi, sp);
  }
  co_return hi - lo;
}

task<void> probe_then_suspend_forever() {
  lifetime_probe p;
  co_await ringflow::sleep_for(std::chrono::hours(1));
}

}  // namespace

TEST_CASE("task: a value travels through co_await", "[runtime]") {
  ringflow::runtime rt;
  REQUIRE(rt.block_on([]() -> task<int> { co_return co_await ready_value(41) + 1; }()) == 42);
}

TEST_CASE("task: an exception propagates through three levels", "[runtime]") {
  ringflow::runtime rt;
  REQUIRE_THROWS_WITH(rt.block_on(level1()), "deep");
}

TEST_CASE("task: 1,000,000 synchronous co_awaits of ready tasks run in constant stack", "[runtime]") {
  ringflow::runtime rt;
  std::uintptr_t spread = rt.block_on(many_ready_awaits(1'000'000));
  // Symmetric transfer: every iteration starts from the same depth.
  REQUIRE(spread < 4096);
}

TEST_CASE("task: destroying an unstarted task frees its frame", "[runtime]") {
  lifetime_probe::reset();
  {
    auto t = []() -> task<void> {
      lifetime_probe p;
      co_return;
    }();
    REQUIRE(t.valid());
  }
  REQUIRE(lifetime_probe::alive == 0);
}

TEST_CASE("task: destroying a suspended task runs the destructors in its frames", "[runtime]") {
  lifetime_probe::reset();
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    auto r = co_await ringflow::timeout(std::chrono::milliseconds(5), probe_then_suspend_forever());
    REQUIRE_FALSE(r);
    REQUIRE(lifetime_probe::alive == 0);
    REQUIRE(lifetime_probe::destroyed == 1);
  }());
}

TEST_CASE("task: move-only handle semantics", "[runtime]") {
  auto a = ready_value(1);
  auto b = std::move(a);
  REQUIRE_FALSE(a.valid());
  REQUIRE(b.valid());
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<task<int>>);
}
