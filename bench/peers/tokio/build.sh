#!/bin/sh
# Build the Tokio baseline peers (chanbench, echoserver) into $1
# (cargo target dir; default bench/peers/tokio/target, gitignored).
# Binaries end up in <target>/release/. Offline only: crates come from
# Debian's vendored sources in /usr/share/cargo/registry (librust-tokio-dev),
# see .cargo/config.toml. Skips cleanly (exit 0) without Debian's cargo/tokio.
# Silent on success; cargo's output goes to <target>/build.log, shown on failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
registry=/usr/share/cargo/registry
if [ ! -x /usr/bin/cargo ] || [ ! -x /usr/bin/rustc ] ||
   ! ls -d "$registry"/tokio-1.* >/dev/null 2>&1; then
    echo "tokio peers: skipped (install cargo librust-tokio-dev)" >&2
    exit 0
fi
target=${1:-$here/target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
log=$target/build.log
# Use Debian's toolchain even when a rustup cargo/rustc is first on PATH.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER RUSTFLAGS CARGO_BUILD_TARGET 2>/dev/null || true
export CARGO_HOME="$target/cargo-home"   # keep ~/.cargo config/registries out of it
cd "$here"
if ! /usr/bin/cargo build --release --offline --target-dir "$target" \
        --bins >"$log" 2>&1; then
    cat "$log" >&2
    echo "tokio peers: build failed (log: $log)" >&2
    exit 1
fi
