// broadcast: every receiver's own buffer and policy (block holds the sender
// back for that receiver only; the drop policies lose for that receiver only
// and count it in lagged()), subscribe sees values sent from then on,
// conservation per receiver under random interleavings, unsubscribe and
// close release waiting sends, cancelled sends and recvs take and lose
// nothing twice, values destroyed exactly once, two workers (TSan clean).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

#include <ringflow/broadcast.hpp>
#include <ringflow/ringflow.hpp>

using namespace std::chrono_literals;
using ringflow::broadcast;
using ringflow::overflow;
using ringflow::send_status;
using ringflow::task;

// co_await never goes inside REQUIRE: g++ 12 resumes the coroutine wrongly there.
namespace {

using receiver = broadcast<int>::receiver;

template <class F>
void run(F&& body, unsigned threads = 1) {
  ringflow::runtime rt({.threads = threads});
  rt.block_on(body());
}

std::vector<int> drain(receiver& r) {
  std::vector<int> out;
  while (auto v = r.try_recv()) out.push_back(*v);
  return out;
}

std::vector<int> range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

task<void> send_and_log(broadcast<int>* b, int v, std::vector<std::pair<int, send_status>>* log) {
  send_status s = co_await b->send(v);
  log->emplace_back(v, s);
}

task<void> recv_into(receiver* r, std::vector<int>* out) {
  auto v = co_await r->recv();
  out->push_back(v ? *v : -1);
}

// Runs t on this thread up to its first suspension, outside the scheduler;
// destroying the returned frame cancels it at exactly that point.
std::coroutine_handle<> start_by_hand(task<void> t) {
  std::coroutine_handle<> h = t.release();
  h.resume();
  return h;
}

// A copyable value that proves every object, copies included, is destroyed
// exactly once: a second destruction finds the mark gone.
struct counted {
  static inline std::atomic<long> live{0};
  static inline std::atomic<long> bad{0};  // destroyed twice, or used after destruction
  int id;
  int mark = alive;
  static constexpr int alive = 0x5eed;

  explicit counted(int i) : id(i) { ++live; }
  counted(const counted& o) : id(o.id) {
    if (o.mark != alive) ++bad;
    ++live;
  }
  counted(counted&& o) noexcept : id(o.id) {
    if (o.mark != alive) ++bad;
    ++live;
  }
  counted& operator=(const counted& o) {
    if (o.mark != alive || mark != alive) ++bad;
    id = o.id;
    return *this;
  }
  counted& operator=(counted&& o) noexcept {
    if (o.mark != alive || mark != alive) ++bad;
    id = o.id;
    return *this;
  }
  ~counted() {
    if (mark != alive) ++bad;
    mark = 0;
    --live;
  }
};

}  // namespace

TEST_CASE("broadcast: bad arguments throw", "[broadcast][sync]") {
  REQUIRE_THROWS_AS(broadcast<int>(0), std::invalid_argument);
  REQUIRE_THROWS_AS(broadcast<int>(SIZE_MAX), std::invalid_argument);
  REQUIRE_THROWS_AS(broadcast<int>(broadcast<int>::max_capacity + 1), std::invalid_argument);
  REQUIRE_THROWS_AS(broadcast<int>(4, static_cast<overflow>(42)), std::invalid_argument);
  broadcast<int> b(4);
  REQUIRE_THROWS_AS(b.subscribe(0, overflow::block), std::invalid_argument);
  REQUIRE_THROWS_AS(b.subscribe(SIZE_MAX, overflow::block), std::invalid_argument);
  REQUIRE_THROWS_AS(b.subscribe(4, static_cast<overflow>(-1)), std::invalid_argument);
  REQUIRE(b.receivers() == 0);  // the refused subscriptions left nothing behind
  receiver r = b.subscribe();
  receiver moved = std::move(r);
  REQUIRE_THROWS_AS(r.try_recv(), std::logic_error);
  REQUIRE_THROWS_AS(r.recv(), std::logic_error);
  REQUIRE_THROWS_AS(r.lagged(), std::logic_error);
  REQUIRE(b.receivers() == 1);
  REQUIRE(moved.capacity() == 4);
  REQUIRE(moved.policy() == overflow::drop_oldest);
  REQUIRE(b.capacity() == 4);
  REQUIRE(b.policy() == overflow::drop_oldest);
}

TEST_CASE("broadcast: every receiver gets every value, in send order", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(8, overflow::block);
    receiver r1 = b.subscribe();
    receiver r2 = b.subscribe(16, overflow::drop_oldest);
    REQUIRE(b.receivers() == 2);
    for (int i = 0; i < 8; ++i) {
      send_status s = co_await b.send(i);
      REQUIRE(s == send_status::sent);
    }
    REQUIRE(r1.size() == 8);
    REQUIRE(drain(r1) == range(0, 8));
    auto first = co_await r2.recv();
    REQUIRE(first == 0);
    REQUIRE(drain(r2) == range(1, 8));
    REQUIRE(r1.lagged() == 0);
    REQUIRE(r2.lagged() == 0);
  });
}

TEST_CASE("broadcast: a send with no receiver, or that every policy discards, is dropped", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(2, overflow::drop_incoming);
    send_status none = co_await b.send(1);
    REQUIRE(none == send_status::dropped);
    receiver r = b.subscribe();
    for (int i = 0; i < 2; ++i) co_await b.send(i);
    send_status full = co_await b.send(2);
    REQUIRE(full == send_status::dropped);
    receiver other = b.subscribe(2, overflow::drop_oldest);
    send_status kept = co_await b.send(3);  // other keeps it
    REQUIRE(kept == send_status::sent);
    REQUIRE(drain(r) == std::vector<int>{0, 1});
    REQUIRE(r.lagged() == 2);
    REQUIRE(drain(other) == std::vector<int>{3});
  });
}

TEST_CASE("broadcast: each drop policy loses for its own receiver only", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(3);
    receiver oldest = b.subscribe(3, overflow::drop_oldest);
    receiver incoming = b.subscribe(3, overflow::drop_incoming);
    receiver sample = b.subscribe(3, overflow::sample);
    receiver roomy = b.subscribe(16, overflow::drop_oldest);
    for (int i = 0; i < 10; ++i) {
      send_status s = co_await b.send(i);
      REQUIRE(s == send_status::sent);
    }
    REQUIRE(drain(oldest) == std::vector<int>{7, 8, 9});
    REQUIRE(oldest.lagged() == 7);
    REQUIRE(drain(incoming) == std::vector<int>{0, 1, 2});
    REQUIRE(incoming.lagged() == 7);
    REQUIRE(drain(sample) == std::vector<int>{0, 1, 9});  // the newest always survives
    REQUIRE(sample.lagged() == 7);
    REQUIRE(drain(roomy) == range(0, 10));
    REQUIRE(roomy.lagged() == 0);
  });
}

TEST_CASE("broadcast: a block receiver holds the sender back; a non-reading drop receiver never does",
          "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(2);
    receiver lossless = b.subscribe(2, overflow::block);
    receiver idle = b.subscribe(2, overflow::drop_oldest);  // never read until the end
    std::vector<int> got;
    auto reader = ringflow::spawn([](receiver* r, std::vector<int>* out) -> task<void> {
      for (int i = 0; i < 100; ++i) {
        auto v = co_await r->recv();
        out->push_back(*v);
        if (i % 7 == 0) co_await ringflow::yield();  // slower than the sender
      }
    }(&lossless, &got));
    for (int i = 0; i < 100; ++i) {
      send_status s = co_await b.send(i);
      REQUIRE(s == send_status::sent);
      REQUIRE(lossless.size() <= 2);
    }
    co_await std::move(reader);
    REQUIRE(got == range(0, 100));
    REQUIRE(lossless.lagged() == 0);
    REQUIRE(drain(idle) == std::vector<int>{98, 99});
    REQUIRE(idle.lagged() == 98);
  });
}

TEST_CASE("broadcast: a send held back by a full block receiver reaches the others at once", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(1);
    receiver slow = b.subscribe(1, overflow::block);
    receiver fast = b.subscribe(8, overflow::drop_oldest);
    co_await b.send(0);
    std::vector<std::pair<int, send_status>> log;
    auto s1 = ringflow::spawn(send_and_log(&b, 1, &log));
    auto s2 = ringflow::spawn(send_and_log(&b, 2, &log));
    for (int i = 0; i < 3; ++i) co_await ringflow::yield();
    REQUIRE(log.empty());                            // both wait for slow
    REQUIRE(drain(fast) == std::vector<int>{0, 1, 2});  // which never slowed fast
    auto v0 = co_await slow.recv();  // room: the first waiting send moves in, in order
    REQUIRE(v0 == 0);
    REQUIRE(slow.size() == 1);
    auto v1 = co_await slow.recv();
    REQUIRE(v1 == 1);
    auto v2 = co_await slow.recv();
    REQUIRE(v2 == 2);
    co_await std::move(s1);
    co_await std::move(s2);
    REQUIRE(log == std::vector<std::pair<int, send_status>>{{1, send_status::sent}, {2, send_status::sent}});
  });
}

TEST_CASE("broadcast: a later send never overtakes a waiting one at any receiver", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(1, overflow::block);
    receiver a = b.subscribe();
    co_await b.send(0);  // a is full
    receiver c = b.subscribe(4, overflow::block);
    std::vector<std::pair<int, send_status>> log;
    auto s1 = ringflow::spawn(send_and_log(&b, 1, &log));  // waits for a; c got 1
    co_await ringflow::yield();
    auto s2 = ringflow::spawn(send_and_log(&b, 2, &log));  // waits for a; c got 2
    co_await ringflow::yield();
    REQUIRE(drain(c) == std::vector<int>{1, 2});
    std::vector<int> from_a;
    for (int i = 0; i < 3; ++i) {
      auto v = co_await a.recv();
      from_a.push_back(*v);
    }
    REQUIRE(from_a == std::vector<int>{0, 1, 2});
    co_await std::move(s1);
    co_await std::move(s2);
    REQUIRE(log.size() == 2);
    REQUIRE(log[0].first == 1);
  });
}

TEST_CASE("broadcast: subscribe sees the values sent from then on", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(4, overflow::block);
    receiver early = b.subscribe(1, overflow::block);
    co_await b.send(1);
    std::vector<std::pair<int, send_status>> log;
    auto waiting = ringflow::spawn(send_and_log(&b, 2, &log));  // held back by early
    co_await ringflow::yield();
    receiver late = b.subscribe();
    REQUIRE(late.size() == 0);  // neither 1 nor the waiting 2
    auto first = co_await early.recv();  // 2 moves into early; the send completes
    REQUIRE(first == 1);
    co_await std::move(waiting);
    REQUIRE(late.size() == 0);  // 2 was sent before late subscribed
    REQUIRE(drain(early) == std::vector<int>{2});
    co_await b.send(3);
    REQUIRE(drain(late) == std::vector<int>{3});
    REQUIRE(drain(early) == std::vector<int>{3});
  });
}

TEST_CASE("broadcast: dropping a receiver releases the send it held back", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(1);
    auto stuck = std::make_unique<receiver>(b.subscribe(1, overflow::block));
    receiver other = b.subscribe(1, overflow::block);
    co_await b.send(0);
    (void)other.try_recv();
    std::vector<std::pair<int, send_status>> log;
    auto s = ringflow::spawn(send_and_log(&b, 1, &log));  // other gets 1; waits for stuck
    co_await ringflow::yield();
    REQUIRE(log.empty());
    stuck.reset();  // unsubscribes: its buffered value goes, the send resumes
    REQUIRE(b.receivers() == 1);
    co_await std::move(s);
    REQUIRE(log == std::vector<std::pair<int, send_status>>{{1, send_status::sent}});
    REQUIRE(drain(other) == std::vector<int>{1});

    // A send owed only to the dropped receiver kept it nowhere: dropped.
    broadcast<int> b2(1);
    auto only = std::make_unique<receiver>(b2.subscribe(1, overflow::block));
    receiver full = b2.subscribe(1, overflow::drop_incoming);
    co_await b2.send(10);
    log.clear();
    auto s2 = ringflow::spawn(send_and_log(&b2, 11, &log));
    co_await ringflow::yield();
    REQUIRE(log.empty());
    only.reset();
    co_await std::move(s2);
    REQUIRE(log == std::vector<std::pair<int, send_status>>{{11, send_status::dropped}});
    REQUIRE(drain(full) == std::vector<int>{10});
    REQUIRE(full.lagged() == 1);
  });
}

TEST_CASE("broadcast: close wakes waiting senders and receivers; receivers drain first", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(2, overflow::block);
    receiver full = b.subscribe();
    receiver empty = b.subscribe(4, overflow::drop_oldest);
    co_await b.send(1);
    co_await b.send(2);
    (void)drain(empty);
    std::vector<std::pair<int, send_status>> log;
    auto s = ringflow::spawn(send_and_log(&b, 3, &log));  // waits for `full`
    std::vector<int> got;
    auto r = ringflow::spawn(recv_into(&empty, &got));  // empty got 3 at once
    auto r2 = ringflow::spawn(recv_into(&empty, &got));  // waits
    for (int i = 0; i < 3; ++i) co_await ringflow::yield();
    REQUIRE(got == std::vector<int>{3});
    b.close();
    b.close();  // idempotent
    co_await std::move(s);
    co_await std::move(r);
    co_await std::move(r2);
    REQUIRE(log == std::vector<std::pair<int, send_status>>{{3, send_status::closed}});
    REQUIRE(got == std::vector<int>{3, -1});
    REQUIRE(b.is_closed());
    auto v1 = co_await full.recv();
    auto v2 = co_await full.recv();
    auto v3 = co_await full.recv();
    REQUIRE(v1 == 1);
    REQUIRE(v2 == 2);
    REQUIRE(v3 == std::nullopt);  // 3 never reached it
    send_status after = co_await b.send(4);
    REQUIRE(after == send_status::closed);
    receiver late = b.subscribe();
    auto none = co_await late.recv();
    REQUIRE(none == std::nullopt);
  });
}

TEST_CASE("broadcast: receivers outlive the broadcast and drain it", "[broadcast][sync]") {
  run([]() -> task<void> {
    std::optional<receiver> r;
    {
      broadcast<int> b(4);
      r.emplace(b.subscribe());
      co_await b.send(1);
      co_await b.send(2);
    }
    auto v1 = co_await r->recv();
    auto v2 = co_await r->recv();
    auto v3 = co_await r->recv();
    REQUIRE(v1 == 1);
    REQUIRE(v2 == 2);
    REQUIRE(v3 == std::nullopt);
  });
}

TEST_CASE("broadcast: a send cancelled while waiting goes no further; the next send moves up", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(1);
    receiver slow = b.subscribe(1, overflow::block);
    receiver slow2 = b.subscribe(1, overflow::block);
    receiver fast = b.subscribe(8, overflow::drop_oldest);
    co_await b.send(0);
    (void)slow2.try_recv();  // slow2 has room, slow has none
    std::vector<std::pair<int, send_status>> log;
    auto h = start_by_hand(send_and_log(&b, 1, &log));  // to slow2 and fast; waits for slow
    auto s2 = ringflow::spawn(send_and_log(&b, 2, &log));  // to fast; waits for slow and slow2
    co_await ringflow::yield();
    h.destroy();  // cancelled: slow never gets 1
    REQUIRE(log.empty());
    auto a = co_await slow.recv();  // room: 2 moves up
    REQUIRE(a == 0);
    REQUIRE(slow.size() == 1);
    auto b1 = slow2.try_recv();  // got 1 before the cancel; 2 moves in behind it
    REQUIRE(b1 == 1);
    co_await std::move(s2);
    REQUIRE(log == std::vector<std::pair<int, send_status>>{{2, send_status::sent}});
    REQUIRE(drain(slow) == std::vector<int>{2});
    REQUIRE(drain(slow2) == std::vector<int>{2});
    REQUIRE(drain(fast) == std::vector<int>{0, 1, 2});
    REQUIRE(slow.lagged() == 0);  // 1 was never sent to slow: nothing to count
  });
}

TEST_CASE("broadcast: a send cancelled by timeout; one settled but not yet resumed", "[broadcast][sync]") {
  counted::live = 0;
  counted::bad = 0;
  run([]() -> task<void> {
    broadcast<counted> b(1, overflow::block);
    auto r = b.subscribe();
    co_await b.send(counted(0));
    auto t = co_await ringflow::timeout(2ms, [](broadcast<counted>* bc) -> task<send_status> {
      co_return co_await bc->send(counted(1));
    }(&b));
    REQUIRE_FALSE(t.has_value());
    REQUIRE(r.size() == 1);

    // Settled (room came) and cancelled before it ran: the value stays delivered.
    std::vector<std::pair<int, send_status>> log;
    broadcast<int> bi(1, overflow::block);
    receiver ri = bi.subscribe();
    co_await bi.send(5);
    auto h = start_by_hand(send_and_log(&bi, 6, &log));
    auto v = ri.try_recv();  // frees room: 6 moves in, the send is settled
    REQUIRE(v == 5);
    h.destroy();
    REQUIRE(log.empty());
    REQUIRE(drain(ri) == std::vector<int>{6});
    auto first = r.try_recv();
    REQUIRE(first->id == 0);
  });
  REQUIRE(counted::live == 0);
  REQUIRE(counted::bad == 0);
}

TEST_CASE("broadcast: a recv cancelled while waiting loses nothing", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(4);
    receiver r = b.subscribe();
    auto t = co_await ringflow::timeout(2ms, [](receiver* rr) -> task<std::optional<int>> {
      co_return co_await rr->recv();
    }(&r));
    REQUIRE_FALSE(t.has_value());
    co_await b.send(1);
    REQUIRE(r.try_recv() == 1);

    // Given a claim, then cancelled before it ran: the value passes to the next recv.
    std::vector<int> out, other;
    auto h = start_by_hand(recv_into(&r, &out));
    auto second = ringflow::spawn(recv_into(&r, &other));
    co_await ringflow::yield();
    co_await b.send(7);
    h.destroy();
    co_await std::move(second);
    REQUIRE(out.empty());
    REQUIRE(other == std::vector<int>{7});

    auto h2 = start_by_hand(recv_into(&r, &out));
    co_await b.send(8);
    h2.destroy();
    REQUIRE(r.try_recv() == 8);  // stays buffered
  });
}

TEST_CASE("broadcast: tasks awaiting one receiver are served first-in, first-out", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<int> b(4);
    receiver r = b.subscribe();
    std::vector<int> out;
    auto t1 = ringflow::spawn(recv_into(&r, &out));
    co_await ringflow::yield();
    auto t2 = ringflow::spawn(recv_into(&r, &out));
    co_await ringflow::yield();
    co_await b.send(1);
    co_await b.send(2);
    co_await std::move(t1);
    co_await std::move(t2);
    REQUIRE(out == std::vector<int>{1, 2});
  });
}

TEST_CASE("broadcast: every value and copy is destroyed exactly once, leftovers included", "[broadcast][sync]") {
  counted::live = 0;
  counted::bad = 0;
  run([]() -> task<void> {
    broadcast<counted> b(4);
    auto block = b.subscribe(4, overflow::block);
    auto oldest = b.subscribe(4, overflow::drop_oldest);
    auto incoming = b.subscribe(4, overflow::drop_incoming);
    auto sample = b.subscribe(4, overflow::sample);
    auto reader = ringflow::spawn([](broadcast<counted>::receiver* r) -> task<int> {
      int n = 0;
      while (auto v = co_await r->recv()) {
        if (v->id != n) co_return -1;
        ++n;
      }
      co_return n;
    }(&block));
    for (int i = 0; i < 200; ++i) co_await b.send(counted(i));
    (void)oldest.try_recv();
    (void)sample.try_recv();
    {
      auto gone = b.subscribe(4, overflow::block);  // dropped holding values
      co_await b.send(counted(200));
    }
    b.close();
    int n = co_await std::move(reader);
    REQUIRE(n == 201);
  });
  REQUIRE(counted::live == 0);
  REQUIRE(counted::bad == 0);
}

// Conservation under random interleavings on one worker: each receiver
// subscribes at a random moment with a random buffer and policy, tasks send
// and receive in random steps, some receivers unsubscribe. For each
// receiver: the values sent after it subscribed = received + buffered +
// lagged, what it received follows the send order, and a block receiver
// loses nothing.
TEST_CASE("broadcast: conservation per receiver under random interleavings", "[broadcast][sync]") {
  for (unsigned seed = 1; seed <= 40; ++seed) {
    CAPTURE(seed);
    run([seed]() -> task<void> {
      std::mt19937 rng(seed);
      auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      broadcast<int> b(static_cast<std::size_t>(pick(1, 4)));
      struct sub {
        std::unique_ptr<receiver> r;
        std::size_t from;  // first index of `started` it is owed
        std::vector<int> got;
        bool gone = false;
      };
      std::vector<std::unique_ptr<sub>> subs;
      std::vector<int> started;  // values whose send began, in order (one worker: no race)
      const overflow policies[] = {overflow::block, overflow::drop_oldest, overflow::drop_incoming, overflow::sample};
      int next = 0;
      std::vector<ringflow::join_handle<void>> senders;
      for (int step = 0; step < 300; ++step) {
        int what = pick(0, 9);
        if (what == 0 && subs.size() < 6) {
          auto s = std::make_unique<sub>();
          s->r = std::make_unique<receiver>(b.subscribe(static_cast<std::size_t>(pick(1, 3)), policies[pick(0, 3)]));
          s->from = started.size();
          subs.push_back(std::move(s));
        } else if (what <= 4) {
          // Logged by the sender right before its fan-out (one worker: nothing
          // runs in between), so `started` is the order values were offered.
          senders.push_back(ringflow::spawn([](broadcast<int>* bc, int v, std::vector<int>* log) -> task<void> {
            log->push_back(v);
            co_await bc->send(v);
          }(&b, next, &started)));
          ++next;
        } else if (what <= 8 && !subs.empty()) {
          sub& s = *subs[static_cast<std::size_t>(pick(0, static_cast<int>(subs.size()) - 1))];
          if (!s.gone) {
            for (int k = pick(1, 3); k > 0; --k) {
              if (auto v = s.r->try_recv()) s.got.push_back(*v);
            }
          }
        } else if (!subs.empty() && pick(0, 3) == 0) {
          sub& s = *subs[static_cast<std::size_t>(pick(0, static_cast<int>(subs.size()) - 1))];
          s.gone = true;
          s.r.reset();
        }
        for (int y = pick(0, 2); y > 0; --y) co_await ringflow::yield();
      }
      // Drain every receiver until every send is done.
      for (;;) {
        bool any = false;
        for (auto& s : subs) {
          if (s->gone) continue;
          while (auto v = s->r->try_recv()) {
            s->got.push_back(*v);
            any = true;
          }
        }
        co_await ringflow::yield();
        if (!any) {
          bool done = true;
          for (auto& h : senders) done = done && h.is_finished();
          if (done) break;
        }
      }
      for (auto& h : senders) co_await std::move(h);
      for (auto& s : subs) {
        if (s->gone) continue;
        const std::size_t owed = started.size() - s->from;
        const std::uint64_t lagged = s->r->lagged();
        REQUIRE(s->r->size() == 0);
        REQUIRE(s->got.size() + lagged == owed);
        // In send order: a subsequence of what was started after subscribing.
        std::size_t i = s->from;
        for (int v : s->got) {
          while (i < started.size() && started[i] != v) ++i;
          REQUIRE(i < started.size());
          ++i;
        }
        if (s->r->policy() == overflow::block) REQUIRE(lagged == 0);
      }
    });
  }
}

TEST_CASE("broadcast: senders and receivers on two workers", "[broadcast][sync]") {
  counted::live = 0;
  counted::bad = 0;
  run(
      []() -> task<void> {
        constexpr int per_sender = 3000;
        broadcast<counted> b(8);
        std::vector<broadcast<counted>::receiver> rs;
        rs.push_back(b.subscribe(4, overflow::block));
        rs.push_back(b.subscribe(16, overflow::block));
        rs.push_back(b.subscribe(2, overflow::drop_oldest));
        rs.push_back(b.subscribe(2, overflow::drop_incoming));
        rs.push_back(b.subscribe(2, overflow::sample));
        struct tally {
          std::vector<int> last{-1, -1};  // per sender: the last id seen, to check order
          std::uint64_t count = 0;
          bool in_order = true;
        };
        std::vector<ringflow::join_handle<tally>> readers;
        for (auto& r : rs) {
          readers.push_back(ringflow::spawn([](broadcast<counted>::receiver* rr) -> task<tally> {
            tally t;
            while (auto v = co_await rr->recv()) {
              const int who = v->id / per_sender;
              if (v->id <= t.last[static_cast<std::size_t>(who)]) t.in_order = false;
              t.last[static_cast<std::size_t>(who)] = v->id;
              ++t.count;
            }
            co_return t;
          }(&r)));
        }
        std::vector<ringflow::join_handle<void>> senders;
        for (int s = 0; s < 2; ++s) {
          senders.push_back(ringflow::spawn([](broadcast<counted>* bc, int from) -> task<void> {
            for (int i = from; i < from + per_sender; ++i) {
              send_status st = co_await bc->send(counted(i));
              if (st != send_status::sent) std::abort();
            }
          }(&b, s * per_sender)));
        }
        for (auto& s : senders) co_await std::move(s);
        b.close();
        for (std::size_t i = 0; i < readers.size(); ++i) {
          tally t = co_await std::move(readers[i]);
          REQUIRE(t.in_order);
          REQUIRE(t.count + rs[i].lagged() == 2 * per_sender);
          if (rs[i].policy() == overflow::block) REQUIRE(t.count == 2 * per_sender);
        }
      },
      2);
  REQUIRE(counted::live == 0);
  REQUIRE(counted::bad == 0);
}

TEST_CASE("broadcast: subscribe, unsubscribe and cancel on two workers while sends wait", "[broadcast][sync]") {
  run(
      []() -> task<void> {
        broadcast<int> b(2, overflow::block);
        std::atomic<bool> stop{false}, began{false};
        auto churn = ringflow::spawn([](broadcast<int>* bc, std::atomic<bool>* st, std::atomic<bool>* go) -> task<int> {
          int rounds = 0;
          while (!st->load()) {
            auto r = bc->subscribe(1, overflow::block);  // holds sends back, then goes
            go->store(true);
            auto t = co_await ringflow::timeout(50us, [](broadcast<int>::receiver* rr) -> task<std::optional<int>> {
              co_return co_await rr->recv();
            }(&r));
            (void)t;
            ++rounds;
            co_await ringflow::yield();
          }
          co_return rounds;
        }(&b, &stop, &began));
        // The sends start once the churn has: a busy machine may otherwise
        // run all 2000 before the churn's worker got to it.
        while (!began.load()) co_await ringflow::yield();
        receiver main_r = b.subscribe(4, overflow::drop_oldest);
        auto sender = ringflow::spawn([](broadcast<int>* bc) -> task<int> {
          int sent = 0;
          for (int i = 0; i < 2000; ++i) {
            auto t = co_await ringflow::timeout(100us, [](broadcast<int>* b2, int v) -> task<send_status> {
              co_return co_await b2->send(v);
            }(bc, i));
            if (t && *t == send_status::sent) ++sent;
          }
          co_return sent;
        }(&b));
        int sent = co_await std::move(sender);
        stop = true;
        int rounds = co_await std::move(churn);
        REQUIRE(sent >= 0);
        REQUIRE(rounds >= 1);
        b.close();
        std::uint64_t got = 0;
        while (main_r.try_recv()) ++got;
        REQUIRE(got <= 4);
      },
      2);
}

namespace {
// Its copy throws while `fail` is set.
struct fragile {
  static inline bool fail = false;
  int v;
  explicit fragile(int x) : v(x) {}
  fragile(const fragile& o) : v(o.v) {
    if (fail) throw std::runtime_error("copy refused");
  }
  fragile(fragile&&) noexcept = default;
  fragile& operator=(const fragile&) = default;
  fragile& operator=(fragile&&) noexcept = default;
};
}  // namespace

TEST_CASE("broadcast: a copy that throws", "[broadcast][sync]") {
  run([]() -> task<void> {
    broadcast<fragile> b(1, overflow::block);
    auto a = b.subscribe();
    auto c = b.subscribe();
    fragile::fail = true;
    REQUIRE_THROWS_AS(co_await b.send(fragile(1)), std::runtime_error);  // the first copy failed
    REQUIRE(a.size() == 0);
    REQUIRE(c.size() == 0);
    fragile::fail = false;
    co_await b.send(fragile(2));  // both full now
    std::vector<std::pair<int, send_status>> log;
    auto s = ringflow::spawn([](broadcast<fragile>* bc, std::vector<std::pair<int, send_status>>* lg) -> task<void> {
      send_status st = co_await bc->send(fragile(3));
      lg->emplace_back(3, st);
    }(&b, &log));
    co_await ringflow::yield();
    fragile::fail = true;
    auto a2 = a.try_recv();  // room in a: the copy of 3 throws, a loses it
    fragile::fail = false;
    REQUIRE(a2->v == 2);
    REQUIRE(a.lagged() == 1);
    REQUIRE(a.size() == 0);
    auto c2 = c.try_recv();  // the last receiver takes the value itself
    REQUIRE(c2->v == 2);
    co_await std::move(s);
    REQUIRE(log == std::vector<std::pair<int, send_status>>{{3, send_status::sent}});
    auto c3 = c.try_recv();
    REQUIRE(c3->v == 3);
    REQUIRE(a.lagged() + a.size() + 1 == 2);  // conservation: 2 sent to a since the failed send
  });
}
