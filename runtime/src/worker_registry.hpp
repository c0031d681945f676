// Which worker ids are alive, so a thread waiting for an owner to give up an
// object can tell a dead owner from a busy one.
#pragma once

#include <cstdint>

namespace ringflow::detail {

class worker;

struct worker_registry {
  static std::uint32_t next_id();
  static void add(worker* w);
  static void remove(std::uint32_t id);
  // Asks worker `id` to revoke *owner; false when that worker no longer exists.
  static bool request_revoke(std::uint32_t id, std::atomic<std::uint32_t>* owner);
};

}  // namespace ringflow::detail
