#include <ringflow/signal.hpp>

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <ringflow/detail/io_op.hpp>
#include <ringflow/detail/signal_mask.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/worker.hpp>

#include "worker_registry.hpp"

namespace ringflow {

namespace detail {

namespace {

constexpr int max_signal = 64;  // a signalfd mask holds 1..64

// How many live signal_sets claim each signal (index: the signal).
std::mutex claims_mutex;
unsigned claim_count[max_signal + 1] = {};

bool is_fault(int s) noexcept {
  return s == SIGSEGV || s == SIGBUS || s == SIGILL || s == SIGFPE || s == SIGTRAP || s == SIGSYS;
}

sigset_t to_sigset(std::uint64_t bits) noexcept {
  sigset_t m;
  sigemptyset(&m);
  for (int s = 1; s <= max_signal; ++s) {
    if (bits & (std::uint64_t{1} << (s - 1))) sigaddset(&m, s);
  }
  return m;
}

// Counts the claims; returns the generation the workers must reach.
std::uint64_t claim(std::uint64_t bits) {
  std::lock_guard g(claims_mutex);
  bool changed = false;
  for (int s = 1; s <= max_signal; ++s) {
    if ((bits & (std::uint64_t{1} << (s - 1))) && claim_count[s]++ == 0) changed = true;
  }
  if (changed) return claimed_signals_generation.fetch_add(1, std::memory_order_seq_cst) + 1;
  return claimed_signals_generation.load(std::memory_order_seq_cst);
}

void unclaim(std::uint64_t bits) noexcept {
  bool changed = false;
  {
    std::lock_guard g(claims_mutex);
    for (int s = 1; s <= max_signal; ++s) {
      if ((bits & (std::uint64_t{1} << (s - 1))) && --claim_count[s] == 0) changed = true;
    }
    if (changed) claimed_signals_generation.fetch_add(1, std::memory_order_seq_cst);
  }
  if (!changed) return;
  // A sleeping worker would keep the signal blocked, and a signal sent
  // meanwhile would wait with nobody to take it: wake them all.
  if (tls_worker) apply_claimed_signals(tls_worker->signals_applied());
  worker_registry::wake_all();
}

// Until every running worker's mask has the claims of generation gen. Our
// own worker applies them here; meanwhile we grant hand-over requests (a
// worker waiting for one from us would otherwise never get back to its loop).
void wait_until_applied(std::uint64_t gen) {
  worker* self = tls_worker;
  apply_claimed_signals(self->signals_applied());
  worker_registry::wake_all();
  unsigned spins = 0;
  while (!worker_registry::all_applied_signals(gen)) {
    if (claimed_signals_generation.load(std::memory_order_acquire) !=
        self->signals_applied().load(std::memory_order_relaxed)) {
      apply_claimed_signals(self->signals_applied());  // another set's claim, made meanwhile
    }
    self->process_revokes();
    if (++spins < 64) {
      cpu_relax();
    } else {
      std::this_thread::yield();
      if (spins % 4096 == 0) worker_registry::wake_all();
    }
  }
}

}  // namespace

void apply_claimed_signals(std::atomic<std::uint64_t>& applied) noexcept {
  // The mask the thread started with: claims add to it and releases go back
  // to it, so a signal the program blocked itself stays blocked.
  thread_local sigset_t initial;
  thread_local bool have_initial = false;
  if (!have_initial) {
    pthread_sigmask(SIG_BLOCK, nullptr, &initial);
    have_initial = true;
  }
  sigset_t m = initial;
  std::uint64_t gen;
  {
    std::lock_guard g(claims_mutex);
    for (int s = 1; s <= max_signal; ++s) {
      if (claim_count[s]) sigaddset(&m, s);
    }
    gen = claimed_signals_generation.load(std::memory_order_relaxed);
  }
  pthread_sigmask(SIG_SETMASK, &m, nullptr);
  applied.store(gen, std::memory_order_release);
}

sigset_t async_signals() noexcept {
  sigset_t m;
  sigfillset(&m);
  for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS}) sigdelset(&m, s);
  return m;
}

signal_shield::signal_shield() noexcept {
  sigset_t all = async_signals();
  pthread_sigmask(SIG_BLOCK, &all, &old_);
}

signal_shield::~signal_shield() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

namespace {

// Poll, then read one signal without blocking: a wait cancelled in the poll
// has consumed nothing. Another set (or a wait on another thread) may take
// the signal between the poll and the read: poll again.
task<int> next_signal(int fd) {
  for (;;) {
    signalfd_siginfo si;
    const ssize_t n = ::read(fd, &si, sizeof si);
    if (n == static_cast<ssize_t>(sizeof si)) co_return static_cast<int>(si.ssi_signo);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) throw std::system_error(errno, std::system_category(), "ringflow::signal_set::wait");
    poll_op op(fd, POLLIN);
    const std::int32_t r = co_await op;
    if (r < 0) throw std::system_error(-r, std::system_category(), "ringflow::signal_set::wait");
  }
}

}  // namespace

}  // namespace detail

signal_set::signal_set(std::initializer_list<int> signals) {
  if (signals.size() == 0) throw std::invalid_argument("ringflow::signal_set: no signals");
  const int rt_min = SIGRTMIN, rt_max = SIGRTMAX;
  for (int s : signals) {
    const std::string n = std::to_string(s);
    if (s < 1 || s > rt_max || s > detail::max_signal) {
      throw std::invalid_argument("ringflow::signal_set: no such signal: " + n);
    }
    if (s == SIGKILL || s == SIGSTOP) {
      throw std::invalid_argument("ringflow::signal_set: SIGKILL and SIGSTOP cannot be caught");
    }
    if (detail::is_fault(s)) {
      throw std::invalid_argument("ringflow::signal_set: fault signal " + n + " must reach its thread");
    }
    if (s > 31 && s < rt_min) {
      throw std::invalid_argument("ringflow::signal_set: signal " + n + " is reserved by the C library");
    }
    signals_ |= std::uint64_t{1} << (s - 1);
  }
  if (!detail::tls_worker) throw std::logic_error("ringflow::signal_set constructed outside a runtime");
  const std::uint64_t gen = detail::claim(signals_);
  try {
    detail::wait_until_applied(gen);
    sigset_t m = detail::to_sigset(signals_);
    fd_ = ::signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "signalfd");
  } catch (...) {
    detail::unclaim(signals_);
    throw;
  }
}

signal_set::signal_set(signal_set&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), signals_(std::exchange(o.signals_, 0)) {}

signal_set& signal_set::operator=(signal_set&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = std::exchange(o.fd_, -1);
    signals_ = std::exchange(o.signals_, 0);
  }
  return *this;
}

signal_set::~signal_set() { reset(); }

void signal_set::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (signals_) detail::unclaim(std::exchange(signals_, 0));
}

task<int> signal_set::wait() {
  if (fd_ < 0) throw std::logic_error("ringflow::signal_set::wait on a moved-from set");
  return detail::next_signal(fd_);
}

task<int> signal_set::stop_on_signal(std::stop_source source) {
  const int s = co_await wait();
  source.request_stop();
  co_return s;
}

bool signal_set::contains(int s) const noexcept {
  return s >= 1 && s <= detail::max_signal && (signals_ & (std::uint64_t{1} << (s - 1)));
}

}  // namespace ringflow
