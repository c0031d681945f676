// examples/http_hello, the program bench/http.sh measures, driven as a user
// would: start it on an ephemeral port, ask it over a raw socket, stop it
// with SIGTERM. Every wait is on an event (a line printed, bytes, EOF, exit)
// with a generous ceiling against a hung server.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "../support/child_process.hpp"
#include "../support/loopback.hpp"

namespace {

constexpr int ceiling_ms = 60'000;  // only a hung server reaches it

// A connected client socket (the server is listening: it said so).
int connect_to(std::uint16_t port) {
  int fd = test_support::try_loopback_client(port);
  REQUIRE(fd >= 0);
  return fd;
}

// Everything the server sends until it closes the connection.
std::string read_to_eof(int fd) {
  std::string got;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, ceiling_ms) == 1);
    char tmp[4096];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    REQUIRE(n >= 0);
    if (n == 0) return got;
    got.append(tmp, static_cast<std::size_t>(n));
  }
}

}  // namespace

TEST_CASE("http_hello answers GET /, echoes POST /echo, 404s the rest, and stops on SIGTERM") {
  test_support::child_process server(test_support::program_path("HTTP_HELLO"), {"0", "1"}, ceiling_ms);
  const std::uint16_t port = server.listening_port();

  // Three pipelined requests on one keep-alive connection, the last one
  // asking to close: the answers come back in order.
  int fd = connect_to(port);
  const std::string requests =
      "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello there"
      "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  REQUIRE(::send(fd, requests.data(), requests.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(requests.size()));
  const std::string got = read_to_eof(fd);
  ::close(fd);
  const auto first = got.find("HTTP/1.1 200");
  const auto body = got.find("\r\n\r\nhello, world\n");
  const auto second = got.find("HTTP/1.1 200", first + 1);
  const auto echoed = got.find("hello there", second);
  const auto third = got.find("HTTP/1.1 404");
  INFO(got);
  REQUIRE(first == 0);
  CHECK(body != std::string::npos);
  REQUIRE(second != std::string::npos);
  CHECK(echoed != std::string::npos);
  CHECK(third != std::string::npos);
  CHECK(third > second);
  CHECK(got.find("not found\n", third) != std::string::npos);

  server.signal(SIGTERM);
  auto last = server.line_starting("stopped after ");
  REQUIRE(last.has_value());
  CHECK(*last == "stopped after 3 request(s)");
  CHECK(server.wait_exit() == 0);
}
