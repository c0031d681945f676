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
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace ringflow {

template <class T = void>
class task;

namespace detail {

struct root_link;  // a spawned task's top frame (detail/worker.hpp)

// What every task<T> is, whatever its T: the address of the frame it owns.
struct task_owner {
  void* frame = nullptr;
};

struct task_promise_base {
  std::coroutine_handle<> continuation = std::noop_coroutine();
  std::exception_ptr error;
  // The spawned task this frame runs under, when nothing but shutdown can
  // destroy this frame while it is suspended (its waits cannot be
  // cancelled); null for a cancellable frame (timeout's child, a stream's
  // producer, a task started by hand, and whatever they await). A waker may
  // complete an uncancellable wait itself and move its task to the waking
  // worker: docs/design/uncancellable_waits.md.
  root_link* uncancellable_task = nullptr;

  // A chain of nested co_awaits, for destroying it leaf first in constant
  // stack (destroy_task_frame): while this frame is suspended in co_await on
  // a task, `child` is that task's promise and `child_owner` the task object
  // in this frame that owns it; `parent` is the promise of the task frame
  // awaiting this one.
  task_promise_base* child = nullptr;
  task_owner* child_owner = nullptr;
  task_promise_base* parent = nullptr;

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

// The spawned task h runs under if h's waits cannot be cancelled (see
// task_promise_base::uncancellable_task), else null. Coroutine types that do
// not say (no `uncancellable_task` member in their promise) are assumed to
// be cancellable.
template <class P>
root_link* uncancellable_task_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (std::is_void_v<P>) {
    return nullptr;  // a type-erased handle: nothing to ask
  } else if constexpr (requires(P& p) { static_cast<root_link*>(p.uncancellable_task); }) {
    return h.promise().uncancellable_task;
  } else {
    return nullptr;
  }
}

// Destroys a task's frame and every frame it awaits in turn. Left to
// itself, destroying a frame destroys the task object it is suspended on,
// which destroys that frame, one nested call per level: a chain a million
// co_awaits deep overflows the stack when it is cancelled or shut down. Here
// the chain is walked down to its leaf and freed from there up, each frame
// detached from its owner first, so the stack stays flat and every frame
// still goes before the frame that awaits it (a child's destructors may use
// what its parent owns).
inline void destroy_task_frame(void* frame, task_promise_base* p) noexcept {
  if (!p->child) {
    std::coroutine_handle<>::from_address(frame).destroy();
    return;
  }
  task_promise_base* leaf = p;
  while (leaf->child) leaf = leaf->child;
  while (leaf != p) {
    task_promise_base* up = leaf->parent;
    void* f = std::exchange(up->child_owner->frame, nullptr);
    up->child = nullptr;
    up->child_owner = nullptr;
    std::coroutine_handle<>::from_address(f).destroy();
    leaf = up;
  }
  std::coroutine_handle<>::from_address(frame).destroy();
}

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

  // What co_await on a task gives (a named member because a local class
  // cannot have the member template await_suspend needs). The awaited task
  // inherits `uncancellable_task` from the awaiting frame.
  struct awaiter {
    std::coroutine_handle<promise_type> h;
    detail::task_owner* owner;
    bool await_ready() const noexcept { return !h || h.done(); }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> cont) noexcept {
      promise_type& child = h.promise();
      child.continuation = cont;
      child.uncancellable_task = detail::uncancellable_task_of(cont);
      if constexpr (std::is_base_of_v<detail::task_promise_base, P>) {
        child.parent = &cont.promise();
        cont.promise().child = &child;
        cont.promise().child_owner = owner;
      }
      return h;
    }
    T await_resume() {
      if (!h) throw std::logic_error("ringflow: awaiting an empty task");
      promise_type& child = h.promise();
      if (detail::task_promise_base* p = std::exchange(child.parent, nullptr)) {
        p->child = nullptr;
        p->child_owner = nullptr;
      }
      return child.take();
    }
  };
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
