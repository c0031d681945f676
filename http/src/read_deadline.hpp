// A connection's socket reads raced against their deadlines on one io_uring
// timer that the connection keeps, instead of a timer armed and cancelled per
// read (ringflow::timeout): cancelling a timer waits in the kernel for its
// completion, a system call per read that cost a keep-alive request about a
// quarter of its server CPU. Private to http/src.
//
// The timer stays armed across reads. A read whose deadline is later than
// the timer's expiry registers and leaves it alone: when it fires early it
// re-arms for the registered read's deadline, or, with no read waiting, it
// simply ends. An earlier deadline moves the timer by an asynchronous
// IORING_OP_TIMEOUT_REMOVE update. A read that ends first just unregisters
// (no system call). So a keep-alive connection costs a timer event per
// idle_timeout, not two ring operations and a wait per request.
//
// Threads: the timer's state is touched only on the worker it is armed on
// (its completion runs there). A connection whose task has moved to another
// worker while the timer is armed races that read with a timer of its own,
// as timeout() does, until the old one has ended. The state is a small
// block shared by the connection and the armed timer, freed by whichever
// lets go last, so a connection may end while its timer is armed elsewhere.
#pragma once

#include <liburing.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <optional>
#include <type_traits>
#include <utility>

#include <ringflow/detail/completion.hpp>
#include <ringflow/detail/timer_op.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/task.hpp>

namespace ringflow::http::detail {

using rt_worker = ringflow::detail::worker;

// From now until t, for a relative timer (time_point::max(): never).
inline std::chrono::nanoseconds read_deadline_until(std::chrono::steady_clock::time_point t) noexcept {
  if (t == std::chrono::steady_clock::time_point::max()) return std::chrono::nanoseconds::max();
  return t - std::chrono::steady_clock::now();
}

// A read waiting for its deadline (registered with the connection's timer).
struct deadline_wait {
  std::chrono::steady_clock::time_point deadline;
  // Called on the timer's worker once the deadline passed: cancels the read
  // and resumes its awaiter (which may then destroy the connection).
  void (*expire)(deadline_wait*) = nullptr;
};

struct deadline_block {
  ringflow::detail::completion c;
  __kernel_timespec ts{}, ts_update{};
  // The worker the timer is armed on; null when no timer is in flight.
  // Written by the arming worker and by the timer's completion.
  std::atomic<rt_worker*> armed_on{nullptr};
  // The connection's reference and the armed timer's.
  std::atomic<int> refs{1};
  std::atomic<bool> orphaned{false};
  // On armed_on's thread only:
  std::chrono::steady_clock::time_point expires{};
  deadline_wait* wait = nullptr;
};

class read_deadline {
 public:
  read_deadline();
  ~read_deadline();
  read_deadline(const read_deadline&) = delete;
  read_deadline& operator=(const read_deadline&) = delete;

  // co_await race(t, deadline) -> std::optional<T>: t's value, or nullopt
  // when the deadline passed first and t was cancelled (its frame
  // destroyed). Await it as a named variable (g++ 12).
  template <class T>
  class race;
  template <class T>
  race<T> wait(task<T> t, std::chrono::steady_clock::time_point deadline) noexcept {
    return race<T>(b_, std::move(t), deadline);
  }

  // Registers w on the calling worker's timer (false: the timer is armed on
  // another worker; the caller races a timer of its own).
  static bool enter(deadline_block* b, deadline_wait* w);
  static void leave(deadline_block* b) noexcept { b->wait = nullptr; }

 private:
  deadline_block* b_;
};

template <class T>
class read_deadline::race : private deadline_wait {
 public:
  race(deadline_block* b, task<T> t, std::chrono::steady_clock::time_point deadline) noexcept
      : b_(b), child_(std::move(t)) {
    this->deadline = deadline;
    this->expire = &race::on_expire;
  }
  race(const race&) = delete;
  race& operator=(const race&) = delete;
  ~race() {
    // Destroyed while suspended (its task cancelled): withdraw; the child's
    // frame goes with child_, withdrawing its own waits.
    if (registered_) leave(b_);
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
    parent_ = h;
    if (enter(b_, this)) {
      registered_ = true;
    } else {
      own_.c.on_complete = &race::on_own_timer;
      own_.c.context = this;
      own_.start(read_deadline_until(this->deadline));
    }
    auto ch = child_.release();
    child_ = task<T>{ch};
    ch.promise().continuation = h;              // the child transfers straight back to us
    ch.promise().uncancellable_task = nullptr;  // cancellable: the timer may destroy it
    return ch;
  }
  std::optional<T> await_resume() {
    if (registered_) {
      leave(b_);
      registered_ = false;
    }
    own_.cancel();
    if (timed_out_) return std::nullopt;
    return std::optional<T>{std::move(child_).operator co_await().await_resume()};
  }

 private:
  static void on_expire(deadline_wait* w) {
    auto* self = static_cast<race*>(w);
    self->registered_ = false;  // the timer unregistered it
    self->timed_out_ = true;
    self->child_ = task<T>{};
    self->parent_.resume();
  }
  static void on_own_timer(ringflow::detail::completion* c) {
    auto* self = static_cast<race*>(c->context);
    if (c->res == -ECANCELED) return;  // withdrawn after the child won
    self->timed_out_ = true;
    self->child_ = task<T>{};
    self->parent_.resume();
  }

  deadline_block* b_;
  task<T> child_;
  std::coroutine_handle<> parent_{};
  ringflow::detail::timer_op own_{};
  bool registered_ = false;
  bool timed_out_ = false;
};

}  // namespace ringflow::http::detail
