//! A whole load run: check the host, start the embedded server if asked, start one
//! pinned shard thread per core, collect, and assemble the results.
//!
//! Why it exists: this is the only place that knows the order of things; each step
//! lives in its own module, and `run_with` reads as that order, one named step a
//! line. Problems that stop a run before it starts are `Error`s; everything that
//! goes wrong during a run is counted in the results instead.
//!
//! Must never import the command layer (`main`, `commands`), the configuration
//! stage (`config`, `scenario`) or the flags (`cli`), nor the drivers (`ceiling`,
//! `doctor`): they call the engine with a `Run` already decided, never the other
//! way round.

use crate::collector::{self, Collected, Progress};
use crate::error::{Error, Result};
use crate::metrics::{Counters, Interval};
use crate::plan::Plan;
use crate::results::*;
use crate::server::ServeConfig;
use crate::shard::{self, RunShared};
use crate::target::Target;
use crate::workload::Pacing;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What becomes of a run's results: the files written and the thresholds and
/// bands they are judged by (the plan says how the load runs; this, what is
/// done with what it measured).
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub json: Option<std::path::PathBuf>,
    /// HTML, CSV and .hgrm files rendered from the results.
    pub reports: crate::report::outputs::ReportFiles,
    /// HdrHistogram interval log of the round trip, one interval per second.
    pub hlog: Option<std::path::PathBuf>,
    /// Thresholds and assessment bands the results are judged by.
    pub judge: crate::thresholds::Judge,
}

/// A run as the engine takes it: the plan, its outputs, and the built-in
/// server to start in this process first (with no URL).
#[derive(Debug, Clone)]
pub struct Run {
    pub plan: Plan,
    pub outputs: Outputs,
    pub server: Option<ServeConfig>,
}

/// Runs a load as configured; Ctrl-C (SIGINT/SIGTERM) ends it early.
pub fn run(cfg: Run) -> Result<RunResults> {
    run_with_interrupt(cfg, crate::sys::interrupt_flag())
}

/// Runs a load that ends early when `interrupt` is set.
pub fn run_with_interrupt(cfg: Run, interrupt: Arc<AtomicBool>) -> Result<RunResults> {
    run_with::<NoSink>(cfg, interrupt, None, None).map(|(r, _)| r)
}

/// How a run ended: its whole duration, stopped (Ctrl-C, or a caller such as a
/// ceiling search), or given up on because nothing could be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Full,
    Interrupted,
    GaveUp,
}

/// Seconds into a run after which, if every connection attempt so far failed
/// and none succeeded, the run gives up (unless `--keep-trying`).
pub const GIVE_UP_AFTER: u64 = 3;

/// Watches a run's seconds as they become final: when by `GIVE_UP_AFTER` (or
/// any second after) attempts have failed and none has succeeded, it sets
/// `RunShared::gave_up` and the shards stop, rather than print empty seconds to
/// the end of the run.
struct GiveUp {
    shared: Arc<RunShared>,
    established: u64,
    failed: u64,
}

impl crate::metrics::SecondSink for GiveUp {
    fn second(&mut self, t: u64, _: bool, _: &crate::metrics::Second, row: &SecondStats) {
        self.established += row.connects;
        self.failed += row.connect_failures;
        if t + 1 >= GIVE_UP_AFTER && self.established == 0 && self.failed > 0 {
            self.shared
                .gave_up
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// No extra per-second sink.
pub enum NoSink {}

impl crate::metrics::SecondSink for NoSink {
    fn second(&mut self, _: u64, _: bool, _: &crate::metrics::Second, _: &SecondStats) {
        match *self {}
    }
}

/// Runs a load whose level `live` sets while it goes (a ceiling search), handing
/// every final second to `sink` (which may set `interrupt` to end the run), and
/// gives the sink back with the results.
///
/// The order of a run, one step a line: check, start the exporter and the
/// server, run the shards to their end under the collector, stop the server,
/// then assemble, judge and write the results.
pub fn run_with<S: crate::metrics::SecondSink + 'static>(
    run: Run,
    interrupt: Arc<AtomicBool>,
    live: Option<Arc<shard::Live>>,
    sink: Option<S>,
) -> Result<(RunResults, Option<S>)> {
    let Run {
        plan: cfg,
        outputs: out,
        server,
    } = run;
    let nofile = check_before_start(&cfg, &out)?;
    // A taken metrics port is an error now, not a dashboard without data later.
    let exporter = cfg
        .metrics_addr
        .map(crate::export::prometheus::start_client)
        .transpose()?;
    if let (Some((m, _)), Some(script)) = (&exporter, &cfg.script) {
        m.name_steps(script.steps.iter().map(|s| s.name.clone()).collect());
    }

    if let Some(at) = cfg.start_at {
        wait_until_unix(at, &interrupt);
    }
    let server = server.map(crate::server::start).transpose()?;
    let targets = match &server {
        Some(s) => vec![Target::local(s.addr(), cfg.tls.is_some())],
        None => cfg.targets.clone(),
    };

    let started_at_unix = crate::sys::unix_now();
    let shared = Arc::new(RunShared {
        plan: cfg,
        targets: targets.clone(),
        established: Default::default(),
        origin: Instant::now(),
        origin_unix_ns: (crate::sys::unix_now() * 1e9) as u64,
        interrupt: interrupt.clone(),
        ready: Default::default(),
        go: Default::default(),
        live,
        shown_causes: Default::default(),
        gave_up: Default::default(),
    });
    let cfg = &shared.plan;
    let progress = progress_line(cfg, exporter.as_ref().map(|(m, _)| m.clone()));
    let hlog = open_hlog(&out, started_at_unix)?;
    let Ended {
        collected,
        hlog,
        sink,
        shard_error,
    } = run_shards(&shared, progress, hlog, sink)?;
    let elapsed = shared.origin.elapsed().as_secs_f64();
    if let Some(s) = server {
        s.stop();
    }
    if let Some(e) = shard_error {
        if collected.total.counters.attempted == 0 {
            return Err(Error::Runtime(e));
        }
    }

    let interrupted = interrupt.load(std::sync::atomic::Ordering::Relaxed);
    let ending = if interrupted {
        Ending::Interrupted
    } else if shared.gave_up.load(std::sync::atomic::Ordering::Relaxed) {
        Ending::GaveUp
    } else {
        Ending::Full
    };
    let mut results = assemble(
        cfg,
        &targets,
        collected,
        elapsed,
        started_at_unix,
        ending,
        nofile,
    );
    out.judge.apply(&mut results);
    drop(exporter);
    write_outputs(&out, &results, hlog)?;
    Ok((results, sink))
}

/// The host checks and the output checks that would otherwise fail a run only
/// at its end: enough file descriptors (their limit is returned) and ephemeral
/// ports, and every output file writable.
fn check_before_start(cfg: &Plan, out: &Outputs) -> Result<u64> {
    let nofile = crate::host::check_fds(cfg)?;
    crate::host::check_ports(&crate::host::demand(cfg)).map_err(Error::HostLimit)?;
    // Fail on an unwritable output now, not after a long run.
    if let Some(p) = &out.json {
        crate::report::check_writable("--json", p)?;
    }
    out.reports.check()?;
    if let Some(p) = &out.hlog {
        crate::report::check_writable("--hlog", p)?;
    }
    Ok(nofile)
}

/// Sleeps until the Unix time `at` (agents starting together), or until interrupted.
fn wait_until_unix(at: f64, interrupt: &AtomicBool) {
    let mut first = true;
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(at);
        if first && now > at + 1.0 {
            // An agent that starts late measures a different run than the others:
            // say so (a launcher also flags it from the results' start time).
            eprintln!(
                "warning: starting {:.1} s after --start-at {at:.0}: the other agents began without this one",
                now - at
            );
        }
        first = false;
        if now >= at || interrupt.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs_f64((at - now).min(0.05)));
    }
}

/// What the live progress line shows: the run's length, its stages (of the
/// connection profile, else of the rate profile), and the Prometheus metrics it
/// also feeds.
fn progress_line(
    cfg: &Plan,
    metrics: Option<crate::export::prometheus::ClientMetrics>,
) -> Progress {
    Progress {
        enabled: !cfg.quiet,
        total: cfg.duration,
        stages: match (&cfg.conn_profile, &cfg.rate_profile) {
            (Some(p), _) => crate::export::progress::stage_marks(Some(p), false),
            (None, p) => crate::export::progress::stage_marks(p.as_ref(), true),
        },
        metrics,
    }
}

/// The `--hlog` interval log, created now with the run's start time.
fn open_hlog(
    out: &Outputs,
    started_at_unix: f64,
) -> Result<Option<crate::report::hdr::IntervalLog>> {
    Ok(match &out.hlog {
        Some(p) => Some(crate::report::hdr::IntervalLog::create(
            p,
            UNIX_EPOCH + std::time::Duration::from_secs_f64(started_at_unix),
        )?),
        None => None,
    })
}

/// What the collector and the shards hand back once every shard has ended.
struct Ended<S> {
    collected: Collected,
    hlog: Option<crate::report::hdr::IntervalLog>,
    sink: Option<S>,
    /// The last error (or panic) among the shards, if any.
    shard_error: Option<String>,
}

/// Runs the shards to their end under one collector: starts the collector, then
/// one thread per shard; lets them go together once ready; joins the shards,
/// then the collector; and accounts what memory a connection cost.
fn run_shards<S: crate::metrics::SecondSink + 'static>(
    shared: &Arc<RunShared>,
    progress: Progress,
    hlog: Option<crate::report::hdr::IntervalLog>,
    sink: Option<S>,
) -> Result<Ended<S>> {
    let cfg = &shared.plan;
    let plans = cfg.shards.clone();
    let (tx, rx) = crossbeam_channel::bounded(plans.len() * 4);
    let n_shards = plans.len();
    let warmup = collector::Warmup {
        secs: cfg.warmup.as_secs(),
    };
    let give_up = (!cfg.keep_trying).then(|| GiveUp {
        shared: shared.clone(),
        established: 0,
        failed: 0,
    });
    let collector = spawn_collector(rx, n_shards, progress, warmup, hlog, sink, give_up)?;
    let handles = spawn_shards(plans, shared, &tx, cfg.io_driver)?;
    // Only the shards hold senders now: should they all die without their last
    // snapshot, the collector sees the channel close and ends.
    drop(tx);
    let start_rss = go_when_ready(shared, &handles);
    let shard_error = join_shards(handles);
    let (mut collected, hlog, sink) = collector
        .join()
        .map_err(|_| Error::Runtime("the collector thread panicked".into()))?;
    account_memory(&mut collected, start_rss);
    Ok(Ended {
        collected,
        hlog,
        sink,
        shard_error,
    })
}

/// The collector's thread: what it gathered, with the interval log and the sink
/// it fed every final second to.
type CollectorThread<S> = JoinHandle<(
    Collected,
    Option<crate::report::hdr::IntervalLog>,
    Option<S>,
)>;

/// Starts the collector's thread: it receives every shard's snapshots until all
/// `n_shards` have sent their last, feeding each final second to the interval
/// log, then to `sink`.
fn spawn_collector<S: crate::metrics::SecondSink + 'static>(
    rx: crossbeam_channel::Receiver<crate::metrics::Snapshot>,
    n_shards: usize,
    progress: Progress,
    warmup: collector::Warmup,
    mut hlog: Option<crate::report::hdr::IntervalLog>,
    mut sink: Option<S>,
    mut give_up: Option<GiveUp>,
) -> Result<CollectorThread<S>> {
    std::thread::Builder::new()
        .name("wsherd-collector".into())
        .spawn(move || {
            let mut sinks: Vec<&mut dyn crate::metrics::SecondSink> = Vec::new();
            if let Some(h) = hlog.as_mut() {
                sinks.push(h);
            }
            if let Some(s) = sink.as_mut() {
                sinks.push(s);
            }
            if let Some(g) = give_up.as_mut() {
                sinks.push(g);
            }
            let c = collector::collect_with(rx, n_shards, progress, warmup, sinks);
            (c, hlog, sink)
        })
        .map_err(|e| Error::Runtime(format!("collector thread: {e}")))
}

/// A shard's thread: its driver's name, or why it could not run.
type ShardThread = JoinHandle<std::result::Result<&'static str, String>>;

/// Starts one thread per shard plan, pinned to the plan's core, each sending its
/// snapshots on a clone of `tx`.
fn spawn_shards(
    plans: Vec<crate::plan::ShardPlan>,
    shared: &Arc<RunShared>,
    tx: &crossbeam_channel::Sender<crate::metrics::Snapshot>,
    io_driver: crate::vocab::kinds::IoDriver,
) -> Result<Vec<ShardThread>> {
    let mut handles = Vec::new();
    for p in plans {
        let tx = tx.clone();
        let run = shared.clone();
        let driver = io_driver;
        let h = std::thread::Builder::new()
            .name(format!("wsherd-shard-{}", p.index))
            .spawn(move || {
                crate::rt::pin_to_core(p.core);
                shard::run_shard(p, run, tx, driver)
            })
            .map_err(|e| Error::Runtime(format!("shard thread: {e}")))?;
        handles.push(h);
    }
    Ok(handles)
}

/// Waits (up to 5 s) until every shard is ready or one has already ended, reads
/// the resident memory then, and lets the shards go together. Returns that
/// resident memory (KiB), when it could be read.
fn go_when_ready(shared: &RunShared, handles: &[ShardThread]) -> Option<u64> {
    // Every shard has its runtime, pools and histograms: what is resident now is
    // the fixed cost; whatever grows from here is the connections'.
    let t0 = Instant::now();
    while shared.ready.load(std::sync::atomic::Ordering::Acquire) < handles.len()
        && !handles.iter().any(|h| h.is_finished())
        && t0.elapsed() < std::time::Duration::from_secs(5)
    {
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let start_rss = crate::sys::status_kib("VmRSS:");
    shared.go.store(true, std::sync::atomic::Ordering::Release);
    start_rss
}

/// Joins every shard; the last error (or panic) among them, if any.
fn join_shards(handles: Vec<ShardThread>) -> Option<String> {
    let mut shard_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => shard_error = Some(e),
            Err(_) => shard_error = Some("a shard thread panicked".to_string()),
        }
    }
    shard_error
}

/// The memory a connection costs: what grew from `start_rss` (read before the
/// shards went) to the resident memory while the most connections were held.
/// Without `start_rss`, no memory figures at all.
fn account_memory(collected: &mut Collected, start_rss: Option<u64>) {
    if let (Some(m), Some(start)) = (collected.memory.as_mut(), start_rss) {
        m.start_rss_kib = start;
        m.per_connection_bytes = (m.held_rss_kib.saturating_sub(start) * 1024)
            .checked_div(m.held_connections)
            .unwrap_or(0);
    } else {
        collected.memory = None;
    }
}

/// Writes the JSON, the interval log and the report files, in that order.
fn write_outputs(
    out: &Outputs,
    results: &RunResults,
    hlog: Option<crate::report::hdr::IntervalLog>,
) -> Result<()> {
    // A file that cannot be written now must not lose the run: the results then
    // go to a fallback JSON file, and the error says where.
    let written = match &out.json {
        Some(p) => crate::report::write_json("--json", p, results),
        None => Ok(()),
    }
    .and_then(|_| hlog.map_or(Ok(()), |h| h.finish()))
    .and_then(|_| out.reports.write(results));
    written.map_err(|e| crate::report::outputs::with_fallback(e, results))
}

/// The results of a run (or of a stretch of one, such as a ceiling step) from
/// what the collector gathered: each section assembled by its own step.
pub(crate) fn assemble(
    cfg: &Plan,
    targets: &[Target],
    c: Collected,
    elapsed: f64,
    started_at_unix: f64,
    ending: Ending,
    nofile: u64,
) -> RunResults {
    // A run that ended early (interrupted, or gave up) has its rates over the
    // time it ran.
    let measured = Measured::of(cfg, elapsed, ending != Ending::Full);
    let k = &c.total.counters;
    let warm = &c.warmup.counters;
    RunResults {
        schema_version: SCHEMA_VERSION,
        wsherd_version: env!("CARGO_PKG_VERSION").to_string(),
        interrupted: ending == Ending::Interrupted,
        gave_up: (ending == Ending::GaveUp).then(|| {
            "nothing could be reached: every connection attempt failed and none succeeded \
             (--keep-trying runs the whole duration anyway)"
                .to_string()
        }),
        scenario: None,
        started_at_unix,
        elapsed_secs: elapsed,
        config: config_summary(cfg, targets),
        host: host_info(cfg, &c.drivers, nofile),
        connections: ConnectionStats {
            reconnects: cfg.reconnect.map(|_| ReconnectStats {
                attempted: k.reconnect_attempts,
                succeeded: k.reconnects,
                down_at_stop: k.down_at_stop,
                disconnected_secs: k.disconnected_ns as f64 / 1e9,
            }),
            all_open_secs: (cfg.workload.session.is_none()
                && cfg.reconnect.is_none()
                && k.failed() == 0
                && k.established > 0
                && k.established == cfg.connections)
                .then(|| k.last_established_ns as f64 / 1e9),
            ..connection_stats(k, c.peak_open, cfg.tls.as_ref(), cfg.offer.deflate.as_ref())
        },
        messages: message_stats(k, warm, &measured, &c.series),
        errors: k.errors.clone(),
        latency: latencies(cfg, &c.total),
        sessions: session_stats(cfg, &c.total, warm, measured.secs),
        broadcast: broadcast_stats(cfg, k, warm, measured.secs),
        push: push_stats(cfg, k, warm, measured.secs),
        steps: step_results(cfg, &c.total),
        protocol: protocol_stats(cfg, k),
        warmup: warmup_stats(cfg, &c.warmup),
        series: c.series,
        memory: c.memory,
        thresholds: Vec::new(),
        assessment: Vec::new(),
        agents: None,
    }
}

/// The measured phase of a run, from the end of the warm-up to the stop: what
/// its rates are over.
struct Measured {
    /// Its length in seconds (never zero).
    secs: f64,
    /// The whole per-second rows within it (`t` from the first to the last).
    rows: std::ops::Range<u64>,
}

impl Measured {
    /// The measured phase of a run that lasted `elapsed` seconds.
    fn of(cfg: &Plan, elapsed: f64, interrupted: bool) -> Self {
        // Rates are over the measured time: the run's duration, or less when interrupted
        // (the drain and close handshake after the stop are not part of it).
        let run_secs = if interrupted {
            elapsed
        } else {
            elapsed.min(cfg.duration.as_secs_f64())
        };
        // Rates cover the measured phase: after the warm-up.
        let warm_secs = cfg.warmup.as_secs_f64().min(run_secs);
        Measured {
            secs: (run_secs - warm_secs).max(1e-9),
            rows: warm_secs.ceil() as u64..run_secs.floor() as u64,
        }
    }

    /// The mean per second of `f` over the measured rows; None when not one
    /// whole second was measured.
    ///
    /// Message rates count what was sent and received within the measured seconds
    /// (per-second rows from the end of the warm-up to the stop): echoes that arrive
    /// in the drain after the stop are in the ledger, not in the rate, or an
    /// overloaded server's backlog would pass for throughput.
    fn row_rate(&self, series: &[SecondStats], f: impl Fn(&SecondStats) -> u64) -> Option<f64> {
        let (w0, w1) = (self.rows.start, self.rows.end);
        (w1 > w0).then(|| {
            let n: u64 = series.iter().filter(|s| s.t >= w0 && s.t < w1).map(f).sum();
            n as f64 / (w1 - w0) as f64
        })
    }
}

/// The run as configured, as the results report it.
/// The distinct proxies of `targets`, in the order first met.
fn proxies_of(targets: &[Target]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in targets.iter().filter_map(|t| t.proxy.as_ref()) {
        if !out.contains(&p.shown) {
            out.push(p.shown.clone());
        }
    }
    out
}

fn config_summary(cfg: &Plan, targets: &[Target]) -> ConfigSummary {
    ConfigSummary {
        targets: targets.iter().map(|t| t.url.clone()).collect(),
        source_ips: cfg.sources.iter().map(|ip| ip.to_string()).collect(),
        proxies: proxies_of(targets),
        embedded_server: cfg.embedded(),
        workload: cfg.workload.name().to_string(),
        pacing: match cfg.workload.pacing {
            Pacing::Closed { .. } => "closed",
            Pacing::Open { .. } => "open",
            Pacing::Hold => "hold",
        }
        .to_string(),
        // The mean requested rate (the rate itself when it is constant).
        rate: cfg
            .rate_profile
            .as_ref()
            .map(|p| p.integral(cfg.duration.as_secs_f64()) / cfg.duration.as_secs_f64()),
        connections: cfg.connections,
        duration_secs: cfg.duration.as_secs_f64(),
        connect_rate: cfg.connect_rate,
        connect_timeout_secs: cfg.connect_timeout.as_secs_f64(),
        message_size: cfg.payload.size,
        message_kind: cfg.payload.kind.name().to_string(),
        inflight: cfg.workload.inflight(),
        shards: cfg.shard_cores.len(),
        correlate: cfg.correlate.as_ref().map(|p| p.to_string()),
        steps_mode: cfg.script.as_ref().map(|s| s.mode.name().to_string()),
        rate_stages: rate_stages(cfg),
        heartbeat_secs: cfg.workload.heartbeat().map(|p| p.as_secs_f64()),
    }
}

/// The stages of a rate that moves (--stages, --ramp); none for a flat one.
fn rate_stages(cfg: &Plan) -> Vec<crate::results::RateStage> {
    let Some(p) = cfg.rate_profile.as_ref().filter(|p| !p.is_flat()) else {
        return Vec::new();
    };
    let ends = p.stage_ends();
    let mut from = (0.0, 0.0);
    ends.iter()
        .map(|&(end, target)| {
            let s = crate::results::RateStage {
                secs: end - from.0,
                target,
            };
            from = (end, target);
            s
        })
        .collect()
}

/// The host the run ran on: its name, CPUs, cores, kernel and descriptor limit,
/// and the I/O driver the shards reported (the first that named one).
fn host_info(cfg: &Plan, drivers: &[&'static str], nofile: u64) -> HostInfo {
    let driver = drivers
        .iter()
        .copied()
        .find(|d| !d.is_empty())
        .unwrap_or("none")
        .to_string();
    HostInfo {
        hostname: crate::sys::hostname(),
        cpus: crate::sys::cpu_count(),
        shard_cores: cfg.shard_cores.clone(),
        server_cores: cfg.server_cores.clone(),
        // As the shards chose it (the busiest shard's share decides under auto).
        timer: if driver == crate::rt::URING
            && cfg.precise_timer(1.0 / cfg.shard_cores.len().max(1) as f64)
        {
            "precise".into()
        } else {
            "1ms wheel".into()
        },
        io_driver: driver,
        kernel: crate::sys::kernel(),
        nofile_limit: nofile,
    }
}

/// The connections' ledger: opened, failed, lost and closed, by cause and code.
fn connection_stats(
    k: &Counters,
    peak_open: u64,
    tls: Option<&crate::net::tls::ClientTls>,
    deflate: Option<&crate::ws::deflate::Offer>,
) -> ConnectionStats {
    ConnectionStats {
        attempted: k.attempted,
        established: k.established,
        aborted_at_stop: k.aborted,
        failed: k.failed(),
        failed_by_cause: k.failed_by_cause.clone(),
        lost: k.lost(),
        lost_by_cause: k.lost_by_cause.clone(),
        close_codes: k
            .close_codes
            .iter()
            .map(|(code, n)| (code.to_string(), *n))
            .collect(),
        closed_clean: k.closed_clean,
        closed_unanswered: k.closed_unanswered,
        peak_open,
        parks: k.parks,
        all_open_secs: None,
        subprotocols: k.subprotocols.clone(),
        tls: tls.map(|t| crate::results::TlsStats {
            full: k.tls_full,
            resumed: k.tls_resumed,
            negotiated: k.tls_negotiated.clone(),
            verified: !t.insecure,
            resumption: t.resume,
        }),
        deflate: deflate.map(|offer| crate::results::DeflateStats {
            offered: offer
                .header_line()
                .trim_end()
                .trim_start_matches("Sec-WebSocket-Extensions: ")
                .to_string(),
            negotiated: k.deflate_negotiated,
            declined: k.deflate_declined,
            state_bytes_per_connection: k
                .deflate_state_bytes
                .checked_div(k.deflate_negotiated)
                .unwrap_or(0),
            message_bytes_sent: k.msg_bytes_sent,
            wire_bytes_sent: k.bytes_sent,
            message_bytes_received: k.msg_bytes_received,
            wire_bytes_received: k.bytes_received,
        }),
        reconnects: None,
    }
}

/// The messages' ledger, and their rates over the measured rows (or, with no
/// whole row measured, over the measured time after the warm-up's counts).
fn message_stats(
    k: &Counters,
    warm: &Counters,
    measured: &Measured,
    series: &[SecondStats],
) -> MessageStats {
    let sent_rate = measured.row_rate(series, |s| s.sent);
    let received_rate = measured.row_rate(series, |s| s.received);
    let secs = measured.secs;
    MessageStats {
        sent: k.sent,
        received: k.received,
        failed: k.failed_msgs,
        in_flight_at_stop: k.in_flight_at_stop,
        unexpected: k.unexpected,
        bytes_sent: k.bytes_sent,
        bytes_received: k.bytes_received,
        sent_per_sec: sent_rate.unwrap_or((k.sent - warm.sent) as f64 / secs),
        received_per_sec: received_rate.unwrap_or((k.received - warm.received) as f64 / secs),
        pings_answered: k.pings_answered,
        late: k.late,
        unexpected_samples: k
            .unexpected_samples
            .iter()
            .map(|u| crate::results::UnexpectedSample {
                kind: if u.text { "text" } else { "binary" }.into(),
                bytes: u.len as u64,
                start: shown(&u.start, u.len),
            })
            .collect(),
    }
}

/// The start of a message as people read it: valid text as is (control
/// characters escaped), other bytes as `\xNN`; `…` when the message goes on.
fn shown(start: &[u8], len: usize) -> String {
    let mut s = String::new();
    for chunk in start.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch.is_control() {
                s.extend(ch.escape_default());
            } else {
                s.push(ch);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if len > start.len() {
        s.push('…');
    }
    s
}

/// Every latency the run recorded; the open-loop ones only in an open loop, the
/// delivery latency only in a broadcast.
fn latencies(cfg: &Plan, total: &Interval) -> Latencies {
    let open_loop = cfg.workload.open_loop();
    let rtt = LatencyStats::from_histogram(&total.rtt);
    let send_lag = open_loop.then(|| LatencyStats::from_histogram(&total.send_lag));
    Latencies {
        send_lag_share: Latencies::lag_share(&rtt, send_lag.as_ref()),
        connect: LatencyStats::from_histogram(&total.connect),
        tls: cfg
            .tls
            .is_some()
            .then(|| LatencyStats::from_histogram(&total.tls)),
        handshake: LatencyStats::from_histogram(&total.handshake),
        protocol_open: cfg
            .protocol
            .opens()
            .then(|| LatencyStats::from_histogram(&total.proto_open)),
        rtt,
        rtt_uncorrected: open_loop.then(|| LatencyStats::from_histogram(&total.rtt_uncorrected)),
        send_lag,
        delivery: (cfg.workload.broadcast.is_some()
            || cfg.push.as_ref().is_some_and(|p| p.sent_at.is_some()))
        .then(|| LatencyStats::from_histogram(&total.delivery)),
    }
}

/// A session workload's sessions: completed, their rate after the warm-up, and
/// their duration.
fn session_stats(cfg: &Plan, total: &Interval, warm: &Counters, secs: f64) -> Option<SessionStats> {
    let k = &total.counters;
    cfg.workload.session.map(|s| SessionStats {
        messages_per_session: s.messages,
        rate: s.rate,
        completed: k.sessions,
        per_sec: (k.sessions - warm.sessions) as f64 / secs,
        late: k.sessions_late,
        duration: LatencyStats::from_histogram(&total.session),
    })
}

/// A broadcast's deliveries against what every receiver should have had.
fn broadcast_stats(cfg: &Plan, k: &Counters, warm: &Counters, secs: f64) -> Option<BroadcastStats> {
    cfg.workload.broadcast.map(|b| {
        // Publishers' own copies are counted as their echoes too.
        let published = k.sent;
        let expected = published * cfg.connections;
        BroadcastStats {
            publishers: b.publishers,
            receivers: cfg.connections,
            published,
            expected,
            delivered: k.delivered,
            missing: k.missing,
            duplicates: k.duplicates,
            undelivered_at_stop: expected.saturating_sub(k.delivered + k.missing),
            delivered_per_sec: (k.delivered - warm.delivered) as f64 / secs,
        }
    })
}

/// The application protocol's counts (None without one).
fn protocol_stats(cfg: &Plan, k: &Counters) -> Option<ProtocolStats> {
    let (namespace, event) = match &cfg.protocol {
        crate::proto::Protocol::Raw => return None,
        crate::proto::Protocol::SocketIo(s) => (Some(s.namespace.clone()), Some(s.event.clone())),
        crate::proto::Protocol::GraphqlWs(_) => (None, None),
    };
    Some(ProtocolStats {
        name: cfg.protocol.name().to_string(),
        namespace,
        event,
        opened: k.proto_opened,
        pings_answered: k.proto_pings,
        received: k.events.clone(),
    })
}

/// A conversation's steps as measured over the whole run.
fn step_results(cfg: &Plan, total: &Interval) -> Vec<StepResult> {
    let Some(script) = &cfg.script else {
        return Vec::new();
    };
    let none = crate::metrics::StepStats::default();
    script
        .steps
        .iter()
        .enumerate()
        .map(|(i, info)| {
            let s = total.steps.get(i).unwrap_or(&none);
            let expect = info.kind == crate::script::StepKind::Expect;
            StepResult {
                name: info.name.clone(),
                kind: info.kind.name().to_string(),
                count: s.count,
                ok: s.ok,
                timeout: s.timeout,
                mismatch: s.mismatch,
                closed: s.closed,
                stopped: s.stopped,
                latency: expect.then(|| match &s.latency {
                    Some(h) => LatencyStats::from_histogram(h),
                    None => LatencyStats::from_histogram(&crate::vocab::hist::new_histogram()),
                }),
            }
        })
        .collect()
}

/// What the server pushed: counts, rates, and what the fields showed.
fn push_stats(cfg: &Plan, k: &Counters, warm: &Counters, secs: f64) -> Option<PushStats> {
    cfg.push.as_ref().map(|p| {
        let per_sec = (k.delivered - warm.delivered) as f64 / secs;
        PushStats {
            subscribes: k.subscribes,
            received: k.delivered,
            received_per_sec: per_sec,
            per_connection_per_sec: per_sec / cfg.connections.max(1) as f64,
            seq_field: p.seq.as_ref().map(|s| s.to_string()),
            missing: k.missing,
            duplicates: k.duplicates,
            sent_at_field: p.sent_at.as_ref().map(|(s, _)| s.to_string()),
            sent_at_unit: p.sent_at.as_ref().map(|(_, u)| u.name().to_string()),
            skewed: k.skewed,
            without_fields: k.push_unfielded,
        }
    })
}

/// What the warm-up saw, kept apart from the measured phase (none without one).
fn warmup_stats(cfg: &Plan, warmup: &Interval) -> Option<WarmupStats> {
    let warm = &warmup.counters;
    (cfg.warmup > std::time::Duration::ZERO).then(|| WarmupStats {
        secs: cfg.warmup.as_secs_f64(),
        sent: warm.sent,
        received: warm.received,
        established: warm.established,
        rtt: LatencyStats::from_histogram(&warmup.rtt),
    })
}
