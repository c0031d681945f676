// redis::connection against a real redis-server of the suite's own
// (tests/support/redis_server.hpp): replies of every kind, error replies,
// thousands of concurrent commands from tasks on two workers each getting
// its own reply, the max_in_flight bound as the server sees it, commands
// cancelled by timeout losing their place cleanly, a server killed mid-flight,
// a reply hiredis cannot parse, and bad arguments.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <ringflow/ringflow.hpp>
#include <ringflow/redis.hpp>

#include "../support/redis_server.hpp"
#include "../support/run.hpp"
#include "../support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringflow::task;
using ringflow::redis::connection;
using ringflow::redis::reply;
using kind = ringflow::redis::reply::kind;
using test_support::redis_server;

// co_await never goes inside REQUIRE: Catch repeats the expression in an
// unevaluated branch, and g++ 12 then resumes the coroutine wrongly.
using test_support::run;

namespace {

using test_support::tsan;

task<connection> connect(const redis_server& s, std::size_t max_in_flight = 1024) {
  co_return co_await connection::connect("127.0.0.1", s.port(), {.max_in_flight = max_in_flight});
}

// The fields of the CLIENT LIST line of the client named `name`, as the
// server sees it (empty when there is none).
task<std::map<std::string, std::string>> client_fields(connection& observer, std::string name) {
  reply r = co_await observer.command("CLIENT", "LIST");
  std::string_view all = r.str();
  std::map<std::string, std::string> fields;
  while (!all.empty()) {
    std::size_t eol = all.find('\n');
    std::string_view line = all.substr(0, eol);
    all = eol == std::string_view::npos ? std::string_view{} : all.substr(eol + 1);
    if (line.find(" name=" + name + " ") == std::string_view::npos) continue;
    while (!line.empty()) {
      std::size_t sp = line.find(' ');
      std::string_view f = line.substr(0, sp);
      line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
      std::size_t eq = f.find('=');
      if (eq != std::string_view::npos) fields[std::string(f.substr(0, eq))] = std::string(f.substr(eq + 1));
    }
  }
  co_return fields;
}

// Polls until pred() holds (a bounded wait on an event, not a sleep to
// synchronise); fails the test after 20 s.
// pred by reference: a closure passed by value to a coroutine inside a
// co_await is corrupted by g++ 12.
template <class Pred>
task<void> until(const Pred& pred, const char* what) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) FAIL("timed out waiting until " << what);
    co_await ringflow::sleep_for(1ms);
  }
}

template <class... A>
concept can_command = requires(connection& c, const A&... a) { c.command(a...); };

task<std::string> echo(connection* c, std::string v) {
  reply r = co_await c->command("ECHO", v);
  co_return std::string(r.str());
}

}  // namespace

TEST_CASE("redis: replies of every kind", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s);
    REQUIRE(c.is_open());

    reply nil = co_await c.command("GET", "missing");
    REQUIRE(nil.type() == kind::nil);
    REQUIRE(nil.is_nil());

    reply ok = co_await c.command("SET", "k", "v");
    REQUIRE(ok.type() == kind::status);
    REQUIRE(ok.str() == "OK");

    reply pong = co_await c.command("PING");
    REQUIRE(pong.type() == kind::status);
    REQUIRE(pong.str() == "PONG");

    reply n = co_await c.command("INCRBY", "counter", -42);
    REQUIRE(n.type() == kind::integer);
    REQUIRE(n.integer() == -42);

    // Bulk strings are binary-safe: a NUL and a CRLF inside.
    std::string binary("a\0b\r\nc", 6);
    co_await c.command("SET", "bin", binary);
    reply got = co_await c.command("GET", "bin");
    REQUIRE(got.type() == kind::string);
    REQUIRE(got.str() == binary);

    reply empty_string = co_await c.command("ECHO", "");
    REQUIRE(empty_string.type() == kind::string);
    REQUIRE(empty_string.str().empty());

    std::vector<std::string> push{"RPUSH", "list", "a", "b", "c"};
    co_await c.command(std::move(push));
    reply list = co_await c.command("LRANGE", "list", 0, -1);
    REQUIRE(list.type() == kind::array);
    REQUIRE(list.elements().size() == 3);
    REQUIRE(list.elements()[0].str() == "a");
    REQUIRE(list.elements()[2].str() == "c");

    reply none = co_await c.command("LRANGE", "missing", 0, -1);
    REQUIRE(none.type() == kind::array);
    REQUIRE(none.elements().empty());

    // An array holding a nil.
    reply mget = co_await c.command("MGET", "k", "missing");
    REQUIRE(mget.elements().size() == 2);
    REQUIRE(mget.elements()[0].str() == "v");
    REQUIRE(mget.elements()[1].is_nil());

    // Nested arrays, an empty one among them, and a status inside.
    reply nested = co_await c.command("EVAL", "return {1, {2, 'x', {}}, {ok='fine'}}", 0);
    REQUIRE(nested.type() == kind::array);
    auto top = nested.elements();
    REQUIRE(top.size() == 3);
    REQUIRE(top[0].integer() == 1);
    REQUIRE(top[1].type() == kind::array);
    REQUIRE(top[1].elements().size() == 3);
    REQUIRE(top[1].elements()[0].integer() == 2);
    REQUIRE(top[1].elements()[1].str() == "x");
    REQUIRE(top[1].elements()[2].type() == kind::array);
    REQUIRE(top[1].elements()[2].elements().empty());
    REQUIRE(top[2].type() == kind::status);
    REQUIRE(top[2].str() == "fine");

    // A nil array (a BLPOP that timed out on the server).
    reply timed_out = co_await c.command("BLPOP", "nothing", 0.01);
    REQUIRE(timed_out.is_nil());

    // An error inside an array (EXEC) is an element, not an exception.
    co_await c.command("MULTI");
    co_await c.command("SET", "s", "text");
    co_await c.command("INCR", "s");
    reply exec = co_await c.command("EXEC");
    REQUIRE(exec.elements().size() == 2);
    REQUIRE(exec.elements()[0].str() == "OK");
    REQUIRE(exec.elements()[1].type() == kind::error);
    REQUIRE(exec.elements()[1].str().find("not an integer") != std::string_view::npos);
  }(server));
}

// A reply keeps short text inside itself and long text on the heap: every
// length on both sides of the boundary, through copies, moves and
// assignments between the two.
TEST_CASE("redis: a reply's text of every length survives copies, moves and assignments", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s);
    auto text = [](std::size_t n) {
      std::string t(n, '\0');
      for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<char>('a' + (i * 7 + n) % 26);
      return t;
    };
    ringflow::redis::command_batch b;
    for (std::size_t n = 0; n <= 64; ++n) b.add("ECHO", text(n));
    b.add("ECHO", text(1 << 20));
    std::vector<reply> got = co_await c.pipeline(b);
    REQUIRE(got.size() == 66);
    for (std::size_t i = 0; i < got.size(); ++i) {
      std::size_t n = i <= 64 ? i : std::size_t{1} << 20;
      REQUIRE(got[i].str() == text(n));
      reply copy(got[i]);
      REQUIRE(copy.str() == text(n));
      reply moved(std::move(copy));
      REQUIRE(moved.str() == text(n));
      // Assigned over a short, a long and a nil value, then moved over another.
      reply short_one = got[3], long_one = got[65], nil;
      short_one = got[i];
      long_one = got[i];
      nil = got[i];
      REQUIRE(short_one.str() == text(n));
      REQUIRE(long_one.str() == text(n));
      REQUIRE(nil.str() == text(n));
      long_one = std::move(short_one);
      REQUIRE(long_one.str() == text(n));
      reply& self = nil;
      nil = self;
      REQUIRE(nil.str() == text(n));
    }
    // The same texts inside an array, copied whole.
    std::vector<std::string> push{"RPUSH", "texts"};
    for (std::size_t n = 20; n <= 30; ++n) push.push_back(text(n));
    co_await c.command(std::move(push));
    reply list = co_await c.command("LRANGE", "texts", 0, -1);
    reply list_copy = list;
    list = reply{};
    REQUIRE(list_copy.elements().size() == 11);
    for (std::size_t n = 20; n <= 30; ++n) REQUIRE(list_copy.elements()[n - 20].str() == text(n));
  }(server));
}

TEST_CASE("redis: the variadic form formats every kind of argument before it returns", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s);
    // Temporaries die at the end of each full expression, before the task
    // runs: command() must have copied them.
    task<reply> t = c.command("SET", std::string("key-") + "1", std::string(3, 'x'));
    reply r1 = co_await std::move(t);
    REQUIRE(r1.str() == "OK");
    reply g1 = co_await c.command("GET", std::string_view("key-1"));
    REQUIRE(g1.str() == "xxx");

    char buffer[16] = "buf";  // a char array counts up to its first '\0'
    const char* cstr = "cstr";
    co_await c.command("RPUSH", "args", buffer, cstr, 42, -7LL, static_cast<unsigned char>(200), ULLONG_MAX,
                       LLONG_MIN, static_cast<short>(-3), 1.5, 0.1);
    reply all = co_await c.command("LRANGE", "args", 0, -1);
    std::vector<std::string> got;
    for (const reply& e : all.elements()) got.emplace_back(e.str());
    REQUIRE(got == std::vector<std::string>{"buf", "cstr", "42", "-7", "200", "18446744073709551615",
                                            "-9223372036854775808", "-3", "1.5", "0.1"});
  }(server));

  // Types with no single obvious text do not compile.
  STATIC_REQUIRE(can_command<char[4], std::string, int>);
  STATIC_REQUIRE(can_command<std::string_view, const char*, double, unsigned long long>);
  STATIC_REQUIRE_FALSE(can_command<char[4], char[2], bool>);
  STATIC_REQUIRE_FALSE(can_command<char[4], char[2], char>);
  STATIC_REQUIRE_FALSE(can_command<char[4], std::vector<int>>);
  STATIC_REQUIRE_FALSE(can_command<char[4], std::nullptr_t>);
  STATIC_REQUIRE_FALSE(can_command<>);
}

TEST_CASE("redis: an error reply throws redis::error and the connection goes on", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s);
    co_await c.command("RPUSH", "a-list", "x");
    std::string what;
    try {
      co_await c.command("INCR", "a-list");
    } catch (const ringflow::redis::error& e) {
      what = e.what();
    }
    REQUIRE(what.find("WRONGTYPE") == 0);

    REQUIRE_THROWS_AS(co_await c.command("NO-SUCH-COMMAND", 1), ringflow::redis::error);
    REQUIRE_THROWS_AS(co_await c.command("GET"), ringflow::redis::error);  // wrong number of arguments

    reply r = co_await c.command("ECHO", "still here");
    REQUIRE(r.str() == "still here");
    REQUIRE(c.is_open());
  }(server));
}

TEST_CASE("redis: reply accessors of the wrong kind throw logic_error", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s);
    reply nil = co_await c.command("GET", "missing");
    reply n = co_await c.command("INCR", "n");
    reply str = co_await c.command("ECHO", "text");
    reply arr = co_await c.command("LRANGE", "missing", 0, -1);
    REQUIRE_THROWS_AS(nil.integer(), std::logic_error);
    REQUIRE_THROWS_AS(nil.str(), std::logic_error);
    REQUIRE_THROWS_AS(nil.elements(), std::logic_error);
    REQUIRE_THROWS_AS(n.str(), std::logic_error);
    REQUIRE_THROWS_AS(n.elements(), std::logic_error);
    REQUIRE_THROWS_AS(str.integer(), std::logic_error);
    REQUIRE_THROWS_AS(str.elements(), std::logic_error);
    REQUIRE_THROWS_AS(arr.integer(), std::logic_error);
    REQUIRE_THROWS_AS(arr.str(), std::logic_error);
    REQUIRE(reply{}.is_nil());
  }(server));
}

TEST_CASE("redis: bad arguments throw invalid_argument, misuse logic_error", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s);
    REQUIRE_THROWS_AS(co_await c.command(std::vector<std::string>{}), std::invalid_argument);
    const char* null_text = nullptr;
    REQUIRE_THROWS_AS(co_await c.command("GET", null_text), std::invalid_argument);
    // Commands whose replies would not pair with commands.
    REQUIRE_THROWS_AS(co_await c.command("SUBSCRIBE", "news"), std::invalid_argument);
    REQUIRE_THROWS_AS(co_await c.command("psubscribe", "n*"), std::invalid_argument);
    REQUIRE_THROWS_AS(co_await c.command("MONITOR"), std::invalid_argument);
    REQUIRE_THROWS_AS(co_await c.command("client", "reply", "off"), std::invalid_argument);
    reply r = co_await c.command("ECHO", "fine");  // nothing was sent for them
    REQUIRE(r.str() == "fine");

    REQUIRE_THROWS_AS(co_await connection::connect("127.0.0.1", s.port(), {.max_in_flight = 0}), std::invalid_argument);
    REQUIRE_THROWS_AS(co_await connection::connect("", s.port()), std::invalid_argument);
    REQUIRE_THROWS_AS(co_await connection::connect("127.0.0.1", 0), std::invalid_argument);

    connection none;
    REQUIRE_FALSE(none.is_open());
    REQUIRE_THROWS_AS(co_await none.command("PING"), std::logic_error);
    connection moved = std::move(c);
    REQUIRE_THROWS_AS(co_await c.command("PING"), std::logic_error);
    reply still = co_await moved.command("ECHO", "moved");
    REQUIRE(still.str() == "moved");
  }(server));
}

TEST_CASE("redis: a closed port gives system_error", "[redis]") {
  std::uint16_t port;
  {
    redis_server server;
    port = server.port();
  }  // stopped: nothing listens there now
  run([](std::uint16_t p) -> task<void> {
    REQUIRE_THROWS_AS(co_await connection::connect("127.0.0.1", p), std::system_error);
  }(port));
}

TEST_CASE("redis: a 64 MiB value goes and comes back whole", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s);
    std::string big(64u << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    co_await c.command("SET", "big", big);
    reply len = co_await c.command("STRLEN", "big");
    REQUIRE(len.integer() == static_cast<long long>(big.size()));
    reply back = co_await c.command("GET", "big");
    REQUIRE(back.str() == big);
    reply after = co_await c.command("ECHO", "after");
    REQUIRE(after.str() == "after");
  }(server));
}

namespace {

// One of many tasks sharing the connection: a key of its own and a shared
// counter; every reply must be its own.
task<bool> set_get_incr(connection* c, int i) {
  std::string key = "key:" + std::to_string(i);
  reply ok = co_await c->command("SET", key, i);
  reply got = co_await c->command("GET", key);
  reply n = co_await c->command("INCR", "counter");
  co_return ok.str() == "OK" && got.str() == std::to_string(i) && n.integer() >= 1;
}

task<void> many_commands(const redis_server* s, int count, std::size_t max_in_flight) {
  connection c = co_await connect(*s, max_in_flight);
  std::vector<ringflow::join_handle<bool>> tasks;
  tasks.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) tasks.push_back(ringflow::spawn(set_get_incr(&c, i)));
  int right = 0;
  for (auto& t : tasks) right += (co_await std::move(t)) ? 1 : 0;
  REQUIRE(right == count);
  reply total = co_await c.command("GET", "counter");
  REQUIRE(total.str() == std::to_string(count));
  REQUIRE(c.in_flight() == 0);
  REQUIRE(c.waiting() == 0);
}

}  // namespace

TEST_CASE("redis: 10,000 concurrent commands from tasks on two workers each get their own reply", "[redis]") {
  const int count = 10000;
  redis_server server;
  run(many_commands(&server, count, 1024), 2);
}

TEST_CASE("redis: concurrent commands through a narrow window (max_in_flight 8)", "[redis]") {
  const int count = 3000;
  redis_server server;
  run(many_commands(&server, count, 8), 2);
}

namespace {

// A command that blocks the connection on the server until `q` gets a value.
task<std::string> blpop(connection* c, std::string q) {
  reply r = co_await c->command("BLPOP", q, 0);
  co_return std::string(r.elements()[1].str());
}

// With a BLPOP blocking the connection on the server, what the server has
// received behind it (its query buffer) is what the bound let through.
void check_window(std::size_t max_in_flight, int echoes) {
  redis_server server;
  run([](const redis_server* s, std::size_t max, int n) -> task<void> {
    connection c = co_await connect(*s, max);
    connection observer = co_await connect(*s);
    co_await c.command("CLIENT", "SETNAME", "under-test");
    auto blocker = ringflow::spawn(blpop(&c, "q"));
    co_await until([&] { return c.in_flight() == 1; }, "the BLPOP is in flight");
    std::vector<ringflow::join_handle<std::string>> echo_tasks;
    for (int i = 1; i <= n; ++i) echo_tasks.push_back(ringflow::spawn(echo(&c, std::to_string(i))));
    const std::size_t behind = std::min<std::size_t>(max - 1, static_cast<std::size_t>(n));
    co_await until([&] { return c.in_flight() + c.waiting() == static_cast<std::size_t>(n) + 1; },
                   "every ECHO is in command()");
    REQUIRE(c.in_flight() == behind + 1);
    REQUIRE(c.waiting() == static_cast<std::size_t>(n) - behind);

    // The server's view: blocked, with exactly `behind` ECHOs received
    // (each "*2\r\n$4\r\nECHO\r\n$1\r\nN\r\n": 21 bytes) and no more.
    const std::string expected_qbuf = std::to_string(behind * 21);
    std::map<std::string, std::string> f;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      f = co_await client_fields(observer, "under-test");
      bool blocked = f["flags"].find('b') != std::string::npos;
      if (blocked && std::stoul(f["qbuf"]) >= behind * 21) break;
      if (std::chrono::steady_clock::now() > deadline) FAIL("the server never showed the window: qbuf=" << f["qbuf"]);
      co_await ringflow::sleep_for(1ms);
    }
    REQUIRE(f["qbuf"] == expected_qbuf);

    co_await observer.command("LPUSH", "q", "released");
    std::string popped = co_await std::move(blocker);
    REQUIRE(popped == "released");
    for (int i = 1; i <= n; ++i) {
      std::string got = co_await std::move(echo_tasks[static_cast<std::size_t>(i - 1)]);
      REQUIRE(got == std::to_string(i));
    }
    REQUIRE(c.in_flight() == 0);
  }(&server, max_in_flight, echoes), 2);
}

}  // namespace

TEST_CASE("redis: max_in_flight 1 holds the next command until the blocking one returns", "[redis]") {
  check_window(1, 5);
}

TEST_CASE("redis: max_in_flight 4 lets three commands through behind a blocking one", "[redis]") {
  check_window(4, 6);
}

TEST_CASE("redis: a command cancelled by timeout loses its place; the others get their own replies", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s);
    connection other = co_await connect(s);

    // Sent, then cancelled: its reply comes later and is dropped.
    std::optional<reply> r = co_await ringflow::timeout(20ms, c.command("BLPOP", "q", 0));
    REQUIRE_FALSE(r.has_value());
    REQUIRE(c.in_flight() == 1);  // its reply is still to come
    auto after = ringflow::spawn(echo(&c, "after"));
    co_await other.command("LPUSH", "q", "for-the-cancelled-one");
    std::string got = co_await std::move(after);
    REQUIRE(got == "after");
    reply left = co_await other.command("LLEN", "q");
    REQUIRE(left.integer() == 0);  // the cancelled BLPOP did take it

    // Two cancelled in a row, between live ones.
    auto first = ringflow::spawn(blpop(&c, "q1"));
    co_await until([&] { return c.in_flight() == 1; }, "the first BLPOP is in flight");
    co_await ringflow::timeout(5ms, c.command("BLPOP", "q2", 0));
    co_await ringflow::timeout(5ms, c.command("ECHO", "cancelled"));
    auto last = ringflow::spawn(echo(&c, "last"));
    co_await other.command("LPUSH", "q1", "one");
    co_await other.command("LPUSH", "q2", "two");
    std::string one = co_await std::move(first);
    std::string l = co_await std::move(last);
    REQUIRE(one == "one");
    REQUIRE(l == "last");
    REQUIRE(c.in_flight() == 0);
  }(server));
}

TEST_CASE("redis: a command cancelled while waiting for a place is never sent", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s, 1);
    connection other = co_await connect(s);
    auto blocker = ringflow::spawn(blpop(&c, "q"));
    co_await until([&] { return c.in_flight() == 1; }, "the BLPOP is in flight");
    std::optional<reply> r = co_await ringflow::timeout(10ms, c.command("SET", "never", 1));
    REQUIRE_FALSE(r.has_value());
    REQUIRE(c.waiting() == 0);
    co_await other.command("LPUSH", "q", "v");
    std::string v = co_await std::move(blocker);
    REQUIRE(v == "v");
    reply e = co_await c.command("EXISTS", "never");
    REQUIRE(e.integer() == 0);
  }(server));
}

namespace {

// Many ECHOs, each with a random short deadline, from tasks on two workers:
// whatever completes must be its own value.
struct race_counts {
  std::atomic<int> completed{0};
  std::atomic<int> cancelled{0};
};

task<int> racing_echoes(connection* c, race_counts* counts, int id, int rounds) {
  std::mt19937 rng(static_cast<unsigned>(id));
  int wrong = 0;
  for (int i = 0; i < rounds; ++i) {
    std::string v = std::to_string(id) + ":" + std::to_string(i);
    // Every 20th deadline is 0: cancelled at its first suspension, whatever the machine's load.
    auto d = std::chrono::microseconds(i % 20 == 0 ? 0 : rng() % 300);
    std::optional<reply> r = co_await ringflow::timeout(d, c->command("ECHO", v));
    if (!r) {
      ++counts->cancelled;
    } else {
      ++counts->completed;
      if (r->str() != v) ++wrong;
    }
  }
  co_return wrong;
}

}  // namespace

TEST_CASE("redis: commands racing timeouts on two workers never get another's reply", "[redis]") {
  const int tasks = 16;
  const int rounds = tsan ? 200 : 500;
  redis_server server;
  run([](const redis_server* s, int n, int rounds_each) -> task<void> {
    connection c = co_await connect(*s, 32);
    race_counts counts;
    std::vector<ringflow::join_handle<int>> hs;
    for (int i = 0; i < n; ++i) hs.push_back(ringflow::spawn(racing_echoes(&c, &counts, i, rounds_each)));
    int wrong = 0;
    for (auto& h : hs) wrong += co_await std::move(h);
    INFO("completed " << counts.completed.load() << ", cancelled " << counts.cancelled.load());
    REQUIRE(wrong == 0);
    REQUIRE(counts.completed.load() + counts.cancelled.load() == n * rounds_each);
    REQUIRE(counts.cancelled.load() > 0);  // the race did happen
    // Every dropped reply was read: the pipeline is in step again.
    for (int i = 0; i < 10; ++i) {
      std::string got = co_await echo(&c, "check" + std::to_string(i));
      REQUIRE(got == "check" + std::to_string(i));
    }
    co_await until([&] { return c.in_flight() == 0; }, "the dropped replies are read");
  }(&server, tasks, rounds), 2);
}

namespace {

task<int> expect_lost(connection* c, std::string q) {
  try {
    co_await c->command("BLPOP", q, 0);
  } catch (const std::system_error&) {
    co_return 1;
  }
  co_return 0;
}

}  // namespace

TEST_CASE("redis: a server killed mid-flight fails what is in flight and what comes later", "[redis]") {
  redis_server server;
  run([](redis_server* s) -> task<void> {
    connection c = co_await connect(*s, 4);
    std::vector<ringflow::join_handle<int>> hs;
    for (int i = 0; i < 10; ++i) hs.push_back(ringflow::spawn(expect_lost(&c, "q" + std::to_string(i))));
    co_await until([&] { return c.in_flight() == 4 && c.waiting() == 6; }, "every BLPOP is in command()");
    s->kill();
    int lost = 0;
    for (auto& h : hs) lost += co_await std::move(h);
    REQUIRE(lost == 10);
    REQUIRE_FALSE(c.is_open());
    REQUIRE_THROWS_AS(co_await c.command("PING"), std::system_error);
    REQUIRE(c.in_flight() == 0);
  }(&server), 2);
}

TEST_CASE("redis: closing the connection fails the commands in flight with ECONNABORTED", "[redis]") {
  redis_server server;
  run([](const redis_server& s) -> task<void> {
    connection c = co_await connect(s);
    auto pending = ringflow::spawn(expect_lost(&c, "q"));
    co_await until([&] { return c.in_flight() == 1; }, "the BLPOP is in flight");
    c.close();
    int lost = co_await std::move(pending);
    REQUIRE(lost == 1);
    REQUIRE_FALSE(c.is_open());
    REQUIRE_THROWS_AS(co_await c.command("PING"), std::logic_error);  // closed: no connection any more
  }(server));
}

TEST_CASE("redis: a reply hiredis cannot parse closes the connection with EPROTO", "[redis]") {
  run([]() -> task<void> {
    auto l = ringflow::tcp_listener::bind("127.0.0.1", 0);
    auto fake = ringflow::spawn([](ringflow::tcp_listener* listener) -> task<void> {
      ringflow::tcp_stream peer = co_await listener->accept();
      std::byte buf[256];
      co_await peer.read(buf);  // the command
      std::string_view junk = "?not resp\r\n";
      co_await peer.write_all(std::as_bytes(std::span(junk)));
      while (co_await peer.read(buf) > 0) {
      }
    }(&l));
    connection c = co_await connection::connect("127.0.0.1", l.local_port());
    std::error_code ec;
    try {
      co_await c.command("PING");
    } catch (const std::system_error& e) {
      ec = e.code();
    }
    REQUIRE(ec == std::errc::protocol_error);
    REQUIRE_FALSE(c.is_open());
    REQUIRE_THROWS_AS(co_await c.command("PING"), std::system_error);
    c.close();
    co_await std::move(fake);
  }());
}

namespace {
task<void> incr_prepared(connection* c, const ringflow::redis::prepared_command* p, int n) {
  for (int i = 0; i < n; ++i) co_await c->command(*p);
}
}  // namespace

TEST_CASE("redis: a prepared command is formatted once and sent many times, by tasks on two workers", "[redis]") {
  using ringflow::redis::prepared_command;
  redis_server server;
  const prepared_command ping("PING");
  REQUIRE(ping.bytes() == "*1\r\n$4\r\nPING\r\n");
  const prepared_command from_vector(std::vector<std::string>{"ECHO", "v"});
  REQUIRE(from_vector.bytes() == "*2\r\n$4\r\nECHO\r\n$1\r\nv\r\n");
  // What command() refuses, the constructor refuses.
  REQUIRE_THROWS_AS(prepared_command(std::vector<std::string>{}), std::invalid_argument);
  REQUIRE_THROWS_AS(prepared_command("SUBSCRIBE", "ch"), std::invalid_argument);

  run(
      [&server]() -> task<void> {
        const redis_server& s = server;
        connection c = co_await connect(s, 16);
        reply pong = co_await c.command(prepared_command("PING"));  // the temporary dies before the reply
        REQUIRE(pong.str() == "PONG");

        // Sent from many tasks at once, through a window of 16.
        const prepared_command incr("INCR", "prepared:n");
        std::vector<ringflow::join_handle<void>> hs;
        for (int i = 0; i < 40; ++i) hs.push_back(ringflow::spawn(incr_prepared(&c, &incr, 50)));
        for (auto& h : hs) co_await std::move(h);
        reply n = co_await c.command("GET", "prepared:n");
        REQUIRE(n.str() == "2000");

        // A prepared command whose object dies while it is in flight, and one
        // cancelled after it was sent: the bytes stay alive, and the other
        // commands get their own replies.
        task<reply> in_flight = [&] {
          const prepared_command blpop("BLPOP", "prepared:q", 0);
          return c.command(blpop);
        }();
        auto waiting = ringflow::spawn(std::move(in_flight));
        co_await until([&] { return c.in_flight() == 1; }, "the BLPOP is in flight");
        const prepared_command cancelled("BLPOP", "prepared:q2", 0);
        std::optional<reply> none = co_await ringflow::timeout(5ms, c.command(cancelled));
        REQUIRE_FALSE(none.has_value());
        connection other = co_await connect(s);
        co_await other.command("LPUSH", "prepared:q", "one");
        co_await other.command("LPUSH", "prepared:q2", "two");
        reply got = co_await std::move(waiting);
        REQUIRE(got.elements()[1].str() == "one");
        const prepared_command echo_after("ECHO", "after");
        reply after = co_await c.command(echo_after);
        REQUIRE(after.str() == "after");
        REQUIRE(c.in_flight() == 0);
      },
      2);
}

namespace {
task<std::size_t> pipeline_incrs(connection* c, const ringflow::redis::command_batch* b, int rounds) {
  std::size_t replies = 0;
  for (int i = 0; i < rounds; ++i) {
    std::vector<reply> r = co_await c->pipeline(*b);
    replies += r.size();
  }
  co_return replies;
}
}  // namespace

TEST_CASE("redis: pipeline() sends a batch and returns its replies in order, errors in place", "[redis]") {
  using ringflow::redis::command_batch;
  using ringflow::redis::prepared_command;
  redis_server server;
  command_batch empty;
  command_batch bad;
  REQUIRE_THROWS_AS(bad.add("SUBSCRIBE", "ch"), std::invalid_argument);
  REQUIRE(bad.empty());
  run(
      [&server, &empty]() -> task<void> {
        connection c = co_await connect(server, 8);
        const prepared_command ping("PING");
        command_batch b;
        b.add("SET", "batch:a", 1).add("INCR", "batch:a").add("LPUSH", "batch:a", "x").add(ping).add("GET", "batch:a");
        REQUIRE(b.size() == 5);
        std::vector<reply> r = co_await c.pipeline(b);
        REQUIRE(r.size() == 5);
        CHECK(r[0].str() == "OK");
        CHECK(r[1].integer() == 2);
        CHECK(r[2].type() == kind::error);  // WRONGTYPE, in its place
        CHECK(r[3].str() == "PONG");
        CHECK(r[4].str() == "2");

        REQUIRE_THROWS_AS(c.pipeline(empty), std::invalid_argument);
        command_batch nine;
        for (int i = 0; i < 9; ++i) nine.add("PING");
        REQUIRE_THROWS_AS(c.pipeline(nine), std::invalid_argument);  // never fits max_in_flight 8

        // Batches and single commands from tasks on both workers share the
        // connection; every batch gets all of its own replies.
        command_batch incrs;
        for (int i = 0; i < 4; ++i) incrs.add("INCR", "batch:n");
        std::vector<ringflow::join_handle<std::size_t>> hs;
        for (int i = 0; i < 10; ++i) hs.push_back(ringflow::spawn(pipeline_incrs(&c, &incrs, 25)));
        std::vector<ringflow::join_handle<std::string>> echoes;
        for (int i = 0; i < 50; ++i) echoes.push_back(ringflow::spawn(echo(&c, "e" + std::to_string(i))));
        std::size_t replies = 0;
        for (auto& h : hs) replies += co_await std::move(h);
        for (int i = 0; i < 50; ++i) {
          std::string e = co_await std::move(echoes[static_cast<std::size_t>(i)]);
          CHECK(e == "e" + std::to_string(i));
        }
        CHECK(replies == 1000);
        reply n = co_await c.command("GET", "batch:n");
        CHECK(n.str() == "1000");

        // Cancelled after it was sent, mid-batch (a BLPOP blocks its second
        // reply): the rest of its replies are dropped, the next command gets
        // its own.
        command_batch blocking;
        blocking.add("PING").add("BLPOP", "batch:q", 0).add("PING");
        std::optional<std::vector<reply>> none = co_await ringflow::timeout(20ms, c.pipeline(blocking));
        REQUIRE_FALSE(none.has_value());
        CHECK(c.in_flight() >= 2);  // the BLPOP's and the last PING's replies are still to come
        connection other = co_await connect(server);
        auto after = ringflow::spawn(echo(&c, "after"));
        co_await other.command("LPUSH", "batch:q", "v");
        std::string a = co_await std::move(after);
        CHECK(a == "after");
        CHECK(c.in_flight() == 0);
      },
      2);
}
