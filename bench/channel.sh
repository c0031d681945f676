#!/usr/bin/env bash
# Channel benchmark with its baselines, in one invocation:
#   ringflow channels and a mutex+condvar queue (bench/channel_bench),
#   Go buffered channels and Tokio bounded mpsc (bench/peers/, skipped with a
#   message when their toolchains are absent).
# Usage: bench/channel.sh [--items N] [--reps R] [--quick]   -> JSON on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
if [[ ! -f $out/build.ninja ]]; then
  meson setup "$out" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$out" bench/channel_bench >/dev/null

items=10000000 reps=3
while (($#)); do
  case $1 in
    --items) items=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --quick) items=200000 reps=1; shift ;;
    *) echo "usage: bench/channel.sh [--items N] [--reps R] [--quick]" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "ringflow + mutex baseline..." >&2
"$out/bench/channel_bench" --items "$items" --reps "$reps" >"$tmp/ringflow.json"
: >"$tmp/peers.jsonl"
if bash bench/peers/go/build.sh "$out/peers-go" && [[ -x $out/peers-go/chanbench ]]; then
  echo "go..." >&2
  "$out/peers-go/chanbench" -items "$items" -reps "$reps" >>"$tmp/peers.jsonl"
fi
if bash bench/peers/tokio/build.sh "$out/peers-tokio" && [[ -x $out/peers-tokio/release/chanbench ]]; then
  echo "tokio..." >&2
  "$out/peers-tokio/release/chanbench" --items "$items" --reps "$reps" >>"$tmp/peers.jsonl"
fi
python3 - "$tmp/ringflow.json" "$tmp/peers.jsonl" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc["results"] + [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
def fig(r): return r.get("ns_per_item", r.get("ns_per_roundtrip"))
def key(r): return (r["scenario"], r["workers"], r.get("capacity", 1))
ours = {key(r): fig(r) for r in rows if r["impl"] == "ringflow"}
summary = []
for r in rows:
    if r["impl"] == "ringflow":
        continue
    # A peer's 2-worker row is set beside ringflow's tasks started by spawn()
    # and placed by the runtime (like for like: Go and Tokio place theirs too),
    # pinned apart, and pinned together on one worker.
    for scen in (r["scenario"] + "_spawned", r["scenario"], r["scenario"] + "_colocated"):
        k = (scen, r["workers"], r.get("capacity", 1))
        if k in ours:
            summary.append({"scenario": scen, "workers": r["workers"], "capacity": r.get("capacity", 1),
                            "baseline": r["impl"], "baseline_ns": fig(r), "ringflow_ns": ours[k],
                            "speedup": round(fig(r) / ours[k], 2)})
json.dump({"bench": "channel", "items": doc["items"], "reps": doc["reps"], "results": rows, "ratios": summary},
          sys.stdout, indent=1)
print()
sys.stderr.write("\n%-18s %2s %5s | %10s | %-14s %10s | speedup\n" % ("scenario", "w", "cap", "ringflow", "baseline", "ns"))
for s in summary:
    sys.stderr.write("%-18s %2d %5d | %10.2f | %-14s %10.2f | %5.2fx\n" % (s["scenario"], s["workers"], s["capacity"],
                     s["ringflow_ns"], s["baseline"], s["baseline_ns"], s["speedup"]))
PY
