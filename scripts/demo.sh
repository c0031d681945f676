#!/usr/bin/env bash
# The README's first command: install what is missing, build, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ ! -f build/release/build.ninja ]]; then
  meson setup build/release --buildtype=release -Dtests=false -Dbench=false >/dev/null
fi
ninja -C build/release >/dev/null
exec build/release/examples/hello "$@"
