// slot_ring<T>: a fixed-capacity FIFO of T in one allocation made up front,
// so pushing and popping never allocate. T needs no default constructor.
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace ringflow::detail {

template <class T>
class slot_ring {
 public:
  // The largest capacity an allocation of T can have: no object may span more
  // than PTRDIFF_MAX bytes (std::allocator<T>::allocate throws
  // bad_array_new_length or bad_alloc beyond it). It also keeps the index
  // arithmetic (head_ + size_ < 2 * cap_) from overflowing.
  static constexpr std::size_t max_capacity =
      static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(T);

  // capacity > max_capacity: std::invalid_argument, before allocating. Below
  // it, an allocation that fails throws std::bad_alloc.
  explicit slot_ring(std::size_t capacity)
      : cap_(check(capacity)), data_(capacity ? std::allocator<T>{}.allocate(capacity) : nullptr) {}
  slot_ring(const slot_ring&) = delete;
  slot_ring& operator=(const slot_ring&) = delete;
  ~slot_ring() {
    while (size_) pop_front();
    if (data_) std::allocator<T>{}.deallocate(data_, cap_);
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  bool empty() const noexcept { return size_ == 0; }
  bool full() const noexcept { return size_ == cap_; }

  // Preconditions: !full() for push_back, !empty() for the rest.
  // The indices are read into locals first: a T may alias size_t, and a
  // reload of size_ after the store into the slot costs a stall.
  void push_back(T&& v) {
    const std::size_t n = size_;
    std::size_t i = head_ + n;
    if (i >= cap_) i -= cap_;
    std::construct_at(data_ + i, std::move(v));
    size_ = n + 1;
  }
  T pop_front() {
    const std::size_t h = head_;
    const std::size_t n = size_;
    T* p = data_ + h;
    T v = std::move(*p);
    std::destroy_at(p);
    head_ = h + 1 == cap_ ? 0 : h + 1;
    size_ = n - 1;
    return v;
  }
  T& back() noexcept {
    std::size_t i = head_ + size_ - 1;
    if (i >= cap_) i -= cap_;
    return data_[i];
  }

 private:
  static std::size_t check(std::size_t capacity) {
    if (capacity > max_capacity) {
      throw std::invalid_argument("ringflow: capacity " + std::to_string(capacity) + " is above the maximum of " +
                                  std::to_string(max_capacity) + " (PTRDIFF_MAX / sizeof(T))");
    }
    return capacity;
  }

  std::size_t cap_;
  T* data_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace ringflow::detail
