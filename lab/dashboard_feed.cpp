#include "dashboard_feed.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include "report_json.hpp"
#include "scenario.hpp"
#include "svg_plot.hpp"

namespace ringflow::lab {

namespace {

std::size_t buffer_bound(const options& o, strategy_kind k) {
  switch (k) {
    case strategy_kind::sample: return o.sample_capacity;
    case strategy_kind::request: return o.batch;
    default: return o.capacity;
  }
}

std::string label(const options& o, strategy_kind k) {
  if (k == strategy_kind::request) return fmt::format("request(n={})", o.batch);
  return fmt::format("{}({})", to_string(k), buffer_bound(o, k));
}

// Six significant digits: the page draws at most a few thousand pixels.
std::string short_number(double v) {
  if (!std::isfinite(v)) return "null";
  return fmt::format("{:.6g}", v);
}

std::string meta_members(const options& o, std::size_t points_per_run) {
  std::string scenarios, strategies, runs;
  for (scenario_kind k : o.scenarios) {
    if (!scenarios.empty()) scenarios += ", ";
    scenarios += fmt::format("{{\"name\": {}, \"description\": {}}}", json_quote(to_string(k)),
                             json_quote(scenario(k, o.rate, o.shape).describe()));
  }
  for (strategy_kind k : o.strategies) {
    if (!strategies.empty()) strategies += ", ";
    strategies += fmt::format("{{\"name\": {}, \"label\": {}, \"color\": {}}}", json_quote(to_string(k)),
                              json_quote(label(o, k)), json_quote(strategy_color(k)));
  }
  for (scenario_kind sc : o.scenarios) {
    for (strategy_kind st : o.strategies) {
      if (!runs.empty()) runs += ", ";
      runs += fmt::format("{{\"scenario\": {}, \"strategy\": {}}}", json_quote(to_string(sc)), json_quote(to_string(st)));
    }
  }
  return fmt::format(
      "\"title\": \"ringflow-lab: overflow strategies under a producer faster than its consumer\", "
      "\"duration_s\": {}, \"rate\": {}, \"cost\": {}, \"capacity\": {}, \"sample_capacity\": {}, \"batch\": {}, "
      "\"payload_bytes\": {}, \"threads\": {}, \"sample_every_s\": {}, \"points_per_run\": {}, "
      "\"scenarios\": [{}], \"strategies\": [{}], \"runs\": [{}]",
      json_number(std::chrono::duration<double>(o.duration).count()), json_number(o.rate), json_quote(to_string(o.cost)),
      o.capacity, o.sample_capacity, o.batch, o.payload, o.threads,
      json_number(std::chrono::duration<double>(o.sample_every).count()), points_per_run, scenarios, strategies, runs);
}

}  // namespace

dashboard_feed::dashboard_feed(const options& o, std::size_t points_per_run) {
  if (points_per_run < 2 || points_per_run > 1'000'000) {
    throw std::invalid_argument("dashboard_feed: points_per_run must be 2..1000000");
  }
  run_count_ = o.scenarios.size() * o.strategies.size();
  min_gap_s_ = std::chrono::duration<double>(o.duration).count() / static_cast<double>(points_per_run);
  queue("meta", meta_members(o, points_per_run));
}

void dashboard_feed::attach(options& o) {
  o.on_sample = [this](const live_sample& s) { sample(s); };
  o.on_run_finished = [this](const run_result& r) { run_finished(r); };
}

void dashboard_feed::queue(std::string type, std::string members) {
  queued_.push_back(pending{std::move(type), std::move(members), {}});
}

void dashboard_feed::close_point() {
  if (!open_) return;
  open_ = false;
  if (queued_.empty() || queued_.back().type != "samples") queued_.push_back(pending{"samples", {}, {}});
  queued_.back().points.push_back(merged_);
}

void dashboard_feed::sample(const live_sample& s) {
  std::lock_guard lock(m_);
  if (ended_) return;
  if (s.run_index != last_run_) {
    close_point();
    last_run_ = s.run_index;
    last_kept_t_ = -std::numeric_limits<double>::infinity();
  }
  if (!open_) {
    merged_ = point{s.run_index, s.t_s, s.depth, s.latency_max_us, s.offered, s.dropped, s.delivered, s.suspended_s,
                    s.rss_kib};
    open_ = true;
  } else {
    merged_.t_s = s.t_s;
    merged_.depth = std::max(merged_.depth, s.depth);
    merged_.latency_max_us = std::max(merged_.latency_max_us, s.latency_max_us);
    merged_.offered = s.offered;
    merged_.dropped = s.dropped;
    merged_.delivered = s.delivered;
    merged_.suspended_s = s.suspended_s;
    merged_.rss_kib = std::max(merged_.rss_kib, s.rss_kib);
  }
  if (merged_.t_s - last_kept_t_ >= min_gap_s_) {
    last_kept_t_ = merged_.t_s;
    close_point();
  }
}

void dashboard_feed::run_finished(const run_result& r) {
  std::lock_guard lock(m_);
  if (ended_) return;
  close_point();
  // The runs end in the order the meta event lists them.
  queue("run", fmt::format("\"run\": {}, \"result\": {}", runs_finished_++, render_run_json(r)));
}

void dashboard_feed::finished(const results& r) {
  std::lock_guard lock(m_);
  if (ended_) return;
  close_point();
  bool ok = true;
  for (const run_result& x : r.runs) ok = ok && x.accounting_ok();
  queue("done", fmt::format("\"complete\": {}, \"wall_s\": {}, \"accounting_ok\": {}",
                            r.runs.size() == run_count_ ? "true" : "false", json_number(r.wall_s), ok ? "true" : "false"));
  ended_ = true;
}

void dashboard_feed::failed(std::string_view message) {
  std::lock_guard lock(m_);
  if (ended_) return;
  close_point();
  queue("failed", "\"message\": " + json_quote(message));
  ended_ = failed_ = true;
}

std::vector<dashboard_feed::event> dashboard_feed::flush() {
  std::lock_guard lock(m_);
  std::vector<event> out;
  out.reserve(queued_.size());
  for (pending& p : queued_) {
    event e;
    e.seq = ++seq_;
    e.type = p.type;
    if (p.type == "samples") {
      std::string pts;
      for (const point& x : p.points) {
        if (!pts.empty()) pts += ", ";
        pts += fmt::format("[{}, {}, {}, {}, {}, {}, {}, {}, {}]", x.run, short_number(x.t_s), x.depth,
                           x.latency_max_us < 0 ? std::string("null") : short_number(x.latency_max_us), x.offered,
                           x.dropped, short_number(x.suspended_s), x.delivered, x.rss_kib);
      }
      p.members = "\"points\": [" + pts + "]";
    }
    e.json = fmt::format("{{\"seq\": {}, \"type\": {}, {}}}", e.seq, json_quote(e.type), p.members);
    if (e.type == "done" || e.type == "failed") ended_flushed_ = true;
    history_.push_back(e);
    out.push_back(std::move(e));
  }
  queued_.clear();
  return out;
}

std::string dashboard_feed::snapshot() const {
  std::lock_guard lock(m_);
  std::size_t size = 64;
  for (const event& e : history_) size += e.json.size() + 2;
  std::string out;
  out.reserve(size);
  out += fmt::format("{{\"seq\": {}, \"done\": {}, \"events\": [", seq_, ended_flushed_ ? "true" : "false");
  for (std::size_t i = 0; i < history_.size(); ++i) {
    if (i) out += ",\n";
    out += history_[i].json;
  }
  out += "]}\n";
  return out;
}

bool dashboard_feed::ended() const {
  std::lock_guard lock(m_);
  return ended_flushed_;
}

bool dashboard_feed::has_failed() const {
  std::lock_guard lock(m_);
  return failed_ && ended_flushed_;
}

}  // namespace ringflow::lab
