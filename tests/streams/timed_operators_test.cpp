#include <catch2/catch.hpp>

#include <chrono>
#include <ringflow/ringflow.hpp>
#include <vector>

using namespace std::chrono_literals;
using ringflow::emitter;
using ringflow::publisher;
using ringflow::task;

namespace {

// 1, 2, 3 at once; a long pause; 4, 5; completes.
publisher<int> bursts() {
  return publisher<int>::create([](emitter<int>& out) -> task<void> {
    for (int i = 1; i <= 3; ++i) co_await out.emit(i);
    co_await ringflow::sleep_for(150ms);
    co_await out.emit(4);
    co_await out.emit(5);
  });
}

template <class T>
std::vector<T> collect(publisher<T> p) {
  ringflow::runtime rt;
  return rt.block_on([](publisher<T> p) -> task<std::vector<T>> {
    auto sub = p.subscribe();
    std::vector<T> all;
    for (;;) {
      auto b = co_await sub.request(16);
      if (b.empty()) break;
      for (auto& v : b) all.push_back(std::move(v));
    }
    co_return all;
  }(std::move(p)));
}

}  // namespace

TEST_CASE("sample(period) emits the newest value of each period", "[streams]") {
  // Ticks every 40 ms: the first sees 1,2,3 (keeps 3); the ones during the
  // pause see nothing; a later one sees 4,5 (keeps 5).
  REQUIRE(collect(bursts() | ringflow::sample(40ms)) == std::vector<int>{3, 5});
  auto quick = publisher<int>::create([](emitter<int>& out) -> task<void> {
    co_await out.emit(1);
    co_await out.emit(2);
  });
  REQUIRE(collect(quick | ringflow::sample(40ms, true)) == std::vector<int>{2});
  REQUIRE(collect(quick | ringflow::sample(40ms, false)).empty());
  REQUIRE_THROWS_AS(ringflow::sample(0ms), std::invalid_argument);
}

TEST_CASE("batch(n, max_wait) ships full batches, or what came within max_wait", "[streams]") {
  auto seven = publisher<int>::create([](emitter<int>& out) -> task<void> {
    for (int i = 1; i <= 7; ++i) co_await out.emit(i);
    co_await ringflow::sleep_for(200ms);
  });
  auto got = collect(seven | ringflow::batch(3, 50ms));
  REQUIRE(got == std::vector<std::vector<int>>{{1, 2, 3}, {4, 5, 6}, {7}});
  REQUIRE_THROWS_AS(ringflow::batch(0, 1ms), std::invalid_argument);
}
