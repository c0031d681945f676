// The pipelined connection: commands wait for a place (max_in_flight), are
// queued for the writer task, which moves them to the `sent` list in the
// order it writes them, and the reader task hands each reply to the first
// command of that list. Every step happens under the connection's lock, and
// a command's frame is resumed only once, with its reply or its failure.
//
// Cancellation (the command's frame destroyed while it waits) withdraws the
// command from wherever it is under the same lock: waiting or queued, it
// simply leaves (a queued one gives its place to the next waiting command);
// sent, its reply is still coming, so the number of replies to drop moves to
// the command behind it (discard_before) or, when it was the last one, to
// discard_at_tail; completed, its queued resumption is withdrawn.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/redis.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/tcp.hpp>

#include "connection_access.hpp"
#include "reply_reader.hpp"

namespace ringflow::redis::detail {

namespace {

using ringflow::detail::spinlock;
using ringflow::detail::tls_worker;
using ringflow::detail::worker;

// The writer copies small commands into one buffer per batch and sends
// large ones from their own bytes; a batch takes commands up to this size.
constexpr std::size_t batch_bytes = 256 * 1024;
constexpr std::size_t direct_write_bytes = 64 * 1024;
constexpr std::size_t read_chunk_bytes = 64 * 1024;

enum class stage : unsigned char {
  idle,       // not suspended (or resumed)
  waiting,    // for a place: `waiting` list
  queued,     // has a place, not yet taken by the writer: `queued` list
  sent,       // taken by the writer, its reply to come: `sent` list
  completed,  // off every list, its resumption queued (reply or failure)
};

struct request {
  request* prev = nullptr;
  request* next = nullptr;
  std::coroutine_handle<> handle;
  // The frame the command's task returns to (its caller's): prefetched with
  // the command's own when its reply comes, since thousands of commands in
  // flight leave both frames out of the cache by then, and resuming them
  // one after the other stalled on each in turn.
  const void* caller_frame = nullptr;
  worker* owner = nullptr;  // where it suspended, and resumes
  stage where = stage::idle;
  bool lost = false;  // completed by the connection's failure, not a reply
  // Written only by the command's own task: true from suspension to resume.
  // Its destructor tests this (no lock) before it locks to withdraw.
  bool registered = false;
  std::size_t discard_before = 0;  // sent: replies of cancelled commands ahead of its own
  std::size_t commands = 1;        // places it takes: a pipeline()'s commands, else one
  std::size_t replies_due = 1;     // a pipeline()'s replies still to come
  std::vector<reply>* batch = nullptr;  // a pipeline()'s replies, in order (reserved)
  command_bytes cmd;
  reply result;
};

class request_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  request* front() const noexcept { return head_; }
  std::size_t size() const noexcept { return size_; }
  void push_back(request* r) noexcept {
    r->next = nullptr;
    r->prev = tail_;
    (tail_ ? tail_->next : head_) = r;
    tail_ = r;
    ++size_;
  }
  request* pop_front() noexcept {
    request* r = head_;
    remove(r);
    return r;
  }
  void remove(request* r) noexcept {
    (r->prev ? r->prev->next : head_) = r->next;
    (r->next ? r->next->prev : tail_) = r->prev;
    r->prev = r->next = nullptr;
    --size_;
  }

 private:
  request* head_ = nullptr;
  request* tail_ = nullptr;
  std::size_t size_ = 0;
};

// Holds the connection's lock. A resumption is queued while it is held, so
// a frame being destroyed meanwhile (its destructor takes the same lock)
// finds it queued and withdraws it; waking a sleeping worker waits until
// the lock is released.
class locked_state {
 public:
  explicit locked_state(spinlock& l) noexcept : lock_(&l) { l.lock(); }
  locked_state(const locked_state&) = delete;
  locked_state& operator=(const locked_state&) = delete;
  ~locked_state() { unlock(); }

  void unlock() noexcept {
    if (lock_) std::exchange(lock_, nullptr)->unlock();
    for (unsigned i = 0; i < wakes_; ++i) to_wake_[i]->wake();
    wakes_ = 0;
  }
  void schedule(worker* w, std::coroutine_handle<> h) {
    if (w == tls_worker) {
      w->schedule_local(h);
      return;
    }
    if (!w->push_remote(h)) return;
    for (unsigned i = 0; i < wakes_; ++i) {
      if (to_wake_[i] == w) return;
    }
    if (wakes_ < max_wakes) {
      to_wake_[wakes_++] = w;
    } else {
      w->wake();
    }
  }

 private:
  static constexpr unsigned max_wakes = 8;
  spinlock* lock_;
  worker* to_wake_[max_wakes];
  unsigned wakes_ = 0;
};

}  // namespace

struct connection_state {
  connection_state(tcp_stream s, std::size_t max) : stream(std::move(s)), max_in_flight(max) {}

  mutable spinlock lock;
  tcp_stream stream;  // read by the reader task, written by the writer task
  const std::size_t max_in_flight;

  // Under `lock`.
  request_list waiting;
  request_list queued;
  request_list sent;
  // Places taken: queued and sent commands, and cancelled sent ones whose
  // replies are still to come.
  std::size_t in_flight = 0;
  std::size_t discard_at_tail = 0;  // replies to drop after the last sent command's
  std::coroutine_handle<> writer;   // the writer, parked until there is work
  worker* writer_owner = nullptr;
  bool failed = false;
  // Set once, with `failed`; read without the lock by whoever saw `failed`.
  std::error_code failure;
  char failure_text[192] = {};

  std::system_error failure_error() const {
    return std::system_error(failure, std::string("ringflow::redis: ") + failure_text);
  }

  void wake_writer_locked(locked_state& g) {
    if (writer) g.schedule(writer_owner, std::exchange(writer, {}));
  }

  void enqueue_locked(locked_state& g, request* r) {
    r->where = stage::queued;
    queued.push_back(r);
    wake_writer_locked(g);
  }

  // Free places go to the waiting commands, first come first served.
  void admit_locked(locked_state& g) {
    while (!waiting.empty() && in_flight + waiting.front()->commands <= max_in_flight) {
      in_flight += waiting.front()->commands;
      enqueue_locked(g, waiting.pop_front());
    }
  }

  void complete_locked(locked_state& g, request* r) {
    __builtin_prefetch(r->handle.address());
    __builtin_prefetch(r->caller_frame);  // set by await_suspend, before the request is on any list
    r->where = stage::completed;
    g.schedule(r->owner, r->handle);
  }

  void fail_locked(locked_state& g, std::error_code ec, std::string_view text) noexcept {
    if (failed) return;
    failed = true;
    failure = ec;
    std::snprintf(failure_text, sizeof failure_text, "%.*s", static_cast<int>(text.size()), text.data());
    for (request_list* l : {&sent, &queued, &waiting}) {
      while (!l->empty()) {
        request* r = l->pop_front();
        r->lost = true;
        complete_locked(g, r);
      }
    }
    in_flight = 0;
    discard_at_tail = 0;
    wake_writer_locked(g);  // it sees `failed` and ends
    // Ends the reader's receive (and a send in progress) on its worker.
    ::shutdown(stream.native_handle(), SHUT_RDWR);
  }

  void fail(std::error_code ec, std::string_view text) noexcept {
    locked_state g(lock);
    fail_locked(g, ec, text);
  }

  // Moves queued commands (up to batch_bytes) to `sent`, their bytes into
  // `taken`, in order. False once the connection failed.
  bool take_batch(std::vector<command_bytes>& taken) {
    locked_state g(lock);
    if (failed) return false;
    std::size_t bytes = 0;
    while (!queued.empty() && (bytes == 0 || bytes + queued.front()->cmd.size() <= batch_bytes)) {
      request* r = queued.front();
      taken.push_back(std::move(r->cmd));
      bytes += taken.back().size();
      queued.pop_front();
      r->where = stage::sent;
      r->discard_before = std::exchange(discard_at_tail, 0);
      sent.push_back(r);
    }
    return true;
  }

  // Hands replies, in arrival order, to the sent commands. False once the
  // connection failed (then or before).
  bool deliver(std::vector<reply>& replies) {
    locked_state g(lock);
    if (failed) return false;
    for (reply& rep : replies) {
      if (request* r = sent.front()) {
        --in_flight;
        if (r->discard_before > 0) {
          --r->discard_before;
          continue;
        }
        if (r->batch) {
          r->batch->push_back(std::move(rep));
          if (--r->replies_due > 0) continue;
        } else {
          r->result = std::move(rep);
        }
        sent.pop_front();
        complete_locked(g, r);
      } else if (discard_at_tail > 0) {
        --in_flight;
        --discard_at_tail;
      } else {
        fail_locked(g, std::make_error_code(std::errc::protocol_error),
                    "a reply arrived for no command (is the connection subscribed?)");
        return false;
      }
    }
    admit_locked(g);
    return true;
  }
};

namespace {

// co_await in a command's task: suspends until its reply (or the
// connection's failure) has come.
class command_awaiter {
 public:
  command_awaiter(connection_state& s, command_bytes cmd) noexcept : s_(s) { r_.cmd = std::move(cmd); }
  // A pipeline(): `commands` commands in cmd, their replies into *out.
  command_awaiter(connection_state& s, command_bytes cmd, std::size_t commands, std::vector<reply>* out) noexcept
      : s_(s) {
    r_.cmd = std::move(cmd);
    r_.commands = r_.replies_due = commands;
    r_.batch = out;
  }
  command_awaiter(const command_awaiter&) = delete;
  command_awaiter& operator=(const command_awaiter&) = delete;
  ~command_awaiter() {
    if (r_.registered) withdraw();
  }

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
    worker* w = tls_worker;
    if (!w) throw std::logic_error("ringflow::redis: a command was awaited outside a runtime");
    r_.caller_frame = h.promise().continuation.address();
    {
      locked_state g(s_.lock);
      if (s_.failed) {
        r_.lost = true;
        return h;
      }
      r_.handle = h;
      r_.owner = w;
      r_.registered = true;
      if (s_.waiting.empty() && s_.in_flight + r_.commands <= s_.max_in_flight) {
        s_.in_flight += r_.commands;
        s_.enqueue_locked(g, &r_);
      } else {
        r_.where = stage::waiting;
        s_.waiting.push_back(&r_);
      }
    }
    return w->next_ready_for_transfer();
  }
  reply await_resume() {
    r_.registered = false;
    r_.where = stage::idle;
    if (r_.lost) throw s_.failure_error();
    if (r_.result.type() == reply::kind::error && !r_.batch) throw error(std::string(r_.result.str()));
    return std::move(r_.result);
  }

 private:
  void withdraw() noexcept {
    locked_state g(s_.lock);
    switch (r_.where) {
      case stage::waiting:
        s_.waiting.remove(&r_);
        break;
      case stage::queued:  // never sent: its place goes to the next command
        s_.queued.remove(&r_);
        s_.in_flight -= r_.commands;
        s_.admit_locked(g);
        break;
      case stage::sent: {  // its replies will come: whoever is next drops them
        std::size_t drop = r_.discard_before + r_.replies_due;
        if (r_.next) {
          r_.next->discard_before += drop;
        } else {
          s_.discard_at_tail += drop;
        }
        s_.sent.remove(&r_);
        break;
      }
      case stage::completed:  // on our own worker: cancelled and resumed there
        r_.owner->unschedule(r_.handle);
        break;
      case stage::idle:
        break;
    }
    r_.where = stage::idle;
    r_.registered = false;
  }

  connection_state& s_;
  request r_;
};

// co_await in the writer: until commands are queued or the connection failed.
class writer_park {
 public:
  explicit writer_park(connection_state& s) noexcept : s_(s) {}
  writer_park(const writer_park&) = delete;
  writer_park& operator=(const writer_park&) = delete;
  // Destroyed while parked: runtime shutdown.
  ~writer_park() {
    if (!parked_) return;
    locked_state g(s_.lock);
    if (s_.writer == h_) {
      s_.writer = {};
    } else {
      s_.writer_owner->unschedule(h_);  // woken: withdraw the resumption
    }
  }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    locked_state g(s_.lock);
    if (s_.failed || !s_.queued.empty()) return false;
    s_.writer = h;
    s_.writer_owner = tls_worker;
    h_ = h;
    parked_ = true;
    return true;
  }
  void await_resume() noexcept { parked_ = false; }

 private:
  connection_state& s_;
  std::coroutine_handle<> h_;
  bool parked_ = false;
};

// Whatever ends the writer or the reader ends the connection: an error, the
// server closing it, or the runtime destroying the task at shutdown.
struct io_task_guard {
  connection_state& s;
  ~io_task_guard() { s.fail(std::make_error_code(std::errc::connection_aborted), "the runtime of the connection's I/O shut down"); }
};

std::string describe(std::string_view what, const std::exception& e) { return std::string(what) + ": " + e.what(); }

task<void> write_loop(std::shared_ptr<connection_state> s) {
  io_task_guard guard{*s};
  try {
    std::vector<command_bytes> taken;
    std::string batch;
    for (;;) {
      co_await writer_park(*s);
      if (!s->take_batch(taken)) break;
      for (command_bytes& c : taken) {
        // Alone in its batch (a pipeline()'s commands, one deep command), a
        // command goes from its own bytes: copying it first buys nothing.
        if (c.size() < direct_write_bytes && taken.size() > 1) {
          batch.append(c.view());
          continue;
        }
        if (!batch.empty()) {
          co_await s->stream.write_all(std::as_bytes(std::span(batch)));
          batch.clear();
        }
        co_await s->stream.write_all(std::as_bytes(std::span(c.view())));
      }
      if (!batch.empty()) co_await s->stream.write_all(std::as_bytes(std::span(batch)));
      batch.clear();
      taken.clear();
      if (batch.capacity() > 2 * batch_bytes) std::string().swap(batch);  // after a burst of large commands
    }
  } catch (const std::system_error& e) {
    s->fail(e.code(), describe("sending failed", e));
  } catch (const std::exception& e) {
    s->fail(std::make_error_code(std::errc::io_error), describe("sending failed", e));
  }
}

task<void> read_loop(std::shared_ptr<connection_state> s) {
  io_task_guard guard{*s};
  try {
    reply_reader reader;
    std::vector<std::byte> buf(read_chunk_bytes);
    std::vector<reply> replies;
    for (;;) {
      std::size_t n = co_await s->stream.read(buf);
      if (n == 0) {
        s->fail(std::make_error_code(std::errc::connection_reset), "the server closed the connection");
        break;
      }
      if (!reader.feed(reinterpret_cast<const char*>(buf.data()), n)) {
        s->fail(std::make_error_code(std::errc::not_enough_memory), "out of memory reading a reply");
        break;
      }
      reply_reader::result got;
      while ((got = reader.next(replies.emplace_back())) == reply_reader::result::reply) {
      }
      replies.pop_back();  // the place the last call did not fill
      bool open = replies.empty() || s->deliver(replies);
      replies.clear();  // dropped replies (of cancelled commands) go here, unlocked
      if (!open) break;
      if (got == reply_reader::result::failed) {
        auto ec = std::make_error_code(reader.out_of_memory() ? std::errc::not_enough_memory : std::errc::protocol_error);
        s->fail(ec, "hiredis cannot read the reply: " + std::string(reader.error()));
        break;
      }
    }
  } catch (const std::system_error& e) {
    s->fail(e.code(), describe("receiving failed", e));
  } catch (const std::exception& e) {
    s->fail(std::make_error_code(std::errc::io_error), describe("receiving failed", e));
  }
}

task<reply> run_command(std::shared_ptr<connection_state> s, command_bytes cmd) {
  command_awaiter a(*s, std::move(cmd));
  co_return co_await a;
}

task<std::vector<reply>> run_pipeline(std::shared_ptr<connection_state> s, command_bytes cmd, std::size_t n) {
  std::vector<reply> out;
  out.reserve(n);  // filled by the reader under the lock: it must not move
  command_awaiter a(*s, std::move(cmd), n, &out);
  co_await a;
  co_return out;
}

}  // namespace

namespace {

task<connection> connect_task(std::string host, std::uint16_t port, std::size_t max_in_flight) {
  tcp_stream stream = co_await tcp_stream::connect(host, port);
  stream.set_nodelay(true);
  auto s = std::make_shared<connection_state>(std::move(stream), max_in_flight);
  // Detached: they end with the connection (close(), or its loss).
  (void)ringflow::spawn_local(write_loop(s));
  (void)ringflow::spawn_local(read_loop(s));
  co_return connection_access::make(std::move(s));
}

}  // namespace

}  // namespace ringflow::redis::detail

namespace ringflow::redis {

task<connection> connection::connect(std::string_view host, std::uint16_t port, connection_options opts) {
  if (opts.max_in_flight == 0) throw std::invalid_argument("ringflow::redis::connection: max_in_flight must be at least 1");
  if (host.empty()) throw std::invalid_argument("ringflow::redis::connection: empty host");
  if (port == 0) throw std::invalid_argument("ringflow::redis::connection: port 0");
  return detail::connect_task(std::string(host), port, opts.max_in_flight);
}

connection& connection::operator=(connection&& o) noexcept {
  if (this != &o) {
    close();
    st_ = std::move(o.st_);
  }
  return *this;
}

task<reply> connection::command(std::vector<std::string> args) { return send(detail::format_command(args)); }

prepared_command::prepared_command(const std::vector<std::string>& args)
    : bytes_(std::make_shared<const detail::command_bytes>(detail::format_command(args))) {}

command_batch& command_batch::add(const prepared_command& p) {
  append(p.bytes());
  return *this;
}

void command_batch::append(std::string_view formatted) {
  bytes_.append(formatted);
  ++count_;
}

task<std::vector<reply>> connection::pipeline(const command_batch& b) {
  if (!st_) throw std::logic_error("ringflow::redis::connection: not connected");
  if (b.empty()) throw std::invalid_argument("ringflow::redis::connection::pipeline: an empty batch");
  if (b.size() > st_->max_in_flight) {
    throw std::invalid_argument("ringflow::redis::connection::pipeline: a batch of " + std::to_string(b.size()) +
                                " commands never fits max_in_flight " + std::to_string(st_->max_in_flight));
  }
  auto bytes = std::make_shared<const std::string>(b.bytes());
  std::string_view view = *bytes;
  return detail::run_pipeline(st_, detail::command_bytes(std::move(bytes), view), b.size());
}

task<reply> connection::command(const prepared_command& p) { return send(detail::command_bytes(p.bytes_, p.bytes())); }

task<reply> connection::send(detail::command_bytes cmd) {
  if (!st_) throw std::logic_error("ringflow::redis::connection: not connected");
  return detail::run_command(st_, std::move(cmd));
}

void connection::close() noexcept {
  if (auto s = std::move(st_)) s->fail(std::make_error_code(std::errc::connection_aborted), "the connection was closed");
}

bool connection::is_open() const noexcept {
  if (!st_) return false;
  detail::locked_state g(st_->lock);
  return !st_->failed;
}

std::size_t connection::in_flight() const noexcept {
  if (!st_) return 0;
  detail::locked_state g(st_->lock);
  return st_->in_flight;
}

std::size_t connection::waiting() const noexcept {
  if (!st_) return 0;
  detail::locked_state g(st_->lock);
  return st_->waiting.size();
}

}  // namespace ringflow::redis
