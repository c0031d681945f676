// One HTTP/1.1 connection: the parser, the buffers it reuses for every
// request, and the response being written. Private to http/src.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include <ringflow/http.hpp>
#include <ringflow/semaphore.hpp>
#include <ringflow/tcp.hpp>

#include "read_deadline.hpp"
#include "request_parser.hpp"

namespace ringflow::http::detail {

using clock = std::chrono::steady_clock;

// Every duration is valid: milliseconds::max() means "never" and does not
// overflow the nanoseconds the timers take.
inline std::chrono::nanoseconds saturated(std::chrono::milliseconds d) noexcept {
  constexpr auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds::max());
  if (d >= limit) return std::chrono::nanoseconds::max();
  if (d <= -limit) return std::chrono::nanoseconds::min();
  return d;
}
inline clock::time_point deadline_after(std::chrono::milliseconds d) noexcept {
  clock::time_point now = clock::now();
  std::chrono::nanoseconds ns = saturated(d);
  if (ns > clock::time_point::max() - now) return clock::time_point::max();
  if (ns < std::chrono::nanoseconds::zero()) return now;
  return now + ns;
}
inline std::chrono::nanoseconds until(clock::time_point deadline) noexcept {
  if (deadline == clock::time_point::max()) return std::chrono::nanoseconds::max();
  return deadline - clock::now();
}

struct server_state {
  server_state(std::string_view host, std::uint16_t port, handler h, server_options o);

  server_options opts;
  handler on_request;
  tcp_listener listener;
  std::uint16_t bound_port = 0;
  // One unit per connection: the accept loop takes one before accept().
  semaphore slots;
  std::atomic<std::size_t> open{0};
  std::atomic<std::uint64_t> requests{0};
};

class connection {
 public:
  connection(server_state& srv, tcp_stream& s, std::stop_token shutdown);
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Serves requests until the connection is to close. Throws
  // std::system_error for socket errors (the caller closes).
  task<void> serve();

  // body_reader
  task<std::size_t> body_read(std::span<std::byte> buf);
  task<void> body_read_all(std::string& out);
  // response
  task<void> res_write(std::span<const std::byte> data);
  task<void> res_finish();

  server_state& srv_;
  tcp_stream& s_;
  std::stop_token shutdown_;

  // The request line, headers and body framing, parsed from in_.
  request_parser req_;
  // Socket bytes: [parse_, fill_) not parsed yet; decoded body bytes not yet
  // handed to the handler live in [body_begin_, body_end_), always before
  // parse_ (the parser moves body bytes down over the framing they came
  // with, so a chunked body is decoded in place).
  std::vector<char> in_;
  std::size_t parse_ = 0, fill_ = 0, body_begin_ = 0, body_end_ = 0;
  bool continue_sent_ = false;
  // The socket reads' deadlines, on one timer kept across reads.
  read_deadline read_deadline_;
  // Status a failed body read leaves for the connection (0: none).
  int body_error_ = 0;

  // The response.
  int status_ = 200;
  std::string res_headers_;  // "Name: value\r\n" lines
  std::string res_body_;
  std::string out_;          // what goes to the socket next (pipelined responses may wait here)
  std::size_t out_sent_ = 0;  // of out_, sent already
  bool body_set_ = false, headers_sent_ = false, finished_ = false;
  bool close_after_ = false;  // "Connection: close" / close after this response
  bool writing_ = false;      // a write was cut (cancelled or failed): close
  enum class framing { none, length, chunked, until_close } framing_ = framing::none;
  std::optional<std::uint64_t> declared_length_;
  std::uint64_t written_ = 0;

 private:
  void begin_request();
  // Reads into in_ after fill_: the byte count, 0 at end of stream, nullopt
  // when the deadline passed first.
  task<std::optional<std::size_t>> read_some(clock::time_point deadline);
  bool body_allowed() const noexcept;
  void build_head(std::optional<std::uint64_t> length);
  // Writes data within write_timeout (false: it did not), with writing_ set
  // meanwhile; sent() takes the verdict: writing_ cleared, or ETIMEDOUT thrown.
  task<bool> send(std::span<const std::byte> data);
  void sent(bool in_time);
  // out_ to the socket by a plain non-blocking send (no ring submission, no
  // timer): true when all of it went (out_ is then cleared); else what is
  // left goes by send_rest(), which waits within write_timeout.
  bool send_now();
  task<void> send_rest();
  // The response head and set_body bytes appended to out_ (finished).
  void finish_buffered();
  // Answers status with "Connection: close", half-closes, and reads what the
  // client still sends for a moment so that closing does not reset the
  // connection before the client read the answer.
  task<void> fail(int status);
  task<bool> discard_body();
};

}  // namespace ringflow::http::detail
