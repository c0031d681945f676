// circuit_breaker: stops callers from hammering a downstream that is failing.
//
//   ringflow::circuit_breaker breaker({.failure_threshold = 5, .cool_down = std::chrono::seconds(10)});
//
//   ringflow::task<reply> guarded(ringflow::circuit_breaker* b, request r) {
//     try {
//       co_return co_await b->call(fetch(r));     // fetch(r) runs only if the breaker admits it
//     } catch (const ringflow::circuit_open& e) {
//       co_return cached_reply(r);                // fail fast; retry after e.remaining_cool_down()
//     }
//   }
//
// States (Hystrix, Resilience4j, Polly):
// - closed: every call runs. A counted failure either completes a run of
//   `failure_threshold` consecutive failures (breaker_trip::consecutive_failures),
//   or, with breaker_trip::failure_ratio, brings the share of failures among the
//   last `window` calls to `failure_ratio` or more once at least
//   `minimum_calls` of them are recorded: the breaker opens.
// - open: call() throws circuit_open at once (the task is never started; its
//   frame is destroyed) carrying the cool-down that remains. The first call
//   after `cool_down` moves the breaker to half_open; this is evaluated lazily
//   on that call (no timer runs), so state() keeps saying open until then.
// - half_open: at most `half_open_max_calls` trial calls run at the same time;
//   others are rejected with circuit_open (remaining_cool_down() == 0).
//   `success_threshold` successful trials close the breaker; any failed trial
//   opens it again for a new cool-down.
//
// Outcomes: a call whose task returns is a success; one whose task throws is
// rethrown unchanged and counts as a failure when `is_failure` says so (default:
// every exception). An exception is_failure does not count is still rethrown,
// but it counts as a success (the downstream answered), and in
// stats().ignored_errors. A call admitted before a state change (e.g. a slow
// call started while closed that ends after the breaker opened) only updates the
// counters, never the new state's decisions.
//
// Observing: state(), stats() (calls, outcomes, rejections, transitions) and
// on_state_change(from, to). The callback is called without the breaker's lock
// held, one call at a time and in the order the transitions happened, on the
// thread of a call that made one of them (it may read state() and stats()).
// If it throws, the exception leaves the call() that was delivering it (the
// transition itself stands).
//
// Options are checked by the constructor: failure_threshold, window,
// minimum_calls, half_open_max_calls or success_threshold of 0, a failure_ratio
// outside (0, 1], or a negative cool_down: std::invalid_argument. A
// minimum_calls above window is treated as window. Every cool_down from 0
// (the next call is a trial) to nanoseconds::max() is valid; max keeps the
// breaker open for ~292 years, i.e. for good. The cool-down is compared with
// the time elapsed since opening, so no clock value overflows: a clock that
// steps back before the opening counts as no time elapsed, and an elapsed
// time too large for nanoseconds counts as nanoseconds::max().
//
// Thread safety: usable from tasks on any workers; a spinlock guards the
// counters and is never held while a task, is_failure or the callback runs.
// The breaker must outlive every call() made on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringflow/detail/spinlock.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

enum class breaker_state { closed, open, half_open };

inline const char* to_string(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::closed:
      return "closed";
    case breaker_state::open:
      return "open";
    case breaker_state::half_open:
      return "half_open";
  }
  return "?";
}

enum class breaker_trip {
  consecutive_failures,  // open after failure_threshold failures in a row
  failure_ratio,         // open when failures / calls over the last `window` calls >= failure_ratio
};

// Thrown by call() instead of running the task.
class circuit_open : public std::runtime_error {
 public:
  explicit circuit_open(std::chrono::nanoseconds remaining)
      : std::runtime_error(remaining.count() > 0
                               ? "ringflow: circuit open, " +
                                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(remaining).count()) +
                                     " ms of cool-down left"
                               : std::string("ringflow: circuit half-open, every trial slot is taken")),
        remaining_(remaining) {}
  // How long until the breaker lets a trial call through; 0 when it is
  // half-open and only the trial slots are all taken.
  std::chrono::nanoseconds remaining_cool_down() const noexcept { return remaining_; }

 private:
  std::chrono::nanoseconds remaining_;
};

struct breaker_options {
  breaker_trip trip = breaker_trip::consecutive_failures;
  std::uint32_t failure_threshold = 5;  // consecutive_failures: failures in a row that open
  double failure_ratio = 0.5;           // failure_ratio: in (0, 1]
  std::uint32_t window = 20;            // failure_ratio: the last N completed calls
  std::uint32_t minimum_calls = 10;     // failure_ratio: no verdict before this many calls in the window
  std::chrono::nanoseconds cool_down = std::chrono::seconds(30);  // open -> half_open
  std::uint32_t half_open_max_calls = 1;  // trial calls running at once while half-open
  std::uint32_t success_threshold = 1;    // successful trials that close the breaker
  // Which exceptions count as failures; empty: all. If it throws, the call counts as a failure.
  std::function<bool(const std::exception_ptr&)> is_failure = {};
  std::function<void(breaker_state from, breaker_state to)> on_state_change = {};
  // The time source (default std::chrono::steady_clock::now); called under the lock.
  std::function<std::chrono::steady_clock::time_point()> clock = {};
};

struct breaker_stats {
  std::uint64_t calls = 0;           // admitted: their task was started
  std::uint64_t successes = 0;       // completed without a counted failure
  std::uint64_t failures = 0;        // completed with a counted failure
  std::uint64_t ignored_errors = 0;  // of the successes: threw, but is_failure said no
  std::uint64_t cancelled = 0;       // admitted, then the caller's frame was destroyed mid-call
  std::uint64_t rejected = 0;        // circuit_open thrown, task not run
  std::uint64_t opened = 0;          // transitions to open
  std::uint64_t half_opened = 0;     // transitions to half_open
  std::uint64_t closed = 0;          // transitions from half_open to closed
};

class circuit_breaker {
 public:
  explicit circuit_breaker(breaker_options opts = {})
      : opts_(check(std::move(opts))),
        outcomes_(opts_.trip == breaker_trip::failure_ratio ? opts_.window : 0, 0) {
    if (!opts_.clock) opts_.clock = [] { return std::chrono::steady_clock::now(); };
  }
  circuit_breaker(const circuit_breaker&) = delete;
  circuit_breaker& operator=(const circuit_breaker&) = delete;

  // co_await breaker.call(t): runs t if the breaker admits it and returns its
  // value or rethrows its exception unchanged; otherwise throws circuit_open
  // without starting t (its frame is destroyed unstarted). Admission is decided
  // when the returned task starts (is awaited), not when call() is invoked.
  // An empty task: std::invalid_argument.
  //
  // Cancel safety: if the caller is cancelled while t runs (the frame awaiting
  // call() is destroyed, e.g. by ringflow::timeout), t is destroyed with it; the
  // call counts as neither success nor failure (stats().cancelled) and a
  // half-open trial slot it held is released for the next caller.
  template <class T>
  task<T> call(task<T> t) {
    if (!t.valid()) throw std::invalid_argument("ringflow::circuit_breaker::call: empty task");
    permit p = admit(t);
    try {
      if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
        p.succeed();
      } else {
        T value = co_await std::move(t);
        p.succeed();
        co_return std::move(value);
      }
    } catch (...) {
      if (p.pending()) p.fail(std::current_exception());  // not when the callback of succeed() threw
      throw;
    }
  }

  // The current state. open -> half_open happens on the first call after the
  // cool-down, so this says open until such a call arrives.
  breaker_state state() const {
    lock_guard g(lock_);
    return state_;
  }
  breaker_stats stats() const {
    lock_guard g(lock_);
    return stats_;
  }
  const breaker_options& options() const noexcept { return opts_; }

 private:
  using lock_guard = std::lock_guard<detail::spinlock>;
  struct transition {
    breaker_state from, to;
  };

  // One admitted call. Destroyed without an outcome: cancelled.
  class permit {
   public:
    permit(circuit_breaker* b, std::uint64_t epoch) noexcept : b_(b), epoch_(epoch) {}
    permit(const permit&) = delete;
    permit& operator=(const permit&) = delete;
    ~permit() {
      if (b_) b_->finish(epoch_, outcome::cancelled);  // never a transition: nothing to deliver, nothing thrown
    }
    bool pending() const noexcept { return b_ != nullptr; }
    void succeed() { std::exchange(b_, nullptr)->finish(epoch_, outcome::success); }
    void fail(const std::exception_ptr& e) {
      circuit_breaker* b = std::exchange(b_, nullptr);
      b->finish(epoch_, b->counts_as_failure(e) ? outcome::failure : outcome::ignored_error);
    }

   private:
    circuit_breaker* b_;
    std::uint64_t epoch_;
  };

  enum class outcome { success, failure, ignored_error, cancelled };

  static breaker_options check(breaker_options o) {
    auto bad = [](const char* what) { throw std::invalid_argument(std::string("ringflow::circuit_breaker: ") + what); };
    if (o.failure_threshold == 0) bad("failure_threshold must be at least 1");
    if (o.window == 0) bad("window must be at least 1");
    if (o.minimum_calls == 0) bad("minimum_calls must be at least 1");
    if (!(o.failure_ratio > 0.0 && o.failure_ratio <= 1.0)) bad("failure_ratio must be in (0, 1]");
    if (o.cool_down.count() < 0) bad("cool_down must not be negative");
    if (o.half_open_max_calls == 0) bad("half_open_max_calls must be at least 1");
    if (o.success_threshold == 0) bad("success_threshold must be at least 1");
    if (o.minimum_calls > o.window) o.minimum_calls = o.window;
    return o;
  }

  // now - then, saturated to [0, nanoseconds::max()]: the clock is the
  // caller's (a test clock may step back or jump across its whole range), and
  // the difference of two time points need not fit in their duration.
  static std::chrono::nanoseconds elapsed_between(std::chrono::steady_clock::time_point then,
                                                  std::chrono::steady_clock::time_point now) noexcept {
    static_assert(std::is_same_v<std::chrono::steady_clock::duration, std::chrono::nanoseconds>);
    if (now <= then) return std::chrono::nanoseconds(0);
    // now > then, so the unsigned difference is exact (modular arithmetic).
    const auto d = static_cast<std::uint64_t>(now.time_since_epoch().count()) -
                   static_cast<std::uint64_t>(then.time_since_epoch().count());
    constexpr auto max = static_cast<std::uint64_t>(std::chrono::nanoseconds::max().count());
    return std::chrono::nanoseconds(d > max ? std::chrono::nanoseconds::max().count()
                                            : static_cast<std::chrono::nanoseconds::rep>(d));
  }

  bool counts_as_failure(const std::exception_ptr& e) const noexcept {
    if (!opts_.is_failure) return true;
    try {
      return opts_.is_failure(e);
    } catch (...) {
      return true;
    }
  }

  // Sets `deliver` when the caller must run deliver_transitions() once unlocked.
  void move_to_locked(breaker_state to, std::chrono::steady_clock::time_point now, bool& deliver) {
    breaker_state from = std::exchange(state_, to);
    ++epoch_;
    consecutive_failures_ = 0;
    window_calls_ = window_failures_ = window_pos_ = 0;
    trials_in_flight_ = 0;
    trial_successes_ = 0;
    switch (to) {
      case breaker_state::open:
        opened_at_ = now;
        ++stats_.opened;
        break;
      case breaker_state::half_open:
        ++stats_.half_opened;
        break;
      case breaker_state::closed:
        ++stats_.closed;
        break;
    }
    if (!opts_.on_state_change) return;
    pending_.push_back({from, to});
    if (!delivering_) {
      delivering_ = true;
      deliver = true;
    }
  }

  // Runs the callbacks queued so far, in order, one at a time, unlocked.
  void deliver_transitions() {
    for (;;) {
      transition t;
      {
        lock_guard g(lock_);
        if (pending_.empty()) {
          delivering_ = false;
          return;
        }
        t = pending_.front();
        pending_.pop_front();
      }
      try {
        opts_.on_state_change(t.from, t.to);
      } catch (...) {
        lock_guard g(lock_);
        delivering_ = false;
        throw;
      }
    }
  }

  template <class T>
  permit admit(task<T>& t) {
    bool deliver = false;
    std::chrono::nanoseconds reject_for{-1};
    std::uint64_t epoch = 0;
    {
      lock_guard g(lock_);
      if (state_ == breaker_state::open) {
        auto now = opts_.clock();
        // Durations, not a deadline: opened_at_ + cool_down overflows for a
        // large cool-down (max: "forever") and would wrap into the past.
        std::chrono::nanoseconds elapsed = elapsed_between(opened_at_, now);
        if (elapsed >= opts_.cool_down) {
          move_to_locked(breaker_state::half_open, now, deliver);
        } else {
          reject_for = opts_.cool_down - elapsed;  // both in [0, max]: cannot overflow
        }
      }
      if (state_ == breaker_state::half_open) {
        if (trials_in_flight_ < opts_.half_open_max_calls) {
          ++trials_in_flight_;
        } else {
          reject_for = std::chrono::nanoseconds(0);
        }
      }
      if (reject_for.count() >= 0) {
        ++stats_.rejected;
      } else {
        ++stats_.calls;
        epoch = epoch_;
      }
    }
    if (deliver) deliver_transitions();
    if (reject_for.count() >= 0) {
      t = task<T>{};  // never started: free its frame now
      throw circuit_open(reject_for);
    }
    return permit(this, epoch);
  }

  void finish(std::uint64_t epoch, outcome o) {
    bool deliver = false;
    {
      lock_guard g(lock_);
      finish_locked(epoch, o, deliver);
    }
    if (deliver) deliver_transitions();
  }

  void finish_locked(std::uint64_t epoch, outcome o, bool& deliver) {
    switch (o) {
      case outcome::success:
        ++stats_.successes;
        break;
      case outcome::ignored_error:
        ++stats_.successes;
        ++stats_.ignored_errors;
        break;
      case outcome::failure:
        ++stats_.failures;
        break;
      case outcome::cancelled:
        ++stats_.cancelled;
        break;
    }
    if (epoch != epoch_) return;  // admitted before the last state change
    bool failed = o == outcome::failure;
    if (state_ == breaker_state::half_open) {
      --trials_in_flight_;
      if (o == outcome::cancelled) return;
      if (failed) {
        move_to_locked(breaker_state::open, opts_.clock(), deliver);
      } else if (++trial_successes_ >= opts_.success_threshold) {
        move_to_locked(breaker_state::closed, {}, deliver);
      }
      return;
    }
    if (state_ != breaker_state::closed || o == outcome::cancelled) return;
    if (record_locked(failed)) move_to_locked(breaker_state::open, opts_.clock(), deliver);
  }

  // Closed: records one outcome; true when the breaker must open.
  bool record_locked(bool failed) {
    if (opts_.trip == breaker_trip::consecutive_failures) {
      consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
      return consecutive_failures_ >= opts_.failure_threshold;
    }
    if (window_calls_ == opts_.window) {
      window_failures_ -= outcomes_[window_pos_];  // the oldest outcome leaves the window
    } else {
      ++window_calls_;
    }
    outcomes_[window_pos_] = failed ? 1 : 0;
    window_failures_ += failed ? 1 : 0;
    window_pos_ = (window_pos_ + 1) % opts_.window;
    if (window_calls_ < opts_.minimum_calls) return false;
    return static_cast<double>(window_failures_) >= opts_.failure_ratio * static_cast<double>(window_calls_);
  }

  breaker_options opts_;
  std::vector<std::uint8_t> outcomes_;  // failure_ratio: ring of the last `window` outcomes (1 = failure)
  std::uint32_t window_calls_ = 0;
  std::uint32_t window_failures_ = 0;
  std::uint32_t window_pos_ = 0;
  std::uint32_t consecutive_failures_ = 0;
  std::uint32_t trials_in_flight_ = 0;
  std::uint32_t trial_successes_ = 0;
  breaker_state state_ = breaker_state::closed;
  std::uint64_t epoch_ = 0;  // bumped on every transition: outcomes of older calls do not steer the new state
  std::chrono::steady_clock::time_point opened_at_{};
  breaker_stats stats_;
  std::deque<transition> pending_;
  bool delivering_ = false;
  mutable detail::spinlock lock_;
};

}  // namespace ringflow
