// A reverse-proxy route: requests forwarded to an upstream HTTP server over
// tcp_stream, through a circuit_breaker, so a failing upstream is answered
// 503 at once (without a connection attempt) while the breaker is open.
//
//   ringflow::circuit_breaker breaker({.failure_threshold = 5, .cool_down = std::chrono::seconds(10)});
//   ringflow::http::server srv("0.0.0.0", 8080,
//       ringflow::http::proxy_route({.host = "127.0.0.1", .port = 9000}, breaker));
//
// forward(req, res, up): one new connection per request ("Connection:
// close" upstream). The request line, its headers (minus hop-by-hop ones:
// Connection, Keep-Alive, Transfer-Encoding, TE, Upgrade, Proxy-*) plus
// "X-Forwarded-For", and its body (read whole, up to max_body_bytes) go to
// the upstream; its status, headers (minus hop-by-hop ones) and body (read
// whole, at most up.max_response_bytes) become res's, buffered. Throws
// std::system_error when the upstream cannot be reached or breaks off,
// http::error(504) when it took longer than up.timeout, http::error(502) for
// an answer that does not parse or is too large.
//
// proxy_route(up, breaker): a handler calling forward inside breaker.call:
// while the breaker is open it answers 503 with Retry-After (the cool-down
// left, whole seconds, at least 1); a failed forward counts as a failure
// and is answered 502 (504 for a timeout). up is copied; the breaker must
// outlive the server.
//
// Cancel safety: cancelling forward closes the upstream connection (its
// pending I/O cancelled as tcp_stream's is); res keeps what was set before.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <ringflow/circuit_breaker.hpp>
#include <ringflow/http.hpp>
#include <ringflow/task.hpp>

namespace ringflow::http {

struct upstream {
  std::string host;
  std::uint16_t port = 0;
  // The whole exchange: connect, send, the complete answer.
  std::chrono::milliseconds timeout{10'000};
  std::size_t max_response_bytes = 16 * 1024 * 1024;
};

task<void> forward(request& req, response& res, const upstream& up);

handler proxy_route(upstream up, circuit_breaker& breaker);

}  // namespace ringflow::http
