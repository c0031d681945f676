// A redis-server of the test's own: on a free 127.0.0.1 port, without
// persistence (--save '' --appendonly no), in a fresh temporary directory.
//
//   test_support::redis_server server;            // started and answering PING
//   auto c = co_await connection::connect("127.0.0.1", server.port());
//   server.kill();                                // SIGKILL, e.g. mid-flight
//
// The constructor returns once the server answers PING (a bounded retry
// loop: it fails the test after 20 s, or when the server keeps exiting). The
// destructor kills the server and removes the directory, also when a test
// fails (it runs during unwinding); the server is told to die with the test
// process too (PR_SET_PDEATHSIG), so a crashed test leaves none behind.
// redis-server comes from $RINGFLOW_REDIS_SERVER or the PATH. Use it from the
// test's main thread (the death signal follows the thread that started it).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace test_support {

class redis_server {
 public:
  redis_server() {
    char tmpl[] = "/tmp/ringflow-redis.XXXXXX";
    char* d = ::mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    dir_ = d;
    // A port found free may be taken before the server binds it: try again.
    for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) start_on(free_port());
    if (pid_ < 0) {
      cleanup();
      FAIL("redis-server did not start; its log: " << log_);
    }
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;
  ~redis_server() { cleanup(); }

  std::uint16_t port() const noexcept { return port_; }
  bool running() const noexcept { return pid_ > 0; }

  // SIGKILL, at once: every connection to it is reset or closed.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // SIGKILL, then a new server on the same port and directory, answering
  // PING when this returns (it loads dump.rdb if a SAVE wrote one): clients
  // find it again at the same address.
  void restart() {
    kill();
    start_on(port_);
    if (pid_ < 0) FAIL("redis-server did not restart; its log: " << log_);
  }

  // One command over a blocking socket in RESP inline form ("INFO clients"),
  // its raw reply: for looking at the server from outside the client under test.
  std::string raw_command(const std::string& inline_command) const {
    int fd = connect_blocking(port_);
    REQUIRE(fd >= 0);
    std::string out;
    send_line(fd, inline_command);
    char buf[65536];
    // The reply's first line says how long it is ($n or +/-/:): read it whole.
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
      if (complete(out)) break;
    }
    ::close(fd);
    return out;
  }

 private:
  static std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);
    return ntohs(a.sin_port);
  }

  static int connect_blocking(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    timeval tv{10, 0};  // a hang becomes a failure
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  static void send_line(int fd, const std::string& line) {
    std::string l = line + "\r\n";
    ::send(fd, l.data(), l.size(), MSG_NOSIGNAL);
  }

  // A whole RESP2 reply of the kinds raw_command's callers ask for (a status,
  // an error, an integer or one bulk string).
  static bool complete(const std::string& r) {
    auto eol = r.find("\r\n");
    if (eol == std::string::npos) return false;
    if (r[0] != '$') return true;
    long n = std::strtol(r.c_str() + 1, nullptr, 10);
    if (n < 0) return true;
    return r.size() >= eol + 2 + static_cast<std::size_t>(n) + 2;
  }

  bool answers_ping() const {
    int fd = connect_blocking(port_);
    if (fd < 0) return false;
    send_line(fd, "PING");
    char buf[16];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ::close(fd);
    return n >= 5 && std::string(buf, 5) == "+PONG";
  }

  void start_on(std::uint16_t port) {
    port_ = port;
    std::string log_path = dir_ + "/redis.log";
    const char* exe = std::getenv("RINGFLOW_REDIS_SERVER");
    std::string program = exe && *exe ? exe : "redis-server";
    std::vector<std::string> args = {program,  "--port",      std::to_string(port), "--bind",  "127.0.0.1",
                                     "--save", "",            "--appendonly",       "no",      "--dir",
                                     dir_,     "--daemonize", "no",                 "--logfile", log_path};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the test died already
      int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(null, 2);
      }
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    // Until it answers, or exits (the port was taken, or no redis-server).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (answers_ping()) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        read_log(log_path);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a bounded poll, not a synchronisation
    }
    read_log(log_path);
    kill();
  }

  void read_log(const std::string& path) {
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      char buf[4096];
      std::size_t n = std::fread(buf, 1, sizeof buf, f);
      log_.assign(buf, n);
      std::fclose(f);
    }
  }

  void cleanup() noexcept {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  std::string dir_;
  std::string log_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace test_support
