// bench/broadcast_bench: one sender broadcasting u64 values to 1, 16 and 256
// receiver tasks, lossless, on 1 and 2 workers; the figure is ns per value
// per receiver (elapsed / (values * receivers)). Prints one JSON document;
// bench/broadcast.sh runs this and the Tokio peer (tokio::sync::broadcast)
// in one invocation and sets them side by side.
//
// Lossless in both: here every receiver's policy is block (the sender waits
// while a receiver's buffer is full). Tokio's broadcast has no such policy
// (a sender never waits; a receiver that falls behind loses values), so its
// peer sends one buffer's worth, then meets the receivers at a barrier.
#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <ringflow/broadcast.hpp>
#include <ringflow/ringflow.hpp>
#include <string>
#include <vector>

#include "alloc_counter.hpp"

// Counts every heap allocation, to show the steady state allocates nothing.
using bench_support::g_allocs;

namespace {

using clock_type = std::chrono::steady_clock;
using ringflow::broadcast;
using ringflow::task;
using value = std::uint64_t;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

task<void> produce(broadcast<value>* b, value n, std::uint64_t* a0, std::uint64_t* a1) {
  *a0 = g_allocs.load();
  for (value i = 0; i < n; ++i) co_await b->send(i);
  *a1 = g_allocs.load();
}

task<value> consume(broadcast<value>::receiver* r) {
  value sum = 0;
  while (auto v = co_await r->recv()) sum += *v;
  co_return sum;
}

struct run_result {
  double ns_per_delivery;
  std::uint64_t allocs;
};

// spawned: every task started with spawn() (round-robin, and a woken task may
// move to its waker's worker, as Tokio's are placed); together: all pinned
// to one worker (spawn_on), the placement the runtime reaches when nothing
// spreads the tasks again.
enum class placement { spawned, together };

run_result ringflow_broadcast(unsigned workers, std::size_t receivers, std::size_t cap, value n,
                              placement where = placement::spawned) {
  ringflow::runtime rt({.threads = workers});
  broadcast<value> b(cap, ringflow::overflow::block);
  std::vector<broadcast<value>::receiver> rs;
  rs.reserve(receivers);
  std::uint64_t a0 = 0, a1 = 0;
  auto t0 = clock_type::now();
  bool ok = rt.block_on([](ringflow::runtime* rt, broadcast<value>* b, std::vector<broadcast<value>::receiver>* rs,
                           std::size_t receivers, value n, std::uint64_t* a0, std::uint64_t* a1,
                           placement where) -> task<bool> {
    // Subscribed on a worker, as the tasks using it run: an object first
    // touched by a thread outside the runtime takes its lock from the start
    // (detail/affinity.hpp).
    for (std::size_t i = 0; i < receivers; ++i) rs->push_back(b->subscribe());
    std::vector<ringflow::join_handle<value>> cs;
    cs.reserve(rs->size());
    const unsigned last = rt->threads() - 1;
    for (auto& r : *rs) {
      if (where == placement::spawned) {
        cs.push_back(rt->spawn(consume(&r)));
      } else {
        cs.push_back(rt->spawn_on(last, consume(&r)));
      }
    }
    // Started outside the co_await: a conditional temporary inside one trips g++ 12.
    ringflow::join_handle<void> p =
        where == placement::spawned ? rt->spawn(produce(b, n, a0, a1)) : rt->spawn_on(last, produce(b, n, a0, a1));
    co_await std::move(p);
    b->close();
    bool good = true;
    for (auto& c : cs) good = (co_await std::move(c)) == n * (n - 1) / 2 && good;
    co_return good;
  }(&rt, &b, &rs, receivers, n, &a0, &a1, where));
  double ns = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
  if (!ok) {
    fmt::print(stderr, "broadcast_bench: checksum mismatch\n");
    std::exit(1);
  }
  return {ns / (double(n) * double(receivers)), a1 - a0};
}

struct options {
  std::uint64_t deliveries = 8'000'000;  // values * receivers per run
  int reps = 3;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::uint64_t {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return std::stoull(argv[++i]);
    };
    if (a == "--deliveries") {
      o.deliveries = next();
    } else if (a == "--reps") {
      o.reps = static_cast<int>(next());
    } else if (a == "--quick") {
      o.deliveries = 200'000;
      o.reps = 1;
    } else {
      fmt::print(
          "usage: broadcast_bench [--deliveries N=8000000] [--reps R=3] [--quick]\n"
          "  values per run = N / receivers (at least 4096); capacity 1024; receivers 1, 16, 256; workers 1, 2\n");
      std::exit(a == "--help" ? 0 : 2);
    }
  }
  if (o.reps < 1 || o.deliveries == 0) throw std::invalid_argument("--reps and --deliveries must be positive");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "broadcast_bench: {} (see --help)\n", e.what());
    return 2;
  }
  constexpr std::size_t cap = 1024;
  std::vector<std::string> rows;
  struct scenario {
    const char* name;
    unsigned workers;
    placement where;
  };
  for (scenario sc : {scenario{"broadcast", 1, placement::spawned}, scenario{"broadcast", 2, placement::spawned},
                      scenario{"broadcast_colocated", 2, placement::together}}) {
    const unsigned workers = sc.workers;
    for (std::size_t receivers : {std::size_t{1}, std::size_t{16}, std::size_t{256}}) {
      const value n = std::max<value>(o.deliveries / receivers, 4096);
      ringflow_broadcast(workers, receivers, cap, n, sc.where);  // warm-up, not measured
      std::vector<double> runs;
      std::uint64_t allocs = 0;
      for (int r = 0; r < o.reps; ++r) {
        run_result res = ringflow_broadcast(workers, receivers, cap, n, sc.where);
        runs.push_back(res.ns_per_delivery);
        allocs = std::max(allocs, res.allocs);
      }
      std::string rs;
      for (double r : runs) rs += fmt::format("{}{:.2f}", rs.empty() ? "" : ",", r);
      rows.push_back(fmt::format(
          R"({{"impl":"ringflow","scenario":"{}","workers":{},"receivers":{},"capacity":{},"values":{},)"
          R"("ns_per_value_per_receiver":{:.2f},"runs":[{}],"steady_allocs":{}}})",
          sc.name, workers, receivers, cap, n, median(runs), rs, allocs));
      fmt::print(stderr, "  ringflow  {:<19} w={} receivers={:<4} {:>8.2f} ns/value/receiver\n", sc.name, workers,
                 receivers, median(runs));
    }
  }
  std::string body;
  for (auto& r : rows) body += (body.empty() ? "" : ",\n  ") + r;
  fmt::print("{{\"bench\":\"broadcast\",\"deliveries\":{},\"reps\":{},\"results\":[\n  {}\n]}}\n", o.deliveries, o.reps,
             body);
}
