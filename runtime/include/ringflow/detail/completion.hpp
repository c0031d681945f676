// completion: what an io_uring operation's user_data points at. The worker
// that reaped the CQE stores the result and calls on_complete on its own
// thread; by default that resumes the waiting coroutine.
#pragma once

#include <coroutine>
#include <cstdint>

namespace ringflow::detail {

struct completion {
  using callback = void (*)(completion*);

  static void resume_waiter(completion* c) { c->waiter.resume(); }

  callback on_complete = &resume_waiter;
  std::coroutine_handle<> waiter;
  void* context = nullptr;  // for on_complete callbacks that need their owner
  std::int32_t res = 0;
  std::uint32_t flags = 0;
  bool in_flight = false;  // submitted (or queued in the SQ) and final CQE not yet seen
};

// user_data values that are tags, not completion pointers (no completion
// lives at such an address).
inline constexpr std::uint64_t tag_ignore = 0;
inline constexpr std::uint64_t tag_wake = 1;
inline constexpr std::uint64_t tag_eventfd = 2;

}  // namespace ringflow::detail
