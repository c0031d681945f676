// One short run of every scenario x strategy, shared by the tests that only
// read results (the accounting, JSON, SVG and table tests), so the suite runs
// the lab once. The scenario periods are scaled down so that a 100 ms run
// still contains bursts and a consumer stall.
#pragma once

#include <chrono>

#include "lab.hpp"

namespace lab_test {

inline ringflow::lab::options smoke_options() {
  using namespace std::chrono_literals;
  ringflow::lab::options o;
  o.duration = 100ms;
  o.rate = 5000;
  o.capacity = 32;
  o.batch = 8;
  o.payload = 256;
  o.shape.burst_period = 50ms;
  o.shape.burst_length = 5ms;
  o.shape.stall_period = 100ms;
  o.shape.stall_offset = 30ms;
  o.shape.stall_length = 30ms;
  return o;
}

inline const ringflow::lab::results& smoke_results() {
  static const ringflow::lab::results r = ringflow::lab::run(smoke_options());
  return r;
}

}  // namespace lab_test
