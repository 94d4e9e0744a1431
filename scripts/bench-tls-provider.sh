#!/usr/bin/env bash
# The crypto provider choice, reproducible: rustls 0.23 over ring against rustls over
# aws-lc-rs, measured in memory. wsherd builds its TLS configs on one provider
# (src/net/tls.rs); this says which, and by how much.
#
# Usage: scripts/bench-tls-provider.sh
#
# Builds benches/tls-provider (a standalone package, not part of wsherd's build) in
# release, copies the binary into OUT, writes one set of certificates into OUT for
# every run (for each key type a CA, the client's only root, and a `localhost` leaf
# signed by it), then runs every case for each provider in turn, round after round,
# the providers' order swapped every round (so a change in the machine's other load
# hits both alike). Each run is a fresh process pinned to CORE with taskset. It
# prints the medians as Markdown tables.
#
# What a run does: a rustls client and server in one thread, configured as wsherd's
# (safe default versions, ALPN http/1.1, the client verifying the server's chain
# against a root store, stateless TLS 1.3 tickets from the same provider), their
# bytes passed between them through two Vecs, no sockets. Both sides use the same
# provider. The client's calls are timed apart from the server's on the thread's CPU
# clock (CLOCK_THREAD_CPUTIME_ID), whose own cost is measured at the start of each run
# and taken out.
#   - full-ecdsa, full-rsa: full TLS 1.3 handshakes (client resumption off), the
#     server's certificate ECDSA P-256 or RSA 2048, back to back for BENCH_SECS:
#     handshakes per second of the thread's CPU (both sides) and of wall time, and
#     the client's and the server's CPU per handshake. A handshake runs until the
#     client has taken the server's tickets; the client's `new` and drop count as
#     the client's.
#   - resumed-ecdsa, resumed-rsa: the same with the client's ticket store on, every
#     handshake (after a first full one) resumed from a ticket (checked).
#   - rec-aes128, rec-aes256, rec-chacha20: one connection offering that suite alone
#     (ECDSA certificate), messages of each size in BENCH_SIZES for BENCH_SECS each:
#     the client's CPU to encrypt a message (writer().write_all + write_tls) and to
#     decrypt the server's answer of the same size, fed to it one record at a time
#     (read_tls + process_new_packets + reader().read), in ns; their sum is the
#     client's crypto-and-framing cost of one round trip. Timed per batch of 64.
#     Then, for as long again, the provider's part alone: the MessageEncrypter and
#     MessageDecrypter it hands rustls for the suite (keyed from a real connection's
#     traffic secrets), called as rustls calls them, one record each; the rest of
#     the round trip's cost is rustls's own framing and buffering.
#   - mem: BENCH_MEM_CONNS handshakes whose clients are kept: the heap's growth per
#     connection, from glibc's own count (mallinfo2, which sees aws-lc's C
#     allocations too) and from a counting global allocator (Rust's alone), plus
#     size_of::<ClientConnection>(). Both certificates, full and resumed. Run with
#     glibc's tcache off (GLIBC_TUNABLES=glibc.malloc.tcache_count=0), which mallinfo2
#     would count as in use.
# Wall-clock figures suffer from anything else running on CORE; CPU-time figures
# much less (a context switch still leaves the caches colder). The report says what
# share of its wall time the benchmark had its core.
#
# Environment:
#   BENCH_SECS        measured seconds per case and message size (default 1; each
#                     adds a BENCH_WARMUP warm-up, default 0.3)
#   BENCH_RUNS        rounds; the tables show medians (default 5)
#   BENCH_CASES       cases to run (default "full-ecdsa full-rsa resumed-ecdsa
#                     resumed-rsa rec-aes128 rec-aes256 rec-chacha20 mem")
#   BENCH_PROVIDERS   providers (default "ring aws-lc-rs")
#   BENCH_SIZES       message sizes for the record cases (default 64,1024)
#   BENCH_MEM_CONNS   connections held by the mem case (default 2000)
#   BENCH_CORE        the core every run is pinned to (default 1)
#   BENCH_OUT         where to keep raw results (default target/bench-tls-provider/<time>)
#
# With the defaults: 5 rounds x 2 providers x about 25 s, about 4 minutes after the
# build (the first build compiles aws-lc's C code: about 1.5 minutes on 2 cores).
#
# Needs: cargo, a C compiler (aws-lc-sys, under aws-lc-rs, compiles aws-lc with the
# cc crate; the versions locked here need no cmake on x86_64/aarch64 Linux), taskset
# (util-linux).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECS=${BENCH_SECS:-1}
WARMUP=${BENCH_WARMUP:-0.3}
RUNS=${BENCH_RUNS:-5}
CASES=${BENCH_CASES:-"full-ecdsa full-rsa resumed-ecdsa resumed-rsa rec-aes128 rec-aes256 rec-chacha20 mem"}
PROVIDERS=${BENCH_PROVIDERS:-"ring aws-lc-rs"}
SIZES=${BENCH_SIZES:-64,1024}
MEM_CONNS=${BENCH_MEM_CONNS:-2000}
CORE=${BENCH_CORE:-1}
OUT=${BENCH_OUT:-$ROOT/target/bench-tls-provider/$(date +%Y%m%d-%H%M%S)}
# A run that takes this much longer than its measured time is stuck: stop it.
SLACK=60

die() { echo "bench-tls-provider: $*" >&2; exit 1; }
say() { echo "bench-tls-provider: $*" >&2; }

command -v cargo >/dev/null || die "cargo is not installed"
command -v taskset >/dev/null || die "taskset is not installed (Debian: apt-get install -y util-linux)"
command -v "${CC:-cc}" >/dev/null ||
    die "no C compiler (${CC:-cc}): aws-lc-rs builds aws-lc's C code (Debian: apt-get install -y gcc)"
ncpu=$(nproc)
((CORE < ncpu)) || die "core $CORE is not available (nproc = $ncpu)"
for p in $PROVIDERS; do
    case $p in ring | aws-lc-rs) ;; *) die "unknown provider $p" ;; esac
done
for c in $CASES; do
    case $c in
        full-ecdsa | full-rsa | resumed-ecdsa | resumed-rsa | rec-aes128 | rec-aes256 | rec-chacha20 | mem) ;;
        *) die "unknown case $c" ;;
    esac
done

mkdir -p "$OUT"
RAW="$OUT/raw.tsv"
: >"$RAW"

say "building benches/tls-provider (release)"
if ! cargo build --release --quiet --manifest-path benches/tls-provider/Cargo.toml; then
    die "the build failed; if it was aws-lc-sys, see its message above (a C compiler is needed; cmake only if AWS_LC_SYS_CMAKE_BUILDER=1 is set)"
fi
# A copy: a build in the same tree during the benchmark cannot change the binary.
BIN="$OUT/tls-provider"
cp benches/tls-provider/target/release/tls-provider "$BIN"
"$BIN" certs "$OUT/certs"

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "$(date '+%F %T'), commit $commit, $ncpu CPUs ($cpu_model), kernel $(uname -r)"
say "$("$BIN" versions)"
say "load average at the start: $load_start; raw results in $OUT"

# Seconds one run of a case measures (for its time-out).
measured() {
    case $1 in
        rec-*) awk -v s="$SECS" -v w="$WARMUP" -v n="$(tr ',' '\n' <<<"$SIZES" | wc -l)" 'BEGIN { print int(2 * (s + w) * n) + 1 }' ;;
        mem) echo 10 ;;
        *) awk -v s="$SECS" -v w="$WARMUP" 'BEGIN { print int(s + w) + 1 }' ;;
    esac
}

read -r -a order <<<"$PROVIDERS"
for ((round = 1; round <= RUNS; round++)); do
    for c in $CASES; do
        for p in "${order[@]}"; do
            log="$OUT/$c-$p-r$round.txt"
            # mem: glibc's per-thread cache of freed chunks off, so that mallinfo2 counts
            # only chunks really in use (it counts the cached ones as in use).
            tunables=${GLIBC_TUNABLES:-}
            [[ $c != mem ]] || tunables=glibc.malloc.tcache_count=0
            if ! GLIBC_TUNABLES=$tunables timeout $(($(measured "$c") + SLACK)) taskset -c "$CORE" "$BIN" run --provider "$p" \
                --case "$c" --secs "$SECS" --warmup "$WARMUP" --certs "$OUT/certs" \
                --sizes "$SIZES" --mem-conns "$MEM_CONNS" >"$log" 2>&1; then
                say "$c, $p, round $round failed:"
                sed 's/^/    /' "$log" >&2
                continue
            fi
            cpu=$(awk -F'\t' '$1 == "info" && $3 == "cpu" { print $4 }' "$log")
            [[ $cpu == "$CORE" ]] || die "$c, $p ran on CPU $cpu, not $CORE: is taskset working?"
            cat "$log" >>"$RAW"
        done
    done
    say "round $round of $RUNS done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    # The other provider first next round.
    order=("${order[@]:1}" "${order[0]}")
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "Medians of $RUNS runs of ${SECS} s per case (and message size), each a fresh process" \
    "pinned to CPU $CORE; $ncpu CPUs ($cpu_model); load average $load_start at the start," \
    "$load_end at the end."
"$BIN" report "$RAW"
