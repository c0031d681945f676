#include <ringflow/runtime.hpp>

#include <stdexcept>

namespace ringflow {

runtime::runtime(runtime_options opts) {
  if (opts.threads == 0) throw std::invalid_argument("ringflow::runtime: threads must be at least 1");
  if (opts.threads > 1024) throw std::invalid_argument("ringflow::runtime: threads must be at most 1024");
  if (opts.ring_entries == 0 || opts.ring_entries > 32768) {
    throw std::invalid_argument("ringflow::runtime: ring_entries must be in 1..32768");
  }
  if (opts.idle_spin.count() < 0) throw std::invalid_argument("ringflow::runtime: idle_spin must not be negative");
  // A lone worker has nobody to receive hand-offs from: it never spins.
  std::int64_t spin = opts.threads > 1 ? opts.idle_spin.count() : 0;
  core_ = std::make_unique<detail::runtime_core>(opts.threads, opts.ring_entries, spin);
}

runtime::~runtime() = default;

}  // namespace ringflow
