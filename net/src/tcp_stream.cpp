#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <ringflow/blocking.hpp>
#include <ringflow/detail/buffer_ring.hpp>
#include <ringflow/detail/io_op.hpp>
#include <ringflow/detail/tcp_resolve.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/tcp.hpp>

namespace ringflow {

namespace detail {

struct tcp_stream_access {
  // The receive state, made by the first read (one allocation per stream).
  static recv_state* state(tcp_stream& s) {
    if (!s.rs_) s.rs_ = new recv_state(s.fd_);
    return s.rs_;
  }
  static recv_snapshot inspect(const tcp_stream& s) noexcept {
    recv_snapshot r;
    if (const recv_state* st = s.rs_) {
      r.spilled = st->spill.size() - st->spill_pos;
      r.attached = st->owner.load(std::memory_order_acquire) != nullptr;
      if (r.attached) {
        r.queued = st->queued;
        r.armed = st->armed();
      }
    }
    return r;
  }
};

namespace {

// A state reference held by a helper task spawned on the owner worker.
class state_ref {
 public:
  explicit state_ref(recv_state* st) noexcept : st_(st) { st_->add_ref(); }
  state_ref(state_ref&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
  state_ref(const state_ref&) = delete;
  state_ref& operator=(const state_ref&) = delete;
  ~state_ref() {
    if (st_) st_->release();
  }
  recv_state* get() const noexcept { return st_; }

 private:
  recv_state* st_;
};

// The stream is gone (closed, released, destroyed, moved over): its state
// must stop receiving and give its buffers back, on the owner's thread.
void drop_state(recv_state* st) noexcept;

// Runs on the owner: stops the receive of a stream that is gone.
task<void> abandon_on_owner(state_ref ref) {
  recv_state* st = ref.get();
  if (worker* w = tls_worker; st->owner.load(std::memory_order_acquire) == w) st->abandon(*w);
  co_return;
}

void drop_state(recv_state* st) noexcept {
  st->orphaned.store(true, std::memory_order_release);
  if (worker* o = st->owner.load(std::memory_order_acquire)) {
    if (o == tls_worker) {
      st->abandon(*o);
    } else if (!o->core().stopping()) {
      try {
        spawn_on(*o, abandon_on_owner(state_ref(st))).detach();
      } catch (...) {
        // Out of memory: the state (and its buffers) stay with the owner
        // until its runtime shuts down and frees them.
      }
    }
    // else the owner is shutting down: it ends the receive and frees the
    // state (buffer_ring::detach_all), whichever of us lets go last.
  }
  st->release();
}

// Parks a task in one of recv_state's wake slots (Slot) until on_cqe queues
// its resumption. UntilDisarmed: ready at once when no receive is armed.
// Cancelled: the slot is cleared, or the queued resumption withdrawn.
template <std::coroutine_handle<> recv_state::*Slot, bool UntilDisarmed>
class slot_wait {
 public:
  slot_wait(recv_state* st, worker* w) noexcept : st_(st), w_(w) {}
  slot_wait(const slot_wait&) = delete;
  slot_wait& operator=(const slot_wait&) = delete;
  bool await_ready() const noexcept { return UntilDisarmed && !st_->armed(); }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    h_ = h;
    st_->*Slot = h;
  }
  void await_resume() noexcept { h_ = {}; }
  ~slot_wait() {
    if (!h_) return;
    if (st_->*Slot == h_) {
      st_->*Slot = {};
    } else {
      w_->unschedule(h_);  // on_cqe had queued it
    }
  }

 private:
  recv_state* st_;
  worker* w_;
  std::coroutine_handle<> h_{};
};

// Suspends a leave task until the armed receive's final completion.
using final_wait = slot_wait<&recv_state::finisher, true>;

// Runs on the owner for a read that moved to another worker: ends the
// receive and moves the queued bytes into the spill, detaching the state.
task<void> leave_owner(state_ref ref) {
  recv_state* st = ref.get();
  worker* w = tls_worker;
  if (st->owner.load(std::memory_order_acquire) != w) co_return;
  if (st->armed()) {
    if (!st->cancel_sent) st->request_cancel(*w);
    final_wait fw(st, w);
    co_await fw;
  }
  if (st->owner.load(std::memory_order_relaxed) == w) st->spill_queue();
}

// On the reading worker: takes the state away from its previous owner.
task<void> leave(recv_state* st, worker* from) {
  worker* w = tls_worker;
  if (!from->core().stopping()) {
    join_handle<void> h = spawn_on(*from, leave_owner(state_ref(st)));
    try {
      co_await std::move(h);
    } catch (const std::runtime_error&) {
      // Cancelled: the owner's runtime shut down first; its teardown spills
      // the queue (below).
    }
  }
  // The owner's runtime is shutting down: its teardown ends the receive and
  // spills the queue in a moment (it waits for nothing of ours).
  for (worker* o = st->owner.load(std::memory_order_acquire); o && o != w;
       o = st->owner.load(std::memory_order_acquire)) {
    std::this_thread::yield();
  }
}

// A single-shot receive whose bytes survive its cancellation: if the kernel
// finished the receive before the cancel reached it, the bytes already sit
// in buf (still alive: it belongs to the task that cancelled us, or to one
// being torn down after us) and are kept in the stream's spill.
class stream_recv final : public recv_op {
 public:
  stream_recv(recv_state* st, std::span<std::byte> buf) noexcept : recv_op(st->fd, buf), st_(st), buf_(buf) {}
  stream_recv(const stream_recv&) = delete;
  stream_recv& operator=(const stream_recv&) = delete;
  ~stream_recv() {
    if (!in_flight()) return;
    std::int32_t r = cancel();
    if (r > 0) st_->keep(buf_.first(static_cast<std::size_t>(r)));
  }

 private:
  recv_state* st_;
  std::span<std::byte> buf_;
};

// Marks the state used by one read for the read's lifetime (cancellation included).
class busy_guard {
 public:
  explicit busy_guard(recv_state* st) noexcept : st_(st) {}
  busy_guard(const busy_guard&) = delete;
  busy_guard& operator=(const busy_guard&) = delete;
  ~busy_guard() { st_->busy.store(false, std::memory_order_release); }

 private:
  recv_state* st_;
};

// A read waiting for the multishot receive: on_cqe queues its resumption
// when bytes, an end or a refusal arrive. Cancelled, the receive stays
// armed and what it brings stays queued.
using recv_wait = slot_wait<&recv_state::reader, false>;

[[noreturn]] void throw_errno(int err, const char* what) { throw std::system_error(err, std::system_category(), what); }

task<tcp_stream> connect_impl(std::string host, std::uint16_t port) {
  if (port == 0) throw std::invalid_argument("ringflow::tcp_stream::connect: port 0");
  // A name may need a DNS query: the blocking pool waits for it, not this
  // worker. A literal is parsed here.
  std::vector<socket_address> addrs;
  if (is_numeric_host(host)) {
    addrs = resolve_tcp(host, port, false);
  } else {
    // Its own statement: g++ 12 destroys twice a closure's captures built
    // inside a co_await expression (see blocking.hpp).
    auto lookup = spawn_blocking([host, port] { return resolve_tcp(host, port, false); });
    addrs = co_await std::move(lookup);
  }
  int last = ECONNREFUSED;
  for (const socket_address& a : addrs) {
    unique_fd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!fd) {
      last = errno;
      continue;
    }
    connect_op op(fd.get(), a.get(), a.len);
    std::int32_t r = co_await op;
    if (r == 0) co_return tcp_stream(fd.release());
    last = -r;
  }
  throw std::system_error(last, std::system_category(), "ringflow::tcp_stream::connect " + host_port(host, port));
}

}  // namespace

recv_snapshot inspect_recv(const tcp_stream& s) noexcept { return tcp_stream_access::inspect(s); }

bool multishot_recv_active() noexcept {
  buffer_ring* br = tls_worker ? tls_worker->recv_buffers() : nullptr;
  return br && br->usable();
}

bool multishot_recv_length_cap() noexcept {
  buffer_ring* br = tls_worker ? tls_worker->recv_buffers() : nullptr;
  return br && br->usable() && br->has_length_cap();
}

}  // namespace detail

tcp_stream::tcp_stream(tcp_stream&& o) noexcept : fd_(std::exchange(o.fd_, -1)), rs_(std::exchange(o.rs_, nullptr)) {}

tcp_stream& tcp_stream::operator=(tcp_stream&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    rs_ = std::exchange(o.rs_, nullptr);
  }
  return *this;
}

void tcp_stream::close() noexcept {
  if (rs_) detail::drop_state(std::exchange(rs_, nullptr));
  // The socket file lives on in the kernel until an armed receive has ended.
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int tcp_stream::release() noexcept {
  if (rs_) detail::drop_state(std::exchange(rs_, nullptr));
  return std::exchange(fd_, -1);
}

task<tcp_stream> tcp_stream::connect(std::string_view host, std::uint16_t port) {
  // Not a coroutine itself: host is copied now, before the caller's string can go.
  return detail::connect_impl(std::string(host), port);
}

task<std::size_t> tcp_stream::read(std::span<std::byte> buf) {
  if (fd_ < 0) throw std::logic_error("ringflow::tcp_stream::read on a closed stream");
  if (buf.empty()) co_return 0;
  detail::recv_state* st = detail::tcp_stream_access::state(*this);
  if (st->busy.exchange(true, std::memory_order_acquire)) {
    // Another read of this stream is in progress: leave the queue to it.
    for (;;) {
      detail::stream_recv op(st, buf);
      std::int32_t r = co_await op;
      if (r >= 0) co_return static_cast<std::size_t>(r);
      if (r != -EINTR && r != -EAGAIN) detail::throw_errno(-r, "ringflow::tcp_stream::read");
    }
  }
  detail::busy_guard busy(st);
  if (std::size_t n = st->take_spill(buf)) co_return n;
  detail::worker* w = detail::tls_worker;
  if (!w) throw std::logic_error("ringflow::tcp_stream::read awaited outside a runtime");
  if (detail::worker* o = st->owner.load(std::memory_order_acquire); o && o != w) {
    co_await detail::leave(st, o);
    if (std::size_t n = st->take_spill(buf)) co_return n;
  }
  // From here on the state is detached or ours.
  detail::buffer_ring* br = w->recv_buffers();
  for (;;) {
    if (st->queued > 0) co_return st->consume(buf);
    if (st->end != 1) {
      const int end = std::exchange(st->end, 1);  // reported once, like a single-shot receive's
      if (end == 0) co_return 0;
      detail::throw_errno(-end, "ringflow::tcp_stream::read");
    }
    if (st->armed() || (br && br->usable() && !std::exchange(st->nobufs, false) && br->free_buffers() > 0)) {
      if (!st->armed()) st->arm(*w, *br);
      detail::recv_wait wait(st, w);
      co_await wait;
      continue;
    }
    // Single-shot: no multishot receive here, or the ring ran dry.
    detail::stream_recv op(st, buf);
    std::int32_t r = co_await op;
    if (r >= 0) co_return static_cast<std::size_t>(r);
    if (r != -EINTR && r != -EAGAIN) detail::throw_errno(-r, "ringflow::tcp_stream::read");
  }
}

task<void> tcp_stream::write_all(std::span<const std::byte> data) {
  if (fd_ < 0) throw std::logic_error("ringflow::tcp_stream::write_all on a closed stream");
  const int fd = fd_;
  while (!data.empty()) {
    detail::send_op op(fd, data);
    std::int32_t r = co_await op;
    if (r > 0) {
      data = data.subspan(static_cast<std::size_t>(r));
    } else if (r == 0) {
      detail::throw_errno(EPIPE, "ringflow::tcp_stream::write_all");  // a send that takes nothing: no progress possible
    } else if (r != -EINTR && r != -EAGAIN) {
      detail::throw_errno(-r, "ringflow::tcp_stream::write_all");
    }
  }
}

void tcp_stream::shutdown_write() {
  if (fd_ < 0) throw std::logic_error("ringflow::tcp_stream::shutdown_write on a closed stream");
  if (::shutdown(fd_, SHUT_WR) != 0) detail::throw_errno(errno, "ringflow::tcp_stream::shutdown_write");
}

void tcp_stream::set_nodelay(bool on) {
  if (fd_ < 0) throw std::logic_error("ringflow::tcp_stream::set_nodelay on a closed stream");
  int v = on ? 1 : 0;
  if (::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0) {
    detail::throw_errno(errno, "ringflow::tcp_stream::set_nodelay");
  }
}

std::uint16_t tcp_stream::local_port() const {
  if (fd_ < 0) throw std::logic_error("ringflow::tcp_stream::local_port on a closed stream");
  return detail::socket_port(fd_, false);
}

std::uint16_t tcp_stream::peer_port() const {
  if (fd_ < 0) throw std::logic_error("ringflow::tcp_stream::peer_port on a closed stream");
  return detail::socket_port(fd_, true);
}

}  // namespace ringflow
