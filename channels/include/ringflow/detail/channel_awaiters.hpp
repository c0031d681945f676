// The awaiters of channel<T> and its permit: the receive side's claims and
// hand-offs, and reserve(). Included at the end of <ringflow/channel.hpp>,
// whose declarations state their contracts; the send side is the claim
// engine's (detail/bounded_core.hpp).
#pragma once

#include <ringflow/channel.hpp>

namespace ringflow {

// ---- receivers ----------------------------------------------------------------

template <class T>
struct channel<T>::recv_base : detail::waiter_node {
  explicit recv_base(channel& c) : detail::waiter_node(lazy_t{}), ch(c) {}
  recv_base(const recv_base&) = delete;
  channel& ch;
  std::optional<T> slot;  // rendezvous hand-off

  // Tries to complete without suspending; true when done.
  template <class Sink>
  RINGFLOW_HOT bool try_complete(detail::affinity_guard& g, Sink&& sink) {
    if (ch.has_unclaimed_locked()) {
      sink(g);
      return true;
    }
    return ch.closed_;
  }
  template <class Sink>
  RINGFLOW_HOT bool ready_with(Sink&& sink) {
    guard g(ch);
    return try_complete(g, sink);
  }
  // Returns h to go on at once, else the task to transfer to.
  template <class Sink>
  std::coroutine_handle<> suspend_with(std::coroutine_handle<> h, Sink&& sink, detail::root_link* uncancellable_task = nullptr) {
    guard g(ch);
    // await_ready just found nothing; only another thread could have
    // changed that since, and only when the channel is shared.
    if (g.locked() && try_complete(g, sink)) return h;
    ch.enqueue_locked(this, ch.receivers_, h, uncancellable_task);
    return detail::tls_worker->next_ready_for_transfer();
  }
  // Resumed by a notification: the claimed value is ours.
  template <class Sink>
  RINGFLOW_HOT void on_resume(Sink&& sink) {
    if (!registered) return;  // completed without suspending
    if (this->waker_completes() && state == detail::wait_state::handed) {  // the value is in slot already
      registered = false;
      state = detail::wait_state::idle;
      return;
    }
    on_resume_slow(sink);
  }
  template <class Sink>
  RINGFLOW_COLD void on_resume_slow(Sink& sink) {
    registered = false;
    guard g(ch);
    detail::wait_state s = std::exchange(state, detail::wait_state::idle);
    if (s == detail::wait_state::handed) {
      ch.handed_.remove(this);  // from now on nobody moves our value
      return;
    }
    if (s == detail::wait_state::notified) {
      --ch.claimed_;
      sink(g);
    } else if (ch.has_unclaimed_locked()) {  // closed: drain what is left
      sink(g);
    }
  }
  RINGFLOW_HOT ~recv_base() {
    if (registered) withdraw();
  }
  // Leaves the channel for good; what was claimed for it passes on.
  RINGFLOW_COLD void withdraw() {
    if (!registered) return;
    guard g(ch);
    // An uncancellable receiver's handed value goes with its frame (only shutdown
    // destroys such a frame while its resumption is queued).
    if (state == detail::wait_state::handed && !this->waker_completes()) ch.cancel_handed_locked(g, this);
    detail::wait_state s = ch.withdraw_locked(this, ch.receivers_);
    if (s == detail::wait_state::notified) {
      --ch.claimed_;
      ch.notify_receivers_locked(g);  // the claim passes to the next receiver
    }
  }
};

template <class T>
class [[nodiscard]] channel<T>::recv_awaiter : recv_base {
 public:
  RINGFLOW_HOT bool await_ready() { return this->ready_with(sink()); }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) {
    // Rendezvous hand-offs keep their own bookkeeping (handed_): never completed by the waker.
    return this->suspend_with(h, sink(), this->ch.rendezvous() ? nullptr : detail::uncancellable_task_of(h));
  }
  RINGFLOW_HOT std::optional<T> await_resume() {
    this->on_resume(sink());
    // Field by field: copying the optional whole reads 16 bytes just written
    // as 8 + 1, which stalls store forwarding on the hot path.
    if (!this->slot) return std::nullopt;
    return std::optional<T>(std::move(*this->slot));
  }

 private:
  friend class channel;
  template <class> friend class detail::select_recv_state;
  explicit recv_awaiter(channel& c) : recv_base(c) {}
  auto sink() {
    return [this](detail::affinity_guard& g) RINGFLOW_LAMBDA_HOT { this->slot.emplace(this->ch.take_locked(g)); };
  }
};

template <class T>
class [[nodiscard]] channel<T>::recv_many_awaiter : recv_base {
 public:
  bool await_ready() { return this->ready_with(sink()); }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) { return this->suspend_with(h, sink()); }
  std::vector<T> await_resume() {
    this->on_resume([this](detail::affinity_guard& g) { drain(g); });
    if (this->slot) {  // rendezvous hand-off
      out_.push_back(std::move(*this->slot));
      this->slot.reset();
    }
    return std::move(out_);
  }

 private:
  friend class channel;
  recv_many_awaiter(channel& c, std::size_t max) : recv_base(c), max_(max) {}
  void drain(detail::affinity_guard& g) {
    while (out_.size() < max_ && this->ch.has_unclaimed_locked()) out_.push_back(this->ch.take_locked(g));
  }
  auto sink() {
    return [this](detail::affinity_guard& g) {
      out_.reserve(std::min<std::size_t>(max_, 64));
      drain(g);
    };
  }
  std::size_t max_;
  std::vector<T> out_;
};

// A reserved slot; send() fills it without suspending. Dropping an unused
// permit frees the slot for the next sender.
template <class T>
class channel<T>::permit {
 public:
  permit(permit&& o) noexcept : ch_(std::exchange(o.ch_, nullptr)) {}
  permit& operator=(permit&& o) noexcept {
    if (this != &o) {
      release();
      ch_ = std::exchange(o.ch_, nullptr);
    }
    return *this;
  }
  ~permit() { release(); }

  // sent; or, if the channel was closed after the slot was reserved, the
  // value is dropped (counted, handed to on_drop) and closed is returned.
  send_status send(T value) {
    if (!ch_) throw std::logic_error("ringflow::channel::permit: already used");
    channel* c = std::exchange(ch_, nullptr);
    std::optional<T> discarded;
    send_status s = send_status::sent;
    {
      guard g(*c);
      --c->reserved_;
      if (c->closed_) {
        ++c->stats_.dropped;
        discarded.emplace(std::move(value));
        s = send_status::closed;
      } else {
        c->push_locked(g, std::move(value));
      }
    }
    c->report_drop(discarded);
    return s;
  }

 private:
  friend class channel;
  explicit permit(channel* c) noexcept : ch_(c) {}
  void release() {
    if (!ch_) return;
    channel* c = std::exchange(ch_, nullptr);
    guard g(*c);
    c->return_reserved_locked(g);
  }
  channel* ch_;
};

template <class T>
class [[nodiscard]] channel<T>::reserve_awaiter : detail::waiter_node {
 public:
  bool await_ready() {
    guard g(ch_);
    return try_reserve();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    guard g(ch_);
    if (try_reserve()) return false;
    ch_.enqueue_locked(this, ch_.senders_, h);
    ++ch_.stats_.blocked_sends;
    return true;
  }
  std::optional<permit> await_resume() {
    registered = false;
    switch (std::exchange(state, detail::wait_state::idle)) {
      case detail::wait_state::notified:
        got_ = true;  // the slot was reserved for us by the waker
        break;
      case detail::wait_state::closed:
        return std::nullopt;
      default:
        break;
    }
    if (!got_) return std::nullopt;
    got_ = false;
    return permit(&ch_);
  }
  ~reserve_awaiter() {
    if (got_) {  // reserved but never resumed to take it
      guard g(ch_);
      ch_.return_reserved_locked(g);
      return;
    }
    if (!registered) return;
    guard g(ch_);
    if (ch_.withdraw_locked(this, ch_.senders_) == detail::wait_state::notified) ch_.return_reserved_locked(g);
  }

 private:
  friend class channel;
  explicit reserve_awaiter(channel& c) : ch_(c) {}
  reserve_awaiter(const reserve_awaiter&) = delete;
  bool try_reserve() {
    if (ch_.closed_) return true;
    if (!ch_.senders_waiting_locked() && ch_.buf_.size() + ch_.reserved_ < ch_.buf_.capacity()) {
      ++ch_.reserved_;
      got_ = true;
      return true;
    }
    return false;
  }
  channel& ch_;
  bool got_ = false;
};

}  // namespace ringflow
