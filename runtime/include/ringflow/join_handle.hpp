// join_handle<T>: the result of a spawned task.
//
//   auto h = ringflow::spawn(compute());   // starts now, maybe on another worker
//   int v = co_await std::move(h);         // waits; rethrows the task's exception
//
// Dropping the handle detaches the task: it runs to completion on its own.
// An exception that ends a task whose result nobody takes (the handle was
// dropped or detached, before or after the task failed) is not lost: it goes
// to the unhandled-exception handler, once per task, on the thread that lets
// go of the task last. The default handler writes one line to stderr
// (Tokio logs a panicking detached task the same way); replace it with
// set_unhandled_exception_handler.
// Cancel safety: a task suspended in `co_await handle` may be cancelled
// (its frame destroyed, e.g. by timeout); the spawned task keeps running
// and its result is discarded when the handle goes.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <functional>
#include <stdexcept>
#include <utility>

#include <ringflow/task.hpp>

namespace ringflow {

// What `co_await handle` (and handle.wait()) throws for a task that was
// cancelled (join_handle::cancel, a task_group's cancel_all) or destroyed
// unfinished by its runtime's shutdown.
class task_cancelled : public std::runtime_error {
 public:
  task_cancelled() : std::runtime_error("ringflow: the task was cancelled") {}
};

// Receives the exception of a task that failed with nobody to take its result.
using unhandled_exception_handler = std::function<void(std::exception_ptr)>;

// Installs h for the whole process (an empty h restores the default, which
// writes "ringflow: a detached task ended with an exception: <what()>" to
// stderr) and returns the previous handler. Thread-safe. An exception thrown
// by the handler is swallowed.
unhandled_exception_handler set_unhandled_exception_handler(unhandled_exception_handler h);

namespace detail {
template <class T>
struct join_state;
}  // namespace detail

template <class T>
class [[nodiscard]] join_handle {
 public:
  join_handle() noexcept = default;
  explicit join_handle(detail::join_state<T>* s) noexcept : s_(s) {}
  join_handle(join_handle&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      if (s_) s_->release();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~join_handle() {
    if (s_) s_->release();
  }

  // Cancels the task: it is destroyed at its current suspension (or its
  // next one, if it is running), on its own worker, every wait withdrawn as
  // under timeout; `co_await handle` then throws task_cancelled. A task that
  // has not started never runs. If the task had already finished, nothing
  // changes: its result (or exception) is still there. Idempotent; from any
  // thread; a no-op on an empty handle. It returns at once: is_finished()
  // turns true when the frame is gone. A value the task had already been
  // handed (e.g. by a channel) goes with its frame.
  void cancel();

  // True once the task has finished (value, exception or cancellation).
  bool is_finished() const noexcept { return s_ && s_->is_finished(); }
  bool valid() const noexcept { return s_ != nullptr; }
  // Detaches explicitly (as dropping the handle does).
  void detach() noexcept {
    if (s_) std::exchange(s_, nullptr)->release();
  }

  // Blocks the calling thread (not a worker: that would stall its tasks)
  // until the task finishes; returns its value or rethrows. While it waits
  // the thread blocks every asynchronous signal, as runtime::block_on does
  // (see signal.hpp).
  T wait();

  // co_await handle -> T: waits for the task, returns its value or rethrows
  // (task_cancelled if it was cancelled). Cancel safety: see the top.
  struct awaiter;
  awaiter operator co_await() noexcept;

 private:
  detail::join_state<T>* s_ = nullptr;
};

}  // namespace ringflow

// The state a spawned task shares with its handle, the task's top frame,
// cancellation, and the definitions of the members above.
#include <ringflow/detail/join_state.hpp>
