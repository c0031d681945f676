// serve_sse: a response fed from a broadcast receiver, with a poll for the
// client's hang-up beside the wait for events.
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <ringflow/detail/io_op.hpp>
#include <ringflow/http_sse.hpp>
#include <ringflow/join_handle.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/stop.hpp>
#include <ringflow/timeout.hpp>

#include "access.hpp"
#include "connection.hpp"

namespace ringflow::http {

namespace {

using receiver = broadcast<sse_event>::receiver;

// A field value up to its first line break.
std::string_view one_line(std::string_view v) noexcept {
  std::size_t end = v.find_first_of("\r\n");
  return end == std::string_view::npos ? v : v.substr(0, end);
}

void log_to_stderr(const sse_stats& st) {
  std::fprintf(stderr, "ringflow::http: an SSE client lags: %llu events dropped by its policy, %llu sent\n",
               static_cast<unsigned long long>(st.lagged), static_cast<unsigned long long>(st.sent));
}

// Everything the stream owns, made before the task is returned (so the
// caller's arguments may be temporaries of a co_await expression).
struct sse_stream {
  sse_stream(response& r, receiver rx, sse_options o) : res(r), events(std::move(rx)), opts(std::move(o)) {}
  response& res;
  receiver events;
  sse_options opts;
  std::string out;  // what the next write sends; keeps its capacity
};

// Resumes (and requests `gone`) when the peer hangs up: POLLRDHUP once it
// shut its sending side, POLLHUP/POLLERR (reported unasked) on a reset.
// It reads nothing, so the connection's byte stream is untouched.
task<void> watch_hangup(int fd, std::stop_source gone) {
  ringflow::detail::poll_op hangup(fd, POLLRDHUP);
  std::int32_t res = co_await hangup;
  (void)res;  // any completion (an error included) means the socket is done
  gone.request_stop();
}

task<std::optional<sse_event>> next_event(receiver& rx) {
  std::optional<sse_event> ev = co_await rx.recv();
  co_return ev;
}

// Cancels the watcher however the stream ends (its frame goes on its worker).
struct cancel_on_exit {
  join_handle<void>& h;
  ~cancel_on_exit() { h.cancel(); }
};

task<sse_stats> run_sse(std::unique_ptr<sse_stream> st) {
  response& res = st->res;
  receiver& rx = st->events;
  const sse_options& opts = st->opts;
  std::string& out = st->out;
  detail::connection& conn = detail::access::of(res);
  sse_stats stats;

  if (opts.send_buffer_bytes != 0) {
    int bytes = static_cast<int>(std::min<std::size_t>(opts.send_buffer_bytes, INT_MAX));
    // Best effort: a socket that refuses it is one that is going away.
    (void)::setsockopt(conn.s_.native_handle(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  }
  res.set_status(200);
  res.set_header("Content-Type", "text/event-stream");
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");

  // Requested when the client hangs up or the server shuts down.
  std::stop_source gone;
  std::stop_callback on_shutdown(conn.shutdown_, [&gone] { gone.request_stop(); });
  join_handle<void> watcher = spawn_local(watch_hangup(conn.s_.native_handle(), gone));
  cancel_on_exit cancel_watcher{watcher};

  const std::chrono::nanoseconds keepalive = detail::saturated(opts.keepalive);
  using clock = std::chrono::steady_clock;
  std::uint64_t lag_reported = 0;
  clock::time_point last_report = clock::now() - std::chrono::seconds(1);
  auto report_lag = [&](bool at_end) {
    stats.lagged = rx.lagged();
    if (stats.lagged == lag_reported) return;
    clock::time_point now = clock::now();
    if (!at_end && now - last_report < std::chrono::seconds(1)) return;
    lag_reported = stats.lagged;
    last_report = now;
    try {
      if (opts.on_lag) {
        opts.on_lag(stats);
      } else {
        log_to_stderr(stats);
      }
    } catch (...) {
      // A logger that throws does not end the stream.
    }
  };

  bool client_gone = false;
  out = ": connected\n\n";
  std::uint64_t batch = 0;
  for (;;) {
    // What is buffered goes out in one write, up to a buffer's worth (a
    // producer on another worker may refill it as fast as it drains).
    while (batch < opts.buffer) {
      std::optional<sse_event> ev = rx.try_recv();
      if (!ev) break;
      append_sse_event(out, *ev);
      ++batch;
    }
    if (!out.empty()) {
      try {
        co_await res.write(std::string_view(out));
      } catch (const std::system_error&) {
        client_gone = true;  // reset, broken pipe, or no progress within write_timeout
      }
      if (client_gone) break;
      stats.sent += batch;
      batch = 0;
      out.clear();
      report_lag(false);
      if (gone.stop_requested()) break;
      continue;
    }
    // Idle: an event, the keep-alive tick, the hang-up or the shutdown.
    std::optional<std::optional<std::optional<sse_event>>> woke =
        co_await timeout(keepalive, with_stop(gone.get_token(), next_event(rx)));
    if (!woke) {
      out = ": ping\n\n";
      continue;
    }
    if (!*woke) break;     // hang-up or shutdown
    if (!**woke) break;    // the broadcast closed and this client has everything
    append_sse_event(out, ***woke);
    ++batch;
  }
  report_lag(true);
  stats.lagged = rx.lagged();
  // Hung up (or a write failed): no further request on this connection.
  if (client_gone || (gone.stop_requested() && !conn.shutdown_.stop_requested())) conn.close_after_ = true;
  watcher.cancel();
  try {
    co_await std::move(watcher);
  } catch (...) {
    // task_cancelled, the normal case
  }
  co_return stats;
}

}  // namespace

void append_sse_event(std::string& out, const sse_event& ev) {
  if (!ev.event.empty()) {
    out += "event: ";
    out += one_line(ev.event);
    out += '\n';
  }
  if (!ev.id.empty()) {
    out += "id: ";
    out += one_line(ev.id);
    out += '\n';
  }
  std::string_view data = ev.data;
  for (;;) {
    std::size_t end = data.find_first_of("\r\n");
    out += "data: ";
    out += data.substr(0, end);
    out += '\n';
    if (end == std::string_view::npos) break;
    std::size_t next = end + 1;
    if (data[end] == '\r' && next < data.size() && data[next] == '\n') ++next;
    data.remove_prefix(next);
  }
  out += '\n';
}

task<sse_stats> serve_sse(response& res, broadcast<sse_event>& source, sse_options opts) {
  if (res.headers_sent() || detail::access::of(res).body_set_) {
    throw std::logic_error("ringflow::http::serve_sse: the response was already sent or given a body");
  }
  // subscribe checks buffer and policy (std::invalid_argument).
  auto st = std::make_unique<sse_stream>(res, source.subscribe(opts.buffer, opts.policy), std::move(opts));
  return run_sse(std::move(st));
}

}  // namespace ringflow::http
