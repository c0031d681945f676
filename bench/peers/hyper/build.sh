#!/bin/sh
# Build the Tokio + hyper peer (hyperhello) into $1 (cargo target dir;
# default bench/peers/hyper/target, gitignored); the binary ends up in
# <target>/release/. Offline only, as bench/peers/tokio: crates come from
# Debian's vendored sources in /usr/share/cargo/registry (librust-hyper-dev,
# librust-tokio-dev; scripts/setup.sh --bench installs them). Skips cleanly
# (exit 0) without them. Silent on success; cargo's output goes to
# <target>/build.log, shown on failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
registry=/usr/share/cargo/registry
if [ ! -x /usr/bin/cargo ] || [ ! -x /usr/bin/rustc ] ||
   ! ls -d "$registry"/tokio-1.* "$registry"/hyper-0.14.* >/dev/null 2>&1; then
    echo "hyper peer: skipped (scripts/setup.sh --bench installs cargo librust-tokio-dev librust-hyper-dev)" >&2
    exit 0
fi
target=${1:-$here/target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
log=$target/build.log
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER RUSTFLAGS CARGO_BUILD_TARGET 2>/dev/null || true
export CARGO_HOME="$target/cargo-home"
cd "$here"
if ! /usr/bin/cargo build --release --offline --target-dir "$target" --bins >"$log" 2>&1; then
    cat "$log" >&2
    echo "hyper peer: build failed (log: $log)" >&2
    exit 1
fi
