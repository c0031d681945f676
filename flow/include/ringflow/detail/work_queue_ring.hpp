// Machinery of work_queue<T> (see <ringflow/work_queue.hpp>): the ordered
// store of ready values and a consumer's bookkeeping.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include <ringflow/detail/waiter_list.hpp>

namespace ringflow::detail {

// One value in the queue. `id` is its send order; it survives requeues, so
// the ready store can put a returned value back where it came from.
template <class T>
struct wq_entry {
  T value;
  std::uint64_t id;
  bool redelivered;
};

// A growable ring of wq_entry kept sorted by id. Values arrive at the back
// (new ids are the largest) and leave at the front; a requeued value is
// inserted at its place among the other requeued ones, which all sit at the
// front (their ids are older than any value never delivered), so the insert
// shifts only the short front part. The storage only grows: once it has
// reached the queue's high-water mark nothing allocates.
template <class E>
class wq_ring {
 public:
  // The largest capacity: a power of two (the indices are masked) whose
  // array does not span more than PTRDIFF_MAX bytes, as no object may.
  static constexpr std::size_t max_capacity =
      std::bit_floor(static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(E));

  wq_ring() = default;
  wq_ring(const wq_ring&) = delete;
  wq_ring& operator=(const wq_ring&) = delete;
  ~wq_ring() {
    while (size_) pop_front();
    if (data_) std::allocator<E>{}.deallocate(data_, cap_);
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  E& operator[](std::size_t i) noexcept { return data_[(head_ + i) & (cap_ - 1)]; }
  E& front() noexcept { return data_[head_]; }
  E& back() noexcept { return (*this)[size_ - 1]; }

  // Grows to at least n slots (a power of two). May throw std::bad_alloc;
  // the ring is unchanged then. n > max_capacity: std::bad_alloc too (it
  // could never be allocated), checked first because std::bit_ceil(n) is
  // undefined when the power of two does not fit in size_t.
  void reserve(std::size_t n) {
    if (n <= cap_) return;
    if (n > max_capacity) throw std::bad_alloc();
    const std::size_t cap = std::bit_ceil(n < 8 ? std::size_t{8} : n);
    E* data = std::allocator<E>{}.allocate(cap);
    for (std::size_t i = 0; i < size_; ++i) {
      E& src = (*this)[i];
      std::construct_at(data + i, std::move(src));
      std::destroy_at(&src);
    }
    if (data_) std::allocator<E>{}.deallocate(data_, cap_);
    data_ = data;
    cap_ = cap;
    head_ = 0;
  }

  // Preconditions for the rest: size() < capacity() to add, size() > 0 to remove.
  void push_back(E&& e) noexcept {
    std::construct_at(&(*this)[size_], std::move(e));
    ++size_;
  }
  E pop_front() noexcept {
    E* p = data_ + head_;
    E e = std::move(*p);
    std::destroy_at(p);
    head_ = (head_ + 1) & (cap_ - 1);
    --size_;
    return e;
  }
  // Inserts e before the first entry with a larger id.
  void insert_sorted(E&& e) noexcept {
    std::size_t lo = 0, hi = size_;
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if ((*this)[mid].id < e.id) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    insert_at(lo, std::move(e));
  }

 private:
  void insert_at(std::size_t i, E&& e) noexcept {
    if (i == size_) {
      push_back(std::move(e));
      return;
    }
    if (i <= size_ - i) {  // shift the front part one slot towards the head
      const std::size_t h = (head_ + cap_ - 1) & (cap_ - 1);
      if (i == 0) {
        std::construct_at(data_ + h, std::move(e));
      } else {
        std::construct_at(data_ + h, std::move(data_[head_]));
      }
      head_ = h;
      ++size_;
      // Now slot k (1 <= k <= i) holds the old entry k - 1.
      if (i == 0) return;
      for (std::size_t k = 1; k < i; ++k) (*this)[k] = std::move((*this)[k + 1]);
      (*this)[i] = std::move(e);
      return;
    }
    // Shift the back part one slot towards the tail.
    std::construct_at(&(*this)[size_], std::move((*this)[size_ - 1]));
    for (std::size_t k = size_ - 1; k > i; --k) (*this)[k] = std::move((*this)[k - 1]);
    (*this)[i] = std::move(e);
    ++size_;
  }

  E* data_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

// One consumer's bookkeeping, guarded by the queue's lock. It lives apart
// from the movable consumer handle so deliveries and suspended receivers can
// point at it; it is freed when the consumer is gone and nothing points at it
// any more (no unacked delivery, no registered receiver).
struct wq_consumer_state {
  explicit wq_consumer_state(std::size_t p) noexcept : prefetch(p) {}
  std::size_t prefetch;
  std::size_t unacked = 0;   // its deliveries not yet acked or nacked
  std::size_t claimed = 0;   // values promised to its woken receivers
  std::size_t listed = 0;    // its receivers in the queue's FIFO (each with a slot set aside)
  std::size_t attached = 0;  // its registered receivers (listed, parked or woken)
  waiter_list parked;        // its receivers beyond prefetch: they wait for an ack
  bool alive = true;         // false once the consumer handle is gone
  wq_consumer_state* prev = nullptr;  // the queue's list of live consumers
  wq_consumer_state* next = nullptr;

  // A receiver may take (or be promised) a value only while this holds.
  bool has_slot() const noexcept { return unacked + claimed + listed < prefetch; }
  bool unused() const noexcept { return !alive && unacked == 0 && attached == 0; }
};

}  // namespace ringflow::detail
