#include <catch2/catch.hpp>

#include <ringflow/ringflow.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "../support/run.hpp"
#include "../support/streams.hpp"

using ringflow::emitter;
using ringflow::publisher;
using ringflow::task;
using test_support::range;
using test_support::run;

namespace {

// Records every signal; `done` receives one value at the terminal signal.
struct recorder : ringflow::subscriber<int> {
  std::vector<std::string> log;
  std::vector<int> values;
  ringflow::subscription<int>* sub = nullptr;
  ringflow::channel<int> done{1};
  std::uint64_t initial = 1, per_value = 1;
  int cancel_after = -1;
  bool request_zero = false;

  void on_subscribe(ringflow::subscription<int>& s) override {
    log.push_back("subscribe");
    sub = &s;
    (void)s.request(initial);
  }
  void on_next(int v) override {
    values.push_back(v);
    if (static_cast<int>(values.size()) == cancel_after) {
      sub->cancel();
      done.try_send(0);
      return;
    }
    if (request_zero) (void)sub->request(0);
    if (per_value) (void)sub->request(per_value);
  }
  void on_error(std::exception_ptr e) override {
    try {
      std::rethrow_exception(e);
    } catch (const std::invalid_argument&) {
      log.push_back("error:invalid_argument");
    } catch (const std::exception& x) {
      log.push_back(std::string("error:") + x.what());
    }
    done.try_send(0);
  }
  void on_complete() override {
    log.push_back("complete");
    done.try_send(0);
  }
};

}  // namespace

TEST_CASE("spec 1.9: on_subscribe comes first; 1.1: on_next never exceeds demand; 1.5: on_complete ends", "[streams]") {
  run([]() -> task<void> {
    recorder r;
    r.initial = 3;
    r.per_value = 0;  // ask for 3 only
    auto pub = range(10);
    pub.subscribe(r);
    for (int i = 0; i < 10; ++i) co_await ringflow::yield();
    REQUIRE(r.log.front() == "subscribe");
    REQUIRE(r.values == std::vector<int>{0, 1, 2});  // no more than requested
    (void)r.sub->request(100);
    auto d = co_await r.done.recv();
    REQUIRE(d.has_value());
    REQUIRE(r.values.size() == 10);
    REQUIRE(r.log.back() == "complete");
  });
}

TEST_CASE("spec 3.3: request(1) from on_next for a million values uses bounded stack", "[streams]") {
  run([]() -> task<void> {
    recorder r;
    auto pub = range(1'000'000);
    pub.subscribe(r);
    auto d = co_await r.done.recv();
    REQUIRE(d.has_value());
    REQUIRE(r.values.size() == 1'000'000);
    REQUIRE(r.log.back() == "complete");
  });
}

TEST_CASE("spec 3.9: request(0) signals on_error(invalid_argument)", "[streams]") {
  run([]() -> task<void> {
    recorder r;
    r.request_zero = true;
    auto pub = range(10);
    pub.subscribe(r);
    auto d = co_await r.done.recv();
    REQUIRE(d.has_value());
    REQUIRE(r.log.back() == "error:invalid_argument");
    REQUIRE(r.values.size() == 1);
  });
}

TEST_CASE("spec 1.8: after cancel nothing more is signalled", "[streams]") {
  run([]() -> task<void> {
    recorder r;
    r.cancel_after = 4;
    auto pub = range(100);
    pub.subscribe(r);
    auto d = co_await r.done.recv();
    REQUIRE(d.has_value());
    for (int i = 0; i < 10; ++i) co_await ringflow::yield();
    REQUIRE(r.values.size() == 4);
    REQUIRE(r.log == std::vector<std::string>{"subscribe"});  // no on_complete, no on_error
  });
}

TEST_CASE("spec 1.4: a failing producer ends with on_error after the values before it", "[streams]") {
  run([]() -> task<void> {
    recorder r;
    auto pub = publisher<int>::create([](emitter<int>& out) -> task<void> {
      co_await out.emit(1);
      throw std::runtime_error("boom");
    });
    pub.subscribe(r);
    auto d = co_await r.done.recv();
    REQUIRE(d.has_value());
    REQUIRE(r.values == std::vector<int>{1});
    REQUIRE(r.log.back() == "error:boom");
  });
}

TEST_CASE("processor: a subscriber and a publisher at once, passing demand upstream", "[streams]") {
  run([]() -> task<void> {
    int emitted = 0;
    auto source = publisher<int>::create([&emitted](emitter<int>& out) -> task<void> {
      for (int i = 0; i < 20; ++i) {
        bool ok = co_await out.emit(i);
        if (!ok) co_return;
        ++emitted;
      }
    });
    ringflow::processor<int, std::string> to_text([](int v) { return std::to_string(v * 2); });
    source.subscribe(to_text);
    auto sub = to_text.as_publisher().subscribe();
    auto first = co_await sub.request(3);
    REQUIRE_FALSE(first.empty());
    REQUIRE(first.front() == "0");
    for (int i = 0; i < 10; ++i) co_await ringflow::yield();
    REQUIRE(emitted <= 3);  // the upstream was asked only for what the downstream wanted
    std::vector<std::string> all = first;
    for (;;) {
      auto b = co_await sub.request(5);
      if (b.empty()) break;
      all.insert(all.end(), b.begin(), b.end());
    }
    REQUIRE(all.size() == 20);
    REQUIRE(all.back() == "38");
  });
}
