// Which sanitizer this test binary is built with, for the few tests that
// must size themselves down under one (each step several times slower) or
// skip a figure it distorts (ASan keeps freed memory in its quarantine, and
// both bring their own operator new). g++ says so by macros, clang by
// __has_feature.
//   RINGFLOW_TEST_ASAN, RINGFLOW_TEST_TSAN, RINGFLOW_TEST_SANITIZED: 0 or 1, for #if
//   test_support::asan, ::tsan, ::sanitized: the same as constexpr bools
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define RINGFLOW_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RINGFLOW_TEST_ASAN 1
#endif
#endif
#ifndef RINGFLOW_TEST_ASAN
#define RINGFLOW_TEST_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define RINGFLOW_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RINGFLOW_TEST_TSAN 1
#endif
#endif
#ifndef RINGFLOW_TEST_TSAN
#define RINGFLOW_TEST_TSAN 0
#endif

#define RINGFLOW_TEST_SANITIZED (RINGFLOW_TEST_ASAN || RINGFLOW_TEST_TSAN)

namespace test_support {
inline constexpr bool asan = RINGFLOW_TEST_ASAN;
inline constexpr bool tsan = RINGFLOW_TEST_TSAN;
inline constexpr bool sanitized = RINGFLOW_TEST_SANITIZED;
}  // namespace test_support
