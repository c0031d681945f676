// The lab's broker mode (ringflow-lab --redis HOST:PORT): the buffer between
// the producer and the consumer is a Redis stream with a consumer group
// (ringflow::redis::stream_producer and stream_consumer), so every strategy
// is measured through the broker with the same accounting:
//
//   block          stream_producer, overflow::block, max_backlog = capacity:
//                  add() waits while the group's backlog (lag + pending) is full
//   drop_incoming  overflow::drop_incoming: add() is refused while it is full
//   drop_oldest    overflow::drop_oldest: XADD MAXLEN = capacity, the stream
//                  keeps its newest entries and the oldest are trimmed
//   sample         not supported: a broker's log is append-only, it cannot
//                  overwrite its newest entry in place (stream_producer
//                  refuses it); the run is reported as skipped
//   request        the consumer pulls with subscription::request(n) over
//                  stream_consumer::deliveries() (prefetch n), and the
//                  producer may add only while fewer than n entries are
//                  unacknowledged (block with max_backlog = n): demand crosses
//                  the broker as the group's backlog
//
//   broker_address a = parse_broker_address("127.0.0.1:6379");   // std::invalid_argument if malformed
//
// Each run uses a stream of its own (deleted afterwards), its producer on
// worker 0 and its consumer on worker 1, each with its own connections. The
// producer pipelines its adds (several in flight) so that one round trip per
// entry does not cap the offered rate. At the deadline both stop; then the
// stream is read back (XRANGE) and every offered entry is classified by its
// sequence number: delivered (the consumer received it), left (still in the
// stream, never delivered: lag, or read ahead and not handed out), dropped
// (refused by drop_incoming, or trimmed by drop_oldest before anyone read
// it). The cross-check: what the producer's adds said they trimmed equals
// what is missing from the stream.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <ringflow/task.hpp>

#include "metrics.hpp"
#include "run_state.hpp"

namespace ringflow::lab {

struct broker_address {
  std::string host;
  std::uint16_t port = 0;
};

// "HOST:PORT" (the last colon splits). std::invalid_argument otherwise.
broker_address parse_broker_address(std::string_view text);

// Why a strategy cannot run through the broker; empty when it can.
std::string_view broker_unsupported(strategy_kind k) noexcept;

// Runs s->strategy through the broker at s->env.opts->redis. On worker 0.
// Throws std::invalid_argument when ringflow was built without its Redis
// client, std::system_error or redis::error when the broker fails.
task<run_result> run_broker(run_state* s);

}  // namespace ringflow::lab
