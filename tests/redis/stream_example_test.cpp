// examples/redis_stream driven as an operator would: a producer process and
// two consumer processes of one group against a redis-server of the test's
// own; one consumer is killed with SIGKILL mid-stream. The verdict comes from
// the broker (XLEN, XINFO GROUPS, XINFO CONSUMERS) read by a connection of
// the test's own, not from what the example says about itself: every entry
// the producer added was read by the group and none is left pending, so the
// group acknowledged exactly what was added. The survivor's own report is
// checked only for what the broker cannot tell: it was the one that took the
// victim's entries back. Every wait is on an event (a line printed, an exit,
// a broker state polled) with a generous ceiling; no bound is tight.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ringflow/ringflow.hpp>
#include <ringflow/redis.hpp>

#include "../support/child_process.hpp"
#include "../support/redis_server.hpp"
#include "../support/run.hpp"
#include "../support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringflow::task;
using ringflow::redis::connection;
using ringflow::redis::reply;
using test_support::redis_server;
using test_support::run;

namespace {

using test_support::sanitized;

constexpr int ceiling_ms = 120'000;  // only a hung process reaches it

std::string example_path() {
  const char* p = std::getenv("REDIS_STREAM_EXAMPLE");
  REQUIRE(p != nullptr);
  return p;
}

// A running redis_stream with its stdout on a pipe; killed if still running.
class example_process : public test_support::child_process {
 public:
  explicit example_process(std::vector<std::string> args) : child_process(example_path(), std::move(args), ceiling_ms) {}
};

// "... key=123 ..." -> 123 (the first occurrence; -1 when absent).
long long value_of(const std::string& line, std::string_view key) {
  std::string k = std::string(" ") + std::string(key) + "=";
  auto at = line.find(k);
  if (at == std::string::npos) return -1;
  return std::atoll(line.c_str() + at + k.size());
}

// The group as the broker sees it.
struct broker_view {
  long long length = -1;        // XLEN
  long long entries_read = -1;  // entries the group has read (new deliveries, not claims)
  long long lag = -1, pending = -1;
  long long victim_pending = 0;  // XINFO CONSUMERS: the killed consumer's pending entries
};

const reply* field(const reply& map, std::string_view key) {
  auto e = map.elements();
  for (std::size_t i = 0; i + 1 < e.size(); i += 2)
    if (e[i].type() != reply::kind::array && e[i].str() == key) return &e[i + 1];
  return nullptr;
}

long long int_field(const reply& map, std::string_view key) {
  const reply* v = field(map, key);
  return v && v->type() == reply::kind::integer ? v->integer() : -1;
}

broker_view look(const redis_server& server) {
  return run([](std::uint16_t port) -> task<broker_view> {
    broker_view v;
    connection c = co_await connection::connect("127.0.0.1", port);
    reply len = co_await c.command("XLEN", "jobs");
    v.length = len.integer();
    reply groups = co_await c.command("XINFO", "GROUPS", "jobs");
    for (const reply& g : groups.elements()) {
      const reply* name = field(g, "name");
      if (!name || name->str() != "workers") continue;
      v.entries_read = int_field(g, "entries-read");
      v.lag = int_field(g, "lag");
      v.pending = int_field(g, "pending");
    }
    reply consumers = co_await c.command("XINFO", "CONSUMERS", "jobs", "workers");
    for (const reply& one : consumers.elements()) {
      const reply* name = field(one, "name");
      if (name && name->str() == "victim") v.victim_pending = int_field(one, "pending");
    }
    co_return v;
  }(server.port()));
}

}  // namespace

TEST_CASE("redis_stream example: producer and two consumer processes, one killed with SIGKILL mid-stream: the group "
          "acknowledges exactly what was added",
          "[redis_stream_example]") {
  redis_server server;
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  const std::string count = sanitized ? "600" : "3000";
  const std::string rate = sanitized ? "300" : "1500";
  // Each consumer manages a little under 1000/s (1 ms of work per entry):
  // two keep up with the producer, the survivor alone does not, so the
  // victim holds entries when it dies and the stream is not drained yet.
  auto consumer = [&](const char* name) {
    return std::vector<std::string>{"consume",    "--redis", address, "--name",          name, "--prefetch", "8",
                                    "--work-us", "1000",    "--claim-idle-ms", "500"};
  };
  example_process victim(consumer("victim"));
  example_process survivor(consumer("survivor"));
  example_process producer({"produce", "--redis", address, "--count", count, "--rate", rate});

  // Mid-stream: the victim has acknowledged some entries.
  for (;;) {
    auto l = victim.line_starting("victim t=");
    REQUIRE(l.has_value());
    if (value_of(*l, "acked") > 0) break;
  }
  victim.signal(SIGKILL);
  REQUIRE(victim.wait_exit() == 128 + SIGKILL);
  const long long held_at_death = look(server).victim_pending;
  INFO("entries the victim held unacked when it died: " << held_at_death);

  auto done = producer.line_starting("producer done");
  REQUIRE(done.has_value());
  REQUIRE(value_of(*done, "added") == std::stoll(count));
  REQUIRE(producer.wait_exit() == 0);

  // The survivor drains the stream, the victim's entries included.
  broker_view v;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ceiling_ms);;) {
    v = look(server);
    if (v.lag == 0 && v.pending == 0) break;
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    ::poll(nullptr, 0, 20);  // polling the broker: it has no event to wait on
  }
  REQUIRE(v.length == std::stoll(count));
  REQUIRE(v.entries_read == std::stoll(count));  // every entry was read by the group...
  REQUIRE(v.pending == 0);                       // ...and acknowledged
  REQUIRE(v.victim_pending == 0);

  survivor.signal(SIGTERM);
  std::vector<std::string> seen;
  auto last = survivor.line_starting("survivor done", &seen);
  REQUIRE(last.has_value());
  REQUIRE(survivor.wait_exit() == 0);
  // What the victim held came back to the survivor (XAUTOCLAIM), and said so.
  REQUIRE(value_of(*last, "redelivered") >= held_at_death);
  if (held_at_death > 0) {
    bool announced = false;
    std::string said;
    for (const std::string& l : seen) {
      announced = announced || l.rfind("survivor claimed back ", 0) == 0;
      said += l + "\n";
    }
    INFO("the survivor said:\n" << said << *last);
    REQUIRE(announced);
  }
}

TEST_CASE("redis_stream example: watch prints the group's lag and pending; a bad address is a clear error",
          "[redis_stream_example]") {
  redis_server server;
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  {
    example_process producer({"produce", "--redis", address, "--count", "10", "--rate", "0"});
    auto done = producer.line_starting("producer done");
    REQUIRE(done.has_value());
    REQUIRE(value_of(*done, "added") == 10);
    REQUIRE(producer.wait_exit() == 0);
  }
  {
    example_process watch({"watch", "--redis", address});
    auto l = watch.line_starting("watch t=");
    REQUIRE(l.has_value());
    REQUIRE(value_of(*l, "length") == 10);
    REQUIRE(value_of(*l, "lag") == 10);  // nobody has read yet
    REQUIRE(value_of(*l, "pending") == 0);
    watch.signal(SIGTERM);
    REQUIRE(watch.wait_exit() == 0);
  }
  {
    example_process bad({"consume", "--redis", "127.0.0.1", "--name", "x"});
    REQUIRE(bad.wait_exit() == 1);  // no port: a message, no crash
  }
  {
    example_process sample({"produce", "--redis", address, "--policy", "sample"});
    REQUIRE(sample.wait_exit() == 1);  // refused: a log cannot overwrite its newest entry
  }
}
