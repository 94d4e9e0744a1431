#!/usr/bin/env bash
# Held connections: what each one costs in memory, and how long 10,000 take to open.
#
# Usage: scripts/bench-hold.sh [CONNS]   (default 10000; at most 19,000 here, where
#                                         a process may open 20,000 files)
#
# Against one `wsherd serve` (one shard on the server core), the load on the other
# core (one shard), BENCH_RUNS times each:
#   memory   `--workload idle` with CONNS and with 1,000 connections (the default
#            connect rate), without and with `--heartbeat 5s`: VmRSS sampled 2 s
#            before the end of a run; per connection = (RSS at CONNS - RSS at
#            1,000) / (CONNS - 1,000). Also after a burst (`--connect-rate 0`).
#   open     `--workload idle -c CONNS --connect-rate 0`: the results'
#            `connections.all_open_secs`, start to the last upgrade.
# Prints the medians as Markdown rows. Kernel socket memory is not in RSS (the
# report prints it apart).
#
# Environment: BENCH_WSHERD (a wsherd binary to measure instead of building this
# tree's, e.g. an older revision's, for a before/after), BENCH_RUNS (default 3), BENCH_SECS (default 12, at least 8),
# BENCH_CLIENT_CORE / BENCH_SERVER_CORE (default 0 / 1), BENCH_OUT (default
# target/bench-hold/<time>).

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CONNS=${1:-10000}
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECS:-12}
CC=${BENCH_CLIENT_CORE:-0}
SC=${BENCH_SERVER_CORE:-1}
OUT=${BENCH_OUT:-$ROOT/target/bench-hold/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
say() { echo "bench-hold: $*" >&2; }
[[ $SECS -ge 8 ]] || { say "BENCH_SECS must be at least 8"; exit 2; }
[[ $CONNS -gt 1000 ]] || { say "CONNS must be more than 1,000 (the baseline)"; exit 2; }
ulimit -n 20000 2>/dev/null || true

if [[ -n ${BENCH_WSHERD:-} ]]; then
    cp "$BENCH_WSHERD" "$OUT/wsherd"
else
    say "building release wsherd"
    cargo build --release --quiet
    cp target/release/wsherd "$OUT/wsherd"
fi
W=$OUT/wsherd

PORT=19581
taskset -c "$SC" "$W" serve --addr "127.0.0.1:$PORT" --shards 1 --first-core "$SC" -q \
    >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill -TERM $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.05
done

# rss N [run flags]: VmRSS (KiB) of an idle run of N connections, 2 s before its end.
rss() {
    local n=$1
    shift
    taskset -c "$CC" "$W" run "ws://127.0.0.1:$PORT/" -c "$n" --workload idle -d "${SECS}s" \
        --shards 1 -q "$@" >"$OUT/last-run.txt" 2>&1 &
    local pid=$!
    sleep $((SECS - 2))
    awk '/^VmRSS/ {print $2}' "/proc/$pid/status"
    wait "$pid" || { say "the run failed:"; tail -5 "$OUT/last-run.txt" >&2; exit 1; }
}

# per_conn [run flags]: KiB of RSS per connection beyond 1,000.
per_conn() {
    local base top
    base=$(rss 1000 "$@")
    top=$(rss "$CONNS" "$@")
    python3 -c "print(f'{($top - $base) / ($CONNS - 1000):.3f}')"
}

open_secs() {
    local json=$OUT/open-$1.json
    taskset -c "$CC" "$W" run "ws://127.0.0.1:$PORT/" -c "$CONNS" --workload idle -d 4s \
        --connect-rate 0 --shards 1 -q --json "$json" >/dev/null 2>&1
    python3 -c "import json; print(json.load(open('$json'))['connections']['all_open_secs'])"
}

: >"$OUT/raw.tsv"
for i in $(seq "$RUNS"); do
    idle=$(per_conn)
    beat=$(per_conn --heartbeat 5s)
    burst=$(per_conn --connect-rate 0)
    open=$(open_secs "$i")
    say "run $i: KiB per connection idle $idle, heartbeat $beat, after a burst $burst; all open after $open s"
    echo "$idle $beat $burst $open" >>"$OUT/raw.tsv"
done

python3 - "$OUT/raw.tsv" "$CONNS" <<'PY'
import statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = [st.median(r[i] for r in rows) for i in range(4)]
n = int(sys.argv[2])
print(f"| RSS per held connection ({n:,} vs 1,000), idle | {med[0]:.2f} KiB |")
print(f"| the same, a PING every 5 s | {med[1]:.2f} KiB |")
print(f"| the same, idle, opened at once (--connect-rate 0) | {med[2]:.2f} KiB |")
print(f"| {n:,} connections opened at once: all open after | {med[3]:.2f} s |")
PY
say "raw results in $OUT"
