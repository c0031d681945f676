// rate_limiter: a token bucket whose waiters suspend instead of sleeping.
//
//   ringflow::rate_limiter limiter(1000.0, 10);   // 1,000 tokens/s, bursts of up to 10
//
//   ringflow::task<> client(ringflow::rate_limiter* limiter) {
//     for (;;) {
//       co_await limiter->acquire();            // suspends while the bucket is empty
//       co_await send_request();
//     }
//   }
//   if (limiter.try_acquire(5)) { /* got 5 tokens now, never waits */ }
//
// The bucket holds at most `burst` tokens and starts full; it refills
// continuously at `rate_per_second` (fractional tokens accrue). Whatever the
// timing of the callers, the tokens handed out up to any moment t never exceed
// burst + rate * (t - construction).
//
// Semantics
// - First-in, first-out: suspended acquires are served strictly in the order
//   they suspended. A later acquire(1) never overtakes an earlier acquire(8),
//   and while anyone waits, try_acquire() returns false and a new acquire()
//   queues up behind the waiters, even if the bucket could serve it (no barging).
// - No thread sleeps. Only the head of the queue runs a timer (an io_uring
//   timeout on its own worker), armed for exactly the time its deficit takes
//   to refill; when it has taken its tokens it hands the turn on: every waiter
//   behind it that the bucket can already serve is granted its tokens and woken
//   in order, and the first one that cannot becomes the new head and arms its
//   own timer.
// - acquire(0) and try_acquire(0) complete at once (true) and take nothing,
//   even while others wait: asking for nothing cannot overtake anyone.
// - acquire(n) / try_acquire(n) with n > burst: std::invalid_argument (it could
//   never be served). Constructor: rate <= 0, a non-finite rate, burst 0 or a
//   burst above max_burst (2^53): std::invalid_argument. Tokens are counted in
//   a double, which holds every whole number up to 2^53 and no more: above
//   it, taking one token might not change the count.
// - Extremes: any finite rate > 0 is valid, from denorm_min (a token every
//   ~10^308 s: effectively never) to DBL_MAX (one nanosecond refills the
//   bucket). Elapsed time is saturated at nanoseconds::max(), so no clock
//   value overflows. A waiter's timer is armed for at most ~31 years at a time
//   (it re-arms after that), so a deficit of any size is just a long wait,
//   which a timeout cancels as usual.
// - Thread safety: usable from tasks on any workers (a spinlock guards the
//   bucket; a waiter is always resumed on its own worker).
// - Cost: an acquire that finds its tokens takes the lock once and allocates
//   nothing; one that has to wait allocates one small coroutine frame.
// - Clock: steady_clock by default; tests pass their own time source (any
//   callable returning steady_clock::time_point, called under the lock, so it
//   must not block). Time going backwards is ignored. With a manual clock the
//   head's timer still runs in real time: when it fires and the manual clock
//   has not moved far enough, it re-arms for the remaining deficit.
// - The limiter must outlive every task using it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/sleep.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

struct rate_limiter_stats {
  std::uint64_t acquired = 0;  // tokens handed out (acquire and try_acquire); cancelled acquires excluded
  std::uint64_t waits = 0;     // acquires that had to suspend (cancelled ones included)
  std::size_t waiters = 0;     // acquires suspended right now, still waiting for their tokens
};

class rate_limiter {
 public:
  using clock_function = std::function<std::chrono::steady_clock::time_point()>;
  class acquire_awaiter;

  // The largest burst: token counts are doubles, exact up to 2^53.
  static constexpr std::uint64_t max_burst = std::uint64_t{1} << 53;

  // Throws std::invalid_argument unless rate_per_second is finite and > 0 and
  // 1 <= burst <= max_burst.
  rate_limiter(double rate_per_second, std::uint64_t burst, clock_function now = {})
      : rate_(check_rate(rate_per_second)),
        burst_(check_burst(burst)),
        now_(now ? std::move(now) : clock_function([] { return std::chrono::steady_clock::now(); })),
        tokens_(static_cast<double>(burst)),
        last_(now_()) {}
  rate_limiter(const rate_limiter&) = delete;
  rate_limiter& operator=(const rate_limiter&) = delete;

  // co_await limiter.acquire(n): takes n tokens, suspending (first-in,
  // first-out) until they have accrued. n == 0 completes at once; n > burst():
  // std::invalid_argument (thrown by acquire() itself). Awaiting a suspending
  // acquire outside a runtime: std::logic_error.
  //
  // Cancel safety: an acquire cancelled while suspended (its frame destroyed,
  // e.g. by ringflow::timeout) takes no tokens: it leaves the queue, and if its
  // tokens had already been set aside for it (granted but not yet resumed) they
  // go back into the bucket. The next waiter moves up at once (it is served or
  // becomes the head and arms its timer).
  acquire_awaiter acquire(std::uint64_t n = 1);

  // Takes n tokens if they are there and nobody is waiting; never suspends.
  // n == 0: true. n > burst(): std::invalid_argument.
  bool try_acquire(std::uint64_t n = 1) {
    check_n(n);
    if (n == 0) return true;
    lock_scope g(*this);
    return try_take_locked(n);
  }

  // Tokens in the bucket now (fractional, refilled up to the current time;
  // while acquires wait, they are accruing for the head of the queue).
  double available() const {
    lock_scope g(*this);
    refill_locked();
    return tokens_;
  }
  double rate() const noexcept { return rate_; }
  std::uint64_t burst() const noexcept { return burst_; }
  rate_limiter_stats stats() const {
    lock_scope g(*this);
    return stats_;
  }

 private:
  // A waiting acquire; lives in the frame of wait_turn, so the queue itself
  // allocates nothing. `handle`/`owner` are set when it parks.
  struct node : detail::waiter_node {
    rate_limiter* lim = nullptr;
    std::uint64_t n = 0;
    bool head = false;         // front of the queue and drives its own timer
    bool granted = false;      // tokens already taken on its behalf
    bool parked = false;       // suspended until promoted or granted
    bool wake_queued = false;  // a resume is queued and has not run yet

    node(rate_limiter* l, std::uint64_t count) noexcept : lim(l), n(count) {}
    node(const node&) = delete;
    node& operator=(const node&) = delete;
    ~node() {
      if (!registered) return;
      lim->withdraw(*this);
    }
  };

  // Holds the lock; wakes a worker of another thread only after unlocking.
  struct lock_scope : detail::affinity_guard {
    explicit lock_scope(const rate_limiter& l) noexcept : detail::affinity_guard(l.lock_) {}
  };

  // Suspends a queued waiter until it is granted its tokens or made the head.
  struct park_awaiter {
    rate_limiter* lim;
    node* w;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
      lock_scope g(*lim);
      if (w->head || w->granted) return false;
      w->handle = h;
      w->owner = detail::tls_worker;
      w->parked = true;
      return true;
    }
    void await_resume() {
      lock_scope g(*lim);
      w->wake_queued = false;
    }
  };

  static double check_rate(double r) {
    if (!(r > 0.0) || !std::isfinite(r)) {
      throw std::invalid_argument("ringflow::rate_limiter: rate_per_second must be finite and > 0");
    }
    return r;
  }
  static std::uint64_t check_burst(std::uint64_t b) {
    if (b == 0) throw std::invalid_argument("ringflow::rate_limiter: burst must be at least 1");
    if (b > max_burst) {
      throw std::invalid_argument("ringflow::rate_limiter: burst must be at most 2^53 = " + std::to_string(max_burst) +
                                  " (tokens are counted in a double)");
    }
    return b;
  }
  void check_n(std::uint64_t n) const {
    if (n > burst_) throw std::invalid_argument("ringflow::rate_limiter: cannot acquire more tokens than the burst");
  }

  // ---- the bucket; the lock is held ----------------------------------------

  void refill_locked() const {
    auto now = now_();
    if (now <= last_) return;  // a clock that steps back adds nothing
    // rate_ is finite, so ns * rate_ is at worst +inf, and min() caps that.
    double ns = static_cast<double>(elapsed_between(last_, now).count());
    tokens_ = std::min(static_cast<double>(burst_), tokens_ + ns * rate_ / 1e9);
    last_ = now;
  }

  // now - then for now > then, saturated at nanoseconds::max(): the clock is
  // the caller's, and two of its time points may lie further apart than
  // nanoseconds can hold (now - then would overflow).
  static std::chrono::nanoseconds elapsed_between(std::chrono::steady_clock::time_point then,
                                                  std::chrono::steady_clock::time_point now) noexcept {
    static_assert(std::is_same_v<std::chrono::steady_clock::duration, std::chrono::nanoseconds>);
    // Exact in unsigned (modular) arithmetic, as now > then.
    const auto d = static_cast<std::uint64_t>(now.time_since_epoch().count()) -
                   static_cast<std::uint64_t>(then.time_since_epoch().count());
    constexpr auto max = static_cast<std::uint64_t>(std::chrono::nanoseconds::max().count());
    return std::chrono::nanoseconds(d > max ? std::chrono::nanoseconds::max().count()
                                            : static_cast<std::chrono::nanoseconds::rep>(d));
  }

  void take_locked(std::uint64_t n) {
    tokens_ -= static_cast<double>(n);
    stats_.acquired += n;
  }

  bool try_take_locked(std::uint64_t n) {
    if (!queue_.empty()) return false;  // no barging past waiters
    refill_locked();
    if (tokens_ < static_cast<double>(n)) return false;
    take_locked(n);
    return true;
  }

  // How long until `n` tokens have accrued (at least 1 ns).
  std::chrono::nanoseconds deficit_time_locked(std::uint64_t n) const {
    double ns = std::ceil((static_cast<double>(n) - tokens_) * 1e9 / rate_);
    constexpr double max_ns = 1e18;  // ~31 years: keeps the conversion defined for tiny rates
    return std::chrono::nanoseconds(static_cast<std::int64_t>(std::clamp(ns, 1.0, max_ns)));
  }

  void wake_locked(lock_scope& g, node* w) {
    if (!w->parked) return;  // it is running, or about to look at its flags
    w->parked = false;
    w->wake_queued = true;
    g.schedule(w->owner, w->handle);
  }

  // The front may have changed: grant the waiters the bucket can serve, in
  // order, and make the first one it cannot the head. A front that already is
  // the head is left alone: it takes its tokens when its own timer fires, so
  // nobody behind it can resume first.
  void serve_locked(lock_scope& g) {
    refill_locked();
    while (!queue_.empty()) {
      auto* f = static_cast<node*>(queue_.front());
      if (f->head) return;
      if (tokens_ >= static_cast<double>(f->n)) {
        take_locked(f->n);
        queue_.remove(f);
        --stats_.waiters;
        f->granted = true;
        wake_locked(g, f);
        continue;
      }
      f->head = true;
      wake_locked(g, f);
      return;
    }
  }

  // The head's turn: take the tokens (0 returned) or say how long to wait.
  std::chrono::nanoseconds head_turn(node& w) {
    lock_scope g(*this);
    if (w.granted) {
      w.registered = false;
      return std::chrono::nanoseconds(0);
    }
    refill_locked();
    if (tokens_ >= static_cast<double>(w.n)) {
      take_locked(w.n);
      queue_.remove(&w);
      --stats_.waiters;
      w.head = false;
      w.registered = false;
      serve_locked(g);
      return std::chrono::nanoseconds(0);
    }
    return deficit_time_locked(w.n);
  }

  // A waiter's frame is being destroyed before it finished (on its own worker).
  void withdraw(node& w) {
    lock_scope g(*this);
    if (w.wake_queued) w.owner->unschedule(w.handle);
    if (w.granted) {
      refill_locked();
      tokens_ = std::min(static_cast<double>(burst_), tokens_ + static_cast<double>(w.n));
      stats_.acquired -= w.n;
    } else {
      queue_.remove(&w);
      --stats_.waiters;
    }
    w.registered = false;
    serve_locked(g);
  }

  // The slow path of acquire: queue up, then wait for a grant or, as the
  // head, on timers until the deficit has refilled.
  task<void> wait_turn(std::uint64_t n) {
    if (!detail::tls_worker) throw std::logic_error("ringflow::rate_limiter: acquire awaited outside a runtime");
    node w(this, n);
    // w's flags are written by other workers under the lock; this local copy
    // is ours. Once resumed from park, w is the head or has been granted.
    bool head = false;
    bool took = false;
    {
      lock_scope g(*this);
      took = try_take_locked(n);
      if (!took) {
        queue_.push_back(&w);
        w.registered = true;
        head = w.head = queue_.front() == &w;
        ++stats_.waits;
        ++stats_.waiters;
      }
    }
    if (took) co_return;
    for (;;) {
      if (!head) {
        park_awaiter p{this, &w};
        co_await p;
        head = true;
      }
      std::chrono::nanoseconds d = head_turn(w);
      if (d.count() == 0) co_return;
      // A named awaiter (g++ 12: no braced temporaries in co_await).
      detail::sleep_awaiter s{d, {}};
      co_await s;
    }
  }

  double rate_;
  std::uint64_t burst_;
  clock_function now_;
  mutable double tokens_;
  mutable std::chrono::steady_clock::time_point last_;
  detail::waiter_list queue_;
  rate_limiter_stats stats_;
  mutable detail::spinlock lock_;
};

// The result of acquire(): completes without suspending when the tokens are
// there and nobody waits; otherwise runs the waiting coroutine (wait_turn),
// whose frame this awaiter owns, so destroying the awaiter cancels the wait.
class [[nodiscard]] rate_limiter::acquire_awaiter {
 public:
  acquire_awaiter(const acquire_awaiter&) = delete;
  acquire_awaiter& operator=(const acquire_awaiter&) = delete;

  bool await_ready() {
    if (n_ == 0) return true;
    lock_scope g(*lim_);
    return lim_->try_take_locked(n_);
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
    slow_ = lim_->wait_turn(n_);
    return std::move(slow_).operator co_await().await_suspend(h);
  }
  void await_resume() {
    if (slow_.valid()) std::move(slow_).operator co_await().await_resume();
  }

 private:
  friend class rate_limiter;
  acquire_awaiter(rate_limiter* l, std::uint64_t n) noexcept : lim_(l), n_(n) {}
  rate_limiter* lim_;
  std::uint64_t n_;
  task<void> slow_;
};

inline rate_limiter::acquire_awaiter rate_limiter::acquire(std::uint64_t n) {
  check_n(n);
  return acquire_awaiter(this, n);
}

}  // namespace ringflow
