// backpressure_pipe: TCP's sliding window is backpressure too.
//
//   backpressure_pipe [--mode both|server|client] [--duration 4] [--capacity 8]
//                     [--chunk 64KiB] [--slow-rate 5] [--release-after 2] [--json]
//                     [--host 127.0.0.1] [--port 0]
//
// A server reads one connection in chunks (a fixed pool of capacity + 2
// buffers) into a bounded ringflow::channel that a deliberately slow worker
// drains: it verifies each chunk (the client sends a checkable byte pattern)
// and is paced to --slow-rate MB/s until --release-after seconds, then runs
// unlimited. While the worker is slow the channel fills, the reading task
// suspends in send and stops reading the socket, the kernel's receive buffer
// fills, the TCP window closes, and the client's write_all suspends: no
// buffer anywhere grows without bound. Once the worker speeds up, everything
// drains and the client's rate jumps.
//
// The client (a tcp_stream pushing data with write_all as fast as it can for
// --duration seconds) runs in the same process (--mode both, the default), or
// the two halves run as separate processes: `--mode server --port 7001` and
// `--mode client --port 7001`.
//
// Every 100 ms one line: the channel depth, the server socket's unread bytes
// (ioctl SIOCINQ on the accepted socket), the client socket's unsent bytes
// (SIOCOUTQ: not yet sent or not yet acknowledged), the rate the worker
// consumed at and the rate the client wrote at (MB = 10^6 bytes). --json
// prints the samples (and a closing summary) as JSON lines instead.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <ringflow/ringflow.hpp>

using namespace std::chrono_literals;
using ringflow::task;
using ringflow::tcp_listener;
using ringflow::tcp_stream;

namespace {

using sclock = std::chrono::steady_clock;
using buffer = std::vector<std::byte>;
using chunk_channel = ringflow::channel<buffer>;

struct config {
  std::string mode = "both";
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  double duration = 4.0;        // s the client writes
  std::size_t capacity = 8;     // chunks in the channel
  std::size_t chunk = 64 * 1024;  // bytes per chunk
  double slow_rate = 5.0;       // MB/s of the worker while slow
  double release_after = -1;    // s; < 0: half the duration
  bool json = false;
};

// The byte at stream offset i: a lost, duplicated or reordered byte shows.
inline std::byte pattern_byte(std::uint64_t i) {
  return static_cast<std::byte>((static_cast<std::uint32_t>(i) * 2654435761u) >> 24);
}

void fill_pattern(std::span<std::byte> out, std::uint64_t offset) {
  for (std::size_t j = 0; j < out.size(); ++j) out[j] = pattern_byte(offset + j);
}

// The index of the first byte that breaks the pattern, or in.size().
std::size_t check_pattern(std::span<const std::byte> in, std::uint64_t offset) {
  for (std::size_t j = 0; j < in.size(); ++j) {
    if (in[j] != pattern_byte(offset + j)) return j;
  }
  return in.size();
}

// SIOCINQ / SIOCOUTQ on a socket; -1 when there is no socket.
long socket_queue(int fd, unsigned long request) {
  if (fd < 0) return -1;
  int v = 0;
  if (::ioctl(fd, request, &v) != 0) return -1;
  return v;
}

// What the tasks share with the sampler (which may run on another worker).
struct shared {
  config cfg;
  sclock::time_point start;
  sclock::time_point release_at;
  chunk_channel* ch = nullptr;  // server side only
  int server_fd = -1;           // set before the tasks start; the streams outlive the sampler
  int client_fd = -1;
  std::atomic<std::uint64_t> consumed{0};
  std::atomic<std::uint64_t> written{0};
  // When the client's pending write_all began (steady_clock ticks), 0 between
  // writes, -1 once the client has finished.
  std::atomic<sclock::rep> write_since{0};
  std::atomic<bool> done{false};
  std::atomic<bool> in_order{true};
  std::atomic<std::uint64_t> first_bad{0};
  std::atomic<std::uint64_t> samples_full{0};  // samples that saw the channel full
};

// ---- server: socket -> channel -> slow worker ----------------------------------

// Fills pooled chunks from the socket and sends them into the channel. While
// the channel is full, send suspends and nobody reads the socket.
task<void> reader(tcp_stream* s, chunk_channel* ch, chunk_channel* pool, std::size_t chunk) {
  for (;;) {
    std::optional<buffer> b = co_await pool->recv();
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
      ringflow::send_status st = co_await ch->send(std::move(buf));
      if (st != ringflow::send_status::sent) break;
    }
    if (eof) break;
  }
  ch->close();
}

// The slow consumer: verifies each chunk, paced to slow_rate MB/s until
// release_at, unlimited afterwards. Hands the buffers back to the pool.
task<void> slow_worker(shared* sh, chunk_channel* ch, chunk_channel* pool) {
  std::uint64_t offset = 0;
  std::optional<sclock::time_point> pace_start;
  double paced = 0;  // bytes consumed under the pace
  for (;;) {
    std::optional<buffer> b = co_await ch->recv();
    if (!b) break;
    if (sh->in_order.load(std::memory_order_relaxed)) {
      std::size_t bad = check_pattern(*b, offset);
      if (bad != b->size()) {
        sh->first_bad.store(offset + bad);
        sh->in_order.store(false);
      }
    }
    offset += b->size();
    sh->consumed.store(offset, std::memory_order_relaxed);
    auto now = sclock::now();
    if (now < sh->release_at) {
      if (!pace_start) pace_start = now;
      paced += static_cast<double>(b->size());
      auto target = *pace_start + std::chrono::duration_cast<sclock::duration>(
                                      std::chrono::duration<double>(paced / (sh->cfg.slow_rate * 1e6)));
      if (target > now) co_await ringflow::sleep_for(target - now);
    }
    (void)pool->try_send(std::move(*b));
  }
}

// ---- client ----------------------------------------------------------------------

// Pushes the pattern as fast as write_all lets it, until `until`, then sends FIN.
task<void> writer(shared* sh, tcp_stream* s, sclock::time_point until) {
  buffer blk(256 * 1024);
  std::uint64_t offset = 0;
  while (sclock::now() < until) {
    fill_pattern(blk, offset);
    sh->write_since.store(sclock::now().time_since_epoch().count(), std::memory_order_relaxed);
    co_await s->write_all(blk);
    sh->write_since.store(0, std::memory_order_relaxed);
    offset += blk.size();
    sh->written.store(offset, std::memory_order_relaxed);
  }
  sh->write_since.store(-1, std::memory_order_relaxed);
  s->shutdown_write();
}

// ---- sampler -----------------------------------------------------------------------

std::string fmt_bytes(long v) {
  if (v < 0) return "-";
  if (v < 1024 * 1024) return fmt::format("{:.0f} KiB", v / 1024.0);
  return fmt::format("{:.2f} MiB", v / (1024.0 * 1024.0));
}

task<void> sampler(shared* sh) {
  const bool server = sh->ch != nullptr;
  const bool client = sh->client_fd >= 0;
  if (!sh->cfg.json) {
    fmt::print("{:>6}  {:5}  {:>8}  {:>12}  {:>12}  {:>12}  {:>12}  {}\n", "t(s)", "phase", "channel", "srv unread",
               "cli unsent", "worker MB/s", "client MB/s", "client write_all");
  }
  auto next = sh->start;
  auto last_t = sh->start;
  std::uint64_t last_c = 0, last_w = 0;
  while (!sh->done.load()) {
    next += 100ms;
    auto now = sclock::now();
    if (now - next > 100ms) next = now;  // fell behind (a loaded machine): skip, don't burst
    if (next > now) co_await ringflow::sleep_for(next - now);
    now = sclock::now();
    double t = std::chrono::duration<double>(now - sh->start).count();
    double dt = std::chrono::duration<double>(now - last_t).count();
    last_t = now;
    std::uint64_t c = sh->consumed.load(std::memory_order_relaxed);
    std::uint64_t w = sh->written.load(std::memory_order_relaxed);
    double worker_rate = dt > 0 ? static_cast<double>(c - last_c) / dt / 1e6 : 0;
    double client_rate = dt > 0 ? static_cast<double>(w - last_w) / dt / 1e6 : 0;
    last_c = c;
    last_w = w;
    long depth = server ? static_cast<long>(sh->ch->size()) : -1;
    if (server && static_cast<std::size_t>(depth) == sh->cfg.capacity) sh->samples_full.fetch_add(1);
    long unread = socket_queue(sh->server_fd, SIOCINQ);
    long unsent = socket_queue(sh->client_fd, SIOCOUTQ);
    const char* phase = !server ? "-" : now < sh->release_at ? "slow" : "fast";
    // How long the client's current write_all has been suspended (-1: none pending).
    sclock::rep since = sh->write_since.load(std::memory_order_relaxed);
    double blocked_ms = since <= 0 ? -1.0
                                   : std::chrono::duration<double, std::milli>(now.time_since_epoch() -
                                                                                sclock::duration(since))
                                         .count();
    if (sh->cfg.json) {
      fmt::print(
          "{{\"t\":{:.3f},\"phase\":\"{}\",\"channel\":{},\"capacity\":{},\"server_unread\":{},"
          "\"client_unsent\":{},\"worker_mbps\":{},\"client_mbps\":{},\"write_pending_ms\":{}}}\n",
          t, phase, server ? fmt::format("{}", depth) : "null", sh->cfg.capacity,
          unread >= 0 ? fmt::format("{}", unread) : "null", unsent >= 0 ? fmt::format("{}", unsent) : "null",
          server ? fmt::format("{:.1f}", worker_rate) : "null", client ? fmt::format("{:.1f}", client_rate) : "null",
          blocked_ms >= 0 ? fmt::format("{:.1f}", blocked_ms) : "null");
    } else {
      std::string pending = !client      ? "-"
                            : since < 0 ? "finished"
                            : blocked_ms >= 1 ? fmt::format("suspended {:.0f} ms", blocked_ms)
                                              : "running";
      fmt::print("{:6.1f}  {:5}  {:>8}  {:>12}  {:>12}  {:>12}  {:>12}  {}\n", t, phase,
                 server ? fmt::format("{}/{}", depth, sh->cfg.capacity) : "-", fmt_bytes(unread),
                 fmt_bytes(unsent), server ? fmt::format("{:.1f}", worker_rate) : "-",
                 client ? fmt::format("{:.1f}", client_rate) : "-", pending);
    }
    std::fflush(stdout);
  }
}

// ---- modes -------------------------------------------------------------------------

task<tcp_stream> accept_one(tcp_listener* l) {
  tcp_stream s = co_await l->accept();
  co_return std::move(s);
}

void print_banner(const config& cfg, std::uint16_t port) {
  if (cfg.json) return;
  fmt::print("backpressure_pipe --mode {}: {}:{}", cfg.mode, cfg.host, port);
  if (cfg.mode != "client") {
    fmt::print(", channel {} x {} KiB, worker {} MB/s until {} s, then unlimited", cfg.capacity, cfg.chunk / 1024.0,
               cfg.slow_rate, cfg.release_after);
  }
  if (cfg.mode != "server") fmt::print(", client writes for {} s", cfg.duration);
  fmt::print("\n");
  std::fflush(stdout);
}

void print_summary(const shared& sh, double secs) {
  std::uint64_t c = sh.consumed.load(), w = sh.written.load();
  bool server = sh.ch != nullptr;
  bool client = sh.client_fd >= 0;
  if (sh.cfg.json) {
    fmt::print("{{\"summary\":true,\"seconds\":{:.3f},\"consumed\":{},\"written\":{},\"in_order\":{},\"samples_full\":{}}}\n",
               secs, server ? fmt::format("{}", c) : "null", client ? fmt::format("{}", w) : "null",
               server ? (sh.in_order.load() ? "true" : "false") : "null", sh.samples_full.load());
    return;
  }
  fmt::print("done in {:.2f} s:", secs);
  if (client) fmt::print(" client wrote {:.1f} MB{}", w / 1e6, server ? ";" : "");
  if (server) {
    fmt::print(" worker consumed {:.1f} MB, ", c / 1e6);
    if (sh.in_order.load()) {
      fmt::print("every byte in order; ");
    } else {
      fmt::print("PATTERN MISMATCH at byte {}; ", sh.first_bad.load());
    }
    fmt::print("channel full in {} samples", sh.samples_full.load());
  }
  fmt::print("\n");
}

// The server half on an accepted stream: reader + slow worker until EOF.
task<void> serve(shared* sh, tcp_stream* s) {
  chunk_channel ch(sh->cfg.capacity);
  chunk_channel pool(sh->cfg.capacity + 2);  // one buffer in the reader, one in the worker
  for (std::size_t i = 0; i < sh->cfg.capacity + 2; ++i) (void)pool.try_send(buffer(sh->cfg.chunk));
  sh->ch = &ch;
  sh->server_fd = s->native_handle();
  sh->start = sclock::now();
  sh->release_at = sh->start + std::chrono::duration_cast<sclock::duration>(
                                   std::chrono::duration<double>(sh->cfg.release_after));
  auto samp = ringflow::spawn(sampler(sh));
  auto rd = ringflow::spawn(reader(s, &ch, &pool, sh->cfg.chunk));
  auto wk = ringflow::spawn(slow_worker(sh, &ch, &pool));
  co_await std::move(rd);
  co_await std::move(wk);
  sh->done.store(true);
  co_await std::move(samp);
  print_summary(*sh, std::chrono::duration<double>(sclock::now() - sh->start).count());
}

task<int> run(config cfg) {
  shared sh;
  sh.cfg = cfg;
  if (cfg.mode == "server") {
    tcp_listener l = tcp_listener::bind(cfg.host, cfg.port);
    std::uint16_t port = l.local_port();
    if (!cfg.json) fmt::print("listening on {}:{}\n", cfg.host, port);
    std::fflush(stdout);
    tcp_stream s = co_await l.accept();
    l.close();
    print_banner(cfg, port);
    co_await serve(&sh, &s);
    co_return sh.in_order.load() ? 0 : 1;
  }
  if (cfg.mode == "client") {
    tcp_stream c = co_await tcp_stream::connect(cfg.host, cfg.port);
    print_banner(cfg, cfg.port);
    sh.client_fd = c.native_handle();
    sh.start = sclock::now();
    sh.release_at = sh.start;
    auto until = sh.start + std::chrono::duration_cast<sclock::duration>(std::chrono::duration<double>(cfg.duration));
    auto samp = ringflow::spawn(sampler(&sh));
    auto wr = ringflow::spawn(writer(&sh, &c, until));
    co_await std::move(wr);
    sh.done.store(true);
    co_await std::move(samp);
    print_summary(sh, std::chrono::duration<double>(sclock::now() - sh.start).count());
    co_return 0;
  }
  // both: one process, one connection over loopback.
  tcp_listener l = tcp_listener::bind(cfg.host, 0);
  auto acc = ringflow::spawn(accept_one(&l));
  tcp_stream client = co_await tcp_stream::connect(cfg.host, l.local_port());
  tcp_stream server = co_await std::move(acc);
  print_banner(cfg, l.local_port());
  sh.client_fd = client.native_handle();
  auto until = sclock::now() + std::chrono::duration_cast<sclock::duration>(std::chrono::duration<double>(cfg.duration));
  auto srv = ringflow::spawn(serve(&sh, &server));
  auto wr = ringflow::spawn(writer(&sh, &client, until));
  co_await std::move(wr);
  co_await std::move(srv);
  co_return sh.in_order.load() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  CLI::App app{"backpressure_pipe: a slow consumer behind a bounded channel slows a TCP writer down"};
  app.add_option("--mode", cfg.mode, "both (one process), server or client")
      ->check(CLI::IsMember({"both", "server", "client"}))
      ->capture_default_str();
  app.add_option("--host", cfg.host, "address to listen on / connect to")->capture_default_str();
  app.add_option("--port", cfg.port, "port (server: 0 = ephemeral; client: required)")->capture_default_str();
  app.add_option("--duration", cfg.duration, "seconds the client writes")
      ->check(CLI::Range(0.01, 3600.0))
      ->capture_default_str();
  app.add_option("--capacity", cfg.capacity, "channel capacity in chunks")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
      ->capture_default_str();
  app.add_option("--chunk", cfg.chunk, "bytes per chunk (suffixes: 64KiB, 1MiB, 4k, ...)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20))
      ->capture_default_str();
  app.add_option("--slow-rate", cfg.slow_rate, "MB/s the worker consumes while slow")
      ->check(CLI::Range(0.001, 1e6))
      ->capture_default_str();
  app.add_option("--release-after", cfg.release_after, "seconds until the worker runs unlimited (default: duration / 2)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_flag("--json", cfg.json, "print the samples as JSON lines");
  try {
    app.parse(argc, argv);
    if (cfg.mode == "client" && cfg.port == 0) throw CLI::ValidationError("--port", "--mode client needs --port");
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (cfg.release_after < 0) cfg.release_after = cfg.duration / 2;

  try {
    ringflow::runtime rt({.threads = 2});
    return rt.block_on(run(cfg));
  } catch (const std::exception& e) {
    fmt::print(stderr, "backpressure_pipe: {}\n", e.what());
    return 1;
  }
}
