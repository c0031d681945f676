// Time that moves only when a test says so: the clock the rate limiter and
// the circuit breaker take, driven by the test.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

namespace test_support {

struct manual_clock {
  std::atomic<std::int64_t> ns{0};
  std::chrono::steady_clock::time_point now() const {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns.load()));
  }
  void advance(std::chrono::nanoseconds d) { ns += d.count(); }
  std::function<std::chrono::steady_clock::time_point()> fn() {
    return [this] { return now(); };
  }
};

}  // namespace test_support
