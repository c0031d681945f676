// blocking_bench: spawn_blocking round trip (a task awaits a trivial f on
// the blocking pool, one call after another), on 1 and 2 workers.
// Prints one JSON document: {"bench":"blocking","results":[{workers, ns_per_call (median), reps}]}.
//   blocking_bench [--calls N] [--reps R] [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/core.h>

#include <ringflow/blocking.hpp>
#include <ringflow/runtime.hpp>

namespace {

ringflow::task<long> round_trips(long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await ringflow::spawn_blocking([] { return 1; });
  co_return sum;
}

double ns_per_call(unsigned workers, long calls) {
  ringflow::runtime rt({.threads = workers});
  // Warm-up: the pool's first thread starts on the first call.
  rt.block_on(round_trips(1000));
  auto t0 = std::chrono::steady_clock::now();
  long sum = rt.spawn(round_trips(calls)).wait();
  auto t1 = std::chrono::steady_clock::now();
  if (sum != calls) {
    std::fprintf(stderr, "blocking_bench: wrong sum\n");
    std::exit(1);
  }
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(calls);
}

}  // namespace

int main(int argc, char** argv) {
  long calls = 200000;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--calls") && i + 1 < argc) {
      calls = std::atol(argv[++i]);
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--quick")) {
      calls = 2000;
      reps = 1;
    } else {
      std::fprintf(stderr, "usage: blocking_bench [--calls N] [--reps R] [--quick]\n");
      return 2;
    }
  }
  std::string out = R"({"bench":"blocking","impl":"ringflow","results":[)";
  for (unsigned workers : {1u, 2u}) {
    std::vector<double> v;
    for (int r = 0; r < reps; ++r) v.push_back(ns_per_call(workers, calls));
    std::sort(v.begin(), v.end());
    if (workers > 1) out += ",";
    out += fmt::format(R"({{"workers":{},"calls":{},"reps":{},"ns_per_call":{:.1f}}})", workers, calls, reps,
                       v[v.size() / 2]);
  }
  out += "]}";
  std::puts(out.c_str());
}
