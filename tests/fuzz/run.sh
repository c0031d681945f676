#!/usr/bin/env bash
# A long fuzzing run of the HTTP request parser (tests/fuzz/http_request_fuzz.cpp)
# on one core (one process): builds the target with clang (-fsanitize=fuzzer,address and
# UBSan) in build/fuzz, then runs it for SECONDS (default 1200) over a copy of
# the seed corpus in build/fuzz/corpus (new inputs are kept there, the seeds
# in the repo are not touched). A crash leaves its input in build/fuzz/
# (crash-*, leak-*, timeout-*): add it to tests/fuzz/corpus/http/ as a
# regression seed once fixed (the two first bytes pick the buffer size and
# limits, see the target).
# Usage: tests/fuzz/run.sh [SECONDS] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-1200}
shift || true
dir=build/fuzz
if [[ ! -f $dir/build.ninja ]]; then
  CXX=clang++ meson setup "$dir" -Dbench=false -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args=-fno-sanitize=function -Dcpp_link_args=-fno-sanitize=function >/dev/null
fi
ninja -C "$dir" tests/fuzz/http_request_fuzz >/dev/null
mkdir -p "$dir/corpus"
cp -n tests/fuzz/corpus/http/* "$dir/corpus/"
cd "$dir"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
  exec ./tests/fuzz/http_request_fuzz -max_total_time="$seconds" -max_len=20000 -timeout=10 \
  -dict=../../tests/fuzz/http.dict \
  -print_final_stats=1 "$@" corpus
