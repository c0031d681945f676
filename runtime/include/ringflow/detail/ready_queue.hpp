// The worker's run queue: a growable power-of-two ring of coroutine handles.
// It allocates only when it grows, so steady state costs nothing per push.
#pragma once

#include <coroutine>
#include <cstddef>
#include <memory>

namespace ringflow::detail {

class ready_queue {
 public:
  ready_queue() : buf_(std::make_unique<std::coroutine_handle<>[]>(256)), mask_(255) {}

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }

  void push(std::coroutine_handle<> h) {
    if (size() == mask_ + 1) grow();
    buf_[tail_++ & mask_] = h;
  }
  // Precondition: !empty(). May return a null handle (a withdrawn entry).
  std::coroutine_handle<> pop() noexcept { return buf_[head_++ & mask_]; }

  // Withdraws h (a frame about to be destroyed). Rare path: linear scan.
  bool remove(std::coroutine_handle<> h) noexcept {
    for (std::size_t i = head_; i != tail_; ++i) {
      if (buf_[i & mask_] == h) {
        buf_[i & mask_] = nullptr;
        return true;
      }
    }
    return false;
  }
  void clear() noexcept { head_ = tail_ = 0; }

 private:
  void grow() {
    std::size_t n = (mask_ + 1) * 2;
    auto nb = std::make_unique<std::coroutine_handle<>[]>(n);
    for (std::size_t i = 0; i < size(); ++i) nb[i] = buf_[(head_ + i) & mask_];
    tail_ = size();
    head_ = 0;
    buf_ = std::move(nb);
    mask_ = n - 1;
  }
  std::unique_ptr<std::coroutine_handle<>[]> buf_;
  std::size_t mask_;
  std::size_t head_ = 0, tail_ = 0;
};

}  // namespace ringflow::detail
