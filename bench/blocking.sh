#!/usr/bin/env bash
# spawn_blocking round trip with its Tokio peer, in one invocation:
#   ringflow (bench/blocking_bench) and tokio::task::spawn_blocking
#   (bench/peers/tokio blockingbench, skipped with a message without cargo).
# Usage: bench/blocking.sh [--calls N] [--reps R] [--quick]   -> JSON on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
if [[ ! -f $out/build.ninja ]]; then
  meson setup "$out" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$out" bench/blocking_bench >/dev/null
calls=200000 reps=5
while (($#)); do
  case $1 in
    --calls) calls=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --quick) calls=2000 reps=1; shift ;;
    *) echo "usage: bench/blocking.sh [--calls N] [--reps R] [--quick]" >&2; exit 2 ;;
  esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$out/bench/blocking_bench" --calls "$calls" --reps "$reps" >"$tmp/ringflow.json"
: >"$tmp/tokio.json"
if bash bench/peers/tokio/build.sh "$out/peers-tokio" && [[ -x $out/peers-tokio/release/blockingbench ]]; then
  "$out/peers-tokio/release/blockingbench" --calls "$calls" --reps "$reps" >"$tmp/tokio.json"
fi
python3 - "$tmp/ringflow.json" "$tmp/tokio.json" <<'PY'
import json, sys
rf = json.load(open(sys.argv[1]))
peer = open(sys.argv[2]).read().strip()
tk = json.loads(peer) if peer else None
rows = []
for r in rf["results"]:
    row = {"workers": r["workers"], "ringflow_ns_per_call": r["ns_per_call"]}
    if tk:
        t = next(x for x in tk["results"] if x["workers"] == r["workers"])
        row["tokio_ns_per_call"] = t["ns_per_call"]
        row["tokio_over_ringflow"] = round(t["ns_per_call"] / r["ns_per_call"], 2)
    rows.append(row)
print(json.dumps({"bench": "spawn_blocking round trip (median ns per call)", "results": rows}, indent=1))
PY
