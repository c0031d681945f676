// tcp_stream::read through a multishot receive and the worker's provided
// buffer ring (runtime/include/ringflow/detail/buffer_ring.hpp), and the
// single-shot fallback forced with RINGFLOW_NO_MULTISHOT_RECV: ordering,
// reads in pieces, cancellation, destruction with the receive armed, the
// per-stream cap that keeps backpressure working, end of stream and resets,
// ring exhaustion, and reads that move between workers.
#include <catch2/catch.hpp>

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <ringflow/detail/buffer_ring.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/ringflow.hpp>

#include "../support/tcp_helpers.hpp"
#include "../support/sanitizers.hpp"

using namespace std::chrono_literals;
using namespace test_support::tcp_tests;
namespace detail = ringflow::detail;
using detail::buffer_ring;

// Counts the allocations made by each thread: the steady-state read path
// must not add any to its own coroutine frame. Plain builds only: the
// sanitizers bring their own operator new.
#if !RINGFLOW_TEST_SANITIZED
#define MS_COUNT_ALLOCS 1
namespace {
thread_local std::size_t thread_allocs = 0;
}
// (noinline: g++ would otherwise see free() meet a new-expression.)
__attribute__((noinline)) void* operator new(std::size_t n) {
  ++thread_allocs;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#else
namespace {
constexpr std::size_t thread_allocs = 0;
}
#endif

namespace {

#if RINGFLOW_TEST_SANITIZED
constexpr std::size_t big = 8 * 1024 * 1024;
#else
constexpr std::size_t big = 32 * 1024 * 1024;
#endif

// Sets RINGFLOW_NO_MULTISHOT_RECV for the scope; workers read it when they start.
struct forced_fallback {
  bool on;
  explicit forced_fallback(bool set) : on(set) {
    if (on) ::setenv("RINGFLOW_NO_MULTISHOT_RECV", "1", 1);
  }
  ~forced_fallback() {
    if (on) ::unsetenv("RINGFLOW_NO_MULTISHOT_RECV");
  }
  forced_fallback(const forced_fallback&) = delete;
  forced_fallback& operator=(const forced_fallback&) = delete;
};

const char* path_name(bool multishot) { return multishot ? "multishot receive" : "forced single-shot fallback"; }

// What the current worker does; checked in each test that it runs the path it means to.
bool multishot_here() { return detail::multishot_recv_active(); }
unsigned free_buffers_here() {
  buffer_ring* br = detail::tls_worker->recv_buffers();
  return br ? br->free_buffers() : buffer_ring::buffer_count;
}

// Whether the runtime's worker 0 reads with multishot receives.
bool multishot_on(ringflow::runtime& rt) {
  return rt.block_on([]() -> task<bool> { co_return multishot_here(); }());
}

// Checks that worker 0 reads on the path the test asked for (a kernel
// without multishot receives takes the fallback either way); returns
// whether it reads with multishot receives.
bool require_path(ringflow::runtime& rt, bool multishot) {
  const bool active = multishot_on(rt);
  if (multishot && !active) {
    WARN("this kernel has no multishot receive with provided buffers: both runs take the fallback");
  }
  if (!multishot) REQUIRE_FALSE(active);
  return active;
}

// Runs body(rt, listener, active) once per read path, each in a section of
// its own, on a fresh runtime of `threads` workers that reads on that path.
template <class Body>
void on_both_paths(Body body, unsigned threads = 1) {
  for (bool multishot : {true, false}) {
    DYNAMIC_SECTION(path_name(multishot)) {
      forced_fallback env(!multishot);
      ringflow::runtime rt({.threads = threads});
      const bool active = require_path(rt, multishot);
      auto l = tcp_listener::bind("127.0.0.1", 0);
      body(rt, l, active);
    }
  }
}

// Writes `total` pattern bytes in blocks of `block`, then half-closes.
task<void> write_pattern(tcp_stream* s, std::size_t total, std::size_t block, std::atomic<std::size_t>* written) {
  std::vector<std::byte> buf(block);
  std::size_t off = 0;
  while (off < total) {
    std::size_t n = std::min(block, total - off);
    fill_pattern(std::span(buf).first(n), off);
    co_await s->write_all(std::span(buf).first(n));
    off += n;
    if (written) written->store(off);
  }
  s->shutdown_write();
}

struct read_result {
  std::size_t bytes = 0;
  std::size_t first_bad = SIZE_MAX;  // stream offset of the first wrong byte
  std::size_t reads = 0;
};

// Reads until EOF with spans whose size is drawn from [min_span, max_span].
task<void> read_pattern(tcp_stream* s, std::size_t min_span, std::size_t max_span, unsigned seed, read_result* out) {
  std::mt19937 rng(seed);
  std::vector<std::byte> buf(max_span);
  for (;;) {
    std::size_t span = min_span + rng() % (max_span - min_span + 1);
    std::size_t n = co_await s->read(std::span(buf).first(span));
    if (n == 0) break;
    ++out->reads;
    std::size_t ok = check_pattern(std::span(buf).first(n), out->bytes);
    if (ok != n && out->first_bad == SIZE_MAX) out->first_bad = out->bytes + ok;
    out->bytes += n;
  }
}

task<void> connect_and_write(std::uint16_t port, std::size_t total, std::size_t block) {
  tcp_stream c = co_await ringflow::tcp_stream::connect("127.0.0.1", port);
  co_await write_pattern(&c, total, block, nullptr);
}

task<void> accept_and_read(tcp_listener* l, std::size_t min_span, std::size_t max_span, read_result* out,
                           unsigned* free_after) {
  tcp_stream s = co_await l->accept();
  co_await read_pattern(&s, min_span, max_span, 1, out);
  *free_after = free_buffers_here();
}

// The test thread's peer on a thread of its own: `total` pattern bytes in
// writes of `step`, then FIN.
std::thread pattern_writer_thread(int fd, std::size_t total, std::size_t step) {
  return std::thread([fd, total, step] {
    for (std::size_t off = 0; off < total; off += step) send_pattern(fd, off, step);
    ::shutdown(fd, SHUT_WR);
  });
}

// What a worker's ring has free, asked on that worker.
unsigned free_buffers_on(ringflow::runtime& rt, unsigned worker) {
  return rt.spawn_on(worker, []() -> task<unsigned> { co_return free_buffers_here(); }()).wait();
}

// Polls cond on the worker every millisecond (it waits on the event
// itself, with a deadline so a failure does not hang).
template <class Cond>
task<bool> eventually(Cond cond, std::chrono::milliseconds limit = 10s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > until) co_return false;
    co_await ringflow::sleep_for(1ms);
  }
  co_return true;
}

}  // namespace

// ---- ordering --------------------------------------------------------------------

namespace {
void run_large_transfer(bool multishot, unsigned threads) {
  forced_fallback env(!multishot);
  ringflow::runtime rt({.threads = threads});
  require_path(rt, multishot);
  auto l = tcp_listener::bind("127.0.0.1", 0);
  read_result res;
  unsigned free_after = 0;
  auto t0 = std::chrono::steady_clock::now();
  // Spans of 1 byte to 3 buffers: reads start and end anywhere in a buffer.
  auto reader = rt.spawn(accept_and_read(&l, 1, 3 * buffer_ring::buffer_size + 7, &res, &free_after));
  rt.block_on(connect_and_write(l.local_port(), big, 256 * 1024));
  reader.wait();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  INFO(path_name(multishot) << ", " << threads << " worker(s): " << big / (1024 * 1024) << " MiB in " << ms << " ms, "
                            << res.reads << " reads");
  REQUIRE(res.first_bad == SIZE_MAX);
  REQUIRE(res.bytes == big);
  REQUIRE(free_after == buffer_ring::buffer_count);  // every buffer went back to the kernel
}
}  // namespace

TEST_CASE("multishot recv: a large transfer arrives intact and in order, on both paths", "[tcp][recv_multishot]") {
  SECTION("multishot, one worker") { run_large_transfer(true, 1); }
  SECTION("multishot, two workers") { run_large_transfer(true, 2); }
  SECTION("fallback, one worker") { run_large_transfer(false, 1); }
  SECTION("fallback, two workers") { run_large_transfer(false, 2); }
}

namespace {
// Many separate small writes, read with a large span and with exact sizes.
task<void> small_writer(std::uint16_t port, int count, unsigned seed, std::size_t* total) {
  tcp_stream c = co_await tcp_stream::connect("127.0.0.1", port);
  c.set_nodelay(true);
  std::mt19937 rng(seed);
  std::vector<std::byte> msg(200);
  std::size_t off = 0;
  for (int i = 0; i < count; ++i) {
    std::size_t n = 1 + rng() % msg.size();
    fill_pattern(std::span(msg).first(n), off);
    co_await c.write_all(std::span(msg).first(n));
    off += n;
    if (i % 64 == 0) co_await ringflow::yield();  // let the reader interleave
  }
  *total = off;
  c.shutdown_write();
}

task<void> echo_server(tcp_listener* l) {
  tcp_stream s = co_await l->accept();
  std::vector<std::byte> buf(64 * 1024);
  for (;;) {
    std::size_t n = co_await s.read(buf);
    if (n == 0) break;
    co_await s.write_all(std::span(buf).first(n));
  }
}

// Request/response over one connection, as in the echo benchmark.
task<int> ping_pong(std::uint16_t port, int rounds) {
  tcp_stream c = co_await tcp_stream::connect("127.0.0.1", port);
  c.set_nodelay(true);
  std::byte msg[64], back[64];
  int good = 0;
  for (int r = 0; r < rounds; ++r) {
    fill_pattern(msg, static_cast<std::uint64_t>(r) * 64);
    co_await c.write_all(msg);
    std::size_t got = 0;
    while (got < sizeof back) {
      std::size_t n = co_await c.read(std::span(back).subspan(got));
      if (n == 0) co_return good;
      got += n;
    }
    if (std::memcmp(msg, back, sizeof msg) == 0) ++good;
  }
  c.shutdown_write();
  co_return good;
}

void run_small_messages(bool multishot) {
  forced_fallback env(!multishot);
  ringflow::runtime rt({.threads = 2});
  require_path(rt, multishot);
  {
    auto l = tcp_listener::bind("127.0.0.1", 0);
    read_result res;
    unsigned free_after = 0;
    std::size_t total = 0;
    auto reader = rt.spawn(accept_and_read(&l, 64 * 1024, 64 * 1024, &res, &free_after));
    rt.block_on(small_writer(l.local_port(), 5000, 3, &total));
    reader.wait();
    REQUIRE(res.first_bad == SIZE_MAX);
    REQUIRE(res.bytes == total);
    REQUIRE(free_after == buffer_ring::buffer_count);
  }
  {
    auto l = tcp_listener::bind("127.0.0.1", 0);
    auto server = rt.spawn(echo_server(&l));
    constexpr int rounds = 2000;
    int good = rt.block_on(ping_pong(l.local_port(), rounds));
    server.wait();
    REQUIRE(good == rounds);
  }
}
}  // namespace

TEST_CASE("multishot recv: many small messages, streamed and echoed, on both paths", "[tcp][recv_multishot]") {
  SECTION("multishot") { run_small_messages(true); }
  SECTION("fallback") { run_small_messages(false); }
}

namespace {
struct piece_result {
  std::size_t bytes = 0;
  bool intact = true;
  std::size_t queued_after_first = 0;
  unsigned free_after_first = 0;
  unsigned free_at_end = 0;
};

// Reads 1 byte at a time: one buffer is consumed in many pieces.
task<void> read_bytewise(tcp_listener* l, std::size_t expect, piece_result* out) {
  tcp_stream s = co_await l->accept();
  std::byte b[1];
  for (;;) {
    std::size_t n = co_await s.read(b);
    if (n == 0) break;
    if (b[0] != pattern_at(out->bytes)) out->intact = false;
    ++out->bytes;
    if (out->bytes == 1) {
      // Wait until everything sent sits in the ring (or the kernel), then look.
      co_await eventually([&] { return detail::inspect_recv(s).queued + 1 >= expect || !multishot_here(); }, 5s);
      out->queued_after_first = detail::inspect_recv(s).queued;
      out->free_after_first = free_buffers_here();
    }
  }
  out->free_at_end = free_buffers_here();
}
}  // namespace

TEST_CASE("multishot recv: 1-byte reads consume a buffer in pieces and give every buffer back", "[tcp][recv_multishot]") {
  on_both_paths([](ringflow::runtime& rt, tcp_listener& l, bool active) {
    constexpr std::size_t n = 3 * buffer_ring::buffer_size + 123;  // 4 buffers, the last one partly filled
    piece_result res;
    auto reader = rt.spawn(read_bytewise(&l, n, &res));
    int fd = blocking_client(l.local_port());
    send_pattern(fd, 0, n);
    ::shutdown(fd, SHUT_WR);
    reader.wait();
    ::close(fd);
    REQUIRE(res.intact);
    REQUIRE(res.bytes == n);
    if (active) {
      REQUIRE(res.queued_after_first == n - 1);  // the rest waited in the ring, not in the kernel
      REQUIRE(res.free_after_first < buffer_ring::buffer_count);
      REQUIRE(res.free_after_first >= buffer_ring::buffer_count - 4);
    } else {
      REQUIRE(res.queued_after_first == 0);
    }
    REQUIRE(res.free_at_end == buffer_ring::buffer_count);
  });
}

// ---- cancellation ------------------------------------------------------------------

namespace {
// Writes of up to two buffers' worth; reads that start and end anywhere in a buffer.
constexpr pacing race_pacing{.chunks = 600, .max_chunk = 6000, .max_pause_us = 300};
constexpr race_plan race_reading{
    .rounds = 1500, .buf_size = 5000, .random_span = true, .min_deadline_us = 10, .deadline_spread_us = 300};

task<void> racing_reader(std::uint16_t port, race_stats* st, unsigned seed, unsigned* free_at_end) {
  tcp_stream c = co_await tcp_stream::connect("127.0.0.1", port);
  co_await race_reads(&c, st, seed, race_reading);
  *free_at_end = free_buffers_here();  // with the stream still open: the reads gave them back
}
}  // namespace

TEST_CASE("multishot recv: reads cancelled by timeouts in a loop lose no byte", "[tcp][recv_multishot]") {
  on_both_paths([](ringflow::runtime& rt, tcp_listener& l, bool) {
    auto writer = rt.spawn(paced_writer(&l, 7, race_pacing));
    race_stats st;
    unsigned free_at_end = 0;
    rt.block_on(racing_reader(l.local_port(), &st, 11, &free_at_end));
    require_race_lost_nothing(st, writer.wait());
    REQUIRE(free_at_end == buffer_ring::buffer_count);
  });
}

namespace {
struct armed_result {
  bool armed_before = false;
  std::size_t queued_before = 0;
  bool buffers_back = false;
  bool peer_saw_close = false;
};

// Arms the receive with a read that times out, lets bytes queue, then
// destroys the stream on its own worker.
task<void> destroy_armed_here(tcp_listener* l, std::uint16_t port, armed_result* out) {
  auto acc = ringflow::spawn_local(accept_one(l));
  tcp_stream c = co_await tcp_stream::connect("127.0.0.1", port);
  std::optional<tcp_stream> s;
  s.emplace(co_await std::move(acc));
  std::byte buf[16];
  std::optional<std::size_t> none = co_await ringflow::timeout(2ms, s->read(buf));
  REQUIRE_FALSE(none);
  const std::vector<std::byte> data = pattern(3000);
  co_await c.write_all(data);
  tcp_stream* sp = &*s;
  bool queued = co_await eventually([sp] { return detail::inspect_recv(*sp).queued == 3000; });
  REQUIRE(queued);
  out->armed_before = detail::inspect_recv(*s).armed;
  out->queued_before = detail::inspect_recv(*s).queued;
  REQUIRE(free_buffers_here() < buffer_ring::buffer_count);
  s.reset();  // armed, with a buffer queued
  out->buffers_back = co_await eventually([] { return free_buffers_here() == buffer_ring::buffer_count; });
  // The socket is really closed once the receive let go of it: the peer sees it.
  std::byte b[8];
  try {
    std::size_t n = co_await c.read(b);
    out->peer_saw_close = n == 0;
  } catch (const std::system_error& e) {
    out->peer_saw_close = e.code().value() == ECONNRESET;  // we closed with unread bytes
  }
}

task<void> arm_and_queue(tcp_stream* s, tcp_stream* c, std::size_t n) {
  std::byte buf[1000];
  std::optional<std::size_t> none = co_await ringflow::timeout(2ms, s->read(buf));
  REQUIRE_FALSE(none);
  const std::vector<std::byte> data = pattern(n);
  co_await c->write_all(data);
  bool queued = co_await eventually([s, n] { return detail::inspect_recv(*s).queued == n; });
  REQUIRE(queued);
}

task<bool> buffers_come_back() {
  co_return co_await eventually([] { return free_buffers_here() == buffer_ring::buffer_count; });
}
}  // namespace

TEST_CASE("multishot recv: a stream destroyed with its receive armed gives everything back", "[tcp][recv_multishot]") {
  ringflow::runtime rt({.threads = 2});
  if (!multishot_on(rt)) {
    WARN("no multishot receive here: skipped");
    return;
  }
  SECTION("destroyed on its own worker") {
    auto l = tcp_listener::bind("127.0.0.1", 0);
    armed_result res;
    rt.block_on(destroy_armed_here(&l, l.local_port(), &res));
    REQUIRE(res.armed_before);
    REQUIRE(res.queued_before == 3000);
    REQUIRE(res.buffers_back);
    REQUIRE(res.peer_saw_close);
  }
  SECTION("destroyed from another thread while its worker runs") {
    auto l = tcp_listener::bind("127.0.0.1", 0);
    auto acc = rt.spawn_on(0, accept_one(&l));
    auto c = rt.block_on(tcp_stream::connect("127.0.0.1", l.local_port()));
    auto s = std::make_unique<tcp_stream>(acc.wait());
    rt.spawn_on(1, arm_and_queue(s.get(), &c, 5000)).wait();  // armed on worker 1
    s.reset();  // this thread is no worker: the owner is asked to cancel
    REQUIRE(rt.spawn_on(1, buffers_come_back()).wait());
  }
}

namespace {
task<void> read_exactly(tcp_stream* s, std::size_t n, std::size_t offset, bool* intact) {
  std::vector<std::byte> buf(n);
  std::size_t got = 0;
  while (got < n) {
    std::size_t k = co_await s->read(std::span(buf).subspan(got));
    if (k == 0) break;
    got += k;
  }
  *intact = got == n && check_pattern(buf, offset) == n;
}

task<void> arm_and_wait_queued(tcp_stream* s, std::size_t n) {
  bool ok = co_await eventually([s, n] { return detail::inspect_recv(*s).queued == n; });
  REQUIRE(ok);
  REQUIRE(detail::inspect_recv(*s).armed);
}
}  // namespace

TEST_CASE("multishot recv: a stream outliving its runtime keeps its queued bytes", "[tcp][recv_multishot]") {
  auto l = tcp_listener::bind("127.0.0.1", 0);
  int fd = -1;
  tcp_stream s;
  bool active = false;
  {
    ringflow::runtime rt;
    active = multishot_on(rt);
    auto acc = rt.spawn(accept_one(&l));
    fd = blocking_client(l.local_port());
    s = acc.wait();
    send_pattern(fd, 0, 5000);
    bool intact = false;
    rt.block_on(read_exactly(&s, 1000, 0, &intact));  // arms; the other 4000 bytes stay queued
    REQUIRE(intact);
    if (active) rt.block_on(arm_and_wait_queued(&s, 4000));
  }  // the runtime goes with the receive armed and 4000 bytes in its ring
  if (active) {
    auto snap = detail::inspect_recv(s);
    REQUIRE_FALSE(snap.attached);
    REQUIRE(snap.spilled == 4000);
  }
  send_pattern(fd, 5000, 3000);
  ::shutdown(fd, SHUT_WR);
  ringflow::runtime rt2;
  read_result res;
  res.bytes = 1000;
  rt2.block_on(read_pattern(&s, 1, 3000, 5, &res));
  REQUIRE(res.first_bad == SIZE_MAX);
  REQUIRE(res.bytes == 8000);
  ::close(fd);
}

// ---- backpressure -------------------------------------------------------------------

namespace {
struct slow_result {
  std::size_t queued_stalled = 0;
  bool armed_stalled = true;
  long server_unread = 0;  // SIOCINQ: what the kernel kept for us
  std::size_t written_stalled = 0;
  read_result read;
};

task<void> stalled_reader(tcp_listener* l, std::atomic<std::size_t>* written, std::size_t total, bool soft_cap,
                          slow_result* out) {
  if (soft_cap) {
    // What kernels before 6.17 do: no length cap, the callback cancels.
    if (buffer_ring* br = detail::tls_worker->recv_buffers()) br->refuse_length_cap();
  }
  tcp_stream s = co_await l->accept();
  std::byte one[1];
  std::size_t n = co_await s.read(one);  // arms the receive
  REQUIRE(n == 1);
  REQUIRE(one[0] == pattern_at(0));
  // The reader stalls while the writer pushes: the receive must stop at the
  // cap and the rest must stay in the kernel, whose window closes.
  // Until the writer is stuck (no progress in 20 ms) and the receive has
  // stopped with data left in the kernel, at most ~10 s: one quiet 20 ms
  // alone may be a descheduled thread on a busy machine, not the window.
  std::size_t last = SIZE_MAX;
  for (int i = 0; i < 500; ++i) {
    co_await ringflow::sleep_for(20ms);
    std::size_t now = written->load();
    auto snap = detail::inspect_recv(s);
    int v = 0;
    out->queued_stalled = snap.queued;
    out->armed_stalled = snap.armed;
    out->server_unread = ::ioctl(s.native_handle(), SIOCINQ, &v) == 0 ? v : -1;
    out->written_stalled = now;
    if (now == last && now < total && !snap.armed && snap.queued + 1 >= buffer_ring::stream_cap &&
        out->server_unread > 0)
      break;
    last = now;
  }
  out->read.bytes = 1;
  co_await read_pattern(&s, 64 * 1024, 64 * 1024, 9, &out->read);
}

task<void> pushing_writer(std::uint16_t port, std::size_t total, std::atomic<std::size_t>* written) {
  tcp_stream c = co_await tcp_stream::connect("127.0.0.1", port);
  int small = 128 * 1024;
  ::setsockopt(c.native_handle(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  co_await write_pattern(&c, total, 64 * 1024, written);
}

void run_slow_reader(bool soft_cap) {
  ringflow::runtime rt;
  if (!multishot_on(rt)) {
    WARN("no multishot receive here: skipped");
    return;
  }
  auto l = tcp_listener::bind("127.0.0.1", 0);
  int small = 128 * 1024;  // inherited by the accepted socket: a small window
  REQUIRE(::setsockopt(l.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  constexpr std::size_t total = 16 * 1024 * 1024;
  std::atomic<std::size_t> written{0};
  slow_result res;
  auto reader = rt.spawn(stalled_reader(&l, &written, total, soft_cap, &res));
  rt.block_on(pushing_writer(l.local_port(), total, &written));
  reader.wait();
  INFO((soft_cap ? "cap by cancel" : "kernel length cap")
       << ": queued " << res.queued_stalled << " B in the ring, " << res.server_unread << " B unread in the kernel, "
       << res.written_stalled << " B written when the writer stalled");
  // The receive stopped at the cap...
  REQUIRE_FALSE(res.armed_stalled);
  REQUIRE(res.queued_stalled >= buffer_ring::stream_cap - 1);  // it did pull up to the cap (the first byte was read)
  if (soft_cap) {
    // ... give or take what the kernel delivered before the cancel reached it
    // (one batch of its receive loop), and never the whole ring.
    REQUIRE(res.queued_stalled <= buffer_ring::stream_cap + 64 * buffer_ring::buffer_size);
  } else {
    REQUIRE(res.queued_stalled <= buffer_ring::stream_cap + buffer_ring::buffer_size);
  }
  // ... the kernel held the rest, and the writer was stopped by the closed window.
  REQUIRE(res.server_unread > 0);
  REQUIRE(res.written_stalled < total);
  // Nothing was lost on the way.
  REQUIRE(res.read.first_bad == SIZE_MAX);
  REQUIRE(res.read.bytes == total);
}
}  // namespace

TEST_CASE("multishot recv: a stalled reader holds at most the per-stream cap; the window closes", "[tcp][recv_multishot]") {
  SECTION("kernel length cap (6.17+)") {
    ringflow::runtime probe;
    bool cap = probe.block_on([]() -> task<bool> { co_return detail::multishot_recv_length_cap(); }());
    if (!cap) {
      WARN("the kernel has no multishot length cap: covered by the cancel section");
      return;
    }
    run_slow_reader(false);
  }
  SECTION("cap kept by cancelling (older kernels)") { run_slow_reader(true); }
}

// ---- end of stream and errors --------------------------------------------------------

namespace {
struct end_result {
  std::string got;
  std::size_t eof_reads = 0;
  int err = 0;
  std::string before_err;
  bool ended = false;
};

task<void> read_to_end_twice(tcp_listener* l, end_result* out) {
  tcp_stream s = co_await l->accept();
  std::byte buf[64];
  for (;;) {
    std::size_t n = co_await s.read(buf);
    if (n == 0) break;
    out->got.append(reinterpret_cast<const char*>(buf), n);
  }
  out->eof_reads = 1;
  for (int i = 0; i < 3; ++i) {  // end of stream stays the end
    std::size_t n = co_await s.read(buf);
    if (n == 0) ++out->eof_reads;
  }
}

// Reads one byte, waits until the reset arrived (the receive ended), then
// reads on: the queued bytes come first, then ECONNRESET.
task<void> read_until_reset(tcp_listener* l, std::atomic<bool>* got_first, end_result* out) {
  tcp_stream s = co_await l->accept();
  std::byte buf[64];
  std::size_t n = co_await s.read(std::span(buf, 1));
  out->before_err.append(reinterpret_cast<const char*>(buf), n);
  got_first->store(true);
  tcp_stream* sp = &s;
  out->ended = co_await eventually([sp] { return !detail::inspect_recv(*sp).armed; });
  try {
    for (;;) {
      std::size_t k = co_await s.read(buf);
      if (k == 0) break;
      out->before_err.append(reinterpret_cast<const char*>(buf), k);
    }
  } catch (const std::system_error& e) {
    out->err = e.code().value();
  }
}

task<void> read_waiting_for_reset(tcp_listener* l, end_result* out) {
  tcp_stream s = co_await l->accept();
  std::byte buf[64];
  try {
    co_await s.read(buf);  // waits: the reset wakes it
  } catch (const std::system_error& e) {
    out->err = e.code().value();
  }
}

void reset_close(int fd) {
  linger lg{1, 0};  // close with RST
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}
}  // namespace

TEST_CASE("multishot recv: end of stream and ECONNRESET are still reported, after the queued bytes", "[tcp][recv_multishot]") {
  on_both_paths([](ringflow::runtime& rt, tcp_listener& l, bool active) {
    {  // EOF after data, and again on every later read
      end_result res;
      auto server = rt.spawn(read_to_end_twice(&l, &res));
      int fd = blocking_client(l.local_port());
      send_all(fd, std::as_bytes(std::span("hello, end", 10)));
      ::shutdown(fd, SHUT_WR);
      server.wait();
      ::close(fd);
      REQUIRE(res.got == "hello, end");
      REQUIRE(res.eof_reads == 4);
    }
    {  // a reset while a read waits
      end_result res;
      auto server = rt.spawn(read_waiting_for_reset(&l, &res));
      int fd = blocking_client(l.local_port());
      // Let the read arm first: the reset must reach a waiting receive.
      rt.block_on([]() -> task<void> { co_await ringflow::sleep_for(20ms); }());
      reset_close(fd);
      server.wait();
      REQUIRE(res.err == ECONNRESET);
    }
    if (active) {  // a reset behind bytes already in the ring: the bytes first
      end_result res;
      std::atomic<bool> got_first{false};
      auto server = rt.spawn(read_until_reset(&l, &got_first, &res));
      int fd = blocking_client(l.local_port());
      send_all(fd, std::as_bytes(std::span("abcdef", 6)));
      while (!got_first.load()) std::this_thread::yield();  // the receive holds "bcdef" now
      reset_close(fd);
      server.wait();
      REQUIRE(res.ended);  // the reset ended the receive before the bytes were read
      REQUIRE(res.before_err == "abcdef");
      REQUIRE(res.err == ECONNRESET);
    }
  });
}

// ---- ring exhaustion ----------------------------------------------------------------

namespace {
constexpr int many = static_cast<int>(buffer_ring::buffer_count) + 100;
constexpr std::size_t per_conn = 100;

struct exhaust_result {
  int via_ring = 0;    // first read left bytes queued in the ring
  int via_single = 0;  // first read took the single-shot fallback
  unsigned min_free = buffer_ring::buffer_count;
  int bad = 0;
  unsigned free_at_end = 0;
};

task<void> exhaust(tcp_listener* l, exhaust_result* out) {
  std::vector<tcp_stream> streams;
  streams.reserve(many);
  for (int i = 0; i < many; ++i) {
    tcp_stream s = co_await l->accept();
    streams.push_back(std::move(s));
  }
  // First byte of each connection: every receive takes one buffer and keeps
  // the rest of the message queued in it, until the ring runs dry.
  std::vector<std::byte> first(many);
  for (int i = 0; i < many; ++i) {
    std::size_t n = co_await streams[i].read(std::span(first).subspan(i, 1));
    if (n != 1) ++out->bad;
    if (detail::inspect_recv(streams[i]).queued > 0) {
      ++out->via_ring;
    } else {
      ++out->via_single;
    }
    out->min_free = std::min(out->min_free, free_buffers_here());
  }
  // The rest, and each connection's id in its first byte.
  std::vector<std::byte> rest(per_conn);
  for (int i = 0; i < many; ++i) {
    std::size_t got = 0;
    while (got < per_conn - 1) {
      std::size_t n = co_await streams[i].read(std::span(rest).subspan(got, per_conn - 1 - got));
      if (n == 0) break;
      got += n;
    }
    const std::uint64_t base = static_cast<std::uint64_t>(i) * per_conn;
    if (got != per_conn - 1 || first[i] != pattern_at(base) ||
        check_pattern(std::span(rest).first(got), base + 1) != got) {
      ++out->bad;
    }
  }
  out->free_at_end = free_buffers_here();
}
}  // namespace

TEST_CASE("multishot recv: more connections than buffers: the ring runs dry, reads fall back, nothing is lost", "[tcp][recv_multishot]") {
  ringflow::runtime rt;
  const bool active = rt.block_on([]() -> task<bool> { co_return multishot_here(); }());
  auto l = tcp_listener::bind("127.0.0.1", 0, 4096);
  exhaust_result res;
  std::vector<int> fds;
  fds.reserve(many);
  // Every connection has sent its message before the server reads any.
  for (int i = 0; i < many; ++i) {
    fds.push_back(blocking_client(l.local_port()));
    send_pattern(fds.back(), static_cast<std::size_t>(i) * per_conn, per_conn);
  }
  rt.block_on(exhaust(&l, &res));
  for (int fd : fds) ::close(fd);
  INFO("first reads: " << res.via_ring << " through the ring, " << res.via_single << " single-shot; min free "
                       << res.min_free);
  REQUIRE(res.bad == 0);
  if (active) {
    REQUIRE(res.min_free == 0);
    REQUIRE(res.via_ring >= static_cast<int>(buffer_ring::buffer_count) - 8);
    REQUIRE(res.via_single >= many - static_cast<int>(buffer_ring::buffer_count));
  }
  REQUIRE(res.free_at_end == buffer_ring::buffer_count);
}

// ---- reads that move between workers ---------------------------------------------------

namespace {
// One read of up to `span` bytes on whatever worker runs it.
task<std::size_t> read_some(tcp_stream* s, std::vector<std::byte>* into, std::size_t span) {
  std::vector<std::byte> buf(span);
  std::size_t n = co_await s->read(buf);
  into->insert(into->end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  co_return n;
}
}  // namespace

TEST_CASE("multishot recv: a stream read from alternating workers loses nothing", "[tcp][recv_multishot]") {
  on_both_paths([](ringflow::runtime& rt, tcp_listener& l, bool) {
    auto acc = rt.spawn(accept_one(&l));
    int fd = blocking_client(l.local_port());
    tcp_stream s = acc.wait();
    constexpr std::size_t total = 256 * 1024;
    std::thread writer = pattern_writer_thread(fd, total, 8192);
    std::vector<std::byte> got;
    std::mt19937 rng(17);
    int hops = 0;
    // Small reads leave bytes queued on one worker when the next read runs
    // on the other: they must be handed over first, in order.
    for (unsigned i = 0;; ++i) {
      std::size_t n = rt.spawn_on(i % 2, read_some(&s, &got, 1 + rng() % 3000)).wait();
      if (n == 0) break;
      ++hops;
    }
    writer.join();
    ::close(fd);
    INFO(hops << " reads");
    REQUIRE(got.size() == total);
    REQUIRE(check_pattern(got, 0) == total);
    REQUIRE(free_buffers_on(rt, 0) == buffer_ring::buffer_count);
    REQUIRE(free_buffers_on(rt, 1) == buffer_ring::buffer_count);
  }, 2);
}

namespace {
task<void> concurrent_reader(tcp_stream* s, std::size_t* bytes) {
  std::vector<std::byte> buf(3000);
  for (;;) {
    std::size_t n = co_await s->read(buf);
    if (n == 0) break;
    *bytes += n;
  }
}

task<void> two_readers(tcp_stream* s, std::size_t* a, std::size_t* b) {
  auto first = ringflow::spawn_local(concurrent_reader(s, a));
  auto second = ringflow::spawn_local(concurrent_reader(s, b));
  co_await std::move(first);
  co_await std::move(second);
}
}  // namespace

TEST_CASE("multishot recv: two concurrent reads of one stream both progress (their bytes interleave)", "[tcp][recv_multishot]") {
  ringflow::runtime rt;
  auto l = tcp_listener::bind("127.0.0.1", 0);
  auto acc = rt.spawn(accept_one(&l));
  int fd = blocking_client(l.local_port());
  tcp_stream s = acc.wait();
  constexpr std::size_t total = 1024 * 1024;
  std::thread writer = pattern_writer_thread(fd, total, 16384);
  std::size_t a = 0, b = 0;
  rt.block_on(two_readers(&s, &a, &b));  // neither may hang waiting for the other's receive
  writer.join();
  ::close(fd);
  INFO(a << " + " << b << " bytes");
  REQUIRE(a + b == total);
}

// ---- allocations ----------------------------------------------------------------

namespace {
struct alloc_result {
  std::size_t reads = 0;
  std::size_t allocs = 0;
  bool intact = true;
};

// Echoes 64-byte requests; counts what the worker thread allocates while
// reads run (including their suspension), after a warm-up.
task<void> counting_echo(tcp_listener* l, int warmup, alloc_result* out) {
  tcp_stream s = co_await l->accept();
  std::byte buf[64];
  std::uint64_t off = 0;
  for (int i = 0;; ++i) {
    const std::size_t before = thread_allocs;
    std::size_t n = co_await s.read(buf);
    if (i >= warmup) {
      out->allocs += thread_allocs - before;
      ++out->reads;
    }
    if (n == 0) break;
    if (check_pattern(std::span(buf).first(n), off) != n) out->intact = false;
    off += n;
    co_await s.write_all(std::span(buf).first(n));
  }
}
}  // namespace

namespace {
struct refusal_result {
  std::size_t bytes = 0;
  std::size_t first_bad = SIZE_MAX;
  bool multishot_after = true;
  bool length_cap_after = true;
};

// Reads the pattern to the end on a worker whose kernel answers every
// multishot receive with EINVAL (provoked: this kernel has the feature).
task<void> read_through_refusal(tcp_listener* l, refusal_result* out) {
  buffer_ring* br = detail::tls_worker->recv_buffers();
  br->provoke_refusal_for_test();
  tcp_stream s = co_await l->accept();
  std::vector<std::byte> buf(16 * 1024);
  for (;;) {
    std::size_t n = co_await s.read(buf);
    if (n == 0) break;
    std::size_t ok = check_pattern(std::span(buf).first(n), out->bytes);
    if (ok != n && out->first_bad == SIZE_MAX) out->first_bad = out->bytes + ok;
    out->bytes += n;
  }
  out->multishot_after = multishot_here();
  out->length_cap_after = detail::multishot_recv_length_cap();
}
}  // namespace

// The path a kernel without multishot receive (or without its length cap)
// takes: the first receive fails with EINVAL before it reads anything, the
// worker switches the feature off, and reads go on single-shot.
TEST_CASE("multishot recv: a kernel that refuses the receive with EINVAL gets single-shot reads, and loses nothing", "[tcp][recv_multishot]") {
  ringflow::runtime rt;
  if (!multishot_on(rt)) {
    WARN("no multishot receive here: skipped");
    return;
  }
  auto l = tcp_listener::bind("127.0.0.1", 0);
  refusal_result res;
  auto reader = rt.spawn(read_through_refusal(&l, &res));
  constexpr std::size_t total = 1024 * 1024;
  int fd = blocking_client(l.local_port());
  send_pattern(fd, 0, total);
  ::close(fd);
  reader.wait();
  REQUIRE_FALSE(res.multishot_after);  // the EINVAL arrived and switched the feature off
  REQUIRE_FALSE(res.length_cap_after);
  REQUIRE(res.first_bad == SIZE_MAX);
  REQUIRE(res.bytes == total);
}

TEST_CASE("multishot recv: a steady-state read allocates nothing but its own frame", "[tcp][recv_multishot]") {
  on_both_paths([](ringflow::runtime& rt, tcp_listener& l, bool) {
    alloc_result res;
    constexpr int warmup = 200, rounds = 1200;
    auto server = rt.spawn(counting_echo(&l, warmup, &res));
    int fd = blocking_client(l.local_port());
    int nodelay = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
    std::vector<std::byte> back(64);
    bool echoed = true;
    for (int r = 0; r < rounds; ++r) {
      send_pattern(fd, static_cast<std::size_t>(r) * 64, 64);
      std::size_t got = 0;
      while (got < back.size()) {
        ssize_t k = ::recv(fd, back.data() + got, back.size() - got, 0);
        if (k <= 0) break;
        got += static_cast<std::size_t>(k);
      }
      if (got != back.size() || check_pattern(back, static_cast<std::size_t>(r) * 64) != back.size()) echoed = false;
    }
    ::shutdown(fd, SHUT_WR);
    server.wait();
    ::close(fd);
    INFO(res.allocs << " allocations in " << res.reads << " reads");
    REQUIRE(echoed);
    REQUIRE(res.intact);
    REQUIRE(res.reads >= rounds - warmup);
#if defined(MS_COUNT_ALLOCS)
    REQUIRE(res.allocs <= res.reads);  // at most the read task's frame each
#endif
  });
}
