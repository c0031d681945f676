// Server-sent events (text/event-stream): a response fed from a broadcast,
// one receiver per client, each with a buffer and an overflow policy of its
// own, so a client that stops reading costs at most its buffer and never
// slows the others.
//
//   ringflow::broadcast<ringflow::http::sse_event> ticks(64);
//   ringflow::http::server srv("127.0.0.1", 8080,
//       [&](ringflow::http::request& req, ringflow::http::response& res) -> ringflow::task<> {
//         if (req.target() == "/events") {
//           ringflow::http::sse_stats st = co_await ringflow::http::serve_sse(res, ticks, {.buffer = 16});
//           // the client went away, the broadcast closed, or the server stops
//         }
//       });
//   co_await ticks.send({.data = "42", .event = "tick"});   // to every client, as its policy says
//
// serve_sse(res, source, opts):
// - Answers 200 with "Content-Type: text/event-stream" and "Cache-Control:
//   no-cache" (plus "X-Accel-Buffering: no" for proxies), and sends the
//   headers with a first comment line at once, so the client's EventSource
//   opens without waiting for an event. The response is chunked on HTTP/1.1
//   (the connection may go on after the stream ends), delimited by the close
//   on HTTP/1.0.
// - The receiver is subscribed when serve_sse is called (not when it is
//   first awaited): with opts.buffer and opts.policy. drop_oldest (the
//   default) keeps the newest opts.buffer events for a client that falls
//   behind; sample keeps the latest state (its freshest event survives);
//   drop_incoming keeps the oldest; block is lossless but holds the
//   broadcast's send back while this client's buffer is full (at most
//   write_timeout per write: then the stream ends and the receiver goes).
// - The events buffered when the stream gets to write go out in one write
//   (one system call for a burst), at most opts.buffer of them. While a write waits for a slow client
//   (its TCP window closed), the receiver's buffer absorbs what is sent
//   meanwhile per its policy: memory per client is bounded by opts.buffer
//   events plus the socket buffers, whatever the client does (bound those
//   with opts.send_buffer_bytes).
// - A comment line ": ping" goes out after each opts.keepalive without an
//   event, so proxies and clients see the stream alive.
// - Returns its stats when
//     the client disconnects: noticed while idle too (a poll for the peer's
//       hang-up runs beside the wait for events), or when a write fails or
//       takes longer than write_timeout; the connection then closes;
//     the broadcast is closed: after every event buffered for this client
//       was sent; the response ends and a keep-alive connection goes on;
//     the server shuts down (its graceful stop).
//   It throws what the response's write throws only for misuse
//   (std::logic_error: the response already had its headers sent or a body
//   set); socket errors end the stream and are not thrown.
// - Lag: stats.lagged is receiver.lagged(), the events this client lost to
//   its policy. Whenever it has grown, opts.on_lag is called with the stats
//   (at most once per second, and once more at the end); without on_lag a
//   line goes to stderr.
// - Event framing: "event: " and "id: " lines when those are not empty
//   (each cut at its first CR or LF, so a field can never inject another),
//   then one "data: " line per line of data (split at CRLF, LF or CR), then
//   a blank line. An event whose data is empty is sent, but browsers do not
//   dispatch an event with empty data (the EventSource rules).
//
// Bad arguments: opts.buffer 0 or above broadcast's max_capacity, or a policy
// outside the enum, throw std::invalid_argument from serve_sse itself.
// serve_sse is a plain function that moves opts into state it owns before it
// returns the task, so a braced temporary is safe inside a co_await.
//
// Cancel safety: cancelling the task (a timeout around it, the server's
// shutdown grace running out) unsubscribes the receiver (its buffered events
// are dropped) and withdraws the hang-up poll. Cancelled while it waited for
// events, the response is whole so far: the server ends it (the last chunk)
// when the handler returns and the connection may go on; cancelled during a
// write, the connection closes, as after any cancelled write.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include <ringflow/broadcast.hpp>
#include <ringflow/http.hpp>
#include <ringflow/overflow.hpp>
#include <ringflow/task.hpp>

namespace ringflow::http {

// One event. Empty event/id: the field is omitted; multi-line data: one
// "data:" line per line.
struct sse_event {
  std::string data;
  std::string event = {};
  std::string id = {};
};

// What a stream did: events written to the client, and events its receiver
// lost to its policy (receiver::lagged()).
struct sse_stats {
  std::uint64_t sent = 0;
  std::uint64_t lagged = 0;
};

struct sse_options {
  // This client's receiver: its buffer (events) and its overflow policy.
  std::size_t buffer = 64;
  overflow policy = overflow::drop_oldest;
  // A ": ping" comment after this long without an event (milliseconds::max():
  // never).
  std::chrono::milliseconds keepalive{15'000};
  // SO_SNDBUF for this connection while it streams, bounding the kernel's
  // memory for a client that stops reading as the receiver bounds ours (the
  // kernel doubles it; values above INT_MAX are capped). 0: the kernel's
  // auto-tuned buffer (up to net.ipv4.tcp_wmem's maximum).
  std::size_t send_buffer_bytes = 0;
  // Called on the stream's task when lagged has grown (at most once a
  // second, and at the end); must not block. Empty: a line to stderr.
  std::function<void(const sse_stats&)> on_lag = {};
};

// Streams source's events to the client until it disconnects, the broadcast
// closes (after draining) or the server stops; see the top of this header.
task<sse_stats> serve_sse(response& res, broadcast<sse_event>& source, sse_options opts = {});

// The bytes of one event as serve_sse frames it, appended to out.
void append_sse_event(std::string& out, const sse_event& ev);

}  // namespace ringflow::http
