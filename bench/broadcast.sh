#!/usr/bin/env bash
# Broadcast benchmark with its baseline, in one invocation: ringflow's
# broadcast (bench/broadcast_bench) and tokio::sync::broadcast
# (bench/peers/tokio bcastbench, skipped with a message without Debian's
# cargo and tokio). One sender, 1/16/256 receivers, workers 1 and 2; the
# figure is ns per value per receiver, the median of R runs.
# Usage: bench/broadcast.sh [--deliveries N] [--reps R] [--quick]   -> JSON on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
if [[ ! -f $out/build.ninja ]]; then
  meson setup "$out" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$out" bench/broadcast_bench >/dev/null

args=()
while (($#)); do
  case $1 in
    --deliveries|--reps) args+=("$1" "$2"); shift 2 ;;
    --quick) args+=("$1"); shift ;;
    *) echo "usage: bench/broadcast.sh [--deliveries N] [--reps R] [--quick]" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "ringflow..." >&2
"$out/bench/broadcast_bench" "${args[@]}" >"$tmp/ringflow.json"
: >"$tmp/peers.jsonl"
if bash bench/peers/tokio/build.sh "$out/peers-tokio" && [[ -x $out/peers-tokio/release/bcastbench ]]; then
  echo "tokio..." >&2
  "$out/peers-tokio/release/bcastbench" "${args[@]}" >>"$tmp/peers.jsonl"
fi
python3 - "$tmp/ringflow.json" "$tmp/peers.jsonl" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc["results"] + [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
fig = "ns_per_value_per_receiver"
def key(r, scen): return (scen, r["workers"], r["receivers"], r["capacity"])
ours = {key(r, r["scenario"]): r[fig] for r in rows if r["impl"] == "ringflow"}
ratios = []
for r in rows:
    if r["impl"] == "ringflow":
        continue
    # A peer's row is set beside ringflow's tasks started by spawn() and
    # placed by the runtime (like for like), and on 2 workers also beside
    # every task pinned to one worker.
    for scen in ("broadcast", "broadcast_colocated"):
        k = key(r, scen)
        if k in ours:
            ratios.append({"scenario": scen, "workers": r["workers"], "receivers": r["receivers"],
                           "capacity": r["capacity"], "baseline": r["impl"], "baseline_ns": r[fig],
                           "ringflow_ns": ours[k], "speedup": round(r[fig] / ours[k], 2)})
json.dump({"bench": "broadcast", "deliveries": doc["deliveries"], "reps": doc["reps"], "results": rows,
           "ratios": ratios}, sys.stdout, indent=1)
print()
sys.stderr.write("\n%-19s %2s %9s | %10s | %-8s %10s | speedup\n" % ("scenario", "w", "receivers", "ringflow",
                 "baseline", "ns"))
for s in ratios:
    sys.stderr.write("%-19s %2d %9d | %10.2f | %-8s %10.2f | %5.2fx\n" % (s["scenario"], s["workers"], s["receivers"],
                     s["ringflow_ns"], s["baseline"], s["baseline_ns"], s["speedup"]))
PY
