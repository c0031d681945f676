// Direct completion (waiter_node::direct): a waiter whose frame nothing but
// shutdown can destroy has its wait completed by the waker itself, which
// moves the value across at once; a waiter that may be cancelled (timeout's
// child and everything it awaits, a task started by hand) only gets a claim,
// settled when it runs, so cancelling it takes nothing and loses nothing.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <vector>

#include <ringflow/ringflow.hpp>

#include "../support/channel_helpers.hpp"
#include "../support/run.hpp"

using namespace std::chrono_literals;
using namespace test_support::channel_tests;
using test_support::run;

namespace {

task<void> send_values(channel<int>* ch, std::vector<int> vs, std::vector<send_status>* results) {
  for (int v : vs) results->push_back(co_await ch->send(v));
}

task<void> recv_into(channel<int>* ch, std::vector<int>* out) {
  auto v = co_await ch->recv();
  out->push_back(v ? *v : -1);
}

// Two tasks deep, so that only inheritance can tell the inner send it may be cancelled.
task<send_status> send_inner(channel<int>* ch, int v) { co_return co_await ch->send(v); }
task<send_status> send_outer(channel<int>* ch, int v) { co_return co_await send_inner(ch, v); }

task<void> send_under_timeout(channel<int>* ch, int v, std::optional<send_status>* result) {
  *result = co_await ringflow::timeout(1h, send_outer(ch, v));
}

task<void> recv_under_timeout(channel<int>* ch, std::vector<int>* out) {
  std::optional<std::optional<int>> v = co_await ringflow::timeout(1h, recv_one(ch));
  out->push_back(v && *v ? **v : -1);
}

}  // namespace

TEST_CASE("channel direct: a spawned sender's value moves in when a slot frees, before the sender runs", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(1);
    std::vector<send_status> results;
    auto sender = ringflow::spawn(send_values(&ch, {1, 2, 3}, &results));
    co_await ringflow::yield();  // 1 is buffered, the sender waits with 2
    REQUIRE(ch.size() == 1);
    REQUIRE(results.size() == 1);

    REQUIRE(ch.try_recv() == 1);
    // 2 took the freed slot at once: nobody has to wait for the sender to run.
    REQUIRE(ch.size() == 1);
    REQUIRE(ch.stats().sent == 2);
    REQUIRE(results.size() == 1);
    REQUIRE(ch.try_recv() == 2);
    REQUIRE_FALSE(ch.try_recv().has_value());  // 3 is not sent until the sender runs again

    co_await std::move(sender);
    REQUIRE(results == std::vector<send_status>(3, send_status::sent));
    REQUIRE(ch.try_recv() == 3);
    REQUIRE(ch.stats().sent == 3);
    REQUIRE(ch.stats().received == 3);
  });
}

TEST_CASE("channel direct: a sender under timeout, however deep, only gets the slot reserved", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(1);
    REQUIRE(ch.try_send(1) == send_status::sent);
    std::optional<send_status> result;
    auto sender = ringflow::spawn(send_under_timeout(&ch, 2, &result));
    co_await ringflow::yield();
    REQUIRE(ch.try_recv() == 1);
    // The slot is promised to the sender, but its value stays with it until it runs.
    REQUIRE(ch.size() == 0);
    REQUIRE(ch.stats().sent == 1);
    REQUIRE(ch.try_send(9) == send_status::full);
    co_await std::move(sender);
    REQUIRE(result == send_status::sent);
    REQUIRE(ch.try_recv() == 2);
  });
}

TEST_CASE("channel direct: a value sent to a waiting receiver goes straight to a spawned one, is claimed for one under timeout", "[channels]") {
  for (bool under_timeout : {false, true}) {
    INFO((under_timeout ? "receiver under timeout" : "spawned receiver"));
    run([](bool cancellable) -> task<void> {
      channel<int> ch(1);
      std::vector<int> out;
      auto receiver = ringflow::spawn(cancellable ? recv_under_timeout(&ch, &out) : recv_into(&ch, &out));
      co_await ringflow::yield();
      REQUIRE(ch.try_send(7) == send_status::sent);
      REQUIRE(out.empty());  // the receiver has not run yet
      if (cancellable) {
        REQUIRE(ch.size() == 1);  // buffered, claimed by the receiver
        REQUIRE(ch.stats().received == 0);
        REQUIRE_FALSE(ch.try_recv().has_value());  // a latecomer cannot take it
      } else {
        // Handed over: counted as received, not buffered, and the slot stays
        // free, so the next value is buffered, not refused.
        REQUIRE(ch.size() == 0);
        REQUIRE(ch.stats().received == 1);
        REQUIRE(ch.try_send(8) == send_status::sent);
        REQUIRE(ch.try_send(9) == send_status::full);
      }
      co_await std::move(receiver);
      REQUIRE(out == std::vector<int>{7});
      if (!cancellable) REQUIRE(ch.try_recv() == 8);
    }, under_timeout);
  }
}

TEST_CASE("channel direct: a value handed past its reserved slot frees the slot for the senders still waiting", "[channels]") {
  // A permit's value (or a woken sender's) finds a direct receiver waiting:
  // it goes to the receiver, so the slot it had reserved must pass on to the
  // next waiting sender. (Without that the channel stalled with a free slot,
  // a waiting sender and a waiting receiver.)
  run([]() -> task<void> {
    channel<int> ch(1);
    std::optional<channel<int>::permit> p = co_await ch.reserve();
    REQUIRE(p.has_value());
    std::vector<int> out;
    auto r = ringflow::spawn(recv_into(&ch, &out));
    std::vector<send_status> results;
    auto s = ringflow::spawn(send_values(&ch, {3}, &results));
    co_await ringflow::yield();  // the receiver waits (empty), the sender waits (the slot is reserved)
    REQUIRE(out.empty());
    REQUIRE(results.empty());

    REQUIRE(p->send(2) == send_status::sent);  // straight to the receiver
    REQUIRE(ch.size() == 1);                   // ... and the sender's 3 took the slot
    co_await std::move(r);
    co_await std::move(s);
    REQUIRE(out == std::vector<int>{2});
    REQUIRE(results == std::vector<send_status>{send_status::sent});
    REQUIRE(ch.try_recv() == 3);
  });
}

TEST_CASE("channel direct: recv_many that frees several slots moves each waiting sender's value in, in order", "[channels]") {
  run([]() -> task<void> {
    channel<int> ch(3);
    for (int i = 0; i < 3; ++i) REQUIRE(ch.try_send(i) == send_status::sent);
    std::vector<send_status> results;
    std::vector<ringflow::join_handle<void>> senders;
    for (int v = 10; v < 13; ++v) senders.push_back(ringflow::spawn(send_values(&ch, {v}, &results)));
    co_await ringflow::yield();
    std::vector<int> batch = co_await ch.recv_many(3);
    REQUIRE(batch == std::vector<int>{0, 1, 2});
    REQUIRE(ch.size() == 3);  // 10, 11, 12 moved in
    REQUIRE(ch.try_recv() == 10);
    REQUIRE(ch.try_recv() == 11);
    REQUIRE(ch.try_recv() == 12);
    for (auto& s : senders) co_await std::move(s);
    REQUIRE(results.size() == 3);
  });
}

TEST_CASE("channel direct: shutdown frees a value handed to a receiver that never ran", "[channels]") {
  tracked::reset();
  {
    channel<tracked> ch(1);
    {
      ringflow::runtime rt({.threads = 1});
      rt.block_on([](channel<tracked>* c) -> task<void> {
        // Detached: the runtime's shutdown destroys its frame, value and all.
        ringflow::spawn([](channel<tracked>* c2) -> task<void> { co_await c2->recv(); }(c)).detach();
        co_await ringflow::yield();
        REQUIRE(c->try_send(tracked(1)) == send_status::sent);
        REQUIRE(c->size() == 0);  // handed to the receiver, whose resumption is queued
      }(&ch));
    }
    REQUIRE(tracked::live == 0);
    REQUIRE(tracked::times_destroyed(1) == 1);
  }
  REQUIRE(tracked::live == 0);
}

TEST_CASE("channel direct: a receiver on one worker moves in the value of a sender waiting on another", "[channels]") {
  ringflow::runtime rt({.threads = 2});
  rt.block_on([](ringflow::runtime* rt) -> task<void> {  // worker 0
    channel<int> ch(1);
    std::vector<send_status> results;
    auto sender = rt->spawn_on(1, send_values(&ch, {1, 2}, &results));
    // Wait, without sleeping, until the sender has parked with 2.
    while (ch.stats().blocked_sends == 0) co_await ringflow::yield();
    std::optional<int> first = co_await ch.recv();
    REQUIRE(first == 1);
    // This worker moved 2 in while taking 1: it is there before the sender runs again.
    std::optional<int> second = ch.try_recv();
    REQUIRE(second == 2);
    co_await std::move(sender);
    REQUIRE(results == std::vector<send_status>(2, send_status::sent));
  }(&rt));
}
