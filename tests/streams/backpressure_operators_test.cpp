#include <catch2/catch.hpp>

#include <ringflow/ringflow.hpp>
#include <stdexcept>
#include <vector>

#include "../support/run.hpp"

using ringflow::publisher;
using ringflow::subscription;
using ringflow::task;
using test_support::run;

namespace {

// Exactly k values (fewer only if the stream ends), asking for k once.
task<std::vector<int>> take_exact(subscription<int>* sub, std::uint64_t k) {
  std::vector<int> got = co_await sub->request(k);
  while (got.size() < k) {
    auto more = co_await sub->next();
    if (more.empty()) break;
    got.insert(got.end(), more.begin(), more.end());
  }
  co_return got;
}

// Lets every queued task of this worker run.
task<void> settle() {
  for (int i = 0; i < 20; ++i) co_await ringflow::yield();
}

}  // namespace

TEST_CASE("hot source: without an operator a value without demand overflows the subscription", "[streams]") {
  run([]() -> task<void> {
    ringflow::hot_source<int> src;
    auto sub = src.as_publisher().subscribe();
    auto h = ringflow::spawn(take_exact(&sub, 1));
    co_await settle();
    src.push(1);
    auto first = co_await std::move(h);
    REQUIRE(first == std::vector<int>{1});
    src.push(2);  // nobody asked
    co_await settle();
    bool overflowed = false;
    try {
      auto rest = co_await sub.request(1);
    } catch (const std::overflow_error&) {
      overflowed = true;
    }
    REQUIRE(overflowed);
  });
}

TEST_CASE("on_backpressure_drop drops exactly what arrives without demand", "[streams]") {
  run([]() -> task<void> {
    ringflow::hot_source<int> src;
    auto sub = (src.as_publisher() | ringflow::on_backpressure_drop()).subscribe();
    auto h = ringflow::spawn(take_exact(&sub, 2));
    co_await settle();
    for (int i = 1; i <= 4; ++i) src.push(i);
    auto got = co_await std::move(h);
    REQUIRE(got == std::vector<int>{1, 2});  // 3 and 4 came with no demand left
    co_await settle();
    auto h2 = ringflow::spawn(take_exact(&sub, 1));
    co_await settle();
    src.push(5);
    auto got2 = co_await std::move(h2);
    REQUIRE(got2 == std::vector<int>{5});
  });
}

TEST_CASE("on_backpressure_latest keeps exactly the newest value", "[streams]") {
  run([]() -> task<void> {
    ringflow::hot_source<int> src;
    auto sub = (src.as_publisher() | ringflow::on_backpressure_latest()).subscribe();
    auto h = ringflow::spawn(take_exact(&sub, 1));
    co_await settle();
    src.push(1);
    auto first = co_await std::move(h);
    REQUIRE(first == std::vector<int>{1});
    for (int i = 2; i <= 9; ++i) src.push(i);  // no demand: only the newest survives
    co_await settle();
    auto latest = co_await take_exact(&sub, 1);
    REQUIRE(latest == std::vector<int>{9});
  });
}

TEST_CASE("on_backpressure_buffer keeps n values and applies its policy", "[streams]") {
  run([]() -> task<void> {
    ringflow::hot_source<int> src;
    auto sub = (src.as_publisher() | ringflow::on_backpressure_buffer(3, ringflow::overflow::drop_oldest)).subscribe();
    auto h = ringflow::spawn(take_exact(&sub, 1));
    co_await settle();
    src.push(0);
    auto first = co_await std::move(h);
    REQUIRE(first == std::vector<int>{0});
    for (int i = 1; i <= 6; ++i) src.push(i);
    co_await settle();
    auto kept = co_await take_exact(&sub, 3);
    REQUIRE(kept == std::vector<int>{4, 5, 6});  // the oldest were evicted
  });
  run([]() -> task<void> {
    ringflow::hot_source<int> src;
    auto sub = (src.as_publisher() | ringflow::on_backpressure_buffer(2)).subscribe();
    auto h = ringflow::spawn(take_exact(&sub, 1));
    co_await settle();
    src.push(0);
    co_await std::move(h);
    for (int i = 1; i <= 3; ++i) src.push(i);  // the third does not fit
    co_await settle();
    std::vector<int> got;
    bool overflowed = false;
    try {
      for (;;) {
        auto b = co_await sub.request(1);
        if (b.empty()) break;
        got.insert(got.end(), b.begin(), b.end());
      }
    } catch (const std::overflow_error&) {
      overflowed = true;
    }
    REQUIRE(got == std::vector<int>{1, 2});  // the buffered values, then the error
    REQUIRE(overflowed);
  });
  REQUIRE_THROWS_AS(ringflow::on_backpressure_buffer(0), std::invalid_argument);
}
