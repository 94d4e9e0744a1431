#!/usr/bin/env bash
# End-to-end echo benchmark: what wsherd costs per round trip and per held connection,
# next to raw TCP ping-pong over the same runtime on the same cores.
#
# Usage: scripts/bench-echo.sh
#
# Builds what it needs (release wsherd and the rawtcp bench), then for each case runs a
# fresh server pinned to SERVER_CORE and the load pinned to CLIENT_CORE, RUNS times,
# and prints the medians as a Markdown table (see benches/README.md for what each
# column means). Raw figures, JSON results and server logs are kept in OUT.
#
# Cases:
#   a  100 connections, closed loop, 64-byte echo, 1 in flight
#   b  as a, 64 in flight per connection
#   c  19,000 connections, idle, connect rate 5000/s (held-connection memory: RSS
#      sampled during the hold, and peak RSS, which includes the end of the run)
#   d  raw TCP ping-pong over monoio, 100 connections, 64 bytes (benches/rawtcp.rs)
#   e  open loop: 100 connections, --rate RATE_E (default 50k msgs/s, well below what the
#      server answers in case a), 64-byte echo: CPU per message and schedule accuracy
#   f  open loop as e at --rate RATE_F (default 2.5m msgs/s): past the point where the
#      client or the server stops keeping up; the summary says which
#   With e or f, a timer probe also runs: 10 connections at 211 msgs/s each (idle
#   between sends), whose send lag is the floor set by monoio's 1 ms timer wheel.
#
# Environment:
#   BENCH_SECS        duration of cases a, b, d (default 10)
#   BENCH_IDLE_SECS   duration of case c (default 15, or BENCH_SECS, at least 8, if set)
#   BENCH_RUNS        runs per case; the table shows medians (default 3)
#   BENCH_CASES       which cases to run, e.g. "ad" (default "abcdef")
#   BENCH_RATE_E / BENCH_RATE_F   open-loop rates of cases e and f (default 50k / 2.5m)
#   BENCH_TIMER_SECS  duration of the timer probe (default 5)
#   BENCH_CLIENT_CORE / BENCH_SERVER_CORE   cores for load and server (default 0 / 1)
#   BENCH_OUT         where to keep raw results (default target/bench-echo/<time>)
#
# Client CPU is the load process's user+sys time (all its threads, from wait4) divided
# by echoes received; peak RSS is its ru_maxrss (= VmHWM). RSS per connection is
# (peak RSS - median peak RSS of 1-connection runs of the same workload) / connections.
# Case c also samples the client's VmRSS during the hold (3 s before the end; the
# baseline 2 s in): held RSS per connection is computed the same way from those.
# For case d the CPU figure is the one rawtcp measures itself over its measured period.
# For the open-loop cases (e, f) client CPU is divided by messages sent, and the
# summary adds achieved ÷ requested rate, late sends, send lag and both latencies.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECS=${BENCH_SECS:-10}
# Case c needs 4 s of its duration just to open 19,000 connections at 5000/s.
IDLE_SECS=${BENCH_IDLE_SECS:-$((${BENCH_SECS:-15} < 8 ? 8 : ${BENCH_SECS:-15}))}
RUNS=${BENCH_RUNS:-3}
CASES=${BENCH_CASES:-abcdef}
RATE_E=${BENCH_RATE_E:-50k}
RATE_F=${BENCH_RATE_F:-2.5m}
TIMER_SECS=${BENCH_TIMER_SECS:-5}
CLIENT_CORE=${BENCH_CLIENT_CORE:-0}
SERVER_CORE=${BENCH_SERVER_CORE:-1}
BASE_SECS=3 # duration of the 1-connection baseline runs
OUT=${BENCH_OUT:-$ROOT/target/bench-echo/$(date +%Y%m%d-%H%M%S)}
# Under the usual hard limit of 20,000 open files per process (client and server are
# separate processes).
IDLE_CONNS=19000

die() { echo "bench-echo: $*" >&2; exit 1; }
say() { echo "bench-echo: $*" >&2; }

command -v python3 >/dev/null || die "python3 is required (it measures the child processes)"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
[[ $CLIENT_CORE != "$SERVER_CORE" ]] || die "client and server must be on different cores"
ncpu=$(nproc)
((CLIENT_CORE < ncpu && SERVER_CORE < ncpu)) ||
    die "cores $CLIENT_CORE and $SERVER_CORE are not both available (nproc = $ncpu)"

mkdir -p "$OUT"
HELPER="$OUT/helper.py"
RAW="$OUT/raw.tsv"

# ---------------------------------------------------------------- python helper --
# Measuring a child with wait4 gives its exact CPU (all threads) and peak RSS; doing
# that, timeouts, and JSON parsing in one small helper keeps the shell simple.
cat >"$HELPER" <<'PY'
import json, os, signal, socket, statistics, sys, time

def freeport():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    print(p)

def wait_port(port, timeout, pid):
    end = time.monotonic() + float(timeout)
    while time.monotonic() < end:
        if not os.path.exists(f"/proc/{pid}"):
            sys.exit(f"server (pid {pid}) exited before listening")
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listening on port {port} after {timeout}s")

def dfl_exec(argv):
    # A background job of a non-interactive shell starts with SIGINT ignored; the
    # servers are stopped with SIGINT, so give them the default disposition back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    os.execvp(argv[0], argv)

def affinity(pid):
    # io_uring's own worker threads (iou-wrk-*, iou-sqp-*) live in the process but are
    # placed by the kernel, not by us; leave them out.
    cpus = set()
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/comm") as f:
                    if f.read().startswith("iou-"):
                        continue
                cpus |= os.sched_getaffinity(int(t))
            except OSError:
                pass
    except OSError:
        pass
    return sorted(cpus)

def cpu_us(pid):
    # utime + stime of the whole process; "nan" when it is gone (the row then shows
    # no server figure and stop_server reports how it exited).
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) * 1e6 / os.sysconf("SC_CLK_TCK")

def corestat(cores):
    """Per core in `cores`: [busy, steal, total] jiffies since boot (/proc/stat)."""
    res = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *v = line.split()
            if name.startswith("cpu") and name[3:] in cores:
                v = list(map(int, v[:8]))  # user nice system idle iowait irq softirq steal
                res[name[3:]] = [v[0] + v[1] + v[2] + v[5] + v[6], v[7], sum(v)]
    return res

def measure(out, timeout, argv):
    """Run argv to completion (stdout to out.stdout); write rc, CPU, peak RSS."""
    t0 = time.monotonic()
    with open(out + ".stdout", "wb") as so:
        pid = os.fork()
        if pid == 0:
            os.dup2(so.fileno(), 1)
            dfl_exec(argv)
    deadline, killed, aff, status, ru = t0 + float(timeout), None, None, None, None
    # CPU of the load process and of the server (BENCH_WATCH_PID) over time, so that
    # a core's busy share can be taken over the run itself, not start-up and drain.
    watch = int(os.environ.get("BENCH_WATCH_PID") or 0)
    # And what the two cores did in all: other processes on a shared machine, and
    # steal (the hypervisor running something else on the vCPU).
    cores = [c for c in os.environ.get("BENCH_CORES", "").split(",") if c]
    samples = []
    # RSS while holding: sampled once, BENCH_HOLD_AT seconds in (if set).
    hold_at = float(os.environ.get("BENCH_HOLD_AT") or "inf")
    hold_rss = None
    # Asked to stop (the script is being interrupted): pass it on as SIGINT, which
    # wsherd answers by writing a partial report and exiting; then wait for it.
    def stop(signum, frame):
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while True:
        p, status, ru = os.wait4(pid, os.WNOHANG)
        if p == pid:
            break
        now = time.monotonic()
        samples.append([round(now - t0, 3), cpu_us(pid), cpu_us(watch) if watch else None,
                        corestat(cores)])
        if aff is None and now - t0 > 1.0:
            aff = affinity(pid)
        if hold_rss is None and now - t0 >= hold_at:
            try:
                with open(f"/proc/{pid}/status") as f:
                    hold_rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            except (OSError, StopIteration):
                hold_rss = 0
        if now > deadline and killed is None:
            os.kill(pid, signal.SIGINT); killed = "SIGINT"; deadline = now + 10
        elif now > deadline and killed == "SIGINT":
            os.kill(pid, signal.SIGKILL); killed = "SIGKILL"
        time.sleep(0.05)
    res = {
        "rc": os.waitstatus_to_exitcode(status),
        "cpu_us": (ru.ru_utime + ru.ru_stime) * 1e6,
        "maxrss_kib": ru.ru_maxrss,
        "wall_s": time.monotonic() - t0,
        "affinity": aff or [],
        "killed_on_timeout": killed,
        "cpu_samples": samples,
        "hold_rss_kib": hold_rss,
    }
    with open(out, "w") as f:
        json.dump(res, f)

def field(path, dotted):
    with open(path) as f:
        v = json.load(f)
    for k in dotted.split("."):
        v = v[k]
    print(v if not isinstance(v, (list, dict)) else json.dumps(v))

def wsrow(case, run, conns, meas, res, scpu0, scpu1):
    """One raw row from a wsherd run: the JSON results plus the wait4 measure."""
    m, conns = json.load(open(meas)), int(conns)
    notes = []
    try:
        r = json.load(open(res))
    except (OSError, ValueError) as e:
        r = None
        notes.append(f"no results JSON ({e.__class__.__name__})")
    if m["rc"] != 0:
        notes.append(f"exit code {m['rc']}")
    if m["killed_on_timeout"]:
        notes.append(f"hung: killed with {m['killed_on_timeout']}")
    recv, rate = 0, 0.0
    if r:
        msg, con = r["messages"], r["connections"]
        recv, rate = msg["received"], msg["received_per_sec"]
        if con["established"] != conns:
            notes.append(f"established {con['established']}/{conns}")
        if con.get("lost"):
            notes.append(f"lost {con['lost']} {con.get('lost_by_cause')}")
        if msg["sent"] != msg["received"] + msg["failed"] + msg["in_flight_at_stop"]:
            notes.append("ledger does not balance: sent {sent} received {received} "
                         "failed {failed} in_flight {in_flight_at_stop}".format(**msg))
        if msg.get("unexpected"):
            notes.append(f"unexpected {msg['unexpected']}")
        if msg.get("in_flight_at_stop"):
            notes.append(f"{msg['in_flight_at_stop']} unanswered after the drain")
        if sum(r.get("errors", {}).values()):
            notes.append(f"errors {r['errors']}")
        if r.get("interrupted"):
            notes.append("interrupted")
        if r["host"].get("io_driver") != "io_uring":
            notes.append(f"io driver {r['host'].get('io_driver')}")
    srv = (float(scpu1) - float(scpu0)) / recv if recv else float("nan")
    cli = m["cpu_us"] / recv if recv else float("nan")
    ol = openloop(r, m, float(scpu1) - float(scpu0)) if r else None
    print("\t".join(map(str, [case, run, conns, recv, f"{rate:.0f}", f"{cli:.3f}",
                              f"{srv:.3f}", m["maxrss_kib"],
                              ",".join(map(str, m["affinity"])), "; ".join(notes),
                              f"{m['cpu_us']:.0f}", json.dumps(ol) if ol else "",
                              m.get("hold_rss_kib") or ""])))

def busy(samples, i, t_from, t_to):
    """Share of one core that process i (1: load, 2: server) used from t_from to t_to
    seconds after the load started, from the measure samples."""
    pts = [(s[0], s[i]) for s in samples if s[i] is not None and s[i] == s[i]]
    a = [p for p in pts if p[0] >= t_from]
    b = [p for p in pts if p[0] <= t_to]
    if not a or not b or b[-1][0] - a[0][0] < 0.5:
        return None
    return (b[-1][1] - a[0][1]) / 1e6 / (b[-1][0] - a[0][0])

def corebusy(samples, core, t_from, t_to):
    """(busy, steal) shares of a core, all processes, from t_from to t_to."""
    pts = [(s[0], s[3][core]) for s in samples if len(s) > 3 and core in s[3]]
    a = [p for p in pts if p[0] >= t_from]
    b = [p for p in pts if p[0] <= t_to]
    if not a or not b or b[-1][1][2] - a[0][1][2] <= 0:
        return None, None
    d = [y - x for x, y in zip(a[0][1], b[-1][1])]
    return d[0] / d[2], d[1] / d[2]

def openloop(r, m, srv_cpu_us):
    """The open-loop figures of one run (None for a closed loop), as a JSON column."""
    if r["config"].get("pacing") != "open" or not r["config"].get("rate"):
        return None
    msg, lat = r["messages"], r["latency"]
    req, secs = float(r["config"]["rate"]), float(r["config"]["duration_secs"])
    series = r.get("series") or []
    run = [x for x in series if x["t"] < secs]
    # Whole seconds inside the run, leaving out the first (connections still coming
    # up, each connection's schedule starts when it is established) and the last.
    inner = [x["sent"] for x in run if 1 <= x["t"] < secs - 1]
    sent_in_run = sum(x["sent"] for x in run)
    wall = m["wall_s"]
    q = lambda h, k: h.get(k) if h else None
    return {
        "req": req,
        "sent": msg["sent"],
        "sent_per_sec": msg["sent_per_sec"],
        "ratio": msg["sent_per_sec"] / req,
        "steady": (sum(inner) / len(inner) / req) if inner else None,
        "late": msg.get("late", 0),
        "late_frac": msg.get("late", 0) / msg["sent"] if msg["sent"] else None,
        # Echoes received during the run per message sent during it: below 1 when
        # replies fall behind (queued in the server, or in the client's socket buffers).
        "echoed": (sum(x["received"] for x in run) / sent_in_run) if sent_in_run else None,
        "lag_min": q(lat.get("send_lag"), "min_us"),
        "lag_mean": q(lat.get("send_lag"), "mean_us"),
        "lag_p50": q(lat.get("send_lag"), "p50_us"),
        "lag_p90": q(lat.get("send_lag"), "p90_us"),
        "lag_p99": q(lat.get("send_lag"), "p99_us"),
        "lag_stdev": q(lat.get("send_lag"), "stdev_us"),
        "rtt_p50": q(lat.get("rtt"), "p50_us"),
        "rtt_p99": q(lat.get("rtt"), "p99_us"),
        "unc_p50": q(lat.get("rtt_uncorrected"), "p50_us"),
        "unc_p99": q(lat.get("rtt_uncorrected"), "p99_us"),
        "cli_us_per_msg": m["cpu_us"] / msg["sent"] if msg["sent"] else None,
        # Share of one core from 1 s into the run to 0.5 s before its end (clock-tick
        # resolution); over the process's whole life when the run was too short.
        "cli_busy": busy(m.get("cpu_samples", []), 1, 1.0, secs - 0.5)
                    or m["cpu_us"] / 1e6 / wall,
        "srv_busy": busy(m.get("cpu_samples", []), 2, 1.0, secs - 0.5)
                    or (srv_cpu_us / 1e6 / wall if srv_cpu_us == srv_cpu_us else None),
        # The same window, every process on the core, and the steal time.
        "cli_core": corebusy(m.get("cpu_samples", []), os.environ["BENCH_CLIENT_CORE"],
                             1.0, secs - 0.5)[0],
        "cli_steal": corebusy(m.get("cpu_samples", []), os.environ["BENCH_CLIENT_CORE"],
                              1.0, secs - 0.5)[1],
        "srv_core": corebusy(m.get("cpu_samples", []), os.environ["BENCH_SERVER_CORE"],
                             1.0, secs - 0.5)[0],
        "srv_steal": corebusy(m.get("cpu_samples", []), os.environ["BENCH_SERVER_CORE"],
                              1.0, secs - 0.5)[1],
    }

def rawrow(case, run, conns, meas, scpu0, scpu1):
    m = json.load(open(meas))
    line = open(meas + ".stdout").read().strip().splitlines()
    kv = {}
    for tok in (line[-1].split() if line else []):
        if "=" in tok:
            k, v = tok.split("=", 1); kv[k] = v
    notes = []
    if m["rc"] != 0 or "round_trips" not in kv:
        notes.append(f"exit code {m['rc']}, no result line")
    n = int(kv.get("round_trips", 0))
    # The server is measured over the client's whole life, warm-up included.
    total = int(kv.get("total_round_trips", n))
    srv = (float(scpu1) - float(scpu0)) / total if total else float("nan")
    print("\t".join(map(str, [case, run, conns, n, kv.get("rtt_per_sec", "0"),
                              kv.get("client_cpu_us_per_rt", "nan"), f"{srv:.3f}",
                              m["maxrss_kib"], ",".join(map(str, m["affinity"])),
                              "; ".join(notes), f"{m['cpu_us']:.0f}"])))

CASES = {
    "a": "a: 100 conns, closed loop, 64 B echo",
    "b": "b: 100 conns, 64 in flight, 64 B echo",
    "c": "c: 19,000 conns, idle",
    "d": "d: raw TCP ping-pong (monoio), 100 conns, 64 B",
}
BASE = {"a": "base-echo", "b": "base-echo", "c": "base-idle", "d": "base-raw"}

OPEN = {
    "e": "e: open loop, 100 conns, {rate} msgs/s, 64 B echo",
    "f": "f: open loop, 100 conns, {rate} msgs/s, 64 B echo",
    "timer": "timer probe: 10 conns, {rate} msgs/s",
}

def open_summary(by, cpu, fmt):
    ol = {c: [json.loads(r[11]) for r in by[c] if len(r) > 11 and r[11]]
          for c in OPEN if c in by}
    ol = {c: v for c, v in ol.items() if v}
    if not ol:
        return
    def med(c, k):
        xs = [x[k] for x in ol[c] if x.get(k) is not None]
        return statistics.median(xs) if xs else float("nan")
    ms = lambda us: "-" if us != us else (f"{us / 1000:.2f} ms" if us >= 1000
                                          else f"{us:.0f} µs")
    pct = lambda x: "-" if x != x else f"{100 * x:.0f}%"
    name = lambda c: OPEN[c].format(rate=f"{med(c, 'req'):,.0f}")
    print("\n| case | requested msgs/s | achieved msgs/s | achieved ÷ requested "
          "(whole run / steady) | late sends | client CPU µs/msg "
          "| client core: load / all / steal | server core: server / all / steal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in ol:
        late = med(c, "late")
        print(f"| {name(c)} | {fmt(med(c, 'req'), 0)} | {fmt(med(c, 'sent_per_sec'), 0)} "
              f"| {fmt(med(c, 'ratio'), 4)} / {fmt(med(c, 'steady'), 4)} "
              f"| {fmt(late, 0)} ({100 * med(c, 'late_frac'):.2f}%) "
              f"| {fmt(med(c, 'cli_us_per_msg'), 2)} "
              f"| {pct(med(c, 'cli_busy'))} / {pct(med(c, 'cli_core'))} / {pct(med(c, 'cli_steal'))} "
              f"| {pct(med(c, 'srv_busy'))} / {pct(med(c, 'srv_core'))} / {pct(med(c, 'srv_steal'))} |")
    print("\n| case | send lag p50 / p99 | round trip p50 / p99 (corrected) "
          "| round trip p50 / p99 (uncorrected) | echoed during the run |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for c in ol:
        print(f"| {name(c)} | {ms(med(c, 'lag_p50'))} / {ms(med(c, 'lag_p99'))} "
              f"| {ms(med(c, 'rtt_p50'))} / {ms(med(c, 'rtt_p99'))} "
              f"| {ms(med(c, 'unc_p50'))} / {ms(med(c, 'unc_p99'))} "
              f"| {fmt(100 * med(c, 'echoed'), 2)}% |")
    # Schedule accuracy: each run's achieved ÷ requested, flagged when more than 1% off.
    print("\nachieved ÷ requested rate per run (whole run; flagged when more than 1% off):")
    for c in ol:
        # Each connection's schedule starts when it is established, so the first
        # tens of ms of a run are short of messages: "steady" leaves the first and
        # last second out, and is shown when the whole run is flagged.
        runs = ", ".join(f"{x['ratio']:.4f}" + (
            "" if abs(x["ratio"] - 1) <= 0.01 else
            f" (OFF BY MORE THAN 1%; steady {x['steady'] or float('nan'):.4f})")
            for x in ol[c])
        print(f"  {c}: {runs}")
    if "timer" in ol:
        print(f"\ntimer probe send lag: min {ms(med('timer', 'lag_min'))}, "
              f"p50 {ms(med('timer', 'lag_p50'))}, p90 {ms(med('timer', 'lag_p90'))}, "
              f"p99 {ms(med('timer', 'lag_p99'))}, mean {ms(med('timer', 'lag_mean'))}, "
              f"stdev {ms(med('timer', 'lag_stdev'))}")
        print("  (a 1 ms tick rounded once gives 0-1 ms: p50 0.50, p90 0.90, p99 0.99 ms, "
              "mean 0.50, stdev 0.29;\n   rounded twice, deadline up to the next tick and "
              "the park in whole ticks from the current one,\n   0-2 ms: p50 1.00, p90 1.55, "
              "p99 1.86 ms, mean 1.00, stdev 0.41)")
    if "e" in ol and "a" in cpu:
        print(f"\n(e) client CPU per open-loop message ÷ (a) per closed-loop round trip: "
              f"{fmt(med('e', 'cli_us_per_msg') / cpu['a'], 2)}")
    # Who keeps up: sends on schedule, replies during the run, and the busier core.
    for c in ("e", "f"):
        if c not in ol:
            continue
        on_time = abs(med(c, "ratio") - 1) <= 0.01 and med(c, "late_frac") <= 0.01
        echoed = med(c, "echoed") >= 0.99 and med(c, "unc_p99") < 100_000
        cb, sb = med(c, "cli_busy"), med(c, "srv_busy")
        # A core is saturated when wsherd, other processes and steal leave it no idle.
        full = lambda side: (med(c, f"{side}_core") + med(c, f"{side}_steal")
                             if med(c, f"{side}_core") == med(c, f"{side}_core")
                             else med(c, f"{side}_busy"))
        cf, sf = full("cli"), full("srv")
        if on_time and echoed:
            v = "keeps up: sends on schedule, echoes back during the run"
        else:
            parts = []
            if not on_time:
                parts.append(f"sends fall behind schedule ({100 * med(c, 'late_frac'):.1f}% late)")
            if not echoed:
                parts.append("echoes fall behind (they queue up: round trips grow)")
            sat = ("the client's core is saturated" if cf >= 0.9 and cf >= sf else
                   "the server's core is saturated" if sf >= 0.9 else
                   "neither core is saturated")
            v = "; ".join(parts) + f"; {sat}"
        others = lambda side, own: max(0.0, full(side) - own)
        print(f"{c}: {v}\n   (client core: wsherd {pct(cb)}, other processes and steal "
              f"{pct(others('cli', cb))}; server core: server {pct(sb)}, other processes "
              f"and steal {pct(others('srv', sb))})")

def summary(raw):
    rows = [l.rstrip("\n").split("\t") for l in open(raw) if l.strip()]
    by = {}
    for r in rows:
        by.setdefault(r[0], []).append(r)
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    def col(case, i):
        return [float(r[i]) for r in by.get(case, []) if r[i] not in ("nan", "")]
    def fmt(x, nd=1):
        return "-" if x != x else f"{x:,.{nd}f}"
    cpu = {}
    if any(c in by for c in CASES):
        print("| case | round trips/s | client CPU µs/rt | server CPU µs/rt "
              "| client peak RSS | RSS per connection |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for c, name in CASES.items():
        if c not in by:
            continue
        conns = int(by[c][0][2])
        recv = med(col(c, 3))
        rate, cli, srv = med(col(c, 4)), med(col(c, 5)), med(col(c, 6))
        if recv == 0:
            rate = cli = srv = float("nan")
        cpu[c] = cli
        rss = med(col(c, 7))
        base = med(col(BASE[c], 7))
        per = (rss - base) * 1024 / conns if base == base else float("nan")
        per_s = "-" if per != per else (f"{per / 1024:.2f} KiB" if per >= 1024
                                        else f"{per:.0f} B")
        print(f"| {name} | {fmt(rate, 0)} | {fmt(cli, 2)} | {fmt(srv, 2)} "
              f"| {fmt(rss / 1024, 1)} MiB | {per_s} |")
    if "c" in by:
        held = lambda case: [float(r[12]) for r in by.get(case, []) if len(r) > 12 and r[12]]
        hold, base = med(held("c")), med(held("base-idle"))
        if hold == hold and base == base:
            conns = int(by["c"][0][2])
            print(f"\nc: client RSS while holding {fmt(hold / 1024, 1)} MiB: "
                  f"{fmt((hold - base) / conns, 2)} KiB per held connection "
                  "(the table's figure is from the peak, which includes the end of the run)")
        per_conn = med(col("c", 10)) / int(by["c"][0][2])
        print(f"\nc: client CPU {fmt(per_conn, 1)} µs per connection over the whole run "
              "(connect, upgrade, hold, close)")
    if "a" in cpu and "d" in cpu:
        print(f"\nratio (a) CPU/rt ÷ (d) CPU/rt: {fmt(cpu['a'] / cpu['d'], 2)}"
              "  (target ≤ 1.5)")
    open_summary(by, cpu, fmt)
    problems = [r for r in rows if len(r) > 9 and r[9]]
    if problems:
        print("\nproblems seen (case run: notes):")
        for r in problems:
            print(f"  {r[0]} run {r[1]}: {r[9]}")

cmd, args = sys.argv[1], sys.argv[2:]
{"freeport": lambda: freeport(),
 "wait-port": lambda: wait_port(*args),
 "exec": lambda: dfl_exec(args),
 "affinity": lambda: print(",".join(map(str, affinity(int(args[0]))))),
 "cpu-us": lambda: print(cpu_us(int(args[0]))),
 "measure": lambda: measure(args[0], args[1], args[2:]),
 "field": lambda: field(*args),
 "wsrow": lambda: wsrow(*args),
 "rawrow": lambda: rawrow(*args),
 "summary": lambda: summary(*args)}[cmd]()
PY
helper() { python3 "$HELPER" "$@"; }

# -------------------------------------------------------------- background servers --
SERVER_PID=""
CLIENT_PID=""
stop_server() {
    local pid=$SERVER_PID sig=${1:-INT}
    [[ -n $pid ]] || return 0
    SERVER_PID=""
    kill "-$sig" "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "server $pid did not exit within 5s of SIG$sig; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    local rc=0
    wait "$pid" 2>/dev/null || rc=$?
    if [[ $sig == INT && $rc -ne 0 && $rc -ne 130 ]]; then
        say "server $pid exited with code $rc after SIGINT (see $OUT/server-*.log)"
    fi
}
cleanup() {
    local rc=$?
    if [[ -n $CLIENT_PID ]]; then
        kill -TERM "$CLIENT_PID" 2>/dev/null || true
        wait "$CLIENT_PID" 2>/dev/null || true
    fi
    stop_server TERM
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME CMD...: start a server pinned to SERVER_CORE, wait until it listens.
start_server() {
    local name=$1 port=$2
    shift 2
    # Not through the helper() function: a backgrounded function is a subshell, and
    # $! must be the server itself so that it can be measured, signalled and waited for.
    python3 "$HELPER" exec taskset -c "$SERVER_CORE" "$@" >"$OUT/server-$name.log" 2>&1 &
    SERVER_PID=$!
    helper wait-port "$port" 10 "$SERVER_PID" || die "server for $name did not start"
    local aff
    aff=$(helper affinity "$SERVER_PID")
    [[ $aff == "$SERVER_CORE" ]] || say "warning: server threads may run on CPUs $aff"
}

# ------------------------------------------------------------------------- build --
say "building (release)"
cargo build --release --bin wsherd --message-format=json-render-diagnostics >"$OUT/build.json"
cargo bench --bench rawtcp --no-run --message-format=json-render-diagnostics >"$OUT/build-bench.json"
exe() {
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[2] \
            and m.get("executable"):
        print(m["executable"])' "$1" "$2" | tail -1
}
WSHERD=$(exe "$OUT/build.json" wsherd)
RAWTCP=$(exe "$OUT/build-bench.json" rawtcp)
[[ -x $WSHERD ]] || die "cannot find the wsherd binary"
[[ -x $RAWTCP ]] || die "cannot find the rawtcp bench binary"
# Run copies: a build in the same tree during the benchmark must not swap binaries
# between runs.
cp "$WSHERD" "$OUT/wsherd" && WSHERD=$OUT/wsherd
cp "$RAWTCP" "$OUT/rawtcp" && RAWTCP=$OUT/rawtcp
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    GIT_REV="$GIT_REV + uncommitted changes"
fi
FIRST_CORE=()
if "$WSHERD" serve --help 2>/dev/null | grep -q -- --first-core; then
    FIRST_CORE=(--first-core "$SERVER_CORE")
fi

# The open-file limit: raise the soft limit; case c needs a little over 19,000.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ $CASES == *c* ]] && (($(ulimit -n) < IDLE_CONNS + 100)); then
    say "open-file limit $(ulimit -n) is too low for $IDLE_CONNS connections; skipping case c"
    CASES=${CASES//c/}
fi

# ------------------------------------------------------------------------- runs --
: >"$RAW"

# measure OUT TIMEOUT CMD...: run the load process under the helper, in the background
# so that an interrupted script reaches its trap at once instead of after the run.
measure() {
    python3 "$HELPER" measure "$@" &
    CLIENT_PID=$!
    local rc=0
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    return $rc
}

# ws_run CASE RUN CONNS SECS [wsherd run options...]
ws_run() {
    local case=$1 run=$2 conns=$3 secs=$4
    shift 4
    local port tag=$case-$run s0 s1 hold_at=""
    case $case in
    c) hold_at=$((secs - 3)) ;;
    base-idle) hold_at=2 ;;
    esac
    port=$(helper freeport)
    start_server "$tag" "$port" "$WSHERD" serve --addr "127.0.0.1:$port" --shards 1 \
        "${FIRST_CORE[@]}" -q
    s0=$(helper cpu-us "$SERVER_PID")
    BENCH_HOLD_AT=$hold_at BENCH_WATCH_PID=$SERVER_PID BENCH_CORES=$CLIENT_CORE,$SERVER_CORE measure "$OUT/measure-$tag.json" $((secs + 60)) \
        taskset -c "$CLIENT_CORE" "$WSHERD" run "ws://127.0.0.1:$port/" -c "$conns" \
        -d "${secs}s" --shards 1 -q --json "$OUT/result-$tag.json" "$@" \
        2>"$OUT/client-$tag.log"
    s1=$(helper cpu-us "$SERVER_PID")
    stop_server INT
    BENCH_CLIENT_CORE=$CLIENT_CORE BENCH_SERVER_CORE=$SERVER_CORE \
        helper wsrow "$case" "$run" "$conns" "$OUT/measure-$tag.json" \
        "$OUT/result-$tag.json" "$s0" "$s1" | tee -a "$RAW" >&2
}

# raw_run CASE RUN CONNS SECS
raw_run() {
    local case=$1 run=$2 conns=$3 secs=$4
    local port tag=$case-$run s0 s1
    port=$(helper freeport)
    start_server "$tag" "$port" "$RAWTCP" server "127.0.0.1:$port" "$SERVER_CORE"
    s0=$(helper cpu-us "$SERVER_PID")
    measure "$OUT/measure-$tag.json" $((secs + 30)) \
        taskset -c "$CLIENT_CORE" "$RAWTCP" client "127.0.0.1:$port" "$CLIENT_CORE" \
        "$conns" "$secs" 64 2>"$OUT/client-$tag.log"
    s1=$(helper cpu-us "$SERVER_PID")
    stop_server TERM
    helper rawrow "$case" "$run" "$conns" "$OUT/measure-$tag.json" "$s0" "$s1" |
        tee -a "$RAW" >&2
}

say "results in $OUT; load on CPU $CLIENT_CORE, server on CPU $SERVER_CORE"
say "columns: case run conns received rate client_cpu_us/rt server_cpu_us/rt maxrss_kib client_cpus notes client_cpu_us [open-loop figures, JSON]"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= RUNS; r++)); do
    [[ $CASES == *a* ]] && ws_run a "$r" 100 "$SECS" --size 64
    [[ $CASES == *b* ]] && ws_run b "$r" 100 "$SECS" --size 64 --inflight 64
    [[ $CASES == *c* ]] && ws_run c "$r" "$IDLE_CONNS" "$IDLE_SECS" --workload idle \
        --connect-rate 5000
    [[ $CASES == *d* ]] && raw_run d "$r" 100 "$SECS"
    [[ $CASES == *e* ]] && ws_run e "$r" 100 "$SECS" --size 64 --rate "$RATE_E"
    [[ $CASES == *f* ]] && ws_run f "$r" 100 "$SECS" --size 64 --rate "$RATE_F"
    # Timer probe: 211 msgs/s per connection, one send every 4.74 ms, so the runtime
    # is idle between sends and the deadlines fall anywhere within the 1 ms ticks.
    [[ $CASES == *[ef]* ]] && ws_run timer "$r" 10 "$TIMER_SECS" --size 64 --rate 2110
    # 1-connection baselines for RSS per connection; their peak RSS varies from run to
    # run, so they get a median too.
    [[ $CASES == *[ab]* ]] && ws_run base-echo "$r" 1 "$BASE_SECS" --size 64
    [[ $CASES == *c* ]] && ws_run base-idle "$r" 1 "$BASE_SECS" --workload idle
    [[ $CASES == *d* ]] && raw_run base-raw "$r" 1 "$BASE_SECS"
done

{
    echo
    echo "wsherd end-to-end echo benchmark: medians of $RUNS runs" \
        "(${SECS}s; idle ${IDLE_SECS}s; open loop e $RATE_E/s, f $RATE_F/s; timer probe" \
        "${TIMER_SECS}s); load on CPU $CLIENT_CORE, server on CPU $SERVER_CORE"
    echo "wsherd $("$WSHERD" --version 2>/dev/null | cut -d' ' -f2), source $GIT_REV"
    echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')," \
        "kernel $(uname -r); load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    helper summary "$RAW"
} | tee "$OUT/summary.md"
