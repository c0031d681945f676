// run(): the tests' way into a runtime. Builds a fresh runtime, runs one task
// to completion on it with block_on, and returns the task's result; the
// runtime is destroyed before run() returns, so every frame it owned is gone.
//
//   #include "../support/run.hpp"
//   using test_support::run;
//
//   int v = run(compute(), 2);                     // a task, on 2 workers
//   run([&]() -> task<void> { ... });              // a coroutine lambda, on 1 worker
//   run(body, &clock);                             // body(&clock), on 1 worker
//
// A lambda is called inside run() and stays alive until its task finishes,
// so its captures may be used across suspensions.
#pragma once

#include <concepts>
#include <utility>

#include <ringflow/runtime.hpp>
#include <ringflow/task.hpp>

namespace test_support {

// Runs t on a runtime of `threads` workers; returns its result.
template <class T>
T run(ringflow::task<T> t, unsigned threads = 1) {
  ringflow::runtime rt({.threads = threads});
  return rt.block_on(std::move(t));
}

// Runs t on a runtime built with options o; returns its result.
template <class T>
T run(ringflow::task<T> t, ringflow::runtime_options o) {
  ringflow::runtime rt(o);
  return rt.block_on(std::move(t));
}

// Runs body() on a runtime of `threads` workers; returns its result.
template <class F>
  requires std::invocable<F&>
auto run(F&& body, unsigned threads = 1) {
  ringflow::runtime rt({.threads = threads});
  return rt.block_on(body());
}

// Runs body(args...) on a runtime of one worker; returns its result.
template <class F, class A, class... Args>
  requires std::invocable<F&, A&, Args&...>
auto run(F&& body, A&& a, Args&&... args) {
  ringflow::runtime rt({.threads = 1});
  return rt.block_on(body(a, args...));
}

}  // namespace test_support
