// http_hello: an HTTP/1.1 server on ringflow::http.
//
//   http_hello [PORT] [THREADS]   (on 127.0.0.1; PORT 8080 by default, 0: an ephemeral port)
//
// GET / answers "hello, world\n"; POST /echo streams the request body back
// (chunked, read and written 16 KiB at a time, so a slow uploader or a slow
// reader paces the copy); anything else is 404. Prints "listening <port>"
// once listening. SIGINT/SIGTERM shut it down gracefully: it stops
// accepting, lets requests in flight finish, then exits 0.
#include <fmt/core.h>
#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stop_token>
#include <string>

#include <ringflow/ringflow.hpp>

namespace http = ringflow::http;

namespace {

ringflow::task<> handle(http::request& req, http::response& res) {
  if (req.target() == "/" && (req.method() == "GET" || req.method() == "HEAD")) {
    res.set_header("Content-Type", "text/plain");
    res.set_body("hello, world\n");
  } else if (req.target() == "/echo" && req.method() == "POST") {
    res.set_header("Content-Type", "application/octet-stream");
    std::byte buf[16 * 1024];
    for (;;) {
      std::size_t n = co_await req.body().read(buf);
      if (n == 0) break;
      co_await res.write(std::span<const std::byte>(buf, n));
    }
  } else {
    res.set_status(404);
    res.set_body("not found\n");
  }
}

ringflow::task<> serve(http::server& srv) {
  // Before "listening": from then on a supervisor may signal us.
  ringflow::signal_set signals({SIGINT, SIGTERM});
  fmt::print("listening {}\n", srv.port());
  std::fflush(stdout);
  std::stop_source stop;
  auto watching = ringflow::spawn_local(signals.stop_on_signal(stop));
  co_await srv.run(stop.get_token());
  watching.cancel();
  fmt::print("stopped after {} request(s)\n", srv.requests());
}

}  // namespace

int main(int argc, char** argv) {
  int port = argc > 1 ? std::atoi(argv[1]) : 8080;
  int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  if (port < 0 || port > 65535 || threads < 1 || threads > 1024) {
    fmt::print(stderr, "usage: http_hello [PORT] [THREADS]\n");
    return 2;
  }
  try {
    ringflow::runtime rt({.threads = static_cast<unsigned>(threads)});
    http::server srv("127.0.0.1", static_cast<std::uint16_t>(port), handle);
    rt.block_on(serve(srv));
  } catch (const std::exception& e) {
    fmt::print(stderr, "http_hello: {}\n", e.what());
    return 1;
  }
  return 0;
}
