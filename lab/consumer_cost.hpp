// The consumer's simulated per-item work: cost = 1 / rate per item.
//
//   consumer_pacer pace(cost_kind::spin, std::chrono::microseconds(100));
//   auto nap = pace.account(waited);          // after taking an item
//   if (nap.count() > 0) co_await ringflow::sleep_for(nap);
//
// Both modes keep a virtual "busy until" clock that advances by the cost of
// every item, so the consumer's capacity is exactly `rate` items/s however
// long a receive or a timer wake-up took (the overhead is absorbed, not added):
//   spin   busy-waits on steady_clock until "busy until": the core is really
//          occupied, like real work (account() returns 0)
//   timer  returns how long to sleep once the consumer is a quantum (one item,
//          at least 100 us) ahead; the caller sleeps with an io_uring timer,
//          never std::this_thread::sleep_for
// While items keep coming, up to `bank` (2 ms, or one quantum if longer) of
// lost time is made up, so a late timer or a preempted thread does not lower
// the rate; after the consumer waited for an item or paused, nothing is
// banked, so idleness never turns into a burst.
#pragma once

#include <chrono>
#include <cstdint>

#include "options.hpp"

namespace ringflow::lab {

class consumer_pacer {
 public:
  consumer_pacer(cost_kind kind, std::chrono::nanoseconds cost);
  // One item taken; `waited`: the consumer was idle (waiting or paused) just
  // before it. Returns the time to sleep (timer mode), else 0.
  std::chrono::nanoseconds account(bool waited) noexcept;
  std::chrono::nanoseconds quantum() const noexcept { return std::chrono::nanoseconds(quantum_ns_); }

 private:
  cost_kind kind_;
  std::int64_t cost_ns_;
  std::int64_t quantum_ns_;
  std::int64_t bank_ns_;
  std::int64_t busy_until_ = 0;
};

}  // namespace ringflow::lab
