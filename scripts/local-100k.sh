#!/usr/bin/env bash
# Holds 100,000 concurrent WebSocket connections on this one host, across processes
# that each stay under the per-process open-file limit (20,000 here), and prints one
# merged result: connections established, failures, connect/handshake percentiles,
# peak RSS per process and per connection.
#
#   scripts/local-100k.sh                 # 100k connections, held 30 s with a 10 s heartbeat
#   CONNS=20000 HOLD=10 scripts/local-100k.sh   # a smaller look
#
# Layout: SERVERS built-in servers (`wsherd serve`, one port each: a TCP connection is
# unique by its 4-tuple, so several destination ports multiply the ephemeral ports
# one source address can use) and AGENTS load processes (`wsherd run --agent I/N`)
# that start together (--start-at) and spread their connections over every server.
# Loopback only. Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-100000}
HOLD=${HOLD:-30}
HEARTBEAT=${HEARTBEAT:-10s}
AGENTS=${AGENTS:-6}
SERVERS=${SERVERS:-7}
RATE=${RATE:-1000}   # new connections per second per agent (2 cores: a storm times out)
OUT=${OUT:-target/local-100k/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

cargo build --release --quiet
BIN="$OUT/wsherd"
cp target/release/wsherd "$BIN"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

per_agent=$(( (CONNS + AGENTS - 1) / AGENTS ))
per_server=$(( (CONNS + SERVERS - 1) / SERVERS ))
echo "== $CONNS connections: $AGENTS agents (~$per_agent each), $SERVERS servers (~$per_server each)"
echo "== checking the plan of one agent with wsherd doctor"
urls=()
ports=()
for i in $(seq 1 "$SERVERS"); do
    port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    ports+=("$port")
    urls+=("ws://127.0.0.1:$port/")
done
"$BIN" doctor -c "$per_agent" "${urls[@]}" || { echo "doctor says the plan does not fit; see above"; exit 1; }
if (( per_server + 64 > $(ulimit -Hn) )); then
    echo "each server would hold $per_server connections, over the open-file limit $(ulimit -Hn): raise SERVERS"
    exit 1
fi

echo "== starting $SERVERS servers"
for i in $(seq 0 $((SERVERS - 1))); do
    core=$(( i % $(nproc) ))
    "$BIN" serve --addr "127.0.0.1:${ports[$i]}" --shards 1 --first-core "$core" -q 2> "$OUT/server-$i.log" &
    pids+=($!)
done
for p in "${ports[@]}"; do
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        sleep 0.05
    done
done

ramp=$(( per_agent / RATE + 2 ))
duration=$(( ramp + HOLD ))
start=$(( $(date +%s) + 2 ))
echo "== $AGENTS agents: ramp ~${ramp}s at $RATE/s each, hold ${HOLD}s, heartbeat $HEARTBEAT"
agent_pids=()
for i in $(seq 1 "$AGENTS"); do
    "$BIN" run "${urls[@]}" -c "$CONNS" -d "${duration}s" --workload idle --heartbeat "$HEARTBEAT" \
        --connect-rate $(( RATE * AGENTS )) --connect-timeout 30s --agent "$i/$AGENTS" --start-at "$start" --shards 1 -q \
        --json "$OUT/agent-$i.json" > "$OUT/agent-$i.txt" 2> "$OUT/agent-$i.err" &
    agent_pids+=($!)
done
# While the connections are held: resident memory of every process.
sleep $(( 2 + ramp + HOLD / 2 ))
server_rss=0
for p in "${pids[@]}"; do
    kb=$(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    server_rss=$(( server_rss + kb ))
done
i=1
for p in "${agent_pids[@]}"; do
    awk '/VmHWM/{print $2}' "/proc/$p/status" > "$OUT/agent-$i.rss" 2>/dev/null || echo 0 > "$OUT/agent-$i.rss"
    i=$(( i + 1 ))
done
failed=0
for p in "${agent_pids[@]}"; do wait "$p" || failed=1; done
if (( failed )); then echo "an agent failed:"; cat "$OUT"/agent-*.err; exit 1; fi

echo "== merged result"
"$BIN" merge "$OUT"/agent-*.json -o "$OUT/total.json" | tee "$OUT/total.txt" | sed -n '1,12p;/^Connections/,/^$/p'
python3 - "$OUT" "$CONNS" "$server_rss" "$SERVERS" "$AGENTS" <<'PY'
import json, sys, glob
out, conns, server_rss_kb, servers, agents = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t = json.load(open(f"{out}/total.json"))
c = t["connections"]
rss = [int(open(f).read().split()[-1]) for f in sorted(glob.glob(f"{out}/agent-*.rss"))]
print(f"connections established {c['established']:,} of {conns:,}; failed {c['failed']:,}; lost during the hold {c['lost']:,}")
print(f"peak open (sum over agents) {c['peak_open']:,}")
print(f"connect p50/p99 {t['latency']['connect']['p50_us']:.0f}/{t['latency']['connect']['p99_us']:.0f} µs; "
      f"handshake p50/p99 {t['latency']['handshake']['p50_us']:.0f}/{t['latency']['handshake']['p99_us']:.0f} µs")
print(f"heartbeats: {t['messages']['sent']:,} pings, {t['messages']['received']:,} pongs, ping p99 {t['latency']['rtt']['p99_us']:.0f} µs")
per_agent = c['established'] / max(agents, 1)
print(f"agent peak RSS while holding: max {max(rss)/1024:.1f} MiB ({max(rss)*1024/max(per_agent,1):.0f} B per connection, runtime and histograms included)")
print(f"servers RSS while holding: {server_rss_kb/1024:.1f} MiB total, {server_rss_kb*1024/max(c['established'],1):.0f} B per connection")
ok = c['established'] == conns and c['failed'] == 0 and c['lost'] == 0
print("RESULT:", "OK" if ok else "NOT ALL CONNECTIONS HELD")
sys.exit(0 if ok else 1)
PY
