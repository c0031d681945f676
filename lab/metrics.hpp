// What one (scenario, strategy) run measured, and the histogram behind its
// percentiles.
//
//   histogram h;                       // allocates and touches its counters now, not mid-run
//   for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
//   h.percentile(50);  // 50: nearest rank, the smallest value with >= 50% of samples at or below it
//   h.percentile(99);  // 99
//   h.max();           // 100
//
// Percentile convention: nearest rank. For N samples the p-th percentile is
// the sample of rank ceil(p/100 * N) in ascending order (rank 1 for p = 0),
// so it is always a value that was recorded (up to the bucket precision).
// The histogram is log-linear (HdrHistogram's layout): values below 2048 have
// a bucket each (exact); above that each power of two is split into 1024
// buckets, so a reported percentile is at most 1/1024 (0.1%) above the true
// sample. It reports the bucket's highest value, capped by the recorded max.
// max() and min() are exact. Values above 2^41 - 1 (about 36 minutes in ns)
// count in the top bucket.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "options.hpp"

namespace ringflow::lab {

class histogram {
 public:
  histogram();
  void record(std::uint64_t v) noexcept;
  void reset() noexcept;
  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0; }
  // p in [0, 100]; 0 when empty. std::invalid_argument outside [0, 100].
  std::uint64_t percentile(double p) const;

  static constexpr unsigned exact_below = 2048;

 private:
  static std::size_t index_of(std::uint64_t v) noexcept;
  static std::uint64_t highest_in(std::size_t index) noexcept;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0, min_ = 0, max_ = 0;
  unsigned __int128 sum_ = 0;
};

struct quantiles {
  double p50 = 0, p99 = 0, max = 0, mean = 0;
};
// ns -> microseconds, items -> items.
quantiles summarize(const histogram& h, double scale = 1.0);

// One point of the timeline, every options::sample_every.
struct sample_point {
  double t_s = 0;            // since the run's start
  std::size_t depth = 0;     // values buffered (for request(n): emitted, not yet taken by the consumer)
  std::int64_t rss_kib = 0;  // resident set growth since the run's start
};
// The consumer's view of the same windows.
struct latency_window {
  std::uint64_t count = 0;
  std::uint64_t max_ns = 0;
  std::uint64_t sum_ns = 0;
};

struct run_result {
  scenario_kind scenario = scenario_kind::balanced;
  strategy_kind strategy = strategy_kind::block;
  std::size_t buffer_bound = 0;  // channel capacity, or request(n)'s n
  double duration_s = 0;         // the run's length (options::duration)
  double target_rate = 0;        // the scenario's mean offered rate (items/s)

  std::uint64_t scheduled = 0;   // what the producer owed by its deadline
  std::uint64_t offered = 0;     // sends/emits the producer completed (taken or dropped)
  std::uint64_t delivered = 0;   // received by the consumer
  std::uint64_t dropped = 0;     // discarded by the policy (channel stats)
  std::uint64_t left = 0;        // still buffered when the run stopped
  double dropped_pct() const { return offered ? 100.0 * static_cast<double>(dropped) / static_cast<double>(offered) : 0; }
  double producer_rate() const { return duration_s > 0 ? static_cast<double>(offered) / duration_s : 0; }

  // Cross-checks from independent counters: the channel's stats and on_drop
  // callback, the producer's own tallies.
  std::uint64_t stats_sent = 0, stats_received = 0, stats_dropped = 0, on_drop_calls = 0;
  std::uint64_t rejected = 0;    // sends that returned send_status::dropped (drop_incoming)
  std::uint64_t blocked_sends = 0;

  double suspended_s = 0;        // the producer's time inside sends/emits that suspended
  std::uint64_t suspensions = 0;
  quantiles latency_us;          // offer -> receipt
  quantiles behind;              // newer values already offered when one was received
  std::size_t high_water = 0;    // most values buffered at once
  std::int64_t peak_rss_kib = 0; // peak resident-set growth over the run's start

  std::vector<sample_point> timeline;
  std::vector<latency_window> latency_timeline;  // same interval as timeline
  double sample_every_s = 0;

  // Not run, and why (a strategy the broker mode cannot map, see broker.hpp).
  std::string skipped;

  // offered == delivered + dropped + left, and every cross-check agrees
  // (trivially for a skipped run).
  bool accounting_ok() const;
};

struct results {
  options opts;
  double item_cost_s = 0;      // the consumer's cost per item (1 / rate)
  double producer_tick_s = 0;  // how often the producer wakes to offer what it owes
  std::vector<run_result> runs;
  double wall_s = 0;
};

}  // namespace ringflow::lab
