// echo_client: a closed-loop load generator for TCP echo servers.
//
//   echo_client [--address 127.0.0.1] [--port 7000] [--connections 50]
//               [--size 64] [--duration 5] [--threads 1] [--json]
//
// Opens every connection first (TCP_NODELAY), then each connection sends a
// `size`-byte message, reads until all `size` bytes came back, checks that
// every echoed byte equals what was sent, and starts over until `duration`
// seconds have passed. Each request's latency (steady_clock, write start to
// last byte read) goes into a per-connection vector reserved up front; the
// vectors are merged and sorted at the end.
//
// Output: requests/s and p50/p99/p999 latency in microseconds as text, or one
// JSON object with --json:
//   {"connections":..,"size":..,"duration_s":..,"requests":..,"rps":..,
//    "p50_us":..,"p99_us":..,"p999_us":..,"threads":..,"wall_s":..,
//    "client_cpu_s":..,"errors":..,"mismatches":..}
// wall_s is the measured phase's real length (rps = requests / wall_s);
// client_cpu_s is this process's user+system CPU time during that phase, so
// client_cpu_s / wall_s near 1 (per pinned core) means the client, not the
// server, was the bottleneck. Exits 1 when a connection failed or an echo
// did not match.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <system_error>
#include <vector>

#include <ringflow/ringflow.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::string address = "127.0.0.1";
  int port = 7000;
  unsigned connections = 50;
  std::size_t size = 64;
  double duration = 5;
  unsigned threads = 1;
  bool json = false;
};

struct conn_result {
  std::vector<std::uint64_t> latency_ns;
  bool mismatch = false;
  std::string error;
};

struct run_result {
  std::vector<conn_result> conns;
  double wall_s = 0;
  double cpu_s = 0;
  std::string connect_error;
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// Request/response on one connection until the deadline.
ringflow::task<> run_connection(ringflow::tcp_stream s, conn_result* r, clock_type::time_point deadline,
                                std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> out(size);
  std::vector<std::byte> in(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::byte>((seed * 131 + i * 7 + 1) & 0xff);
  try {
    for (std::uint64_t req = 0;; ++req) {
      // A different message each time: the request number in the first bytes.
      std::memcpy(out.data(), &req, std::min(size, sizeof req));
      auto t0 = clock_type::now();
      co_await s.write_all(out);
      std::size_t got = 0;
      while (got < size) {
        std::size_t n = co_await s.read({in.data() + got, size - got});
        if (n == 0) throw std::runtime_error("the server closed the connection");
        got += n;
      }
      auto t1 = clock_type::now();
      if (std::memcmp(in.data(), out.data(), size) != 0) {
        r->mismatch = true;
        r->error = fmt::format("echoed bytes differ from the request (request {})", req);
        co_return;
      }
      r->latency_ns.push_back(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
      if (t1 >= deadline) break;
    }
  } catch (const std::exception& e) {
    r->error = e.what();
  }
}

ringflow::task<> client_main(const options* o, run_result* res) {
  // Connect everything first so the measured phase is request/response only.
  std::vector<ringflow::tcp_stream> streams;
  streams.reserve(o->connections);
  try {
    for (unsigned i = 0; i < o->connections; ++i) {
      ringflow::tcp_stream s = co_await ringflow::tcp_stream::connect(o->address, static_cast<std::uint16_t>(o->port));
      s.set_nodelay(true);
      streams.push_back(std::move(s));
    }
  } catch (const std::exception& e) {
    res->connect_error = fmt::format("connection {} to {}:{}: {}", streams.size(), o->address, o->port, e.what());
    co_return;
  }

  // Reserve the latency vectors up front (a generous guess of 200k req/s in
  // all, split over the connections); they still grow if that was too low.
  res->conns.resize(o->connections);
  auto per_conn = static_cast<std::size_t>(o->duration * 200000.0 / o->connections) + 1024;
  per_conn = std::min<std::size_t>(per_conn, 4u << 20);
  for (auto& c : res->conns) c.latency_ns.reserve(per_conn);

  double cpu0 = cpu_seconds();
  auto start = clock_type::now();
  auto deadline = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o->duration));
  std::vector<ringflow::join_handle<void>> handles;
  handles.reserve(o->connections);
  for (unsigned i = 0; i < o->connections; ++i) {
    handles.push_back(ringflow::spawn(run_connection(std::move(streams[i]), &res->conns[i], deadline, o->size, i)));
  }
  for (auto& h : handles) co_await std::move(h);
  res->wall_s = std::chrono::duration<double>(clock_type::now() - start).count();
  res->cpu_s = cpu_seconds() - cpu0;
}

// Nearest-rank percentile of sorted values, in microseconds.
double percentile_us(const std::vector<std::uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  if (rank == 0) rank = 1;
  return static_cast<double>(sorted[std::min(rank, sorted.size()) - 1]) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Closed-loop TCP echo load generator (ringflow runtime)"};
  options o;
  app.add_option("-a,--address", o.address, "server address")->capture_default_str();
  app.add_option("-p,--port", o.port, "server port")->check(CLI::Range(1, 65535))->capture_default_str();
  app.add_option("-c,--connections", o.connections, "concurrent connections, each one request in flight")
      ->check(CLI::Range(1u, 100000u))
      ->capture_default_str();
  app.add_option("-s,--size", o.size, "message size in bytes")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20))
      ->capture_default_str();
  app.add_option("-d,--duration", o.duration, "measured phase in seconds")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  app.add_option("-t,--threads", o.threads, "runtime worker threads (connections spread over them)")
      ->check(CLI::Range(1u, 1024u))
      ->capture_default_str();
  app.add_flag("--json", o.json, "print one JSON object instead of text");
  CLI11_PARSE(app, argc, argv);

  run_result res;
  try {
    ringflow::runtime rt({.threads = o.threads});
    rt.block_on(client_main(&o, &res));
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo_client: {}\n", e.what());
    return 1;
  }
  if (!res.connect_error.empty()) {
    fmt::print(stderr, "echo_client: {}\n", res.connect_error);
    return 1;
  }

  std::size_t total = 0;
  unsigned errors = 0, mismatches = 0;
  for (const auto& c : res.conns) {
    total += c.latency_ns.size();
    if (c.mismatch) ++mismatches;
    if (!c.error.empty()) {
      if (errors + mismatches < 5) fmt::print(stderr, "echo_client: connection failed: {}\n", c.error);
      if (!c.mismatch) ++errors;
    }
  }
  std::vector<std::uint64_t> all;
  all.reserve(total);
  for (auto& c : res.conns) {
    all.insert(all.end(), c.latency_ns.begin(), c.latency_ns.end());
    std::vector<std::uint64_t>().swap(c.latency_ns);
  }
  std::sort(all.begin(), all.end());
  double rps = res.wall_s > 0 ? static_cast<double>(total) / res.wall_s : 0;
  double p50 = percentile_us(all, 0.50), p99 = percentile_us(all, 0.99), p999 = percentile_us(all, 0.999);

  if (o.json) {
    fmt::print(
        "{{\"connections\":{},\"size\":{},\"duration_s\":{},\"requests\":{},\"rps\":{:.1f},"
        "\"p50_us\":{:.2f},\"p99_us\":{:.2f},\"p999_us\":{:.2f},\"threads\":{},\"wall_s\":{:.4f},"
        "\"client_cpu_s\":{:.4f},\"errors\":{},\"mismatches\":{}}}\n",
        o.connections, o.size, o.duration, total, rps, p50, p99, p999, o.threads, res.wall_s, res.cpu_s, errors,
        mismatches);
  } else {
    fmt::print("{}:{}  connections {}  size {} B  duration {:.2f} s  threads {}\n", o.address, o.port, o.connections,
               o.size, res.wall_s, o.threads);
    fmt::print("requests {}  rps {:.0f}\n", total, rps);
    fmt::print("latency us  p50 {:.1f}  p99 {:.1f}  p999 {:.1f}\n", p50, p99, p999);
    fmt::print("client cpu {:.2f} s ({:.0f}% of wall)\n", res.cpu_s, res.wall_s > 0 ? 100 * res.cpu_s / res.wall_s : 0);
    if (errors || mismatches) fmt::print("errors {}  mismatches {}\n", errors, mismatches);
  }
  std::fflush(stdout);
  return errors || mismatches ? 1 : 0;
}
