// ringflow-lab: the backpressure lab (see lab.hpp, and --help).
//
//   ringflow-lab                               # every scenario x strategy, ~20 s, a table
//   ringflow-lab --scenario overload --json    # one JSON document on stdout
//   ringflow-lab --plot lab.svg                # also draw depth and latency over time
//   ringflow-lab --serve 8080                  # and live in a browser (lab/serve.hpp)
//
// Exit status: 0 done; 1 the lab could not run (io_uring unavailable, the
// plot cannot be written); 2 bad arguments; 3 an accounting identity failed
// (a bug: the table marks the run).
#include <cstdio>
#include <exception>
#include <fstream>

#include <fmt/core.h>

#include "cli.hpp"
#include "lab.hpp"
#include "progress_line.hpp"
#include "report_json.hpp"
#include "report_table.hpp"
#include "svg_plot.hpp"

#include <ringflow/features.hpp>
#if RINGFLOW_HAS_HTTP
#include "serve.hpp"
#endif

int main(int argc, char** argv) {
  using namespace ringflow::lab;
  cli_result cli = parse_cli(argc, argv);
  if (!cli.options) {
    std::fputs(cli.out.c_str(), stdout);
    std::fputs(cli.message.c_str(), stderr);
    return cli.exit_code;
  }
  cli_options& c = *cli.options;
  try {
    if (!c.plot.empty()) {
      // Fail now rather than after the whole run.
      std::ofstream probe(c.plot, std::ios::app);
      if (!probe) {
        fmt::print(stderr, "ringflow-lab: cannot write the plot to {}\n", c.plot);
        return 1;
      }
    }
    progress_line line(stderr, !c.json && !c.quiet);
    if (line.enabled()) c.lab.on_progress = [&line](const progress& p) { line.update(p); };
    auto report = [&](const results& r) -> int {
      line.clear();
      if (c.json) {
        fmt::print("{}", render_json(r));
      } else {
        fmt::print("{}", render_table(r));
      }
      std::fflush(stdout);
      if (!c.plot.empty()) {
        write_svg(r, c.plot);
        if (!c.json) fmt::print(stderr, "plot written to {}\n", c.plot);
      }
      for (const run_result& run_r : r.runs) {
        if (!run_r.accounting_ok()) {
          fmt::print(stderr, "ringflow-lab: accounting mismatch in {} x {}\n", to_string(run_r.scenario),
                     to_string(run_r.strategy));
          return 3;
        }
      }
      return 0;
    };
#if RINGFLOW_HAS_HTTP
    if (c.serve_port) return serve_dashboard(c, report);
#endif
    return report(run(c.lab));
  } catch (const std::exception& e) {
    fmt::print(stderr, "ringflow-lab: {}\n", e.what());
    return 1;
  }
}
