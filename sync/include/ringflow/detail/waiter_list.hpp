// An intrusive FIFO of suspended senders or receivers. Nodes live in the
// awaiters (in the waiting coroutine's frame): queueing never allocates.
#pragma once

#include <atomic>
#include <coroutine>

#include <ringflow/detail/worker.hpp>

namespace ringflow::detail {

enum class wait_state : unsigned char {
  idle,      // never suspended, or finished
  waiting,   // in the list
  notified,  // taken off the list with a claim (a slot or a value), resume queued
  closed,    // taken off the list by close(), resume queued
  handed,    // rendezvous: the value moved between the two sides, resume queued
};

// Shared by the cases of one select(): the first case to fire wins, every
// other case of that select is then dead wherever it is queued. A waker that
// pops a node with a select_core must win it first (try_win) or skip it.
struct select_core {
  std::atomic<int> winner{-1};
  bool try_win(unsigned index) noexcept {
    int none = -1;
    return winner.compare_exchange_strong(none, static_cast<int>(index), std::memory_order_acq_rel);
  }
  bool decided() const noexcept { return winner.load(std::memory_order_acquire) >= 0; }
};

struct waiter_node {
  waiter_node() noexcept
      : prev(nullptr), next(nullptr), owner(nullptr), state(wait_state::idle), registered(false), sel_index(0),
        uncancellable_task(nullptr), sel(nullptr) {}
  // For the awaiters made on every send and recv: only `registered` is set
  // now; the rest is written when the node is queued (channel::enqueue_locked). An operation that completes at once then
  // stores two fields, not nine: less work, and fewer chances for a store to
  // alias (modulo 4 KiB) the thread-local load the next operation makes.
  struct lazy_t {};
  explicit waiter_node(lazy_t) noexcept : registered(false) {}

  // True when this wait cannot be cancelled, so its waker completes it
  // outright (moves the value between the buffer and the awaiter) instead of
  // handing it a claim to settle when it runs, and may move its task to the
  // waking worker (worker::place_woken). docs/design/uncancellable_waits.md.
  bool waker_completes() const noexcept { return uncancellable_task != nullptr; }

  waiter_node* prev;
  waiter_node* next;
  std::coroutine_handle<> handle;
  worker* owner;  // where the task resumes; a waker may change it (worker::place_woken)
  wait_state state;  // written by wakers under the channel's lock
  // Written only by the waiting task itself: true from enqueue until resume.
  // A destructor tests this one (no lock needed) before it locks to look at
  // `state`, which another worker may be writing at that moment.
  bool registered;
  unsigned sel_index;
  root_link* uncancellable_task;  // see waker_completes()
  // Set for the cases of a select(); null for ordinary waiters.
  select_core* sel;
};

class waiter_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  waiter_node* front() const noexcept { return head_; }

  void push_back(waiter_node* n) noexcept {
    n->next = nullptr;
    n->prev = tail_;
    (tail_ ? tail_->next : head_) = n;
    tail_ = n;
  }
  waiter_node* pop_front() noexcept {
    waiter_node* n = head_;
    remove(n);
    return n;
  }
  void remove(waiter_node* n) noexcept {
    (n->prev ? n->prev->next : head_) = n->next;
    (n->next ? n->next->prev : tail_) = n->prev;
    n->prev = n->next = nullptr;
  }

 private:
  waiter_node* head_ = nullptr;
  waiter_node* tail_ = nullptr;
};

}  // namespace ringflow::detail
