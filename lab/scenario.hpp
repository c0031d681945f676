// A scenario: the producer's offered-rate schedule and the consumer's pauses.
//
//   scenario s(scenario_kind::bursts, 10000, shape);
//   std::uint64_t owed = s.offered_by(elapsed);     // items the producer should have offered by now
//   if (auto end = s.stall_end(elapsed)) ...         // the consumer pauses until *end
//
// The producer offers the *integral* of its rate: after a late wake-up (timer
// slop, or a send that suspended) it offers everything it owes at once, so
// the offered rate does not depend on how punctual the timer was, and a
// producer held back by backpressure shows up as offered < scheduled.
//
//   balanced  producer at balanced_factor x the consumer's rate (0.8: headroom)
//   overload  producer at overload_factor x (2x)
//   bursts    burst_high x (10x) for burst_length (20 ms) of every burst_period
//             (250 ms), burst_low x (0.1x) for the rest: about 0.9x on average,
//             so the consumer keeps up between bursts and only the buffer decides
//   stall     producer at stall_factor x (0.8x); the consumer pauses
//             stall_length (100 ms) every stall_period (1 s), from stall_offset (300 ms)
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "options.hpp"

namespace ringflow::lab {

class scenario {
 public:
  scenario(scenario_kind kind, double consumer_rate, const scenario_shape& shape);

  scenario_kind kind() const noexcept { return kind_; }
  // Items the producer owes from the start up to `elapsed` (floor of the integral).
  std::uint64_t offered_by(std::chrono::nanoseconds elapsed) const;
  // Inside a consumer pause: when it ends (elapsed time since the start).
  std::optional<std::chrono::nanoseconds> stall_end(std::chrono::nanoseconds elapsed) const;
  // The producer's mean rate over a run of length d (items/s).
  double mean_rate(std::chrono::nanoseconds d) const;
  // One line for the table's group header, e.g.
  // "steady overload, producer 2x the consumer (20000/s vs 10000/s)".
  std::string describe() const;

 private:
  double integral(double seconds) const;  // items owed, before the floor
  scenario_kind kind_;
  double rate_;
  scenario_shape shape_;
};

}  // namespace ringflow::lab
