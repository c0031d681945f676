// redis_stream: a producer and a consumer group on a Redis stream, each in a
// process of its own, printing once a second what the broker holds.
//
//   redis_stream produce --redis 127.0.0.1:6379 [--rate 2000] [--count 0] [--policy block]
//                        [--max-backlog 10000] [--stream jobs] [--group workers]
//   redis_stream consume --redis 127.0.0.1:6379 --name c1 [--prefetch 16] [--work-us 1000]
//                        [--claim-idle-ms 2000] [--stream jobs] [--group workers]
//   redis_stream watch   --redis 127.0.0.1:6379 [--stream jobs] [--group workers]
//
// Try it: a producer at 2000 entries/s and two consumers of 1000/s each
// (--work-us 1000), then `kill -9` one consumer. Its unacked entries stay
// pending at the broker under its name (watch shows them, idle and growing);
// after --claim-idle-ms the survivor claims them (XAUTOCLAIM inside
// stream_consumer::next) and prints "claimed back" at once; the group's pending
// count returns to its usual level and nothing is lost.
//
// produce: adds entries {seq, producer} at --rate (0: as fast as the policy
// lets it) until --count entries are in (0: until SIGINT/SIGTERM). With
// --policy block (the default) add() waits while the group's backlog (lag +
// pending) is at --max-backlog, so a slow group slows the producer, across
// processes. Every add goes through a circuit_breaker: a server refusing
// writes (an -OOM reply at maxmemory) or gone opens it after 3 failures in a
// row, and the producer then waits out the cool-down instead of hammering
// the broker; the entry is retried, not lost. A lost connection is reopened.
// Prints each second (and every breaker transition)
//   producer t=3s added=6000 (2000/s) dropped=0 trimmed=0 failures=0 rejected=0 | group lag=12 pending=32
// ("rejected": attempts the open breaker turned away) and at the end
// "producer done added=N dropped=D trimmed=T failures=F rejected=R seconds=S".
//
// consume: one consumer of the group, named --name (unique per live
// consumer): next(), --work-us of simulated work, ack(). It holds at most
// --prefetch entries unacked at the broker. Prints each second
//   c1 t=3s acked=2990 (1000/s) redelivered=0 held=16 | group lag=12 pending=32
// and on SIGINT/SIGTERM "c1 done acked=N redelivered=R delivered=D".
//
// watch: the group seen from the broker (XINFO STREAM/GROUPS/CONSUMERS):
//   watch t=3s length=6000 added=6000 (2000/s) acked=5968 (1990/s) lag=0 pending=32 | c1 pending=16 idle=1ms, ...
// acked is what the group has read minus what it still holds (entries-read
// - pending).
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <vector>

#include <ringflow/circuit_breaker.hpp>
#include <ringflow/redis.hpp>
#include <ringflow/redis_stream.hpp>
#include <ringflow/ringflow.hpp>

using namespace std::chrono_literals;
using ringflow::task;
namespace redis = ringflow::redis;

namespace {

using clock_type = std::chrono::steady_clock;

struct common_options {
  std::string redis = "127.0.0.1:6379";
  std::string host;
  std::uint16_t port = 0;
  std::string stream = "jobs";
  std::string group = "workers";
};

struct produce_options {
  double rate = 2000;
  std::uint64_t count = 0;
  std::size_t max_backlog = 10'000;
  std::string policy = "block";
};

struct consume_options {
  std::string name;
  std::size_t prefetch = 16;
  long work_us = 1000;
  long claim_idle_ms = 2000;
};

// "host:port" (the last colon splits, so "::1:6379" works too).
void split_address(common_options& c) {
  auto colon = c.redis.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == c.redis.size())
    throw std::invalid_argument("--redis wants HOST:PORT, got '" + c.redis + "'");
  c.host = c.redis.substr(0, colon);
  unsigned long port = std::stoul(c.redis.substr(colon + 1));
  if (port == 0 || port > 65535) throw std::invalid_argument("--redis: port must be 1..65535");
  c.port = static_cast<std::uint16_t>(port);
}

double seconds_since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

// ---- what the broker says ----------------------------------------------------

// A flat RESP2 map (XINFO's [name, value, name, value, ...]): the value of key.
const redis::reply* field(const redis::reply& map, std::string_view key) {
  auto e = map.elements();
  for (std::size_t i = 0; i + 1 < e.size(); i += 2)
    if (e[i].type() != redis::reply::kind::array && e[i].str() == key) return &e[i + 1];
  return nullptr;
}

long long integer_field(const redis::reply& map, std::string_view key, long long otherwise = -1) {
  const redis::reply* v = field(map, key);
  return v && v->type() == redis::reply::kind::integer ? v->integer() : otherwise;
}

struct consumer_view {
  std::string name;
  long long pending = 0, idle_ms = 0;
};

struct group_view {
  bool exists = false;
  long long length = 0, added = 0;           // XLEN, entries-added (ever)
  long long lag = -1, pending = 0, read = -1;  // -1: the broker cannot say
  std::vector<consumer_view> consumers;
  long long acked() const { return read >= 0 ? read - pending : -1; }
};

task<group_view> read_group(redis::connection& c, const common_options& o, bool with_consumers) {
  group_view v;
  redis::reply stream_info, groups;
  try {
    stream_info = co_await c.command("XINFO", "STREAM", o.stream);
    groups = co_await c.command("XINFO", "GROUPS", o.stream);
  } catch (const redis::error&) {
    co_return v;  // no such key yet
  }
  v.length = integer_field(stream_info, "length", 0);
  v.added = integer_field(stream_info, "entries-added", v.length);
  for (const redis::reply& g : groups.elements()) {
    const redis::reply* name = field(g, "name");
    if (!name || name->str() != o.group) continue;
    v.exists = true;
    v.pending = integer_field(g, "pending", 0);
    v.lag = integer_field(g, "lag");
    v.read = integer_field(g, "entries-read");
  }
  if (v.exists && with_consumers) {
    redis::reply cs = co_await c.command("XINFO", "CONSUMERS", o.stream, o.group);
    for (const redis::reply& one : cs.elements()) {
      consumer_view cv;
      if (const redis::reply* n = field(one, "name")) cv.name = std::string(n->str());
      cv.pending = integer_field(one, "pending", 0);
      cv.idle_ms = integer_field(one, "idle", 0);
      v.consumers.push_back(std::move(cv));
    }
  }
  co_return v;
}

std::string group_suffix(const group_view& g) {
  if (!g.exists) return " | group not created yet";
  return fmt::format(" | group lag={} pending={}", g.lag >= 0 ? std::to_string(g.lag) : std::string("?"), g.pending);
}

void print_line(const std::string& s) {
  std::fputs(s.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);  // a pipe (a test, a supervisor) sees each line at once
}

// Cancels a helper task and waits until its frame is gone (it borrows the
// caller's state). A helper that failed (the broker unreachable) says why.
template <class T>
task<void> finish(ringflow::join_handle<T>& h, const char* what) {
  h.cancel();
  try {
    co_await std::move(h);
  } catch (const ringflow::task_cancelled&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redis_stream: %s stopped: %s\n", what, e.what());
  }
}

// ---- produce -----------------------------------------------------------------

struct producer_tally {
  std::uint64_t added = 0, dropped = 0, trimmed = 0, failures = 0, rejected = 0;
};

redis::entry_fields entry_for(std::uint64_t seq) {
  redis::entry_fields f;
  f.emplace_back("seq", std::to_string(seq));
  f.emplace_back("producer", std::to_string(::getpid()));
  return f;
}

task<redis::stream_producer> open_producer(const common_options& o, const redis::producer_options& po) {
  for (auto backoff = 50ms;; backoff = std::min(backoff * 2, std::chrono::milliseconds(2000))) {
    try {
      co_return co_await redis::stream_producer::open(o.host, o.port, po);
    } catch (const std::system_error& e) {
      print_line(fmt::format("producer cannot reach {}: {}; retrying in {} ms", o.redis, e.what(), backoff.count()));
    }
    co_await ringflow::sleep_for(backoff);
  }
}

// Adds until count (or for ever); the tally survives a stop.
task<void> produce_loop(const common_options& o, const produce_options& p, redis::producer_options po, producer_tally* t) {
  redis::stream_producer out = co_await open_producer(o, po);
  ringflow::breaker_options bo;
  bo.failure_threshold = 3;
  bo.cool_down = 1s;
  bo.on_state_change = [](ringflow::breaker_state from, ringflow::breaker_state to) {
    print_line(fmt::format("producer breaker {} -> {}", ringflow::to_string(from), ringflow::to_string(to)));
  };
  ringflow::circuit_breaker breaker(bo);
  const auto t0 = clock_type::now();
  for (std::uint64_t seq = 0; p.count == 0 || seq < p.count; ++seq) {
    if (p.rate > 0) {  // paced: entry seq is due at seq / rate
      auto due = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(static_cast<double>(seq) / p.rate));
      if (due > clock_type::now()) co_await ringflow::sleep_for(due - clock_type::now());
    }
    for (;;) {  // until this entry is in (or dropped by the policy)
      std::optional<redis::add_result> r;
      std::chrono::nanoseconds wait = 200ms;
      bool lost = false;
      std::string failure;
      redis::entry_fields fields = entry_for(seq);
      try {
        r = co_await breaker.call(out.add(std::move(fields)));
      } catch (const ringflow::circuit_open& e) {
        ++t->rejected;  // the broker never saw this attempt
        wait = std::max<std::chrono::nanoseconds>(e.remaining_cool_down(), 10ms);
      } catch (const redis::error& e) {
        failure = e.what();  // -OOM at maxmemory, a key of another type...
      } catch (const std::system_error& e) {
        failure = e.what();
        lost = true;
      }
      if (r) {
        if (r->status == ringflow::send_status::dropped) {
          ++t->dropped;
        } else {
          ++t->added;
          t->trimmed += r->trimmed;
        }
        break;
      }
      if (!failure.empty()) {
        ++t->failures;
        print_line(fmt::format("producer add failed: {}", failure));
      }
      // A lost connection may have taken the entry in: at-least-once, a
      // consumer may see it twice. The breaker decides how soon we retry.
      if (lost) out = co_await open_producer(o, po);
      co_await ringflow::sleep_for(wait);
    }
  }
}

task<void> produce_report(const common_options& o, const producer_tally* t) {
  redis::connection c = co_await redis::connection::connect(o.host, o.port);
  std::uint64_t last = 0;
  for (int s = 1;; ++s) {
    co_await ringflow::sleep_for(1s);
    group_view g = co_await read_group(c, o, false);
    print_line(fmt::format("producer t={}s added={} ({}/s) dropped={} trimmed={} failures={} rejected={}{}", s, t->added,
                           t->added - last, t->dropped, t->trimmed, t->failures, t->rejected, group_suffix(g)));
    last = t->added;
  }
}

task<int> produce_main(common_options o, produce_options p) {
  redis::producer_options po;
  po.stream = o.stream;
  po.group = o.group;
  po.max_backlog = p.max_backlog;
  if (p.policy == "block") {
    po.policy = ringflow::overflow::block;
  } else if (p.policy == "drop_incoming") {
    po.policy = ringflow::overflow::drop_incoming;
  } else if (p.policy == "drop_oldest") {
    po.policy = ringflow::overflow::drop_oldest;
  } else {
    // sample overwrites the newest buffered value; a broker's log cannot.
    throw std::invalid_argument("--policy: block, drop_incoming or drop_oldest (sample cannot map onto a stream)");
  }
  ringflow::signal_set sigs({SIGINT, SIGTERM});
  std::stop_source stop;
  auto watcher = ringflow::spawn_local(sigs.stop_on_signal(stop));
  producer_tally t;
  auto reporter = ringflow::spawn_local(produce_report(o, &t));
  const auto t0 = clock_type::now();
  auto loop = produce_loop(o, p, po, &t);
  co_await ringflow::with_stop(stop.get_token(), std::move(loop));
  co_await finish(reporter, "the reporter");
  co_await finish(watcher, "the signal watcher");
  print_line(fmt::format("producer done added={} dropped={} trimmed={} failures={} rejected={} seconds={:.2f}", t.added,
                         t.dropped, t.trimmed, t.failures, t.rejected, seconds_since(t0)));
  co_return 0;
}

// ---- consume -----------------------------------------------------------------

task<void> consume_loop(redis::stream_consumer* in, std::chrono::microseconds work) {
  std::optional<clock_type::time_point> announced;
  for (;;) {
    redis::delivery d = co_await in->next();
    // At once, not with the next report: the work coming back is the news.
    if (d.redelivered() && (!announced || clock_type::now() - *announced >= 1s)) {
      announced = clock_type::now();
      print_line(fmt::format("{} claimed back entries another consumer took and never acked (first {}, delivery {})",
                             in->options().consumer, d.id(), d.delivery_count()));
    }
    if (work.count() > 0) co_await ringflow::sleep_for(work);  // the handler's work
    try {
      co_await d.ack();
    } catch (const std::exception& e) {
      // Not acked: it stays pending and comes back (here or elsewhere).
      print_line(fmt::format("{} ack failed: {}", in->options().consumer, e.what()));
    }
  }
}

task<void> consume_report(const common_options& o, const redis::stream_consumer* in) {
  redis::connection c = co_await redis::connection::connect(o.host, o.port);
  const std::string& name = in->options().consumer;
  std::uint64_t last_acked = 0;
  for (int s = 1;; ++s) {
    co_await ringflow::sleep_for(1s);
    group_view g = co_await read_group(c, o, false);
    redis::consumer_stats st = in->stats();
    print_line(fmt::format("{} t={}s acked={} ({}/s) redelivered={} held={}{}", name, s, st.acked, st.acked - last_acked,
                           st.redelivered, in->held(), group_suffix(g)));
    last_acked = st.acked;
  }
}

task<int> consume_main(common_options o, consume_options k) {
  redis::consumer_options co;
  co.stream = o.stream;
  co.group = o.group;
  co.consumer = k.name;
  co.prefetch = k.prefetch;
  co.claim_idle = std::chrono::milliseconds(k.claim_idle_ms);
  co.block = std::min<std::chrono::milliseconds>(co.claim_idle, 500ms);  // look for idle entries at least twice a second
  ringflow::signal_set sigs({SIGINT, SIGTERM});
  std::stop_source stop;
  auto watcher = ringflow::spawn_local(sigs.stop_on_signal(stop));
  redis::stream_consumer in;
  for (auto backoff = 50ms;; backoff = std::min(backoff * 2, std::chrono::milliseconds(2000))) {
    try {
      in = co_await redis::stream_consumer::open(o.host, o.port, co);
      break;
    } catch (const std::system_error& e) {
      print_line(fmt::format("{} cannot reach {}: {}; retrying in {} ms", k.name, o.redis, e.what(), backoff.count()));
    }
    co_await ringflow::sleep_for(backoff);
  }
  auto reporter = ringflow::spawn_local(consume_report(o, &in));
  auto loop = consume_loop(&in, std::chrono::microseconds(k.work_us));
  co_await ringflow::with_stop(stop.get_token(), std::move(loop));
  co_await finish(reporter, "the reporter");
  co_await finish(watcher, "the signal watcher");
  redis::consumer_stats st = in.stats();
  print_line(fmt::format("{} done acked={} redelivered={} delivered={}", k.name, st.acked, st.redelivered, st.delivered));
  co_return 0;
}

// ---- watch -------------------------------------------------------------------

task<void> watch_loop(const common_options& o) {
  redis::connection c = co_await redis::connection::connect(o.host, o.port);
  long long last_added = 0, last_acked = 0;
  for (int s = 1;; ++s) {
    co_await ringflow::sleep_for(1s);
    group_view g = co_await read_group(c, o, true);
    if (!g.exists) {
      print_line(fmt::format("watch t={}s: no group {} on stream {} yet", s, o.group, o.stream));
      continue;
    }
    std::string consumers;
    for (const consumer_view& cv : g.consumers)
      consumers += fmt::format("{}{} pending={} idle={}ms", consumers.empty() ? "" : ", ", cv.name, cv.pending, cv.idle_ms);
    const long long acked = g.acked();
    print_line(fmt::format("watch t={}s length={} added={} ({}/s) acked={} ({}/s) lag={} pending={} | {}", s, g.length,
                           g.added, g.added - last_added, acked, acked - last_acked,
                           g.lag >= 0 ? std::to_string(g.lag) : std::string("?"), g.pending,
                           consumers.empty() ? std::string("no consumers") : consumers));
    last_added = g.added;
    last_acked = acked;
  }
}

task<int> watch_main(common_options o) {
  ringflow::signal_set sigs({SIGINT, SIGTERM});
  std::stop_source stop;
  auto watcher = ringflow::spawn_local(sigs.stop_on_signal(stop));
  auto loop = watch_loop(o);
  co_await ringflow::with_stop(stop.get_token(), std::move(loop));
  co_await finish(watcher, "the signal watcher");
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A producer and a consumer group on a Redis stream, in separate processes (ringflow::redis)"};
  app.require_subcommand(1);
  common_options o;
  auto add_common = [&o](CLI::App* sub) {
    sub->add_option("--redis", o.redis, "the broker, HOST:PORT")->capture_default_str();
    sub->add_option("--stream", o.stream, "the stream's key")->capture_default_str();
    sub->add_option("--group", o.group, "the consumer group")->capture_default_str();
  };
  produce_options p;
  CLI::App* produce = app.add_subcommand("produce", "add entries, bounded by the group's backlog");
  add_common(produce);
  produce->add_option("--rate", p.rate, "entries per second (0: as fast as the policy allows)")
      ->check(CLI::Range(0.0, 1e7))
      ->capture_default_str();
  produce->add_option("--count", p.count, "entries to add, then exit (0: until SIGINT/SIGTERM)")->capture_default_str();
  produce->add_option("--max-backlog", p.max_backlog, "the group's backlog bound (lag + pending)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 40))
      ->capture_default_str();
  produce->add_option("--policy", p.policy, "block, drop_incoming or drop_oldest")->capture_default_str();
  consume_options k;
  CLI::App* consume = app.add_subcommand("consume", "one consumer of the group");
  add_common(consume);
  consume->add_option("--name", k.name, "this consumer's name in the group (unique per live consumer)")->required();
  consume->add_option("--prefetch", k.prefetch, "entries held unacked at most")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 31))
      ->capture_default_str();
  consume->add_option("--work-us", k.work_us, "simulated work per entry, microseconds")
      ->check(CLI::Range(0L, 60'000'000L))
      ->capture_default_str();
  consume->add_option("--claim-idle-ms", k.claim_idle_ms, "claim entries another consumer left unacked this long")
      ->check(CLI::Range(1L, 86'400'000L))
      ->capture_default_str();
  CLI::App* watch = app.add_subcommand("watch", "print the group's lag, pending and rates, as the broker sees them");
  add_common(watch);
  CLI11_PARSE(app, argc, argv);

  try {
    split_address(o);
    ringflow::runtime rt({.threads = 1});
    if (produce->parsed()) return rt.block_on(produce_main(o, p));
    if (consume->parsed()) return rt.block_on(consume_main(o, k));
    return rt.block_on(watch_main(o));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redis_stream: %s\n", e.what());
    return 1;
  }
}
