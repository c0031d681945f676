// ringflow-lab --serve [HOST:]PORT: the lab live in a browser. Built only
// with the http layer (RINGFLOW_HAS_HTTP); without it --serve is a usage
// error (cli.cpp).
//
//   ringflow-lab --serve 8080        # then open http://127.0.0.1:8080/
//
// The lab runs on its own runtime, on a thread of its own, exactly as
// without --serve; a second runtime (one worker) serves HTTP and outlives
// it. The lab's sampler hands its points to a dashboard_feed (a mutex, no
// runtime involved); a task on the server's runtime flushes the feed every
// 100 ms into a broadcast<http::sse_event>, which every open page follows.
//
//   GET /             the page (lab/dashboard/index.html, compiled in)
//   GET /dashboard.js its script (lab/dashboard/dashboard.js; no library, no CDN)
//   GET /series.json  every event so far (dashboard_feed::snapshot): a page
//                     that connects late, or lagged, starts from it
//   GET /events       text/event-stream of the events from now on (id: seq)
//
// After the run the table (or --json) is printed as usual, and the server
// goes on serving the finished results until SIGINT or SIGTERM. A signal
// during the run stops the lab after its current (scenario, strategy) run.
// Returns the exit status: the report's (0, or 3 for an accounting
// mismatch), 1 when the lab failed, 130 when stopped before the last run.
// Throws std::system_error when the port cannot be bound.
#pragma once

#include <functional>

#include "cli.hpp"
#include "metrics.hpp"

namespace ringflow::lab {

int serve_dashboard(cli_options& c, const std::function<int(const results&)>& report);

}  // namespace ringflow::lab
