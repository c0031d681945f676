// A program under test run as a child process with its stdout on a pipe:
// read line by line, signalled, waited for; killed (SIGKILL) if still running
// when it goes out of scope, so a failing test leaves nothing behind.
#pragma once

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace test_support {

// The path of a program under test, from the environment variable meson
// sets for the test (ECHO_SERVER, HTTP_HELLO, ...).
inline std::string program_path(const char* env) {
  const char* p = std::getenv(env);
  REQUIRE(p != nullptr);
  return p;
}

class child_process {
 public:
  // Runs path with args; ceiling_ms bounds every wait (only a hung child reaches it).
  child_process(const std::string& path, std::vector<std::string> args, int ceiling_ms)
      : ceiling_ms_(ceiling_ms) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    args.insert(args.begin(), path);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, path.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    out_ = fds[0];
    REQUIRE(rc == 0);
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
  }

  // The next line on its stdout (nullopt at EOF or the ceiling).
  std::optional<std::string> line() {
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, ceiling_ms_) <= 0) return std::nullopt;
      char tmp[512];
      ssize_t n = ::read(out_, tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }
  // The next line that starts with prefix; the lines before it are kept in
  // `seen` (nullopt at EOF or the ceiling).
  std::optional<std::string> line_starting(std::string_view prefix, std::vector<std::string>* seen = nullptr) {
    for (;;) {
      auto l = line();
      if (!l || l->rfind(prefix, 0) == 0) return l;
      if (seen) seen->push_back(*l);
    }
  }
  // The port of a server that announces itself with "listening PORT" as
  // its first line (examples/echo_server, examples/http_hello).
  std::uint16_t listening_port() {
    auto l = line();
    REQUIRE(l.has_value());
    REQUIRE(l->rfind("listening ", 0) == 0);
    return static_cast<std::uint16_t>(std::stoi(l->substr(10)));
  }
  void signal(int sig) { REQUIRE(::kill(pid_, sig) == 0); }
  // Its exit status, 128 + the signal if one ended it (waits up to the
  // ceiling; -1 if it did not exit).
  int wait_exit() {
    for (int waited = 0; waited < ceiling_ms_; waited += 10) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      ::poll(nullptr, 0, 10);  // polling a child's exit: there is no event to wait on here
    }
    return -1;
  }

 private:
  int ceiling_ms_;
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buf_;
};

}  // namespace test_support
