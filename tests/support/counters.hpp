// Test helpers: objects that count their own lifetimes.
#pragma once

#include <atomic>

namespace test_support {

// Counts live instances; lives in coroutine frames to prove they are freed.
struct lifetime_probe {
  static inline std::atomic<int> alive{0};
  static inline std::atomic<int> destroyed{0};
  lifetime_probe() { ++alive; }
  lifetime_probe(const lifetime_probe&) { ++alive; }
  ~lifetime_probe() {
    --alive;
    ++destroyed;
  }
  static void reset() {
    alive = 0;
    destroyed = 0;
  }
};

}  // namespace test_support
