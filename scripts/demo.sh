#!/usr/bin/env bash
# The README's first command: install what is missing, build, run the demo:
# ringflow-lab, which runs every overflow strategy against a producer faster
# than its consumer (~20 s) and ends with its table. Extra arguments go to
# the lab (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ ! -f build/release/build.ninja ]]; then
  meson setup build/release --buildtype=release -Dtests=false -Dbench=false >/dev/null
fi
ninja -C build/release >/dev/null
exec build/release/lab/ringflow-lab "$@"
