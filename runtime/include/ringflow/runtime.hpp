// runtime: worker threads, each owning one io_uring and a ready queue.
//
//   ringflow::runtime rt({.threads = 2});
//   int v = rt.block_on(main_task());      // drive until main_task finishes
//
// Placement. spawn() inside a task queues the new task on the spawning
// worker; runtime::spawn() from outside queues it on the next worker,
// round-robin. A worker with nothing to do takes half of the tasks that
// wait unstarted in another worker's queue (work stealing, as in Go and
// Tokio), so a burst of spawns spreads over idle cores while spawn-and-join
// loops on a busy core stay there, in its cache. A started task may later
// move: when another worker wakes it from a channel wait and
// has nothing else ready, it runs there from then on (as Go's runnext and
// Tokio's LIFO slot place a woken task), so tasks that hand values back and
// forth end up on one worker instead of crossing cores for every value. An
// idle worker that sees tasks wait in a busy worker's queue (~30 us) asks
// for one, so busy tasks spread over the cores again. Tasks started with
// spawn_on(), spawn_local() or block_on() are pinned: they never move. Only a
// channel wake moves a task, and only one whose wait nothing could cancel
// (not under timeout or in a select); io completions resume a task where it
// submitted the operation, and a moved task's later io goes to its new ring.
//
// An idle worker sleeps in the kernel (io_uring_submit_and_wait) until a
// completion or a wake-up from another thread arrives (IORING_OP_MSG_RING
// between workers, an eventfd otherwise); while another worker is busy it
// wakes every millisecond to look at that worker's queue.
//
// Destroying the runtime stops the workers, destroys the frames of every task
// still suspended (their destructors run, their in-flight operations are
// cancelled) and closes the rings; no thread outlives it. A task that never
// started is destroyed unrun (its handle reports it cancelled), and so is one
// spawned onto a worker that has already shut down. Destroyed by one of its
// own tasks, the runtime cannot wait for its own thread: the destructor then
// returns at once and the shutdown runs on the workers (that task goes at its
// next suspension, with the others); the last worker out frees what is left.
// A moved-from runtime throws std::logic_error from block_on, spawn and
// spawn_on. What may outlive a runtime: channels, tcp streams, subscriptions
// and join handles (a handle then reports its task cancelled); see README,
// "Lifetimes".
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>

#include <ringflow/detail/runtime_core.hpp>
#include <ringflow/detail/signal_mask.hpp>
#include <ringflow/join_handle.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

struct runtime_options {
  unsigned threads = 1;         // worker threads; 0 -> std::invalid_argument
  unsigned ring_entries = 256;  // SQ entries per ring: 1..32768, else std::invalid_argument
  // How long an idle worker of a multi-worker runtime watches its inbox
  // before sleeping in the kernel: about what waking a sleeping core costs
  // here (~20 us), so cross-worker hand-offs stay cheap. Meanwhile it looks
  // for tasks left waiting in a busy worker's queue, and takes half of the
  // spawned tasks that have not started there (see Placement above).
  // A lone worker spins only while a spawn_blocking result is due (the pool
  // thread hands it back through the inbox). 0: sleep at once, and never
  // take tasks from another worker. Values above 1 s count as 1 s.
  std::chrono::nanoseconds idle_spin = std::chrono::microseconds(20);
  // Threads of the pool spawn_blocking runs on (started on demand, see
  // blocking.hpp); 0 -> std::invalid_argument.
  unsigned blocking_threads = 8;
};

class runtime {
 public:
  // Throws std::invalid_argument for bad options and std::system_error when
  // io_uring cannot be set up (the message says when it is unavailable).
  explicit runtime(runtime_options opts = {});
  runtime(runtime&&) noexcept = default;
  runtime& operator=(runtime&&) noexcept = default;
  ~runtime();

  // Runs t on the first worker and blocks the calling thread until it
  // finishes; returns its value or rethrows its exception. Calling it from a
  // task of the same runtime throws std::logic_error (it would deadlock).
  // While it waits, the calling thread blocks every asynchronous signal
  // (its mask is restored on return): a signal sent to the process goes to
  // a worker, where a signal_set can claim it (see signal.hpp).
  template <class T>
  T block_on(task<T> t);

  // Starts t on a worker (round-robin); it may move later (see Placement
  // above). Usable from any thread.
  template <class T>
  join_handle<T> spawn(task<T> t);

  // Starts t on worker `index` (0-based) and keeps it there;
  // std::out_of_range when there is no such worker.
  template <class T>
  join_handle<T> spawn_on(unsigned index, task<T> t);

  // 0 for a moved-from runtime.
  unsigned threads() const noexcept { return core_ ? static_cast<unsigned>(core_->size()) : 0; }
  // std::logic_error for a moved-from runtime (as block_on, spawn, spawn_on).
  detail::runtime_core& core() { return live_core(); }

 private:
  detail::runtime_core& live_core() const;
  std::unique_ptr<detail::runtime_core> core_;
};

namespace detail {
// pinned: the task stays on w (else it may move to the worker that wakes it
// from a channel, see worker::place_woken).
template <class T>
join_handle<T> spawn_on(worker& w, task<T> t, bool pinned = true) {
  if (!t.valid()) throw std::invalid_argument("ringflow: spawning an empty task");
  auto* s = new join_state<T>;
  root_coro r = run_root(std::move(t), join_ref<T>{s});
  r.link->pinned.store(pinned, std::memory_order_relaxed);
  r.promise->join = s;
  s->root = r.link;
  w.core().start_on(w, r.link);
  return join_handle<T>{s};
}
}  // namespace detail

// Inside a running task: starts t on the current runtime, queued on this
// worker, where an idle worker may take it before it starts; it may move
// later (see runtime's Placement).
template <class T>
join_handle<T> spawn(task<T> t) {
  if (!detail::tls_worker) throw std::logic_error("ringflow::spawn called outside a runtime");
  return detail::spawn_on(*detail::tls_worker, std::move(t), false);
}

// Inside a running task: starts t on the current worker and keeps it there
// (no cross-core hand-off, ever).
template <class T>
join_handle<T> spawn_local(task<T> t) {
  if (!detail::tls_worker) throw std::logic_error("ringflow::spawn_local called outside a runtime");
  return detail::spawn_on(*detail::tls_worker, std::move(t));
}

template <class T>
join_handle<T> runtime::spawn(task<T> t) {
  return detail::spawn_on(live_core().next_worker(), std::move(t), false);
}

template <class T>
join_handle<T> runtime::spawn_on(unsigned index, task<T> t) {
  detail::runtime_core& c = live_core();
  if (index >= c.size()) throw std::out_of_range("ringflow::runtime::spawn_on: no such worker");
  return detail::spawn_on(c.at(index), std::move(t));
}

template <class T>
T runtime::block_on(task<T> t) {
  detail::runtime_core& c = live_core();
  if (detail::tls_worker && &detail::tls_worker->core() == &c) {
    throw std::logic_error("ringflow: block_on called from a task of the same runtime");
  }
  detail::signal_shield shield;  // before t can run (and claim a signal)
  return detail::spawn_on(c.at(0), std::move(t)).wait();
}

}  // namespace ringflow
