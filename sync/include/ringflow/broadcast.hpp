// broadcast<T>: every value to every receiver, each receiver with a buffer
// and an overflow policy of its own. Where Tokio's broadcast makes a
// receiver that falls behind lose values (and report an error), each
// receiver here chooses: block (lossless; the sender waits for it) or a
// drop policy (it loses, alone, and counts what it lost).
//
//   ringflow::broadcast<quote> quotes(64);                    // default: drop_oldest
//   auto ui = quotes.subscribe();                             // 64, drop_oldest
//   auto audit = quotes.subscribe(1024, ringflow::overflow::block);   // lossless
//   co_await quotes.send(q);                // waits only while audit's buffer is full
//   while (auto v = co_await ui.recv()) draw(*v);            // nullopt once closed and drained
//   ui.lagged();                                              // what ui's policy dropped
//
// - send(v): co_await -> send_status. v is offered to every receiver
//   subscribed at that moment, in one order that every receiver sees. Each
//   receiver's policy applies to it alone: drop_oldest, drop_incoming and
//   sample discard for that receiver only (counted in its lagged()); a
//   receiver whose policy is block and whose buffer is full holds the send
//   back. Such a send goes to every other receiver at once and to each
//   block receiver as soon as that one has room, in send order (a later
//   send never overtakes it there), then resumes. A slow receiver never
//   slows a receiver with a drop policy, which gets every value when it is
//   sent. Results: sent (at least one receiver keeps v), dropped (none does:
//   no receiver, or each one's policy discarded it), closed (the broadcast
//   was closed first; see close()).
// - subscribe(): a receiver that sees the values sent from now on, not those
//   sent before nor a send already waiting; subscribe(capacity, policy)
//   chooses its buffer and policy (else the broadcast's defaults).
// - receiver::recv(): co_await -> std::optional<T>, the receiver's next
//   value in send order, or nullopt once the broadcast is closed and this
//   receiver's buffer is drained. try_recv() never suspends (nullopt: nothing
//   buffered now). Several tasks may await one receiver (first-in, first-out).
// - Conservation, per receiver: every value sent after it subscribed is
//   exactly one of received, buffered (size()) or counted in lagged().
// - Dropping a receiver unsubscribes it: its buffered values are destroyed
//   and a send held back by it resumes (if it owes no one else).
// - close(): idempotent. Later sends return closed and deliver nothing;
//   a waiting send resumes with closed (it went to the receivers that had
//   room, and never reaches the block receivers it was waiting for). Every
//   receiver drains its buffer, then gets nullopt. ~broadcast() closes;
//   receivers may outlive the broadcast (the state is shared).
// - Every value is destroyed exactly once, leftovers included. Each
//   receiver gets its own copy (T must be copy constructible; the last one
//   to take it gets the sender's value moved). Copies and a policy's
//   discarded values are made and destroyed under the broadcast's lock, so
//   T's copy should be cheap (a std::shared_ptr<const X> for large X). A
//   copy that throws during send() leaves send() with that exception (the
//   receivers before that one have the value, the others were never sent
//   it); one that throws while a waiting send moves into the room a recv()
//   made costs that receiver the value (counted in lagged()).
//
// Cancel safety:
// - send cancelled while waiting (its frame destroyed, e.g. by timeout):
//   it has gone to the receivers that had room and to the drop receivers;
//   the block receivers it still waited for never get it, and a later send
//   owed to them moves up. Nothing is counted twice: for a receiver that
//   never got the value it was never sent.
// - recv cancelled while waiting loses nothing: a value promised to it stays
//   buffered for the receiver's next recv (or another task awaiting it).
//
// Thread safety: usable from tasks on any workers; one lock for the whole
// broadcast (while only one worker has touched it, no lock: see
// detail/affinity.hpp). The broadcast must outlive the tasks suspended in
// its send(); a receiver must outlive the tasks suspended in its recv().
// Bad arguments: capacity 0 or above max_capacity, or a policy outside the
// enum, throw std::invalid_argument; a moved-from receiver throws
// std::logic_error.
//
// Built on the claim engine (detail/bounded_core.hpp): each receiver's
// buffer is a bounded_core queue, which applies its policy and hands claims
// to the tasks awaiting it. The engine queues a blocked sender in one
// queue's list; a broadcast send may wait for several receivers at once, so
// the broadcast keeps its own list of waiting sends, and each block
// receiver names the first of them it is owed (detail/broadcast_state.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>

#include <ringflow/detail/slot_ring.hpp>
#include <ringflow/overflow.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {
template <class T>
class broadcast_state;
template <class T>
struct broadcast_queue;
template <class T>
class broadcast_send_awaiter;
template <class T>
class broadcast_recv_awaiter;
}  // namespace detail

template <class T>
class broadcast {
  static_assert(std::is_copy_constructible_v<T>, "ringflow::broadcast<T>: T must be copy constructible");

 public:
  using value_type = T;
  using send_awaiter = detail::broadcast_send_awaiter<T>;
  using recv_awaiter = detail::broadcast_recv_awaiter<T>;
  class receiver;

  // The largest buffer a receiver may have (one array of T).
  static constexpr std::size_t max_capacity = detail::slot_ring<T>::max_capacity;

  // The defaults for each receiver's own buffer. capacity 0 or above
  // max_capacity, or a policy outside the enum: std::invalid_argument.
  explicit broadcast(std::size_t capacity, overflow policy = overflow::drop_oldest);
  broadcast(const broadcast&) = delete;
  broadcast& operator=(const broadcast&) = delete;
  // Closes; receivers still subscribed drain what they hold.
  ~broadcast();

  // A receiver with the default buffer and policy; sees values sent from now on.
  receiver subscribe();
  // A receiver with its own buffer and policy; arguments checked as in the constructor.
  receiver subscribe(std::size_t capacity, overflow policy);

  // co_await -> send_status: sent, dropped or closed (see above). Suspends only
  // while a block receiver's buffer is full.
  send_awaiter send(T value);

  // Idempotent: wakes every waiting send (closed) and receiver (drain, then nullopt).
  void close();
  bool is_closed() const;
  // Receivers subscribed now.
  std::size_t receivers() const;
  std::size_t capacity() const noexcept;  // the default buffer size
  overflow policy() const noexcept;       // the default policy

 private:
  detail::broadcast_state<T>* s_;
};

// One subscription: a buffer of its own. Move-only.
template <class T>
class broadcast<T>::receiver {
 public:
  receiver(receiver&& o) noexcept;
  receiver& operator=(receiver&& o) noexcept;
  receiver(const receiver&) = delete;
  receiver& operator=(const receiver&) = delete;
  // Unsubscribes: buffered values are destroyed, a send held back only by it resumes.
  ~receiver();

  // co_await -> std::optional<T>: the next value, nullopt once closed and drained.
  recv_awaiter recv();
  // Never suspends: the next value if one is buffered.
  std::optional<T> try_recv();
  // Values this receiver lost to its policy.
  std::uint64_t lagged() const;
  // Values buffered now.
  std::size_t size() const;
  std::size_t capacity() const;
  overflow policy() const;

 private:
  friend class broadcast;
  explicit receiver(detail::broadcast_queue<T>* q) noexcept : q_(q) {}
  detail::broadcast_queue<T>& queue() const;
  detail::broadcast_queue<T>* q_;
};

}  // namespace ringflow

#include <ringflow/detail/broadcast_state.hpp>
