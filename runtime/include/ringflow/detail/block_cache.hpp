// block_cache: where task frames and the small states that come and go with
// each task (join states, group members) get their memory. A service starts
// and ends tasks at a high rate (one per spawned task, request, command), and
// glibc's own per-thread cache keeps only 7 blocks of a size: with 64 tasks
// in flight every frame went to malloc's slower bins (42% of a task_group
// spawn+join on one worker; bench/sync.sh). Each thread keeps its freed
// blocks by size class (64-byte steps up to 1 KiB) and hands them out again;
// larger blocks, and blocks beyond a class's share (64 KiB), go to operator
// new/delete. A block freed on another thread than the one that took it
// joins the freeing thread's cache. A thread's cache is freed when the thread
// ends.
//
// Under AddressSanitizer every block comes from operator new and goes back
// to operator delete at once, so a use after free is still reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define RINGFLOW_BLOCK_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RINGFLOW_BLOCK_CACHE 0
#endif
#endif
#ifndef RINGFLOW_BLOCK_CACHE
#define RINGFLOW_BLOCK_CACHE 1
#endif

namespace ringflow::detail::block_cache {

// A block of n bytes (operator new's alignment); throws std::bad_alloc.
void* take(std::size_t n);
// Gives back a block from take(n), with the same n.
void give_back(void* p, std::size_t n) noexcept;

// For a class whose objects should come from the cache: inherit it.
struct cached {
  static void* operator new(std::size_t n) { return take(n); }
  static void operator delete(void* p, std::size_t n) noexcept { give_back(p, n); }
};

// ---- machinery -------------------------------------------------------------

inline constexpr std::size_t step = 64, classes = 16, share_bytes = 64 * 1024;

struct free_block {
  free_block* next;
};

struct thread_cache {
  free_block* head[classes];
  std::uint32_t count[classes];
  bool registered;  // a reaper frees this thread's blocks at its exit
  bool reaped;      // the thread is ending: take and give back go straight through
};
// Trivially destructible, so reading it needs no guard; the reaper (in
// block_cache.cpp) is registered on the first block given back.
inline thread_local thread_cache tls_cache{};

void register_reaper() noexcept;

inline void* take(std::size_t n) {
#if RINGFLOW_BLOCK_CACHE
  if (n - 1 < classes * step) {
    const std::size_t c = (n - 1) / step;
    thread_cache& tc = tls_cache;
    if (free_block* b = tc.head[c]) {
      tc.head[c] = b->next;
      --tc.count[c];
      return b;
    }
    return ::operator new((c + 1) * step);
  }
#endif
  return ::operator new(n);
}

inline void give_back(void* p, [[maybe_unused]] std::size_t n) noexcept {
#if RINGFLOW_BLOCK_CACHE
  if (n - 1 < classes * step) {
    const std::size_t c = (n - 1) / step;
    thread_cache& tc = tls_cache;
    if (tc.count[c] < share_bytes / ((c + 1) * step) && !tc.reaped) {
      if (!tc.registered) register_reaper();
      auto* b = static_cast<free_block*>(p);
      b->next = tc.head[c];
      tc.head[c] = b;
      ++tc.count[c];
      return;
    }
    ::operator delete(p);
    return;
  }
#endif
  ::operator delete(p);
}

}  // namespace ringflow::detail::block_cache
