#!/bin/sh
# Build the Go baseline peers into $1 (default: bench/peers/go/bin).
# Skips cleanly (exit 0, no binaries) when Go is not installed. Offline-safe.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v go >/dev/null 2>&1; then
    echo "go peers: skipped (golang-go not installed)" >&2
    exit 0
fi
out=${1:-$here/bin}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export GOPROXY=off GOTOOLCHAIN=local GOFLAGS= GO111MODULE=on GOWORK=off
export GOCACHE="${TMPDIR:-/tmp}/ringflow-go-peers-cache-$(id -u)"
cd "$here"
go build -trimpath -o "$out/chanbench" ./chanbench
go build -trimpath -o "$out/echoserver" ./echoserver
