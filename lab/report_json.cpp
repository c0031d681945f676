#include "report_json.hpp"

#include <cmath>
#include <string_view>

#include <fmt/format.h>

namespace ringflow::lab {

namespace {

// The names are fixed identifiers, but escape anyway: the output must parse.
std::string str(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  return fmt::format("{}", v);
}

std::string quantiles_json(const quantiles& q) {
  return fmt::format("{{\"p50\": {}, \"p99\": {}, \"max\": {}, \"mean\": {}}}", num(q.p50), num(q.p99), num(q.max),
                     num(q.mean));
}

template <class Range, class Name>
std::string name_list(const Range& r, Name name) {
  std::string out = "[";
  for (const auto& k : r) {
    if (out.size() > 1) out += ", ";
    out += str(name(k));
  }
  return out + "]";
}

std::string ns_to_s(std::chrono::nanoseconds d) { return num(std::chrono::duration<double>(d).count()); }

std::string options_json(const options& o) {
  const scenario_shape& s = o.shape;
  return fmt::format(
      "{{\"scenarios\": {}, \"strategies\": {}, \"duration_s\": {}, \"rate\": {}, \"capacity\": {}, "
      "\"sample_capacity\": {}, \"batch\": {}, \"cost\": {}, \"payload_bytes\": {}, \"threads\": {}, "
      "\"sample_every_s\": {}, \"shape\": {{\"balanced_factor\": {}, \"overload_factor\": {}, \"burst_high\": {}, "
      "\"burst_low\": {}, \"burst_period_s\": {}, \"burst_length_s\": {}, \"stall_factor\": {}, \"stall_period_s\": {}, "
      "\"stall_length_s\": {}, \"stall_offset_s\": {}}}}}",
      name_list(o.scenarios, [](scenario_kind k) { return to_string(k); }),
      name_list(o.strategies, [](strategy_kind k) { return to_string(k); }), ns_to_s(o.duration), num(o.rate),
      o.capacity, o.sample_capacity, o.batch, str(to_string(o.cost)), o.payload, o.threads, ns_to_s(o.sample_every),
      num(s.balanced_factor), num(s.overload_factor), num(s.burst_high), num(s.burst_low), ns_to_s(s.burst_period),
      ns_to_s(s.burst_length), num(s.stall_factor), ns_to_s(s.stall_period), ns_to_s(s.stall_length),
      ns_to_s(s.stall_offset));
}

std::string options_json_with_broker(const options& o) {
  std::string out = options_json(o);
  if (!o.redis.empty()) {
    out.pop_back();
    out += ", \"redis\": " + str(o.redis) + "}";
  }
  return out;
}

}  // namespace

std::string json_quote(std::string_view s) { return str(s); }
std::string json_number(double v) { return num(v); }

std::string render_run_json(const run_result& r) {
  const double susp_pct = r.duration_s > 0 ? 100.0 * r.suspended_s / r.duration_s : 0;
  std::string out = fmt::format(
      "{{\"scenario\": {}, \"strategy\": {}, \"buffer_bound\": {}, \"duration_s\": {}, \"target_rate\": {}, "
      "\"scheduled\": {}, \"offered\": {}, \"delivered\": {}, \"dropped\": {}, \"dropped_pct\": {}, "
      "\"left_in_buffer\": {}, \"accounting_ok\": {}, \"producer_throughput\": {}, \"producer_suspended_s\": {}, "
      "\"producer_suspended_pct\": {}, \"producer_suspensions\": {}, \"blocked_sends\": {}, \"rejected_sends\": {}, "
      "\"channel_stats\": {{\"sent\": {}, \"received\": {}, \"dropped\": {}}}, \"on_drop_calls\": {}, "
      "\"latency_us\": {}, \"high_water\": {}, \"peak_rss_growth_kib\": {}, \"freshness_behind\": {}}}",
      str(to_string(r.scenario)), str(to_string(r.strategy)), r.buffer_bound, num(r.duration_s), num(r.target_rate),
      r.scheduled, r.offered, r.delivered, r.dropped, num(r.dropped_pct()), r.left, r.accounting_ok() ? "true" : "false",
      num(r.producer_rate()), num(r.suspended_s), num(susp_pct), r.suspensions, r.blocked_sends, r.rejected,
      r.stats_sent, r.stats_received, r.stats_dropped, r.on_drop_calls, quantiles_json(r.latency_us), r.high_water,
      r.peak_rss_kib, quantiles_json(r.behind));
  if (!r.skipped.empty()) {
    out.pop_back();
    out += ", \"skipped\": " + str(r.skipped) + "}";
  }
  return out;
}

std::string render_json(const results& r) {
  std::string out = "{\n  \"tool\": \"ringflow-lab\",\n  \"version\": 1,\n";
  out += "  \"options\": " + options_json_with_broker(r.opts) + ",\n";
  out += fmt::format(
      "  \"timing\": {{\"item_cost_us\": {}, \"producer_tick_us\": {}}},\n", num(r.item_cost_s * 1e6),
      num(r.producer_tick_s * 1e6));
  out += fmt::format("  \"wall_s\": {},\n  \"runs\": [", num(r.wall_s));
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    out += i ? ",\n    " : "\n    ";
    out += render_run_json(r.runs[i]);
  }
  out += r.runs.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

}  // namespace ringflow::lab
