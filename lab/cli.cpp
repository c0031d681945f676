#include "cli.hpp"

#include <CLI/CLI.hpp>
#include <ringflow/features.hpp>

#include <cmath>
#include <exception>
#include <sstream>
#include <stdexcept>

namespace ringflow::lab {

namespace {

// CLI11 validators return "" when the value is fine, else the message.
std::string check_scenarios(const std::string& v) {
  try {
    parse_scenario_list(v);
    return {};
  } catch (const std::exception& e) {
    return std::string(e.what()) + " (choose all, or a comma list of balanced,overload,bursts,stall)";
  }
}

std::string check_strategies(const std::string& v) {
  try {
    parse_strategy_list(v);
    return {};
  } catch (const std::exception& e) {
    return std::string(e.what()) + " (choose all, or a comma list of block,drop_incoming,drop_oldest,sample,request)";
  }
}

// --serve PORT or HOST:PORT ([::1]:PORT for an IPv6 literal).
void parse_serve(const std::string& v, cli_options& c) {
#if RINGFLOW_HAS_HTTP
  std::string host = c.serve_host, port = v;
  if (const std::size_t colon = v.rfind(':'); colon != std::string::npos) {
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) throw std::invalid_argument("--serve: empty host in '" + v + "'");
  }
  std::size_t used = 0;
  unsigned long n = 0;
  try {
    n = std::stoul(port, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (port.empty() || used != port.size() || n > 65535 || port.front() == '-' || port.front() == '+') {
    throw std::invalid_argument("--serve: the port must be 0..65535, got '" + port + "'");
  }
  c.serve_host = host;
  c.serve_port = static_cast<std::uint16_t>(n);
#else
  (void)c;
  throw std::invalid_argument("--serve " + v +
                              ": this ringflow-lab was built without the HTTP server (install libhttp-parser-dev, "
                              "then reconfigure with -Dhttp=enabled)");
#endif
}

}  // namespace

cli_result parse_cli(const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  for (const std::string& a : argv) ptrs.push_back(a.c_str());
  return parse_cli(static_cast<int>(ptrs.size()), ptrs.data());
}

cli_result parse_cli(int argc, const char* const* argv) {
  cli_result res;
  const options defaults;
  std::string scenarios = "all", strategies = "all", cost(to_string(defaults.cost));
  double duration_s = std::chrono::duration<double>(defaults.duration).count();
  double rate = defaults.rate;
  std::size_t capacity = defaults.capacity, sample_capacity = defaults.sample_capacity, batch = defaults.batch;
  std::size_t payload = defaults.payload;
  unsigned threads = defaults.threads;
  cli_options c;

  CLI::App app{
      "ringflow-lab: the backpressure lab. A producer faster than its consumer, connected by a channel with each\n"
      "overflow strategy (block, drop_incoming, drop_oldest, sample) or by a request(n) subscription, over four\n"
      "scenarios. Prints what each strategy cost and kept: offered, delivered, dropped, left in the buffer, the\n"
      "producer's throughput and suspended time, latency p50/p99/max, buffer high-water, peak RSS and freshness.\n"
      "The defaults run 4 scenarios x 5 strategies x 1 s: about 20 s.",
      "ringflow-lab"};
  app.option_defaults()->always_capture_default();
  app.add_option("--scenario", scenarios,
                 "all, or a comma list of: balanced (control, producer 0.8x the consumer), overload (2x), bursts "
                 "(10x for 20 ms, 0.1x for 230 ms), stall (0.8x; the consumer pauses 100 ms every second)")
      ->check(CLI::Validator(check_scenarios, "SCENARIOS"));
  app.add_option("--strategy", strategies,
                 "all, or a comma list of: block, drop_incoming, drop_oldest, sample, request (request(n) over a "
                 "publisher/subscription)")
      ->check(CLI::Validator(check_strategies, "STRATEGIES"));
  app.add_option("--duration", duration_s, "seconds per (scenario, strategy) run")->check(CLI::Range(0.001, 3600.0));
  app.add_option("--rate", rate, "the consumer's rate, items per second (the producer's rate is a multiple of it)")
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--capacity", capacity, "channel capacity for block, drop_incoming and drop_oldest")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  app.add_option("--sample-capacity", sample_capacity,
                 "channel capacity for sample (1: a conflated channel, the freshest value always waits)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  app.add_option("--batch", batch, "request(n)'s n: at most n values requested and not yet processed (the consumer asks for n, then "
                 "replenishes what it has processed)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  app.add_option("--cost", cost,
                 "how the consumer's per-item cost (1/rate) is simulated: timer (an io_uring timer paces it; exact "
                 "rates even on a busy machine) or spin (busy-waits on the clock, occupying its core like real work)")
      ->check(CLI::IsMember({"timer", "spin"}));
  app.add_option("--payload", payload, "heap bytes each item carries, so buffered values show in RSS")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20));
  app.add_option("--threads", threads,
                 "runtime worker threads; the producer runs on worker 0, the consumer on worker 1 (with 1 thread they "
                 "share one)")
      ->check(CLI::Range(1u, 64u));
  app.add_option("--redis", c.lab.redis,
                 "broker mode: the buffer between producer and consumer is a Redis stream on this server (consumer "
                 "group, acks; capacity bounds the group's backlog, request's n its unacked entries); sample is skipped")
      ->type_name("HOST:PORT");
  app.add_flag("--json", c.json, "print one JSON document on stdout instead of the table (no progress line)");
  app.add_option("--plot", c.plot,
                 "write an SVG: per scenario, buffer depth and latency over time for every strategy, and a summary "
                 "chart")
      ->type_name("FILE.svg");
  app.add_flag("-q,--quiet", c.quiet, "no progress line");
  std::string serve;
  app.add_option("--serve", serve,
                 "also show the run live in a browser: serve the dashboard on PORT of 127.0.0.1 (HOST:PORT for another "
                 "address; 0: a free port), print its URL, and keep serving the results after the run until Ctrl-C")
      ->type_name("[HOST:]PORT");

  std::ostringstream out, err;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 numbers its errors (105, 109...); a usage error is 2 here, as for a bad value.
    res.exit_code = app.exit(e, out, err) == 0 ? 0 : 2;
    res.out = out.str();
    res.message = err.str();
    return res;
  }
  try {
    c.lab.scenarios = parse_scenario_list(scenarios);
    c.lab.strategies = parse_strategy_list(strategies);
    c.lab.duration = std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(duration_s * 1e9)));
    c.lab.rate = rate;
    c.lab.capacity = capacity;
    c.lab.sample_capacity = sample_capacity;
    c.lab.batch = batch;
    c.lab.cost = *parse_cost(cost);
    c.lab.payload = payload;
    c.lab.threads = threads;
    c.lab.validate();
    if (!serve.empty()) parse_serve(serve, c);
  } catch (const std::exception& e) {
    res.exit_code = 2;
    res.message = std::string("ringflow-lab: ") + e.what() + "\nRun with --help for more information.\n";
    return res;
  }
  res.options = std::move(c);
  return res;
}

}  // namespace ringflow::lab
