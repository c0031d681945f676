// Code-placement hints for the per-operation paths of the bounded queues.
// The steps of a send or a receive are tiny: inlined into the awaiters, a
// buffered hand-off costs no calls; the rare paths (a full buffer, a
// policy, close, rendezvous) stay out of line so the common one stays small.
// Names under RINGFLOW_ are reserved for this header, which only the bounded
// queues' headers include. They are not #undef'd: every header that uses
// them includes this one, and #pragma once defines them once for all.
#pragma once

#define RINGFLOW_HOT [[gnu::always_inline]] inline
#define RINGFLOW_LAMBDA_HOT __attribute__((always_inline))
#define RINGFLOW_COLD [[gnu::noinline]]
