// probe<A>: wraps an awaiter and remembers whether awaiting it suspended, so
// the lab can time exactly the sends and emits that backpressure held back.
//
//   probe<ringflow::channel<item>::send_awaiter> p{ch.send(std::move(v))};
//   auto status = co_await p;            // a named awaiter (g++ 12: never a braced temporary)
//   if (p.suspended) ...
//
// The inner awaiter is built in place from the prvalue (it is not movable).
// Its await_suspend may return void, bool or a coroutine handle (symmetric
// transfer: handing back our own handle means "did not suspend"); the probe
// returns the same, so it costs the inner awaiter nothing.
// Cancel safety: that of the inner awaiter; the probe adds no state of its own.
#pragma once

#include <coroutine>
#include <type_traits>

namespace ringflow::lab {

template <class A>
struct probe {
  A inner;
  bool suspended = false;

  bool await_ready() { return inner.await_ready(); }
  // A task resumes on the worker it suspended on, and that worker is running
  // this call, so setting the flag after the inner await_suspend is safe.
  auto await_suspend(std::coroutine_handle<> h) {
    using R = decltype(inner.await_suspend(h));
    if constexpr (std::is_void_v<R>) {
      inner.await_suspend(h);
      suspended = true;
    } else if constexpr (std::is_same_v<R, bool>) {
      const bool s = inner.await_suspend(h);
      suspended = s;
      return s;
    } else {
      std::coroutine_handle<> next = inner.await_suspend(h);
      suspended = next != h;
      return next;
    }
  }
  decltype(auto) await_resume() { return inner.await_resume(); }
};

}  // namespace ringflow::lab
