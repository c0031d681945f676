// The request-parsing step of a connection, without the socket: libhttp-parser
// driven over a caller's buffer, with the server's limits and the status each
// failure is answered with. The connection reads the socket into its buffer
// and calls these; tests/fuzz drives the same code with fuzzed bytes.
// Private to http/src.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringflow::http::detail {

class request_parser {
 public:
  struct limits {
    std::size_t max_header_bytes;   // request line and headers; beyond: 431
    std::uint64_t max_body_bytes;   // decoded body; beyond: 413
  };
  explicit request_parser(limits l);
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;

  // Forgets the previous request (its headers and body state); the parser
  // itself goes on where it stopped (pipelined bytes stay valid).
  void begin();

  // Parses request line and headers from buf[pos, end); pos advances over
  // what was taken. Returns 0 while all is well (headers_done() says whether
  // the head is complete; if not, the caller reads more once pos == end),
  // else the status to answer before closing: 400 malformed, 431 head too
  // large, 413 a Content-Length over the limit, 501 upgrade or CONNECT.
  // When the request has no body, the message is complete on return.
  int parse_head(char* buf, std::size_t& pos, std::size_t end);

  // Decodes body bytes from buf[pos, end) in place: they are moved down to
  // buf[body_end, ...) (never above where they were) and body_end advances;
  // stops at the end of the message (message_done()). Returns 0, or 400
  // (malformed framing) or 413 (more than max_body_bytes).
  int parse_body(char* buf, std::size_t& pos, std::size_t end, std::size_t& body_end);

  // The request, once headers_done() (views into the parser's storage,
  // valid until begin()).
  bool headers_done() const noexcept { return headers_done_; }
  bool message_done() const noexcept { return message_done_; }
  int method() const noexcept { return method_; }
  std::string_view method_name() const noexcept { return http_method_str(static_cast<http_method>(method_)); }
  std::string_view target() const noexcept { return stored(0, url_len_); }
  int version_major() const noexcept { return major_; }
  int version_minor() const noexcept { return minor_; }
  bool keep_alive() const noexcept { return keep_alive_; }
  bool chunked() const noexcept { return chunked_; }
  std::optional<std::uint64_t> content_length() const noexcept { return content_length_; }
  bool expect_continue() const noexcept { return expect_continue_; }
  std::size_t header_count() const noexcept { return headers_.size(); }
  std::string_view header_name(std::size_t i) const noexcept { return stored(headers_[i].name_off, headers_[i].name_len); }
  std::string_view header_value(std::size_t i) const noexcept { return stored(headers_[i].value_off, headers_[i].value_len); }
  // The first header of that name (case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  // Bytes of the head parsed so far, and decoded body bytes so far.
  std::size_t head_bytes() const noexcept { return header_bytes_; }
  std::uint64_t body_bytes() const noexcept { return body_bytes_; }
  const limits& limit() const noexcept { return limits_; }

 private:
  struct header_span {
    std::uint32_t name_off, name_len, value_off, value_len;
  };
  std::string_view stored(std::uint32_t off, std::uint32_t len) const noexcept { return {store_.data() + off, len}; }
  // Runs the parser over buf[pos, end); the parser's errno (HPE_OK or
  // HPE_PAUSED when fine).
  http_errno execute(char* buf, std::size_t& pos, std::size_t end);
  int status_for(http_errno e) const noexcept;
  bool over_header_limit(std::size_t more) noexcept;

  static int on_url(http_parser* p, const char* at, std::size_t len);
  static int on_header_field(http_parser* p, const char* at, std::size_t len);
  static int on_header_value(http_parser* p, const char* at, std::size_t len);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, std::size_t len);
  static int on_message_complete(http_parser* p);
  static const http_parser_settings settings_;

  limits limits_;
  http_parser parser_{};
  // Where on_body moves decoded bytes during an execute.
  char* buf_ = nullptr;
  std::size_t body_end_ = 0;

  // The request line's target and the header names and values.
  std::string store_;
  std::vector<header_span> headers_;
  std::uint32_t url_len_ = 0;
  bool last_was_field_ = false;
  bool headers_done_ = false;
  bool message_done_ = false;
  enum class limit_hit { none, header, body } limit_hit_ = limit_hit::none;
  std::size_t header_bytes_ = 0;
  std::uint64_t body_bytes_ = 0;
  int method_ = 0, major_ = 1, minor_ = 1;
  bool keep_alive_ = false, chunked_ = false;
  std::optional<std::uint64_t> content_length_;
  bool expect_continue_ = false;
};

// ASCII case-insensitive equality (header names, tokens).
bool iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace ringflow::http::detail
