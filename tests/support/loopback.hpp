// A plain blocking TCP client of 127.0.0.1, for tests that drive a server
// (a ringflow listener, or a program under test) from the test's thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace test_support {

// Connects fd to 127.0.0.1:port; false with errno set when refused.
inline bool connect_loopback(int fd, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

// A new socket connected to 127.0.0.1:port, or -1 with errno set (the
// socket closed) when it cannot be made or the connect fails.
inline int try_loopback_client(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (!connect_loopback(fd, port)) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

}  // namespace test_support
