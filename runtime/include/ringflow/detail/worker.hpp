// worker: one thread, one io_uring, one ready queue.
//
// Everything on a worker runs on its own thread; other threads reach it only
// through push_remote() (a locked inbox) followed by wake() when the worker
// sleeps in the kernel. A coroutine always resumes on the worker it suspended
// on, so the hot hand-offs between tasks of one worker never cross a core.
#pragma once

#include <liburing.h>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <vector>

#include <ringflow/detail/completion.hpp>
#include <ringflow/detail/ready_queue.hpp>
#include <ringflow/detail/spinlock.hpp>
#include <ringflow/detail/unstarted_queue.hpp>

namespace ringflow::detail {

class worker;
class runtime_core;
class buffer_ring;

// The worker running on this thread (null outside a runtime), and its id
// (0 outside a runtime); kept apart so hot paths read one word.
inline thread_local worker* tls_worker = nullptr;
inline thread_local std::uint32_t tls_worker_id = 0;

// A spawned task's top frame, listed by the worker it runs on (`home`), which
// destroys the ones still alive when the runtime goes away; one waiting in a
// worker's unstarted queue is listed once it starts (until then shutdown
// destroys it from the queue). A task that is
// not pinned moves to the worker that wakes it from a channel wait
// (worker::place_woken), and its link moves with it.
struct root_link {
  root_link* prev = nullptr;
  root_link* next = nullptr;
  std::coroutine_handle<> frame;
  // The worker listing it. Changed only under that worker's list lock (a
  // move sets the new home before it lets go of the old list), so whoever
  // holds the lock of the worker `home` names knows the task stays there.
  std::atomic<worker*> home{nullptr};
  // Written under the list lock; a waker on another worker reads it without
  // (place_woken_slow, a hint that move_root checks again under the lock)
  // while the task's own worker may be dropping it: hence atomic, relaxed.
  std::atomic<bool> linked{false};
  // spawn_on, spawn_local, block_on, the runtime's own helpers; and a task
  // being cancelled (join_handle::cancel), which must not move while its
  // home worker destroys it.
  std::atomic<bool> pinned{true};
};

// A frame owned by an object rather than by a task (a stream's producer,
// which its subscription owns), running on this worker while linked. Frames
// must be destroyed on their own worker, so shutdown does not free these
// itself: it unlinks each and asks its owner to destroy the frame there and
// then, before the worker goes away.
struct owned_frame_link {
  owned_frame_link* prev = nullptr;
  owned_frame_link* next = nullptr;
  void (*destroy_at_shutdown)(owned_frame_link*) noexcept = nullptr;
  bool linked = false;
};

class worker {
 public:
  worker(runtime_core& rt, unsigned index, unsigned ring_entries, std::int64_t idle_spin_ns);
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;
  ~worker();

  unsigned index() const noexcept { return index_; }
  std::uint32_t id() const noexcept { return id_; }
  runtime_core& core() const noexcept { return rt_; }

  // ---- scheduling -------------------------------------------------------
  // Own thread only.
  void schedule_local(std::coroutine_handle<> h) { ready_.push(h); }
  // Any thread. True when the caller must call wake() (after dropping locks).
  [[nodiscard]] bool push_remote(std::coroutine_handle<> h);
  void wake();
  void schedule(std::coroutine_handle<> h) {
    if (tls_worker == this) {
      schedule_local(h);
    } else if (push_remote(h)) {
      wake();
    }
  }
  // Own thread only. For an await_suspend that just parked its task: the next
  // ready task, to resume by symmetric transfer instead of a return to the
  // loop; a noop handle when none is ready or the chain is long enough (the
  // loop must still get to reap completions).
  std::coroutine_handle<> next_ready_for_transfer() noexcept {
    while (transfer_budget_ && !ready_.empty()) {
      --transfer_budget_;
      if (std::coroutine_handle<> h = ready_.pop()) return h;
    }
    return std::noop_coroutine();
  }
  // Own thread only: withdraws a queued resumption of a frame that is being
  // destroyed, from the ready queue and from the inbox.
  void unschedule(std::coroutine_handle<> h);
  // Records a task's top frame (spawn, or a task moving here) so shutdown can free it.
  void adopt_root(root_link* r) noexcept;
  // On the task's home worker (it finished, or shutdown destroys it).
  static void drop_root(root_link* r) noexcept;
  // Own thread only: when r is listed here, pins it (no waker moves it any
  // more) and returns true; else returns false (it lives elsewhere: r->home).
  bool pin_if_home(root_link* r) noexcept;
  // Own thread only: lists (or unlists, idempotent) an owned frame.
  void adopt_owned(owned_frame_link* l) noexcept;
  void drop_owned(owned_frame_link* l) noexcept;
  // Own thread only: queues r to start here. A pinned task, or any task of a
  // lone worker, is listed at once; an unpinned one of a shared runtime
  // waits unlisted in unstarted_, where an idle worker may take it
  // (steal_unstarted), and whichever worker starts it lists it.
  void start_here(root_link* r);
  // Any thread: queues an unstarted task's top frame here. False once this
  // worker has finished shutting down (nothing is queued: the caller still
  // owns the frame). `wake`: the caller must call wake().
  [[nodiscard]] bool push_root(root_link* r, bool& wake);
  // Own thread only, for a waker that takes a spawned task `r` off a
  // channel's wait list: the worker that should resume it (`owner` is where
  // it waited).
  // - An idle worker asked for work (its look at our ready queue saw tasks
  //   wait while another ran): the task goes there.
  // - Else, when the task belongs to another worker of this runtime and this
  //   one has nothing else ready (so the task runs as soon as the waker
  //   parks, as with Go's runnext), it moves here: the two sides of a channel
  //   then run on one worker and hand values over without crossing cores.
  // Pinned tasks stay where they are; a moving task's root moves with it.
  worker* place_woken(root_link* r, worker* owner) noexcept {
    if (owner == this && !thief_.load(std::memory_order_relaxed)) return owner;
    if (r->pinned.load(std::memory_order_relaxed)) return owner;
    return place_woken_slow(r, owner);
  }
  // Own thread only: a task awaits a result another thread of this runtime
  // (the blocking pool) will push into our inbox; while any is due, even a
  // lone worker watches its inbox before it sleeps (idle_spin).
  void expect_hand_back() noexcept { ++hand_backs_due_; }
  void hand_back_settled() noexcept { --hand_backs_due_; }
  std::uint32_t hand_backs_due() const noexcept { return hand_backs_due_; }
  // ---- io_uring ---------------------------------------------------------
  // Own thread only. Never null: flushes the SQ when it is full.
  io_uring_sqe* get_sqe();
  // Marks c as submitted: the prepared SQE's user_data must be &c.
  void track(completion& c, io_uring_sqe* sqe) noexcept {
    io_uring_sqe_set_data(sqe, &c);
    c.in_flight = true;
    ++in_flight_;
  }
  // Cancels c's operation and waits (in the kernel, dispatching nothing) for
  // its final CQE, so the memory the kernel may touch can be freed safely.
  void cancel_and_wait(completion& c);
  // Submits now rather than at the end of this loop turn.
  void submit_now();
  io_uring* ring() noexcept { return &ring_; }
  // Own thread only. The provided-buffer ring that tcp_stream reads through
  // with multishot receives (detail/buffer_ring.hpp); null when the kernel
  // lacks them or RINGFLOW_NO_MULTISHOT_RECV was set when the worker started.
  buffer_ring* recv_buffers() noexcept { return recv_buffers_.get(); }

  // ---- ownership of single-worker objects (see affinity.hpp) -------------
  // Once this worker has shut down (retired) a request is granted at once:
  // no task of ours can be half-way through an operation any more.
  void request_revoke(std::atomic<std::uint32_t>* owner);
  void process_revokes();
  // Takes back every request for *owner not yet processed. A requester calls
  // it once it sees the object shared, however that came about (this worker
  // may have let go on its own, through make_shared), so that no request
  // outlives the object: the requester may free it as soon as it returns.
  void withdraw_revoke(std::atomic<std::uint32_t>* owner);
  // True while a request waits for this worker (tests drive the hand-over with it).
  bool revoke_requested() const noexcept { return revoke_pending_.load(std::memory_order_acquire); }

  // ---- signals claimed by signal_sets (see signal_mask.hpp) --------------
  // The claims generation this worker's thread mask reflects.
  std::atomic<std::uint64_t>& signals_applied() noexcept { return signals_applied_; }

  // ---- the loop ---------------------------------------------------------
  void run();                 // until the runtime stops
  // Shutdown: frees every frame this worker holds, including those that
  // arrive while it does (a destructor elsewhere spawning here), then
  // retires: later spawns here are refused, hand-over requests granted.
  void destroy_everything();
  void close_ring();

 private:
  struct cqe_record {
    std::uint64_t user_data;
    std::int32_t res;
    std::uint32_t flags;
  };
  struct remote_entry {
    std::coroutine_handle<> h;
    root_link* root;
  };

  void run_ready(unsigned budget);
  // Own thread only, while idle: takes up to half of the unstarted tasks of
  // another worker of this runtime into our queue. True when it took any.
  bool steal_unstarted(std::int64_t now);
  void judge_last_steal(std::int64_t now) noexcept;
  bool has_ready() const noexcept { return !ready_.empty() || unstarted_.size_hint(); }
  void drain_remote();
  void reap();
  void dispatch(const cqe_record& r);
  void arm_eventfd();
  void collect_cqes();
  void wait_in_kernel();
  void shut_down_recv_buffers();
  worker* place_woken_slow(root_link* r, worker* owner) noexcept;
  // False (nothing moved) when r was pinned meanwhile.
  bool move_root(root_link* r, worker& to) noexcept;
  bool look_for_waiting_work(std::int64_t now_ns);
  void withdraw_work_request() noexcept;
  bool another_worker_awake() const noexcept;
  void nudge_sleeper() noexcept;

  runtime_core& rt_;
  unsigned index_;
  std::uint32_t id_;
  bool shared_;  // the runtime has other workers (it is sized before any worker is made)
  io_uring ring_{};
  bool ring_ready_ = false;
  bool has_msg_ring_ = false;
  std::unique_ptr<buffer_ring> recv_buffers_;  // after ring_: freed once the ring is gone
  int eventfd_ = -1;
  std::uint64_t eventfd_buf_ = 0;
  std::int64_t idle_spin_ns_;
  std::uint32_t in_flight_ = 0;  // operations whose CQE we still expect (not the eventfd read)
  std::uint32_t hand_backs_due_ = 0;  // see expect_hand_back

  ready_queue ready_;
  // Spawned here and not started yet (stealable); run_ready alternates
  // between it and ready_ so neither starves the other.
  alignas(64) unstarted_queue unstarted_;
  bool unstarted_turn_ = false;
  // The last steal, judged when we are idle again (judge_last_steal).
  struct steal_record {
    std::int64_t at = 0;
    std::size_t tasks = 0;
    std::size_t roots_before = 0;
  };
  steal_record last_steal_;
  std::int64_t steal_wait_ns_ = 0;
  std::int64_t steal_not_before_ = 0;
  // An idle worker that asks for one of our tasks (look_for_waiting_work);
  // read on every wake of a spawned task, written once per request.
  std::atomic<worker*> thief_{nullptr};
  unsigned transfer_budget_ = 0;
  std::vector<cqe_record> backlog_;
  std::size_t backlog_pos_ = 0;
  root_link roots_;  // sentinel of a circular list
  std::size_t roots_listed_ = 0;  // under roots_lock_ (when shared_)
  owned_frame_link owned_;  // sentinel of a circular list; own thread only
  // While idle: the worker we last looked at, what we saw, and whom we asked.
  worker* watched_ = nullptr;
  std::size_t watched_taken_ = 0;
  std::int64_t watched_at_ = 0;
  unsigned watch_turn_ = 0;
  worker* asked_ = nullptr;
  // Sleeping with no deadline; a busy worker may clear it and wake us.
  alignas(64) std::atomic<bool> asleep_for_good_{false};
  spinlock roots_lock_;  // a waker on another worker may move a root in or out (place_woken)

  // The inbox's hot part fills exactly one cache line: a hand-off from
  // another worker (lock, handle, flag) and the drain that follows move that
  // one line between the cores and nothing else. Only when more than
  // inline_capacity resumptions wait, or a spawn brings its root, does the
  // inbox spill into remote_ (and stays spilled until drained, for FIFO).
  static constexpr unsigned inline_capacity = 7;
  alignas(64) std::atomic<bool> sleeping_{false};
  std::atomic<bool> remote_pending_{false};
  std::atomic<bool> revoke_pending_{false};
  spinlock remote_lock_;
  bool spilled_ = false;            // remote_ holds entries
  bool retired_ = false;            // destroy_everything is done (under remote_lock_)
  std::uint8_t inline_n_ = 0;
  std::coroutine_handle<> inline_[inline_capacity];
  alignas(64) std::vector<remote_entry> remote_;
  std::vector<remote_entry> remote_swap_;
  std::vector<std::atomic<std::uint32_t>*> revokes_;
  std::atomic<std::uint64_t> signals_applied_{0};
};

}  // namespace ringflow::detail
