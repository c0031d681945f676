// The machinery of with_stop and stopped (ringflow/stop.hpp).
//
// A stop request may come from any thread, but the frames it affects live
// on one worker: the awaiting task's. So the std::stop_callback does nothing
// but queue a resumption on that worker (a small notice frame for
// with_stop, the waiting task itself for stopped), and everything else
// happens there. The tasks involved cannot move meanwhile: t runs as a
// cancellable child (as under timeout), and only a channel waker moves a
// task, from a wait that cannot be cancelled.
//
// Withdrawal, on the awaiting worker, when the race is decided or the
// awaiting task is destroyed: std::stop_callback's destructor returns only
// once the callback has run to its end or can no longer run, so afterwards
// `fired_` says whether a resumption was queued, and unschedule() takes it
// back if it has not run.
#pragma once

#include <atomic>
#include <coroutine>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include <ringflow/detail/worker.hpp>
#include <ringflow/stop.hpp>  // included alone: the declarations first
#include <ringflow/task.hpp>

namespace ringflow::detail {

inline worker& awaiting_worker(const char* what) {
  if (!tls_worker) throw std::logic_error(what);
  return *tls_worker;
}

template <class T>
class stop_race {
 public:
  stop_race(std::stop_token st, task<T> t) noexcept : st_(std::move(st)), child_(std::move(t)) {}
  stop_race(const stop_race&) = delete;
  stop_race& operator=(const stop_race&) = delete;
  ~stop_race() { withdraw(); }

  bool await_ready() noexcept {
    stopped_ = st_.stop_requested();  // t never starts
    return stopped_ || !child_.valid();
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) {
    w_ = &awaiting_worker("ringflow: with_stop was awaited outside a runtime");
    if (st_.stop_possible()) {
      notice_ = on_stop(this);
      auto n = notice_.release();
      n.promise().continuation = parent;  // the notice transfers straight to us
      notice_ = task<void>{n};
      notice_handle_ = n;
      callback_.emplace(st_, stop_requested{this});  // may run at once, here
    }
    auto ch = child_.release();
    child_ = task<T>{ch};
    ch.promise().continuation = parent;
    ch.promise().uncancellable_task = nullptr;  // cancellable: the notice may destroy it
    return ch;
  }
  // optional<T>, or bool for task<void>.
  auto await_resume() {
    withdraw();
    if constexpr (std::is_void_v<T>) {
      if (stopped_) return false;
      std::move(child_).operator co_await().await_resume();
      return true;
    } else {
      if (stopped_) return std::optional<T>{};
      return std::optional<T>{std::move(child_).operator co_await().await_resume()};
    }
  }

 private:
  struct stop_requested {
    stop_race* self;
    void operator()() noexcept {
      self->fired_.store(true, std::memory_order_release);
      self->w_->schedule(self->notice_handle_);
    }
  };

  // Runs on the awaiting worker while t is suspended: t lost.
  static task<void> on_stop(stop_race* self) {
    self->stopped_ = true;
    self->child_ = task<T>{};  // destroys the losing frames, withdrawing their waits
    co_return;                 // back to the awaiting task
  }

  void withdraw() noexcept {
    if (!callback_) return;
    callback_.reset();
    if (fired_.load(std::memory_order_acquire) && !stopped_) w_->unschedule(notice_handle_);
    notice_ = task<void>{};  // unrun, or done and suspended at its end
  }

  std::stop_token st_;
  task<T> child_;
  task<void> notice_;
  std::coroutine_handle<> notice_handle_{};
  worker* w_ = nullptr;
  std::optional<std::stop_callback<stop_requested>> callback_;
  std::atomic<bool> fired_{false};
  bool stopped_ = false;
};

class stop_wait {
 public:
  explicit stop_wait(std::stop_token st) noexcept : st_(std::move(st)) {}
  stop_wait(const stop_wait&) = delete;
  stop_wait& operator=(const stop_wait&) = delete;
  ~stop_wait() { withdraw(); }

  bool await_ready() const noexcept { return st_.stop_requested(); }
  void await_suspend(std::coroutine_handle<> h) {
    w_ = &awaiting_worker("ringflow: stopped() was awaited outside a runtime");
    h_ = h;
    callback_.emplace(st_, stop_requested{this});  // may run at once: h is then queued
  }
  void await_resume() noexcept {
    resumed_ = true;
    withdraw();
  }

 private:
  struct stop_requested {
    stop_wait* self;
    void operator()() noexcept {
      self->fired_.store(true, std::memory_order_release);
      self->w_->schedule(self->h_);
    }
  };

  void withdraw() noexcept {
    if (!callback_) return;
    callback_.reset();
    if (fired_.load(std::memory_order_acquire) && !resumed_) w_->unschedule(h_);
  }

  std::stop_token st_;
  worker* w_ = nullptr;
  std::coroutine_handle<> h_{};
  std::optional<std::stop_callback<stop_requested>> callback_;
  std::atomic<bool> fired_{false};
  bool resumed_ = false;
};

}  // namespace ringflow::detail


namespace ringflow {

template <class T>
task<std::optional<T>> with_stop(std::stop_token st, task<T> t) {
  // A named awaiter: g++ 12 mishandles aggregate temporaries in co_await.
  detail::stop_race<T> race{std::move(st), std::move(t)};
  co_return co_await race;
}

inline task<bool> with_stop(std::stop_token st, task<void> t) {
  detail::stop_race<void> race{std::move(st), std::move(t)};
  co_return co_await race;
}

inline task<void> stopped(std::stop_token st) {
  detail::stop_wait wait{std::move(st)};
  co_await wait;
}

}  // namespace ringflow
