#include <ringflow/detail/affinity.hpp>

#include <mutex>
#include <thread>
#include <unordered_map>

#include <ringflow/detail/runtime_core.hpp>

#include "worker_registry.hpp"

namespace ringflow::detail {

namespace {
std::mutex registry_mutex;
std::unordered_map<std::uint32_t, worker*>& registry() {
  static std::unordered_map<std::uint32_t, worker*> m;
  return m;
}
std::atomic<std::uint32_t> id_counter{1};
}  // namespace

std::uint32_t worker_registry::next_id() { return id_counter.fetch_add(1, std::memory_order_relaxed); }

void worker_registry::add(worker* w) {
  std::lock_guard g(registry_mutex);
  registry()[w->id()] = w;
}

void worker_registry::remove(std::uint32_t id) {
  std::lock_guard g(registry_mutex);
  registry().erase(id);
}

bool worker_registry::request_revoke(std::uint32_t id, std::atomic<std::uint32_t>* owner) {
  std::lock_guard g(registry_mutex);
  auto it = registry().find(id);
  if (it == registry().end()) return false;
  it->second->request_revoke(owner);
  return true;
}

void worker_registry::withdraw_revoke(std::uint32_t id, std::atomic<std::uint32_t>* owner) {
  std::lock_guard g(registry_mutex);
  auto it = registry().find(id);
  if (it != registry().end()) it->second->withdraw_revoke(owner);
}

bool worker_registry::alive(std::uint32_t id) {
  std::lock_guard g(registry_mutex);
  return registry().count(id) != 0;
}

void worker_registry::wake_all() {
  std::lock_guard g(registry_mutex);
  for (auto& [id, w] : registry()) {
    if (w != tls_worker) w->wake();
  }
}

bool worker_registry::all_applied_signals(std::uint64_t gen) {
  std::lock_guard g(registry_mutex);
  for (auto& [id, w] : registry()) {
    if (w->core().stopping()) continue;  // past its loop: it runs no task any more
    if (w->signals_applied().load(std::memory_order_acquire) < gen) return false;
  }
  return true;
}

bool affinity::acquire_slow() noexcept {
  const std::uint32_t me = tls_worker_id;  // 0 on a thread that is not a worker
  for (;;) {
    std::uint32_t o = owner_.load(std::memory_order_acquire);
    if (o == me) return false;
    if (o == shared_owner) return true;
    if (o == unowned_id) {
      std::uint32_t want = me ? me : shared_owner;
      if (owner_.compare_exchange_strong(o, want, std::memory_order_acq_rel)) return want == shared_owner;
      continue;
    }
    // Owned by another worker: ask it to let go, and serve our own inbox
    // while we wait so two workers asking each other cannot deadlock.
    if (!worker_registry::request_revoke(o, &owner_)) {
      owner_.compare_exchange_strong(o, shared_owner, std::memory_order_acq_rel);
      continue;
    }
    // One request only: a second one, made after the owner had processed
    // the first, would sit in its inbox after we return and the caller
    // frees the object.
    int spins = 0;
    while (owner_.load(std::memory_order_acquire) == o) {
      if (tls_worker) tls_worker->process_revokes();
      if (++spins < 128) {
        cpu_relax();
      } else {
        std::this_thread::yield();
        if (spins % 1024 == 0 && !worker_registry::alive(o)) break;
      }
    }
    // The owner may have let go on its own (make_shared) before it reached
    // our request: take the request back, for the same reason.
    worker_registry::withdraw_revoke(o, &owner_);
  }
}

}  // namespace ringflow::detail
