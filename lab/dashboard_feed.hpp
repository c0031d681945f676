// dashboard_feed: the lab's live series as a numbered sequence of JSON
// events, for the browser dashboard (ringflow-lab --serve, lab/serve.cpp).
// The lab's runtime feeds it through the options hooks; the server takes
// the new events every tick and broadcasts them; a page that connects late
// first loads snapshot() (every event so far), then follows the stream.
//
//   ringflow::lab::dashboard_feed feed(o);
//   feed.attach(o);                          // sets o.on_sample and o.on_run_finished
//   std::thread lab([&] { feed.finished(ringflow::lab::run(o)); });
//   for (const auto& e : feed.flush()) send(e.seq, e.type, e.json);   // on the server, every 100 ms
//   std::string doc = feed.snapshot();       // {"seq": N, "events": [...]}
//
// Events (each one JSON object with "seq" (1, 2, ...) and "type"):
//   meta     first: the options, the scenarios (name, description), the
//            strategies (name, label, the SVG plot's colour) and the runs in order
//   samples  {"points": [[run, t_s, depth, latency_max_us | null, offered,
//            dropped, suspended_s, delivered, rss_kib], ...]}: the live series,
//            consecutive points of every sample interval, merged per flush
//   run      {"run": i, "result": {...}}: run i ended (the object is one of
//            --json's "runs")
//   done     {"complete": bool, "wall_s": s, "accounting_ok": bool}: the lab
//            ended (complete: every run ran, not stopped early)
//   failed   {"message": "..."}: the lab could not run
//
// Bounded: each run keeps at most points_per_run points (one per
// duration / points_per_run; the samples between are merged: the deepest
// buffer and the worst latency, the latest totals), so memory does not grow
// with --duration, and nothing is queued after done or failed.
//
// Thread safety: every member may be called from any thread (one mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "metrics.hpp"
#include "options.hpp"

namespace ringflow::lab {

class dashboard_feed {
 public:
  struct event {
    std::uint64_t seq = 0;
    std::string type;
    std::string json;  // the whole object, "seq" and "type" included
  };

  // Queues meta. points_per_run: 2..1'000'000, else std::invalid_argument.
  explicit dashboard_feed(const options& o, std::size_t points_per_run = 600);
  dashboard_feed(const dashboard_feed&) = delete;
  dashboard_feed& operator=(const dashboard_feed&) = delete;

  // Points o.on_sample and o.on_run_finished at this feed, which must then
  // outlive run(o).
  void attach(options& o);

  void sample(const live_sample& s);
  void run_finished(const run_result& r);
  // The lab ended (complete unless r has fewer runs than options asked for).
  void finished(const results& r);
  void failed(std::string_view message);

  // Numbers what was queued since the last flush, adds it to the history and
  // returns it, in order.
  std::vector<event> flush();
  // {"seq": last flushed, "done": bool, "events": [every flushed event]}.
  std::string snapshot() const;
  // Whether done or failed was flushed.
  bool ended() const;
  bool has_failed() const;

 private:
  struct point {
    std::size_t run = 0;
    double t_s = 0;
    std::size_t depth = 0;
    double latency_max_us = -1;
    std::uint64_t offered = 0, dropped = 0, delivered = 0;
    double suspended_s = 0;
    std::int64_t rss_kib = 0;
  };
  struct pending {
    std::string type;
    std::string members;  // after "type", without braces
    std::vector<point> points;
  };

  void queue(std::string type, std::string members);
  void close_point();  // moves the merged point into the queue

  mutable std::mutex m_;
  std::size_t run_count_ = 0, runs_finished_ = 0;
  double min_gap_s_ = 0;
  std::vector<pending> queued_;
  std::vector<event> history_;
  std::uint64_t seq_ = 0;
  bool ended_ = false, ended_flushed_ = false, failed_ = false;
  // The point being merged, and the time of the last point kept, per run.
  bool open_ = false;
  point merged_;
  std::size_t last_run_ = static_cast<std::size_t>(-1);
  double last_kept_t_ = 0;
};

}  // namespace ringflow::lab
