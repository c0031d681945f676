// Lifetimes and shutdown, tried as a hostile user would: objects handed
// between workers while the runtime stops, streams that outlive their
// runtime, chains a million co_awaits deep cancelled or shut down, a runtime
// destroyed by its own task, moved-from runtimes and detached tasks that fail.
// Several are races: each case repeats its scenario, and the ones that used to
// hang run in a child process with a deadline.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ringflow/ringflow.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../support/counters.hpp"

using namespace std::chrono_literals;
using ringflow::task;
using test_support::lifetime_probe;

namespace {

// Runs f in a child process; its exit status, or -1 when it did not finish
// within `limit` (it is killed: a hang fails the test instead of the suite).
int run_in_child(const std::function<int()>& f, std::chrono::seconds limit = 120s) {
  pid_t pid = fork();
  if (pid < 0) return -2;
  if (pid == 0) {
    int rc = 3;
    try {
      rc = f();
    } catch (...) {
      rc = 4;
    }
    _exit(rc);
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(5ms);  // polling a child's exit, not synchronising with it
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

// Waits (without a deadline: the suite's timeout is the backstop) until
// pred() holds.
template <class Pred>
void wait_until(Pred pred) {
  while (!pred()) std::this_thread::yield();
}

// Touches a channel when destroyed.
struct touch_on_destroy {
  ringflow::channel<int>* ch;
  ~touch_on_destroy() { (void)ch->try_send(1); }
};

task<void> hold_and_sleep(ringflow::channel<int>* ch, std::atomic<bool>* started) {
  touch_on_destroy t{ch};
  started->store(true);
  started->notify_all();
  co_await ringflow::sleep_for(1h);
}

task<void> touch(ringflow::channel<int>* ch) {
  (void)ch->try_send(0);
  co_return;
}

ringflow::publisher<int> probed_counter() {
  return ringflow::publisher<int>::create([](ringflow::emitter<int>& out) -> task<void> {
    lifetime_probe p;
    for (int i = 0;; ++i) {
      if (!co_await out.emit(i)) co_return;
    }
  });
}

// A chain `depth` co_awaits deep with a probe in every frame, suspended at
// its leaf until cancelled.
task<int> nest(int depth, std::atomic<bool>* at_leaf) {
  lifetime_probe p;
  if (depth == 0) {
    at_leaf->store(true);
    at_leaf->notify_all();
    co_await ringflow::sleep_for(1h);
    co_return 0;
  }
  co_return 1 + co_await nest(depth - 1, at_leaf);
}

// The child uses its parent's channel while suspended in it: destroying the
// chain must free the child before the parent's channel goes.
task<void> recv_from(ringflow::channel<int>* ch) {
  lifetime_probe p;
  (void)co_await ch->recv();
}
task<void> owns_channel() {
  ringflow::channel<int> ch(1);
  co_await recv_from(&ch);
}

task<void> fail_with(std::string what) {
  co_await ringflow::yield();
  throw std::runtime_error(what);
}

struct captured_reports {
  std::mutex m;
  std::vector<std::string> what;
  std::atomic<int> count{0};
  void add(std::exception_ptr e) {
    std::string s;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      s = ex.what();
    }
    {
      std::lock_guard g(m);
      what.push_back(s);
    }
    count.fetch_add(1);
    count.notify_all();
  }
};

}  // namespace

TEST_CASE("lifecycle: shutdown serves hand-over requests while another worker destroys frames",
          "[runtime][lifecycle][shutdown]") {
  // Worker 1 destroys a frame whose destructor uses a channel only worker 0
  // has used: it asks worker 0 to hand it over, and worker 0, done with its
  // own frames, must still answer. This used to hang for good.
  int rc = run_in_child([] {
    for (int round = 0; round < 30; ++round) {
      ringflow::channel<int> ch(4);
      {
        ringflow::runtime rt({.threads = 2});
        rt.block_on(touch(&ch));  // block_on runs on worker 0
        std::atomic<bool> started{false};
        rt.spawn_on(1, hold_and_sleep(&ch, &started)).detach();
        started.wait(false);
      }
      if (ch.size() != 2) return 10;  // both values arrived: the destructor ran
    }
    return 0;
  });
  REQUIRE(rc == 0);
}

TEST_CASE("lifecycle: a subscription destroyed off its producer's worker just before shutdown leaks nothing",
          "[runtime][lifecycle][streams]") {
  lifetime_probe::reset();
  auto pub = probed_counter();
  for (int round = 0; round < 100; ++round) {
    {
      ringflow::runtime rt({.threads = 2});
      std::unique_ptr<ringflow::subscription<int>> sub;
      rt.block_on([](auto* pub, auto* sub) -> task<void> {
        *sub = std::make_unique<ringflow::subscription<int>>(pub->subscribe());
        auto v = co_await (*sub)->request(1);
        REQUIRE(v.size() == 1);
      }(&pub, &sub));
      REQUIRE(lifetime_probe::alive == 1);
      if (round % 2 == 0) {
        sub.reset();  // on this thread: the clean-up is posted to worker 0
      } else {
        // on worker 1: the clean-up is posted to worker 0 from a worker
        rt.spawn_on(1, [](ringflow::subscription<int> s) -> task<void> {
            s.cancel();
            co_return;
          }(std::move(*sub))).wait();
        sub.reset();
      }
    }  // the runtime may stop before the clean-up runs
    REQUIRE(lifetime_probe::alive == 0);
  }
}

TEST_CASE("lifecycle: a subscription may outlive its runtime", "[runtime][lifecycle][streams]") {
  lifetime_probe::reset();
  auto pub = probed_counter();
  for (unsigned threads : {1u, 2u}) {
    std::unique_ptr<ringflow::subscription<int>> sub;
    {
      ringflow::runtime rt({.threads = threads});
      rt.block_on([](auto* pub, auto* sub) -> task<void> {
        *sub = std::make_unique<ringflow::subscription<int>>(pub->subscribe());
        auto v = co_await (*sub)->request(2);
        REQUIRE(!v.empty());
      }(&pub, &sub));
      REQUIRE(lifetime_probe::alive == 1);
    }
    // The runtime destroyed the producer on its own worker as it shut down.
    REQUIRE(lifetime_probe::alive == 0);
    REQUIRE_NOTHROW(sub->cancel());
    sub.reset();  // touches no freed worker (ASan watches)
  }
}

TEST_CASE("lifecycle: cancelling a chain of a million co_awaits runs in constant stack",
          "[runtime][lifecycle][task]") {
  lifetime_probe::reset();
  ringflow::runtime rt;
  std::atomic<bool> at_leaf{false};
  auto r = rt.block_on(ringflow::timeout(1ms, nest(1'000'000, &at_leaf)));
  REQUIRE(at_leaf);
  REQUIRE_FALSE(r.has_value());
  REQUIRE(lifetime_probe::alive == 0);
  REQUIRE(lifetime_probe::destroyed == 1'000'001);
}

TEST_CASE("lifecycle: shutting down with a chain of a million co_awaits suspended at its leaf",
          "[runtime][lifecycle][task][shutdown]") {
  lifetime_probe::reset();
  {
    ringflow::runtime rt({.threads = 2});
    std::atomic<bool> at_leaf{false};
    rt.spawn(nest(1'000'000, &at_leaf)).detach();
    at_leaf.wait(false);
  }
  REQUIRE(lifetime_probe::alive == 0);
  REQUIRE(lifetime_probe::destroyed == 1'000'001);
}

TEST_CASE("lifecycle: a cancelled chain frees each child before its parent's locals",
          "[runtime][lifecycle][task]") {
  lifetime_probe::reset();
  ringflow::runtime rt;
  // The child's receive withdraws from the parent's channel as it goes: with
  // the parent freed first that would touch a destroyed channel (ASan).
  REQUIRE_FALSE(rt.block_on(ringflow::timeout(1ms, owns_channel())));
  REQUIRE(lifetime_probe::alive == 0);
  {
    ringflow::runtime rt2({.threads = 2});
    rt2.spawn(owns_channel()).detach();
    rt2.spawn(owns_channel()).detach();
    wait_until([] { return lifetime_probe::alive == 2; });
  }
  REQUIRE(lifetime_probe::alive == 0);
}

TEST_CASE("lifecycle: a moved-from runtime throws logic_error", "[runtime][lifecycle][errors]") {
  ringflow::runtime a;
  ringflow::runtime b(std::move(a));
  REQUIRE_THROWS_AS(a.block_on([]() -> task<int> { co_return 1; }()), std::logic_error);
  REQUIRE_THROWS_AS(a.spawn([]() -> task<void> { co_return; }()), std::logic_error);
  REQUIRE_THROWS_AS(a.spawn_on(0, []() -> task<void> { co_return; }()), std::logic_error);
  REQUIRE(a.threads() == 0);
  REQUIRE(b.block_on([]() -> task<int> { co_return 7; }()) == 7);
}

TEST_CASE("lifecycle: a runtime destroyed by one of its own tasks shuts down on its own",
          "[runtime][lifecycle][shutdown]") {
  lifetime_probe::reset();
  for (unsigned threads : {1u, 2u}) {
    auto* rt = new ringflow::runtime({.threads = threads});
    std::atomic<bool> sleeper_started{false};
    rt->spawn([](std::atomic<bool>* started) -> task<void> {
      lifetime_probe p;
      started->store(true);
      started->notify_all();
      co_await ringflow::sleep_for(1h);
    }(&sleeper_started)).detach();
    sleeper_started.wait(false);
    std::atomic<int> steps{0};
    std::atomic<bool> spawn_returned{false};
    rt->spawn([](ringflow::runtime* r, std::atomic<int>* steps, std::atomic<bool>* go) -> task<void> {
      lifetime_probe p;
      // The spawning thread must be done with the runtime before it goes.
      while (!go->load()) co_await ringflow::yield();
      delete r;  // returns at once; the workers stop
      steps->store(1);
      steps->notify_all();
      co_await ringflow::sleep_for(1h);  // shutdown destroys this frame
      steps->store(2);                   // never reached
    }(rt, &steps, &spawn_returned)).detach();
    spawn_returned.store(true);
    steps.wait(0);
    // Both frames go with the shutdown the delete started.
    wait_until([] { return lifetime_probe::alive == 0; });
    REQUIRE(steps == 1);
  }
}

TEST_CASE("lifecycle: a detached task's exception reaches the handler once", "[runtime][lifecycle][errors]") {
  captured_reports reports;
  auto previous = ringflow::set_unhandled_exception_handler([&](std::exception_ptr e) { reports.add(e); });
  {
    ringflow::runtime rt({.threads = 2});
    // Detached before it fails.
    rt.spawn(fail_with("detached early")).detach();
    reports.count.wait(0);
    // Fails while its handle is held; the handle is then dropped unawaited.
    {
      auto h = rt.spawn(fail_with("dropped late"));
      while (!h.is_finished()) std::this_thread::yield();
      REQUIRE(reports.count == 1);
    }
    reports.count.wait(1);  // whichever side let go last reported it
    REQUIRE(reports.count == 2);
    // Awaited: the joiner gets it, the handler does not.
    REQUIRE_THROWS_WITH(rt.spawn(fail_with("joined")).wait(), "joined");
    // A task that succeeds or is cancelled by shutdown reports nothing.
    rt.spawn([]() -> task<void> { co_return; }()).detach();
    rt.spawn([]() -> task<void> { co_await ringflow::sleep_for(1h); }()).detach();
  }
  ringflow::set_unhandled_exception_handler(std::move(previous));
  REQUIRE(reports.count == 2);
  std::lock_guard g(reports.m);
  REQUIRE(reports.what.size() == 2);
  CHECK(reports.what[0] == "detached early");
  CHECK(reports.what[1] == "dropped late");
}

TEST_CASE("lifecycle: by default a detached task's exception is written to stderr", "[runtime][lifecycle][errors]") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  int rc = run_in_child([&] {
    dup2(fds[1], 2);
    close(fds[0]);
    {
      ringflow::runtime rt;
      rt.spawn(fail_with("nobody listens")).detach();
      rt.block_on([]() -> task<void> {
        for (int i = 0; i < 10; ++i) co_await ringflow::yield();
      }());
    }
    return 0;
  });
  close(fds[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  REQUIRE(rc == 0);
  REQUIRE(out.find("ringflow: a detached task ended with an exception: nobody listens\n") != std::string::npos);
}
