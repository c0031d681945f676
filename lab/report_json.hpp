// --json: one JSON document with the options used and an object per
// (scenario, strategy) run holding every metric.
//
//   {"tool": "ringflow-lab", "version": 1,
//    "options": {"scenarios": [...], "strategies": [...], "duration_s": 1, "rate": 10000, ...},
//    "timing": {"item_cost_us": 100, "producer_tick_us": 100}, "wall_s": 20.4,
//    "runs": [{"scenario": "overload", "strategy": "block", "offered": 10250, ...}, ...]}
//
// Times are in seconds unless the key says otherwise (_us, _pct, _kib).
#pragma once

#include <string>
#include <string_view>

#include "metrics.hpp"

namespace ringflow::lab {

std::string render_json(const results& r);
// One element of "runs" above (the dashboard sends each run as it ends).
std::string render_run_json(const run_result& r);
// A JSON string literal (quoted, escaped), and a number (null if not finite).
std::string json_quote(std::string_view s);
std::string json_number(double v);

}  // namespace ringflow::lab
