// The machinery of reactive streams (<ringflow/publisher.hpp>, whose
// declarations state the contract): the state one subscription shares with
// its producer, the producer's driver task (owned by the state, listed on its
// worker so a stopping runtime destroys it first), the waits of both sides,
// and the definitions of the members declared there.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/publisher.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {

inline constexpr std::uint64_t max_demand = (std::uint64_t{1} << 63) - 1;

// Starts t on this worker without awaiting it. t keeps owning the frame, so
// destroying t (or the frame t lives in) cancels the task.
inline void start_owned(task<void>& t) {
  if (!tls_worker) throw std::logic_error("ringflow: a stream was started outside a runtime");
  auto h = t.release();
  h.promise().uncancellable_task = nullptr;  // cancellable: destroying t cancels it
  t = task<void>{h};
  tls_worker->schedule_local(h);
}

template <class T>
struct stream_state {
  using producer_fn = std::function<task<void>(emitter<T>&)>;

  explicit stream_state(std::shared_ptr<producer_fn> f) : fn(std::move(f)), out(this) {
    driver_link.destroy_at_shutdown = &destroy_at_shutdown;
    driver_link.state = this;
  }
  stream_state(const stream_state&) = delete;
  stream_state& operator=(const stream_state&) = delete;
  ~stream_state() {
    // Only the producer's worker can still list the driver (the last
    // reference then went there: see end_producer).
    if (driver_link.linked && tls_worker == producer_worker) producer_worker->drop_owned(&driver_link);
  }

  std::atomic<int> refs{1};
  mutable affinity aff;
  mutable spinlock lock;
  std::shared_ptr<producer_fn> fn;
  emitter<T> out;
  // The producer, owned here, run on producer_worker. Written under the
  // guard (another worker reads it in end_producer); its frame is destroyed
  // on producer_worker only. While it runs it is listed there
  // (driver_link), so a runtime shutting down destroys it first.
  task<void> driver;
  struct link : owned_frame_link {
    stream_state* state = nullptr;
  } driver_link;
  worker* producer_worker = nullptr;
  std::uint64_t demand = 0;
  std::vector<T> buffer;  // emitted, not yet handed to the subscriber
  bool started = false, finished = false, cancelled = false, error_taken = false;
  std::exception_ptr error;
  // The producer suspended in emit() or demanded(), the subscriber in
  // request(), next() or values(): waiter_nodes in the awaiters.
  waiter_list producer_waiters, subscriber_waiters;

  struct guard : affinity_guard {
    explicit guard(const stream_state& s) : affinity_guard(s.aff, s.lock) {}
  };

  void add_ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // A reference held by a frame: released when the frame is destroyed, run
  // or not (a clean-up task a stopping runtime destroys unrun).
  class ref {
   public:
    explicit ref(stream_state* s) noexcept : s_(s) {}  // adopts a reference already added
    ref(ref&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    ref(const ref&) = delete;
    ref& operator=(const ref&) = delete;
    ~ref() {
      if (s_) s_->release();
    }
    stream_state* get() const noexcept { return s_; }

   private:
    stream_state* s_;
  };

  static task<void> drive(stream_state* s) {
    std::exception_ptr err;
    try {
      co_await (*s->fn)(s->out);
    } catch (...) {
      err = std::current_exception();
    }
    s->producer_worker->drop_owned(&s->driver_link);  // finished: nothing left to destroy at shutdown
    guard g(*s);
    s->finished = true;
    s->error = err;
    s->wake_locked(g, s->subscriber_waiters);
  }

  void start_driver() {  // under the guard, on the worker that will run it
    producer_worker = tls_worker;
    driver = drive(this);
    start_owned(driver);
    producer_worker->adopt_owned(&driver_link);
  }

  // A stream's waits are all cancellable (the producer belongs to the
  // subscription, and the subscriber's task may be timeout's child), so the
  // waker never completes one: it only queues the resumption.
  void suspend_locked(waiter_list& list, waiter_node* n, std::coroutine_handle<> h) {
    if (!tls_worker) throw std::logic_error("ringflow: a stream was awaited outside a runtime");
    enqueue_waiter(list, n, h);
  }
  void wake_locked(affinity_guard& g, waiter_list& list) {
    if (!list.empty()) wake_waiter(g, list.pop_front(), wait_state::notified);
  }
  // The woken waiter runs: it is off the list and its resume has run.
  static void resumed_locked(waiter_node* n) noexcept {
    n->state = wait_state::idle;
    n->registered = false;
  }
  // From the awaiter's destructor: a frame destroyed while suspended leaves
  // nothing behind (off the list, or its queued resume withdrawn).
  void withdraw(waiter_list& list, waiter_node* n) {
    guard g(*this);
    withdraw_waiter(list, n);
  }

  // On producer_worker: destroys the producer's frame (every wait it was
  // in withdraws). Idempotent.
  void destroy_driver_here() noexcept {
    task<void> d;
    {
      guard g(*this);
      d = std::move(driver);
    }
    producer_worker->drop_owned(&driver_link);
  }  // d's frame goes here, outside the lock its awaiters take

  static void destroy_at_shutdown(owned_frame_link* l) noexcept {
    static_cast<link*>(l)->state->destroy_driver_here();
  }

  // Ends the producer: at once on its own worker, else posted there. The
  // posted task holds a reference, released when its frame goes, run or
  // not. A runtime that has shut down destroyed the producer already, and
  // driver is then empty: nothing touches its workers.
  void end_producer() {
    bool here;
    {
      guard g(*this);
      if (!driver.valid()) return;
      here = tls_worker == producer_worker;
      if (!here) add_ref();
    }
    if (here) {
      destroy_driver_here();
      return;
    }
    ref r(this);
    spawn_on(*producer_worker, [](ref r) -> task<void> {
      r.get()->destroy_driver_here();
      co_return;
    }(std::move(r))).detach();
  }

  void cancel() {
    {
      guard g(*this);
      if (cancelled) return;
      cancelled = true;
      buffer.clear();
      wake_locked(g, subscriber_waiters);
    }
    end_producer();
  }
};

}  // namespace detail

// ---- emitter -------------------------------------------------------------------

template <class T>
class emitter<T>::emit_awaiter : detail::waiter_node {
 public:
  bool await_ready() {
    typename detail::stream_state<T>::guard g(s_);
    return try_emit(g);
  }
  bool await_suspend(std::coroutine_handle<> h) {
    typename detail::stream_state<T>::guard g(s_);
    if (try_emit(g)) return false;
    s_.suspend_locked(s_.producer_waiters, this, h);
    return true;
  }
  bool await_resume() {
    if (registered) {
      typename detail::stream_state<T>::guard g(s_);  // a waker on another worker reads the state
      s_.resumed_locked(this);
      try_emit(g);
    }
    return result_;
  }
  ~emit_awaiter() {
    if (registered) s_.withdraw(s_.producer_waiters, this);
  }

 private:
  friend class emitter;
  emit_awaiter(detail::stream_state<T>& s, T&& v) : waiter_node(lazy_t{}), s_(s), value_(std::move(v)) {}
  bool try_emit(detail::affinity_guard& g) {
    if (s_.cancelled) {
      result_ = false;
      return true;
    }
    if (s_.demand == 0) return false;
    --s_.demand;
    s_.buffer.push_back(std::move(value_));
    s_.wake_locked(g, s_.subscriber_waiters);
    result_ = true;
    return true;
  }
  detail::stream_state<T>& s_;
  T value_;
  bool result_ = false;
};

template <class T>
class emitter<T>::demand_awaiter : detail::waiter_node {
 public:
  bool await_ready() {
    typename detail::stream_state<T>::guard g(s_);
    return s_.cancelled || s_.demand > 0;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    typename detail::stream_state<T>::guard g(s_);
    if (s_.cancelled || s_.demand > 0) return false;
    s_.suspend_locked(s_.producer_waiters, this, h);
    return true;
  }
  bool await_resume() {
    typename detail::stream_state<T>::guard g(s_);  // a waker on another worker reads the state
    if (registered) s_.resumed_locked(this);
    return !s_.cancelled;
  }
  ~demand_awaiter() {
    if (registered) s_.withdraw(s_.producer_waiters, this);
  }

 private:
  friend class emitter;
  explicit demand_awaiter(detail::stream_state<T>& s) : waiter_node(lazy_t{}), s_(s) {}
  detail::stream_state<T>& s_;
};

template <class T>
bool emitter<T>::try_emit(T& v) {
  typename detail::stream_state<T>::guard g(*s_);
  if (s_->cancelled || s_->demand == 0) return false;
  --s_->demand;
  s_->buffer.push_back(std::move(v));
  s_->wake_locked(g, s_->subscriber_waiters);
  return true;
}

template <class T>
std::uint64_t emitter<T>::demand() const {
  typename detail::stream_state<T>::guard g(*s_);
  return s_->demand;
}

template <class T>
bool emitter<T>::cancelled() const {
  typename detail::stream_state<T>::guard g(*s_);
  return s_->cancelled;
}

template <class T>
typename emitter<T>::emit_awaiter emitter<T>::emit(T value) {
  return emit_awaiter(*s_, std::move(value));
}

template <class T>
typename emitter<T>::demand_awaiter emitter<T>::demanded() {
  return demand_awaiter(*s_);
}

// ---- subscription --------------------------------------------------------------

template <class T>
class subscription<T>::request_awaiter : detail::waiter_node {
 public:
  bool await_ready() {
    typename detail::stream_state<T>::guard g(s_);
    if (mode_ == mode::next && s_.demand == 0 && s_.buffer.empty()) return true;  // nothing outstanding
    return has_result();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    typename detail::stream_state<T>::guard g(s_);
    if (has_result()) return false;
    s_.suspend_locked(s_.subscriber_waiters, this, h);
    return true;
  }
  std::vector<T> await_resume() {
    typename detail::stream_state<T>::guard g(s_);  // a waker on another worker reads the state
    if (registered) s_.resumed_locked(this);
    std::vector<T> out;
    out.swap(s_.buffer);
    if (out.empty() && s_.error && !s_.error_taken && !s_.cancelled) {
      s_.error_taken = true;
      std::rethrow_exception(s_.error);
    }
    return out;
  }
  ~request_awaiter() {
    // Only the awaiter that registered (waiter_node::registered) withdraws:
    // an un-awaited request() (callback style) leaves another task's wait alone.
    if (registered) s_.withdraw(s_.subscriber_waiters, this);
  }

 private:
  friend class subscription;
  enum class mode { request, next, values };
  request_awaiter(detail::stream_state<T>& s, mode m) : waiter_node(lazy_t{}), s_(s), mode_(m) {}
  bool has_result() const { return s_.cancelled || !s_.buffer.empty() || s_.finished; }
  detail::stream_state<T>& s_;
  mode mode_;
};

template <class T>
subscription<T>::subscription(subscription&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}

template <class T>
subscription<T>& subscription<T>::operator=(subscription&& o) noexcept {
  if (this != &o) {
    reset();
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

template <class T>
subscription<T>::~subscription() {
  reset();
}

template <class T>
void subscription<T>::reset() {
  if (!s_) return;
  s_->cancel();
  std::exchange(s_, nullptr)->release();
}

template <class T>
typename subscription<T>::request_awaiter subscription<T>::request(std::uint64_t n) {
  if (!s_) throw std::logic_error("ringflow::subscription: used after move");
  if (n == 0) {
    cancel();
    throw std::invalid_argument("ringflow::subscription::request: n must be at least 1 (rule 3.9)");
  }
  add_demand(n);
  return request_awaiter(*s_, request_awaiter::mode::request);
}

template <class T>
typename subscription<T>::request_awaiter subscription<T>::next() {
  if (!s_) throw std::logic_error("ringflow::subscription: used after move");
  return request_awaiter(*s_, request_awaiter::mode::next);
}

template <class T>
typename subscription<T>::request_awaiter subscription<T>::values() {
  if (!s_) throw std::logic_error("ringflow::subscription: used after move");
  return request_awaiter(*s_, request_awaiter::mode::values);
}

template <class T>
bool subscription<T>::is_cancelled() const {
  typename detail::stream_state<T>::guard g(*s_);
  return s_->cancelled;
}

template <class T>
void subscription<T>::cancel() {
  if (s_) s_->cancel();
}

template <class T>
void subscription<T>::add_demand(std::uint64_t n) {
  detail::stream_state<T>& st = *s_;
  typename detail::stream_state<T>::guard g(st);
  if (st.cancelled) return;
  st.demand = st.demand > detail::max_demand - n ? detail::max_demand : st.demand + n;
  if (!st.started) {
    if (!detail::tls_worker) throw std::logic_error("ringflow::subscription::request called outside a runtime");
    st.started = true;
    st.start_driver();
  }
  st.wake_locked(g, st.producer_waiters);
}

// ---- publisher -----------------------------------------------------------------

template <class T>
template <class F>
publisher<T> publisher<T>::create(F producer) {
  publisher p;
  p.fn_ = std::make_shared<producer_fn>(std::move(producer));
  return p;
}

template <class T>
subscription<T> publisher<T>::subscribe() const {
  return subscription<T>(new detail::stream_state<T>(fn_));
}

template <class T>
void publisher<T>::subscribe(subscriber<T>& s) const {
  spawn_local(drive_subscriber(subscribe(), &s)).detach();
}

template <class T>
template <class Channel>
publisher<T> publisher<T>::from(Channel& ch) {
  return create([c = &ch](emitter<T>& out) -> task<void> {
    for (;;) {
      bool wanted = co_await out.demanded();
      if (!wanted) co_return;
      auto v = co_await c->recv();
      if (!v) co_return;
      T value = std::move(*v);
      bool delivered = co_await out.emit(std::move(value));
      if (!delivered) co_return;
    }
  });
}

template <class T>
task<void> publisher<T>::drive_subscriber(subscription<T> sub, subscriber<T>* s) {
  try {
    s->on_subscribe(sub);
  } catch (...) {
    sub.cancel();
    s->on_error(std::current_exception());
    co_return;
  }
  for (;;) {
    if (sub.is_cancelled()) co_return;
    std::vector<T> batch;
    std::exception_ptr err;
    try {
      batch = co_await sub.values();
    } catch (...) {
      err = std::current_exception();
    }
    if (err) {
      s->on_error(err);
      co_return;
    }
    if (sub.is_cancelled()) co_return;
    if (batch.empty()) {
      s->on_complete();
      co_return;
    }
    for (T& v : batch) {
      try {
        s->on_next(std::move(v));
      } catch (...) {
        err = std::current_exception();
      }
      if (err) {
        sub.cancel();
        s->on_error(err);
        co_return;
      }
      if (sub.is_cancelled()) co_return;
    }
  }
}

template <class T, class Channel>
task<void> pump(subscription<T>& sub, Channel& ch, std::uint64_t batch) {
  for (;;) {
    std::vector<T> values = co_await sub.request(batch);
    if (values.empty()) break;
    for (T& v : values) {
      auto status = co_await ch.send(std::move(v));
      if (status == send_status::closed) {
        sub.cancel();
        co_return;
      }
    }
  }
  ch.close();
}

}  // namespace ringflow
