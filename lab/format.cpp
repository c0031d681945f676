#include "format.hpp"

#include <fmt/format.h>

namespace ringflow::lab {

std::string format_us(double us) {
  if (us < 1000) return fmt::format("{:.0f} us", us);
  if (us < 10'000) return fmt::format("{:.2f} ms", us / 1000);
  if (us < 1'000'000) return fmt::format("{:.1f} ms", us / 1000);
  return fmt::format("{:.2f} s", us / 1e6);
}

std::string format_rate(double per_s) {
  if (per_s < 10'000) return fmt::format("{:.0f}/s", per_s);
  if (per_s < 1e6) return fmt::format("{:.1f}k/s", per_s / 1000);
  return fmt::format("{:.2f}M/s", per_s / 1e6);
}

std::string format_kib(std::int64_t kib) {
  if (kib < 10 * 1024) return fmt::format("+{} KiB", kib);
  return fmt::format("+{:.1f} MiB", static_cast<double>(kib) / 1024);
}

std::string strategy_label(const run_result& r) {
  if (r.strategy == strategy_kind::request) return fmt::format("request(n={})", r.buffer_bound);
  return fmt::format("{}({})", to_string(r.strategy), r.buffer_bound);
}

}  // namespace ringflow::lab
