// The broker mode: a Redis stream between the producer and the consumer (see
// broker.hpp for how each strategy maps onto it).
#include "broker.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <ringflow/features.hpp>
#include <ringflow/join_handle.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/sleep.hpp>
#include <ringflow/timeout.hpp>
#if RINGFLOW_HAS_REDIS
#include <ringflow/redis.hpp>
#include <ringflow/redis_stream.hpp>
#endif

namespace ringflow::lab {

broker_address parse_broker_address(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    throw std::invalid_argument("lab: --redis wants HOST:PORT, got '" + std::string(text) + "'");
  unsigned port = 0;
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc{} || end != last || port == 0 || port > 65535)
    throw std::invalid_argument("lab: --redis: the port must be 1..65535, got '" + std::string(text.substr(colon + 1)) + "'");
  return {std::string(text.substr(0, colon)), static_cast<std::uint16_t>(port)};
}

std::string_view broker_unsupported(strategy_kind k) noexcept {
  if (k == strategy_kind::sample)
    return "not supported through a broker: a stream is an append-only log, its newest entry cannot be overwritten in "
           "place (stream_producer refuses overflow::sample)";
  return {};
}

#if !RINGFLOW_HAS_REDIS

task<run_result> run_broker(run_state*) {
  throw std::invalid_argument("lab: --redis needs ringflow built with its Redis client (meson -Dredis=enabled, hiredis)");
  co_return run_result{};
}

#else

namespace {

namespace redis = ringflow::redis;

// Per sequence number, what the producer learnt about its add.
enum class add_outcome : std::uint8_t { unconfirmed, added, refused };

// The producer's tallies (worker 0, its add tasks included) and the
// consumer's (its worker); read together only after both are joined.
struct broker_tally {
  std::vector<add_outcome> outcome;  // producer
  std::uint64_t trimmed = 0;         // producer: what drop_oldest adds said they evicted
  std::atomic<std::uint64_t> refused_live{0};  // producer, for the sampler
  std::vector<std::uint8_t> received;           // consumer: per sequence number, received at least once
  std::uint64_t duplicates = 0;                 // consumer: received again (a redelivery; none expected)
  std::uint64_t handed_out = 0;                 // consumer: its stream_consumer's delivered count at the end
};

overflow policy_of(strategy_kind k) {
  switch (k) {
    case strategy_kind::drop_incoming: return overflow::drop_incoming;
    case strategy_kind::drop_oldest: return overflow::drop_oldest;
    default: return overflow::block;  // block, and request (demand as the backlog bound)
  }
}

bool waits_for_room(strategy_kind k) { return k == strategy_kind::block || k == strategy_kind::request; }

std::size_t bound_of(const run_state* s) {
  return s->strategy == strategy_kind::request ? s->env.opts->batch : s->env.opts->capacity;
}

// One add, its outcome recorded by sequence number. An add that may wait for
// room is bounded by the deadline: cancelled while waiting, nothing was added
// (it was never offered); cancelled after it was sent, it may be in the
// stream, which the read-back at the end settles.
task<void> add_one(redis::stream_producer* out, broker_tally* t, std::uint64_t seq, redis::entry_fields fields,
                   std::int64_t deadline_ns, bool bounded) {
  std::optional<redis::add_result> r;
  if (bounded) {
    const std::int64_t left = deadline_ns - now_ns();
    if (left <= 0) co_return;
    r = co_await ringflow::timeout(std::chrono::nanoseconds(left), out->add(std::move(fields)));
  } else {
    r = co_await out->add(std::move(fields));
  }
  if (!r) co_return;
  if (r->status == send_status::dropped) {
    t->outcome[seq] = add_outcome::refused;
    t->refused_live.fetch_add(1, std::memory_order_relaxed);
  } else {
    t->outcome[seq] = add_outcome::added;
    t->trimmed += r->trimmed;
  }
}

redis::entry_fields fields_for(const item& it, const std::string& payload) {
  redis::entry_fields f;
  f.reserve(3);
  f.emplace_back("seq", std::to_string(it.seq));
  f.emplace_back("t", std::to_string(it.offered_ns));
  if (!payload.empty()) f.emplace_back("p", payload);
  return f;
}

// Offers what the schedule owes every producer tick, in batches of adds in
// flight at once (pipelined on the producer's connection).
task<void> produce(run_state* s, redis::stream_producer* out, broker_tally* t) {
  const auto tick = s->env.opts->producer_tick();
  const std::string payload(s->env.opts->payload, 'x');
  const bool bounded = waits_for_room(s->strategy);
  // Adds that wait for room poll the broker: fewer of them at once.
  const std::uint64_t window = bounded ? 8 : 64;
  std::vector<join_handle<void>> batch;
  batch.reserve(window);
  for (;;) {
    const std::int64_t now = now_ns();
    if (now >= s->deadline_ns) break;
    const std::uint64_t owed = std::min<std::uint64_t>(s->sc.offered_by(s->elapsed(now)), t->outcome.size());
    while (s->next_seq < owed && now_ns() < s->deadline_ns) {
      const std::int64_t t0 = now_ns();
      const std::uint64_t blocked_before = out->stats().blocked_adds;
      const std::uint64_t first = s->next_seq;
      for (std::uint64_t k = 0; k < window && s->next_seq < owed; ++k, ++s->next_seq) {
        item it;
        it.seq = s->next_seq;
        it.offered_ns = now_ns();
        s->latest_seq.store(it.seq, std::memory_order_relaxed);
        batch.push_back(spawn_local(add_one(out, t, it.seq, fields_for(it, payload), s->deadline_ns, bounded)));
      }
      for (auto& h : batch) co_await std::move(h);
      batch.clear();
      if (out->stats().blocked_adds != blocked_before) s->record_suspension(t0);
      for (std::uint64_t q = first; q < s->next_seq; ++q)
        if (t->outcome[q] != add_outcome::unconfirmed) ++s->offered;
      s->offered_pub.store(s->offered, std::memory_order_relaxed);
    }
    co_await sleep_for(tick);
  }
}

// The entry's sequence number and offer time, back into an item.
std::optional<item> item_of(const redis::delivery& d) {
  item it;
  bool seq = false;
  for (const auto& [name, value] : d.fields()) {
    if (name == "seq") {
      seq = std::from_chars(value.data(), value.data() + value.size(), it.seq).ec == std::errc{};
    } else if (name == "t") {
      std::from_chars(value.data(), value.data() + value.size(), it.offered_ns);
    }
  }
  if (!seq) return std::nullopt;
  return it;
}

// One delivery taken: recorded once per sequence number.
bool take(run_state* s, broker_tally* t, const redis::delivery& d) {
  std::optional<item> it = item_of(d);
  if (!it || it->seq >= t->received.size()) return false;
  if (t->received[it->seq]) {
    ++t->duplicates;
    return false;
  }
  t->received[it->seq] = 1;
  s->record_receipt(*it);
  return true;
}

std::chrono::nanoseconds until_deadline(const run_state* s) { return std::chrono::nanoseconds(s->deadline_ns - now_ns()); }

// block, drop_incoming, drop_oldest: next(), the work, ack().
task<void> consume(run_state* s, redis::stream_consumer* in, broker_tally* t) {
  consumer_pacer pace(s->env.opts->cost, s->env.opts->item_cost());
  bool paused = true;
  for (;;) {
    const std::int64_t now = now_ns();
    if (now >= s->deadline_ns) break;
    if (auto until = s->pause_until(now)) {
      co_await sleep_for(std::chrono::nanoseconds(*until - now));
      paused = true;
      continue;
    }
    const std::int64_t t0 = now_ns();
    std::optional<redis::delivery> d = co_await ringflow::timeout(until_deadline(s), in->next());
    if (!d) break;  // the deadline
    const bool waited = paused || now_ns() - t0 > pace.quantum().count();
    paused = false;
    take(s, t, *d);
    const auto nap = pace.account(waited);
    if (nap.count() > 0) co_await sleep_for(nap);
    co_await d->ack();
  }
  t->handed_out = in->stats().delivered;
}

// request(n) (n > 0), or the rest of what is requested (n == 0), as a task
// that timeout can bound.
task<std::vector<redis::delivery>> pull(subscription<redis::delivery>* sub, std::uint64_t n) {
  if (n > 0) co_return co_await sub->request(n);
  co_return co_await sub->next();
}

// request: request(n) over the consumer's publisher, replenishing what it
// has processed (request_run's sliding window).
task<void> consume_requested(run_state* s, redis::stream_consumer* in, broker_tally* t) {
  auto sub = in->deliveries().subscribe();
  std::uint64_t replenish = s->env.opts->batch;
  consumer_pacer pace(s->env.opts->cost, s->env.opts->item_cost());
  bool waited = true;
  std::vector<redis::delivery> got;
  std::size_t next = 0;
  for (;;) {
    const std::int64_t now = now_ns();
    if (now >= s->deadline_ns) break;
    if (auto until = s->pause_until(now)) {
      co_await sleep_for(std::chrono::nanoseconds(*until - now));
      waited = true;
      continue;
    }
    if (next == got.size()) {
      const std::int64_t t0 = now_ns();
      // Cancel-safe: values on their way stay for the next request.
      std::optional<std::vector<redis::delivery>> fresh =
          co_await ringflow::timeout(until_deadline(s), pull(&sub, replenish));
      if (!fresh) break;  // the deadline
      replenish = 0;
      waited = waited || now_ns() - t0 > pace.quantum().count();
      got = std::move(*fresh);
      next = 0;
      if (got.empty()) break;  // the stream ended (an error of next())
      continue;
    }
    redis::delivery d = std::move(got[next++]);
    take(s, t, d);
    const auto nap = pace.account(waited);
    waited = false;
    if (nap.count() > 0) co_await sleep_for(nap);
    co_await d.ack();
    ++replenish;
  }
  // What was handed out and not processed stays pending at the broker
  // (counted as left by the read-back).
  got.clear();
  sub.cancel();
  t->handed_out = in->stats().delivered;
}

// The sequence numbers still in the stream (XRANGE, paged).
task<std::vector<std::uint8_t>> read_back(redis::connection& c, const std::string& key, std::size_t n) {
  std::vector<std::uint8_t> in_stream(n, 0);
  std::string start = "-";
  for (;;) {
    redis::reply page = co_await c.command("XRANGE", key, start, "+", "COUNT", 10'000);
    auto entries = page.elements();
    if (entries.empty()) break;
    for (const redis::reply& e : entries) {
      auto parts = e.elements();  // [id, [field, value, ...]]
      auto fields = parts[1].elements();
      for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str() != "seq") continue;
        std::uint64_t seq = 0;
        auto v = fields[i + 1].str();
        if (std::from_chars(v.data(), v.data() + v.size(), seq).ec == std::errc{} && seq < n) in_stream[seq] = 1;
      }
    }
    start = "(" + std::string(entries.back().elements()[0].str());
  }
  co_return in_stream;
}

task<redis::stream_consumer> open_consumer(broker_address a, redis::consumer_options o) {
  co_return co_await redis::stream_consumer::open(a.host, a.port, o);
}

}  // namespace

task<run_result> run_broker(run_state* s) {
  if (auto why = broker_unsupported(s->strategy); !why.empty()) {
    run_result r = s->finish(s->env.opts->sample_capacity);
    r.skipped = std::string(why);
    co_return r;
  }
  {
    const broker_address addr = parse_broker_address(s->env.opts->redis);
    const std::string key =
        fmt::format("ringflow-lab:{}:{}:{}", ::getpid(), s->env.run_index, to_string(s->strategy));
    const std::size_t bound = bound_of(s);
    redis::connection admin = co_await redis::connection::connect(addr.host, addr.port);
    co_await admin.command("DEL", key);

    redis::producer_options po;
    po.stream = key;
    po.group = "lab";
    po.max_backlog = bound;
    po.policy = policy_of(s->strategy);
    po.backoff_min = std::chrono::milliseconds(1);
    po.backoff_max = std::chrono::milliseconds(5);  // block's latency at the broker is its polling
    redis::stream_producer out = co_await redis::stream_producer::open(addr.host, addr.port, po);
    redis::consumer_options co;
    co.stream = key;
    co.group = "lab";
    co.consumer = "lab-consumer";
    co.prefetch = std::min<std::size_t>(s->env.opts->batch, bound);
    co.claim_idle = std::chrono::hours(1);  // one consumer: nothing to claim
    co.block = std::chrono::milliseconds(100);
    // Opened on the consumer's worker, so its connections' I/O runs there.
    auto opening = open_consumer(addr, co);  // named: no temporary holding strings inside a co_await (g++ 12)
    auto opened = s->env.rt->spawn_on(s->env.consumer_worker, std::move(opening));
    redis::stream_consumer in = co_await std::move(opened);

    broker_tally t;
    const std::size_t n = s->sc.offered_by(s->env.opts->duration) + 1;
    t.outcome.assign(n, add_outcome::unconfirmed);
    t.received.assign(n, 0);
    s->begin();
    // Offered, not delivered, not refused; at most the bound (what
    // drop_oldest trimmed unread is only known at the end).
    auto sampler = s->env.rt->spawn_on(0, sample_loop(s, [s, &t, bound] {
      const std::uint64_t gone = s->delivered_pub.load(std::memory_order_acquire) +
                                 t.refused_live.load(std::memory_order_relaxed);
      const std::uint64_t offered = s->offered_pub.load(std::memory_order_relaxed);
      return std::min<std::size_t>(static_cast<std::size_t>(offered - std::min(offered, gone)), bound);
    }));
    auto producer = s->env.rt->spawn_on(0, produce(s, &out, &t));
    auto consumer = s->env.rt->spawn_on(s->env.consumer_worker, s->strategy == strategy_kind::request
                                                                     ? consume_requested(s, &in, &t)
                                                                     : consume(s, &in, &t));
    co_await std::move(consumer);
    co_await std::move(producer);
    s->stop_sampler = true;
    co_await std::move(sampler);

    // Every sequence number issued, classified against the stream's contents.
    std::vector<std::uint8_t> in_stream = co_await read_back(admin, key, n);
    std::uint64_t offered = 0, delivered = 0, left = 0, refused = 0, trimmed_undelivered = 0, missing = 0,
                  late_confirms = 0;
    for (std::size_t q = 0; q < n; ++q) {
      const add_outcome o = t.outcome[q];
      if (o == add_outcome::refused) {
        ++offered;
        ++refused;
        continue;
      }
      const bool received = t.received[q] != 0, kept = in_stream[q] != 0;
      if (o == add_outcome::unconfirmed && !received && !kept) continue;  // never offered
      if (o == add_outcome::unconfirmed) ++late_confirms;  // cancelled at the deadline after it was sent
      ++offered;
      if (!kept && o == add_outcome::added) ++missing;
      if (received) {
        ++delivered;
      } else if (kept) {
        ++left;
      } else {
        ++trimmed_undelivered;
      }
    }
    co_await admin.command("DEL", key);

    const redis::producer_stats ps = out.stats();
    run_result r = s->finish(bound);
    r.offered = offered;
    r.delivered = s->delivered;  // the consumer's receipts; the classification above must agree
    r.dropped = refused + trimmed_undelivered;
    r.left = left;
    r.rejected = refused;
    r.stats_sent = ps.added + late_confirms;
    r.stats_received = delivered;
    r.stats_dropped = ps.dropped + trimmed_undelivered;
    // The producer's own count of evictions, less those of entries that had
    // been delivered already, must be what the read-back found missing.
    const std::uint64_t trimmed_delivered = missing - trimmed_undelivered;
    r.on_drop_calls = refused + (t.trimmed >= trimmed_delivered ? t.trimmed - trimmed_delivered : t.trimmed + 1);
    r.blocked_sends = ps.blocked_adds;
    for (const sample_point& p : s->samples) r.high_water = std::max(r.high_water, p.depth);
    if (t.duplicates) r.stats_received += t.duplicates;  // a redelivery breaks the identity: shown as a mismatch
    co_return r;
  }
}

#endif

}  // namespace ringflow::lab
