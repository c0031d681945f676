// The five ways of connecting the producer to the consumer, each run over
// one scenario for options::duration:
//
//   block          channel<item>(capacity, overflow::block): send suspends while full
//   drop_incoming  channel<item>(capacity, overflow::drop_incoming)
//   drop_oldest    channel<item>(capacity, overflow::drop_oldest)
//   sample         channel<item>(sample_capacity, overflow::sample): 1 = conflated
//   request        publisher<item>::create + subscription::request(n), n = batch:
//                  the consumer asks for n, then replenishes what it has processed,
//                  so at most n values are requested and not yet processed
//
// The producer runs on worker 0 and offers, every producer_tick, what the
// scenario's schedule says it owes; each item carries its sequence number and
// offer time. The consumer runs on worker 1 (0 with one thread). Both stop at
// the deadline; the run then closes the channel (a send still suspended
// returns `closed` and was never offered) or lets the stream complete (a
// producer waiting for demand is released by one last request(1); that value
// counts as left), and counts what was left buffered. With options::redis the
// buffer is a Redis stream instead (broker.hpp). Nothing is drained after the deadline, so
// `left` is what the strategy was holding when the clock ran out.
#pragma once

#include <ringflow/task.hpp>

#include "broker.hpp"
#include "metrics.hpp"
#include "run_state.hpp"

namespace ringflow::lab {

// Runs s->strategy (block, drop_*, sample) over a channel. On worker 0.
task<run_result> run_channel(run_state* s);
// Runs request(n) over a publisher/subscription. On worker 0.
task<run_result> run_request(run_state* s);

inline task<run_result> run_strategy(run_state* s) {
  if (!s->env.opts->redis.empty()) return run_broker(s);
  if (s->strategy == strategy_kind::request) return run_request(s);
  return run_channel(s);
}

}  // namespace ringflow::lab
