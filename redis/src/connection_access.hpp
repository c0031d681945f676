// The ways into a connection that the module's own layers use and its
// users do not: making one around a started state, and sending a command
// formatted already (the stream consumer formats an XACK from the text of
// the entry keys it holds, without a vector of strings first).
#pragma once

#include <memory>
#include <utility>

#include <ringflow/redis.hpp>

namespace ringflow::redis::detail {

struct connection_access {
  static connection make(std::shared_ptr<connection_state> s) noexcept { return connection(std::move(s)); }
  // As command(): throws std::logic_error on a connection not connected.
  static task<reply> send(connection& c, command_bytes cmd) { return c.send(std::move(cmd)); }
};

}  // namespace ringflow::redis::detail
