// The worker's run queue: a growable power-of-two ring of coroutine handles.
// It allocates only when it grows, so steady state costs nothing per push.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <memory>

namespace ringflow::detail {

class ready_queue {
 public:
  ready_queue() : buf_(std::make_unique<std::coroutine_handle<>[]>(256)), mask_(255) {}

  // Own thread only, like everything below but observe().
  bool empty() const noexcept { return head() == tail(); }
  std::size_t size() const noexcept { return tail() - head(); }

  void push(std::coroutine_handle<> h) {
    if (size() == mask_ + 1) grow();
    std::size_t t = tail();
    buf_[t & mask_] = h;
    tail_.store(t + 1, std::memory_order_relaxed);
  }
  // Precondition: !empty(). May return a null handle (a withdrawn entry).
  std::coroutine_handle<> pop() noexcept {
    std::size_t h = head();
    head_.store(h + 1, std::memory_order_relaxed);
    return buf_[h & mask_];
  }

  // Withdraws h (a frame about to be destroyed). Rare path: linear scan.
  bool remove(std::coroutine_handle<> h) noexcept {
    for (std::size_t i = head(), t = tail(); i != t; ++i) {
      if (buf_[i & mask_] == h) {
        buf_[i & mask_] = nullptr;
        return true;
      }
    }
    return false;
  }
  void clear() noexcept { head_.store(tail(), std::memory_order_relaxed); }

  // Any thread, as a hint only: how many entries have been taken and put in
  // so far. Another worker that sees `taken` stand still while entries wait
  // knows this worker has more to run than it can (worker::look_for_waiting_work).
  struct progress {
    std::size_t taken, put;
  };
  progress observe() const noexcept {
    return {head_.load(std::memory_order_relaxed), tail_.load(std::memory_order_relaxed)};
  }

 private:
  std::size_t head() const noexcept { return head_.load(std::memory_order_relaxed); }
  std::size_t tail() const noexcept { return tail_.load(std::memory_order_relaxed); }
  void grow() {
    std::size_t n = (mask_ + 1) * 2;
    auto nb = std::make_unique<std::coroutine_handle<>[]>(n);
    // Indices keep counting (an observer never sees them go back): each
    // entry moves to its index's place in the larger ring.
    for (std::size_t i = head(), t = tail(); i != t; ++i) nb[i & (n - 1)] = buf_[i & mask_];
    buf_ = std::move(nb);
    mask_ = n - 1;
  }
  std::unique_ptr<std::coroutine_handle<>[]> buf_;
  std::size_t mask_;
  // Written by the owner only; atomic so other workers may read them (observe).
  std::atomic<std::size_t> head_{0}, tail_{0};
};

}  // namespace ringflow::detail
