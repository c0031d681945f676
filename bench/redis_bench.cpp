// redis_bench: ringflow's Redis client against a running redis-server, the
// load redis-benchmark makes with `-c C -P D -n N CMD...`: C connections,
// each with D commands in flight all the time (D tasks per connection, each
// sending its next command when its reply came), N commands in all. Prints
// one JSON line: requests per second and the client's CPU time (user + sys,
// getrusage) per request.
//
//   redis_bench --port 6379 --connections 50 --pipeline 16 --requests 1000000 PING
//   redis_bench --port 6379 SET key:bench xxx
// Exit 77 when ringflow was built without its Redis client.
#include <sys/resource.h>

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
  std::vector<std::string> command{"PING"};
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
    default:
      return c->command(cmd);
  }
}

task<std::uint64_t> sender(connection* c, const std::vector<std::string>* cmd, std::uint64_t n) {
  std::uint64_t errors = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    try {
      co_await one(c, *cmd);
    } catch (const ringflow::redis::error&) {
      ++errors;
    }
  }
  co_return errors;
}

task<std::uint64_t> bench(const options* o) {
  std::vector<connection> conns;
  for (unsigned i = 0; i < o->connections; ++i) {
    conns.push_back(co_await connection::connect("127.0.0.1", o->port, {.max_in_flight = o->pipeline}));
  }
  const std::uint64_t senders = std::uint64_t{o->connections} * o->pipeline;
  std::vector<ringflow::join_handle<std::uint64_t>> hs;
  for (std::uint64_t s = 0; s < senders; ++s) {
    std::uint64_t n = o->requests / senders + (s < o->requests % senders ? 1 : 0);
    hs.push_back(ringflow::spawn(sender(&conns[s % o->connections], &o->command, n)));
  }
  std::uint64_t errors = 0;
  for (auto& h : hs) errors += co_await std::move(h);
  co_return errors;
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
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      std::fprintf(stderr, "usage: redis_bench [--port P] [--connections C] [--pipeline D] [--requests N] [--threads T] [CMD ARG...]\n");
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
  double cpu0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  std::uint64_t errors = rt.block_on(bench(&o));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
