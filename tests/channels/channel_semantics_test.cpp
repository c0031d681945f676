#include <catch2/catch.hpp>

#include <chrono>
#include <ringflow/ringflow.hpp>
#include <vector>

#include "../support/channel_helpers.hpp"
#include "../support/run.hpp"

using namespace std::chrono_literals;
using namespace test_support::channel_tests;
using test_support::run;

namespace {

task<void> send_all(channel<int>* ch, int from, int to) {
  for (int i = from; i < to; ++i) {
    send_status s = co_await ch->send(i);
    REQUIRE(s == send_status::sent);
  }
}

task<std::vector<int>> recv_all(channel<int>* ch) {
  std::vector<int> got;
  while (auto v = co_await ch->recv()) got.push_back(*v);
  co_return got;
}

std::vector<int> drain(channel<int>& ch) {
  std::vector<int> out;
  while (auto v = ch.try_recv()) out.push_back(*v);
  return out;
}

task<void> recv_into(channel<int>* ch, std::vector<int>* out) {
  auto v = co_await ch->recv();
  out->push_back(v ? *v : -1);
}

task<void> send_and_log(channel<int>* ch, int v, std::vector<int>* log) {
  send_status s = co_await ch->send(v);
  log->push_back(s == send_status::sent ? v : -v);
}

}  // namespace

TEST_CASE("channel: bad arguments", "[channels]") {
  REQUIRE_THROWS_AS(channel<int>(0, overflow::drop_incoming), std::invalid_argument);
  REQUIRE_THROWS_AS(channel<int>(0, overflow::drop_oldest), std::invalid_argument);
  REQUIRE_THROWS_AS(channel<int>(0, overflow::sample), std::invalid_argument);
  channel<int> ch(4);
  REQUIRE_THROWS_AS(ch.recv_many(0), std::invalid_argument);
  channel<int> dropping(4, overflow::drop_oldest);
  REQUIRE_THROWS_AS(dropping.reserve(), std::logic_error);
  channel<int> rendezvous(0);
  REQUIRE_THROWS_AS(rendezvous.reserve(), std::logic_error);
}

TEST_CASE("channel: block suspends the sender while full and loses nothing", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(4);
    auto producer = ringflow::spawn(send_all(&ch, 0, 1000));
    co_await ringflow::yield();
    // The producer ran until the buffer was full, then suspended.
    REQUIRE(ch.size() == 4);
    REQUIRE_FALSE(producer.is_finished());
    std::vector<int> got;
    for (int i = 0; i < 1000; ++i) {
      auto v = co_await ch.recv();
      got.push_back(*v);
    }
    co_await std::move(producer);
    for (int i = 0; i < 1000; ++i) REQUIRE(got[i] == i);
    auto st = ch.stats();
    REQUIRE(st.sent == 1000);
    REQUIRE(st.received == 1000);
    REQUIRE(st.dropped == 0);
    REQUIRE(st.blocked_sends > 0);
    REQUIRE(st.high_water == 4);
  });
}

TEST_CASE("channel: drop_incoming discards the value being sent", "[channels]") {
  std::vector<int> seen_dropped;
  channel<int> ch(3, overflow::drop_incoming, [&](int v) { seen_dropped.push_back(v); });
  for (int i = 1; i <= 5; ++i) {
    REQUIRE(ch.try_send(i) == (i <= 3 ? send_status::sent : send_status::dropped));
  }
  REQUIRE(drain(ch) == std::vector<int>{1, 2, 3});
  REQUIRE(seen_dropped == std::vector<int>{4, 5});
  REQUIRE(ch.stats().dropped == 2);
  REQUIRE(ch.stats().sent == 3);
}

TEST_CASE("channel: drop_oldest evicts the oldest buffered value", "[channels]") {
  std::vector<int> seen_dropped;
  channel<int> ch(3, overflow::drop_oldest, [&](int v) { seen_dropped.push_back(v); });
  for (int i = 1; i <= 5; ++i) REQUIRE(ch.try_send(i) == send_status::sent);
  REQUIRE(drain(ch) == std::vector<int>{3, 4, 5});
  REQUIRE(seen_dropped == std::vector<int>{1, 2});
  REQUIRE(ch.stats().dropped == 2);
}

TEST_CASE("channel: sample overwrites the newest buffered value", "[channels]") {
  std::vector<int> seen_dropped;
  channel<int> ch(3, overflow::sample, [&](int v) { seen_dropped.push_back(v); });
  for (int i = 1; i <= 5; ++i) REQUIRE(ch.try_send(i) == send_status::sent);
  REQUIRE(drain(ch) == std::vector<int>{1, 2, 5});
  REQUIRE(seen_dropped == std::vector<int>{3, 4});

  channel<int> conflated(1, overflow::sample);
  for (int i = 1; i <= 5; ++i) conflated.try_send(i);
  REQUIRE(drain(conflated) == std::vector<int>{5});
  REQUIRE(conflated.stats().dropped == 4);
}

TEST_CASE("channel: the non-block policies never suspend a sender", "[channels]") {
  run([]() -> task<void> {
    for (overflow p : {overflow::drop_incoming, overflow::drop_oldest, overflow::sample}) {
      channel<int> ch(2, p);
      for (int i = 0; i < 100; ++i) {
        send_status s = co_await ch.send(i);
        REQUIRE((s == send_status::sent || s == send_status::dropped));
      }
      REQUIRE(ch.size() == 2);
      REQUIRE(ch.stats().blocked_sends == 0);
      REQUIRE(ch.stats().sent + ch.stats().dropped - (p == overflow::drop_incoming ? 0 : ch.stats().dropped) ==
              (p == overflow::drop_incoming ? 100u : 100u));
    }
  });
}

TEST_CASE("channel: try_send on a full block channel is full and takes nothing", "[channels]") {
  channel<int> ch(1);
  REQUIRE(ch.try_send(1) == send_status::sent);
  REQUIRE(ch.try_send(2) == send_status::full);
  REQUIRE(ch.size() == 1);
  REQUIRE(ch.try_recv() == 1);
  REQUIRE_FALSE(ch.try_recv().has_value());
}

TEST_CASE("channel: rendezvous hands the value over only when both meet", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(0);
    REQUIRE(ch.try_send(1) == send_status::full);  // nobody is receiving
    std::vector<int> log;
    auto s = ringflow::spawn(send_and_log(&ch, 7, &log));
    co_await ringflow::yield();
    REQUIRE(log.empty());  // the sender waits for a receiver
    REQUIRE(ch.size() == 0);
    {
      auto awaited = co_await ch.recv();
      REQUIRE(awaited == 7);
    }
    co_await std::move(s);
    REQUIRE(log == std::vector<int>{7});

    // Receiver first: the sender hands over directly.
    std::vector<int> got;
    auto r = ringflow::spawn(recv_into(&ch, &got));
    co_await ringflow::yield();
    {
      auto awaited = co_await ch.send(8);
      REQUIRE(awaited == send_status::sent);
    }
    co_await std::move(r);
    REQUIRE(got == std::vector<int>{8});
  });
}

TEST_CASE("channel: close wakes every waiter and keeps buffered values receivable", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(1);
    std::vector<int> got;
    auto r1 = ringflow::spawn(recv_into(&ch, &got));
    auto r2 = ringflow::spawn(recv_into(&ch, &got));
    co_await ringflow::yield();
    ch.close();
    ch.close();  // idempotent
    co_await std::move(r1);
    co_await std::move(r2);
    REQUIRE(got == std::vector<int>{-1, -1});
    {
      auto awaited = co_await ch.send(1);
      REQUIRE(awaited == send_status::closed);
    }
    REQUIRE(ch.try_send(1) == send_status::closed);

    channel<int> full(1);
    REQUIRE(full.try_send(10) == send_status::sent);
    std::vector<int> log;
    auto s = ringflow::spawn(send_and_log(&full, 11, &log));
    co_await ringflow::yield();
    full.close();
    co_await std::move(s);
    REQUIRE(log == std::vector<int>{-11});  // the blocked send resumed with closed
    auto buffered = co_await full.recv();
    REQUIRE(buffered == 10);  // the buffered value is still there
    auto last = co_await full.recv();
    REQUIRE_FALSE(last.has_value());
    REQUIRE(full.is_closed());
  });
}

TEST_CASE("channel: recv_many returns 1..max ready values", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(16);
    for (int i = 0; i < 10; ++i) ch.try_send(i);
    {
      auto awaited = co_await ch.recv_many(4);
      REQUIRE(awaited == std::vector<int>{0, 1, 2, 3});
    }
    {
      auto awaited = co_await ch.recv_many(4);
      REQUIRE(awaited == std::vector<int>{4, 5, 6, 7});
    }
    {
      auto awaited = co_await ch.recv_many(4);
      REQUIRE(awaited == std::vector<int>{8, 9});
    }
    // Empty: it waits, then returns what arrived.
    auto later = ringflow::spawn(send_all(&ch, 100, 103));
    auto batch = co_await ch.recv_many(8);
    REQUIRE_FALSE(batch.empty());
    REQUIRE(batch.front() == 100);
    co_await std::move(later);
    ch.close();
    std::vector<int> rest = co_await ch.recv_many(8);
    batch.insert(batch.end(), rest.begin(), rest.end());
    REQUIRE(batch == std::vector<int>{100, 101, 102});
    auto none = co_await ch.recv_many(8);
    REQUIRE(none.empty());
  });
}

TEST_CASE("channel: waiting receivers are served first-in, first-out", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(4);
    std::vector<int> a, b, c;
    auto ra = ringflow::spawn(recv_into(&ch, &a));
    auto rb = ringflow::spawn(recv_into(&ch, &b));
    auto rc = ringflow::spawn(recv_into(&ch, &c));
    co_await ringflow::yield();
    // A latecomer's try_recv cannot take a value claimed by a waiter.
    REQUIRE(ch.try_send(1) == send_status::sent);
    REQUIRE_FALSE(ch.try_recv().has_value());
    ch.try_send(2);
    ch.try_send(3);
    co_await std::move(ra);
    co_await std::move(rb);
    co_await std::move(rc);
    REQUIRE(a == std::vector<int>{1});
    REQUIRE(b == std::vector<int>{2});
    REQUIRE(c == std::vector<int>{3});
  });
}

TEST_CASE("channel: waiting senders are served first-in, first-out", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(1);
    ch.try_send(0);
    std::vector<int> log;
    std::vector<ringflow::join_handle<void>> hs;
    for (int i = 1; i <= 4; ++i) hs.push_back(ringflow::spawn(send_and_log(&ch, i, &log)));
    co_await ringflow::yield();
    REQUIRE(ch.try_send(99) == send_status::full);  // no barging past waiting senders
    std::vector<int> got;
    for (int i = 0; i < 5; ++i) {
      auto v = co_await ch.recv();
      got.push_back(*v);
    }
    for (auto& h : hs) co_await std::move(h);
    REQUIRE(got == std::vector<int>{0, 1, 2, 3, 4});
    REQUIRE(log == std::vector<int>{1, 2, 3, 4});
  });
}

TEST_CASE("channel: reserve guarantees a slot before the value exists", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(1);
    auto p = co_await ch.reserve();
    REQUIRE(p.has_value());
    REQUIRE(ch.try_send(5) == send_status::full);  // the slot is taken by the permit
    REQUIRE(p->send(6) == send_status::sent);
    REQUIRE(ch.try_recv() == 6);
    {
      auto unused = co_await ch.reserve();
      REQUIRE(unused.has_value());
    }  // dropped unused: the slot is free again
    REQUIRE(ch.try_send(7) == send_status::sent);
    ch.close();
    auto none = co_await ch.reserve();
    REQUIRE_FALSE(none.has_value());
  });
}

TEST_CASE("channel: every value is destroyed exactly once, leftovers included", "[channels]") {
  tracked::reset();
  constexpr int n = 200;
  {
    ringflow::runtime rt;
    rt.block_on([]() -> task<void> {
      channel<tracked> block(8);
      channel<tracked> drop_in(8, overflow::drop_incoming);
      channel<tracked> drop_old(8, overflow::drop_oldest);
      channel<tracked> sample(8, overflow::sample);
      for (int i = 0; i < 8; ++i) co_await block.send(tracked(i));
      int id = 8;
      for (auto* ch : {&drop_in, &drop_old, &sample}) {
        for (int i = 0; i < 64; ++i) co_await ch->send(tracked(id++));
        for (int i = 0; i < 3; ++i) (void)ch->try_recv();  // some received, the rest left over
      }
      // ids 200..: leftovers in channels that are destroyed here
      REQUIRE(id == 8 + 3 * 64);
    }());
  }
  REQUIRE(tracked::live == 0);
  REQUIRE(tracked::each_destroyed_once(8 + 3 * 64));
  (void)n;
}

TEST_CASE("channel: a send cancelled by timeout takes nothing", "[channels]") {
  tracked::reset();
  run([]() -> task<void> {
    channel<tracked> ch(1);
    co_await ch.send(tracked(0));
    auto r = co_await ringflow::timeout(5ms, [](channel<tracked>* c) -> task<ringflow::send_status> {
      co_return co_await c->send(tracked(1));
    }(&ch));
    REQUIRE_FALSE(r.has_value());
    REQUIRE(ch.size() == 1);
    REQUIRE(tracked::times_destroyed(1) == 1);  // destroyed with the cancelled frame
    auto v = ch.try_recv();
    REQUIRE(v->id == 0);
    REQUIRE_FALSE(ch.try_recv().has_value());
    REQUIRE(ch.stats().sent == 1);
  });
  REQUIRE(tracked::live == 0);
}

TEST_CASE("channel: a recv cancelled by timeout loses nothing", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(4);
    auto r = co_await ringflow::timeout(5ms, [](channel<int>* c) -> task<std::optional<int>> {
      co_return co_await c->recv();
    }(&ch));
    REQUIRE_FALSE(r.has_value());
    ch.try_send(42);
    REQUIRE(ch.try_recv() == 42);  // the withdrawn waiter did not claim it
  });
}

TEST_CASE("channel: a receiver cancelled after it was handed a claim loses nothing", "[channels]") {
  // The race where a value reaches a receiver at the moment its timeout
  // fires, made deterministic: notify the receiver, destroy it before it runs.
  run([]() -> task<void> {
    for (std::size_t cap : {std::size_t{0}, std::size_t{4}}) {
      channel<int> ch(cap);
      std::vector<int> out;
      auto h = start_by_hand(recv_into(&ch, &out));  // suspends in recv
      std::vector<int> other;
      auto second = ringflow::spawn(recv_into(&ch, &other));  // a later receiver
      co_await ringflow::yield();
      REQUIRE(ch.try_send(7) == send_status::sent);  // handed to the first receiver
      h.destroy();                                   // cancelled before it ran
      co_await std::move(second);
      REQUIRE(out.empty());
      REQUIRE(other == std::vector<int>{7});  // passed on, not lost
      REQUIRE(ch.stats().received == 1);

      // With nobody else waiting, the value stays in the channel.
      auto h2 = start_by_hand(recv_into(&ch, &out));
      REQUIRE(ch.try_send(8) == send_status::sent);
      h2.destroy();
      REQUIRE(ch.try_recv() == 8);
    }
  });
}

TEST_CASE("channel: a sender cancelled after it was given a slot takes nothing", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(1);
    ch.try_send(1);
    std::vector<int> log;
    auto h = start_by_hand(send_and_log(&ch, 2, &log));  // suspends: full
    auto s3 = ringflow::spawn(send_and_log(&ch, 3, &log));
    co_await ringflow::yield();
    auto first = co_await ch.recv();  // frees the slot: the first sender is given it
    REQUIRE(first == 1);
    h.destroy();                       // ... and cancelled before it ran
    co_await std::move(s3);            // the slot passed to the next sender
    REQUIRE(log == std::vector<int>{3});
    REQUIRE(ch.try_recv() == 3);
    REQUIRE(ch.stats().sent == 2);
  });
}

TEST_CASE("channel: a receiver on one worker is woken by a sender on another", "[channels]") {
  ringflow::runtime rt({.threads = 2});
  rt.block_on([]() -> task<void> {
    channel<int> ch(1);
    auto r = ringflow::spawn(recv_all(&ch));
    auto s = ringflow::spawn(send_all(&ch, 0, 10000));
    co_await std::move(s);
    ch.close();
    auto got = co_await std::move(r);
    REQUIRE(got.size() == 10000);
    for (int i = 0; i < 10000; ++i) REQUIRE(got[i] == i);
  }());
}
