// ringflow-lab as a library: every chosen scenario x strategy, one after the
// other, on one runtime of options::threads workers (2 by default: the
// producer on worker 0, the consumer on worker 1).
//
//   ringflow::lab::options o;
//   o.duration = std::chrono::milliseconds(100);
//   ringflow::lab::results r = ringflow::lab::run(o);
//   for (const auto& run : r.runs) assert(run.accounting_ok());
//
// Throws std::invalid_argument for bad options (options::validate) and
// std::system_error when io_uring cannot be set up.
#pragma once

#include "metrics.hpp"
#include "options.hpp"

namespace ringflow::lab {

results run(const options& o);

}  // namespace ringflow::lab
