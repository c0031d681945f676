// C++20's own stop tokens as ringflow's cancellation signal, so a graceful
// shutdown needs no new type:
//
//   std::stop_source stop;                        // e.g. requested by a signal handler task
//   std::optional<int> v = co_await ringflow::with_stop(stop.get_token(), serve());
//   if (!v) { /* stop was requested first: serve() is already destroyed */ }
//
//   co_await ringflow::stopped(stop.get_token()); // resumes once stop is requested
//
// with_stop(st, t) runs t until it finishes or stop is requested, whichever
// comes first. If t finishes first, its value (or exception) is returned. If
// stop is requested first, t is cancelled as by timeout: its frame is
// destroyed on this task's worker, every wait it was suspended in withdrawn
// (channel waits, io_uring operations), and with_stop returns nullopt (false
// for task<void>). If stop was already requested, t never starts. A request
// that arrives while t is running (not suspended) takes effect at t's next
// suspension. request_stop() may be called from any thread, a task of this
// or another runtime included; it never blocks on the runtime.
//
// stopped(st) resumes once stop is requested (at once if it already was). A
// token that can never be stopped (no stop_source) waits until the awaiting
// task is cancelled.
//
// Cancel safety: destroying a task suspended in either withdraws the stop
// callback (std::stop_callback's destructor) and any resumption it queued,
// and destroys t. Both must be awaited on a runtime (std::logic_error
// otherwise). Each call allocates one small frame for the stop notice.
#pragma once

#include <atomic>
#include <coroutine>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include <ringflow/detail/worker.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

// Runs t until it finishes (its value) or stop is requested on st (nullopt:
// t is cancelled, or never started if stop was already requested).
template <class T>
task<std::optional<T>> with_stop(std::stop_token st, task<T> t);
// For task<void>: true when t finished, false when stop came first.
inline task<bool> with_stop(std::stop_token st, task<void> t);

// co_await stopped(st): resumes once stop is requested on st.
inline task<void> stopped(std::stop_token st);

}  // namespace ringflow

// The definitions, with the machinery.
#include <ringflow/detail/stop_race.hpp>
