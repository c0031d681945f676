#include <ringflow/detail/buffer_ring.hpp>

#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include <ringflow/detail/worker.hpp>

namespace ringflow::detail {

namespace {

// (major, minor) of the running kernel; (0, 0) when unknown.
std::pair<int, int> kernel_version() noexcept {
  utsname u{};
  if (::uname(&u) != 0) return {0, 0};
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return {0, 0};
  return {major, minor};
}

bool at_least(std::pair<int, int> v, int major, int minor) noexcept {
  return v.first > major || (v.first == major && v.second >= minor);
}

void* map_anonymous(std::size_t bytes) noexcept {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

constexpr int ring_mask = static_cast<int>(buffer_ring::buffer_count - 1);
static_assert((buffer_ring::buffer_count & (buffer_ring::buffer_count - 1)) == 0, "a ring holds 2^n buffers");
static_assert(buffer_ring::buffer_count < buffer_ring::no_buffer, "buffer ids are 16 bits");

}  // namespace

// ---- buffer_ring -------------------------------------------------------------

std::unique_ptr<buffer_ring> buffer_ring::create(io_uring& ring) {
  if (const char* off = std::getenv("RINGFLOW_NO_MULTISHOT_RECV"); off && std::strcmp(off, "0") != 0) return nullptr;
  // Multishot receive (IORING_RECV_MULTISHOT) came with 6.0 and cannot be
  // probed as an opcode; provided buffer rings (5.19) are probed below by
  // registering one. A kernel that still refuses the flag answers the first
  // receive with EINVAL, and the ring then switches itself off (usable()).
  const auto version = kernel_version();
  if (!at_least(version, 6, 0)) return nullptr;
  // Without memory there are simply no multishot receives: the worker
  // must start anyway.
  std::unique_ptr<buffer_ring> b(new (std::nothrow) buffer_ring);
  if (!b) return nullptr;
  b->next_.reset(new (std::nothrow) std::uint16_t[buffer_count]);
  b->len_.reset(new (std::nothrow) std::uint32_t[buffer_count]);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  b->ring_bytes_ = (buffer_count * sizeof(io_uring_buf) + page - 1) / page * page;
  b->br_ = static_cast<io_uring_buf_ring*>(map_anonymous(b->ring_bytes_));
  b->base_ = static_cast<std::byte*>(map_anonymous(std::size_t{buffer_count} * buffer_size));
  if (!b->next_ || !b->len_ || !b->br_ || !b->base_) return nullptr;
  // Nothing may fail after this: registered memory must outlive the ring.
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(b->br_);
  reg.ring_entries = buffer_count;
  reg.bgid = group_id;
  if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) return nullptr;
  io_uring_buf_ring_init(b->br_);
  // The total-length cap of a multishot receive (sqe->optlen) came with
  // 6.17; older kernels refuse the field with EINVAL, which also switches it
  // off (refuse_length_cap), and the stream cap is then kept by cancelling.
  b->length_cap_ = at_least(version, 6, 17);
  while (b->provided_ < initial_buffers) b->provide_more();
  return b;
}

buffer_ring::~buffer_ring() {
  // No unregistering: this runs after the ring was closed (and from another
  // thread than the SINGLE_ISSUER one); closing the ring dropped the buffers.
  if (br_) ::munmap(br_, ring_bytes_);
  if (base_) ::munmap(base_, std::size_t{buffer_count} * buffer_size);
}

void buffer_ring::provide_more() noexcept {
  const unsigned n = std::min(grow_by, buffer_count - provided_);
  if (n == 0) return;
  for (unsigned i = 0; i < n; ++i) {
    const auto bid = static_cast<std::uint16_t>(provided_ + i);
    io_uring_buf_ring_add(br_, data(bid), buffer_size, bid, ring_mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(n));
  provided_ += n;
}

void buffer_ring::give_back(std::uint16_t bid) noexcept {
  io_uring_buf_ring_add(br_, data(bid), buffer_size, bid, ring_mask, 0);
  io_uring_buf_ring_advance(br_, 1);
  --held_;
}

void buffer_ring::link(recv_state* s) noexcept {
  s->prev = nullptr;
  s->next = attached_;
  if (attached_) attached_->prev = s;
  attached_ = s;
}

void buffer_ring::unlink(recv_state* s) noexcept {
  if (s->prev) {
    s->prev->next = s->next;
  } else {
    attached_ = s->next;
  }
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = nullptr;
}

void buffer_ring::cancel_all(worker& w) {
  for (recv_state* s = attached_; s; s = s->next) {
    if (s->armed() && !s->cancel_sent) s->request_cancel(w);
  }
}

bool buffer_ring::any_armed() const noexcept {
  for (recv_state* s = attached_; s; s = s->next) {
    if (s->armed()) return true;
  }
  return false;
}

bool buffer_ring::owns(std::uint64_t user_data) const noexcept {
  for (recv_state* s = attached_; s; s = s->next) {
    if (reinterpret_cast<std::uint64_t>(&s->c) == user_data) return true;
  }
  return false;
}

void buffer_ring::detach_all() {
  while (recv_state* s = attached_) {
    // Armed only if the ring broke while waiting: the kernel lets go of it
    // when the ring is closed, before the buffers are freed.
    s->c.in_flight = false;
    if (s->orphaned.load(std::memory_order_acquire)) {
      s->drop_queue();
      s->detach_if_idle();  // frees it unless another thread still holds it
    } else {
      s->spill_queue();  // detaches; the stream may be read again, by another runtime
    }
  }
}

// ---- recv_state ----------------------------------------------------------------

std::size_t recv_state::take_spill(std::span<std::byte> buf) noexcept {
  const std::size_t avail = spill.size() - spill_pos;
  if (avail == 0) return 0;
  const std::size_t n = std::min(avail, buf.size());
  std::memcpy(buf.data(), spill.data() + spill_pos, n);
  spill_pos += n;
  if (spill_pos == spill.size()) {
    spill.clear();  // keeps the capacity
    spill_pos = 0;
  }
  return n;
}

void recv_state::keep(std::span<const std::byte> bytes) {
  if (spill_pos > 0) {
    spill.erase(spill.begin(), spill.begin() + static_cast<std::ptrdiff_t>(spill_pos));
    spill_pos = 0;
  }
  spill.insert(spill.end(), bytes.begin(), bytes.end());
}

void recv_state::arm(worker& w, buffer_ring& br) {
  if (!owner.load(std::memory_order_relaxed)) {
    ring = &br;
    br.link(this);
    add_ref();
    owner.store(&w, std::memory_order_release);
  }
  io_uring_sqe* sqe = w.get_sqe();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffer_ring::group_id;
  capped = br.has_length_cap();
  if (capped) {
    // sqe->optlen in newer headers (it shares the word with file_index): the
    // kernel ends the receive once this many bytes arrived, so the stream
    // never holds more than the cap plus the rest of one buffer.
    const std::size_t room = buffer_ring::stream_cap > queued ? buffer_ring::stream_cap - queued : 1;
    sqe->file_index = static_cast<std::uint32_t>(room);
  }
  if (br.provoking_refusal()) sqe->ioprio |= 1u << 15;  // no such receive flag: EINVAL
  c.on_complete = &on_cqe;
  c.context = this;
  c.waiter = {};
  c.res = 0;
  c.flags = 0;
  delivered = false;
  cancel_sent = false;
  nobufs = false;
  w.track(c, sqe);
}

void recv_state::push(std::uint16_t bid, std::uint32_t len) noexcept {
  ring->length(bid) = len;
  ring->next(bid) = buffer_ring::no_buffer;
  if (tail == buffer_ring::no_buffer) {
    head = bid;
  } else {
    ring->next(tail) = bid;
  }
  tail = bid;
  queued += len;
}

std::size_t recv_state::consume(std::span<std::byte> buf) noexcept {
  std::size_t n = 0;
  while (head != buffer_ring::no_buffer && n < buf.size()) {
    const std::uint16_t b = head;
    const std::uint32_t len = ring->length(b);
    const std::size_t k = std::min<std::size_t>(len - head_off, buf.size() - n);
    std::memcpy(buf.data() + n, ring->data(b) + head_off, k);
    n += k;
    head_off += static_cast<std::uint32_t>(k);
    if (head_off == len) {
      head = ring->next(b);
      head_off = 0;
      ring->give_back(b);  // consumed: the kernel may fill it again at once
    }
  }
  if (head == buffer_ring::no_buffer) tail = buffer_ring::no_buffer;
  queued -= n;
  detach_if_idle();
  return n;
}

void recv_state::drop_queue() noexcept {
  while (head != buffer_ring::no_buffer) {
    const std::uint16_t b = head;
    head = ring->next(b);
    ring->give_back(b);
  }
  tail = buffer_ring::no_buffer;
  head_off = 0;
  queued = 0;
}

void recv_state::spill_queue() {
  if (queued > 0) spill.reserve(spill.size() - spill_pos + queued);
  for (std::uint16_t b = head; b != buffer_ring::no_buffer; b = ring->next(b)) {
    const std::uint32_t from = b == head ? head_off : 0;
    keep(std::span<const std::byte>(ring->data(b) + from, ring->length(b) - from));
  }
  drop_queue();
  detach_if_idle();
}

void recv_state::request_cancel(worker& w) {
  io_uring_sqe* sqe = w.get_sqe();
  io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(&c), 0);
  io_uring_sqe_set_data64(sqe, tag_ignore);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  cancel_sent = true;
}

void recv_state::abandon(worker& w) {
  drop_queue();
  if (armed()) {
    if (!cancel_sent) request_cancel(w);  // on_cqe detaches at the final completion
  } else {
    detach_if_idle();
  }
}

void recv_state::detach_if_idle() noexcept {
  if (armed() || head != buffer_ring::no_buffer || !owner.load(std::memory_order_relaxed)) return;
  ring->unlink(this);
  ring = nullptr;
  owner.store(nullptr, std::memory_order_release);
  release();  // the attachment's reference: may free an orphaned state
}

void recv_state::on_cqe(completion* c) {
  auto* st = static_cast<recv_state*>(c->context);
  buffer_ring& br = *st->ring;
  worker* w = st->owner.load(std::memory_order_relaxed);
  const bool more = (c->flags & IORING_CQE_F_MORE) != 0;
  const std::int32_t res = c->res;
  const bool orphan = st->orphaned.load(std::memory_order_acquire);
  if (c->flags & IORING_CQE_F_BUFFER) {
    const auto bid = static_cast<std::uint16_t>(c->flags >> IORING_CQE_BUFFER_SHIFT);
    br.taken();
    if (res > 0 && !orphan) {
      st->push(bid, static_cast<std::uint32_t>(res));
    } else {
      br.give_back(bid);
    }
  }
  if (res > 0) st->delivered = true;
  if (!more) {
    st->cancel_sent = false;
    if (res == 0) {
      st->end = 0;
    } else if (res == -ENOBUFS) {
      // The kernel ran dry. If more buffers could be provided, the next read
      // simply re-arms; if not, it falls back to a single-shot receive.
      if (!br.refill()) st->nobufs = true;
    } else if (res == -EINVAL && !st->delivered) {
      // The kernel refused the request itself: first the length cap, then
      // multishot receive; the next read re-arms without it.
      if (st->capped) {
        br.refuse_length_cap();
      } else {
        br.refuse_multishot();
      }
    } else if (res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN) {
      st->end = res;
    }
  } else if (!st->capped && !st->cancel_sent && !orphan && st->queued >= buffer_ring::stream_cap) {
    // No kernel cap: stop pulling from the socket ourselves, so its window
    // can close. The read that drains the queue re-arms.
    st->request_cancel(*w);
  }
  std::coroutine_handle<> r, f;
  if (st->reader && (st->queued > 0 || !more)) r = std::exchange(st->reader, {});
  if (st->finisher && !more) f = std::exchange(st->finisher, {});
  if (!more) st->detach_if_idle();  // may free st (orphaned): not touched below
  if (r) w->schedule_local(r);
  if (f) w->schedule_local(f);
}

}  // namespace ringflow::detail
