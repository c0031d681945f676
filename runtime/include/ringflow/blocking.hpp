// spawn_blocking(f): runs a blocking function (a synchronous library call,
// getaddrinfo, a file read, a CPU-heavy loop) on the runtime's blocking pool
// so no worker blocks.
//
//   std::size_t n = co_await ringflow::spawn_blocking([path] { return file_size(path); });
//
// - The pool has runtime_options::blocking_threads threads (default 8),
//   started on demand and kept until the runtime goes; beyond that many jobs
//   at once, calls wait in FIFO order.
// - f runs when the returned task is first awaited (or spawned), on the
//   pool of the runtime it runs on; a task never awaited runs nothing. The
//   awaiting task resumes on the worker it waited on. f's value is returned
//   and its exception rethrown by co_await. f is consumed: it (and what it
//   captured) is destroyed on the pool thread right after it returns.
// - spawn_blocking(f, args...) calls f(args...) there, the arguments
//   decayed and moved into the call first (as std::thread does).
// - spawn_blocking is a plain function: f is moved into heap state before
//   any coroutine frame exists. That is all a library can do about a g++ 12
//   bug (at least): inside a co_await expression, it destroys the captures
//   of a closure built there twice (any non-trivially destructible capture,
//   `[s]` as well as `[s = std::string(...)]`), and the members of a braced
//   aggregate temporary, before the callee ever runs. With g++ 12 write
//     auto job = spawn_blocking([s] { return s.size(); });   // own statement
//     auto n = co_await std::move(job);
//   or pass the values as arguments to a capture-free f:
//     auto n = co_await spawn_blocking([](const std::string& s) { return s.size(); }, s);
//   Clang has no such bug; closures capturing only references or trivial
//   values (`[&]`, `[i]`) are safe everywhere.
// - Awaiting it outside a runtime throws std::logic_error; when no pool
//   thread exists and none can be started, std::system_error.
//
// Cancel safety: a task cancelled while its f waits in the queue takes it
// out (f never runs, it is destroyed on the worker). One cancelled while f
// runs lets f finish on the pool thread (a thread cannot be interrupted);
// its result is destroyed there, and nothing refers to the cancelled frame.
// Destroying the runtime waits for the functions still running, after the
// workers have stopped.
#pragma once

#include <functional>
#include <type_traits>
#include <utility>

#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {
template <class F>
struct blocking_call;
template <class R>
struct blocking_ref;
template <class R>
task<R> await_blocking(blocking_ref<R> call);
}  // namespace detail

// Runs f on the blocking pool; co_await gives f's result (f() must be void
// or return an object type; a reference result does not compile).
template <class F>
  requires std::is_invocable_v<F>
task<std::invoke_result_t<F>> spawn_blocking(F f) {
  using R = std::invoke_result_t<F>;
  static_assert(std::is_void_v<R> || std::is_object_v<R>,
                "ringflow::spawn_blocking: f must return void or an object (not a reference)");
  return detail::await_blocking<R>(detail::blocking_ref<R>(new detail::blocking_call<F>(std::move(f))));
}

// Runs f(args...) on the blocking pool, each argument decayed and moved in
// (pass std::ref for a reference).
template <class F, class... Args>
  requires(sizeof...(Args) > 0 && std::is_invocable_v<F, Args...>)
task<std::invoke_result_t<F, Args...>> spawn_blocking(F f, Args... args) {
  // Built here, in a plain function: no coroutine frame sees this closure.
  return spawn_blocking([f = std::move(f), ... args = std::move(args)]() mutable -> std::invoke_result_t<F, Args...> {
    return std::invoke(std::move(f), std::move(args)...);
  });
}

}  // namespace ringflow

#include <ringflow/detail/blocking_call.hpp>
