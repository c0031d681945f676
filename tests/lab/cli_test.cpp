#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "checkers.hpp"
#include "cli.hpp"

using namespace std::chrono_literals;
using ringflow::lab::cli_result;
using ringflow::lab::parse_cli;
using ringflow::lab::scenario_kind;
using ringflow::lab::strategy_kind;

namespace {

cli_result parse(std::vector<std::string> args) {
  args.insert(args.begin(), "ringflow-lab");
  return parse_cli(args);
}

}  // namespace

TEST_CASE("cli: the defaults are the lab's defaults", "[lab]") {
  cli_result c = parse({});
  REQUIRE(c.options);
  const ringflow::lab::options& o = c.options->lab;
  REQUIRE(o.scenarios.size() == 4);
  REQUIRE(o.strategies.size() == 5);
  REQUIRE(o.duration == 1s);
  REQUIRE(o.rate == 10000);
  REQUIRE(o.capacity == 256);
  REQUIRE(o.batch == 16);
  REQUIRE(o.threads == 2);
  REQUIRE(o.cost == ringflow::lab::cost_kind::timer);
  REQUIRE_FALSE(c.options->json);
  REQUIRE_FALSE(c.options->quiet);
  REQUIRE(c.options->plot.empty());
}

TEST_CASE("cli: every flag is read", "[lab]") {
  cli_result c = parse({"--scenario", "stall,overload", "--strategy", "request,block", "--duration", "0.25", "--rate",
                        "2000", "--capacity", "64", "--sample-capacity", "2", "--batch", "4", "--cost", "spin",
                        "--payload", "0", "--threads", "1", "--json", "--plot", "x.svg", "--quiet"});
  INFO(c.message);
  REQUIRE(c.options);
  const ringflow::lab::options& o = c.options->lab;
  REQUIRE(o.scenarios == std::vector<scenario_kind>{scenario_kind::overload, scenario_kind::stall});
  REQUIRE(o.strategies == std::vector<strategy_kind>{strategy_kind::block, strategy_kind::request});
  REQUIRE(o.duration == 250ms);
  REQUIRE(o.rate == 2000);
  REQUIRE(o.capacity == 64);
  REQUIRE(o.sample_capacity == 2);
  REQUIRE(o.batch == 4);
  REQUIRE(o.cost == ringflow::lab::cost_kind::spin);
  REQUIRE(o.payload == 0);
  REQUIRE(o.threads == 1);
  REQUIRE(c.options->json);
  REQUIRE(c.options->quiet);
  REQUIRE(c.options->plot == "x.svg");
}

TEST_CASE("cli: bad flags and values give a message and a non-zero exit code", "[lab]") {
  const std::vector<std::vector<std::string>> bad = {
      {"--rate", "0"},          {"--rate", "-5"},         {"--rate", "fast"},          {"--capacity", "0"},
      {"--batch", "0"},         {"--threads", "0"},       {"--threads", "1000"},       {"--duration", "0"},
      {"--duration", "-1"},     {"--scenario", "nope"},   {"--strategy", "block,nope"}, {"--strategy", ""},
      {"--cost", "sleep"},      {"--payload", "-1"},      {"--bogus"},                 {"--rate"},
      {"--sample-capacity", "0"}, {"extra-positional"},
  };
  for (const auto& args : bad) {
    cli_result c = parse(args);
    INFO(args[0] << (args.size() > 1 ? " " + args[1] : std::string()));
    REQUIRE_FALSE(c.options);
    REQUIRE(c.exit_code == 2);
    REQUIRE_FALSE(c.message.empty());
  }
  cli_result c = parse({"--strategy", "block,nope"});
  REQUIRE(c.message.find("nope") != std::string::npos);
}

TEST_CASE("cli: --help documents every flag and exits 0", "[lab]") {
  cli_result c = parse({"--help"});
  REQUIRE_FALSE(c.options);
  REQUIRE(c.exit_code == 0);
  for (const char* flag : {"--scenario", "--strategy", "--duration", "--rate", "--capacity", "--sample-capacity", "--batch",
                           "--cost", "--payload", "--threads", "--json", "--plot", "--quiet", "--help"}) {
    INFO(flag);
    REQUIRE(c.out.find(flag) != std::string::npos);
  }
}

#ifdef RINGFLOW_LAB_EXE
namespace {

struct outcome {
  int status = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

outcome run_lab(const std::string& args) {
  char out_t[] = "/tmp/ringflow-lab-out-XXXXXX";
  char err_t[] = "/tmp/ringflow-lab-err-XXXXXX";
  int fo = ::mkstemp(out_t), fe = ::mkstemp(err_t);
  REQUIRE(fo >= 0);
  REQUIRE(fe >= 0);
  ::close(fo);
  ::close(fe);
  const std::string cmd = std::string("'") + RINGFLOW_LAB_EXE + "' " + args + " >" + out_t + " 2>" + err_t + " </dev/null";
  outcome o;
  o.status = std::system(cmd.c_str());
  o.out = slurp(out_t);
  o.err = slurp(err_t);
  ::unlink(out_t);
  ::unlink(err_t);
  return o;
}

}  // namespace

TEST_CASE("binary: bad flags exit non-zero with a message, never a crash", "[lab]") {
  REQUIRE(::access(RINGFLOW_LAB_EXE, X_OK) == 0);  // build lab/ringflow-lab too
  for (const char* args : {"--bogus", "--rate 0", "--strategy nope", "--duration abc", "--threads 0"}) {
    outcome o = run_lab(args);
    INFO(args << "\nstderr: " << o.err);
    REQUIRE(WIFEXITED(o.status));  // not killed by a signal
    const int code = WEXITSTATUS(o.status);
    REQUIRE(code == 2);  // a usage error (the shell would report 128+n for a signal)
    REQUIRE_FALSE(o.err.empty());
    REQUIRE(o.out.empty());
  }
}

TEST_CASE("binary: --json prints one JSON document and nothing else", "[lab]") {
  REQUIRE(::access(RINGFLOW_LAB_EXE, X_OK) == 0);
  outcome o = run_lab("--json --scenario overload --strategy block,request --duration 0.05 --rate 4000");
  INFO("stderr: " << o.err);
  REQUIRE(WIFEXITED(o.status));
  REQUIRE(WEXITSTATUS(o.status) == 0);
  lab_test::json doc;
  REQUIRE_NOTHROW(doc = lab_test::parse_json(o.out));
  REQUIRE(doc.at("runs").a.size() == 2);
  REQUIRE(doc.at("runs").a[0].at("accounting_ok").b);
  REQUIRE(o.err.find('\r') == std::string::npos);  // no progress line outside a terminal
}
#endif
