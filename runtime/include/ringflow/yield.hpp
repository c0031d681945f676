// co_await ringflow::yield(): lets every other ready task of this worker run
// once, then continues (back of the ready queue).
//
// Cancel safety: destroying a task suspended here withdraws its queued resume.
#pragma once

namespace ringflow {

namespace detail {
struct yield_awaiter;
}  // namespace detail

// co_await yield(): the other ready tasks of this worker run, then the caller.
// Awaited outside a runtime: std::logic_error.
inline detail::yield_awaiter yield() noexcept;

}  // namespace ringflow

// The awaiter and the definition of yield().
#include <ringflow/detail/yield_awaiter.hpp>
