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
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace ringflow {

template <class T = void>
class task;

namespace detail {

struct root_link;  // a spawned task's top frame (detail/worker.hpp)

struct task_promise_base {
  std::coroutine_handle<> continuation = std::noop_coroutine();
  std::exception_ptr error;
  // The spawned task this frame runs under, when nothing but shutdown can
  // destroy this frame while it is suspended with a resumption already
  // queued: set for a task awaited by a spawned task's root, and for what
  // that awaits in turn. Null ("cancellable") for timeout's child, a
  // stream's owned producer, a task started by hand, and every task they
  // await. A channel completes the wait of a frame with a root ahead of its
  // resumption (it moves the value across at once), and may move the whole
  // task to the waking worker (see worker::place_woken); a cancellable
  // frame's wait completes only when the frame runs, where it suspended, so
  // cancelling it takes nothing and loses nothing.
  root_link* root = nullptr;

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      return h.promise().continuation;
    }
    void await_resume() noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
  void rethrow_if_error() {
    if (error) std::rethrow_exception(error);
  }
};

template <class T>
struct task_promise : task_promise_base {
  std::optional<T> value;
  task<T> get_return_object() noexcept;
  template <class U>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    rethrow_if_error();
    return std::move(*value);
  }
};

template <>
struct task_promise<void> : task_promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() { rethrow_if_error(); }
};

// The spawned task h runs under (see task_promise_base::root), or null when
// h's frame may be destroyed while suspended with a resumption already
// queued. Coroutine types that do not say (no `root` member in their
// promise) are assumed to be cancellable.
template <class P>
root_link* root_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (std::is_void_v<P>) {
    return nullptr;  // a type-erased handle: nothing to ask
  } else if constexpr (requires(P& p) { static_cast<root_link*>(p.root); }) {
    return h.promise().root;
  } else {
    return nullptr;
  }
}

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::task_promise<T>;
  using value_type = T;

  task() noexcept = default;
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { reset(); }

  bool valid() const noexcept { return bool(h_); }
  bool done() const noexcept { return h_ && h_.done(); }

  // What co_await on a task gives (a named member because a local class
  // cannot have the member template await_suspend needs). The awaited task
  // inherits `root` from the awaiting frame.
  struct awaiter {
    std::coroutine_handle<promise_type> h;
    bool await_ready() const noexcept { return !h || h.done(); }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> cont) noexcept {
      h.promise().continuation = cont;
      h.promise().root = detail::root_of(cont);
      return h;
    }
    T await_resume() { return h.promise().take(); }
  };
  awaiter operator co_await() && noexcept { return awaiter{h_}; }
  awaiter operator co_await() & noexcept { return std::move(*this).operator co_await(); }

  // Gives up ownership of the frame (used by spawn and timeout).
  std::coroutine_handle<promise_type> release() noexcept { return std::exchange(h_, {}); }

 private:
  void reset() noexcept {
    if (h_) h_.destroy();
    h_ = {};
  }
  std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<task_promise<T>>::from_promise(*this)};
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<task_promise<void>>::from_promise(*this)};
}
}  // namespace detail

}  // namespace ringflow
