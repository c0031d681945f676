// http_proxy: a reverse proxy on ringflow::http, with the service-boundary
// limits in front of it.
//
//   http_proxy PORT UPSTREAM_HOST UPSTREAM_PORT
//
// Every request goes to the upstream (one connection per request) through a
// circuit breaker: after 3 upstream failures in a row it answers 503 with
// Retry-After for 5 s without trying, then lets one trial through; a failed
// forward is 502. In front: load shedding (64 requests in flight, 128 more
// queued for at most 1 s, beyond: 503) and a token bucket per client IP
// (20 requests/s, bursts of 40, beyond: 429 with Retry-After).
// GET /_proxy/stats answers the counters. Prints "listening <port>";
// SIGINT/SIGTERM shut it down gracefully.
#include <fmt/core.h>
#include <signal.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <stop_token>
#include <string>

#include <ringflow/ringflow.hpp>

namespace http = ringflow::http;
using namespace std::chrono_literals;

namespace {

ringflow::task<> serve(http::server& srv) {
  ringflow::signal_set signals({SIGINT, SIGTERM});
  fmt::print("listening {}\n", srv.port());
  std::fflush(stdout);
  std::stop_source stop;
  auto watching = ringflow::spawn_local(signals.stop_on_signal(stop));
  co_await srv.run(stop.get_token());
  watching.cancel();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    fmt::print(stderr, "usage: http_proxy PORT UPSTREAM_HOST UPSTREAM_PORT\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  int up_port = std::atoi(argv[3]);
  if (port < 0 || port > 65535 || up_port <= 0 || up_port > 65535) {
    fmt::print(stderr, "http_proxy: bad port\n");
    return 2;
  }
  try {
    ringflow::runtime rt({.threads = 1});
    ringflow::circuit_breaker breaker({.failure_threshold = 3, .cool_down = 5s});
    http::load_shedder shed({.max_in_flight = 64, .max_queued = 128, .max_wait = 1s});
    http::client_rate_limit per_client({.rate_per_second = 20, .burst = 40});

    http::upstream up{.host = argv[2], .port = static_cast<std::uint16_t>(up_port)};
    http::handler proxy = http::proxy_route(up, breaker);
    http::handler routes = [&](http::request& req, http::response& res) -> ringflow::task<> {
      if (req.target() == "/_proxy/stats") {
        auto b = breaker.stats();
        auto s = shed.stats();
        auto r = per_client.stats();
        res.set_header("Content-Type", "text/plain");
        res.set_body(fmt::format("breaker {} calls {} failures {} rejected {}\n"
                                 "shed admitted {} shed {} timed_out {} in_flight {}\n"
                                 "rate admitted {} limited {} clients {}\n",
                                 ringflow::to_string(breaker.state()), b.calls, b.failures, b.rejected, s.admitted,
                                 s.shed, s.timed_out, s.in_flight, r.admitted, r.limited, r.clients));
        co_return;
      }
      co_await proxy(req, res);
    };
    http::server srv("127.0.0.1", static_cast<std::uint16_t>(port),
                     http::load_shed(shed, http::rate_limited(per_client, std::move(routes))));
    rt.block_on(serve(srv));
  } catch (const std::exception& e) {
    fmt::print(stderr, "http_proxy: {}\n", e.what());
    return 1;
  }
  return 0;
}
