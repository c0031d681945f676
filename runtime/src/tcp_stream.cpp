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
#include <utility>

#include <ringflow/detail/io_op.hpp>
#include <ringflow/detail/tcp_resolve.hpp>
#include <ringflow/tcp.hpp>

namespace ringflow {

namespace detail {

struct tcp_stream_access {
  // Keeps bytes a cancelled read took off the socket; the next read returns them.
  static void keep_unread(tcp_stream& s, std::span<const std::byte> bytes) {
    if (s.unread_pos_ > 0) {
      s.unread_.erase(s.unread_.begin(), s.unread_.begin() + static_cast<std::ptrdiff_t>(s.unread_pos_));
      s.unread_pos_ = 0;
    }
    s.unread_.insert(s.unread_.end(), bytes.begin(), bytes.end());
  }
  static std::size_t take_unread(tcp_stream& s, std::span<std::byte> buf) noexcept {
    std::size_t n = std::min(buf.size(), s.unread_.size() - s.unread_pos_);
    std::memcpy(buf.data(), s.unread_.data() + s.unread_pos_, n);
    s.unread_pos_ += n;
    if (s.unread_pos_ == s.unread_.size()) {
      s.unread_.clear();
      s.unread_pos_ = 0;
    }
    return n;
  }
  static bool has_unread(const tcp_stream& s) noexcept { return s.unread_pos_ < s.unread_.size(); }
};

namespace {

// A receive whose bytes survive its cancellation: if the kernel finished the
// receive before the cancel reached it, the bytes already sit in buf (still
// alive: it belongs to the task that cancelled us, or to one being torn down
// after us) and are moved into the stream.
class stream_recv final : public recv_op {
 public:
  stream_recv(tcp_stream* s, std::span<std::byte> buf) noexcept : recv_op(s->native_handle(), buf), s_(s), buf_(buf) {}
  stream_recv(const stream_recv&) = delete;
  stream_recv& operator=(const stream_recv&) = delete;
  ~stream_recv() {
    if (!in_flight()) return;
    std::int32_t r = cancel();
    if (r > 0) tcp_stream_access::keep_unread(*s_, buf_.first(static_cast<std::size_t>(r)));
  }

 private:
  tcp_stream* s_;
  std::span<std::byte> buf_;
};

[[noreturn]] void throw_errno(int err, const char* what) { throw std::system_error(err, std::system_category(), what); }

task<tcp_stream> connect_impl(std::string host, std::uint16_t port) {
  if (port == 0) throw std::invalid_argument("ringflow::tcp_stream::connect: port 0");
  std::vector<socket_address> addrs = resolve_tcp(host, port, false);
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
}  // namespace detail

tcp_stream::tcp_stream(tcp_stream&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), unread_(std::move(o.unread_)), unread_pos_(std::exchange(o.unread_pos_, 0)) {
  o.unread_.clear();
}

tcp_stream& tcp_stream::operator=(tcp_stream&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    unread_ = std::move(o.unread_);
    o.unread_.clear();
    unread_pos_ = std::exchange(o.unread_pos_, 0);
  }
  return *this;
}

void tcp_stream::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  unread_.clear();
  unread_pos_ = 0;
}

int tcp_stream::release() noexcept {
  unread_.clear();
  unread_pos_ = 0;
  return std::exchange(fd_, -1);
}

task<tcp_stream> tcp_stream::connect(std::string_view host, std::uint16_t port) {
  // Not a coroutine itself: host is copied now, before the caller's string can go.
  return detail::connect_impl(std::string(host), port);
}

task<std::size_t> tcp_stream::read(std::span<std::byte> buf) {
  if (fd_ < 0) throw std::logic_error("ringflow::tcp_stream::read on a closed stream");
  if (buf.empty()) co_return 0;
  if (detail::tcp_stream_access::has_unread(*this)) co_return detail::tcp_stream_access::take_unread(*this, buf);
  for (;;) {
    detail::stream_recv op(this, buf);
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
