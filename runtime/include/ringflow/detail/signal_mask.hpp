// signal_mask: how signal_set makes its signals blocked in every thread that
// could otherwise take them (a signalfd sees only signals that no thread
// lets through).
//
// - Workers: the signals claimed by live signal_sets (process-wide) change
//   `claimed_signals_generation`; each worker compares it with the
//   generation it applied at the top of every loop turn (one relaxed load)
//   and, when it moved, sets its thread's mask to its own initial mask plus
//   the claimed signals. A new claim wakes every worker and waits until all
//   have applied it; a release wakes them and returns.
// - Blocking-pool threads block every asynchronous signal from birth.
// - A thread in runtime::block_on (from before its task starts) or in
//   join_handle::wait blocks every asynchronous signal while it waits
//   (signal_shield), so a signal sent to the process reaches a worker: one
//   that claims it leaves it pending for the signalfd, else its usual
//   disposition applies there.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdint>

namespace ringflow::detail {

inline std::atomic<std::uint64_t> claimed_signals_generation{0};

// On a worker's thread: sets its mask for the current claims and stores the
// generation it applied in `applied`.
void apply_claimed_signals(std::atomic<std::uint64_t>& applied) noexcept;

// Every signal except the synchronous ones (a fault must reach its thread).
sigset_t async_signals() noexcept;

// Blocks every asynchronous signal in this thread for its lifetime.
class signal_shield {
 public:
  signal_shield() noexcept;
  ~signal_shield();
  signal_shield(const signal_shield&) = delete;
  signal_shield& operator=(const signal_shield&) = delete;

 private:
  sigset_t old_;
};

}  // namespace ringflow::detail
