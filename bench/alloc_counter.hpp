// The benchmarks' allocation counter: replaces the global operator new and
// delete (every form) so a benchmark can show its steady state allocates
// nothing. Include it in exactly one translation unit of a program (each
// benchmark is one). bench_support::allocs() counts every allocation made
// by any thread since the start.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace bench_support {

inline std::atomic<std::uint64_t> g_allocs{0};

inline std::uint64_t allocs() noexcept { return g_allocs.load(std::memory_order_relaxed); }

inline void* counted_alloc(std::size_t n) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}

inline void* counted_alloc_aligned(std::size_t n, std::align_val_t a) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  std::size_t al = std::max(static_cast<std::size_t>(a), sizeof(void*));
  void* p = nullptr;
  return posix_memalign(&p, al, n ? n : 1) == 0 ? p : nullptr;
}

}  // namespace bench_support

void* operator new(std::size_t n) {
  if (void* p = bench_support::counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = bench_support::counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return bench_support::counted_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return bench_support::counted_alloc(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = bench_support::counted_alloc_aligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  if (void* p = bench_support::counted_alloc_aligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return bench_support::counted_alloc_aligned(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return bench_support::counted_alloc_aligned(n, a);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
