// The machinery of the stream operators (<ringflow/operators.hpp>, whose
// declarations state the contracts): each operator is a small value that,
// applied to a publisher, lifts a producer over the upstream subscription;
// pull() passes downstream demand upstream without asking twice.
#pragma once

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringflow/channel.hpp>
#include <ringflow/operators.hpp>
#include <ringflow/publisher.hpp>
#include <ringflow/sleep.hpp>
#include <ringflow/timeout.hpp>

namespace ringflow {

namespace detail {

// Passes downstream demand upstream without asking twice for the same values:
// only the part of the demand not already requested is requested.
template <class T, class OnRequest>
task<std::vector<T>> pull(subscription<T>& sub, std::uint64_t wanted, std::uint64_t& pending, const OnRequest& on_request) {
  std::vector<T> batch;
  if (wanted > pending) {
    std::uint64_t n = wanted - pending;
    pending += n;
    on_request(n);
    batch = co_await sub.request(n);
  } else {
    batch = co_await sub.next();
  }
  pending -= std::min<std::uint64_t>(pending, batch.size());
  co_return batch;
}

inline void no_hook(std::uint64_t) {}

// A publisher<R> whose producer runs body(upstream_subscription, out).
template <class R, class T, class Body>
publisher<R> lift(publisher<T> up, Body body) {
  return publisher<R>::create([up = std::move(up), body = std::move(body)](emitter<R>& out) -> task<void> {
    subscription<T> sub = up.subscribe();
    co_await body(sub, out);
  });
}

// Forwards downstream demand upstream one request at a time; step(v, out)
// emits zero or more values and returns false to stop.
template <class R, class T, class Step>
publisher<R> forward(publisher<T> up, Step step) {
  return lift<R>(std::move(up), [step = std::move(step)](subscription<T>& sub, emitter<R>& out) -> task<void> {
    std::uint64_t pending = 0;
    for (;;) {
      bool wanted = co_await out.demanded();
      if (!wanted) co_return;
      std::vector<T> batch = co_await pull(sub, out.demand(), pending, no_hook);
      if (batch.empty()) co_return;
      for (T& v : batch) {
        bool go_on = co_await step(std::move(v), out);
        if (!go_on) co_return;
      }
    }
  });
}

template <class F>
struct map_op {
  F f;
  template <class T>
  auto operator()(publisher<T> up) const {
    using R = std::invoke_result_t<const F&, T&&>;
    return forward<R>(std::move(up), [f = f](T v, emitter<R>& out) -> task<bool> {
      bool ok = co_await out.emit(f(std::move(v)));
      co_return ok;
    });
  }
};

template <class P>
struct filter_op {
  P pred;
  template <class T>
  publisher<T> operator()(publisher<T> up) const {
    return forward<T>(std::move(up), [pred = pred](T v, emitter<T>& out) -> task<bool> {
      if (!pred(v)) co_return true;
      bool ok = co_await out.emit(std::move(v));
      co_return ok;
    });
  }
};

struct take_op {
  std::uint64_t n;
  template <class T>
  publisher<T> operator()(publisher<T> up) const {
    return lift<T>(std::move(up), [n = n](subscription<T>& sub, emitter<T>& out) -> task<void> {
      std::uint64_t left = n, pending = 0;
      while (left > 0) {
        bool wanted = co_await out.demanded();
        if (!wanted) co_return;
        std::vector<T> batch = co_await pull(sub, std::min(out.demand(), left), pending, no_hook);
        if (batch.empty()) co_return;
        for (T& v : batch) {
          bool ok = co_await out.emit(std::move(v));
          if (!ok || --left == 0) co_return;  // leaving cancels the upstream
        }
      }
    });
  }
};

struct limit_rate_op {
  std::uint64_t high, low;
  template <class T>
  publisher<T> operator()(publisher<T> up) const {
    return lift<T>(std::move(up), [high = high, low = low](subscription<T>& sub, emitter<T>& out) -> task<void> {
      std::uint64_t to_request = high, consumed = 0;
      for (;;) {
        std::vector<T> batch;
        if (to_request > 0) {
          batch = co_await sub.request(to_request);
        } else {
          batch = co_await sub.next();
        }
        to_request = 0;
        if (batch.empty()) co_return;
        for (T& v : batch) {
          bool ok = co_await out.emit(std::move(v));  // suspends while downstream has no demand
          if (!ok) co_return;
          if (++consumed == low) {  // replenish: Reactor's limitRate(high, low)
            consumed = 0;
            to_request += low;
          }
        }
      }
    });
  }
};

template <class F>
struct on_request_op {
  F f;
  template <class T>
  publisher<T> operator()(publisher<T> up) const {
    return lift<T>(std::move(up), [f = f](subscription<T>& sub, emitter<T>& out) -> task<void> {
      std::uint64_t pending = 0;
      for (;;) {
        bool wanted = co_await out.demanded();
        if (!wanted) co_return;
        std::vector<T> batch = co_await pull(sub, out.demand(), pending, f);
        if (batch.empty()) co_return;
        for (T& v : batch) {
          bool ok = co_await out.emit(std::move(v));
          if (!ok) co_return;
        }
      }
    });
  }
};

// Requests everything upstream and moves it into ch (its policy decides what
// is lost); a full block channel is an overflow. Closes ch at the end.
template <class T>
task<void> pump_unbounded(subscription<T>* sub, channel<T>* ch, std::exception_ptr* err) {
  try {
    std::vector<T> batch = co_await sub->request(max_demand);
    while (!batch.empty()) {
      for (T& v : batch) {
        if (ch->try_send(std::move(v)) == send_status::full) {
          throw std::overflow_error("ringflow::on_backpressure_buffer: buffer full");
        }
      }
      batch = co_await sub->next();
    }
  } catch (...) {
    *err = std::current_exception();
  }
  ch->close();
}

struct on_backpressure_drop_op {
  template <class T>
  publisher<T> operator()(publisher<T> up) const {
    return lift<T>(std::move(up), [](subscription<T>& sub, emitter<T>& out) -> task<void> {
      std::vector<T> batch = co_await sub.request(max_demand);  // the source is never slowed down
      while (!batch.empty()) {
        for (T& v : batch) {
          if (!out.try_emit(v) && out.cancelled()) co_return;  // no demand: v is dropped
        }
        batch = co_await sub.next();
      }
    });
  }
};

// Buffers between an unbounded upstream and the downstream demand in a
// channel with the given policy (latest = capacity 1, sample).
struct on_backpressure_buffer_op {
  std::size_t capacity;
  overflow policy;
  template <class T>
  publisher<T> operator()(publisher<T> up) const {
    // Checked here, where T is known: otherwise every subscription would
    // fail later, when its channel is built.
    if (capacity > channel<T>::max_capacity) {
      throw std::invalid_argument("ringflow::on_backpressure_buffer: capacity " + std::to_string(capacity) +
                                  " is above channel<T>::max_capacity = " + std::to_string(channel<T>::max_capacity));
    }
    return lift<T>(std::move(up), [capacity = capacity, policy = policy](subscription<T>& sub,
                                                                           emitter<T>& out) -> task<void> {
      channel<T> ch(capacity, policy);
      std::exception_ptr err;
      // The pump is owned by this frame: if the frame is destroyed (cancel),
      // the pump goes with it, before the channel it uses.
      task<void> pump = pump_unbounded(&sub, &ch, &err);
      start_owned(pump);
      for (;;) {
        bool wanted = co_await out.demanded();
        if (!wanted) break;
        std::optional<T> v = co_await ch.recv();
        if (!v) break;
        bool ok = co_await out.emit(std::move(*v));
        if (!ok) break;
      }
      if (err) std::rethrow_exception(err);
    });
  }
};

struct sample_op {
  std::chrono::nanoseconds period;
  bool emit_last;
  template <class T>
  publisher<T> operator()(publisher<T> up) const {
    return lift<T>(std::move(up), [period = period, emit_last = emit_last](subscription<T>& sub,
                                                                           emitter<T>& out) -> task<void> {
      channel<T> newest(1, overflow::sample);  // what arrived since the last tick: only the newest
      std::exception_ptr err;
      task<void> pump = pump_unbounded(&sub, &newest, &err);
      start_owned(pump);
      for (;;) {
        co_await sleep_for(period);
        if (newest.is_closed() && !emit_last) break;
        std::optional<T> v = newest.try_recv();
        if (v) {
          bool ok = co_await out.emit(std::move(*v));  // waits for demand: a tick is not lost
          if (!ok) co_return;
        } else if (newest.is_closed()) {
          break;
        }
      }
      if (err) std::rethrow_exception(err);
    });
  }
};

struct batch_op {
  std::size_t n;
  std::chrono::nanoseconds max_wait;
  template <class T>
  publisher<std::vector<T>> operator()(publisher<T> up) const {
    return lift<std::vector<T>>(std::move(up), [n = n, max_wait = max_wait](subscription<T>& sub,
                                                                          emitter<std::vector<T>>& out) -> task<void> {
      std::uint64_t pending = 0;
      std::vector<T> carry;  // values that arrived beyond a batch
      bool done = false;
      while (!done) {
        bool wanted = co_await out.demanded();
        if (!wanted) co_return;
        std::vector<T> b = std::move(carry);
        carry.clear();
        if (b.empty()) {
          b = co_await pull(sub, n, pending, no_hook);  // waits for the first value
          if (b.empty()) co_return;
        }
        auto deadline = std::chrono::steady_clock::now() + max_wait;
        while (b.size() < n) {
          auto left = deadline - std::chrono::steady_clock::now();
          if (left <= std::chrono::nanoseconds(0)) break;
          std::optional<std::vector<T>> more =
              co_await timeout(left, pull(sub, n - b.size(), pending, no_hook));
          if (!more) break;  // max_wait elapsed: ship what we have
          if (more->empty()) {
            done = true;
            break;
          }
          for (T& v : *more) (b.size() < n ? b : carry).push_back(std::move(v));
        }
        if (b.size() > n) {
          carry.assign(std::make_move_iterator(b.begin() + n), std::make_move_iterator(b.end()));
          b.resize(n);
        }
        bool ok = co_await out.emit(std::move(b));
        if (!ok) co_return;
      }
      if (!carry.empty()) co_await out.emit(std::move(carry));
    });
  }
};

}  // namespace detail

inline detail::sample_op sample(std::chrono::nanoseconds period, bool emit_last) {
  if (period.count() <= 0) throw std::invalid_argument("ringflow::sample: period must be positive");
  return {period, emit_last};
}

inline detail::batch_op batch(std::size_t n, std::chrono::nanoseconds max_wait) {
  if (n == 0) throw std::invalid_argument("ringflow::batch: n must be at least 1");
  // The batch's deadline is steady_clock::now() + max_wait: clamped so that
  // it, and the time left until it, cannot overflow (steady_clock counts
  // from boot, far below 292 - 100 years).
  constexpr std::chrono::nanoseconds longest = std::chrono::hours(24 * 365 * 100);
  return {n, std::clamp(max_wait, std::chrono::nanoseconds(0), longest)};
}

inline detail::on_backpressure_drop_op on_backpressure_drop() { return {}; }

inline detail::on_backpressure_buffer_op on_backpressure_latest() { return {1, overflow::sample}; }

inline detail::on_backpressure_buffer_op on_backpressure_buffer(std::size_t n, overflow policy) {
  if (n == 0) throw std::invalid_argument("ringflow::on_backpressure_buffer: capacity must be at least 1");
  return {n, policy};
}

template <class F>
detail::map_op<F> map(F f) {
  return {std::move(f)};
}

template <class P>
detail::filter_op<P> filter(P pred) {
  return {std::move(pred)};
}

inline detail::take_op take(std::uint64_t n) { return {n}; }

inline detail::limit_rate_op limit_rate(std::uint64_t high, std::uint64_t low) {
  if (low == 0) low = high - high / 4;
  if (high == 0 || low == 0 || low > high) throw std::invalid_argument("ringflow::limit_rate: need 0 < low <= high");
  return {high, low};
}

template <class F>
detail::on_request_op<F> on_request(F f) {
  return {std::move(f)};
}

}  // namespace ringflow
