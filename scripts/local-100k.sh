#!/usr/bin/env bash
# Holds 100,000 concurrent WebSocket connections on this one host, across processes
# that each stay under the per-process open-file limit (20,000 here), and prints one
# merged result: connections established, failures, connect/handshake percentiles,
# peak RSS per process and per connection.
#
#   scripts/local-100k.sh                 # 100k connections, held 30 s with a 10 s heartbeat
#   CONNS=20000 HOLD=10 scripts/local-100k.sh   # a smaller look
#
# Layout: SERVERS built-in server processes (`wsherd serve`) sharing ONE port through
# SO_REUSEPORT (the kernel spreads new connections over them), and AGENTS load
# processes (`wsherd run --agent I/N`) that start together (--start-at), each
# connecting from its own slice of SOURCES (--source-ip): a TCP connection is unique
# by its 4-tuple, so every source address has its own ephemeral port range towards
# the one server port. Loopback only. Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-100000}
HOLD=${HOLD:-30}
HEARTBEAT=${HEARTBEAT:-10s}
AGENTS=${AGENTS:-6}
SERVERS=${SERVERS:-7}
SOURCES=${SOURCES:-127.0.0.1-127.0.0.12}
RATE=${RATE:-1000}   # new connections per second per agent (2 cores: a storm times out)
CLOSE=${CLOSE:-30s}  # close handshakes at the end: 13 processes share 2 cores, 100k closes take seconds
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
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
url="ws://127.0.0.1:$port/"
echo "== checking every agent's share with wsherd doctor (sources $SOURCES, one server port)"
for i in $(seq 1 "$AGENTS"); do
    "$BIN" doctor -c "$CONNS" --agent "$i/$AGENTS" --source-ip "$SOURCES" "$url" > "$OUT/doctor-$i.txt" \
        || { cat "$OUT/doctor-$i.txt"; echo "doctor says agent $i's share does not fit; see above"; exit 1; }
done
sed -n '1p;/ephemeral ports/p;/open files/p;/^verdict/p' "$OUT/doctor-1.txt"
# SO_REUSEPORT spreads connections by hash: allow a 10% imbalance between servers.
if (( per_server * 11 / 10 + 64 > $(ulimit -Hn) )); then
    echo "each server would hold about $per_server connections, too close to the open-file limit $(ulimit -Hn): raise SERVERS"
    exit 1
fi

echo "== starting $SERVERS server processes on port $port (SO_REUSEPORT)"
for i in $(seq 0 $((SERVERS - 1))); do
    core=$(( i % $(nproc) ))
    "$BIN" serve --addr "127.0.0.1:$port" --reuse-port --shards 1 --first-core "$core" -q 2> "$OUT/server-$i.log" &
    pids+=($!)
done
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
sleep 0.5
server_start=$(awk '/VmRSS/{print $2}' "/proc/${pids[0]}/status")

ramp=$(( per_agent / RATE + 2 ))
duration=$(( ramp + HOLD ))
start=$(( $(date +%s) + 2 ))
echo "== $AGENTS agents: ramp ~${ramp}s at $RATE/s each, hold ${HOLD}s, heartbeat $HEARTBEAT"
agent_pids=()
for i in $(seq 1 "$AGENTS"); do
    "$BIN" run "$url" --source-ip "$SOURCES" -c "$CONNS" -d "${duration}s" --workload idle --heartbeat "$HEARTBEAT" \
        --connect-rate $(( RATE * AGENTS )) --connect-timeout 30s --close-timeout "$CLOSE" --agent "$i/$AGENTS" --start-at "$start" --shards 1 -q \
        --json "$OUT/agent-$i.json" > "$OUT/agent-$i.txt" 2> "$OUT/agent-$i.err" &
    agent_pids+=($!)
done
# While the connections are held: resident memory of every server process (the
# agents measure themselves: their --json has a memory section).
sleep $(( 2 + ramp + HOLD / 2 ))
for p in "${pids[@]}"; do awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0; done > "$OUT/servers-held.kib"
failed=0
for p in "${agent_pids[@]}"; do wait "$p" || failed=1; done
if (( failed )); then echo "an agent failed:"; cat "$OUT"/agent-*.err; exit 1; fi
# Peaks include the end, when every connection closes at once.
for p in "${pids[@]}"; do awk '/VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0; done > "$OUT/servers-peak.kib"

echo "== merged result"
"$BIN" merge "$OUT"/agent-*.json -o "$OUT/total.json" | tee "$OUT/total.txt" | sed -n '1,12p;/^Connections/,/^$/p'
python3 - "$OUT" "$CONNS" "$SERVERS" "$AGENTS" "$server_start" <<'PY'
import json, sys, glob
out, conns, servers, agents, server_start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t = json.load(open(f"{out}/total.json"))
c = t["connections"]
print(f"connections established {c['established']:,} of {conns:,}; failed {c['failed']:,}; lost during the hold {c['lost']:,}")
print(f"peak open (sum over agents) {c['peak_open']:,}; closed at the end: {c['closed_clean']:,} clean, {c['closed_unanswered']:,} unanswered")
print(f"connect p50/p99 {t['latency']['connect']['p50_us']:.0f}/{t['latency']['connect']['p99_us']:.0f} µs; "
      f"handshake p50/p99 {t['latency']['handshake']['p50_us']:.0f}/{t['latency']['handshake']['p99_us']:.0f} µs")
print(f"heartbeats: {t['messages']['sent']:,} pings, {t['messages']['received']:,} pongs, ping p99 {t['latency']['rtt']['p99_us']:.0f} µs")
print("agents (each its own process):  held conns  held RSS  per conn  peak RSS")
for f in sorted(glob.glob(f"{out}/agent-*.json")):
    m = json.load(open(f)).get("memory") or {}
    print(f"  {f.split('/')[-1]:<28} {m.get('held_connections', 0):>10,} {m.get('held_rss_kib', 0)/1024:>7.1f} MiB {m.get('per_connection_bytes', 0):>6,} B {m.get('peak_rss_kib', 0)/1024:>7.1f} MiB")
m = t.get("memory") or {}
print(f"agents together: {m.get('per_connection_bytes', 0):,} B per held connection (above each process's RSS before its first connection); "
      f"kernel TCP buffers at most {m.get('kernel_tcp_peak_kib', 0)/1024:.0f} MiB (host-wide)")
held = [int(x) for x in open(f"{out}/servers-held.kib").read().split()]
peak = [int(x) for x in open(f"{out}/servers-peak.kib").read().split()]
n = max(c['established'], 1)
print(f"servers: held RSS {sum(held)/1024:.1f} MiB total, {(sum(held) - server_start*len(held))*1024/n:.0f} B per connection above their start; "
      f"peak RSS per process {', '.join(f'{p/1024:.0f}' for p in peak)} MiB ({(sum(peak) - server_start*len(peak))*1024/n:.0f} B per connection at the peak)")
ok = c['established'] == conns and c['failed'] == 0 and c['lost'] == 0
print("RESULT:", "OK" if ok else "NOT ALL CONNECTIONS HELD")
sys.exit(0 if ok else 1)
PY
