// bounded_core: the claim engine of ringflow's bounded queues (channel<T>,
// work_queue<T>). It owns the protocol, once: who waits to send and to
// receive, the places promised to woken senders (reserved_) and the values
// promised to woken receivers (claimed_), and the steps that move them:
// offer a value under an overflow policy, free space for the next senders,
// hand claims to the next receivers, and withdraw a waiter whose frame is
// destroyed (cancellation) so that what was promised to it passes on.
//
// A woken waiter is handed a claim nobody can take from it, so latecomers
// cannot barge ahead (FIFO), and a cancelled waiter never takes or loses
// anything. A wait that cannot be cancelled (waiter_node::waker_completes(),
// docs/design/uncancellable_waits.md) is completed by the waker itself, as
// Go does: a freed place takes the waiting sender's value at once.
//
// The queue owns its buffer, its lock and its counters, and derives from
// bounded_core<Queue, T> (CRTP; the engine has no state of its own, so the
// queue keeps its cache-line layout). The engine reads the queue's members
// senders_, receivers_ (detail::waiter_list), reserved_, claimed_
// (std::size_t), closed_ (bool), policy_ (overflow) and stats_ (sent,
// dropped, blocked_sends), and calls, with the queue's lock held:
//   std::size_t ready_count() const       values buffered now
//   std::size_t space_limit() const       values the buffer may hold
//   void buffer_locked(T&&)               store a value (room was checked)
//   void push_to_receivers_locked(g, T&&) store a value while receivers wait
//                                         (and promise it: notify_receivers_locked)
//   T evict_oldest_locked(T&&)            drop_oldest: take the head out, store v
//   T replace_newest_locked(T&&)          sample: overwrite the newest value
//   void on_claimed(waiter_node*)         a receiver was just promised a value
//   static constexpr bool waker_completes_senders
//                                         may a freed place take an
//                                         uncancellable sender's value at once
// A queue may shadow offer_slow_locked (channel does, for rendezvous).
#pragma once

#include <coroutine>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <utility>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/config.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/overflow.hpp>
#include <ringflow/task.hpp>

namespace ringflow::detail {

template <class Q, class T>
class bounded_send_awaiter;
template <class T>
class select_send_state;  // a send case of select() (channels/select.hpp)

template <class Q, class T>
class bounded_core {
 protected:
  using send_node = bounded_send_awaiter<Q, T>;
  friend send_node;

  Q& self() noexcept { return static_cast<Q&>(*this); }
  const Q& self() const noexcept { return static_cast<const Q&>(*this); }

  // ---- waiters ------------------------------------------------------------------

  // Queues n (detail::enqueue_waiter); sel: the select n is a case of.
  static void enqueue_locked(waiter_node* n, waiter_list& list, std::coroutine_handle<> h, root_link* uncancellable_task = nullptr,
                             select_core* sel = nullptr, unsigned sel_index = 0) {
    if (!tls_worker) throw std::logic_error("ringflow: a bounded queue was awaited outside a runtime");
    enqueue_waiter(list, n, h, uncancellable_task, sel, sel_index);
  }

  // Withdraws n (detail::withdraw_waiter); `notified`: it held a claim the
  // caller must pass on.
  static wait_state withdraw_locked(waiter_node* n, waiter_list& list) { return withdraw_waiter(list, n); }

  // Wakes n, off its list, with state s (detail::wake_waiter).
  static void wake_locked(affinity_guard& g, waiter_node* n, wait_state s) { wake_waiter(g, n, s); }

  // True when list's front node may be woken. A node of a select must first
  // win that select; a node whose select another case won is dead and is
  // dropped from the list (its select withdraws the rest when it resumes).
  RINGFLOW_HOT static bool live_front_locked(waiter_list& list) noexcept {
    for (;;) {
      waiter_node* n = list.front();
      if (!n) return false;
      if (!n->sel) return true;
      if (n->sel->try_win(n->sel_index)) {
        n->sel = nullptr;  // won: from now on an ordinary claimed waiter
        return true;
      }
      list.pop_front();
      n->state = wait_state::idle;
    }
  }

  // True when a sender waits, without committing any select.
  bool senders_waiting_locked() noexcept {
    waiter_list& senders = self().senders_;
    for (;;) {
      waiter_node* n = senders.front();
      if (!n) return false;
      if (!n->sel || !n->sel->decided()) return true;
      senders.pop_front();
      n->state = wait_state::idle;
    }
  }

  // ---- senders ------------------------------------------------------------------

  bool room_locked() const noexcept { return self().ready_count() + self().reserved_ < self().space_limit(); }

  // Applies the policy to an offered value. On `full` the value is untouched.
  RINGFLOW_HOT send_status offer_locked(affinity_guard& g, T& v, std::optional<T>& discarded) {
    if (fast_push_locked(g, v)) return send_status::sent;
    return self().offer_slow_locked(g, v, discarded);
  }

  // The common case: room in the buffer and nobody queued ahead.
  RINGFLOW_HOT bool fast_push_locked(affinity_guard& g, T& v) {
    Q& q = self();
    if (q.closed_ || !room_locked() || !q.senders_.empty()) return false;
    push_locked(g, std::move(v));
    return true;
  }

  RINGFLOW_COLD send_status offer_slow_locked(affinity_guard& g, T& v, std::optional<T>& discarded) {
    if (self().closed_) return send_status::closed;
    return policy_offer_locked(g, v, discarded);
  }

  // The overflow policy's decision on an open queue.
  send_status policy_offer_locked(affinity_guard& g, T& v, std::optional<T>& discarded) {
    Q& q = self();
    if (room_locked() && (q.policy_ != overflow::block || !senders_waiting_locked())) {
      push_locked(g, std::move(v));
      return send_status::sent;
    }
    switch (q.policy_) {
      case overflow::block:
        return send_status::full;
      case overflow::drop_incoming:
        ++q.stats_.dropped;
        discarded.emplace(std::move(v));
        return send_status::dropped;
      case overflow::drop_oldest:
        // The buffered count stays the same, so the claims of woken
        // receivers still hold: each takes whatever is at the head when it runs.
        ++q.stats_.dropped;
        discarded.emplace(q.evict_oldest_locked(std::move(v)));
        ++q.stats_.sent;
        return send_status::sent;
      case overflow::sample:
        ++q.stats_.dropped;
        discarded.emplace(q.replace_newest_locked(std::move(v)));
        ++q.stats_.sent;
        return send_status::sent;
    }
    return send_status::full;
  }

  // Precondition: room for v (a free place, or one reserved for it).
  RINGFLOW_HOT void push_locked(affinity_guard& g, T&& v) {
    Q& q = self();
    if (!q.receivers_.empty()) return q.push_to_receivers_locked(g, std::move(v));
    q.buffer_locked(std::move(v));
  }

  // Places are free: the first waiting senders get one each. An uncancellable
  // sender's value moves into its place at once (when the queue allows it:
  // it resumes with `sent`, and the next receive finds the value without
  // waiting for it); any other sender gets the place reserved.
  RINGFLOW_HOT void release_space_locked(affinity_guard& g) {
    if (!self().senders_.empty()) release_space_slow_locked(g);
  }
  RINGFLOW_COLD void release_space_slow_locked(affinity_guard& g) {
    Q& q = self();
    bool moved = false;
    while (room_locked() && live_front_locked(q.senders_)) {
      waiter_node* n = q.senders_.pop_front();
      if (Q::waker_completes_senders && n->waker_completes()) {
        q.buffer_locked(std::move(static_cast<send_node*>(n)->value_));
        moved = true;
        wake_locked(g, n, wait_state::handed);
      } else {
        ++q.reserved_;
        wake_locked(g, n, wait_state::notified);
      }
    }
    if (moved) notify_receivers_locked(g);
  }

  // A place reserved for a sender or a permit is given back unused.
  void return_reserved_locked(affinity_guard& g) {
    --self().reserved_;
    release_space_locked(g);
  }

  // Close: every waiting sender resumes with send_status::closed.
  void close_senders_locked(affinity_guard& g) {
    Q& q = self();
    while (live_front_locked(q.senders_)) wake_locked(g, q.senders_.pop_front(), wait_state::closed);
  }

  // ---- receivers ----------------------------------------------------------------

  // Values nobody has claimed are ready: give the first waiting receivers a claim each.
  RINGFLOW_HOT void notify_receivers_locked(affinity_guard& g) {
    if (!self().receivers_.empty()) notify_receivers_slow_locked(g);
  }
  RINGFLOW_COLD void notify_receivers_slow_locked(affinity_guard& g) {
    Q& q = self();
    while (q.ready_count() > q.claimed_ && live_front_locked(q.receivers_)) {
      waiter_node* n = q.receivers_.pop_front();
      ++q.claimed_;
      q.on_claimed(n);
      wake_locked(g, n, wait_state::notified);
    }
  }
};

// co_await q.send(v) on a bounded queue Q: the one send awaiter of channel
// and work_queue. The common case (room, nobody queued ahead) completes in
// await_ready; everything else (a full buffer, a policy, closed, rendezvous)
// is decided once, in await_suspend, under the same lock as the enqueue.
// Cancel safety: destroyed while suspended, it takes nothing (its value goes
// with the frame) and a place just reserved for it passes to the next sender.
template <class Q, class T>
class [[nodiscard]] bounded_send_awaiter : waiter_node {
 public:
  RINGFLOW_HOT bool await_ready() {
    typename Q::guard g(q_);
    if (!q_.fast_push_locked(g, value_)) return false;
    result_ = send_status::sent;
    return true;
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) {
    std::optional<T> discarded;
    {
      typename Q::guard g(q_);
      // await_ready's fast push just failed: unless another thread got in
      // since (shared queue), go straight to the policy decision.
      result_ = g.locked() ? q_.offer_locked(g, value_, discarded) : q_.offer_slow_locked(g, value_, discarded);
      if (result_ == send_status::full) {
        q_.enqueue_locked(this, q_.senders_, h, Q::waker_completes_senders ? uncancellable_task_of(h) : nullptr);
        ++q_.stats_.blocked_sends;
        return tls_worker->next_ready_for_transfer();
      }
    }
    q_.report_overflow(discarded);
    return h;
  }
  RINGFLOW_HOT send_status await_resume() {
    if (!registered) return result_;  // completed in await_ready
    return resume_slow();
  }
  RINGFLOW_HOT ~bounded_send_awaiter() {
    if (registered) withdraw();
  }
  bounded_send_awaiter(const bounded_send_awaiter&) = delete;
  bounded_send_awaiter& operator=(const bounded_send_awaiter&) = delete;

 private:
  friend Q;
  friend class bounded_core<Q, T>;
  friend class select_send_state<T>;

  bounded_send_awaiter(Q& q, T&& v) : waiter_node(lazy_t{}), q_(q), value_(std::move(v)) {}

  RINGFLOW_COLD void withdraw() {
    if (!registered) return;
    typename Q::guard g(q_);
    if (q_.withdraw_locked(this, q_.senders_) == wait_state::notified) --q_.reserved_;
    // The place reserved for it passes to the next sender; so does free
    // space that a sender queued behind a dead select case waits for.
    q_.release_space_locked(g);
  }

  RINGFLOW_COLD send_status resume_slow() {
    registered = false;
    switch (std::exchange(state, wait_state::idle)) {
      case wait_state::notified: {
        typename Q::guard g(q_);
        --q_.reserved_;
        if (q_.closed_) return result_ = send_status::closed;
        q_.push_locked(g, std::move(value_));
        return result_ = send_status::sent;
      }
      case wait_state::closed:
        return result_ = send_status::closed;
      case wait_state::handed:  // the waker completed the send: it moved the value
        return result_ = send_status::sent;
      default:
        return result_;
    }
  }

  Q& q_;
  T value_;
  send_status result_ = send_status::full;
};

}  // namespace ringflow::detail
