// runtime_bench: the runtime's basic costs, each beside a baseline measured
// in the same run, printed as one JSON document on stdout.
//
//   runtime_bench [--reps R] [--quick] [--help]
//
// Every figure is the median of R repetitions (after one untimed warm-up).
// "allocs_per_op" counts calls of the global operator new (replaced below)
// made by any thread while the measured loop runs, divided by its ops.
//
//   spawn_join_local     spawn_local N trivial tasks from a task on a
//                        1-thread runtime, then co_await every handle
//   spawn_join           the same with ringflow::spawn (threads = 1)
//   runtime_spawn_wait   runtime::spawn N trivial tasks from the main thread
//                        (not a worker), then join_handle::wait() on each
//     baseline: std::deque<std::function<void()>>: push N lambdas, then pop
//     and call each
//   yield                two tasks on one worker, each co_await yield() N
//                        times; ns per yield
//     baseline: resuming a coroutine that suspends (suspend_always) in a
//     loop, N times through its coroutine_handle
//   sleep_for_1ns        co_await sleep_for(1ns), N times in a row
//     baseline: a raw liburing IORING_OP_TIMEOUT of 1 ns round trip on a
//     ring the bench makes itself (same set-up flags as the runtime's);
//     other_baselines: a raw liburing NOP round trip on that ring
#include <liburing.h>
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
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

using ringflow::task;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::uint64_t allocs_now() { return g_allocs.load(std::memory_order_relaxed); }

double ns_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
}

// One repetition: the whole loop's time and the allocations made during it.
struct sample {
  double ns = 0;
  std::uint64_t allocs = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

struct figure {
  double ns_per_op = 0;
  double allocs_per_op = 0;
};

// Runs fn once untimed, then reps times; medians per op.
template <class F>
figure measure(unsigned reps, std::uint64_t ops, F&& fn) {
  (void)fn();
  std::vector<double> ns, allocs;
  for (unsigned i = 0; i < reps; ++i) {
    sample s = fn();
    ns.push_back(s.ns / static_cast<double>(ops));
    allocs.push_back(static_cast<double>(s.allocs) / static_cast<double>(ops));
  }
  return {median(ns), median(allocs)};
}

// Keeps the optimiser from dropping the work the loops do.
std::uint64_t g_sink = 0;

// ---- spawn + join ------------------------------------------------------------

task<> trivial(std::uint64_t* counter) {
  ++*counter;
  co_return;
}

enum class spawn_kind { local, spawn };

task<sample> spawn_join_loop(spawn_kind kind, std::uint64_t n) {
  std::uint64_t counter = 0;
  std::vector<ringflow::join_handle<void>> hs;
  hs.reserve(n);
  std::uint64_t a0 = allocs_now();
  auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    if (kind == spawn_kind::local) {
      hs.push_back(ringflow::spawn_local(trivial(&counter)));
    } else {
      hs.push_back(ringflow::spawn(trivial(&counter)));
    }
  }
  for (auto& h : hs) co_await std::move(h);
  sample s{ns_since(t0), allocs_now() - a0};
  if (counter != n) throw std::runtime_error("spawn_join: a task did not run");
  g_sink += counter;
  co_return s;
}

sample runtime_spawn_wait(ringflow::runtime& rt, std::uint64_t n, std::vector<ringflow::join_handle<void>>& hs,
                          std::uint64_t* counter) {
  hs.clear();
  *counter = 0;
  std::uint64_t a0 = allocs_now();
  auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) hs.push_back(rt.spawn(trivial(counter)));
  for (auto& h : hs) h.wait();
  sample s{ns_since(t0), allocs_now() - a0};
  if (*counter != n) throw std::runtime_error("runtime_spawn_wait: a task did not run");
  g_sink += *counter;
  return s;
}

sample deque_function_loop(std::uint64_t n) {
  std::uint64_t counter = 0;
  std::deque<std::function<void()>> q;
  std::uint64_t a0 = allocs_now();
  auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    q.push_back([&counter, i] { counter += i & 1; });
  }
  while (!q.empty()) {
    q.front()();
    q.pop_front();
  }
  sample s{ns_since(t0), allocs_now() - a0};
  g_sink += counter;
  return s;
}

// ---- yield -------------------------------------------------------------------

struct yield_window {
  std::uint64_t allocs_begin = 0;
  std::uint64_t allocs_end = 0;
  clock_type::time_point t0{}, t1{};
};

// The measuring task (win != null) snapshots after its warm-up and at the
// end; the two tasks alternate strictly, so the window covers ~2n yields.
task<> yielder(std::uint64_t warmup, std::uint64_t n, yield_window* win) {
  for (std::uint64_t i = 0; i < warmup; ++i) co_await ringflow::yield();
  if (win) {
    win->allocs_begin = allocs_now();
    win->t0 = clock_type::now();
  }
  for (std::uint64_t i = 0; i < n; ++i) co_await ringflow::yield();
  if (win) {
    win->t1 = clock_type::now();
    win->allocs_end = allocs_now();
  }
}

task<sample> yield_pair(std::uint64_t n) {
  constexpr std::uint64_t warmup = 1000;
  yield_window win;
  auto a = ringflow::spawn_local(yielder(warmup, n, &win));
  auto b = ringflow::spawn_local(yielder(warmup, n, nullptr));
  co_await std::move(a);
  co_await std::move(b);
  co_return sample{std::chrono::duration<double, std::nano>(win.t1 - win.t0).count(),
                   win.allocs_end - win.allocs_begin};
}

// The baseline: a coroutine that suspends in a loop, resumed by hand.
struct bare_coro {
  struct promise_type {
    bare_coro get_return_object() noexcept { return bare_coro{std::coroutine_handle<promise_type>::from_promise(*this)}; }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
};

bare_coro suspend_loop(std::uint64_t* counter) {
  for (;;) {
    ++*counter;
    std::suspend_always s;  // named: see the README's note on g++ 12 and co_await temporaries
    co_await s;
  }
}

sample resume_loop(std::uint64_t n) {
  std::uint64_t counter = 0;
  bare_coro c = suspend_loop(&counter);
  c.h.resume();  // to its first suspension
  std::uint64_t a0 = allocs_now();
  auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) c.h.resume();
  sample s{ns_since(t0), allocs_now() - a0};
  c.h.destroy();
  g_sink += counter;
  return s;
}

// ---- timers ------------------------------------------------------------------

task<sample> sleep_loop(std::uint64_t n) {
  std::uint64_t a0 = allocs_now();
  auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) co_await ringflow::sleep_for(1ns);
  co_return sample{ns_since(t0), allocs_now() - a0};
}

// A ring set up as the runtime's workers set theirs up.
struct raw_ring {
  io_uring ring{};
  std::string setup;

  raw_ring() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    setup = "single_issuer|defer_taskrun";
    int r = io_uring_queue_init_params(8, &ring, &p);
    if (r == -EINVAL) {
      p = {};
      p.flags = IORING_SETUP_COOP_TASKRUN;
      setup = "coop_taskrun";
      r = io_uring_queue_init_params(8, &ring, &p);
    }
    if (r == -EINVAL) {
      p = {};
      setup = "default";
      r = io_uring_queue_init_params(8, &ring, &p);
    }
    if (r < 0) throw std::runtime_error(fmt::format("io_uring_queue_init_params: {}", std::strerror(-r)));
  }
  raw_ring(const raw_ring&) = delete;
  raw_ring& operator=(const raw_ring&) = delete;
  ~raw_ring() { io_uring_queue_exit(&ring); }

  // Submits one prepared SQE and reaps its CQE; returns cqe->res.
  int round_trip() {
    int r;
    do {
      r = io_uring_submit_and_wait(&ring, 1);
    } while (r == -EINTR);
    if (r < 0) throw std::runtime_error(fmt::format("io_uring_submit_and_wait: {}", std::strerror(-r)));
    io_uring_cqe* cqe = nullptr;
    do {
      r = io_uring_wait_cqe(&ring, &cqe);
    } while (r == -EINTR);
    if (r < 0) throw std::runtime_error(fmt::format("io_uring_wait_cqe: {}", std::strerror(-r)));
    int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    return res;
  }
};

sample raw_nop_loop(raw_ring& rr, std::uint64_t n) {
  std::uint64_t a0 = allocs_now();
  auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    io_uring_sqe* sqe = io_uring_get_sqe(&rr.ring);
    io_uring_prep_nop(sqe);
    if (int res = rr.round_trip(); res != 0) throw std::runtime_error("raw NOP failed");
  }
  return {ns_since(t0), allocs_now() - a0};
}

sample raw_timeout_loop(raw_ring& rr, std::uint64_t n) {
  __kernel_timespec ts{0, 1};
  std::uint64_t a0 = allocs_now();
  auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    io_uring_sqe* sqe = io_uring_get_sqe(&rr.ring);
    io_uring_prep_timeout(sqe, &ts, 0, 0);
    if (int res = rr.round_trip(); res != -ETIME) throw std::runtime_error("raw TIMEOUT did not end in -ETIME");
  }
  return {ns_since(t0), allocs_now() - a0};
}

// ---- output ------------------------------------------------------------------

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string num(double v) { return fmt::format("{:.2f}", v); }

struct other_baseline {
  std::string name;
  figure f;
};

struct result {
  std::string name;
  std::string what;
  std::uint64_t n;
  figure f;
  std::string baseline;
  figure b;
  std::vector<other_baseline> others;
};

std::string to_json(const result& r) {
  std::string s = fmt::format(
      "{{\"name\":{},\"what\":{},\"n\":{},\"ns_per_op\":{},\"allocs_per_op\":{},"
      "\"baseline\":{},\"baseline_ns_per_op\":{},\"baseline_allocs_per_op\":{},\"ratio\":{}",
      json_string(r.name), json_string(r.what), r.n, num(r.f.ns_per_op), num(r.f.allocs_per_op),
      json_string(r.baseline), num(r.b.ns_per_op), num(r.b.allocs_per_op), num(r.f.ns_per_op / r.b.ns_per_op));
  if (!r.others.empty()) {
    s += ",\"other_baselines\":[";
    for (std::size_t i = 0; i < r.others.size(); ++i) {
      const auto& o = r.others[i];
      s += fmt::format("{}{{\"baseline\":{},\"baseline_ns_per_op\":{},\"ratio\":{}}}", i ? "," : "",
                       json_string(o.name), num(o.f.ns_per_op), num(r.f.ns_per_op / o.f.ns_per_op));
    }
    s += "]";
  }
  return s + "}";
}

// ---- command line ------------------------------------------------------------

constexpr const char* usage =
    "usage: runtime_bench [--reps R] [--quick] [--help]\n"
    "  --reps R   repetitions per figure; the median is reported (default 5)\n"
    "  --quick    small N: a smoke run, figures not meaningful\n"
    "  --help     this text\n"
    "Prints one JSON document on stdout.\n";

struct options {
  unsigned reps = 5;
  bool quick = false;
};

std::optional<unsigned> parse_reps(std::string_view v) {
  if (v.empty() || v.size() > 6) return std::nullopt;
  unsigned r = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    r = r * 10 + static_cast<unsigned>(c - '0');
  }
  if (r == 0 || r > 1000) return std::nullopt;
  return r;
}

// Exits 0 for --help, 2 for a bad command line.
options parse_args(int argc, char** argv) {
  options o;
  auto bad = [](const std::string& msg) {
    fmt::print(stderr, "runtime_bench: {}\n{}", msg, usage);
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print("{}", usage);
      std::exit(0);
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--reps" || a.starts_with("--reps=")) {
      std::string_view v;
      if (a == "--reps") {
        if (i + 1 >= argc) bad("--reps needs a value");
        v = argv[++i];
      } else {
        v = a.substr(7);
      }
      auto r = parse_reps(v);
      if (!r) bad(fmt::format("--reps wants an integer in 1..1000, not '{}'", v));
      o.reps = *r;
    } else {
      bad(fmt::format("unknown argument '{}'", a));
    }
  }
  return o;
}

int run(const options& o) {
  const std::uint64_t n_spawn = o.quick ? 1000 : 100000;
  const std::uint64_t n_yield = o.quick ? 10000 : 1000000;
  const std::uint64_t n_timer = o.quick ? 200 : 20000;
  const unsigned reps = o.reps;
  std::vector<result> results;

  const std::string deque_name = "std::deque<std::function> push+pop+call";
  figure deque_f = measure(reps, n_spawn, [&] { return deque_function_loop(n_spawn); });
  {
    ringflow::runtime rt({.threads = 1});
    figure local = measure(reps, n_spawn, [&] { return rt.block_on(spawn_join_loop(spawn_kind::local, n_spawn)); });
    results.push_back({"spawn_join_local", "spawn_local + co_await join, per task (threads=1)", n_spawn, local,
                       deque_name, deque_f, {}});
    figure sp = measure(reps, n_spawn, [&] { return rt.block_on(spawn_join_loop(spawn_kind::spawn, n_spawn)); });
    results.push_back({"spawn_join", "ringflow::spawn + co_await join, per task (threads=1)", n_spawn, sp,
                       deque_name, deque_f, {}});
    std::vector<ringflow::join_handle<void>> hs;
    hs.reserve(n_spawn);
    std::uint64_t counter = 0;
    figure ext = measure(reps, n_spawn, [&] { return runtime_spawn_wait(rt, n_spawn, hs, &counter); });
    hs.clear();
    results.push_back({"runtime_spawn_wait",
                       "runtime::spawn from the main thread + join_handle::wait, per task (threads=1)", n_spawn, ext,
                       deque_name, deque_f, {}});

    figure y = measure(reps, 2 * n_yield, [&] { return rt.block_on(yield_pair(n_yield)); });
    figure bare = measure(reps, n_yield, [&] { return resume_loop(n_yield); });
    results.push_back({"yield", "co_await yield(), two tasks on one worker, per yield", n_yield, y,
                       "coroutine_handle::resume of a suspend_always loop", bare, {}});

    figure sl = measure(reps, n_timer, [&] { return rt.block_on(sleep_loop(n_timer)); });
    raw_ring rr;
    figure nop = measure(reps, n_timer, [&] { return raw_nop_loop(rr, n_timer); });
    figure tmo = measure(reps, n_timer, [&] { return raw_timeout_loop(rr, n_timer); });
    results.push_back({"sleep_for_1ns", "co_await sleep_for(1ns), per sleep", n_timer, sl,
                       "raw liburing IORING_OP_TIMEOUT 1ns round trip (" + rr.setup + ")", tmo,
                       {{"raw liburing NOP round trip (" + rr.setup + ")", nop}}});
  }

  std::string out = fmt::format("{{\"bench\":\"runtime\",\"reps\":{},\"quick\":{},\"statistic\":\"median\",\"results\":[",
                                reps, o.quick ? "true" : "false");
  for (std::size_t i = 0; i < results.size(); ++i) {
    out += i ? ",\n  " : "\n  ";
    out += to_json(results[i]);
  }
  out += "\n]}\n";
  fmt::print("{}", out);
  std::fflush(stdout);
  return g_sink == 0 ? 1 : 0;  // g_sink is never 0: the loops ran
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse_args(argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    fmt::print(stderr, "runtime_bench: {}\n", e.what());
    return 1;
  }
}
