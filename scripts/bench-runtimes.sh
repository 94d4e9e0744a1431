#!/usr/bin/env bash
# The runtime choice, reproducible: raw TCP ping-pong over monoio (io_uring driver),
# tokio (current-thread, epoll) and glommio, the same runtime on both sides.
#
# Usage: scripts/bench-runtimes.sh
#
# Builds benches/runtimes (a standalone package, not part of wsherd's build) in
# release, copies the binary into OUT, then runs every runtime in turn, round after
# round (so a change in the machine's other load hits all of them alike), each run a
# fresh server pinned to SERVER_CORE and the client pinned to CLIENT_CORE, for every
# connection count in CONNS. It prints the medians as a Markdown table.
#
# Then, in separate short passes (the figures above are taken without them), it
# counts the client's syscalls per round trip:
#   - with `perf stat` on syscall tracepoints, if perf is installed and the kernel's
#     tracepoints are readable: counted in the kernel, without stopping the client;
#     and, where `perf stat -a` is allowed (x86), the reschedule interrupts per round
#     trip on the whole machine, both sides (see benches/README.md for why);
#   - with `strace -c -f`, if strace is installed: every syscall by name, but strace
#     stops the client at each syscall, which slows it several times over, and a
#     slower client finds more work waiting per wake-up (more completions per
#     io_uring_enter, more events per epoll_wait, fewer reads that return EAGAIN), so
#     its per-round-trip figures for those are lower than in an untraced run.
# Either is skipped, with a note, when it is missing or fails.
#
# Environment:
#   BENCH_SECS          measured seconds per run (default 5; each run adds a 0.5 s
#                       warm-up and about 0.1 s to start)
#   BENCH_RUNS          rounds; the table shows medians (default 3)
#   BENCH_CONNS         connection counts to run (default "100 1")
#   BENCH_RUNTIMES      runtimes to run (default "monoio tokio glommio")
#   BENCH_SYSCALL_SECS  measured seconds of each syscall-counting run (default 2;
#                       0 skips the syscall passes)
#   BENCH_CLIENT_CORE / BENCH_SERVER_CORE   cores for client and server (default 0 / 1)
#   BENCH_OUT           where to keep raw results (default target/bench-runtimes/<time>)
#
# With the defaults: 3 rounds x 3 runtimes x 2 connection counts x ~5.6 s, plus the
# syscall passes (about 50 s), about 2.5 minutes after the build (about 1.5 minutes on
# 2 cores, fresh).
#
# Client CPU is the client runtime thread's CPU time (getrusage RUSAGE_THREAD) over the
# measured period divided by round trips; server CPU the server process's (from
# /proc/PID/stat). Syscalls per round trip are the client process's counts over its
# whole life (connect and warm-up included) divided by all its round trips.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECS=${BENCH_SECS:-5}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNS:-"100 1"}
RUNTIMES=${BENCH_RUNTIMES:-"monoio tokio glommio"}
SYSCALL_SECS=${BENCH_SYSCALL_SECS:-2}
CLIENT_CORE=${BENCH_CLIENT_CORE:-0}
SERVER_CORE=${BENCH_SERVER_CORE:-1}
OUT=${BENCH_OUT:-$ROOT/target/bench-runtimes/$(date +%Y%m%d-%H%M%S)}
# A run that takes this much longer than its measured period is stuck: stop it.
SLACK=30

die() { echo "bench-runtimes: $*" >&2; exit 1; }
say() { echo "bench-runtimes: $*" >&2; }

[[ $CLIENT_CORE != "$SERVER_CORE" ]] || die "client and server must be on different cores"
ncpu=$(nproc)
((CLIENT_CORE < ncpu && SERVER_CORE < ncpu)) ||
    die "cores $CLIENT_CORE and $SERVER_CORE are not both available (nproc = $ncpu)"
for rt in $RUNTIMES; do
    case $rt in monoio | tokio | glommio) ;; *) die "unknown runtime $rt" ;; esac
done

mkdir -p "$OUT"
RAW="$OUT/raw.tsv"
: >"$RAW"

say "building benches/runtimes (release)"
cargo build --release --quiet --manifest-path benches/runtimes/Cargo.toml
# A copy: a build in the same tree during the benchmark cannot change the binary.
BIN="$OUT/runtimes"
cp benches/runtimes/target/release/runtimes "$BIN"

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "$(date '+%F %T'), commit $commit, $ncpu CPUs ($cpu_model), kernel $(uname -r)"
say "load average at the start: $load_start; raw results in $OUT"

# ------------------------------------------------------------------ the main runs --
# One line per run in raw.tsv: conns runtime round rate client_cpu proc_cpu server_cpu
field() { # field KEY < result line
    awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }'
}

for ((round = 1; round <= RUNS; round++)); do
    for c in $CONNS; do
        for rt in $RUNTIMES; do
            log="$OUT/$rt-c$c-r$round.txt"
            if ! timeout $((${SECS%.*} + SLACK)) "$BIN" "$rt" --conns "$c" --secs "$SECS" \
                --client-core "$CLIENT_CORE" --server-core "$SERVER_CORE" >"$log" 2>&1; then
                say "$rt, $c connections, round $round failed:"
                sed 's/^/    /' "$log" >&2
                continue
            fi
            line=$(grep '^result ' "$log")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$rt" "$round" \
                "$(field rtt_per_sec <<<"$line")" "$(field client_cpu_us_per_rt <<<"$line")" \
                "$(field client_proc_cpu_us_per_rt <<<"$line")" \
                "$(field server_cpu_us_per_rt <<<"$line")" >>"$RAW"
            say "round $round: $rt, $(sed -n 1p "$log" | cut -d' ' -f2-3) $(sed -n 2p "$log" | sed 's/^ *//')"
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# median COLUMN CONNS RUNTIME: the median of that column over the runs of one case.
median() {
    awk -F'\t' -v col="$1" -v c="$2" -v rt="$3" '$1 == c && $2 == rt && $col != "" { print $col }' "$RAW" |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "-"; exit }
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m }'
}
# thousands: a whole number with thousands separators (portable: mawk has no %'d).
thousands() {
    awk '$1 !~ /^[0-9.]+$/ { print; next }
         { n = sprintf("%.0f", $1); s = ""
           while (length(n) > 3) { s = "," substr(n, length(n) - 2) s; n = substr(n, 1, length(n) - 3) }
           print n s }'
}
runs_of() { # the per-run rates of one case, in run order
    awk -F'\t' -v c="$1" -v rt="$2" '$1 == c && $2 == rt { printf "%s%.0fk", sep, $4 / 1000; sep = " / " }' "$RAW"
}

echo
echo "Medians of $RUNS runs of ${SECS} s; client on CPU $CLIENT_CORE, server on CPU $SERVER_CORE;" \
    "load average $load_start at the start, $load_end at the end."
echo
echo "| runtime | connections | round trips/s | client CPU µs/rt | server CPU µs/rt | runs (round trips/s) |"
echo "| --- | ---: | ---: | ---: | ---: | --- |"
for c in $CONNS; do
    for rt in $RUNTIMES; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "$rt" "$c" \
            "$(median 4 "$c" "$rt" | thousands)" \
            "$(median 5 "$c" "$rt" | awk '$1 == "-" { print; next } { printf "%.2f", $1 }')" \
            "$(median 7 "$c" "$rt" | awk '$1 == "-" { print; next } { printf "%.2f", $1 }')" \
            "$(runs_of "$c" "$rt")"
    done
done

# --------------------------------------------------------------- syscall passes --
[[ $SYSCALL_SECS != 0 ]] || exit 0

SERVER_PID=""
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT

# start_server RUNTIME: a server on an ephemeral port; sets SERVER_PID and ADDR.
start_server() {
    local srv="$OUT/server-$1.txt"
    "$BIN" "$1" --server 127.0.0.1:0 --server-core "$SERVER_CORE" >"$srv" 2>&1 &
    SERVER_PID=$!
    ADDR=""
    for _ in $(seq 50); do
        ADDR=$(awk '/^listening / { print $2; exit }' "$srv")
        [[ -z $ADDR ]] || return 0
        sleep 0.1
    done
    die "the $1 server did not start: $(cat "$srv")"
}

# client RUNTIME CONNS: the client's arguments for a syscall pass.
client_args() {
    echo "$1 --connect $ADDR --conns $2 --secs $SYSCALL_SECS --client-core $CLIENT_CORE"
}

# perf: counted in the kernel on tracepoints, the client running at full speed.
have_perf=0
if command -v perf >/dev/null &&
    perf stat -x, -o /dev/null -e raw_syscalls:sys_enter -e syscalls:sys_enter_io_uring_enter \
        -e raw_syscalls:sys_exit --filter 'ret == -11' -- true 2>/dev/null; then
    have_perf=1
else
    say "perf with syscall tracepoints is not available here: no perf pass"
fi
if ((have_perf)); then
    echo
    echo "Client syscalls per round trip, counted by \`perf stat\` on syscall tracepoints" \
        "(one ${SYSCALL_SECS} s run each):"
    echo
    echo "| runtime | connections | all syscalls | io_uring_enter | sendto | recvfrom | of which EAGAIN | epoll_wait | round trips/s in this run |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for c in $CONNS; do
        for rt in $RUNTIMES; do
            start_server "$rt"
            counts="$OUT/perf-$rt-c$c.csv"
            log="$OUT/perf-$rt-c$c.txt"
            # shellcheck disable=SC2046 # client_args is split into words on purpose
            if timeout $((${SYSCALL_SECS%.*} + SLACK)) perf stat -x, -o "$counts" \
                -e raw_syscalls:sys_enter -e syscalls:sys_enter_io_uring_enter \
                -e syscalls:sys_enter_sendto -e syscalls:sys_enter_recvfrom \
                -e syscalls:sys_enter_epoll_wait \
                -e raw_syscalls:sys_exit --filter 'ret == -11' \
                -- "$BIN" $(client_args "$rt" "$c") >"$log" 2>&1; then
                line=$(grep '^result ' "$log")
                total=$(field total_round_trips <<<"$line")
                awk -F, -v n="$total" -v rt="$rt" -v c="$c" -v rate="$(field rtt_per_sec <<<"$line" | thousands)" '
                    $3 != "" { v[$3] = $1 }
                    END {
                        f = "%.2f"
                        printf "| %s | %s | " f " | " f " | " f " | " f " | " f " | " f " | %s |\n", rt, c,
                            v["raw_syscalls:sys_enter"] / n, v["syscalls:sys_enter_io_uring_enter"] / n,
                            v["syscalls:sys_enter_sendto"] / n, v["syscalls:sys_enter_recvfrom"] / n,
                            v["raw_syscalls:sys_exit"] / n, v["syscalls:sys_enter_epoll_wait"] / n, rate
                    }' "$counts"
            else
                echo "| $rt | $c | (failed: see $log) | | | | | | |"
            fi
            stop_server
        done
    done
fi

# perf, whole machine: reschedule interrupts (x86) per round trip, both sides. The
# kernel sends one to make a running thread enter the kernel, which is how io_uring
# hands it a completion that arrived while it ran in user space (a readiness poll
# that fired, for glommio): on a VM each one costs exits on both vCPUs.
if ((have_perf)) &&
    perf stat -a -x, -o /dev/null -e irq_vectors:reschedule_entry -- true 2>/dev/null; then
    echo
    echo "Reschedule interrupts per round trip, both sides, whole machine (\`perf stat -a\`;" \
        "one ${SYSCALL_SECS} s run each, other load included):"
    echo
    echo "| runtime | connections | reschedule IPIs | client CPU µs/rt in this run |"
    echo "| --- | ---: | ---: | ---: |"
    for c in $CONNS; do
        for rt in $RUNTIMES; do
            counts="$OUT/ipi-$rt-c$c.csv"
            log="$OUT/ipi-$rt-c$c.txt"
            if timeout $((${SYSCALL_SECS%.*} + SLACK)) perf stat -a -x, -o "$counts" \
                -e irq_vectors:reschedule_entry -- "$BIN" "$rt" --conns "$c" \
                --secs "$SYSCALL_SECS" --client-core "$CLIENT_CORE" \
                --server-core "$SERVER_CORE" >"$log" 2>&1; then
                line=$(grep '^result ' "$log")
                awk -F, -v n="$(field total_round_trips <<<"$line")" -v rt="$rt" -v c="$c" \
                    -v cpu="$(field client_cpu_us_per_rt <<<"$line")" '
                    $3 == "irq_vectors:reschedule_entry" {
                        printf "| %s | %s | %.2f | %.2f |\n", rt, c, $1 / n, cpu }' "$counts"
            else
                echo "| $rt | $c | (failed: see $log) | |"
            fi
        done
    done
elif ((have_perf)); then
    say "perf stat -a (whole machine) is not allowed here, or no irq_vectors tracepoints: no interrupt pass"
fi

# strace: every syscall by name, the client slowed by the tracing (see the top).
if command -v strace >/dev/null; then
    echo
    echo "Client syscalls per round trip under \`strace -c -f\` (one ${SYSCALL_SECS} s run each;" \
        "the client runs several times slower traced, so it batches more than untraced):"
    echo
    echo "| runtime | connections | round trips/s traced | syscalls per round trip (errors) |"
    echo "| --- | ---: | ---: | --- |"
    for c in $CONNS; do
        for rt in $RUNTIMES; do
            start_server "$rt"
            counts="$OUT/strace-$rt-c$c.txt"
            log="$OUT/strace-$rt-c$c.log"
            # shellcheck disable=SC2046
            if timeout $((${SYSCALL_SECS%.*} + SLACK)) strace -f -c -o "$counts" \
                "$BIN" $(client_args "$rt" "$c") >"$log" 2>&1; then
                line=$(grep '^result ' "$log")
                total=$(field total_round_trips <<<"$line")
                # strace -c: "% time seconds usecs/call calls [errors] syscall", between
                # the two dashed lines; list what comes to at least 0.01 per round trip.
                calls=$(awk -v n="$total" '
                    /^-----/ { part++; next }
                    part == 1 && NF >= 5 {
                        name = $NF; calls = $4; errs = (NF == 6) ? $5 : 0
                        if (calls / n >= 0.01) {
                            printf "%s%s %.2f%s", sep, name, calls / n, errs ? sprintf(" (%.2f)", errs / n) : ""
                            sep = ", "
                        }
                    }' "$counts")
                printf '| %s | %s | %s | %s |\n' "$rt" "$c" \
                    "$(field rtt_per_sec <<<"$line" | thousands)" "$calls"
            else
                echo "| $rt | $c | (failed: see $log) | |"
            fi
            stop_server
        done
    done
else
    say "strace is not installed: no strace pass"
fi
