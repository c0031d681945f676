// What a bounded channel does when a value arrives and the buffer is full.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ringflow {

enum class overflow {
  block,          // send suspends while the buffer is full: lossless (default)
  drop_incoming,  // a send into a full buffer discards the value being sent
                  //   (Kotlin DROP_LATEST, Akka dropNew, RabbitMQ reject-publish)
  drop_oldest,    // a send into a full buffer evicts the oldest buffered value, then
                  //   enqueues (Kotlin DROP_OLDEST, Akka dropHead, RabbitMQ drop-head)
  sample,         // a send into a full buffer overwrites the newest buffered value:
                  //   the freshest value always survives; capacity 1 = a conflated
                  //   channel (Rx onBackpressureLatest, Kotlin CONFLATED)
};

enum class send_status {
  sent,     // the value is buffered or handed to a receiver
  dropped,  // this value was discarded by drop_incoming
  full,     // only try_send on a block channel; nothing was taken
  closed,   // the channel was closed; nothing was taken
};

struct channel_stats {
  std::uint64_t sent = 0;           // values accepted (status sent)
  std::uint64_t received = 0;       // values handed to receivers
  std::uint64_t dropped = 0;        // values discarded by any policy
  std::uint64_t blocked_sends = 0;  // sends that had to suspend
  std::size_t high_water = 0;       // largest number of buffered values seen
};

constexpr const char* to_string(overflow p) noexcept {
  switch (p) {
    case overflow::block: return "block";
    case overflow::drop_incoming: return "drop_incoming";
    case overflow::drop_oldest: return "drop_oldest";
    case overflow::sample: return "sample";
  }
  return "?";
}

constexpr const char* to_string(send_status s) noexcept {
  switch (s) {
    case send_status::sent: return "sent";
    case send_status::dropped: return "dropped";
    case send_status::full: return "full";
    case send_status::closed: return "closed";
  }
  return "?";
}

}  // namespace ringflow
