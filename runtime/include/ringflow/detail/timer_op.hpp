// The machinery of sleep_for() (<ringflow/sleep.hpp>, whose declaration
// states the contract): one IORING_OP_TIMEOUT on the awaiting task's worker,
// cancelled in the kernel and awaited if its frame is destroyed first.
#pragma once

#include <liburing.h>

#include <chrono>
#include <coroutine>
#include <stdexcept>

#include <ringflow/detail/completion.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/sleep.hpp>
#include <ringflow/task.hpp>
#include <ringflow/yield.hpp>

namespace ringflow {

namespace detail {

// The kernel refuses (-EINVAL) a negative tv_sec or a tv_nsec outside
// [0, 1e9), and / and % truncate towards zero: a negative d would give both
// negative, so it is clamped to zero (expires at once). Any d >= 0 splits
// exactly; the largest, nanoseconds::max(), gives tv_sec 9223372036, which
// the kernel saturates to its KTIME_MAX: effectively forever.
inline __kernel_timespec to_timespec(std::chrono::nanoseconds d) noexcept {
  __kernel_timespec ts{};
  if (d.count() <= 0) return ts;
  ts.tv_sec = d.count() / 1'000'000'000;
  ts.tv_nsec = d.count() % 1'000'000'000;
  return ts;
}

// One IORING_OP_TIMEOUT; the timespec lives here until the kernel copied it.
// Any duration: negative ones expire at once (see to_timespec).
struct timer_op {
  __kernel_timespec ts{};
  completion c;
  worker* w = nullptr;

  void start(std::chrono::nanoseconds d) {
    w = tls_worker;
    if (!w) throw std::logic_error("ringflow: a timer was awaited outside a runtime");
    ts = to_timespec(d);
    io_uring_sqe* sqe = w->get_sqe();
    io_uring_prep_timeout(sqe, &ts, 0, 0);
    w->track(c, sqe);
  }
  void cancel() {
    if (c.in_flight) w->cancel_and_wait(c);
  }
  ~timer_op() { cancel(); }
};

struct sleep_awaiter {
  std::chrono::nanoseconds d;
  timer_op op;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    op.c.waiter = h;
    op.start(d);
  }
  void await_resume() const noexcept {}
};

}  // namespace detail

inline task<void> sleep_for(std::chrono::nanoseconds d) {
  if (d.count() <= 0) {
    co_await yield();
  } else {
    // A named awaiter: g++ 12 destroys members of a braced aggregate
    // temporary in a co_await expression twice.
    detail::sleep_awaiter s{d, {}};
    co_await s;
  }
}

}  // namespace ringflow
