#!/usr/bin/env bash
# Synchronisation benchmark with its Tokio peer, in one invocation:
#   ringflow::semaphore (bench/sync_bench) and tokio::sync::Semaphore
#   (bench/peers/tokio syncbench, skipped with a message when cargo or
#   Debian's tokio sources are absent), same scenarios, medians of R runs.
# Usage: bench/sync.sh [--ops N] [--reps R] [--quick]   -> JSON on stdout,
# a table on stderr. speedup = tokio ns / ringflow ns (above 1: ringflow ahead).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
if [[ ! -f $out/build.ninja ]]; then
  meson setup "$out" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$out" bench/sync_bench >/dev/null

args=()
while (($#)); do
  case $1 in
    --ops | --reps) args+=("$1" "$2"); shift 2 ;;
    --quick) args+=(--quick); shift ;;
    *) echo "usage: bench/sync.sh [--ops N] [--reps R] [--quick]" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "ringflow..." >&2
"$out/bench/sync_bench" "${args[@]}" >"$tmp/ringflow.json"
: >"$tmp/peers.jsonl"
if bash bench/peers/tokio/build.sh "$out/peers-tokio" && [[ -x $out/peers-tokio/release/syncbench ]]; then
  echo "tokio..." >&2
  "$out/peers-tokio/release/syncbench" "${args[@]}" >>"$tmp/peers.jsonl"
fi
python3 - "$tmp/ringflow.json" "$tmp/peers.jsonl" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc["results"] + [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
key = lambda r: (r["scenario"], r["workers"])
ours = {key(r): r["ns_per_op"] for r in rows if r["impl"] == "ringflow"}
ratios = [{"scenario": r["scenario"], "workers": r["workers"], "baseline": r["impl"],
           "baseline_ns": r["ns_per_op"], "ringflow_ns": ours[key(r)],
           "speedup": round(r["ns_per_op"] / ours[key(r)], 2)}
          for r in rows if r["impl"] != "ringflow" and key(r) in ours]
json.dump({"bench": "sync", "ops": doc["ops"], "reps": doc["reps"], "statistic": "median",
           "results": rows, "ratios": ratios}, sys.stdout, indent=1)
print()
sys.stderr.write("\n%-22s %2s | %12s | %-8s %10s | speedup\n" % ("scenario", "w", "ringflow ns", "peer", "ns"))
for s in ratios:
    sys.stderr.write("%-22s %2d | %12.2f | %-8s %10.2f | %5.2fx\n" % (s["scenario"], s["workers"], s["ringflow_ns"],
                     s["baseline"], s["baseline_ns"], s["speedup"]))
PY
