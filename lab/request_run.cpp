// request(n): a cold publisher whose producer emits only against the
// subscriber's demand. The consumer asks for n values, then, each time it has
// worked through what it holds, asks for as many as it has processed since
// its last request (a sliding window, like Reactor's limitRate): values
// requested but not yet processed never exceed n, so n bounds the buffer,
// and the producer is not held at every batch boundary.
#include <algorithm>
#include <utility>
#include <vector>

#include <ringflow/join_handle.hpp>
#include <ringflow/publisher.hpp>
#include <ringflow/sleep.hpp>

#include "probe.hpp"
#include "strategy.hpp"

namespace ringflow::lab {

namespace {

task<void> produce(run_state* s, emitter<item>* out) {
  const auto tick = s->env.opts->producer_tick();
  const std::size_t payload = s->env.opts->payload;
  for (;;) {
    const std::int64_t now = now_ns();
    if (now >= s->deadline_ns) co_return;
    const std::uint64_t owed = s->sc.offered_by(s->elapsed(now));
    while (s->next_seq < owed) {
      const std::int64_t t = now_ns();
      if (t >= s->deadline_ns) co_return;
      item it = item::make(s->next_seq, payload);
      const std::int64_t t0 = it.offered_ns;
      s->latest_seq.store(s->next_seq, std::memory_order_relaxed);
      // Suspends while the demand is 0. A producer still waiting here at the
      // deadline is released by the consumer's final request(1) (see consume).
      probe<emitter<item>::emit_awaiter> p{out->emit(std::move(it))};
      const bool delivered = co_await p;
      if (p.suspended) s->record_suspension(t0);
      if (!delivered) co_return;  // cancelled
      ++s->next_seq;
      ++s->offered;
      s->offered_pub.store(s->offered, std::memory_order_relaxed);
      // Only during the run: after the deadline the consumer's draining
      // request(1)s add demand beyond n on purpose (see consume), and a value
      // they release is emitted after the deadline.
      if (now_ns() < s->deadline_ns) {
        const std::uint64_t taken = s->delivered_pub.load(std::memory_order_acquire);
        s->observed_high_water = std::max<std::size_t>(s->observed_high_water, s->offered - taken);
      }
    }
    co_await sleep_for(tick);
  }
}

task<void> consume(run_state* s, subscription<item>* sub) {
  // requested-not-received + held + processed-not-yet-re-requested == n
  std::uint64_t replenish = 0;  // the orchestrator made the first request(n)
  consumer_pacer pace(s->env.opts->cost, s->env.opts->item_cost());
  bool waited = true;
  std::vector<item> got;
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
      if (replenish > 0) {
        probe<subscription<item>::request_awaiter> p{sub->request(std::exchange(replenish, 0))};
        std::vector<item> fresh = co_await p;
        waited = waited || p.suspended;
        got = std::move(fresh);
      } else {  // all n are requested and on their way
        probe<subscription<item>::request_awaiter> p{sub->next()};
        std::vector<item> fresh = co_await p;
        waited = waited || p.suspended;
        got = std::move(fresh);
      }
      next = 0;
      if (got.empty()) break;  // completed
      continue;
    }
    item v = std::move(got[next++]);
    s->record_receipt(v);
    const auto nap = pace.account(waited);
    waited = false;
    if (nap.count() > 0) co_await sleep_for(nap);
    ++replenish;
  }
  s->left_local = got.size() - next;
  got.clear();
  // What was emitted but not taken. The producer stops at the deadline and
  // the stream completes; request(1) waits for that, and releases a producer
  // waiting for demand (its value, emitted now, counts as left).
  for (;;) {
    std::vector<item> rest = co_await sub->request(1);
    if (rest.empty()) break;
    s->left_local += rest.size();
  }
}

}  // namespace

task<run_result> run_request(run_state* s) {
  auto pub = publisher<item>::create([s](emitter<item>& out) { return produce(s, &out); });
  auto sub = pub.subscribe();
  s->begin();
  auto sampler = s->env.rt->spawn_on(0, sample_loop(s, [s] {
    const std::uint64_t taken = s->delivered_pub.load(std::memory_order_acquire);
    return static_cast<std::size_t>(s->offered - std::min(s->offered, taken));
  }));
  // The first request starts the producer on this worker (0); the consumer
  // then asks from its own worker.
  sub.request(s->env.opts->batch);
  auto consumer = s->env.rt->spawn_on(s->env.consumer_worker, consume(s, &sub));
  co_await std::move(consumer);
  s->stop_sampler = true;
  co_await std::move(sampler);

  run_result r = s->finish(s->env.opts->batch);
  r.left = s->left_local;
  r.dropped = 0;
  co_return r;
}

}  // namespace ringflow::lab
