// stream_consumer and stream_producer against a real redis-server of each
// test's own (tests/support/redis_server.hpp). What the broker holds is
// checked at the broker (XPENDING, XLEN, XRANGE) by a connection of the
// test's own, not by trusting the client's bookkeeping.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <ringflow/ringflow.hpp>
#include <ringflow/redis.hpp>
#include <ringflow/redis_stream.hpp>

#include "../support/redis_server.hpp"
#include "../support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringflow::task;
using ringflow::redis::add_result;
using ringflow::redis::connection;
using ringflow::redis::consumer_options;
using ringflow::redis::delivery;
using ringflow::redis::producer_options;
using ringflow::redis::reply;
using ringflow::redis::stream_consumer;
using ringflow::redis::stream_producer;
using test_support::redis_server;

// co_await never goes inside REQUIRE (g++ 12 resumes the coroutine wrongly).
namespace {

using test_support::sanitized;

template <class T>
T run(task<T> t, unsigned threads = 1) {
  ringflow::runtime rt({.threads = threads});
  return rt.block_on(std::move(t));
}

constexpr auto ceiling = 30s;  // generous: a wait that long is a failure

// Polls the broker until pred's task says true (a bounded wait on a broker
// event, not a synchronisation by sleeping).
template <class Pred>
task<void> until(Pred pred, const char* what) {
  auto deadline = std::chrono::steady_clock::now() + ceiling;
  for (;;) {
    bool ok = co_await pred();
    if (ok) co_return;
    if (std::chrono::steady_clock::now() > deadline) FAIL("timed out waiting until " << what);
    co_await ringflow::sleep_for(2ms);
  }
}

task<long long> xlen(connection& c, std::string key) {
  reply r = co_await c.command("XLEN", key);
  co_return r.integer();
}

// XPENDING's summary: consumer name -> entries pending for it.
task<std::map<std::string, long long>> pending_by_consumer(connection& c, std::string stream, std::string group) {
  reply r = co_await c.command("XPENDING", stream, group);
  std::map<std::string, long long> out;
  auto parts = r.elements();
  if (parts.size() >= 4 && !parts[3].is_nil())
    for (const reply& p : parts[3].elements()) out[std::string(p.elements()[0].str())] = std::stoll(std::string(p.elements()[1].str()));
  co_return out;
}

task<long long> pending_total(connection& c, std::string stream, std::string group) {
  reply r = co_await c.command("XPENDING", stream, group);
  co_return r.elements()[0].integer();
}

task<connection> observe(const redis_server& s) { co_return co_await connection::connect("127.0.0.1", s.port()); }

// Until a client of s waits in a blocking command (a consumer's next() in
// XREADGROUP ... BLOCK, with nothing to read).
task<void> until_blocked_at_broker(const redis_server& s) {
  connection probe = co_await observe(s);
  co_await until(
      [&]() -> task<bool> {
        reply r = co_await probe.command("INFO", "clients");
        co_return r.str().find("blocked_clients:0") == std::string_view::npos;
      },
      "the next() waits in XREADGROUP at the broker");
}

consumer_options consumer_opts(std::string name, std::size_t prefetch = 4) {
  consumer_options o;
  o.stream = "jobs";
  o.group = "workers";
  o.consumer = std::move(name);
  o.prefetch = prefetch;
  o.block = 20ms;
  return o;
}

producer_options producer_opts(ringflow::overflow policy, std::size_t max_backlog) {
  producer_options o;
  o.stream = "jobs";
  o.group = "workers";
  o.policy = policy;
  o.max_backlog = max_backlog;
  return o;
}

task<stream_producer> open_producer(const redis_server& s, producer_options o) {
  co_return co_await stream_producer::open("127.0.0.1", s.port(), std::move(o));
}
task<stream_consumer> open_consumer(const redis_server& s, consumer_options o) {
  co_return co_await stream_consumer::open("127.0.0.1", s.port(), std::move(o));
}

task<std::vector<std::string>> add_n(stream_producer& p, int n, int from = 0) {
  std::vector<std::string> ids;
  for (int i = from; i < from + n; ++i) {
    ringflow::redis::entry_fields f{{"n", std::to_string(i)}};
    add_result r = co_await p.add(std::move(f));
    ids.push_back(r.id);
  }
  co_return ids;
}

struct shared_tally {
  std::mutex m;
  std::map<std::string, int> acks;  // entry id -> times acked
  std::atomic<long long> acked{0};
  std::atomic<long long> max_pending_seen{0};
  std::atomic<bool> bound_broken{false};
};

// Takes up to prefetch deliveries, checks at the broker that it holds them
// (and no more than prefetch), acks them together (pipelined), until the
// tally reaches total.
task<void> consume_all(stream_consumer* c, connection* probe, shared_tally* t, long long total) {
  const std::size_t prefetch = c->options().prefetch;
  std::vector<delivery> held;
  while (t->acked.load() < total) {
    auto d = co_await ringflow::timeout(50ms, c->next());
    if (d) held.push_back(std::move(*d));
    if (held.size() == prefetch || (!d && !held.empty())) {
      auto pending = co_await pending_by_consumer(*probe, "jobs", "workers");
      long long mine = pending[c->options().consumer];
      if (mine < static_cast<long long>(held.size()) || mine > static_cast<long long>(prefetch)) t->bound_broken = true;
      std::vector<ringflow::join_handle<void>> acks;
      for (auto& h : held) acks.push_back(ringflow::spawn(h.ack()));
      for (auto& a : acks) co_await std::move(a);
      {
        std::lock_guard g(t->m);
        for (auto& h : held) ++t->acks[h.id()];
      }
      t->acked += static_cast<long long>(held.size());
      held.clear();
    }
  }
}

// Watches every consumer's pending count at the broker while they run.
task<void> watch_pending(connection* probe, shared_tally* t, long long total, std::size_t prefetch) {
  while (t->acked.load() < total) {
    auto pending = co_await pending_by_consumer(*probe, "jobs", "workers");
    for (auto& [name, n] : pending) {
      if (n > static_cast<long long>(prefetch)) t->bound_broken = true;
      if (n > t->max_pending_seen) t->max_pending_seen = n;
    }
    co_await ringflow::sleep_for(1ms);
  }
}

}  // namespace

TEST_CASE("redis_stream: two consumers with prefetch 4: every entry acked once, never above 4 pending at the broker",
          "[redis_stream]") {
  redis_server server;
  const long long total = sanitized ? 400 : 10000;
  run([](const redis_server& s, long long total) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 1'000'000));
    auto a = co_await open_consumer(s, consumer_opts("a"));
    auto b = co_await open_consumer(s, consumer_opts("b"));
    connection probe_a = co_await observe(s), probe_b = co_await observe(s), watcher = co_await observe(s),
               check = co_await observe(s);
    shared_tally t;
    // Consumers already waiting while the producer adds.
    auto ca = ringflow::spawn(consume_all(&a, &probe_a, &t, total));
    auto cb = ringflow::spawn(consume_all(&b, &probe_b, &t, total));
    auto w = ringflow::spawn(watch_pending(&watcher, &t, total, 4));
    auto ids = co_await add_n(p, static_cast<int>(total));
    co_await std::move(ca);
    co_await std::move(cb);
    co_await std::move(w);
    REQUIRE_FALSE(t.bound_broken.load());
    REQUIRE(t.max_pending_seen.load() <= 4);
    REQUIRE(static_cast<long long>(t.acks.size()) == total);
    for (auto& id : ids) REQUIRE(t.acks[id] == 1);
    long long left = co_await pending_total(check, "jobs", "workers");
    REQUIRE(left == 0);
    REQUIRE(a.stats().acked + b.stats().acked == static_cast<std::uint64_t>(total));
    REQUIRE(a.stats().redelivered + b.stats().redelivered == 0);
  }(server, total), 2);
}

TEST_CASE("redis_stream: the producer's add completes with the broker's entry id", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 1000));
    connection c = co_await observe(s);
    auto ids = co_await add_n(p, 3);
    reply r = co_await c.command("XRANGE", "jobs", "-", "+");
    REQUIRE(r.elements().size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      REQUIRE(r.elements()[i].elements()[0].str() == ids[i]);
      REQUIRE(r.elements()[i].elements()[1].elements()[1].str() == std::to_string(i));
    }
    REQUIRE(p.stats().added == 3);
    // Many concurrent adds pipeline, each with its own id.
    std::vector<ringflow::join_handle<std::vector<std::string>>> hs;
    for (int i = 0; i < 8; ++i) hs.push_back(ringflow::spawn(add_n(p, 25, 100 * i)));
    std::map<std::string, int> seen;
    for (auto& h : hs) {
      std::vector<std::string> some = co_await std::move(h);
      for (auto& id : some) ++seen[id];
    }
    REQUIRE(seen.size() == 200);
    long long n = co_await xlen(c, "jobs");
    REQUIRE(n == 203);
  }(server), 2);
}

TEST_CASE("redis_stream: acks remove entries from the pending list; a second ack does nothing", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 100));
    auto c = co_await open_consumer(s, consumer_opts("a"));
    connection probe = co_await observe(s);
    auto ids = co_await add_n(p, 2);
    delivery d1 = co_await c.next();
    delivery d2 = co_await c.next();
    REQUIRE(d1.id() == ids[0]);
    REQUIRE(d2.id() == ids[1]);
    REQUIRE_FALSE(d1.redelivered());
    REQUIRE(d1.delivery_count() == 1);
    REQUIRE(d1.fields() == ringflow::redis::entry_fields{{"n", "0"}});
    long long before = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(before == 2);
    REQUIRE(c.held() == 2);
    co_await d1.ack();
    co_await d1.ack();
    long long after = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(after == 1);
    co_await d2.ack();
    long long none = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(none == 0);
    REQUIRE(c.held() == 0);
    REQUIRE(c.stats().acked == 2);
    delivery empty;
    REQUIRE_THROWS_AS(empty.ack(), std::logic_error);
  }(server));
}

// The broker's count of XACK commands executed so far.
task<long long> xack_calls(connection& c) {
  reply r = co_await c.command("INFO", "commandstats");
  std::string text(r.str());
  auto at = text.find("cmdstat_xack:calls=");
  if (at == std::string::npos) co_return 0;
  co_return std::stoll(text.substr(at + 19));
}

task<void> ack_owned(delivery d) { co_await d.ack(); }

TEST_CASE("redis_stream: acks of ids of every width, up to the largest the broker takes, settle them",
          "[redis_stream]") {
  // The XACK is written from the ids' numbers: each must come out as the
  // text the broker sent, the two 20-digit halves of the last id included.
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto c = co_await open_consumer(s, consumer_opts("a"));
    connection probe = co_await observe(s);
    const std::vector<std::string> ids{"1-0", "1-1", "999999999999-12345678901234567890",
                                       "18446744073709551615-18446744073709551615"};
    for (const std::string& id : ids) co_await probe.command("XADD", "jobs", id, "n", "x");
    std::vector<delivery> got;
    for (std::size_t i = 0; i < ids.size(); ++i) got.push_back(co_await c.next());
    for (std::size_t i = 0; i < ids.size(); ++i) REQUIRE(got[i].id() == ids[i]);
    std::vector<ringflow::join_handle<void>> acks;
    for (auto& d : got) acks.push_back(ringflow::spawn_local(ack_owned(std::move(d))));
    for (auto& h : acks) co_await std::move(h);
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
    REQUIRE(c.held() == 0);
    REQUIRE(c.stats().acked == ids.size());
  }(server));
}

TEST_CASE("redis_stream: acks issued together go out as one XACK, each settled by its outcome", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 1000));
    auto c = co_await open_consumer(s, consumer_opts("a", 64));
    connection probe = co_await observe(s);
    co_await add_n(p, 50);
    std::vector<delivery> held;
    while (held.size() < 50) held.push_back(co_await c.next());
    const long long before = co_await xack_calls(probe);
    std::vector<ringflow::join_handle<void>> acks;
    for (auto& d : held) acks.push_back(ringflow::spawn_local(ack_owned(std::move(d))));
    for (auto& a : acks) co_await std::move(a);
    const long long after = co_await xack_calls(probe);
    REQUIRE(after - before <= 2);  // one worker: the 50 join the first ack's batch
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
    REQUIRE(c.stats().acked == 50);
    REQUIRE(c.held() == 0);
  }(server));
}

TEST_CASE("redis_stream: the ack leading a batch cancelled before it sent: another ack of the batch sends it",
          "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 1000));
    auto o = consumer_opts("a", 8);
    o.claim_idle = 50ms;
    auto c = co_await open_consumer(s, o);
    connection probe = co_await observe(s);
    co_await add_n(p, 4);
    std::vector<delivery> held;
    while (held.size() < 4) held.push_back(co_await c.next());
    // One worker, FIFO: the leader runs first, opens the batch and yields;
    // the three others join it; then the leader is cancelled.
    auto leader = ringflow::spawn_local(ack_owned(std::move(held[0])));
    std::vector<ringflow::join_handle<void>> followers;
    for (std::size_t i = 1; i < held.size(); ++i) followers.push_back(ringflow::spawn_local(ack_owned(std::move(held[i]))));
    co_await ringflow::yield();
    leader.cancel();
    for (auto& f : followers) co_await std::move(f);  // settled: none throws
    REQUIRE_THROWS_AS(co_await std::move(leader), ringflow::task_cancelled);
    // The batch carried the cancelled ack's id too: the broker acked all
    // four, nothing is pending, and the consumer holds none of them.
    REQUIRE(c.stats().acked == 4);
    REQUIRE(c.held() == 0);
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
  }(server));
}

TEST_CASE("redis_stream: an entry dropped unacked comes back after claim_idle to another consumer, redelivered",
          "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 100));
    auto o1 = consumer_opts("first");
    o1.claim_idle = 50ms;
    auto o2 = consumer_opts("second");
    o2.claim_idle = 50ms;
    auto first = co_await open_consumer(s, o1);
    auto second = co_await open_consumer(s, o2);
    connection probe = co_await observe(s);
    auto ids = co_await add_n(p, 1);
    std::string id;
    {
      delivery d = co_await first.next();
      id = d.id();
      REQUIRE(d.delivery_count() == 1);
    }  // dropped unacked: still pending for "first"
    auto held = co_await pending_by_consumer(probe, "jobs", "workers");
    REQUIRE(held["first"] == 1);
    auto again = co_await ringflow::timeout(ceiling, second.next());
    REQUIRE(again.has_value());
    REQUIRE(again->id() == id);
    REQUIRE(again->redelivered());
    REQUIRE(again->delivery_count() == 2);
    REQUIRE(again->fields() == ringflow::redis::entry_fields{{"n", "0"}});
    auto moved = co_await pending_by_consumer(probe, "jobs", "workers");
    REQUIRE(moved["second"] == 1);
    REQUIRE(moved["first"] == 0);
    co_await again->ack();
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
    REQUIRE(second.stats().redelivered == 1);
  }(server));
}

TEST_CASE("redis_stream: after max_deliveries an entry goes to the dead-letter stream and is acked", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 100));
    auto o = consumer_opts("a");
    o.claim_idle = 50ms;
    o.max_deliveries = 2;
    o.dead_letter = "jobs-dead";
    auto c = co_await open_consumer(s, o);
    connection probe = co_await observe(s);
    auto ids = co_await add_n(p, 1);
    {
      delivery d = co_await c.next();
      REQUIRE(d.delivery_count() == 1);
    }
    {
      auto d = co_await ringflow::timeout(ceiling, c.next());
      REQUIRE(d.has_value());
      REQUIRE(d->id() == ids[0]);
      REQUIRE(d->delivery_count() == 2);
    }
    // The third delivery is not made: next() keeps waiting, and the entry
    // moves to the dead-letter stream meanwhile.
    auto waiting = ringflow::spawn(ringflow::timeout(ceiling, c.next()));
    co_await until([&]() -> task<bool> { co_return co_await xlen(probe, "jobs-dead") == 1; }, "the entry is dead-lettered");
    waiting.cancel();
    reply dead = co_await probe.command("XRANGE", "jobs-dead", "-", "+");
    auto f = dead.elements()[0].elements()[1].elements();
    REQUIRE(f.size() == 6);
    REQUIRE(f[0].str() == "n");
    REQUIRE(f[1].str() == "0");
    REQUIRE(f[2].str() == "dead-letter-id");
    REQUIRE(f[3].str() == ids[0]);
    REQUIRE(f[4].str() == "dead-letter-deliveries");
    REQUIRE(f[5].str() == "3");
    co_await until([&]() -> task<bool> { co_return co_await pending_total(probe, "jobs", "workers") == 0; },
                   "the dead-lettered entry is acked");
    REQUIRE(c.stats().dead_lettered == 1);
  }(server));
}

TEST_CASE("redis_stream: block suspends add while the group's backlog is at max_backlog", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 3));
    auto c = co_await open_consumer(s, consumer_opts("a"));
    connection probe = co_await observe(s);
    co_await add_n(p, 3);
    auto fourth = ringflow::spawn(add_n(p, 1, 3));
    co_await until([&]() -> task<bool> { co_return p.stats().blocked_adds == 1; }, "the fourth add waits");
    // Delivered but unacked still counts: the backlog stays 3.
    delivery d = co_await c.next();
    long long n = co_await xlen(probe, "jobs");
    REQUIRE(n == 3);
    REQUIRE(p.stats().added == 3);
    co_await d.ack();  // backlog 2: room
    auto id = co_await std::move(fourth);
    REQUIRE(id.size() == 1);
    long long after = co_await xlen(probe, "jobs");
    REQUIRE(after == 4);
    REQUIRE(p.stats().added == 4);
  }(server));
}

TEST_CASE("redis_stream: drop_incoming refuses while the backlog is full", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::drop_incoming, 3));
    auto c = co_await open_consumer(s, consumer_opts("a"));
    connection probe = co_await observe(s);
    co_await add_n(p, 3);
    ringflow::redis::entry_fields f{{"n", "3"}};
    add_result r = co_await p.add(std::move(f));
    REQUIRE(r.status == ringflow::send_status::dropped);
    REQUIRE(r.id.empty());
    REQUIRE(p.stats().dropped == 1);
    long long n = co_await xlen(probe, "jobs");
    REQUIRE(n == 3);
    delivery d = co_await c.next();
    co_await d.ack();
    ringflow::redis::entry_fields g{{"n", "4"}};
    add_result ok = co_await p.add(std::move(g));
    REQUIRE(ok.status == ringflow::send_status::sent);
    REQUIRE_FALSE(ok.id.empty());
  }(server));
}

TEST_CASE("redis_stream: drop_oldest trims with MAXLEN and counts what it trimmed", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::drop_oldest, 3));
    connection probe = co_await observe(s);
    std::vector<add_result> rs;
    for (int i = 0; i < 5; ++i) {
      ringflow::redis::entry_fields f{{"n", std::to_string(i)}};
      rs.push_back(co_await p.add(std::move(f)));
    }
    REQUIRE(rs[0].trimmed == 0);
    REQUIRE(rs[2].trimmed == 0);
    REQUIRE(rs[3].trimmed == 1);
    REQUIRE(rs[4].trimmed == 1);
    REQUIRE(p.stats().trimmed == 2);
    long long n = co_await xlen(probe, "jobs");
    REQUIRE(n == 3);
    reply first = co_await probe.command("XRANGE", "jobs", "-", "+", "COUNT", 1);
    REQUIRE(first.elements()[0].elements()[0].str() == rs[2].id);
  }(server));
}

TEST_CASE("redis_stream: a trimmed entry pending for a consumer is acknowledged, not delivered", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::drop_oldest, 2));
    connection probe = co_await observe(s);
    co_await add_n(p, 2);
    {
      auto c = co_await open_consumer(s, consumer_opts("a"));
      delivery d1 = co_await c.next();
      delivery d2 = co_await c.next();
    }  // both dropped and the consumer gone: pending for "a"
    co_await add_n(p, 2, 2);  // trims both
    auto c = co_await open_consumer(s, consumer_opts("a"));
    delivery d = co_await c.next();
    REQUIRE(d.fields() == ringflow::redis::entry_fields{{"n", "2"}});
    REQUIRE_FALSE(d.redelivered());
    auto left = co_await pending_by_consumer(probe, "jobs", "workers");
    REQUIRE(left["a"] <= 2);
  }(server));
}

TEST_CASE("redis_stream: bad options are refused; sample has no broker form", "[redis_stream]") {
  auto sample = producer_opts(ringflow::overflow::sample, 3);
  REQUIRE_THROWS_AS(stream_producer::open("127.0.0.1", 6379, sample), std::invalid_argument);
  REQUIRE_THROWS_AS(stream_producer::open("127.0.0.1", 6379, producer_opts(ringflow::overflow::block, 0)),
                    std::invalid_argument);
  REQUIRE_THROWS_AS(stream_producer::open("127.0.0.1", 6379, producer_opts(ringflow::overflow::block, SIZE_MAX)),
                    std::invalid_argument);
  REQUIRE_THROWS_AS(stream_producer::open("", 6379, producer_opts(ringflow::overflow::block, 3)), std::invalid_argument);
  REQUIRE_THROWS_AS(stream_consumer::open("127.0.0.1", 6379, consumer_opts("a", 0)), std::invalid_argument);
  auto no_name = consumer_opts("");
  REQUIRE_THROWS_AS(stream_consumer::open("127.0.0.1", 6379, no_name), std::invalid_argument);
  auto no_dlq = consumer_opts("a");
  no_dlq.max_deliveries = 3;
  REQUIRE_THROWS_AS(stream_consumer::open("127.0.0.1", 6379, no_dlq), std::invalid_argument);
  auto no_idle = consumer_opts("a");
  no_idle.claim_idle = 0ms;
  REQUIRE_THROWS_AS(stream_consumer::open("127.0.0.1", 6379, no_idle), std::invalid_argument);
  stream_consumer closed;
  REQUIRE_THROWS_AS(closed.next(), std::logic_error);
  stream_producer none;
  REQUIRE_THROWS_AS(none.add({{"a", "b"}}), std::logic_error);
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 3));
    REQUIRE_THROWS_AS(p.add({}), std::invalid_argument);
    // A key of another type: the broker's error, and the producer survives.
    connection c = co_await observe(s);
    co_await c.command("SET", "plain", "x");
    auto o = producer_opts(ringflow::overflow::block, 3);
    o.stream = "plain";
    REQUIRE_THROWS_AS(co_await open_producer(s, o), ringflow::redis::error);
    auto ids = co_await add_n(p, 1);
    REQUIRE(ids.size() == 1);
  }(server));
}

TEST_CASE("redis_stream: request(n) on the consumer's subscription reads n entries from the broker", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 100));
    auto c = co_await open_consumer(s, consumer_opts("a", 8));
    connection probe = co_await observe(s);
    auto ids = co_await add_n(p, 10);
    auto sub = c.deliveries().subscribe();
    std::vector<delivery> got;
    while (got.size() < 3) {
      auto batch = co_await sub.request(3 - got.size());
      for (auto& d : batch) got.push_back(std::move(d));
    }
    auto pending = co_await pending_by_consumer(probe, "jobs", "workers");
    REQUIRE(pending["a"] == 3);  // not the prefetch of 8: the demand decides
    for (std::size_t i = 0; i < 3; ++i) REQUIRE(got[i].id() == ids[i]);
    for (auto& d : got) co_await d.ack();
    got.clear();
    while (got.size() < 5) {
      auto batch = co_await sub.request(5 - got.size());
      for (auto& d : batch) got.push_back(std::move(d));
    }
    auto later = co_await pending_by_consumer(probe, "jobs", "workers");
    REQUIRE(later["a"] == 5);
    REQUIRE(got[0].id() == ids[3]);
    for (auto& d : got) co_await d.ack();
    sub.cancel();
  }(server));
}

TEST_CASE("redis_stream: a restarted consumer resumes the entries it held", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 100));
    connection probe = co_await observe(s);
    auto ids = co_await add_n(p, 5);
    {
      auto c = co_await open_consumer(s, consumer_opts("w1", 3));
      delivery a = co_await c.next();
      delivery b = co_await c.next();
      delivery d = co_await c.next();
      co_await a.ack();
    }  // "crashed" holding two (and nothing claims them: claim_idle is long)
    auto held = co_await pending_by_consumer(probe, "jobs", "workers");
    REQUIRE(held["w1"] == 2);
    auto c = co_await open_consumer(s, consumer_opts("w1", 3));
    std::vector<delivery> got;
    for (int i = 0; i < 4; ++i) {
      got.push_back(co_await c.next());
      co_await got.back().ack();  // prefetch 3: room for the fourth
    }
    REQUIRE(got[0].id() == ids[1]);
    REQUIRE(got[0].redelivered());
    REQUIRE(got[0].delivery_count() == 2);
    REQUIRE(got[1].id() == ids[2]);
    REQUIRE(got[1].redelivered());
    REQUIRE(got[2].id() == ids[3]);
    REQUIRE_FALSE(got[2].redelivered());
    REQUIRE(got[3].id() == ids[4]);
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
  }(server));
}

TEST_CASE("redis_stream: connections lost mid-stream: commands fail with system_error, the consumer reconnects and "
          "resumes its pending entries",
          "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 100));
    auto o = consumer_opts("a", 2);
    o.claim_idle = 50ms;  // the dropped two are due soon; the loss is noticed then
    auto c = co_await open_consumer(s, o);
    connection probe = co_await observe(s);
    auto ids = co_await add_n(p, 4);
    std::string first;
    {
      delivery d1 = co_await c.next();
      delivery d2 = co_await c.next();
      first = d1.id();
      co_await probe.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
      // The producer's connection is gone too: its next add fails.
      bool lost = false;
      try {
        co_await add_n(p, 1, 4);
      } catch (const std::system_error&) {
        lost = true;
      }
      REQUIRE(lost);
      // An ack on the lost connection fails; the entry stays pending.
      REQUIRE_THROWS_AS(co_await d1.ack(), std::system_error);
    }
    // Resumes: first what it held (two, redelivered), then the rest.
    std::vector<delivery> got;
    for (int i = 0; i < 4; ++i) {
      auto d = co_await ringflow::timeout(ceiling, c.next());
      REQUIRE(d.has_value());
      got.push_back(std::move(*d));
      co_await got.back().ack();
    }
    REQUIRE(got[0].id() == ids[0]);
    REQUIRE(got[0].redelivered());
    REQUIRE(got[1].id() == ids[1]);
    REQUIRE(got[2].id() == ids[2]);
    REQUIRE(got[3].id() == ids[3]);
    REQUIRE(c.stats().reconnects >= 1);
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
  }(server));
}

TEST_CASE("redis_stream: a server at maxmemory refuses adds with redis::error (-OOM)", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 100));
    auto trimming = co_await open_producer(s, producer_opts(ringflow::overflow::drop_oldest, 100));
    connection admin = co_await observe(s);
    co_await admin.command("CONFIG", "SET", "maxmemory", 1);
    std::string text;
    try {
      co_await add_n(p, 1);
    } catch (const ringflow::redis::error& e) {
      text = e.what();
    }
    REQUIRE(text.find("OOM") != std::string::npos);
    std::string trimming_text;
    try {
      co_await add_n(trimming, 1);
    } catch (const ringflow::redis::error& e) {
      trimming_text = e.what();
    }
    REQUIRE(trimming_text.find("OOM") != std::string::npos);
    co_await admin.command("CONFIG", "SET", "maxmemory", 0);
    auto ids = co_await add_n(p, 1);  // the producer survived
    REQUIRE(ids.size() == 1);
  }(server));
}

TEST_CASE("redis_stream: a server restart mid-stream: what was in flight fails, the consumer reconnects and resumes "
          "its pending entries, nothing is lost",
          "[redis_stream]") {
  redis_server server;
  run([](redis_server* s) -> task<void> {
    auto p = co_await open_producer(*s, producer_opts(ringflow::overflow::block, 100));
    auto o = consumer_opts("a", 3);
    o.claim_idle = 30s;  // nothing is claimed by idleness here: what comes back, comes from the pending list
    auto c = co_await open_consumer(*s, o);
    auto ids = co_await add_n(p, 3);
    delivery d1 = co_await c.next();
    std::optional<delivery> d2(co_await c.next());
    delivery d3 = co_await c.next();
    co_await d1.ack();
    d2.reset();  // its handler failed: pending, to come back
    {
      connection probe = co_await observe(*s);
      co_await probe.command("SAVE");  // the stream and the group's pending list survive the restart
    }
    // A next() waiting at the broker (one place free, nothing new) while
    // the server dies and comes back.
    auto waiting = ringflow::spawn(ringflow::timeout(ceiling, c.next()));
    co_await until_blocked_at_broker(*s);
    s->restart();
    auto again = co_await std::move(waiting);
    REQUIRE(again.has_value());
    REQUIRE(again->id() == ids[1]);  // the one it held, back from its pending list
    REQUIRE(again->redelivered());
    REQUIRE(c.stats().reconnects >= 1);
    co_await again->ack();
    co_await d3.ack();  // a delivery taken before the restart is acked after it
    // The producer does not reconnect: its connection is gone.
    ringflow::redis::entry_fields lost{{"n", "lost"}};
    REQUIRE_THROWS_AS(co_await p.add(std::move(lost)), std::system_error);
    auto fresh = co_await open_producer(*s, producer_opts(ringflow::overflow::block, 100));
    auto more = co_await add_n(fresh, 1, 3);
    auto third = co_await ringflow::timeout(ceiling, c.next());
    REQUIRE(third.has_value());
    REQUIRE(third->id() == more[0]);
    REQUIRE_FALSE(third->redelivered());
    co_await third->ack();
    connection probe = co_await observe(*s);
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
    long long n = co_await xlen(probe, "jobs");
    REQUIRE(n == 4);
  }(&server));
}

TEST_CASE("redis_stream: a consumer that lost its server retries with backoff, doubled per failed attempt up to "
          "reconnect_max",
          "[redis_stream]") {
  // The server dies; in its place a listener takes each connection and
  // closes it at once, so every attempt fails and is seen as it is made.
  // A gap between two attempts is at least the wait before the second (a
  // timer never fires early): these lower bounds hold on any machine. The
  // cap is checked with a bound ten times too wide to be timing: without
  // it the last wait would be 5 ms * 2^11 = 10 s.
  redis_server server;
  run([](redis_server* s) -> task<void> {
    auto o = consumer_opts("a", 1);
    o.reconnect_min = 5ms;
    o.reconnect_max = 80ms;
    auto c = co_await open_consumer(*s, o);
    auto waiting = ringflow::spawn(c.next());
    co_await until_blocked_at_broker(*s);
    const std::uint16_t port = s->port();
    s->kill();
    auto impostor = ringflow::tcp_listener::bind("127.0.0.1", port);
    // An attempt opens the consumer's two connections (its reads', its
    // acks'), then fails on the first command; its first accept comes
    // before that failure, so the next attempt's first accept comes at
    // least the wait later.
    std::vector<std::chrono::steady_clock::time_point> attempts;
    for (int i = 0; i < 2 * 12; ++i) {
      auto accepted = co_await ringflow::timeout(ceiling, impostor.accept());
      REQUIRE(accepted.has_value());
      if (i % 2 == 0) attempts.push_back(std::chrono::steady_clock::now());
      accepted->close();
    }
    waiting.cancel();
    bool cancelled = false;
    try {
      (void)co_await std::move(waiting);
    } catch (const ringflow::task_cancelled&) {
      cancelled = true;
    }
    REQUIRE(cancelled);
    REQUIRE(c.stats().reconnects == 0);
    // The first attempt came after a wait of 5 ms; the ones after it after
    // 10, 20, 40, then 80 ms each.
    std::chrono::milliseconds wait = 10ms;
    for (std::size_t k = 1; k < attempts.size(); ++k) {
      const auto gap = attempts[k] - attempts[k - 1];
      const double ms = std::chrono::duration<double, std::milli>(gap).count();
      INFO("attempt " << k << ": " << ms << " ms after the one before");
      REQUIRE(gap >= wait);
      // Capped: uncapped, this last wait would be 10 ms * 2^10, about 10 s.
      if (k + 1 == attempts.size()) REQUIRE(gap < 5s);
      wait = std::min(2 * wait, std::chrono::milliseconds(80));
    }
  }(&server));
}

TEST_CASE("redis_stream: an ack whose task never ran gives its place back: the entry comes back", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 100));
    auto o = consumer_opts("a", 1);
    o.claim_idle = 50ms;
    auto c = co_await open_consumer(s, o);
    auto ids = co_await add_n(p, 2);
    delivery d = co_await c.next();
    { auto never_awaited = d.ack(); }
    REQUIRE(c.held() == 1);  // dropped, still pending here
    auto again = co_await ringflow::timeout(ceiling, c.next());
    REQUIRE(again.has_value());
    REQUIRE(again->id() == ids[0]);
    REQUIRE(again->delivery_count() == 2);
    co_await again->ack();
    delivery second = co_await c.next();
    REQUIRE(second.id() == ids[1]);
    co_await second.ack();
    connection probe = co_await observe(s);
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
  }(server));
}

namespace {
task<void> add_slowly(stream_producer* p, int n) {
  for (int i = 0; i < n; ++i) {
    ringflow::redis::entry_fields f{{"n", std::to_string(i)}};
    co_await p->add(std::move(f));
    co_await ringflow::sleep_for(1ms);
  }
}
}  // namespace

TEST_CASE("redis_stream: next() cancelled by timeout at any point loses no entry", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    const int n = 60;
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 1000));
    auto c = co_await open_consumer(s, consumer_opts("a", 4));
    auto adder = ringflow::spawn(add_slowly(&p, n));
    std::map<std::string, int> got;
    int cancelled = 0;
    auto deadline = std::chrono::steady_clock::now() + ceiling;
    while (static_cast<int>(got.size()) < n && std::chrono::steady_clock::now() < deadline) {
      // Short timeouts cut next() in its reads and claims; each later call
      // must find what the cut one had taken at the broker.
      auto d = co_await ringflow::timeout(std::chrono::microseconds(300 + 97 * (cancelled % 13)), c.next());
      if (!d) {
        ++cancelled;
        continue;
      }
      ++got[d->id()];
      co_await d->ack();
    }
    co_await std::move(adder);
    REQUIRE(static_cast<int>(got.size()) == n);
    for (auto& [id, times] : got) REQUIRE(times == 1);
    REQUIRE(cancelled > 0);
    connection probe = co_await observe(s);
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
  }(server), 2);
}

TEST_CASE("redis_stream: extreme options behave", "[redis_stream]") {
  auto huge = consumer_opts("a", SIZE_MAX);
  REQUIRE_THROWS_AS(stream_consumer::open("127.0.0.1", 6379, huge), std::invalid_argument);
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    auto po = producer_opts(ringflow::overflow::block, std::size_t{1} << 53);
    po.backoff_max = std::chrono::milliseconds::max();
    auto p = co_await open_producer(s, po);
    auto o = consumer_opts("a", 2);
    o.claim_idle = std::chrono::milliseconds::max();
    o.block = std::chrono::milliseconds::max();
    o.reconnect_max = std::chrono::milliseconds::max();
    o.max_deliveries = SIZE_MAX;
    o.dead_letter = "dead";
    auto c = co_await open_consumer(s, o);
    auto ids = co_await add_n(p, 1);
    delivery d = co_await c.next();
    REQUIRE(d.id() == ids[0]);
    co_await d.ack();
    REQUIRE(c.options().claim_idle < std::chrono::milliseconds::max());
  }(server));
}

TEST_CASE("redis_stream: a consumer process killed with SIGKILL mid-batch: another reclaims its entries, every entry "
          "is acked",
          "[redis_stream]") {
  redis_server server;
  const int n = 40;
  std::vector<std::string> ids = run([](const redis_server& s, int n) -> task<std::vector<std::string>> {
    auto p = co_await open_producer(s, producer_opts(ringflow::overflow::block, 1000));
    co_return co_await add_n(p, n);
  }(server, n));
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  // Forked while no runtime runs: the child starts its own.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(ready[0]);
    try {
      ringflow::runtime rt({.threads = 1});
      rt.block_on([](const redis_server& s, int fd) -> task<void> {
        auto c = co_await open_consumer(s, consumer_opts("victim", 4));
        std::vector<delivery> batch;
        for (int i = 0; i < 4; ++i) batch.push_back(co_await c.next());
        co_await batch[0].ack();  // one acked, three held unacked when it dies
        char r = 'r';
        if (::write(fd, &r, 1) != 1) ::_exit(2);
        for (;;) co_await ringflow::sleep_for(1s);
      }(server, ready[1]));
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(ready[1]);
  pollfd pfd{ready[0], POLLIN, 0};
  REQUIRE(::poll(&pfd, 1, 30'000) == 1);
  char r = 0;
  REQUIRE(::read(ready[0], &r, 1) == 1);
  ::close(ready[0]);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  run([](const redis_server& s, const std::vector<std::string>& ids) -> task<void> {
    connection probe = co_await observe(s);
    auto before = co_await pending_by_consumer(probe, "jobs", "workers");
    REQUIRE(before["victim"] == 3);
    auto o = consumer_opts("survivor", 4);
    o.claim_idle = 50ms;
    auto c = co_await open_consumer(s, o);
    std::map<std::string, int> got;
    int redelivered = 0;
    while (got.size() < ids.size() - 1) {
      auto d = co_await ringflow::timeout(ceiling, c.next());
      REQUIRE(d.has_value());
      ++got[d->id()];
      if (d->redelivered()) ++redelivered;
      co_await d->ack();
    }
    REQUIRE(redelivered == 3);
    REQUIRE(got.count(ids[0]) == 0);  // the victim acked it
    for (std::size_t i = 1; i < ids.size(); ++i) REQUIRE(got[ids[i]] == 1);
    long long left = co_await pending_total(probe, "jobs", "workers");
    REQUIRE(left == 0);
  }(server, ids));
}

TEST_CASE("redis_stream: the header's example, as written", "[redis_stream]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    using namespace ringflow::redis;
    producer_options po{.stream = "jobs", .group = "workers", .max_backlog = 10'000};
    auto out = co_await stream_producer::open("127.0.0.1", s.port(), po);
    entry_fields job{{"job", "42"}};
    add_result r = co_await out.add(std::move(job));
    consumer_options co{.stream = "jobs", .group = "workers", .consumer = "worker-1", .prefetch = 16};
    auto in = co_await stream_consumer::open("127.0.0.1", s.port(), co);
    delivery d = co_await in.next();
    REQUIRE(d.id() == r.id);
    REQUIRE(d.fields() == entry_fields{{"job", "42"}});
    co_await d.ack();
    auto sub = in.deliveries().subscribe();
    entry_fields more{{"job", "43"}};
    co_await out.add(std::move(more));
    std::vector<delivery> batch = co_await sub.request(8);
    REQUIRE(batch.size() == 1);
    co_await batch[0].ack();
    sub.cancel();
  }(server));
}
