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
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <optional>
#include <utility>

#include <ringflow/sleep.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {

template <class T>
struct race_awaiter {
  task<T> child;
  std::chrono::nanoseconds d;
  timer_op timer{};
  std::coroutine_handle<> parent{};
  bool timed_out = false;

  static void on_timer(completion* c) {
    auto* self = static_cast<race_awaiter*>(c->context);
    if (c->res == -ECANCELED) return;  // withdrawn after the child won
    self->timed_out = true;
    self->child = task<T>{};  // destroys the losing frame, withdrawing its waits
    self->parent.resume();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
    parent = h;
    timer.c.on_complete = &on_timer;
    timer.c.context = this;
    timer.start(d);
    auto ch = child.release();
    child = task<T>{ch};
    ch.promise().continuation = h;  // the child transfers straight back to us
    ch.promise().uncancellable_task = nullptr;  // cancellable: on_timer may destroy it
    return ch;
  }
  // optional<T>, or bool for task<void>.
  auto await_resume() {
    timer.cancel();
    if constexpr (std::is_void_v<T>) {
      if (timed_out) return false;
      std::move(child).operator co_await().await_resume();
      return true;
    } else {
      if (timed_out) return std::optional<T>{};
      return std::optional<T>{std::move(child).operator co_await().await_resume()};
    }
  }
};

}  // namespace detail

template <class T>
task<std::optional<T>> timeout(std::chrono::nanoseconds d, task<T> t) {
  detail::race_awaiter<T> race{std::move(t), d};
  co_return co_await race;
}

inline task<bool> timeout(std::chrono::nanoseconds d, task<void> t) {
  detail::race_awaiter<void> race{std::move(t), d};
  co_return co_await race;
}

}  // namespace ringflow
