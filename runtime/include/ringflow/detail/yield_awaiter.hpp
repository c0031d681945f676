// The machinery of yield() (<ringflow/yield.hpp>, whose declaration states
// the contract): the awaiter queues its task at the back of this worker's
// ready queue, and withdraws it if the frame is destroyed first.
#pragma once

#include <coroutine>
#include <stdexcept>
#include <utility>

#include <ringflow/detail/worker.hpp>
#include <ringflow/yield.hpp>

namespace ringflow {

namespace detail {
struct yield_awaiter {
  std::coroutine_handle<> me{};
  yield_awaiter() = default;
  yield_awaiter(yield_awaiter&& o) noexcept : me(std::exchange(o.me, {})) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    if (!tls_worker) throw std::logic_error("ringflow::yield awaited outside a runtime");
    me = h;
    tls_worker->schedule_local(h);
  }
  void await_resume() noexcept { me = {}; }
  ~yield_awaiter() {
    if (me) tls_worker->unschedule(me);
  }
};
}  // namespace detail

inline detail::yield_awaiter yield() noexcept { return {}; }

}  // namespace ringflow
