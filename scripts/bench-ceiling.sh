#!/usr/bin/env bash
# Ceiling searches against targets whose ceilings are known, side by side: how close
# `wsherd ceiling` lands, how many steps and how long it takes, and whether it tells
# the client's limit from the server's.
#
#   scripts/bench-ceiling.sh                 every case once (about 4 minutes)
#   BENCH_CASES=ab scripts/bench-ceiling.sh  only cases a and b
#
# Cases (server: `wsherd serve`, one shard pinned to BENCH_SERVER_CORE; load: one
# shard on BENCH_CLIENT_CORE):
#   a  connections: server refuses beyond 15,000 (--max-connections); each connection
#      sends 1 message/s; SLO errors<1%, rtt.p99<200ms. Known ceiling: 15,000.
#   b  rate: server serves 100 µs per message (--service-time): 10,000 msg/s; 200
#      connections; SLO rtt.p99<20ms. Known ceiling: 10,000 msg/s.
#   c  sessions: churn, 1 message per session, against 1 ms per message: at most
#      1,000 sessions/s; SLO session.p99<100ms. Known ceiling: 1,000 sessions/s.
#   d  rate against the plain built-in server (no knob): the ceiling is whichever
#      side runs out first; the report says whether it was the client.
# Results (JSON, HTML, text) go to target/bench-ceiling/<time>/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CASES=${BENCH_CASES:-abcd}
CLIENT_CORE=${BENCH_CLIENT_CORE:-0}
SERVER_CORE=${BENCH_SERVER_CORE:-1}
OUT=${BENCH_OUT:-$ROOT/target/bench-ceiling/$(date +%Y%m%d-%H%M%S)}
die() { echo "bench-ceiling: $*" >&2; exit 1; }
say() { echo "bench-ceiling: $*" >&2; }
command -v python3 >/dev/null || die "python3 is required (it reads the results)"
ncpu=$(nproc)
((CLIENT_CORE < ncpu && SERVER_CORE < ncpu)) || die "cores $CLIENT_CORE/$SERVER_CORE not available"

mkdir -p "$OUT"
say "building release wsherd"
cargo build --release --quiet
BIN="$OUT/wsherd"
cp target/release/wsherd "$BIN"
# 15,000 client sockets need the hard limit (20,000 here).
ulimit -n "$(ulimit -Hn)"

SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -INT "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_server() { # knobs...
    local port
    port=$(freeport)
    "$BIN" serve --addr "127.0.0.1:$port" --shards 1 --first-core "$SERVER_CORE" -q "$@" \
        >"$OUT/server-$CASE.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2).close()" 2>/dev/null && break
        sleep 0.05
    done
    URL="ws://127.0.0.1:$port/"
}

TABLE="$OUT/table.md"
echo "| case | known ceiling | found | first failing | steps | wall time | client saturated | verdict |" >"$TABLE"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |" >>"$TABLE"

search() { # known, ceiling args...
    local known=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    taskset -c "$CLIENT_CORE" "$BIN" ceiling "$@" --shards 1 -q \
        --json "$OUT/$CASE.json" --html "$OUT/$CASE.html" >"$OUT/$CASE.txt" 2>&1 || true
    t1=$(date +%s.%N)
    python3 - "$OUT/$CASE.json" "$CASE" "$known" "$t0" "$t1" >>"$TABLE" <<'PY'
import json, sys
path, case, known, t0, t1 = sys.argv[1:]
try:
    c = json.load(open(path))
except Exception as e:
    print(f"| {case} | {known} | (no results: {e}) | | | | | |"); sys.exit()
fmt = lambda v: "-" if v is None else f"{v:,.0f}"
v = c["verdict"].replace("|", "/")
print(f"| {case} | {known} | {fmt(c['ceiling'])} {c['unit']} | {fmt(c['first_failing'])} | "
      f"{len(c['steps'])} | {float(t1) - float(t0):.0f} s | {'yes' if c['client_limited'] else 'no'} | {v} |")
PY
    stop_server
}

for CASE in $(echo "$CASES" | grep -o .); do
    case $CASE in
    a)
        say "a: connections ceiling of a server that refuses beyond 15,000"
        start_server --max-connections 15000
        search "15,000 connections" "$URL" --dimension connections --start 2000 --max 19000 \
            --rate-per-conn 1 --connect-rate 10000 --source-ip 127.0.0.1-127.0.0.8 --slo 'errors<1%,rtt.p99<200ms' \
            --step-duration 2s --settle 1s
        ;;
    b)
        say "b: rate ceiling of a server at 100 µs per message"
        start_server --service-time 100us
        search "10,000 msg/s" "$URL" --dimension rate -c 200 --start 2000 \
            --slo 'rtt.p99<20ms,errors<1%' --step-duration 2s --settle 1s
        ;;
    c)
        say "c: session-rate ceiling, one message per session at 1 ms per message"
        start_server --service-time 1ms
        search "1,000 sessions/s" "$URL" --dimension sessions --messages 1 --start 200 \
            --slo 'session.p99<100ms,errors<1%' --step-duration 2s --settle 1s
        ;;
    d)
        say "d: rate ceiling of the plain built-in server (which side runs out first?)"
        start_server
        search "unknown" "$URL" --dimension rate -c 100 --start 20000 \
            --slo 'rtt.p99<10ms,errors<1%' --step-duration 2s --settle 1s
        ;;
    *) die "unknown case '$CASE' (cases: a b c d)" ;;
    esac
done
cat "$TABLE"
say "results in $OUT"
