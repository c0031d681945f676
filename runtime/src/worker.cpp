#include <ringflow/detail/worker.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/buffer_ring.hpp>
#include <ringflow/detail/runtime_core.hpp>
#include <ringflow/detail/signal_mask.hpp>
#include "worker_registry.hpp"

namespace ringflow::detail {

namespace {

std::system_error uring_error(int err, const char* what) {
  std::string msg = what;
  if (err == ENOSYS || err == EPERM || err == EACCES) {
    msg +=
        ": io_uring is unavailable on this system (the kernel is too old, "
        "kernel.io_uring_disabled forbids it, or a seccomp filter such as a "
        "container's blocks it)";
  }
  return std::system_error(err, std::system_category(), msg);
}

int setup_ring(io_uring& ring, unsigned entries) {
  io_uring_params p{};
  // One thread submits and reaps, so let the kernel run completions only
  // when we ask for them: fewer interruptions, batched task work.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int r = io_uring_queue_init_params(entries, &ring, &p);
  if (r == -EINVAL) {
    p = {};
    p.flags = IORING_SETUP_COOP_TASKRUN;
    r = io_uring_queue_init_params(entries, &ring, &p);
  }
  if (r == -EINVAL) {
    p = {};
    r = io_uring_queue_init_params(entries, &ring, &p);
  }
  return r;
}

}  // namespace

worker::worker(runtime_core& rt, unsigned index, unsigned ring_entries, std::int64_t idle_spin_ns)
    : rt_(rt),
      index_(index),
      id_(worker_registry::next_id()),
      shared_(rt.size() > 1),
      idle_spin_ns_(idle_spin_ns) {
  roots_.prev = roots_.next = &roots_;
  owned_.prev = owned_.next = &owned_;
  if (int r = setup_ring(ring_, ring_entries); r < 0) throw uring_error(-r, "io_uring_queue_init");
  ring_ready_ = true;
  if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_)) {
    // RINGFLOW_NO_MSG_RING forces the eventfd fallback (used by the tests).
    has_msg_ring_ = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) && !std::getenv("RINGFLOW_NO_MSG_RING");
    io_uring_free_probe(probe);
  }
  // Probed here, on the ring's own thread (SINGLE_ISSUER); null means
  // tcp_stream reads with single-shot receives.
  recv_buffers_ = buffer_ring::create(ring_);
  eventfd_ = ::eventfd(0, EFD_CLOEXEC);
  if (eventfd_ < 0) {
    int e = errno;
    io_uring_queue_exit(&ring_);
    throw std::system_error(e, std::system_category(), "eventfd");
  }
  backlog_.reserve(256);
  remote_.reserve(64);
  remote_swap_.reserve(64);
  arm_eventfd();
  worker_registry::add(this);
}

worker::~worker() {
  worker_registry::remove(id_);
  close_ring();
}

void worker::close_ring() {
  if (ring_ready_) {
    io_uring_queue_exit(&ring_);
    ring_ready_ = false;
  }
  if (eventfd_ >= 0) {
    ::close(eventfd_);
    eventfd_ = -1;
  }
}

// ---- scheduling ------------------------------------------------------------

bool worker::push_remote(std::coroutine_handle<> h) {
  remote_lock_.lock();
  if (!spilled_ && inline_n_ < inline_capacity) {
    inline_[inline_n_++] = h;
  } else {
    remote_.push_back({h, nullptr});
    spilled_ = true;
  }
  remote_pending_.store(true, std::memory_order_seq_cst);
  remote_lock_.unlock();
  // A worker that is awake (or still spinning before it sleeps) needs no
  // wake: a plain load spares an atomic write to its cache line on the hot
  // cross-worker hand-off. The seq_cst store above orders it as before.
  if (!sleeping_.load(std::memory_order_seq_cst)) return false;
  return sleeping_.exchange(false, std::memory_order_seq_cst);
}

void worker::wake() {
  worker* self = tls_worker;
  if (self && self->has_msg_ring_ && &self->rt_ == &rt_ && self != this) {
    // Worker to worker: post a CQE straight into the sleeper's ring.
    io_uring_sqe* sqe = self->get_sqe();
    io_uring_prep_msg_ring(sqe, ring_.ring_fd, 0, tag_wake, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, tag_ignore);
    self->submit_now();
    return;
  }
  std::uint64_t one = 1;
  ssize_t n;
  do {
    n = ::write(eventfd_, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
}

void worker::unschedule(std::coroutine_handle<> h) {
  if (ready_.remove(h)) return;
  remote_lock_.lock();
  for (unsigned i = 0; i < inline_n_; ++i) {
    if (inline_[i] == h) inline_[i] = nullptr;
  }
  for (auto& e : remote_) {
    if (e.h == h) e.h = nullptr;
  }
  remote_lock_.unlock();
}

// Only a worker of the same runtime moves roots between lists: a lone
// worker's list needs no lock.
void worker::adopt_root(root_link* r) noexcept {
  if (shared_) roots_lock_.lock();
  r->prev = roots_.prev;
  r->next = &roots_;
  roots_.prev->next = r;
  roots_.prev = r;
  r->linked.store(true, std::memory_order_relaxed);
  ++roots_listed_;
  r->home.store(this, std::memory_order_relaxed);
  if (shared_) roots_lock_.unlock();
}

void worker::drop_root(root_link* r) noexcept {
  if (!r->linked.load(std::memory_order_relaxed)) return;
  worker& home = *r->home.load(std::memory_order_relaxed);
  if (home.shared_) home.roots_lock_.lock();
  r->prev->next = r->next;
  r->next->prev = r->prev;
  r->linked.store(false, std::memory_order_relaxed);
  --home.roots_listed_;
  if (home.shared_) home.roots_lock_.unlock();
}

void worker::adopt_owned(owned_frame_link* l) noexcept {
  if (l->linked) return;
  l->prev = owned_.prev;
  l->next = &owned_;
  owned_.prev->next = l;
  owned_.prev = l;
  l->linked = true;
}

void worker::drop_owned(owned_frame_link* l) noexcept {
  if (!l->linked) return;
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->linked = false;
}

bool worker::push_root(root_link* r, bool& wake) {
  remote_lock_.lock();
  if (retired_) {
    remote_lock_.unlock();
    wake = false;
    return false;
  }
  remote_.push_back({r->frame, r});
  spilled_ = true;
  remote_pending_.store(true, std::memory_order_seq_cst);
  remote_lock_.unlock();
  wake = sleeping_.load(std::memory_order_seq_cst) && sleeping_.exchange(false, std::memory_order_seq_cst);
  return true;
}

void worker::start_here(root_link* r) {
  if (shared_ && !r->pinned.load(std::memory_order_relaxed)) {
    // Listed only once it starts, by whichever worker starts it: a thief
    // then touches nothing of ours but the queue. Shutdown frees what is
    // still queued from the queue itself.
    unstarted_.push(r);
  } else {
    adopt_root(r);
    schedule_local(r->frame);
  }
}

bool worker::steal_unstarted(std::int64_t now) {
  if (now < steal_not_before_ || rt_.stopping()) return false;
  const std::size_t n = rt_.size();
  for (std::size_t k = 1; k < n; ++k) {
    worker& victim = rt_.at((index_ + k) % n);
    if (!victim.unstarted_.size_hint()) continue;
    root_link* batch[32];
    const std::size_t got = victim.unstarted_.steal_half(batch, std::size(batch));
    if (!got) continue;
    roots_lock_.lock();
    last_steal_ = {now, got, roots_listed_};
    roots_lock_.unlock();
    for (std::size_t i = 0; i < got; ++i) {
      adopt_root(batch[i]);
      ready_.push(batch[i]->frame);
    }
    return true;
  }
  return false;
}

// Back to idle after running what we stole. Moving a task costs its caches
// and, when it ends, a wake across cores: a steal of tasks that all ended at
// once, each in less time than that, only slowed them down (a loop that
// spawns and joins tiny tasks). Such steals make us wait before the next
// one, twice as long each time (up to 1 ms); a steal that paid (a task still
// alive, or work that took its time) lets us steal again at once.
void worker::judge_last_steal(std::int64_t now) noexcept {
  if (!last_steal_.tasks) return;
  constexpr std::int64_t worth_ns_per_task = 5'000, first_wait_ns = 20'000, longest_wait_ns = 1'000'000;
  roots_lock_.lock();
  const bool still_alive = roots_listed_ > last_steal_.roots_before;
  roots_lock_.unlock();
  const bool paid = still_alive || now - last_steal_.at >= static_cast<std::int64_t>(last_steal_.tasks) * worth_ns_per_task;
  steal_wait_ns_ = paid ? 0 : std::clamp(2 * steal_wait_ns_, first_wait_ns, longest_wait_ns);
  steal_not_before_ = now + steal_wait_ns_;
  last_steal_.tasks = 0;
}

bool worker::pin_if_home(root_link* r) noexcept {
  if (shared_) roots_lock_.lock();
  const bool here = r->linked.load(std::memory_order_relaxed) && r->home.load(std::memory_order_relaxed) == this;
  if (here) r->pinned.store(true, std::memory_order_relaxed);
  if (shared_) roots_lock_.unlock();
  return here;
}

// Only between workers of one runtime (so both lists are locked). The new
// home is set before the old list's lock goes: a canceller that holds the
// lock of the worker `home` names can trust it (pin_if_home).
bool worker::move_root(root_link* r, worker& to) noexcept {
  worker& from = *r->home.load(std::memory_order_relaxed);
  from.roots_lock_.lock();
  if (!r->linked.load(std::memory_order_relaxed) || r->pinned.load(std::memory_order_relaxed)) {
    from.roots_lock_.unlock();
    return false;
  }
  r->prev->next = r->next;
  r->next->prev = r->prev;
  r->linked.store(false, std::memory_order_relaxed);
  --from.roots_listed_;
  r->home.store(&to, std::memory_order_relaxed);
  from.roots_lock_.unlock();
  to.adopt_root(r);
  return true;
}

worker* worker::place_woken_slow(root_link* r, worker* owner) noexcept {
  // Not while shutting down: each worker then destroys the roots it lists,
  // and a destructor's wake must not move one between the lists.
  if (&owner->rt_ != &rt_ || rt_.stopping() || !r->linked.load(std::memory_order_relaxed)) return owner;
  if (thief_.load(std::memory_order_relaxed)) {
    if (worker* t = thief_.exchange(nullptr, std::memory_order_acq_rel); t && t != this) {
      rt_.pause_moves();
      if (t != owner && !move_root(r, *t)) return owner;
      return t;
    }
  }
  if (owner == this || !ready_.empty() || rt_.moves_paused()) return owner;
  return move_root(r, *this) ? this : owner;
}

void worker::drain_remote() {
  std::coroutine_handle<> first[inline_capacity];
  remote_lock_.lock();
  const unsigned n = inline_n_;
  for (unsigned i = 0; i < n; ++i) first[i] = inline_[i];
  inline_n_ = 0;
  const bool spilled = std::exchange(spilled_, false);
  if (spilled) remote_swap_.swap(remote_);
  remote_pending_.store(false, std::memory_order_relaxed);
  remote_lock_.unlock();
  // The inline entries are the older ones: the inbox spills only when full.
  for (unsigned i = 0; i < n; ++i) {
    if (first[i]) ready_.push(first[i]);
  }
  if (!spilled) return;
  for (auto& e : remote_swap_) {
    if (e.root && e.h) {
      start_here(e.root);
    } else {
      if (e.root) adopt_root(e.root);
      if (e.h) ready_.push(e.h);
    }
  }
  remote_swap_.clear();
}

// ---- io_uring ----------------------------------------------------------------

io_uring_sqe* worker::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (!sqe) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void worker::submit_now() {
  int r;
  do {
    r = io_uring_submit(&ring_);
  } while (r == -EINTR);
}

void worker::arm_eventfd() {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, eventfd_, &eventfd_buf_, sizeof eventfd_buf_, 0);
  io_uring_sqe_set_data64(sqe, tag_eventfd);
}

void worker::collect_cqes() {
  io_uring_cqe* cqe;
  unsigned head, n = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    backlog_.push_back({cqe->user_data, cqe->res, cqe->flags});
    ++n;
  }
  io_uring_cq_advance(&ring_, n);
}

void worker::cancel_and_wait(completion& c) {
  if (!c.in_flight) return;
  auto ud = reinterpret_cast<std::uint64_t>(&c);
  auto consume_backlog = [&] {
    for (std::size_t i = backlog_pos_; i < backlog_.size(); ++i) {
      if (backlog_[i].user_data == ud) {
        bool final = !(backlog_[i].flags & IORING_CQE_F_MORE);
        backlog_[i].user_data = tag_ignore;
        if (final) {
          c.res = backlog_[i].res;  // an op that finished anyway: its owner may need the result
          c.flags = backlog_[i].flags;
          c.in_flight = false;
          --in_flight_;
          return true;
        }
      }
    }
    return false;
  };
  if (consume_backlog()) return;
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_cancel64(sqe, ud, 0);
  io_uring_sqe_set_data64(sqe, tag_ignore);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  for (;;) {
    int r = io_uring_submit_and_wait(&ring_, 1);
    if (r < 0 && r != -EINTR && r != -ETIME && r != -EAGAIN && r != -EBUSY) {
      throw std::system_error(-r, std::system_category(), "io_uring_submit_and_wait");
    }
    collect_cqes();
    if (consume_backlog()) return;
  }
}

// ---- the loop ------------------------------------------------------------------

void worker::run_ready(unsigned budget) {
  while (budget--) {
    std::coroutine_handle<> h;
    // Turn about between resumed tasks and new ones while both wait.
    if (!ready_.empty() && (unstarted_turn_ || !unstarted_.size_hint())) {
      h = ready_.pop();
      unstarted_turn_ = false;
    } else if (root_link* r = unstarted_.size_hint() ? unstarted_.pop() : nullptr) {
      adopt_root(r);
      h = r->frame;
      unstarted_turn_ = true;
    } else if (!ready_.empty()) {
      h = ready_.pop();
    } else {
      break;
    }
    // Each task resumed here may hand over to up to this many more directly.
    transfer_budget_ = 32;
    if (h) h.resume();
    if (shared_ && has_ready()) nudge_sleeper();
  }
}

void worker::dispatch(const cqe_record& r) {
  switch (r.user_data) {
    case tag_ignore:
    case tag_wake:
      return;
    case tag_eventfd:
      arm_eventfd();
      return;
    default:
      break;
  }
  auto* c = reinterpret_cast<completion*>(r.user_data);
  c->res = r.res;
  c->flags = r.flags;
  if (!(r.flags & IORING_CQE_F_MORE)) {
    c->in_flight = false;
    --in_flight_;
  }
  c->on_complete(c);
}

void worker::reap() {
  collect_cqes();
  // dispatch() may run cancel_and_wait(), which appends to backlog_ and blanks
  // entries it consumes: iterate by index.
  while (backlog_pos_ < backlog_.size()) {
    cqe_record r = backlog_[backlog_pos_++];
    dispatch(r);
  }
  backlog_.clear();
  backlog_pos_ = 0;
}

void worker::wait_in_kernel() {
  // Before sleeping, watch the inbox for as long as a wake-up would cost
  // (~20 us here): a hand-off from another worker that lands in that window
  // needs no syscall on either side. Bounded, so an idle worker still sleeps.
  // Meanwhile, look at another worker's ready queue for tasks left waiting.
  // A lone worker can only be handed something by a foreign thread: it
  // watches only while a blocking job's result is due.
  const std::int64_t spin_ns = shared_ || hand_backs_due_ ? idle_spin_ns_ : 0;
  if (shared_ && idle_spin_ns_ > 0) {  // idle_spin 0: never take another worker's tasks
    const std::int64_t now = runtime_core::now_ns();
    judge_last_steal(now);
    if (steal_unstarted(now)) return;
  }
  if (!in_flight_ && spin_ns > 0) {
    const std::int64_t until = runtime_core::now_ns() + spin_ns;
    watched_ = nullptr;
    unsigned n = 0;
    bool timing_a_stall = false;
    while (!remote_pending_.load(std::memory_order_relaxed) && !revoke_pending_.load(std::memory_order_relaxed) &&
           !rt_.stopping()) {
      cpu_relax();
      if (++n % 64 == 0) {
        const std::int64_t now = runtime_core::now_ns();
        if (shared_ && steal_unstarted(now)) {
          withdraw_work_request();
          return;
        }
        if (now >= until && !timing_a_stall) break;
        timing_a_stall = shared_ && !asked_ && look_for_waiting_work(now);
      }
    }
    if (remote_pending_.load(std::memory_order_relaxed) || revoke_pending_.load(std::memory_order_relaxed)) {
      withdraw_work_request();
      if (io_uring_sq_ready(&ring_)) submit_now();
      return;
    }
  }
  sleeping_.store(true, std::memory_order_seq_cst);
  if (remote_pending_.load(std::memory_order_seq_cst) ||
      revoke_pending_.load(std::memory_order_seq_cst) || rt_.stopping()) {
    sleeping_.store(false, std::memory_order_relaxed);
    if (io_uring_sq_ready(&ring_) || in_flight_) io_uring_submit_and_get_events(&ring_);
    return;
  }
  int r;
  if (shared_ && idle_spin_ns_ > 0 && !in_flight_ && (ring_.features & IORING_FEAT_EXT_ARG) &&
      another_worker_awake()) {
    // Another worker is busy: wake up now and then to look at its queue again.
    __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 1'000'000};
    io_uring_cqe* cqe = nullptr;
    r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  } else {
    // Nobody is busy: sleep until there is something to do. A worker that
    // then finds tasks waiting in its queue nudges us (nudge_sleeper).
    asleep_for_good_.store(true, std::memory_order_seq_cst);
    r = io_uring_submit_and_wait(&ring_, 1);
    asleep_for_good_.store(false, std::memory_order_relaxed);
  }
  sleeping_.store(false, std::memory_order_relaxed);
  withdraw_work_request();
  if (r < 0 && r != -EINTR && r != -ETIME && r != -EAGAIN && r != -EBUSY) {
    throw std::system_error(-r, std::system_category(), "io_uring_submit_and_wait");
  }
}

// Idle, and spinning: when a task has waited in another worker's ready queue
// for a while (that worker is busy running others and has taken nothing from
// its queue since), ask it for one. It answers at its next wake of a spawned
// task (place_woken). A pair that hands values back and forth keeps its
// queue moving and is left alone; so is a producer that fills a buffer for a
// few microseconds before its consumer runs: together on one core those are
// faster than apart. True while a stall is being timed (keep spinning).
bool worker::look_for_waiting_work(std::int64_t now) {
  constexpr std::int64_t waited_ns = 30'000;
  if (!watched_) {
    const unsigned n = static_cast<unsigned>(rt_.size());
    watched_ = &rt_.at((index_ + 1 + watch_turn_++ % (n - 1)) % n);
    watched_taken_ = watched_->ready_.observe().taken;
    watched_at_ = now;
    return false;
  }
  auto [taken, put] = watched_->ready_.observe();
  if (taken != watched_taken_ || put == taken) {
    watched_taken_ = taken;
    watched_at_ = now;
    return false;
  }
  if (now - watched_at_ < waited_ns) return true;
  worker* none = nullptr;
  if (watched_->thief_.compare_exchange_strong(none, this, std::memory_order_acq_rel)) asked_ = watched_;
  return false;
}

bool worker::another_worker_awake() const noexcept {
  for (std::size_t i = 0; i < rt_.size(); ++i) {
    const worker& w = rt_.at(i);
    if (&w != this && !w.sleeping_.load(std::memory_order_relaxed)) return true;
  }
  return false;
}

// Between two turns of the loop with tasks still waiting: an idle worker that
// went to sleep for good while we were idle too would never look at our
// queue. Wake one so it can (it then keeps looking now and then while we
// stay busy).
void worker::nudge_sleeper() noexcept {
  for (std::size_t i = 0; i < rt_.size(); ++i) {
    worker& w = rt_.at(i);
    if (&w != this && w.asleep_for_good_.load(std::memory_order_relaxed) &&
        w.asleep_for_good_.exchange(false, std::memory_order_acq_rel)) {
      w.wake();
      return;
    }
  }
}

// Work came from elsewhere (or we slept): a request still standing would
// pull a task over that we no longer need.
void worker::withdraw_work_request() noexcept {
  if (!asked_) return;
  worker* me = this;
  asked_->thief_.compare_exchange_strong(me, nullptr, std::memory_order_acq_rel);
  asked_ = nullptr;
}

void worker::run() {
  tls_worker = this;
  tls_worker_id = id_;
  constexpr unsigned budget = 256;
  while (!rt_.stopping()) {
    if (remote_pending_.load(std::memory_order_relaxed)) drain_remote();
    // After the inbox: a task sent here after a signal_set came or went
    // (the generation moved before the push, under the inbox lock) runs
    // with the new mask, never the old one.
    if (claimed_signals_generation.load(std::memory_order_relaxed) != signals_applied_.load(std::memory_order_relaxed)) {
      apply_claimed_signals(signals_applied_);
    }
    if (revoke_pending_.load(std::memory_order_relaxed)) process_revokes();
    run_ready(budget);
    // A cancel_and_wait() run by a task may have collected others' CQEs into
    // the backlog: dispatch those before sleeping.
    if (!has_ready() && backlog_pos_ == backlog_.size()) {
      wait_in_kernel();
    } else if (io_uring_sq_ready(&ring_) || in_flight_) {
      // Busy: one non-blocking enter per turn submits the batch and lets
      // deferred completions run.
      io_uring_submit_and_get_events(&ring_);
    }
    reap();
  }
}

void worker::destroy_everything() {
  // Frames are destroyed here, on their own thread, so their awaiters can
  // withdraw from this ring. Queued resumptions die with them. A destructor
  // run here or on another worker may spawn a task here (a stream's
  // clean-up, say): keep going until the inbox stays empty, then retire
  // under the inbox lock, so every later spawn is refused instead of lost.
  drain_remote();
  ready_.clear();
  if (recv_buffers_) shut_down_recv_buffers();
  for (;;) {
    while (root_link* r = unstarted_.pop()) r->frame.destroy();
    while (roots_.next != &roots_) {
      root_link* r = roots_.next;
      drop_root(r);
      r->frame.destroy();
    }
    while (owned_.next != &owned_) {
      owned_frame_link* l = owned_.next;
      drop_owned(l);
      l->destroy_at_shutdown(l);
    }
    // Whatever a destructor above scheduled is never run.
    ready_.clear();
    process_revokes();
    remote_lock_.lock();
    const bool empty = !spilled_ && inline_n_ == 0 && !unstarted_.size_hint();
    if (empty) retired_ = true;
    remote_lock_.unlock();
    if (empty) break;
    drain_remote();  // spawned tasks' roots join the list above
  }
  process_revokes();
}

// Before any frame goes: the multishot receives still armed on this ring
// belong to streams that outlive the runtime, or were dropped by another
// thread. End them while the ring can still deliver their last completions
// (whose bytes go to the streams), so no kernel operation refers to the
// buffers once they are freed, and no state keeps pointing into them. Only
// their own completions are dispatched here; any other CQE stays in the
// backlog for the cancel_and_wait() of its owner's destructor.
void worker::shut_down_recv_buffers() {
  recv_buffers_->cancel_all(*this);
  for (;;) {
    for (std::size_t i = backlog_pos_; i < backlog_.size(); ++i) {
      if (recv_buffers_->owns(backlog_[i].user_data)) {
        cqe_record rec = backlog_[i];
        backlog_[i].user_data = tag_ignore;
        dispatch(rec);
      }
    }
    if (!recv_buffers_->any_armed()) break;
    int r = io_uring_submit_and_wait(&ring_, 1);
    if (r < 0 && r != -EINTR && r != -ETIME && r != -EAGAIN && r != -EBUSY) break;  // the ring is broken: nothing will come
    collect_cqes();
  }
  recv_buffers_->detach_all();
}

// ---- ownership revocation -------------------------------------------------------

void worker::request_revoke(std::atomic<std::uint32_t>* owner) {
  remote_lock_.lock();
  if (retired_) {
    std::uint32_t mine = id_;
    owner->compare_exchange_strong(mine, shared_owner, std::memory_order_acq_rel);
    remote_lock_.unlock();
    return;
  }
  revokes_.push_back(owner);
  revoke_pending_.store(true, std::memory_order_seq_cst);
  remote_lock_.unlock();
  if (sleeping_.exchange(false, std::memory_order_seq_cst)) wake();
}

void worker::process_revokes() {
  remote_lock_.lock();
  for (auto* o : revokes_) {
    if (o->load(std::memory_order_relaxed) == id_) o->store(shared_owner, std::memory_order_release);
  }
  revokes_.clear();
  revoke_pending_.store(false, std::memory_order_relaxed);
  remote_lock_.unlock();
}

void worker::withdraw_revoke(std::atomic<std::uint32_t>* owner) {
  remote_lock_.lock();
  std::erase(revokes_, owner);
  if (revokes_.empty()) revoke_pending_.store(false, std::memory_order_relaxed);
  remote_lock_.unlock();
}

}  // namespace ringflow::detail
