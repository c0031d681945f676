#!/bin/sh
# Build the C baseline peers (epoll_echo, uring_echo) into $1
# (default: bench/peers/c/bin). Quiet on success, idempotent.
# Honours CC (default cc) and extra CFLAGS, e.g.
#   CFLAGS="-g -fsanitize=address" bench/peers/c/build.sh /tmp/asan
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/bin}
mkdir -p "$out"
cc=${CC:-cc}
flags="-O2 -Wall -Wextra ${CFLAGS:-}"
# shellcheck disable=SC2086 # $flags is a word list on purpose
$cc $flags -o "$out/epoll_echo" "$here/epoll_echo.c"
# shellcheck disable=SC2086
$cc $flags -o "$out/uring_echo" "$here/uring_echo.c" -luring
