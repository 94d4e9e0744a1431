#!/usr/bin/env bash
# The open loop against its floor: wsherd's load CPU per message beside raw TCP
# doing the same pattern over the same runtime (benches/rawtcp.rs, mode `open`).
#
# Usage: scripts/bench-open-floor.sh [CONNS] [RATE_PER_CONN]   (default 1000 20)
#
# Both sides run CONNS connections, each sending one 64-byte message every
# 1/RATE_PER_CONN s whatever the echoes do, with the echoes read back; the load is
# pinned to one core (one shard) and its server to the other. Runs alternate raw
# TCP (its own echo server) and wsherd (`wsherd serve`), BENCH_RUNS times each.
# Both are measured over the same steady window, from 2 s into the run to 1 s
# before its end, so connecting, the drain and the report are left out:
#   raw TCP: getrusage over its measured period (rawtcp prints it);
#   wsherd:  /proc/PID/stat (user+sys, clock ticks) sampled at the window's ends,
#            divided by the messages the results' per-second series says were sent
#            in those seconds.
# Prints the medians and the ratio wsherd / raw TCP (issue 16's target: <= 1.25x),
# and wsherd's whole-life CPU per message (wait4) beside it.
#
# Environment: BENCH_WSHERD (a wsherd binary to measure instead of this tree's,
# for a before/after), BENCH_SECS (default 10), BENCH_RUNS (default 3),
# BENCH_CLIENT_CORE / BENCH_SERVER_CORE (default 0 / 1), BENCH_TIMER (wsherd's
# --timer, default auto), BENCH_OUT (default target/bench-open-floor/<time>).

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CONNS=${1:-1000}
RATE=${2:-20}
SECS=${BENCH_SECS:-10}
RUNS=${BENCH_RUNS:-3}
CC=${BENCH_CLIENT_CORE:-0}
SC=${BENCH_SERVER_CORE:-1}
TIMER=${BENCH_TIMER:-auto}
OUT=${BENCH_OUT:-$ROOT/target/bench-open-floor/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
say() { echo "bench-open-floor: $*" >&2; }
[[ $SECS -ge 5 ]] || { say "BENCH_SECS must be at least 5"; exit 2; }
ulimit -n 20000 2>/dev/null || true

say "building release wsherd and the rawtcp bench"
cargo build --release --quiet
cargo bench --bench rawtcp --no-run --quiet 2>/dev/null
RAW_SRC=$(ls -t target/release/deps/rawtcp-* | grep -v '\.d$' | head -1)
# Copies: a build in this tree during the benchmark cannot change them.
cp "${BENCH_WSHERD:-target/release/wsherd}" "$OUT/wsherd"
cp "$RAW_SRC" "$OUT/rawtcp"

SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        # TERM: a background job ignores SIGINT, and rawtcp has no handler of its own.
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    say "the server on port $1 did not start"
    exit 1
}

# Two ports: the raw server's connections linger on its port for a while after
# it is killed, and wsherd serve refuses an address in use.
PORT=19577
WS_PORT=19578
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
WINDOW=$((SECS - 3))

raw_run() {
    taskset -c "$SC" "$OUT/rawtcp" server "127.0.0.1:$PORT" "$SC" >"$OUT/raw-server.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$PORT"
    # rawtcp measures WINDOW seconds after its own 0.5 s warm-up.
    taskset -c "$CC" "$OUT/rawtcp" open "127.0.0.1:$PORT" "$CC" "$CONNS" "$WINDOW" 64 "$RATE" \
        >"$OUT/raw-$1.txt"
    stop_server
    sed -n 's/.*client_cpu_us_per_msg=\([0-9.]*\).*/\1/p' "$OUT/raw-$1.txt"
}

ws_run() {
    taskset -c "$SC" "$OUT/wsherd" serve --addr "127.0.0.1:$WS_PORT" --shards 1 --first-core "$SC" -q \
        >"$OUT/ws-server.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$WS_PORT"
    local json=$OUT/ws-$1.json
    python3 - "$OUT/wsherd" "$WS_PORT" "$CONNS" "$RATE" "$SECS" "$WINDOW" "$HZ" "$json" "$CC" "$TIMER" <<'PY'
import json, os, subprocess, sys, time
exe, port, conns, rate, secs, window, hz, out, core, timer = sys.argv[1:]
secs, window, hz = int(secs), int(window), int(hz)
cmd = ["taskset", "-c", core, exe, "run", f"ws://127.0.0.1:{port}/", "-c", conns,
       "--rate-per-conn", rate, "--connect-rate", "0", "-d", f"{secs}s", "--shards", "1",
       "--timer", timer, "-q", "--json", out]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def ticks():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
c0 = ticks()
time.sleep(max(0.0, t0 + 2.0 + window - time.monotonic()))
c1 = ticks()
_, status, ru = os.wait4(p.pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"wsherd run exited {os.waitstatus_to_exitcode(status)}")
d = json.load(open(out))
sent = sum(s["sent"] for s in d["series"] if 2 <= s["t"] < 2 + window)
whole = (ru.ru_utime + ru.ru_stime) * 1e6 / d["messages"]["sent"]
lag = d["latency"]["send_lag"]
print(f"{(c1 - c0) * 1e6 / hz / sent:.3f} {whole:.3f} {lag['p50_us']:.0f} {lag['p99_us']:.0f}")
PY
    stop_server
}

say "$CONNS connections x $RATE msg/s, 64 B, ${SECS}s runs, $RUNS runs per side, alternating"
: >"$OUT/raw.tsv"
for i in $(seq "$RUNS"); do
    r=$(raw_run "$i")
    w=$(ws_run "$i")
    say "run $i: raw TCP ${r} us/msg; wsherd (steady, whole life, lag p50, p99 us) $w"
    echo "$r $w" >>"$OUT/raw.tsv"
done

python3 - "$OUT/raw.tsv" "$CONNS" "$RATE" "$TIMER" <<'PY'
import statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = lambda i: st.median(r[i] for r in rows)
raw, steady, whole, p50, p99 = (med(i) for i in range(5))
print(f"| open loop, {int(sys.argv[2]):,} x {sys.argv[3]}/s, 64 B, --timer {sys.argv[4]} "
      f"| raw TCP {raw:.2f} µs | wsherd {steady:.2f} µs (whole life {whole:.2f}) "
      f"| **{steady / raw:.2f}x** | send lag p50 {p50:.0f} µs, p99 {p99:.0f} µs |")
PY
say "raw results in $OUT"
