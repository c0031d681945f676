// The process-wide handler for exceptions of tasks nobody awaits.
#include <ringflow/join_handle.hpp>

#include <cstdio>
#include <mutex>

namespace ringflow {

namespace {

std::mutex handler_mutex;
unhandled_exception_handler& handler() {
  static unhandled_exception_handler h;
  return h;
}

void write_to_stderr(std::exception_ptr e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "ringflow: a detached task ended with an exception: %s\n", ex.what());
  } catch (...) {
    std::fprintf(stderr, "ringflow: a detached task ended with an exception (not a std::exception)\n");
  }
}

}  // namespace

unhandled_exception_handler set_unhandled_exception_handler(unhandled_exception_handler h) {
  std::lock_guard g(handler_mutex);
  return std::exchange(handler(), std::move(h));
}

namespace detail {

void report_unhandled(std::exception_ptr e) noexcept {
  unhandled_exception_handler h;
  try {
    std::lock_guard g(handler_mutex);
    h = handler();
  } catch (...) {
    // copying the handler failed (out of memory): fall back to stderr
  }
  if (!h) {
    write_to_stderr(e);
    return;
  }
  try {
    h(e);
  } catch (...) {
    // a handler that throws has nowhere to throw to
  }
}

}  // namespace detail

}  // namespace ringflow
