// Which worker ids are alive, so a thread waiting for an owner to give up an
// object can tell a dead owner from a busy one.
#pragma once

#include <atomic>
#include <cstdint>

namespace ringflow::detail {

class worker;

struct worker_registry {
  static std::uint32_t next_id();
  static void add(worker* w);
  static void remove(std::uint32_t id);
  // Asks worker `id` to revoke *owner; false when that worker no longer exists.
  static bool request_revoke(std::uint32_t id, std::atomic<std::uint32_t>* owner);
  // Takes back worker `id`'s unprocessed requests for *owner (worker::withdraw_revoke).
  static void withdraw_revoke(std::uint32_t id, std::atomic<std::uint32_t>* owner);
  // False once worker `id` no longer exists.
  static bool alive(std::uint32_t id);
  // Wakes every worker of the process but the caller's.
  static void wake_all();
  // True when every worker whose runtime still runs has applied the signal
  // claims of generation `gen` (worker::signals_applied()).
  static bool all_applied_signals(std::uint64_t gen);
};

}  // namespace ringflow::detail
