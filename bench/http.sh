#!/usr/bin/env bash
# HTTP/1.1 benchmark: ringflow's examples/http_hello (one worker) beside
# nginx (one worker process, nginx-light) and Tokio + hyper (current_thread,
# bench/peers/hyper), all answering GET / with the same 13-byte body
# ("hello, world\n", Content-Type: text/plain, Content-Length, Date), loaded
# by wrk over keep-alive connections.
#
# Usage: bench/http.sh [--quick] [--duration S] [--rounds R] [--connections "1 50 500"]
#                      [--servers "ringflow nginx hyper"] [--baseline BIN]
#   default: 3 rounds of 5 s per row at 1, 50 and 500 connections
#   --quick: 50 connections only, 1 round of 3 s
#   --baseline BIN: also runs BIN (another build of examples/http_hello, e.g.
#   of an older commit) as "ringflow-base", to measure a change
# Needs wrk and nginx-light, and for the hyper peer cargo with Debian's
# vendored crates: scripts/setup.sh --bench installs them (this script
# installs nothing; a missing peer is skipped with a message).
#
# Each server runs pinned to core 0 (taskset -c 0), wrk (one thread) to
# core 1. Rounds are interleaved (every server at every connection count,
# then again), each row reports the median round by req/s, and the median
# server CPU per request over the rounds: utime+stime of the server's
# processes (nginx: master and worker) from /proc/PID/stat before and after
# the wrk run, divided by the requests wrk counted. Latency p99 is wrk's
# (coordinated omission not corrected: wrk is closed-loop).
# stdout: one JSON document with every row; stderr: progress and a table with
# ratios against nginx and hyper. "client_bound": wrk's CPU time was >= 90%
# of the wall time (the client core, not the server, was the limit).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
duration=5
rounds=3
conns_list="1 50 500"
server_list="ringflow nginx hyper"
baseline_bin=
while (($#)); do
  case $1 in
    --quick) duration=3 conns_list=50 rounds=1; shift ;;
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --connections) conns_list=$2; shift 2 ;;
    --servers) server_list=$2; shift 2 ;;
    --baseline) baseline_bin=$(realpath "$2"); server_list+=" ringflow-base"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bench/http.sh [--quick] [--duration S] [--rounds R] [--connections \"1 50 500\"] [--servers \"ringflow nginx hyper\"] [--baseline BIN]" >&2; exit 2 ;;
  esac
done
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then echo "bench/http.sh: --rounds must be a positive integer" >&2; exit 2; fi
if ! command -v wrk >/dev/null; then
  echo "bench/http.sh: wrk not found (scripts/setup.sh --bench installs it)" >&2
  exit 1
fi

# ---- build ------------------------------------------------------------------
if [[ ! -f $out/build.ninja ]]; then
  meson setup "$out" --buildtype=release -Dtests=false >/dev/null
fi
build_log=$(mktemp)
if ! ninja -C "$out" examples/http_hello >"$build_log" 2>&1; then
  sleep 2  # another meson process may hold the build directory: retry once
  if ! ninja -C "$out" examples/http_hello >"$build_log" 2>&1; then
    cat "$build_log" >&2; rm -f "$build_log"; exit 1
  fi
fi
rm -f "$build_log"
if [[ " $server_list " == *" hyper "* ]]; then
  bash bench/peers/hyper/build.sh "$out/peers-hyper" || echo "hyper peer: build failed, skipped" >&2
fi
nginx_bin=$(command -v nginx || true)
[[ -n $nginx_bin ]] || nginx_bin=/usr/sbin/nginx

clk_tck=$(getconf CLK_TCK)
tmp=$(mktemp -d)
spid=
cleanup() {
  if [[ -n $spid ]] && kill -0 "$spid" 2>/dev/null; then kill -KILL "$spid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# wrk's summary as one JSON line (latencies in microseconds).
cat >"$tmp/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,' ..
    '"max_us":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
LUA

# A port nobody listens on now (nginx needs one in its configuration).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# nginx's configuration, in the temp dir: one worker, no logs, no Server
# version, the same body; keepalive_requests unbounded like the others.
nginx_conf() {  # port
  mkdir -p "$tmp/nginx"
  cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  server_tokens off;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$1 backlog=1024;
    default_type text/plain;
    location = / { return 200 "hello, world\n"; }
    location / { return 404 "not found\n"; }
  }
}
EOF
}

# utime+stime of a process and its children that are still running, in clock
# ticks (fields 14 and 15 of /proc/PID/stat; cut after the command's ')').
cpu_ticks() {
  local total=0 p s
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    s=$(<"/proc/$p/stat") || continue
    s=${s##*) }
    total=$((total + $(awk '{print $12 + $13}' <<<"$s")))
  done
  echo "$total"
}

rows=$tmp/rows.jsonl
: >"$rows"
row() {  # NAME CONNS KEY=VALUE... (values already JSON)
  local name=$1 conns=$2; shift 2
  local json="{\"server\":\"$name\",\"connections\":$conns"
  local kv
  for kv in "$@"; do json+=",\"${kv%%=*}\":${kv#*=}"; done
  echo "$json}" >>"$rows"
}

start_server() {  # name -> sets spid, port (empty when it did not start)
  rm -f "$tmp/server.out" "$tmp/server.err"
  : >"$tmp/server.out"
  port=
  case $1 in
    ringflow) taskset -c 0 "$out/examples/http_hello" 0 1 >>"$tmp/server.out" 2>"$tmp/server.err" & spid=$! ;;
    ringflow-base) taskset -c 0 "$baseline_bin" 0 1 >>"$tmp/server.out" 2>"$tmp/server.err" & spid=$! ;;
    hyper) taskset -c 0 "$out/peers-hyper/release/hyperhello" 0 >>"$tmp/server.out" 2>"$tmp/server.err" & spid=$! ;;
    nginx)
      local p
      p=$(free_port)
      nginx_conf "$p"
      taskset -c 0 "$nginx_bin" -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" \
        >>"$tmp/server.out" 2>"$tmp/server.err" &
      spid=$!
      # Listening once it answers (the worker is up).
      for _ in $(seq 100); do
        if curl_free_get "$p"; then port=$p; break; fi
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.05
      done
      return
      ;;
  esac
  for _ in $(seq 100); do
    port=$(awk '$1 == "listening" {print $2; exit}' "$tmp/server.out")
    [[ -n $port ]] && break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.05
  done
}

# One GET / without curl: true when the answer is a 200.
curl_free_get() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(4096)
    if not b: break
    data += b
sys.exit(0 if data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello, world\n") else 1)
PY
}

stop_server() {  # name -> sets src
  kill -TERM "$spid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$spid" 2>/dev/null; then
    echo "$1: still running 5 s after SIGTERM, killed" >&2
    kill -KILL "$spid" 2>/dev/null || true
    src=-9
    wait "$spid" 2>/dev/null || true
  else
    src=0
    wait "$spid" || src=$?
  fi
  spid=
  if [[ $src != 0 ]]; then
    echo "$1: exit status $src after SIGTERM" >&2
    sed 's/^/  server: /' "$tmp/server.err" >&2
  fi
}

available() {  # name
  case $1 in
    ringflow) [[ -x $out/examples/http_hello ]] ;;
    ringflow-base) [[ -n $baseline_bin && -x $baseline_bin ]] ;;
    hyper) [[ -x $out/peers-hyper/release/hyperhello ]] ;;
    nginx) [[ -x $nginx_bin ]] ;;
    *) return 1 ;;
  esac
}

for round in $(seq "$rounds"); do
for conns in $conns_list; do
for name in $server_list; do
  if ! available "$name"; then
    ((round > 1)) || [[ $conns != "${conns_list%% *}" ]] || echo "$name: skipped (not installed or not built; scripts/setup.sh --bench)" >&2
    continue
  fi
  echo "round $round/$rounds: $name, $conns connection(s), ${duration} s..." >&2
  start_server "$name"
  if [[ -z $port ]]; then
    echo "$name: did not start" >&2
    cat "$tmp/server.err" >&2
    kill -KILL "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    spid=
    row "$name" "$conns" 'error="did not start"'
    continue
  fi
  load=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(cpu_ticks "$spid")
  wrc=0
  rm -f "$tmp/wrk.out"
  # wrk's own CPU time from bash's times for the child (user+sys).
  wstart=$(date +%s.%N)
  { /usr/bin/time -f '%U %S' -o "$tmp/wrk.time" \
      timeout "$((duration * 2 + 30))" taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --timeout 5s \
      -s "$tmp/report.lua" "http://127.0.0.1:$port/" >"$tmp/wrk.out" 2>"$tmp/wrk.err"; } || wrc=$?
  wend=$(date +%s.%N)
  t1=$(cpu_ticks "$spid")
  stop_server "$name"
  summary=$(grep '^{' "$tmp/wrk.out" | tail -n 1 || true)
  if [[ $wrc != 0 ]] || [[ -z $summary ]]; then
    echo "$name: wrk failed (status $wrc)" >&2
    sed 's/^/  wrk: /' "$tmp/wrk.err" "$tmp/wrk.out" >&2
    row "$name" "$conns" "error=\"wrk failed (status $wrc)\""
    continue
  fi
  read -r wu ws <"$tmp/wrk.time" || { wu=0; ws=0; }
  row "$name" "$conns" "wrk=$summary" "server_ticks=$((t1 - t0))" "clk_tck=$clk_tck" \
    "client_cpu_s=$(awk -v a="$wu" -v b="$ws" 'BEGIN {print a + b}')" \
    "wall_s=$(awk -v a="$wstart" -v b="$wend" 'BEGIN {print b - a}')" "server_exit=$src" "loadavg_1m=$load"
done
done
done

python3 - "$rows" "$duration" "$rounds" <<'PY'
import json, sys
raw = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
per_round = []
for r in raw:
    out = {"server": r["server"], "connections": r["connections"]}
    w = r.get("wrk")
    if "error" in r or not w:
        out["error"] = r.get("error", "no result")
        per_round.append(out)
        continue
    secs = w["duration_us"] / 1e6
    cpu_s = r["server_ticks"] / r["clk_tck"]
    errors = sum(w["errors"].values())
    out.update({
        "requests": w["requests"], "duration_s": round(secs, 3),
        "rps": round(w["requests"] / secs, 1) if secs else 0,
        "p50_us": w["p50_us"], "p99_us": w["p99_us"], "p999_us": w["p999_us"],
        "server_cpu_s": round(cpu_s, 3),
        "server_cpu_us_per_req": round(cpu_s * 1e6 / w["requests"], 3) if w["requests"] else None,
        "server_cpu_util": round(cpu_s / secs, 3) if secs else None,
        "client_cpu_s": r["client_cpu_s"],
        "client_bound": bool(r["wall_s"] and r["client_cpu_s"] >= 0.9 * min(r["wall_s"], secs)),
        "errors": errors, "error_detail": w["errors"],
        "server_exit": r["server_exit"], "loadavg_1m": r["loadavg_1m"],
    })
    per_round.append(out)
groups, order = {}, []
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
rows = []
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
    out["p99_us"] = round(median([r["p99_us"] for r in ok]), 1)
    out["rounds"] = len(g)
    out["failed_rounds"] = len(g) - len(ok)
    out["rounds_rps"] = [r["rps"] for r in ok]
    out["rounds_cpu_us_per_req"] = [r["server_cpu_us_per_req"] for r in ok]
    out["rounds_p99_us"] = [r["p99_us"] for r in ok]
    out["errors"] = sum(r["errors"] for r in ok)
    out["clean_exit"] = all(r.get("server_exit") == 0 for r in g)
    out["loadavg_1m"] = max(r.get("loadavg_1m", 0) for r in g)
    rows.append(out)
by = {(r["server"], r["connections"]): r for r in rows if "rps" in r}
for r in rows:
    if "rps" not in r:
        continue
    for peer in ("nginx", "hyper"):
        b = by.get((peer, r["connections"]))
        if b and b["rps"]:
            r["rps_vs_" + peer] = round(r["rps"] / b["rps"], 3)
            if r["server_cpu_us_per_req"] and b["server_cpu_us_per_req"]:
                r["cpu_per_req_vs_" + peer] = round(r["server_cpu_us_per_req"] / b["server_cpu_us_per_req"], 3)
json.dump({"bench": "http", "duration_s": float(sys.argv[2]), "rounds": int(sys.argv[3]),
           "request": "GET / (keep-alive), response body 13 bytes",
           "pinning": {"server": "taskset -c 0", "client": "wrk -t1, taskset -c 1"}, "results": rows},
          sys.stdout, indent=1)
print()
w = sys.stderr.write
w("\n%-13s %5s | %9s %7s %7s | %8s | %7s %5s %7s %7s | %-6s %s\n" % (
    "server", "conns", "req/s", "x nginx", "x hyper", "p99 us", "cpu us", "srv", "x nginx", "x hyper", "client", "load"))
w("%-13s %5s | %9s %7s %7s | %8s | %7s %5s %7s %7s | %-6s %s\n" % (
    "", "", "", "", "", "", "per req", "util", "cpu/req", "cpu/req", "bound", "1m"))
def f(x, fmt):
    return fmt % x if x is not None else "-"
for r in rows:
    if "rps" not in r:
        w("%-13s %5d | %s\n" % (r["server"], r["connections"], r["error"]))
        continue
    w("%-13s %5d | %9.0f %7s %7s | %8.1f | %7s %5s %7s %7s | %-6s %.2f%s\n" % (
        r["server"], r["connections"], r["rps"], f(r.get("rps_vs_nginx"), "%.2fx"), f(r.get("rps_vs_hyper"), "%.2fx"),
        r["p99_us"], f(r["server_cpu_us_per_req"], "%.2f"), f(r["server_cpu_util"], "%.2f"),
        f(r.get("cpu_per_req_vs_nginx"), "%.2fx"), f(r.get("cpu_per_req_vs_hyper"), "%.2fx"),
        "yes" if r["client_bound"] else "no", r["loadavg_1m"],
        "" if not r["errors"] else "  ERRORS %d" % r["errors"]))
if any(r.get("loadavg_1m", 0) > 1.0 for r in rows):
    w("warning: the 1-minute load average exceeded 1 during the run: other processes shared the\n"
      "pinned cores, so these figures are noisy (rerun on an idle machine).\n")
if any(r.get("client_bound") for r in rows):
    w("client_bound: wrk's core was ~100% busy, so those rows' req/s measure wrk as much as the\n"
      "server: compare the servers' cpu us/req there.\n")
PY
