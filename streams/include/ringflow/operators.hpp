// Stream operators, composable with `|`:
//
//   auto evens = numbers | ringflow::filter([](int v) { return v % 2 == 0; })
//                        | ringflow::map([](int v) { return v * 10; })
//                        | ringflow::limit_rate(64)
//                        | ringflow::take(1000);
//
// Each operator is a publisher that, per subscription, subscribes to its
// upstream and passes demand up: it never requests more than its own
// subscriber asked for (limit_rate excepted, which prefetches by design), so
// backpressure crosses every stage.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <ringflow/overflow.hpp>
#include <ringflow/publisher.hpp>

namespace ringflow {

namespace detail {
template <class F> struct map_op;
template <class P> struct filter_op;
struct take_op;
struct limit_rate_op;
template <class F> struct on_request_op;
struct on_backpressure_drop_op;
struct on_backpressure_buffer_op;
struct sample_op;
struct batch_op;
}  // namespace detail

// map(f): each value v becomes f(v).
template <class F>
detail::map_op<F> map(F f);
// filter(pred): keeps the values for which pred is true.
template <class P>
detail::filter_op<P> filter(P pred);
// take(n): the first n values, then completes and cancels the upstream.
inline detail::take_op take(std::uint64_t n);
// limit_rate(high, low): requests `high` upstream, then `low` each time `low`
// values were consumed downstream (low defaults to 75% of high, as Reactor's
// limitRate). high == 0, low == 0 or low > high: std::invalid_argument.
inline detail::limit_rate_op limit_rate(std::uint64_t high, std::uint64_t low = 0);
// on_request(f): calls f(n) with every demand it passes upstream (Reactor's doOnRequest).
template <class F>
detail::on_request_op<F> on_request(F f);

// on_backpressure_drop(): takes everything upstream and drops the values that
// arrive while the subscriber has no demand.
inline detail::on_backpressure_drop_op on_backpressure_drop();
// on_backpressure_latest(): keeps only the newest value that arrived while the
// subscriber had no demand, and delivers it when demand comes.
inline detail::on_backpressure_buffer_op on_backpressure_latest();
// on_backpressure_buffer(n, policy): buffers up to n values; when full,
// drop_incoming / drop_oldest / sample apply, and block fails the stream with
// std::overflow_error (the source cannot be slowed down). n == 0 or n above
// channel<T>::max_capacity (checked when applied): std::invalid_argument.
inline detail::on_backpressure_buffer_op on_backpressure_buffer(std::size_t n, overflow policy = overflow::block);

// sample(period, emit_last): every period, the newest value that arrived since
// the previous tick (Rx sample / throttleLast); at completion the pending one
// too when emit_last. period <= 0: std::invalid_argument.
inline detail::sample_op sample(std::chrono::nanoseconds period, bool emit_last = true);
// batch(n, max_wait): vectors of up to n values, shipped when full or when
// max_wait has passed since the batch's first value. n == 0: invalid_argument.
// max_wait <= 0: each batch is what one request upstream brought. A max_wait
// above 100 years counts as 100 years: effectively forever (nanoseconds::max()
// waits for full batches).
inline detail::batch_op batch(std::size_t n, std::chrono::nanoseconds max_wait);

// p | op: the publisher op makes of p.
template <class T, class Op>
  requires std::is_invocable_v<const Op&, publisher<T>>
auto operator|(publisher<T> p, const Op& op) {
  return op(std::move(p));
}

}  // namespace ringflow

// The operators' publishers and the definitions of the functions above.
#include <ringflow/detail/stream_operators.hpp>
