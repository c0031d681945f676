#include "serve.hpp"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <fmt/core.h>

#include <ringflow/broadcast.hpp>
#include <ringflow/http.hpp>
#include <ringflow/http_sse.hpp>
#include <ringflow/join_handle.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/signal.hpp>
#include <ringflow/sleep.hpp>
#include <ringflow/stop.hpp>

#include "dashboard_feed.hpp"
#include "dashboard_files.hpp"  // generated from lab/dashboard/ (lab/meson.build)
#include "lab.hpp"

namespace ringflow::lab {

namespace {

namespace http = ringflow::http;
using namespace std::chrono_literals;

// What the server's tasks share; lives in serve_dashboard's frame, which
// outlives the server's runtime.
struct dashboard {
  explicit dashboard(const options& o) : feed(o) {}
  dashboard_feed feed;
  // Each page's receiver gets its own buffer (serve_sse's options); a page
  // that falls behind loses events, notices the gap in their ids and
  // reloads the snapshot.
  ringflow::broadcast<http::sse_event> events{64};
};

// The lab, on a thread of its own (it makes and drives its own runtime).
class lab_thread {
 public:
  lab_thread(cli_options& c, const std::function<int(const results&)>& report, dashboard& d, std::string url)
      : c_(c), report_(report), d_(d), url_(std::move(url)) {}

  // Called on a worker of the server's runtime once its signal_set exists, so
  // the new thread (and the lab's workers it starts) inherit SIGINT and
  // SIGTERM blocked: they stay pending for the server's signal_set.
  void start() {
    thread_ = std::jthread([this](std::stop_token stop) { body(std::move(stop)); });
  }
  // Stops the lab after its current run and waits for it.
  void stop_and_join() {
    if (!thread_.joinable()) return;
    thread_.request_stop();
    thread_.join();
  }
  bool over() const noexcept { return over_.load(std::memory_order_acquire); }
  bool complete() const noexcept { return complete_.load(std::memory_order_acquire); }
  int exit_code() const noexcept { return exit_code_.load(std::memory_order_acquire); }

 private:
  void body(std::stop_token stop) {
    options o = c_.lab;
    o.stop = std::move(stop);
    try {
      results r = run(o);
      const bool complete = r.runs.size() == o.scenarios.size() * o.strategies.size();
      d_.feed.finished(r);
      exit_code_.store(report_(r), std::memory_order_release);
      complete_.store(complete, std::memory_order_release);
      if (complete) {
        fmt::print(stderr, "ringflow-lab: the run is over; the dashboard shows its results at {} until Ctrl-C\n", url_);
      }
    } catch (const std::exception& e) {
      d_.feed.failed(e.what());
      fmt::print(stderr, "ringflow-lab: {}\n", e.what());
      exit_code_.store(1, std::memory_order_release);
    }
    over_.store(true, std::memory_order_release);
  }

  cli_options& c_;
  const std::function<int(const results&)>& report_;
  dashboard& d_;
  std::string url_;
  std::atomic<bool> over_{false}, complete_{false};
  std::atomic<int> exit_code_{0};
  std::jthread thread_;  // last: joined before the members it uses go
};

void no_store(http::response& res, std::string_view type) {
  res.set_header("Content-Type", type);
  res.set_header("Cache-Control", "no-store");
}

task<void> handle(dashboard& d, http::request& req, http::response& res) {
  std::string_view path = req.target();
  path = path.substr(0, path.find('?'));
  const bool get = req.method() == "GET", head = req.method() == "HEAD";
  if (path == "/events" && get) {
    // serve_sse sets the headers; a page that lags reloads the snapshot.
    http::sse_options opts;
    opts.buffer = 64;
    co_await http::serve_sse(res, d.events, std::move(opts));
    co_return;
  }
  if (!get && !head) {
    res.set_status(405);
    res.set_header("Allow", "GET, HEAD");
    res.set_body("method not allowed\n");
    co_return;
  }
  if (path == "/" || path == "/index.html") {
    no_store(res, "text/html; charset=utf-8");
    res.set_body(dashboard_files::index_html);
  } else if (path == "/dashboard.js") {
    no_store(res, "text/javascript; charset=utf-8");
    res.set_body(dashboard_files::dashboard_js);
  } else if (path == "/series.json") {
    no_store(res, "application/json");
    res.set_body(d.feed.snapshot());
  } else {
    res.set_status(404);
    res.set_header("Content-Type", "text/plain");
    res.set_body("not found: the dashboard is at /\n");
  }
}

// Every 100 ms: the feed's new events to every page. Ends on stop, and
// then closes the broadcast so that the open streams end too.
task<void> pump(dashboard& d, std::stop_token stop, std::stop_source& stop_all) {
  for (;;) {
    auto nap = with_stop(stop, sleep_for(100ms));
    const bool slept = co_await std::move(nap);
    for (dashboard_feed::event& e : d.feed.flush()) {
      http::sse_event ev;
      ev.data = std::move(e.json);
      ev.id = std::to_string(e.seq);
      co_await d.events.send(std::move(ev));
    }
    if (d.feed.has_failed()) stop_all.request_stop();  // nothing to show: exit with the lab's error
    if (!slept) break;
  }
  d.events.close();
}

task<void> wait_signal(signal_set& signals, std::stop_source& stop, lab_thread& lab) {
  const int sig = co_await signals.wait();
  fmt::print(stderr, "ringflow-lab: {} received, {}\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
             lab.over() ? "stopping the dashboard" : "stopping after the current run");
  stop.request_stop();
}

task<void> serve_main(dashboard& d, http::server& srv, lab_thread& lab, const std::string& url) {
  // Before the URL is printed: from then on a test or a person may signal us.
  signal_set signals({SIGINT, SIGTERM});
  std::stop_source stop;
  lab.start();
  fmt::print(stderr, "ringflow-lab: dashboard at {} (Ctrl-C to stop)\n", url);
  std::fflush(stderr);
  auto watcher = wait_signal(signals, stop, lab);  // named tasks: they outlive the statements below
  auto watching = spawn_local(std::move(watcher));
  auto pumper = pump(d, stop.get_token(), stop);
  auto pumping = spawn_local(std::move(pumper));
  co_await srv.run(stop.get_token());
  co_await std::move(pumping);
  watching.cancel();
}

std::string url_of(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}/", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

}  // namespace

int serve_dashboard(cli_options& c, const std::function<int(const results&)>& report) {
  dashboard d(c.lab);
  d.feed.attach(c.lab);
  ringflow::runtime rt({.threads = 1});
  http::server_options so;
  so.shutdown_grace = 1s;
  http::server srv(c.serve_host, *c.serve_port, [&d](http::request& req, http::response& res) { return handle(d, req, res); },
                   so);
  const std::string url = url_of(c.serve_host, srv.port());
  lab_thread lab(c, report, d, url);
  try {
    rt.block_on(serve_main(d, srv, lab, url));
  } catch (...) {
    lab.stop_and_join();
    throw;
  }
  lab.stop_and_join();
  if (lab.exit_code() != 0) return lab.exit_code();
  if (!lab.complete()) {
    fmt::print(stderr, "ringflow-lab: stopped before the last run\n");
    return 130;
  }
  return 0;
}

}  // namespace ringflow::lab
