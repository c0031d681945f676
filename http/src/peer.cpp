// request::peer(): the connection's peer address as text.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "access.hpp"
#include "connection.hpp"

namespace ringflow::http {

std::string peer_address::to_string() const {
  std::string out;
  bool v6 = ip().find(':') != std::string_view::npos;
  if (v6) out += '[';
  out += ip();
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port_);
  return out;
}

peer_address request::peer() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(c_->s_.native_handle(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    throw std::system_error(errno, std::generic_category(), "ringflow::http::request::peer");
  }
  peer_address a;
  const char* ok = nullptr;
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    ok = ::inet_ntop(AF_INET, &in->sin_addr, a.text_, sizeof a.text_);
    a.port_ = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    a.port_ = ntohs(in6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      in_addr v4{};
      std::memcpy(&v4, in6->sin6_addr.s6_addr + 12, sizeof v4);
      ok = ::inet_ntop(AF_INET, &v4, a.text_, sizeof a.text_);
    } else {
      ok = ::inet_ntop(AF_INET6, &in6->sin6_addr, a.text_, sizeof a.text_);
    }
  } else {
    throw std::system_error(EAFNOSUPPORT, std::generic_category(), "ringflow::http::request::peer");
  }
  if (!ok) throw std::system_error(errno, std::generic_category(), "ringflow::http::request::peer");
  a.len_ = std::strlen(a.text_);
  return a;
}

}  // namespace ringflow::http
