// The table ringflow-lab prints at the end: one group per scenario, one row
// per strategy, and a legend saying what each column measures.
#pragma once

#include <string>

#include "metrics.hpp"

namespace ringflow::lab {

std::string render_table(const results& r);

}  // namespace ringflow::lab
