// blocking_pool: the threads spawn_blocking runs its functions on, owned by
// one runtime (runtime_core).
//
// Threads start on demand: a job submitted while no pool thread is idle
// starts a new one, up to the runtime's blocking_threads; beyond that jobs
// wait in FIFO order. Started threads stay until the runtime goes. They block
// every asynchronous signal (they never run a signal handler, so a signal a
// signal_set claims cannot land on them). Shutdown waits for the jobs that
// are running (a thread cannot be interrupted) and runs any still queued.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace ringflow::detail {

// One unit of work, linked into the pool's queue while it waits (intrusive,
// so a job whose awaiter is cancelled leaves the queue in O(1)).
struct blocking_job {
  // Runs on a pool thread, once; may free the job.
  void (*run)(blocking_job*) noexcept = nullptr;
  blocking_job* prev = nullptr;  // under the pool's mutex
  blocking_job* next = nullptr;
  bool queued = false;
};

class blocking_pool {
 public:
  explicit blocking_pool(unsigned max_threads) noexcept;
  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;
  ~blocking_pool();  // shut_down()

  // Queues j (FIFO) and wakes or starts a thread for it. Throws
  // std::system_error only when no pool thread exists and none can be
  // started (then j is not queued).
  void submit(blocking_job& j);
  // True when j was still queued: it is removed and never runs.
  bool withdraw(blocking_job& j) noexcept;
  // Waits for every job to finish, then joins the threads. Idempotent.
  void shut_down() noexcept;

 private:
  void serve() noexcept;

  std::mutex m_;
  std::condition_variable cv_;
  blocking_job queue_;  // sentinel of a circular list
  std::size_t queued_ = 0;
  unsigned idle_ = 0;  // threads waiting for a job
  unsigned max_threads_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ringflow::detail
