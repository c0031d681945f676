// breaker: three callers hit a flaky downstream through a circuit breaker.
// The downstream is healthy, then fails every request between 0.5 s and
// 1.5 s, then recovers. The breaker opens after 5 failures in a row, lets one
// trial call through every 200 ms while open, and closes after 2 successful
// trials. It prints every state transition and, at the end, how many calls
// were rejected instead of reaching the overwhelmed downstream.
#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ringflow/ringflow.hpp>
#include <ringflow/circuit_breaker.hpp>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

const clock_type::time_point start = clock_type::now();
constexpr auto outage_begin = 500ms;
constexpr auto outage_end = 1500ms;
constexpr auto run_for = 2500ms;

long ms_since_start() {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start).count());
}

struct downstream_stats {
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> hits_during_outage{0};
};
downstream_stats downstream;

ringflow::task<int> flaky_downstream(int request) {
  auto t = clock_type::now() - start;
  bool down = t >= outage_begin && t < outage_end;
  downstream.hits.fetch_add(1, std::memory_order_relaxed);
  if (down) downstream.hits_during_outage.fetch_add(1, std::memory_order_relaxed);
  co_await ringflow::sleep_for(down ? 20ms : 2ms);  // an overloaded service is also slow
  if (down) throw std::runtime_error("503 service unavailable");
  co_return request * 2;
}

struct caller_stats {
  std::uint64_t ok = 0, failed = 0, rejected = 0;
};

ringflow::task<void> caller(ringflow::circuit_breaker* breaker, int id, caller_stats* st) {
  for (int i = 0; clock_type::now() - start < run_for; ++i) {
    try {
      int v = co_await breaker->call(flaky_downstream(id * 10000 + i));
      (void)v;
      ++st->ok;
    } catch (const ringflow::circuit_open&) {
      ++st->rejected;  // failed fast: the downstream never saw this one
    } catch (const std::runtime_error&) {
      ++st->failed;
    }
    co_await ringflow::sleep_for(10ms);
  }
}

ringflow::task<void> run(ringflow::circuit_breaker* breaker) {
  fmt::print("[{:5} ms] start; the downstream fails from {} ms to {} ms\n", ms_since_start(), outage_begin.count(),
             outage_end.count());
  std::vector<caller_stats> st(3);
  std::vector<ringflow::join_handle<void>> hs;
  for (int i = 0; i < 3; ++i) hs.push_back(ringflow::spawn(caller(breaker, i, &st[static_cast<std::size_t>(i)])));
  for (auto& h : hs) co_await std::move(h);

  caller_stats sum;
  for (auto& s : st) {
    sum.ok += s.ok;
    sum.failed += s.failed;
    sum.rejected += s.rejected;
  }
  auto b = breaker->stats();
  fmt::print("\ncalls: {} succeeded, {} failed, {} rejected by the breaker (never sent)\n", sum.ok, sum.failed,
             sum.rejected);
  fmt::print("the downstream saw {} requests during its {} ms outage; without the breaker it would have seen about {}\n",
             downstream.hits_during_outage.load(), (outage_end - outage_begin).count(),
             downstream.hits_during_outage.load() + sum.rejected);
  fmt::print("transitions: opened {}, half-opened {}, closed {}; final state {}\n", b.opened, b.half_opened, b.closed,
             ringflow::to_string(breaker->state()));
}

}  // namespace

int main() {
  ringflow::runtime rt({.threads = 2});
  ringflow::circuit_breaker breaker({
      .failure_threshold = 5,
      .cool_down = 200ms,
      .half_open_max_calls = 1,
      .success_threshold = 2,
      .on_state_change =
          [](ringflow::breaker_state from, ringflow::breaker_state to) {
            fmt::print("[{:5} ms] breaker {} -> {}\n", ms_since_start(), ringflow::to_string(from),
                       ringflow::to_string(to));
          },
  });
  rt.block_on(run(&breaker));
  return 0;
}
