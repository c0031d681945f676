// client_rate_limit (a bounded table of rate_limiter buckets, least recently
// seen replaced first) and load_shedder (a semaphore with a bounded queue).
#include <cmath>
#include <limits>
#include <list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>

#include <ringflow/http_limits.hpp>
#include <ringflow/rate_limiter.hpp>
#include <ringflow/timeout.hpp>

#include "connection.hpp"

namespace ringflow::http {

// ---- client_rate_limit -------------------------------------------------------

struct client_rate_limit::table {
  struct entry {
    std::string key;
    std::optional<rate_limiter> bucket;
  };
  explicit table(client_rate_options o) : opts(std::move(o)) {}

  client_rate_options opts;
  mutable std::mutex m;
  std::list<entry> lru;  // most recently seen first
  std::unordered_map<std::string_view, std::list<entry>::iterator> index;  // views into lru's keys
  std::uint64_t admitted = 0, limited = 0, evicted = 0;

  rate_limiter& bucket_locked(std::string_view key) {
    auto found = index.find(key);
    if (found != index.end()) {
      lru.splice(lru.begin(), lru, found->second);
      return *found->second->bucket;
    }
    if (lru.size() < opts.max_clients) {
      lru.emplace_front();
      entry& e = lru.front();
      e.key.assign(key);
      e.bucket.emplace(opts.rate_per_second, opts.burst);
      index.emplace(std::string_view(e.key), lru.begin());
      return *e.bucket;
    }
    // Full: the least recently seen client's entry (and its index node) is
    // reused for this one.
    auto victim = std::prev(lru.end());
    auto node = index.extract(std::string_view(victim->key));
    victim->key.assign(key);
    victim->bucket.reset();
    victim->bucket.emplace(opts.rate_per_second, opts.burst);
    lru.splice(lru.begin(), lru, victim);
    node.key() = std::string_view(victim->key);
    node.mapped() = victim;
    index.insert(std::move(node));
    ++evicted;
    return *victim->bucket;
  }
};

namespace {

client_rate_options checked(client_rate_options o) {
  if (!(o.rate_per_second > 0) || !std::isfinite(o.rate_per_second)) {
    throw std::invalid_argument("ringflow::http::client_rate_limit: rate_per_second must be finite and > 0");
  }
  if (o.burst == 0 || o.burst > rate_limiter::max_burst) {
    throw std::invalid_argument("ringflow::http::client_rate_limit: burst must be in 1..2^53");
  }
  if (o.max_clients == 0) throw std::invalid_argument("ringflow::http::client_rate_limit: max_clients is 0");
  return o;
}

std::string whole_seconds(std::chrono::nanoseconds d) {
  double s = std::ceil(std::chrono::duration<double>(d).count());
  if (!(s >= 1)) s = 1;
  // A wait beyond any real retry (an extreme rate): a day says "much later".
  if (s > 86'400) s = 86'400;
  return std::to_string(static_cast<std::uint64_t>(s));
}

}  // namespace

client_rate_limit::client_rate_limit(client_rate_options opts) : t_(std::make_unique<table>(checked(std::move(opts)))) {
  t_->index.reserve(std::min<std::size_t>(t_->opts.max_clients, 1 << 16));
}

client_rate_limit::~client_rate_limit() = default;

std::optional<std::chrono::nanoseconds> client_rate_limit::take(std::string_view key) {
  std::lock_guard g(t_->m);
  rate_limiter& b = t_->bucket_locked(key);
  if (b.try_acquire(1)) {
    ++t_->admitted;
    return std::nullopt;
  }
  ++t_->limited;
  double deficit = 1.0 - b.available();
  double secs = deficit / b.rate();
  constexpr double cap = 1e9;  // ~31 years: nanoseconds hold it
  if (!(secs >= 0)) secs = 0;
  if (secs > cap) secs = cap;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(secs));
}

std::string client_rate_limit::key_of(const request& req) const {
  if (!t_->opts.key_header.empty()) {
    if (auto v = req.header(t_->opts.key_header)) return std::string(*v);
  }
  try {
    return std::string(req.peer().ip());
  } catch (const std::system_error&) {
    return std::string();
  }
}

bool client_rate_limit::admit(const request& req, response& res) {
  std::string key = key_of(req);
  std::optional<std::chrono::nanoseconds> wait = take(key);
  if (!wait) return true;
  res.set_status(429);
  res.set_header("Retry-After", whole_seconds(*wait));
  res.set_header("Content-Type", "text/plain");
  res.set_body("too many requests\n");
  return false;
}

client_rate_stats client_rate_limit::stats() const {
  std::lock_guard g(t_->m);
  return {t_->admitted, t_->limited, t_->evicted, t_->lru.size()};
}

// ---- load_shedder ------------------------------------------------------------

namespace {

load_shed_options checked(load_shed_options o) {
  if (o.max_in_flight == 0) throw std::invalid_argument("ringflow::http::load_shedder: max_in_flight is 0");
  return o;
}

task<semaphore::permit> take_slot(semaphore& s) {
  semaphore::permit p = co_await s.acquire();
  co_return p;
}

void answer_503(response& res, std::uint32_t retry_after) {
  res.set_status(503);
  res.set_header("Retry-After", std::to_string(std::max<std::uint32_t>(retry_after, 1)));
  res.set_header("Content-Type", "text/plain");
  res.set_body("overloaded, try again later\n");
}

}  // namespace

// A place in the queue, given back however the wait ends (a slot, the
// deadline, or the caller cancelled).
struct load_shedder::queue_place {
  std::atomic<std::size_t>& n;
  ~queue_place() { n.fetch_sub(1, std::memory_order_relaxed); }
};

load_shedder::load_shedder(load_shed_options opts) : opts_(checked(opts)), slots_(opts.max_in_flight) {}

task<std::optional<load_shedder::ticket>> load_shedder::admit(response& res) {
  if (std::optional<ticket> now = slots_.try_acquire()) {
    admitted_.fetch_add(1, std::memory_order_relaxed);
    co_return std::move(now);
  }
  std::size_t place = queued_.fetch_add(1, std::memory_order_relaxed) + 1;
  queue_place held{queued_};
  if (place > opts_.max_queued) {
    shed_.fetch_add(1, std::memory_order_relaxed);
    answer_503(res, opts_.retry_after_seconds);
    co_return std::nullopt;
  }
  std::size_t seen = max_queued_seen_.load(std::memory_order_relaxed);
  while (place > seen && !max_queued_seen_.compare_exchange_weak(seen, place, std::memory_order_relaxed)) {
  }
  std::optional<ticket> got = co_await timeout(detail::saturated(opts_.max_wait), take_slot(slots_));
  if (!got) {
    timed_out_.fetch_add(1, std::memory_order_relaxed);
    answer_503(res, opts_.retry_after_seconds);
    co_return std::nullopt;
  }
  admitted_.fetch_add(1, std::memory_order_relaxed);
  co_return got;
}

load_shed_stats load_shedder::stats() const {
  load_shed_stats s;
  s.admitted = admitted_.load(std::memory_order_relaxed);
  s.shed = shed_.load(std::memory_order_relaxed);
  s.timed_out = timed_out_.load(std::memory_order_relaxed);
  std::size_t free = slots_.available();
  s.in_flight = opts_.max_in_flight > free ? opts_.max_in_flight - free : 0;
  s.queued = queued_.load(std::memory_order_relaxed);
  s.max_queued_seen = max_queued_seen_.load(std::memory_order_relaxed);
  return s;
}

// ---- handler wrappers --------------------------------------------------------

handler rate_limited(client_rate_limit& limit, handler inner) {
  if (!inner) throw std::invalid_argument("ringflow::http::rate_limited: empty handler");
  return [&limit, inner = std::move(inner)](request& req, response& res) -> task<void> {
    if (!limit.admit(req, res)) co_return;
    co_await inner(req, res);
  };
}

handler load_shed(load_shedder& shed, handler inner) {
  if (!inner) throw std::invalid_argument("ringflow::http::load_shed: empty handler");
  return [&shed, inner = std::move(inner)](request& req, response& res) -> task<void> {
    std::optional<load_shedder::ticket> t = co_await shed.admit(res);
    if (!t) co_return;
    co_await inner(req, res);
  };
}

}  // namespace ringflow::http
