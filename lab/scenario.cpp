#include "scenario.hpp"

#include <cmath>
#include <fmt/format.h>

namespace ringflow::lab {

namespace {
double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

scenario::scenario(scenario_kind kind, double consumer_rate, const scenario_shape& shape)
    : kind_(kind), rate_(consumer_rate), shape_(shape) {}

double scenario::integral(double t) const {
  if (t <= 0) return 0;
  switch (kind_) {
    case scenario_kind::balanced: return shape_.balanced_factor * rate_ * t;
    case scenario_kind::overload: return shape_.overload_factor * rate_ * t;
    case scenario_kind::stall: return shape_.stall_factor * rate_ * t;
    case scenario_kind::bursts: {
      const double period = seconds(shape_.burst_period), burst = seconds(shape_.burst_length);
      const double hi = shape_.burst_high * rate_, lo = shape_.burst_low * rate_;
      const double per_period = hi * burst + lo * (period - burst);
      const double whole = std::floor(t / period);
      const double rem = t - whole * period;
      const double partial = rem < burst ? hi * rem : hi * burst + lo * (rem - burst);
      return whole * per_period + partial;
    }
  }
  return 0;
}

std::uint64_t scenario::offered_by(std::chrono::nanoseconds elapsed) const {
  // The epsilon keeps exact products (0.5 s x 2000/s) from flooring one short.
  return static_cast<std::uint64_t>(std::floor(integral(seconds(elapsed)) + 1e-9));
}

std::optional<std::chrono::nanoseconds> scenario::stall_end(std::chrono::nanoseconds elapsed) const {
  if (kind_ != scenario_kind::stall || elapsed.count() < 0) return std::nullopt;
  const auto period = shape_.stall_period;
  const auto start = elapsed - elapsed % period + shape_.stall_offset;
  if (elapsed >= start && elapsed < start + shape_.stall_length) return start + shape_.stall_length;
  return std::nullopt;
}

double scenario::mean_rate(std::chrono::nanoseconds d) const {
  const double s = seconds(d);
  return s > 0 ? integral(s) / s : 0;
}

std::string scenario::describe() const {
  auto per_s = [](double r) { return fmt::format("{:.0f}/s", r); };
  auto ms = [](std::chrono::nanoseconds d) { return fmt::format("{:g} ms", std::chrono::duration<double, std::milli>(d).count()); };
  switch (kind_) {
    case scenario_kind::balanced:
      return fmt::format("control run, producer {:g}x the consumer ({} vs {})", shape_.balanced_factor,
                         per_s(shape_.balanced_factor * rate_), per_s(rate_));
    case scenario_kind::overload:
      return fmt::format("steady overload, producer {:g}x the consumer ({} vs {})", shape_.overload_factor,
                         per_s(shape_.overload_factor * rate_), per_s(rate_));
    case scenario_kind::bursts:
      return fmt::format("producer {:g}x the consumer for {}, then {:g}x for {}, repeated (consumer {})", shape_.burst_high,
                         ms(shape_.burst_length), shape_.burst_low, ms(shape_.burst_period - shape_.burst_length),
                         per_s(rate_));
    case scenario_kind::stall:
      return fmt::format("the consumer pauses {} every {}; producer {:g}x the consumer ({} vs {})", ms(shape_.stall_length),
                         ms(shape_.stall_period), shape_.stall_factor, per_s(shape_.stall_factor * rate_),
                         per_s(rate_));
  }
  return {};
}

}  // namespace ringflow::lab
