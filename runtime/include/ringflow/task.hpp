// task<T>: a lazy, move-only coroutine.
//
//   ringflow::task<int> answer() { co_return 42; }
//   ringflow::task<> caller() { int v = co_await answer(); }
//
// A task starts when it is awaited or spawned. Completion transfers control
// straight back to the awaiting coroutine (symmetric transfer), so a loop of
// synchronous co_awaits runs in constant stack. An exception thrown inside the
// task is rethrown from co_await. Destroying a task that has not finished
// destroys its frame (and, transitively, the frames it awaits).
#pragma once

#include <coroutine>
#include <utility>

namespace ringflow {

template <class T = void>
class task;

namespace detail {

struct root_link;  // a spawned task's top frame (detail/worker.hpp)
struct task_promise_base;
template <class T>
struct task_promise;

// What every task<T> is, whatever its T: the address of the frame it owns.
struct task_owner {
  void* frame = nullptr;
};

// The spawned task h runs under if h's waits cannot be cancelled, else null
// (detail/task_promise.hpp).
template <class P>
root_link* uncancellable_task_of(std::coroutine_handle<P> h) noexcept;
// Destroys a task's frame and the frames it awaits, leaf first.
inline void destroy_task_frame(void* frame, task_promise_base* p) noexcept;

}  // namespace detail

template <class T>
class [[nodiscard]] task : private detail::task_owner {
 public:
  using promise_type = detail::task_promise<T>;
  using value_type = T;

  task() noexcept = default;
  explicit task(std::coroutine_handle<promise_type> h) noexcept { frame = h.address(); }
  task(task&& o) noexcept { frame = std::exchange(o.frame, nullptr); }
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      reset();
      frame = std::exchange(o.frame, nullptr);
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { reset(); }

  bool valid() const noexcept { return frame != nullptr; }
  bool done() const noexcept { return frame && handle().done(); }

  // What co_await on a task gives; the awaited task inherits
  // `uncancellable_task` from the awaiting frame.
  struct awaiter;
  awaiter operator co_await() && noexcept { return awaiter{handle(), this}; }
  awaiter operator co_await() & noexcept { return std::move(*this).operator co_await(); }

  // Gives up ownership of the frame (used by spawn and timeout).
  std::coroutine_handle<promise_type> release() noexcept {
    return std::coroutine_handle<promise_type>::from_address(std::exchange(frame, nullptr));
  }

 private:
  std::coroutine_handle<promise_type> handle() const noexcept {
    return std::coroutine_handle<promise_type>::from_address(frame);
  }
  void reset() noexcept {
    if (void* f = std::exchange(frame, nullptr)) detail::destroy_task_frame(f, &handle_of(f).promise());
  }
  static std::coroutine_handle<promise_type> handle_of(void* f) noexcept {
    return std::coroutine_handle<promise_type>::from_address(f);
  }
};

}  // namespace ringflow

// The promise types, the awaiter and destroy_task_frame.
#include <ringflow/detail/task_promise.hpp>
