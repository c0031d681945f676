// Reactive streams: a cold publisher, the producer's emitter, and a
// subscription whose awaitable request(n) is the subscriber's demand.
//
//   auto numbers = ringflow::publisher<int>::create([](ringflow::emitter<int>& out) -> ringflow::task<> {
//     for (int i = 0;; ++i)
//       if (!co_await out.emit(i)) co_return;   // suspends while demand is 0
//   });
//   auto sub = numbers.subscribe();               // cold: each subscription runs the producer anew
//   std::vector<int> batch = co_await sub.request(16);   // 1..16 values; empty once completed
//   sub.cancel();                                 // ends the producer, frees its frame
//
// The producer runs on the worker of the first request(), as a task owned by
// the subscription. It is suspended, not run ahead, once the demand is used:
// delivered values never exceed the total requested. request() never calls
// the producer re-entrantly (the producer is resumed through the worker's
// ready queue), so a subscriber requesting 1 value at a time uses constant
// stack however long the stream (Reactive Streams rule 3.3).
//
// Demand is additive and saturates at 2^63-1 (unbounded). After completion,
// an error or cancellation no value is delivered. The subscription keeps
// alive everything the producer needs: the publisher may be destroyed first.
//
// Also here: the callback-style subscriber<T> (below), processor<T, R>
// (processor.hpp), operators (operators.hpp) and hot sources (hot_source.hpp).
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
#include <ringflow/detail/worker.hpp>
#include <ringflow/overflow.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

template <class T>
class emitter;
template <class T>
class subscription;
template <class T>
class publisher;

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

enum class lite_state : unsigned char { idle, waiting, woken };

// One suspended party (the producer in emit, or the subscriber in request).
struct waiter_node_lite {
  std::coroutine_handle<> handle;
  worker* owner = nullptr;
  lite_state state = lite_state::idle;

  void suspend(std::coroutine_handle<> h) {
    if (!tls_worker) throw std::logic_error("ringflow: a stream was awaited outside a runtime");
    handle = h;
    owner = tls_worker;
    state = lite_state::waiting;
  }
  // From the awaiter's destructor: a frame destroyed while suspended here
  // leaves nothing behind (a queued resume is withdrawn).
  void withdraw(affinity& a, spinlock& l) {
    if (state == lite_state::idle) return;
    affinity_guard g(a, l);
    if (state == lite_state::woken) owner->unschedule(handle);
    state = lite_state::idle;
  }
};

template <class T>
struct stream_state;

}  // namespace detail

// The producer's side of one subscription.
template <class T>
class emitter {
 public:
  class [[nodiscard]] emit_awaiter;

  // co_await out.emit(v) -> bool: true once v was delivered to the
  // subscription's buffer; suspends while demand is 0; false (v dropped) once
  // the subscriber cancelled.
  // Cancel safety: destroying a producer suspended here withdraws it; v is
  // destroyed with the frame and was never delivered.
  emit_awaiter emit(T value) { return emit_awaiter(*s_, std::move(value)); }

  // Never suspends: delivers v if there is demand (true), else leaves v
  // untouched (false). For sources that cannot wait (hot_source).
  bool try_emit(T& v);

  class [[nodiscard]] demand_awaiter;
  // co_await out.demanded() -> bool: suspends until the subscriber has demand
  // (true) or cancelled (false); for sources that should take a value only
  // when it can be delivered at once (publisher::from drains a channel so).
  demand_awaiter demanded() { return demand_awaiter(*s_); }

  bool cancelled() const;
  // The subscriber's outstanding demand (values it may still receive).
  std::uint64_t demand() const;

 private:
  friend struct detail::stream_state<T>;
  explicit emitter(detail::stream_state<T>* s) : s_(s) {}
  detail::stream_state<T>* s_;
};

namespace detail {

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
  waiter_node_lite producer_wait, subscriber_wait;

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
    s->wake_locked(g, s->subscriber_wait);
  }

  void start_driver() {  // under the guard, on the worker that will run it
    producer_worker = tls_worker;
    driver = drive(this);
    start_owned(driver);
    producer_worker->adopt_owned(&driver_link);
  }

  void wake_locked(affinity_guard& g, waiter_node_lite& w) {
    if (w.state != lite_state::waiting) return;
    w.state = lite_state::woken;
    g.schedule(w.owner, w.handle);
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
      wake_locked(g, subscriber_wait);
    }
    end_producer();
  }
};

}  // namespace detail

template <class T>
class emitter<T>::emit_awaiter {
 public:
  bool await_ready() {
    typename detail::stream_state<T>::guard g(s_);
    return try_emit(g);
  }
  bool await_suspend(std::coroutine_handle<> h) {
    typename detail::stream_state<T>::guard g(s_);
    if (try_emit(g)) return false;
    s_.producer_wait.suspend(h);
    suspended_ = true;
    return true;
  }
  bool await_resume() {
    if (suspended_) {
      typename detail::stream_state<T>::guard g(s_);  // a waker on another worker reads the state
      s_.producer_wait.state = detail::lite_state::idle;
      suspended_ = false;
      try_emit(g);
    }
    return result_;
  }
  ~emit_awaiter() {
    if (suspended_) s_.producer_wait.withdraw(s_.aff, s_.lock);
  }

 private:
  friend class emitter;
  emit_awaiter(detail::stream_state<T>& s, T&& v) : s_(s), value_(std::move(v)) {}
  bool try_emit(detail::affinity_guard& g) {
    if (s_.cancelled) {
      result_ = false;
      return true;
    }
    if (s_.demand == 0) return false;
    --s_.demand;
    s_.buffer.push_back(std::move(value_));
    s_.wake_locked(g, s_.subscriber_wait);
    result_ = true;
    return true;
  }
  detail::stream_state<T>& s_;
  T value_;
  bool result_ = false;
  bool suspended_ = false;  // only the awaiter that registered may withdraw
};

template <class T>
class emitter<T>::demand_awaiter {
 public:
  bool await_ready() {
    typename detail::stream_state<T>::guard g(s_);
    return s_.cancelled || s_.demand > 0;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    typename detail::stream_state<T>::guard g(s_);
    if (s_.cancelled || s_.demand > 0) return false;
    s_.producer_wait.suspend(h);
    suspended_ = true;
    return true;
  }
  bool await_resume() {
    typename detail::stream_state<T>::guard g(s_);  // a waker on another worker reads the state
    if (suspended_) {
      s_.producer_wait.state = detail::lite_state::idle;
      suspended_ = false;
    }
    return !s_.cancelled;
  }
  ~demand_awaiter() {
    if (suspended_) s_.producer_wait.withdraw(s_.aff, s_.lock);
  }

 private:
  friend class emitter;
  explicit demand_awaiter(detail::stream_state<T>& s) : s_(s) {}
  detail::stream_state<T>& s_;
  bool suspended_ = false;
};

template <class T>
bool emitter<T>::try_emit(T& v) {
  typename detail::stream_state<T>::guard g(*s_);
  if (s_->cancelled || s_->demand == 0) return false;
  --s_->demand;
  s_->buffer.push_back(std::move(v));
  s_->wake_locked(g, s_->subscriber_wait);
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
class subscription {
 public:
  class request_awaiter;

  subscription(subscription&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  subscription& operator=(subscription&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~subscription() { reset(); }

  // Adds n to the demand (saturating at 2^63-1), then co_await -> std::vector<T>:
  // 1 or more values, or empty once the stream completed (or was cancelled);
  // a producer's error is rethrown once, after the values before it.
  // n == 0: cancels and throws std::invalid_argument (rule 3.9).
  // Cancel safety: a request cancelled while suspended loses nothing: values
  // that arrive stay buffered for the next request; the demand stays added.
  // The demand is added when request() is called, so a callback-style
  // subscriber may call it without awaiting (values then wait in the
  // subscription's buffer).
  request_awaiter request(std::uint64_t n) {
    if (!s_) throw std::logic_error("ringflow::subscription: used after move");
    if (n == 0) {
      cancel();
      throw std::invalid_argument("ringflow::subscription::request: n must be at least 1 (rule 3.9)");
    }
    add_demand(n);
    return request_awaiter(*s_, request_awaiter::mode::request);
  }

  // Waits for values already requested, adding no demand (for operators that
  // replenish demand on their own schedule). Returns empty once completed,
  // or at once when no demand is outstanding.
  request_awaiter next() {
    if (!s_) throw std::logic_error("ringflow::subscription: used after move");
    return request_awaiter(*s_, request_awaiter::mode::next);
  }
  // Waits for values, however long the demand stays 0 (the callback driver).
  request_awaiter values() {
    if (!s_) throw std::logic_error("ringflow::subscription: used after move");
    return request_awaiter(*s_, request_awaiter::mode::values);
  }
  bool is_cancelled() const {
    typename detail::stream_state<T>::guard g(*s_);
    return s_->cancelled;
  }

  // Idempotent: the producer's next emit returns false; its frame is destroyed
  // (at once when called on the producer's worker, else posted there).
  void cancel() {
    if (s_) s_->cancel();
  }

 private:
  friend class publisher<T>;
  explicit subscription(detail::stream_state<T>* s) : s_(s) {}
  void add_demand(std::uint64_t n);
  void reset() {
    if (!s_) return;
    s_->cancel();
    std::exchange(s_, nullptr)->release();
  }
  detail::stream_state<T>* s_;
};

template <class T>
class subscription<T>::request_awaiter {
 public:
  bool await_ready() {
    typename detail::stream_state<T>::guard g(s_);
    if (mode_ == mode::next && s_.demand == 0 && s_.buffer.empty()) return true;  // nothing outstanding
    return has_result();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    typename detail::stream_state<T>::guard g(s_);
    if (has_result()) return false;
    s_.subscriber_wait.suspend(h);
    suspended_ = true;
    return true;
  }
  std::vector<T> await_resume() {
    typename detail::stream_state<T>::guard g(s_);  // a waker on another worker reads the state
    if (suspended_) {
      s_.subscriber_wait.state = detail::lite_state::idle;
      suspended_ = false;
    }
    std::vector<T> out;
    out.swap(s_.buffer);
    if (out.empty() && s_.error && !s_.error_taken && !s_.cancelled) {
      s_.error_taken = true;
      std::rethrow_exception(s_.error);
    }
    return out;
  }
  ~request_awaiter() {
    // Only the awaiter that registered may withdraw: an un-awaited
    // request() (callback style) must not cancel another task's wait.
    if (suspended_) s_.subscriber_wait.withdraw(s_.aff, s_.lock);
  }

 private:
  friend class subscription;
  enum class mode { request, next, values };
  request_awaiter(detail::stream_state<T>& s, mode m) : s_(s), mode_(m) {}
  bool has_result() const { return s_.cancelled || !s_.buffer.empty() || s_.finished; }
  detail::stream_state<T>& s_;
  mode mode_;
  bool suspended_ = false;
};

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
  st.wake_locked(g, st.producer_wait);
}

// Reactive Streams' Subscriber, for callback-style code:
//
//   struct printer : ringflow::subscriber<int> {
//     ringflow::subscription<int>* sub = nullptr;
//     void on_subscribe(ringflow::subscription<int>& s) override { sub = &s; s.request(1); }
//     void on_next(int v) override { fmt::print("{}\n", v); sub->request(1); }
//     void on_error(std::exception_ptr) override {}
//     void on_complete() override {}
//   };
//   pub.subscribe(my_printer);   // inside a task; signals arrive on this worker
//
// Which rules of the specification (1.0.4) hold here:
//   1.1  on_next is called at most as often as requested                    holds
//   1.3  signals are serial (one driver task per subscription)              holds
//   1.4, 1.5  failure ends with on_error, completion with on_complete       holds
//   1.6, 1.7  nothing is signalled after on_error/on_complete               holds
//   1.8  after cancel no further signals                                    holds
//   1.9  on_subscribe comes first                                           holds
//   1.10 subscribing the same subscriber twice                              not checked (undefined here)
//   1.11 multicast                                                          n/a: publishers are cold, unicast
//   2.1  the subscriber signals demand through request(n)                   holds
//   2.3, 2.4  terminal callbacks may call the subscription                  tolerated (no effect)
//   2.5  a second on_subscribe                                              n/a: each subscribe() is one subscription
//   2.13 an on_next that throws: the subscription is cancelled and on_error
//        is called with that exception (the spec forbids throwing)           our choice
//   3.2, 3.3  request may be called from on_next; no unbounded recursion    holds (demand wakes the producer
//                                                                            through the worker's ready queue)
//   3.5, 3.6, 3.7  cancel is idempotent; request after cancel is a NOP      holds
//   3.9  request(0) signals on_error(std::invalid_argument)                 holds (it also cancels)
//   3.13 cancel drops the references to the subscriber and the producer     holds (the producer frame is freed)
//   3.17 demand saturates at 2^63-1                                          holds
//   processor<T, R> (processor.hpp) is both sides at once.
// The subscription passed to on_subscribe stays valid until on_complete or
// on_error returns, or the driver sees the cancel.
template <class T>
class subscriber {
 public:
  virtual ~subscriber() = default;
  virtual void on_subscribe(subscription<T>& s) = 0;
  virtual void on_next(T value) = 0;
  virtual void on_error(std::exception_ptr e) = 0;
  virtual void on_complete() = 0;
};

template <class T>
class publisher {
 public:
  // F: (emitter<T>&) -> task<void>. Cold: every subscribe() runs it anew.
  template <class F>
  static publisher create(F producer) {
    publisher p;
    p.fn_ = std::make_shared<typename detail::stream_state<T>::producer_fn>(std::move(producer));
    return p;
  }
  subscription<T> subscribe() const { return subscription<T>(new detail::stream_state<T>(fn_)); }

  // Callback style: runs s's callbacks from a task on the current worker
  // (call it inside a task). The subscriber must outlive the stream.
  void subscribe(subscriber<T>& s) const { spawn_local(drive_subscriber(subscribe(), &s)).detach(); }

  // A hot source drained by demand: each subscription takes a value from ch
  // only while its subscriber has demand, and completes when ch is closed and
  // drained. The channel must outlive the subscriptions. Known gap: a value
  // taken from ch at the moment a cancel arrives from another worker is lost
  // (on one worker this cannot happen: the cancel runs between two steps).
  template <class Channel>
  static publisher from(Channel& ch) {
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

 private:
  publisher() = default;

  static task<void> drive_subscriber(subscription<T> sub, subscriber<T>* s) {
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

  std::shared_ptr<typename detail::stream_state<T>::producer_fn> fn_;
};

// Moves a subscription's values into a channel, requesting `batch` at a time,
// so a demand-driven stream can feed channel consumers; the channel's
// backpressure becomes the stream's demand. Closes the channel when the
// stream completes; cancels the subscription if the channel is closed.
template <class T, class Channel>
task<void> pump(subscription<T>& sub, Channel& ch, std::uint64_t batch = 64) {
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
