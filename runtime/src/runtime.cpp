#include <ringflow/runtime.hpp>

#include <algorithm>
#include <stdexcept>

namespace ringflow {

runtime::runtime(runtime_options opts) {
  if (opts.threads == 0) throw std::invalid_argument("ringflow::runtime: threads must be at least 1");
  if (opts.threads > 1024) throw std::invalid_argument("ringflow::runtime: threads must be at most 1024");
  if (opts.ring_entries == 0 || opts.ring_entries > 32768) {
    throw std::invalid_argument("ringflow::runtime: ring_entries must be in 1..32768");
  }
  if (opts.blocking_threads == 0) {
    throw std::invalid_argument("ringflow::runtime: blocking_threads must be at least 1");
  }
  if (opts.idle_spin.count() < 0) throw std::invalid_argument("ringflow::runtime: idle_spin must not be negative");
  // Capped at 1 s: longer spins buy nothing, and the deadline must not
  // overflow. (A lone worker spins only while a blocking job's result is due.)
  std::int64_t spin = std::min<std::int64_t>(opts.idle_spin.count(), 1'000'000'000);
  core_ = std::make_unique<detail::runtime_core>(opts.threads, opts.ring_entries, spin, opts.blocking_threads);
}

runtime::~runtime() {
  if (!core_) return;  // moved from
  if (detail::tls_worker && &detail::tls_worker->core() == core_.get()) {
    // One of our own tasks: its thread cannot join itself. Stop without
    // waiting; the workers free everything (this task's frame included, at
    // its next suspension) and the last one frees the core.
    core_.release()->stop_and_free_when_done();
  }
}

detail::runtime_core& runtime::live_core() const {
  if (!core_) throw std::logic_error("ringflow::runtime: used after move");
  return *core_;
}

}  // namespace ringflow
