#include "metrics.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace ringflow::lab {

namespace {
constexpr unsigned sub_bits = 11;                  // 2048 exact values
constexpr std::uint64_t half = 1u << (sub_bits - 1);  // 1024 buckets per power of two above
constexpr unsigned max_bits = 41;
constexpr std::uint64_t max_trackable = (std::uint64_t{1} << max_bits) - 1;
constexpr std::size_t bucket_count = histogram::exact_below + (max_bits - sub_bits) * half;
}  // namespace

histogram::histogram() : counts_(bucket_count, 0) {}

std::size_t histogram::index_of(std::uint64_t v) noexcept {
  if (v < exact_below) return static_cast<std::size_t>(v);
  v = std::min(v, max_trackable);
  const unsigned k = static_cast<unsigned>(std::bit_width(v)) - sub_bits;  // >= 1
  return exact_below + (k - 1) * half + static_cast<std::size_t>((v >> k) - half);
}

std::uint64_t histogram::highest_in(std::size_t index) noexcept {
  if (index < exact_below) return index;
  const std::size_t rel = index - exact_below;
  const unsigned k = static_cast<unsigned>(rel / half) + 1;
  const std::uint64_t low = (half + rel % half) << k;
  return low + (std::uint64_t{1} << k) - 1;
}

void histogram::record(std::uint64_t v) noexcept {
  ++counts_[index_of(v)];
  if (count_ == 0 || v < min_) min_ = v;
  if (v > max_) max_ = v;
  ++count_;
  sum_ += v;
}

void histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = min_ = max_ = 0;
  sum_ = 0;
}

std::uint64_t histogram::percentile(double p) const {
  if (!(p >= 0 && p <= 100)) throw std::invalid_argument("histogram::percentile: p must be in [0, 100]");
  if (count_ == 0) return 0;
  // Integer arithmetic in hundredths of a percent: 0.99 * 100 is not 99 in floating point.
  const auto hundredths = static_cast<unsigned __int128>(p * 100 + 0.5);
  auto rank = static_cast<std::uint64_t>((hundredths * count_ + 9999) / 10000);
  if (rank == 0) return min();
  if (rank >= count_) return max_;  // the top rank is the max, exactly
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(highest_in(i), min(), max_);
  }
  return max_;
}

quantiles summarize(const histogram& h, double scale) {
  quantiles q;
  q.p50 = static_cast<double>(h.percentile(50)) * scale;
  q.p99 = static_cast<double>(h.percentile(99)) * scale;
  q.max = static_cast<double>(h.max()) * scale;
  q.mean = h.mean() * scale;
  return q;
}

bool run_result::accounting_ok() const {
  if (!skipped.empty()) return offered == 0 && delivered == 0;
  if (offered != delivered + dropped + left) return false;
  if (strategy == strategy_kind::request) return dropped == 0;
  if (stats_received != delivered || stats_dropped != dropped || on_drop_calls != dropped) return false;
  // Every completed send was either accepted (sent) or rejected (drop_incoming).
  if (stats_sent + rejected != offered) return false;
  return strategy != strategy_kind::block || dropped == 0;
}

}  // namespace ringflow::lab
