// work_queue<T>: acknowledged deliveries with prefetch (RabbitMQ's consumer
// prefetch and acks) — at-least-once work distribution between tasks.
//
//   ringflow::work_queue<job> jobs(1000);                 // max_length 1000, overflow::block
//   co_await jobs.send(j);                                // suspends while 1000 jobs are ready
//
//   auto worker = jobs.subscribe(/*prefetch=*/2);         // at most 2 unacked deliveries
//   while (auto d = co_await worker.recv()) {             // std::optional<delivery>
//     bool ok = co_await process(d->value());
//     if (ok) {
//       d->ack();                                         // done: frees a prefetch slot
//     } else {
//       d->nack(/*requeue=*/true);                        // back to the head, marked redelivered
//     }
//   }                                                     // nullopt: closed and drained
//   jobs.close();                                         // on the producer's side, when done
//
// A delivery that is dropped without ack() or nack() goes back to the queue,
// so a worker that dies mid-batch (its frame destroyed by timeout, an
// exception, a cancelled task) loses nothing: its values are redelivered to
// the others with redelivered() == true. A consumer never holds more than
// `prefetch` unacked deliveries: its recv() suspends at the limit until one
// of them is acked or nacked, while the other consumers keep receiving.
//
// Choices (where RabbitMQ, Kotlin or Tokio users might expect otherwise)
// - max_length counts *ready* values only, as RabbitMQ's x-max-length does:
//   unacked deliveries are bounded by the consumers' prefetch, so the queue
//   holds about max_length + the sum of the prefetch values. A requeued value is
//   never refused or dropped for lack of room: it may push the ready count
//   above max_length for a while; senders then wait (block) or the policy
//   applies (the others) until it is below again.
// - Overflow policies act on the ready values, as in channel<T>:
//   drop_incoming rejects the value being sent, drop_oldest evicts the head
//   (which may be a requeued value, like RabbitMQ's drop-head), sample
//   overwrites the newest ready value. Every discarded value is counted in
//   stats().dropped and handed to on_drop with drop_reason::overflow.
// - Order: ready values are kept in send order; a requeued value goes back
//   to its own place at the head — before every value never delivered, and
//   among the other requeued values in send order (RabbitMQ requeues "to its
//   original position"). So a consumer that disconnects returns its values to
//   the head in their original order.
// - Values belong to the delivery handles, not to the consumer: a delivery
//   stays valid (and ack()/nack() still count) after its consumer is gone,
//   and it returns its value to the queue when it is dropped unsettled. A
//   task that dies drops its consumer and its deliveries together, so its
//   values come back at once; a delivery handed to another task comes back
//   when that task drops it — never from under a task still using the value.
// - One consumer may be awaited by several tasks at once; its prefetch is
//   shared by them (receivers beyond it wait for an ack).
// - close(): senders get send_status::closed; receivers drain the ready
//   values, and recv() returns nullopt once the queue is closed, nothing is
//   ready and no delivery is unacked anywhere — an unacked delivery may
//   still come back, and whoever waits then gets it. So do not hold
//   deliveries while awaiting recv() after close unless something else will
//   settle them: a consumer that collects a batch before acking should await
//   recv() under ringflow::timeout (or use try_recv()), as at its prefetch
//   limit. Deliveries handed to other tasks (the usual way to process
//   `prefetch` values at once) are fine: the loop ends when the last is acked.
// - Lifetimes: the queue must outlive its consumers and deliveries
//   (precondition, not checked). Values still ready when the queue is
//   destroyed are destroyed with it.
// - on_drop takes (T, drop_reason), unlike channel's (T): a dead-letter
//   handler must tell a rejected value from an overflow.
//
// Cancel safety (details on send() and recv()): a send or recv cancelled
// while suspended — its frame destroyed by ringflow::timeout, by destroying
// its task, or at runtime shutdown — takes nothing and loses nothing; a
// value or place promised to it passes to the next waiter. Cancelling a task
// that holds deliveries requeues them (their destructors run).
//
// Guarantees
// - At-least-once: a value sent is acked, dropped (counted) or still in the
//   queue; it is never duplicated except by an explicit redelivery after a
//   nack(true) or an unsettled drop. At any quiet moment every value offered
//   to the open queue is exactly one of acked, dropped, ready or unacked
//   (stats()).
// - Suspended receivers are served first-in, first-out among those whose
//   consumer has a free prefetch slot (a receiver parked at its limit joins
//   the line when an ack frees the slot); suspended senders are served
//   first-in, first-out. A woken waiter is handed a claim (a value, or a
//   reserved place) that nobody can take from it, as in channel<T>.
// - Thread safety: usable from tasks on any workers; deliveries may be acked
//   on any thread. One spinlock per queue (taken only once a second thread
//   has touched it, see detail/affinity.hpp).
// - Allocation: subscribe() allocates the consumer's bookkeeping; the ready
//   values live in one growable ring that only grows to the queue's
//   high-water mark (ready + unacked), so steady state allocates nothing per
//   value. A delivery is a handle holding the queue and consumer pointers,
//   the value, its id and a flag. Waiters live in the awaiting frames.
//
// T must be nothrow move-constructible and move-assignable: values are moved
// under the queue's lock, and requeueing (which runs in destructors) never
// allocates and never throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/bounded_core.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/detail/work_queue_ring.hpp>
#include <ringflow/overflow.hpp>

namespace ringflow {

// Why on_drop sees a value.
enum class drop_reason {
  overflow,  // the overflow policy discarded it (drop_incoming, drop_oldest, sample)
  rejected,  // a consumer nacked it without requeue (dead-lettering)
};

struct work_queue_stats {
  std::uint64_t sent = 0;           // values accepted (send_status::sent)
  std::uint64_t delivered = 0;      // deliveries handed to consumers, redeliveries included
  std::uint64_t redelivered = 0;    // of those, values that had been delivered before
  std::uint64_t acked = 0;          // ack() calls
  std::uint64_t nacked = 0;         // nack() calls, with or without requeue
  std::uint64_t requeued = 0;       // values put back: nack(true), or a delivery dropped unsettled
  std::uint64_t dropped = 0;        // values discarded: by the overflow policy, or nack(false)
  std::uint64_t blocked_sends = 0;  // sends that had to suspend
  std::uint64_t prefetch_waits = 0; // receives that waited because their consumer was at its prefetch
                                    //   limit (often: a larger prefetch may help)
  std::size_t ready = 0;            // values waiting for a consumer now
  std::size_t unacked = 0;          // deliveries out now, not yet acked or nacked
  std::size_t consumers = 0;        // connected consumers now
  std::size_t high_water = 0;       // largest number of ready values seen
};

template <class T>
class work_queue : detail::bounded_core<work_queue<T>, T> {
  using core = detail::bounded_core<work_queue<T>, T>;
  friend core;
  friend class detail::bounded_send_awaiter<work_queue<T>, T>;
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T>,
                "ringflow::work_queue<T>: T must be nothrow move-constructible and move-assignable");

 public:
  using value_type = T;
  // Sees every discarded value, after the queue's lock is released: on the
  // sending task for overflow, on the task calling nack(false) for rejected.
  using drop_handler = std::function<void(T, drop_reason)>;

  class delivery;
  class consumer;
  using send_awaiter = detail::bounded_send_awaiter<work_queue, T>;
  class recv_awaiter;

 private:
  enum class settle_kind : unsigned char;
  struct guard;

 public:
  // The largest max_length: the ready values live in one ring of at most
  // this many slots (a power of two of at most PTRDIFF_MAX bytes), so a
  // larger bound could never be reached. Memory runs out well before.
  static constexpr std::size_t max_length_limit = detail::wq_ring<detail::wq_entry<T>>::max_capacity;

  // max_length 0 or above max_length_limit: std::invalid_argument, before
  // anything is allocated. The ring grows as values arrive (std::bad_alloc
  // if memory runs out), so a large max_length costs nothing up front.
  explicit work_queue(std::size_t max_length, overflow policy = overflow::block, drop_handler on_drop = {})
      : max_(check(max_length)), policy_(policy), on_drop_(std::move(on_drop)) {
    ring_.reserve(max_ < 64 ? max_ : 64);
  }
  work_queue(const work_queue&) = delete;
  work_queue& operator=(const work_queue&) = delete;
  // Precondition: no consumer, delivery or waiting task of this queue is left.
  ~work_queue() = default;

  // co_await q.send(v) -> send_status.
  // block: suspends while max_length values are ready; sent, or closed.
  // Other policies never suspend: sent, dropped (drop_incoming), or closed.
  // Cancel safety: a send cancelled while suspended (its frame destroyed,
  // e.g. by timeout) takes nothing: the value is destroyed with the frame,
  // and a place that was just reserved for it passes to the next sender.
  send_awaiter send(T value) { return send_awaiter(*this, std::move(value)); }

  // Never suspends. full: only with overflow::block when max_length values
  // are ready; nothing was taken.
  send_status try_send(T value) {
    std::optional<T> discarded;
    send_status s;
    {
      guard g(*this);
      s = offer_locked(g, value, discarded);
    }
    report_drop(discarded, drop_reason::overflow);
    return s;
  }

  // A new consumer that holds at most `prefetch` unacked deliveries.
  // prefetch 0: std::invalid_argument (RabbitMQ's 0 means "unlimited"; ask
  // for a large number instead: any value up to SIZE_MAX is valid).
  consumer subscribe(std::size_t prefetch) {
    if (prefetch == 0) throw std::invalid_argument("ringflow::work_queue::subscribe: prefetch must be at least 1");
    auto* s = new detail::wq_consumer_state(prefetch);
    guard g(*this);
    s->next = consumers_;
    if (consumers_) consumers_->prev = s;
    consumers_ = s;
    ++consumer_count_;
    return consumer(this, s);
  }

  // Idempotent. Suspended senders resume with send_status::closed; receivers
  // drain what is ready, then get nullopt (see the top of this file).
  void close() {
    guard g(*this);
    if (closed_) return;
    closed_ = true;
    this->close_senders_locked(g);
    check_finished_locked(g);
  }

  bool is_closed() const {
    guard g(*this);
    return closed_;
  }
  std::size_t max_length() const noexcept { return max_; }
  overflow policy() const noexcept { return policy_; }
  work_queue_stats stats() const {
    guard g(*this);
    work_queue_stats s = stats_;
    s.ready = ring_.size();
    s.unacked = unacked_;
    s.consumers = consumer_count_;
    return s;
  }

  // ---- delivery -------------------------------------------------------------

  // One value handed to a consumer; move-only. Settle it with ack() or
  // nack(); dropping it unsettled requeues the value (at-least-once).
  class delivery {
   public:
    delivery(delivery&& o) noexcept
        : q_(std::exchange(o.q_, nullptr)), c_(o.c_), e_(std::move(o.e_)),
          has_value_(std::exchange(o.has_value_, false)) {}
    // Requeues the delivery being overwritten if it is still unsettled.
    delivery& operator=(delivery&& o) noexcept {
      if (this != &o) {
        if (q_) q_->settle(*this, settle_kind::requeue);
        q_ = std::exchange(o.q_, nullptr);
        c_ = o.c_;
        e_ = std::move(o.e_);
        has_value_ = std::exchange(o.has_value_, false);
      }
      return *this;
    }
    ~delivery() {
      if (q_) q_->settle(*this, settle_kind::requeue);
    }

    // The value; still there after ack() (gone after nack(), or when moved
    // from): std::logic_error then. If you move the value out, settle the
    // delivery: dropping it unsettled would requeue the moved-from value.
    T& value() {
      if (!has_value_) throw std::logic_error("ringflow::work_queue::delivery: no value (nacked or moved from)");
      return e_.value;
    }
    const T& value() const {
      if (!has_value_) throw std::logic_error("ringflow::work_queue::delivery: no value (nacked or moved from)");
      return e_.value;
    }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    // True when this value had been delivered before (nacked with requeue,
    // or dropped unsettled, maybe by a consumer that died).
    bool redelivered() const noexcept { return e_.redelivered; }
    // The value's send order in its queue (0, 1, ...); the same on every
    // redelivery, so it identifies the value (unlike RabbitMQ's delivery tag).
    std::uint64_t id() const noexcept { return e_.id; }
    // Not yet acked or nacked.
    bool pending() const noexcept { return q_ != nullptr; }

    // Done with the value: frees one prefetch slot (a recv() of the consumer
    // waiting at its limit goes on once a value is ready). Settled already:
    // std::logic_error.
    void ack() { settle_checked(settle_kind::ack); }
    // requeue: the value goes back to the head of the queue and is delivered
    // again (redelivered() true), maybe to another consumer. !requeue: it is
    // dropped (stats().dropped) and handed to on_drop (drop_reason::rejected).
    // Frees one prefetch slot either way. Settled already: std::logic_error.
    void nack(bool requeue = true) { settle_checked(requeue ? settle_kind::nack_requeue : settle_kind::reject); }

   private:
    friend class work_queue;
    delivery(work_queue* q, detail::wq_consumer_state* c, detail::wq_entry<T>&& e) noexcept
        : q_(q), c_(c), e_(std::move(e)), has_value_(true) {}
    void settle_checked(settle_kind k) {
      if (!q_) throw std::logic_error("ringflow::work_queue::delivery: already acked or nacked");
      q_->settle(*this, k);
    }

    work_queue* q_;  // null once settled (or moved from)
    detail::wq_consumer_state* c_;
    detail::wq_entry<T> e_;
    bool has_value_;
  };

  // ---- consumer -------------------------------------------------------------

  // A subscription with its own prefetch limit; move-only. Destroying it (or
  // disconnect()) stops it receiving: its receivers still suspended get
  // nullopt, and its deliveries stay valid (see "Values belong to the
  // delivery handles" above).
  class consumer {
   public:
    consumer(consumer&& o) noexcept : q_(std::exchange(o.q_, nullptr)), s_(std::exchange(o.s_, nullptr)) {}
    consumer& operator=(consumer&& o) noexcept {
      if (this != &o) {
        disconnect();
        q_ = std::exchange(o.q_, nullptr);
        s_ = std::exchange(o.s_, nullptr);
      }
      return *this;
    }
    ~consumer() { disconnect(); }

    // co_await c.recv() -> std::optional<delivery>: the next ready value,
    // or nullopt once the queue is closed and drained (see close()).
    // Suspends while the queue is empty or this consumer holds `prefetch`
    // unacked deliveries. std::logic_error on a disconnected consumer.
    // Cancel safety: a recv cancelled while suspended takes nothing: a value
    // promised to it stays at the head of the queue and passes to the next
    // waiting receiver; its place in line and its prefetch slot are freed.
    recv_awaiter recv() {
      if (!s_) throw std::logic_error("ringflow::work_queue::consumer::recv: disconnected");
      return recv_awaiter(*q_, s_);
    }

    // Never suspends: a delivery if a value is ready and a prefetch slot is
    // free (and no receiver of this consumer is waiting), else nullopt.
    std::optional<delivery> try_recv() {
      if (!s_) throw std::logic_error("ringflow::work_queue::consumer::try_recv: disconnected");
      guard g(*q_);
      if (s_->parked.empty() && s_->has_slot() && q_->ring_.size() > q_->claimed_) return q_->take_locked(g, s_);
      return std::nullopt;
    }

    // Deliveries this consumer handed out that are not yet acked or nacked.
    std::size_t unacked() const {
      if (!s_) return 0;
      guard g(*q_);
      return s_->unacked;
    }
    std::size_t prefetch() const noexcept { return s_ ? s_->prefetch : 0; }
    bool connected() const noexcept { return s_ != nullptr; }

    // Idempotent; what the destructor does.
    void disconnect() noexcept {
      if (!s_) return;
      work_queue* q = std::exchange(q_, nullptr);
      detail::wq_consumer_state* s = std::exchange(s_, nullptr);
      guard g(*q);
      s->alive = false;
      (s->prev ? s->prev->next : q->consumers_) = s->next;
      if (s->next) s->next->prev = s->prev;
      --q->consumer_count_;
      q->finish_waiters_locked(g, s);
      q->free_if_unused_locked(s);
    }

   private:
    friend class work_queue;
    consumer(work_queue* q, detail::wq_consumer_state* s) noexcept : q_(q), s_(s) {}
    work_queue* q_;
    detail::wq_consumer_state* s_;
  };

 private:
  enum class settle_kind : unsigned char { ack, reject, nack_requeue, requeue };

  struct guard : detail::affinity_guard {
    explicit guard(const work_queue& q) : detail::affinity_guard(q.affinity_, q.lock_) {}
  };

  // The claim engine's steps (detail/bounded_core.hpp).
  using core::enqueue_locked;
  using core::notify_receivers_locked;
  using core::offer_locked;
  using core::release_space_locked;
  using core::wake_locked;

  // A suspended receiver; lives in its recv_awaiter.
  struct recv_node : detail::waiter_node {
    explicit recv_node(detail::wq_consumer_state* s) noexcept : c(s) {}
    detail::wq_consumer_state* c;
    bool parked = false;  // in c->parked rather than the queue's receivers_
  };

 public:
  // ---- awaiters -------------------------------------------------------------

  class [[nodiscard]] recv_awaiter : recv_node {
   public:
    bool await_ready() {
      guard g(q_);
      return try_complete(g);
    }
    bool await_suspend(std::coroutine_handle<> h) {
      guard g(q_);
      if (try_complete(g)) return false;
      auto* c = this->c;
      this->parked = !(c->parked.empty() && c->has_slot());
      q_.enqueue_locked(this, this->parked ? c->parked : q_.receivers_, h);
      ++c->attached;
      if (this->parked) {
        ++q_.stats_.prefetch_waits;
      } else {
        ++c->listed;
      }
      return true;
    }
    std::optional<delivery> await_resume() {
      if (this->registered) {
        this->registered = false;
        auto* c = this->c;
        guard g(q_);
        --c->attached;
        if (std::exchange(this->state, detail::wait_state::idle) == detail::wait_state::notified) {
          --q_.claimed_;
          --c->claimed;
          if (c->alive) {
            result_.emplace(q_.take_locked(g, c));
          } else {
            q_.notify_receivers_locked(g);  // disconnected meanwhile: the claim passes on
          }
        }
        q_.free_if_unused_locked(c);
      }
      return std::move(result_);
    }
    ~recv_awaiter() {
      if (!this->registered) return;  // written only by this task: no lock needed to test it
      auto* c = this->c;
      guard g(q_);
      switch (this->state) {
        case detail::wait_state::waiting:
          if (this->parked) {
            c->parked.remove(this);
          } else {
            q_.receivers_.remove(this);
            --c->listed;
            if (c->alive) q_.slot_freed_locked(g, c);  // a parked sibling may take the slot
          }
          break;
        case detail::wait_state::notified:
          this->owner->unschedule(this->handle);
          --q_.claimed_;
          --c->claimed;
          if (c->alive) q_.slot_freed_locked(g, c);
          q_.notify_receivers_locked(g);  // the promised value passes to the next receiver
          break;
        default:
          this->owner->unschedule(this->handle);
          break;
      }
      this->state = detail::wait_state::idle;
      this->registered = false;
      --c->attached;
      q_.free_if_unused_locked(c);
    }

   private:
    friend class work_queue;
    recv_awaiter(work_queue& q, detail::wq_consumer_state* s) : recv_node(s), q_(q) {}
    recv_awaiter(const recv_awaiter&) = delete;

    // True when done without waiting (result_ set, or nullopt).
    bool try_complete(guard& g) {
      auto* c = this->c;
      if (!c->alive) return true;
      if (c->parked.empty() && c->has_slot() && q_.ring_.size() > q_.claimed_) {
        result_.emplace(q_.take_locked(g, c));
        return true;
      }
      return q_.finished_locked();
    }

    work_queue& q_;
    std::optional<delivery> result_;
  };

 private:
  using entry = detail::wq_entry<T>;
  using cstate = detail::wq_consumer_state;

  static std::size_t check(std::size_t max_length) {
    if (max_length == 0) throw std::invalid_argument("ringflow::work_queue: max_length must be at least 1");
    if (max_length > max_length_limit) {
      throw std::invalid_argument("ringflow::work_queue: max_length " + std::to_string(max_length) +
                                  " is above max_length_limit = " + std::to_string(max_length_limit));
    }
    return max_length;
  }

  void report_drop(std::optional<T>& discarded, drop_reason why) {
    if (discarded && on_drop_) on_drop_(std::move(*discarded), why);
  }

  // ---- state transitions; the guard is held ---------------------------------

  // c (connected) may have a free prefetch slot: its parked receivers join
  // the line, then values are promised.
  void slot_freed_locked(guard& g, cstate* c) {
    while (!c->parked.empty() && c->has_slot()) {
      auto* n = static_cast<recv_node*>(c->parked.pop_front());
      n->parked = false;
      receivers_.push_back(n);
      ++c->listed;
    }
    notify_receivers_locked(g);
  }

  // ---- what bounded_core asks of its queue -----------------------------------

  // A freed place is only reserved, never filled by the waker: buffering
  // may allocate (the ring grows), which a waker in a destructor must not.
  static constexpr bool waker_completes_senders = false;
  std::size_t ready_count() const noexcept { return ring_.size(); }
  std::size_t space_limit() const noexcept { return max_; }
  void buffer_locked(T&& v) {
    // Room for every value that may come back too, so requeueing (in
    // destructors) never allocates.
    ring_.reserve(ring_.size() + unacked_ + 1);
    ring_.push_back(entry{std::move(v), next_id_++, false});
    ++stats_.sent;
    if (ring_.size() > stats_.high_water) stats_.high_water = ring_.size();
  }
  void push_to_receivers_locked(detail::affinity_guard& g, T&& v) {
    buffer_locked(std::move(v));
    notify_receivers_locked(g);
  }
  T evict_oldest_locked(T&& v) {
    T oldest = std::move(ring_.pop_front().value);
    ring_.push_back(entry{std::move(v), next_id_++, false});
    return oldest;
  }
  // The newest ready value has the largest id, so the ring stays sorted.
  T replace_newest_locked(T&& v) {
    entry& b = ring_.back();
    T old = std::exchange(b.value, std::move(v));
    b.id = next_id_++;
    b.redelivered = false;
    return old;
  }
  static void on_claimed(detail::waiter_node* n) noexcept {
    auto* r = static_cast<recv_node*>(n);
    --r->c->listed;
    ++r->c->claimed;
  }
  void report_overflow(std::optional<T>& discarded) { report_drop(discarded, drop_reason::overflow); }

  // Precondition: the caller may take the head (an unpromised value, or its claim).
  delivery take_locked(guard& g, cstate* c) {
    entry e = ring_.pop_front();
    ++c->unacked;
    ++unacked_;
    ++stats_.delivered;
    if (e.redelivered) ++stats_.redelivered;
    release_space_locked(g);
    return delivery(this, c, std::move(e));
  }

  // Receivers get nullopt: nothing is ready and nothing can come any more.
  // Once true it stays true (no send is accepted, nothing is out to return).
  bool finished_locked() const noexcept { return closed_ && ring_.size() == 0 && unacked_ == 0; }

  void check_finished_locked(guard& g) {
    if (!finished_locked()) return;
    while (!receivers_.empty()) {
      auto* n = static_cast<recv_node*>(receivers_.pop_front());
      --n->c->listed;
      wake_locked(g, n, detail::wait_state::closed);
    }
    for (cstate* c = consumers_; c; c = c->next) {
      while (!c->parked.empty()) wake_locked(g, c->parked.pop_front(), detail::wait_state::closed);
    }
  }

  // Wakes every waiting (not yet promised) receiver of c with nullopt.
  void finish_waiters_locked(guard& g, cstate* c) {
    while (!c->parked.empty()) wake_locked(g, c->parked.pop_front(), detail::wait_state::closed);
    for (detail::waiter_node* n = receivers_.front(); n && c->listed;) {
      detail::waiter_node* next = n->next;
      if (static_cast<recv_node*>(n)->c == c) {
        receivers_.remove(n);
        --c->listed;
        wake_locked(g, n, detail::wait_state::closed);
      }
      n = next;
    }
  }

  void free_if_unused_locked(cstate* c) noexcept {
    if (c->unused()) delete c;
  }

  void settle(delivery& d, settle_kind k) {
    std::optional<T> discarded;
    {
      guard g(*this);
      cstate* c = d.c_;
      --c->unacked;
      --unacked_;
      switch (k) {
        case settle_kind::ack:
          ++stats_.acked;
          break;
        case settle_kind::reject:
          ++stats_.nacked;
          ++stats_.dropped;
          discarded.emplace(std::move(d.e_.value));
          d.has_value_ = false;
          break;
        case settle_kind::nack_requeue:
          ++stats_.nacked;
          [[fallthrough]];
        case settle_kind::requeue:
          // Never allocates: buffer_locked kept room for every unacked value.
          ++stats_.requeued;
          d.e_.redelivered = true;
          ring_.insert_sorted(std::move(d.e_));
          d.has_value_ = false;
          break;
      }
      d.q_ = nullptr;
      if (c->alive) {
        slot_freed_locked(g, c);
      } else {
        notify_receivers_locked(g);
        free_if_unused_locked(c);
      }
      check_finished_locked(g);
    }
    report_drop(discarded, drop_reason::rejected);
  }

  detail::wq_ring<entry> ring_;  // ready values, sorted by id
  std::size_t max_;
  overflow policy_;
  drop_handler on_drop_;
  bool closed_ = false;
  std::uint64_t next_id_ = 0;
  std::size_t reserved_ = 0;  // places promised to woken senders
  std::size_t claimed_ = 0;   // ready values promised to woken receivers
  std::size_t unacked_ = 0;   // deliveries out, of all consumers (gone ones too)
  std::size_t consumer_count_ = 0;
  cstate* consumers_ = nullptr;  // connected consumers
  detail::waiter_list senders_;
  detail::waiter_list receivers_;  // receivers with a prefetch slot set aside, FIFO
  work_queue_stats stats_;
  mutable detail::affinity affinity_;
  mutable detail::spinlock lock_;
};

}  // namespace ringflow
