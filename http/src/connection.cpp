#include "connection.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <stdexcept>
#include <system_error>

#include <sys/socket.h>

#include <ringflow/stop.hpp>
#include <ringflow/timeout.hpp>

namespace ringflow::http {

namespace {

using detail::clock;
using detail::iequals;
using detail::deadline_after;
using detail::saturated;

std::string_view reason(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

void append_decimal(std::string& out, std::uint64_t v) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out += digits[--n];
}

void append_hex(std::string& out, std::uint64_t v) {
  static constexpr char hex[] = "0123456789abcdef";
  char digits[16];
  int n = 0;
  do {
    digits[n++] = hex[v & 15];
    v >>= 4;
  } while (v != 0);
  while (n > 0) out += digits[--n];
}

// "Sun, 06 Nov 1994 08:49:37 GMT", formatted once per second per thread.
std::string_view http_date() noexcept {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  thread_local std::time_t cached = -1;
  thread_local char text[40];
  thread_local int len = 0;
  std::time_t now = std::time(nullptr);
  if (now != cached) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    len = std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
                        months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (len < 0 || len >= static_cast<int>(sizeof text)) len = 0;
    cached = now;
  }
  return {text, static_cast<std::size_t>(len)};
}

std::span<const std::byte> bytes(std::string_view s) noexcept { return std::as_bytes(std::span(s.data(), s.size())); }

bool has_control(std::string_view s) noexcept {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

}  // namespace

namespace detail {

connection::connection(server_state& srv, tcp_stream& s, std::stop_token shutdown)
    : srv_(srv),
      s_(s),
      shutdown_(std::move(shutdown)),
      req_({srv.opts.max_header_bytes, srv.opts.max_body_bytes}),
      in_(srv.opts.read_buffer_bytes) {
  // Grows to the largest response head at most once and keeps its capacity.
  out_.reserve(1024);
}

void connection::begin_request() {
  req_.begin();
  continue_sent_ = false;
  body_error_ = 0;
  status_ = 200;
  res_headers_.clear();
  res_body_.clear();
  // out_ keeps what earlier (pipelined) responses left to send.
  body_set_ = headers_sent_ = finished_ = close_after_ = writing_ = false;
  framing_ = framing::none;
  declared_length_.reset();
  written_ = 0;
}

task<std::optional<std::size_t>> connection::read_some(clock::time_point deadline) {
  std::span<std::byte> buf(reinterpret_cast<std::byte*>(in_.data()) + fill_, in_.size() - fill_);
  auto race = read_deadline_.wait(s_.read(buf), deadline);
  std::optional<std::size_t> r = co_await race;
  co_return r;
}

task<void> connection::serve() {
  const server_options& o = srv_.opts;
  bool first = true;
  for (;;) {
    begin_request();
    // A new connection's header deadline runs from accept; a kept-alive
    // one waits idle_timeout for a first byte, then header_timeout.
    clock::time_point deadline = deadline_after(o.header_timeout);
    bool timing = first;
    first = false;
    int failed = 0;
    while (!req_.headers_done()) {
      if (parse_ < fill_) {
        if (!timing) {
          timing = true;
          deadline = deadline_after(o.header_timeout);
        }
        failed = req_.parse_head(in_.data(), parse_, fill_);
        if (failed != 0) break;
        continue;
      }
      // Responses held back for pipelined requests go out before we wait.
      if (!out_.empty() && !send_now()) co_await send_rest();
      parse_ = fill_ = 0;
      bool nothing_yet = req_.head_bytes() == 0;
      if (nothing_yet && shutdown_.stop_requested()) co_return;
      clock::time_point read_by = timing ? deadline : deadline_after(o.idle_timeout);
      std::optional<std::size_t> r;
      std::span<std::byte> buf(reinterpret_cast<std::byte*>(in_.data()), in_.size());
      // The race lives in this frame: no frame of its own, no timer per read.
      if (nothing_yet) {
        auto race = read_deadline_.wait(with_stop(shutdown_, s_.read(buf)), read_by);
        std::optional<std::optional<std::size_t>> w = co_await race;
        if (w && *w) r = **w;
      } else {
        auto race = read_deadline_.wait(s_.read(buf), read_by);
        r = co_await race;
      }
      if (!r) {
        if (nothing_yet) co_return;  // idle (or shutting down): close quietly
        failed = 408;
        break;
      }
      if (*r == 0) co_return;  // the client closed
      fill_ = *r;
      if (!timing) {
        timing = true;
        deadline = deadline_after(o.header_timeout);
      }
    }
    if (failed != 0) {
      co_await fail(failed);
      co_return;
    }

    srv_.requests.fetch_add(1, std::memory_order_relaxed);
    bool threw = false;
    int thrown_status = 500;
    {
      request req(this);
      response res(this);
      try {
        co_await srv_.on_request(req, res);
      } catch (const error& e) {
        threw = true;
        if (e.status() >= 400 && e.status() <= 599) thrown_status = e.status();
      } catch (...) {
        threw = true;
      }
    }
    if (threw || writing_) {
      if (!headers_sent_) {
        co_await fail(body_error_ != 0 ? body_error_ : thrown_status);
      }
      co_return;
    }
    if (!headers_sent_ && !finished_) {
      // The common case, a buffered response, without a frame: built into
      // out_ and written by a plain non-blocking send when the socket takes
      // it. Held back while the next pipelined request is already buffered,
      // so that its response goes out in the same send.
      finish_buffered();
      constexpr std::size_t hold_below = 16 * 1024;
      bool hold = parse_ < fill_ && req_.message_done() && !close_after_ && body_error_ == 0 && out_.size() < hold_below;
      if (!hold && !send_now()) co_await send_rest();
    } else {
      co_await res_finish();
    }
    if (close_after_ || body_error_ != 0) co_return;
    if (!req_.message_done()) {
      bool drained = co_await discard_body();
      if (!drained) co_return;
    }
  }
}

task<bool> connection::discard_body() {
  try {
    for (;;) {
      body_begin_ = body_end_;
      if (req_.message_done()) co_return true;
      std::byte scratch[1];
      std::size_t n = co_await body_read(scratch);
      if (n == 0) co_return true;
    }
  } catch (const error&) {
  }
  co_return false;
}

bool connection::body_allowed() const noexcept {
  return !(status_ < 200 || status_ == 204 || status_ == 304);
}

void connection::build_head(std::optional<std::uint64_t> length) {
  if (!req_.keep_alive() || shutdown_.stop_requested() || body_error_ != 0 ||
      (req_.expect_continue() && !continue_sent_ && !req_.message_done())) {
    close_after_ = true;
  }
  const bool http10 = req_.version_major() == 1 && req_.version_minor() == 0;
  out_ += http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  append_decimal(out_, static_cast<std::uint64_t>(status_));
  out_ += ' ';
  out_ += reason(status_);
  out_ += "\r\n";
  out_ += "Date: ";
  out_ += http_date();
  out_ += "\r\n";
  out_ += res_headers_;
  if (body_allowed()) {
    if (length) {
      framing_ = framing::length;
      out_ += "Content-Length: ";
      append_decimal(out_, *length);
      out_ += "\r\n";
    } else if (req_.version_major() == 1 && req_.version_minor() >= 1) {
      framing_ = framing::chunked;
      out_ += "Transfer-Encoding: chunked\r\n";
    } else {
      framing_ = framing::until_close;
      close_after_ = true;
    }
  }
  if (close_after_) {
    out_ += "Connection: close\r\n";
  } else if (req_.version_minor() == 0) {
    out_ += "Connection: keep-alive\r\n";
  }
  out_ += "\r\n";
  headers_sent_ = true;
}

bool connection::send_now() {
  const std::size_t n = out_.size();
  while (out_sent_ < n) {
    ssize_t r = ::send(s_.native_handle(), out_.data() + out_sent_, n - out_sent_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0) {
      out_sent_ += static_cast<std::size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      writing_ = true;  // a prefix is out: cut here, the stream is unusable
      return false;
    }
    writing_ = true;
    throw std::system_error(r < 0 ? errno : EPIPE, std::system_category(), "ringflow::http: send");
  }
  out_.clear();
  out_sent_ = 0;
  return true;
}

task<void> connection::send_rest() {
  bool in_time = co_await send(bytes(std::string_view(out_).substr(out_sent_)));
  sent(in_time);
  out_.clear();
  out_sent_ = 0;
}

task<bool> connection::send(std::span<const std::byte> data) {
  writing_ = true;
  return timeout(saturated(srv_.opts.write_timeout), s_.write_all(data));
}

void connection::sent(bool in_time) {
  if (!in_time) {
    throw std::system_error(ETIMEDOUT, std::generic_category(), "ringflow::http: the client took no bytes within write_timeout");
  }
  writing_ = false;
}

task<void> connection::fail(int status) {
  status_ = status;
  res_headers_.clear();
  close_after_ = true;
  build_head(0);
  try {
    if (!send_now()) co_await send_rest();
    s_.shutdown_write();
    // Linger: what the client still sends is read and dropped for a moment,
    // so our close does not reset the connection under the answer.
    clock::time_point linger_end =
        deadline_after(std::min<std::chrono::milliseconds>(srv_.opts.header_timeout, std::chrono::seconds(1)));
    std::uint64_t dropped = 0;
    while (dropped < 16 * in_.size()) {
      parse_ = fill_ = 0;
      std::optional<std::size_t> r = co_await read_some(linger_end);
      if (!r || *r == 0) break;
      dropped += *r;
    }
  } catch (const std::system_error&) {
  }
}

task<std::size_t> connection::body_read(std::span<std::byte> buf) {
  if (buf.empty()) co_return 0;
  if (body_error_ != 0) throw error(body_error_, "ringflow::http: the request body failed earlier");
  for (;;) {
    if (body_begin_ < body_end_) {
      std::size_t n = std::min(buf.size(), body_end_ - body_begin_);
      std::memcpy(buf.data(), in_.data() + body_begin_, n);
      body_begin_ += n;
      co_return n;
    }
    if (req_.message_done()) co_return 0;
    if (parse_ < fill_) {
      body_begin_ = body_end_ = parse_;
      int status = req_.parse_body(in_.data(), parse_, fill_, body_end_);
      if (status != 0) {
        body_error_ = status;
        throw error(body_error_, body_error_ == 413 ? "ringflow::http: request body too large"
                                                    : "ringflow::http: malformed request body");
      }
      continue;
    }
    if (!out_.empty() && !send_now()) co_await send_rest();
    if (req_.expect_continue() && !continue_sent_ && !headers_sent_) {
      continue_sent_ = true;
      bool in_time = co_await send(bytes("HTTP/1.1 100 Continue\r\n\r\n"));
      sent(in_time);
    }
    parse_ = fill_ = body_begin_ = body_end_ = 0;
    std::optional<std::size_t> r = co_await read_some(deadline_after(srv_.opts.idle_timeout));
    if (!r) {
      body_error_ = 408;
      throw error(408, "ringflow::http: no request body bytes within idle_timeout");
    }
    if (*r == 0) {
      body_error_ = 400;
      throw error(400, "ringflow::http: request body cut short");
    }
    fill_ = *r;
  }
}

task<void> connection::body_read_all(std::string& out) {
  for (;;) {
    std::size_t at = out.size();
    out.resize(at + in_.size());
    std::size_t n = co_await body_read(std::as_writable_bytes(std::span(out.data() + at, in_.size())));
    out.resize(at + n);
    if (n == 0) break;
  }
}

task<void> connection::res_write(std::span<const std::byte> data) {
  if (finished_) throw std::logic_error("ringflow::http::response::write after finish()");
  if (body_set_) throw std::logic_error("ringflow::http::response::write after set_body()");
  if (declared_length_ && data.size() > *declared_length_ - written_) {
    throw std::logic_error("ringflow::http::response::write beyond set_content_length()");
  }
  if (!headers_sent_) build_head(declared_length_);
  written_ += data.size();
  bool send_body = body_allowed() && req_.method() != HTTP_HEAD && !data.empty();
  if (!send_body) {
    if (!out_.empty()) {
      bool in_time = co_await send(bytes(out_));
      sent(in_time);
      out_.clear();
    }
    co_return;
  }
  if (framing_ == framing::chunked) {
    append_hex(out_, data.size());
    out_ += "\r\n";
  }
  constexpr std::size_t copy_below = 4096;
  if (data.size() <= copy_below) {
    out_.append(reinterpret_cast<const char*>(data.data()), data.size());
    if (framing_ == framing::chunked) out_ += "\r\n";
    if (!send_now()) co_await send_rest();
    co_return;
  }
  if (!out_.empty()) {
    bool in_time = co_await send(bytes(out_));
    sent(in_time);
    out_.clear();
  }
  bool in_time = co_await send(data);
  sent(in_time);
  if (framing_ == framing::chunked) {
    in_time = co_await send(bytes("\r\n"));
    sent(in_time);
  }
}

void connection::finish_buffered() {
  finished_ = true;
  std::uint64_t length = body_set_ ? res_body_.size() : declared_length_.value_or(0);
  if (!body_set_ && length != 0) close_after_ = true;  // a length with no bytes behind it
  build_head(length);
  if (body_allowed() && req_.method() != HTTP_HEAD) out_ += res_body_;
}

task<void> connection::res_finish() {
  if (finished_) co_return;
  finished_ = true;
  if (!headers_sent_) {
    finish_buffered();
    if (!send_now()) co_await send_rest();
    co_return;
  }
  if (framing_ == framing::chunked) {
    if (body_allowed() && req_.method() != HTTP_HEAD) {
      out_ += "0\r\n\r\n";
      bool in_time = co_await send(bytes(out_));
      sent(in_time);
      out_.clear();
    }
  } else if (framing_ == framing::length && written_ < declared_length_.value_or(0)) {
    close_after_ = true;  // the client waits for bytes that will not come
  }
}

}  // namespace detail

// ---- body_reader, request, response -----------------------------------------

task<std::size_t> body_reader::read(std::span<std::byte> buf) { return c_->body_read(buf); }
task<void> body_reader::read_all(std::string& out) { return c_->body_read_all(out); }
bool body_reader::finished() const noexcept { return c_->req_.message_done() && c_->body_begin_ == c_->body_end_; }

std::string_view request::method() const noexcept { return c_->req_.method_name(); }
std::string_view request::target() const noexcept { return c_->req_.target(); }
int request::version_major() const noexcept { return c_->req_.version_major(); }
int request::version_minor() const noexcept { return c_->req_.version_minor(); }
std::optional<std::string_view> request::header(std::string_view name) const noexcept { return c_->req_.header(name); }
std::size_t request::header_count() const noexcept { return c_->req_.header_count(); }
header_field request::header_at(std::size_t i) const {
  if (i >= c_->req_.header_count()) throw std::out_of_range("ringflow::http::request::header_at");
  return {c_->req_.header_name(i), c_->req_.header_value(i)};
}
std::optional<std::uint64_t> request::content_length() const noexcept { return c_->req_.content_length(); }
bool request::chunked() const noexcept { return c_->req_.chunked(); }
bool request::keep_alive() const noexcept { return c_->req_.keep_alive(); }

void response::set_status(int code) {
  if (code < 100 || code > 999) throw std::invalid_argument("ringflow::http::response::set_status: not a status code");
  if (c_->headers_sent_) throw std::logic_error("ringflow::http::response::set_status after the headers were sent");
  c_->status_ = code;
}
int response::status() const noexcept { return c_->status_; }

void response::set_header(std::string_view name, std::string_view value) {
  if (c_->headers_sent_) throw std::logic_error("ringflow::http::response::set_header after the headers were sent");
  if (name.empty() || has_control(name) || has_control(value) || name.find(':') != std::string_view::npos) {
    throw std::invalid_argument("ringflow::http::response::set_header: bad name or value");
  }
  if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) {
    throw std::invalid_argument("ringflow::http::response::set_header: the server frames the body (set_content_length)");
  }
  if (iequals(name, "connection")) {
    if (iequals(value, "close")) c_->close_after_ = true;
    return;  // the server writes its own Connection header
  }
  auto& h = c_->res_headers_;
  h.append(name);
  h += ": ";
  h.append(value);
  h += "\r\n";
}

void response::set_content_length(std::uint64_t n) {
  if (c_->headers_sent_) throw std::logic_error("ringflow::http::response::set_content_length after the headers were sent");
  c_->declared_length_ = n;
}

void response::set_body(std::string_view body) {
  if (c_->headers_sent_) throw std::logic_error("ringflow::http::response::set_body after the headers were sent");
  c_->res_body_.assign(body);
  c_->body_set_ = true;
}

task<void> response::write(std::span<const std::byte> data) { return c_->res_write(data); }
task<void> response::write(std::string_view data) { return c_->res_write(bytes(data)); }
task<void> response::finish() { return c_->res_finish(); }
bool response::headers_sent() const noexcept { return c_->headers_sent_; }

}  // namespace ringflow::http
