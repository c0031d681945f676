#!/usr/bin/env bash
# Redis client benchmark: ringflow's redis::connection (bench/redis_bench)
# against redis-benchmark (Debian's redis-tools: hiredis-based C on epoll)
# with the same load on the same redis-server in the same run: PING,
# SET key:bench xxx and XADD stream:bench * field value at pipeline depth
# 1, 16 and 128 over 1 and 50 connections, N requests per row (the stream
# is deleted before every XADD run, so each starts empty). ringflow runs each
# row three ways: command() with the arguments (formatted on every call, D
# tasks per connection), command(prepared_command) (formatted once, as
# redis-benchmark does), and redis-benchmark's own loop (--batch: one task
# per connection sending D commands with pipeline() and waiting for them).
#
# Consume throughput (entries/s, client CPU per entry) over a stream
# pre-filled with E entries (about 2N, a multiple of 16384; each run reads it
# whole through a fresh group). redis-benchmark has no consume test; what it
# can run is the read half: XREADGROUP GROUP g c COUNT 128 NOACK STREAMS s >
# (no acks, so no pending list), E/128 requests at depth 1 and 16, each
# reply a full 128 entries. ringflow runs the same command on its connection
# (redis_bench), and its stream_consumer runs the full consumer: next()
# through request(128) on its publisher, then the 128 acks (which share one
# XACK), then the next batch; with prefetch 128 that read waits for the
# batch's XACK, with prefetch 256 it overlaps it. The stream_consumer rows are compared with
# redis-benchmark's read-only depth-1 row (one batch outstanding, as the
# consumer): a floor that does no acks, so the ratio overstates its cost.
#
# Usage: bench/redis.sh [--quick] [--requests N] [--rounds R] [--pipelines "1 16 128"] [--connections "1 50"]
#   default: 200000 requests per row, 3 rounds; --quick: 20000 requests, 1 round;
#   --pipelines "": the consume rows only
# Pipeline depth D: redis-benchmark -P D sends D commands and waits for the D
# replies; redis_bench keeps D commands in flight per connection all the
# time (D tasks each sending its next command when its reply came, with
# max_in_flight D).
# The server runs pinned to core 0 (taskset -c 0), each client to core 1,
# one client thread each. Client CPU (user + sys of the client process,
# getrusage) per request is the efficiency figure. Rounds are interleaved
# (both clients once per round) and each row reports the median round.
# stdout: one JSON document; stderr: progress and a table with the ratios
# ringflow / redis-benchmark (req/s: higher is better; CPU: lower is better),
# and the paired req/s ratio: the median of each round's own ratio (the two
# clients of a round run back to back, so a drift of the machine's speed
# between rounds, which moves a deep row by 10-25%, cancels out).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
requests=200000
rounds=3
pipelines="1 16 128"
conns_list="1 50"
while (($#)); do
  case $1 in
    --quick) requests=20000 rounds=1; shift ;;
    --requests) requests=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --pipelines) pipelines=$2; shift 2 ;;
    --connections) conns_list=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bench/redis.sh [--quick] [--requests N] [--rounds R] [--pipelines \"1 16 128\"] [--connections \"1 50\"]" >&2; exit 2 ;;
  esac
done
for tool in redis-server redis-benchmark redis-cli python3 taskset; do
  command -v "$tool" >/dev/null || { echo "bench/redis.sh: $tool is missing (scripts/setup.sh --tests installs it)" >&2; exit 1; }
done

# ---- build ------------------------------------------------------------------
if [[ ! -f $out/build.ninja ]]; then
  meson setup "$out" --buildtype=release -Dtests=false -Dredis=enabled >/dev/null
fi
build_log=$(mktemp)
if ! ninja -C "$out" bench/redis_bench >"$build_log" 2>&1; then
  cat "$build_log" >&2; rm -f "$build_log"; exit 1
fi
rm -f "$build_log"

exec python3 - "$out/bench/redis_bench" "$requests" "$rounds" "$pipelines" "$conns_list" <<'PY'
import json, os, resource, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

bench, requests, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pipelines = [int(x) for x in sys.argv[4].split()]
conns_list = [int(x) for x in sys.argv[5].split()]
commands = [["PING"], ["SET", "key:bench", "xxx"], ["XADD", "stream:bench", "*", "field", "value"]]
batch = 128  # XREADGROUP COUNT
consume_entries = max(1, round(2 * requests / (batch * batch))) * batch * batch
cores = os.cpu_count() or 1
server_core, client_core = ("0", "1") if cores >= 2 else ("0", "0")

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False

tmp = tempfile.mkdtemp(prefix="ringflow-redis-bench.")
port = free_port()
server = subprocess.Popen(["taskset", "-c", server_core, "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", tmp, "--logfile", tmp + "/redis.log"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    deadline = time.time() + 20
    while not ping(port):
        if server.poll() is not None or time.time() > deadline:
            sys.exit("bench/redis.sh: redis-server did not start")
        time.sleep(0.01)

    def timed(cmd):
        """Runs cmd, returns (stdout, client CPU seconds)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run(["taskset", "-c", client_core] + cmd, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            sys.exit(f"bench/redis.sh: {' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return p.stdout, cpu

    def cli(*args):
        p = subprocess.run(["redis-cli", "-p", str(port)] + [str(a) for a in args], capture_output=True, text=True)
        if p.returncode != 0 or p.stdout.startswith("ERR") or p.stdout.startswith("(error)"):
            sys.exit(f"bench/redis.sh: redis-cli {' '.join(map(str, args))}: {p.stdout.strip()} {p.stderr.strip()}")
        return p.stdout

    def entries_read(group):
        lines = cli("XINFO", "GROUPS", "stream:consume").split("\n")
        for i, l in enumerate(lines):
            if l == "name" and lines[i + 1] == group:
                j = lines.index("entries-read", i)
                return int(lines[j + 1])
        sys.exit(f"bench/redis.sh: no group {group}")

    def before(command):
        if command[0] == "XADD":
            cli("DEL", command[1])

    def run_ringflow(command, conns, depth, mode=None):
        out, cpu = timed([bench, "--port", str(port), "--connections", str(conns), "--pipeline", str(depth),
                          "--requests", str(requests)] + ([mode] if mode else []) + command)
        r = json.loads(out)
        return r["rps"], cpu * 1e6 / requests

    def run_ringflow_prepared(command, conns, depth):
        return run_ringflow(command, conns, depth, "--prepared")

    def run_ringflow_batch(command, conns, depth):
        return run_ringflow(command, conns, depth, "--batch")

    def run_redis_benchmark(command, conns, depth):
        t0 = time.monotonic()
        out, cpu = timed(["redis-benchmark", "-p", str(port), "-c", str(conns), "-P", str(depth),
                          "-n", str(requests), "--csv"] + command)
        wall = time.monotonic() - t0
        lines = [l for l in out.splitlines() if l.strip()]
        rps = float(lines[-1].split(",")[1].strip('"'))
        return rps, cpu * 1e6 / requests

    clients = {"ringflow": run_ringflow, "ringflow-prepared": run_ringflow_prepared, "ringflow-batch": run_ringflow_batch,
               "redis-benchmark": run_redis_benchmark}
    ours = ["ringflow", "ringflow-prepared", "ringflow-batch"]
    rows = []
    for command in commands:
        for depth in pipelines:
            for conns in conns_list:
                rows.append({"command": " ".join(command), "argv": command, "pipeline": depth, "connections": conns,
                             "runs": {name: [] for name in clients}})
    for rnd in range(rounds):
        for row in rows:
            for name, fn in clients.items():
                before(row["argv"])
                rps, cpu = fn(row["argv"], row["connections"], row["pipeline"])
                row["runs"][name].append({"rps": rps, "cpu_us_per_request": cpu})
                print(f"round {rnd + 1}/{rounds}: {row['command']:<32} P={row['pipeline']:<4} c={row['connections']:<3} "
                      f"{name:<16} {rps:>11.0f} req/s {cpu:7.3f} us CPU/req", file=sys.stderr)

    # ---- consume -----------------------------------------------------------
    cli("DEL", "stream:consume")
    timed(["redis-benchmark", "-p", str(port), "-c", "1", "-P", "128", "-n", str(consume_entries), "--csv",
           "XADD", "stream:consume", "*", "field", "value"])
    while int(cli("XLEN", "stream:consume")) > consume_entries:  # -P sends whole pipelines: trim what it added over
        cli("XTRIM", "stream:consume", "MAXLEN", consume_entries)
    reads = consume_entries // batch
    consume_rows = [{"mode": f"XREADGROUP COUNT {batch} NOACK", "pipeline": d, "runs": {"ringflow": [], "redis-benchmark": []}}
                    for d in (1, 16)]
    # prefetch = batch: each read waits for the batch's XACK; prefetch =
    # 2 * batch: the next read overlaps the previous batch's acks.
    for prefetch in (batch, 2 * batch):
        consume_rows.append({"mode": f"stream_consumer next+ack, prefetch {prefetch}", "pipeline": 1, "prefetch": prefetch,
                             "runs": {"ringflow": []}})
    groups = []

    def fresh_group():
        g = f"g{len(groups)}"
        groups.append(g)
        cli("XGROUP", "CREATE", "stream:consume", g, "0")
        return g

    def read_cmd(group):
        return ["XREADGROUP", "GROUP", group, "c", "COUNT", str(batch), "NOACK", "STREAMS", "stream:consume", ">"]

    for rnd in range(rounds):
        for row in consume_rows:
            for name in row["runs"]:
                g = fresh_group()
                if row["mode"].startswith("stream_consumer"):
                    out, cpu = timed([bench, "--port", str(port), "--consume", str(consume_entries), "--prefetch",
                                      str(row["prefetch"]), "--request", str(batch), "--stream", "stream:consume", "--group", g])
                    eps = json.loads(out)["entries_per_s"]
                elif name == "ringflow":
                    out, cpu = timed([bench, "--port", str(port), "--connections", "1", "--pipeline", str(row["pipeline"]),
                                      "--requests", str(reads)] + read_cmd(g))
                    eps = json.loads(out)["rps"] * batch
                else:
                    out, cpu = timed(["redis-benchmark", "-p", str(port), "-c", "1", "-P", str(row["pipeline"]),
                                      "-n", str(reads), "--csv"] + read_cmd(g))
                    lines = [l for l in out.splitlines() if l.strip()]
                    eps = float(lines[-1].split(",")[1].strip('"')) * batch
                got = entries_read(g)
                if got != consume_entries:
                    sys.exit(f"bench/redis.sh: {name} {row['mode']} read {got} of {consume_entries} entries")
                cpu_per_entry = cpu * 1e6 / consume_entries
                row["runs"][name].append({"entries_per_s": eps, "cpu_us_per_entry": cpu_per_entry})
                print(f"round {rnd + 1}/{rounds}: {row['mode']:<36} P={row['pipeline']:<3} {name:<16} {eps:>11.0f} entries/s "
                      f"{cpu_per_entry:7.3f} us CPU/entry", file=sys.stderr)

    def median_run(runs):
        by_rps = sorted(runs, key=lambda r: r["rps"])
        return {"rps": by_rps[len(by_rps) // 2]["rps"],
                "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in runs)}

    result = {"benchmark": "redis", "requests": requests, "rounds": rounds, "server_core": server_core,
              "client_core": client_core, "rows": []}
    print(f"\n{'command':<32} {'P':>4} {'c':>3} {'client':<18} {'req/s':>10} {'r-b req/s':>10} {'ratio':>6} {'paired':>6} "
          f"{'us CPU/req':>11} {'r-b':>7} {'ratio':>6}", file=sys.stderr)
    for row in rows:
        med = {name: median_run(runs) for name, runs in row["runs"].items()}
        rb = med["redis-benchmark"]
        out_row = {"command": row["command"], "pipeline": row["pipeline"], "connections": row["connections"],
                   "redis_benchmark": rb}
        for name in ours:
            rf = med[name]
            key = name.replace("-", "_")
            out_row[key] = rf
            out_row[key + "_rps_ratio"] = rf["rps"] / rb["rps"]
            out_row[key + "_cpu_ratio"] = rf["cpu_us_per_request"] / rb["cpu_us_per_request"]
            # The two clients of one round ran back to back: the median of
            # the rounds' own ratios cancels the machine's drift between rounds.
            paired = statistics.median(a["rps"] / b["rps"] for a, b in zip(row["runs"][name], row["runs"]["redis-benchmark"]))
            out_row[key + "_rps_paired_ratio"] = paired
            print(f"{row['command']:<32} {row['pipeline']:>4} {row['connections']:>3} {name:<18} {rf['rps']:>10.0f} "
                  f"{rb['rps']:>10.0f} {rf['rps'] / rb['rps']:>6.2f} {paired:>6.2f} {rf['cpu_us_per_request']:>11.3f} "
                  f"{rb['cpu_us_per_request']:>7.3f} {rf['cpu_us_per_request'] / rb['cpu_us_per_request']:>6.2f}",
                  file=sys.stderr)
        result["rows"].append(out_row)
    def median_consume(runs):
        by = sorted(runs, key=lambda r: r["entries_per_s"])
        return {"entries_per_s": by[len(by) // 2]["entries_per_s"],
                "cpu_us_per_entry": statistics.median(r["cpu_us_per_entry"] for r in runs)}

    result["consume"] = {"entries": consume_entries, "batch": batch, "rows": []}
    print(f"\nconsume, {consume_entries} entries per run:\n{'mode':<40} {'P':>3} {'ringflow e/s':>13} {'r-b e/s':>11} {'ratio':>6} "
          f"{'ringflow us/e':>14} {'r-b us/e':>9} {'ratio':>6}", file=sys.stderr)
    read_only_p1 = None
    for row in consume_rows:
        rf = median_consume(row["runs"]["ringflow"])
        if "redis-benchmark" in row["runs"]:
            rb = median_consume(row["runs"]["redis-benchmark"])
            if row["pipeline"] == 1:
                read_only_p1 = rb
            compared_with = "redis-benchmark, same command"
        else:
            rb = read_only_p1
            compared_with = f"redis-benchmark XREADGROUP COUNT {batch} NOACK at depth 1 (reads only, no acks)"
        result["consume"]["rows"].append({"mode": row["mode"], "pipeline": row["pipeline"], "ringflow": rf,
                                          "redis_benchmark": rb, "compared_with": compared_with,
                                          "rate_ratio": rf["entries_per_s"] / rb["entries_per_s"],
                                          "cpu_ratio": rf["cpu_us_per_entry"] / rb["cpu_us_per_entry"]})
        print(f"{row['mode']:<40} {row['pipeline']:>3} {rf['entries_per_s']:>13.0f} {rb['entries_per_s']:>11.0f} "
              f"{rf['entries_per_s'] / rb['entries_per_s']:>6.2f} {rf['cpu_us_per_entry']:>14.3f} {rb['cpu_us_per_entry']:>9.3f} "
              f"{rf['cpu_us_per_entry'] / rb['cpu_us_per_entry']:>6.2f}", file=sys.stderr)
    print(json.dumps(result, indent=1))
finally:
    server.send_signal(signal.SIGKILL)
    server.wait()
    shutil.rmtree(tmp, ignore_errors=True)
PY
