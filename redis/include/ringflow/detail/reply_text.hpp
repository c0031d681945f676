// The text of a reply (a bulk string, a status, an error): up to
// inline_capacity bytes inside the reply itself, longer ones on the heap.
// Why: most replies are short (OK, PONG, an XADD's entry id of 15-24
// characters, a small value), and std::string keeps only 15 inline, so every
// XADD reply of a deep pipeline allocated once to build and once more to free.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>

namespace ringflow::redis::detail {

class reply_text {
 public:
  static constexpr std::size_t inline_capacity = 24;  // an entry id: 13-digit ms, '-', a 10-digit sequence

  reply_text() noexcept = default;
  reply_text(const reply_text& o) { assign(o.data(), o.size_); }
  reply_text(reply_text&& o) noexcept { take(o); }
  reply_text& operator=(const reply_text& o) {
    if (this != &o) {
      reply_text copy(o);  // may throw: *this is untouched then
      release();
      take(copy);
    }
    return *this;
  }
  reply_text& operator=(reply_text&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  ~reply_text() { release(); }

  // Replaces the text with a copy of [s, s + n). Throws std::bad_alloc (the
  // text is empty then).
  void assign(const char* s, std::size_t n) {
    release();
    if (n > inline_capacity) {
      heap_ = new char[n];
    }
    size_ = n;
    if (n > 0) std::memcpy(data(), s, n);
  }

  std::string_view view() const noexcept { return {data(), size_}; }

 private:
  bool on_heap() const noexcept { return size_ > inline_capacity; }
  char* data() noexcept { return on_heap() ? heap_ : inline_; }
  const char* data() const noexcept { return on_heap() ? heap_ : inline_; }
  void release() noexcept {
    if (on_heap()) delete[] heap_;
    size_ = 0;
  }
  // o's text becomes ours (*this holds none); o is left empty.
  void take(reply_text& o) noexcept {
    size_ = o.size_;
    // The whole buffer, whichever member it holds: a copy of a fixed size
    // is a few moves, not a call.
    std::memcpy(inline_, o.inline_, inline_capacity);
    o.size_ = 0;
  }

  std::size_t size_ = 0;
  union {
    char inline_[inline_capacity] = {};
    char* heap_;
  };
};

}  // namespace ringflow::redis::detail
