// broadcast<T>'s machinery: one bounded_core queue per receiver, the shared
// state (refcounted by the broadcast and each receiver), the list of waiting
// sends, and the two awaiters.
//
// Waiting sends. A send that finds a block receiver full (or owed an earlier
// waiting send) is queued in waiting_sends_, oldest first, and counts the
// block receivers it still owes (owed_count). Each block receiver names the
// first waiting send it is owed (owed_): every waiting send after that one
// is owed to it too, because a send started while the receiver was owed one
// never delivered to it. So delivery to every receiver keeps send order,
// and a freed place in a receiver feeds owed_, then owed_'s successor, and
// so on (refill_locked). A send whose count reaches 0 is complete; the
// waker settles it (state handed) and it resumes without locking again.
// Invariant between operations: a receiver with owed_ set has no room.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <ringflow/broadcast.hpp>  // included alone: the declarations first
#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/bounded_core.hpp>
#include <ringflow/detail/slot_ring.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/overflow.hpp>
#include <ringflow/task.hpp>

namespace ringflow::detail {

inline void check_broadcast_buffer(std::size_t capacity, std::size_t max_capacity, overflow policy) {
  if (capacity == 0) throw std::invalid_argument("ringflow::broadcast: capacity must be at least 1");
  if (capacity > max_capacity) {
    throw std::invalid_argument("ringflow::broadcast: capacity " + std::to_string(capacity) +
                                " is above max_capacity = " + std::to_string(max_capacity) +
                                " (PTRDIFF_MAX / sizeof(T))");
  }
  switch (policy) {
    case overflow::block:
    case overflow::drop_incoming:
    case overflow::drop_oldest:
    case overflow::sample:
      return;
  }
  throw std::invalid_argument("ringflow::broadcast: not an overflow policy");
}

// One receiver's buffer: a queue of the claim engine with a single sender,
// the broadcast, which offers values under the lock of the broadcast.
template <class T>
struct broadcast_queue : bounded_core<broadcast_queue<T>, T> {
  using core = bounded_core<broadcast_queue<T>, T>;

  broadcast_queue(broadcast_state<T>* s, std::size_t capacity, overflow p) : state(s), policy_(p), buf_(capacity) {}
  broadcast_queue(const broadcast_queue&) = delete;
  broadcast_queue& operator=(const broadcast_queue&) = delete;

  using core::enqueue_locked;
  using core::live_front_locked;
  using core::notify_receivers_locked;
  using core::policy_offer_locked;
  using core::push_locked;
  using core::room_locked;
  using core::wake_locked;
  using core::withdraw_locked;

  // ---- what bounded_core asks of its queue ------------------------------------
  // The broadcast never queues a sender here (senders_ stays empty, reserved_
  // 0): a waiting send waits in the broadcast's own list.
  static constexpr bool waker_completes_senders = false;
  std::size_t ready_count() const noexcept { return buf_.size(); }
  std::size_t space_limit() const noexcept { return buf_.capacity(); }
  void buffer_locked(T&& v) {
    buf_.push_back(std::move(v));
    ++stats_.sent;
  }
  void push_to_receivers_locked(affinity_guard& g, T&& v) {
    buffer_locked(std::move(v));
    this->notify_receivers_slow_locked(g);
  }
  T evict_oldest_locked(T&& v) {
    T oldest = buf_.pop_front();
    buf_.push_back(std::move(v));
    return oldest;
  }
  T replace_newest_locked(T&& v) { return std::exchange(buf_.back(), std::move(v)); }
  static void on_claimed(waiter_node*) noexcept {}

  bool has_unclaimed_locked() const noexcept { return buf_.size() > claimed_; }

  struct counters {
    std::uint64_t sent = 0;     // values buffered (drop_oldest and sample: also when they evict)
    std::uint64_t dropped = 0;  // values lost to the policy: lagged()
  };

  broadcast_state<T>* const state;
  broadcast_queue* prev = nullptr;  // in the broadcast's list of receivers
  broadcast_queue* next = nullptr;
  broadcast_send_awaiter<T>* owed_ = nullptr;  // block only: the first waiting send not delivered here
  const overflow policy_;
  slot_ring<T> buf_;
  std::size_t reserved_ = 0;  // always 0
  std::size_t claimed_ = 0;   // buffered values promised to woken recv()s
  waiter_list senders_;       // always empty
  waiter_list receivers_;     // recv()s waiting for a value
  bool closed_ = false;
  counters stats_;
};

template <class T>
class broadcast_state {
 public:
  using queue = broadcast_queue<T>;
  using send_node = broadcast_send_awaiter<T>;

  struct guard : affinity_guard {
    [[gnu::always_inline]] explicit guard(const broadcast_state& s) : affinity_guard(s.affinity_, s.lock_) {}
  };

  broadcast_state(std::size_t capacity, overflow policy) : capacity_(capacity), policy_(policy) {}

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  queue* subscribe(std::size_t capacity, overflow policy) {
    check_broadcast_buffer(capacity, slot_ring<T>::max_capacity, policy);
    auto* q = new queue(this, capacity, policy);
    retain();
    guard g(*this);
    q->closed_ = closed_;
    q->prev = last_;
    (last_ ? last_->next : first_) = q;
    last_ = q;
    ++receivers_;
    if (policy == overflow::block) ++block_receivers_;
    return q;
  }

  // The receiver is gone: the sends it was owed owe it nothing more.
  void unsubscribe(queue* q) {
    {
      guard g(*this);
      for (send_node* s = std::exchange(q->owed_, nullptr); s;) {
        send_node* after = next_send(s);
        if (--s->owed_count_ == 0) settle_locked(g, s, s->kept_ ? send_status::sent : send_status::dropped);
        s = after;
      }
      (q->prev ? q->prev->next : first_) = q->next;
      (q->next ? q->next->prev : last_) = q->prev;
      --receivers_;
      if (q->policy_ == overflow::block) --block_receivers_;
    }
    delete q;  // its buffered values, outside the lock
    release();
  }

  void close() {
    guard g(*this);
    if (closed_) return;
    closed_ = true;
    while (!waiting_sends_.empty()) settle_locked(g, static_cast<send_node*>(waiting_sends_.front()), send_status::closed);
    for (queue* q = first_; q; q = q->next) {
      q->owed_ = nullptr;
      q->closed_ = true;
      while (q->live_front_locked(q->receivers_)) q->wake_locked(g, q->receivers_.pop_front(), wait_state::closed);
    }
  }

  bool is_closed() const {
    guard g(*this);
    return closed_;
  }
  std::size_t receivers() const {
    guard g(*this);
    return receivers_;
  }
  std::size_t capacity() const noexcept { return capacity_; }
  overflow policy() const noexcept { return policy_; }

  // ---- sending; the guard is held ---------------------------------------------

  // Offers s's value to every receiver. Returns full when s must wait (it is
  // queued then, owed to the block receivers that had no room), else the result.
  send_status fan_out_locked(affinity_guard& g, send_node& s) {
    if (closed_) return send_status::closed;
    T& v = s.value_;
    // Counted in s as the loop goes: should a copy throw, s is consistent
    // for whoever settles or withdraws it.
    std::size_t& owed = s.owed_count_;
    bool& kept = s.kept_;
    owed = 0;
    kept = false;
    for (queue* q = first_; q; q = q->next) {
      // The value itself goes to the last receiver when nobody waits for it.
      const bool last = q->next == nullptr && owed == 0;
      if (q->policy_ == overflow::block) {
        if (q->owed_ || !q->room_locked()) {
          if (!q->owed_) q->owed_ = &s;
          // Queued at once: should a copy below throw, its destructor
          // withdraws it from there.
          if (owed++ == 0) wait_locked(s);
          continue;
        }
        q->push_locked(g, last ? std::move(v) : T(v));
        kept = true;
        continue;
      }
      std::optional<T> discarded;
      send_status r;
      if (last) {
        r = q->policy_offer_locked(g, v, discarded);
      } else {
        T copy(v);
        r = q->policy_offer_locked(g, copy, discarded);
      }
      if (r == send_status::sent) kept = true;
    }
    if (owed) return send_status::full;
    return kept ? send_status::sent : send_status::dropped;
  }

  // Recv took a value from q: the sends owed to q fill the room, in order.
  void refill_locked(affinity_guard& g, queue& q) {
    while (q.owed_ && q.room_locked()) {
      send_node* s = q.owed_;
      q.owed_ = next_send(s);  // owed here too (see the top of this file)
      if (--s->owed_count_ == 0) {
        q.push_locked(g, std::move(s->value_));  // its last receiver
        settle_locked(g, s, send_status::sent);
      } else {
        copy_in_locked(g, q, *s);
      }
    }
  }

  // A copy that throws here, where a recv made room, would leave the recv
  // half done: this receiver loses the value instead (counted in lagged()).
  void copy_in_locked(affinity_guard& g, queue& q, send_node& s) {
    try {
      q.push_locked(g, T(s.value_));
      s.kept_ = true;
    } catch (...) {
      ++q.stats_.dropped;
    }
  }

  // A waiting send is cancelled: the receivers it was owed to are owed the next one.
  void withdraw_send_locked(send_node& s) {
    send_node* after = next_send(&s);
    for (queue* q = first_; q; q = q->next) {
      if (q->owed_ == &s) q->owed_ = after;
    }
    waiting_sends_.remove(&s);
  }

  // ---- receiving; the guard is held -------------------------------------------

  // Precondition: q holds an unclaimed value, or one claimed by the caller.
  T take_locked(affinity_guard& g, queue& q) {
    T v = q.buf_.pop_front();
    if (q.owed_) refill_locked(g, q);
    return v;
  }

 private:
  friend class broadcast_send_awaiter<T>;

  static send_node* next_send(send_node* s) noexcept { return static_cast<send_node*>(s->next); }

  void wait_locked(send_node& s) {
    s.state = wait_state::waiting;
    s.registered = true;
    waiting_sends_.push_back(&s);
  }

  // s is done (delivered to each receiver it owed, or closed). It resumes with
  // result; a send not suspended yet finds its state changed and goes on.
  void settle_locked(affinity_guard& g, send_node* s, send_status result) {
    waiting_sends_.remove(s);
    s->result_ = result;
    const wait_state st = result == send_status::closed ? wait_state::closed : wait_state::handed;
    if (s->handle) {
      queue::wake_locked(g, s, st);  // an uncancellable sender may move to this worker
    } else {
      s->state = st;
    }
  }

  std::atomic<std::size_t> refs_{1};  // the broadcast and each receiver
  const std::size_t capacity_;
  const overflow policy_;
  mutable affinity affinity_;
  queue* first_ = nullptr;  // receivers in subscription order
  queue* last_ = nullptr;
  std::size_t receivers_ = 0;
  std::size_t block_receivers_ = 0;
  waiter_list waiting_sends_;  // oldest first
  bool closed_ = false;
  alignas(64) mutable spinlock lock_;
};

// co_await b.send(v). The whole fan-out happens in await_ready when no block
// receiver is full; otherwise the send is queued there (under the same
// lock) and suspends in await_suspend, unless it was settled in between.
// Cancel safety: see broadcast.hpp. Destroyed while waiting, it withdraws
// (the receivers it was owed to are owed the next send); settled but not yet
// resumed, its resumption is withdrawn.
template <class T>
class [[nodiscard]] broadcast_send_awaiter : waiter_node {
 public:
  bool await_ready() {
    typename broadcast_state<T>::guard g(s_);
    // Refused before anything is delivered: waiting needs a worker.
    if (s_.block_receivers_ && !tls_worker) throw std::logic_error("ringflow::broadcast::send awaited outside a runtime");
    result_ = s_.fan_out_locked(g, *this);
    return result_ != send_status::full;
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    typename broadcast_state<T>::guard g(s_);
    if (state != wait_state::waiting) {  // settled since await_ready
      registered = false;
      state = wait_state::idle;
      return false;
    }
    handle = h;
    owner = tls_worker;
    // Its waker may place it on its own worker (worker::place_woken); the
    // wait itself never changes: a settled send holds no claim.
    uncancellable_task = uncancellable_task_of(h);
    return true;
  }
  send_status await_resume() noexcept {
    if (registered) {  // settled by a waker, which set result_
      registered = false;
      state = wait_state::idle;
    }
    return result_;
  }
  ~broadcast_send_awaiter() {
    if (registered) withdraw();
  }
  broadcast_send_awaiter(const broadcast_send_awaiter&) = delete;
  broadcast_send_awaiter& operator=(const broadcast_send_awaiter&) = delete;

 private:
  friend class broadcast<T>;
  friend class broadcast_state<T>;

  broadcast_send_awaiter(broadcast_state<T>& s, T&& v) : waiter_node(), s_(s), value_(std::move(v)) {}

  [[gnu::noinline]] void withdraw() {
    typename broadcast_state<T>::guard g(s_);
    if (state == wait_state::waiting) {
      s_.withdraw_send_locked(*this);
    } else if (state != wait_state::idle && handle) {
      owner->unschedule(handle);  // settled, resumption queued
    }
    state = wait_state::idle;
    registered = false;
  }

  broadcast_state<T>& s_;
  T value_;
  std::size_t owed_count_ = 0;  // block receivers still owed the value
  bool kept_ = false;           // some receiver buffered it
  send_status result_ = send_status::full;
};

// co_await r.recv(): the receiver's queue hands claims to its waiting
// recv()s as values arrive (bounded_core::notify_receivers_locked).
// Cancel safety: a claim given to it stays buffered for the next recv.
template <class T>
class [[nodiscard]] broadcast_recv_awaiter : waiter_node {
 public:
  bool await_ready() {
    typename broadcast_state<T>::guard g(*q_.state);
    return try_complete_locked(g);
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) {
    typename broadcast_state<T>::guard g(*q_.state);
    // Unlocked, nothing but this task touched the broadcast since await_ready.
    if (g.locked() && try_complete_locked(g)) return h;
    // An uncancellable task may be placed on its waker's worker; it is still
    // handed a claim, settled when it runs.
    q_.enqueue_locked(this, q_.receivers_, h, uncancellable_task_of(h));
    return tls_worker->next_ready_for_transfer();
  }
  std::optional<T> await_resume() {
    if (registered) resume_slow();
    if (!slot_) return std::nullopt;
    return std::optional<T>(std::move(*slot_));
  }
  ~broadcast_recv_awaiter() {
    if (registered) withdraw();
  }
  broadcast_recv_awaiter(const broadcast_recv_awaiter&) = delete;
  broadcast_recv_awaiter& operator=(const broadcast_recv_awaiter&) = delete;

 private:
  friend class broadcast<T>;
  friend class broadcast<T>::receiver;
  explicit broadcast_recv_awaiter(broadcast_queue<T>& q) : waiter_node(lazy_t{}), q_(q) {}

  bool try_complete_locked(affinity_guard& g) {
    if (q_.has_unclaimed_locked()) {
      slot_.emplace(q_.state->take_locked(g, q_));
      return true;
    }
    return q_.closed_;
  }
  [[gnu::noinline]] void resume_slow() {
    registered = false;
    typename broadcast_state<T>::guard g(*q_.state);
    const wait_state s = std::exchange(state, wait_state::idle);
    if (s == wait_state::notified) {
      --q_.claimed_;
      slot_.emplace(q_.state->take_locked(g, q_));
    } else if (q_.has_unclaimed_locked()) {  // closed: drain what is left
      slot_.emplace(q_.state->take_locked(g, q_));
    }
  }
  [[gnu::noinline]] void withdraw() {
    typename broadcast_state<T>::guard g(*q_.state);
    if (q_.withdraw_locked(this, q_.receivers_) == wait_state::notified) {
      --q_.claimed_;
      q_.notify_receivers_locked(g);  // the claim passes to the next recv
    }
  }

  broadcast_queue<T>& q_;
  std::optional<T> slot_;
};

}  // namespace ringflow::detail

namespace ringflow {

template <class T>
broadcast<T>::broadcast(std::size_t capacity, overflow policy) {
  detail::check_broadcast_buffer(capacity, max_capacity, policy);
  s_ = new detail::broadcast_state<T>(capacity, policy);
}

template <class T>
broadcast<T>::~broadcast() {
  s_->close();
  s_->release();
}

template <class T>
typename broadcast<T>::receiver broadcast<T>::subscribe() {
  return receiver(s_->subscribe(s_->capacity(), s_->policy()));
}

template <class T>
typename broadcast<T>::receiver broadcast<T>::subscribe(std::size_t capacity, overflow policy) {
  return receiver(s_->subscribe(capacity, policy));
}

template <class T>
typename broadcast<T>::send_awaiter broadcast<T>::send(T value) {
  return send_awaiter(*s_, std::move(value));
}

template <class T>
void broadcast<T>::close() {
  s_->close();
}

template <class T>
bool broadcast<T>::is_closed() const {
  return s_->is_closed();
}

template <class T>
std::size_t broadcast<T>::receivers() const {
  return s_->receivers();
}

template <class T>
std::size_t broadcast<T>::capacity() const noexcept {
  return s_->capacity();
}

template <class T>
overflow broadcast<T>::policy() const noexcept {
  return s_->policy();
}

// ---- receiver ---------------------------------------------------------------------

template <class T>
broadcast<T>::receiver::receiver(receiver&& o) noexcept : q_(std::exchange(o.q_, nullptr)) {}

template <class T>
typename broadcast<T>::receiver& broadcast<T>::receiver::operator=(receiver&& o) noexcept {
  if (this != &o) {
    if (q_) q_->state->unsubscribe(q_);
    q_ = std::exchange(o.q_, nullptr);
  }
  return *this;
}

template <class T>
broadcast<T>::receiver::~receiver() {
  if (q_) q_->state->unsubscribe(q_);
}

template <class T>
detail::broadcast_queue<T>& broadcast<T>::receiver::queue() const {
  if (!q_) throw std::logic_error("ringflow::broadcast::receiver: used after being moved from");
  return *q_;
}

template <class T>
typename broadcast<T>::recv_awaiter broadcast<T>::receiver::recv() {
  return recv_awaiter(queue());
}

template <class T>
std::optional<T> broadcast<T>::receiver::try_recv() {
  detail::broadcast_queue<T>& q = queue();
  typename detail::broadcast_state<T>::guard g(*q.state);
  if (!q.has_unclaimed_locked()) return std::nullopt;
  return q.state->take_locked(g, q);
}

template <class T>
std::uint64_t broadcast<T>::receiver::lagged() const {
  detail::broadcast_queue<T>& q = queue();
  typename detail::broadcast_state<T>::guard g(*q.state);
  return q.stats_.dropped;
}

template <class T>
std::size_t broadcast<T>::receiver::size() const {
  detail::broadcast_queue<T>& q = queue();
  typename detail::broadcast_state<T>::guard g(*q.state);
  return q.buf_.size();
}

template <class T>
std::size_t broadcast<T>::receiver::capacity() const {
  return queue().buf_.capacity();
}

template <class T>
overflow broadcast<T>::receiver::policy() const {
  return queue().policy_;
}

}  // namespace ringflow
