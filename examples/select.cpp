// select: one task serves two producers, a heartbeat and a quit signal, the
// way a Go program would with select. Prints which case fired and how often.
//
//   build/release/examples/select
#include <fmt/core.h>

#include <chrono>
#include <ringflow/ringflow.hpp>
#include <string>

using namespace std::chrono_literals;

namespace {

ringflow::task<void> produce(ringflow::channel<int>* out, int count, std::chrono::microseconds every) {
  for (int i = 0; i < count; ++i) {
    auto s = co_await out->send(i);
    if (s == ringflow::send_status::closed) co_return;
    co_await ringflow::sleep_for(every);
  }
  out->close();
}

ringflow::task<void> quit_after(ringflow::channel<int>* quit, std::chrono::milliseconds d) {
  co_await ringflow::sleep_for(d);
  quit->close();
}

ringflow::task<int> serve() {
  ringflow::channel<int> fast(16), slow(16), quit(1);
  auto p1 = ringflow::spawn_local(produce(&fast, 400, 500us));
  auto p2 = ringflow::spawn_local(produce(&slow, 40, 5ms));
  auto q = ringflow::spawn_local(quit_after(&quit, 400ms));

  int from_fast = 0, from_slow = 0, idle = 0;
  bool fast_open = true, slow_open = true;
  for (;;) {
    // Closed sources stay ready (nullopt), so select only over open ones
    // by swapping a closed source for the quit channel.
    auto r = co_await ringflow::select(ringflow::recv_from(fast_open ? fast : quit),
                                       ringflow::recv_from(slow_open ? slow : quit),
                                       ringflow::recv_from(quit), ringflow::after(20ms));
    if (r.index() == 2 || ((r.index() == 0 && !fast_open) || (r.index() == 1 && !slow_open))) break;
    if (r.index() == 3) {
      ++idle;
      continue;
    }
    const auto& v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
    if (!v) {
      (r.index() == 0 ? fast_open : slow_open) = false;
      fmt::print("{} source closed\n", r.index() == 0 ? "fast" : "slow");
      continue;
    }
    ++(r.index() == 0 ? from_fast : from_slow);
  }
  // The channels live in this frame: stop the producers before it goes.
  fast.close();
  slow.close();
  co_await p1;
  co_await p2;
  co_await q;
  fmt::print("quit: {} values from fast, {} from slow, {} idle heartbeats\n", from_fast, from_slow, idle);
  co_return 0;
}

}  // namespace

int main() {
  ringflow::runtime rt;
  return rt.block_on(serve());
}
