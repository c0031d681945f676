#!/usr/bin/env bash
# The README's second command: install what is missing, then build and run
# the whole test suite three times: g++ debugoptimized, clang ASan+UBSan and
# clang TSan. Any failure or sanitizer report fails the run.
# Usage: scripts/test.sh [release|asan|tsan ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
# setup.sh has just installed node, Chromium and playwright-core: the browser
# test must run, not skip.
export RINGFLOW_REQUIRE_BROWSER=1

configure() {  # name, compiler, meson options...
  local name=$1 cxx=$2
  shift 2
  local dir=build/test-$name
  if [[ ! -f $dir/build.ninja ]]; then
    # Warnings are errors in our own CI builds only, never in users' builds.
    # Quiet when it configures; meson's messages when it does not.
    if ! CXX=$cxx meson setup "$dir" -Dbench=false -Dwerror=true "$@" >"/tmp/ringflow-setup-$name.log" 2>&1; then
      tail -40 "/tmp/ringflow-setup-$name.log"
      echo "== $name: meson setup failed"
      exit 1
    fi
  fi
}

builds=("$@")
((${#builds[@]})) || builds=(release asan tsan)
total_pass=0
total_fail=0
for b in "${builds[@]}"; do
  case $b in
    release) configure release g++ --buildtype=debugoptimized ;;
    # g++ 12 does not turn symmetric transfer into tail calls under the
    # sanitizers (the stack grows with every co_await), clang does.
    # -fsanitize=function trips clang 14 on coroutine frames. The flag goes
    # in meson's own options, not CXXFLAGS/LDFLAGS: meson's cmake module runs
    # cmake, which would hand LDFLAGS to gcc, and gcc refuses it.
    asan) configure asan clang++ --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
            -Dcpp_args=-fno-sanitize=function -Dcpp_link_args=-fno-sanitize=function ;;
    tsan) configure tsan clang++ --buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false ;;
    *) echo "unknown build: $b (release, asan, tsan)" >&2; exit 2 ;;
  esac
  echo "== $b: building"
  # Quiet when it builds; the compiler's messages when it does not.
  if ! ninja -C "build/test-$b" >"build/test-$b/build.log" 2>&1; then
    grep -E -A12 'FAILED|error:' "build/test-$b/build.log" | head -150 || tail -40 "build/test-$b/build.log"
    echo "== $b: the build failed (build/test-$b/build.log)"
    exit 1
  fi
  echo "== $b: testing"
  set +e
  meson test -C "build/test-$b" --print-errorlogs --num-processes 1 --no-rebuild
  rc=$?
  set -e
  read -r pass fail < <(python3 - "build/test-$b/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] in ("OK", "EXPECTEDFAIL", "SKIP"): p += 1
    else: f += 1
print(p, f)
PY
)
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
  if ((rc != 0 && fail == 0)); then total_fail=$((total_fail + 1)); fi
done
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
