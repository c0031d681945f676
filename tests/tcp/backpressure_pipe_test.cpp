// Backpressure across the wire: a TCP server reads a connection into a bounded
// channel that a slow consumer drains. While the consumer is slow the channel
// fills, the reader stops reading, the kernel's receive buffer fills, the
// window closes and the client's write_all suspends; the server's memory
// stays bounded whatever the client pushes (examples/backpressure_pipe.cpp
// shows the same pipe live).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <vector>

#include <ringflow/ringflow.hpp>

#include "../support/tcp_helpers.hpp"
#include "../support/sanitizers.hpp"

using namespace std::chrono_literals;
using namespace test_support::tcp_tests;

namespace {

using sclock = std::chrono::steady_clock;
using buffer = std::vector<std::byte>;
using chunk_channel = ringflow::channel<buffer>;

constexpr std::size_t kMiB = 1024 * 1024;
// The whole run: ~0.5 s plain, ~2 s under ASan, ~3 s under TSan (2 cores).
#if RINGFLOW_TEST_TSAN
constexpr std::size_t total_bytes = 64 * kMiB;
#elif RINGFLOW_TEST_ASAN
constexpr std::size_t total_bytes = 128 * kMiB;
#else
constexpr std::size_t total_bytes = 256 * kMiB;
#endif
constexpr std::size_t capacity = 8;
constexpr std::size_t chunk = 64 * 1024;
constexpr std::size_t pool_size = capacity + 2;  // one in the reader, one in the consumer
constexpr std::size_t write_block = 1 * kMiB;
// The slow phase: one chunk per 4 ms (16 MB/s, far below what loopback
// takes), until the monitor has seen the backpressure reach the client (or,
// failing that, for at most slow_cap: the test then fails on it).
constexpr auto slow_chunk_cost = 4ms;
constexpr auto slow_cap = 5s;
// A write_all pending this long while the channel is full counts as suspended
// by the closed window (a 1 MiB write_all takes well under 1 ms otherwise).
constexpr auto suspended_for = 20ms;

// The byte at stream offset i: a lost, duplicated or reordered byte shows.
inline std::byte pattern_byte(std::uint64_t i) {
  return static_cast<std::byte>((static_cast<std::uint32_t>(i) * 2654435761u) >> 24);
}

long rss_bytes() {
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  long size = 0, resident = 0;
  if (std::sscanf(buf, "%ld %ld", &size, &resident) != 2) return -1;
  return resident * ::sysconf(_SC_PAGESIZE);
}

long socket_queue(int fd, unsigned long request) {
  int v = 0;
  if (::ioctl(fd, request, &v) != 0) return -1;
  return v;
}

struct pipe_state {
  chunk_channel ch{capacity};
  chunk_channel pool{pool_size};
  int server_fd = -1;
  int client_fd = -1;
  sclock::time_point start;
  long rss_baseline = 0;

  std::atomic<std::uint64_t> written{0};
  std::atomic<sclock::rep> write_since{0};  // start of the pending write_all, 0 when none
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> release{false};  // the monitor saw the backpressure: consume fast
  std::atomic<bool> done{false};

  // Results, read after block_on (Catch2 is not thread-safe: no REQUIRE in tasks).
  bool in_order = true;
  std::uint64_t first_bad = 0;
  std::size_t max_depth = 0;
  std::size_t slow_chunks = 0;
  long rss_peak = 0;
  std::size_t samples = 0;
  bool backpressure = false;  // channel full and the client's write_all suspended, at one sample
  long bp_unsent = 0;         // SIOCOUTQ of the client at that sample
  long bp_unread = 0;         // SIOCINQ of the server at that sample
  double bp_blocked_ms = 0;
  double bp_at_s = 0;
};

task<void> writer(pipe_state* st, tcp_stream* s) {
  buffer blk(write_block);
  std::uint64_t offset = 0;
  while (offset < total_bytes) {
    for (std::size_t j = 0; j < blk.size(); ++j) blk[j] = pattern_byte(offset + j);
    st->write_since.store(sclock::now().time_since_epoch().count());
    co_await s->write_all(blk);
    st->write_since.store(0);
    offset += blk.size();
    st->written.store(offset);
  }
  s->shutdown_write();
}

task<void> reader(pipe_state* st, tcp_stream* s) {
  for (;;) {
    std::optional<buffer> b = co_await st->pool.recv();
    if (!b) break;
    buffer buf = std::move(*b);
    buf.resize(chunk);
    std::size_t filled = 0;
    bool eof = false;
    while (filled < buf.size()) {
      std::span<std::byte> rest = std::span(buf).subspan(filled);
      std::size_t n = co_await s->read(rest);
      if (n == 0) {
        eof = true;
        break;
      }
      filled += n;
    }
    buf.resize(filled);
    if (filled > 0) {
      ringflow::send_status sent = co_await st->ch.send(std::move(buf));
      if (sent != ringflow::send_status::sent) break;
    }
    if (eof) break;
  }
  st->ch.close();
}

task<void> consumer(pipe_state* st) {
  std::uint64_t offset = 0;
  auto slow_until = sclock::now() + slow_cap;
  for (;;) {
    std::optional<buffer> b = co_await st->ch.recv();
    if (!b) break;
    if (st->in_order) {
      const buffer& v = *b;
      for (std::size_t j = 0; j < v.size(); ++j) {
        if (v[j] != pattern_byte(offset + j)) {
          st->in_order = false;
          st->first_bad = offset + j;
          break;
        }
      }
    }
    offset += b->size();
    st->received.store(offset);
    if (!st->release.load() && sclock::now() < slow_until) {
      ++st->slow_chunks;
      co_await ringflow::sleep_for(slow_chunk_cost);  // the simulated cost of a chunk
    }
    (void)st->pool.try_send(std::move(*b));
  }
}

// Samples RSS, the channel and both sockets every 2 ms until done.
task<void> monitor(pipe_state* st) {
  while (!st->done.load()) {
    long rss = rss_bytes();
    if (rss > st->rss_peak) st->rss_peak = rss;
    std::size_t depth = st->ch.size();
    if (depth > st->max_depth) st->max_depth = depth;
    ++st->samples;
    if (!st->backpressure) {
      auto now = sclock::now();
      sclock::rep since = st->write_since.load();
      auto pending = since == 0 ? sclock::duration::zero() : now.time_since_epoch() - sclock::duration(since);
      long unsent = socket_queue(st->client_fd, SIOCOUTQ);
      if (depth == capacity && since != 0 && pending >= suspended_for && unsent > 0) {
        st->backpressure = true;
        st->bp_unsent = unsent;
        st->bp_unread = socket_queue(st->server_fd, SIOCINQ);
        st->bp_blocked_ms = std::chrono::duration<double, std::milli>(pending).count();
        st->bp_at_s = std::chrono::duration<double>(now - st->start).count();
        st->release.store(true);  // seen: let the consumer run at full speed
      }
    }
    co_await ringflow::sleep_for(2ms);
  }
}

task<void> run_pipe(pipe_state* st) {
  tcp_listener l = tcp_listener::bind("127.0.0.1", 0);
  auto acc = ringflow::spawn(accept_one(&l));
  tcp_stream client = co_await tcp_stream::connect("127.0.0.1", l.local_port());
  tcp_stream server = co_await std::move(acc);
  st->client_fd = client.native_handle();
  st->server_fd = server.native_handle();

  // The baseline comes before the pool and the writer's block are allocated:
  // they count against the bound.
  st->rss_baseline = rss_bytes();
  st->rss_peak = st->rss_baseline;
  for (std::size_t i = 0; i < pool_size; ++i) (void)st->pool.try_send(buffer(chunk));
  st->start = sclock::now();

  // The streams live in this frame until every task using them is joined.
  auto mon = ringflow::spawn(monitor(st));
  auto cons = ringflow::spawn(consumer(st));
  auto rd = ringflow::spawn(reader(st, &server));
  auto wr = ringflow::spawn(writer(st, &client));
  co_await std::move(wr);
  co_await std::move(rd);
  co_await std::move(cons);
  st->done.store(true);
  co_await std::move(mon);
}

}  // namespace

TEST_CASE("backpressure pipe: a slow consumer closes the TCP window; memory stays bounded", "[tcp][backpressure]") {
  pipe_state st;
  auto t0 = sclock::now();
  {
    ringflow::runtime rt({.threads = 2});
    rt.block_on(run_pipe(&st));
  }
  double secs = std::chrono::duration<double>(sclock::now() - t0).count();
  long growth = st.rss_peak - st.rss_baseline;
  const long bound = static_cast<long>(capacity * chunk + 32 * kMiB);
  INFO("pushed " << total_bytes / kMiB << " MiB in " << secs << " s; " << st.samples << " samples; "
                 << st.slow_chunks << " slow chunks");
  INFO("rss baseline " << st.rss_baseline / 1024 << " KiB, peak growth " << growth / 1024 << " KiB, bound "
                       << bound / 1024 << " KiB");
  INFO("backpressure seen at " << st.bp_at_s << " s: client unsent " << st.bp_unsent << " B, server unread "
                               << st.bp_unread << " B, write_all pending " << st.bp_blocked_ms << " ms");

  // Every byte arrived, once, in order.
  CHECK(st.written.load() == total_bytes);
  CHECK(st.received.load() == total_bytes);
  CHECK(st.in_order);
  INFO("first bad byte at " << st.first_bad);
  CHECK(st.first_bad == 0);

  // The channel never held more than its capacity, and was full at some point.
  CHECK(st.max_depth == capacity);
  // Backpressure reached the client: channel full while its write_all was suspended.
  CHECK(st.backpressure);
  CHECK(st.bp_unsent > 0);

  // Memory: bounded by the channel (plus kernel/allocator slack), not by what was pushed.
  REQUIRE(st.rss_baseline > 0);
  CHECK(growth < bound);
  CHECK(growth < static_cast<long>(total_bytes / 4));
  WARN("backpressure pipe: " << total_bytes / kMiB << " MiB in " << secs << " s, rss growth " << growth / 1024
                             << " KiB, backpressure at " << st.bp_at_s << " s (client unsent " << st.bp_unsent
                             << " B, server unread " << st.bp_unread << " B, write_all pending " << st.bp_blocked_ms
                             << " ms)");
}
