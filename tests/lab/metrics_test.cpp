#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "metrics.hpp"

using ringflow::lab::histogram;
using ringflow::lab::run_result;
using ringflow::lab::strategy_kind;

TEST_CASE("histogram: nearest-rank percentiles of 1..100", "[lab]") {
  histogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  REQUIRE(h.count() == 100);
  REQUIRE(h.percentile(50) == 50);
  REQUIRE(h.percentile(99) == 99);
  REQUIRE(h.max() == 100);
  REQUIRE(h.min() == 1);
  REQUIRE(h.percentile(100) == 100);
  REQUIRE(h.percentile(0) == 1);
  REQUIRE(h.percentile(1) == 1);
  REQUIRE(h.percentile(99.5) == 100);  // rank ceil(99.5) = 100
  REQUIRE(h.mean() == Approx(50.5));
}

TEST_CASE("histogram: nearest rank on a small, shuffled sample with duplicates", "[lab]") {
  std::vector<std::uint64_t> v{7, 3, 3, 10, 1, 9, 3, 8, 2, 5};  // sorted: 1 2 3 3 3 5 7 8 9 10
  std::mt19937 rng(42);
  std::shuffle(v.begin(), v.end(), rng);
  histogram h;
  for (auto x : v) h.record(x);
  REQUIRE(h.percentile(10) == 1);   // rank 1
  REQUIRE(h.percentile(30) == 3);   // rank 3
  REQUIRE(h.percentile(50) == 3);   // rank 5
  REQUIRE(h.percentile(51) == 5);   // rank ceil(5.1) = 6
  REQUIRE(h.percentile(90) == 9);   // rank 9
  REQUIRE(h.percentile(99) == 10);  // rank ceil(9.9) = 10
}

TEST_CASE("histogram: empty, reset and bad arguments", "[lab]") {
  histogram h;
  REQUIRE(h.percentile(50) == 0);
  REQUIRE(h.max() == 0);
  REQUIRE(h.min() == 0);
  REQUIRE_THROWS_AS(h.percentile(-1), std::invalid_argument);
  REQUIRE_THROWS_AS(h.percentile(100.5), std::invalid_argument);
  h.record(5);
  h.reset();
  REQUIRE(h.count() == 0);
  REQUIRE(h.percentile(99) == 0);
}

TEST_CASE("histogram: large values stay within 0.1% and the max is exact", "[lab]") {
  histogram h;
  std::vector<std::uint64_t> v;
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::uint64_t> d(1, 200'000'000);  // up to 200 ms in ns
  for (int i = 0; i < 10'000; ++i) v.push_back(d(rng));
  for (auto x : v) h.record(x);
  std::sort(v.begin(), v.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const auto rank = static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(v.size()) - 1e-9));
    const std::uint64_t exact = v[rank - 1];
    const std::uint64_t got = h.percentile(p);
    REQUIRE(got >= exact);
    REQUIRE(static_cast<double>(got - exact) <= static_cast<double>(exact) / 1024.0 + 1);
  }
  REQUIRE(h.max() == v.back());
  REQUIRE(h.min() == v.front());
  // Values beyond the tracked range count in the top bucket; the max stays exact.
  h.record(std::uint64_t{1} << 50);
  REQUIRE(h.max() == std::uint64_t{1} << 50);
  REQUIRE(h.percentile(100) == std::uint64_t{1} << 50);
}

TEST_CASE("run_result: the accounting check catches a broken identity", "[lab]") {
  run_result r;
  r.strategy = strategy_kind::drop_oldest;
  r.offered = 100;
  r.delivered = 60;
  r.dropped = r.stats_dropped = r.on_drop_calls = 30;
  r.left = 10;
  r.stats_received = 60;
  r.stats_sent = 100;
  REQUIRE(r.accounting_ok());
  r.left = 9;
  REQUIRE_FALSE(r.accounting_ok());
  r.left = 10;
  r.on_drop_calls = 29;  // a drop the callback never saw
  REQUIRE_FALSE(r.accounting_ok());
  r.on_drop_calls = 30;
  r.strategy = strategy_kind::block;  // block must drop nothing
  REQUIRE_FALSE(r.accounting_ok());
  r.strategy = strategy_kind::request;
  REQUIRE_FALSE(r.accounting_ok());
  r.dropped = 0;
  r.delivered = 90;
  REQUIRE(r.accounting_ok());
}
