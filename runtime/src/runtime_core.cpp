#include <ringflow/detail/runtime_core.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ringflow::detail {

namespace {
struct start_gate {
  std::mutex m;
  std::condition_variable cv;
  unsigned reported = 0;
  bool failed = false;
  std::exception_ptr error;
};
}  // namespace

runtime_core::runtime_core(unsigned threads, unsigned ring_entries, std::int64_t idle_spin_ns,
                           unsigned blocking_threads)
    : blocking_(blocking_threads) {
  workers_.resize(threads);
  // Shared: a thread may still be leaving gate.cv.wait() when we return.
  auto gate_ptr = std::make_shared<start_gate>();
  start_gate& gate = *gate_ptr;
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i, ring_entries, idle_spin_ns, gate_ptr] {
      start_gate& gate = *gate_ptr;
      // The ring is created here: with SINGLE_ISSUER only this thread may use it.
      bool ok = true;
      try {
        workers_[i] = std::make_unique<worker>(*this, i, ring_entries, idle_spin_ns);
      } catch (...) {
        ok = false;
        std::lock_guard g(gate.m);
        if (!gate.error) gate.error = std::current_exception();
      }
      bool go;
      {
        std::unique_lock g(gate.m);
        gate.failed |= !ok;
        if (++gate.reported == workers_.size()) gate.cv.notify_all();
        gate.cv.wait(g, [&] { return gate.reported == workers_.size(); });
        go = !gate.failed;
      }
      if (!go) return;  // the worker objects are freed by the constructing thread
      workers_[i]->run();
      arrive_and_serve(0, *workers_[i]);  // nobody runs tasks any more
      workers_[i]->destroy_everything();
      arrive_and_serve(1, *workers_[i]);  // no frame is left anywhere
      tls_worker = nullptr;
      tls_worker_id = 0;
      // The worker object stays until ~runtime_core: other threads may still
      // call wake() on it until they are joined. When one of our own tasks
      // destroyed the runtime, nobody joins us: the last one out frees it.
      // This count is every thread's last touch of *this.
      const std::size_t n = workers_.size();
      const bool free_me = free_when_done_.load(std::memory_order_acquire);  // final: set before the stop
      if (exited_.fetch_add(1, std::memory_order_acq_rel) + 1 == n && free_me) {
        for (auto& t : threads_) t.detach();
        delete this;
      }
    });
  }
  std::unique_lock g(gate.m);
  gate.cv.wait(g, [&] { return gate.reported == threads; });
  if (gate.failed) {
    g.unlock();
    for (auto& t : threads_) t.join();
    std::rethrow_exception(gate.error);
  }
}

runtime_core::~runtime_core() {
  if (free_when_done_.load(std::memory_order_acquire)) return;  // the last worker frees us: all have exited
  stop_.store(true, std::memory_order_seq_cst);
  for (auto& w : workers_) {
    if (w) w->wake();
  }
  for (auto& t : threads_) t.join();
  // Every frame is gone, so no job is queued; wait for those still running.
  blocking_.shut_down();
}

void runtime_core::stop_and_free_when_done() noexcept {
  // Before stop_: a worker that sees the stop also sees this.
  free_when_done_.store(true, std::memory_order_seq_cst);
  stop_.store(true, std::memory_order_seq_cst);
  for (auto& w : workers_) {
    if (w.get() != tls_worker) w->wake();
  }
}

void runtime_core::arrive_and_serve(unsigned phase, worker& w) noexcept {
  arrived_[phase].fetch_add(1, std::memory_order_acq_rel);
  unsigned spins = 0;
  while (arrived_[phase].load(std::memory_order_acquire) < workers_.size()) {
    w.process_revokes();
    if (++spins < 64) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

void runtime_core::start_on(worker& w, root_link* root) {
  if (tls_worker == &w) {
    w.start_here(root);
    return;
  }
  bool wake = false;
  if (!w.push_root(root, wake)) {
    // w has shut down: the task never starts (its joiners see it cancelled).
    root->frame.destroy();
    return;
  }
  if (wake) w.wake();
}

std::int64_t runtime_core::now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void runtime_core::pause_moves() noexcept {
  // Long against a hand-off (~0.1-20 us), short against a busy pipeline's
  // life; doubled (up to 64 ms) while give-aways keep coming soon after the
  // pause ends (an idle worker looks every 1 ms): the tasks involved are busy
  // enough to want a core each.
  constexpr std::int64_t first_ns = 500'000, longest_ns = 64'000'000, soon_ns = 4'000'000;
  const std::int64_t now = now_ns();
  std::int64_t pause = move_pause_ns_.load(std::memory_order_relaxed);
  const std::int64_t since = now - moves_paused_until_.load(std::memory_order_relaxed);
  pause = since < std::max(2 * pause, soon_ns) ? std::min(pause * 2, longest_ns) : first_ns;
  move_pause_ns_.store(pause, std::memory_order_relaxed);
  moves_paused_until_.store(now + pause, std::memory_order_relaxed);
}

}  // namespace ringflow::detail
