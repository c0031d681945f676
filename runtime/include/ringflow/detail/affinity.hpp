// affinity: lets an object shared between tasks skip its lock while only one
// worker has ever touched it.
//
// The first worker to use the object becomes its owner and works on it
// without atomics beyond one relaxed load. When another thread arrives, it
// asks the owner (through the owner's inbox) to give the object up; the
// owner does so between two tasks, where it cannot be half-way through an
// operation, and from then on everyone takes the lock. The hand-over happens
// at most once per object, so the single-worker fast path costs nothing and
// the multi-worker path pays one spinlock per operation.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/worker.hpp>

namespace ringflow::detail {

inline constexpr std::uint32_t unowned_id = 0xFFFFFFFEu;
inline constexpr std::uint32_t shared_owner = 0xFFFFFFFFu;

class affinity {
 public:
  // True when the caller must take the object's lock.
  [[gnu::always_inline]] bool needs_lock() noexcept {
    // acquire: a thread that finds the object shared must see every write the
    // last lock-free owner made before it let go (free on x86).
    std::uint32_t o = owner_.load(std::memory_order_acquire);
    if (o == tls_worker_id) return false;
    if (o == shared_owner) return true;
    return acquire_slow();
  }
  // Switches to the locked mode for good. select() locks several objects at
  // once and must not be asked to hand one over while it holds another.
  // Call it while holding none of this object's state.
  void make_shared() noexcept {
    if (!needs_lock()) owner_.store(shared_owner, std::memory_order_release);
  }

 private:
  bool acquire_slow() noexcept;
  std::atomic<std::uint32_t> owner_{unowned_id};
};

// Locks `lock` only when the affinity says so; defers one cross-thread wake
// until after the unlock so the critical section stays short.
class affinity_guard {
 public:
  // Forced inline: every channel operation makes one or two of these, and at
  // -O3 in a large translation unit g++ 12 stopped inlining them (a call and
  // a spilled guard per operation: 1 worker, capacity 1024, 7.9 -> 10.7 ns/item).
  [[gnu::always_inline]] affinity_guard(affinity& a, spinlock& l) noexcept : lock_(a.needs_lock() ? &l : nullptr) {
    if (lock_) lock_->lock();
  }
  // Always locks: for an object that takes its lock on every operation (no
  // affinity), with the same deferred wake.
  [[gnu::always_inline]] explicit affinity_guard(spinlock& l) noexcept : lock_(&l) { lock_->lock(); }
  affinity_guard(const affinity_guard&) = delete;
  affinity_guard& operator=(const affinity_guard&) = delete;
  [[gnu::always_inline]] ~affinity_guard() { unlock(); }

  // False while the object runs lock-free for this worker: then nothing
  // but this task can have changed it since the task last looked.
  bool locked() const noexcept { return lock_ != nullptr; }

  [[gnu::always_inline]] void unlock() noexcept {
    if (lock_) {
      lock_->unlock();
      lock_ = nullptr;
    }
    if (pending_wake_) wake_pending();
  }
  // Resumes h on w later: at once into the local queue, or through w's inbox
  // (pushed while still locked, so a concurrent destroy of h can withdraw it).
  void schedule(worker* w, std::coroutine_handle<> h) {
    if (w == tls_worker) {
      w->schedule_local(h);
    } else if (w->push_remote(h)) {
      if (pending_wake_ && pending_wake_ != w) pending_wake_->wake();
      pending_wake_ = w;
    }
  }

 private:
  [[gnu::noinline]] void wake_pending() noexcept { std::exchange(pending_wake_, nullptr)->wake(); }

  spinlock* lock_;
  worker* pending_wake_ = nullptr;
};

}  // namespace ringflow::detail
