#include <coroutine>
#include <exception>
#include <stdexcept>
#include <system_error>

#include <ringflow/detail/worker.hpp>
#include <ringflow/stop.hpp>
#include <ringflow/task_group.hpp>
#include <ringflow/timeout.hpp>

#include "connection.hpp"

namespace ringflow::http {

namespace detail {

namespace {

const server_options& checked(const server_options& o) {
  if (o.max_connections == 0) throw std::invalid_argument("ringflow::http::server: max_connections is 0");
  if (o.read_buffer_bytes == 0) throw std::invalid_argument("ringflow::http::server: read_buffer_bytes is 0");
  if (o.max_header_bytes == 0) throw std::invalid_argument("ringflow::http::server: max_header_bytes is 0");
  // Header offsets are 32-bit.
  if (o.max_header_bytes > (std::size_t{1} << 31)) throw std::invalid_argument("ringflow::http::server: max_header_bytes above 2 GiB");
  return o;
}

// Keeps the open-connection count right however the connection ends
// (returned, threw, or cancelled at shutdown).
struct open_count {
  std::atomic<std::size_t>& n;
  explicit open_count(std::atomic<std::size_t>& c) : n(c) { n.fetch_add(1, std::memory_order_relaxed); }
  ~open_count() { n.fetch_sub(1, std::memory_order_relaxed); }
  open_count(const open_count&) = delete;
  open_count& operator=(const open_count&) = delete;
};

// A connection's hold on the server: its slot, and the server state kept
// alive until the slot is given back. The first parameter of the
// connection's frame, so it is the last thing the frame destroys, after the
// handler's frames: once every slot is back, no connection touches anything.
class conn_ticket {
 public:
  conn_ticket(std::shared_ptr<server_state> s, semaphore::permit p) noexcept : keep_(std::move(s)), slot_(std::move(p)) {}
  conn_ticket(conn_ticket&&) noexcept = default;
  conn_ticket(const conn_ticket&) = delete;
  conn_ticket& operator=(const conn_ticket&) = delete;
  server_state& srv() const noexcept { return *keep_; }

 private:
  std::shared_ptr<server_state> keep_;  // destroyed after slot_
  semaphore::permit slot_;
};

// Pins the awaiting spawned task to the worker it runs on: no waker moves it
// any more (a handler awaiting a channel woken from another worker would).
// A connection keeps its read timer armed on its ring across requests
// (read_deadline.hpp), and that timer must end on the ring it was armed on,
// also when the runtime shuts down with the connection open.
struct stay_on_this_worker {
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) const noexcept {
    if (ringflow::detail::root_link* r = ringflow::detail::uncancellable_task_of(h)) {
      ringflow::detail::tls_worker->pin_if_home(r);
    }
    return false;  // goes on at once
  }
  void await_resume() const noexcept {}
};

// One connection's task; throws nothing (the group's reports stay empty).
task<void> serve_connection(conn_ticket ticket, tcp_stream s, std::stop_token shutdown) {
  co_await stay_on_this_worker{};
  server_state& srv = ticket.srv();
  open_count counted(srv.open);
  try {
    s.set_nodelay(true);
    connection c(srv, s, std::move(shutdown));
    co_await c.serve();
  } catch (...) {
    // A reset peer, a broken pipe, no memory: this connection only.
  }
  s.close();
}

task<void> accept_loop(std::shared_ptr<server_state> state, task_group<>& conns, std::stop_token shutdown) {
  server_state& srv = *state;
  for (;;) {
    // A slot first: at the limit, further connections wait in the backlog.
    semaphore::permit slot = co_await srv.slots.acquire();
    tcp_stream s = co_await srv.listener.accept();
    while (conns.try_next()) {
    }
    conn_ticket ticket(state, std::move(slot));
    co_await conns.spawn(serve_connection(std::move(ticket), std::move(s), shutdown));
  }
}

// co_await stays out of conditions: as a statement it is sound under g++ 12.
task<void> drain(task_group<>& conns) {
  for (;;) {
    bool more = co_await conns.next();
    if (!more) break;
  }
}

}  // namespace

server_state::server_state(std::string_view host, std::uint16_t port, handler h, server_options o)
    : opts(checked(o)), on_request(std::move(h)), slots(o.max_connections) {
  if (!on_request) throw std::invalid_argument("ringflow::http::server: empty handler");
  listener = tcp_listener::bind(host, port, o.backlog);
  bound_port = listener.local_port();
}

}  // namespace detail

server::server(std::string_view host, std::uint16_t port, handler h, server_options opts)
    : s_(std::make_shared<detail::server_state>(host, port, std::move(h), opts)) {}

server::~server() = default;

std::uint16_t server::port() const noexcept { return s_->bound_port; }
std::size_t server::connections() const noexcept { return s_->open.load(std::memory_order_relaxed); }
std::uint64_t server::requests() const noexcept { return s_->requests.load(std::memory_order_relaxed); }

task<void> server::run(std::stop_token stop) {
  detail::server_state& srv = *s_;
  // The connections watch this one: it is requested on stop and when the
  // accept loop fails, so idle connections close either way.
  std::stop_source shutdown;
  std::stop_callback forward(stop, [&shutdown] { shutdown.request_stop(); });
  task_group<> conns;
  std::exception_ptr failure;
  try {
    co_await with_stop(shutdown.get_token(), detail::accept_loop(s_, conns, shutdown.get_token()));
  } catch (...) {
    failure = std::current_exception();
  }
  shutdown.request_stop();
  srv.listener.close();
  bool drained = co_await timeout(detail::saturated(srv.opts.shutdown_grace), detail::drain(conns));
  if (!drained) {
    conns.cancel_all();
    co_await detail::drain(conns);
  }
  // The group reports a task before its frame is gone; every slot back
  // means every connection's frame (and its handler's) was destroyed.
  {
    semaphore::permit all = co_await srv.slots.acquire(srv.opts.max_connections);
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace ringflow::http
