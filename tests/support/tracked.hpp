// tracked: a value type that proves every value is destroyed exactly once.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace test_support {

struct tracked {
  static inline std::atomic<long> live{0};
  static inline std::mutex m;
  static inline std::unordered_map<int, int> destroyed;  // id -> times destroyed (live ids only)

  int id = -1;  // -1: moved-from, owns nothing
  explicit tracked(int i) : id(i) { ++live; }
  tracked(tracked&& o) noexcept : id(o.id) { o.id = -1; }
  tracked& operator=(tracked&& o) noexcept {
    if (this != &o) {
      release();
      id = o.id;
      o.id = -1;
    }
    return *this;
  }
  tracked(const tracked&) = delete;
  ~tracked() { release(); }

  static void reset() {
    live = 0;
    std::lock_guard g(m);
    destroyed.clear();
  }
  static int times_destroyed(int id) {
    std::lock_guard g(m);
    auto it = destroyed.find(id);
    return it == destroyed.end() ? 0 : it->second;
  }
  static bool each_destroyed_once(int n) {
    std::lock_guard g(m);
    for (int i = 0; i < n; ++i) {
      auto it = destroyed.find(i);
      if (it == destroyed.end() || it->second != 1) return false;
    }
    return true;
  }

 private:
  void release() {
    if (id < 0) return;
    --live;
    std::lock_guard g(m);
    ++destroyed[id];
    id = -1;
  }
};

}  // namespace test_support
