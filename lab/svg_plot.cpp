#include "svg_plot.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "format.hpp"
#include "scenario.hpp"
#include "svg_writer.hpp"

namespace ringflow::lab {

namespace {

constexpr double width = 1280;
constexpr double margin = 40;
constexpr double panel_h = 170;
constexpr double row_h = 230;
constexpr double header_h = 90;

}  // namespace

std::string_view strategy_color(strategy_kind k) noexcept {
  switch (k) {
    case strategy_kind::block: return "#1f77b4";
    case strategy_kind::drop_incoming: return "#d62728";
    case strategy_kind::drop_oldest: return "#ff7f0e";
    case strategy_kind::sample: return "#2ca02c";
    case strategy_kind::request: return "#9467bd";
  }
  return "#444";
}

namespace {

std::string_view color_of(strategy_kind k) { return strategy_color(k); }

// Rounds up to 1, 2 or 5 times a power of ten.
double nice_ceiling(double v) {
  if (v <= 1) return 1;
  const double p = std::pow(10, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= v) return m * p;
  return 10 * p;
}

// 10^d microseconds, as "10 us", "1 ms", "100 ms", "1 s".
std::string decade_label(double d) {
  const int e = static_cast<int>(std::lround(d));
  if (e < 3) return fmt::format("{} us", static_cast<long>(std::pow(10, e)));
  if (e < 6) return fmt::format("{} ms", static_cast<long>(std::pow(10, e - 3)));
  return fmt::format("{} s", static_cast<long>(std::pow(10, e - 6)));
}

struct frame {
  double x, y, w, h;
};

void axes(svg_writer& svg, const frame& f, std::string_view title) {
  svg.rect(f.x, f.y, f.w, f.h, "#fafafa", "#bbb", 1);
  svg.text(f.x, f.y - 6, title, 12, "start", "#222", true);
}

void time_axis(svg_writer& svg, const frame& f, double duration_s) {
  for (int i = 0; i <= 4; ++i) {
    const double t = duration_s * i / 4;
    const double x = f.x + f.w * i / 4;
    svg.line(x, f.y + f.h, x, f.y + f.h + 4, "#888");
    svg.text(x, f.y + f.h + 16, fmt::format("{:g} s", std::round(t * 1000) / 1000), 10, "middle", "#555");
  }
}

// Buffer depth, linear.
void depth_panel(svg_writer& svg, const frame& f, const std::vector<const run_result*>& runs, double duration_s) {
  double top = 1;
  for (const run_result* r : runs)
    for (const sample_point& p : r->timeline) top = std::max(top, static_cast<double>(p.depth));
  top = nice_ceiling(top);
  axes(svg, f, "buffer depth (values buffered, every sample)");
  for (int i = 0; i <= 2; ++i) {
    const double y = f.y + f.h - f.h * i / 2;
    if (i > 0) svg.line(f.x, y, f.x + f.w, y, "#ddd", 1, "3,3");
    svg.text(f.x - 4, y + 4, fmt::format("{:g}", top * i / 2), 10, "end", "#555");
  }
  time_axis(svg, f, duration_s);
  for (const run_result* r : runs) {
    std::vector<svg_writer::point> pts;
    for (const sample_point& p : r->timeline) {
      const double x = f.x + f.w * std::clamp(p.t_s / duration_s, 0.0, 1.0);
      pts.emplace_back(x, f.y + f.h - f.h * static_cast<double>(p.depth) / top);
    }
    svg.begin_group(fmt::format("{} {}: buffer depth", to_string(r->scenario), strategy_label(*r)));
    svg.path({pts}, color_of(r->strategy));
    svg.end_group();
  }
}

// Latency, the worst per window, on a log scale (decades from 10 us).
void latency_panel(svg_writer& svg, const frame& f, const std::vector<const run_result*>& runs, double duration_s) {
  double top_us = 1000;
  for (const run_result* r : runs)
    for (const latency_window& w : r->latency_timeline) top_us = std::max(top_us, static_cast<double>(w.max_ns) / 1e3);
  const double lo = std::log10(10.0), hi = std::ceil(std::log10(top_us));
  auto y_of = [&](double us) {
    const double l = std::clamp(std::log10(std::max(us, 10.0)), lo, hi);
    return f.y + f.h - f.h * (l - lo) / (hi - lo);
  };
  axes(svg, f, "latency, offer -> receipt (worst per sample interval, log scale)");
  for (double d = lo; d <= hi + 1e-9; d += 1) {
    const double y = y_of(std::pow(10, d));
    if (d > lo) svg.line(f.x, y, f.x + f.w, y, "#ddd", 1, "3,3");
    svg.text(f.x - 4, y + 4, decade_label(d), 10, "end", "#555");
  }
  time_axis(svg, f, duration_s);
  for (const run_result* r : runs) {
    std::vector<std::vector<svg_writer::point>> segments(1);
    for (std::size_t i = 0; i < r->latency_timeline.size(); ++i) {
      const latency_window& w = r->latency_timeline[i];
      if (w.count == 0) {  // nothing received in this window: a gap
        if (!segments.back().empty()) segments.emplace_back();
        continue;
      }
      const double t = (static_cast<double>(i) + 0.5) * r->sample_every_s;
      const double x = f.x + f.w * std::clamp(t / duration_s, 0.0, 1.0);
      segments.back().emplace_back(x, y_of(static_cast<double>(w.max_ns) / 1e3));
    }
    svg.begin_group(fmt::format("{} {}: latency", to_string(r->scenario), strategy_label(*r)));
    svg.path(segments, color_of(r->strategy));
    svg.end_group();
  }
}

struct metric {
  std::string title;
  bool log;
  double (*value)(const run_result&);
  std::string (*label)(const run_result&);
};

double lost_pct(const run_result& r) { return r.dropped_pct(); }
double suspended_pct(const run_result& r) { return r.duration_s > 0 ? 100 * r.suspended_s / r.duration_s : 0; }
double p99_us(const run_result& r) { return r.latency_us.p99; }
double hwm(const run_result& r) { return static_cast<double>(r.high_water); }
double behind_p50(const run_result& r) { return r.behind.p50; }
double rss_kib(const run_result& r) { return static_cast<double>(r.peak_rss_kib); }

void summary(svg_writer& svg, double y0, const results& res) {
  const metric metrics[] = {
      {"values lost", false, lost_pct, [](const run_result& r) { return fmt::format("{:.1f}%", r.dropped_pct()); }},
      {"producer suspended", false, suspended_pct,
       [](const run_result& r) { return fmt::format("{:.0f}%", suspended_pct(r)); }},
      {"latency p99 (log)", true, p99_us, [](const run_result& r) { return format_us(r.latency_us.p99); }},
      {"buffer high-water (log)", true, hwm, [](const run_result& r) { return fmt::format("{}", r.high_water); }},
      {"behind newest, p50 (log)", true, behind_p50, [](const run_result& r) { return fmt::format("{:.0f}", r.behind.p50); }},
      {"peak RSS growth", false, rss_kib, [](const run_result& r) { return format_kib(r.peak_rss_kib); }},
  };
  const double label_w = 210, col_w = (width - 2 * margin - label_w) / std::size(metrics), bar_h = 11, line_h = 15;
  svg.text(margin, y0, "Summary: what each strategy cost and kept (longer bar = more)", 15, "start", "#222", true);
  double y = y0 + 26;
  for (std::size_t m = 0; m < std::size(metrics); ++m) {
    svg.text(margin + label_w + col_w * static_cast<double>(m), y, metrics[m].title, 11, "start", "#222", true);
  }
  y += 8;
  scenario_kind current{};
  bool first = true;
  std::vector<double> top(std::size(metrics), 0);
  for (const run_result& r : res.runs)
    for (std::size_t m = 0; m < std::size(metrics); ++m) top[m] = std::max(top[m], metrics[m].value(r));
  for (const run_result& r : res.runs) {
    if (first || r.scenario != current) {
      y += line_h + 4;
      svg.text(margin, y, to_string(r.scenario), 12, "start", "#222", true);
      svg.line(margin, y + 3, width - margin, y + 3, "#ccc");
      current = r.scenario;
      first = false;
    }
    y += line_h;
    svg.begin_group(fmt::format("{} {}", to_string(r.scenario), strategy_label(r)));
    svg.rect(margin + 8, y - 9, 10, 10, color_of(r.strategy));
    svg.text(margin + 24, y, strategy_label(r), 11);
    for (std::size_t m = 0; m < std::size(metrics); ++m) {
      const double x = margin + label_w + col_w * static_cast<double>(m);
      const double v = metrics[m].value(r);
      double frac = 0;
      if (top[m] > 0) {
        frac = metrics[m].log ? (v > 0 ? std::log10(1 + v) / std::log10(1 + top[m]) : 0) : v / top[m];
      }
      const double bar_w = (col_w - 70) * std::clamp(frac, 0.0, 1.0);
      svg.rect(x, y - 9, bar_w, bar_h, color_of(r.strategy));
      svg.text(x + bar_w + 4, y, metrics[m].label(r), 10, "start", "#333");
    }
    svg.end_group();
  }
}

double summary_height(const results& res) {
  std::size_t groups = 0;
  scenario_kind current{};
  for (std::size_t i = 0; i < res.runs.size(); ++i) {
    if (i == 0 || res.runs[i].scenario != current) ++groups;
    current = res.runs[i].scenario;
  }
  return 60 + static_cast<double>(groups) * 19 + static_cast<double>(res.runs.size()) * 15 + 20;
}

}  // namespace

std::string render_svg(const results& res) {
  const options& o = res.opts;
  std::vector<scenario_kind> order;
  for (const run_result& r : res.runs)
    if (std::find(order.begin(), order.end(), r.scenario) == order.end()) order.push_back(r.scenario);
  const double height = header_h + static_cast<double>(order.size()) * row_h + summary_height(res) + 20;
  svg_writer svg(width, height);
  svg.rect(0, 0, width, height, "#ffffff");
  svg.text(margin, 28, "ringflow-lab: overflow strategies under a producer faster than its consumer", 18, "start",
           "#222", true);
  svg.text(margin, 48,
           fmt::format("consumer {:.0f} items/s ({} cost), {:g} s per run, capacity {}, sample capacity {}, "
                       "request batch {}, payload {} B",
                       o.rate, to_string(o.cost), std::chrono::duration<double>(o.duration).count(), o.capacity,
                       o.sample_capacity, o.batch, o.payload),
           12, "start", "#555");
  // Legend: one colour per strategy that ran.
  double lx = margin;
  for (strategy_kind k : all_strategies) {
    if (std::find(o.strategies.begin(), o.strategies.end(), k) == o.strategies.end()) continue;
    svg.rect(lx, 60, 14, 10, color_of(k));
    svg.text(lx + 18, 69, to_string(k), 12);
    lx += 30 + 8.0 * static_cast<double>(to_string(k).size()) + 10;
  }
  const double duration_s = std::chrono::duration<double>(o.duration).count();
  const double panel_w = (width - 2 * margin - 60) / 2;
  double y = header_h;
  for (scenario_kind k : order) {
    std::vector<const run_result*> runs;
    for (const run_result& r : res.runs)
      if (r.scenario == k) runs.push_back(&r);
    scenario sc(k, o.rate, o.shape);
    svg.text(margin, y + 8, fmt::format("{}: {}", to_string(k), sc.describe()), 14, "start", "#222", true);
    depth_panel(svg, frame{margin + 30, y + 32, panel_w - 30, panel_h}, runs, duration_s);
    latency_panel(svg, frame{margin + panel_w + 90, y + 32, panel_w - 30, panel_h}, runs, duration_s);
    y += row_h;
  }
  summary(svg, y + 10, res);
  return svg.finish();
}

void write_svg(const results& r, const std::string& path) {
  const std::string doc = render_svg(r);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  f << doc;
  f.close();
  if (!f) throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
}

}  // namespace ringflow::lab
