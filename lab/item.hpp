// The value the producer offers: its sequence number, when it was offered,
// and a heap payload so that what a strategy keeps buffered shows in RSS.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

namespace ringflow::lab {

using lab_clock = std::chrono::steady_clock;

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(lab_clock::now().time_since_epoch()).count();
}

struct item {
  std::uint64_t seq = 0;
  std::int64_t offered_ns = 0;  // steady_clock, at the send/emit
  std::unique_ptr<std::byte[]> payload;

  // Writes the payload so its pages are really resident.
  static item make(std::uint64_t seq, std::size_t payload_bytes) {
    item it;
    it.seq = seq;
    if (payload_bytes) {
      it.payload.reset(new std::byte[payload_bytes]);
      std::memset(it.payload.get(), static_cast<int>(seq & 0xff), payload_bytes);
    }
    it.offered_ns = now_ns();
    return it;
  }
};

}  // namespace ringflow::lab
