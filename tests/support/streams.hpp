// Test helpers for streams.
#pragma once

#include <ringflow/ringflow.hpp>

namespace test_support {

// A cold publisher of 0..n-1.
inline ringflow::publisher<int> range(int n) {
  return ringflow::publisher<int>::create([n](ringflow::emitter<int>& out) -> ringflow::task<void> {
    for (int i = 0; i < n; ++i) {
      bool ok = co_await out.emit(i);
      if (!ok) co_return;
    }
  });
}

}  // namespace test_support
