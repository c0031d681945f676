#include <ringflow/detail/blocking_pool.hpp>

#include <pthread.h>
#include <signal.h>

#include <stdexcept>
#include <system_error>

#include <ringflow/detail/signal_mask.hpp>

namespace ringflow::detail {

blocking_pool::blocking_pool(unsigned max_threads) noexcept : max_threads_(max_threads) {
  queue_.prev = queue_.next = &queue_;
}

blocking_pool::~blocking_pool() { shut_down(); }

void blocking_pool::submit(blocking_job& j) {
  std::unique_lock g(m_);
  // Only a destructor run by the runtime's own shutdown could get here.
  if (stopping_) throw std::logic_error("ringflow::spawn_blocking: the runtime has shut down");
  j.prev = queue_.prev;
  j.next = &queue_;
  queue_.prev->next = &j;
  queue_.prev = &j;
  j.queued = true;
  ++queued_;
  if (idle_ >= queued_) {
    g.unlock();
    cv_.notify_one();
    return;
  }
  if (threads_.size() >= max_threads_) return;  // FIFO: the next free thread takes it
  try {
    // The new thread inherits this mask: it blocks every asynchronous
    // signal from its first instruction on.
    sigset_t all = async_signals(), old;
    pthread_sigmask(SIG_BLOCK, &all, &old);
    struct restore {
      sigset_t* old;
      ~restore() { pthread_sigmask(SIG_SETMASK, old, nullptr); }
    } r{&old};
    threads_.emplace_back([this] { serve(); });
  } catch (const std::system_error&) {
    if (!threads_.empty()) return;  // a running thread will take it
    j.prev->next = j.next;
    j.next->prev = j.prev;
    j.queued = false;
    --queued_;
    throw;
  }
}

bool blocking_pool::withdraw(blocking_job& j) noexcept {
  std::lock_guard g(m_);
  if (!j.queued) return false;
  j.prev->next = j.next;
  j.next->prev = j.prev;
  j.queued = false;
  --queued_;
  return true;
}

void blocking_pool::serve() noexcept {
  std::unique_lock g(m_);
  for (;;) {
    if (queue_.next == &queue_) {
      if (stopping_) return;
      ++idle_;
      cv_.wait(g, [&] { return queue_.next != &queue_ || stopping_; });
      --idle_;
      continue;
    }
    blocking_job* j = queue_.next;
    j->prev->next = j->next;
    j->next->prev = j->prev;
    j->queued = false;
    --queued_;
    g.unlock();
    j->run(j);
    g.lock();
  }
}

void blocking_pool::shut_down() noexcept {
  std::vector<std::thread> threads;
  {
    std::lock_guard g(m_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

}  // namespace ringflow::detail
