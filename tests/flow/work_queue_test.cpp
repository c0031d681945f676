// work_queue<T>: acknowledged deliveries with prefetch.
//
// Single-worker tests check each rule deterministically (REQUIRE runs inside
// the task, nothing else runs then). The two-worker tests (crashing
// consumers, MPMC) record what they see in atomics and vectors owned by each
// task, and every check happens on the test's thread after block_on returned:
// no Catch macro runs while another worker runs. Seeded: a failure prints the seed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <iterator>
#include <limits>
#include <map>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <ringflow/ringflow.hpp>
#include <ringflow/work_queue.hpp>

#include "../support/run.hpp"
#include "../support/tracked.hpp"

using namespace std::chrono_literals;
using ringflow::drop_reason;
using ringflow::overflow;
using ringflow::send_status;
using ringflow::task;
using test_support::run;
using test_support::tracked;

using queue = ringflow::work_queue<int>;
using consumer = queue::consumer;
using delivery = queue::delivery;

namespace {

task<std::optional<delivery>> recv_one(consumer* c) { co_return co_await c->recv(); }

task<send_status> send_one(queue* q, int v) { co_return co_await q->send(v); }

// Receives and acks one delivery, logging its value (-1 for nullopt).
task<void> recv_ack_into(consumer* c, std::vector<int>* log) {
  auto d = co_await c->recv();
  if (!d) {
    log->push_back(-1);
    co_return;
  }
  log->push_back(d->value());
  d->ack();
}

void fill(queue& q, int from, int to) {
  for (int i = from; i < to; ++i) REQUIRE(q.try_send(i) == send_status::sent);
}

struct dropped_value {
  int value;
  drop_reason why;
  bool operator==(const dropped_value&) const = default;
};

}  // namespace

TEST_CASE("work_queue: bad arguments and wrong states throw", "[flow][work_queue]") {
  REQUIRE_THROWS_AS(queue(0), std::invalid_argument);
  queue q(4);
  REQUIRE_THROWS_AS(q.subscribe(0), std::invalid_argument);
  run([]() -> task<void> {
    queue q(4);
    fill(q, 0, 3);
    auto c = q.subscribe(3);
    auto d = co_await c.recv();
    d->ack();
    REQUIRE_FALSE(d->pending());
    REQUIRE(d->value() == 0);  // still readable after ack
    REQUIRE_THROWS_AS(d->ack(), std::logic_error);
    REQUIRE_THROWS_AS(d->nack(), std::logic_error);
    auto e = co_await c.recv();
    e->nack(false);
    REQUIRE_THROWS_AS(e->value(), std::logic_error);  // gone to the drop side
    REQUIRE_THROWS_AS(e->ack(), std::logic_error);
    auto f = co_await c.recv();
    delivery g = std::move(*f);
    REQUIRE_THROWS_AS(f->ack(), std::logic_error);  // moved from
    REQUIRE_THROWS_AS(f->value(), std::logic_error);
    g.ack();
    consumer moved = std::move(c);
    REQUIRE_FALSE(c.connected());
    REQUIRE_THROWS_AS(c.recv(), std::logic_error);
    REQUIRE_THROWS_AS(c.try_recv(), std::logic_error);
    REQUIRE(c.unacked() == 0);
    REQUIRE(moved.connected());
    REQUIRE(moved.prefetch() == 3);
  });
}

TEST_CASE("work_queue: delivers in send order; ack settles; stats add up", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(16);
    fill(q, 0, 10);
    auto c = q.subscribe(10);
    std::vector<delivery> held;
    for (int i = 0; i < 10; ++i) {
      auto d = co_await c.recv();
      REQUIRE(d);
      REQUIRE(d->value() == i);
      REQUIRE(d->id() == static_cast<std::uint64_t>(i));
      REQUIRE_FALSE(d->redelivered());
      held.push_back(std::move(*d));
    }
    REQUIRE(c.unacked() == 10);
    auto st = q.stats();
    REQUIRE(st.sent == 10);
    REQUIRE(st.delivered == 10);
    REQUIRE(st.ready == 0);
    REQUIRE(st.unacked == 10);
    REQUIRE(st.consumers == 1);
    REQUIRE(st.high_water == 10);
    for (auto& d : held) d.ack();
    st = q.stats();
    REQUIRE(st.acked == 10);
    REQUIRE(st.unacked == 0);
    REQUIRE(c.unacked() == 0);
    REQUIRE(st.redelivered == 0);
    REQUIRE(st.requeued == 0);
  });
}

TEST_CASE("work_queue: nack(requeue) puts the value back at the head, marked redelivered", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(16);
    fill(q, 0, 6);
    auto c = q.subscribe(3);
    auto d0 = co_await c.recv();
    auto d1 = co_await c.recv();
    auto d2 = co_await c.recv();
    d1->nack(true);
    REQUIRE(q.stats().ready == 4);
    auto again = co_await c.recv();
    REQUIRE(again->value() == 1);  // before 3, 4, 5, which were never delivered
    REQUIRE(again->redelivered());
    REQUIRE(again->id() == 1);
    again->ack();
    // Two values come back in the reverse order: they return to their own
    // places at the head, so they go out again in send order.
    d2->nack();
    d0->nack();
    std::vector<std::pair<int, bool>> got;
    for (int i = 0; i < 5; ++i) {
      auto d = co_await c.recv();
      got.emplace_back(d->value(), d->redelivered());
      d->ack();
    }
    REQUIRE(got == std::vector<std::pair<int, bool>>{{0, true}, {2, true}, {3, false}, {4, false}, {5, false}});
    auto st = q.stats();
    REQUIRE(st.nacked == 3);
    REQUIRE(st.requeued == 3);
    REQUIRE(st.redelivered == 3);
    REQUIRE(st.delivered == 9);
    REQUIRE(st.acked == 6);
    REQUIRE(st.dropped == 0);
    REQUIRE(st.ready == 0);
  });
}

TEST_CASE("work_queue: nack(false) drops the value, counts it and hands it to on_drop", "[flow][work_queue]") {
  run([]() -> task<void> {
    std::vector<dropped_value> seen;
    queue q(4, overflow::block, [&seen](int v, drop_reason why) { seen.push_back({v, why}); });
    fill(q, 0, 2);
    auto c = q.subscribe(2);
    auto d = co_await c.recv();
    d->nack(false);
    REQUIRE(seen == std::vector<dropped_value>{{0, drop_reason::rejected}});
    auto st = q.stats();
    REQUIRE(st.dropped == 1);
    REQUIRE(st.nacked == 1);
    REQUIRE(st.requeued == 0);
    REQUIRE(st.unacked == 0);
    auto next = co_await c.recv();
    REQUIRE(next->value() == 1);  // 0 is gone for good
    REQUIRE_FALSE(next->redelivered());
    next->ack();
  });
}

TEST_CASE("work_queue: a delivery dropped without ack is requeued", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(4);
    fill(q, 0, 2);
    auto c = q.subscribe(1);
    {
      auto d = co_await c.recv();
      REQUIRE(d->value() == 0);
      REQUIRE(c.unacked() == 1);
    }
    REQUIRE(c.unacked() == 0);  // its prefetch slot is free again
    auto st = q.stats();
    REQUIRE(st.requeued == 1);
    REQUIRE(st.nacked == 0);
    REQUIRE(st.ready == 2);
    auto d = co_await c.recv();
    REQUIRE(d->value() == 0);
    REQUIRE(d->redelivered());
    auto none = c.try_recv();  // prefetch 1: nothing while d is out
    REQUIRE_FALSE(none.has_value());
    d->ack();
    auto e = c.try_recv();
    REQUIRE(e->value() == 1);
    e->ack();
  });
}

TEST_CASE("work_queue: move-assigning over an unsettled delivery requeues it", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(4);
    fill(q, 0, 2);
    auto c = q.subscribe(2);
    auto d0 = co_await c.recv();
    auto d1 = co_await c.recv();
    *d0 = std::move(*d1);  // 0 goes back
    REQUIRE(d0->value() == 1);
    REQUIRE(c.unacked() == 1);
    REQUIRE(q.stats().requeued == 1);
    auto again = co_await c.recv();
    REQUIRE(again->value() == 0);
    REQUIRE(again->redelivered());
    again->ack();
    d0->ack();
    REQUIRE(q.stats().acked == 2);
  });
}

TEST_CASE("work_queue: a disconnecting consumer returns its values to the head, in order", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(16);
    fill(q, 0, 10);
    auto b = q.subscribe(1);
    {
      auto a = q.subscribe(4);
      std::vector<delivery> held;
      for (int i = 0; i < 4; ++i) {
        auto d = co_await a.recv();
        held.push_back(std::move(*d));
      }
      held[1].ack();
      auto d4 = co_await b.recv();  // b holds 4 meanwhile
      REQUIRE(d4->value() == 4);
      d4->ack();
      REQUIRE(q.stats().unacked == 3);
      // The consumer goes first, then its deliveries, newest first (3, 2, 0).
      a.disconnect();
      REQUIRE(q.stats().consumers == 1);
      REQUIRE(q.stats().unacked == 3);  // still out: the handles own the values
      std::reverse(held.begin(), held.end());
    }
    std::vector<std::pair<int, bool>> got;
    for (int i = 0; i < 8; ++i) {
      auto d = co_await b.recv();
      got.emplace_back(d->value(), d->redelivered());
      d->ack();
    }
    REQUIRE(got == std::vector<std::pair<int, bool>>{
                       {0, true}, {2, true}, {3, true}, {5, false}, {6, false}, {7, false}, {8, false}, {9, false}});
    REQUIRE(q.stats().acked == 10);
  });
}

TEST_CASE("work_queue: a delivery outliving its consumer can still be acked", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(4);
    fill(q, 0, 2);
    std::optional<delivery> d;
    {
      auto c = q.subscribe(1);
      auto got = co_await c.recv();
      d = std::move(got);
    }
    REQUIRE(q.stats().consumers == 0);
    REQUIRE(q.stats().unacked == 1);
    d->ack();
    REQUIRE(q.stats().acked == 1);
    REQUIRE(q.stats().unacked == 0);
    REQUIRE(q.stats().requeued == 0);
  });
}

TEST_CASE("work_queue: a consumer at its prefetch limit waits for an ack, then resumes", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(16);
    fill(q, 0, 5);
    auto c = q.subscribe(2);
    auto d0 = co_await c.recv();
    auto d1 = co_await c.recv();
    auto third = ringflow::spawn(recv_one(&c));
    co_await ringflow::yield();
    co_await ringflow::yield();
    REQUIRE_FALSE(third.is_finished());  // 3 values are ready, but c holds 2
    REQUIRE(q.stats().ready == 3);
    REQUIRE(q.stats().prefetch_waits == 1);
    REQUIRE(c.unacked() == 2);
    d1->ack();
    auto d2 = co_await std::move(third);
    REQUIRE(d2->value() == 2);
    REQUIRE(c.unacked() == 2);
    d0->ack();
    d2->ack();
  });
}

TEST_CASE("work_queue: a consumer at its limit does not hold up the others; receivers are served FIFO", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(16);
    auto a = q.subscribe(1);
    auto b = q.subscribe(1);
    auto c = q.subscribe(1);
    fill(q, 0, 1);
    auto held = co_await a.recv();
    std::vector<int> log_a, log_b, log_c;
    auto ra = ringflow::spawn(recv_ack_into(&a, &log_a));  // waits first, but a is at its limit
    co_await ringflow::yield();
    auto rb = ringflow::spawn(recv_ack_into(&b, &log_b));
    co_await ringflow::yield();
    auto rc = ringflow::spawn(recv_ack_into(&c, &log_c));
    co_await ringflow::yield();
    fill(q, 1, 3);
    co_await std::move(rb);
    co_await std::move(rc);
    REQUIRE(log_b == std::vector<int>{1});  // first in line with a free slot
    REQUIRE(log_c == std::vector<int>{2});
    REQUIRE_FALSE(ra.is_finished());
    held->ack();  // a's slot frees: its receiver joins the line
    fill(q, 3, 4);
    co_await std::move(ra);
    REQUIRE(log_a == std::vector<int>{3});

    // With values ready, a receiver whose consumer has room takes one at once
    // even while another consumer's receiver is parked at its limit.
    fill(q, 4, 6);
    auto h = co_await a.recv();
    auto parked = ringflow::spawn(recv_one(&a));
    co_await ringflow::yield();
    auto quick = b.try_recv();
    REQUIRE(quick->value() == 5);
    quick->ack();
    REQUIRE_FALSE(parked.is_finished());
    h->ack();
    fill(q, 6, 7);
    auto late = co_await std::move(parked);
    REQUIRE(late->value() == 6);
    late->ack();
  });
}

TEST_CASE("work_queue: one consumer shared by several receivers keeps to its prefetch", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(16);
    auto c = q.subscribe(2);
    std::vector<ringflow::join_handle<std::optional<delivery>>> rs;
    for (int i = 0; i < 4; ++i) rs.push_back(ringflow::spawn(recv_one(&c)));
    co_await ringflow::yield();
    fill(q, 0, 4);
    co_await ringflow::yield();
    co_await ringflow::yield();
    REQUIRE(rs[0].is_finished());
    REQUIRE(rs[1].is_finished());
    REQUIRE_FALSE(rs[2].is_finished());
    REQUIRE_FALSE(rs[3].is_finished());
    REQUIRE(c.unacked() == 2);
    auto d0 = co_await std::move(rs[0]);
    auto d1 = co_await std::move(rs[1]);
    REQUIRE(d0->value() == 0);
    REQUIRE(d1->value() == 1);
    d0->ack();
    auto d2 = co_await std::move(rs[2]);
    REQUIRE(d2->value() == 2);
    REQUIRE_FALSE(rs[3].is_finished());
    d1->ack();
    d2->ack();
    auto d3 = co_await std::move(rs[3]);
    REQUIRE(d3->value() == 3);
    d3->ack();
  });
}

TEST_CASE("work_queue: send suspends while max_length values are ready (unacked ones do not count)", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(2);
    fill(q, 0, 2);
    REQUIRE(q.try_send(2) == send_status::full);
    auto sender = ringflow::spawn(send_one(&q, 2));
    co_await ringflow::yield();
    co_await ringflow::yield();
    REQUIRE_FALSE(sender.is_finished());
    REQUIRE(q.stats().blocked_sends == 1);
    auto c = q.subscribe(4);
    auto d0 = co_await c.recv();  // one ready place frees: the sender goes on
    send_status s = co_await std::move(sender);
    REQUIRE(s == send_status::sent);
    auto st = q.stats();
    REQUIRE(st.ready == 2);
    REQUIRE(st.unacked == 1);
    REQUIRE(q.try_send(3) == send_status::full);
    // Requeued values are never refused: the ready count may pass max_length.
    auto d1 = co_await c.recv();
    REQUIRE(q.try_send(3) == send_status::sent);
    d0->nack();
    d1->nack();
    REQUIRE(q.stats().ready == 4);
    REQUIRE(q.try_send(4) == send_status::full);
    auto blocked = ringflow::spawn(send_one(&q, 4));
    co_await ringflow::yield();
    std::vector<int> got;
    for (int i = 0; i < 2; ++i) {  // 4 -> 2 ready: still no room
      auto d = co_await c.recv();
      got.push_back(d->value());
      d->ack();
    }
    co_await ringflow::yield();
    REQUIRE_FALSE(blocked.is_finished());
    auto d = co_await c.recv();  // 1 ready: room
    got.push_back(d->value());
    d->ack();
    send_status late = co_await std::move(blocked);
    REQUIRE(late == send_status::sent);
    for (int i = 0; i < 2; ++i) {
      auto e = co_await c.recv();
      got.push_back(e->value());
      e->ack();
    }
    REQUIRE(got == std::vector<int>{0, 1, 2, 3, 4});
  });
}

TEST_CASE("work_queue: drop_incoming refuses the value being sent, counts and reports it", "[flow][work_queue]") {
  run([]() -> task<void> {
    std::vector<dropped_value> seen;
    queue q(2, overflow::drop_incoming, [&seen](int v, drop_reason why) { seen.push_back({v, why}); });
    fill(q, 0, 2);
    send_status s = co_await q.send(2);  // never suspends
    REQUIRE(s == send_status::dropped);
    REQUIRE(q.try_send(3) == send_status::dropped);
    REQUIRE(seen == std::vector<dropped_value>{{2, drop_reason::overflow}, {3, drop_reason::overflow}});
    auto st = q.stats();
    REQUIRE(st.sent == 2);
    REQUIRE(st.dropped == 2);
    REQUIRE(st.ready == 2);
    REQUIRE(st.blocked_sends == 0);
  });
}

TEST_CASE("work_queue: drop_oldest evicts the head, a requeued value included", "[flow][work_queue]") {
  run([]() -> task<void> {
    std::vector<dropped_value> seen;
    queue q(2, overflow::drop_oldest, [&seen](int v, drop_reason why) { seen.push_back({v, why}); });
    fill(q, 0, 2);
    auto c = q.subscribe(1);
    auto d = co_await c.recv();
    d->nack();  // ready: 0 (redelivered), 1
    send_status s = co_await q.send(2);
    REQUIRE(s == send_status::sent);
    REQUIRE(seen == std::vector<dropped_value>{{0, drop_reason::overflow}});
    auto e = co_await c.recv();
    REQUIRE(e->value() == 1);
    REQUIRE_FALSE(e->redelivered());
    e->ack();
    auto st = q.stats();
    REQUIRE(st.sent == 3);
    REQUIRE(st.dropped == 1);
    REQUIRE(st.ready == 1);
  });
}

TEST_CASE("work_queue: sample overwrites the newest ready value", "[flow][work_queue]") {
  run([]() -> task<void> {
    std::vector<dropped_value> seen;
    queue q(2, overflow::sample, [&seen](int v, drop_reason why) { seen.push_back({v, why}); });
    fill(q, 0, 4);
    REQUIRE(seen == std::vector<dropped_value>{{1, drop_reason::overflow}, {2, drop_reason::overflow}});
    auto c = q.subscribe(2);
    auto a = co_await c.recv();
    auto b = co_await c.recv();
    REQUIRE(a->value() == 0);
    REQUIRE(b->value() == 3);
    REQUIRE(b->id() == 3);
    a->ack();
    b->ack();
    REQUIRE(q.stats().dropped == 2);
    REQUIRE(q.stats().sent == 4);
  });
}

TEST_CASE("work_queue: close wakes senders, refuses new values, lets receivers drain", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(1);
    fill(q, 0, 1);
    auto sender = ringflow::spawn(send_one(&q, 1));
    co_await ringflow::yield();
    q.close();
    q.close();  // idempotent
    REQUIRE(q.is_closed());
    send_status s = co_await std::move(sender);
    REQUIRE(s == send_status::closed);
    REQUIRE(q.try_send(2) == send_status::closed);
    send_status after = co_await q.send(2);
    REQUIRE(after == send_status::closed);
    auto c = q.subscribe(1);
    auto d = co_await c.recv();
    REQUIRE(d->value() == 0);
    d->ack();
    auto end = co_await c.recv();
    REQUIRE_FALSE(end.has_value());
    auto again = co_await c.recv();  // nullopt stays nullopt
    REQUIRE_FALSE(again.has_value());
  });
}

TEST_CASE("work_queue: after close, receivers wait for what other consumers may still return", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(4);
    fill(q, 0, 2);
    auto a = q.subscribe(2);
    auto b = q.subscribe(2);
    auto held = co_await b.recv();
    auto held2 = co_await b.recv();
    // Several receivers waiting at close: none may finish while b holds values.
    std::vector<int> log1, log2;
    auto r1 = ringflow::spawn(recv_ack_into(&a, &log1));
    auto r2 = ringflow::spawn(recv_ack_into(&a, &log2));
    co_await ringflow::yield();
    q.close();
    co_await ringflow::yield();
    co_await ringflow::yield();
    REQUIRE_FALSE(r1.is_finished());
    REQUIRE_FALSE(r2.is_finished());
    held->nack();  // comes back: the first waiting receiver gets it
    co_await std::move(r1);
    REQUIRE(log1 == std::vector<int>{0});
    REQUIRE_FALSE(r2.is_finished());
    held2->ack();  // nothing left anywhere: the rest end
    co_await std::move(r2);
    REQUIRE(log2 == std::vector<int>{-1});
  });
}

TEST_CASE("work_queue: after close, recv waits for the caller's own unacked deliveries too", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(4);
    fill(q, 0, 3);
    q.close();
    auto c = q.subscribe(4);
    // A batch collected before acking: the recv after the last value waits
    // (a held value may still come back), so a batch loop uses a timeout.
    std::vector<delivery> batch;
    for (;;) {
      auto r = co_await ringflow::timeout(5ms, recv_one(&c));
      if (!r) break;  // timed out: process the batch
      REQUIRE(r->has_value());
      batch.push_back(std::move(**r));
    }
    REQUIRE(batch.size() == 3);
    batch.pop_back();  // dropped unsettled: 2 comes back
    auto late = co_await c.recv();
    REQUIRE(late->value() == 2);
    REQUIRE(late->redelivered());
    late->ack();
    for (auto& d : batch) d.ack();
    auto end = co_await c.recv();  // nothing out any more
    REQUIRE_FALSE(end.has_value());
    REQUIRE(q.stats().acked == 3);
  });
}

TEST_CASE("work_queue: after close, a receiver parked at its limit ends when the last delivery is acked", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(4);
    fill(q, 0, 1);
    auto c = q.subscribe(1);
    auto d = co_await c.recv();
    q.close();
    auto parked = ringflow::spawn(recv_one(&c));
    co_await ringflow::yield();
    co_await ringflow::yield();
    REQUIRE_FALSE(parked.is_finished());
    d->ack();
    auto end = co_await std::move(parked);
    REQUIRE_FALSE(end.has_value());
  });
}

TEST_CASE("work_queue: disconnecting a consumer ends its suspended receivers", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(4);
    auto c = std::make_unique<consumer>(q.subscribe(1));
    auto r = ringflow::spawn(recv_one(c.get()));
    co_await ringflow::yield();
    c->disconnect();
    auto end = co_await std::move(r);
    REQUIRE_FALSE(end.has_value());
    REQUIRE(q.try_send(1) == send_status::sent);
    REQUIRE(q.stats().ready == 1);  // nobody took it
    c.reset();
    REQUIRE(q.stats().consumers == 0);

    // A receiver already promised a value when its consumer goes: the value
    // passes to the next receiver, the disconnected one gets nullopt.
    q.close();  // (the ready value 1 is still delivered)
    auto a = std::make_unique<consumer>(q.subscribe(1));
    auto b = q.subscribe(1);
    auto d1 = co_await b.recv();
    std::vector<int> log_a, log_b;
    auto ra = ringflow::spawn(recv_ack_into(a.get(), &log_a));
    co_await ringflow::yield();
    auto rb = ringflow::spawn(recv_ack_into(&b, &log_b));  // parked: b holds 1
    co_await ringflow::yield();
    d1->nack();  // 1 comes back: promised to a's receiver, and b's joins the line
    a->disconnect();  // before a's receiver ran
    co_await std::move(ra);
    co_await std::move(rb);
    REQUIRE(log_a == std::vector<int>{-1});
    REQUIRE(log_b == std::vector<int>{1});
    auto st = q.stats();
    REQUIRE(st.acked == 1);
    REQUIRE(st.delivered == 2);
  });
}

TEST_CASE("work_queue: a recv cancelled by timeout takes nothing", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(4);
    auto c = q.subscribe(1);
    // Waiting for a value.
    auto r = co_await ringflow::timeout(5ms, recv_one(&c));
    REQUIRE_FALSE(r.has_value());
    REQUIRE(q.try_send(42) == send_status::sent);
    auto d = c.try_recv();  // nothing was claimed, the prefetch slot is free
    REQUIRE(d->value() == 42);
    // Parked at the prefetch limit.
    REQUIRE(q.try_send(43) == send_status::sent);
    auto r2 = co_await ringflow::timeout(5ms, recv_one(&c));
    REQUIRE_FALSE(r2.has_value());
    d->ack();
    auto e = c.try_recv();
    REQUIRE(e->value() == 43);
    REQUIRE_FALSE(e->redelivered());
    e->ack();
    auto st = q.stats();
    REQUIRE(st.delivered == 2);
    REQUIRE(st.unacked == 0);
    REQUIRE(st.ready == 0);
  });
}

TEST_CASE("work_queue: a receiver cancelled after a value was promised to it passes it on", "[flow][work_queue]") {
  // The race where a value reaches a receiver as its timeout fires, made
  // deterministic: notify the receiver, destroy it before it runs.
  run([]() -> task<void> {
    queue q(4);
    auto a = q.subscribe(1);
    auto b = q.subscribe(1);
    std::vector<int> log_a, log_b;
    task<void> ra = recv_ack_into(&a, &log_a);
    auto h = ra.release();
    h.resume();  // suspends in recv
    auto rb = ringflow::spawn(recv_ack_into(&b, &log_b));
    co_await ringflow::yield();
    REQUIRE(q.try_send(7) == send_status::sent);  // promised to a's receiver
    h.destroy();                                  // cancelled before it ran
    co_await std::move(rb);
    REQUIRE(log_a.empty());
    REQUIRE(log_b == std::vector<int>{7});
    REQUIRE(q.stats().delivered == 1);

    // With nobody else waiting the value stays ready, and a's slot is free.
    task<void> ra2 = recv_ack_into(&a, &log_a);
    auto h2 = ra2.release();
    h2.resume();
    REQUIRE(q.try_send(8) == send_status::sent);
    h2.destroy();
    REQUIRE(q.stats().ready == 1);
    auto d = a.try_recv();
    REQUIRE(d->value() == 8);
    REQUIRE_FALSE(d->redelivered());
    d->ack();
  });
}

TEST_CASE("work_queue: a send cancelled while suspended takes nothing", "[flow][work_queue]") {
  tracked::reset();
  run([]() -> task<void> {
    ringflow::work_queue<tracked> q(1);
    REQUIRE(q.try_send(tracked(0)) == send_status::sent);
    auto r = co_await ringflow::timeout(5ms, [](ringflow::work_queue<tracked>* qq) -> task<send_status> {
      co_return co_await qq->send(tracked(1));
    }(&q));
    REQUIRE_FALSE(r.has_value());
    REQUIRE(tracked::times_destroyed(1) == 1);  // destroyed with the cancelled frame
    auto st = q.stats();
    REQUIRE(st.sent == 1);
    REQUIRE(st.ready == 1);
    REQUIRE(st.blocked_sends == 1);
  });
  REQUIRE(tracked::live == 0);
}

TEST_CASE("work_queue: a sender cancelled after a place was reserved for it passes the place on", "[flow][work_queue]") {
  run([]() -> task<void> {
    queue q(1);
    fill(q, 0, 1);
    task<send_status> s1 = send_one(&q, 1);
    auto h = s1.release();
    h.resume();  // suspends: full
    auto s2 = ringflow::spawn(send_one(&q, 2));
    co_await ringflow::yield();
    auto c = q.subscribe(4);
    auto d = co_await c.recv();  // frees the place: reserved for the first sender
    h.destroy();                 // ... which is cancelled before it ran
    send_status s = co_await std::move(s2);
    REQUIRE(s == send_status::sent);
    auto e = co_await c.recv();
    REQUIRE(e->value() == 2);
    d->ack();
    e->ack();
    REQUIRE(q.stats().sent == 2);
  });
}

TEST_CASE("work_queue: every value is destroyed exactly once, leftovers included", "[flow][work_queue]") {
  tracked::reset();
  int n = 0;
  {
    std::vector<int> dropped_ids;
    ringflow::runtime rt;
    rt.block_on([](int* count, std::vector<int>* dropped) -> task<void> {
      ringflow::work_queue<tracked> q(3, overflow::drop_oldest,
                                      [dropped](tracked t, drop_reason) { dropped->push_back(t.id); });
      for (int i = 0; i < 5; ++i) q.try_send(tracked((*count)++));  // 0, 1 evicted
      auto c = q.subscribe(2);
      auto a = co_await c.recv();
      auto b = co_await c.recv();
      a->nack(false);  // 2 dropped
      b->nack(true);   // 3 back
      auto d = co_await c.recv();
      d->ack();  // 3 acked, destroyed with d
      // 4 is left in the queue; the queue dies here.
    }(&n, &dropped_ids));
    REQUIRE(dropped_ids == std::vector<int>{0, 1, 2});
  }
  REQUIRE(n == 5);
  REQUIRE(tracked::live == 0);
  REQUIRE(tracked::each_destroyed_once(5));
}

TEST_CASE("work_queue: random operations agree with a model of the rules (every policy)", "[flow][work_queue]") {
  // No runtime needed: try_send/try_recv never suspend. The model keeps the
  // ready values in a std::map by id (the order the rules promise: requeued
  // values back at their own place at the head) and the deliveries out.
  for (overflow policy : {overflow::block, overflow::drop_incoming, overflow::drop_oldest, overflow::sample}) {
    for (std::uint32_t seed : {1u, 2u, 3u}) {
      CAPTURE(ringflow::to_string(policy), seed);
      std::mt19937 rng(seed);
      auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      const auto max = static_cast<std::size_t>(pick(1, 12));
      std::uint64_t dropped_seen = 0;
      queue q(max, policy, [&dropped_seen](int, drop_reason) { ++dropped_seen; });

      struct model_value {
        int value;
        bool redelivered;
      };
      std::map<std::uint64_t, model_value> ready;
      std::uint64_t next_id = 0;
      int next_value = 0;
      std::uint64_t offered = 0, acked = 0, dropped = 0;

      std::vector<consumer> cs;
      std::vector<std::vector<delivery>> held(3);
      for (int i = 0; i < 3; ++i) cs.push_back(q.subscribe(static_cast<std::size_t>(pick(1, 4))));
      std::vector<delivery> orphans;  // deliveries whose consumer was replaced

      for (int step = 0; step < 4000; ++step) {
        CAPTURE(step);
        const int op = pick(0, 9);
        if (op <= 3) {  // send
          const int v = next_value++;
          ++offered;
          send_status s = q.try_send(v);
          send_status want = send_status::sent;
          if (ready.size() < max) {
            ready[next_id++] = {v, false};
          } else if (policy == overflow::block) {
            want = send_status::full;
            --offered;  // nothing was taken
          } else if (policy == overflow::drop_incoming) {
            want = send_status::dropped;
            ++dropped;
          } else if (policy == overflow::drop_oldest) {
            ready.erase(ready.begin());
            ready[next_id++] = {v, false};
            ++dropped;
          } else {
            ready.erase(std::prev(ready.end()));
            ready[next_id++] = {v, false};
            ++dropped;
          }
          REQUIRE(s == want);
        } else if (op <= 5) {  // receive
          const auto i = static_cast<std::size_t>(pick(0, 2));
          auto d = cs[i].try_recv();
          if (held[i].size() < cs[i].prefetch() && !ready.empty()) {
            REQUIRE(d.has_value());
            const auto head = ready.begin();
            REQUIRE(d->id() == head->first);
            REQUIRE(d->value() == head->second.value);
            REQUIRE(d->redelivered() == head->second.redelivered);
            ready.erase(head);
            held[i].push_back(std::move(*d));
          } else {
            REQUIRE_FALSE(d.has_value());
          }
        } else if (op <= 8) {  // settle one delivery, from a consumer or an orphan
          const auto i = static_cast<std::size_t>(pick(0, 3));
          auto& from = i == 3 ? orphans : held[i];
          if (from.empty()) continue;
          const auto k = static_cast<std::size_t>(pick(0, static_cast<int>(from.size()) - 1));
          delivery d = std::move(from[k]);
          from.erase(from.begin() + static_cast<std::ptrdiff_t>(k));
          const int how = pick(0, 3);
          if (how == 0) {
            d.ack();
            ++acked;
          } else if (how == 1) {
            d.nack(false);
            ++dropped;
          } else {
            ready[d.id()] = {d.value(), true};
            if (how == 2) d.nack(true);  // else dropped unsettled at the end of this scope
          }
        } else {  // a consumer reconnects; what it held outlives it
          const auto i = static_cast<std::size_t>(pick(0, 2));
          cs[i] = q.subscribe(static_cast<std::size_t>(pick(1, 4)));
          for (auto& d : held[i]) orphans.push_back(std::move(d));
          held[i].clear();
        }
        std::size_t out = orphans.size();
        for (std::size_t i = 0; i < 3; ++i) {
          REQUIRE(cs[i].unacked() == held[i].size());
          REQUIRE(cs[i].unacked() <= cs[i].prefetch());
          out += held[i].size();
        }
        auto st = q.stats();
        REQUIRE(st.ready == ready.size());
        REQUIRE(st.unacked == out);
        REQUIRE(st.acked == acked);
        REQUIRE(st.dropped == dropped);
        REQUIRE(dropped_seen == dropped);
        REQUIRE(offered == st.acked + st.dropped + st.ready + st.unacked);  // nothing vanishes
      }
      for (auto& h : held) h.clear();
      orphans.clear();
      cs.clear();
    }
  }
}

// ---- two workers --------------------------------------------------------------

namespace {

struct crash_record {
  explicit crash_record(int n) : acks(static_cast<std::size_t>(n)), deliveries(static_cast<std::size_t>(n)) {}
  std::vector<std::atomic<int>> acks;        // per value: acks seen
  std::vector<std::atomic<int>> deliveries;  // per value: deliveries seen
  std::atomic<int> flag_mismatch{0};         // redelivered() disagreed with the history
  std::atomic<int> over_prefetch{0};         // a consumer held more than prefetch
  std::atomic<int> bad_values{0};
  std::atomic<int> lives{0};
};

// Values are 0..n-1, each sent once; with one producer also their ids.
void on_delivery(crash_record* rec, const consumer& c, const delivery& d, bool ids_are_values) {
  const auto v = static_cast<std::size_t>(d.value());
  if (v >= rec->acks.size() || (ids_are_values && d.id() != v)) {
    rec->bad_values.fetch_add(1);
    return;
  }
  const int before = rec->deliveries[v].fetch_add(1);
  if ((before > 0) != d.redelivered()) rec->flag_mismatch.fetch_add(1);
  if (c.unacked() > c.prefetch()) rec->over_prefetch.fetch_add(1);
}

void ack(crash_record* rec, delivery& d) {
  rec->acks[static_cast<std::size_t>(d.value())].fetch_add(1);
  d.ack();
}

task<void> produce(queue* q, int from, int to, std::atomic<int>* bad) {
  for (int i = from; i < to; ++i) {
    send_status s = co_await q->send(i);
    if (s != send_status::sent) bad->fetch_add(1);
  }
}

// Lives a few short lives: subscribes, receives, acks some, holds others,
// then "crashes": its consumer and unacked deliveries are destroyed, in a
// random order. Sometimes the crash is a timeout cancelling a suspended recv.
task<void> crashing_worker(queue* q, crash_record* rec, int lives, std::uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int life = 0; life < lives; ++life) {
    auto c = std::make_unique<consumer>(q->subscribe(static_cast<std::size_t>(pick(1, 4))));
    std::vector<delivery> held;
    const int batch = pick(1, 12);
    bool ended = false;
    for (int i = 0; i < batch; ++i) {
      if (held.size() == c->prefetch()) break;  // at the limit: waiting would be for itself
      std::optional<delivery> d;
      if (pick(0, 9) == 0) {
        auto r = co_await ringflow::timeout(200us, recv_one(c.get()));
        if (!r) break;  // cancelled while suspended: a crash in the middle of a recv
        d = std::move(*r);
      } else {
        auto got = co_await c->recv();
        d = std::move(got);
      }
      if (!d) {
        ended = true;
        break;
      }
      on_delivery(rec, *c, *d, true);
      if (pick(0, 2) == 0) {
        ack(rec, *d);
      } else {
        held.push_back(std::move(*d));
      }
      if (pick(0, 3) == 0) co_await ringflow::yield();
    }
    rec->lives.fetch_add(1);
    if (pick(0, 1)) {
      c.reset();  // the consumer goes first; its deliveries follow
      std::shuffle(held.begin(), held.end(), rng);
      held.clear();
    } else {
      std::shuffle(held.begin(), held.end(), rng);
      held.clear();
      c.reset();
    }
    if (ended) co_return;
  }
}

task<void> final_drain(queue* q, crash_record* rec) {
  auto c = q->subscribe(3);
  for (;;) {
    auto d = co_await c.recv();
    if (!d) co_return;
    on_delivery(rec, c, *d, true);
    ack(rec, *d);
  }
}

struct crash_result {
  ringflow::work_queue_stats st{};
  int bad_sends = 0;
};

task<crash_result> crash_run(ringflow::runtime* rt, crash_record* rec, int n, std::uint32_t seed) {
  queue q(32);
  std::atomic<int> bad_sends{0};
  auto producer = rt->spawn_on(0, produce(&q, 0, n, &bad_sends));
  std::vector<ringflow::join_handle<void>> workers;
  for (int i = 0; i < 6; ++i) {
    workers.push_back(rt->spawn_on(static_cast<unsigned>(i % 2), crashing_worker(&q, rec, 40, seed * 131u + i)));
  }
  for (auto& w : workers) co_await std::move(w);
  auto drain = rt->spawn_on(1, final_drain(&q, rec));
  co_await std::move(producer);
  q.close();
  co_await std::move(drain);
  crash_result r;
  r.st = q.stats();
  r.bad_sends = bad_sends.load();
  co_return r;
}

}  // namespace

TEST_CASE("work_queue: nothing is lost when consumers die mid-batch (2 workers)", "[flow][work_queue]") {
  for (std::uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    CAPTURE(seed);
    const int n = 4000;
    crash_record rec(n);
    ringflow::runtime rt({.threads = 2});
    crash_result r = rt.block_on(crash_run(&rt, &rec, n, seed));
    REQUIRE(r.bad_sends == 0);
    REQUIRE(rec.bad_values == 0);
    REQUIRE(rec.flag_mismatch == 0);
    REQUIRE(rec.over_prefetch == 0);
    int not_once = 0, redelivered = 0;
    for (int i = 0; i < n; ++i) {
      if (rec.acks[static_cast<std::size_t>(i)] != 1) ++not_once;
      redelivered += rec.deliveries[static_cast<std::size_t>(i)] - 1;
    }
    REQUIRE(not_once == 0);  // every value acked exactly once overall
    REQUIRE(redelivered > 0);  // the crashes did return values
    REQUIRE(r.st.sent == static_cast<std::uint64_t>(n));
    REQUIRE(r.st.acked == static_cast<std::uint64_t>(n));
    REQUIRE(r.st.delivered == static_cast<std::uint64_t>(n + redelivered));
    REQUIRE(r.st.redelivered == static_cast<std::uint64_t>(redelivered));
    REQUIRE(r.st.requeued == static_cast<std::uint64_t>(redelivered));
    REQUIRE(r.st.ready == 0);
    REQUIRE(r.st.unacked == 0);
    REQUIRE(r.st.consumers == 0);
    REQUIRE(r.st.dropped == 0);
  }
}

namespace {

void settle(crash_record* rec, delivery& d, std::mt19937& rng) {
  if (std::uniform_int_distribution<int>(0, 9)(rng) == 0) {
    d.nack(true);
  } else {
    ack(rec, d);
  }
}

// Holds up to its prefetch and settles in a random order, about one in ten
// with nack(requeue). It suspends in recv only with nothing in hand (after
// close, a recv waits for every unacked delivery, its own included).
task<void> holding_consumer(queue* q, crash_record* rec, std::uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto c = q->subscribe(static_cast<std::size_t>(pick(1, 8)));
  std::vector<delivery> held;
  auto settle_one = [&] {
    std::swap(held[static_cast<std::size_t>(pick(0, static_cast<int>(held.size()) - 1))], held.back());
    settle(rec, held.back(), rng);
    held.pop_back();
  };
  for (;;) {
    if (held.size() == c.prefetch() || (!held.empty() && pick(0, 2) == 0)) {
      settle_one();
      continue;
    }
    std::optional<delivery> d = c.try_recv();
    if (!d && !held.empty()) {
      settle_one();
      continue;
    }
    if (!d) {
      auto got = co_await c.recv();
      d = std::move(got);
      if (!d) break;
    }
    on_delivery(rec, c, *d, false);
    held.push_back(std::move(*d));
  }
}

task<void> process(delivery d, crash_record* rec, std::uint32_t seed) {
  std::mt19937 rng(seed);
  if (rng() % 2) co_await ringflow::yield();
  settle(rec, d, rng);
}

// The usual way to work on `prefetch` values at once: each delivery goes to a
// task of its own (on this worker, or the other when it steals it), and recv
// parks at the limit until one of them settles. (Whether it ever parks there
// depends on timing: "a consumer parked at its prefetch limit ... woken by
// an ack from the other worker" checks that path deterministically.)
task<void> dispatching_consumer(queue* q, crash_record* rec, std::uint32_t seed) {
  auto c = q->subscribe(1 + seed % 4);
  std::vector<ringflow::join_handle<void>> jobs;
  std::uint32_t k = 0;
  for (;;) {
    auto d = co_await c.recv();
    if (!d) break;
    on_delivery(rec, c, *d, false);
    jobs.push_back(ringflow::spawn(process(std::move(*d), rec, seed * 7919u + k++)));
  }
  for (auto& j : jobs) co_await std::move(j);
}

task<crash_result> mpmc_run(ringflow::runtime* rt, crash_record* rec, int producers, int consumers, int per,
                            std::uint32_t seed) {
  queue q(16);
  std::atomic<int> bad_sends{0};
  std::vector<ringflow::join_handle<void>> ps, cs;
  for (int i = 0; i < consumers; ++i) {
    const auto w = static_cast<unsigned>(i % 2);
    const std::uint32_t sd = seed * 977u + static_cast<std::uint32_t>(i);
    cs.push_back(i < consumers / 2 ? rt->spawn_on(w, holding_consumer(&q, rec, sd))
                                   : rt->spawn_on(w, dispatching_consumer(&q, rec, sd)));
  }
  for (int i = 0; i < producers; ++i) {
    ps.push_back(rt->spawn_on(static_cast<unsigned>((i + 1) % 2), produce(&q, i * per, (i + 1) * per, &bad_sends)));
  }
  for (auto& p : ps) co_await std::move(p);
  q.close();
  for (auto& c : cs) co_await std::move(c);
  crash_result r;
  r.st = q.stats();
  r.bad_sends = bad_sends.load();
  co_return r;
}

}  // namespace

namespace {
task<void> ack_on(delivery d) {
  d.ack();
  co_return;
}
}  // namespace

TEST_CASE("work_queue: a consumer parked at its prefetch limit on one worker is woken by an ack from the other", "[flow][work_queue]") {
  ringflow::runtime rt({.threads = 2});
  queue q(16);
  fill(q, 0, 3);
  auto c = q.subscribe(1);
  std::optional<delivery> d0 = rt.spawn_on(0, recv_one(&c)).wait();
  REQUIRE(d0);
  REQUIRE(d0->value() == 0);
  auto next = rt.spawn_on(0, recv_one(&c));
  // Parked at the limit with two values ready: wait for that event.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (q.stats().prefetch_waits == 0 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
  REQUIRE(q.stats().prefetch_waits == 1);
  REQUIRE_FALSE(next.is_finished());
  REQUIRE(q.stats().ready == 2);
  rt.spawn_on(1, ack_on(std::move(*d0))).wait();
  std::optional<delivery> d1 = next.wait();
  REQUIRE(d1);
  REQUIRE(d1->value() == 1);
  REQUIRE(q.stats().acked == 1);
  REQUIRE(q.stats().prefetch_waits == 1);
  d1->ack();
}

TEST_CASE("work_queue: MPMC, 4 producers and 4 consumers on 2 workers, every value acked exactly once", "[flow][work_queue]") {
  for (std::uint32_t seed : {11u, 12u, 13u}) {
    CAPTURE(seed);
    const int per = 5000, n = 4 * per;
    crash_record rec(n);
    ringflow::runtime rt({.threads = 2});
    crash_result r = rt.block_on(mpmc_run(&rt, &rec, 4, 4, per, seed));
    REQUIRE(r.bad_sends == 0);
    REQUIRE(rec.bad_values == 0);
    REQUIRE(rec.flag_mismatch == 0);
    REQUIRE(rec.over_prefetch == 0);
    int not_once = 0;
    for (int i = 0; i < n; ++i) {
      if (rec.acks[static_cast<std::size_t>(i)] != 1) ++not_once;
    }
    REQUIRE(not_once == 0);
    REQUIRE(r.st.sent == static_cast<std::uint64_t>(n));
    REQUIRE(r.st.acked == static_cast<std::uint64_t>(n));
    REQUIRE(r.st.requeued == r.st.nacked);
    REQUIRE(r.st.redelivered == r.st.requeued);
    REQUIRE(r.st.delivered == r.st.acked + r.st.requeued);
    REQUIRE(r.st.ready == 0);
    REQUIRE(r.st.unacked == 0);
  }
}

// Bounds at the edges of size_t: a max_length the ring could never reach is
// refused up front; a valid huge one allocates nothing until values come;
// prefetch has no upper bound (SIZE_MAX: unlimited).
TEST_CASE("work_queue: max_length above max_length_limit is refused; huge valid bounds cost nothing up front",
          "[flow][work_queue]") {
  using ring = ringflow::detail::wq_ring<ringflow::detail::wq_entry<int>>;
  STATIC_REQUIRE(queue::max_length_limit == ring::max_capacity);
  STATIC_REQUIRE(std::has_single_bit(queue::max_length_limit));
  STATIC_REQUIRE(queue::max_length_limit * sizeof(ringflow::detail::wq_entry<int>) <=
                 std::size_t(std::numeric_limits<std::ptrdiff_t>::max()));
  for (auto policy : {overflow::block, overflow::drop_incoming, overflow::drop_oldest, overflow::sample}) {
    REQUIRE_THROWS_AS(queue(SIZE_MAX, policy), std::invalid_argument);
    REQUIRE_THROWS_AS(queue(queue::max_length_limit + 1, policy), std::invalid_argument);
  }
  REQUIRE_THROWS_WITH(queue(SIZE_MAX), Catch::Contains(std::to_string(queue::max_length_limit)));
  run([]() -> task<void> {
    queue q(queue::max_length_limit);
    REQUIRE(q.max_length() == queue::max_length_limit);
    auto c = q.subscribe(SIZE_MAX);
    REQUIRE(c.prefetch() == SIZE_MAX);
    fill(q, 0, 100);
    std::vector<delivery> held;
    for (int i = 0; i < 100; ++i) {
      auto d = c.try_recv();
      REQUIRE(d);
      REQUIRE(d->value() == i);
      held.push_back(std::move(*d));  // no prefetch limit: all 100 unacked at once
    }
    REQUIRE(c.unacked() == 100);
    for (auto& d : held) d.ack();
    REQUIRE(q.stats().acked == 100);
    co_return;
  });
}

TEST_CASE("work_queue: the ring refuses a size it could never allocate, unchanged", "[flow][work_queue]") {
  using entry = ringflow::detail::wq_entry<int>;
  ringflow::detail::wq_ring<entry> r;
  r.reserve(4);
  r.push_back(entry{1, 1, false});
  r.push_back(entry{2, 2, false});
  const std::size_t cap = r.capacity();
  // bit_ceil of these does not fit in size_t: refused before rounding up.
  REQUIRE_THROWS_AS(r.reserve(SIZE_MAX), std::bad_alloc);
  REQUIRE_THROWS_AS(r.reserve(ringflow::detail::wq_ring<entry>::max_capacity + 1), std::bad_alloc);
  REQUIRE_THROWS_AS(r.reserve((SIZE_MAX >> 1) + 2), std::bad_alloc);
  REQUIRE(r.capacity() == cap);
  REQUIRE(r.size() == 2);
  REQUIRE(r.pop_front().value == 1);
  REQUIRE(r.pop_front().value == 2);
}
