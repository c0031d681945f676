// select: wait on several channel operations and take exactly one (Go's
// select, Tokio's select!).
//
//   ringflow::channel<int> a(8), b(8);
//   ringflow::channel<std::string> out(1);
//   auto r = co_await ringflow::select(ringflow::recv_from(a), ringflow::recv_from(b),
//                                      ringflow::send_to(out, std::string("tick")),
//                                      ringflow::after(50ms));
//   switch (r.index()) {
//     case 0: use(std::get<0>(r)); break;   // std::optional<int> from a (nullopt: a closed)
//     case 1: use(std::get<1>(r)); break;   // std::optional<int> from b
//     case 2: break;                        // send_status of the send to out
//     case 3: break;                        // ringflow::select_timeout: 50 ms passed first
//   }
//
//   // Go's `default:`: never suspends, nullopt when no case is ready.
//   if (auto r = ringflow::try_select(ringflow::recv_from(a), ringflow::recv_from(b))) ...
//
// Cases
// - recv_from(ch): ready when a value is buffered (or a sender waits on a
//   rendezvous channel) or when ch is closed; result std::optional<T> exactly
//   as ch.recv() would return it (nullopt: closed and drained).
// - send_to(ch, v): ready when ch accepts v now; result send_status exactly as
//   ch.send(v) (a drop_* / sample channel is always ready; block waits for a
//   slot; closed is ready). If another case fires, v is destroyed unsent.
// - after(d): ready once d has elapsed (an io_uring timeout on the task's
//   worker); result select_timeout. d <= 0 is ready at once.
//
// Exactly one case fires. The others take nothing and lose nothing: a value
// or slot that a losing case had been promised passes on to the next waiter,
// as when a plain recv() or send() is cancelled.
//
// Fairness: the cases are polled from a random starting case, so when several
// are ready every one is chosen in turn over time (Go's rule), never always
// the first.
//
// Cancel safety: destroying a task suspended in select (e.g. by
// ringflow::timeout) withdraws every case: nothing is taken from or added to
// any channel, and a value handed to one of its cases passes to the next
// receiver.
//
// Cost: select locks every channel it names at once (in address order), so it
// puts those channels in their locked, multi-worker mode for good (see
// detail/affinity.hpp): a channel used in a select no longer takes the lock-free
// single-worker path.
#pragma once

#include <chrono>
#include <optional>
#include <utility>
#include <variant>

#include <ringflow/channel.hpp>
#include <ringflow/sleep.hpp>

namespace ringflow {

// The result of an after(d) case.
struct select_timeout {};

namespace detail {
template <class T> struct recv_case;
template <class T> struct send_case;
struct after_case;
template <class... Cases> class select_awaiter;
}  // namespace detail

// A case that receives from ch; its result is std::optional<T>.
template <class T>
detail::recv_case<T> recv_from(channel<T>& ch) noexcept;

// A case that sends value to ch; its result is send_status.
template <class T, class U>
detail::send_case<T> send_to(channel<T>& ch, U&& value);

// A case that fires after d; its result is select_timeout.
inline detail::after_case after(std::chrono::nanoseconds d) noexcept;

// co_await select(case...) -> std::variant<result of each case...>; index()
// tells which case fired. See the top of this header.
template <class... Cases>
detail::select_awaiter<Cases...> select(Cases... cases);

// Go's select with `default:`: completes one ready case without suspending,
// or returns nullopt (taking nothing) when none is ready.
template <class... Cases>
std::optional<typename detail::select_awaiter<Cases...>::result_type> try_select(Cases... cases);

}  // namespace ringflow

// The cases, the awaiter and the definitions of the functions above.
#include <ringflow/detail/select_awaiter.hpp>
