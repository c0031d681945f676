// rate_limited_client: four clients on two workers share one token bucket
// (200 requests/s, bursts of 20) in front of a fake service that could take
// far more. Every 500 ms it prints the rate the service actually saw; at the
// end, what each client got. A fifth, opportunistic client only uses
// try_acquire(): it never jumps the queue, so it gets a token only when
// nobody is waiting.
#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ringflow/ringflow.hpp>
#include <ringflow/rate_limiter.hpp>
#include <vector>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr double rate = 200.0;
constexpr std::uint64_t burst = 20;
constexpr auto run_for = 2500ms;

std::atomic<std::uint64_t> served{0};  // requests the service handled

// The downstream: 2 ms per request, no limit of its own.
ringflow::task<void> fake_request() {
  co_await ringflow::sleep_for(2ms);
  served.fetch_add(1, std::memory_order_relaxed);
}

ringflow::task<void> client(ringflow::rate_limiter* limiter, clock_type::time_point until, std::uint64_t* sent) {
  while (clock_type::now() < until) {
    co_await limiter->acquire();
    co_await fake_request();
    ++*sent;
  }
}

ringflow::task<void> opportunist(ringflow::rate_limiter* limiter, clock_type::time_point until, std::uint64_t* sent,
                                 std::uint64_t* skipped) {
  while (clock_type::now() < until) {
    if (limiter->try_acquire()) {
      co_await fake_request();
      ++*sent;
    } else {
      ++*skipped;
      co_await ringflow::sleep_for(1ms);
    }
  }
}

ringflow::task<void> reporter(clock_type::time_point start, clock_type::time_point until) {
  std::uint64_t last = 0;
  auto t = start;
  while (t + 500ms <= until) {
    co_await ringflow::sleep_for(t + 500ms - clock_type::now());
    t += 500ms;
    std::uint64_t now_served = served.load(std::memory_order_relaxed);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - start).count();
    fmt::print("[{:5} ms] {:4} requests in the last 500 ms = {:6.1f}/s\n", ms, now_served - last,
               static_cast<double>(now_served - last) * 2.0);
    last = now_served;
  }
}

ringflow::task<void> run(ringflow::rate_limiter* limiter) {
  auto start = clock_type::now();
  auto until = start + run_for;
  std::vector<std::uint64_t> sent(4, 0);
  std::uint64_t opp_sent = 0, opp_skipped = 0;
  std::vector<ringflow::join_handle<void>> hs;
  for (auto& s : sent) hs.push_back(ringflow::spawn(client(limiter, until, &s)));
  hs.push_back(ringflow::spawn(opportunist(limiter, until, &opp_sent, &opp_skipped)));
  hs.push_back(ringflow::spawn(reporter(start, until)));
  for (auto& h : hs) co_await std::move(h);

  double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  std::uint64_t total = served.load();
  auto st = limiter->stats();
  fmt::print("\n{} requests in {:.2f} s = {:.1f}/s (limit {:.0f}/s plus a burst of {})\n", total, elapsed,
             static_cast<double>(total) / elapsed, rate, burst);
  for (std::size_t i = 0; i < sent.size(); ++i) fmt::print("  client {}: {} requests\n", i, sent[i]);
  fmt::print("  opportunist (try_acquire only): {} requests, {} times found the bucket empty or a queue\n", opp_sent,
             opp_skipped);
  fmt::print("  acquires that had to wait: {}, tokens handed out: {}\n", st.waits, st.acquired);
}

}  // namespace

int main() {
  ringflow::runtime rt({.threads = 2});
  ringflow::rate_limiter limiter(rate, burst);
  rt.block_on(run(&limiter));
  return 0;
}
