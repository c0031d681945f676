// ringflow::http: an HTTP/1.1 server on ringflow's tcp_stream, parsing with
// libhttp-parser (built with -Dhttp; RINGFLOW_HAS_HTTP in <ringflow/features.hpp>).
//
//   ringflow::http::server srv("127.0.0.1", 8080,
//       [](ringflow::http::request& req, ringflow::http::response& res) -> ringflow::task<> {
//         if (req.target() == "/upload") {
//           std::byte buf[16 * 1024];
//           std::uint64_t total = 0;
//           for (;;) {
//             std::size_t n = co_await req.body().read(buf);  // the socket is read at our pace
//             if (n == 0) break;
//             total += n;
//           }
//           res.set_body(std::to_string(total));
//         } else {
//           res.set_header("Content-Type", "text/plain");
//           co_await res.write("hello, ");          // chunked: no length was set
//           co_await res.write("world\n");
//         }
//       });
//   std::stop_source stop;                        // e.g. requested on SIGTERM
//   co_await srv.run(stop.get_token());           // returns after a graceful shutdown
//
// Connections: keep-alive (HTTP/1.1 by default, HTTP/1.0 with
// "Connection: keep-alive") and pipelining: the requests of one connection are
// handled one after the other, so the responses go out in request order.
// The handler is called once per request, on the connection's task; handlers
// of different connections run concurrently on the runtime's workers (the
// handler object is shared by all of them and must tolerate that).
//
// Backpressure, both ways: the request body is not buffered. The server
// reads the socket only when the handler asks for body bytes it does not
// have yet (req.body().read), at most read_buffer_bytes at a time, so a
// handler that consumes slowly leaves the bytes in the kernel and the TCP
// window closes on the uploader. A response is written by tcp_stream's
// write_all: res.write() suspends while the client's window is closed.
//
// Limits, each answered with its status and "Connection: close", after which
// the server stops reading and closes the connection (options below):
//   431  the request line and headers exceed max_header_bytes
//   413  the body exceeds max_body_bytes (at once from Content-Length; for a
//        chunked body when the handler's reads reach the limit)
//   400  malformed request (the parser's verdict), or a body cut short
//   408  the headers did not arrive within header_timeout (slowloris)
//   501  CONNECT and protocol upgrades (not supported)
//   500  the handler threw before anything of its response was sent
// A keep-alive connection with no request for idle_timeout is closed without
// a response (so is a new connection that sent nothing within header_timeout).
//
// Allocation: each connection owns its read buffer, header storage and
// output buffer, made once and reused by every request on it; a socket
// read that has to wait costs two coroutine frames (the read and its stop
// watch), and its deadline is kept by one io_uring timer per connection that
// stays armed across reads (no timer set and cancelled per read). A response goes out by a plain
// non-blocking send when the socket takes it (no frame, no timer; the
// write_timeout timer only when a send has to wait), and responses to
// pipelined requests that are already buffered leave together in one send.
//
// Cancel safety: cancelling run() (its frame destroyed) closes the listener
// and cancels every connection at its current suspension; a handler is
// destroyed where it waits like any cancelled task. Errors in one
// connection (a reset peer, a parse error) close that connection only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>

#include <ringflow/task.hpp>

namespace ringflow::http {

namespace detail {
class connection;
struct server_state;
struct access;  // the http layer's own sources reach a request's connection through it
}  // namespace detail

struct server_options {
  // Request line plus headers, in bytes; beyond: 431.
  std::size_t max_header_bytes = 16 * 1024;
  // Request body, in bytes (decoded, for chunked); beyond: 413.
  std::uint64_t max_body_bytes = 8 * 1024 * 1024;
  // From the first byte of a request (or from accept) until its headers are
  // complete; past it: 408 (or a silent close if nothing arrived).
  std::chrono::milliseconds header_timeout{10'000};
  // How long a keep-alive connection may wait for its next request, and how
  // long one read of a request body may wait for bytes.
  std::chrono::milliseconds idle_timeout{60'000};
  // How long one write (a res.write, the buffered response) may wait for the
  // client to take its bytes; past it the write throws std::system_error
  // (ETIMEDOUT) and the connection closes, so a client that stops reading
  // holds its slot no longer than this.
  std::chrono::milliseconds write_timeout{60'000};
  // Connections served at once; more wait in the listen backlog (the server
  // calls accept only while a slot is free).
  std::size_t max_connections = 10'000;
  // On stop: how long in-flight requests may go on before they are cancelled.
  std::chrono::milliseconds shutdown_grace{5'000};
  // Per connection: the socket read buffer, the most the server reads ahead
  // of the handler.
  std::size_t read_buffer_bytes = 16 * 1024;
  int backlog = 1024;
};

// Thrown by body reads for a body the server will not take: status() is the
// status the connection answers with (413, 400, 408) if no response was sent.
// A handler may throw one too: nothing sent yet, its status (400..599, else
// 500) is the answer; either way the connection closes after it.
class error : public std::runtime_error {
 public:
  error(int status, const char* what) : std::runtime_error(what), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

// The request body, streamed. Valid during the handler call.
class body_reader {
 public:
  // Up to buf.size() body bytes (decoded, for chunked); 0 at the end of the
  // body (or for an empty buf). Suspends reading the socket when no bytes
  // are buffered. Throws http::error (too large, cut short, no bytes for
  // idle_timeout), std::system_error for socket errors.
  // Cancel safety: cancelling it (e.g. by timeout) loses no body byte: the
  // next read goes on where it stopped, and what the handler leaves unread
  // is skipped before the next request.
  task<std::size_t> read(std::span<std::byte> buf);
  // Appends the rest of the body to out (at most max_body_bytes in all).
  task<void> read_all(std::string& out);
  // True once the whole body was read.
  bool finished() const noexcept;

 private:
  friend class detail::connection;
  friend class request;
  explicit body_reader(detail::connection* c) noexcept : c_(c) {}
  detail::connection* c_;
};

struct header_field {
  std::string_view name;
  std::string_view value;
};

// The client's end of a connection: its IP address as text and its port.
// An IPv4 client of a listener on "::" shows as IPv4 ("10.0.0.7", not
// "::ffff:10.0.0.7"), so one client has one address however the server
// listens.
struct peer_address {
  std::string_view ip() const noexcept { return {text_, len_}; }
  std::uint16_t port() const noexcept { return port_; }
  // "10.0.0.7:51234" or "[::1]:51234".
  std::string to_string() const;

 private:
  friend class request;
  char text_[46] = {};  // INET6_ADDRSTRLEN
  std::size_t len_ = 0;
  std::uint16_t port_ = 0;
};

// One request: its line and headers (views into the connection's storage,
// valid during the handler call) and its body.
class request {
 public:
  std::string_view method() const noexcept;  // "GET", "POST", ...
  std::string_view target() const noexcept;  // as sent: "/path?query"
  int version_major() const noexcept;
  int version_minor() const noexcept;
  // The first header of that name (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  std::size_t header_count() const noexcept;
  // i < header_count(), else std::out_of_range.
  header_field header_at(std::size_t i) const;
  // The Content-Length, if the request has one.
  std::optional<std::uint64_t> content_length() const noexcept;
  bool chunked() const noexcept;
  // Whether the client asked to keep the connection open.
  bool keep_alive() const noexcept;
  body_reader& body() noexcept { return body_; }
  // Who sent it (getpeername on the connection, a system call per call):
  // std::system_error when the socket has no peer any more.
  peer_address peer() const;

 private:
  friend class detail::connection;
  friend struct detail::access;
  explicit request(detail::connection* c) noexcept : c_(c), body_(c) {}
  detail::connection* c_;
  body_reader body_;
};

// The response. Either buffered (set_body, sent after the handler returns,
// with Content-Length) or streamed (write: the headers go out with the
// first write, then chunked encoding, or exactly the set_content_length
// bytes). Status and headers are fixed once anything was sent.
class response {
 public:
  // 100..999, else std::invalid_argument; std::logic_error once sent. Default 200.
  void set_status(int code);
  int status() const noexcept;
  // Adds a header line. Content-Length and Transfer-Encoding are the
  // server's (std::invalid_argument: use set_content_length); CR, LF or NUL
  // in a name or value: std::invalid_argument; once sent: std::logic_error.
  // "Connection: close" makes the server close after this response.
  void set_header(std::string_view name, std::string_view value);
  // Fixes the body length for write(): writes must add up to n (more:
  // std::logic_error; fewer when the handler returns: the connection closes).
  void set_content_length(std::uint64_t n);
  // The whole body, copied; sent when the handler returns. Not with write().
  void set_body(std::string_view body);
  // Streams body bytes (headers first, on the first call); suspends while the
  // client's TCP window is closed. Throws std::system_error when the client
  // is gone, or ETIMEDOUT when it took none of them within write_timeout. Cancel safety: as tcp_stream::write_all, the connection is
  // closed after a cancelled write.
  task<void> write(std::span<const std::byte> data);
  task<void> write(std::string_view data);
  // Ends a streamed body (the last chunk); the server calls it after the
  // handler returns when the handler did not.
  task<void> finish();
  // True once the status line and headers were sent.
  bool headers_sent() const noexcept;

 private:
  friend class detail::connection;
  friend struct detail::access;
  explicit response(detail::connection* c) noexcept : c_(c) {}
  detail::connection* c_;
};

// The handler: called once per request; the response is complete when the
// task returns. If it threw: nothing sent yet, the answer is 500 (or the
// http::error's status), then the connection closes; else it just closes.
using handler = std::function<task<void>(request&, response&)>;

class server {
 public:
  // Binds (and listens) now: std::system_error (EADDRINUSE, ...) or
  // std::invalid_argument as tcp_listener::bind, and for an empty handler or
  // zero limits (max_connections, read_buffer_bytes, max_header_bytes).
  server(std::string_view host, std::uint16_t port, handler h, server_options opts = {});
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server();

  std::uint16_t port() const noexcept;

  // Serves until stop is requested, then shuts down gracefully: stops
  // accepting (the listener closes: new connections are refused), closes
  // idle keep-alive connections, lets in-flight requests finish (their
  // responses carry "Connection: close") for up to shutdown_grace, then
  // cancels what is left; returns when every connection is gone. Throws
  // std::system_error if accepting failed for good (the connections are
  // shut down the same way first). Call it once; the server must outlive it.
  task<void> run(std::stop_token stop);

  // Connections open now, and requests whose handler was called, in all.
  std::size_t connections() const noexcept;
  std::uint64_t requests() const noexcept;

 private:
  // Shared with the connection tasks, whose frames may end on their
  // workers just after run() saw them finish.
  std::shared_ptr<detail::server_state> s_;
};

}  // namespace ringflow::http
