// Redis Streams with backpressure: a consumer in a consumer group that
// holds at most `prefetch` unacknowledged entries (RabbitMQ's prefetch, at
// the broker), and a producer whose add() completes when the broker has the
// entry (its publisher confirm) with the overflow policies mapped onto the
// stream.
//
//   using namespace ringflow::redis;
//   producer_options po{.stream = "jobs", .group = "workers", .max_backlog = 10'000};
//   auto out = co_await stream_producer::open("127.0.0.1", 6379, po);
//   entry_fields job{{"job", "42"}};
//   add_result r = co_await out.add(std::move(job));      // r.id: the broker's entry id
//
//   consumer_options co{.stream = "jobs", .group = "workers", .consumer = "worker-1", .prefetch = 16};
//   auto in = co_await stream_consumer::open("127.0.0.1", 6379, co);
//   for (;;) {
//     delivery d = co_await in.next();                  // suspends while 16 are unacked
//     handle(d.fields());
//     co_await d.ack();                                 // XACK: frees a place
//   }
//
//   auto sub = in.deliveries().subscribe();             // or as a ringflow publisher:
//   std::vector<delivery> batch = co_await sub.request(8);   // reads at most 8 from the broker
//
// Options and fields are named variables above on purpose: g++ 12
// miscompiles a temporary holding std::strings (a braced or designated
// initializer) inside a co_await expression (it relocates it bitwise, and
// the strings' buffers then dangle), even when the callee is a plain
// function.
//
// Scaling out: more consumers with distinct names in the same group, in any
// number of processes and machines, share the stream; each entry goes to one
// of them, and an entry a consumer took and never acknowledged (it crashed,
// or dropped the delivery) is taken over by whichever consumer asks after
// claim_idle (XAUTOCLAIM). Delivery is at-least-once: handlers must tolerate
// an entry twice.
//
// Both classes open connections of their own (redis::connection) and use
// them from any worker; a consumer uses two, so that its blocking read never
// delays its acknowledgements.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ringflow/overflow.hpp>
#include <ringflow/publisher.hpp>
#include <ringflow/redis.hpp>
#include <ringflow/task.hpp>

namespace ringflow::redis {

// An entry's fields, in the order they were added (field names may repeat).
using entry_fields = std::vector<std::pair<std::string, std::string>>;

namespace detail {
struct consumer_state;
struct producer_state;
struct stream_entry;
}  // namespace detail

struct consumer_options {
  std::string stream{};  // the stream's key (not empty)
  std::string group{};  // the consumer group (not empty); created at the stream's first entry
                         //   if missing (XGROUP CREATE ... 0 MKSTREAM), so nothing added before is lost
  std::string consumer{};  // this consumer's name in the group (not empty; unique per live consumer)
  // Entries this consumer holds at the broker unacknowledged (its pending
  // list: handed out, read ahead, or dropped and not yet claimed by another):
  // XREADGROUP asks COUNT = prefetch - held. 0 or above 2^31:
  // std::invalid_argument.
  std::size_t prefetch = 16;
  // An entry pending this long without an ack is claimed (XAUTOCLAIM) by the
  // next consumer of the group that asks, this one included, and
  // redelivered. Zero or negative: std::invalid_argument; above 100 years:
  // capped there (as every wait here).
  std::chrono::milliseconds claim_idle{30'000};
  // An entry about to be delivered for the (max_deliveries+1)-th time is
  // added to dead_letter instead (XADD, then XACK here). 0: no limit.
  std::size_t max_deliveries = 0;
  // The dead-letter stream's key; required when max_deliveries > 0. Its
  // entries carry the original fields, then "dead-letter-id" (the entry's id
  // in `stream`) and "dead-letter-deliveries" (how often it was delivered).
  std::string dead_letter{};
  // How long one XREADGROUP waits for new entries at the broker (BLOCK)
  // before next() looks for idle entries to claim. Clamped to [1 ms,
  // claim_idle].
  std::chrono::milliseconds block{1'000};
  // Reconnecting after the connection was lost: the first wait, doubled per
  // failed attempt up to reconnect_max.
  std::chrono::milliseconds reconnect_min{10};
  std::chrono::milliseconds reconnect_max{1'000};
};

struct consumer_stats {
  std::uint64_t delivered = 0;      // deliveries handed out by next()
  std::uint64_t redelivered = 0;    // of which delivery_count() > 1
  std::uint64_t acked = 0;          // entries whose XACK the broker confirmed
  std::uint64_t dead_lettered = 0;  // entries moved to the dead-letter stream
  std::uint64_t reconnects = 0;     // connections re-established after a loss
};

// One entry handed to this consumer. Move-only. Destroyed without ack()
// (or after a failed one) the entry stays pending at the broker and comes
// back after claim_idle, to this consumer or another of the group.
class delivery {
 public:
  delivery() noexcept = default;  // empty: ack() throws std::logic_error
  delivery(delivery&&) noexcept = default;
  delivery& operator=(delivery&& o) noexcept;
  delivery(const delivery&) = delete;
  delivery& operator=(const delivery&) = delete;
  ~delivery() { drop(); }

  const std::string& id() const noexcept { return id_; }
  const entry_fields& fields() const noexcept { return fields_; }
  // The broker delivered it before (to this consumer or another).
  bool redelivered() const noexcept { return count_ > 1; }
  // How many times the broker has delivered it, this time included.
  std::uint64_t delivery_count() const noexcept { return count_; }
  bool empty() const noexcept { return st_ == nullptr; }

  // XACK. Completes when the broker confirmed it; acks issued together
  // (e.g. spawned for a batch) share one XACK with all their ids, sent once
  // the other ready tasks of the first one's worker have run. A second ack() does
  // nothing. Throws std::logic_error on an empty delivery (from the call),
  // redis::error or std::system_error (connection lost) from the task: the
  // entry then stays pending and is redelivered later.
  // Cancel safety: cancelled before the reply, the XACK may or may not have
  // been applied (at-least-once: it may be redelivered); the other acks of
  // its batch are not affected (one of them sends the batch if this one was
  // to).
  task<void> ack();

 private:
  friend struct detail::consumer_state;
  void drop() noexcept;

  std::shared_ptr<detail::consumer_state> st_;
  std::string id_;
  entry_fields fields_;
  std::uint64_t count_ = 0;
};

class stream_consumer {
 public:
  stream_consumer() noexcept = default;  // not opened: next() throws std::logic_error
  stream_consumer(stream_consumer&&) noexcept = default;
  stream_consumer& operator=(stream_consumer&&) noexcept = default;
  stream_consumer(const stream_consumer&) = delete;
  stream_consumer& operator=(const stream_consumer&) = delete;
  ~stream_consumer();  // closes its connections; deliveries still out may be acked until then

  // Connects (two connections), creates the group if missing (ignoring
  // BUSYGROUP). host and opts are copied at once (a plain function).
  // Throws std::invalid_argument (bad options, from the call),
  // std::system_error (refused) or redis::error (the key is not a stream)
  // from the task.
  static task<stream_consumer> open(std::string_view host, std::uint16_t port, consumer_options opts);

  // The next entry: first the entries already pending for this consumer's
  // name (a restarted consumer resumes what it held: XREADGROUP ... 0),
  // then entries idle past claim_idle in the group (XAUTOCLAIM), and new
  // ones (XREADGROUP ... >). Suspends while prefetch entries are held
  // unacknowledged, and while the stream has nothing for it. When the
  // connection is lost it reconnects with backoff (reconnect_min..max,
  // forever: bound it with ringflow::timeout) and resumes from its pending
  // entries; deliveries still out then are not handed out again (they can
  // be acked on the new connection), dropped ones are. Throws std::logic_error (not opened, or a next() of this
  // consumer already running: one at a time), redis::error (e.g. the group
  // was destroyed).
  // Cancel safety: may be cancelled at any point; entries it read and did
  // not hand out stay pending at the broker and are handed out by the next
  // call (or claimed by another consumer after claim_idle).
  task<delivery> next();

  // This consumer as a ringflow publisher: a subscription's request(n)
  // reads at most n entries from the broker (COUNT = min(n, what prefetch
  // leaves)) and delivers them. Each subscription runs next() in a loop;
  // subscribe once at a time. Errors of next() end the subscription.
  publisher<delivery> deliveries();

  // Entries this consumer holds at the broker as far as it knows (handed
  // out unacked, read ahead, dropped and not yet claimed elsewhere): at
  // least what XPENDING shows for it, at most prefetch.
  std::size_t held() const noexcept;
  consumer_stats stats() const noexcept;
  const consumer_options& options() const;

 private:
  explicit stream_consumer(std::shared_ptr<detail::consumer_state> s) noexcept : st_(std::move(s)) {}
  static task<delivery> next_up_to(std::shared_ptr<detail::consumer_state> st, std::uint64_t limit);
  static task<stream_consumer> open_task(std::shared_ptr<detail::consumer_state> st);

  std::shared_ptr<detail::consumer_state> st_;
};

// The overflow vocabulary on a broker. The "buffer" is the group's backlog:
// entries not yet delivered to the group (XINFO GROUPS lag) plus entries
// delivered and unacknowledged (pending).
// - block: add() waits while the backlog is at max_backlog, polling the
//   broker with a backoff (backoff_min doubled up to backoff_max): lossless.
// - drop_incoming: add() returns send_status::dropped while the backlog is
//   at max_backlog; nothing is added.
// - drop_oldest: XADD MAXLEN = max_backlog (exact trimming, not `~`, so the
//   count is exact): the stream keeps its newest max_backlog entries, and
//   add_result::trimmed says how many older ones this add evicted (the
//   stream's length before and after, in one Lua script so concurrent
//   producers are not miscounted). MAXLEN bounds the stream, so an entry
//   trimmed may have been delivered already (and acked or not: a trimmed
//   pending entry is acknowledged by the consumer that finds it gone).
// - sample: refused (std::invalid_argument). In memory it overwrites the
//   newest buffered value; a broker's log is append-only, and an entry's
//   id is its place in the log and already confirmed to its producer and
//   possibly read by a consumer, so it cannot be overwritten in place.
// block and drop_incoming check the backlog and add in one Lua script, so
// max_backlog holds across any number of producers.
struct producer_options {
  std::string stream{};  // the stream's key (not empty)
  std::string group{};  // the group whose backlog is bounded (not empty); created if missing
  std::size_t max_backlog = 10'000;  // 0 or above 2^53: std::invalid_argument
  overflow policy = overflow::block;
  std::chrono::milliseconds backoff_min{1};
  std::chrono::milliseconds backoff_max{100};
};

struct add_result {
  send_status status = send_status::sent;  // sent, or dropped (drop_incoming)
  std::string id{};                        // the entry's id when sent
  std::uint64_t trimmed = 0;               // drop_oldest: older entries this add evicted
};

struct producer_stats {
  std::uint64_t added = 0;          // entries the broker confirmed
  std::uint64_t dropped = 0;        // drop_incoming refusals
  std::uint64_t trimmed = 0;        // drop_oldest evictions
  std::uint64_t blocked_adds = 0;   // block: adds that had to wait
};

class stream_producer {
 public:
  stream_producer() noexcept = default;  // not opened: add() throws std::logic_error
  stream_producer(stream_producer&&) noexcept = default;
  stream_producer& operator=(stream_producer&&) noexcept = default;
  stream_producer(const stream_producer&) = delete;
  stream_producer& operator=(const stream_producer&) = delete;
  ~stream_producer();

  // Connects and creates the group if missing. Throws std::invalid_argument
  // (bad options, sample: see above; from the call), std::system_error or
  // redis::error from the task.
  static task<stream_producer> open(std::string_view host, std::uint16_t port, producer_options opts);

  // Adds one entry; completes when the broker replied with its id (the
  // publisher confirm), or at once with dropped (drop_incoming, backlog
  // full). fields is moved into the task (a plain function). Concurrent
  // add()s pipeline on the producer's connection. Throws
  // std::invalid_argument (no fields, from the call), redis::error (an
  // error reply: -OOM from a server at maxmemory, a key of another type),
  // std::system_error (connection lost: the entry may or may not be in the
  // stream; the producer does not reconnect, open a new one). Each add is
  // one EVAL of a small Lua script (the check and the XADD in one step), so
  // an entry is limited to what Lua can unpack: some 3,900 fields (more is
  // the broker's redis::error).
  // Cancel safety: cancelled while waiting for room, nothing was added;
  // cancelled after it was sent, the entry may be in the stream.
  task<add_result> add(entry_fields fields);

  producer_stats stats() const noexcept;
  const producer_options& options() const;

 private:
  explicit stream_producer(std::shared_ptr<detail::producer_state> s) noexcept : st_(std::move(s)) {}
  static task<add_result> add_task(std::shared_ptr<detail::producer_state> st, std::vector<std::string> argv);
  static task<stream_producer> open_task(std::shared_ptr<detail::producer_state> st);

  std::shared_ptr<detail::producer_state> st_;
};

}  // namespace ringflow::redis

#include <ringflow/detail/redis_stream.hpp>
