// A raw-socket HTTP client for the http suites: blocking POSIX sockets on the
// test thread, responses parsed with libhttp-parser in response mode, and a
// reader for text/event-stream bodies that decodes them as they arrive.
#pragma once

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <ringflow/ringflow.hpp>

namespace raw {

struct reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool chunked = false;
  bool complete = false;  // the message ended (else: headers seen, body going on)
  std::string header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One response being parsed; body bytes are appended to r.body as they come.
class response_parser {
 public:
  response_parser() { reset(); }
  void reset() {
    http_parser_init(&p_, HTTP_RESPONSE);
    p_.data = this;
    r_ = reply{};
    field_.clear();
    value_.clear();
    in_value_ = headers_done_ = false;
  }
  // Parses what it can of buf (consumed bytes erased); false on a parse error.
  bool feed(std::string& buf) {
    if (r_.complete || buf.empty()) return true;
    std::size_t n = http_parser_execute(&p_, &settings(), buf.data(), buf.size());
    buf.erase(0, n);
    if (HTTP_PARSER_ERRNO(&p_) != HPE_OK && HTTP_PARSER_ERRNO(&p_) != HPE_PAUSED) return false;
    return true;
  }
  void eof() {
    if (!r_.complete) http_parser_execute(&p_, &settings(), nullptr, 0);
  }
  bool headers_done() const { return headers_done_; }
  reply& get() { return r_; }

 private:
  static const http_parser_settings& settings() {
    static const http_parser_settings s = [] {
      http_parser_settings s{};
      s.on_header_field = [](http_parser* p, const char* at, std::size_t n) {
        auto* c = static_cast<response_parser*>(p->data);
        if (c->in_value_) c->flush();
        c->field_.append(at, n);
        return 0;
      };
      s.on_header_value = [](http_parser* p, const char* at, std::size_t n) {
        auto* c = static_cast<response_parser*>(p->data);
        c->in_value_ = true;
        c->value_.append(at, n);
        return 0;
      };
      s.on_headers_complete = [](http_parser* p) {
        auto* c = static_cast<response_parser*>(p->data);
        c->flush();
        c->headers_done_ = true;
        c->r_.status = p->status_code;
        c->r_.chunked = (p->flags & F_CHUNKED) != 0;
        return 0;
      };
      s.on_body = [](http_parser* p, const char* at, std::size_t n) {
        static_cast<response_parser*>(p->data)->r_.body.append(at, n);
        return 0;
      };
      s.on_message_complete = [](http_parser* p) {
        static_cast<response_parser*>(p->data)->r_.complete = true;
        http_parser_pause(p, 1);
        return 0;
      };
      return s;
    }();
    return s;
  }
  void flush() {
    if (!field_.empty()) {
      for (auto& ch : field_) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      r_.headers[field_] = value_;
    }
    field_.clear();
    value_.clear();
    in_value_ = false;
  }
  http_parser p_{};
  reply r_;
  std::string field_, value_;
  bool in_value_ = false, headers_done_ = false;
};

// One server-sent event as the client decodes it; comment lines are counted.
struct event {
  std::string type;  // "message" when the event had no event: field
  std::string id;
  std::string data;
};

class client {
 public:
  // rcvbuf > 0: SO_RCVBUF before connecting (a small window). from: the
  // local address to connect from (any 127.x.y.z works on loopback).
  explicit client(std::uint16_t port, int rcvbuf = 0, const char* from = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    // A safety net against a hung test, not a timing assertion.
    timeval tv{60, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (from) {
      sockaddr_in l{};
      l.sin_family = AF_INET;
      ::inet_pton(AF_INET, from, &l.sin_addr);
      REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&l), sizeof l) == 0);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~client() { close(); }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  // false when the server is gone.
  bool send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next whole response; nullopt when the connection ended first.
  std::optional<reply> read_reply() {
    response_parser p;
    for (;;) {
      if (!p.feed(buf_)) return std::nullopt;
      if (p.get().complete) return p.get();
      if (!fill()) {
        p.eof();
        if (p.get().complete) return p.get();
        return std::nullopt;
      }
    }
  }

  // Starts reading a streamed response: its status and headers (the body
  // is read by next_event). nullopt when the connection ended first.
  std::optional<reply> read_head() {
    stream_.reset();
    sse_text_.clear();
    for (;;) {
      if (!stream_.feed(buf_)) return std::nullopt;
      if (stream_.headers_done()) return stream_.get();
      if (!fill()) return std::nullopt;
    }
  }

  // The next event of the stream read_head started; nullopt when the
  // response (or the connection) ended first. Comments are counted.
  std::optional<event> next_event() {
    for (;;) {
      if (auto ev = take_event()) return ev;
      if (stream_.get().complete) return std::nullopt;
      if (!buf_.empty()) {
        if (!stream_.feed(buf_)) return std::nullopt;
        move_body();
        continue;
      }
      if (!fill()) {
        stream_.eof();
        move_body();
        if (auto ev = take_event()) return ev;
        return std::nullopt;
      }
    }
  }
  // Whether the streamed response ended (after next_event returned nullopt).
  bool stream_complete() { return stream_.get().complete; }
  std::size_t comments() const { return comments_; }

  // True when the server closed (EOF or reset) rather than the safety net firing.
  bool wait_closed() {
    char tmp[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  // Whether a byte arrives within d (used only where none may come).
  bool readable_within(std::chrono::milliseconds d) {
    if (!buf_.empty()) return true;
    pollfd pf{fd_, POLLIN, 0};
    return ::poll(&pf, 1, static_cast<int>(d.count())) > 0;
  }

 private:
  bool fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
  void move_body() {
    sse_text_ += stream_.get().body;
    stream_.get().body.clear();
  }
  // Decodes complete lines of sse_text_ until an event is dispatched.
  std::optional<event> take_event() {
    for (;;) {
      std::size_t nl = sse_text_.find('\n', scan_);
      if (nl == std::string::npos) {
        sse_text_.erase(0, scan_);
        scan_ = 0;
        return std::nullopt;
      }
      std::string_view line(sse_text_.data() + scan_, nl - scan_);
      scan_ = nl + 1;
      if (line.empty()) {
        if (!have_) continue;
        event ev = std::move(pending_);
        pending_ = {};
        have_ = false;
        data_lines_ = 0;
        if (ev.type.empty()) ev.type = "message";
        return ev;
      }
      if (line[0] == ':') {
        ++comments_;
        continue;
      }
      std::size_t colon = line.find(':');
      std::string_view name = line.substr(0, colon);
      std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
      have_ = true;
      if (name == "data") {
        if (data_lines_++ > 0) pending_.data += '\n';
        pending_.data += value;
      } else if (name == "event") {
        pending_.type = value;
      } else if (name == "id") {
        pending_.id = value;
      }
    }
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
  response_parser stream_;
  std::string sse_text_;
  std::size_t scan_ = 0;
  event pending_;
  bool have_ = false;
  std::size_t data_lines_ = 0;
  std::size_t comments_ = 0;
};

// "/<n>". Appended, not "/" + std::to_string(n): g++ 12 at -O3 warns
// (-Wrestrict, falsely) on a literal plus a temporary string.
inline std::string target(std::size_t n) {
  std::string t = "/";
  t += std::to_string(n);
  return t;
}

inline std::string get(std::string_view target, std::string_view extra = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

inline ringflow::http::server_options small_options() {
  using namespace std::chrono_literals;
  ringflow::http::server_options o;
  o.header_timeout = 5s;
  o.idle_timeout = 5s;
  o.shutdown_grace = 5s;
  o.write_timeout = 5s;
  o.max_header_bytes = 8 * 1024;
  o.max_body_bytes = 1024 * 1024;
  return o;
}

// A server on an ephemeral port, run on a runtime of its own.
struct harness {
  ringflow::runtime rt;
  ringflow::http::server srv;
  std::stop_source stop;
  ringflow::join_handle<void> running;

  explicit harness(ringflow::http::handler h, ringflow::http::server_options o = small_options())
      : rt({.threads = 2}), srv("127.0.0.1", 0, std::move(h), o), running(rt.spawn(srv.run(stop.get_token()))) {}
  ~harness() { shut_down(); }
  void shut_down() {
    if (!running.valid()) return;
    stop.request_stop();
    running.wait();
    running = {};
  }
  std::uint16_t port() const { return srv.port(); }
};

template <class F>
void wait_until(F f) {
  while (!f()) std::this_thread::yield();
}

// Raises RLIMIT_NOFILE to want if the hard limit allows; returns the soft limit.
inline rlim_t raise_fd_limit(rlim_t want) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < want && lim.rlim_max >= want) {
    lim.rlim_cur = want;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  ::getrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_cur;
}

// This process's resident set, in bytes (from /proc/self/statm).
inline std::size_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long pages = 0, resident = 0;
  int got = std::fscanf(f, "%lu %lu", &pages, &resident);
  std::fclose(f);
  if (got != 2) return 0;
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace raw
