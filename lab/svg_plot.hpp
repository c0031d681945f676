// --plot FILE.svg: per scenario, the buffer depth and the latency of every
// strategy over time (one colour per strategy), then a one-glance summary:
// for every run, bars for the values lost, the producer's suspended share,
// p99 latency, buffer high-water, staleness and peak RSS growth.
#pragma once

#include <string>
#include <string_view>

#include "metrics.hpp"

namespace ringflow::lab {

// One colour per strategy, shared with the browser dashboard (--serve).
std::string_view strategy_color(strategy_kind k) noexcept;

std::string render_svg(const results& r);
// Writes render_svg(r) to path; std::runtime_error naming the path on failure.
void write_svg(const results& r, const std::string& path);

}  // namespace ringflow::lab
