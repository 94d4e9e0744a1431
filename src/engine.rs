//! A whole load run: check the host, start the embedded server if asked, start one
//! pinned shard thread per core, collect, and assemble the results.
//!
//! This is the only place that knows the order of things; each step lives in its
//! own module. Problems that stop a run before it starts are `Error`s; everything
//! that goes wrong during a run is counted in the results instead.

use crate::collector::{self, Collected, Progress};
use crate::error::{Error, Result};
use crate::metrics::Interval;
use crate::plan::Plan;
use crate::results::*;
use crate::server::ServeConfig;
use crate::shard::{self, RunShared};
use crate::target::Target;
use crate::workload::Pacing;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
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

/// A run as the engine takes it: the plan and its outputs.
#[derive(Debug, Clone)]
pub struct Run {
    pub plan: Plan,
    pub outputs: Outputs,
}

/// Runs a load as configured; Ctrl-C (SIGINT/SIGTERM) ends it early.
pub fn run(cfg: Run) -> Result<RunResults> {
    run_with_interrupt(cfg, crate::sys::interrupt_flag())
}

/// Runs a load that ends early when `interrupt` is set.
pub fn run_with_interrupt(cfg: Run, interrupt: Arc<AtomicBool>) -> Result<RunResults> {
    run_with::<NoSink>(cfg, interrupt, None, None).map(|(r, _)| r)
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
pub fn run_with<S: crate::metrics::SecondSink + 'static>(
    run: Run,
    interrupt: Arc<AtomicBool>,
    live: Option<Arc<shard::Live>>,
    mut sink: Option<S>,
) -> Result<(RunResults, Option<S>)> {
    let Run {
        plan: cfg,
        outputs: out,
    } = run;
    let nofile = crate::host::check_fds(&cfg)?;
    crate::host::check_ports(&crate::host::demand(&cfg)).map_err(Error::HostLimit)?;
    // Fail on an unwritable output now, not after a long run.
    if let Some(p) = &out.json {
        crate::report::check_writable(p)?;
    }
    out.reports.check()?;
    if let Some(p) = &out.hlog {
        crate::report::check_writable(p)?;
    }
    // A taken metrics port is an error now, not a dashboard without data later.
    let exporter = cfg
        .metrics_addr
        .map(crate::export::prometheus::start_client)
        .transpose()?;

    if let Some(at) = cfg.start_at {
        wait_until_unix(at, &interrupt);
    }
    let server = if cfg.embedded() {
        let sc = ServeConfig {
            addr: "127.0.0.1:0".parse().expect("valid literal"),
            // A broadcast run needs a server that relays to everyone.
            mode: if cfg.workload.broadcast.is_some() {
                crate::vocab::kinds::ServeMode::Broadcast
            } else {
                crate::vocab::kinds::ServeMode::Echo
            },
            queue: 1024,
            cores: cfg.server_cores.clone(),
            io_driver: cfg.io_driver,
            quiet: true,
            faults: Default::default(),
            metrics_addr: None,
        };
        Some(crate::server::start(sc)?)
    } else {
        None
    };
    let targets = match &server {
        Some(s) => vec![Target::local(s.addr())],
        None => cfg.targets.clone(),
    };

    let started_at_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let plans = cfg.shards.clone();
    let io_driver = cfg.io_driver;
    let shared = Arc::new(RunShared {
        plan: cfg,
        targets: targets.clone(),
        established: Default::default(),
        origin: Instant::now(),
        interrupt: interrupt.clone(),
        ready: Default::default(),
        go: Default::default(),
        live,
    });
    let cfg = &shared.plan;
    let (tx, rx) = crossbeam_channel::bounded(plans.len() * 4);
    let n_shards = plans.len();
    let warmup = collector::Warmup {
        secs: cfg.warmup.as_secs(),
    };
    let progress = Progress {
        enabled: !cfg.quiet,
        total: cfg.duration,
        stages: match (&cfg.conn_profile, &cfg.rate_profile) {
            (Some(p), _) => crate::export::progress::stage_marks(Some(p), false),
            (None, p) => crate::export::progress::stage_marks(p.as_ref(), true),
        },
        metrics: exporter.as_ref().map(|(m, _)| m.clone()),
    };
    let mut hlog = match &out.hlog {
        Some(p) => Some(crate::report::hdr::IntervalLog::create(
            p,
            UNIX_EPOCH + std::time::Duration::from_secs_f64(started_at_unix),
        )?),
        None => None,
    };
    let collector = std::thread::Builder::new()
        .name("wsherd-collector".into())
        .spawn(move || {
            let mut sinks: Vec<&mut dyn crate::metrics::SecondSink> = Vec::new();
            if let Some(h) = hlog.as_mut() {
                sinks.push(h);
            }
            if let Some(s) = sink.as_mut() {
                sinks.push(s);
            }
            let c = collector::collect_with(rx, n_shards, progress, warmup, sinks);
            (c, hlog, sink)
        })
        .map_err(|e| Error::Runtime(format!("collector thread: {e}")))?;

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
    drop(tx);
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
    let mut shard_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => shard_error = Some(e),
            Err(_) => shard_error = Some("a shard thread panicked".to_string()),
        }
    }
    let (mut collected, hlog, sink) = collector
        .join()
        .map_err(|_| Error::Runtime("the collector thread panicked".into()))?;
    if let (Some(m), Some(start)) = (collected.memory.as_mut(), start_rss) {
        m.start_rss_kib = start;
        m.per_connection_bytes = (m.held_rss_kib.saturating_sub(start) * 1024)
            .checked_div(m.held_connections)
            .unwrap_or(0);
    } else {
        collected.memory = None;
    }
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
    let mut results = assemble(
        cfg,
        &targets,
        collected,
        elapsed,
        started_at_unix,
        interrupted,
        nofile,
    );
    out.judge.apply(&mut results);
    drop(exporter);
    // A file that cannot be written now must not lose the run: the results then
    // go to a fallback JSON file, and the error says where.
    let written = match &out.json {
        Some(p) => crate::report::write_json(p, &results),
        None => Ok(()),
    }
    .and_then(|_| hlog.map_or(Ok(()), |h| h.finish()))
    .and_then(|_| out.reports.write(&results));
    if let Err(e) = written {
        return Err(crate::report::outputs::with_fallback(e, &results));
    }
    Ok((results, sink))
}

/// Sleeps until the Unix time `at` (agents starting together), or until interrupted.
fn wait_until_unix(at: f64, interrupt: &AtomicBool) {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(at);
        if now >= at || interrupt.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs_f64((at - now).min(0.05)));
    }
}

/// The results of a run (or of a stretch of one, such as a ceiling step) from
/// what the collector gathered.
pub(crate) fn assemble(
    cfg: &Plan,
    targets: &[Target],
    c: Collected,
    elapsed: f64,
    started_at_unix: f64,
    interrupted: bool,
    nofile: u64,
) -> RunResults {
    let Interval {
        counters: k,
        rtt,
        rtt_uncorrected,
        send_lag,
        session,
        delivery,
        connect,
        handshake,
    } = c.total;
    let open_loop = cfg.workload.open_loop();
    // Rates are over the measured time: the run's duration, or less when interrupted
    // (the drain and close handshake after the stop are not part of it).
    let run_secs = if interrupted {
        elapsed
    } else {
        elapsed.min(cfg.duration.as_secs_f64())
    };
    // Rates cover the measured phase: after the warm-up.
    let warm_secs = cfg.warmup.as_secs_f64().min(run_secs);
    let secs = (run_secs - warm_secs).max(1e-9);
    // Message rates count what was sent and received within the measured seconds
    // (per-second rows from the end of the warm-up to the stop): echoes that arrive
    // in the drain after the stop are in the ledger, not in the rate, or an
    // overloaded server's backlog would pass for throughput.
    let (w0, w1) = (warm_secs.ceil() as u64, run_secs.floor() as u64);
    let in_run = |f: &dyn Fn(&SecondStats) -> u64| -> Option<f64> {
        (w1 > w0).then(|| {
            let n: u64 = c
                .series
                .iter()
                .filter(|s| s.t >= w0 && s.t < w1)
                .map(f)
                .sum();
            n as f64 / (w1 - w0) as f64
        })
    };
    let sent_rate = in_run(&|s| s.sent);
    let received_rate = in_run(&|s| s.received);
    let warm = &c.warmup.counters;
    let driver = c
        .drivers
        .iter()
        .copied()
        .find(|d| !d.is_empty())
        .unwrap_or("none")
        .to_string();
    RunResults {
        schema_version: SCHEMA_VERSION,
        wsherd_version: env!("CARGO_PKG_VERSION").to_string(),
        interrupted,
        started_at_unix,
        elapsed_secs: elapsed,
        config: ConfigSummary {
            targets: targets.iter().map(|t| t.url.clone()).collect(),
            source_ips: cfg.sources.iter().map(|ip| ip.to_string()).collect(),
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
        },
        host: HostInfo {
            hostname: crate::sys::hostname(),
            cpus: crate::sys::cpu_count(),
            shard_cores: cfg.shard_cores.clone(),
            server_cores: cfg.server_cores.clone(),
            io_driver: driver,
            kernel: crate::sys::kernel(),
            nofile_limit: nofile,
        },
        connections: ConnectionStats {
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
            peak_open: c.peak_open,
        },
        messages: MessageStats {
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
        },
        errors: k.errors.clone(),
        latency: Latencies {
            connect: LatencyStats::from_histogram(&connect),
            handshake: LatencyStats::from_histogram(&handshake),
            rtt: LatencyStats::from_histogram(&rtt),
            rtt_uncorrected: open_loop.then(|| LatencyStats::from_histogram(&rtt_uncorrected)),
            send_lag: open_loop.then(|| LatencyStats::from_histogram(&send_lag)),
            delivery: cfg
                .workload
                .broadcast
                .map(|_| LatencyStats::from_histogram(&delivery)),
        },
        sessions: cfg.workload.session.map(|s| SessionStats {
            messages_per_session: s.messages,
            rate: s.rate,
            completed: k.sessions,
            per_sec: (k.sessions - warm.sessions) as f64 / secs,
            late: k.sessions_late,
            duration: LatencyStats::from_histogram(&session),
        }),
        broadcast: cfg.workload.broadcast.map(|b| {
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
        }),
        warmup: (cfg.warmup > std::time::Duration::ZERO).then(|| WarmupStats {
            secs: cfg.warmup.as_secs_f64(),
            sent: warm.sent,
            received: warm.received,
            established: warm.established,
            rtt: LatencyStats::from_histogram(&c.warmup.rtt),
        }),
        series: c.series,
        memory: c.memory,
        thresholds: Vec::new(),
        assessment: Vec::new(),
    }
}
