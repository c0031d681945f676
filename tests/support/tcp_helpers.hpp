// Helpers shared by the TCP tests (tests/tcp/*_test.cpp): a byte pattern in
// which a lost, duplicated or reordered byte shows, blocking POSIX peers for
// the test thread, and the two sides of the "reads racing timeouts" test.
//
//   #include "../support/tcp_helpers.hpp"
//   using namespace test_support::tcp_tests;
//
//   auto l = tcp_listener::bind("127.0.0.1", 0);
//   auto acc = rt.spawn(accept_one(&l));
//   int fd = blocking_client(l.local_port());  // the test thread as the peer
//   tcp_stream s = acc.wait();
//   send_pattern(fd, 0, 4096);                 // read on a worker, then
//   REQUIRE(check_pattern(got, 0) == got.size());
//
// The blocking helpers REQUIRE: call them on the test's thread only.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include <ringflow/ringflow.hpp>

#include "loopback.hpp"

namespace test_support::tcp_tests {

using ringflow::task;
using ringflow::tcp_listener;
using ringflow::tcp_stream;

// ---- the byte pattern ---------------------------------------------------------

// A position-dependent byte: a lost, duplicated or reordered byte shows.
inline std::byte pattern_at(std::uint64_t i) {
  std::uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
  return static_cast<std::byte>(x >> 56);
}

// The pattern from stream offset `offset` on.
inline void fill_pattern(std::span<std::byte> out, std::uint64_t offset) {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern_at(offset + i);
}

// The first n bytes of the pattern.
inline std::vector<std::byte> pattern(std::size_t n) {
  std::vector<std::byte> v(n);
  fill_pattern(v, 0);
  return v;
}

// Index of the first byte that breaks the pattern, or in.size().
inline std::size_t check_pattern(std::span<const std::byte> in, std::uint64_t offset) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != pattern_at(offset + i)) return i;
  }
  return in.size();
}

// ---- connections ----------------------------------------------------------------

inline task<tcp_stream> accept_one(tcp_listener* l) {
  tcp_stream s = co_await l->accept();
  co_return std::move(s);
}

// Blocking POSIX peers: the test thread as a plain client.
inline int blocking_socket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  timeval tv{10, 0};  // a hang becomes a failure, not a stuck test
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

inline bool blocking_connect(int fd, std::uint16_t port) { return test_support::connect_loopback(fd, port); }

// A blocking socket connected to 127.0.0.1:port.
inline int blocking_client(std::uint16_t port) {
  int fd = blocking_socket();
  REQUIRE(blocking_connect(fd, port));
  return fd;
}

inline void send_all(int fd, std::span<const std::byte> data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    REQUIRE(n > 0);
    data = data.subspan(static_cast<std::size_t>(n));
  }
}

// Sends the n pattern bytes that start at stream offset `offset`.
inline void send_pattern(int fd, std::size_t offset, std::size_t n) {
  std::vector<std::byte> v(n);
  fill_pattern(v, offset);
  send_all(fd, v);
}

// ---- reads racing timeouts -------------------------------------------------------
// A writer sends the pattern at random moments while the reader gives every
// read a short random deadline: many reads are cancelled while data arrives,
// and not one byte may be lost, duplicated or reordered.

struct pacing {
  int chunks;             // writes
  std::size_t max_chunk;  // each write: 1..max_chunk bytes
  unsigned max_pause_us;  // then a pause of 0..max_pause_us-1 µs
};

// Accepts one connection, writes the pattern to it as `p` says, then
// half-closes. Returns the bytes sent.
inline task<std::size_t> paced_writer(tcp_listener* l, unsigned seed, pacing p) {
  tcp_stream s = co_await l->accept();
  s.set_nodelay(true);
  std::mt19937 rng(seed);
  std::size_t sent = 0;
  std::vector<std::byte> buf(p.max_chunk);
  for (int chunk = 0; chunk < p.chunks; ++chunk) {
    std::size_t n = 1 + rng() % buf.size();
    fill_pattern(std::span(buf).first(n), sent);
    co_await s.write_all(std::span(buf).first(n));
    sent += n;
    co_await ringflow::sleep_for(std::chrono::microseconds(rng() % p.max_pause_us));  // data at random moments
  }
  s.shutdown_write();
  co_return sent;
}

struct race_plan {
  int rounds;                   // reads that race a deadline
  std::size_t buf_size;         // bytes each read may take
  bool random_span;             // each read asks for 1..buf_size bytes instead of buf_size
  unsigned min_deadline_us;     // each deadline: min_deadline_us
  unsigned deadline_spread_us;  //   + 0..deadline_spread_us-1 µs
};

struct race_stats {
  std::size_t bytes = 0;
  int completed = 0;
  int timed_out = 0;
  bool intact = true;
};

// Reads c to its end: `plan.rounds` reads racing a deadline each, then the
// rest without deadlines, checking the pattern as it goes.
inline task<void> race_reads(tcp_stream* c, race_stats* st, unsigned seed, race_plan plan) {
  std::mt19937 rng(seed);
  std::vector<std::byte> buf(plan.buf_size);
  bool eof = false;
  auto account = [&](std::size_t n) {
    if (check_pattern(std::span(buf).first(n), st->bytes) != n) st->intact = false;
    st->bytes += n;
  };
  for (int i = 0; i < plan.rounds && !eof; ++i) {
    auto d = std::chrono::microseconds(plan.min_deadline_us + rng() % plan.deadline_spread_us);
    std::size_t span = plan.random_span ? 1 + rng() % buf.size() : buf.size();
    std::optional<std::size_t> n = co_await ringflow::timeout(d, c->read(std::span(buf).first(span)));
    if (!n) {
      ++st->timed_out;
      continue;
    }
    ++st->completed;
    if (*n == 0) eof = true;
    account(*n);
  }
  while (!eof) {  // the rest, without deadlines
    std::size_t n = co_await c->read(buf);
    if (n == 0) break;
    account(n);
  }
}

// The race's verdict, on the test's thread once both sides are done.
inline void require_race_lost_nothing(const race_stats& st, std::size_t sent) {
  INFO("completed " << st.completed << ", timed out " << st.timed_out);
  REQUIRE(st.timed_out > 0);  // the race did happen
  REQUIRE(st.completed > 0);
  REQUIRE(st.intact);
  REQUIRE(st.bytes == sent);
}

}  // namespace test_support::tcp_tests
