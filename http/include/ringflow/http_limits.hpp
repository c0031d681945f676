// Limits at the service boundary, composed from the toolkit: a token bucket
// per client (rate_limiter) answering 429, and load shedding (semaphore)
// answering 503, so an overloaded server says no at once instead of queueing
// without limit.
//
//   ringflow::http::client_rate_limit per_client({.rate_per_second = 5, .burst = 10});
//   ringflow::http::load_shedder shed({.max_in_flight = 64, .max_queued = 128});
//   ringflow::http::server srv("0.0.0.0", 8080,
//       ringflow::http::load_shed(shed, ringflow::http::rate_limited(per_client, app)));
//
//   // or inside a handler:
//   if (!per_client.admit(req, res)) co_return;              // answered 429
//   std::optional<ringflow::http::load_shedder::ticket> t = co_await shed.admit(res);
//   if (!t) co_return;                                       // answered 503
//
// client_rate_limit: each client (its peer IP, or the value of a header such
// as an API key) has a token bucket of burst tokens refilled at
// rate_per_second; a request takes one token or is answered 429 with
// "Retry-After" (whole seconds until the client has a token again, at
// least 1). The table of buckets holds at most max_clients clients; a new
// client beyond that replaces the one seen least recently (whose bucket is
// forgotten: it comes back full), so a flood of distinct keys costs at most
// max_clients buckets and allocates nothing once the table is full (the
// replaced entry is reused). Thread-safe (one mutex around the table);
// admit and take never suspend.
//
// load_shedder: at most max_in_flight requests hold a ticket at once
// (a semaphore permit); up to max_queued more wait for one, first come,
// first served, for at most max_wait; a request beyond those, or one that
// waited max_wait, is answered 503 with "Retry-After". In flight plus queued
// never exceeds max_in_flight + max_queued, so neither memory nor the wait
// of an admitted request grows with the offered load.
//
// Cancel safety: admit() cancelled while queued leaves the queue and takes
// no slot (as semaphore::acquire); a ticket gives its slot back when it is
// destroyed, however the handler ends.
// Bad options (rate <= 0 or not finite, burst 0, max_clients 0,
// max_in_flight 0) throw std::invalid_argument from the constructors.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <ringflow/http.hpp>
#include <ringflow/semaphore.hpp>
#include <ringflow/task.hpp>

namespace ringflow::http {

struct client_rate_options {
  // Tokens a client regains per second, and how many it may spend at once.
  double rate_per_second = 10.0;
  std::uint64_t burst = 20;
  // Clients tracked at once; beyond, the least recently seen is forgotten.
  std::size_t max_clients = 10'000;
  // Empty: clients are told apart by their peer IP. Else by this header's
  // value (a request without it falls back to its peer IP). Behind a
  // trusted proxy, "X-Forwarded-For"; for keyed APIs, the key's header.
  std::string key_header = {};
};

struct client_rate_stats {
  std::uint64_t admitted = 0;  // requests that took a token
  std::uint64_t limited = 0;   // requests answered 429
  std::uint64_t evicted = 0;   // clients forgotten to make room
  std::size_t clients = 0;     // clients tracked now (<= max_clients)
};

class client_rate_limit {
 public:
  explicit client_rate_limit(client_rate_options opts = {});
  client_rate_limit(const client_rate_limit&) = delete;
  client_rate_limit& operator=(const client_rate_limit&) = delete;
  ~client_rate_limit();

  // Takes a token for req's client: true, go on; false: res was answered
  // 429 with Retry-After, return without writing more. A request whose peer
  // is gone (no address) counts under the key "".
  bool admit(const request& req, response& res);
  // The bucket of a key of the caller's choosing: nullopt when a token was
  // taken, else how long until one will have accrued.
  std::optional<std::chrono::nanoseconds> take(std::string_view key);
  // The key admit() uses for req.
  std::string key_of(const request& req) const;
  client_rate_stats stats() const;

 private:
  struct table;
  std::unique_ptr<table> t_;
};

struct load_shed_options {
  // Requests holding a ticket at once.
  std::size_t max_in_flight = 256;
  // Requests waiting for a ticket beyond those; more are answered 503 at once.
  std::size_t max_queued = 256;
  // The longest a request waits for a ticket before it is answered 503
  // (milliseconds::max(): no limit).
  std::chrono::milliseconds max_wait{1'000};
  // The Retry-After of a 503, in seconds.
  std::uint32_t retry_after_seconds = 1;
};

struct load_shed_stats {
  std::uint64_t admitted = 0;     // tickets handed out
  std::uint64_t shed = 0;         // answered 503: the queue was full
  std::uint64_t timed_out = 0;    // answered 503: waited max_wait
  std::size_t in_flight = 0;      // tickets held now
  std::size_t queued = 0;         // waiting now
  std::size_t max_queued_seen = 0;  // the longest the queue has been
};

class load_shedder {
 public:
  // A slot among max_in_flight, held until it is destroyed (or released).
  using ticket = semaphore::permit;

  explicit load_shedder(load_shed_options opts = {});
  load_shedder(const load_shedder&) = delete;
  load_shedder& operator=(const load_shedder&) = delete;

  // co_await -> a ticket, or nullopt when res was answered 503 (queue full,
  // or no slot within max_wait). Suspends only while queued.
  task<std::optional<ticket>> admit(response& res);
  load_shed_stats stats() const;

 private:
  struct queue_place;
  load_shed_options opts_;
  semaphore slots_;
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::size_t> max_queued_seen_{0};
  std::atomic<std::uint64_t> admitted_{0}, shed_{0}, timed_out_{0};
};

// inner, run only for the requests limit admits (the others answered 429).
// The limit must outlive the server.
handler rate_limited(client_rate_limit& limit, handler inner);
// inner, run only for the requests shed admits (the others answered 503),
// each holding its ticket while inner runs. The shedder must outlive the server.
handler load_shed(load_shedder& shed, handler inner);

}  // namespace ringflow::http
