#!/usr/bin/env bash
# Soak: holds CONNS connections with traffic for MINUTES minutes against
# `wsherd serve` on another core, and samples the load process once a minute:
# RSS, open files, and the messages sent and received per second over that
# minute (from its Prometheus endpoint). After the ramp (the first minute) each
# figure must stay flat: within TOLERANCE percent of its first sample. Prints a
# table and a verdict; exits 1 when a figure drifted. Not a test: it takes
# MINUTES minutes (figures in benches/README.md).
#
# Usage: scripts/soak.sh [CONNS] [MINUTES] [RATE_PER_CONN]
#   defaults 10000, 30, 1 (10,000 messages a second in all, 64-byte echoes)
# Environment: SOAK_TOLERANCE (percent, default 2), SOAK_BIN (a wsherd binary
#   to use instead of building target/release/wsherd), BENCH_CLIENT_CORE /
#   BENCH_SERVER_CORE (default 0 / 1), SOAK_OUT (default target/soak/<time>)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CONNS=${1:-10000}
MINUTES=${2:-30}
RATE=${3:-1}
TOL=${SOAK_TOLERANCE:-2}
CC=${BENCH_CLIENT_CORE:-0}
SC=${BENCH_SERVER_CORE:-1}
OUT=${SOAK_OUT:-$ROOT/target/soak/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
say() { echo "soak: $*" >&2; }

if [[ -n ${SOAK_BIN:-} ]]; then
    BIN=$SOAK_BIN
else
    cargo build --release --quiet
    BIN=$ROOT/target/release/wsherd
fi
PORT=19555
METRICS=127.0.0.1:19556

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

taskset -c "$SC" "$BIN" serve --addr "127.0.0.1:$PORT" --shards 1 --first-core "$SC" -q \
    2>"$OUT/server.log" &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.05
done

secs=$((MINUTES * 60 + 30))
say "$CONNS connections at $RATE msg/s each for ${MINUTES} min (run ${secs}s), results in $OUT"
taskset -c "$CC" "$BIN" run "ws://127.0.0.1:$PORT/" -c "$CONNS" -d "${secs}s" \
    --rate-per-conn "$RATE" --shards 1 -q --metrics-addr "$METRICS" --json "$OUT/results.json" \
    >"$OUT/report.txt" 2>"$OUT/load.log" &
LOAD=$!
pids+=($LOAD)

counter() {
    curl -s "http://$METRICS/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

echo "minute,rss_kib,open_files,sent_per_sec,received_per_sec" >"$OUT/samples.csv"
prev_sent=0
prev_recv=0
prev_ms=0
for m in $(seq 0 "$MINUTES"); do
    sleep_until=$((m * 60 + 20))
    while (( $(ps -o etimes= -p "$LOAD" | tr -d ' ') < sleep_until )); do sleep 0.2; done
    now_ms=$(date +%s%3N)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$LOAD/status")
    files=$(ls "/proc/$LOAD/fd" | wc -l)
    sent=$(counter wsherd_client_messages_sent_total)
    recv=$(counter wsherd_client_messages_received_total)
    if (( m > 0 )); then
        # Rates over the time that really passed between the samples.
        ms=$((now_ms - prev_ms))
        s_rate=$(( (${sent%.*} - prev_sent) * 1000 / ms ))
        r_rate=$(( (${recv%.*} - prev_recv) * 1000 / ms ))
        echo "$m,$rss,$files,$s_rate,$r_rate" >>"$OUT/samples.csv"
        say "minute $m: RSS ${rss} KiB, $files open files, $s_rate sent/s"
    fi
    prev_sent=${sent%.*}
    prev_recv=${recv%.*}
    prev_ms=$now_ms
done
wait "$LOAD" || true

python3 - "$OUT/samples.csv" "$TOL" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
tol = float(sys.argv[2])
print("| minute | RSS (KiB) | open files | sent/s | received/s |")
print("| ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print(f"| {r['minute']} | {int(r['rss_kib']):,} | {r['open_files']} | {int(r['sent_per_sec']):,} | {int(r['received_per_sec']):,} |")
after = rows[1:]  # the first minute is the ramp
ok = True
for key in ["rss_kib", "open_files", "sent_per_sec", "received_per_sec"]:
    vals = [float(r[key]) for r in after]
    if not vals:
        continue
    base = vals[0]
    drift = max(abs(v - base) for v in vals) / base * 100 if base else 0.0
    verdict = "flat" if drift <= tol else "DRIFTED"
    ok &= drift <= tol
    print(f"{key}: largest drift from minute 2 {drift:.2f}% ({verdict}, tolerance {tol}%)")
sys.exit(0 if ok else 1)
PY
