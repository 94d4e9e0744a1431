#!/usr/bin/env bash
# A/B benchmark of two revisions of wsherd, side by side in one session: did a
# change cost the hot path? Each revision is built (release) in its own git
# worktree; runs alternate A, B, A, B, ... and each run loads that revision's own
# `wsherd serve` (one shard on the server core) from the load core.
#
# Usage: scripts/bench-ab.sh REV_A REV_B [CASES]
#   REV_A, REV_B   anything git names (a commit, a branch, HEAD); "." is the
#                  working tree as it is, uncommitted changes included
#   CASES          which workloads (default "bt"):
#     b  closed loop, 100 connections, 64-byte binary echo (bench-endpoints case a)
#     t  closed loop, 100 connections, 256-byte text echo (UTF-8 checked both ways)
#     o  open loop, 1,000 connections x 20 msg/s, 64-byte text
#     l  open loop at light load, 10 connections x 20 msg/s (send timing)
#     k  open loop, 100 connections x 100 msg/s (10,000 msg/s on one shard)
#
# Prints, per case and revision, the medians of: round trips per second, the load
# process's CPU (user+sys, wait4) per round trip, the server's CPU per message
# (/proc/PID/stat, 10 ms ticks), and in an open loop the send lag's p50 and p99
# (how late sends went out against their schedule); and the ratio B/A of each.
#
# Environment: BENCH_SECS (default 5), BENCH_RUNS (default 5),
# BENCH_CLIENT_CORE / BENCH_SERVER_CORE (default 0 / 1), BENCH_OUT (raw results;
# default target/bench-ab/<time>).

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[[ $# -ge 2 ]] || { sed -n '2,22p' "$0" >&2; exit 2; }
REV_A=$1 REV_B=$2 CASES=${3:-bt}
SECS=${BENCH_SECS:-5}
RUNS=${BENCH_RUNS:-5}
CC=${BENCH_CLIENT_CORE:-0}
SC=${BENCH_SERVER_CORE:-1}
OUT=${BENCH_OUT:-$ROOT/target/bench-ab/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
say() { echo "bench-ab: $*" >&2; }

# build REV: prints the path of that revision's release binary.
build() {
    local rev=$1
    if [[ $rev == . ]]; then
        cargo build --release --quiet
        echo "$ROOT/target/release/wsherd"
        return
    fi
    local sha
    sha=$(git rev-parse --short=12 "$rev^{commit}")
    local tree=$ROOT/target/bench-ab/trees/$sha
    if [[ ! -x $tree/target/release/wsherd ]]; then
        rm -rf "$tree"
        git worktree prune
        git worktree add --detach --force "$tree" "$sha" >/dev/null 2>&1
        (cd "$tree" && cargo build --release --quiet)
    fi
    echo "$tree/target/release/wsherd"
}

say "building $REV_A and $REV_B (release)"
BIN_A=$(build "$REV_A")
BIN_B=$(build "$REV_B")

HELPER=$OUT/measure.py
cat >"$HELPER" <<'PY'
import json, os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.environ["STDOUT_TO"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status),
                  "cpu_us": (ru.ru_utime + ru.ru_stime) * 1e6}))
PY

SERVER_PID=
# CPU of the server so far, in µs (utime + stime from /proc, clock ticks).
server_cpu_us() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1e6 / hz}' "/proc/$SERVER_PID/stat"
}
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -INT "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

PORT=19555
start_server() {
    taskset -c "$SC" "$1" serve --addr "127.0.0.1:$PORT" --shards 1 --first-core "$SC" -q \
        >"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.05
    done
    say "server did not start"
    cat "$OUT/server.log" >&2
    exit 1
}

case_args() {
    case $1 in
    b) echo "-c 100" ;;
    t) echo "-c 100 --text --size 256" ;;
    o) echo "-c 1000 --rate-per-conn 20 --text --connect-rate 0" ;;
    l) echo "-c 10 --rate-per-conn 20" ;;
    k) echo "-c 100 --rate-per-conn 100" ;;
    esac
}
case_name() {
    case $1 in
    b) echo "closed loop, 100 connections, 64 B binary" ;;
    t) echo "closed loop, 100 connections, 256 B text" ;;
    o) echo "open loop, 1,000 connections x 20/s, 64 B text" ;;
    l) echo "open loop, 10 connections x 20/s, 64 B binary" ;;
    k) echo "open loop, 100 connections x 100/s, 64 B binary" ;;
    esac
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# one CASE SIDE I: one measured run; appends "rate client_us server_us" to a file.
one() {
    local c=$1 side=$2 i=$3 bin
    bin=$BIN_A
    [[ $side == B ]] && bin=$BIN_B
    start_server "$bin"
    local before
    before=$(server_cpu_us)
    local name=$OUT/$c-$side-$i
    # shellcheck disable=SC2046
    STDOUT_TO=$name.stdout python3 "$HELPER" taskset -c "$CC" "$bin" run \
        "ws://127.0.0.1:$PORT/" --shards 1 -q -d "${SECS}s" --json "$name.json" \
        $(case_args "$c") >"$name.measure"
    local after
    after=$(server_cpu_us)
    stop_server
    python3 - "$name" "$before" "$after" >>"$OUT/$c-$side.rows" <<'PY'
import json, sys
name, before, after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
r = json.load(open(name + ".json")); m = json.load(open(name + ".measure"))
got = r["messages"]["received"]
lag = r["latency"].get("send_lag") or {}
print(r["messages"]["received_per_sec"], m["cpu_us"] / got, (after - before) / got,
      lag.get("p50_us", 0), lag.get("p99_us", 0))
PY
}

for c in $(echo "$CASES" | grep -o .); do
    say "case $c: $(case_name "$c"), $RUNS runs of ${SECS}s per side, alternating"
    for i in $(seq "$RUNS"); do
        one "$c" A "$i"
        one "$c" B "$i"
    done
done

echo
desc() {
    if [[ $1 == . ]]; then
        echo "the working tree on $(git rev-parse --short HEAD)"
    else
        echo "$1 ($(git rev-parse --short "$1"))"
    fi
}
echo "A = $(desc "$REV_A"), B = $(desc "$REV_B"); medians of $RUNS runs of ${SECS}s"
for c in $(echo "$CASES" | grep -o .); do
    echo
    echo "$(case_name "$c")"
    echo
    echo "| side | round trips/s | load CPU per round trip | server CPU per message | send lag p50 | send lag p99 |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for side in A B; do
        for k in 1 2 3 4 5; do
            cut -d' ' -f$k "$OUT/$c-$side.rows" | median >"$OUT/$c-$side.m$k"
        done
        printf '| %s | %.0f | %.2f µs | %.2f µs | %.0f µs | %.0f µs |\n' "$side" \
            "$(cat "$OUT/$c-$side.m1")" "$(cat "$OUT/$c-$side.m2")" "$(cat "$OUT/$c-$side.m3")" \
            "$(cat "$OUT/$c-$side.m4")" "$(cat "$OUT/$c-$side.m5")"
    done
    ratio() {
        python3 -c "a, b = $(cat "$OUT/$c-A.m$1"), $(cat "$OUT/$c-B.m$1"); print(f'{b / a:.3f}x' if a else '-')"
    }
    echo "| B/A | $(ratio 1) | $(ratio 2) | $(ratio 3) | $(ratio 4) | $(ratio 5) |"
done
echo
echo "raw runs (rate, load µs/rt, server µs/msg, send lag p50, p99 µs): $OUT/*.rows"
