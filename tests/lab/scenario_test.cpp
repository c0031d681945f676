#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>

#include "options.hpp"
#include "scenario.hpp"

using namespace std::chrono_literals;
using ringflow::lab::options;
using ringflow::lab::scenario;
using ringflow::lab::scenario_kind;
using ringflow::lab::scenario_shape;
using ringflow::lab::strategy_kind;

TEST_CASE("scenario: the producer owes the integral of its rate", "[lab]") {
  const scenario_shape shape;
  scenario balanced(scenario_kind::balanced, 10000, shape);
  scenario overload(scenario_kind::overload, 10000, shape);
  scenario bursts(scenario_kind::bursts, 10000, shape);
  scenario stall(scenario_kind::stall, 10000, shape);
  REQUIRE(balanced.offered_by(500ms) == 4000);
  REQUIRE(overload.offered_by(500ms) == 10000);
  REQUIRE(overload.offered_by(0ms) == 0);
  REQUIRE(overload.offered_by(-5ms) == 0);
  REQUIRE(stall.offered_by(1s) == 8000);
  // bursts: 100000/s for 20 ms, then 1000/s for 230 ms
  REQUIRE(bursts.offered_by(10ms) == 1000);
  REQUIRE(bursts.offered_by(20ms) == 2000);
  REQUIRE(bursts.offered_by(250ms) == 2230);
  REQUIRE(bursts.offered_by(260ms) == 3230);
  REQUIRE(bursts.offered_by(1s) == 4 * 2230);
  REQUIRE(bursts.mean_rate(1s) == Approx(8920));
  REQUIRE(overload.mean_rate(1s) == Approx(20000));
}

TEST_CASE("scenario: only the stall scenario pauses the consumer, 100 ms every second", "[lab]") {
  const scenario_shape shape;
  scenario stall(scenario_kind::stall, 10000, shape);
  scenario overload(scenario_kind::overload, 10000, shape);
  REQUIRE_FALSE(stall.stall_end(299ms));
  REQUIRE(stall.stall_end(300ms) == std::chrono::nanoseconds(400ms));
  REQUIRE(stall.stall_end(399ms) == std::chrono::nanoseconds(400ms));
  REQUIRE_FALSE(stall.stall_end(400ms));
  REQUIRE(stall.stall_end(1350ms) == std::chrono::nanoseconds(1400ms));
  REQUIRE_FALSE(overload.stall_end(350ms));
}

TEST_CASE("options: lists and ranges", "[lab]") {
  using ringflow::lab::parse_scenario_list;
  using ringflow::lab::parse_strategy_list;
  REQUIRE(parse_scenario_list("all").size() == 4);
  REQUIRE(parse_strategy_list("all").size() == 5);
  auto s = parse_strategy_list("request, block,block");
  REQUIRE(s == std::vector<strategy_kind>{strategy_kind::block, strategy_kind::request});
  REQUIRE_THROWS_AS(parse_strategy_list("block,nope"), std::invalid_argument);
  REQUIRE_THROWS_AS(parse_strategy_list(""), std::invalid_argument);
  REQUIRE_THROWS_AS(parse_scenario_list("overload,"), std::invalid_argument);

  options o;
  REQUIRE_NOTHROW(o.validate());
  REQUIRE(o.producer_tick() == 50us);
  REQUIRE(o.item_cost() == 100us);
  auto bad = [](auto change) {
    options x;
    change(x);
    REQUIRE_THROWS_AS(x.validate(), std::invalid_argument);
  };
  bad([](options& x) { x.rate = 0; });
  bad([](options& x) { x.rate = 2e6; });
  bad([](options& x) { x.capacity = 0; });
  bad([](options& x) { x.batch = 0; });
  bad([](options& x) { x.threads = 0; });
  bad([](options& x) { x.duration = 0ms; });
  bad([](options& x) { x.strategies.clear(); });
  bad([](options& x) { x.shape.burst_length = x.shape.burst_period; });
  bad([](options& x) { x.shape.stall_offset = 950ms; });
}
