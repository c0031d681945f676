// The per-thread cache task frames and join states come from
// (detail/block_cache.hpp).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <ringflow/detail/block_cache.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/task_group.hpp>
#include <ringflow/yield.hpp>

namespace bc = ringflow::detail::block_cache;
using ringflow::task;

TEST_CASE("block_cache: a block given back is handed out again on the same thread, for any size of its class", "[block_cache]") {
  if (!RINGFLOW_BLOCK_CACHE) return;  // AddressSanitizer builds pass straight through
  void* a = bc::take(100);
  std::memset(a, 0xab, 100);
  bc::give_back(a, 100);
  // 65..128 bytes share a class.
  void* b = bc::take(128);
  CHECK(b == a);
  std::memset(b, 0xcd, 128);  // the whole class size is usable
  bc::give_back(b, 128);
  void* c = bc::take(65);
  CHECK(c == a);
  bc::give_back(c, 65);
}

TEST_CASE("block_cache: sizes beyond 1 KiB and zero pass through", "[block_cache]") {
  void* big = bc::take(4096);
  std::memset(big, 1, 4096);
  bc::give_back(big, 4096);
  void* also = bc::take(1025);
  bc::give_back(also, 1025);
  void* none = bc::take(0);
  CHECK(none != nullptr);
  bc::give_back(none, 0);
}

TEST_CASE("block_cache: a class keeps at most its share; the rest goes back to the heap", "[block_cache]") {
  if (!RINGFLOW_BLOCK_CACHE) return;
  const std::size_t share = bc::share_bytes / 1024;  // blocks of the 1 KiB class
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < 3 * share; ++i) blocks.push_back(bc::take(1000));
  const std::uint32_t before = bc::tls_cache.count[15];
  for (void* p : blocks) bc::give_back(p, 1000);
  CHECK(bc::tls_cache.count[15] == share);
  CHECK(before <= share);
  for (auto& p : blocks) p = bc::take(1000);  // the cached ones, then fresh ones
  CHECK(bc::tls_cache.count[15] == 0);
  for (void* p : blocks) bc::give_back(p, 1000);
}

namespace {
// Gives a block back while its thread ends, after the cache was freed.
std::atomic<int> late_outcome{0};  // 1: it found the cache freed and the block passed through
struct late_giver {
  void* p = nullptr;
  ~late_giver() {
    if (!p) return;
    const bool reaped = bc::tls_cache.reaped;
    bc::give_back(p, 200);
    late_outcome = reaped && bc::tls_cache.count[3] == 0 ? 1 : 2;
  }
};
thread_local late_giver tls_late;
}  // namespace

TEST_CASE("block_cache: a thread's blocks are freed at its end, and blocks given back later pass through", "[block_cache]") {
  if (!RINGFLOW_BLOCK_CACHE) return;
  std::uint32_t cached = 0;
  std::thread t([&] {
    tls_late.p = bc::take(200);  // constructed before the reaper: destroyed after it
    for (int i = 0; i < 100; ++i) bc::give_back(bc::take(300), 300);
    cached = bc::tls_cache.count[4];
  });
  t.join();
  CHECK(cached == 1);
  CHECK(late_outcome.load() == 1);
}

TEST_CASE("block_cache: frames freed on another worker than they were made on", "[block_cache]") {
  // Tasks spawned on worker 0 and finished (their frames freed) on either
  // worker, many times over: every frame is used and freed exactly once
  // (TSan and the value checks see a block handed to two tasks at once).
  ringflow::runtime rt({.threads = 2});
  std::uint64_t total = rt.block_on([]() -> task<std::uint64_t> {
    ringflow::task_group<std::uint64_t> g(64);
    std::uint64_t sum = 0;
    for (std::uint64_t i = 0; i < 20000; ++i) {
      task<std::uint64_t> t = [](std::uint64_t v) -> task<std::uint64_t> {
        std::uint64_t local[8];
        for (auto& x : local) x = v;
        co_await ringflow::yield();
        std::uint64_t s = 0;
        for (auto x : local) s += x;
        co_return s / 8;
      }(i);
      co_await g.spawn(std::move(t));
      while (auto v = g.try_next()) sum += *v;
    }
    while (auto v = co_await g.next()) sum += *v;
    co_return sum;
  }());
  CHECK(total == 20000ull * 19999 / 2);
}
