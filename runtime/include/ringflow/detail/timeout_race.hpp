// The machinery of timeout() (<ringflow/timeout.hpp>, whose declarations
// state the contract): the awaiter runs the child and an io_uring timeout side
// by side; whichever finishes first ends the other (the timer destroys the
// child's frame, or the child's end cancels the timer).
#pragma once

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>

#include <ringflow/sleep.hpp>
#include <ringflow/task.hpp>
#include <ringflow/timeout.hpp>

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
