// task_group<T>: a bounded set of spawned tasks (Tokio's JoinSet with a
// limit, Go's errgroup.SetLimit). Backpressure on spawning: at max_running,
// co_await group.spawn(t) suspends until one of the group's tasks finishes.
//
//   ringflow::task_group<int> g(8);            // at most 8 running at once
//   for (auto& url : urls) co_await g.spawn(fetch(url));
//   while (auto v = co_await g.next()) total += *v;   // in finishing order
//
// - spawn(t): co_await; suspends while max_running tasks of the group run
//   (FIFO among suspended spawners); then starts t as ringflow::spawn does
//   (queued on this worker, where an idle worker may take it before it
//   starts; it may move later). A spawn awaitable never awaited starts
//   nothing.
// - next(): co_await -> std::optional<T> (for T = void: bool), the next task
//   to finish, in finishing order; rethrows that task's exception; nullopt
//   (false) once the group holds no task (none running, none unreported).
//   Cancelled tasks are not reported: after cancel_all(), next() returns
//   the results of tasks that finished before it, then nullopt (false).
// - try_next(): never suspends; the next finished task's result if one is
//   unreported (rethrowing its exception), else nullopt (false for
//   T = void). A loop that spawns for ever (an accept loop) calls it to
//   reap what finished, so reports do not pile up (Tokio's try_join_next).
// - cancel_all(): every task of the group as join_handle::cancel (destroyed
//   at its current suspension, its waits withdrawn).
// - running(): tasks started (or being started) and not finished.
// - ~task_group(): cancels the tasks still running; their frames go on
//   their own workers afterwards, touching nothing of the group's owner.
//   Unreported results are dropped (an exception among them goes nowhere:
//   the group took responsibility for it).
//
// Cancel safety: a spawn cancelled while suspended starts nothing and passes
// its place to the next spawner; a next() cancelled while suspended loses
// no result (one already handed to it goes back to the front).
// Several tasks, on any workers, may spawn into and await one group. The
// group must outlive the tasks suspended in its spawn() and next(); it is
// neither copied nor moved.
// max_running = 0: std::invalid_argument.
#pragma once

#include <coroutine>
#include <cstddef>
#include <deque>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/join_handle.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {
template <class T>
struct group_state;
template <class T>
class group_spawn_awaiter;
template <class T>
class group_next_awaiter;
}  // namespace detail

template <class T = void>
class task_group {
 public:
  // max_running: how many of its tasks may run at once; 0 throws std::invalid_argument.
  explicit task_group(std::size_t max_running = SIZE_MAX);
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;
  ~task_group();

  // co_await: starts t once fewer than max_running tasks of the group run.
  [[nodiscard]] detail::group_spawn_awaiter<T> spawn(task<T> t);
  // co_await -> std::optional<T> (T = void: bool): the next task to finish.
  [[nodiscard]] detail::group_next_awaiter<T> next();
  // The next finished task's result, if one is unreported; never suspends.
  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> try_next();
  // Cancels every task of the group.
  void cancel_all();
  // Tasks started (or being started) and not yet finished.
  std::size_t running() const;

 private:
  detail::group_state<T>* s_;
};

}  // namespace ringflow

#include <ringflow/detail/task_group_state.hpp>
