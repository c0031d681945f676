#include <ringflow/fd_wait.hpp>

#include <poll.h>

#include <system_error>

#include <ringflow/detail/io_op.hpp>

namespace ringflow {

namespace {
task<unsigned> wait_for(int fd, unsigned events, const char* what) {
  detail::poll_op op(fd, events);
  const std::int32_t r = co_await op;
  if (r < 0) throw std::system_error(-r, std::system_category(), what);
  co_return static_cast<unsigned>(r);
}
}  // namespace

task<unsigned> wait_readable(int fd) { return wait_for(fd, POLLIN, "ringflow::wait_readable"); }
task<unsigned> wait_writable(int fd) { return wait_for(fd, POLLOUT, "ringflow::wait_writable"); }

}  // namespace ringflow
