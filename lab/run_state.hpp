// The state one (scenario, strategy) run shares between its tasks, and the
// pieces every strategy uses: the consumer's per-item bookkeeping, the
// sampling task, and turning the tallies into a run_result.
//
// Ownership: the producer (and the sampler) run on worker 0, the consumer on
// worker 1. Each writes only its own fields; the few values the other side
// reads live in atomics. The orchestrator reads everything after joining.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include <ringflow/runtime.hpp>
#include <ringflow/task.hpp>

#include "consumer_cost.hpp"
#include "item.hpp"
#include "metrics.hpp"
#include "options.hpp"
#include "rss.hpp"
#include "scenario.hpp"

namespace ringflow::lab {

// What the lab lends every run; built once per lab::run.
struct run_env {
  const options* opts = nullptr;
  ringflow::runtime* rt = nullptr;
  rss_reader* rss = nullptr;
  histogram* latency = nullptr;  // reused: allocated (and resident) before any run
  histogram* behind = nullptr;
  unsigned consumer_worker = 1;
  std::size_t run_index = 0, run_count = 1;
};

struct run_state {
  run_state(const run_env& e, scenario_kind k, strategy_kind st);
  run_state(const run_state&) = delete;
  run_state& operator=(const run_state&) = delete;

  run_env env;
  scenario sc;
  strategy_kind strategy;
  std::int64_t start_ns = 0, deadline_ns = 0;

  // producer (worker 0)
  std::uint64_t next_seq = 0, offered = 0, rejected = 0, on_drop = 0, suspensions = 0;
  std::int64_t suspended_ns = 0;
  std::size_t observed_high_water = 0;  // request(n): emitted, not yet taken
  std::atomic<std::uint64_t> latest_seq{0};
  std::atomic<std::uint64_t> offered_pub{0};

  // consumer (worker env.consumer_worker)
  std::uint64_t delivered = 0, left_local = 0;
  std::atomic<std::uint64_t> delivered_pub{0};
  std::vector<latency_window> windows;
  // The worst latency since the sampler last took it (0: none), for options::on_sample.
  std::atomic<std::uint64_t> live_latency_max_ns{0};

  // sampler (worker 0) and the orchestrator (worker 0)
  std::vector<sample_point> samples;
  std::int64_t rss_start_kib = 0, rss_peak_kib = 0;
  bool stop_sampler = false;

  // Sets the clock: the run starts now and ends after options::duration.
  void begin();
  std::chrono::nanoseconds elapsed(std::int64_t at_ns) const { return std::chrono::nanoseconds(at_ns - start_ns); }

  // Consumer side: if the scenario pauses the consumer at `now`, until when
  // (capped at the deadline).
  std::optional<std::int64_t> pause_until(std::int64_t now) const;
  // Consumer side: one value received (latency, freshness, timeline).
  void record_receipt(const item& v);
  // Producer side: a send/emit that suspended, from t0 until now.
  void record_suspension(std::int64_t t0_ns);
  // The result, from the tallies; the caller fills in the channel's counters.
  run_result finish(std::size_t buffer_bound) const;
};


// Every options::sample_every until s->stop_sampler: buffer depth and RSS,
// and the progress callback about every 100 ms. Runs on worker 0.
task<void> sample_loop(run_state* s, std::function<std::size_t()> depth);

}  // namespace ringflow::lab
