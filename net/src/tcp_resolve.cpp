#include <ringflow/detail/tcp_resolve.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include <ringflow/tcp.hpp>

namespace ringflow {

namespace {
class resolver_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};
}  // namespace

const std::error_category& resolver_category() noexcept {
  static const resolver_category_impl cat;
  return cat;
}

namespace detail {

std::string host_port(std::string_view host, std::uint16_t port) {
  std::string s;
  bool v6 = host.find(':') != std::string_view::npos && host.front() != '[';
  if (v6) s += '[';
  s += host;
  if (v6) s += ']';
  s += ':';
  s += std::to_string(port);
  return s;
}

bool is_numeric_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host.size() >= INET6_ADDRSTRLEN || host.find('\0') != std::string_view::npos) return false;
  std::string name(host);
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, name.c_str(), buf) == 1 || ::inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

std::vector<socket_address> resolve_tcp(std::string_view host, std::uint16_t port, bool passive) {
  if (host.empty()) throw std::invalid_argument("ringflow: empty host name");
  if (host.find('\0') != std::string_view::npos) throw std::invalid_argument("ringflow: host name contains a NUL byte");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) throw std::invalid_argument("ringflow: empty host name");

  std::string name(host);
  std::string service = std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(name.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    std::string what = "ringflow: cannot resolve " + name;
    if (rc == EAI_SYSTEM) throw std::system_error(errno, std::system_category(), what);
    throw std::system_error(rc, resolver_category(), what);
  }
  std::vector<socket_address> out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    socket_address a;
    std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
    a.len = ai->ai_addrlen;
    a.family = ai->ai_family;
    out.push_back(a);
  }
  ::freeaddrinfo(res);
  if (out.empty()) throw std::system_error(EAI_NONAME, resolver_category(), "ringflow: no TCP address for " + name);
  return out;
}

std::uint16_t socket_port(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  auto* sa = reinterpret_cast<sockaddr*>(&ss);
  int rc = peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len);
  if (rc != 0) throw std::system_error(errno, std::system_category(), peer ? "getpeername" : "getsockname");
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  throw std::system_error(EAFNOSUPPORT, std::system_category(), "ringflow: not an IP socket");
}

}  // namespace detail
}  // namespace ringflow
