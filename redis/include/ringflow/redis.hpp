// ringflow::redis: a Redis client on io_uring. One connection carries the
// commands of many tasks, pipelined in order, with a bound on how many are
// sent and unanswered (backpressure towards the callers).
//
//   auto c = co_await ringflow::redis::connection::connect("127.0.0.1", 6379);
//   co_await c.command("SET", "answer", 42);
//   ringflow::redis::reply r = co_await c.command("GET", "answer");
//   assert(r.str() == "42");
//   std::vector<std::string> argv{"LPUSH", "jobs", "a", "b"};
//   long long n = (co_await c.command(std::move(argv))).integer();
//
// RESP is parsed by hiredis's redisReader and commands are formatted by its
// redisFormatCommandArgv; the bytes travel on ringflow's tcp_stream. Built
// only when hiredis was found (meson -Dredis=auto|enabled; RINGFLOW_HAS_REDIS
// in <ringflow/features.hpp>), and ringflow.pc then requires hiredis.
//
// Pipelining. command() queues its formatted command and suspends until its
// reply arrives. One writer task sends what is queued in batches (one send
// for many commands) and one reader task hands the replies out in order, so
// commands from many tasks, on any workers, share one TCP connection and each
// gets its own reply. Both tasks run on the worker that connected.
//
// Backpressure. At most max_in_flight commands are sent (or queued to be
// sent) and unanswered; a further command() suspends, in FIFO order, until a
// reply frees a place. A command cancelled after it was sent keeps its place
// until its reply arrives and is discarded.
//
// Errors. An error reply ("-ERR ...", "-WRONGTYPE ...") throws redis::error
// with the server's text; the connection stays usable. When the connection is
// lost (the server closed it or reset it, a read or write failed) every
// command in flight, queued or waiting for a place, and every later one,
// throws std::system_error with the errno (ECONNRESET when the server closed
// it); so does a reply hiredis cannot parse (EPROTO: the connection is closed
// then, since the byte stream can no longer be trusted), and a connection
// closed by close(), its destructor or the shutdown of the runtime its
// writer and reader run on (ECONNABORTED) fails what was in flight.
// Bad arguments throw std::invalid_argument from the call itself; a
// default-constructed or moved-from connection throws std::logic_error.
//
// Not supported, refused with std::invalid_argument: commands that change how
// the server replies (SUBSCRIBE and its kin, MONITOR, CLIENT REPLY), since
// their replies do not pair with commands. RESP3 (HELLO 3) needs hiredis 1.0
// or later; with hiredis 0.14 its first RESP3 reply is a protocol error, and
// so is an array nested more than 7 deep (hiredis 0.14's limit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

// Before the declarations, unlike other machinery: command()'s constraint
// and body need the argument formatting.
#include <ringflow/detail/redis_command.hpp>
#include <ringflow/detail/reply_text.hpp>
#include <ringflow/task.hpp>

namespace ringflow::redis {

namespace detail {
struct connection_state;
struct connection_access;
struct reply_builder;
}  // namespace detail

// An error reply; what() is the server's text ("WRONGTYPE Operation ...").
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One RESP value. Accessors of another kind throw std::logic_error.
class reply {
 public:
  // error: only inside an array (an EXEC with a failed command) or among a
  // pipeline()'s replies; an error reply to command() throws redis::error.
  enum class kind { nil, integer, string, status, array, error };

  reply() noexcept = default;  // nil

  kind type() const noexcept { return kind_; }
  bool is_nil() const noexcept { return kind_ == kind::nil; }
  long long integer() const;                // integer
  std::string_view str() const;             // string, status or error
  std::span<const reply> elements() const;  // array (a nil array is nil)

 private:
  friend struct detail::reply_builder;
  kind kind_ = kind::nil;
  long long integer_ = 0;
  detail::reply_text str_;
  std::vector<reply> elements_;
};

// A command formatted once (by hiredis, with command()'s checks) and sent
// any number of times, by any tasks, on any connections: for a hot command
// whose arguments never change (a health check's PING, a probe's XADD), it
// saves formatting it on every call, as redis-benchmark does. Copies share
// the bytes; a command() in flight keeps them alive, so the prepared_command
// may die once the call has returned.
//   const ringflow::redis::prepared_command ping("PING");
//   co_await c.command(ping);
// Throws what command() throws for the same arguments, from the constructor.
class prepared_command {
 public:
  template <class... Args>
    requires(sizeof...(Args) > 0 && (detail::command_argument<Args> && ...))
  explicit prepared_command(const Args&... args)
      : bytes_(std::make_shared<const detail::command_bytes>(detail::format_arguments(args...))) {}
  explicit prepared_command(const std::vector<std::string>& args);

  // The command as sent (RESP).
  std::string_view bytes() const noexcept { return bytes_->view(); }

 private:
  friend class connection;
  std::shared_ptr<const detail::command_bytes> bytes_;
};

// Commands sent together by connection::pipeline(), in order, as
// redis-benchmark's -P sends them: one task and one wait for all of their
// replies. Each add() formats (with command()'s checks, throwing what it
// throws) and appends; the batch may be sent any number of times.
//   ringflow::redis::command_batch b;
//   b.add("SET", "a", 1).add("INCR", "a").add(ping);
//   std::vector<ringflow::redis::reply> r = co_await c.pipeline(b);
class command_batch {
 public:
  template <class... Args>
    requires(sizeof...(Args) > 0 && (detail::command_argument<Args> && ...))
  command_batch& add(const Args&... args) {
    detail::command_bytes c = detail::format_arguments(args...);
    append(c.view());
    return *this;
  }
  command_batch& add(const prepared_command& p);

  std::size_t size() const noexcept { return count_; }  // commands
  bool empty() const noexcept { return count_ == 0; }
  void clear() noexcept {
    bytes_.clear();
    count_ = 0;
  }
  // The commands as sent (RESP), back to back.
  std::string_view bytes() const noexcept { return bytes_; }

 private:
  void append(std::string_view formatted);
  std::string bytes_;
  std::size_t count_ = 0;
};

struct connection_options {
  // Commands sent (or queued to be sent) and awaiting replies; command()
  // suspends beyond it (backpressure on pipelining). 0: std::invalid_argument.
  std::size_t max_in_flight = 1024;
};

class connection {
 public:
  // Not connected: command() throws std::logic_error.
  connection() noexcept = default;
  connection(connection&&) noexcept = default;
  // Closes this connection first (as close()).
  connection& operator=(connection&& o) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  // Closes the connection (see close()).
  ~connection() { close(); }

  // Connects with TCP_NODELAY and starts the connection's writer and reader
  // tasks on the calling worker. host is copied at once and opts read at
  // once (a plain function: the arguments may die before the task runs).
  // Throws std::invalid_argument (max_in_flight 0, an empty host, port 0,
  // from the call), std::system_error (refused, unresolvable: from the task).
  // Cancel safety: as tcp_stream::connect; nothing is started until it is
  // connected.
  static task<connection> connect(std::string_view host, std::uint16_t port, connection_options opts = {});

  // Sends args as one command (args[0] is its name) and returns its reply.
  // Throws std::invalid_argument (from the call) for an empty args or a
  // command hiredis cannot format (over 2 GiB), redis::error for an error
  // reply, std::system_error when the connection is lost (see above).
  // Cancel safety: a command()'s task may be cancelled (ringflow::timeout)
  // at any point. Not yet sent, it is withdrawn and never sent; sent, its
  // reply is read and discarded when it comes, and every other command
  // still gets its own reply. A cancelled blocking command (BLPOP) still
  // holds the connection on the server until it returns.
  task<reply> command(std::vector<std::string> args);

  // command("SET", key, 42): each argument a std::string, std::string_view,
  // const char* (not null), char array (up to its first '\0'), integer or
  // floating-point number (shortest round-trip text), formatted and copied
  // before the call returns, so temporaries may die at once. Other types
  // (bool, char, ...) do not compile. Throws, and is cancel-safe, as above.
  // A plain function, not a coroutine: a braced list across a co_await does
  // not compile with g++ 12, and temporaries must not dangle.
  template <class... Args>
    requires(sizeof...(Args) > 0 && (detail::command_argument<Args> && ...))
  task<reply> command(const Args&... args) {
    return send(detail::format_arguments(args...));
  }

  // Sends a prepared command: as command() with its arguments, without
  // formatting them again.
  task<reply> command(const prepared_command& p);

  // Sends b's commands back to back and returns their replies, in order.
  // An error reply is returned in its place (kind::error), not thrown, so
  // one failed command does not hide the others' replies. The batch takes
  // b.size() places of max_in_flight at once (it waits until they are
  // free). b is copied before the call returns. Throws std::invalid_argument
  // (from the call) for an empty batch or one larger than max_in_flight,
  // std::system_error when the connection is lost. Cancel safety: as
  // command(); cancelled after it was sent, every reply of the batch is
  // read and discarded.
  task<std::vector<reply>> pipeline(const command_batch& b);

  // Closes the connection (idempotent, any thread): what is in flight,
  // queued or waiting for a place throws std::system_error(ECONNABORTED);
  // this object is then not connected (a later command() throws
  // std::logic_error, as on a closed tcp_stream).
  void close() noexcept;
  // False when not connected, closed, or lost.
  bool is_open() const noexcept;
  // Commands sent (or queued to be sent) and unanswered, cancelled ones
  // whose replies are still to come included; at most max_in_flight.
  std::size_t in_flight() const noexcept;
  // command()s suspended for a place (max_in_flight reached).
  std::size_t waiting() const noexcept;

 private:
  explicit connection(std::shared_ptr<detail::connection_state> s) noexcept : st_(std::move(s)) {}
  friend struct detail::connection_access;
  task<reply> send(detail::command_bytes cmd);

  std::shared_ptr<detail::connection_state> st_;
};

}  // namespace ringflow::redis
