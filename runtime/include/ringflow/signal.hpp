// signal_set: Unix signals as awaitable events, read through a signalfd on
// io_uring (the Tokio signal / asio signal_set counterpart).
//
//   ringflow::signal_set stop({SIGINT, SIGTERM});      // in a task
//   int sig = co_await stop.wait();                    // SIGINT or SIGTERM
//
// - Construct it on a runtime (in a task; else std::logic_error). While it
//   lives, its signals are blocked process-wide so they stay pending for it
//   instead of running their disposition: the constructor blocks them in
//   every worker of every runtime of the process and returns once all have
//   (a worker applies it between two tasks); blocking-pool threads, and a
//   thread waiting in runtime::block_on or join_handle::wait, block every
//   asynchronous signal anyway. Threads you start yourself must block them
//   too (pthread_sigmask), as must a thread that is about to wait for the
//   runtime but is not waiting yet: otherwise they may take the signal. When the last set claiming a signal
//   goes, the workers unblock it (a signal still pending is then delivered
//   as usual).
// - wait(): co_await -> int, the next pending signal of the set; returns at
//   once when one is already pending. Standard signals do not queue: the
//   same signal sent twice before a wait may be reported once. Signals sent
//   to the process (kill(getpid(), s), a terminal's Ctrl-C, a supervisor's
//   SIGTERM) reach any wait; one sent to a single thread (raise,
//   pthread_kill) only a wait running on that thread.
// - stop_on_signal(source): co_await -> int: waits for the next signal of the
//   set, then requests stop on source (its copy shares the source's state),
//   the usual start of a graceful shutdown; spawn it beside the work that
//   watches source's token:
//     std::stop_source stop;
//     auto watching = ringflow::spawn_local(signals.stop_on_signal(stop));
//     co_await server.run(stop.get_token());
//     watching.cancel();   // the server stopped for another reason
//   Cancelled before a signal came, it requests nothing.
// - Two sets claiming the same signal compete: each occurrence goes to one
//   wait.
// - Bad signals throw std::invalid_argument: outside 1..SIGRTMAX, SIGKILL
//   and SIGSTOP (they cannot be blocked), the fault signals (SIGSEGV,
//   SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS: they must reach the faulting
//   thread), the C library's reserved 32..SIGRTMIN-1, an empty list. OS
//   failures throw std::system_error.
// - Move-only; a moved-from set throws std::logic_error from wait(). The set
//   must outlive the waits on it.
//
// Cancel safety: a wait is an io_uring poll on the signalfd followed by a
// non-blocking read of one signal; a cancelled wait (timeout, join_handle::
// cancel) has read nothing, so the signal stays pending for the next wait.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <stop_token>

#include <ringflow/task.hpp>

namespace ringflow {

class signal_set {
 public:
  explicit signal_set(std::initializer_list<int> signals);
  signal_set(signal_set&& o) noexcept;
  signal_set& operator=(signal_set&& o) noexcept;
  signal_set(const signal_set&) = delete;
  signal_set& operator=(const signal_set&) = delete;
  ~signal_set();

  // co_await -> int: the next signal received (one of the set's).
  task<int> wait();
  // co_await -> int: the next signal, after which stop is requested on source.
  task<int> stop_on_signal(std::stop_source source);
  // True when s is one of the set's signals.
  bool contains(int s) const noexcept;

 private:
  void reset() noexcept;
  int fd_ = -1;
  std::uint64_t signals_ = 0;  // bit s - 1 for signal s
};

}  // namespace ringflow
