// The lab's knobs: which scenarios and strategies to run, and the workload.
//
//   ringflow::lab::options o;                       // the defaults of `ringflow-lab`
//   o.scenarios = {scenario_kind::overload};
//   o.strategies = {strategy_kind::block, strategy_kind::request};
//   o.duration = std::chrono::milliseconds(200);
//   o.validate();                                   // std::invalid_argument on a bad value
//
// Rates are per second of steady_clock time. The consumer's rate is the
// reference: every scenario states the producer's rate as a multiple of it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace ringflow::lab {

enum class scenario_kind { balanced, overload, bursts, stall };
enum class strategy_kind { block, drop_incoming, drop_oldest, sample, request };
// How the consumer's per-item cost is simulated: an io_uring timer (timer,
// the default: exact rates even on a busy machine), or a busy wait on
// steady_clock that really occupies its core (spin).
enum class cost_kind { timer, spin };

inline constexpr scenario_kind all_scenarios[] = {scenario_kind::balanced, scenario_kind::overload,
                                                  scenario_kind::bursts, scenario_kind::stall};
inline constexpr strategy_kind all_strategies[] = {strategy_kind::block, strategy_kind::drop_incoming,
                                                   strategy_kind::drop_oldest, strategy_kind::sample,
                                                   strategy_kind::request};

std::string_view to_string(scenario_kind k) noexcept;
std::string_view to_string(strategy_kind k) noexcept;
std::string_view to_string(cost_kind k) noexcept;
std::optional<scenario_kind> parse_scenario(std::string_view name) noexcept;
std::optional<strategy_kind> parse_strategy(std::string_view name) noexcept;
std::optional<cost_kind> parse_cost(std::string_view name) noexcept;

// "all", or a comma list of names; duplicates are dropped, the canonical
// order is kept. std::invalid_argument names the first unknown entry.
std::vector<scenario_kind> parse_scenario_list(std::string_view list);
std::vector<strategy_kind> parse_strategy_list(std::string_view list);

// The shapes of the scenarios, as multiples of the consumer's rate. The
// defaults are the lab's standard scenarios; tests shrink the periods so that
// short runs still see a burst or a stall.
struct scenario_shape {
  double balanced_factor = 0.8;  // control: the consumer has 20% headroom
  double overload_factor = 2.0;
  double burst_high = 10.0;      // bursts: high for burst_length of every burst_period,
  double burst_low = 0.1;        //   low for the rest
  std::chrono::nanoseconds burst_period = std::chrono::milliseconds(250);
  std::chrono::nanoseconds burst_length = std::chrono::milliseconds(20);
  double stall_factor = 0.8;     // stall: producer rate; the consumer pauses
  std::chrono::nanoseconds stall_period = std::chrono::seconds(1);   // for stall_length
  std::chrono::nanoseconds stall_length = std::chrono::milliseconds(100);
  std::chrono::nanoseconds stall_offset = std::chrono::milliseconds(300);  // of every period
};

// A snapshot for the live progress line (called about every 100 ms from the
// sampling task, on a worker thread).
struct progress {
  std::size_t run_index = 0;  // 0-based
  std::size_t run_count = 0;
  scenario_kind scenario = scenario_kind::balanced;
  strategy_kind strategy = strategy_kind::block;
  double elapsed_s = 0, duration_s = 0;
  std::uint64_t offered = 0, delivered = 0;
  std::size_t depth = 0;
};

// One point of a run's live series, every options::sample_every (called
// from the sampling task, on worker 0): the same depth as the run's timeline,
// the worst latency received since the previous point, and the producer's
// running totals.
struct live_sample {
  std::size_t run_index = 0;      // 0-based, in the order of results::runs
  double t_s = 0;                 // since the run's start
  std::size_t depth = 0;
  std::int64_t rss_kib = 0;
  double latency_max_us = -1;     // -1: nothing received since the previous point
  std::uint64_t offered = 0, delivered = 0;
  std::uint64_t dropped = 0;      // discarded by the policy so far
  double suspended_s = 0;         // the producer's time in sends/emits that waited, so far
};

struct run_result;

struct options {
  std::vector<scenario_kind> scenarios{std::begin(all_scenarios), std::end(all_scenarios)};
  std::vector<strategy_kind> strategies{std::begin(all_strategies), std::end(all_strategies)};
  std::chrono::nanoseconds duration = std::chrono::seconds(1);  // per (scenario, strategy) run
  double rate = 10000;               // consumer: items per second
  std::size_t capacity = 256;        // block, drop_incoming, drop_oldest
  std::size_t sample_capacity = 1;   // sample: 1 is a conflated channel
  std::size_t batch = 16;            // request(n)'s n: the most values requested, not yet processed
  cost_kind cost = cost_kind::timer;
  std::size_t payload = 4096;        // heap bytes each item owns, so buffering shows in RSS
  unsigned threads = 2;              // producer on worker 0, consumer on worker 1 (0 if threads == 1)
  std::chrono::nanoseconds sample_every = std::chrono::milliseconds(10);  // timeline resolution
  scenario_shape shape;
  std::function<void(const progress&)> on_progress;  // optional
  std::function<void(const live_sample&)> on_sample;  // optional
  // Optional: after each run, with its result (on a worker of the lab's runtime).
  std::function<void(const run_result&)> on_run_finished;
  // Checked between runs: once stop is requested, run() returns the runs done so far.
  std::stop_token stop;
  // Broker mode: HOST:PORT of a Redis server; the buffer is then a Redis
  // stream (broker.hpp). Empty: an in-memory channel or publisher.
  std::string redis;

  // Ranges (std::invalid_argument with the offending field otherwise):
  // duration 1 ms..1 h, rate 1..1e6, capacities and batch 1..1e6, payload
  // 0..1 MiB, threads 1..64, sample_every 1 ms..1 s, non-empty lists,
  // positive shape factors and periods, burst_length < burst_period,
  // stall_offset + stall_length <= stall_period, redis empty or HOST:PORT.
  void validate() const;

  // The consumer's cost per item (1 / rate).
  std::chrono::nanoseconds item_cost() const;
  // How often the producer wakes to offer what it owes: half a consumer item
  // time, clamped to 20 us..1 ms. Short enough that values rarely arrive in
  // pairs when the producer is slower than the consumer (a conflated channel
  // would merge such a pair).
  std::chrono::nanoseconds producer_tick() const;
};

}  // namespace ringflow::lab
