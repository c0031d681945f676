#include "request_parser.hpp"

#include <algorithm>
#include <cstring>

namespace ringflow::http::detail {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    // Equal but for case only when both are letters and differ by 0x20.
    if ((x ^ y) != 0x20) return false;
    unsigned char lower = static_cast<unsigned char>(x | 0x20);
    if (lower < 'a' || lower > 'z') return false;
  }
  return true;
}

const http_parser_settings request_parser::settings_ = [] {
  http_parser_settings s{};
  s.on_url = &request_parser::on_url;
  s.on_header_field = &request_parser::on_header_field;
  s.on_header_value = &request_parser::on_header_value;
  s.on_headers_complete = &request_parser::on_headers_complete;
  s.on_body = &request_parser::on_body;
  s.on_message_complete = &request_parser::on_message_complete;
  return s;
}();

request_parser::request_parser(limits l) : limits_(l) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  // Both grow up to their limit at most once and keep their capacity.
  store_.reserve(std::min<std::size_t>(l.max_header_bytes, 4096));
  headers_.reserve(32);
}

void request_parser::begin() {
  store_.clear();
  headers_.clear();
  url_len_ = 0;
  last_was_field_ = false;
  headers_done_ = message_done_ = false;
  limit_hit_ = limit_hit::none;
  header_bytes_ = 0;
  body_bytes_ = 0;
  keep_alive_ = chunked_ = false;
  content_length_.reset();
  expect_continue_ = false;
}

std::optional<std::string_view> request_parser::header(std::string_view name) const noexcept {
  for (const auto& h : headers_) {
    if (h.name_len == name.size() && iequals(stored(h.name_off, h.name_len), name)) {
      return stored(h.value_off, h.value_len);
    }
  }
  return std::nullopt;
}

http_errno request_parser::execute(char* buf, std::size_t& pos, std::size_t end) {
  if (HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED) http_parser_pause(&parser_, 0);
  bool in_head = !headers_done_;
  std::size_t len = end - pos;
  buf_ = buf;
  std::size_t n = http_parser_execute(&parser_, &settings_, buf + pos, len);
  buf_ = nullptr;
  if (in_head) header_bytes_ += n;
  pos += n;
  auto e = static_cast<http_errno>(parser_.http_errno);
  // Stopping early without an error: an upgrade or CONNECT (refused by
  // parse_head).
  if (e == HPE_OK && n < len && !parser_.upgrade) e = HPE_UNKNOWN;
  return e;
}

int request_parser::status_for(http_errno e) const noexcept {
  if (limit_hit_ == limit_hit::header || e == HPE_HEADER_OVERFLOW) return 431;
  if (limit_hit_ == limit_hit::body) return 413;
  return 400;
}

int request_parser::parse_head(char* buf, std::size_t& pos, std::size_t end) {
  while (!headers_done_ && pos < end) {
    http_errno e = execute(buf, pos, end);
    if (e != HPE_OK && e != HPE_PAUSED) return status_for(e);
    if (!headers_done_ && parser_.upgrade) return 501;
    // Counted over every byte of the head (whitespace included), also when
    // the head completed in this call: the limit is the limit.
    if (header_bytes_ > limits_.max_header_bytes) return 431;
  }
  if (!headers_done_) return 0;
  if (parser_.upgrade || method_ == HTTP_CONNECT) return 501;
  if (content_length_ && *content_length_ > limits_.max_body_bytes) return 413;
  if (!chunked_ && content_length_.value_or(0) == 0) {
    // No body: the parser ends the message on the byte it paused at, so
    // the request is complete before the handler runs.
    body_end_ = pos;
    http_errno e = execute(buf, pos, end);
    if (e != HPE_OK && e != HPE_PAUSED) return status_for(e);
  }
  return 0;
}

int request_parser::parse_body(char* buf, std::size_t& pos, std::size_t end, std::size_t& body_end) {
  body_end_ = body_end;
  http_errno e = execute(buf, pos, end);
  body_end = body_end_;
  if (e != HPE_OK && e != HPE_PAUSED) return status_for(e);
  return 0;
}

bool request_parser::over_header_limit(std::size_t more) noexcept {
  if (store_.size() + more > limits_.max_header_bytes) {
    limit_hit_ = limit_hit::header;
    return true;
  }
  return false;
}

int request_parser::on_url(http_parser* p, const char* at, std::size_t len) {
  auto* c = static_cast<request_parser*>(p->data);
  if (c->over_header_limit(len)) return 1;
  c->store_.append(at, len);
  c->url_len_ += static_cast<std::uint32_t>(len);
  return 0;
}

int request_parser::on_header_field(http_parser* p, const char* at, std::size_t len) {
  auto* c = static_cast<request_parser*>(p->data);
  if (c->headers_done_) return 0;  // a chunked body's trailer: ignored
  if (c->over_header_limit(len)) return 1;
  if (!c->last_was_field_) {
    auto off = static_cast<std::uint32_t>(c->store_.size());
    c->headers_.push_back({off, 0, off, 0});
    c->last_was_field_ = true;
  }
  c->store_.append(at, len);
  c->headers_.back().name_len += static_cast<std::uint32_t>(len);
  return 0;
}

int request_parser::on_header_value(http_parser* p, const char* at, std::size_t len) {
  auto* c = static_cast<request_parser*>(p->data);
  if (c->headers_done_ || c->headers_.empty()) return 0;
  if (c->over_header_limit(len)) return 1;
  if (c->last_was_field_) {
    c->headers_.back().value_off = static_cast<std::uint32_t>(c->store_.size());
    c->last_was_field_ = false;
  }
  c->store_.append(at, len);
  c->headers_.back().value_len += static_cast<std::uint32_t>(len);
  return 0;
}

int request_parser::on_headers_complete(http_parser* p) {
  auto* c = static_cast<request_parser*>(p->data);
  c->headers_done_ = true;
  c->method_ = p->method;
  c->major_ = p->http_major;
  c->minor_ = p->http_minor;
  c->keep_alive_ = http_should_keep_alive(p) != 0;
  c->chunked_ = (p->flags & F_CHUNKED) != 0;
  if (!c->chunked_ && (p->flags & F_CONTENTLENGTH)) c->content_length_ = p->content_length;
  for (const auto& h : c->headers_) {
    if (h.name_len == 6 && iequals(c->stored(h.name_off, h.name_len), "expect") &&
        iequals(c->stored(h.value_off, h.value_len), "100-continue")) {
      c->expect_continue_ = true;
    }
  }
  // The handler runs before any body byte is parsed.
  http_parser_pause(p, 1);
  return 0;
}

int request_parser::on_body(http_parser* p, const char* at, std::size_t len) {
  auto* c = static_cast<request_parser*>(p->data);
  c->body_bytes_ += len;
  if (c->body_bytes_ > c->limits_.max_body_bytes) {
    c->limit_hit_ = limit_hit::body;
    return 1;
  }
  char* to = c->buf_ + c->body_end_;
  if (to != at) std::memmove(to, at, len);
  c->body_end_ += len;
  return 0;
}

int request_parser::on_message_complete(http_parser* p) {
  auto* c = static_cast<request_parser*>(p->data);
  c->message_done_ = true;
  // What follows belongs to the next (pipelined) request.
  http_parser_pause(p, 1);
  return 0;
}

}  // namespace ringflow::http::detail
