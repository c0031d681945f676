// ringflow-lab's command line (CLI11), kept apart from main() so tests can
// parse arguments without starting a process.
//
//   cli_result c = parse_cli({"ringflow-lab", "--scenario", "overload", "--rate", "5000"});
//   if (!c.options) { std::fputs(c.message.c_str(), stderr); return c.exit_code; }
//
// --help prints the help (exit_code 0, no options); a bad flag or value gives
// a message naming it and exit_code != 0; never an exception.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "options.hpp"

namespace ringflow::lab {

struct cli_options {
  options lab;
  bool json = false;
  bool quiet = false;
  std::string plot;  // empty: no plot
  // --serve [HOST:]PORT: the browser dashboard (lab/serve.hpp); needs the http layer.
  std::optional<std::uint16_t> serve_port;
  std::string serve_host = "127.0.0.1";
};

struct cli_result {
  std::optional<cli_options> options;  // set when the lab should run
  int exit_code = 0;                   // else: exit with this
  std::string out;                     // for stdout (the help)
  std::string message;                 // for stderr (the error)
};

cli_result parse_cli(const std::vector<std::string>& argv);
cli_result parse_cli(int argc, const char* const* argv);

}  // namespace ringflow::lab
