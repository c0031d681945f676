#include <catch2/catch.hpp>

#include <ringflow/ringflow.hpp>
#include <vector>

#include "../support/streams.hpp"

using ringflow::emitter;
using ringflow::publisher;
using ringflow::task;
using test_support::range;

namespace {

template <class T>
task<std::vector<T>> collect(publisher<T> p, std::uint64_t n) {
  auto sub = p.subscribe();
  std::vector<T> all;
  for (;;) {
    auto batch = co_await sub.request(n);
    if (batch.empty()) break;
    all.insert(all.end(), batch.begin(), batch.end());
  }
  co_return all;
}

template <class T>
std::vector<T> run_collect(publisher<T> p, std::uint64_t n = 5) {
  ringflow::runtime rt;
  return rt.block_on(collect(std::move(p), n));
}

}  // namespace

TEST_CASE("operators: map and filter give the exact sequence", "[streams]") {
  auto p = range(10) | ringflow::filter([](int v) { return v % 2 == 0; }) | ringflow::map([](int v) { return v * 10; });
  REQUIRE(run_collect(p) == std::vector<int>{0, 20, 40, 60, 80});
}

TEST_CASE("operators: take(n) stops after n and cancels the upstream", "[streams]") {
  int produced = 0;
  auto counted = publisher<int>::create([&produced](emitter<int>& out) -> task<void> {
    for (int i = 0;; ++i) {
      bool ok = co_await out.emit(i);
      if (!ok) co_return;
      ++produced;
    }
  });
  REQUIRE(run_collect(counted | ringflow::take(7), 3) == std::vector<int>{0, 1, 2, 3, 4, 5, 6});
  REQUIRE(produced <= 8);  // the endless source was cancelled, not drained
}

TEST_CASE("operators: limit_rate(8) on 100 values requests 8, then 6 each time 6 were consumed", "[streams]") {
  std::vector<std::uint64_t> requests;
  auto p = range(100) | ringflow::on_request([&requests](std::uint64_t n) { requests.push_back(n); }) |
           ringflow::limit_rate(8);
  auto got = run_collect(p, 1);
  REQUIRE(got.size() == 100);
  for (int i = 0; i < 100; ++i) REQUIRE(got[i] == i);
  CAPTURE(requests);
  REQUIRE(requests.size() >= 2);
  REQUIRE(requests.front() == 8);
  for (std::size_t i = 1; i < requests.size(); ++i) REQUIRE(requests[i] == 6);
  REQUIRE_THROWS_AS(ringflow::limit_rate(0), std::invalid_argument);
  REQUIRE_THROWS_AS(ringflow::limit_rate(4, 5), std::invalid_argument);
}
