// forward() and proxy_route(): one upstream exchange per request, its answer
// parsed by libhttp-parser in response mode.
#include <http_parser.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ringflow/http_proxy.hpp>
#include <ringflow/tcp.hpp>
#include <ringflow/timeout.hpp>

#include "connection.hpp"

namespace ringflow::http {

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

// Headers that describe one hop, not the message (RFC 9110 7.6.1), and the
// framing the server writes itself.
bool hop_by_hop(std::string_view name) noexcept {
  for (std::string_view h : {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                             "proxy-connection", "proxy-authenticate", "proxy-authorization", "content-length"}) {
    if (iequals(name, h)) return true;
  }
  return false;
}

struct upstream_answer {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool complete = false;
  bool in_value = false;
  std::size_t limit = 0;
  bool too_large = false;
};

int on_field(http_parser* p, const char* at, std::size_t n) {
  auto* a = static_cast<upstream_answer*>(p->data);
  if (a->in_value || a->headers.empty()) a->headers.emplace_back();
  a->in_value = false;
  a->headers.back().first.append(at, n);
  return 0;
}
int on_value(http_parser* p, const char* at, std::size_t n) {
  auto* a = static_cast<upstream_answer*>(p->data);
  if (a->headers.empty()) return 0;
  a->in_value = true;
  a->headers.back().second.append(at, n);
  return 0;
}
int on_body(http_parser* p, const char* at, std::size_t n) {
  auto* a = static_cast<upstream_answer*>(p->data);
  if (a->body.size() + n > a->limit) {
    a->too_large = true;
    return 1;
  }
  a->body.append(at, n);
  return 0;
}
int on_complete(http_parser* p) {
  static_cast<upstream_answer*>(p->data)->complete = true;
  return 0;
}

const http_parser_settings& answer_settings() {
  static const http_parser_settings s = [] {
    http_parser_settings s{};
    s.on_header_field = &on_field;
    s.on_header_value = &on_value;
    s.on_body = &on_body;
    s.on_message_complete = &on_complete;
    return s;
  }();
  return s;
}

task<void> exchange(request& req, const upstream& up, upstream_answer& ans) {
  std::string head;
  head.append(req.method());
  head += ' ';
  head.append(req.target());
  head += " HTTP/1.1\r\n";
  bool has_host = false;
  std::string forwarded_for;
  for (std::size_t i = 0; i < req.header_count(); ++i) {
    header_field h = req.header_at(i);
    if (hop_by_hop(h.name)) continue;
    if (iequals(h.name, "host")) has_host = true;
    if (iequals(h.name, "x-forwarded-for")) {
      forwarded_for.append(h.value);
      continue;
    }
    head.append(h.name);
    head += ": ";
    head.append(h.value);
    head += "\r\n";
  }
  if (!has_host) head += "Host: " + up.host + "\r\n";
  try {
    std::string ip(req.peer().ip());
    forwarded_for = forwarded_for.empty() ? ip : forwarded_for + ", " + ip;
  } catch (const std::system_error&) {
  }
  if (!forwarded_for.empty()) head += "X-Forwarded-For: " + forwarded_for + "\r\n";
  std::string body;
  co_await req.body().read_all(body);
  if (!body.empty() || req.content_length() || req.chunked()) head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  head += "Connection: close\r\n\r\n";

  tcp_stream s = co_await tcp_stream::connect(up.host, up.port);
  co_await s.write_all(std::as_bytes(std::span(head.data(), head.size())));
  if (!body.empty()) co_await s.write_all(std::as_bytes(std::span(body.data(), body.size())));

  http_parser p;
  http_parser_init(&p, HTTP_RESPONSE);
  p.data = &ans;
  ans.limit = up.max_response_bytes;
  std::vector<char> buf(16 * 1024);
  for (;;) {
    std::size_t n = co_await s.read(std::as_writable_bytes(std::span(buf.data(), buf.size())));
    std::size_t used = http_parser_execute(&p, &answer_settings(), buf.data(), n);  // n == 0: EOF
    if (ans.complete) break;
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK || used != n) {
      throw error(502, ans.too_large ? "ringflow::http::forward: the upstream's answer is too large"
                                     : "ringflow::http::forward: the upstream's answer does not parse");
    }
    if (n == 0) throw error(502, "ringflow::http::forward: the upstream closed before its answer was complete");
  }
  ans.status = p.status_code;
}

std::string retry_after(std::chrono::nanoseconds left) {
  double s = std::ceil(std::chrono::duration<double>(left).count());
  if (!(s >= 1)) s = 1;
  if (s > 86'400) s = 86'400;
  return std::to_string(static_cast<std::uint64_t>(s));
}

}  // namespace

task<void> forward(request& req, response& res, const upstream& up) {
  upstream_answer ans;
  bool in_time = co_await timeout(detail::saturated(up.timeout), exchange(req, up, ans));
  if (!in_time) throw error(504, "ringflow::http::forward: the upstream did not answer within its timeout");
  res.set_status(ans.status >= 100 && ans.status <= 999 ? ans.status : 502);
  for (const auto& [name, value] : ans.headers) {
    if (hop_by_hop(name) || iequals(name, "date")) continue;
    try {
      res.set_header(name, value);
    } catch (const std::invalid_argument&) {
      // a header we would not send ourselves: dropped
    }
  }
  res.set_body(ans.body);
}

handler proxy_route(upstream up, circuit_breaker& breaker) {
  if (up.host.empty() || up.port == 0) throw std::invalid_argument("ringflow::http::proxy_route: no upstream host or port");
  return [up = std::move(up), &breaker](request& req, response& res) -> task<void> {
    int failed = 0;
    try {
      co_await breaker.call(forward(req, res, up));
    } catch (const circuit_open& open) {
      res.set_status(503);
      res.set_header("Retry-After", retry_after(open.remaining_cool_down()));
      res.set_header("Content-Type", "text/plain");
      res.set_body("upstream unavailable\n");
      co_return;
    } catch (const error& e) {
      // The client's own request body failing (413, 400, 408) is answered as such.
      if (e.status() != 502 && e.status() != 504) throw;
      failed = e.status();
    } catch (const std::system_error&) {
      failed = 502;
    }
    if (failed != 0) {
      res.set_status(failed);
      res.set_header("Content-Type", "text/plain");
      res.set_body(failed == 504 ? "upstream timed out\n" : "upstream failed\n");
    }
  };
}

}  // namespace ringflow::http
