// wait_readable(fd) / wait_writable(fd): readiness of a descriptor the
// runtime does not own, so a foreign library (a database driver, a broker
// client) that exposes its socket can run on the runtime.
//
//   for (;;) {
//     unsigned ev = co_await ringflow::wait_readable(driver.socket());
//     driver.process_input();               // its own non-blocking read
//   }
//
// - One io_uring POLL_ADD on the worker the task runs on; no thread blocks.
//   co_await gives the poll revents: POLLIN / POLLOUT, and POLLERR or
//   POLLHUP, which the kernel reports unasked, so a broken or hung-up
//   descriptor wakes the waiter rather than hanging it.
// - Level-triggered and single-shot: it returns at once when the
//   descriptor is already ready, and reads or writes nothing.
// - A bad descriptor (negative, closed, not pollable) throws
//   std::system_error with the kernel's errno (EBADF, ...) from co_await.
//   Awaiting outside a runtime throws std::logic_error.
// - Closing the descriptor while a wait is pending is the caller's race, as
//   with poll(2): the kernel may keep the wait on the old file.
//
// Cancel safety: a task cancelled while it waits (timeout, join_handle::
// cancel, shutdown) removes its poll from the ring (IORING_OP_ASYNC_CANCEL)
// and waits for its completion before the frame goes; nothing is consumed,
// so the readiness is still there for the next wait.
#pragma once

#include <ringflow/task.hpp>

namespace ringflow {

// Resumes when fd is readable (or has an error or hang-up): the revents.
task<unsigned> wait_readable(int fd);
// Resumes when fd is writable (or has an error or hang-up): the revents.
task<unsigned> wait_writable(int fd);

}  // namespace ringflow
