// examples/echo_server's graceful shutdown, driven as a supervisor would:
// start it, connect, send SIGTERM, then watch what it prints and what its
// sockets do. After the signal it stops accepting (a new connection is
// refused) while an open connection goes on echoing; a connection that ends
// within the grace period lets it exit 0 "drained"; one still open at the
// deadline is cancelled (the peer reads EOF) and it still exits 0. Every
// wait is on an event (a line printed, EOF, exit) with a generous ceiling
// against a hung server; no bound is tight.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../support/child_process.hpp"
#include "../support/loopback.hpp"

namespace {

constexpr int ceiling_ms = 60'000;  // only a hung server reaches it

// A running echo_server with its stdout on a pipe; killed if still running.
class server_process : public test_support::child_process {
 public:
  explicit server_process(std::vector<std::string> args)
      : child_process(test_support::program_path("ECHO_SERVER"), std::move(args), ceiling_ms) {}
};

// A blocking client socket; -1 with errno set when the connect fails.
int connect_to(std::uint16_t port) { return test_support::try_loopback_client(port); }

// Sends `msg` and reads the same number of bytes back.
std::string echo(int fd, const std::string& msg) {
  REQUIRE(::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(msg.size()));
  std::string got;
  while (got.size() < msg.size()) {
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, ceiling_ms) == 1);
    char tmp[256];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    got.append(tmp, static_cast<std::size_t>(n));
  }
  return got;
}

// True when the server closed fd (EOF or reset) before the ceiling.
bool reads_eof(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ceiling_ms) != 1) return false;
  char c;
  return ::recv(fd, &c, 1, 0) <= 0;
}

}  // namespace

TEST_CASE("echo_server: after SIGTERM it refuses new connections, finishes open ones, exits 0 drained",
          "[tcp][echo_server]") {
  server_process s({"--port", "0", "--threads", "2", "--grace-ms", "600000"});
  std::uint16_t port = s.listening_port();
  int a = connect_to(port);
  REQUIRE(a >= 0);
  REQUIRE(echo(a, "before") == "before");

  s.signal(SIGTERM);
  REQUIRE(s.line() == std::optional<std::string>("stopped accepting"));
  int b = connect_to(port);
  int refused = errno;
  REQUIRE(b == -1);
  REQUIRE(refused == ECONNREFUSED);
  // The open connection is still served during the grace period.
  REQUIRE(echo(a, "during") == "during");
  ::close(a);  // its end lets the server drain
  REQUIRE(s.line() == std::optional<std::string>("drained"));
  REQUIRE(s.wait_exit() == 0);
}

TEST_CASE("echo_server: a connection still open at the grace deadline is cancelled; exit 0",
          "[tcp][echo_server]") {
  server_process s({"--port", "0", "--grace-ms", "50"});
  std::uint16_t port = s.listening_port();
  int a = connect_to(port);
  REQUIRE(a >= 0);
  REQUIRE(echo(a, "x") == "x");
  s.signal(SIGINT);
  REQUIRE(s.line() == std::optional<std::string>("stopped accepting"));
  REQUIRE(s.line() == std::optional<std::string>("cancelled 1 connection(s)"));
  REQUIRE(reads_eof(a));  // the cancelled connection's socket was closed
  REQUIRE(s.wait_exit() == 0);
  ::close(a);
}

TEST_CASE("echo_server: at --max-connections the next connection waits in the backlog, then is served",
          "[tcp][echo_server]") {
  server_process s({"--port", "0", "--max-connections", "1"});
  std::uint16_t port = s.listening_port();
  int a = connect_to(port);
  REQUIRE(a >= 0);
  REQUIRE(echo(a, "a") == "a");
  int b = connect_to(port);  // completes in the kernel's backlog
  REQUIRE(b >= 0);
  REQUIRE(::send(b, "b", 1, MSG_NOSIGNAL) == 1);
  pollfd p{b, POLLIN, 0};
  REQUIRE(::poll(&p, 1, 200) == 0);  // not served while a holds the only place
  ::close(a);
  REQUIRE(::poll(&p, 1, ceiling_ms) == 1);
  char c = 0;
  REQUIRE(::recv(b, &c, 1, 0) == 1);
  REQUIRE(c == 'b');
  ::close(b);
  s.signal(SIGTERM);
  REQUIRE(s.line() == std::optional<std::string>("stopped accepting"));
  REQUIRE(s.wait_exit() == 0);
}
