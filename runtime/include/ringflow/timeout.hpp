// timeout(d, t): runs t with a deadline.
//
//   std::optional<int> v = co_await ringflow::timeout(100ms, fetch());
//   if (!v) { /* fetch() was cancelled: its frame is already destroyed */ }
//
// If t finishes first, its value (or exception) is returned and the timer is
// withdrawn. If d elapses first, t is cancelled by destroying its frame: every
// awaitable it was suspended in withdraws its registration (channel waits,
// io_uring operations are cancelled and their completions awaited), so
// nothing leaks and no value is lost. For task<void>, timeout returns
// task<bool>: true when t finished in time.
//
// Cancel safety: destroying a task suspended in timeout destroys t and
// cancels the timer.
//
// Every duration is valid (none throws). d <= 0, nanoseconds::min()
// included: t still starts and runs up to its first suspension; if it
// finished by then its result is returned, else it is cancelled as soon as
// the worker next looks at its ring. Large ones are effectively forever:
// timeout(nanoseconds::max(), t) waits for t (~292 years) and returns its
// value. The timer is a relative io_uring timeout (no deadline is computed),
// so no d overflows.
#pragma once

#include <chrono>
#include <optional>

#include <ringflow/task.hpp>

namespace ringflow {

// co_await timeout(d, t) -> std::optional<T>: t's value, or nullopt when d
// elapsed first and t was cancelled (its frame destroyed).
template <class T>
task<std::optional<T>> timeout(std::chrono::nanoseconds d, task<T> t);

// co_await timeout(d, t) -> bool: true when t finished within d.
inline task<bool> timeout(std::chrono::nanoseconds d, task<void> t);

}  // namespace ringflow

// The race between the child and the timer, and the definitions above.
#include <ringflow/detail/timeout_race.hpp>
