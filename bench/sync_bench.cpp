// sync_bench: ringflow's synchronisation primitives, one JSON document on
// stdout (bench/sync.sh runs it beside the Tokio peer and prints ratios).
//
//   sync_bench [--ops N] [--reps R] [--quick] [--help]
//
// Every figure is the median of R repetitions (after one untimed warm-up),
// in ns per acquire+release. The tasks are started with runtime::spawn and
// the time runs from before the spawn to the last join (as the peer does).
// "allocs_per_op" counts calls of the global operator new (replaced below)
// made by any thread during a repetition, divided by its operations.
//
//   semaphore_uncontended  one task: { auto p = co_await s.acquire(); } N times
//   semaphore_contended    two tasks on semaphore(1), N/2 each of: acquire,
//                          co_await yield() while holding, release; so every
//                          acquire finds the unit held and suspends
//   semaphore_hammer       two tasks on semaphore(1), N/2 tight acquire+release
//                          each, no yield (2 workers: both cores on one lock)
//   task_group_spawn_join  one task spawns N/8 empty tasks into a
//                          task_group<void>(64) (spawn suspends at 64
//                          running), reaping with try_next(), then drains it
//                          with next(); ns per task (spawn + run + join)
// Each on 1 worker and on 2 (hammer: 2 only; on one worker it never contends).
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <optional>
#include <ringflow/ringflow.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "alloc_counter.hpp"

// ---- allocation counter ------------------------------------------------------

using bench_support::g_allocs;

namespace {

using ringflow::semaphore;
using ringflow::task;
using clock_type = std::chrono::steady_clock;

std::atomic<std::uint64_t> g_sink{0};  // keeps the loops' work observable

enum class kind { uncontended, contended, hammer, group };

task<void> empty_task() { co_return; }

task<void> group_loop(std::uint64_t n) {
  ringflow::task_group<void> g(64);
  std::uint64_t joined = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    co_await g.spawn(empty_task());
    while (g.try_next()) ++joined;
  }
  for (;;) {
    bool more = co_await g.next();
    if (!more) break;
    ++joined;
  }
  if (joined != n) throw std::runtime_error("task_group: a task went missing");
  g_sink.fetch_add(joined, std::memory_order_relaxed);
}

task<void> acquire_loop(semaphore& s, std::uint64_t n, bool yield_while_holding) {
  std::uint64_t got = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    semaphore::permit p = co_await s.acquire();
    got += p.count();
    if (yield_while_holding) co_await ringflow::yield();
  }
  g_sink.fetch_add(got, std::memory_order_relaxed);
}

struct sample {
  double ns = 0;
  std::uint64_t allocs = 0;
};

sample once(ringflow::runtime& rt, kind k, std::uint64_t ops) {
  semaphore s(1);
  const std::uint64_t a0 = g_allocs.load(std::memory_order_relaxed);
  const auto t0 = clock_type::now();
  if (k == kind::group) {
    rt.spawn(group_loop(ops)).wait();
  } else if (k == kind::uncontended) {
    rt.spawn(acquire_loop(s, ops, false)).wait();
  } else {
    auto a = rt.spawn(acquire_loop(s, ops / 2, k == kind::contended));
    auto b = rt.spawn(acquire_loop(s, ops / 2, k == kind::contended));
    a.wait();
    b.wait();
  }
  const double ns = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
  if (s.available() != 1) throw std::runtime_error("semaphore: a unit went missing");
  return {ns, g_allocs.load(std::memory_order_relaxed) - a0};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

struct options {
  std::uint64_t ops = 4'000'000;
  unsigned reps = 5;
  bool quick = false;
};

[[noreturn]] void usage(int code) {
  fmt::print(code ? stderr : stdout,
             "usage: sync_bench [--ops N] [--reps R] [--quick]\n"
             "  --ops N   acquire+release operations per repetition (default 4000000)\n"
             "  --reps R  repetitions, median reported (default 5, 1..1000)\n"
             "  --quick   smoke run: 20000 ops, 1 rep\n");
  std::exit(code);
}

template <class I>
I number(std::string_view v, I lo, I hi) {
  I x{};
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc{} || end != v.data() + v.size() || x < lo || x > hi) usage(2);
  return x;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(0);
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--ops") {
      o.ops = number<std::uint64_t>(value(), 2, 1'000'000'000'000ull);
    } else if (a == "--reps") {
      o.reps = number<unsigned>(value(), 1, 1000);
    } else {
      usage(2);
    }
  }
  if (o.quick) {
    o.ops = 20000;
    o.reps = 1;
  }
  o.ops = o.ops / 2 * 2;  // two tasks do half each
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  const options o = parse(argc, argv);
  struct row {
    const char* scenario;
    kind k;
    unsigned workers;
  };
  const row rows[] = {
      {"semaphore_uncontended", kind::uncontended, 1}, {"semaphore_uncontended", kind::uncontended, 2},
      {"semaphore_contended", kind::contended, 1},     {"semaphore_contended", kind::contended, 2},
      {"semaphore_hammer", kind::hammer, 2},
      {"task_group_spawn_join", kind::group, 1},       {"task_group_spawn_join", kind::group, 2},
  };
  std::string out = fmt::format("{{\"bench\":\"sync\",\"ops\":{},\"reps\":{},\"statistic\":\"median\",\"results\":[",
                                o.ops, o.reps);
  bool first = true;
  for (const row& r : rows) {
    ringflow::runtime rt({.threads = r.workers});
    const std::uint64_t ops = r.k == kind::group ? o.ops / 8 : o.ops;
    (void)once(rt, r.k, ops);  // warm-up
    std::vector<double> ns, allocs;
    for (unsigned i = 0; i < o.reps; ++i) {
      const sample s = once(rt, r.k, ops);
      ns.push_back(s.ns / static_cast<double>(ops));
      allocs.push_back(static_cast<double>(s.allocs) / static_cast<double>(ops));
    }
    std::string runs;
    for (double v : ns) runs += fmt::format("{}{:.2f}", runs.empty() ? "" : ",", v);
    out += fmt::format(
        "{}\n  {{\"impl\":\"ringflow\",\"scenario\":\"{}\",\"workers\":{},\"ops\":{},\"ns_per_op\":{:.2f},"
        "\"runs\":[{}],\"allocs_per_op\":{:.4f}}}",
        first ? "" : ",", r.scenario, r.workers, ops, median(ns), runs, median(allocs));
    first = false;
  }
  out += "\n]}\n";
  fmt::print("{}", out);
  std::fflush(stdout);
  return g_sink.load() == 0 ? 1 : 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "sync_bench: {}\n", e.what());
  return 1;
}
