// semaphore: a counting, weighted, first-in first-out semaphore (Tokio's
// Semaphore). It bounds what is in flight: requests, connections, bytes.
//
//   ringflow::semaphore in_flight(64 * 1024);              // bytes in flight
//   {
//     auto p = co_await in_flight.acquire(req.size());     // suspends until they fit
//     co_await conn.write_all(req);
//   }                                                      // p gives them back here
//
// - acquire(n): co_await -> permit holding n units; suspends until n units
//   are free and every acquire queued before it has been served. Strictly
//   first-in first-out: a large request at the head is never overtaken by
//   smaller ones behind it (they wait too), so no request starves.
//   n greater than the units the semaphore owns (the initial permits plus
//   every add_permits so far) could never be served: co_await throws
//   std::invalid_argument. n == 0 completes at once with an empty permit
//   (it takes nothing, so it overtakes nobody), even behind queued waiters.
// - try_acquire(n): never suspends; a permit of n units, or nullopt when
//   they are not free or any acquire is queued (a waiting acquire keeps its
//   place). n == 0: an empty permit. n above the units owned:
//   std::invalid_argument, as for acquire.
// - permit: move-only; gives its units back when destroyed or released, and
//   wakes the queued acquires that then fit (in order). A moved-from or
//   default-made permit holds nothing and gives nothing back.
// - add_permits(n): adds n units for good and wakes the queued acquires
//   that then fit. The semaphore owns at most max_permits (SIZE_MAX) units:
//   an add that would go beyond throws std::invalid_argument and changes
//   nothing. semaphore(SIZE_MAX) and acquire(SIZE_MAX) on it are valid.
// - available(): units free now (neither held by a permit nor handed to a
//   woken acquire that has not run yet). waiting(): acquires queued now.
//
// Cancel safety: an acquire cancelled while queued (its frame destroyed by
// timeout(), join_handle::cancel or runtime shutdown) takes nothing. If it
// was at the head, the acquires behind it that now fit are woken; if it had
// already been handed its units but not yet run, they are given back and
// pass on the same way.
//
// Thread safety: usable from tasks on any workers, and try_acquire,
// add_permits, available and permits from any thread. While only one worker
// has touched the semaphore it runs without a lock (detail/affinity.hpp);
// then a spinlock per operation. A woken acquire resumes on the worker it
// suspended on, except that a spawned task may move to the worker that
// hands it its units, as a channel's waiters do (see runtime.hpp's
// Placement): two tasks taking turns with one unit then run side by side
// instead of crossing cores at every hand-over. Nothing allocates per
// acquire or release.
//
// Lifetime: the semaphore must outlive its permits and the tasks suspended
// in its acquire(); it is neither copied nor moved.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/task.hpp>

namespace ringflow {

class semaphore {
 public:
  class permit;
  class acquire_awaiter;

  // The most units a semaphore owns.
  static constexpr std::size_t max_permits = SIZE_MAX;

  // permits: the units free at first (0 is valid: add_permits brings them).
  explicit semaphore(std::size_t permits) noexcept;
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  // co_await -> permit of n units, first-in first-out.
  [[nodiscard]] acquire_awaiter acquire(std::size_t n = 1) noexcept;
  // A permit of n units if they are free and nobody is queued, else nullopt.
  [[nodiscard]] std::optional<permit> try_acquire(std::size_t n = 1);
  // Units free now.
  std::size_t available() const;
  // Acquires suspended now.
  std::size_t waiting() const;
  // Adds n units for good; beyond max_permits in all: std::invalid_argument.
  void add_permits(std::size_t n);

 private:
  friend class permit;
  friend class acquire_awaiter;
  struct guard;

  void throw_if_never_fits_locked(std::size_t n) const;
  void give_back(std::size_t n) noexcept;
  void wake_fitting_locked(detail::affinity_guard& g) noexcept;

  // Laid out as channel is: what an operation reads and writes on one cache
  // line, the lock on its own (waiters spinning on it leave the state alone).
  mutable detail::affinity affinity_;
  std::size_t available_;  // free: not held by a permit, not handed to a woken acquire
  std::size_t owned_;      // free + held + handed; grows only by add_permits
  std::size_t waiting_ = 0;
  detail::waiter_list waiters_;  // of acquire_awaiter, oldest first
  alignas(64) mutable detail::spinlock lock_;
};

// Units of a semaphore, held until the permit is destroyed or released.
class semaphore::permit {
 public:
  permit() noexcept = default;  // holds nothing
  permit(permit&& o) noexcept;
  permit& operator=(permit&& o) noexcept;  // gives back what this one held first
  ~permit();

  // Units held: 0 once released or moved from.
  std::size_t count() const noexcept { return count_; }
  // Gives the units back now; idempotent.
  void release() noexcept;

 private:
  friend class semaphore;
  friend class acquire_awaiter;
  permit(semaphore* s, std::size_t n) noexcept : sem_(s), count_(n) {}

  semaphore* sem_ = nullptr;
  std::size_t count_ = 0;
};

// co_await s.acquire(n) -> permit. Neither copied nor moved (a queued one
// is linked into the semaphore).
class [[nodiscard]] semaphore::acquire_awaiter : detail::waiter_node {
 public:
  acquire_awaiter(const acquire_awaiter&) = delete;
  acquire_awaiter& operator=(const acquire_awaiter&) = delete;
  ~acquire_awaiter();

  bool await_ready();
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) {
    return suspend(h, detail::uncancellable_task_of(h));
  }
  permit await_resume() noexcept;

 private:
  friend class semaphore;
  acquire_awaiter(semaphore& s, std::size_t n) noexcept : detail::waiter_node(lazy_t{}), sem_(s), n_(n) {}
  // uncancellable_task: as for a channel's waiters, a task whose wait cannot
  // be cancelled may be moved to the worker that hands it its units.
  std::coroutine_handle<> suspend(std::coroutine_handle<> h, detail::root_link* uncancellable_task);
  void withdraw() noexcept;

  semaphore& sem_;
  const std::size_t n_;
};

}  // namespace ringflow

#include <ringflow/detail/semaphore_waits.hpp>
