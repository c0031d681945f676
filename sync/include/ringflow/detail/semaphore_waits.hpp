// semaphore's machinery: the queue of suspended acquires and the one step
// that serves it. Included at the end of <ringflow/semaphore.hpp>, whose
// declarations state the contract.
//
// A woken acquire is handed its units by the waker (taken off `available_`
// under the lock), so nobody can take them from it before it runs and it
// resumes without touching the semaphore again. If its frame is destroyed
// before it runs, its destructor withdraws the queued resumption and gives
// the units back, and they pass on to the next acquires that fit.
#pragma once

#include <coroutine>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/config.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/semaphore.hpp>  // included alone: the declarations first

namespace ringflow {

struct semaphore::guard : detail::affinity_guard {
  RINGFLOW_HOT explicit guard(const semaphore& s) : detail::affinity_guard(s.affinity_, s.lock_) {}
};

inline semaphore::semaphore(std::size_t permits) noexcept : available_(permits), owned_(permits) {}

inline semaphore::acquire_awaiter semaphore::acquire(std::size_t n) noexcept { return acquire_awaiter(*this, n); }

inline void semaphore::throw_if_never_fits_locked(std::size_t n) const {
  if (n > owned_) {
    throw std::invalid_argument("ringflow::semaphore: acquiring " + std::to_string(n) +
                                " units, more than the semaphore owns (" + std::to_string(owned_) + ")");
  }
}

inline std::optional<semaphore::permit> semaphore::try_acquire(std::size_t n) {
  if (n == 0) return permit(this, 0);
  guard g(*this);
  throw_if_never_fits_locked(n);
  if (!waiters_.empty() || available_ < n) return std::nullopt;
  available_ -= n;
  return permit(this, n);
}

inline std::size_t semaphore::available() const {
  guard g(*this);
  return available_;
}

inline std::size_t semaphore::waiting() const {
  guard g(*this);
  return waiting_;
}

inline void semaphore::add_permits(std::size_t n) {
  guard g(*this);
  if (n > max_permits - owned_) {
    throw std::invalid_argument("ringflow::semaphore::add_permits: " + std::to_string(n) +
                                " more units would exceed max_permits (it owns " + std::to_string(owned_) + ")");
  }
  owned_ += n;
  available_ += n;
  wake_fitting_locked(g);
}

// Never overflows: available_ never exceeds owned_.
RINGFLOW_HOT void semaphore::give_back(std::size_t n) noexcept {
  guard g(*this);
  available_ += n;
  if (!waiters_.empty()) wake_fitting_locked(g);
}

// The oldest acquires that fit now get their units, in order; the first
// that does not fit stops the rest (first-in first-out, weights included).
RINGFLOW_COLD inline void semaphore::wake_fitting_locked(detail::affinity_guard& g) noexcept {
  while (detail::waiter_node* n = waiters_.front()) {
    auto* a = static_cast<acquire_awaiter*>(n);
    if (a->n_ > available_) return;
    waiters_.pop_front();
    --waiting_;
    available_ -= a->n_;
    detail::wake_waiter(g, a, detail::wait_state::notified);
  }
}

// ---- permit ---------------------------------------------------------------------

inline semaphore::permit::permit(permit&& o) noexcept : sem_(o.sem_), count_(std::exchange(o.count_, 0)) {}

inline semaphore::permit& semaphore::permit::operator=(permit&& o) noexcept {
  if (this != &o) {
    release();
    sem_ = o.sem_;
    count_ = std::exchange(o.count_, 0);
  }
  return *this;
}

RINGFLOW_HOT semaphore::permit::~permit() { release(); }

RINGFLOW_HOT void semaphore::permit::release() noexcept {
  if (count_) sem_->give_back(std::exchange(count_, 0));
}

// ---- acquire ----------------------------------------------------------------------

// The common case: the units are free and nobody is queued ahead.
RINGFLOW_HOT bool semaphore::acquire_awaiter::await_ready() {
  if (n_ == 0) return true;
  guard g(sem_);
  if (sem_.waiters_.empty() && sem_.available_ >= n_) {
    sem_.available_ -= n_;
    return true;
  }
  sem_.throw_if_never_fits_locked(n_);
  return false;
}

inline std::coroutine_handle<> semaphore::acquire_awaiter::suspend(std::coroutine_handle<> h,
                                                                   detail::root_link* uncancellable_task) {
  detail::worker* w = detail::tls_worker;
  if (!w) throw std::logic_error("ringflow::semaphore::acquire awaited outside a runtime");
  guard g(sem_);
  // await_ready just found no room; only another thread could have made
  // some since, and only when the semaphore is shared.
  if (g.locked() && sem_.waiters_.empty() && sem_.available_ >= n_) {
    sem_.available_ -= n_;
    return h;
  }
  detail::enqueue_waiter(sem_.waiters_, this, h, uncancellable_task);
  ++sem_.waiting_;
  return w->next_ready_for_transfer();
}

// Completed at once, or woken with the units already handed to it.
RINGFLOW_HOT semaphore::permit semaphore::acquire_awaiter::await_resume() noexcept {
  registered = false;
  return permit(&sem_, n_);
}

RINGFLOW_HOT semaphore::acquire_awaiter::~acquire_awaiter() {
  if (registered) withdraw();
}

// The frame is destroyed while suspended (cancellation, shutdown).
RINGFLOW_COLD inline void semaphore::acquire_awaiter::withdraw() noexcept {
  guard g(sem_);
  if (state == detail::wait_state::waiting) {
    sem_.waiters_.remove(this);
    --sem_.waiting_;
  } else {
    // Handed its units, its resumption queued on this worker: withdraw the
    // resumption and pass the units on.
    owner->unschedule(handle);
    sem_.available_ += n_;
  }
  registered = false;
  state = detail::wait_state::idle;
  // Leaving the head may let the acquires behind it fit.
  sem_.wake_fitting_locked(g);
}

}  // namespace ringflow
