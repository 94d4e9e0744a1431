#!/usr/bin/env bash
# Real-endpoint benchmark: what wss:// and permessage-deflate cost the load next to
# plain ws://, against `wsherd serve` on another core, every case side by side in
# one session (runs alternate).
#
# Usage: scripts/bench-endpoints.sh
#
# Cases:
#   a  closed loop, 100 connections, 64-byte echo: client CPU per round trip, ws://
#      and wss:// (TLS 1.3, the server's self-signed ECDSA P-256 certificate); the
#      ratio wss/ws is the figure the issue sets (target <= 1.3)
#   h  handshakes: churn, 20 connections, 1 message per session, against servers with
#      an ECDSA P-256 key and an RSA-2048 key: full handshakes (--no-tls-resume) and
#      resumed ones; sessions per second and client CPU per session. Beside them,
#      `openssl s_time` against the same servers (-new: full, -reuse: resumed) for
#      the connections per second a C client makes (one at a time).
#   m  memory: 10,000 idle wss connections (heartbeat none) against 1,000: marginal
#      RSS per held connection of the load process (VmRSS sampled during the hold),
#      and the same for ws:// beside it
#   d  permessage-deflate CPU: closed loop, 100 connections, 1 KiB JSON-like
#      messages (quotes with varying numbers): no deflate, deflate keeping context,
#      deflate without context; client CPU per round trip and bytes on the wire
#   r  permessage-deflate memory: connections that exchange a message a second
#      (open loop), 1,000 against 100: marginal RSS per connection of the load
#      process, with context takeover and without, beside no deflate
#   c  replies matched by a field: closed loop, 100 connections, ~1 KiB JSON-RPC
#      text (72 short fields, the id last) against the echo server: matched by the
#      template's stamp (echo) and by `--correlate /id` (the streaming field
#      lookup); client CPU per round trip and the ratio (target <= 1.5)
#   s  Socket.IO memory: 10,000 connections held (idle, Node's socket.io pinging
#      every 5 s) against 1,000: marginal RSS per connection of the load process
#      (target <= 4 KiB)
#
# Environment:
#   BENCH_SECS   duration of the a and h runs (default 5)
#   BENCH_RUNS   runs per case, alternating; the table shows medians (default 3)
#   BENCH_CASES  which cases to run (default "ahmdr"; c and s on demand)
#   BENCH_CLIENT_CORE / BENCH_SERVER_CORE   (default 0 / 1)
#   BENCH_OUT    where raw results go (default target/bench-endpoints/<time>)
#
# Client CPU is the load process's user+sys time (wait4) divided by echoes received
# (a) or sessions completed (h).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECS=${BENCH_SECS:-5}
RUNS=${BENCH_RUNS:-3}
CASES=${BENCH_CASES:-ahmdr}
CC=${BENCH_CLIENT_CORE:-0}
SC=${BENCH_SERVER_CORE:-1}
OUT=${BENCH_OUT:-$ROOT/target/bench-endpoints/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
say() { echo "bench-endpoints: $*" >&2; }
command -v openssl >/dev/null || { say "openssl is required (case h)"; exit 1; }

cargo build --release --quiet
BIN=$ROOT/target/release/wsherd

# Measures a command to completion: CPU (user+sys, all threads), peak RSS, and RSS
# sampled HOLD_AT seconds in; prints one JSON line.
HELPER=$OUT/measure.py
cat >"$HELPER" <<'PY'
import json, os, sys, time
hold_at = float(os.environ.get("HOLD_AT") or "inf")
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    fd = os.open(os.environ["STDOUT_TO"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.execvp(sys.argv[1], sys.argv[1:])
hold = None
while True:
    p, status, ru = os.wait4(pid, os.WNOHANG)
    if p == pid:
        break
    if hold is None and time.monotonic() - t0 >= hold_at:
        with open(f"/proc/{pid}/status") as f:
            hold = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    time.sleep(0.05)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status),
                  "cpu_us": (ru.ru_utime + ru.ru_stime) * 1e6,
                  "maxrss_kib": ru.ru_maxrss, "hold_rss_kib": hold}))
PY

SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -INT "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

# start_server PORT ARGS...: `wsherd serve` on the server core, waits until it listens.
start_server() {
    local port=$1
    shift
    taskset -c "$SC" "$BIN" serve --addr "127.0.0.1:$port" --shards 1 --first-core "$SC" -q "$@" \
        >"$OUT/server-$port.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    say "server on $port did not start"
    cat "$OUT/server-$port.log" >&2
    exit 1
}

# load NAME HOLD_AT ARGS...: one measured load run (results JSON in $OUT/NAME.json).
load() {
    local name=$1 hold=$2
    shift 2
    HOLD_AT=$hold STDOUT_TO=$OUT/$name.stdout python3 "$HELPER" taskset -c "$CC" "$BIN" run \
        --shards 1 -q --json "$OUT/$name.json" "$@" >"$OUT/$name.measure"
}

# field FILE PYEXPR: a figure from a results JSON (r) and its measure (m).
field() {
    python3 -c "
import json,sys
r=json.load(open('$OUT/$1.json')); m=json.load(open('$OUT/$1.measure'))
print($2)"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

PORT=19443
CA=$OUT/ca.pem
row() { printf '| %s | %s |\n' "$1" "$2"; }

if [[ $CASES == *a* ]]; then
    say "case a: closed loop, ws:// and wss:// alternating, $RUNS runs of ${SECS}s"
    for i in $(seq "$RUNS"); do
        start_server $PORT
        load "a-ws-$i" inf "ws://127.0.0.1:$PORT/" -c 100 -d "${SECS}s"
        stop_server
        start_server $PORT --tls-self-signed --tls-ca-out "$CA"
        load "a-wss-$i" inf "wss://127.0.0.1:$PORT/" --ca "$CA" -c 100 -d "${SECS}s"
        stop_server
    done
    for k in ws wss; do
        for i in $(seq "$RUNS"); do
            field "a-$k-$i" "m['cpu_us']/r['messages']['received']"
        done | median >"$OUT/a-$k.cpu"
        for i in $(seq "$RUNS"); do field "a-$k-$i" "r['messages']['received_per_sec']"; done |
            median >"$OUT/a-$k.rate"
    done
    echo
    echo "Case a: closed loop, 100 connections, 64 B (medians of $RUNS)"
    echo
    echo "| scheme | round trips/s | client CPU per round trip |"
    echo "| --- | --- | --- |"
    for k in ws wss; do
        printf '| %s | %.0f | %.2f µs |\n' "$k" "$(cat "$OUT/a-$k.rate")" "$(cat "$OUT/a-$k.cpu")"
    done
    printf '\nwss/ws client CPU per round trip: %.2fx\n' \
        "$(python3 -c "print($(cat "$OUT/a-wss.cpu")/$(cat "$OUT/a-ws.cpu"))")"
fi

if [[ $CASES == *h* ]]; then
    say "case h: handshakes, ECDSA P-256 and RSA-2048 servers"
    # An RSA-2048 CA and a leaf it signed (a self-signed CA certificate is no
    # server certificate to webpki).
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$OUT/rsa-ca-key.pem" -out "$OUT/rsa-ca.pem" \
        -subj "/CN=bench RSA CA" -days 2 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout "$OUT/rsa-key.pem" -out "$OUT/rsa.csr" \
        -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$OUT/rsa.ext"
    openssl x509 -req -in "$OUT/rsa.csr" -CA "$OUT/rsa-ca.pem" -CAkey "$OUT/rsa-ca-key.pem" \
        -CAcreateserial -out "$OUT/rsa.pem" -days 2 -extfile "$OUT/rsa.ext" 2>/dev/null
    echo
    echo "Case h: churn, 20 connections, 1 message per session, ${SECS}s (medians of $RUNS)"
    echo
    echo "| server key | handshake | wsherd sessions/s | client CPU per session | TLS p50 | openssl s_time conn/s |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for key in ecdsa rsa; do
        if [[ $key == ecdsa ]]; then
            start_server $PORT --tls-self-signed --tls-ca-out "$CA"
            ca=$CA
        else
            start_server $PORT --tls-cert "$OUT/rsa.pem" --tls-key "$OUT/rsa-key.pem"
            ca=$OUT/rsa-ca.pem
        fi
        for mode in full resumed; do
            extra=()
            [[ $mode == full ]] && extra=(--no-tls-resume)
            for i in $(seq "$RUNS"); do
                load "h-$key-$mode-$i" inf "wss://127.0.0.1:$PORT/" --ca "$ca" -w churn \
                    -c 20 -d "${SECS}s" "${extra[@]}"
                sflag=-new
                [[ $mode == resumed ]] && sflag=-reuse
                taskset -c "$CC" openssl s_time -connect "127.0.0.1:$PORT" $sflag \
                    -time "$SECS" -CAfile "$ca" 2>/dev/null |
                    awk '/connections\/user sec|connections in/ {print}' \
                        >"$OUT/h-$key-$mode-$i.stime" || true
            done
            rate=$(for i in $(seq "$RUNS"); do field "h-$key-$mode-$i" "r['sessions']['completed']/r['elapsed_secs']"; done | median)
            cpu=$(for i in $(seq "$RUNS"); do field "h-$key-$mode-$i" "m['cpu_us']/max(1,r['sessions']['completed'])"; done | median)
            p50=$(for i in $(seq "$RUNS"); do field "h-$key-$mode-$i" "r['latency']['tls']['p50_us']"; done | median)
            st=$(for i in $(seq "$RUNS"); do
                grep -o '[0-9]* connections in [0-9.]*s' "$OUT/h-$key-$mode-$i.stime" |
                    awk '{printf "%.0f\n", $1/$4}' | head -1
            done | median)
            printf '| %s | %s | %.0f | %.0f µs | %.0f µs | %s |\n' "$key" "$mode" "$rate" "$cpu" "$p50" "${st:-n/a}"
        done
        stop_server
    done
fi

if [[ $CASES == *m* ]]; then
    say "case m: held idle connections, 10,000 against 1,000"
    echo
    echo "Case m: idle connections held (VmRSS of the load process during the hold; medians of $RUNS)"
    echo
    echo "| scheme | RSS at 1,000 | RSS at 10,000 | marginal RSS per connection |"
    echo "| --- | --- | --- | --- |"
    for k in ws wss; do
        for i in $(seq "$RUNS"); do
            for n in 1000 10000; do
                if [[ $k == ws ]]; then
                    start_server $PORT
                    load "m-$k-$n-$i" 7 "ws://127.0.0.1:$PORT/" -w idle -c $n -d 9s --connect-rate 5000
                else
                    start_server $PORT --tls-self-signed --tls-ca-out "$CA"
                    load "m-$k-$n-$i" 7 "wss://127.0.0.1:$PORT/" --ca "$CA" -w idle -c $n -d 9s --connect-rate 5000
                fi
                stop_server
            done
        done
        lo=$(for i in $(seq "$RUNS"); do field "m-$k-1000-$i" "m['hold_rss_kib']"; done | median)
        hi=$(for i in $(seq "$RUNS"); do field "m-$k-10000-$i" "m['hold_rss_kib']"; done | median)
        printf '| %s | %.1f MiB | %.1f MiB | %.2f KiB |\n' "$k" "$(echo "$lo/1024" | bc -l)" \
            "$(echo "$hi/1024" | bc -l)" "$(echo "($hi-$lo)/9000" | bc -l)"
    done
fi
if [[ $CASES == *d* || $CASES == *r* ]]; then
    # 1 KiB of JSON-like quotes, numbers varying as a feed's do (fixed seed).
    python3 -c "
import json, random
random.seed(7)
q = [{'sym': s, 'px': round(random.uniform(10, 500), 2), 'sz': random.randint(1, 900),
      'ts': 1764547200000 + random.randint(0, 99999)} for s in
     ['ACME', 'GLOBX', 'INITECH', 'UMBRL', 'HOOLI', 'WAYNE', 'STARK', 'WONKA', 'TYRELL', 'CYBRD',
      'SOYL', 'MASSV', 'OSCP', 'VAND', 'BLUTH']]
print(json.dumps({'type': 'quotes', 'data': q})[:960])" >"$OUT/quotes.json"
fi

if [[ $CASES == *d* ]]; then
    say "case d: deflate CPU, $RUNS runs of ${SECS}s each way"
    modes=(none ctx noctx)
    for i in $(seq "$RUNS"); do
        start_server $PORT --deflate
        for mode in "${modes[@]}"; do
            extra=()
            [[ $mode == ctx ]] && extra=(--deflate)
            [[ $mode == noctx ]] && extra=(--deflate=client_no_context_takeover,server_no_context_takeover)
            load "d-$mode-$i" inf "ws://127.0.0.1:$PORT/" -c 100 -d "${SECS}s" --text \
                --payload-file "$OUT/quotes.json" "${extra[@]}"
        done
        stop_server
    done
    echo
    echo "Case d: closed loop, 100 connections, ~1 KiB JSON-like text (medians of $RUNS)"
    echo
    echo "| deflate | round trips/s | client CPU per round trip | wire bytes per message sent |"
    echo "| --- | --- | --- | --- |"
    for mode in "${modes[@]}"; do
        rate=$(for i in $(seq "$RUNS"); do field "d-$mode-$i" "r['messages']['received_per_sec']"; done | median)
        cpu=$(for i in $(seq "$RUNS"); do field "d-$mode-$i" "m['cpu_us']/r['messages']['received']"; done | median)
        wire=$(for i in $(seq "$RUNS"); do field "d-$mode-$i" "r['messages']['bytes_sent']/r['messages']['sent']"; done | median)
        printf '| %s | %.0f | %.2f µs | %.0f |\n' "$mode" "$rate" "$cpu" "$wire"
    done
fi

if [[ $CASES == *r* ]]; then
    say "case r: deflate memory, 1,000 against 100 connections at 1 message/s each"
    echo
    echo "Case r: connections exchanging 1 message/s (~1 KiB JSON), VmRSS of the load process during the run (medians of $RUNS)"
    echo
    echo "| deflate | RSS at 100 | RSS at 1,000 | marginal RSS per connection | zlib state (report) |"
    echo "| --- | --- | --- | --- | --- |"
    for mode in none ctx noctx; do
        extra=()
        [[ $mode == ctx ]] && extra=(--deflate)
        [[ $mode == noctx ]] && extra=(--deflate=client_no_context_takeover,server_no_context_takeover)
        for i in $(seq "$RUNS"); do
            for n in 100 1000; do
                start_server $PORT --deflate
                load "r-$mode-$n-$i" 6 "ws://127.0.0.1:$PORT/" -c $n -d 8s --rate-per-conn 1 \
                    --text --payload-file "$OUT/quotes.json" "${extra[@]}"
                stop_server
            done
        done
        lo=$(for i in $(seq "$RUNS"); do field "r-$mode-100-$i" "m['hold_rss_kib']"; done | median)
        hi=$(for i in $(seq "$RUNS"); do field "r-$mode-1000-$i" "m['hold_rss_kib']"; done | median)
        state=$(field "r-$mode-1000-1" "(r['connections'].get('deflate') or {}).get('state_bytes_per_connection', 0)/1024")
        printf '| %s | %.1f MiB | %.1f MiB | %.1f KiB | %.1f KiB |\n' "$mode" "$(echo "$lo/1024" | bc -l)" \
            "$(echo "$hi/1024" | bc -l)" "$(echo "($hi-$lo)/900" | bc -l)" "$state"
    done
fi
if [[ $CASES == *c* ]]; then
    # A ~1 KiB JSON-RPC request of many short fields, its id last: the reply's
    # field lookup scans the whole message (the worst place for the id).
    TPL=$(python3 -c '
fields = ",".join("\"k%d\":\"v%03d\"" % (i, i) for i in range(72))
print("{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"user\":\"u{conn}\",\"ts\":{ts}," + fields + "},\"id\":{seq}}")')
    say "case c: closed loop, 100 connections, ${#TPL}-byte JSON, echo matched by stamp and by /id, alternating"
    for i in $(seq "$RUNS"); do
        for mode in echo correlate; do
            extra=()
            [[ $mode == correlate ]] && extra=(--correlate /id)
            start_server $PORT
            load "c-$mode-$i" inf "ws://127.0.0.1:$PORT/" -c 100 -d "${SECS}s" --template "$TPL" "${extra[@]}"
            stop_server
        done
    done
    echo
    echo "Case c: closed loop, 100 connections, ${#TPL}-byte JSON text, id last (medians of $RUNS)"
    echo
    echo "| replies matched | round trips/s | client CPU per round trip |"
    echo "| --- | --- | --- |"
    for mode in echo correlate; do
        cpu=$(for i in $(seq "$RUNS"); do field "c-$mode-$i" "m['cpu_us']/r['messages']['received']"; done | median)
        rate=$(for i in $(seq "$RUNS"); do field "c-$mode-$i" "r['messages']['received_per_sec']"; done | median)
        echo "$cpu" >"$OUT/c-$mode.cpu"
        printf '| %s | %.0f | %.2f µs |\n' "$mode" "$rate" "$cpu"
    done
    printf '\ncorrelate / echo CPU per round trip: %.2fx\n' \
        "$(echo "$(cat "$OUT/c-correlate.cpu")/$(cat "$OUT/c-echo.cpu")" | bc -l)"
fi
if [[ $CASES == *s* ]]; then
    # Node's socket.io (scripts/setup-test-deps.sh installs it) on the server core,
    # pinging every 5 s: the connections answer heartbeats during the hold.
    say "case s: Socket.IO, 10,000 against 1,000 held connections, VmRSS of the load process"
    start_sio() {
        taskset -c "$SC" node "$ROOT/tests/servers/node/socketio_server.js" 600 --port $PORT \
            --ping-interval 5000 --ping-timeout 5000 >"$OUT/sio-server.log" 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
            sleep 0.1
        done
        say "the Socket.IO server did not start"; cat "$OUT/sio-server.log" >&2; exit 1
    }
    for i in $(seq "$RUNS"); do
        for n in 1000 10000; do
            start_sio
            load "s-$n-$i" 20 "ws://127.0.0.1:$PORT/" -c $n -d 24s -w idle --protocol socketio \
                --connect-timeout 20s
            stop_server
        done
    done
    lo=$(for i in $(seq "$RUNS"); do field "s-1000-$i" "m['hold_rss_kib']"; done | median)
    hi=$(for i in $(seq "$RUNS"); do field "s-10000-$i" "m['hold_rss_kib']"; done | median)
    opened=$(field "s-10000-1" "r['protocol']['opened']")
    pings=$(field "s-10000-1" "r['protocol']['pings_answered']")
    echo
    echo "Case s: Socket.IO connections held (idle, the server pinging every 5 s), VmRSS at 20 s (medians of $RUNS)"
    echo
    echo "| RSS at 1,000 | RSS at 10,000 | marginal RSS per connection | opened (10k run) | pings answered (10k run) |"
    echo "| --- | --- | --- | --- | --- |"
    printf '| %.1f MiB | %.1f MiB | %.2f KiB | %s | %s |\n' "$(echo "$lo/1024" | bc -l)" \
        "$(echo "$hi/1024" | bc -l)" "$(echo "($hi-$lo)/9000" | bc -l)" "$opened" "$pings"
fi
say "raw results in $OUT"
