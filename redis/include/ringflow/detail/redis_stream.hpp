// stream_consumer as a ringflow publisher: the producer of each
// subscription pulls from the broker only what its subscriber demanded.
#pragma once

#include <memory>
#include <stdexcept>
#include <utility>

#include <ringflow/publisher.hpp>
#include <ringflow/redis_stream.hpp>
#include <ringflow/task.hpp>

namespace ringflow::redis {

inline publisher<delivery> stream_consumer::deliveries() {
  if (!st_) throw std::logic_error("ringflow::redis::stream_consumer: not opened");
  return publisher<delivery>::create([st = st_](emitter<delivery>& out) -> task<void> {
    for (;;) {
      bool wanted = co_await out.demanded();
      if (!wanted) co_return;
      // COUNT never exceeds the outstanding demand: request(n) reads n.
      delivery d = co_await next_up_to(st, out.demand());
      bool delivered = co_await out.emit(std::move(d));
      if (!delivered) co_return;  // the delivery was dropped: it stays pending and comes back
    }
  });
}

}  // namespace ringflow::redis
