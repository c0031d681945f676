// TCP over io_uring: tcp_stream (a connection) and tcp_listener (a server socket).
//
//   auto l = ringflow::tcp_listener::bind("127.0.0.1", 0);     // port 0: ephemeral
//   ringflow::tcp_stream s = co_await l.accept();
//   std::byte buf[4096];
//   while (std::size_t n = co_await s.read(buf)) co_await s.write_all({buf, n});
//
//   auto c = co_await ringflow::tcp_stream::connect("localhost", l.local_port());
//
// Every read, write, connect and accept goes through io_uring and is
// submitted on the ring of the worker where the awaiting task runs, so a
// stream or a listener may be used from tasks on any worker of any runtime.
// A stream is full duplex: one task may read while another writes, but two
// concurrent reads (or two concurrent writes) on one stream interleave
// unpredictably. Do not move, close or destroy a stream or a listener while
// one of its operations is pending in another task: cancel that task first.
// A stream may outlive the runtime it was read on: bytes its receive had
// queued stay in the stream for the next read, on any runtime.
//
// Errors: misuse and bad arguments throw std::invalid_argument (an empty host,
// port 0 for connect, a negative backlog) or std::logic_error (a closed
// stream or listener); operating-system failures throw std::system_error
// carrying the errno (connection refused, reset peer, address in use, ...);
// a name that does not resolve throws std::system_error in
// ringflow::resolver_category() (EAI_* codes). Writes use MSG_NOSIGNAL: a write
// to a closed peer throws (EPIPE or ECONNRESET) and never raises SIGPIPE.
//
// Name resolution: connect runs getaddrinfo on the runtime's blocking pool
// (spawn_blocking), so a slow DNS query blocks no worker; IPv4 and IPv6
// literals ("127.0.0.1", "::1", "[::1]") are parsed on the worker, with no
// thread hop. Names from /etc/hosts ("localhost") resolve without the
// network. tcp_listener::bind resolves on the calling thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {
struct accept_state;
struct recv_state;
struct tcp_stream_access;
}  // namespace detail

// The category of getaddrinfo failures (values are EAI_* codes).
const std::error_category& resolver_category() noexcept;

class tcp_stream {
 public:
  // A stream that is not open.
  tcp_stream() noexcept = default;
  // Adopts a connected stream socket (closes it on destruction).
  explicit tcp_stream(int fd) noexcept : fd_(fd) {}
  tcp_stream(tcp_stream&& o) noexcept;
  tcp_stream& operator=(tcp_stream&& o) noexcept;
  tcp_stream(const tcp_stream&) = delete;
  tcp_stream& operator=(const tcp_stream&) = delete;
  ~tcp_stream() { close(); }

  // Resolves host and tries each of its addresses in turn (IPv6 and IPv4)
  // with IORING_OP_CONNECT until one accepts. Throws std::invalid_argument for
  // an empty host or port 0, std::system_error with the last address's errno
  // when none accepts (ECONNREFUSED, ETIMEDOUT, ENETUNREACH, ...). host is
  // copied at once: the argument may die before the task runs.
  // Cancel safety: cancelling it cancels the connect in flight, waits for the
  // kernel to let go of it, and closes the half-made socket; cancelled during
  // name resolution, the lookup finishes on the pool and its result is dropped.
  static task<tcp_stream> connect(std::string_view host, std::uint16_t port);

  // Receives up to buf.size() bytes; suspends until at least one byte
  // arrived. Returns 0 at end of stream (the peer shut down its writing
  // side), and 0 at once for an empty buf. Throws std::system_error (e.g.
  // ECONNRESET), std::logic_error on a closed stream or outside a runtime.
  // buf must stay alive until the task finished or was cancelled.
  //
  // How: where the kernel has them (Linux 6.0+), a read arms one multishot
  // receive (IORING_RECV_MULTISHOT) into the worker's ring of provided
  // buffers, and it stays armed across reads: a stream read in a loop costs
  // a completion per arrival and a copy, and no submission per read. Bytes
  // that arrive while no read waits stay queued, at most 64 KiB (plus the
  // rest of a 4 KiB buffer) per stream: at that cap the receive stops (the
  // kernel's own length cap on 6.17+, a cancel before) and only a read that
  // drained the queue re-arms it, so a reader that stops reading still
  // closes the TCP window. When the ring runs dry (many connections holding
  // unread bytes), a read falls back to a single-shot IORING_OP_RECV into
  // buf, which is the only path on older kernels or when the environment
  // variable RINGFLOW_NO_MULTISHOT_RECV is set when the runtime starts.
  // Reads from tasks on different workers work: a read on another worker
  // first has the previous one cancel its receive and hand the queued bytes
  // over (a task spawned there: a cross-worker round trip), so a stream
  // whose reads stay on one worker is the fast case.
  //
  // Cancel safety: cancelling a read (e.g. ringflow::timeout destroying it)
  // loses nothing. The multishot receive writes only into the worker's
  // ring; it stays armed and what it brings stays queued for the next read.
  // A single-shot receive is cancelled and its final completion awaited, so
  // the kernel never writes into a freed buffer, and bytes it had already
  // taken off the socket are kept in the stream and returned first.
  task<std::size_t> read(std::span<std::byte> buf);

  // Sends all of data (IORING_OP_SEND with MSG_NOSIGNAL, looping over short
  // sends); suspends while the peer's window is closed, which is how a slow
  // reader slows the writer down. An empty span is a no-op. Throws
  // std::system_error (EPIPE, ECONNRESET, ...), std::logic_error on a closed
  // stream.
  // Cancel safety: cancelling it cancels the send in flight and waits for its
  // completion (the kernel never reads freed memory), but a prefix of data
  // may already have been sent: after a cancelled write_all the byte stream
  // is cut at an unknown point, so close the stream unless that is fine.
  task<void> write_all(std::span<const std::byte> data);

  // Sends FIN after the data already written; reading goes on (half-close).
  // Throws std::system_error (e.g. ENOTCONN), std::logic_error when closed.
  void shutdown_write();
  // Closes the socket now (idempotent). Pending operations of other tasks
  // are not interrupted by it: cancel them first. Unread bytes are dropped;
  // an armed multishot receive is cancelled on its worker (asynchronously
  // when called from another thread).
  void close() noexcept;

  // TCP_NODELAY: disables Nagle's algorithm. Throws like shutdown_write().
  void set_nodelay(bool on);
  int native_handle() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  // Gives up ownership of the socket (the stream is then closed). Bytes the
  // stream had received but not returned are dropped; called from another
  // thread than the stream's reading worker, the armed receive may still
  // take bytes off the socket until that worker has cancelled it.
  int release() noexcept;
  // The local and the peer's port (std::system_error when unavailable).
  std::uint16_t local_port() const;
  std::uint16_t peer_port() const;

 private:
  friend struct detail::tcp_stream_access;
  int fd_ = -1;
  // The receive side, made by the first read: the multishot receive and its
  // queue, and bytes kept by cancelled reads (detail/buffer_ring.hpp).
  detail::recv_state* rs_ = nullptr;
};

class tcp_listener {
 public:
  // A listener that is not open.
  tcp_listener() noexcept = default;
  tcp_listener(tcp_listener&& o) noexcept;
  tcp_listener& operator=(tcp_listener&& o) noexcept;
  tcp_listener(const tcp_listener&) = delete;
  tcp_listener& operator=(const tcp_listener&) = delete;
  ~tcp_listener() { close(); }

  // Resolves host ("127.0.0.1", "::1", "0.0.0.0", "::", "localhost", ...),
  // then binds (SO_REUSEADDR) and listens on the first address that works.
  // port 0: an ephemeral port (see local_port()). Throws std::invalid_argument
  // for an empty host or a negative backlog, std::system_error with the errno
  // otherwise (EADDRINUSE, EADDRNOTAVAIL, EACCES, ...).
  static tcp_listener bind(std::string_view host, std::uint16_t port, int backlog = 1024);

  // The port the listener is bound to (std::logic_error when closed).
  std::uint16_t local_port() const;

  // The next accepted connection, in arrival order; accepts waiting together
  // are served first-come, first-served.
  //
  // How it works: the first accept() starts an accept loop on the awaiting
  // task's worker. It keeps one multishot IORING_OP_ACCEPT armed (probed once:
  // Linux 5.19+; a single-shot accept loop otherwise, or when the environment
  // variable RINGFLOW_NO_MULTISHOT_ACCEPT is set when the loop starts) and
  // queues the connections that arrive while nobody awaits accept(); they are
  // handed to the next accept() callers without a system call. The loop
  // survives running out of descriptors: on EMFILE/ENFILE/ENOBUFS/ENOMEM it
  // backs off 10 ms (an io_uring timer; no thread sleeps) and retries, while
  // pending accept() calls keep waiting and the connections stay queued in
  // the kernel; see accept_errors(). Per-connection failures (ECONNABORTED,
  // a peer that reset before it was accepted, ...) are skipped.
  //
  // Throws std::system_error(ECANCELED) when the listener is closed while
  // waiting, std::system_error(errno) if the socket itself failed for good,
  // std::logic_error on a closed listener.
  //
  // Cancel safety: a cancelled accept() (e.g. by ringflow::timeout) loses no
  // connection: the kernel accept belongs to the listener's loop, not to the
  // cancelled task, so a connection that arrives after the cancellation (or
  // was being handed to the cancelled task) is queued for the next accept(),
  // or closed if the listener is gone.
  task<tcp_stream> accept();

  // Closes the listener (idempotent): pending accept() calls throw
  // std::system_error(ECANCELED), queued connections are closed, the accept
  // loop stops (shutdown(2) ends the armed accept in the kernel). The socket
  // itself is closed as soon as the loop has let go of it.
  void close() noexcept;
  bool is_open() const noexcept { return st_ != nullptr; }
  int native_handle() const noexcept;

  // Running out of resources while accepting (EMFILE, ENFILE, ENOBUFS,
  // ENOMEM) is observed once per episode: an episode starts with the first
  // such failure and ends with the next connection accepted, however many
  // times the loop retried in between. accept_errors() counts episodes,
  // last_accept_error() is the latest failure, and the handler set by
  // on_accept_error() runs once at the start of each episode, on the accept
  // loop's worker (it must not block; exceptions from it are ignored).
  std::uint64_t accept_errors() const noexcept;
  std::error_code last_accept_error() const noexcept;
  void on_accept_error(std::function<void(std::error_code)> handler);

  // Connections accepted by the loop and waiting for an accept() call.
  std::size_t queued() const noexcept;

 private:
  tcp_listener(detail::accept_state* st, std::uint16_t port) noexcept : st_(st), port_(port) {}
  detail::accept_state* st_ = nullptr;
  std::uint16_t port_ = 0;
};

}  // namespace ringflow
