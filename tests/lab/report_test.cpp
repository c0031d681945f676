#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include <unistd.h>

#include "checkers.hpp"
#include "fixture.hpp"
#include "progress_line.hpp"
#include "report_json.hpp"
#include "report_table.hpp"
#include "svg_plot.hpp"
#include "svg_writer.hpp"

using lab_test::json;
using ringflow::lab::results;
using ringflow::lab::run_result;

TEST_CASE("json: the document parses and holds every field of every run", "[lab]") {
  const results& r = lab_test::smoke_results();
  const std::string text = ringflow::lab::render_json(r);
  json doc;
  REQUIRE_NOTHROW(doc = lab_test::parse_json(text));
  REQUIRE(doc.k == json::kind::object);
  REQUIRE(doc.at("tool").s == "ringflow-lab");
  const json& opts = doc.at("options");
  for (const char* key : {"scenarios", "strategies", "duration_s", "rate", "capacity", "sample_capacity", "batch", "cost",
                          "payload_bytes", "threads", "sample_every_s", "shape"}) {
    INFO(key);
    REQUIRE(opts.find(key) != nullptr);
  }
  REQUIRE(opts.at("scenarios").a.size() == 4);
  REQUIRE(opts.at("strategies").a.size() == 5);
  REQUIRE(opts.at("rate").n == Approx(r.opts.rate));
  REQUIRE(opts.at("capacity").n == Approx(32));
  REQUIRE(doc.at("timing").find("item_cost_us") != nullptr);
  const json& runs = doc.at("runs");
  REQUIRE(runs.k == json::kind::array);
  REQUIRE(runs.a.size() == r.runs.size());
  const char* numeric[] = {"buffer_bound", "duration_s", "target_rate", "scheduled", "offered", "delivered", "dropped",
                           "dropped_pct", "left_in_buffer", "producer_throughput", "producer_suspended_s",
                           "producer_suspended_pct", "producer_suspensions", "blocked_sends", "rejected_sends",
                           "on_drop_calls", "high_water", "peak_rss_growth_kib"};
  for (std::size_t i = 0; i < runs.a.size(); ++i) {
    const json& j = runs.a[i];
    const run_result& x = r.runs[i];
    INFO("run " << i);
    REQUIRE(j.at("scenario").s == to_string(x.scenario));
    REQUIRE(j.at("strategy").s == to_string(x.strategy));
    for (const char* key : numeric) {
      INFO(key);
      REQUIRE(j.at(key).k == json::kind::number);
    }
    for (const char* q : {"latency_us", "freshness_behind"}) {
      for (const char* key : {"p50", "p99", "max", "mean"}) {
        INFO(q << "." << key);
        REQUIRE(j.at(q).at(key).k == json::kind::number);
      }
    }
    for (const char* key : {"sent", "received", "dropped"}) REQUIRE(j.at("channel_stats").at(key).k == json::kind::number);
    REQUIRE(j.at("accounting_ok").k == json::kind::boolean);
    REQUIRE(j.at("accounting_ok").b);
    // The identity, read back from the JSON.
    REQUIRE(j.at("offered").n == j.at("delivered").n + j.at("dropped").n + j.at("left_in_buffer").n);
    REQUIRE(j.at("latency_us").at("p99").n == Approx(x.latency_us.p99));
  }
}

TEST_CASE("json checker: rejects what is not JSON", "[lab]") {
  for (const char* bad : {"", "{", "{\"a\": 1,}", "[1 2]", "{\"a\": 01}", "{\"a\": nan}", "{\"a\": 1} x", "{a: 1}",
                          "{\"a\": 1, \"a\": 2}", "\"tab\there\""}) {
    INFO(bad);
    REQUIRE_THROWS(lab_test::parse_json(bad));
  }
  REQUIRE(lab_test::parse_json(R"({"a": [1, -2.5e3, true, null, "x\"y"], "b": {}})").at("a").a.size() == 5);
}

TEST_CASE("svg: the plot is well-formed XML with a panel per scenario and the summary", "[lab]") {
  const results& r = lab_test::smoke_results();
  const std::string svg = ringflow::lab::render_svg(r);
  INFO(svg.substr(0, 400));
  REQUIRE(lab_test::xml_problem(svg).empty());
  REQUIRE(svg.find("<svg") != std::string::npos);
  for (const char* scenario : {"balanced", "overload", "bursts", "stall"}) CHECK(svg.find(scenario) != std::string::npos);
  CHECK(svg.find("Summary") != std::string::npos);
  CHECK(svg.find("buffer depth") != std::string::npos);
  CHECK(svg.find("latency") != std::string::npos);
  CHECK(svg.find("<path") != std::string::npos);

  // write_svg writes the same document, and names the path when it cannot.
  char tmpl[] = "/tmp/ringflow-lab-test-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  ::close(fd);
  ringflow::lab::write_svg(r, tmpl);
  std::ifstream in(tmpl);
  std::stringstream got;
  got << in.rdbuf();
  ::unlink(tmpl);
  REQUIRE(got.str() == svg);
  REQUIRE_THROWS_WITH(ringflow::lab::write_svg(r, "/nonexistent-dir/x.svg"), Catch::Contains("/nonexistent-dir/x.svg"));
}

TEST_CASE("svg writer: escapes text and balances groups; the checker catches broken XML", "[lab]") {
  ringflow::lab::svg_writer w(100, 50);
  w.begin_group("a <tooltip> & \"quotes\"");
  w.text(1, 2, "p99 < 5 ms & \"more\"");
  w.path({{{0, 0}, {1, 1}}, {}, {{2, 2}}}, "#000");
  REQUIRE_THROWS_AS(w.finish(), std::logic_error);  // the group is open
  w.end_group();
  REQUIRE_THROWS_AS(w.end_group(), std::logic_error);
  const std::string doc = w.finish();
  REQUIRE(lab_test::xml_problem(doc).empty());
  REQUIRE(doc.find("p99 &lt; 5 ms &amp; &quot;more&quot;") != std::string::npos);

  for (const char* bad : {"<svg><g></svg>", "<svg a=\"1\" a=\"2\"/>", "<svg a=1/>", "<svg>a < b</svg>", "<svg>&nbsp;</svg>",
                          "<svg/><svg/>", "<svg>", "text<svg/>", "<svg a=\"<\"/>"}) {
    INFO(bad);
    REQUIRE_FALSE(lab_test::xml_problem(bad).empty());
  }
}

TEST_CASE("table: a header per scenario, a row per run, the legend", "[lab]") {
  const results& r = lab_test::smoke_results();
  const std::string t = ringflow::lab::render_table(r);
  // The rows, in order: each run's label starts a line.
  std::vector<std::string> labels;
  std::istringstream lines(t);
  for (std::string line; std::getline(lines, line);) {
    for (const ringflow::lab::strategy_kind k : ringflow::lab::all_strategies) {
      if (line.rfind("  " + std::string(to_string(k)) + "(", 0) == 0) labels.push_back(line.substr(2, line.find(' ', 2) - 2));
    }
  }
  REQUIRE(labels.size() == r.runs.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const run_result& x = r.runs[i];
    const std::string want = x.strategy == ringflow::lab::strategy_kind::request
                                 ? "request(n=" + std::to_string(x.buffer_bound) + ")"
                                 : std::string(to_string(x.strategy)) + "(" + std::to_string(x.buffer_bound) + ")";
    REQUIRE(labels[i] == want);
  }
  REQUIRE(t.find("offered = delivered + dropped + left holds for every run.") != std::string::npos);
  REQUIRE(t.find("strategy(buffer)") != std::string::npos);
}

TEST_CASE("progress line: formatted, and silent when stderr is not a terminal", "[lab]") {
  ringflow::lab::progress p;
  p.run_index = 2;
  p.run_count = 20;
  p.scenario = ringflow::lab::scenario_kind::bursts;
  p.strategy = ringflow::lab::strategy_kind::sample;
  p.elapsed_s = 0.5;
  p.duration_s = 1;
  p.offered = 123;
  p.delivered = 45;
  p.depth = 6;
  const std::string s = ringflow::lab::format_progress(p);
  REQUIRE(s.find("[3/20] bursts x sample") != std::string::npos);
  REQUIRE(s.find("offered 123") != std::string::npos);
  REQUIRE(s.find('\n') == std::string::npos);

  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  ringflow::lab::progress_line line(f);
  REQUIRE_FALSE(line.enabled());  // a file is not a terminal
  line.update(p);
  line.clear();
  REQUIRE(std::ftell(f) == 0);    // nothing was written
  std::fclose(f);
}
