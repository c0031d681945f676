#include <ringflow/detail/block_cache.hpp>

namespace ringflow::detail::block_cache {

namespace {

// Frees the thread's cached blocks when the thread ends; blocks given back
// after that (a frame destroyed by a later thread-exit destructor) go
// straight to operator delete.
struct reaper {
  ~reaper() {
    thread_cache& tc = tls_cache;
    tc.reaped = true;
    for (std::size_t c = 0; c < classes; ++c) {
      while (free_block* b = tc.head[c]) {
        tc.head[c] = b->next;
        ::operator delete(b);
      }
      tc.count[c] = 0;
    }
  }
};

}  // namespace

void register_reaper() noexcept {
  tls_cache.registered = true;
  // Constructed on first use in this thread; destroyed at its exit.
  static thread_local reaper r;
  (void)r;
}

}  // namespace ringflow::detail::block_cache
