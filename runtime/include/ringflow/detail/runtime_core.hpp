// runtime_core: the workers of one runtime and how new tasks are placed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <ringflow/detail/blocking_pool.hpp>
#include <ringflow/detail/worker.hpp>

namespace ringflow::detail {

class runtime_core {
 public:
  runtime_core(unsigned threads, unsigned ring_entries, std::int64_t idle_spin_ns, unsigned blocking_threads);
  // Stops the workers and frees every frame, then waits for the blocking
  // functions still running and joins the blocking pool.
  ~runtime_core();

  // From a task of this runtime (the runtime is being destroyed by one of
  // its own tasks, which cannot join its own thread): stops the workers
  // without waiting; the last worker to finish shutting down frees this.
  void stop_and_free_when_done() noexcept;

  std::size_t size() const noexcept { return workers_.size(); }
  worker& at(std::size_t i) noexcept { return *workers_[i]; }
  // Round-robin placement for spawn; a lone worker always gets it.
  worker& next_worker() noexcept {
    if (workers_.size() == 1) return *workers_[0];
    return *workers_[next_.fetch_add(1, std::memory_order_relaxed) % workers_.size()];
  }
  bool stopping() const noexcept { return stop_.load(std::memory_order_acquire); }
  // Where spawn_blocking runs its functions; its threads start on demand.
  blocking_pool& blocking() noexcept { return blocking_; }

  // Starts root (an unstarted, adopted-on-arrival frame) on w.
  void start_on(worker& w, root_link* root);

  // After a worker gave a task to an idle one (worker::place_woken_slow),
  // tasks stop moving to their wakers for a while: the two halves of a busy
  // pipeline then keep both cores instead of being pulled together again at
  // the next wake.
  void pause_moves() noexcept;
  bool moves_paused() const noexcept {
    std::int64_t until = moves_paused_until_.load(std::memory_order_relaxed);
    return until != 0 && now_ns() < until;
  }
  static std::int64_t now_ns() noexcept;

 private:
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<unsigned> next_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> moves_paused_until_{0};
  std::atomic<std::int64_t> move_pause_ns_{0};
  // Shutdown runs in two phases (every worker has stopped running tasks;
  // every worker has freed its frames). A worker waiting for the others keeps
  // granting hand-over requests (affinity.hpp): a destructor run by another
  // worker may need an object this one used last.
  void arrive_and_serve(unsigned phase, worker& w) noexcept;
  std::atomic<unsigned> arrived_[2] = {0, 0};
  std::atomic<unsigned> exited_{0};
  std::atomic<bool> free_when_done_{false};
  // After workers_: destroyed (joined) first, so a pool thread handing a
  // result back may still wake a worker.
  blocking_pool blocking_;
};

}  // namespace ringflow::detail
