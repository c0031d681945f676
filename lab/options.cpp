#include "options.hpp"

#include "broker.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ringflow::lab {

std::string_view to_string(scenario_kind k) noexcept {
  switch (k) {
    case scenario_kind::balanced: return "balanced";
    case scenario_kind::overload: return "overload";
    case scenario_kind::bursts: return "bursts";
    case scenario_kind::stall: return "stall";
  }
  return "?";
}

std::string_view to_string(strategy_kind k) noexcept {
  switch (k) {
    case strategy_kind::block: return "block";
    case strategy_kind::drop_incoming: return "drop_incoming";
    case strategy_kind::drop_oldest: return "drop_oldest";
    case strategy_kind::sample: return "sample";
    case strategy_kind::request: return "request";
  }
  return "?";
}

std::string_view to_string(cost_kind k) noexcept {
  switch (k) {
    case cost_kind::spin: return "spin";
    case cost_kind::timer: return "timer";
  }
  return "?";
}

std::optional<scenario_kind> parse_scenario(std::string_view name) noexcept {
  for (scenario_kind k : all_scenarios)
    if (to_string(k) == name) return k;
  return std::nullopt;
}

std::optional<strategy_kind> parse_strategy(std::string_view name) noexcept {
  for (strategy_kind k : all_strategies)
    if (to_string(k) == name) return k;
  return std::nullopt;
}

std::optional<cost_kind> parse_cost(std::string_view name) noexcept {
  if (name == "spin") return cost_kind::spin;
  if (name == "timer") return cost_kind::timer;
  return std::nullopt;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

template <class Kind, std::size_t N, class Parse>
std::vector<Kind> parse_list(std::string_view list, const Kind (&all)[N], Parse parse, const char* what) {
  list = trim(list);
  if (list == "all") return {std::begin(all), std::end(all)};
  std::vector<bool> chosen(N, false);
  bool any = false;
  while (true) {
    std::size_t comma = list.find(',');
    std::string_view name = trim(list.substr(0, comma));
    auto k = parse(name);
    if (!k) {
      throw std::invalid_argument(std::string("unknown ") + what + " '" + std::string(name) + "'");
    }
    chosen[static_cast<std::size_t>(*k)] = true;
    any = true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  std::vector<Kind> out;
  if (!any) return out;
  for (std::size_t i = 0; i < N; ++i)
    if (chosen[static_cast<std::size_t>(all[i])]) out.push_back(all[i]);
  return out;
}

void require(bool ok, const char* message) {
  if (!ok) throw std::invalid_argument(message);
}

}  // namespace

std::vector<scenario_kind> parse_scenario_list(std::string_view list) {
  return parse_list(list, all_scenarios, parse_scenario, "scenario");
}

std::vector<strategy_kind> parse_strategy_list(std::string_view list) {
  return parse_list(list, all_strategies, parse_strategy, "strategy");
}

void options::validate() const {
  using namespace std::chrono_literals;
  require(!scenarios.empty(), "lab: no scenario chosen");
  require(!strategies.empty(), "lab: no strategy chosen");
  require(duration >= 1ms && duration <= 1h, "lab: duration must be 1 ms..1 h");
  require(std::isfinite(rate) && rate >= 1 && rate <= 1e6, "lab: rate must be 1..1000000 items/s");
  require(capacity >= 1 && capacity <= 1'000'000, "lab: capacity must be 1..1000000");
  require(sample_capacity >= 1 && sample_capacity <= 1'000'000, "lab: sample capacity must be 1..1000000");
  require(batch >= 1 && batch <= 1'000'000, "lab: batch must be 1..1000000");
  require(payload <= (std::size_t{1} << 20), "lab: payload must be 0..1048576 bytes");
  require(threads >= 1 && threads <= 64, "lab: threads must be 1..64");
  require(sample_every >= 1ms && sample_every <= 1s, "lab: sample interval must be 1 ms..1 s");
  const scenario_shape& s = shape;
  for (double f : {s.balanced_factor, s.overload_factor, s.burst_high, s.burst_low, s.stall_factor})
    require(std::isfinite(f) && f > 0 && f <= 1000, "lab: scenario rate factors must be in (0, 1000]");
  require(s.burst_period > 0ns && s.burst_length > 0ns && s.burst_length < s.burst_period,
          "lab: bursts need 0 < burst_length < burst_period");
  require(s.stall_period > 0ns && s.stall_length > 0ns && s.stall_offset >= 0ns &&
              s.stall_offset + s.stall_length <= s.stall_period,
          "lab: stalls need stall_offset + stall_length <= stall_period");
  if (!redis.empty()) parse_broker_address(redis);
}

std::chrono::nanoseconds options::item_cost() const {
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(1e9 / rate)));
}

std::chrono::nanoseconds options::producer_tick() const {
  using namespace std::chrono_literals;
  return std::clamp<std::chrono::nanoseconds>(item_cost() / 2, 20us, 1ms);
}

}  // namespace ringflow::lab
