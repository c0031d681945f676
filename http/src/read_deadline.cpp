#include "read_deadline.hpp"

namespace ringflow::http::detail {

namespace {

using clock = std::chrono::steady_clock;

void release(deadline_block* b) noexcept {
  if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete b;
}

void arm(deadline_block* b, rt_worker* w, clock::time_point at) {
  b->ts = ringflow::detail::to_timespec(read_deadline_until(at));
  io_uring_sqe* sqe = w->get_sqe();
  io_uring_prep_timeout(sqe, &b->ts, 0, 0);
  w->track(b->c, sqe);
  b->expires = at;
}

// The timer's completion, on the worker it was armed on.
void on_fire(ringflow::detail::completion* c) {
  auto* b = static_cast<deadline_block*>(c->context);
  deadline_wait* w = b->orphaned.load(std::memory_order_acquire) ? nullptr : b->wait;
  if (w != nullptr && clock::now() < w->deadline) {
    arm(b, b->armed_on.load(std::memory_order_relaxed), w->deadline);  // fired early: on to this read's deadline
    return;
  }
  b->wait = nullptr;
  b->armed_on.store(nullptr, std::memory_order_release);
  release(b);  // the timer's reference; the connection's keeps b while w runs
  if (w != nullptr) w->expire(w);  // may end the connection
}

}  // namespace

read_deadline::read_deadline() : b_(new deadline_block) {
  b_->c.on_complete = &on_fire;
  b_->c.context = b_;
}

read_deadline::~read_deadline() {
  b_->orphaned.store(true, std::memory_order_seq_cst);
  rt_worker* on = b_->armed_on.load(std::memory_order_acquire);
  if (on != nullptr && on == ringflow::detail::tls_worker) {
    // Here, so its completion cannot run meanwhile: withdraw it now. Its
    // completion is consumed there, never dispatched: drop its reference.
    on->cancel_and_wait(b_->c);
    b_->armed_on.store(nullptr, std::memory_order_relaxed);
    release(b_);
  }
  // Armed elsewhere: its completion sees orphaned and lets go there.
  release(b_);
}

bool read_deadline::enter(deadline_block* b, deadline_wait* w) {
  rt_worker* here = ringflow::detail::tls_worker;
  rt_worker* on = b->armed_on.load(std::memory_order_acquire);
  if (on == nullptr) {
    b->refs.fetch_add(1, std::memory_order_relaxed);
    b->armed_on.store(here, std::memory_order_relaxed);
    arm(b, here, w->deadline);
  } else if (on != here) {
    return false;
  } else if (w->deadline < b->expires) {
    // Sooner than it would fire: moved in the kernel, no waiting here. If
    // it fired already, the update finds nothing and its completion (on
    // its way) re-arms for this deadline.
    b->ts_update = ringflow::detail::to_timespec(read_deadline_until(w->deadline));
    io_uring_sqe* sqe = here->get_sqe();
    io_uring_prep_timeout_update(sqe, &b->ts_update, reinterpret_cast<std::uint64_t>(&b->c), 0);
    io_uring_sqe_set_data64(sqe, ringflow::detail::tag_ignore);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    b->expires = w->deadline;
  }
  b->wait = w;
  return true;
}

}  // namespace ringflow::http::detail
