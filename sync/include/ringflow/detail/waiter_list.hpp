// An intrusive FIFO of suspended senders or receivers. Nodes live in the
// awaiters (in the waiting coroutine's frame): queueing never allocates.
#pragma once

#include <atomic>
#include <coroutine>

#include <ringflow/detail/affinity.hpp>
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
  // now; the rest is written when the node is queued (enqueue_waiter). An
  // operation that completes at once then stores two fields, not nine: less
  // work, and fewer chances for a store to alias (modulo 4 KiB) the
  // thread-local load the next operation makes.
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

// The steps every wait on a waiter_list takes, under the lock of the object
// that owns the list (bounded_core's queues, a stream's two sides).

// Queues n for the task h on this worker (the caller checked there is one),
// writing every field of n (the per-operation awaiters leave them unset until
// now, see waiter_node::lazy_t). sel: the select n is a case of.
inline void enqueue_waiter(waiter_list& list, waiter_node* n, std::coroutine_handle<> h,
                           root_link* uncancellable_task = nullptr, select_core* sel = nullptr,
                           unsigned sel_index = 0) noexcept {
  n->handle = h;
  n->owner = tls_worker;
  n->state = wait_state::waiting;
  n->registered = true;
  n->uncancellable_task = uncancellable_task;
  n->sel = sel;
  n->sel_index = sel_index;
  list.push_back(n);
}

// Withdraws a node whose frame is being destroyed (or that is done): off the
// list, or its queued resume cancelled. Returns its last state: `notified`
// means it held a claim the caller must pass on.
inline wait_state withdraw_waiter(waiter_list& list, waiter_node* n) {
  wait_state s = n->state;
  if (s == wait_state::waiting) {
    list.remove(n);
  } else if (s != wait_state::idle) {
    n->owner->unschedule(n->handle);  // its resume is queued: cancel it
  }
  n->state = wait_state::idle;
  n->registered = false;
  return s;
}

// Queues the resumption of n (already off its list) with state s. The woken
// task resumes where it waited, unless the waking worker places it elsewhere
// (worker::place_woken: only an uncancellable waiter may move).
inline void wake_waiter(affinity_guard& g, waiter_node* n, wait_state s) {
  n->state = s;
  worker* w = n->owner;
  if (n->uncancellable_task) {
    if (worker* me = tls_worker) {
      worker* to = me->place_woken(n->uncancellable_task, w);
      if (to != w) w = n->owner = to;
    }
  }
  g.schedule(w, n->handle);
}

}  // namespace ringflow::detail
