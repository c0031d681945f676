// Number formatting shared by the table, the plot and the progress line.
#pragma once

#include <cstdint>
#include <string>

#include "metrics.hpp"

namespace ringflow::lab {

std::string format_us(double us);                 // "85 us", "1.25 ms", "25.6 ms", "1.02 s"
std::string format_rate(double per_s);            // "9990/s", "20.0k/s", "1.20M/s"
std::string format_kib(std::int64_t kib);         // "+12 KiB", "+1.3 MiB"
std::string strategy_label(const run_result& r);  // "block(256)", "sample(1)", "request(n=16)"

}  // namespace ringflow::lab
