// bench/channel_bench: ringflow channels beside a mutex+condvar queue.
// Prints one JSON document; Go and Tokio figures come from bench/channel.sh,
// which runs this and the peers in one invocation.
#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <ringflow/ringflow.hpp>
#include <string>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"

// Counts every heap allocation, to show the steady state allocates nothing.
using bench_support::g_allocs;

namespace {

using clock_type = std::chrono::steady_clock;
using ringflow::channel;
using ringflow::task;

double ns_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---- ringflow -------------------------------------------------------------------

task<void> produce(channel<std::uint64_t>* ch, std::uint64_t from, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) co_await ch->send(from + i);
}

task<std::uint64_t> consume(channel<std::uint64_t>* ch) {
  std::uint64_t sum = 0;
  while (auto v = co_await ch->recv()) sum += *v;
  co_return sum;
}

struct run_result {
  double ns_per_item;
  std::uint64_t allocs;
};

// Where the tasks of a scenario go.
enum class placement {
  apart,      // pinned (spawn_on): task i on worker i % workers, never moved
  together,   // pinned, every task on the last worker
  spawned,    // spawn(): round-robin, and the runtime moves a woken task to
              // its waker's worker, as Go's runnext and Tokio's LIFO slot do
};

// senders -> receivers over one channel.
run_result ringflow_mpmc(unsigned workers, std::size_t cap, std::uint64_t items, unsigned senders, unsigned receivers,
                         placement where = placement::apart) {
  ringflow::runtime rt({.threads = workers});
  channel<std::uint64_t> ch(cap);
  std::uint64_t per = items / senders;
  std::uint64_t allocs0 = 0, allocs1 = 0;
  auto t0 = clock_type::now();
  std::uint64_t sum = rt.block_on([](ringflow::runtime* rt, channel<std::uint64_t>* ch, unsigned workers,
                                     unsigned senders, unsigned receivers, std::uint64_t per, std::uint64_t* a0,
                                     std::uint64_t* a1, placement where) -> task<std::uint64_t> {
    std::vector<ringflow::join_handle<std::uint64_t>> rs;
    std::vector<ringflow::join_handle<void>> ps;
    rs.reserve(receivers);
    ps.reserve(senders);
    const bool together = where == placement::together;
    for (unsigned r = 0; r < receivers; ++r) {
      rs.push_back(where == placement::spawned ? rt->spawn(consume(ch))
                                               : rt->spawn_on(together ? workers - 1 : (r + 1) % workers, consume(ch)));
    }
    *a0 = g_allocs.load();
    for (unsigned s = 0; s < senders; ++s) {
      ps.push_back(where == placement::spawned ? rt->spawn(produce(ch, s * per, per))
                                               : rt->spawn_on(together ? workers - 1 : s % workers, produce(ch, s * per, per)));
    }
    for (auto& p : ps) co_await std::move(p);
    *a1 = g_allocs.load();
    ch->close();
    std::uint64_t total = 0;
    for (auto& r : rs) total += co_await std::move(r);
    co_return total;
  }(&rt, &ch, workers, senders, receivers, per, &allocs0, &allocs1, where));
  double ns = ns_since(t0);
  std::uint64_t n = per * senders;
  if (sum != n * (n - 1) / 2) {
    fmt::print(stderr, "channel_bench: checksum mismatch\n");
    std::exit(1);
  }
  // Steady-state allocations: what the producers' run cost beyond task set-up.
  std::uint64_t setup = senders * 3;  // frame, root frame, join state per spawned producer
  return {ns / double(n), allocs1 - allocs0 > setup ? allocs1 - allocs0 - setup : 0};
}

task<void> pong(channel<std::uint64_t>* in, channel<std::uint64_t>* out) {
  while (auto v = co_await in->recv()) co_await out->send(*v + 1);
  out->close();
}

task<std::uint64_t> ping(channel<std::uint64_t>* out, channel<std::uint64_t>* in, std::uint64_t rounds,
                         std::uint64_t* allocs) {
  std::uint64_t a0 = g_allocs.load();
  std::uint64_t v = 0;
  for (std::uint64_t i = 0; i < rounds; ++i) {
    co_await out->send(v);
    auto r = co_await in->recv();
    v = *r;
  }
  *allocs = g_allocs.load() - a0;
  out->close();
  co_return v;
}

// apart: ping on worker 0, pong on worker 1; together: both on worker 0.
run_result ringflow_pingpong(unsigned workers, std::uint64_t rounds, placement where = placement::apart) {
  ringflow::runtime rt({.threads = workers});
  channel<std::uint64_t> a(1), b(1);
  std::uint64_t allocs = 0;
  auto t0 = clock_type::now();
  std::uint64_t v = rt.block_on([](ringflow::runtime* rt, channel<std::uint64_t>* a, channel<std::uint64_t>* b,
                                   unsigned workers, std::uint64_t rounds, std::uint64_t* allocs,
                                   placement where) -> task<std::uint64_t> {
    auto start = [&](unsigned index, auto t) {
      if (where == placement::spawned) return rt->spawn(std::move(t));
      return rt->spawn_on(where == placement::together ? 0 : index % workers, std::move(t));
    };
    auto p = start(1, pong(a, b));
    std::uint64_t v = co_await start(0, ping(a, b, rounds, allocs));
    co_await std::move(p);
    co_return v;
  }(&rt, &a, &b, workers, rounds, &allocs, where));
  if (v != rounds) std::exit(1);
  return {ns_since(t0) / double(rounds), allocs};
}

// ---- baseline: std::mutex + std::condition_variable bounded queue ---------------

class locked_queue {
 public:
  explicit locked_queue(std::size_t cap) : cap_(cap) {}
  void push(std::uint64_t v) {
    std::unique_lock g(m_);
    not_full_.wait(g, [&] { return q_.size() < cap_; });
    q_.push_back(v);
    not_empty_.notify_one();
  }
  std::uint64_t pop() {
    std::unique_lock g(m_);
    not_empty_.wait(g, [&] { return !q_.empty(); });
    std::uint64_t v = q_.front();
    q_.pop_front();
    not_full_.notify_one();
    return v;
  }

 private:
  std::size_t cap_;
  std::mutex m_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::uint64_t> q_;
};

double mutex_spsc(std::size_t cap, std::uint64_t items) {
  locked_queue q(cap);
  auto t0 = clock_type::now();
  std::thread producer([&] {
    for (std::uint64_t i = 0; i < items; ++i) q.push(i);
  });
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < items; ++i) sum += q.pop();
  producer.join();
  if (sum != items * (items - 1) / 2) std::exit(1);
  return ns_since(t0) / double(items);
}

double mutex_pingpong(std::uint64_t rounds) {
  locked_queue a(1), b(1);
  auto t0 = clock_type::now();
  std::thread other([&] {
    for (std::uint64_t i = 0; i < rounds; ++i) b.push(a.pop() + 1);
  });
  std::uint64_t v = 0;
  for (std::uint64_t i = 0; i < rounds; ++i) {
    a.push(v);
    v = b.pop();
  }
  other.join();
  return ns_since(t0) / double(rounds);
}

struct options {
  std::uint64_t items = 10'000'000;
  int reps = 3;
  std::string only;  // run only the rows whose label ("ringflow spsc w=1 cap=1024") contains this
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::uint64_t {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return std::stoull(argv[++i]);
    };
    if (a == "--items") {
      o.items = value();
    } else if (a == "--reps") {
      o.reps = static_cast<int>(value());
    } else if (a == "--only") {
      if (i + 1 >= argc) throw std::invalid_argument("--only needs a value");
      o.only = argv[++i];
    } else if (a == "--quick") {
      o.items = 200'000;
      o.reps = 1;
    } else if (a == "--help" || a == "-h") {
      fmt::print(
          "usage: channel_bench [--items N] [--reps R] [--quick] [--only LABEL-PART]\n"
          "  ringflow channels (1 and 2 workers, capacities 1/64/1024, 4->4, ping-pong)\n"
          "  beside a std::mutex+condition_variable queue; prints JSON; medians of R runs\n");
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown flag " + a);
    }
  }
  if (o.items < 8 || o.reps < 1) throw std::invalid_argument("--items must be >= 8 and --reps >= 1");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "channel_bench: {} (see --help)\n", e.what());
    return 2;
  }
  std::vector<std::string> rows;
  auto emit = [&](std::string_view impl, std::string_view scenario, unsigned workers, std::size_t cap,
                  std::vector<double> runs, std::string_view unit, std::int64_t allocs) {
    std::string rs;
    for (double r : runs) rs += fmt::format("{}{:.2f}", rs.empty() ? "" : ",", r);
    rows.push_back(fmt::format(
        R"({{"impl":"{}","scenario":"{}","workers":{},"capacity":{},"{}":{:.2f},"runs":[{}]{}}})", impl, scenario,
        workers, cap, unit, median(runs), rs, allocs >= 0 ? fmt::format(R"(,"steady_allocs":{})", allocs) : ""));
    fmt::print(stderr, "  {:<9} {:<9} w={} cap={:<5} {:>9.2f} {}\n", impl, scenario, workers, cap, median(runs), unit);
  };

  // o.reps runs of one ringflow scenario: the median of their times, and the
  // largest steady-state allocation count any of them saw.
  auto wanted = [&](std::string_view impl, std::string_view scenario, unsigned workers, std::size_t cap) {
    return o.only.empty() ||
           fmt::format("{} {} w={} cap={}", impl, scenario, workers, cap).find(o.only) != std::string::npos;
  };
  auto ringflow_row = [&](std::string_view scenario, unsigned workers, std::size_t cap, std::string_view unit,
                          auto run) {
    if (!wanted("ringflow", scenario, workers, cap)) return;
    run();  // warm-up, not measured (as in the Go and Tokio peers): first runs were often the slowest
    std::vector<double> runs;
    std::uint64_t allocs = 0;
    for (int r = 0; r < o.reps; ++r) {
      run_result res = run();
      runs.push_back(res.ns_per_item);
      allocs = std::max(allocs, res.allocs);
    }
    emit("ringflow", scenario, workers, cap, runs, unit, std::int64_t(allocs));
  };
  const std::uint64_t rounds = std::max<std::uint64_t>(o.items / 10, 10000);
  for (unsigned workers : {1u, 2u}) {
    for (std::size_t cap : {std::size_t{1}, std::size_t{64}, std::size_t{1024}}) {
      ringflow_row("spsc", workers, cap, "ns_per_item", [&] { return ringflow_mpmc(workers, cap, o.items, 1, 1); });
    }
  }
  ringflow_row("mpmc", 2, 1024, "ns_per_item", [&] { return ringflow_mpmc(2, 1024, o.items, 4, 4); });
  for (unsigned workers : {1u, 2u}) {
    ringflow_row("pingpong", workers, 1, "ns_per_roundtrip", [&] { return ringflow_pingpong(workers, rounds); });
  }
  // Two workers, both tasks pinned to one of them: the placement Go and Tokio
  // reach on their own when a send wakes a receiver (see README, "Two workers").
  for (std::size_t cap : {std::size_t{1}, std::size_t{64}, std::size_t{1024}}) {
    ringflow_row("spsc_colocated", 2, cap, "ns_per_item",
                 [&] { return ringflow_mpmc(2, cap, o.items, 1, 1, placement::together); });
  }
  ringflow_row("pingpong_colocated", 2, 1, "ns_per_roundtrip",
               [&] { return ringflow_pingpong(2, rounds, placement::together); });
  // Two workers, tasks started with spawn() and placed by the runtime, as Go's
  // goroutines and Tokio's tasks are: the like-for-like rows for their figures.
  for (std::size_t cap : {std::size_t{1}, std::size_t{64}, std::size_t{1024}}) {
    ringflow_row("spsc_spawned", 2, cap, "ns_per_item",
                 [&] { return ringflow_mpmc(2, cap, o.items, 1, 1, placement::spawned); });
  }
  ringflow_row("mpmc_spawned", 2, 1024, "ns_per_item",
               [&] { return ringflow_mpmc(2, 1024, o.items, 4, 4, placement::spawned); });
  ringflow_row("pingpong_spawned", 2, 1, "ns_per_roundtrip",
               [&] { return ringflow_pingpong(2, rounds, placement::spawned); });
  std::uint64_t mutex_items = std::min<std::uint64_t>(o.items, 2'000'000);  // cap 1 is slow
  for (std::size_t cap : {std::size_t{1}, std::size_t{64}, std::size_t{1024}}) {
    if (!wanted("mutex_condvar", "spsc", 2, cap)) continue;
    std::vector<double> runs;
    // At capacity 1 every item costs two futex wake-ups (~45 us): fewer items.
    std::uint64_t n = cap == 1 ? std::min<std::uint64_t>(mutex_items, 50'000) : mutex_items;
    mutex_spsc(cap, n);  // warm-up
    for (int r = 0; r < o.reps; ++r) runs.push_back(mutex_spsc(cap, n));
    emit("mutex_condvar", "spsc", 2, cap, runs, "ns_per_item", -1);
  }
  if (wanted("mutex_condvar", "pingpong", 2, 1)) {
    std::vector<double> runs;
    mutex_pingpong(std::min<std::uint64_t>(mutex_items / 20, 50'000));  // warm-up
    for (int r = 0; r < o.reps; ++r) runs.push_back(mutex_pingpong(std::min<std::uint64_t>(mutex_items / 20, 50'000)));
    emit("mutex_condvar", "pingpong", 2, 1, runs, "ns_per_roundtrip", -1);
  }
  fmt::print("{{\"bench\":\"channel\",\"items\":{},\"reps\":{},\"results\":[\n  {}\n]}}\n", o.items, o.reps,
             fmt::join(rows, ",\n  "));
}
