// The install check's consumer: built only from what `meson install` put in
// place (headers, libringflow.a, ringflow.pc). Exits 0 iff the task returned 42.
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <ringflow/ringflow.hpp>

namespace {
ringflow::task<int> answer() {
  co_await ringflow::sleep_for(std::chrono::milliseconds(1));
  co_return 42;
}
}  // namespace

int main() {
#if RINGFLOW_HAS_REDIS
  // Links the Redis client's objects, which need hiredis from ringflow.pc.
  ringflow::redis::connection not_connected;
  if (not_connected.is_open()) return 1;
#endif
#if RINGFLOW_HAS_HTTP
  // Links the HTTP server's objects, which need libhttp-parser from ringflow.pc.
  try {
    ringflow::http::server no_handler("127.0.0.1", 0, ringflow::http::handler{});
    return 1;
  } catch (const std::invalid_argument&) {
  }
#endif
  ringflow::runtime rt({.threads = 1});
  int v = rt.block_on(answer());
  std::printf("consumer: block_on returned %d\n", v);
  return v == 42 ? 0 : 1;
}
