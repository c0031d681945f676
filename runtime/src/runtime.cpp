#include <ringflow/runtime.hpp>

#include <stdexcept>

namespace ringflow {

runtime::runtime(runtime_options opts) {
  if (opts.threads == 0) throw std::invalid_argument("ringflow::runtime: threads must be at least 1");
  if (opts.threads > 1024) throw std::invalid_argument("ringflow::runtime: threads must be at most 1024");
  if (opts.ring_entries == 0 || opts.ring_entries > 32768) {
    throw std::invalid_argument("ringflow::runtime: ring_entries must be in 1..32768");
  }
  core_ = std::make_unique<detail::runtime_core>(opts.threads, opts.ring_entries);
}

runtime::~runtime() = default;

}  // namespace ringflow
