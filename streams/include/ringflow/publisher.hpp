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

#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

#include <ringflow/overflow.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

template <class T>
class emitter;
template <class T>
class subscription;
template <class T>
class publisher;

namespace detail {
template <class T>
struct stream_state;
}  // namespace detail

// The producer's side of one subscription.
template <class T>
class emitter {
 public:
  class [[nodiscard]] emit_awaiter;
  class [[nodiscard]] demand_awaiter;

  // co_await out.emit(v) -> bool: true once v was delivered to the
  // subscription's buffer; suspends while demand is 0; false (v dropped) once
  // the subscriber cancelled.
  // Cancel safety: destroying a producer suspended here withdraws it; v is
  // destroyed with the frame and was never delivered.
  emit_awaiter emit(T value);

  // Never suspends: delivers v if there is demand (true), else leaves v
  // untouched (false). For sources that cannot wait (hot_source).
  bool try_emit(T& v);

  // co_await out.demanded() -> bool: suspends until the subscriber has demand
  // (true) or cancelled (false); for sources that should take a value only
  // when it can be delivered at once (publisher::from drains a channel so).
  // Cancel safety: destroying a producer suspended here withdraws it.
  demand_awaiter demanded();

  bool cancelled() const;
  // The subscriber's outstanding demand (values it may still receive).
  std::uint64_t demand() const;

 private:
  friend struct detail::stream_state<T>;
  explicit emitter(detail::stream_state<T>* s) : s_(s) {}
  detail::stream_state<T>* s_;
};

// The subscriber's side: demand goes up through request(n), values come back.
// Move-only; destroying it cancels the stream.
template <class T>
class subscription {
 public:
  class request_awaiter;  // not [[nodiscard]]: callback-style code requests without awaiting

  subscription(subscription&& o) noexcept;
  subscription& operator=(subscription&& o) noexcept;
  ~subscription();

  // Adds n to the demand (saturating at 2^63-1), then co_await -> std::vector<T>:
  // 1 or more values, or empty once the stream completed (or was cancelled);
  // a producer's error is rethrown once, after the values before it.
  // n == 0: cancels and throws std::invalid_argument (rule 3.9).
  // Cancel safety: a request cancelled while suspended loses nothing: values
  // that arrive stay buffered for the next request; the demand stays added.
  // The demand is added when request() is called, so a callback-style
  // subscriber may call it without awaiting (values then wait in the
  // subscription's buffer).
  request_awaiter request(std::uint64_t n);

  // Waits for values already requested, adding no demand (for operators that
  // replenish demand on their own schedule). Returns empty once completed,
  // or at once when no demand is outstanding. Cancel safety: as request().
  request_awaiter next();
  // Waits for values, however long the demand stays 0 (the callback driver).
  request_awaiter values();

  bool is_cancelled() const;

  // Idempotent: the producer's next emit returns false; its frame is destroyed
  // (at once when called on the producer's worker, else posted there).
  void cancel();

 private:
  friend class publisher<T>;
  explicit subscription(detail::stream_state<T>* s) : s_(s) {}
  void add_demand(std::uint64_t n);
  void reset();
  detail::stream_state<T>* s_;
};

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
  static publisher create(F producer);

  // A new subscription; its producer starts at the first request().
  subscription<T> subscribe() const;

  // Callback style: runs s's callbacks from a task on the current worker
  // (call it inside a task). The subscriber must outlive the stream.
  void subscribe(subscriber<T>& s) const;

  // A hot source drained by demand: each subscription takes a value from ch
  // only while its subscriber has demand, and completes when ch is closed and
  // drained. The channel must outlive the subscriptions. Known gap: a value
  // taken from ch at the moment a cancel arrives from another worker is lost
  // (on one worker this cannot happen: the cancel runs between two steps).
  template <class Channel>
  static publisher from(Channel& ch);

 private:
  using producer_fn = std::function<task<void>(emitter<T>&)>;
  publisher() = default;
  static task<void> drive_subscriber(subscription<T> sub, subscriber<T>* s);
  std::shared_ptr<producer_fn> fn_;
};

// Moves a subscription's values into a channel, requesting `batch` at a time,
// so a demand-driven stream can feed channel consumers; the channel's
// backpressure becomes the stream's demand. Closes the channel when the
// stream completes; cancels the subscription if the channel is closed.
template <class T, class Channel>
task<void> pump(subscription<T>& sub, Channel& ch, std::uint64_t batch = 64);

}  // namespace ringflow

// The shared state of a subscription, the awaiters and the definitions of
// the members declared above.
#include <ringflow/detail/stream_state.hpp>
