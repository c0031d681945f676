// channel<T>: a bounded channel — many senders, many receivers, any workers.
//
//   ringflow::channel<int> ch(64);                       // overflow::block
//   co_await ch.send(1);                                 // suspends while full
//   std::optional<int> v = co_await ch.recv();           // nullopt once closed and drained
//
//   ringflow::channel<reading> latest(1, ringflow::overflow::sample);   // conflated
//   ringflow::channel<job> jobs(100, ringflow::overflow::drop_oldest,
//                               [](job j) { dead_letter(std::move(j)); });  // on_drop
//
// This is where backpressure happens: with overflow::block a full buffer
// suspends the sender, so a producer can never run further ahead of its
// consumers than `capacity` values. The other policies never suspend a
// sender; they decide synchronously, without allocating, which value to
// lose, and count it in stats().dropped (and hand it to on_drop).
//
// Guarantees
// - With overflow::block nothing is lost or duplicated; one sender's values
//   arrive in the order sent; the buffer never holds more than capacity values.
// - Suspended senders and receivers are served first-in, first-out: a woken
//   waiter is handed a claim (a reserved slot, or a buffered value) that
//   nobody can take from it, so latecomers cannot barge ahead.
// - Conservation: at any quiet moment every value offered to the open channel
//   is exactly one of received, buffered (size()) or counted in dropped.
//   Every value is destroyed exactly once, leftovers included.
// - close() is idempotent and wakes every waiter: suspended senders resume
//   with send_status::closed (their value untouched), receivers drain what is
//   buffered and then get nullopt.
// - Direct completion: when a waiting task cannot be cancelled (a spawned
//   task and whatever it awaits; not timeout's child, a stream's producer or
//   a task started by hand), the waker completes its wait itself, as Go does:
//   a freed slot takes the waiting sender's value at once, and a value sent
//   to a waiting receiver goes straight to it. At capacity 1 one suspension
//   per side then carries two values, not one. stats() counts such a value
//   as sent (received) at that moment, before the waiting task resumes. A
//   cancellable waiter gets a claim instead, settled when it runs; that is
//   what keeps cancelling it from taking or losing anything.
// - Placement: a waiter of a task started with spawn() (not spawn_on,
//   spawn_local or block_on) may be moved to the worker that wakes it, so a
//   producer and a consumer end up on one worker (see runtime.hpp, Placement).
// - Thread safety: usable from tasks on any workers. While only one worker has
//   touched the channel it runs without a lock (see detail/affinity.hpp); once
//   a second thread arrives it takes a spinlock per operation.
//
// Capacity 0 is a rendezvous channel (overflow::block only): a send completes
// when a receiver takes the value. Known limit: the value is handed to the
// receiver before it runs; if that receiver is then cancelled, the value moves
// on to the receivers handed later (or back to the head of the channel), so on
// one worker order is kept, but a receiver on another worker that already
// consumed a newer value sees the older one after it. Nothing is lost.
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/bounded_core.hpp>
#include <ringflow/detail/config.hpp>
#include <ringflow/detail/slot_ring.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/overflow.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {
template <class T> class select_recv_state;
template <class T> class select_send_state;
}  // namespace detail

template <class T>
class channel : detail::bounded_core<channel<T>, T> {
  using core = detail::bounded_core<channel<T>, T>;
  friend core;
  friend class detail::bounded_send_awaiter<channel<T>, T>;

 public:
  using value_type = T;
  // Sees every value a policy discards (drop_incoming's rejected value,
  // drop_oldest's evicted one, sample's overwritten one), on the sending task,
  // after the channel's lock is released (Kotlin's onUndeliveredElement).
  using drop_handler = std::function<void(T)>;

  using send_awaiter = detail::bounded_send_awaiter<channel, T>;
  class recv_awaiter;
  class recv_many_awaiter;
  class reserve_awaiter;
  class permit;

  // The largest capacity: the buffer is one array of T, which may not span
  // more than PTRDIFF_MAX bytes.
  static constexpr std::size_t max_capacity = detail::slot_ring<T>::max_capacity;

  // capacity 0: a rendezvous channel, valid only with overflow::block, else
  // std::invalid_argument. capacity > max_capacity: std::invalid_argument,
  // before anything is allocated. A capacity within it that memory cannot
  // hold throws std::bad_alloc.
  explicit channel(std::size_t capacity, overflow policy = overflow::block, drop_handler on_drop = {})
      : policy_(policy), on_drop_(std::move(on_drop)), buf_(check(capacity, policy)) {}
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  // Buffered values are destroyed. The channel must outlive every task using it.
  ~channel() = default;

  // co_await ch.send(v) -> send_status.
  // block: suspends while full; sent, or closed. Other policies never suspend:
  // sent, dropped (drop_incoming), or closed.
  // Cancel safety: a send cancelled while suspended (its frame destroyed, e.g.
  // by timeout) takes nothing: the value is destroyed with the frame, and a
  // slot that was just freed for it passes to the next waiting sender.
  // (Rendezvous exception: if a receiver already took the value, it counts as
  // sent although the sender never resumed.)
  send_awaiter send(T value) { return send_awaiter(*this, std::move(value)); }

  // Never suspends. full: only on a block channel whose buffer is full (or a
  // rendezvous channel without a waiting receiver); nothing was taken.
  send_status try_send(T value) {
    std::optional<T> discarded;
    send_status s;
    {
      guard g(*this);
      s = offer_locked(g, value, discarded);
    }
    report_drop(discarded);
    return s;
  }

  // co_await ch.recv() -> std::optional<T>: the next value, or nullopt once the
  // channel is closed and drained.
  // Cancel safety: a receive cancelled while suspended loses nothing. A value
  // reserved for it stays in the buffer for the next receiver; a value already
  // handed to it (rendezvous) is handed to the next waiting receiver or put back.
  recv_awaiter recv() { return recv_awaiter(*this); }

  // Never suspends; nullopt when nothing is ready (check is_closed() to tell
  // "empty" from "finished").
  std::optional<T> try_recv() {
    guard g(*this);
    if (!has_unclaimed_locked()) return std::nullopt;
    return take_locked(g);
  }

  // co_await ch.recv_many(max) -> std::vector<T> of 1..max values (all that are
  // ready, up to max), or empty once closed and drained: Kafka's poll with
  // max.poll.records. max == 0: std::invalid_argument.
  // Cancel safety: as recv().
  recv_many_awaiter recv_many(std::size_t max) {
    if (max == 0) throw std::invalid_argument("ringflow::channel::recv_many: max must be at least 1");
    return recv_many_awaiter(*this, max);
  }

  // co_await ch.reserve() -> std::optional<permit>: waits for a free slot and
  // reserves it, so the value can be built knowing it will be accepted
  // (Tokio's reserve/Permit). nullopt when the channel is closed. Only for
  // overflow::block with capacity >= 1 (else std::logic_error).
  // Cancel safety: a reserve cancelled while suspended reserves nothing.
  reserve_awaiter reserve() {
    if (policy_ != overflow::block || buf_.capacity() == 0) {
      throw std::logic_error("ringflow::channel::reserve: needs overflow::block and capacity >= 1");
    }
    return reserve_awaiter(*this);
  }

  // Idempotent. Wakes every waiter; buffered values stay receivable.
  void close() {
    guard g(*this);
    if (closed_) return;
    closed_ = true;
    this->close_senders_locked(g);
    while (live_front_locked(receivers_)) wake_locked(g, receivers_.pop_front(), detail::wait_state::closed);
  }

  bool is_closed() const {
    guard g(*this);
    return closed_;
  }
  // Values buffered now (for a rendezvous channel: values handed back by
  // cancelled receivers, normally 0).
  std::size_t size() const {
    guard g(*this);
    return buf_.size() + returned_.size();
  }
  std::size_t capacity() const noexcept { return buf_.capacity(); }
  overflow policy() const noexcept { return policy_; }
  channel_stats stats() const {
    guard g(*this);
    return stats_;
  }

 private:
  template <class> friend class detail::select_recv_state;
  template <class> friend class detail::select_send_state;

  struct guard : detail::affinity_guard {
    RINGFLOW_HOT explicit guard(const channel& c) : detail::affinity_guard(c.affinity_, c.lock_) {}
    RINGFLOW_HOT ~guard() {}
  };

  struct recv_base;

  // The claim engine's steps (detail/bounded_core.hpp).
  using core::enqueue_locked;
  using core::fast_push_locked;
  using core::live_front_locked;
  using core::notify_receivers_locked;
  using core::notify_receivers_slow_locked;
  using core::offer_locked;
  using core::push_locked;
  using core::release_space_locked;
  using core::return_reserved_locked;
  using core::senders_waiting_locked;
  using core::wake_locked;
  using core::withdraw_locked;

  static std::size_t check(std::size_t capacity, overflow policy) {
    if (capacity == 0 && policy != overflow::block) {
      throw std::invalid_argument("ringflow::channel: capacity 0 (rendezvous) needs overflow::block");
    }
    if (capacity > max_capacity) {
      throw std::invalid_argument("ringflow::channel: capacity " + std::to_string(capacity) +
                                  " is above max_capacity = " + std::to_string(max_capacity) +
                                  " (PTRDIFF_MAX / sizeof(T))");
    }
    return capacity;
  }

  void report_drop(std::optional<T>& discarded) {
    if (discarded && on_drop_) on_drop_(std::move(*discarded));
  }

  // ---- state transitions; the guard is held --------------------------------

  bool rendezvous() const noexcept { return buf_.capacity() == 0; }

  // Rendezvous: true commits the front sender (wins its select), so the
  // caller must take the value at once.
  RINGFLOW_HOT bool has_unclaimed_locked() noexcept {
    if (rendezvous()) return !returned_.empty() || live_front_locked(senders_);
    return buf_.size() > claimed_;
  }

  // Rendezvous first (a waiting receiver takes v), else the policy.
  RINGFLOW_COLD send_status offer_slow_locked(detail::affinity_guard& g, T& v, std::optional<T>& discarded) {
    if (closed_) return send_status::closed;
    if (rendezvous()) {
      if (!live_front_locked(receivers_)) return send_status::full;
      auto* r = static_cast<recv_base*>(receivers_.pop_front());
      r->slot.emplace(std::move(v));
      handed_.push_back(r);
      ++stats_.sent;
      ++stats_.received;
      wake_locked(g, r, detail::wait_state::handed);
      return send_status::sent;
    }
    return this->policy_offer_locked(g, v, discarded);
  }

  // ---- what bounded_core asks of its queue ------------------------------------

  static constexpr bool waker_completes_senders = true;
  std::size_t ready_count() const noexcept { return buf_.size(); }
  std::size_t space_limit() const noexcept { return buf_.capacity(); }
  T evict_oldest_locked(T&& v) {
    T oldest = buf_.pop_front();
    buf_.push_back(std::move(v));
    return oldest;
  }
  T replace_newest_locked(T&& v) { return std::exchange(buf_.back(), std::move(v)); }
  static void on_claimed(detail::waiter_node*) noexcept {}
  void report_overflow(std::optional<T>& discarded) { report_drop(discarded); }

  RINGFLOW_HOT void buffer_locked(T&& v) {
    buf_.push_back(std::move(v));
    ++stats_.sent;
    if (buf_.size() > stats_.high_water) stats_.high_water = buf_.size();
  }
  // Receivers wait, so every buffered value is claimed. An uncancellable receiver
  // (waiter_node::waker_completes()) is handed v outright, as Go hands a value to a
  // parked receiver: it resumes without touching the channel again. Any
  // other gets a claim on v in the buffer.
  RINGFLOW_COLD void push_to_receivers_locked(detail::affinity_guard& g, T&& v) {
    if (buf_.empty() && live_front_locked(receivers_) && receivers_.front()->waker_completes()) {
      auto* r = static_cast<recv_base*>(receivers_.pop_front());
      r->slot.emplace(std::move(v));
      ++stats_.sent;
      ++stats_.received;
      wake_locked(g, r, detail::wait_state::handed);
      // v never took its slot: if it was reserved (a woken sender, a permit),
      // the slot is free again for the senders still waiting.
      release_space_locked(g);
      return;
    }
    buffer_locked(std::move(v));
    notify_receivers_slow_locked(g);
  }

  // Precondition: a value is available to the caller (unclaimed, or its claim).
  RINGFLOW_HOT T take_locked(detail::affinity_guard& g) {
    ++stats_.received;
    if (!rendezvous()) {
      T v = buf_.pop_front();
      release_space_locked(g);
      return v;
    }
    return take_rendezvous_locked(g);
  }
  RINGFLOW_COLD T take_rendezvous_locked(detail::affinity_guard& g) {
    if (!returned_.empty()) {
      T v = std::move(returned_.front());
      returned_.pop_front();
      return v;
    }
    auto* s = static_cast<send_awaiter*>(senders_.pop_front());
    T v = std::move(s->value_);
    ++stats_.sent;
    wake_locked(g, s, detail::wait_state::handed);
    return v;
  }

  // Rendezvous: r was handed a value but is cancelled before it ran. Its value
  // is older than those handed to the receivers after it, so it moves down the
  // line (each takes its predecessor's value) and the newest one is handed to
  // a waiting receiver or put back at the head: one sender's order survives.
  void cancel_handed_locked(detail::affinity_guard& g, recv_base* r) {
    T v = std::move(*r->slot);
    r->slot.reset();
    for (detail::waiter_node* n = r->next; n; n = n->next) std::swap(v, *static_cast<recv_base*>(n)->slot);
    handed_.remove(r);
    if (live_front_locked(receivers_)) {
      auto* w = static_cast<recv_base*>(receivers_.pop_front());
      w->slot.emplace(std::move(v));
      handed_.push_back(w);
      wake_locked(g, w, detail::wait_state::handed);
      return;
    }
    --stats_.received;
    returned_.push_front(std::move(v));
  }

 private:
  // Laid out by cache line for channels shared between workers: what every
  // operation reads but nothing writes, then the state an operation writes
  // (two lines), then the rarely used parts, and the lock on a line of its own.
  mutable detail::affinity affinity_;
  overflow policy_;
  drop_handler on_drop_;
  detail::waiter_list handed_;  // rendezvous: receivers handed a value, not yet resumed
  alignas(64) detail::slot_ring<T> buf_;
  std::size_t reserved_ = 0;  // free slots promised to woken senders and permits
  std::size_t claimed_ = 0;   // buffered values promised to woken receivers
  detail::waiter_list senders_;
  detail::waiter_list receivers_;
  bool closed_ = false;
  channel_stats stats_;
  std::deque<T> returned_;  // rendezvous only: values of cancelled receivers
  alignas(64) mutable detail::spinlock lock_;
};

}  // namespace ringflow

// The definitions of the awaiters declared above.
#include <ringflow/detail/channel_awaiters.hpp>
