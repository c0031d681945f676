// A test-and-test-and-set lock for critical sections of a few dozen
// instructions (channel state, join state, a worker's inbox). It yields the
// CPU after a short spin so a preempted holder on a 2-core machine is not
// starved by its waiters.
#pragma once

#include <atomic>
#include <thread>

namespace ringflow::detail {

class spinlock {
 public:
  [[gnu::always_inline]] void lock() noexcept {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    lock_contended();
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  [[gnu::always_inline]] void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  [[gnu::noinline]] void lock_contended() noexcept {
    for (;;) {
      int spins = 0;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
          __builtin_ia32_pause();
        } else {
          std::this_thread::yield();
        }
      }
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  std::atomic<bool> locked_{false};
};

}  // namespace ringflow::detail
