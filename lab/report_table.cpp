#include "report_table.hpp"

#include <fmt/format.h>

#include "format.hpp"
#include "scenario.hpp"

namespace ringflow::lab {

namespace {

constexpr const char* row_format =
    "  {:<19} {:>9} {:>9} {:>15} {:>6} {:>9} {:>13} {:>9} {:>9} {:>9} {:>6} {:>10} {:>10}{}\n";

}  // namespace

std::string render_table(const results& res) {
  const options& o = res.opts;
  std::string out;
  auto put = [&out](std::string s) { out += s; };
  put(fmt::format("ringflow-lab: {} scenario(s) x {} strategies, {:g} s each; consumer {:.0f} items/s ({} cost, {} per item); "
                  "payload {} B per item\n",
                  o.scenarios.size(), o.strategies.size(), std::chrono::duration<double>(o.duration).count(), o.rate,
                  to_string(o.cost), format_us(1e6 / o.rate), o.payload));
  if (!o.redis.empty()) put(fmt::format("through the broker: a Redis stream and consumer group on {} per run\n", o.redis));
  bool all_ok = true;
  scenario_kind current{};
  bool first = true;
  for (const run_result& r : res.runs) {
    if (first || r.scenario != current) {
      scenario sc(r.scenario, o.rate, o.shape);
      put(fmt::format("\n{} - {}\n", to_string(r.scenario), sc.describe()));
      put(fmt::format(row_format, "strategy(buffer)", "offered", "delivered", "dropped", "left", "offered/s",
                      "suspended", "lat p50", "lat p99", "lat max", "hwm", "peak RSS", "behind", ""));
      current = r.scenario;
      first = false;
    }
    if (!r.skipped.empty()) {
      put(fmt::format("  {:<19} skipped: {}\n", strategy_label(r), r.skipped));
      continue;
    }
    const bool ok = r.accounting_ok();
    all_ok = all_ok && ok;
    const double susp_pct = r.duration_s > 0 ? 100.0 * r.suspended_s / r.duration_s : 0;
    put(fmt::format(row_format, strategy_label(r), r.offered, r.delivered,
                    fmt::format("{} ({:.1f}%)", r.dropped, r.dropped_pct()), r.left, format_rate(r.producer_rate()),
                    fmt::format("{:.0f} ms {:>3.0f}%", r.suspended_s * 1000, susp_pct), format_us(r.latency_us.p50),
                    format_us(r.latency_us.p99), format_us(r.latency_us.max), r.high_water, format_kib(r.peak_rss_kib),
                    fmt::format("{:.0f}/{:.0f}", r.behind.p50, r.behind.max), ok ? "" : "  ACCOUNTING MISMATCH"));
  }
  put(fmt::format(
      "\noffered = delivered + dropped + left holds for every run{}.\n"
      "offered/s: the producer's throughput (its schedule asks for the scenario's rate; block and request hold it back).\n"
      "suspended: the producer's time inside sends/emits that had to wait, and its share of the run.\n"
      "lat: offer -> receipt, nearest-rank percentiles. hwm: most values buffered at once (request: emitted, not yet taken).\n"
      "peak RSS: resident-set growth over the run's start. behind: newer values already offered when a value was received (p50/max).\n",
      all_ok ? "" : " EXCEPT the rows marked: a bug, please report it"));
  return out;
}

}  // namespace ringflow::lab
