// Helpers shared by tcp_stream and tcp_listener: name resolution and an
// owning file descriptor.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringflow::detail {

struct socket_address {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&addr); }
};

// getaddrinfo(host, port) for SOCK_STREAM, in the resolver's order. host may be
// an IPv6 literal in brackets ("[::1]"). passive: addresses to bind to.
// Throws std::invalid_argument for an empty host or one with a NUL byte,
// std::system_error (resolver_category(), or errno for EAI_SYSTEM) when the
// name does not resolve.
std::vector<socket_address> resolve_tcp(std::string_view host, std::uint16_t port, bool passive);

// True when host is an IPv4 or IPv6 literal (brackets allowed): resolve_tcp
// then parses it without a lookup, so it never blocks.
bool is_numeric_host(std::string_view host);

// "host:port" for error messages ("[::1]:80" for IPv6 literals).
std::string host_port(std::string_view host, std::uint16_t port);

// The port of a bound socket (getsockname / getpeername).
std::uint16_t socket_port(int fd, bool peer);

class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace ringflow::detail
