#!/usr/bin/env bash
# Installs the Debian 12 packages ringflow needs, only those missing.
# Usage: scripts/setup.sh [--tests] [--bench]   (--tests adds clang (clang++)
# for the sanitizer builds and libFuzzer, cmake for the install check's CMake
# consumer, hiredis with redis-server and redis-tools for the Redis client's
# tests and benchmark, libhttp-parser for the HTTP server, and for the
# dashboard's browser test Chromium, node and npm, and playwright-core from
# tests/browser's lockfile; --bench adds what bench/http.sh runs: wrk,
# nginx-light, and Debian's Rust toolchain with the vendored tokio and hyper
# crates the Tokio peers are built from, offline)
# Quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=false
packages=(g++ meson ninja-build pkg-config liburing-dev libfmt-dev catch2 libcli11-dev)
for arg in "$@"; do
  case $arg in
    --tests)
      tests=true
      packages+=(clang clang-14 libclang-rt-14-dev python3 cmake libhiredis-dev redis-server redis-tools libhttp-parser-dev chromium)
      ;;
    --bench) packages+=(python3 libhttp-parser-dev wrk nginx-light cargo rustc librust-tokio-dev librust-hyper-dev) ;;
    *) echo "usage: scripts/setup.sh [--tests] [--bench]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# node and npm may come from another package than Debian's (one nodejs that
# ships both): asked for only when the command is missing.
if $tests; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "ringflow needs these packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The browser test's driver, exactly as locked, when the lock changed since
# the last install.
if $tests; then
  browser=tests/browser
  if [[ ! -f $browser/node_modules/.package-lock.json || $browser/package-lock.json -nt $browser/node_modules/.package-lock.json ]]; then
    echo "installing playwright-core into $browser/node_modules" >&2
    (cd "$browser" && npm ci --silent --no-audit --no-fund >/dev/null)
  fi
fi
