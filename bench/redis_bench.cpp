// redis_bench: ringflow's Redis client against a running redis-server, the
// load redis-benchmark makes with `-c C -P D -n N CMD...`: C connections,
// each with D commands in flight all the time (D tasks per connection, each
// sending its next command when its reply came), N commands in all. Prints
// one JSON line: requests per second and the client's CPU time (user + sys,
// getrusage) per request. --prepared formats the command once
// (redis::prepared_command), as redis-benchmark does, instead of on every
// command() call. --batch runs redis-benchmark's own loop instead: one task
// per connection sends a command_batch of D commands (connection::pipeline)
// and waits for its D replies, again. As in redis-benchmark, the connections
// take their commands from one count of N (a batch at a time with --batch,
// so the last batches may send up to D-1 more each), and the time stops at
// the N-th reply: no connection idles at the end while others finish their
// own share.
//
//   redis_bench --port 6379 --connections 50 --pipeline 16 --requests 1000000 PING
//   redis_bench --port 6379 SET key:bench xxx
//   redis_bench --port 6379 XADD stream:bench '*' field value
//
// Consume mode: a stream_consumer (group GROUP, created at the stream's
// start) takes N entries from STREAM with prefetch P, as a throughput
// consumer would: request(R) on its publisher (R = P unless --request),
// then the R acks concurrently (they share one XACK on its ack connection)
// while the next request(R) reads; with R = P that read waits for the acks
// to free places, with R = P/2 it overlaps them. Prints entries per second
// and client CPU per entry.
//
//   redis_bench --port 6379 --consume 1000000 --prefetch 256 --request 128 --stream s --group g
// Exit 77 when ringflow was built without its Redis client.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <ringflow/ringflow.hpp>

#if !RINGFLOW_HAS_REDIS
int main() {
  std::fprintf(stderr, "redis_bench: ringflow was built without Redis (-Dredis=disabled or no hiredis)\n");
  return 77;
}
#else

namespace {

using ringflow::task;
using ringflow::redis::connection;

struct options {
  std::uint16_t port = 6379;
  unsigned connections = 1;
  unsigned pipeline = 1;
  std::uint64_t requests = 100000;
  unsigned threads = 1;
  bool prepared = false;  // format the command once (redis::prepared_command)
  bool batch = false;     // one task per connection sending batches of `pipeline` (connection::pipeline)
  std::vector<std::string> command{"PING"};
  std::uint64_t consume = 0;  // consume mode: entries to take
  std::size_t prefetch = 128;
  std::uint64_t request = 0;  // consume mode: entries per request(n); 0 (unset): prefetch
  std::string stream = "stream:bench", group = "bench";
};

// The N requests of a run, shared by every sender (redis-benchmark's
// requests_issued and requests_finished).
struct request_count {
  explicit request_count(std::uint64_t n) : total(n) {}
  const std::uint64_t total;
  std::atomic<std::uint64_t> issued{0}, finished{0};
  std::atomic<std::chrono::steady_clock::rep> end{0};  // when the N-th reply came

  // Takes n requests to send; false once N have been taken.
  bool take(std::uint64_t n) { return issued.fetch_add(n, std::memory_order_relaxed) < total; }
  void answered(std::uint64_t n) {
    std::uint64_t before = finished.fetch_add(n, std::memory_order_relaxed);
    if (before < total && before + n >= total) {
      end.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    }
  }
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// The variadic form, as users write it for a fixed command (the vector
// form would add a copy of the arguments per command).
task<ringflow::redis::reply> one(connection* c, const std::vector<std::string>& cmd) {
  switch (cmd.size()) {
    case 1:
      return c->command(cmd[0]);
    case 2:
      return c->command(cmd[0], cmd[1]);
    case 3:
      return c->command(cmd[0], cmd[1], cmd[2]);
    case 4:
      return c->command(cmd[0], cmd[1], cmd[2], cmd[3]);
    case 5:
      return c->command(cmd[0], cmd[1], cmd[2], cmd[3], cmd[4]);
    case 6:
      return c->command(cmd[0], cmd[1], cmd[2], cmd[3], cmd[4], cmd[5]);
    default:
      return c->command(cmd);
  }
}

task<std::uint64_t> sender(connection* c, const std::vector<std::string>* cmd,
                           const ringflow::redis::prepared_command* prepared, request_count* count) {
  std::uint64_t errors = 0;
  while (count->take(1)) {
    try {
      if (prepared) {
        co_await c->command(*prepared);
      } else {
        co_await one(c, *cmd);
      }
    } catch (const ringflow::redis::error&) {
      ++errors;
    }
    count->answered(1);
  }
  co_return errors;
}

// redis-benchmark's own loop: send `pipeline` commands, wait for their
// replies, again; one task per connection.
task<std::uint64_t> batch_sender(connection* c, const ringflow::redis::command_batch* b, request_count* count) {
  std::uint64_t errors = 0;
  while (count->take(b->size())) {
    std::vector<ringflow::redis::reply> rs = co_await c->pipeline(*b);
    for (const auto& r : rs) errors += r.type() == ringflow::redis::reply::kind::error;
    count->answered(rs.size());
  }
  co_return errors;
}

task<std::uint64_t> bench(const options* o, request_count* count) {
  std::vector<connection> conns;
  for (unsigned i = 0; i < o->connections; ++i) {
    conns.push_back(co_await connection::connect("127.0.0.1", o->port, {.max_in_flight = o->pipeline}));
  }
  const std::uint64_t senders = std::uint64_t{o->connections} * o->pipeline;
  const ringflow::redis::prepared_command prepared(o->command);
  if (o->batch) {
    ringflow::redis::command_batch b;
    for (unsigned i = 0; i < o->pipeline; ++i) b.add(prepared);
    std::vector<ringflow::join_handle<std::uint64_t>> hs;
    for (unsigned s = 0; s < o->connections; ++s) hs.push_back(ringflow::spawn(batch_sender(&conns[s], &b, count)));
    std::uint64_t errors = 0;
    for (auto& h : hs) errors += co_await std::move(h);
    co_return errors;
  }
  std::vector<ringflow::join_handle<std::uint64_t>> hs;
  for (std::uint64_t s = 0; s < senders; ++s) {
    hs.push_back(ringflow::spawn(sender(&conns[s % o->connections], &o->command, o->prepared ? &prepared : nullptr, count)));
  }
  std::uint64_t errors = 0;
  for (auto& h : hs) errors += co_await std::move(h);
  co_return errors;
}

task<void> ack_one(ringflow::redis::delivery d) { co_await d.ack(); }

// Takes o->consume entries; returns how many were redelivered (0 expected).
task<std::uint64_t> consume(const options* o) {
  ringflow::redis::consumer_options co;
  co.stream = o->stream;
  co.group = o->group;
  co.consumer = "bench-consumer";
  co.prefetch = o->prefetch;
  auto in = co_await ringflow::redis::stream_consumer::open("127.0.0.1", o->port, co);
  auto sub = in.deliveries().subscribe();
  std::vector<ringflow::join_handle<void>> previous;
  previous.reserve(o->request);
  std::uint64_t taken = 0;
  while (taken < o->consume) {
    std::vector<ringflow::redis::delivery> batch = co_await sub.request(std::min<std::uint64_t>(o->request, o->consume - taken));
    if (batch.empty()) break;
    taken += batch.size();
    // The previous batch's acks ran while this one was read.
    for (auto& h : previous) co_await std::move(h);
    previous.clear();
    for (auto& d : batch) previous.push_back(ringflow::spawn_local(ack_one(std::move(d))));
  }
  for (auto& h : previous) co_await std::move(h);
  sub.cancel();
  co_return in.stats().redelivered;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  std::vector<std::string> cmd;
  for (int i = 1; i < argc; ++i) {
    auto arg = [&](const char* name) {
      if (std::strcmp(argv[i], name) != 0 || i + 1 >= argc) return static_cast<const char*>(nullptr);
      return static_cast<const char*>(argv[++i]);
    };
    if (const char* v = arg("--port")) {
      o.port = static_cast<std::uint16_t>(std::atoi(v));
    } else if (const char* v = arg("--connections")) {
      o.connections = static_cast<unsigned>(std::atoi(v));
    } else if (const char* v = arg("--pipeline")) {
      o.pipeline = static_cast<unsigned>(std::atoi(v));
    } else if (const char* v = arg("--requests")) {
      o.requests = std::strtoull(v, nullptr, 10);
    } else if (const char* v = arg("--threads")) {
      o.threads = static_cast<unsigned>(std::atoi(v));
    } else if (const char* v = arg("--consume")) {
      o.consume = std::strtoull(v, nullptr, 10);
    } else if (const char* v = arg("--request")) {
      o.request = std::strtoull(v, nullptr, 10);
    } else if (const char* v = arg("--prefetch")) {
      o.prefetch = std::strtoull(v, nullptr, 10);
    } else if (const char* v = arg("--stream")) {
      o.stream = v;
    } else if (const char* v = arg("--group")) {
      o.group = v;
    } else if (std::strcmp(argv[i], "--prepared") == 0) {
      o.prepared = true;
    } else if (std::strcmp(argv[i], "--batch") == 0) {
      o.batch = true;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      std::fprintf(stderr,
                   "usage: redis_bench [--port P] [--connections C] [--pipeline D] [--requests N] [--threads T] [--prepared | --batch] [CMD ARG...]\n"
                   "       redis_bench [--port P] --consume N [--prefetch P] [--request R] [--stream S] [--group G]\n");
      return 2;
    } else {
      cmd.emplace_back(argv[i]);
    }
  }
  if (!cmd.empty()) o.command = cmd;
  if (o.connections == 0 || o.pipeline == 0 || o.requests == 0 || o.threads == 0) {
    std::fprintf(stderr, "redis_bench: connections, pipeline, requests and threads must be positive\n");
    return 2;
  }
  ringflow::runtime rt({.threads = o.threads});
  if (o.consume > 0) {
    if (o.prefetch == 0) {
      std::fprintf(stderr, "redis_bench: prefetch must be positive\n");
      return 2;
    }
    if (o.request == 0) o.request = o.prefetch;
    double cpu0 = cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t redelivered = rt.block_on(consume(&o));
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = cpu_seconds() - cpu0;
    std::printf(
        "{\"client\": \"ringflow\", \"mode\": \"consume\", \"entries\": %llu, \"prefetch\": %zu, \"request\": %llu, "
        "\"redelivered\": %llu, \"seconds\": %.4f, \"entries_per_s\": %.0f, \"cpu_us_per_entry\": %.3f}\n",
        static_cast<unsigned long long>(o.consume), o.prefetch,
        static_cast<unsigned long long>(o.request), static_cast<unsigned long long>(redelivered), wall,
        static_cast<double>(o.consume) / wall, cpu * 1e6 / static_cast<double>(o.consume));
    return 0;
  }
  double cpu0 = cpu_seconds();
  request_count count(o.requests);
  auto t0 = std::chrono::steady_clock::now();
  std::uint64_t errors = rt.block_on(bench(&o, &count));
  auto end = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(count.end.load()));
  double wall = std::chrono::duration<double>(end - t0).count();
  double cpu = cpu_seconds() - cpu0;
  std::string name;
  for (auto& a : o.command) name += (name.empty() ? "" : " ") + a;
  std::printf(
      "{\"client\": \"ringflow\", \"command\": \"%s\", \"connections\": %u, \"pipeline\": %u, \"requests\": %llu, "
      "\"errors\": %llu, \"seconds\": %.4f, \"rps\": %.0f, \"cpu_us_per_request\": %.3f}\n",
      name.c_str(), o.connections, o.pipeline, static_cast<unsigned long long>(o.requests),
      static_cast<unsigned long long>(errors), wall, static_cast<double>(o.requests) / wall,
      cpu * 1e6 / static_cast<double>(o.requests));
  return errors ? 1 : 0;
}

#endif
