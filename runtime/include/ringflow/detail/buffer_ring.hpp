// buffer_ring: a worker's provided-buffer ring, and the receive state of a
// tcp_stream that reads through it with one multishot receive.
//
//   // worker start (worker.cpp): null when the kernel lacks provided buffer
//   // rings or multishot receive, or RINGFLOW_NO_MULTISHOT_RECV is set
//   std::unique_ptr<buffer_ring> br = buffer_ring::create(ring);
//
//   // tcp_stream::read, on worker w (tcp_stream.cpp):
//   if (!st->armed() && br->usable()) st->arm(w, *br);  // IORING_OP_RECV, RECV_MULTISHOT, BUFFER_SELECT
//   ... suspend until on_cqe queued a buffer ...
//   std::size_t n = st->consume(buf);                    // copies, gives consumed buffers back
//
// How the bytes flow: the kernel picks a buffer of the ring for each receive
// and posts a CQE carrying its id; the completion callback queues (id, length)
// on the stream's receive state; a read copies from the queue into the
// caller's span and hands each buffer back to the kernel as soon as it is
// consumed. The queue is a linked list threaded through per-buffer slots of
// the ring (a buffer belongs to at most one stream at a time), so queueing
// allocates nothing and has no fixed length.
//
// Backpressure: one stream may hold at most stream_cap unread bytes (plus
// the rest of one buffer). The receive is armed with that cap as its total
// length where the kernel supports it (Linux 6.17+: it ends the multishot by
// itself), else the completion callback cancels the receive when the cap is
// reached; either way it is re-armed only by a read that found the queue
// empty, so a reader that stops reading stops the receive, the socket buffer
// fills and the TCP window closes.
//
// Threads: a receive state is attached to the worker whose ring holds its
// armed receive or its queued buffers (owner); everything but the fields
// marked otherwise is touched only on that worker's thread. A state that is
// neither armed nor holding buffers detaches itself, so a stream whose reads
// stay on one worker pays nothing for the other workers. A read on another
// worker first asks the owner (a task spawned there) to cancel the receive and
// move the queued bytes out of its ring (the spill), then continues.
//
// Cancel safety: the kernel writes only into ring memory, which lives as long
// as the worker, so a read cancelled by ringflow::timeout simply stops
// waiting; the receive stays armed and its bytes stay queued for the next
// read. A stream destroyed with its receive armed cancels it asynchronously
// (the callback gives back the buffers of the last completions and frees the
// state on the final one), on the owner's thread. When a runtime shuts down,
// each worker ends the receives still armed on its ring and spills their
// queues into the states, so a stream that outlives its runtime loses nothing.
#pragma once

#include <liburing.h>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <ringflow/detail/completion.hpp>

namespace ringflow {
class tcp_stream;
}

namespace ringflow::detail {

class worker;
struct recv_state;

class buffer_ring {
 public:
  // Up to 1024 buffers of one page each: 4 MiB of address space per worker,
  // made resident only as buffers are provided (below). A 64-byte request
  // pins a whole buffer until it is read, so the count (not the size) bounds
  // how many connections can have unread bytes at once before reads fall
  // back to single-shot receives (echo_server's 500-connection run holds up
  // to one buffer per connection); a page keeps what one completion carries
  // large enough for bulk transfers (16 completions per 64 KiB).
  static constexpr unsigned buffer_count = 1024;
  static constexpr std::uint32_t buffer_size = 4096;
  // What one stream may hold unread in the ring: 64 KiB, the order of a
  // default socket receive buffer, so a stalled reader keeps about as much
  // in user space as the kernel keeps for it, and 64 such streams (not one)
  // are needed to exhaust the ring.
  static constexpr std::size_t stream_cap = 64 * 1024;
  // Buffers are handed to the kernel in batches, as the ones it holds run
  // low: it uses a ring's buffers in turn, so every buffer provided ends up
  // touched, and a server with few busy connections would otherwise keep all
  // 4 MiB resident (three times that under TSan's shadow memory) for what
  // 256 KiB serve. 64 at the start covers a stream at its cap four times over.
  static constexpr unsigned initial_buffers = 64;
  static constexpr unsigned grow_by = 64;
  static constexpr unsigned low_water = 32;
  static constexpr std::uint16_t group_id = 0;
  static constexpr std::uint16_t no_buffer = 0xffff;

  // Probes and registers the ring on `ring` (call on the ring's thread).
  // Null when RINGFLOW_NO_MULTISHOT_RECV is set (read at worker start), the
  // kernel is older than 6.0 (multishot receive), or registering a provided
  // buffer ring fails (older than 5.19).
  static std::unique_ptr<buffer_ring> create(io_uring& ring);
  buffer_ring(const buffer_ring&) = delete;
  buffer_ring& operator=(const buffer_ring&) = delete;
  // Frees the memory; the ring must be gone (or no receive may use it).
  ~buffer_ring();

  std::byte* data(std::uint16_t bid) noexcept { return base_ + std::size_t{bid} * buffer_size; }
  // The kernel handed a buffer to a completion.
  void taken() noexcept {
    ++held_;
    if (provided_ - held_ < low_water) provide_more();
  }
  // Gives bid back to the kernel.
  void give_back(std::uint16_t bid) noexcept;
  // After a receive ran out of buffers: provides more if some were never
  // provided. False when the kernel has (as far as we know) none left.
  bool refill() noexcept {
    provide_more();
    return provided_ > held_;
  }
  // Buffers the kernel may still fill, counting those not provided yet (an
  // upper bound: completions not yet reaped have taken some).
  unsigned free_buffers() const noexcept { return buffer_count - held_; }
  // Buffers handed to the kernel so far (test hook).
  unsigned provided() const noexcept { return provided_; }

  // Multishot receive works here (cleared if the kernel refuses it with EINVAL).
  bool usable() const noexcept { return multishot_ok_; }
  // The kernel caps a multishot receive's total length (sqe->optlen, 6.17+).
  bool has_length_cap() const noexcept { return length_cap_; }
  void refuse_multishot() noexcept { multishot_ok_ = false; }
  // Tests only: until multishot is refused, every receive armed here carries
  // a flag the kernel rejects, so the EINVAL answers of a kernel without the
  // feature really arrive and the fallback runs as it would there.
  void provoke_refusal_for_test() noexcept { provoke_refusal_ = true; }
  bool provoking_refusal() const noexcept { return provoke_refusal_ && multishot_ok_; }
  void refuse_length_cap() noexcept { length_cap_ = false; }

  // Queue links, one slot per buffer.
  std::uint16_t& next(std::uint16_t bid) noexcept { return next_[bid]; }
  std::uint32_t& length(std::uint16_t bid) noexcept { return len_[bid]; }

  // Attached receive states (for shutdown).
  void link(recv_state* s) noexcept;
  void unlink(recv_state* s) noexcept;

  // ---- worker shutdown (worker::destroy_everything, own thread) ----------
  // Submits a cancel for every armed receive.
  void cancel_all(worker& w);
  // Receives still waiting for their final completion.
  bool any_armed() const noexcept;
  // True when user_data is the completion of an attached state.
  bool owns(std::uint64_t user_data) const noexcept;
  // Spills every queue into its state (freeing orphaned states) and detaches all.
  void detach_all();

 private:
  buffer_ring() = default;
  void provide_more() noexcept;

  io_uring_buf_ring* br_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::byte* base_ = nullptr;
  unsigned held_ = 0;      // taken by completions, not given back yet
  unsigned provided_ = 0;  // ids [0, provided_) were handed to the kernel
  bool multishot_ok_ = true;
  bool length_cap_ = false;
  bool provoke_refusal_ = false;
  std::unique_ptr<std::uint16_t[]> next_;
  std::unique_ptr<std::uint32_t[]> len_;
  recv_state* attached_ = nullptr;  // head of a doubly linked list
};

// The receive side of one tcp_stream, allocated by its first read.
struct recv_state {
  explicit recv_state(int f) noexcept : fd(f) {}
  recv_state(const recv_state&) = delete;
  recv_state& operator=(const recv_state&) = delete;

  // ---- any thread ----
  const int fd;
  // The stream, 1 while attached, 1 per helper task (leave/abandon).
  std::atomic<int> refs{1};
  // The stream is gone: give buffers back instead of queueing them.
  std::atomic<bool> orphaned{false};
  // The worker whose ring holds this state's armed receive or queued buffers.
  std::atomic<worker*> owner{nullptr};
  // A read is using the state. A second, concurrent read (documented as
  // interleaving unpredictably) takes a plain single-shot receive instead.
  std::atomic<bool> busy{false};

  // ---- the reading task's thread (handed over through owner / a join) ----
  // Bytes that left the ring: kept by a cancelled single-shot receive, or
  // spilled when the state left its worker. Returned before anything else.
  std::vector<std::byte> spill;
  std::size_t spill_pos = 0;

  // ---- the owner's thread ----
  completion c;  // the multishot receive; c.in_flight: armed
  buffer_ring* ring = nullptr;
  std::uint16_t head = buffer_ring::no_buffer;
  std::uint16_t tail = buffer_ring::no_buffer;
  std::uint32_t head_off = 0;
  std::size_t queued = 0;   // unread bytes in the ring
  int end = 1;              // 1: none; 0: end of stream; < 0: -errno, reported after the queued bytes
  bool cancel_sent = false;  // a cancel for the armed receive is on its way
  bool nobufs = false;       // the last receive ran out of buffers: the next read goes single-shot
  bool delivered = false;    // the armed receive delivered bytes (an EINVAL is then no probe answer)
  bool capped = false;       // the armed receive carries the kernel length cap
  std::coroutine_handle<> reader;    // a read waiting for on_cqe
  std::coroutine_handle<> finisher;  // a leave task waiting for the final completion
  recv_state* prev = nullptr;  // in ring->attached_
  recv_state* next = nullptr;

  bool armed() const noexcept { return c.in_flight; }
  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Any thread: copies spilled bytes into buf (0 when there are none).
  std::size_t take_spill(std::span<std::byte> buf) noexcept;
  void keep(std::span<const std::byte> bytes);  // appends to the spill

  // Owner thread (or, when detached, the thread that attaches).
  // Attaches to w (if detached) and arms the multishot receive.
  void arm(worker& w, buffer_ring& br);
  // Copies queued bytes into buf, gives consumed buffers back, detaches once
  // nothing is queued or armed.
  std::size_t consume(std::span<std::byte> buf) noexcept;
  // Submits an asynchronous cancel of the armed receive (its final CQE follows).
  void request_cancel(worker& w);
  // The stream is gone: drop the queue, cancel the receive; the final CQE
  // (or this call, if nothing is armed) detaches and frees.
  void abandon(worker& w);
  // Moves the queue into the spill and detaches (nothing may be armed).
  void spill_queue();
  // Gives the queued buffers back unread.
  void drop_queue() noexcept;
  // Detaches if nothing is armed or queued (may free an orphaned state).
  void detach_if_idle() noexcept;

  static void on_cqe(completion* c);

 private:
  ~recv_state() = default;  // through release()
  void push(std::uint16_t bid, std::uint32_t len) noexcept;
};

// Test hooks: what a stream's receive holds. Call on the stream's reading worker.
struct recv_snapshot {
  std::size_t queued = 0;  // unread bytes in the ring
  std::size_t spilled = 0;
  bool armed = false;
  bool attached = false;
};
recv_snapshot inspect_recv(const tcp_stream& s) noexcept;
// Whether the current worker reads with multishot receives (and with the
// kernel's length cap); false outside a runtime.
bool multishot_recv_active() noexcept;
bool multishot_recv_length_cap() noexcept;

}  // namespace ringflow::detail
