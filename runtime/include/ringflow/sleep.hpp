// co_await ringflow::sleep_for(10ms): an io_uring timeout; no thread sleeps.
//
// Every duration is valid. d <= 0 (nanoseconds::min() included) behaves as
// yield(): the other ready tasks run, then the caller resumes. Large ones are
// passed to the kernel as they are, which saturates them: nanoseconds::max()
// (~292 years) sleeps for good, until the task is cancelled or its runtime
// is destroyed.
//
// Cancel safety: destroying a task suspended here cancels the timeout in the
// kernel (IORING_OP_ASYNC_CANCEL) and waits for its completion before the
// frame goes.
#pragma once

#include <chrono>

#include <ringflow/task.hpp>

namespace ringflow {

// Suspends the calling task for at least d (d <= 0: behaves as yield();
// nanoseconds::max(): until cancelled). Never throws for a duration; awaited
// outside a runtime: std::logic_error.
inline task<void> sleep_for(std::chrono::nanoseconds d);

}  // namespace ringflow

// The timer operation (also used by select's after() and rate_limiter) and
// the definition of sleep_for().
#include <ringflow/detail/timer_op.hpp>
