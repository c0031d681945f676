// The dashboard's feed (ringflow-lab --serve): the events a real run
// produces, their JSON, the snapshot, the bound on points, stopping early.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

#include "checkers.hpp"
#include "dashboard_feed.hpp"
#include "fixture.hpp"
#include "lab.hpp"

using namespace std::chrono_literals;
using ringflow::lab::dashboard_feed;
using ringflow::lab::live_sample;
using ringflow::lab::options;
using ringflow::lab::results;
using ringflow::lab::scenario_kind;
using ringflow::lab::strategy_kind;

namespace {

std::vector<lab_test::json> parse_all(const std::vector<dashboard_feed::event>& events) {
  std::vector<lab_test::json> out;
  for (const auto& e : events) {
    INFO(e.json);
    lab_test::json j;
    REQUIRE_NOTHROW(j = lab_test::parse_json(e.json));
    REQUIRE(j.at("seq").n == static_cast<double>(e.seq));
    REQUIRE(j.at("type").s == e.type);
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

TEST_CASE("dashboard feed: a real run gives meta, live points of every run, each run's result, done", "[lab]") {
  options o = lab_test::smoke_options();
  o.scenarios = {scenario_kind::overload, scenario_kind::stall};
  o.strategies = {strategy_kind::block, strategy_kind::drop_oldest, strategy_kind::request};
  dashboard_feed feed(o);
  feed.attach(o);
  // Flushed while the lab runs too, as the server does.
  std::vector<dashboard_feed::event> events;
  o.on_run_finished = [&feed, &events, inner = o.on_run_finished](const ringflow::lab::run_result& r) {
    inner(r);
    for (auto& e : feed.flush()) events.push_back(std::move(e));
  };
  const results r = ringflow::lab::run(o);
  feed.finished(r);
  REQUIRE_FALSE(feed.ended());  // not before it is flushed
  for (auto& e : feed.flush()) events.push_back(std::move(e));
  REQUIRE(feed.ended());
  REQUIRE_FALSE(feed.has_failed());

  const std::vector<lab_test::json> docs = parse_all(events);
  REQUIRE(docs.size() >= 3);
  for (std::size_t i = 0; i < events.size(); ++i) REQUIRE(events[i].seq == i + 1);
  REQUIRE(events.front().type == "meta");
  REQUIRE(events.back().type == "done");
  const lab_test::json& meta = docs.front();
  REQUIRE(meta.at("runs").a.size() == 6);
  REQUIRE(meta.at("strategies").a.size() == 3);
  // The SVG plot's colours.
  REQUIRE(meta.at("strategies").a[0].at("color").s == "#1f77b4");
  REQUIRE(meta.at("strategies").a[2].at("label").s == "request(n=8)");
  REQUIRE(meta.at("scenarios").a[0].at("description").s.find("overload") != std::string::npos);
  REQUIRE(docs.back().at("complete").b);
  REQUIRE(docs.back().at("accounting_ok").b);

  std::vector<std::size_t> points(6, 0);
  std::vector<int> results_seen(6, 0);
  std::size_t last_run = 0;
  bool latency_seen = false;
  for (const lab_test::json& d : docs) {
    if (d.at("type").s == "samples") {
      for (const lab_test::json& p : d.at("points").a) {
        REQUIRE(p.a.size() == 9);
        const auto run = static_cast<std::size_t>(p.a[0].n);
        REQUIRE(run < 6);
        REQUIRE(run >= last_run);  // the runs come one after the other
        REQUIRE(results_seen[run] == 0);  // a run's points come before its result
        last_run = run;
        ++points[run];
        if (p.a[3].k == lab_test::json::kind::number) latency_seen = true;
        REQUIRE(p.a[5].n <= p.a[4].n);  // dropped <= offered
      }
    } else if (d.at("type").s == "run") {
      const auto run = static_cast<std::size_t>(d.at("run").n);
      REQUIRE(run < 6);
      ++results_seen[run];
      const lab_test::json& res = d.at("result");
      REQUIRE(res.at("scenario").s == meta.at("runs").a[run].at("scenario").s);
      REQUIRE(res.at("strategy").s == meta.at("runs").a[run].at("strategy").s);
      REQUIRE(res.at("accounting_ok").b);
    }
  }
  for (std::size_t i = 0; i < 6; ++i) {
    INFO("run " << i);
    REQUIRE(points[i] > 2);
    REQUIRE(results_seen[i] == 1);
  }
  REQUIRE(latency_seen);

  // The snapshot holds the same events, in order.
  lab_test::json snap;
  REQUIRE_NOTHROW(snap = lab_test::parse_json(feed.snapshot()));
  REQUIRE(snap.at("seq").n == static_cast<double>(events.size()));
  REQUIRE(snap.at("done").b);
  REQUIRE(snap.at("events").a.size() == events.size());
  REQUIRE(snap.at("events").a[3].at("seq").n == 4);
  REQUIRE(feed.flush().empty());
}

TEST_CASE("dashboard feed: points per run are bounded; merged points keep the peaks", "[lab]") {
  options o;
  o.scenarios = {scenario_kind::overload};
  o.strategies = {strategy_kind::block};
  o.duration = 1s;
  dashboard_feed feed(o, 10);  // one point per 100 ms
  live_sample s;
  for (int i = 0; i <= 1000; ++i) {  // a sample every millisecond
    s.t_s = i / 1000.0;
    s.depth = i == 555 ? 9999 : 1;
    s.latency_max_us = i == 777 ? 123456 : (i % 2 ? -1 : 10);
    s.offered = static_cast<std::uint64_t>(i);
    feed.sample(s);
  }
  feed.failed("io_uring: not permitted");
  feed.sample(s);  // after the end: ignored
  const auto events = feed.flush();
  const auto docs = parse_all(events);
  REQUIRE(docs.size() == 3);  // meta, samples, failed
  const auto& pts = docs[1].at("points").a;
  REQUIRE(pts.size() >= 10);
  REQUIRE(pts.size() <= 12);
  double deepest = 0, worst = 0;
  for (const auto& p : pts) {
    deepest = std::max(deepest, p.a[2].n);
    if (p.a[3].k == lab_test::json::kind::number) worst = std::max(worst, p.a[3].n);
  }
  REQUIRE(deepest == 9999);
  REQUIRE(worst == 123456);
  REQUIRE(pts.back().a[4].n == 1000);  // the latest totals
  REQUIRE(docs[2].at("message").s == "io_uring: not permitted");
  REQUIRE(feed.has_failed());
  REQUIRE_THROWS_AS(dashboard_feed(o, 1), std::invalid_argument);
}

TEST_CASE("lab: a stop request ends the lab after the current run", "[lab]") {
  options o = lab_test::smoke_options();
  o.duration = 20ms;
  std::stop_source stop;
  o.stop = stop.get_token();
  std::size_t finished = 0;
  o.on_run_finished = [&](const ringflow::lab::run_result&) {
    if (++finished == 2) stop.request_stop();
  };
  const results r = ringflow::lab::run(o);
  REQUIRE(r.runs.size() == 2);
  dashboard_feed feed(o);
  feed.finished(r);
  const auto docs = parse_all(feed.flush());
  REQUIRE_FALSE(docs.back().at("complete").b);
}

#include <ringflow/features.hpp>

#include "cli.hpp"

TEST_CASE("cli: --serve takes PORT or HOST:PORT, and says so when the http layer is not built", "[lab]") {
  using ringflow::lab::parse_cli;
#if RINGFLOW_HAS_HTTP
  auto port = parse_cli({"ringflow-lab", "--serve", "8080"});
  REQUIRE(port.options);
  REQUIRE(port.options->serve_port == 8080);
  REQUIRE(port.options->serve_host == "127.0.0.1");
  auto any = parse_cli({"ringflow-lab", "--serve", "0.0.0.0:0"});
  REQUIRE(any.options);
  REQUIRE(any.options->serve_port == 0);
  REQUIRE(any.options->serve_host == "0.0.0.0");
  auto v6 = parse_cli({"ringflow-lab", "--serve", "[::1]:65535"});
  REQUIRE(v6.options);
  REQUIRE(v6.options->serve_host == "::1");
  REQUIRE(v6.options->serve_port == 65535);
  REQUIRE_FALSE(parse_cli({"ringflow-lab"}).options->serve_port);
  for (const char* bad : {"http", "65536", "-1", "+80", ":80", "80x", "127.0.0.1:", "99999999999999999999"}) {
    INFO(bad);
    auto r = parse_cli({"ringflow-lab", "--serve", bad});
    REQUIRE_FALSE(r.options);
    REQUIRE(r.exit_code == 2);
    REQUIRE(r.message.find("--serve") != std::string::npos);
  }
#else
  auto r = parse_cli({"ringflow-lab", "--serve", "8080"});
  REQUIRE_FALSE(r.options);
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.message.find("without the HTTP server") != std::string::npos);
#endif
}
