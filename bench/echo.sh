#!/usr/bin/env bash
# TCP echo benchmark: ringflow's examples/echo_server against the baseline
# servers in bench/peers/ (C epoll, C raw liburing with and without
# DEFER_TASKRUN, Go, Tokio current-thread), driven by examples/echo_client.
#
# Usage: bench/echo.sh [--quick] [--duration S] [--rounds R] [--connections "1 50 500"] [--size B]
#   default: 3 rounds of 3 s per row, 1, 50 and 500 connections, 64-byte messages
#   --quick: 50 connections only, 1 round of 2 s
# Rounds are interleaved (every server once per round, then again), and each
# row reports the median round (by req/s; CPU per request likewise), so a
# noisy neighbour that slows one stretch of the run hits every server alike.
#
# Each server runs pinned to core 0 (taskset -c 0) and the client to core 1;
# the server's CPU time (utime+stime from /proc/PID/stat) is read before and
# after the client run, giving server CPU microseconds per request. Every
# server is stopped with SIGTERM and must exit 0 within 5 s.
# stdout: one JSON document with every row; stderr: progress and a table with
# ratios against the raw-liburing baseline ("uring").
# "client_bound": true when the client's CPU time was >= 90% of the wall time,
# i.e. the pinned client core, not the server, limited the throughput.
# Peers whose toolchain is missing (Go, cargo) are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
duration=3
rounds=3
conns_list="1 50 500"
size=64
while (($#)); do
  case $1 in
    --quick) duration=2 conns_list=50 rounds=1; shift ;;
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --connections) conns_list=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bench/echo.sh [--quick] [--duration S] [--rounds R] [--connections \"1 50 500\"] [--size B]" >&2; exit 2 ;;
  esac
done
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then echo "bench/echo.sh: --rounds must be a positive integer" >&2; exit 2; fi

# ---- build ------------------------------------------------------------------
if [[ ! -f $out/build.ninja ]]; then
  meson setup "$out" --buildtype=release -Dtests=false >/dev/null
fi
build_log=$(mktemp)
if ! ninja -C "$out" examples/echo_server examples/echo_client >"$build_log" 2>&1; then
  sleep 2  # another meson process may hold the build directory: retry once
  if ! ninja -C "$out" examples/echo_server examples/echo_client >"$build_log" 2>&1; then
    cat "$build_log" >&2; rm -f "$build_log"; exit 1
  fi
fi
rm -f "$build_log"
bash bench/peers/c/build.sh "$out/peers-c" || echo "c peers: build failed, skipped" >&2
bash bench/peers/go/build.sh "$out/peers-go" || echo "go peers: build failed, skipped" >&2
bash bench/peers/tokio/build.sh "$out/peers-tokio" || echo "tokio peers: build failed, skipped" >&2

# name|binary|arguments (port 0: every server prints the port it got)
servers=(
  "ringflow|$out/examples/echo_server|--address 127.0.0.1 --port 0 --threads 1"
  "epoll|$out/peers-c/epoll_echo|0"
  "uring|$out/peers-c/uring_echo|0"
  "uring-nodefer|$out/peers-c/uring_echo|--no-defer 0"
  "go|$out/peers-go/echoserver|-addr 127.0.0.1 -port 0"
  "tokio|$out/peers-tokio/release/echoserver|--addr 127.0.0.1 --port 0 --threads 1"
)

clk_tck=$(getconf CLK_TCK)
tmp=$(mktemp -d)
spid=
cleanup() {
  if [[ -n $spid ]] && kill -0 "$spid" 2>/dev/null; then kill -KILL "$spid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# utime+stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat;
# the command name in field 2 may contain spaces, so cut after its ')').
cpu_ticks() {
  local s
  s=$(<"/proc/$1/stat")
  s=${s##*) }
  awk '{print $12 + $13}' <<<"$s"
}

rows=$tmp/rows.jsonl
: >"$rows"
# row NAME CONNS KEY=VALUE...: appends one JSON object (values already JSON)
row() {
  local name=$1 conns=$2; shift 2
  local json="{\"server\":\"$name\",\"connections\":$conns"
  local kv
  for kv in "$@"; do json+=",\"${kv%%=*}\":${kv#*=}"; done
  echo "$json}" >>"$rows"
}

for round in $(seq "$rounds"); do
for spec in "${servers[@]}"; do
  IFS='|' read -r name bin args <<<"$spec"
  if [[ ! -x $bin ]]; then
    ((round > 1)) || echo "$name: skipped ($bin not built)" >&2
    continue
  fi
  for conns in $conns_list; do
    echo "round $round/$rounds: $name, $conns connection(s), ${duration} s..." >&2
    # Fresh output files per row: the loop below must never read the previous
    # server's "listening" line before the shell truncated the file.
    rm -f "$tmp/server.out" "$tmp/server.err" "$tmp/client.json" "$tmp/client.err"
    : >"$tmp/server.out"
    # shellcheck disable=SC2086 # $args is a word list on purpose
    taskset -c 0 "$bin" $args >>"$tmp/server.out" 2>"$tmp/server.err" &
    spid=$!
    port=
    for _ in $(seq 100); do
      port=$(awk '$1 == "listening" {print $2; exit}' "$tmp/server.out")
      [[ -n $port ]] && break
      kill -0 "$spid" 2>/dev/null || break
      sleep 0.05
    done
    if [[ -z $port ]]; then
      echo "$name: did not print 'listening <port>'" >&2
      cat "$tmp/server.err" >&2
      kill -KILL "$spid" 2>/dev/null || true
      wait "$spid" 2>/dev/null || true
      spid=
      row "$name" "$conns" 'error="no listening line"'
      continue
    fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(cpu_ticks "$spid")
    crc=0
    # (timeout: a server that stops answering must not hang the benchmark)
    timeout "$(awk -v d="$duration" 'BEGIN {print int(d * 2 + 30)}')" \
      taskset -c 1 "$out/examples/echo_client" --address 127.0.0.1 --port "$port" --connections "$conns" \
      --size "$size" --duration "$duration" --json >"$tmp/client.json" 2>"$tmp/client.err" || crc=$?
    t1=$(cpu_ticks "$spid" 2>/dev/null || echo "$t0")
    # Stop the server: SIGTERM, then it has 5 s to exit (0 expected).
    kill -TERM "$spid"
    for _ in $(seq 100); do
      kill -0 "$spid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$spid" 2>/dev/null; then
      echo "$name: still running 5 s after SIGTERM, killed" >&2
      kill -KILL "$spid" 2>/dev/null || true
      src=-9
      wait "$spid" 2>/dev/null || true
    else
      src=0
      wait "$spid" || src=$?
    fi
    spid=
    if [[ $src != 0 ]]; then
      echo "$name: exit status $src after SIGTERM" >&2
      sed 's/^/  server: /' "$tmp/server.err" >&2
    fi
    if [[ $crc != 0 ]] || [[ ! -s $tmp/client.json ]]; then
      echo "$name: echo_client failed (status $crc)" >&2
      sed 's/^/  client: /' "$tmp/client.err" >&2
    fi
    client=$(head -n 1 "$tmp/client.json")
    [[ -n $client ]] || client=null
    row "$name" "$conns" "client=$client" "client_status=$crc" "server_ticks=$((t1 - t0))" \
      "clk_tck=$clk_tck" "server_exit=$src" "loadavg_1m=$load"
  done
done
done

python3 - "$rows" "$duration" "$size" "$rounds" <<'PY'
import json, sys
raw = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
per_round = []
for r in raw:
    c = r.get("client") or {}
    out = {"server": r["server"], "connections": r["connections"]}
    if "error" in r or not c:
        out["error"] = r.get("error", "echo_client failed (status %s)" % r.get("client_status"))
        per_round.append(out)
        continue
    cpu_s = r["server_ticks"] / r["clk_tck"]
    wall = c["wall_s"]
    out.update({
        "size": c["size"], "duration_s": c["duration_s"], "wall_s": wall, "requests": c["requests"],
        "rps": c["rps"], "p50_us": c["p50_us"], "p99_us": c["p99_us"], "p999_us": c["p999_us"],
        "server_cpu_s": round(cpu_s, 3),
        "server_cpu_us_per_req": round(cpu_s * 1e6 / c["requests"], 3) if c["requests"] else None,
        "server_cpu_util": round(cpu_s / wall, 3) if wall else None,
        "client_cpu_s": c["client_cpu_s"],
        "client_bound": bool(wall and c["client_cpu_s"] >= 0.9 * wall),
        "errors": c["errors"] + c["mismatches"], "client_status": r["client_status"],
        "server_exit": r["server_exit"], "clean_exit": r["server_exit"] == 0,
        "loadavg_1m": r["loadavg_1m"],
    })
    per_round.append(out)
    continue
# One row per (server, connections): the median round by req/s, with the
# median CPU per request over the rounds and every round's figures.
rows, order = [], []
groups = {}
for r in per_round:
    k = (r["server"], r["connections"])
    if k not in groups:
        groups[k] = []
        order.append(k)
    groups[k].append(r)
def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
for k in order:
    g = groups[k]
    ok = [r for r in g if "rps" in r]
    if not ok:
        rows.append(g[0])
        continue
    ok.sort(key=lambda r: r["rps"])
    out = dict(ok[(len(ok) - 1) // 2])
    cpus = [r["server_cpu_us_per_req"] for r in ok if r["server_cpu_us_per_req"]]
    if cpus:
        out["server_cpu_us_per_req"] = round(median(cpus), 3)
    out["rounds"] = len(g)
    out["failed_rounds"] = len(g) - len(ok)
    out["rounds_rps"] = [r["rps"] for r in g if "rps" in r]
    out["rounds_cpu_us_per_req"] = [r["server_cpu_us_per_req"] for r in g if "rps" in r]
    out["errors"] = sum(r["errors"] for r in ok)
    out["clean_exit"] = all(r.get("clean_exit", False) for r in g)
    out["loadavg_1m"] = max(r.get("loadavg_1m", 0) for r in g)
    rows.append(out)
base = {r["connections"]: r for r in rows if r["server"] == "uring" and "rps" in r}
for r in rows:
    b = base.get(r["connections"])
    if b and "rps" in r:
        r["rps_vs_uring"] = round(r["rps"] / b["rps"], 3) if b["rps"] else None
        if r["server_cpu_us_per_req"] and b["server_cpu_us_per_req"]:
            r["cpu_per_req_vs_uring"] = round(r["server_cpu_us_per_req"] / b["server_cpu_us_per_req"], 3)
json.dump({"bench": "echo", "size": int(sys.argv[3]), "duration_s": float(sys.argv[2]), "rounds": int(sys.argv[4]),
           "pinning": {"server": "taskset -c 0", "client": "taskset -c 1"}, "results": rows},
          sys.stdout, indent=1)
print()
w = sys.stderr.write
w("\n%-13s %5s | %9s %7s | %8s %8s %8s | %7s %5s %7s | %-6s %-4s %s\n" % (
    "server", "conns", "req/s", "x uring", "p50 us", "p99 us", "p999 us", "cpu us", "srv", "x uring",
    "client", "exit", "load"))
w("%-13s %5s | %9s %7s | %8s %8s %8s | %7s %5s %7s | %-6s %-4s %s\n" % (
    "", "", "", "", "", "", "", "per req", "util", "cpu/req", "bound", "", "1m"))
for r in rows:
    if "rps" not in r:
        w("%-13s %5d | %s\n" % (r["server"], r["connections"], r["error"]))
        continue
    def f(x, fmt):
        return fmt % x if x is not None else "-"
    w("%-13s %5d | %9.0f %7s | %8.1f %8.1f %8.1f | %7s %5s %7s | %-6s %-4s %.2f%s\n" % (
        r["server"], r["connections"], r["rps"], f(r.get("rps_vs_uring"), "%.2fx"),
        r["p50_us"], r["p99_us"], r["p999_us"], f(r["server_cpu_us_per_req"], "%.2f"),
        f(r["server_cpu_util"], "%.2f"), f(r.get("cpu_per_req_vs_uring"), "%.2fx"),
        "yes" if r["client_bound"] else "no", "ok" if r["clean_exit"] else "st %s" % r["server_exit"],
        r["loadavg_1m"], "" if not r["errors"] else "  ERRORS %d" % r["errors"]))
if any(r.get("loadavg_1m", 0) > 1.0 for r in rows):
    w("warning: the 1-minute load average exceeded 1 during the run: other processes shared the\n"
      "pinned cores, so these figures are noisy (rerun on an idle machine).\n")
if any(r.get("client_bound") for r in rows):
    w("client_bound: the client core was ~100% busy; on 2 cores it cannot get more, so those rows\n"
      "measure the client as much as the server (compare server cpu us/req rather than req/s).\n")
PY
