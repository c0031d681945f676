// task_group's machinery: the shared state (refcounted by the group and by
// each of its tasks, so a task finishing after the group is gone touches
// only it), the member records cancel_all walks, and the two awaiters.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <ringflow/detail/block_cache.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/waiter_list.hpp>
#include <ringflow/detail/worker.hpp>
#include <ringflow/join_handle.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/task.hpp>
#include <ringflow/task_group.hpp>  // included alone: the declarations first

namespace ringflow::detail {

template <class T>
struct group_outcome {
  std::optional<T> value;
  std::exception_ptr error;
};
template <>
struct group_outcome<void> {
  std::exception_ptr error;
};

// One task of a group. Freed by whichever comes second: the spawner that
// stores the task's handle in it, or the task's end.
struct group_member : block_cache::cached {
  group_member* prev = nullptr;
  group_member* next = nullptr;
  join_handle<void> handle;
  bool has_handle = false;
  bool done = false;
  bool cancel_pending = false;  // cancel_all came before the handle
};

template <class T>
struct group_next_node : waiter_node {
  std::optional<group_outcome<T>> handed;  // empty when woken because the group is empty
};

template <class T>
struct group_state {
  explicit group_state(std::size_t max) : max_running(max) { members.prev = members.next = &members; }

  mutable spinlock lock;
  std::atomic<std::size_t> refs{1};  // the group, and each task
  const std::size_t max_running;
  std::size_t running = 0;  // places taken: tasks started or being started, not finished
  group_member members;     // sentinel of a circular list
  std::deque<group_outcome<T>> finished;  // not yet reported by next()
  waiter_list spawners;  // waiting for a place
  waiter_list nexters;   // waiting for a result

  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  static void wake_locked(waiter_node* n) {
    n->state = wait_state::notified;
    n->owner->schedule(n->handle);
  }

  // A place came free: the first waiting spawner takes it; with nothing
  // running, nothing reserved and nothing to report, waiting next()s learn
  // the group is empty.
  void place_freed_locked() {
    if (!spawners.empty()) {
      ++running;
      wake_locked(spawners.pop_front());
      return;
    }
    if (running == 0 && finished.empty()) {
      while (!nexters.empty()) wake_locked(nexters.pop_front());
    }
  }

  // A result to report: to the first waiting next(), else kept in order.
  void report_locked(group_outcome<T>&& o, bool front = false) {
    if (!nexters.empty()) {
      auto* n = static_cast<group_next_node<T>*>(nexters.pop_front());
      n->handed.emplace(std::move(o));
      wake_locked(n);
    } else if (front) {
      finished.push_front(std::move(o));
    } else {
      finished.push_back(std::move(o));
    }
  }

  void link_locked(group_member* m) noexcept {
    m->prev = members.prev;
    m->next = &members;
    members.prev->next = m;
    members.prev = m;
  }
  static void unlink_locked(group_member* m) noexcept {
    m->prev->next = m->next;
    m->next->prev = m->prev;
    m->prev = m->next = nullptr;
  }

  void cancel_all() {
    lock.lock();
    for (group_member* m = members.next; m != &members; m = m->next) {
      if (m->has_handle) {
        m->handle.cancel();
      } else {
        m->cancel_pending = true;
      }
    }
    lock.unlock();
  }
};

// A task's membership and the task itself, the one parameter of the frame
// that runs it: it ends with that frame, whether the task finished, was
// cancelled, or never ran. The task's frame (its parameters included) is
// destroyed first, then the group hears of it: once next() has reported a
// task, or said the group is empty, nothing of that task runs any more.
template <class T>
struct group_ticket {
  group_state<T>* s;
  group_member* m;
  task<T> t;
  std::optional<group_outcome<T>> outcome;  // unset: cancelled (not reported)

  group_ticket(group_state<T>* st, group_member* mem, task<T> tk) noexcept : s(st), m(mem), t(std::move(tk)) {
    s->refs.fetch_add(1, std::memory_order_relaxed);
  }
  group_ticket(group_ticket&& o) noexcept
      : s(std::exchange(o.s, nullptr)), m(o.m), t(std::move(o.t)), outcome(std::move(o.outcome)) {}
  group_ticket(const group_ticket&) = delete;
  ~group_ticket() {
    t = task<T>{};
    if (!s) return;
    s->lock.lock();
    group_state<T>::unlink_locked(m);
    m->done = true;
    const bool free_member = m->has_handle;
    --s->running;
    if (outcome) s->report_locked(std::move(*outcome));
    s->place_freed_locked();
    s->lock.unlock();
    if (free_member) delete m;  // drops our own (detached) handle
    s->release();
  }
};

template <class T>
task<void> run_group_member(group_ticket<T> ticket) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(ticket.t);
      ticket.outcome.emplace();
    } else {
      ticket.outcome.emplace(group_outcome<T>{co_await std::move(ticket.t), nullptr});
    }
  } catch (...) {
    group_outcome<T> o{};
    o.error = std::current_exception();
    ticket.outcome.emplace(std::move(o));
  }
}

template <class T>
class group_spawn_awaiter {
 public:
  group_spawn_awaiter(group_state<T>* s, task<T> t) noexcept : s_(s), t_(std::move(t)) {}
  group_spawn_awaiter(group_spawn_awaiter&& o) noexcept : s_(o.s_), t_(std::move(o.t_)), has_place_(o.has_place_) {
    o.has_place_ = false;
  }
  group_spawn_awaiter(const group_spawn_awaiter&) = delete;

  bool await_ready() {
    if (!tls_worker) throw std::logic_error("ringflow::task_group::spawn awaited outside a runtime");
    if (!t_.valid()) throw std::invalid_argument("ringflow::task_group::spawn: an empty task");
    s_->lock.lock();
    if (s_->running < s_->max_running && s_->spawners.empty()) {
      ++s_->running;
      has_place_ = true;
    }
    s_->lock.unlock();
    return has_place_;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    s_->lock.lock();
    if (s_->running < s_->max_running && s_->spawners.empty()) {  // a place came free meanwhile
      ++s_->running;
      has_place_ = true;
      s_->lock.unlock();
      return false;
    }
    node_.handle = h;
    node_.owner = tls_worker;
    node_.state = wait_state::waiting;
    node_.registered = true;
    s_->spawners.push_back(&node_);
    s_->lock.unlock();
    return true;
  }
  void await_resume() {
    node_.registered = false;  // woken: the waker reserved our place
    has_place_ = true;
    start();
  }
  ~group_spawn_awaiter() {
    if (node_.registered) {  // destroyed while suspended
      s_->lock.lock();
      if (node_.state == wait_state::waiting) {
        s_->spawners.remove(&node_);
      } else {  // woken with a place: pass it on
        node_.owner->unschedule(node_.handle);
        --s_->running;
        s_->place_freed_locked();
      }
      s_->lock.unlock();
    } else if (has_place_) {  // never started (start threw before taking the place over)
      s_->lock.lock();
      --s_->running;
      s_->place_freed_locked();
      s_->lock.unlock();
    }
  }

 private:
  void start() {
    auto* m = new group_member;
    s_->lock.lock();
    s_->link_locked(m);
    s_->lock.unlock();
    has_place_ = false;  // the ticket gives the place back from here on
    join_handle<void> h;
    try {
      h = ringflow::spawn(run_group_member(group_ticket<T>{s_, m, std::move(t_)}));
    } catch (...) {
      delete m;  // the ticket went with the unstarted frame: m is unlinked, the place given back
      throw;
    }
    s_->lock.lock();
    if (m->done) {  // finished already (or never started): its ticket left m to us
      s_->lock.unlock();
      delete m;
      return;
    }
    m->handle = std::move(h);
    m->has_handle = true;
    if (m->cancel_pending) m->handle.cancel();
    s_->lock.unlock();
  }

  group_state<T>* s_;
  task<T> t_;
  waiter_node node_{};
  bool has_place_ = false;
};

template <class T>
class group_next_awaiter {
  using result_type = std::conditional_t<std::is_void_v<T>, bool, std::optional<T>>;

 public:
  explicit group_next_awaiter(group_state<T>* s) noexcept : s_(s) {}
  group_next_awaiter(group_next_awaiter&& o) noexcept : s_(o.s_), ready_(std::move(o.ready_)), empty_(o.empty_) {}
  group_next_awaiter(const group_next_awaiter&) = delete;

  bool await_ready() {
    if (!tls_worker) throw std::logic_error("ringflow::task_group::next awaited outside a runtime");
    s_->lock.lock();
    const bool now = take_locked();
    s_->lock.unlock();
    return now;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    s_->lock.lock();
    if (take_locked()) {
      s_->lock.unlock();
      return false;
    }
    node_.handle = h;
    node_.owner = tls_worker;
    node_.state = wait_state::waiting;
    node_.registered = true;
    s_->nexters.push_back(&node_);
    s_->lock.unlock();
    return true;
  }
  result_type await_resume() {
    if (node_.registered) {
      node_.registered = false;
      if (node_.handed) {
        ready_ = std::move(node_.handed);
      } else {
        empty_ = true;
      }
    }
    if (empty_) {
      if constexpr (std::is_void_v<T>) {
        return false;
      } else {
        return std::nullopt;
      }
    }
    group_outcome<T> o = std::move(*ready_);
    ready_.reset();
    if (o.error) std::rethrow_exception(o.error);
    if constexpr (std::is_void_v<T>) {
      return true;
    } else {
      return std::move(o.value);
    }
  }
  ~group_next_awaiter() {
    if (!node_.registered) {
      if (ready_) {  // taken at await_ready but never resumed into (not awaited to the end)
        s_->lock.lock();
        s_->report_locked(std::move(*ready_), true);
        s_->lock.unlock();
      }
      return;
    }
    s_->lock.lock();
    if (node_.state == wait_state::waiting) {
      s_->nexters.remove(&node_);
    } else {
      node_.owner->unschedule(node_.handle);
      if (node_.handed) s_->report_locked(std::move(*node_.handed), true);
    }
    s_->lock.unlock();
  }

 private:
  bool take_locked() {
    if (!s_->finished.empty()) {
      ready_.emplace(std::move(s_->finished.front()));
      s_->finished.pop_front();
      return true;
    }
    if (s_->running == 0) {
      empty_ = true;
      return true;
    }
    return false;
  }

  group_state<T>* s_;
  std::optional<group_outcome<T>> ready_;
  bool empty_ = false;
  group_next_node<T> node_{};
};

}  // namespace ringflow::detail

namespace ringflow {

template <class T>
task_group<T>::task_group(std::size_t max_running) {
  if (max_running == 0) throw std::invalid_argument("ringflow::task_group: max_running must be at least 1");
  s_ = new detail::group_state<T>(max_running);
}

template <class T>
task_group<T>::~task_group() {
  s_->cancel_all();
  s_->release();
}

template <class T>
detail::group_spawn_awaiter<T> task_group<T>::spawn(task<T> t) {
  return detail::group_spawn_awaiter<T>(s_, std::move(t));
}

template <class T>
detail::group_next_awaiter<T> task_group<T>::next() {
  return detail::group_next_awaiter<T>(s_);
}

template <class T>
std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> task_group<T>::try_next() {
  s_->lock.lock();
  if (s_->finished.empty()) {
    s_->lock.unlock();
    if constexpr (std::is_void_v<T>) {
      return false;
    } else {
      return std::nullopt;
    }
  }
  detail::group_outcome<T> o = std::move(s_->finished.front());
  s_->finished.pop_front();  // (no next() waits while reports are kept)
  s_->lock.unlock();
  if (o.error) std::rethrow_exception(o.error);
  if constexpr (std::is_void_v<T>) {
    return true;
  } else {
    return std::move(o.value);
  }
}

template <class T>
void task_group<T>::cancel_all() {
  s_->cancel_all();
}

template <class T>
std::size_t task_group<T>::running() const {
  s_->lock.lock();
  const std::size_t n = s_->running;
  s_->lock.unlock();
  return n;
}

}  // namespace ringflow
