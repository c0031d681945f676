// Seeded property tests for channel<T>: random interleavings of producers and
// consumers on a one-worker runtime, for every overflow policy and several
// capacities, checked against the guarantees documented in channel.hpp.
//
// Every run is driven by a std::mt19937 seeded from the run's seed, so the
// sequence of operations each task performs is reproducible; only the moment
// a tiny timeout fires depends on the clock. A failure prints the policy,
// capacity and seed; RINGFLOW_PROPERTY_SEED=<n> reruns just that seed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <ringflow/ringflow.hpp>

#include "../support/channel_helpers.hpp"

using namespace test_support::channel_tests;

namespace {

constexpr int K = 3;          // producer tasks, and as many consumer tasks
constexpr int attempts = 40;  // values each producer makes: id = producer * attempts + seq
constexpr int n_ids = K * attempts;

template <class V>
struct value_traits;
template <>
struct value_traits<int> {
  static int make(int id) { return id; }
  static int id(const int& v) { return v; }
};
template <>
struct value_traits<tracked> {
  static tracked make(int id) { return tracked(id); }
  static int id(const tracked& v) { return v.id; }
};

// What became of one produced value, as its producer saw it.
enum class outcome : unsigned char { none, sent, dropped, full, closed, cancelled };

outcome of(send_status s) {
  switch (s) {
    case send_status::sent: return outcome::sent;
    case send_status::dropped: return outcome::dropped;
    case send_status::full: return outcome::full;
    case send_status::closed: return outcome::closed;
  }
  return outcome::none;
}

struct report {
  std::vector<outcome> outcomes = std::vector<outcome>(n_ids, outcome::none);
  std::vector<std::vector<int>> got = std::vector<std::vector<int>>(K);  // per consumer, in order
  std::vector<int> dropped;   // ids handed to on_drop
  std::vector<int> leftover;  // ids still buffered once everyone stopped (int runs only)
  std::vector<std::string> violations;
  ringflow::channel_stats final_stats{};  // once everyone stopped, before the leftovers were drained
  std::size_t final_size = 0;
  bool exit_on_close = false;
  int observations = 0;
};

template <class V>
struct scenario {
  channel<V>* ch;
  overflow policy;
  std::size_t cap;
  report* r;
  bool exit_on_close;             // consumers stop at close instead of draining
  // Plain sends and receives of the spawned tasks complete directly (the
  // waker moves the value; see waiter_node::direct): counted before the
  // task resumes, so the books run ahead of what the tasks saw.
  bool direct;
  std::uint64_t sent_status = 0;  // sends that returned sent
  std::uint64_t observed = 0;     // values the consumers got

  // A reference model of the buffer (capacity >= 1): the ids it must hold,
  // oldest first. On one worker, when no wait completes directly, every
  // channel operation completes without another task running between it and
  // the code that records its result (an accepted send, a taken value, an
  // on_drop call), so the model is updated in exactly the order the channel
  // changed. It pins down FIFO order and each policy's choice of victim
  // under any interleaving.
  std::deque<int> model{};
  bool use_model() const { return cap > 0 && !direct; }

  void violation(const std::string& what) {
    if (r->violations.size() < 20) r->violations.push_back(what);
  }

  static std::string show(const std::deque<int>& d) {
    std::string out = "[";
    for (int id : d) {
      out += ' ';
      out += std::to_string(id);
    }
    return out + " ]";
  }

  void model_sent(int id) {
    if (!use_model()) return;
    model.push_back(id);
    if (model.size() > cap) violation("model: buffer above capacity after sending " + std::to_string(id));
  }
  void model_taken(int id) {
    if (!use_model()) return;
    if (model.empty() || model.front() != id) {
      violation("model: took " + std::to_string(id) + " but the oldest buffered value is " + show(model));
      model.erase(std::remove(model.begin(), model.end(), id), model.end());
      return;
    }
    model.pop_front();
  }
  void model_dropped(int id) {
    if (policy == overflow::block) violation("block discarded " + std::to_string(id));
    if (!use_model()) return;
    switch (policy) {
      case overflow::block:
        break;
      case overflow::drop_incoming:  // the value being sent: never buffered
        if (std::find(model.begin(), model.end(), id) != model.end()) {
          violation("drop_incoming discarded a buffered value " + std::to_string(id));
        }
        break;
      case overflow::drop_oldest:  // the oldest buffered value
        if (model.empty() || model.front() != id) {
          violation("drop_oldest discarded " + std::to_string(id) + ", buffer " + show(model));
        } else {
          model.pop_front();
        }
        break;
      case overflow::sample:  // the newest buffered value
        if (model.empty() || model.back() != id) {
          violation("sample overwrote " + std::to_string(id) + ", buffer " + show(model));
        } else {
          model.pop_back();
        }
        break;
    }
  }

  // Invariants that hold at every point where a task of this (only) worker runs.
  void observe(const char* where) {
    ++r->observations;
    const std::size_t sz = ch->size();
    const auto st = ch->stats();
    std::ostringstream o;
    o << where << ": size=" << sz << " sent=" << st.sent << " received=" << st.received
      << " dropped=" << st.dropped << " high_water=" << st.high_water << " producers_saw_sent=" << sent_status
      << " consumers_got=" << observed << ": ";
    // A rendezvous channel buffers only values handed back by cancelled
    // receivers: at most one per receiver that was waiting.
    const std::size_t limit = cap == 0 ? K : cap;
    if (sz > limit) violation(o.str() + "size() above capacity");
    if (use_model() && sz != model.size()) violation(o.str() + "size() differs from the model " + show(model));
    if (st.high_water > limit) violation(o.str() + "high_water above capacity");
    // Conservation, in the channel's own books.
    const std::uint64_t evicted = policy == overflow::drop_incoming ? 0 : st.dropped;
    if (st.received + sz + evicted != st.sent) violation(o.str() + "received + size + evicted != sent");
    if (policy == overflow::block && st.dropped != 0) violation(o.str() + "block dropped a value");
    // The books against what the tasks saw. Without direct waits a buffered
    // send is counted when its sender runs, and a buffered value is taken by
    // its receiver; a rendezvous or direct hand-off is counted before the
    // other side resumes, at most one per task.
    if (cap > 0 && !direct) {
      if (st.sent != sent_status) violation(o.str() + "stats().sent != sends that returned sent");
      if (st.received != observed) violation(o.str() + "stats().received != values consumers got");
    } else {
      if (st.sent < sent_status) violation(o.str() + "stats().sent below sends that returned sent");
      if (st.received < observed) violation(o.str() + "stats().received below values consumers got");
      if (st.sent > sent_status + K) violation(o.str() + "stats().sent ahead by more than one per producer");
      if (st.received > observed + K) violation(o.str() + "stats().received ahead by more than one per consumer");
    }
  }

  void got(int consumer, int id) {
    if (id < 0 || id >= n_ids) {
      violation("consumer got an id that was never made: " + std::to_string(id));
      return;
    }
    r->got[consumer].push_back(id);
    ++observed;
    model_taken(id);
  }
};

template <class V>
task<void> producer(scenario<V>* s, int p, std::uint32_t seed) {
  std::mt19937 rng(seed * 7919u + 13u * static_cast<std::uint32_t>(p) + 1u);
  for (int seq = 0; seq < attempts; ++seq) {
    const int id = p * attempts + seq;
    outcome o = outcome::none;
    const int op = pick(rng, 0, 9);
    if (op < 4) {
      send_status st = co_await s->ch->send(value_traits<V>::make(id));
      o = of(st);
    } else if (op < 7) {
      send_status st = s->ch->try_send(value_traits<V>::make(id));
      o = of(st);
    } else {
      // Cancelled if still suspended when the timer fires.
      const auto d = std::chrono::microseconds(pick(rng, 0, 20));
      std::optional<send_status> st = co_await ringflow::timeout(d, send_one<V>(s->ch, id));
      o = st ? of(*st) : outcome::cancelled;
    }
    s->r->outcomes[id] = o;
    if (o == outcome::sent) {
      ++s->sent_status;
      s->model_sent(id);
    }
    if (o == outcome::full && s->policy != overflow::block) s->violation("full from a non-block channel");
    if (o == outcome::dropped && s->policy != overflow::drop_incoming) s->violation("dropped status from a policy other than drop_incoming");
    if (o == outcome::closed) s->violation("closed before close()");
    s->observe("producer");
    if (pick(rng, 0, 2) == 0) co_await ringflow::yield();
  }
}

template <class V>
task<void> consumer(scenario<V>* s, int c, std::uint32_t seed) {
  std::mt19937 rng(seed * 104729u + 31u * static_cast<std::uint32_t>(c) + 7u);
  bool done = false;
  while (!done) {
    if (s->exit_on_close && s->ch->is_closed()) break;
    const int op = pick(rng, 0, 9);
    if (op < 3) {
      std::optional<V> v = co_await s->ch->recv();
      if (v) {
        s->got(c, value_traits<V>::id(*v));
      } else {
        if (!s->ch->is_closed()) s->violation("recv returned nullopt on an open channel");
        done = true;
      }
    } else if (op < 5) {
      std::optional<V> v = s->ch->try_recv();
      if (v) {
        s->got(c, value_traits<V>::id(*v));
      } else if (s->ch->is_closed()) {
        done = true;
      } else {
        co_await ringflow::yield();
      }
    } else if (op < 7) {
      const auto max = static_cast<std::size_t>(pick(rng, 1, 5));
      std::vector<V> vs = co_await s->ch->recv_many(max);
      if (vs.size() > max) s->violation("recv_many returned more than max");
      if (vs.empty()) {
        if (!s->ch->is_closed()) s->violation("recv_many returned nothing on an open channel");
        done = true;
      }
      for (auto& v : vs) s->got(c, value_traits<V>::id(v));
    } else if (op < 9) {
      const auto d = std::chrono::microseconds(pick(rng, 0, 20));
      std::optional<std::optional<V>> v = co_await ringflow::timeout(d, recv_one<V>(s->ch));
      if (v) {
        if (*v) {
          s->got(c, value_traits<V>::id(**v));
        } else {
          if (!s->ch->is_closed()) s->violation("recv returned nullopt on an open channel");
          done = true;
        }
      }
    } else {
      const auto d = std::chrono::microseconds(pick(rng, 0, 20));
      const auto max = static_cast<std::size_t>(pick(rng, 1, 5));
      std::optional<std::vector<V>> vs = co_await ringflow::timeout(d, recv_some<V>(s->ch, max));
      if (vs) {
        if (vs->size() > max) s->violation("recv_many returned more than max");
        if (vs->empty()) {
          if (!s->ch->is_closed()) s->violation("recv_many returned nothing on an open channel");
          done = true;
        }
        for (auto& v : *vs) s->got(c, value_traits<V>::id(v));
      }
    }
    s->observe("consumer");
    if (pick(rng, 0, 2) == 0) co_await ringflow::yield();
  }
}

// Runs t as timeout's child: a frame that may be cancelled, whose waits the
// channel never completes directly (every hand-off goes through a claim).
task<void> claims_only(task<void> t) { co_await ringflow::timeout(std::chrono::hours(24), std::move(t)); }

template <class V>
task<report> run_scenario(overflow policy, std::size_t cap, std::uint32_t seed, bool direct) {
  report r;
  std::mt19937 rng(seed);
  r.exit_on_close = pick(rng, 0, 1) == 1;
  scenario<V> s{nullptr, policy, cap, &r, r.exit_on_close, direct};
  scenario<V>* sp = &s;
  // on_drop runs on the sending task, before its send returns.
  channel<V> ch(cap, policy, [sp](V v) {
    const int id = value_traits<V>::id(v);
    sp->r->dropped.push_back(id);
    sp->model_dropped(id);
  });
  s.ch = &ch;
  std::vector<ringflow::join_handle<void>> producers, consumers;
  // Which side starts first also depends on the seed.
  const bool consumers_first = pick(rng, 0, 1) == 1;
  auto start = [direct](task<void> t) { return ringflow::spawn(direct ? std::move(t) : claims_only(std::move(t))); };
  for (int i = 0; i < K; ++i) {
    if (consumers_first) consumers.push_back(start(consumer<V>(&s, i, seed)));
    producers.push_back(start(producer<V>(&s, i, seed)));
    if (!consumers_first) consumers.push_back(start(consumer<V>(&s, i, seed)));
  }
  for (auto& h : producers) co_await std::move(h);
  s.observe("producers done");
  ch.close();
  for (auto& h : consumers) co_await std::move(h);
  s.observe("everyone stopped");
  r.final_stats = ch.stats();
  r.final_size = ch.size();
  // int runs take the leftovers out to account for them one by one; tracked
  // runs leave them to the channel's destructor (each_destroyed_once checks it).
  if constexpr (std::is_same_v<V, int>) {
    while (auto v = ch.try_recv()) r.leftover.push_back(*v);
    if (s.use_model() && !std::equal(s.model.begin(), s.model.end(), r.leftover.begin(), r.leftover.end())) {
      s.violation("leftovers differ from the model " + scenario<V>::show(s.model));
    }
  } else {
    if (s.use_model() && s.model.size() != r.final_size) s.violation("leftover count differs from the model");
  }
  co_return r;
}

// The end-of-run checks, on the test's thread. Everything here must hold for
// any interleaving.
void check(const report& r, overflow policy, std::size_t cap, bool ids_of_leftovers_known) {
  INFO("consumers " << (r.exit_on_close ? "stop at close" : "drain until nullopt"));
  {
    std::string all;
    for (const auto& v : r.violations) all += "\n  " + v;
    INFO("violations seen while running:" << all);
    CHECK(r.violations.empty());
  }
  CHECK(r.observations > 0);

  std::vector<int> received(n_ids, 0), dropped(n_ids, 0), left(n_ids, 0);
  std::uint64_t total_got = 0;
  for (int c = 0; c < K; ++c) {
    std::vector<int> last_seq(K, -1);
    for (int id : r.got[c]) {
      ++received[id];
      ++total_got;
      const int p = id / attempts, seq = id % attempts;
      // Per-sender order: each consumer sees each producer's values in the order sent.
      if (seq <= last_seq[p]) {
        FAIL_CHECK("consumer " << c << " got producer " << p << "'s seq " << seq << " after seq " << last_seq[p]);
      }
      last_seq[p] = seq;
    }
  }
  for (int id : r.dropped) {
    REQUIRE(id >= 0);
    REQUIRE(id < n_ids);
    ++dropped[id];
  }
  for (int id : r.leftover) {
    REQUIRE(id >= 0);
    REQUIRE(id < n_ids);
    ++left[id];
  }

  std::uint64_t offered = 0, sent = 0, dropped_status = 0, cancelled_but_delivered = 0;
  std::uint64_t unaccounted_sent = 0;  // sent, neither received nor dropped: leftovers when ids are unknown
  for (int id = 0; id < n_ids; ++id) {
    const outcome o = r.outcomes[id];
    const int seen = received[id], gone = dropped[id], kept = left[id];
    const int where = seen + gone + kept;
    INFO("id " << id << " (producer " << id / attempts << ", seq " << id % attempts << "): outcome "
               << static_cast<int>(o) << ", received " << seen << "x, dropped " << gone << "x, left over "
               << kept << "x");
    switch (o) {
      case outcome::none:
        FAIL_CHECK("the producer never recorded this value");
        break;
      case outcome::sent:
        ++offered;
        ++sent;
        if (ids_of_leftovers_known) {
          CHECK(where == 1);  // exactly one of received, dropped (evicted), left over
        } else {
          CHECK(where <= 1);
          if (where == 0) ++unaccounted_sent;
        }
        if (policy == overflow::block || policy == overflow::drop_incoming) CHECK(gone == 0);
        break;
      case outcome::dropped:  // drop_incoming discarded this very value
        ++offered;
        ++dropped_status;
        CHECK(policy == overflow::drop_incoming);
        CHECK(gone == 1);
        CHECK(seen + kept == 0);
        break;
      case outcome::full:  // try_send on a full block channel: nothing was taken
      case outcome::closed:
        CHECK(where == 0);
        break;
      case outcome::cancelled:
        // A cancelled send takes nothing; only on a rendezvous channel may a
        // receiver already have taken it (then it counts as sent).
        if (cap == 0) {
          CHECK(gone + kept == 0);
          CHECK(seen <= 1);
          if (seen == 1) {
            ++offered;
            ++cancelled_but_delivered;
          }
        } else {
          CHECK(where == 0);
        }
        break;
    }
  }

  const auto& st = r.final_stats;
  CAPTURE(st.sent, st.received, st.dropped, st.blocked_sends, st.high_water, r.final_size, offered, sent,
          dropped_status, cancelled_but_delivered, total_got);
  // Conservation: every value offered to the open channel is exactly one of
  // received, buffered or dropped.
  CHECK(offered == total_got + r.final_size + st.dropped);
  CHECK(st.sent + (policy == overflow::drop_incoming ? st.dropped : 0) == offered);
  CHECK(st.sent == sent + cancelled_but_delivered);
  CHECK(st.received == total_got);
  CHECK(r.dropped.size() == st.dropped);  // on_drop saw every discarded value
  if (policy == overflow::block) CHECK(st.dropped == 0);
  if (policy == overflow::drop_incoming) CHECK(st.dropped == dropped_status);
  if (ids_of_leftovers_known) {
    CHECK(r.leftover.size() == r.final_size);
  } else {
    CHECK(unaccounted_sent == r.final_size);
  }
  CHECK(r.final_size <= (cap == 0 ? std::size_t{K} : cap));
  CHECK(st.high_water <= (cap == 0 ? std::size_t{K} : cap));
  if (!r.exit_on_close) CHECK(r.final_size == 0);  // drained until nullopt
}

struct config {
  overflow policy;
  std::size_t cap;
};

std::vector<config> all_configs() {
  std::vector<config> out;
  for (std::size_t cap : {0, 1, 3, 16}) out.push_back({overflow::block, cap});
  for (overflow p : {overflow::drop_incoming, overflow::drop_oldest, overflow::sample}) {
    for (std::size_t cap : {1, 3, 16}) out.push_back({p, cap});
  }
  return out;
}

std::vector<std::uint32_t> seeds(std::uint32_t count) {
  if (const char* one = std::getenv("RINGFLOW_PROPERTY_SEED")) {
    return {static_cast<std::uint32_t>(std::strtoul(one, nullptr, 10))};
  }
  if (const char* n = std::getenv("RINGFLOW_PROPERTY_SEEDS")) {  // a longer soak
    count = static_cast<std::uint32_t>(std::strtoul(n, nullptr, 10));
  }
  std::vector<std::uint32_t> out;
  for (std::uint32_t s = 1; s <= count; ++s) out.push_back(s);
  return out;
}

// Calls body(config, seed) for every configuration and each of `count` seeds
// (see seeds()); a failure names the run and how to rerun just its seed.
template <class Body>
void for_each_run(std::uint32_t count, Body body) {
  for (const config& c : all_configs()) {
    for (std::uint32_t seed : seeds(count)) {
      INFO("policy=" << ringflow::to_string(c.policy) << " capacity=" << c.cap << " seed=" << seed
                     << " (rerun: RINGFLOW_PROPERTY_SEED=" << seed << ")");
      body(c, seed);
    }
  }
}

// ---- deterministic FIFO checks ------------------------------------------------

// The FIFO checks' configurations: every policy at capacities 1 and 3, and
// block also as a rendezvous channel.
std::vector<config> fifo_configs() {
  std::vector<config> out = {{overflow::block, 0}, {overflow::block, 1}, {overflow::block, 3}};
  for (overflow p : {overflow::drop_incoming, overflow::drop_oldest, overflow::sample}) {
    out.push_back({p, 1});
    out.push_back({p, 3});
  }
  return out;
}

// Runs scenario(c) to completion on a one-worker runtime for each FIFO
// configuration; a failure names the configuration.
template <class Scenario>
void for_each_fifo_config(Scenario scenario) {
  ringflow::runtime rt({.threads = 1});
  for (const config& c : fifo_configs()) {
    INFO("policy=" << ringflow::to_string(c.policy) << " capacity=" << c.cap);
    rt.block_on(scenario(c));
  }
}

task<void> recv_log(channel<int>* ch, int who, std::vector<std::pair<int, int>>* log) {
  std::optional<int> v = co_await ch->recv();
  log->emplace_back(who, v ? *v : -1);
}

task<void> send_log(channel<int>* ch, int who, int value, std::vector<std::pair<int, int>>* log) {
  send_status s = co_await ch->send(value);
  log->emplace_back(who, s == send_status::sent ? value : -1);
}

using log_t = std::vector<std::pair<int, int>>;

}  // namespace

TEST_CASE("channel property: random interleavings keep every guarantee, every policy and capacity",
          "[channels][channel][property]") {
  ringflow::runtime rt({.threads = 1});
  for_each_run(50, [&rt](const config& c, std::uint32_t seed) {
    for (bool direct : {false, true}) {
      INFO((direct ? "spawned tasks (direct waits)" : "every task under timeout (claims only)"));
      report r = rt.block_on(run_scenario<int>(c.policy, c.cap, seed, direct));
      check(r, c.policy, c.cap, true);
    }
  });
}

TEST_CASE("channel property: every value is destroyed exactly once under random interleavings",
          "[channels][channel][property]") {
  ringflow::runtime rt({.threads = 1});
  for_each_run(12, [&rt](const config& c, std::uint32_t seed) {
    for (bool direct : {false, true}) {
      INFO((direct ? "spawned tasks (direct waits)" : "every task under timeout (claims only)"));
      tracked::reset();
      report r = rt.block_on(run_scenario<tracked>(c.policy, c.cap, seed, direct));
      // The channel is gone: leftovers were destroyed with it.
      CHECK(tracked::live == 0);
      CHECK(tracked::each_destroyed_once(n_ids));
      check(r, c.policy, c.cap, false);
    }
  });
}

TEST_CASE("channel property: waiting receivers are served in arrival order, every policy",
          "[channels][channel][property][fifo]") {
  for_each_fifo_config([](config c) -> task<void> {
    channel<int> ch(c.cap, c.policy);
    log_t log;
    // Receivers 0..5 suspend in that order; receiver 2 is cancelled while
    // waiting, and must not take a turn.
    std::vector<ringflow::join_handle<void>> hs;
    for (int i = 0; i < 2; ++i) hs.push_back(ringflow::spawn(recv_log(&ch, i, &log)));
    co_await ringflow::yield();
    auto ch2 = start_by_hand(recv_log(&ch, 2, &log));  // suspends in recv, third in line
    for (int i = 3; i < 6; ++i) hs.push_back(ringflow::spawn(recv_log(&ch, i, &log)));
    co_await ringflow::yield();
    REQUIRE(log.empty());
    REQUIRE(ch.size() == 0);
    ch2.destroy();  // withdraws from the middle of the queue

    // Values 100.. arrive in bursts the buffer can hold without a policy
    // kicking in; waiting receivers are woken in arrival order and each
    // takes the next value.
    const std::size_t burst = c.cap == 0 ? 5 : c.cap;
    int next = 100;
    while (next < 105) {
      for (std::size_t b = 0; b < burst && next < 105; ++b) {
        REQUIRE(ch.try_send(next++) == send_status::sent);
        // The value is claimed by a waiting receiver: a latecomer cannot barge.
        REQUIRE_FALSE(ch.try_recv().has_value());
      }
      co_await ringflow::yield();
    }
    for (auto& h : hs) co_await std::move(h);
    REQUIRE(log == log_t{{0, 100}, {1, 101}, {3, 102}, {4, 103}, {5, 104}});
    auto st = ch.stats();
    REQUIRE(st.sent == 5);
    REQUIRE(st.received == 5);
    REQUIRE(st.dropped == 0);
    REQUIRE(ch.size() == 0);
  });
}

TEST_CASE("channel property: a claim handed to a cancelled receiver passes to the next in line, every policy",
          "[channels][channel][property][fifo]") {
  for_each_fifo_config([](config c) -> task<void> {
    channel<int> ch(c.cap, c.policy);
    log_t log;
    auto h0 = start_by_hand(recv_log(&ch, 0, &log));  // first in line
    auto h1 = ringflow::spawn(recv_log(&ch, 1, &log));
    auto h2 = ringflow::spawn(recv_log(&ch, 2, &log));
    co_await ringflow::yield();
    REQUIRE(ch.try_send(7) == send_status::sent);  // claimed by (or handed to) receiver 0
    h0.destroy();                                  // cancelled before it ran
    co_await ringflow::yield();
    REQUIRE(ch.try_send(8) == send_status::sent);
    co_await std::move(h1);
    co_await std::move(h2);
    REQUIRE(log == log_t{{1, 7}, {2, 8}});
    REQUIRE(ch.stats().received == 2);
    REQUIRE(ch.stats().dropped == 0);
    REQUIRE(ch.size() == 0);
  });
}

TEST_CASE("channel property: waiting senders are served in arrival order (block)", "[channels][channel][property][fifo]") {
  ringflow::runtime rt({.threads = 1});
  for (std::size_t cap : {0, 1, 3}) {
    INFO("capacity=" << cap);
    rt.block_on([](std::size_t cap) -> task<void> {
      channel<int> ch(cap);
      for (std::size_t i = 0; i < cap; ++i) REQUIRE(ch.try_send(static_cast<int>(i)) == send_status::sent);
      log_t log;
      // Senders 0..5 suspend in that order; sender 2 is cancelled while waiting.
      std::vector<ringflow::join_handle<void>> hs;
      for (int i = 0; i < 2; ++i) hs.push_back(ringflow::spawn(send_log(&ch, i, 100 + i, &log)));
      co_await ringflow::yield();
      auto h2 = start_by_hand(send_log(&ch, 2, 102, &log));  // suspends in send, third in line
      for (int i = 3; i < 6; ++i) hs.push_back(ringflow::spawn(send_log(&ch, i, 100 + i, &log)));
      co_await ringflow::yield();
      REQUIRE(log.empty());
      REQUIRE(ch.try_send(999) == send_status::full);  // no barging past waiting senders
      h2.destroy();
      REQUIRE(ch.try_send(999) == send_status::full);

      std::vector<int> got;
      for (std::size_t i = 0; i < cap + 5; ++i) {
        std::optional<int> v = co_await ch.recv();
        REQUIRE(v.has_value());
        got.push_back(*v);
        co_await ringflow::yield();  // let the woken sender fill its slot
      }
      for (auto& h : hs) co_await std::move(h);
      std::vector<int> want;
      for (std::size_t i = 0; i < cap; ++i) want.push_back(static_cast<int>(i));
      for (int v : {100, 101, 103, 104, 105}) want.push_back(v);
      REQUIRE(got == want);
      REQUIRE(log == log_t{{0, 100}, {1, 101}, {3, 103}, {4, 104}, {5, 105}});
      REQUIRE(ch.size() == 0);
      REQUIRE(ch.stats().sent == cap + 5);
      REQUIRE(ch.stats().blocked_sends == 6);
    }(cap));
  }
}

namespace {
task<void> recv_twice(channel<int>* ch, std::vector<int>* out) {
  std::optional<int> a = co_await ch->recv();
  out->push_back(a ? *a : -1);
  std::optional<int> b = co_await ch->recv();
  out->push_back(b ? *b : -1);
}
}  // namespace

// The hand-off-at-timeout race on a rendezvous channel, made deterministic:
// one sender's 1 and 2 are handed to two waiting receivers; the first is
// cancelled (e.g. its timeout fires) before it runs, so its 1 is put back.
// The second receiver's task must not see 2 and then 1.
TEST_CASE("channel property: rendezvous keeps one sender's order when a handed-to receiver is cancelled",
          "[channels][channel][property][fifo]") {
  ringflow::runtime rt({.threads = 1});
  rt.block_on([]() -> task<void> {
    channel<int> ch(0);
    log_t cancelled_log;
    auto h = start_by_hand(recv_log(&ch, 0, &cancelled_log));  // first in line
    std::vector<int> out;
    auto second = ringflow::spawn(recv_twice(&ch, &out));
    co_await ringflow::yield();  // second in line
    REQUIRE(ch.try_send(1) == send_status::sent);  // handed to the first receiver
    REQUIRE(ch.try_send(2) == send_status::sent);  // handed to the second
    h.destroy();                                   // the first is cancelled before it ran: 1 is put back
    auto third = ringflow::spawn([](channel<int>* ch) -> task<void> {
      // Keeps the second receiver's next recv from waiting forever if 1 was lost.
      co_await ringflow::yield();
      co_await ringflow::yield();
      ch->close();
    }(&ch));
    co_await std::move(second);
    co_await std::move(third);
    REQUIRE(cancelled_log.empty());
    CHECK(out == std::vector<int>{1, 2});  // one sender's values, in the order sent
    CHECK(ch.stats().received == 2);
  }());
}
