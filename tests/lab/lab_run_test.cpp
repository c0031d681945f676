#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>

#include "fixture.hpp"
#include "lab.hpp"
#include "report_table.hpp"

using namespace std::chrono_literals;
using ringflow::lab::options;
using ringflow::lab::results;
using ringflow::lab::run_result;
using ringflow::lab::scenario_kind;
using ringflow::lab::strategy_kind;

namespace {

const run_result& find(const results& r, scenario_kind sc, strategy_kind st) {
  for (const run_result& x : r.runs)
    if (x.scenario == sc && x.strategy == st) return x;
  FAIL("no run for " << to_string(sc) << " x " << to_string(st));
  throw 0;
}

void check_accounting(const run_result& r) {
  INFO(to_string(r.scenario) << " x " << to_string(r.strategy) << ": offered " << r.offered << " delivered "
                             << r.delivered << " dropped " << r.dropped << " left " << r.left);
  REQUIRE(r.offered == r.delivered + r.dropped + r.left);
  REQUIRE(r.accounting_ok());
  REQUIRE(r.offered <= r.scheduled);
  if (r.strategy == strategy_kind::request) {
    REQUIRE(r.dropped == 0);
    REQUIRE(r.high_water <= r.buffer_bound);  // demand bounds what is buffered
  } else {
    // Independent counters agree: the channel's stats, its on_drop callback,
    // the producer's send results and the consumer's receipts.
    REQUIRE(r.stats_received == r.delivered);
    REQUIRE(r.stats_dropped == r.dropped);
    REQUIRE(r.on_drop_calls == r.dropped);
    REQUIRE(r.stats_sent + r.rejected == r.offered);
    REQUIRE(r.high_water <= r.buffer_bound);
    REQUIRE(r.left <= r.buffer_bound);
  }
  if (r.strategy == strategy_kind::block) REQUIRE(r.dropped == 0);
  if (r.strategy != strategy_kind::drop_incoming) REQUIRE(r.rejected == 0);
}

}  // namespace

TEST_CASE("smoke: every scenario x strategy runs and its accounting holds", "[lab]") {
  const results& r = lab_test::smoke_results();
  REQUIRE(r.runs.size() == 4 * 5);
  for (scenario_kind sc : ringflow::lab::all_scenarios) {
    for (strategy_kind st : ringflow::lab::all_strategies) {
      const run_result& x = find(r, sc, st);
      check_accounting(x);
      CHECK(x.offered > 0);
      CHECK(x.delivered > 0);
      CHECK(x.timeline.size() > 2);
      CHECK(x.latency_us.p50 <= x.latency_us.p99);
      CHECK(x.latency_us.p99 <= x.latency_us.max);
    }
  }
  const std::string table = ringflow::lab::render_table(r);
  for (scenario_kind sc : ringflow::lab::all_scenarios) CHECK(table.find(std::string(to_string(sc)) + " - ") != std::string::npos);
  for (strategy_kind st : ringflow::lab::all_strategies) CHECK(table.find(std::string(to_string(st)) + "(") != std::string::npos);
  CHECK(table.find("MISMATCH") == std::string::npos);
}

TEST_CASE("overload: the trade-offs show in the numbers", "[lab]") {
  options o;
  o.scenarios = {scenario_kind::overload};
  o.duration = 300ms;
  o.rate = 5000;  // the producer offers 10000/s
  o.capacity = 16;
  o.batch = 4;
  o.payload = 256;
  // Called on a worker thread: count there, assert here.
  std::atomic<int> progress_calls{0}, odd_progress{0};
  o.on_progress = [&](const ringflow::lab::progress& p) {
    ++progress_calls;
    if (p.run_count != 5 || p.scenario != scenario_kind::overload || p.run_index >= 5) ++odd_progress;
  };
  const results r = ringflow::lab::run(o);
  REQUIRE(r.runs.size() == 5);
  for (const run_result& x : r.runs) check_accounting(x);
  const run_result& block = find(r, scenario_kind::overload, strategy_kind::block);
  const run_result& drop_in = find(r, scenario_kind::overload, strategy_kind::drop_incoming);
  const run_result& drop_old = find(r, scenario_kind::overload, strategy_kind::drop_oldest);
  const run_result& sample = find(r, scenario_kind::overload, strategy_kind::sample);
  const run_result& request = find(r, scenario_kind::overload, strategy_kind::request);
  // block keeps every value but holds the producer back...
  CHECK(block.suspensions > 0);
  CHECK(block.suspended_s > 0);
  CHECK(block.offered < block.scheduled);
  // ...the drop strategies keep the producer's pace and lose values...
  CHECK(drop_in.suspensions == 0);
  CHECK(drop_in.dropped > 0);
  CHECK(drop_in.rejected == drop_in.dropped);
  CHECK(drop_old.dropped > 0);
  CHECK(drop_old.rejected == 0);
  CHECK(sample.dropped > 0);
  // ...sample (capacity 1) holds one value, the freshest...
  CHECK(sample.high_water <= 1);
  CHECK(sample.left <= 1);
  // ...and request(n) is held to the consumer's demand.
  CHECK(request.suspensions > 0);
  CHECK(request.high_water <= 4);
  CHECK(request.offered < request.scheduled);
  CHECK(progress_calls.load() > 0);
  CHECK(odd_progress.load() == 0);
}

TEST_CASE("spin cost, one thread, a larger sample capacity: the accounting still holds", "[lab]") {
  options o;
  o.scenarios = {scenario_kind::overload, scenario_kind::stall};
  o.duration = 100ms;
  o.rate = 4000;
  o.capacity = 8;
  o.sample_capacity = 4;
  o.batch = 2;
  o.payload = 0;
  o.threads = 1;
  o.cost = ringflow::lab::cost_kind::spin;
  o.shape.stall_period = 50ms;
  o.shape.stall_offset = 10ms;
  o.shape.stall_length = 20ms;
  const results r = ringflow::lab::run(o);
  REQUIRE(r.runs.size() == 10);
  for (const run_result& x : r.runs) {
    check_accounting(x);
    CHECK(x.delivered > 0);
  }
  CHECK(find(r, scenario_kind::overload, strategy_kind::sample).high_water <= 4);
}

TEST_CASE("lab::run rejects bad options before starting", "[lab]") {
  options o;
  o.rate = 0;
  REQUIRE_THROWS_AS(ringflow::lab::run(o), std::invalid_argument);
  o.rate = 100;
  o.scenarios.clear();
  REQUIRE_THROWS_AS(ringflow::lab::run(o), std::invalid_argument);
}
