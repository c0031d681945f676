// stream_consumer and stream_producer: Redis Streams commands on
// redis::connection. The consumer's bookkeeping (which entries it holds at
// the broker) lives under one mutex, never held across a co_await; the
// commands go out on two connections: `reader` for next()'s reads and
// claims (one next() at a time), `acker` for acks and dead-lettering, so a
// blocking XREADGROUP never delays an ack. Acks in flight together share
// one XACK (see ack_batch).
#include <ringflow/redis_stream.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <compare>
#include <deque>
#include <map>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <ringflow/sleep.hpp>
#include <ringflow/timeout.hpp>
#include <ringflow/watch.hpp>
#include <ringflow/yield.hpp>

#include "connection_access.hpp"

namespace ringflow::redis {

namespace detail {

using clock = std::chrono::steady_clock;

// COUNT arguments the broker takes (it parses a long), with room to spare.
constexpr std::size_t max_count = std::size_t{1} << 31;
// Waits are capped at about 100 years.
constexpr std::chrono::milliseconds longest_wait = std::chrono::hours(24 * 365 * 100);

// An entry id ("1700000000000-3") as the pair of numbers it is: the
// consumer's sets of ids compare and hold two integers, not strings that
// share their first dozen characters and outgrow std::string's inline buffer.
struct entry_key {
  std::uint64_t ms = 0, seq = 0;
  friend auto operator<=>(const entry_key&, const entry_key&) = default;
  // The id's text parsed; text that is not an id orders as 0-0 (the broker
  // sends only ids here).
  static entry_key of(std::string_view id) noexcept {
    entry_key k;
    auto dash = id.find('-');
    std::from_chars(id.data(), id.data() + (dash == std::string_view::npos ? id.size() : dash), k.ms);
    if (dash != std::string_view::npos) std::from_chars(id.data() + dash + 1, id.data() + id.size(), k.seq);
    return k;
  }
  std::string text() const {
    std::string s;
    append_text(s);
    return s;
  }
  // The longest text: two 20-digit numbers and '-'.
  static constexpr std::size_t max_text = 41;
  void append_text(std::string& out) const {
    char buf[max_text];
    char* p = std::to_chars(buf, buf + sizeof buf, ms).ptr;
    *p++ = '-';
    p = std::to_chars(p, buf + sizeof buf, seq).ptr;
    out.append(buf, p);
  }
};

struct stream_entry {
  std::string id;
  entry_fields fields;
  std::uint64_t count = 1;
};

namespace {

std::string to_text(std::uint64_t v) { return std::to_string(v); }

bool is_busygroup(const error& e) { return std::string_view(e.what()).starts_with("BUSYGROUP"); }

// [id, [f1, v1, ...]] or [id, nil] (an entry deleted or trimmed while pending);
// id is set only for a deleted one.
std::optional<stream_entry> parse_entry(const reply& e, bool& deleted, std::string& id) {
  auto parts = e.elements();
  if (parts.size() < 2) throw std::runtime_error("ringflow::redis: unexpected stream entry reply");
  if (parts[1].is_nil()) {
    id = std::string(parts[0].str());
    deleted = true;
    return std::nullopt;
  }
  deleted = false;
  stream_entry out;
  out.id = std::string(parts[0].str());
  auto kv = parts[1].elements();
  out.fields.reserve(kv.size() / 2);
  for (std::size_t i = 0; i + 1 < kv.size(); i += 2) out.fields.emplace_back(kv[i].str(), kv[i + 1].str());
  return out;
}

// XREADGROUP's reply: nil (timed out) or [[stream, [entry...]]].
std::span<const reply> read_entries(const reply& r) {
  if (r.is_nil()) return {};
  auto streams = r.elements();
  if (streams.empty()) return {};
  auto s = streams[0].elements();
  if (s.size() < 2 || s[1].is_nil()) return {};
  return s[1].elements();
}

// The next backoff: twice b, at most max (no overflow near milliseconds::max()).
std::chrono::milliseconds doubled(std::chrono::milliseconds b, std::chrono::milliseconds max) {
  return b >= max / 2 ? max : b * 2;
}

std::chrono::milliseconds clamp_ms(std::chrono::milliseconds v, std::chrono::milliseconds lo,
                                   std::chrono::milliseconds hi) {
  return std::max(lo, std::min(v, hi));
}

}  // namespace

// The acks of one round, sent as one XACK with every id: the ack that opens
// the batch leads (it lets the other ready tasks of its worker run first, so
// the acks issued together join, then closes the batch and sends it); the
// others wait for its outcome. A leader cancelled before the outcome marks
// the batch abandoned, and one of the waiting acks sends it again (XACK is
// idempotent, so sending an id twice is harmless).
struct ack_batch {
  enum : int { pending, acked, failed, abandoned };
  std::vector<entry_key> keys;  // appended under consumer_state::m while open
  bool led = true;               // under consumer_state::m: an ack is sending it
  std::exception_ptr error;      // written before `failed` is published
  watch<int> outcome{pending};
};

// Ids per XACK: keeps one command's formatting and reply small.
constexpr std::size_t max_ack_batch = 1024;

struct consumer_state {
  std::string host;
  std::uint16_t port = 0;
  consumer_options opts;

  mutable std::mutex m;
  std::shared_ptr<connection> reader, acker;
  // The nodes of in_hand and dropped (under m): an entry's node is
  // recycled when it is acked, not freed and allocated again per entry.
  std::pmr::unsynchronized_pool_resource nodes;
  std::pmr::set<entry_key> in_hand{&nodes};  // handed out, not acked nor dropped
  // Dropped unacked, pending here until claimed: when each may be claimed
  // (claim_idle after its last delivery, as the broker counts idle time).
  std::pmr::map<entry_key, clock::time_point> dropped{&nodes};
  std::deque<stream_entry> buffered;  // read or claimed, not handed out yet
  bool closed = false;

  // Set on every ack or drop: a next() waiting for room wakes.
  watch<std::uint64_t> released{0};
  std::uint64_t releases = 0;  // under m
  watch<std::uint64_t>::receiver released_rx = released.subscribe();

  // next()'s own (one at a time, guarded by busy).
  std::atomic<bool> busy{false};
  bool history_done = false;
  std::string history_cursor = "0";
  std::string claim_cursor = "0-0";
  clock::time_point next_claim{};

  std::atomic<std::uint64_t> delivered{0}, redelivered{0}, acked{0}, dead_lettered{0}, reconnects{0};

  std::shared_ptr<ack_batch> open_acks;  // under m: the batch new acks join

  std::size_t held_locked() const { return buffered.size() + in_hand.size() + dropped.size(); }

  std::shared_ptr<connection> reader_conn() {
    std::lock_guard g(m);
    if (!reader) throw std::system_error(std::make_error_code(std::errc::not_connected), "ringflow::redis: consumer not connected");
    return reader;
  }
  std::shared_ptr<connection> acker_conn() {
    std::lock_guard g(m);
    if (!acker) throw std::system_error(std::make_error_code(std::errc::not_connected), "ringflow::redis: consumer not connected");
    return acker;
  }

  void signal_release() {
    std::uint64_t v;
    {
      std::lock_guard g(m);
      v = ++releases;
    }
    released.set(v);
  }

  // The broker confirmed an XACK of these ids: their places are free, all
  // at once (one lock and one wake-up for the batch, not one per ack).
  void on_acked(const std::vector<entry_key>& keys) {
    {
      std::lock_guard g(m);
      for (entry_key k : keys) {
        in_hand.erase(k);
        dropped.erase(k);  // its ack was cancelled after it joined the batch
      }
    }
    acked.fetch_add(keys.size(), std::memory_order_relaxed);
    signal_release();
  }

  void on_dropped(entry_key k) noexcept {
    try {
      {
        std::lock_guard g(m);
        if (in_hand.erase(k) == 0) return;  // acked meanwhile, or a duplicate
        if (!closed) dropped.emplace(k, clock::now() + opts.claim_idle);
      }
      signal_release();
    } catch (...) {
      // Out of memory while noting it: the entry stays pending at the broker
      // and is claimed after claim_idle all the same.
    }
  }

  delivery hand_out(std::shared_ptr<consumer_state> self, stream_entry e) {
    delivery d;
    d.st_ = std::move(self);
    d.id_ = std::move(e.id);
    d.fields_ = std::move(e.fields);
    d.count_ = e.count;
    delivered.fetch_add(1, std::memory_order_relaxed);
    if (e.count > 1) redelivered.fetch_add(1, std::memory_order_relaxed);
    return d;
  }

  // The first buffered entry, moved to in_hand.
  std::optional<stream_entry> take_buffered() {
    std::lock_guard g(m);
    while (!buffered.empty()) {
      stream_entry e = std::move(buffered.front());
      buffered.pop_front();
      // Already out: a history re-read after a reconnect.
      if (!in_hand.insert(entry_key::of(e.id)).second) continue;
      return e;
    }
    return std::nullopt;
  }

  std::size_t budget(std::uint64_t limit) const {
    std::lock_guard g(m);
    std::size_t held = held_locked();
    std::size_t b = held >= opts.prefetch ? 0 : opts.prefetch - held;
    if (limit < b) b = static_cast<std::size_t>(limit);
    return b;
  }

  static task<reply> run(std::shared_ptr<connection> c, std::vector<std::string> argv) {
    co_return co_await c->command(std::move(argv));
  }

  // Delivery counts of ids (all pending for this consumer) from XPENDING's
  // extended form over their id range.
  task<std::map<std::string, std::uint64_t>> counts_of(std::vector<std::string> ids) {
    std::map<std::string, std::uint64_t> out;
    if (ids.empty()) co_return out;
    auto [lo, hi] = std::minmax_element(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
      return entry_key::of(a) < entry_key::of(b);
    });
    std::size_t span;
    {
      std::lock_guard g(m);
      span = held_locked() + ids.size() + opts.prefetch;
    }
    auto c = reader_conn();
    reply r = co_await c->command("XPENDING", opts.stream, opts.group, *lo, *hi, span, opts.consumer);
    for (const reply& p : r.elements()) {
      auto f = p.elements();
      if (f.size() >= 4) out[std::string(f[0].str())] = static_cast<std::uint64_t>(f[3].integer());
    }
    co_return out;
  }

  // Entries claimed or re-read (already pending here): their counts, then
  // each is dead-lettered or buffered. deleted: ids whose entries are gone
  // (trimmed): acknowledged so they leave the pending list.
  task<void> admit(std::vector<stream_entry> entries, std::vector<std::string> deleted, bool need_counts) {
    if (need_counts && !entries.empty()) {
      std::vector<std::string> ids;
      for (auto& e : entries) ids.push_back(e.id);
      auto counts = co_await counts_of(std::move(ids));
      for (auto& e : entries) {
        auto it = counts.find(e.id);
        e.count = it != counts.end() ? it->second : 2;  // claimed or re-read: at least its second delivery
      }
    }
    if (!deleted.empty()) {
      std::vector<std::string> argv{"XACK", opts.stream, opts.group};
      argv.insert(argv.end(), deleted.begin(), deleted.end());
      co_await run(acker_conn(), std::move(argv));
      std::lock_guard g(m);
      for (auto& id : deleted) dropped.erase(entry_key::of(id));
    }
    for (auto& e : entries) {
      if (opts.max_deliveries > 0 && e.count > opts.max_deliveries) {
        std::vector<std::string> argv{"XADD", opts.dead_letter, "*"};
        for (auto& [f, v] : e.fields) {
          argv.push_back(f);
          argv.push_back(v);
        }
        argv.push_back("dead-letter-id");
        argv.push_back(e.id);
        argv.push_back("dead-letter-deliveries");
        argv.push_back(to_text(e.count));
        co_await run(acker_conn(), std::move(argv));
        std::vector<std::string> ack{"XACK", opts.stream, opts.group, e.id};
        co_await run(acker_conn(), std::move(ack));
        dead_lettered.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard g(m);
        dropped.erase(entry_key::of(e.id));
        continue;
      }
      std::lock_guard g(m);
      entry_key k = entry_key::of(e.id);
      dropped.erase(k);
      // Still out, or read already: not handed out twice.
      if (in_hand.count(k)) continue;
      if (std::any_of(buffered.begin(), buffered.end(), [&](const stream_entry& b) { return b.id == e.id; })) continue;
      buffered.push_back(std::move(e));
    }
  }

  static std::vector<stream_entry> parse_all(std::span<const reply> items, std::vector<std::string>& deleted) {
    std::vector<stream_entry> out;
    out.reserve(items.size());
    for (const reply& it : items) {
      if (it.is_nil()) continue;
      bool gone = false;
      std::string id;
      auto e = parse_entry(it, gone, id);
      if (gone) {
        deleted.push_back(std::move(id));
      } else {
        out.push_back(std::move(*e));
      }
    }
    return out;
  }

  // This consumer's own pending entries, prefetch at a time, from the last
  // id seen: what a restarted (or reconnected) consumer held.
  task<void> read_history() {
    auto c = reader_conn();
    reply r = co_await c->command("XREADGROUP", "GROUP", opts.group, opts.consumer, "COUNT", opts.prefetch, "STREAMS",
                                  opts.stream, history_cursor);
    auto items = read_entries(r);
    if (items.empty()) {
      history_done = true;
      co_return;
    }
    std::vector<std::string> deleted;
    auto entries = parse_all(items, deleted);
    history_cursor = std::string(items.back().elements()[0].str());
    co_await admit(std::move(entries), std::move(deleted), true);
  }

  // XAUTOCLAIM: entries of the group idle past claim_idle, at most budget.
  task<bool> autoclaim(std::size_t budget) {
    auto c = reader_conn();
    reply r = co_await c->command("XAUTOCLAIM", opts.stream, opts.group, opts.consumer, opts.claim_idle.count(),
                                  claim_cursor, "COUNT", budget);
    auto parts = r.elements();
    if (parts.size() < 2) throw std::runtime_error("ringflow::redis: unexpected XAUTOCLAIM reply");
    claim_cursor = std::string(parts[0].str());
    // A full scan done: the next one after a pause (what is idle now was
    // claimed; what becomes idle takes claim_idle anyway).
    if (claim_cursor == "0-0") next_claim = clock::now() + std::max(opts.claim_idle / 4, std::chrono::milliseconds(1));
    std::vector<std::string> deleted;
    auto entries = parse_all(parts[1].elements(), deleted);
    if (parts.size() >= 3) {
      // Redis 7: ids of pending entries that no longer exist, already
      // removed from the pending list by XAUTOCLAIM itself.
      std::lock_guard g(m);
      for (const reply& id : parts[2].elements()) dropped.erase(entry_key::of(id.str()));
    }
    bool any = !entries.empty();
    co_await admit(std::move(entries), std::move(deleted), true);
    co_return any;
  }

  // All prefetch places held: find which of the dropped entries are still
  // here (another consumer may have claimed them), and take back those idle
  // past claim_idle (XCLAIM to ourselves: a redelivery).
  task<bool> reclaim_dropped() {
    std::vector<std::string> mine;
    std::size_t span;
    {
      std::lock_guard g(m);
      if (dropped.empty()) co_return false;
      span = held_locked() + opts.prefetch;
    }
    auto c = reader_conn();
    reply r = co_await c->command("XPENDING", opts.stream, opts.group, "-", "+", span, opts.consumer);
    std::map<entry_key, long long> pending;  // id -> idle ms at the broker
    for (const reply& p : r.elements()) {
      auto f = p.elements();
      if (f.size() >= 4) pending[entry_key::of(f[0].str())] = f[2].integer();
    }
    auto now = clock::now();
    {
      std::lock_guard g(m);
      for (auto it = dropped.begin(); it != dropped.end();) {
        auto p = pending.find(it->first);
        if (p == pending.end()) {  // claimed by another consumer
          it = dropped.erase(it);
          continue;
        }
        if (p->second >= opts.claim_idle.count()) {
          mine.push_back(it->first.text());
        } else {  // not idle long enough yet, as the broker counts
          it->second = now + (opts.claim_idle - std::chrono::milliseconds(p->second));
        }
        ++it;
      }
    }
    if (mine.empty()) co_return false;
    std::vector<std::string> argv{"XCLAIM", opts.stream, opts.group, opts.consumer, to_text(static_cast<std::uint64_t>(opts.claim_idle.count()))};
    argv.insert(argv.end(), mine.begin(), mine.end());
    reply cr = co_await run(c, std::move(argv));
    std::vector<std::string> deleted;
    auto entries = parse_all(cr.elements(), deleted);
    bool any = !entries.empty();
    co_await admit(std::move(entries), std::move(deleted), true);
    co_return any;
  }

  task<void> wait_release(std::chrono::milliseconds d) {
    {
      std::lock_guard g(m);
      if (buffered.size() + in_hand.size() + dropped.size() < opts.prefetch) co_return;
    }
    // Releases since the last wait are not seen yet: it returns at once then
    // (no wake-up is lost between the budget check and this wait).
    co_await timeout(d, wait_changed(released_rx));
  }
  static task<void> wait_changed(watch<std::uint64_t>::receiver& rx) { co_await rx.changed(); }

  // One step towards a buffered entry: history, claims, a new read, or a
  // wait for room.
  task<void> fill(std::uint64_t limit) {
    if (!history_done) {
      co_await read_history();
      co_return;
    }
    std::size_t b = budget(limit);
    auto now = clock::now();
    if (b > 0) {
      if (now >= next_claim && co_await autoclaim(b)) co_return;
      b = budget(limit);
      if (b == 0) co_return;
      auto c = reader_conn();
      auto block = clamp_ms(opts.block, std::chrono::milliseconds(1), opts.claim_idle);
      reply r = co_await c->command("XREADGROUP", "GROUP", opts.group, opts.consumer, "COUNT", b, "BLOCK",
                                    block.count(), "STREAMS", opts.stream, ">");
      auto items = read_entries(r);
      if (items.empty()) {
        next_claim = clock::now();  // nothing new: look for idle entries
        co_return;
      }
      std::vector<std::string> deleted;
      auto entries = parse_all(items, deleted);
      std::lock_guard g(m);
      for (auto& e : entries) buffered.push_back(std::move(e));  // first deliveries: count 1
      co_return;
    }
    // Every place is held. The dropped ones come back once idle past
    // claim_idle (taken back here if no other consumer took them); else an
    // ack or a drop makes room.
    std::optional<clock::time_point> due;
    {
      std::lock_guard g(m);
      for (auto& [id, t] : dropped)
        if (!due || t < *due) due = t;
    }
    if (due && now >= *due) {
      if (co_await reclaim_dropped()) co_return;
      std::lock_guard g(m);
      due.reset();
      for (auto& [id, t] : dropped)
        if (!due || t < *due) due = t;
    }
    auto wait = due ? std::chrono::duration_cast<std::chrono::milliseconds>(*due - clock::now()) + std::chrono::milliseconds(1)
                    : opts.claim_idle;
    co_await wait_release(clamp_ms(wait, std::chrono::milliseconds(1), opts.claim_idle));
  }

  task<void> ensure_group(std::shared_ptr<connection> c) {
    try {
      co_await c->command("XGROUP", "CREATE", opts.stream, opts.group, "0", "MKSTREAM");
    } catch (const error& e) {
      if (!is_busygroup(e)) throw;
    }
  }

  task<void> connect() {
    auto r = std::make_shared<connection>(co_await connection::connect(host, port));
    auto a = std::make_shared<connection>(co_await connection::connect(host, port));
    co_await ensure_group(r);
    std::lock_guard g(m);
    reader = std::move(r);
    acker = std::move(a);
  }

  // After a loss: new connections, then this consumer's pending entries
  // first (history), as on start.
  void lost() {
    std::lock_guard g(m);
    reader.reset();
    acker.reset();
    history_done = false;
    history_cursor = "0";
    // A move from a temporary: g++ 12 at -O3 warns (-Wrestrict, falsely) on
    // assigning the literal to a string that may hold a longer id.
    claim_cursor = std::string("0-0");
    // Dropped ones are re-read by the history read.
    dropped.clear();
  }
};

struct producer_state {
  std::string host;
  std::uint16_t port = 0;
  producer_options opts;
  std::shared_ptr<connection> conn;  // set once by open
  std::atomic<std::uint64_t> added{0}, dropped{0}, trimmed{0}, blocked{0};
};

namespace {

// Checks the group's backlog (lag + pending) and adds only below the bound,
// atomically: nil when full. lag is nil in XINFO when Redis cannot compute it
// (entries deleted inside the undelivered range): then the undelivered are
// counted by XRANGE, at most max_backlog of them.
// KEYS[1] stream; ARGV[1] max_backlog, ARGV[2] group, ARGV[3..] fields.
constexpr const char* bounded_add_script = R"lua(
local max = tonumber(ARGV[1])
local backlog = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == ARGV[2] then
      local lag = f['lag']
      if not lag then
        lag = #redis.call('XRANGE', KEYS[1], '(' .. f['last-delivered-id'], '+', 'COUNT', ARGV[1])
      end
      backlog = lag + f['pending']
    end
  end
end
if backlog >= max then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
)lua";

// XADD MAXLEN = max and how many entries it trimmed (length before + 1 -
// length after), atomically. KEYS[1] stream; ARGV[1] max; ARGV[2..] fields.
constexpr const char* trimming_add_script = R"lua(
local before = redis.call('XLEN', KEYS[1])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[1], '*', unpack(ARGV, 2))
return {id, before + 1 - redis.call('XLEN', KEYS[1])}
)lua";

void check_name(const std::string& v, const char* what) {
  if (v.empty()) throw std::invalid_argument(std::string("ringflow::redis: ") + what + " must not be empty");
}

}  // namespace

}  // namespace detail

// ---- delivery ----

delivery& delivery::operator=(delivery&& o) noexcept {
  if (this != &o) {
    drop();
    st_ = std::move(o.st_);
    id_ = std::move(o.id_);
    fields_ = std::move(o.fields_);
    count_ = o.count_;
  }
  return *this;
}

void delivery::drop() noexcept {
  if (auto s = std::move(st_)) s->on_dropped(detail::entry_key::of(id_));
}

namespace detail {
// An ack's claim on its entry: settled by the broker's reply; destroyed
// unsettled (the ack failed, was cancelled, or its task was never run) the
// entry counts as dropped, so its place comes back after claim_idle.
struct pending_ack {
  std::shared_ptr<consumer_state> st;
  entry_key key;
  bool settled = false;
  pending_ack(std::shared_ptr<consumer_state> s, entry_key k) noexcept : st(std::move(s)), key(k) {}
  pending_ack(pending_ack&& o) noexcept : st(std::move(o.st)), key(o.key), settled(o.settled) {}
  pending_ack(const pending_ack&) = delete;
  pending_ack& operator=(const pending_ack&) = delete;
  pending_ack& operator=(pending_ack&&) = delete;
  ~pending_ack() {
    if (st && !settled) st->on_dropped(key);
  }
};

namespace {

// Publishes `abandoned` unless the leader got to publish the outcome.
struct batch_lead {
  std::shared_ptr<consumer_state> st;
  std::shared_ptr<ack_batch> b;
  bool published = false;
  ~batch_lead() {
    if (published) return;
    {
      std::lock_guard g(st->m);
      b->led = false;
    }
    b->outcome.set(ack_batch::abandoned);
  }
};

task<void> lead_batch(std::shared_ptr<consumer_state> st, std::shared_ptr<ack_batch> b) {
  batch_lead lead{st, b};
  co_await ringflow::yield();  // the acks issued with this one join first
  {
    std::lock_guard g(st->m);
    if (st->open_acks == b) st->open_acks.reset();  // closed: later acks open a new batch
  }
  std::exception_ptr failure;
  try {
    // Closed: b->keys no longer changes. The ids' text goes into one
    // buffer (a key's text is the id the broker sent: both are canonical),
    // reserved whole, so the views taken while it fills stay valid.
    command_bytes cmd;
    {
      std::string text;
      text.reserve(b->keys.size() * entry_key::max_text);
      std::vector<std::string_view> argv;
      argv.reserve(b->keys.size() + 3);
      argv.insert(argv.end(), {"XACK", st->opts.stream, st->opts.group});
      for (entry_key k : b->keys) {
        std::size_t at = text.size();
        k.append_text(text);
        argv.emplace_back(text.data() + at, text.size() - at);
      }
      cmd = format_command(argv);
    }
    auto c = st->acker_conn();
    co_await connection_access::send(*c, std::move(cmd));
  } catch (...) {
    failure = std::current_exception();
  }
  lead.published = true;
  if (failure) {
    b->error = failure;
    b->outcome.set(ack_batch::failed);
  } else {
    // Settled before the acks see it.
    st->on_acked(b->keys);
    b->outcome.set(ack_batch::acked);
  }
}

}  // namespace

task<void> send_ack(pending_ack a) {
  consumer_state& st = *a.st;
  std::shared_ptr<ack_batch> b;
  bool lead = false;
  {
    std::lock_guard g(st.m);
    if (!st.open_acks || st.open_acks->keys.size() >= max_ack_batch) {
      st.open_acks = std::make_shared<ack_batch>();
      lead = true;
    }
    b = st.open_acks;
    b->keys.push_back(a.key);
  }
  // Until the batch's outcome (acked or failed): leading it first if this
  // ack opened it, and again when its leader gave up and no other waiting
  // ack took it over. One frame per ack: this loop is not a coroutine of its own.
  auto rx = b->outcome.subscribe();
  int outcome = ack_batch::pending;
  for (;;) {
    if (lead) {
      lead = false;
      co_await lead_batch(a.st, b);
    }
    outcome = b->outcome.get();
    if (outcome == ack_batch::acked || outcome == ack_batch::failed) break;
    if (outcome == ack_batch::abandoned) {
      std::lock_guard g(st.m);
      if (!b->led) lead = b->led = true;
    }
    if (lead) continue;
    // Pending, or being sent again by another ack: a set() after the get()
    // above is a version this receiver has not seen, so this returns.
    co_await rx.changed();
  }
  if (outcome == ack_batch::failed) std::rethrow_exception(b->error);
  a.settled = true;  // its place was freed with the batch's (on_acked)
}
}  // namespace detail

task<void> delivery::ack() {
  if (!st_ && id_.empty()) throw std::logic_error("ringflow::redis::delivery: empty");
  if (!st_) return []() -> task<void> { co_return; }();  // acked already
  // From here on the delivery is no longer ours to drop: the task owns it.
  return detail::send_ack(detail::pending_ack(std::move(st_), detail::entry_key::of(id_)));
}

// ---- stream_consumer ----

stream_consumer::~stream_consumer() {
  if (!st_) return;
  std::shared_ptr<connection> r, a;
  {
    std::lock_guard g(st_->m);
    st_->closed = true;
    r = std::move(st_->reader);
    a = std::move(st_->acker);
  }
}

task<stream_consumer> stream_consumer::open(std::string_view host, std::uint16_t port, consumer_options opts) {
  detail::check_name(opts.stream, "consumer_options::stream");
  detail::check_name(opts.group, "consumer_options::group");
  detail::check_name(opts.consumer, "consumer_options::consumer");
  if (opts.prefetch == 0) throw std::invalid_argument("ringflow::redis: consumer_options::prefetch must be at least 1");
  if (opts.claim_idle.count() <= 0) throw std::invalid_argument("ringflow::redis: consumer_options::claim_idle must be positive");
  if (opts.max_deliveries > 0 && opts.dead_letter.empty())
    throw std::invalid_argument("ringflow::redis: consumer_options::dead_letter is required with max_deliveries");
  if (opts.max_deliveries > 0 && opts.dead_letter == opts.stream)
    throw std::invalid_argument("ringflow::redis: the dead-letter stream must differ from the stream");
  if (opts.reconnect_min.count() <= 0 || opts.reconnect_max < opts.reconnect_min)
    throw std::invalid_argument("ringflow::redis: consumer_options::reconnect_min must be positive and <= reconnect_max");
  if (host.empty() || port == 0) throw std::invalid_argument("ringflow::redis: an empty host or port 0");
  if (opts.prefetch > detail::max_count)
    throw std::invalid_argument("ringflow::redis: consumer_options::prefetch must be at most 2^31");
  // Longer waits than these mean "never" in practice; capping them keeps the
  // deadline arithmetic (now + claim_idle) from overflowing.
  opts.claim_idle = std::min(opts.claim_idle, detail::longest_wait);
  opts.reconnect_max = std::min(opts.reconnect_max, detail::longest_wait);
  opts.reconnect_min = std::min(opts.reconnect_min, opts.reconnect_max);
  auto st = std::make_shared<detail::consumer_state>();
  st->host = std::string(host);
  st->port = port;
  st->opts = std::move(opts);
  return open_task(std::move(st));
}

task<stream_consumer> stream_consumer::open_task(std::shared_ptr<detail::consumer_state> st) {
  co_await st->connect();
  co_return stream_consumer(std::move(st));
}

task<delivery> stream_consumer::next() {
  if (!st_) throw std::logic_error("ringflow::redis::stream_consumer: not opened");
  return next_up_to(st_, UINT64_MAX);
}

task<delivery> stream_consumer::next_up_to(std::shared_ptr<detail::consumer_state> st, std::uint64_t limit) {
  if (st->busy.exchange(true, std::memory_order_acquire))
    throw std::logic_error("ringflow::redis::stream_consumer: next() is already running");
  struct busy_guard {
    detail::consumer_state* s;
    bool clean = false;
    ~busy_guard() {
      // Cancelled in the middle of a read: what it read is pending here but
      // unknown; the history read finds it again.
      if (!clean) {
        s->history_done = false;
        s->history_cursor = "0";
      }
      s->busy.store(false, std::memory_order_release);
    }
  } guard{st.get()};
  if (limit == 0) limit = 1;
  auto backoff = st->opts.reconnect_min;
  for (;;) {
    if (auto e = st->take_buffered()) {
      guard.clean = true;
      co_return st->hand_out(st, std::move(*e));
    }
    bool lost = false;
    guard.clean = false;
    try {
      co_await st->fill(limit);
      guard.clean = true;
    } catch (const std::system_error&) {
      lost = true;
    }
    if (!lost) continue;
    guard.clean = true;
    st->lost();
    for (;;) {
      {
        std::lock_guard g(st->m);
        if (st->closed) throw std::system_error(std::make_error_code(std::errc::connection_aborted), "ringflow::redis: consumer closed");
      }
      co_await sleep_for(backoff);
      backoff = detail::doubled(backoff, st->opts.reconnect_max);
      bool ok = true;
      try {
        co_await st->connect();
      } catch (const std::system_error&) {
        ok = false;
      }
      if (ok) break;
    }
    st->reconnects.fetch_add(1, std::memory_order_relaxed);
    backoff = st->opts.reconnect_min;
  }
}

std::size_t stream_consumer::held() const noexcept {
  if (!st_) return 0;
  std::lock_guard g(st_->m);
  return st_->held_locked();
}

consumer_stats stream_consumer::stats() const noexcept {
  if (!st_) return {};
  auto& s = *st_;
  return {s.delivered.load(std::memory_order_relaxed), s.redelivered.load(std::memory_order_relaxed),
          s.acked.load(std::memory_order_relaxed), s.dead_lettered.load(std::memory_order_relaxed),
          s.reconnects.load(std::memory_order_relaxed)};
}

const consumer_options& stream_consumer::options() const {
  if (!st_) throw std::logic_error("ringflow::redis::stream_consumer: not opened");
  return st_->opts;
}

// ---- stream_producer ----

stream_producer::~stream_producer() = default;

task<stream_producer> stream_producer::open(std::string_view host, std::uint16_t port, producer_options opts) {
  detail::check_name(opts.stream, "producer_options::stream");
  detail::check_name(opts.group, "producer_options::group");
  if (opts.policy == overflow::sample)
    throw std::invalid_argument(
        "ringflow::redis: overflow::sample has no broker form: a stream is append-only and cannot overwrite its "
        "newest entry in place");
  if (opts.max_backlog == 0 || opts.max_backlog > (std::size_t{1} << 53))
    throw std::invalid_argument("ringflow::redis: producer_options::max_backlog must be in [1, 2^53]");
  if (opts.backoff_min.count() <= 0 || opts.backoff_max < opts.backoff_min)
    throw std::invalid_argument("ringflow::redis: producer_options::backoff_min must be positive and <= backoff_max");
  if (host.empty() || port == 0) throw std::invalid_argument("ringflow::redis: an empty host or port 0");
  opts.backoff_max = std::min(opts.backoff_max, detail::longest_wait);
  opts.backoff_min = std::min(opts.backoff_min, opts.backoff_max);
  auto st = std::make_shared<detail::producer_state>();
  st->host = std::string(host);
  st->port = port;
  st->opts = std::move(opts);
  return open_task(std::move(st));
}

task<stream_producer> stream_producer::open_task(std::shared_ptr<detail::producer_state> st) {
  auto c = std::make_shared<connection>(co_await connection::connect(st->host, st->port));
  try {
    co_await c->command("XGROUP", "CREATE", st->opts.stream, st->opts.group, "0", "MKSTREAM");
  } catch (const error& e) {
    if (!detail::is_busygroup(e)) throw;
  }
  st->conn = std::move(c);
  co_return stream_producer(std::move(st));
}

task<add_result> stream_producer::add(entry_fields fields) {
  if (!st_) throw std::logic_error("ringflow::redis::stream_producer: not opened");
  if (fields.empty()) throw std::invalid_argument("ringflow::redis: an entry needs at least one field");
  const bool trimming = st_->opts.policy == overflow::drop_oldest;
  std::vector<std::string> argv{"EVAL", trimming ? detail::trimming_add_script : detail::bounded_add_script, "1",
                                st_->opts.stream, std::to_string(st_->opts.max_backlog)};
  if (!trimming) argv.push_back(st_->opts.group);
  argv.reserve(argv.size() + 2 * fields.size());
  for (auto& [f, v] : fields) {
    argv.push_back(std::move(f));
    argv.push_back(std::move(v));
  }
  return add_task(st_, std::move(argv));
}

task<add_result> stream_producer::add_task(std::shared_ptr<detail::producer_state> st, std::vector<std::string> argv) {
  auto c = st->conn;
  add_result out;
  if (st->opts.policy == overflow::drop_oldest) {
    reply r = co_await c->command(std::move(argv));
    auto parts = r.elements();
    if (parts.size() < 2) throw std::runtime_error("ringflow::redis: unexpected reply of the trimming add");
    out.id = std::string(parts[0].str());
    out.trimmed = static_cast<std::uint64_t>(std::max(0LL, parts[1].integer()));
    st->added.fetch_add(1, std::memory_order_relaxed);
    st->trimmed.fetch_add(out.trimmed, std::memory_order_relaxed);
    co_return out;
  }
  auto backoff = st->opts.backoff_min;
  bool waited = false;
  for (;;) {
    // The script's arguments are needed again after a full backlog.
    reply r = co_await c->command(argv);
    if (!r.is_nil()) {
      out.id = std::string(r.str());
      st->added.fetch_add(1, std::memory_order_relaxed);
      co_return out;
    }
    if (st->opts.policy == overflow::drop_incoming) {
      st->dropped.fetch_add(1, std::memory_order_relaxed);
      out.status = send_status::dropped;
      co_return out;
    }
    if (!waited) st->blocked.fetch_add(1, std::memory_order_relaxed);
    waited = true;
    co_await sleep_for(backoff);
    backoff = detail::doubled(backoff, st->opts.backoff_max);
  }
}

producer_stats stream_producer::stats() const noexcept {
  if (!st_) return {};
  return {st_->added.load(std::memory_order_relaxed), st_->dropped.load(std::memory_order_relaxed),
          st_->trimmed.load(std::memory_order_relaxed), st_->blocked.load(std::memory_order_relaxed)};
}

const producer_options& stream_producer::options() const {
  if (!st_) throw std::logic_error("ringflow::redis::stream_producer: not opened");
  return st_->opts;
}

}  // namespace ringflow::redis
