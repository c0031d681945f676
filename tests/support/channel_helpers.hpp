// Helpers shared by the channel tests (tests/channels/*_test.cpp): the names
// they all use, the seeded draw behind every random choice, one-operation
// tasks for ringflow::timeout to race, and a task started by hand so that a
// test can cancel it at a point of its choosing.
//
//   #include "../support/channel_helpers.hpp"
//   using namespace test_support::channel_tests;
//
//   std::mt19937 rng(seed);
//   const auto d = std::chrono::microseconds(pick(rng, 0, 50));
//   std::optional<std::optional<int>> v = co_await ringflow::timeout(d, recv_one(&ch));
//   if (!v) { /* cancelled: the receive took nothing */ }
#pragma once

#include <coroutine>
#include <cstddef>
#include <optional>
#include <random>
#include <vector>

#include <ringflow/ringflow.hpp>

#include "tracked.hpp"

namespace test_support::channel_tests {

using ringflow::channel;
using ringflow::overflow;
using ringflow::send_status;
using ringflow::task;
using test_support::tracked;

// A uniform draw from [lo, hi]. Every random choice of a run comes from one
// rng seeded from the run's seed, so a failing seed replays the same choices.
inline int pick(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// One operation as a task of its own, for ringflow::timeout to race (and,
// when the timer wins, to cancel by destroying the frame).

// Sends V(id): the int itself, or a tracked value with that id.
template <class V>
task<send_status> send_one(channel<V>* ch, int id) {
  send_status s = co_await ch->send(V(id));
  co_return s;
}

template <class V>
task<std::optional<V>> recv_one(channel<V>* ch) {
  std::optional<V> v = co_await ch->recv();
  co_return v;
}

template <class V>
task<std::vector<V>> recv_some(channel<V>* ch, std::size_t max) {
  std::vector<V> vs = co_await ch->recv_many(max);
  co_return vs;
}

// Runs t on this thread up to its first suspension, outside any scheduler,
// and hands back its frame. Destroying the frame while it waits is a
// cancellation at exactly the point the test chose (where a timeout firing
// would be a matter of luck).
inline std::coroutine_handle<> start_by_hand(task<void> t) {
  std::coroutine_handle<> h = t.release();
  h.resume();
  return h;
}

}  // namespace test_support::channel_tests
