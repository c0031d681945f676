// The machinery of select() (<ringflow/select.hpp>, whose declarations state
// the contract): one state per case, the lock set that locks every channel of
// a select in address order, and the awaiter that polls, queues and
// withdraws the cases.
#pragma once

#include <array>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <optional>
#include <tuple>
#include <utility>
#include <variant>

#include <ringflow/select.hpp>

namespace ringflow {

namespace detail {

template <class T>
struct recv_case {
  channel<T>* ch;
};
template <class T>
struct send_case {
  channel<T>* ch;
  T value;
};
struct after_case {
  std::chrono::nanoseconds d;
};

// What select needs to lock one case's channel (none for after()).
struct select_lockable {
  const void* address = nullptr;
  affinity* owner = nullptr;
  spinlock* lock = nullptr;
};

template <class T>
class select_recv_state {
 public:
  using result_type = std::optional<T>;
  explicit select_recv_state(recv_case<T> c) : ch_(*c.ch), node_(*c.ch) {}

  select_lockable lockable() const noexcept { return {&ch_, &ch_.affinity_, &ch_.lock_}; }
  bool poll(affinity_guard* g) { return node_.try_complete(*g, node_.sink()); }
  void enqueue(select_core& core, unsigned index, std::coroutine_handle<> h) {
    ch_.enqueue_locked(&node_, ch_.receivers_, h, nullptr, &core, index);
  }
  void after_unlock() noexcept {}
  void arm(select_core&, unsigned, std::coroutine_handle<>) noexcept {}
  result_type finish() { return node_.await_resume(); }
  void withdraw() { node_.withdraw(); }

 private:
  channel<T>& ch_;
  typename channel<T>::recv_awaiter node_;
};

template <class T>
class select_send_state {
 public:
  using result_type = send_status;
  explicit select_send_state(send_case<T> c) : ch_(*c.ch), node_(*c.ch, std::move(c.value)) {}

  select_lockable lockable() const noexcept { return {&ch_, &ch_.affinity_, &ch_.lock_}; }
  bool poll(affinity_guard* g) {
    node_.result_ = ch_.offer_locked(*g, node_.value_, discarded_);
    return node_.result_ != send_status::full;
  }
  void enqueue(select_core& core, unsigned index, std::coroutine_handle<> h) {
    ch_.enqueue_locked(&node_, ch_.senders_, h, nullptr, &core, index);
    ++ch_.stats_.blocked_sends;
  }
  // on_drop runs with no channel locked.
  void after_unlock() { ch_.report_drop(discarded_); }
  void arm(select_core&, unsigned, std::coroutine_handle<>) noexcept {}
  result_type finish() { return node_.await_resume(); }
  void withdraw() { node_.withdraw(); }

 private:
  channel<T>& ch_;
  typename channel<T>::send_awaiter node_;
  std::optional<T> discarded_;
};

class select_after_state {
 public:
  using result_type = select_timeout;
  explicit select_after_state(after_case c) noexcept : d_(c.d) {}

  select_lockable lockable() const noexcept { return {}; }
  bool poll(affinity_guard*) const noexcept { return d_.count() <= 0; }
  void enqueue(select_core&, unsigned, std::coroutine_handle<>) noexcept {}
  void after_unlock() noexcept {}
  // Armed once every channel case is queued and unlocked.
  void arm(select_core& core, unsigned index, std::coroutine_handle<> h) {
    core_ = &core;
    index_ = index;
    op_.c.waiter = h;
    op_.c.context = this;
    op_.c.on_complete = &fired;
    op_.start(d_);
  }
  result_type finish() noexcept { return {}; }
  void withdraw() { op_.cancel(); }

 private:
  // Runs on the select's own worker; resumes it only if no case won before.
  static void fired(completion* c) {
    auto* self = static_cast<select_after_state*>(c->context);
    if (c->res != -ECANCELED && self->core_->try_win(self->index_)) c->waiter.resume();
  }
  std::chrono::nanoseconds d_;
  select_core* core_ = nullptr;
  unsigned index_ = 0;
  timer_op op_;
};

template <class C>
struct select_state_of;
template <class T>
struct select_state_of<recv_case<T>> {
  using type = select_recv_state<T>;
};
template <class T>
struct select_state_of<send_case<T>> {
  using type = select_send_state<T>;
};
template <>
struct select_state_of<after_case> {
  using type = select_after_state;
};

inline std::uint32_t select_random() noexcept {
  thread_local std::uint32_t x = 0x9E3779B9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

template <class... Cases>
class [[nodiscard]] select_awaiter {
  static constexpr std::size_t n = sizeof...(Cases);
  static_assert(n >= 1, "ringflow::select needs at least one case");

 public:
  using result_type = std::variant<typename select_state_of<Cases>::type::result_type...>;

  explicit select_awaiter(Cases&&... cases) : states_(std::move(cases)...) {}
  select_awaiter(const select_awaiter&) = delete;
  select_awaiter& operator=(const select_awaiter&) = delete;
  ~select_awaiter() {
    for_each([](auto& s, std::size_t) { s.withdraw(); });
  }

  bool await_ready() { return poll_all(); }

  bool await_suspend(std::coroutine_handle<> h) {
    {
      lock_set locks(*this);
      if (poll_locked(locks)) {
        locks.release();
        report_drops();
        return false;
      }
      for_each([&](auto& s, std::size_t i) { s.enqueue(core_, static_cast<unsigned>(i), h); });
    }
    // A waker may already have won a channel case and queued our resumption:
    // it cannot run before this returns, as it is queued on this worker.
    if (!core_.decided()) for_each([&](auto& s, std::size_t i) { s.arm(core_, static_cast<unsigned>(i), h); });
    return true;
  }

  result_type await_resume() {
    std::size_t winner = done_ >= 0 ? static_cast<std::size_t>(done_)
                                    : static_cast<std::size_t>(core_.winner.load(std::memory_order_acquire));
    std::optional<result_type> out;
    visit_at(winner, [&](auto& s, auto index) { out.emplace(std::in_place_index<decltype(index)::value>, s.finish()); });
    for_each([&](auto& s, std::size_t i) {
      if (i != winner) s.withdraw();
    });
    return std::move(*out);
  }

  // try_select: one poll, no suspension.
  std::optional<result_type> poll_once() {
    if (!poll_all()) return std::nullopt;
    return await_resume();
  }

 private:
  using states = std::tuple<typename select_state_of<Cases>::type...>;

  template <class F>
  void for_each(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f(std::get<I>(states_), I), ...);
    }(std::make_index_sequence<n>{});
  }
  template <class F>
  void visit_at(std::size_t i, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((I == i ? (f(std::get<I>(states_), std::integral_constant<std::size_t, I>{}), 0) : 0), ...);
    }(std::make_index_sequence<n>{});
  }

  // Every distinct channel of the select, locked in address order.
  class lock_set {
   public:
    explicit lock_set(select_awaiter& a) {
      a.for_each([&](auto& s, std::size_t i) {
        select_lockable l = s.lockable();
        if (l.address) items_[count_++] = {l, i};
      });
      // Insertion sort: a handful of cases (and std::sort trips g++ 12's
      // array-bounds warning for one).
      for (std::size_t k = 1; k < count_; ++k) {
        for (std::size_t j = k; j > 0 && std::less<const void*>()(items_[j].l.address, items_[j - 1].l.address); --j) {
          std::swap(items_[j], items_[j - 1]);
        }
      }
      // Switch to locked mode first, while holding nothing: handing a channel
      // over may wait for its owner worker.
      for (std::size_t k = 0; k < count_; ++k) items_[k].l.owner->make_shared();
      for (std::size_t k = 0; k < count_; ++k) {
        if (k > 0 && items_[k].l.address == items_[k - 1].l.address) {
          items_[k].guard_index = items_[k - 1].guard_index;
          continue;
        }
        items_[k].guard_index = guards_used_;
        guards_[guards_used_++].emplace(*items_[k].l.owner, *items_[k].l.lock);
      }
      for (std::size_t k = 0; k < count_; ++k) guard_of_[items_[k].case_index] = items_[k].guard_index;
    }
    lock_set(const lock_set&) = delete;
    ~lock_set() { release(); }
    void release() {
      while (guards_used_ > 0) guards_[--guards_used_].reset();
    }
    // The guard of case i's channel; null for cases without a channel.
    affinity_guard* guard_for(std::size_t i) {
      std::size_t g = guard_of_[i];
      return g == no_guard ? nullptr : &*guards_[g];
    }

   private:
    static constexpr std::size_t no_guard = static_cast<std::size_t>(-1);
    struct item {
      select_lockable l;
      std::size_t case_index = 0;
      std::size_t guard_index = 0;
    };
    std::array<item, n> items_{};
    std::size_t count_ = 0;
    std::array<std::optional<affinity_guard>, n> guards_;
    std::size_t guards_used_ = 0;
    std::array<std::size_t, n> guard_of_ = [] {
      std::array<std::size_t, n> a{};
      a.fill(no_guard);
      return a;
    }();
  };

  bool poll_all() {
    bool done;
    {
      lock_set locks(*this);
      done = poll_locked(locks);
    }
    if (done) report_drops();
    return done;
  }

  // From a random case on, the first that is ready completes.
  bool poll_locked(lock_set& locks) {
    std::size_t start = select_random() % n;
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = (start + k) % n;
      bool ready = false;
      visit_at(i, [&](auto& s, auto) { ready = s.poll(locks.guard_for(i)); });
      if (ready) {
        done_ = static_cast<int>(i);
        core_.winner.store(static_cast<int>(i), std::memory_order_relaxed);
        return true;
      }
    }
    return false;
  }

  void report_drops() {
    for_each([](auto& s, std::size_t) { s.after_unlock(); });
  }

  states states_;
  select_core core_;
  int done_ = -1;  // the case that completed without suspending
};

}  // namespace detail

template <class T>
detail::recv_case<T> recv_from(channel<T>& ch) noexcept {
  return {&ch};
}

template <class T, class U>
detail::send_case<T> send_to(channel<T>& ch, U&& value) {
  return {&ch, T(std::forward<U>(value))};
}

inline detail::after_case after(std::chrono::nanoseconds d) noexcept { return {d}; }

template <class... Cases>
detail::select_awaiter<Cases...> select(Cases... cases) {
  return detail::select_awaiter<Cases...>(std::move(cases)...);
}

template <class... Cases>
std::optional<typename detail::select_awaiter<Cases...>::result_type> try_select(Cases... cases) {
  detail::select_awaiter<Cases...> a(std::move(cases)...);
  return a.poll_once();
}

}  // namespace ringflow
