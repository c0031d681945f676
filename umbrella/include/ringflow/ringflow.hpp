// ringflow: a C++20 coroutine runtime on io_uring whose heart is backpressure.
// This umbrella header includes the whole public API.
#pragma once

#include <ringflow/features.hpp>

#include <ringflow/blocking.hpp>
#include <ringflow/fd_wait.hpp>
#include <ringflow/join_handle.hpp>
#include <ringflow/runtime.hpp>
#include <ringflow/signal.hpp>
#include <ringflow/sleep.hpp>
#include <ringflow/stop.hpp>
#include <ringflow/task.hpp>
#include <ringflow/tcp.hpp>
#include <ringflow/timeout.hpp>
#include <ringflow/yield.hpp>
#include <ringflow/channel.hpp>
#include <ringflow/overflow.hpp>
#include <ringflow/publisher.hpp>
#include <ringflow/operators.hpp>
#include <ringflow/hot_source.hpp>
#include <ringflow/processor.hpp>
#include <ringflow/select.hpp>
#include <ringflow/work_queue.hpp>
#include <ringflow/rate_limiter.hpp>
#include <ringflow/circuit_breaker.hpp>
#include <ringflow/task_group.hpp>
#include <ringflow/semaphore.hpp>
#include <ringflow/broadcast.hpp>
#include <ringflow/watch.hpp>
#if RINGFLOW_HAS_REDIS
#include <ringflow/redis.hpp>
#include <ringflow/redis_stream.hpp>
#endif
#if RINGFLOW_HAS_HTTP
#include <ringflow/http.hpp>
#include <ringflow/http_sse.hpp>
#endif
