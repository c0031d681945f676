// bench/streams_bench: throughput of subscription::request(n) beside the
// channel's recv_many(n) for the same n, one worker, JSON on stdout.
#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ringflow/ringflow.hpp>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using ringflow::task;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

ringflow::publisher<std::uint64_t> source(std::uint64_t items) {
  return ringflow::publisher<std::uint64_t>::create([items](ringflow::emitter<std::uint64_t>& out) -> task<void> {
    for (std::uint64_t i = 0; i < items; ++i) {
      bool ok = co_await out.emit(i);
      if (!ok) co_return;
    }
  });
}

task<std::uint64_t> drain_stream(std::uint64_t items, std::uint64_t n) {
  auto sub = source(items).subscribe();
  std::uint64_t sum = 0;
  for (;;) {
    auto batch = co_await sub.request(n);
    if (batch.empty()) break;
    for (auto v : batch) sum += v;
  }
  co_return sum;
}

task<void> fill(ringflow::channel<std::uint64_t>* ch, std::uint64_t items) {
  for (std::uint64_t i = 0; i < items; ++i) co_await ch->send(i);
  ch->close();
}

task<std::uint64_t> drain_channel(std::uint64_t items, std::uint64_t n) {
  ringflow::channel<std::uint64_t> ch(n);  // the same bound as the demand
  auto producer = ringflow::spawn(fill(&ch, items));
  std::uint64_t sum = 0;
  for (;;) {
    auto batch = co_await ch.recv_many(n);
    if (batch.empty()) break;
    for (auto v : batch) sum += v;
  }
  co_await std::move(producer);
  co_return sum;
}

template <class F>
double time_ns_per_item(std::uint64_t items, F&& f) {
  ringflow::runtime rt;
  auto t0 = clock_type::now();
  std::uint64_t sum = rt.block_on(f());
  double ns = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
  if (sum != items * (items - 1) / 2) {
    fmt::print(stderr, "streams_bench: checksum mismatch\n");
    std::exit(1);
  }
  return ns / double(items);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t items = 2'000'000;
  int reps = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      items = 100'000;
      reps = 1;
    } else if (a == "--items" && i + 1 < argc) {
      items = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else {
      fmt::print(stderr, "usage: streams_bench [--items N] [--reps R] [--quick]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (items < 2 || reps < 1) {
    fmt::print(stderr, "streams_bench: --items must be >= 2 and --reps >= 1\n");
    return 2;
  }
  std::vector<std::string> rows;
  for (std::uint64_t n : {1, 16, 256, 4096}) {
    std::vector<double> s, c;
    for (int r = 0; r < reps; ++r) {
      s.push_back(time_ns_per_item(items, [&] { return drain_stream(items, n); }));
      c.push_back(time_ns_per_item(items, [&] { return drain_channel(items, n); }));
    }
    double ms = median(s), mc = median(c);
    rows.push_back(fmt::format(
        R"J({{"n":{},"request_n_ns_per_item":{:.2f},"baseline":"channel(n).recv_many(n)","baseline_ns_per_item":{:.2f},"ratio":{:.2f}}})J",
        n, ms, mc, ms / mc));
    fmt::print(stderr, "  n={:<5} request(n) {:8.2f} ns/item   recv_many(n) {:8.2f} ns/item   ratio {:.2f}\n", n, ms, mc,
               ms / mc);
  }
  fmt::print("{{\"bench\":\"streams\",\"items\":{},\"reps\":{},\"results\":[\n  {}\n]}}\n", items, reps,
             fmt::join(rows, ",\n  "));
}
