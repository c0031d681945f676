// The machinery of task<T> (<ringflow/task.hpp>, whose declarations state
// the contract): the promise every task frame holds (its continuation, its
// error, whether its waits may be cancelled, and the chain of frames it
// awaits), the awaiter of co_await on a task, and the destruction of a chain
// of frames in constant stack.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <ringflow/detail/block_cache.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {

struct task_promise_base : block_cache::cached {
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
struct task<T>::awaiter {
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
