// watch: the newest value for many receivers; changed() never misses the
// newest value and never returns one version twice to one receiver; close
// lets unseen values out, then nullopt; a cancelled changed() marks nothing
// seen; values destroyed exactly once; two workers (TSan clean).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ringflow/ringflow.hpp>
#include <ringflow/watch.hpp>

using namespace std::chrono_literals;
using ringflow::task;
using ringflow::watch;

// co_await never goes inside REQUIRE: g++ 12 resumes the coroutine wrongly there.
namespace {

using receiver = watch<int>::receiver;

template <class F>
void run(F&& body, unsigned threads = 1) {
  ringflow::runtime rt({.threads = threads});
  rt.block_on(body());
}

task<void> changed_into(receiver* r, std::vector<int>* out) {
  auto v = co_await r->changed();
  out->push_back(v ? *v : -1);
}

std::coroutine_handle<> start_by_hand(task<void> t) {
  std::coroutine_handle<> h = t.release();
  h.resume();
  return h;
}

// Copyable; a second destruction (or use after it) finds the mark gone.
struct counted {
  static inline std::atomic<long> live{0};
  static inline std::atomic<long> bad{0};
  static constexpr int alive = 0x5eed;
  int id;
  int mark = alive;
  explicit counted(int i) : id(i) { ++live; }
  counted(const counted& o) : id(o.id) {
    if (o.mark != alive) ++bad;
    ++live;
  }
  counted& operator=(const counted& o) {
    if (o.mark != alive || mark != alive) ++bad;
    id = o.id;
    return *this;
  }
  ~counted() {
    if (mark != alive) ++bad;
    mark = 0;
    --live;
  }
};

}  // namespace

TEST_CASE("watch: get and set; a new receiver has seen the current version", "[watch][sync]") {
  run([]() -> task<void> {
    watch<std::string> w("a");
    REQUIRE(w.get() == "a");
    REQUIRE(w.version() == 0);
    auto r = w.subscribe();
    REQUIRE_FALSE(r.has_changed());
    REQUIRE(r.get() == "a");
    w.set("b");
    REQUIRE(w.version() == 1);
    REQUIRE(r.has_changed());
    auto v = co_await r.changed();
    REQUIRE(v == std::optional<std::string>("b"));
    REQUIRE_FALSE(r.has_changed());
  });
}

TEST_CASE("watch: changed() waits for a newer version and never returns one twice", "[watch][sync]") {
  run([]() -> task<void> {
    watch<int> w(0);
    receiver r = w.subscribe();
    std::vector<int> out;
    auto waiter = ringflow::spawn(changed_into(&r, &out));
    for (int i = 0; i < 5; ++i) co_await ringflow::yield();
    REQUIRE(out.empty());  // nothing newer yet
    w.set(1);
    co_await std::move(waiter);
    REQUIRE(out == std::vector<int>{1});
    auto again = ringflow::spawn(changed_into(&r, &out));  // version 1 is seen: waits
    for (int i = 0; i < 5; ++i) co_await ringflow::yield();
    REQUIRE(out.size() == 1);
    w.set(1);  // the same value, a new version
    co_await std::move(again);
    REQUIRE(out == std::vector<int>{1, 1});
  });
}

TEST_CASE("watch: versions in between are skipped; the newest is never missed", "[watch][sync]") {
  run([]() -> task<void> {
    watch<int> w(0);
    receiver r = w.subscribe();
    w.set(1);
    w.set(2);
    w.set(3);
    auto v = co_await r.changed();
    REQUIRE(v == 3);
    REQUIRE_FALSE(r.has_changed());

    // Woken by one set, and another comes before it runs: it gets the newer.
    std::vector<int> out;
    auto waiter = ringflow::spawn(changed_into(&r, &out));
    co_await ringflow::yield();
    w.set(4);
    w.set(5);
    co_await std::move(waiter);
    REQUIRE(out == std::vector<int>{5});
    REQUIRE_FALSE(r.has_changed());
  });
}

TEST_CASE("watch: every receiver sees the change; a copy has seen what the original saw", "[watch][sync]") {
  run([]() -> task<void> {
    watch<int> w(0);
    receiver a = w.subscribe();
    receiver b = w.subscribe();
    w.set(7);
    auto va = co_await a.changed();
    REQUIRE(va == 7);
    receiver a2 = a;  // seen 7
    receiver b2 = b;  // not seen 7
    REQUIRE_FALSE(a2.has_changed());
    REQUIRE(b2.has_changed());
    auto vb = co_await b.changed();
    auto vb2 = co_await b2.changed();
    REQUIRE(vb == 7);
    REQUIRE(vb2 == 7);
    receiver moved = std::move(a);
    REQUIRE_THROWS_AS(a.changed(), std::logic_error);
    REQUIRE_THROWS_AS(a.has_changed(), std::logic_error);
    REQUIRE_THROWS_AS(a.get(), std::logic_error);
    REQUIRE_FALSE(moved.has_changed());
    a = w.subscribe();  // a moved-from receiver may be assigned again
    REQUIRE(a.get() == 7);
  });
}

TEST_CASE("watch: close wakes waiters; an unseen value is still returned, then nullopt", "[watch][sync]") {
  run([]() -> task<void> {
    watch<int> w(0);
    receiver waiting = w.subscribe();
    receiver behind = w.subscribe();
    std::vector<int> out;
    auto waiter = ringflow::spawn(changed_into(&waiting, &out));
    co_await ringflow::yield();
    w.set(1);
    w.close();
    w.close();  // idempotent
    co_await std::move(waiter);
    REQUIRE(out == std::vector<int>{1});  // set before close: not missed
    auto end = co_await waiting.changed();
    REQUIRE(end == std::nullopt);
    auto b1 = co_await behind.changed();
    auto b2 = co_await behind.changed();
    REQUIRE(b1 == 1);
    REQUIRE(b2 == std::nullopt);
    w.set(2);  // ignored once closed
    REQUIRE(w.get() == 1);
    REQUIRE(w.is_closed());
    receiver late = w.subscribe();
    auto l = co_await late.changed();
    REQUIRE(l == std::nullopt);

    // A changed() waiting when close comes, with nothing new: nullopt.
    watch<int> w2(0);
    receiver r2 = w2.subscribe();
    std::vector<int> out2;
    auto waiter2 = ringflow::spawn(changed_into(&r2, &out2));
    co_await ringflow::yield();
    w2.close();
    co_await std::move(waiter2);
    REQUIRE(out2 == std::vector<int>{-1});
  });
}

TEST_CASE("watch: receivers outlive the watch", "[watch][sync]") {
  run([]() -> task<void> {
    std::optional<receiver> r;
    {
      watch<int> w(0);
      r.emplace(w.subscribe());
      w.set(9);
    }
    auto v = co_await r->changed();
    auto end = co_await r->changed();
    REQUIRE(v == 9);
    REQUIRE(end == std::nullopt);
    REQUIRE(r->get() == 9);
  });
}

TEST_CASE("watch: a cancelled changed() marks nothing seen", "[watch][sync]") {
  run([]() -> task<void> {
    watch<int> w(0);
    receiver r = w.subscribe();
    auto t = co_await ringflow::timeout(2ms, [](receiver* rr) -> task<std::optional<int>> {
      co_return co_await rr->changed();
    }(&r));
    REQUIRE_FALSE(t.has_value());
    REQUIRE_FALSE(r.has_changed());

    // Woken by set(), destroyed before it ran: the value is still unseen.
    std::vector<int> out;
    auto h = start_by_hand(changed_into(&r, &out));
    w.set(3);
    h.destroy();
    REQUIRE(out.empty());
    REQUIRE(r.has_changed());
    auto v = co_await r.changed();
    REQUIRE(v == 3);
  });
}

TEST_CASE("watch: every value and copy is destroyed exactly once", "[watch][sync]") {
  counted::live = 0;
  counted::bad = 0;
  run([]() -> task<void> {
    watch<counted> w(counted(0));
    auto r = w.subscribe();
    for (int i = 1; i <= 50; ++i) {
      w.set(counted(i));
      if (i % 3 == 0) {
        auto v = co_await r.changed();
        REQUIRE(v->id == i);
      }
    }
    REQUIRE(w.get().id == 50);
  });
  REQUIRE(counted::live == 0);
  REQUIRE(counted::bad == 0);
}

TEST_CASE("watch: a setter and receivers on two workers", "[watch][sync]") {
  run(
      []() -> task<void> {
        constexpr int last = 20000;
        watch<int> w(0);
        std::vector<receiver> rs;
        for (int i = 0; i < 3; ++i) rs.push_back(w.subscribe());
        std::vector<ringflow::join_handle<bool>> readers;
        for (auto& r : rs) {
          readers.push_back(ringflow::spawn([](receiver* rr) -> task<bool> {
            int prev = 0;
            bool increasing = true;
            while (auto v = co_await rr->changed()) {
              if (*v <= prev) increasing = false;  // a version twice, or an older one
              prev = *v;
            }
            co_return increasing && prev == last;  // the newest is never missed
          }(&r)));
        }
        auto setter = ringflow::spawn([](watch<int>* ww) -> task<void> {
          for (int i = 1; i <= last; ++i) {
            ww->set(i);
            if (i % 64 == 0) co_await ringflow::yield();
          }
          ww->close();
        }(&w));
        co_await std::move(setter);
        for (auto& r : readers) {
          bool ok = co_await std::move(r);
          REQUIRE(ok);
        }
      },
      2);
}
