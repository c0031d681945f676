// watch<T>'s machinery: the shared state (refcounted by the watch and each
// receiver) and the changed() awaiter. A woken changed() holds no claim:
// set() wakes every waiter and the value stays in the state, so a waiter
// cancelled after its wake has nothing to pass on.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/task.hpp>
#include <ringflow/watch.hpp>  // included alone: the declarations first

namespace ringflow::detail {

template <class T>
struct watch_state {
  struct guard : affinity_guard {
    explicit guard(const watch_state& s) : affinity_guard(s.owner, s.lock) {}
  };

  explicit watch_state(T initial) : value(std::move(initial)) {}

  void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Every waiting changed() looks again.
  void wake_all_locked(affinity_guard& g) {
    while (!waiting.empty()) {
      waiter_node* n = waiting.pop_front();
      n->state = wait_state::notified;
      g.schedule(n->owner, n->handle);
    }
  }

  std::atomic<std::size_t> refs{1};  // the watch and each receiver
  mutable affinity owner;  // who may skip the lock (detail/affinity.hpp)
  mutable spinlock lock;
  T value;
  std::uint64_t version = 0;
  bool closed = false;
  waiter_list waiting;
};

template <class T>
class [[nodiscard]] watch_changed_awaiter : waiter_node {
 public:
  bool await_ready() {
    typename watch_state<T>::guard g(s_);
    return try_complete_locked();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    if (!tls_worker) throw std::logic_error("ringflow::watch::receiver::changed awaited outside a runtime");
    typename watch_state<T>::guard g(s_);
    if (try_complete_locked()) return false;  // set or closed since await_ready
    handle = h;
    owner = tls_worker;
    state = wait_state::waiting;
    registered = true;
    s_.waiting.push_back(this);
    return true;
  }
  std::optional<T> await_resume() {
    if (registered) {  // woken by set() or close(): look again
      registered = false;
      typename watch_state<T>::guard g(s_);
      state = wait_state::idle;
      try_complete_locked();
    }
    return std::move(out_);
  }
  ~watch_changed_awaiter() {
    if (!registered) return;
    typename watch_state<T>::guard g(s_);
    if (state == wait_state::waiting) {
      s_.waiting.remove(this);
    } else {
      owner->unschedule(handle);  // woken, resumption queued: nothing was taken
    }
    registered = false;
  }
  watch_changed_awaiter(const watch_changed_awaiter&) = delete;
  watch_changed_awaiter& operator=(const watch_changed_awaiter&) = delete;

 private:
  friend class watch<T>::receiver;
  explicit watch_changed_awaiter(typename watch<T>::receiver& r) : waiter_node(), r_(r), s_(*r.s_) {}

  // True when done: out_ holds the newest value, or nothing once closed.
  bool try_complete_locked() {
    if (s_.version != r_.seen_) {
      out_.emplace(s_.value);
      r_.seen_ = s_.version;
      return true;
    }
    return s_.closed;
  }

  typename watch<T>::receiver& r_;
  watch_state<T>& s_;
  std::optional<T> out_;
};

}  // namespace ringflow::detail

namespace ringflow {

template <class T>
watch<T>::watch(T initial) : s_(new detail::watch_state<T>(std::move(initial))) {}

template <class T>
watch<T>::~watch() {
  close();
  s_->release();
}

template <class T>
void watch<T>::set(T value) {
  {
    typename detail::watch_state<T>::guard g(*s_);
    if (s_->closed) return;
    using std::swap;
    swap(s_->value, value);  // the replaced value is destroyed below, unlocked
    ++s_->version;
    s_->wake_all_locked(g);
  }
}

template <class T>
T watch<T>::get() const {
  typename detail::watch_state<T>::guard g(*s_);
  return s_->value;
}

template <class T>
std::uint64_t watch<T>::version() const {
  typename detail::watch_state<T>::guard g(*s_);
  return s_->version;
}

template <class T>
typename watch<T>::receiver watch<T>::subscribe() {
  std::uint64_t v;
  {
    typename detail::watch_state<T>::guard g(*s_);
    v = s_->version;
  }
  s_->retain();
  return receiver(s_, v);
}

template <class T>
void watch<T>::close() {
  typename detail::watch_state<T>::guard g(*s_);
  if (s_->closed) return;
  s_->closed = true;
  s_->wake_all_locked(g);
}

template <class T>
bool watch<T>::is_closed() const {
  typename detail::watch_state<T>::guard g(*s_);
  return s_->closed;
}

// ---- receiver ---------------------------------------------------------------------

template <class T>
watch<T>::receiver::receiver(const receiver& o) noexcept : s_(o.s_), seen_(0) {
  if (!s_) return;
  s_->retain();
  typename detail::watch_state<T>::guard g(*s_);
  seen_ = o.seen_;
}

template <class T>
watch<T>::receiver::receiver(receiver&& o) noexcept : s_(std::exchange(o.s_, nullptr)), seen_(o.seen_) {}

template <class T>
typename watch<T>::receiver& watch<T>::receiver::operator=(const receiver& o) noexcept {
  if (this != &o) *this = receiver(o);
  return *this;
}

template <class T>
typename watch<T>::receiver& watch<T>::receiver::operator=(receiver&& o) noexcept {
  if (this != &o) {
    if (s_) s_->release();
    s_ = std::exchange(o.s_, nullptr);
    seen_ = o.seen_;
  }
  return *this;
}

template <class T>
watch<T>::receiver::~receiver() {
  if (s_) s_->release();
}

template <class T>
detail::watch_state<T>& watch<T>::receiver::state() const {
  if (!s_) throw std::logic_error("ringflow::watch::receiver: used after being moved from");
  return *s_;
}

template <class T>
typename watch<T>::changed_awaiter watch<T>::receiver::changed() {
  state();
  return changed_awaiter(*this);
}

template <class T>
bool watch<T>::receiver::has_changed() const {
  detail::watch_state<T>& s = state();
  typename detail::watch_state<T>::guard g(s);
  return s.version != seen_;
}

template <class T>
T watch<T>::receiver::get() const {
  detail::watch_state<T>& s = state();
  typename detail::watch_state<T>::guard g(s);
  return s.value;
}

}  // namespace ringflow
