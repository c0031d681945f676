// io_op: one io_uring operation awaited by one coroutine.
//
//   detail::recv_op op(fd, buf);        // a named local: never a braced temporary
//   std::int32_t res = co_await op;     // the CQE's res (-errno on failure)
//
// The operation is submitted on the ring of the worker where the awaiting
// coroutine runs (tls_worker at await_suspend time); its completion lives in
// the awaiter, i.e. in the awaiting coroutine's frame.
//
// Cancel safety: destroying the frame while the operation is in flight (e.g.
// ringflow::timeout) runs the awaiter's destructor, which cancels the
// operation (IORING_OP_ASYNC_CANCEL) and waits for its final CQE before the
// memory the kernel may write (the completion, a buffer, a sockaddr) goes.
// An operation can finish in the kernel just before the cancel reaches it;
// cancel() returns that final result, so the owner can keep what was already
// done (bytes received, a connection accepted) instead of losing it.
#pragma once

#include <liburing.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>

#include <ringflow/detail/completion.hpp>
#include <ringflow/detail/worker.hpp>

namespace ringflow::detail {

class uring_op {
 public:
  uring_op() = default;
  uring_op(const uring_op&) = delete;
  uring_op& operator=(const uring_op&) = delete;
  ~uring_op() { cancel(); }

  bool await_ready() const noexcept { return false; }
  std::int32_t await_resume() const noexcept { return c_.res; }

  bool in_flight() const noexcept { return c_.in_flight; }

  // Own worker only. Cancels the operation if it is in flight and waits for
  // its final CQE. Returns that CQE's res when the operation finished anyway
  // (>= 0: it completed before the cancel reached it), else -ECANCELED.
  std::int32_t cancel() {
    if (!c_.in_flight) return -ECANCELED;
    c_.res = no_result;
    w_->cancel_and_wait(c_);
    return c_.res == no_result ? -ECANCELED : c_.res;
  }

 protected:
  // Starts an operation: binds it to the current worker and returns the SQE
  // to prepare; submit() then hands it to the ring.
  io_uring_sqe* begin(std::coroutine_handle<> h) {
    w_ = tls_worker;
    if (!w_) throw std::logic_error("ringflow: an io operation was awaited outside a runtime");
    c_.waiter = h;
    c_.res = 0;
    c_.flags = 0;
    return w_->get_sqe();
  }
  void submit(io_uring_sqe* sqe) noexcept { w_->track(c_, sqe); }

  // A res no CQE carries: tells "cancelled before it finished" apart.
  static constexpr std::int32_t no_result = INT32_MIN;
  // Lengths above this are split by the callers (a CQE's res is 32 bits).
  static constexpr std::size_t max_io = std::size_t{1} << 30;

  completion c_;
  worker* w_ = nullptr;
};

// IORING_OP_RECV into buf (at most 1 GiB at a time). res: bytes, 0 at EOF.
class recv_op : public uring_op {
 public:
  recv_op(int fd, std::span<std::byte> buf) noexcept : fd_(fd), buf_(buf) {}
  void await_suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = begin(h);
    io_uring_prep_recv(sqe, fd_, buf_.data(), buf_.size() < max_io ? buf_.size() : max_io, 0);
    submit(sqe);
  }

 private:
  int fd_;
  std::span<std::byte> buf_;
};

// IORING_OP_SEND with MSG_NOSIGNAL (a closed peer gives -EPIPE, never SIGPIPE).
// res: bytes sent, possibly fewer than asked.
class send_op : public uring_op {
 public:
  send_op(int fd, std::span<const std::byte> data) noexcept : fd_(fd), data_(data) {}
  void await_suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = begin(h);
    io_uring_prep_send(sqe, fd_, data_.data(), data_.size() < max_io ? data_.size() : max_io, MSG_NOSIGNAL);
    submit(sqe);
  }

 private:
  int fd_;
  std::span<const std::byte> data_;
};

// IORING_OP_CONNECT; the address is copied into the awaiter, so it lives
// until the final CQE whatever the caller does with its own copy.
class connect_op : public uring_op {
 public:
  connect_op(int fd, const sockaddr* addr, socklen_t len) noexcept : fd_(fd), len_(len) {
    if (len_ > sizeof addr_) len_ = sizeof addr_;
    std::memcpy(&addr_, addr, len_);
  }
  void await_suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = begin(h);
    io_uring_prep_connect(sqe, fd_, reinterpret_cast<const sockaddr*>(&addr_), len_);
    submit(sqe);
  }

 private:
  int fd_;
  sockaddr_storage addr_{};
  socklen_t len_;
};

// One single-shot IORING_OP_ACCEPT (SOCK_CLOEXEC). res: the new fd.
class accept_op : public uring_op {
 public:
  explicit accept_op(int fd) noexcept : fd_(fd) {}
  void await_suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = begin(h);
    io_uring_prep_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
    submit(sqe);
  }

 private:
  int fd_;
};

}  // namespace ringflow::detail

namespace ringflow::detail {

// One single-shot IORING_OP_POLL_ADD for `events` (POLLIN, POLLOUT, ...).
// res: the revents (POLLERR and POLLHUP may come unasked), or -errno. A poll
// consumes nothing, so cancelling one loses nothing.
class poll_op : public uring_op {
 public:
  poll_op(int fd, unsigned events) noexcept : fd_(fd), events_(events) {}
  void await_suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = begin(h);
    io_uring_prep_poll_add(sqe, fd_, events_);
    submit(sqe);
  }

 private:
  int fd_;
  unsigned events_;
};

}  // namespace ringflow::detail
