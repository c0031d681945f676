// tcp_listener: a listening socket, an accept loop and a queue of accepted
// connections.
//
// The state (accept_state) is shared, reference-counted, by the listener
// object, the accept loop (a task spawned on the worker of the first
// accept() call) and each pending accept() task; the listening fd is closed
// when the last of them lets go, so the loop never arms an accept on a fd
// number that was closed and reused. The loop hands each accepted fd to the
// oldest waiting accept() (resuming it on its own worker) or queues it.
// Closing the listener marks the state closed, wakes the waiters and calls
// shutdown(2) on the socket, which ends an armed accept in the kernel with
// EINVAL; the loop then sees the state closed and ends.
#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <ringflow/detail/io_op.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/tcp_resolve.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/sleep.hpp>
#include <ringflow/tcp.hpp>

namespace ringflow {

namespace detail {

class accept_wait;

struct accept_state {
  explicit accept_state(int f) noexcept : fd(f) {}
  accept_state(const accept_state&) = delete;
  accept_state& operator=(const accept_state&) = delete;

  std::atomic<int> refs{1};
  const int fd;

  mutable spinlock lock;
  // ---- under lock ----
  bool closed = false;
  int fatal = 0;  // errno that ended accepting for good
  bool loop_running = false;
  bool in_episode = false;  // a resource failure since the last connection accepted
  std::deque<int> ready;
  std::deque<accept_wait*> waiters;
  std::function<void(std::error_code)> handler;
  // ---- lock-free readers ----
  std::atomic<std::uint64_t> episodes{0};
  std::atomic<int> last_error{0};
  std::atomic<std::size_t> queued{0};

  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    for (int f : ready) ::close(f);
    ::close(fd);
    delete this;
  }
  bool stopped() const noexcept {
    lock.lock();
    bool s = closed || fatal != 0;
    lock.unlock();
    return s;
  }

  // Lock held: resumes waiter a with fd (or err) on its own worker. Returns a
  // worker the caller must wake() once the lock is dropped, or null.
  static worker* hand_to(accept_wait* a, int fd, int err);
  // A connection for the next accept(): from the loop (front = false), or
  // given back by a cancelled accept() (front = true: it keeps its place).
  void offer(int f, bool front);
  void note_resource_error(int err);
  // Ends accepting: closed by the owner (ECANCELED for waiters) or a fatal error.
  void stop(bool by_close, int err);
};

// A reference for the accept() task and for the loop; the loop's also
// clears loop_running when it goes, even if the loop never started
// (its frame destroyed with a runtime that shut down first).
class state_ref {
 public:
  state_ref(accept_state* st, bool is_loop) noexcept : st_(st), loop_(is_loop) {
    if (st_) st_->add_ref();
  }
  state_ref(state_ref&& o) noexcept : st_(std::exchange(o.st_, nullptr)), loop_(o.loop_) {}
  state_ref(const state_ref&) = delete;
  state_ref& operator=(const state_ref&) = delete;
  ~state_ref() {
    if (!st_) return;
    if (loop_) {
      st_->lock.lock();
      st_->loop_running = false;
      st_->lock.unlock();
    }
    st_->release();
  }
  accept_state* get() const noexcept { return st_; }
  accept_state* operator->() const noexcept { return st_; }

 private:
  accept_state* st_;
  bool loop_;
};

task<void> accept_loop(state_ref st);

// The awaiter of one accept() call.
class accept_wait {
 public:
  explicit accept_wait(accept_state* st) noexcept : st_(st) {}
  accept_wait(const accept_wait&) = delete;
  accept_wait& operator=(const accept_wait&) = delete;

  bool await_ready() const noexcept { return false; }

  bool await_suspend(std::coroutine_handle<> h) {
    worker* w = tls_worker;
    if (!w) throw std::logic_error("ringflow::tcp_listener::accept awaited outside a runtime");
    bool start = false;
    st_->lock.lock();
    if (st_->closed) {
      err_ = ECANCELED;
    } else if (!st_->ready.empty()) {
      fd_ = st_->ready.front();
      st_->ready.pop_front();
      st_->queued.store(st_->ready.size(), std::memory_order_relaxed);
    } else if (st_->fatal) {
      err_ = st_->fatal;
    } else {
      h_ = h;
      w_ = w;
      waiting_ = true;
      st_->waiters.push_back(this);
    }
    if (!st_->closed && !st_->fatal && !st_->loop_running) {
      st_->loop_running = true;
      start = true;
    }
    const bool suspend = waiting_;
    st_->lock.unlock();
    if (start) {
      try {
        spawn_local(accept_loop(state_ref(st_, true))).detach();
      } catch (...) {
        st_->lock.lock();
        st_->loop_running = false;
        st_->lock.unlock();
        throw;  // the destructor withdraws this waiter
      }
    }
    return suspend;
  }

  int await_resume() {
    h_ = {};
    if (fd_ >= 0) return std::exchange(fd_, -1);
    if (err_ == ECANCELED) {
      throw std::system_error(err_, std::system_category(), "ringflow::tcp_listener::accept: the listener was closed");
    }
    throw std::system_error(err_, std::system_category(), "ringflow::tcp_listener::accept");
  }

  // Destroyed while suspended (cancelled): withdraw, or take back the
  // connection that was being handed to us and pass it on.
  ~accept_wait() {
    int back = -1;
    if (h_) {
      st_->lock.lock();
      if (waiting_) {
        for (auto it = st_->waiters.begin(); it != st_->waiters.end(); ++it) {
          if (*it == this) {
            st_->waiters.erase(it);
            break;
          }
        }
        waiting_ = false;
      } else if (w_ == tls_worker) {
        // Handed (fd_ or err_ set) and queued for resumption: cancel that.
        w_->unschedule(h_);
      }
      back = std::exchange(fd_, -1);  // read under the lock: hand_to wrote it under it
      st_->lock.unlock();
    } else {
      back = std::exchange(fd_, -1);  // never suspended: nothing else touches fd_
    }
    if (back >= 0) st_->offer(back, true);
  }

 private:
  friend struct accept_state;
  accept_state* st_;
  std::coroutine_handle<> h_{};  // set while suspended
  worker* w_ = nullptr;
  int fd_ = -1;
  int err_ = 0;
  bool waiting_ = false;  // in st_->waiters
};

worker* accept_state::hand_to(accept_wait* a, int f, int err) {
  a->waiting_ = false;
  a->fd_ = f;
  a->err_ = err;
  worker* w = a->w_;
  if (w == tls_worker) {
    w->schedule_local(a->h_);
    return nullptr;
  }
  // Pushed under our lock, so a concurrent destruction of the waiter (which
  // takes the lock first) finds it queued and can withdraw it.
  return w->push_remote(a->h_) ? w : nullptr;
}

void accept_state::offer(int f, bool front) {
  lock.lock();
  if (closed || fatal) {
    lock.unlock();
    ::close(f);
    return;
  }
  if (!front) in_episode = false;
  worker* wake = nullptr;
  if (!waiters.empty()) {
    accept_wait* a = waiters.front();
    waiters.pop_front();
    wake = hand_to(a, f, 0);
  } else {
    if (front) {
      ready.push_front(f);
    } else {
      ready.push_back(f);
    }
    queued.store(ready.size(), std::memory_order_relaxed);
  }
  lock.unlock();
  if (wake) wake->wake();
}

void accept_state::note_resource_error(int err) {
  last_error.store(err, std::memory_order_relaxed);
  std::function<void(std::error_code)> h;
  lock.lock();
  bool first = !in_episode;
  in_episode = true;
  if (first) {
    episodes.fetch_add(1, std::memory_order_relaxed);
    h = handler;
  }
  lock.unlock();
  if (h) {
    try {
      h(std::error_code(err, std::system_category()));
    } catch (...) {
      // documented: ignored
    }
  }
}

void accept_state::stop(bool by_close, int err) {
  std::vector<worker*> wakes;
  std::deque<int> fds;
  std::function<void(std::error_code)> h;
  lock.lock();
  if (by_close) {
    closed = true;
    fds.swap(ready);
    queued.store(0, std::memory_order_relaxed);
    h = std::move(handler);
    handler = nullptr;
  } else {
    fatal = err;
  }
  for (accept_wait* a : waiters) {
    if (worker* w = hand_to(a, -1, by_close ? ECANCELED : err)) wakes.push_back(w);
  }
  waiters.clear();
  lock.unlock();
  for (worker* w : wakes) w->wake();
  for (int f : fds) ::close(f);
}

namespace {

// -1: not probed yet, 0: no multishot accept, 1: multishot accept.
std::atomic<int> multishot_state{-1};

bool multishot_accept_supported() {
  if (std::getenv("RINGFLOW_NO_MULTISHOT_ACCEPT")) return false;
  int v = multishot_state.load(std::memory_order_relaxed);
  if (v < 0) {
    // Multishot accept came with Linux 5.19, as did IORING_OP_SOCKET: the
    // opcode probe stands for the flag, which cannot be probed. A kernel that
    // still refuses it (EINVAL) switches us to single-shot below.
    v = 0;
    if (io_uring_probe* p = io_uring_get_probe_ring(tls_worker->ring())) {
      v = io_uring_opcode_supported(p, IORING_OP_SOCKET) ? 1 : 0;
      io_uring_free_probe(p);
    }
    multishot_state.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

bool is_resource_error(int e) noexcept { return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM; }

// Failures that concern one connection (accept(2) passes pending network
// errors on) or an interrupted attempt: skip and accept the next one.
bool is_transient_error(int e) noexcept {
  switch (e) {
    case ECONNABORTED:
    case ECONNRESET:
    case EINTR:
    case EAGAIN:
    case ECANCELED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}

// One multishot accept: each CQE flagged MORE carries a connection, handed
// straight to the state from the completion callback; the loop resumes only
// on the final CQE (an error, or a last connection).
class multishot_accept final : public uring_op {
 public:
  explicit multishot_accept(accept_state* st) noexcept : st_(st) {}
  multishot_accept(const multishot_accept&) = delete;
  multishot_accept& operator=(const multishot_accept&) = delete;
  void await_suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = begin(h);
    io_uring_prep_multishot_accept(sqe, st_->fd, nullptr, nullptr, SOCK_CLOEXEC);
    c_.on_complete = &on_cqe;
    c_.context = this;
    submit(sqe);
  }
  // Only when the runtime shuts down with the loop armed.
  ~multishot_accept() {
    if (!in_flight()) return;
    std::int32_t r = cancel();
    if (r >= 0) st_->offer(r, false);
  }
  std::uint64_t accepted() const noexcept { return accepted_; }

 private:
  static void on_cqe(completion* c) {
    auto* self = static_cast<multishot_accept*>(c->context);
    if (c->flags & IORING_CQE_F_MORE) {
      if (c->res >= 0) {
        ++self->accepted_;
        self->st_->offer(c->res, false);
      }
      return;
    }
    c->waiter.resume();
  }
  accept_state* st_;
  std::uint64_t accepted_ = 0;
};

// One single-shot accept whose connection, if it arrived just as the loop was
// cancelled (runtime shutdown), still goes to the state.
class single_accept final : public accept_op {
 public:
  explicit single_accept(accept_state* st) noexcept : accept_op(st->fd), st_(st) {}
  single_accept(const single_accept&) = delete;
  single_accept& operator=(const single_accept&) = delete;
  ~single_accept() {
    if (!in_flight()) return;
    std::int32_t r = cancel();
    if (r >= 0) st_->offer(r, false);
  }

 private:
  accept_state* st_;
};

task<tcp_stream> accept_impl(state_ref st) {
  if (!st.get()) throw std::logic_error("ringflow::tcp_listener::accept on a closed listener");
  accept_wait w(st.get());
  int fd = co_await w;
  co_return tcp_stream(fd);
}

}  // namespace

task<void> accept_loop(state_ref st) {
  using namespace std::chrono_literals;
  bool multishot = multishot_accept_supported();
  for (;;) {
    if (st->stopped()) co_return;
    std::int32_t r;
    if (multishot) {
      multishot_accept op(st.get());
      r = co_await op;
      if (r == -EINVAL && op.accepted() == 0 && !st->stopped()) {
        multishot_state.store(0, std::memory_order_relaxed);  // the kernel refuses the flag
        multishot = false;
        continue;
      }
    } else {
      single_accept op(st.get());
      r = co_await op;
    }
    if (r >= 0) {
      st->offer(r, false);
      continue;
    }
    if (st->stopped()) co_return;
    const int e = -r;
    if (is_resource_error(e)) {
      // Out of descriptors or memory: the connection stays queued in the
      // kernel; try again a little later without blocking the worker.
      st->note_resource_error(e);
      co_await sleep_for(10ms);
    } else if (!is_transient_error(e)) {
      st->stop(false, e);
      co_return;
    }
  }
}

}  // namespace detail

tcp_listener::tcp_listener(tcp_listener&& o) noexcept
    : st_(std::exchange(o.st_, nullptr)), port_(std::exchange(o.port_, 0)) {}

tcp_listener& tcp_listener::operator=(tcp_listener&& o) noexcept {
  if (this != &o) {
    close();
    st_ = std::exchange(o.st_, nullptr);
    port_ = std::exchange(o.port_, 0);
  }
  return *this;
}

tcp_listener tcp_listener::bind(std::string_view host, std::uint16_t port, int backlog) {
  if (backlog < 0) throw std::invalid_argument("ringflow::tcp_listener::bind: negative backlog");
  std::vector<detail::socket_address> addrs = detail::resolve_tcp(host, port, true);
  int last = EADDRNOTAVAIL;
  for (const detail::socket_address& a : addrs) {
    detail::unique_fd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!fd) {
      last = errno;
      continue;
    }
    int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(fd.get(), a.get(), a.len) != 0 || ::listen(fd.get(), backlog) != 0) {
      last = errno;
      continue;
    }
    std::uint16_t p = detail::socket_port(fd.get(), false);
    return tcp_listener(new detail::accept_state(fd.release()), p);
  }
  throw std::system_error(last, std::system_category(),
                          "ringflow::tcp_listener::bind " + detail::host_port(host, port));
}

void tcp_listener::close() noexcept {
  detail::accept_state* st = std::exchange(st_, nullptr);
  port_ = 0;
  if (!st) return;
  st->stop(true, ECANCELED);
  // Ends an armed accept in the kernel (EINVAL) and refuses new connections;
  // the fd itself is closed when the loop lets go of the state.
  ::shutdown(st->fd, SHUT_RDWR);
  st->release();
}

std::uint16_t tcp_listener::local_port() const {
  if (!st_) throw std::logic_error("ringflow::tcp_listener::local_port on a closed listener");
  return port_;
}

int tcp_listener::native_handle() const noexcept { return st_ ? st_->fd : -1; }

task<tcp_stream> tcp_listener::accept() {
  // Not a coroutine itself: the task holds the state, not this object.
  return detail::accept_impl(detail::state_ref(st_, false));
}

std::uint64_t tcp_listener::accept_errors() const noexcept {
  return st_ ? st_->episodes.load(std::memory_order_relaxed) : 0;
}

std::error_code tcp_listener::last_accept_error() const noexcept {
  if (!st_) return {};
  int e = st_->last_error.load(std::memory_order_relaxed);
  return e ? std::error_code(e, std::system_category()) : std::error_code{};
}

void tcp_listener::on_accept_error(std::function<void(std::error_code)> handler) {
  if (!st_) throw std::logic_error("ringflow::tcp_listener::on_accept_error on a closed listener");
  st_->lock.lock();
  std::swap(st_->handler, handler);
  st_->lock.unlock();
  // the previous handler is destroyed here, outside the lock
}

std::size_t tcp_listener::queued() const noexcept { return st_ ? st_->queued.load(std::memory_order_relaxed) : 0; }

}  // namespace ringflow
