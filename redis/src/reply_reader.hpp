// reply_reader: hiredis's redisReader building ringflow::redis::reply values
// directly (its object functions), without hiredis's redisReply in between.
#pragma once

#include <cstddef>
#include <string_view>

#include <ringflow/redis.hpp>

struct redisReader;

namespace ringflow::redis::detail {

class reply_reader {
 public:
  reply_reader();  // std::bad_alloc when hiredis cannot make its reader
  ~reply_reader();
  reply_reader(const reply_reader&) = delete;
  reply_reader& operator=(const reply_reader&) = delete;

  enum class result { reply, more, failed };

  // Appends bytes received from the server. false: out of memory.
  bool feed(const char* data, std::size_t size) noexcept;
  // The next complete reply, moved into out; `more` when its bytes have not
  // all arrived; `failed` on a protocol error or out of memory (the reader is
  // then unusable: error() says why, out_of_memory() which).
  result next(reply& out) noexcept;
  std::string_view error() const noexcept;
  bool out_of_memory() const noexcept;

  // The reply being built while it is the top one (hiredis asks its object
  // functions to make each value; the top one lives here, not on the heap).
  reply root;

 private:
  redisReader* r_;
};

}  // namespace ringflow::redis::detail
