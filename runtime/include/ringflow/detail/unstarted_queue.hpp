// unstarted_queue: a worker's spawned tasks that have not started yet, in
// spawn order. The owner takes them one at a time from the front; an idle
// worker of the same runtime takes up to half of them at once (steal), so a
// burst of spawns on one worker spreads to the cores with nothing to do.
//
// A spinlock guards it: the owner's push and pop take it uncontended (a
// thief comes only while idle), and a thief takes its batch under one hold.
// Only unstarted tasks live here; a started task is never stolen, so a task
// never changes workers in the middle of what it is doing.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>

#include <ringflow/detail/spinlock.hpp>

namespace ringflow::detail {

struct root_link;

class unstarted_queue {
 public:
  unstarted_queue() : buf_(std::make_unique<root_link*[]>(64)), mask_(63) {}

  // Any thread, as a hint: how many wait (exact for the owner between its
  // own pushes and pops, give or take what thieves take meanwhile).
  std::size_t size_hint() const noexcept { return size_.load(std::memory_order_relaxed); }

  // Owner only. Allocates only when the queue grows.
  void push(root_link* r) {
    // Only the owner pushes or grows, so a full queue stays full (or gets
    // emptier) until we lock: allocate first, never while a thief waits.
    std::unique_ptr<root_link*[]> bigger;
    if (size_hint() == mask_ + 1) bigger = std::make_unique<root_link*[]>(2 * (mask_ + 1));
    lock_.lock();
    if (bigger) grow_into(std::move(bigger));
    buf_[tail_++ & mask_] = r;
    size_.store(tail_ - head_, std::memory_order_relaxed);
    lock_.unlock();
  }
  // Owner only: the oldest, or null when none is left.
  root_link* pop() noexcept {
    lock_.lock();
    root_link* r = nullptr;
    if (head_ != tail_) r = buf_[head_++ & mask_];
    size_.store(tail_ - head_, std::memory_order_relaxed);
    lock_.unlock();
    return r;
  }
  // A thief: moves up to max (at least one when any wait, else half,
  // rounded up) of the oldest into out; returns how many.
  std::size_t steal_half(root_link** out, std::size_t max) noexcept {
    lock_.lock();
    std::size_t n = (tail_ - head_ + 1) / 2;
    if (n > max) n = max;
    for (std::size_t i = 0; i < n; ++i) out[i] = buf_[head_++ & mask_];
    size_.store(tail_ - head_, std::memory_order_relaxed);
    lock_.unlock();
    return n;
  }
 private:
  void grow_into(std::unique_ptr<root_link*[]> nb) noexcept {
    const std::size_t n = (mask_ + 1) * 2;
    for (std::size_t i = head_; i != tail_; ++i) nb[i & (n - 1)] = buf_[i & mask_];
    buf_ = std::move(nb);
    mask_ = n - 1;
  }

  spinlock lock_;
  std::size_t head_ = 0, tail_ = 0;  // under lock_
  std::unique_ptr<root_link*[]> buf_;
  std::size_t mask_;
  std::atomic<std::size_t> size_{0};
};

}  // namespace ringflow::detail
