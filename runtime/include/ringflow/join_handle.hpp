// join_handle<T>: the result of a spawned task.
//
//   auto h = ringflow::spawn(compute());   // starts now, maybe on another worker
//   int v = co_await std::move(h);         // waits; rethrows the task's exception
//
// Dropping the handle detaches the task: it runs to completion on its own.
// An exception that ends a task whose result nobody takes (the handle was
// dropped or detached, before or after the task failed) is not lost: it goes
// to the unhandled-exception handler, once per task, on the thread that lets
// go of the task last. The default handler writes one line to stderr
// (Tokio logs a panicking detached task the same way); replace it with
// set_unhandled_exception_handler.
// Cancel safety: a task suspended in `co_await handle` may be cancelled
// (its frame destroyed, e.g. by timeout); the spawned task keeps running
// and its result is discarded when the handle goes.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <utility>

#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

// Receives the exception of a task that failed with nobody to take its result.
using unhandled_exception_handler = std::function<void(std::exception_ptr)>;

// Installs h for the whole process (an empty h restores the default, which
// writes "ringflow: a detached task ended with an exception: <what()>" to
// stderr) and returns the previous handler. Thread-safe. An exception thrown
// by the handler is swallowed.
unhandled_exception_handler set_unhandled_exception_handler(unhandled_exception_handler h);

namespace detail {

// Calls the unhandled-exception handler (runtime/src/unhandled_exception.cpp).
void report_unhandled(std::exception_ptr e) noexcept;

enum class join_status : unsigned char { running, done, cancelled };

struct join_state_base {
  std::atomic<int> refs{2};  // the handle and the running task
  std::atomic<bool> finished{false};
  spinlock lock;
  join_status status = join_status::running;
  std::coroutine_handle<> joiner;
  worker* joiner_worker = nullptr;
  std::exception_ptr error;
  bool error_taken = false;  // a joiner saw the exception (else it is reported)

  // Last reference gone: an exception nobody took is reported.
  void report_if_untaken() noexcept {
    if (error && !error_taken) report_unhandled(error);
  }

  // Called once, on the task's worker, after the result is stored.
  void finish(join_status s) {
    lock.lock();
    status = s;
    std::coroutine_handle<> j = std::exchange(joiner, {});
    worker* w = joiner_worker;
    bool wake = false;
    if (j) {
      if (w == tls_worker) {
        w->schedule_local(j);
      } else {
        wake = w->push_remote(j);  // under the lock: a destroyed joiner can withdraw it
      }
    }
    lock.unlock();
    if (wake) w->wake();
    finished.store(true, std::memory_order_release);
    finished.notify_all();
  }
};

template <class T>
struct join_state : join_state_base {
  std::optional<T> value;
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      report_if_untaken();
      delete this;
    }
  }
  T take() {
    if (status == join_status::cancelled) throw std::runtime_error("ringflow: the task was cancelled");
    if (error) {
      error_taken = true;
      std::rethrow_exception(error);
    }
    return std::move(*value);
  }
};

template <>
struct join_state<void> : join_state_base {
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      report_if_untaken();
      delete this;
    }
  }
  void take() {
    if (status == join_status::cancelled) throw std::runtime_error("ringflow: the task was cancelled");
    if (error) {
      error_taken = true;
      std::rethrow_exception(error);
    }
  }
};

// The running side's reference: if the task's frame is destroyed before it
// finished (runtime shutdown), joiners learn it was cancelled.
template <class T>
struct join_ref {
  join_state<T>* s;
  explicit join_ref(join_state<T>* st) noexcept : s(st) {}
  join_ref(join_ref&& o) noexcept : s(std::exchange(o.s, nullptr)) {}
  ~join_ref() {
    if (!s) return;
    if (!s->finished.load(std::memory_order_acquire)) s->finish(join_status::cancelled);
    s->release();
  }
};

// The top frame of a spawned task. It frees itself when it finishes.
struct root_coro {
  struct promise_type {
    root_link link;
    // Only shutdown destroys a spawned task's frame while it is suspended:
    // the tasks it awaits inherit this (task_promise_base::uncancellable_task).
    root_link* uncancellable_task = &link;
    root_coro get_return_object() noexcept {
      link.frame = std::coroutine_handle<promise_type>::from_promise(*this);
      return root_coro{&link};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {}  // run_root catches everything
    ~promise_type() { worker::drop_root(&link); }
  };
  root_link* link;
};

template <class T>
root_coro run_root(task<T> t, join_ref<T> ref) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
    } else {
      ref.s->value.emplace(co_await std::move(t));
    }
    ref.s->finish(join_status::done);
  } catch (...) {
    ref.s->error = std::current_exception();
    ref.s->finish(join_status::done);
  }
}

}  // namespace detail

template <class T>
class [[nodiscard]] join_handle {
 public:
  join_handle() noexcept = default;
  explicit join_handle(detail::join_state<T>* s) noexcept : s_(s) {}
  join_handle(join_handle&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      if (s_) s_->release();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~join_handle() {
    if (s_) s_->release();
  }

  // True once the task has finished (value, exception or cancellation).
  bool is_finished() const noexcept { return s_ && s_->finished.load(std::memory_order_acquire); }
  bool valid() const noexcept { return s_ != nullptr; }
  // Detaches explicitly (as dropping the handle does).
  void detach() noexcept {
    if (s_) std::exchange(s_, nullptr)->release();
  }

  // Blocks the calling thread (not a worker: that would stall its tasks)
  // until the task finishes; returns its value or rethrows.
  T wait() {
    if (!s_) throw std::logic_error("ringflow: waiting on an empty join_handle");
    if (detail::tls_worker) throw std::logic_error("ringflow: join_handle::wait() on a worker thread; co_await it");
    while (!s_->finished.load(std::memory_order_acquire)) s_->finished.wait(false, std::memory_order_acquire);
    return s_->take();
  }

  auto operator co_await() noexcept {
    struct awaiter {
      detail::join_state<T>* s;
      std::coroutine_handle<> me{};
      bool await_ready() const {
        if (!s) throw std::logic_error("ringflow: awaiting an empty join_handle");
        return s->finished.load(std::memory_order_acquire);
      }
      bool await_suspend(std::coroutine_handle<> h) {
        if (!detail::tls_worker) throw std::logic_error("ringflow: join_handle awaited outside a runtime");
        s->lock.lock();
        if (s->status != detail::join_status::running) {
          s->lock.unlock();
          return false;
        }
        s->joiner = h;
        s->joiner_worker = detail::tls_worker;
        me = h;
        s->lock.unlock();
        return true;
      }
      T await_resume() {
        me = {};
        return s->take();
      }
      awaiter(detail::join_state<T>* st) noexcept : s(st) {}
      awaiter(awaiter&& o) noexcept : s(o.s), me(std::exchange(o.me, {})) {}
      ~awaiter() {
        if (!me) return;
        // Destroyed while suspended: withdraw, or cancel the queued resume.
        s->lock.lock();
        if (s->joiner == me) {
          s->joiner = {};
        } else {
          detail::tls_worker->unschedule(me);
        }
        s->lock.unlock();
      }
    };
    return awaiter{s_};
  }

 private:
  detail::join_state<T>* s_ = nullptr;
};

}  // namespace ringflow
