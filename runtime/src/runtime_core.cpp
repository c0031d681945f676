#include <ringflow/detail/runtime_core.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

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

runtime_core::runtime_core(unsigned threads, unsigned ring_entries, std::int64_t idle_spin_ns) {
  workers_.resize(threads);
  barrier_ = std::make_unique<std::barrier<>>(threads);
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
      barrier_->arrive_and_wait();  // nobody runs tasks any more
      workers_[i]->destroy_everything();
      barrier_->arrive_and_wait();  // no frame is left anywhere
      tls_worker = nullptr;
      tls_worker_id = 0;
      // The worker object stays until ~runtime_core: other threads may still
      // call wake() on it until they are joined.
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
  stop_.store(true, std::memory_order_seq_cst);
  for (auto& w : workers_) {
    if (w) w->wake();
  }
  for (auto& t : threads_) t.join();
}

void runtime_core::start_on(worker& w, root_link* root) {
  if (tls_worker == &w) {
    w.adopt_root(root);
    w.schedule_local(root->frame);
  } else if (w.push_remote(root->frame, root)) {
    w.wake();
  }
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
