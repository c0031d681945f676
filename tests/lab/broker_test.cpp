// The lab's broker mode (ringflow-lab --redis): every strategy through a
// Redis stream on a redis-server of the test's own. The accounting
// (offered = delivered + dropped + left) is settled against the broker: the
// run reads the stream back and classifies every sequence number it issued,
// and cross-checks the producer's own counts (added, refused, trimmed) with
// what the stream holds. sample cannot map onto an append-only log: its runs
// are reported as skipped, with the reason, and nothing crashes.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <system_error>

#include <ringflow/redis.hpp>

#include "../support/redis_server.hpp"
#include "../support/run.hpp"
#include "cli.hpp"
#include "fixture.hpp"
#include "lab.hpp"
#include "report_json.hpp"
#include "report_table.hpp"

using namespace std::chrono_literals;
using ringflow::lab::options;
using ringflow::lab::results;
using ringflow::lab::run_result;
using ringflow::lab::scenario_kind;
using ringflow::lab::strategy_kind;
using test_support::redis_server;

namespace {

options broker_options(const redis_server& s) {
  options o = lab_test::smoke_options();
  o.redis = "127.0.0.1:" + std::to_string(s.port());
  o.scenarios = {scenario_kind::balanced, scenario_kind::overload, scenario_kind::stall};
  o.duration = 200ms;
  o.rate = 2000;
  o.payload = 64;
  return o;
}

long long keys_left(const redis_server& s) {
  return test_support::run([](std::uint16_t port) -> ringflow::task<long long> {
    auto c = co_await ringflow::redis::connection::connect("127.0.0.1", port);
    ringflow::redis::reply r = co_await c.command("KEYS", "ringflow-lab:*");
    co_return static_cast<long long>(r.elements().size());
  }(s.port()));
}

}  // namespace

TEST_CASE("lab broker mode: every strategy through a Redis stream keeps offered = delivered + dropped + left; sample "
          "is skipped with its reason",
          "[lab_broker]") {
  redis_server server;
  const options o = broker_options(server);
  const results r = ringflow::lab::run(o);
  REQUIRE(r.runs.size() == o.scenarios.size() * 5);
  for (const run_result& x : r.runs) {
    INFO(to_string(x.scenario) << " x " << to_string(x.strategy) << ": offered " << x.offered << " delivered "
                               << x.delivered << " dropped " << x.dropped << " left " << x.left << " sent "
                               << x.stats_sent << " received " << x.stats_received << " stats_dropped "
                               << x.stats_dropped << " trimmed-check " << x.on_drop_calls << " rejected " << x.rejected);
    if (x.strategy == strategy_kind::sample) {
      REQUIRE(x.skipped.find("not supported through a broker") != std::string::npos);
      REQUIRE(x.offered == 0);
      REQUIRE(x.accounting_ok());
      continue;
    }
    REQUIRE(x.skipped.empty());
    REQUIRE(x.offered > 0);
    REQUIRE(x.delivered > 0);
    REQUIRE(x.offered <= x.scheduled);
    REQUIRE(x.offered == (x.delivered + x.dropped + x.left));
    // The independent counts agree: the consumer's receipts with the
    // read-back, the producer's added/refused/trimmed with the stream.
    REQUIRE(x.stats_received == x.delivered);
    REQUIRE(x.stats_sent + x.rejected == x.offered);
    REQUIRE(x.stats_dropped == x.dropped);
    REQUIRE(x.on_drop_calls == x.dropped);
    REQUIRE(x.accounting_ok());
    // Left undelivered in the stream: within the group's backlog bound.
    REQUIRE(x.left <= x.buffer_bound);
    if (x.strategy == strategy_kind::block || x.strategy == strategy_kind::request) REQUIRE(x.dropped == 0);
    if (x.strategy != strategy_kind::drop_incoming) REQUIRE(x.rejected == 0);
    if (x.strategy == strategy_kind::drop_incoming) REQUIRE(x.dropped == x.rejected);
  }
  REQUIRE(keys_left(server) == 0);  // every run deleted its stream

  const std::string table = ringflow::lab::render_table(r);
  REQUIRE(table.find("through the broker") != std::string::npos);
  REQUIRE(table.find("skipped: not supported through a broker") != std::string::npos);
  REQUIRE(table.find("MISMATCH") == std::string::npos);
  const std::string json = ringflow::lab::render_json(r);
  REQUIRE(json.find("\"skipped\": \"not supported through a broker") != std::string::npos);
  REQUIRE(json.find("\"redis\": \"127.0.0.1:") != std::string::npos);
}

TEST_CASE("lab broker mode: a malformed address is a usage error, an unreachable broker a clear system_error",
          "[lab_broker]") {
  for (const char* bad : {"localhost", "127.0.0.1:", ":6379", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:6x"}) {
    INFO(bad);
    auto c = ringflow::lab::parse_cli({"ringflow-lab", "--redis", bad});
    REQUIRE_FALSE(c.options.has_value());
    REQUIRE(c.exit_code == 2);
    const bool names_it = c.message.find("HOST:PORT") != std::string::npos || c.message.find("port") != std::string::npos;
    REQUIRE(names_it);
  }
  auto ok = ringflow::lab::parse_cli({"ringflow-lab", "--redis", "127.0.0.1:6379"});
  REQUIRE(ok.options.has_value());
  REQUIRE(ok.options->lab.redis == "127.0.0.1:6379");

  std::uint16_t closed_port = 0;
  {
    redis_server gone;
    closed_port = gone.port();
  }  // stopped: nothing listens there now
  options o = lab_test::smoke_options();
  o.redis = "127.0.0.1:" + std::to_string(closed_port);
  o.scenarios = {scenario_kind::balanced};
  o.strategies = {strategy_kind::block};
  REQUIRE_THROWS_AS(ringflow::lab::run(o), std::system_error);
}
