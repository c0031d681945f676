// block, drop_incoming, drop_oldest and sample: a ringflow::channel between
// the producer and the consumer.
#include <algorithm>

#include <ringflow/channel.hpp>
#include <ringflow/join_handle.hpp>
#include <ringflow/sleep.hpp>

#include "probe.hpp"
#include "strategy.hpp"

namespace ringflow::lab {

namespace {

using item_channel = ringflow::channel<item>;

overflow policy_of(strategy_kind k) {
  switch (k) {
    case strategy_kind::drop_incoming: return overflow::drop_incoming;
    case strategy_kind::drop_oldest: return overflow::drop_oldest;
    case strategy_kind::sample: return overflow::sample;
    default: return overflow::block;
  }
}

task<void> produce(run_state* s, item_channel* ch) {
  const auto tick = s->env.opts->producer_tick();
  const std::size_t payload = s->env.opts->payload;
  bool closed = false;
  while (!closed) {
    const std::int64_t now = now_ns();
    if (now >= s->deadline_ns) break;
    const std::uint64_t owed = s->sc.offered_by(s->elapsed(now));
    while (s->next_seq < owed && now_ns() < s->deadline_ns) {
      item it = item::make(s->next_seq, payload);
      const std::int64_t t0 = it.offered_ns;
      s->latest_seq.store(s->next_seq, std::memory_order_relaxed);
      probe<item_channel::send_awaiter> p{ch->send(std::move(it))};
      const send_status st = co_await p;
      if (p.suspended) s->record_suspension(t0);
      if (st == send_status::closed) {
        closed = true;
        break;
      }
      ++s->next_seq;
      ++s->offered;
      if (st == send_status::dropped) ++s->rejected;
      s->offered_pub.store(s->offered, std::memory_order_relaxed);
    }
    if (closed) break;
    co_await sleep_for(tick);
  }
  ch->close();  // wakes a consumer waiting on an empty buffer
}

task<void> consume(run_state* s, item_channel* ch) {
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
    probe<item_channel::recv_awaiter> p{ch->recv()};
    std::optional<item> v = co_await p;
    if (!v) break;  // closed and drained
    s->record_receipt(*v);
    const auto nap = pace.account(paused || p.suspended);
    paused = false;
    if (nap.count() > 0) co_await sleep_for(nap);
  }
}

}  // namespace

task<run_result> run_channel(run_state* s) {
  const std::size_t capacity = s->strategy == strategy_kind::sample ? s->env.opts->sample_capacity : s->env.opts->capacity;
  // on_drop runs on the sending task (the producer), which owns s->on_drop.
  item_channel ch(capacity, policy_of(s->strategy), [s](item) { ++s->on_drop; });
  s->begin();
  auto sampler = s->env.rt->spawn_on(0, sample_loop(s, [c = &ch] { return c->size(); }));
  auto producer = s->env.rt->spawn_on(0, produce(s, &ch));
  auto consumer = s->env.rt->spawn_on(s->env.consumer_worker, consume(s, &ch));
  co_await std::move(consumer);
  ch.close();  // a producer suspended in send resumes with `closed`
  co_await std::move(producer);
  s->stop_sampler = true;
  co_await std::move(sampler);

  const channel_stats st = ch.stats();
  run_result r = s->finish(capacity);
  r.left = ch.size();
  r.dropped = st.dropped;
  r.stats_sent = st.sent;
  r.stats_received = st.received;
  r.stats_dropped = st.dropped;
  r.blocked_sends = st.blocked_sends;
  r.high_water = st.high_water;
  co_return r;
}

}  // namespace ringflow::lab
