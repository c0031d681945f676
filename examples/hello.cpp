// hello: spawn, sleep and timeout on the ringflow runtime.
#include <fmt/core.h>

#include <chrono>
#include <ringflow/ringflow.hpp>

using namespace std::chrono_literals;

ringflow::task<int> slow_answer(std::chrono::milliseconds delay) {
  co_await ringflow::sleep_for(delay);
  co_return 42;
}

ringflow::task<> hello() {
  auto start = std::chrono::steady_clock::now();
  auto ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  };

  // Two sleeps spawned side by side take 100 ms in all, not 200.
  auto a = ringflow::spawn(slow_answer(100ms));
  auto b = ringflow::spawn(slow_answer(100ms));
  int sum = co_await std::move(a) + co_await std::move(b);
  fmt::print("[{:4} ms] two spawned 100 ms sleeps joined: {} + {} = {}\n", ms(), 42, 42, sum);

  // A deadline: the slow task loses and is cancelled (its frame destroyed).
  auto late = co_await ringflow::timeout(50ms, slow_answer(1000ms));
  fmt::print("[{:4} ms] timeout(50 ms, 1 s task): {}\n", ms(), late ? "finished" : "cancelled");

  auto on_time = co_await ringflow::timeout(500ms, slow_answer(10ms));
  fmt::print("[{:4} ms] timeout(500 ms, 10 ms task): {}\n", ms(), on_time ? fmt::format("value {}", *on_time) : "cancelled");
}

int main() {
  ringflow::runtime rt({.threads = 2});
  rt.block_on(hello());
}
