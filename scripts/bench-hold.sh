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
#            1,000) / (CONNS - 1,000). Also after a burst (`--connect-rate 0`),
#            echo connections sending 1 message/s each (`--rate` = connections),
#            and idle wss:// connections (a second server, --tls-self-signed).
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
TLS_PORT=19582
taskset -c "$SC" "$W" serve --addr "127.0.0.1:$TLS_PORT" --shards 1 --first-core "$SC" -q \
    --tls-self-signed --tls-ca-out "$OUT/ca.pem" >"$OUT/tls-server.log" 2>&1 &
TLS_PID=$!
trap 'kill -TERM $SERVER_PID $TLS_PID 2>/dev/null || true; wait $SERVER_PID $TLS_PID 2>/dev/null || true' EXIT
for p in $PORT $TLS_PORT; do
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        sleep 0.05
    done
done

# rss URL N [run flags]: VmRSS (KiB) of a run of N connections, 2 s before its end.
rss() {
    local url=$1 n=$2
    shift 2
    taskset -c "$CC" "$W" run "$url" -c "$n" -d "${SECS}s" \
        --shards 1 -q "$@" >"$OUT/last-run.txt" 2>&1 &
    local pid=$!
    sleep $((SECS - 2))
    awk '/^VmRSS/ {print $2}' "/proc/$pid/status"
    wait "$pid" || { say "the run failed:"; tail -5 "$OUT/last-run.txt" >&2; exit 1; }
}

# per_conn [run flags]: KiB of RSS per idle connection beyond 1,000.
per_conn() {
    local base top
    base=$(rss "ws://127.0.0.1:$PORT/" 1000 --workload idle "$@")
    top=$(rss "ws://127.0.0.1:$PORT/" "$CONNS" --workload idle "$@")
    python3 -c "print(f'{($top - $base) / ($CONNS - 1000):.3f}')"
}

# per_sending: the same for echo connections sending one message a second each.
per_sending() {
    local base top
    base=$(rss "ws://127.0.0.1:$PORT/" 1000 --workload echo --rate 1000)
    top=$(rss "ws://127.0.0.1:$PORT/" "$CONNS" --workload echo --rate "$CONNS")
    python3 -c "print(f'{($top - $base) / ($CONNS - 1000):.3f}')"
}

# per_tls: the same for idle wss:// connections (to the TLS server).
per_tls() {
    local base top
    base=$(rss "wss://127.0.0.1:$TLS_PORT/" 1000 --workload idle --ca "$OUT/ca.pem")
    top=$(rss "wss://127.0.0.1:$TLS_PORT/" "$CONNS" --workload idle --ca "$OUT/ca.pem")
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
    sending=$(per_sending)
    tls=$(per_tls)
    say "run $i: KiB per connection idle $idle, heartbeat $beat, after a burst $burst, sending 1/s $sending, wss idle $tls; all open after $open s"
    echo "$idle $beat $burst $open $sending $tls" >>"$OUT/raw.tsv"
done

python3 - "$OUT/raw.tsv" "$CONNS" <<'PY'
import statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = [st.median(r[i] for r in rows) for i in range(6)]
n = int(sys.argv[2])
print(f"| RSS per held connection ({n:,} vs 1,000), idle | {med[0]:.2f} KiB |")
print(f"| the same, a PING every 5 s | {med[1]:.2f} KiB |")
print(f"| the same, idle, opened at once (--connect-rate 0) | {med[2]:.2f} KiB |")
print(f"| the same, echo, each sending 1 message/s | {med[4]:.2f} KiB |")
print(f"| the same, idle over wss:// (TLS) | {med[5]:.2f} KiB |")
print(f"| {n:,} connections opened at once: all open after | {med[3]:.2f} s |")
PY
say "raw results in $OUT"
