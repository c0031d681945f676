#!/usr/bin/env bash
# Installs the Debian 12 packages ringflow needs, only those missing.
# Usage: scripts/setup.sh [--tests] [--bench]   (--tests adds clang for the
# sanitizer builds and libFuzzer, cmake for the install check's CMake
# consumer, hiredis with redis-server and redis-tools for the Redis client's
# tests and benchmark, and libhttp-parser for the HTTP server; --bench adds
# what bench/http.sh runs: wrk, nginx-light, and Debian's Rust toolchain with
# the vendored tokio and hyper crates the Tokio peers are built from, offline)
# Quiet when everything is already there.
set -euo pipefail

packages=(g++ meson ninja-build pkg-config liburing-dev libfmt-dev catch2 libcli11-dev)
for arg in "$@"; do
  case $arg in
    --tests) packages+=(clang-14 libclang-rt-14-dev python3 cmake libhiredis-dev redis-server redis-tools libhttp-parser-dev) ;;
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
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "ringflow needs these packages: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
