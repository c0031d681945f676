// Arguments at the edges of their types: durations of nanoseconds::max(),
// nanoseconds::min(), negative, zero and huge for sleep_for, timeout, select's
// after() and batch(); capacities of SIZE_MAX and just past the documented
// maximum for channel and what builds on it. Nothing may overflow (UBSan),
// "max" means "effectively forever" (and can still be cancelled, its frame
// freed), and an impossible capacity is refused with std::invalid_argument
// before anything is allocated.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <ringflow/ringflow.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "../support/counters.hpp"
#include "../support/run.hpp"
#include "../support/streams.hpp"
#include "../support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringflow::channel;
using ringflow::overflow;
using ringflow::task;
using test_support::lifetime_probe;
using test_support::run;

namespace {

constexpr auto forever = std::chrono::nanoseconds::max();
constexpr auto lowest = std::chrono::nanoseconds::min();

// ASan and TSan refuse (and report) allocations beyond their own maximum
// instead of throwing std::bad_alloc, so the "representable but too big for
// memory" checks run only without them.
[[maybe_unused]] constexpr bool under_asan = test_support::sanitized;

task<void> sleep_with_probe(std::chrono::nanoseconds d) {
  lifetime_probe p;
  co_await ringflow::sleep_for(d);
}

task<int> sleep_then(std::chrono::nanoseconds d, int v) {
  co_await ringflow::sleep_for(d);
  co_return v;
}

task<int> at_once(int v) { co_return v; }

task<int> suspend_forever_with_probe() {
  lifetime_probe p;
  co_await ringflow::sleep_for(forever);
  co_return -1;
}

task<void> mark(bool* flag) {
  *flag = true;
  co_return;
}

}  // namespace

TEST_CASE("to_timespec: every duration maps to a valid timespec, negative ones to zero", "[runtime][sleep]") {
  auto check = [](std::chrono::nanoseconds d, long long sec, long long nsec) {
    __kernel_timespec ts = ringflow::detail::to_timespec(d);
    INFO("d = " << d.count() << " ns");
    REQUIRE(ts.tv_sec == sec);
    REQUIRE(ts.tv_nsec == nsec);
  };
  check(0ns, 0, 0);
  check(1ns, 0, 1);
  check(999'999'999ns, 0, 999'999'999);
  check(1s + 1ns, 1, 1);
  check(std::chrono::hours(24 * 365 * 200), 24LL * 365 * 200 * 3600, 0);
  check(forever, 9'223'372'036, 854'775'807);  // the kernel saturates this to KTIME_MAX
  check(-1ns, 0, 0);
  check(-1s - 1ns, 0, 0);
  check(lowest, 0, 0);
  check(lowest + 1ns, 0, 0);
}

TEST_CASE("sleep_for(nanoseconds::max()) sleeps until cancelled; the frame is freed", "[runtime][sleep]") {
  lifetime_probe::reset();
  run([]() -> task<void> {
    bool finished = co_await ringflow::timeout(5ms, sleep_with_probe(forever));
    REQUIRE_FALSE(finished);
    REQUIRE(lifetime_probe::alive == 0);
    bool huge = co_await ringflow::timeout(5ms, sleep_with_probe(std::chrono::hours(24 * 365 * 200)));
    REQUIRE_FALSE(huge);
    REQUIRE(lifetime_probe::alive == 0);
  });
  REQUIRE(lifetime_probe::destroyed == 2);

  // A task asleep for good when its runtime is destroyed is freed with it.
  lifetime_probe::reset();
  {
    ringflow::runtime rt({.threads = 1});
    rt.block_on([]() -> task<void> {
      ringflow::spawn(sleep_with_probe(forever)).detach();
      co_await ringflow::yield();
      REQUIRE(lifetime_probe::alive == 1);
    }());
  }
  REQUIRE(lifetime_probe::alive == 0);
}

TEST_CASE("sleep_for of zero, negative and nanoseconds::min() behaves as yield", "[runtime][sleep]") {
  run([]() -> task<void> {
    for (auto d : {0ns, -1ns, -std::chrono::nanoseconds(std::chrono::hours(1)), lowest}) {
      bool ran = false;
      auto other = ringflow::spawn_local(mark(&ran));
      co_await ringflow::sleep_for(d);
      REQUIRE(ran);  // the other ready task got its turn, as with yield()
      co_await std::move(other);
    }
  });
}

TEST_CASE("timeout(nanoseconds::max(), t) lets t finish and returns its value", "[runtime][timeout]") {
  lifetime_probe::reset();
  run([]() -> task<void> {
    std::optional<int> v = co_await ringflow::timeout(forever, sleep_then(1ms, 7));
    REQUIRE(v == 7);
    std::optional<int> now = co_await ringflow::timeout(forever, at_once(8));
    REQUIRE(now == 8);
    bool done = co_await ringflow::timeout(forever, ringflow::sleep_for(1ms));
    REQUIRE(done);
    bool threw = false;
    try {
      co_await ringflow::timeout(forever, []() -> task<int> {
        throw std::length_error("x");
        co_return 0;
      }());
    } catch (const std::length_error&) {
      threw = true;
    }
    REQUIRE(threw);
    // Forever inside, finite outside: the outer one cancels both.
    auto inner = []() -> task<std::optional<int>> { co_return co_await ringflow::timeout(forever, suspend_forever_with_probe()); };
    std::optional<std::optional<int>> r = co_await ringflow::timeout(5ms, inner());
    REQUIRE_FALSE(r.has_value());
    REQUIRE(lifetime_probe::alive == 0);
  });
}

TEST_CASE("timeout with zero, negative or nanoseconds::min(): t runs up to its first suspension",
          "[runtime][timeout]") {
  lifetime_probe::reset();
  run([]() -> task<void> {
    for (auto d : {0ns, -1ns, -std::chrono::nanoseconds(std::chrono::hours(1)), lowest}) {
      INFO("d = " << d.count() << " ns");
      std::optional<int> sync = co_await ringflow::timeout(d, at_once(3));
      REQUIRE(sync == 3);  // finished before it could be cancelled
      std::optional<int> cut = co_await ringflow::timeout(d, suspend_forever_with_probe());
      REQUIRE_FALSE(cut.has_value());
      REQUIRE(lifetime_probe::alive == 0);
    }
  });
  REQUIRE(lifetime_probe::destroyed == 4);
}

TEST_CASE("select: after(nanoseconds::max()) never fires, after(min) is ready at once", "[runtime][select]") {
  run([]() -> task<void> {
    channel<int> ch(1);
    auto feeder = ringflow::spawn_local([](channel<int>* c) -> task<void> {
      co_await ringflow::yield();
      co_await c->send(5);
    }(&ch));
    auto r = co_await ringflow::select(ringflow::recv_from(ch), ringflow::after(forever));
    REQUIRE(r.index() == 0);
    REQUIRE(std::get<0>(r) == 5);
    co_await std::move(feeder);
    auto z = co_await ringflow::select(ringflow::recv_from(ch), ringflow::after(lowest));
    REQUIRE(z.index() == 1);
    // Cancelled from outside while waiting on after(max): withdrawn cleanly.
    auto waiting = [](channel<int>* c) -> task<int> {
      auto s = co_await ringflow::select(ringflow::recv_from(*c), ringflow::after(forever));
      co_return static_cast<int>(s.index());
    };
    std::optional<int> w = co_await ringflow::timeout(5ms, waiting(&ch));
    REQUIRE_FALSE(w.has_value());
    REQUIRE(ch.try_send(6) == ringflow::send_status::sent);
    REQUIRE(ch.try_recv() == 6);  // nothing was taken by the cancelled select
  });
}

TEST_CASE("batch(n, nanoseconds::max()) waits for full batches; zero and negative ship what came",
          "[runtime][streams]") {
  auto collect = [](ringflow::publisher<std::vector<int>> p) {
    ringflow::runtime rt({.threads = 1});
    return rt.block_on([](ringflow::publisher<std::vector<int>> pub) -> task<std::vector<std::vector<int>>> {
      auto sub = pub.subscribe();
      std::vector<std::vector<int>> all;
      for (;;) {
        auto b = co_await sub.request(16);
        if (b.empty()) break;
        for (auto& v : b) all.push_back(std::move(v));
      }
      co_return all;
    }(std::move(p)));
  };
  auto got = collect(test_support::range(7) | ringflow::batch(3, forever));
  REQUIRE(got == std::vector<std::vector<int>>{{0, 1, 2}, {3, 4, 5}, {6}});
  for (auto d : {0ns, -1ns, lowest}) {
    auto cut = collect(test_support::range(7) | ringflow::batch(3, d));
    std::vector<int> flat;
    for (auto& b : cut) {
      REQUIRE((!b.empty() && b.size() <= 3));
      flat.insert(flat.end(), b.begin(), b.end());
    }
    REQUIRE(flat == std::vector<int>{0, 1, 2, 3, 4, 5, 6});  // nothing lost, in order
  }
}

TEST_CASE("channel: a capacity above max_capacity is refused before allocating", "[runtime][channels][channel]") {
  using big = std::array<char, 1024>;
  STATIC_REQUIRE(channel<int>::max_capacity == std::size_t(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(int));
  STATIC_REQUIRE(channel<big>::max_capacity == std::size_t(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(big));
  for (auto policy : {overflow::block, overflow::drop_incoming, overflow::drop_oldest, overflow::sample}) {
    REQUIRE_THROWS_AS(channel<int>(SIZE_MAX, policy), std::invalid_argument);
    REQUIRE_THROWS_AS(channel<int>(channel<int>::max_capacity + 1, policy), std::invalid_argument);
    REQUIRE_THROWS_AS(channel<big>(channel<big>::max_capacity + 1, policy), std::invalid_argument);
  }
  REQUIRE_THROWS_WITH(channel<int>(SIZE_MAX), Catch::Contains(std::to_string(channel<int>::max_capacity)));
  // Capacities that can be represented are accepted; one too big for memory
  // fails as any allocation would.
  if (!under_asan) {
    REQUIRE_THROWS_AS(channel<int>(channel<int>::max_capacity), std::bad_alloc);
    REQUIRE_THROWS_AS(channel<big>(channel<big>::max_capacity), std::bad_alloc);
  }
  channel<int> rendezvous(0);
  REQUIRE(rendezvous.capacity() == 0);
  channel<int> one(1, overflow::sample);
  REQUIRE(one.capacity() == 1);
  // Built on channel: a processor's prefetch, on_backpressure_buffer's capacity.
  REQUIRE_THROWS_AS((ringflow::processor<int, int>([](int v) { return v; }, SIZE_MAX)), std::invalid_argument);
  REQUIRE_THROWS_AS(test_support::range(3) | ringflow::on_backpressure_buffer(SIZE_MAX), std::invalid_argument);
  REQUIRE_THROWS_AS(test_support::range(3) | ringflow::on_backpressure_buffer(channel<int>::max_capacity + 1),
                    std::invalid_argument);
}

TEST_CASE("channel: recv_many(SIZE_MAX) takes what is there", "[runtime][channels][channel]") {
  run([]() -> task<void> {
    channel<int> ch(4);
    for (int i = 0; i < 3; ++i) REQUIRE(ch.try_send(i) == ringflow::send_status::sent);
    std::vector<int> got = co_await ch.recv_many(SIZE_MAX);
    REQUIRE(got == std::vector<int>{0, 1, 2});
  });
}
