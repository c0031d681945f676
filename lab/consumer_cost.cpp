#include "consumer_cost.hpp"

#include <algorithm>

#include <ringflow/detail/spinlock.hpp>

#include "item.hpp"

namespace ringflow::lab {

consumer_pacer::consumer_pacer(cost_kind kind, std::chrono::nanoseconds cost)
    : kind_(kind),
      cost_ns_(cost.count()),
      quantum_ns_(kind == cost_kind::timer ? std::max<std::int64_t>(cost.count(), 100'000) : cost.count()),
      bank_ns_(std::max<std::int64_t>(quantum_ns_, 2'000'000)) {}

std::chrono::nanoseconds consumer_pacer::account(bool waited) noexcept {
  std::int64_t now = now_ns();
  busy_until_ = std::max(busy_until_, now - (waited ? 0 : bank_ns_)) + cost_ns_;
  if (kind_ == cost_kind::timer) {
    const std::int64_t ahead = busy_until_ - now;
    return std::chrono::nanoseconds(ahead >= quantum_ns_ ? ahead : 0);
  }
  while (now < busy_until_) {
    for (int i = 0; i < 16; ++i) detail::cpu_relax();  // eases the sibling hyperthread
    now = now_ns();
  }
  return std::chrono::nanoseconds(0);
}

}  // namespace ringflow::lab
