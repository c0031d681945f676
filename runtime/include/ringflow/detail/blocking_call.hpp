// blocking_call: the state spawn_blocking shares between the awaiting task
// and the pool thread that runs f.
//
// Two references: the task's (its frame's parameter) and, once submitted,
// the pool's (dropped by the pool thread after it stored the result, or by
// a cancelled awaiter that took the job out of the queue). The last one
// frees the state: on the worker after a normal resume, on the pool thread
// when the awaiter was cancelled while f ran.
//
// The hand-back: the pool thread stores the result, then under `lock` marks
// the call done and pushes the waiter into its worker's inbox (under the
// lock, so a cancelled awaiter can withdraw that resumption), then wakes
// the worker. A cancelled awaiter, under the same lock, either clears the
// waiter (the pool will resume nothing) or unschedules the resumption
// already pushed.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <ringflow/blocking.hpp>
#include <ringflow/detail/blocking_pool.hpp>
#include <ringflow/detail/runtime_core.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/task.hpp>

namespace ringflow::detail {

template <class R>
struct blocking_result {
  std::optional<R> value;
};
template <>
struct blocking_result<void> {};

template <class R>
struct blocking_call_base : blocking_job, blocking_result<R> {
  std::atomic<int> refs{1};
  spinlock lock;
  std::coroutine_handle<> waiter;  // under lock once submitted
  worker* waiter_worker = nullptr;
  std::exception_ptr error;
  void (*destroy)(blocking_call_base*) noexcept = nullptr;

  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
  }

  // On the pool thread, after the result (or error) is stored.
  void complete() noexcept {
    lock.lock();
    std::coroutine_handle<> h = std::exchange(waiter, {});
    worker* w = waiter_worker;
    const bool wake = h && w->push_remote(h);
    lock.unlock();
    // The worker outlives this: the runtime joins the pool before its
    // workers go.
    if (wake) w->wake();
    release();
  }
};

template <class F>
struct blocking_call final : blocking_call_base<std::invoke_result_t<F>> {
  using R = std::invoke_result_t<F>;
  std::optional<F> f;

  explicit blocking_call(F&& fn) : f(std::move(fn)) {
    this->run = &run_on_pool;
    this->destroy = &destroy_call;
  }

  static void run_on_pool(blocking_job* j) noexcept {
    auto* self = static_cast<blocking_call*>(j);
    try {
      if constexpr (std::is_void_v<R>) {
        std::invoke(std::move(*self->f));
      } else {
        self->value.emplace(std::invoke(std::move(*self->f)));
      }
    } catch (...) {
      self->error = std::current_exception();
    }
    self->f.reset();  // consumed: its captures go here, not on the worker
    self->complete();
  }
  static void destroy_call(blocking_call_base<R>* b) noexcept { delete static_cast<blocking_call*>(b); }
};

// The task's reference (the coroutine's parameter).
template <class R>
struct blocking_ref {
  blocking_call_base<R>* call;
  explicit blocking_ref(blocking_call_base<R>* c) noexcept : call(c) {}
  blocking_ref(blocking_ref&& o) noexcept : call(std::exchange(o.call, nullptr)) {}
  blocking_ref(const blocking_ref&) = delete;
  blocking_ref& operator=(const blocking_ref&) = delete;
  ~blocking_ref() {
    if (call) call->release();
  }
};

template <class R>
class blocking_awaiter {
 public:
  explicit blocking_awaiter(blocking_call_base<R>* c) noexcept : c_(c) {}
  blocking_awaiter(const blocking_awaiter&) = delete;
  blocking_awaiter& operator=(const blocking_awaiter&) = delete;
  ~blocking_awaiter() { withdraw(); }

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    worker* w = tls_worker;
    if (!w) throw std::logic_error("ringflow::spawn_blocking awaited outside a runtime");
    pool_ = &w->core().blocking();
    // The pool has not seen the call yet: no lock needed.
    c_->waiter = h;
    c_->waiter_worker = w;
    c_->refs.fetch_add(1, std::memory_order_relaxed);  // the pool's
    try {
      pool_->submit(*c_);
    } catch (...) {
      c_->waiter = {};
      c_->refs.fetch_sub(1, std::memory_order_relaxed);
      throw;
    }
    me_ = h;
    w->expect_hand_back();
  }
  R await_resume() {
    if (me_) tls_worker->hand_back_settled();
    me_ = {};
    // Taken out, not copied: the pool thread may drop the call's last
    // reference after the task has finished with the exception, and must
    // not free it then (TSan cannot see libstdc++'s own counts).
    if (c_->error) std::rethrow_exception(std::exchange(c_->error, nullptr));
    if constexpr (!std::is_void_v<R>) {
      R r = std::move(*c_->value);  // and the moved-from husk goes here too
      c_->value.reset();
      return r;
    }
  }

 private:
  // Destroyed while suspended (cancelled, or the runtime shuts down).
  void withdraw() noexcept {
    if (!me_) return;
    tls_worker->hand_back_settled();
    if (pool_->withdraw(*c_)) {
      c_->refs.fetch_sub(1, std::memory_order_relaxed);  // the pool's; ours is still held
      return;
    }
    c_->lock.lock();
    if (c_->waiter == me_) {
      c_->waiter = {};  // f still runs: the pool thread resumes nothing
    } else {
      tls_worker->unschedule(me_);  // already pushed (we are on its worker)
    }
    c_->lock.unlock();
  }

  blocking_call_base<R>* c_;
  blocking_pool* pool_ = nullptr;
  std::coroutine_handle<> me_{};
};

template <class R>
task<R> await_blocking(blocking_ref<R> call) {
  blocking_awaiter<R> a(call.call);
  if constexpr (std::is_void_v<R>) {
    co_await a;
  } else {
    co_return co_await a;
  }
}

}  // namespace ringflow::detail
