#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <ringflow/ringflow.hpp>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using ringflow::after;
using ringflow::channel;
using ringflow::overflow;
using ringflow::recv_from;
using ringflow::send_status;
using ringflow::send_to;
using ringflow::task;

namespace {

std::vector<int> drain(channel<int>& ch) {
  std::vector<int> out;
  while (auto v = ch.try_recv()) out.push_back(*v);
  return out;
}

task<void> send_one(channel<int>* ch, int v) { co_await ch->send(v); }

task<std::optional<int>> recv_one(channel<int>* ch) { co_return co_await ch->recv(); }

}  // namespace

TEST_CASE("select takes a ready value and leaves the other channels alone", "[channels][select]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    channel<int> a(4), b(4);
    co_await b.send(7);
    auto r = co_await ringflow::select(recv_from(a), recv_from(b));
    REQUIRE(r.index() == 1);
    REQUIRE(std::get<1>(r) == 7);
    REQUIRE(a.size() == 0);
    REQUIRE(b.size() == 0);
  }());
}

TEST_CASE("select suspends until a value arrives on any channel", "[channels][select]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    channel<int> a(4), b(4);
    auto h = ringflow::spawn_local(send_one(&b, 42));
    auto r = co_await ringflow::select(recv_from(a), recv_from(b));
    REQUIRE(r.index() == 1);
    REQUIRE(std::get<1>(r) == 42);
    co_await h;
    // The losing case on a is withdrawn: a later value goes to a plain receiver.
    co_await a.send(5);
    auto v = co_await a.recv();
    REQUIRE(v == 5);
    REQUIRE(a.stats().received == 1);
  }());
}

TEST_CASE("select: after() fires when nothing is ready, and takes nothing", "[channels][select]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    channel<int> a(1);
    auto start = std::chrono::steady_clock::now();
    auto r = co_await ringflow::select(recv_from(a), after(20ms));
    REQUIRE(r.index() == 1);
    REQUIRE(std::chrono::steady_clock::now() - start >= 20ms);
    co_await a.send(1);
    REQUIRE(drain(a) == std::vector<int>{1});

    // A send and a timeout: the channel stays full, the value is not sent.
    co_await a.send(2);
    auto s = co_await ringflow::select(send_to(a, 3), after(5ms));
    REQUIRE(s.index() == 1);
    REQUIRE(drain(a) == std::vector<int>{2});
    REQUIRE(a.stats().sent == 2);

    // after(0) is ready at once.
    auto z = co_await ringflow::select(recv_from(a), after(0ms));
    REQUIRE(z.index() == 1);
  }());
}

TEST_CASE("select: a send case completes when a receiver frees a slot", "[channels][select]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    channel<int> out(1), in(1);
    co_await out.send(1);
    auto h = ringflow::spawn_local(recv_one(&out));
    auto r = co_await ringflow::select(send_to(out, 2), recv_from(in));
    REQUIRE(r.index() == 0);
    REQUIRE(std::get<0>(r) == send_status::sent);
    auto got = co_await h;
    REQUIRE(got == 1);
    REQUIRE(drain(out) == std::vector<int>{2});
  }());
}

TEST_CASE("select: closed channels are ready; recv yields nullopt, send yields closed", "[channels][select]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    channel<int> a(2), b(2);
    a.close();
    auto r = co_await ringflow::select(recv_from(a), recv_from(b));
    REQUIRE(r.index() == 0);
    REQUIRE_FALSE(std::get<0>(r).has_value());
    auto s = co_await ringflow::select(send_to(a, 1), recv_from(b));
    REQUIRE(s.index() == 0);
    REQUIRE(std::get<0>(s) == send_status::closed);

    // close() wakes a suspended select.
    channel<int> c(2);
    struct closer {
      static task<void> run(channel<int>* ch) {
        ch->close();
        co_return;
      }
    };
    auto h = ringflow::spawn_local(closer::run(&c));
    auto w = co_await ringflow::select(recv_from(c), after(10s));
    REQUIRE(w.index() == 0);
    REQUIRE_FALSE(std::get<0>(w).has_value());
    co_await h;
  }());
}

TEST_CASE("try_select is Go's default: nothing ready, nothing taken", "[channels][select]") {
  channel<int> a(1), b(1, overflow::drop_incoming);
  auto none = ringflow::try_select(recv_from(a), recv_from(b));
  REQUIRE_FALSE(none.has_value());
  REQUIRE(a.try_send(1) == send_status::sent);
  auto full = ringflow::try_select(send_to(a, 2));
  REQUIRE_FALSE(full.has_value());
  REQUIRE(drain(a) == std::vector<int>{1});
  REQUIRE(a.stats().sent == 1);

  // A drop_incoming channel is always ready; the dropped value reaches on_drop.
  std::vector<int> dropped;
  channel<int> d(1, overflow::drop_incoming, [&](int v) { dropped.push_back(v); });
  REQUIRE(d.try_send(1) == send_status::sent);
  auto r = ringflow::try_select(send_to(d, 9));
  REQUIRE(r.has_value());
  REQUIRE(std::get<0>(*r) == send_status::dropped);
  REQUIRE(dropped == std::vector<int>{9});
}

TEST_CASE("select is fair: when both are ready, both get chosen", "[channels][select]") {
  channel<int> a(1), b(1);
  int picks[2] = {0, 0};
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(a.try_send(1) == send_status::sent);
    REQUIRE(b.try_send(2) == send_status::sent);
    auto r = ringflow::try_select(recv_from(a), recv_from(b));
    REQUIRE(r.has_value());
    ++picks[r->index()];
    drain(a);
    drain(b);
  }
  REQUIRE(picks[0] > 600);
  REQUIRE(picks[1] > 600);
}

TEST_CASE("select: a blocked sender behind a losing send case gets the slot", "[channels][select]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    channel<int> a(1), b(1);
    co_await a.send(1);  // a is full
    struct selector {
      static task<std::size_t> run(channel<int>* a, channel<int>* b) {
        auto r = co_await ringflow::select(send_to(*a, 100), recv_from(*b));
        co_return r.index();
      }
    };
    auto s = ringflow::spawn_local(selector::run(&a, &b));
    co_await ringflow::yield();                          // the select waits on a and b
    auto p = ringflow::spawn_local(send_one(&a, 2));     // queued behind it on a
    co_await ringflow::yield();
    co_await b.send(7);                                  // the select wins on b
    auto first = co_await a.recv();                      // frees a slot: it must go to p
    REQUIRE(first == 1);
    co_await p;
    auto idx = co_await s;
    REQUIRE(idx == 1);
    REQUIRE(drain(a) == std::vector<int>{2});
    REQUIRE(a.stats().sent == 2);
  }());
}

TEST_CASE("select on the same channel in a send and a recv case", "[channels][select]") {
  ringflow::runtime rt;
  rt.block_on([]() -> task<void> {
    channel<int> a(1);
    auto r = co_await ringflow::select(recv_from(a), send_to(a, 3));
    REQUIRE(r.index() == 1);  // empty: only the send is ready
    auto r2 = co_await ringflow::select(recv_from(a), send_to(a, 4));
    REQUIRE(r2.index() == 0);  // full: only the recv is ready
    REQUIRE(std::get<0>(r2) == 3);
  }());
}

TEST_CASE("select on rendezvous channels", "[channels][select]") {
  ringflow::runtime rt({.threads = 2});
  rt.block_on([]() -> task<void> {
    channel<int> r0(0), r1(0);
    // recv case meets a waiting sender
    auto h = ringflow::spawn_local(send_one(&r1, 11));
    co_await ringflow::yield();
    auto x = co_await ringflow::select(recv_from(r0), recv_from(r1));
    REQUIRE(x.index() == 1);
    REQUIRE(std::get<1>(x) == 11);
    co_await h;

    // send case meets a waiting receiver
    auto g = ringflow::spawn_local(recv_one(&r0));
    co_await ringflow::yield();
    auto y = co_await ringflow::select(send_to(r0, 12), recv_from(r1));
    REQUIRE(y.index() == 0);
    REQUIRE(std::get<0>(y) == send_status::sent);
    auto got = co_await g;
    REQUIRE(got == 12);
  }());
}

namespace {

// One side selects send on r, the other selects recv on r (both also wait on
// a channel that never gets anything): they must meet, on two workers.
task<int> select_sender(channel<int>* r, channel<int>* never, int rounds) {
  int sent = 0;
  for (int i = 0; i < rounds; ++i) {
    auto x = co_await ringflow::select(send_to(*r, i), recv_from(*never));
    if (x.index() == 0 && std::get<0>(x) == send_status::sent) ++sent;
  }
  r->close();
  co_return sent;
}

task<std::vector<int>> select_receiver(channel<int>* r, channel<int>* never) {
  std::vector<int> got;
  for (;;) {
    auto x = co_await ringflow::select(recv_from(*r), recv_from(*never));
    if (x.index() != 0) {  // Catch is not thread-safe: report through the result
      got.push_back(-1);
      break;
    }
    if (!std::get<0>(x)) break;
    got.push_back(*std::get<0>(x));
  }
  co_return got;
}

}  // namespace

TEST_CASE("select meets select on a rendezvous channel across workers", "[channels][select]") {
  ringflow::runtime rt({.threads = 2});
  channel<int> r(0), n1(1), n2(1);
  auto s = rt.spawn_on(0, select_sender(&r, &n1, 2000));
  auto g = rt.spawn_on(1, select_receiver(&r, &n2));
  REQUIRE(s.wait() == 2000);
  std::vector<int> got = g.wait();
  REQUIRE(got.size() == 2000);
  for (int i = 0; i < 2000; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
}

namespace {

// Receives from a and b until both are closed and drained, through select,
// each select wrapped in a short timeout so cancellations race hand-offs.
task<std::vector<int>> select_consumer(channel<int>* a, channel<int>* b, bool with_timeouts) {
  std::vector<int> got;
  bool a_open = true, b_open = true;
  while (a_open || b_open) {
    std::optional<std::variant<std::optional<int>, std::optional<int>>> r;
    if (with_timeouts) {
      struct one {
        static task<std::variant<std::optional<int>, std::optional<int>>> run(channel<int>* a, channel<int>* b) {
          co_return co_await ringflow::select(recv_from(*a), recv_from(*b));
        }
      };
      r = co_await ringflow::timeout(20us, one::run(a, b));
      if (!r) continue;
    } else {
      auto v = co_await ringflow::select(recv_from(*a), recv_from(*b));
      r.emplace(std::move(v));
    }
    const auto& v = r->index() == 0 ? std::get<0>(*r) : std::get<1>(*r);
    if (v) {
      got.push_back(*v);
    } else if (r->index() == 0) {
      a_open = false;
    } else {
      b_open = false;
    }
    if (!a_open && b_open) {
      // a is done: keep draining b with a plain recv.
      while (auto x = co_await b->recv()) got.push_back(*x);
      b_open = false;
    } else if (!b_open && a_open) {
      while (auto x = co_await a->recv()) got.push_back(*x);
      a_open = false;
    }
  }
  co_return got;
}

task<int> produce_and_close(channel<int>* ch, int from, int to) {
  int sent = 0;
  for (int i = from; i < to; ++i) {
    auto s = co_await ch->send(i);
    if (s == send_status::sent) ++sent;
  }
  ch->close();
  co_return sent;
}

void check_exactly_once(bool with_timeouts, std::size_t capacity, int per_channel) {
  ringflow::runtime rt({.threads = 2});
  channel<int> a(capacity), b(capacity);
  auto pa = rt.spawn_on(0, produce_and_close(&a, 0, per_channel));
  auto pb = rt.spawn_on(1, produce_and_close(&b, per_channel, 2 * per_channel));
  auto c1 = rt.spawn_on(0, select_consumer(&a, &b, with_timeouts));
  auto c2 = rt.spawn_on(1, select_consumer(&a, &b, with_timeouts));
  REQUIRE(pa.wait() == per_channel);
  REQUIRE(pb.wait() == per_channel);
  std::vector<int> all = c1.wait();
  std::vector<int> two = c2.wait();
  all.insert(all.end(), two.begin(), two.end());
  std::set<int> seen(all.begin(), all.end());
  REQUIRE(all.size() == static_cast<std::size_t>(2 * per_channel));
  REQUIRE(seen.size() == all.size());
  REQUIRE(*seen.begin() == 0);
  REQUIRE(*seen.rbegin() == 2 * per_channel - 1);
}

}  // namespace

TEST_CASE("select: two producers, two selecting consumers on two workers, exactly once", "[channels][select]") {
  check_exactly_once(false, 8, 20000);
  check_exactly_once(false, 0, 5000);
}

TEST_CASE("select cancelled by timeout while values are handed to it loses nothing", "[channels][select]") {
  check_exactly_once(true, 4, 5000);
  check_exactly_once(true, 0, 2000);
}
