// The machinery of join_handle<T> (<ringflow/join_handle.hpp>, whose
// declarations state the contract): the join state a spawned task shares
// with its handle (result, joiner, cancellation request; two references), the
// task's top frame (root_coro, listed on its worker), and cancellation, which
// runs on the task's home worker and pins it there before destroying it.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <ringflow/detail/block_cache.hpp>
#include <ringflow/detail/runtime_core.hpp>
#include <ringflow/detail/signal_mask.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/join_handle.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {

// Calls the unhandled-exception handler (runtime/src/unhandled_exception.cpp).
void report_unhandled(std::exception_ptr e) noexcept;

enum class join_status : unsigned char { running, done, cancelled };

struct join_state_base : block_cache::cached {
  std::atomic<int> refs{2};  // the handle and the running task
  // finished_bit once the result is stored; waited_bit while a thread
  // blocks in join_handle::wait(), so only then does finish() pay for a
  // wake in the kernel (std::atomic's notify may cost one for every caller
  // whose address hashes with a waiter's).
  static constexpr unsigned finished_bit = 1, waited_bit = 2;
  std::atomic<unsigned> finished_word{0};
  bool is_finished() const noexcept { return finished_word.load(std::memory_order_acquire) & finished_bit; }
  // A foreign thread: blocks until finish() has run.
  void wait_finished() noexcept {
    unsigned w = finished_word.fetch_or(waited_bit, std::memory_order_acquire) | waited_bit;
    while (!(w & finished_bit)) {
      finished_word.wait(w, std::memory_order_acquire);
      w = finished_word.load(std::memory_order_acquire);
    }
  }
  spinlock lock;
  join_status status = join_status::running;
  std::coroutine_handle<> joiner;
  worker* joiner_worker = nullptr;
  std::exception_ptr error;
  bool error_taken = false;  // a joiner saw the exception (else it is reported)
  // Cancellation (join_handle::cancel), under `lock`. While status is
  // running, `root` is alive: the root frame finishes its join state before
  // its link goes (root_coro::promise_type's destructor).
  root_link* root = nullptr;
  bool started = false;           // run_root has begun (its worker lists it)
  bool cancel_requested = false;

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
    if (finished_word.fetch_or(finished_bit, std::memory_order_acq_rel) & waited_bit) finished_word.notify_all();
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
    if (status == join_status::cancelled) throw task_cancelled();
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
    if (status == join_status::cancelled) throw task_cancelled();
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
    if (!s->is_finished()) s->finish(join_status::cancelled);
    s->release();
  }
};

// The top frame of a spawned task. It frees itself when it finishes.
struct root_coro {
  struct promise_type : block_cache::cached {
    root_link link;
    join_state_base* join = nullptr;  // set by spawn_on
    // Only shutdown destroys a spawned task's frame while it is suspended:
    // the tasks it awaits inherit this (task_promise_base::uncancellable_task).
    root_link* uncancellable_task = &link;
    root_coro get_return_object() noexcept {
      link.frame = std::coroutine_handle<promise_type>::from_promise(*this);
      return root_coro{&link, this};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {}  // run_root catches everything
    ~promise_type() {
      // Joiners learn the end before the link goes: a canceller that saw the
      // task running under the join state's lock may still read the link.
      if (join && !join->is_finished()) join->finish(join_status::cancelled);
      worker::drop_root(&link);
    }
  };
  root_link* link;
  promise_type* promise;
};

template <class T>
root_coro run_root(task<T> t, join_ref<T> ref) {
  ref.s->lock.lock();
  ref.s->started = true;
  const bool cancelled = ref.s->cancel_requested;
  ref.s->lock.unlock();
  if (cancelled) co_return;  // cancelled before it started: t never runs
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

// One reference to a join state, dropped with the frame that holds it (run
// or not).
template <class T>
struct join_state_ref {
  join_state<T>* s;
  explicit join_state_ref(join_state<T>* st) noexcept : s(st) {}
  join_state_ref(join_state_ref&& o) noexcept : s(std::exchange(o.s, nullptr)) {}
  ~join_state_ref() {
    if (s) s->release();
  }
};

template <class T>
task<void> cancel_on_home(join_state_ref<T> ref);

// Starts cancel_on_home on w, pinned, detached; takes over one reference.
template <class T>
void spawn_canceller(worker& w, join_state<T>* s) {
  auto* js = new join_state<void>;
  root_coro r = run_root(cancel_on_home(join_state_ref<T>{s}), join_ref<void>{js});
  r.promise->join = js;
  w.core().start_on(w, r.link);  // refused (w has shut down): destroyed unrun
  js->release();                 // detached
}

template <class T>
void request_cancel(join_state<T>* s) {
  s->lock.lock();
  if (s->status != join_status::running || s->cancel_requested) {
    s->lock.unlock();
    return;
  }
  s->cancel_requested = true;
  if (!s->started) {  // run_root sees the request before it runs the task
    s->lock.unlock();
    return;
  }
  worker* home = s->root->home.load(std::memory_order_relaxed);
  s->refs.fetch_add(1, std::memory_order_relaxed);
  s->lock.unlock();
  spawn_canceller(*home, s);
}

// Runs on the worker a cancelled task lives on (pinned there), when that
// task is not running: pins the task so no waker moves it, then destroys its
// frame, every wait withdrawn as under timeout. If the task moved meanwhile,
// it follows it. Holds a reference to the join state.
template <class T>
task<void> cancel_on_home(join_state_ref<T> ref) {
  join_state<T>* s = ref.s;
  s->lock.lock();
  if (s->status != join_status::running) {
    s->lock.unlock();
    co_return;
  }
  root_link* r = s->root;
  worker* here = tls_worker;
  if (!here->pin_if_home(r)) {
    worker* home = r->home.load(std::memory_order_relaxed);
    s->refs.fetch_add(1, std::memory_order_relaxed);
    s->lock.unlock();
    // A reference for the next canceller; if home has shut down it is never
    // run and its frame drops the reference.
    spawn_canceller(*home, s);
    co_return;
  }
  s->lock.unlock();
  // Pinned here and not running (this worker runs us): nothing else can
  // resume, move or destroy it now.
  r->frame.destroy();
}

}  // namespace detail

template <class T>
void join_handle<T>::cancel() {
  if (s_) detail::request_cancel(s_);
}

template <class T>
T join_handle<T>::wait() {
  if (!s_) throw std::logic_error("ringflow: waiting on an empty join_handle");
  if (detail::tls_worker) throw std::logic_error("ringflow: join_handle::wait() on a worker thread; co_await it");
  detail::signal_shield shield;
  s_->wait_finished();
  return s_->take();
}

template <class T>
struct join_handle<T>::awaiter {
  detail::join_state<T>* s;
  std::coroutine_handle<> me{};
  bool await_ready() const {
    if (!s) throw std::logic_error("ringflow: awaiting an empty join_handle");
    return s->is_finished();
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

template <class T>
typename join_handle<T>::awaiter join_handle<T>::operator co_await() noexcept {
  return awaiter{s_};
}

}  // namespace ringflow
