//! The configuration of a load run: a `Plan` from the load flags (`LoadArgs`,
//! shared by `run` and `ceiling`) and a `RunShape` (what decides the run besides
//! them: `run` takes it from its own flags, a ceiling search from its dimension).
//!
//! Why it exists: every cross-flag check of a run lives here, in one place, so a
//! run that starts is a run that makes sense, and `run`, `ceiling` and scenario
//! files check a run alike. Errors say what was wrong and which flag fixes it.
//! The checks are named steps (`load_from`, `workload_from` and the steps they
//! call) that run in a fixed order, so which error a user meets first does not
//! change.
//!
//! It never imports the command layer (`commands`, `main`): config sits below it
//! and reads what the user typed from `cli`'s types only. It builds the engine's
//! `Run` (a plan and its outputs) but never runs one, and never reaches into the
//! shards.

use crate::cli::{LoadArgs, RunArgs};
use crate::engine::{Outputs, Run};
use crate::error::{Error, Result};
use crate::pacer::{parse_stages, Profile, Stage};
use crate::payload::{PayloadKind, PayloadSpec};
use crate::plan::{even_share, Plan};
use crate::report::outputs::ReportFiles;
use crate::target::Target;
use crate::thresholds::Judge;
use crate::vocab::jsonptr::Pointer;
use crate::vocab::kinds::{TimeUnit, WorkloadKind};
use crate::workload::{Message, Pacing, Push, Workload};
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Largest message we agree to send (frames beyond this are a typo, not a test).
const MAX_MESSAGE_SIZE: u64 = 64 << 20;
/// Most messages in flight per connection.
const MAX_INFLIGHT: u64 = 65_536;

/// What decides a run besides the load flags. `run` takes it from its own flags
/// (`RunShape::of`); a ceiling search sets it from its dimension.
#[derive(Debug, Clone)]
pub struct RunShape {
    pub connections: Option<u64>,
    pub workload: WorkloadKind,
    pub rate_per_conn: Option<f64>,
    pub json: Option<PathBuf>,
    pub quiet: bool,
    pub duration: Option<Duration>,
    pub stages: Option<String>,
    pub ramp: Option<Duration>,
    pub warmup: Option<Duration>,
    pub rate: Option<f64>,
    pub publishers: Option<u64>,
    pub session_rate: Option<f64>,
    pub drain: Duration,
    pub close_timeout: Option<Duration>,
    pub agent: Option<String>,
    pub start_at: Option<f64>,
    pub reports: ReportFiles,
    pub hlog: Option<PathBuf>,
    pub judge: Judge,
}

impl RunShape {
    /// The shape `wsherd run` gives: its own flags, its -c, -w, --rate-per-conn,
    /// --json and -q.
    pub fn of(a: RunArgs) -> Result<(LoadArgs, RunShape)> {
        let judge = Judge::parse(&a.judge.thresholds, &a.judge.bands)?;
        let l = a.load;
        let shape = RunShape {
            connections: l.connections,
            // Steps given: a conversation, unless -w says otherwise (and is refused).
            workload: l.workload.map_or(
                if l.steps.is_some() || l.steps_toml.is_some() {
                    WorkloadKind::Conversation
                } else {
                    WorkloadKind::Echo
                },
                Into::into,
            ),
            rate_per_conn: l.rate_per_conn,
            json: l.json.clone(),
            quiet: l.quiet,
            duration: a.duration,
            stages: a.stages,
            ramp: a.ramp,
            warmup: a.warmup,
            rate: a.rate,
            publishers: a.publishers,
            session_rate: a.session_rate,
            drain: a.drain,
            close_timeout: a.close_timeout,
            agent: a.agent,
            start_at: a.start_at,
            reports: a.reports.into(),
            hlog: a.hlog,
            judge,
        };
        Ok((l, shape))
    }
}

impl Run {
    /// Parses what follows `wsherd run` on a command line and plans it.
    pub fn from_args<I, S>(args: I) -> Result<Run>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        plan_run(crate::cli::parse_run_args(args)?)
    }
}

/// `wsherd run`'s flags into a plan.
pub fn plan_run(a: RunArgs) -> Result<Run> {
    let (l, shape) = RunShape::of(a)?;
    build(&l, shape)
}

/// Agent I of N's part of a run: the first connection id, its connections and
/// its share of every rate.
struct AgentShare {
    agent: Option<(u64, u64)>,
    conn_id_base: u64,
    connections: u64,
    share: f64,
}

/// Agent I of N takes the I-th share of the connections (ids included) and the
/// same share of every rate, so the agents together make the whole run.
fn agent_share(spec: Option<&str>, total: u64) -> Result<AgentShare> {
    let agent = spec.map(parse_agent).transpose()?;
    let Some((i, n)) = agent else {
        return Ok(AgentShare {
            agent,
            conn_id_base: 0,
            connections: total,
            share: 1.0,
        });
    };
    let mine = even_share(total, n, i - 1);
    if mine == 0 {
        return Err(Error::usage(format!(
            "--agent {i}/{n}: -c {total} leaves this agent no connection; use at least -c {n}"
        )));
    }
    Ok(AgentShare {
        agent,
        conn_id_base: (0..i - 1).map(|k| even_share(total, n, k)).sum(),
        connections: mine,
        share: mine as f64 / total as f64,
    })
}

fn check_start_at(start_at: Option<f64>) -> Result<()> {
    if let Some(t) = start_at {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        if !t.is_finite() || t > now + 86_400.0 {
            return Err(Error::usage(format!(
                "--start-at {t}: a Unix time in seconds within the next day (now is {now:.0})"
            )));
        }
    }
    Ok(())
}

/// The message payload from --size, --text, --payload-file, --template.
fn payload_from(l: &LoadArgs) -> Result<PayloadSpec> {
    // Socket.IO carries the stamp inside a JSON string: text.
    // (Pings are refused with it later, with a reason of their own.)
    let socketio = l.protocol == crate::cli::ProtocolArg::Socketio
        && l.workload != Some(crate::cli::WorkloadArg::Ping);
    let kind = if l.text || socketio {
        PayloadKind::Text
    } else {
        PayloadKind::Binary
    };
    if l.size > MAX_MESSAGE_SIZE {
        return Err(Error::usage(format!(
            "--size {} is larger than the {} MiB wsherd sends",
            l.size,
            MAX_MESSAGE_SIZE >> 20
        )));
    }
    if l.correlate.is_some() {
        return match l.template.as_deref() {
            Some(t) => PayloadSpec::from_request_template(t),
            None => Err(Error::usage(
                "--correlate matches replies by a field of the JSON requests: give the request with \
                 --template, e.g. --template '{\"jsonrpc\":\"2.0\",\"id\":{seq},\"method\":\"echo\"}' --correlate /id",
            )),
        };
    }
    PayloadSpec::from_flags(
        l.size as usize,
        kind,
        l.payload_file.as_deref(),
        l.template.as_deref(),
    )
}

/// `--correlate POINTER`: the field replies are matched by, for the workloads
/// whose messages are answered one by one (echo, churn, chat).
fn correlate_from(l: &LoadArgs, workload: &Workload) -> Result<Option<Pointer>> {
    let Some(text) = l.correlate.as_deref() else {
        return Ok(None);
    };
    let ptr = Pointer::parse(text).map_err(|e| Error::usage(format!("--correlate: {e}")))?;
    if workload.message != Message::Data || workload.broadcast.is_some() {
        return Err(Error::usage(format!(
            "--correlate does not apply to --workload {}: it matches the replies of data messages \
             (echo, churn, chat)",
            workload.name
        )));
    }
    if matches!(workload.pacing, Pacing::Hold) {
        return Err(Error::usage(format!(
            "--correlate does not apply to --workload {}: it sends no requests",
            workload.name
        )));
    }
    Ok(Some(ptr))
}

/// The workload, with rate stages turning echo or ping into an open loop, and
/// the check that an open loop's messages can carry their intended send time.
fn paced_workload(
    l: &LoadArgs,
    sh: &RunShape,
    load: &Load,
    payload: &PayloadSpec,
) -> Result<Workload> {
    let mut workload = workload_from(l, sh, payload)?;
    if let Some(profile) = &load.rate_profile {
        if !matches!(sh.workload, WorkloadKind::Echo | WorkloadKind::Ping) {
            return Err(Error::usage(format!(
                "rate stages (TARGET/s) are for --workload echo or ping, not {}",
                workload.name
            )));
        }
        if !workload.open_loop() {
            let peak = profile.peak().max(1e-9);
            workload.pacing = Pacing::Open {
                period: Duration::from_secs_f64(load.connections as f64 / peak),
                max_inflight: l.inflight.map(|k| k as u32),
            };
        }
    }
    // Requests matched by a field keep their send times at the sender.
    if workload.open_loop()
        && workload.message == Message::Data
        && !payload.carries_intended()
        && l.correlate.is_none()
    {
        return Err(Error::usage(
            "an open loop times messages from their intended send: add {intended} to the --template (e.g. \"intended\":{intended})",
        ));
    }
    Ok(workload)
}

/// The targets of the URLs (none: the embedded server).
fn targets_from(urls: &[String], proxy: Option<&str>) -> Result<Vec<Target>> {
    let mut targets = urls
        .iter()
        .map(|u| Target::parse_many(u))
        .collect::<Result<Vec<_>>>()?
        .concat();
    if targets.is_empty() && proxy.is_some() {
        return Err(Error::usage(
            "--proxy needs a target URL (the built-in server runs in this process); start `wsherd serve` and give its URL",
        ));
    }
    let env = |name: &str| std::env::var(name).ok();
    for t in &mut targets {
        let host = t.host().to_string();
        t.proxy = crate::proxy::Proxy::for_target(&host, t.addr, t.tls.is_some(), proxy, &env)?
            .map(std::sync::Arc::new);
    }
    Ok(targets)
}

/// This process's source addresses (its agent's slice of --source-ip) and how
/// many the flag named for all agents.
fn sources_from(
    spec: Option<&str>,
    targets: &[Target],
    agent: Option<(u64, u64)>,
) -> Result<(Vec<IpAddr>, u64)> {
    let Some(spec) = spec else {
        return Ok((Vec::new(), 0));
    };
    let all = crate::source::parse(spec).map_err(Error::usage)?;
    // The embedded server listens on 127.0.0.1.
    let v4 = targets.iter().all(|t| t.addr.is_ipv4());
    if !v4 && targets.iter().any(|t| t.addr.is_ipv4()) {
        return Err(Error::usage(
            "--source-ip with both IPv4 and IPv6 targets: run each family on its own and merge the results with wsherd merge",
        ));
    }
    if let Some(other) = all.iter().find(|ip| ip.is_ipv4() != v4) {
        let (f, t) = if v4 {
            ("IPv6", "IPv4")
        } else {
            ("IPv4", "IPv6")
        };
        return Err(Error::usage(format!(
            "--source-ip {other} is {f} but the targets are {t}; give sources of the targets' family"
        )));
    }
    let mine = crate::source::slice(&all, agent);
    for ip in &mine {
        crate::source::check_assigned(*ip).map_err(Error::usage)?;
    }
    Ok((mine, all.len() as u64))
}

/// Cores of the embedded server (none with targets) and of the load shards.
fn cores_from(l: &LoadArgs, embedded: bool, connections: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    let cores = crate::sys::available_cores();
    let (server_cores, load_cores) = if embedded {
        let n_server = match l.conn.server_shards {
            Some(0) => return Err(Error::usage("--server-shards must be at least 1")),
            Some(n) => n as usize,
            None => (cores.len() / 2).max(1),
        };
        if n_server > cores.len() {
            return Err(Error::usage(format!(
                "--server-shards {n_server} is more than the {} cores available",
                cores.len()
            )));
        }
        // The server takes the upper cores so the load (from core 0 up) is pinned
        // apart from it whenever there are at least two cores.
        let server = cores[cores.len() - n_server..].to_vec();
        let load = if cores.len() > n_server {
            cores[..cores.len() - n_server].to_vec()
        } else {
            cores.clone()
        };
        (server, load)
    } else {
        if l.conn.server_shards.is_some() {
            return Err(Error::usage(
                "--server-shards only applies when no URL is given (the embedded server)",
            ));
        }
        (Vec::new(), cores.clone())
    };
    let n_shards = match l.conn.shards {
        Some(0) => return Err(Error::usage("--shards must be at least 1")),
        Some(n) if n as usize > cores.len() => {
            return Err(Error::usage(format!(
                "--shards {n} is more than the {} cores this process may use",
                cores.len()
            )))
        }
        Some(n) => n as usize,
        None => load_cores.len(),
    };
    // A shard without connections would only add noise.
    let n_shards = n_shards.min(connections as usize).max(1);
    let shard_cores = if n_shards <= load_cores.len() {
        load_cores[..n_shards].to_vec()
    } else {
        cores[..n_shards].to_vec()
    };
    Ok((server_cores, shard_cores))
}

/// An open loop's messages per second over the run when no stage set them:
/// everyone sends at the workload's period, or only the broadcast publishers.
fn constant_rate(sh: &RunShape, workload: &Workload, load: &Load, share: f64) -> Option<Profile> {
    let senders = workload
        .broadcast
        .map_or(load.connections, |b| b.publishers);
    // The rate as requested (a period rounded to ns would drift from it).
    let requested = match (sh.rate, sh.rate_per_conn) {
        (Some(r), _) => Some(r * share),
        (_, Some(r)) => Some(r * senders as f64),
        _ => workload.period().map(|p| senders as f64 / p.as_secs_f64()),
    };
    workload
        .period()
        .and(requested)
        .map(|rate| Profile::constant(rate, load.duration))
}

/// Checks the load flags and the shape against each other and plans the run.
pub fn build(l: &LoadArgs, mut sh: RunShape) -> Result<Run> {
    let mut load = load_from(&sh)?;
    let total = load.connections;
    let agent = agent_share(sh.agent.as_deref(), total)?;
    load.connections = agent.connections;
    if agent.share < 1.0 {
        load.conn_profile = load.conn_profile.map(|p| p.scaled(agent.share));
        load.rate_profile = load.rate_profile.map(|p| p.scaled(agent.share));
    }
    check_start_at(sh.start_at)?;
    // Per-connection rates divide by the whole run's connections.
    sh.connections = Some(total);
    sh.duration = Some(load.duration);
    if l.conn.connect_timeout.is_zero() {
        return Err(Error::usage("--connect-timeout must be longer than zero"));
    }
    let payload = payload_from(l)?;
    let workload = paced_workload(l, &sh, &load, &payload)?;
    let correlate = correlate_from(l, &workload)?;
    let push = push_from(l, sh.workload)?;
    let targets = targets_from(&l.urls, l.proxy.as_deref())?;
    let (sources, all_sources) = sources_from(l.conn.source_ip.as_deref(), &targets, agent.agent)?;
    let (server_cores, shard_cores) = cores_from(l, targets.is_empty(), load.connections)?;
    let close_timeout = sh.close_timeout.unwrap_or_else(|| {
        let per_shard = load.connections.div_ceil(shard_cores.len().max(1) as u64);
        Duration::from_secs(1) + Duration::from_micros(100) * per_shard.min(1 << 30) as u32
    });
    let rate_profile = load
        .rate_profile
        .clone()
        .or_else(|| constant_rate(&sh, &workload, &load, agent.share));
    let mut plan = Plan {
        targets,
        sources,
        all_sources,
        whole_connections: total,
        server_cores,
        connections: load.connections,
        duration: load.duration,
        conn_profile: load.conn_profile,
        rate_profile,
        warmup: load.warmup,
        conn_id_base: agent.conn_id_base,
        agent: agent.agent,
        start_at: sh.start_at,
        workload,
        payload,
        correlate,
        push,
        script: None,
        protocol: Default::default(),
        connect_rate: l.conn.connect_rate * agent.share,
        connect_timeout: l.conn.connect_timeout,
        reconnect: l.conn.reconnect,
        keep_trying: l.conn.keep_trying,
        drain: sh.drain,
        close_timeout,
        shard_cores,
        io_driver: l.conn.io_driver.into(),
        timer: l.conn.timer.into(),
        quiet: sh.quiet,
        verbose: l.verbose,
        debug_frames: l.debug_frames.unwrap_or(0).min(u32::MAX as u64) as u32,
        metrics_addr: l
            .metrics_addr
            .as_deref()
            .map(crate::export::parse_addr)
            .transpose()?,
        offer: super::handshake::offer_from(l)?,
        per_conn: None,
        max_message: l.max_message.min(usize::MAX as u64) as usize,
        tls: None,
        shards: Vec::new(),
    };
    super::handshake::per_connection(l, sh.workload, &mut plan, agent.agent.map_or(1, |(i, _)| i))?;
    let server_tls = tls_from(l, &mut plan)?;
    plan.split_shards();
    Ok(Run {
        server: super::serve::embedded(&plan, server_tls),
        plan,
        outputs: Outputs {
            json: sh.json,
            reports: sh.reports,
            hlog: sh.hlog,
            judge: sh.judge,
        },
    })
}

/// The client's TLS (`wss://` targets, or `--tls` with the embedded server), and
/// the embedded server's TLS config when it serves TLS.
fn tls_from(l: &LoadArgs, plan: &mut Plan) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
    if l.tls && !plan.embedded() {
        return Err(Error::usage(
            "--tls serves the built-in server over TLS (no URL given); to load a TLS server, write its URL as wss://",
        ));
    }
    let flags = super::tls::ClientFlags {
        ca: &l.ca,
        insecure: l.insecure,
        sni: l.sni.as_deref(),
        cert: l.cert.as_deref(),
        key: l.key.as_deref(),
        no_resume: l.no_tls_resume,
    };
    let (server, root) = if l.tls {
        let names = ["127.0.0.1".to_string(), "localhost".to_string()];
        let (server, made) = super::tls::self_signed_server(&names)?;
        (Some(server), made.chain.last().cloned())
    } else {
        (None, None)
    };
    let wss = l.tls || plan.targets.iter().any(|t| t.tls.is_some());
    plan.tls = super::tls::client(&flags, wss, root.as_ref())?;
    if plan.tls.as_ref().is_some_and(|t| t.insecure) && !plan.quiet {
        eprintln!("wsherd: --insecure: the servers' certificates are not verified");
    }
    Ok(server)
}

/// Connections, duration and load curves, from -c, -d, --stages, --ramp, --warmup.
struct Load {
    connections: u64,
    duration: Duration,
    conn_profile: Option<Profile>,
    rate_profile: Option<Profile>,
    warmup: Duration,
}

/// Connections, duration and load curves from the shape. The checks run in
/// this order: the stages, the run's length, its connections, the ramp, then
/// the warm-up.
fn load_from(sh: &RunShape) -> Result<Load> {
    let stages = stages_from(sh)?;
    let duration = duration_from(sh, stages.as_ref())?;
    let connections = connections_from(sh, stages.as_ref())?;
    let (conn_profile, rate_profile) = curves_from(sh, stages.as_ref(), duration, connections)?;
    let warmup = warmup_from(sh.warmup, duration)?;
    Ok(Load {
        connections,
        duration,
        conn_profile,
        rate_profile,
        warmup,
    })
}

/// `--stages` as parsed: the stages and what their targets count.
struct Staged {
    stages: Vec<Stage>,
    /// Every target is written as a rate (1000/s): the stages set an open
    /// loop's messages per second. Otherwise they set active connections.
    rates: bool,
}

/// Parses --stages (none when not given). Its targets are all rates or all
/// connections, and rate stages leave no room for --rate or --rate-per-conn.
fn stages_from(sh: &RunShape) -> Result<Option<Staged>> {
    let Some(text) = &sh.stages else {
        return Ok(None);
    };
    let open_flags = sh.rate.is_some() || sh.rate_per_conn.is_some();
    let st = parse_stages(text).map_err(|e| Error::usage(format!("--stages: {e}")))?;
    // Targets written as rates (1000/s) stage an open loop's messages per
    // second; plain numbers stage active connections.
    let rates: Vec<bool> = text.split(',').map(|p| p.trim().ends_with("/s")).collect();
    let all_rates = rates.iter().all(|r| *r);
    if !all_rates && rates.iter().any(|r| *r) {
        return Err(Error::usage(
            "--stages: write every target as a rate (1000/s) or none: rates stage an open loop, plain numbers stage connections",
        ));
    }
    if open_flags && all_rates {
        return Err(Error::usage(
            "rate stages (TARGET/s) set the open loop's rate over time: leave out --rate and --rate-per-conn",
        ));
    }
    Ok(Some(Staged {
        stages: st,
        rates: all_rates,
    }))
}

/// The run's length: the stages added up, or -d (10 s when neither is given).
/// Never both, and never zero.
fn duration_from(sh: &RunShape, stages: Option<&Staged>) -> Result<Duration> {
    if stages.is_some() && sh.duration.is_some() {
        return Err(Error::usage(
            "-d and --stages both set the length of the run; the stages add up to it, so leave out -d",
        ));
    }
    let duration = match stages {
        Some(s) => s.stages.iter().map(|s| s.duration).sum(),
        None => sh.duration.unwrap_or(Duration::from_secs(10)),
    };
    if duration.is_zero() {
        return Err(Error::usage("-d must be longer than zero (try -d 10s)"));
    }
    Ok(duration)
}

/// The run's connections: -c (50 when not given), or with connection stages
/// their peak, which -c may raise but not lower. At least one.
fn connections_from(sh: &RunShape, stages: Option<&Staged>) -> Result<u64> {
    let conn_stages = stages.filter(|s| !s.rates);
    let connections = match conn_stages {
        Some(s) => {
            let peak = s.stages.iter().map(|s| s.target).fold(0.0, f64::max).ceil() as u64;
            match sh.connections {
                Some(c) if c < peak => {
                    return Err(Error::usage(format!(
                        "-c {c} is below the stages' peak of {peak} connections; leave -c out or raise it"
                    )))
                }
                Some(c) => c,
                None => peak,
            }
        }
        None => sh.connections.unwrap_or(50),
    };
    if connections == 0 {
        return Err(Error::usage(if conn_stages.is_some() {
            "--stages never asks for a connection: give at least one stage a target above 0"
        } else {
            "-c 0: a run needs at least one connection (try -c 100)"
        }));
    }
    Ok(connections)
}

/// A run's load curves over time: active connections, then an open loop's
/// messages per second (either or both may be flat, i.e. `None`).
type Curves = (Option<Profile>, Option<Profile>);

/// The load curves: the stages' (of rates or of connections), else a --ramp's,
/// else none.
fn curves_from(
    sh: &RunShape,
    stages: Option<&Staged>,
    duration: Duration,
    connections: u64,
) -> Result<Curves> {
    match (stages, sh.ramp) {
        (Some(s), _) if s.rates => Ok((None, Some(Profile::new(0.0, &s.stages)))),
        (Some(s), _) => Ok((Some(Profile::new(0.0, &s.stages)), None)),
        (None, Some(ramp)) => ramp_curves(sh, ramp, duration, connections),
        (None, None) => Ok((None, None)),
    }
}

/// --ramp: from zero up to the full rate (with --rate or --rate-per-conn) or
/// else to every connection, then held there for the rest of the run.
fn ramp_curves(
    sh: &RunShape,
    ramp: Duration,
    duration: Duration,
    connections: u64,
) -> Result<Curves> {
    if ramp.is_zero() || ramp >= duration {
        return Err(Error::usage(format!(
            "--ramp {} must be longer than zero and shorter than -d {}",
            humantime::format_duration(ramp),
            humantime::format_duration(duration)
        )));
    }
    let hold = duration - ramp;
    let full = match (sh.rate, sh.rate_per_conn) {
        (Some(r), _) => Some(r),
        (_, Some(r)) => Some(r * connections as f64),
        _ => None,
    };
    Ok(match full {
        Some(rate) => (None, Some(ramp_then_hold(ramp, hold, rate))),
        None => (Some(ramp_then_hold(ramp, hold, connections as f64)), None),
    })
}

/// From zero to `target` over `ramp`, then `target` for `hold`.
fn ramp_then_hold(ramp: Duration, hold: Duration, target: f64) -> Profile {
    Profile::new(
        0.0,
        &[
            Stage {
                duration: ramp,
                target,
            },
            Stage {
                duration: hold,
                target,
            },
        ],
    )
}

/// --warmup (none when not given) rounded up to whole seconds, and shorter
/// than the run.
fn warmup_from(warmup: Option<Duration>, duration: Duration) -> Result<Duration> {
    let Some(w) = warmup else {
        return Ok(Duration::ZERO);
    };
    // Whole seconds: the shards hand over their statistics once a second.
    let secs = w.as_secs() + u64::from(w.subsec_nanos() > 0);
    let w = Duration::from_secs(secs);
    if w >= duration {
        return Err(Error::usage(format!(
            "--warmup {} leaves nothing to measure in a {} run",
            humantime::format_duration(w),
            humantime::format_duration(duration)
        )));
    }
    Ok(w)
}

/// Parses `--agent I/N`, or `--agent job/N`: I is then one more than the
/// environment's `JOB_COMPLETION_INDEX` (0-based, set in each pod of a
/// Kubernetes Indexed Job), so one pod template serves every agent.
pub fn parse_agent(s: &str) -> Result<(u64, u64)> {
    parse_agent_with(s, std::env::var("JOB_COMPLETION_INDEX").ok().as_deref())
}

fn parse_agent_with(s: &str, job_index: Option<&str>) -> Result<(u64, u64)> {
    let bad = || {
        Error::usage(format!(
            "--agent '{s}': expected I/N with 1 <= I <= N, e.g. --agent 2/4 \
             (or job/N in a Kubernetes Indexed Job)"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let i = if i.trim() == "job" {
        let index = job_index.ok_or_else(|| {
            Error::usage(format!(
                "--agent '{s}': JOB_COMPLETION_INDEX is not set (a Kubernetes Indexed \
                 Job sets it in each pod); elsewhere give the index, e.g. --agent 1/{}",
                n.trim()
            ))
        })?;
        let k: u64 = index.trim().parse().map_err(|_| {
            Error::usage(format!(
                "--agent '{s}': JOB_COMPLETION_INDEX is '{index}', not a number"
            ))
        })?;
        k.saturating_add(1).to_string()
    } else {
        i.to_string()
    };
    let (i, n): (u64, u64) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if i == 0 || n == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Most messages per second per connection in an open loop (a 1 µs period).
/// Most messages per second one connection is scheduled to send.
pub const MAX_RATE_PER_CONN: f64 = 1e6;

/// Turns workload, pacing and payload flags into one `Workload`. The checks run
/// in this order: the open-loop rate and its in-flight cap, the flags that
/// belong to one workload kind, then the kind's own.
fn workload_from(l: &LoadArgs, sh: &RunShape, payload: &PayloadSpec) -> Result<Workload> {
    let per_conn = per_conn_rate(sh)?;
    if let Some(r) = per_conn {
        check_open_loop(l, r)?;
    }
    check_kind_flags(l, sh)?;
    match sh.workload {
        WorkloadKind::Echo => echo_workload(l, per_conn),
        WorkloadKind::Broadcast => broadcast_workload(l, sh),
        WorkloadKind::Churn | WorkloadKind::Chat => session_workload(l, sh, per_conn),
        WorkloadKind::Ping => ping_workload(l, payload, per_conn),
        WorkloadKind::Idle => idle_workload(l, per_conn, "idle"),
        WorkloadKind::Push => idle_workload(l, per_conn, "push"),
        WorkloadKind::Conversation => {
            if l.heartbeat.is_some() {
                return Err(Error::usage(
                    "--heartbeat is for idle and push; a conversation's heartbeat is an every step",
                ));
            }
            idle_workload(l, per_conn, "conversation")
        }
    }
}

/// `--workload push`: which fields of a pushed message to read (`--seq`,
/// `--sent-at` and its unit). The subscribe message is parsed with the
/// per-connection values (`handshake::per_connection`). None for other workloads.
fn push_from(l: &LoadArgs, kind: WorkloadKind) -> Result<Option<Push>> {
    if kind != WorkloadKind::Push {
        return Ok(None);
    }
    let pointer = |flag: &str, text: &str| {
        Pointer::parse(text).map_err(|e| Error::usage(format!("{flag}: {e}")))
    };
    let seq = l
        .seq_field
        .as_deref()
        .map(|t| pointer("--seq", t))
        .transpose()?;
    let sent_at = match (l.sent_at.as_deref(), l.sent_at_unit) {
        (None, Some(_)) => {
            return Err(Error::usage(
                "--sent-at-unit says the unit of --sent-at: give --sent-at POINTER too",
            ))
        }
        (None, None) => None,
        (Some(text), unit) => {
            let ptr = pointer("--sent-at", text)?;
            let name = text.rsplit('/').next().unwrap_or(text);
            let unit = match unit {
                Some(u) => u.into(),
                None => TimeUnit::from_field_name(name).ok_or_else(|| {
                    Error::usage(format!(
                        "--sent-at {text}: say the unit of the time it carries with --sent-at-unit s, ms, us or ns \
                         (the field's name does not end in one, as sent_us or sentMs do)"
                    ))
                })?,
            };
            Some((ptr, unit))
        }
    };
    Ok(Some(Push {
        subscribe: None,
        seq,
        sent_at,
    }))
}

/// Each connection's messages per second in an open loop: --rate spread over
/// the run's connections, or --rate-per-conn; none for a closed loop. A rate
/// given must be positive.
fn per_conn_rate(sh: &RunShape) -> Result<Option<f64>> {
    match (sh.rate, sh.rate_per_conn) {
        (Some(r), _) if r <= 0.0 => Err(Error::usage(
            "--rate 0: an open-loop run needs a positive rate (e.g. --rate 20k)",
        )),
        (_, Some(r)) if r <= 0.0 => Err(Error::usage(
            "--rate-per-conn 0: an open-loop run needs a positive rate (e.g. --rate-per-conn 2)",
        )),
        (Some(r), _) => Ok(Some(r / sh.connections.unwrap_or(1).max(1) as f64)),
        (_, Some(r)) => Ok(Some(r)),
        _ => Ok(None),
    }
}

/// An open loop of `per_conn` messages per second per connection: no more than
/// wsherd schedules, and --inflight (if given) a cap it can keep.
fn check_open_loop(l: &LoadArgs, per_conn: f64) -> Result<()> {
    if per_conn > MAX_RATE_PER_CONN {
        return Err(Error::usage(format!(
            "{per_conn:.0} messages/s per connection is more than wsherd schedules ({MAX_RATE_PER_CONN:.0}); use more connections"
        )));
    }
    if l.inflight == Some(0) || l.inflight.unwrap_or(1) > MAX_INFLIGHT {
        return Err(Error::usage(format!(
            "--inflight {} is out of range: an open loop caps unanswered messages per connection at 1 to {MAX_INFLIGHT} (leave it out for no cap)",
            l.inflight.unwrap_or(0)
        )));
    }
    Ok(())
}

/// Flags that belong to one kind of workload are not given with another:
/// --publishers (broadcast), --messages, --session-rate and --think (sessions),
/// --heartbeat (idle).
fn check_kind_flags(l: &LoadArgs, sh: &RunShape) -> Result<()> {
    let kind = sh.workload;
    if sh.publishers.is_some() && kind != WorkloadKind::Broadcast {
        return Err(Error::usage("--publishers is for --workload broadcast"));
    }
    let sessions = matches!(kind, WorkloadKind::Churn | WorkloadKind::Chat);
    if !sessions && (l.messages.is_some() || sh.session_rate.is_some() || l.think.is_some()) {
        return Err(Error::usage(
            "--messages, --session-rate and --think are for session workloads (--workload churn or chat)",
        ));
    }
    if l.heartbeat.is_some() && !matches!(kind, WorkloadKind::Idle | WorkloadKind::Push) {
        return Err(Error::usage(
            "--heartbeat is for --workload idle or push (other workloads send their own messages)",
        ));
    }
    let push_flags = l.subscribe.is_some()
        || l.seq_field.is_some()
        || l.sent_at.is_some()
        || l.sent_at_unit.is_some();
    let steps_flags = l.steps.is_some()
        || l.steps_toml.is_some()
        || l.steps_mode.is_some()
        || l.unmatched.is_some();
    if steps_flags && kind != WorkloadKind::Conversation {
        return Err(Error::usage(format!(
            "--steps, --steps-mode and --unmatched are for --workload conversation, not {}",
            kind.name()
        )));
    }
    if kind == WorkloadKind::Conversation && l.steps.is_none() && l.steps_toml.is_none() {
        return Err(Error::usage(
            "--workload conversation follows steps: give --steps FILE (a TOML file of [[step]] tables), \
             or [[scenario.step]] tables in a scenario",
        ));
    }
    if push_flags && kind != WorkloadKind::Push {
        return Err(Error::usage(
            "--subscribe, --seq, --sent-at and --sent-at-unit are for --workload push",
        ));
    }
    Ok(())
}

/// An open loop at `per_conn` messages per second, or else a closed loop.
fn pacing_from(l: &LoadArgs, per_conn: Option<f64>) -> Result<Pacing> {
    match per_conn {
        Some(r) => Ok(Pacing::Open {
            period: Duration::from_secs_f64(1.0 / r),
            max_inflight: l.inflight.map(|k| k as u32),
        }),
        None => closed_pacing(l),
    }
}

/// A closed loop keeping --inflight messages in flight (1 when not given).
fn closed_pacing(l: &LoadArgs) -> Result<Pacing> {
    let inflight = l.inflight.unwrap_or(1);
    if inflight == 0 || inflight > MAX_INFLIGHT {
        return Err(Error::usage(format!(
            "--inflight {inflight} is out of range: each connection keeps 1 to {MAX_INFLIGHT} messages in flight"
        )));
    }
    Ok(Pacing::Closed {
        inflight: inflight as u32,
    })
}

/// `--workload echo`: data frames timed by their echo, in a closed or an open loop.
fn echo_workload(l: &LoadArgs, per_conn: Option<f64>) -> Result<Workload> {
    Ok(Workload {
        name: "echo",
        message: Message::Data,
        pacing: pacing_from(l, per_conn)?,
        session: None,
        broadcast: None,
    })
}

/// `--workload broadcast`: 1 to all of the connections publish on a schedule
/// (--rate across all of them, or --rate-per-conn each); there is no
/// --inflight.
fn broadcast_workload(l: &LoadArgs, sh: &RunShape) -> Result<Workload> {
    let c = sh.connections.unwrap_or(1).max(1);
    let publishers = sh.publishers.unwrap_or(1);
    if publishers == 0 || publishers > c {
        return Err(Error::usage(format!(
            "--publishers {publishers}: between 1 and the {c} connections"
        )));
    }
    // Publishers publish on a schedule: --rate across all of them, or
    // --rate-per-conn each.
    let per_pub = match (sh.rate, sh.rate_per_conn) {
        (Some(r), _) => r / publishers as f64,
        (_, Some(r)) => r,
        _ => {
            return Err(Error::usage(
                "broadcast needs a publish rate: --rate N (messages/s across the publishers) or --rate-per-conn R (each)",
            ))
        }
    };
    if l.inflight.is_some() {
        return Err(Error::usage("--inflight does not apply to broadcast"));
    }
    Ok(Workload {
        name: "broadcast",
        message: Message::Data,
        pacing: Pacing::Open {
            period: Duration::from_secs_f64(1.0 / per_pub),
            max_inflight: None,
        },
        session: None,
        broadcast: Some(crate::workload::Broadcast {
            publishers,
            stride: c / publishers,
        }),
    })
}

/// `--workload churn` or `chat`: sessions of --messages messages, one at a
/// time, paced by --session-rate (chat also by --think), never by --rate or
/// --inflight.
fn session_workload(l: &LoadArgs, sh: &RunShape, per_conn: Option<f64>) -> Result<Workload> {
    if per_conn.is_some() || l.inflight.is_some() {
        return Err(Error::usage(
            "sessions send one message at a time; pace them with --session-rate, not --rate or --inflight",
        ));
    }
    let chat = sh.workload == WorkloadKind::Chat;
    if l.think.is_some() && !chat {
        return Err(Error::usage("--think is for --workload chat"));
    }
    let messages = l.messages.unwrap_or(if chat { 3 } else { 1 });
    if sh.session_rate == Some(0.0) {
        return Err(Error::usage(
            "--session-rate 0: give a positive rate (e.g. --session-rate 200), or leave it out",
        ));
    }
    Ok(Workload {
        name: if chat { "chat" } else { "churn" },
        message: Message::Data,
        pacing: if messages == 0 {
            Pacing::Hold
        } else {
            Pacing::Closed { inflight: 1 }
        },
        session: Some(crate::workload::Session {
            messages,
            think: l.think.filter(|t| !t.is_zero()),
            rate: sh.session_rate,
        }),
        broadcast: None,
    })
}

/// `--workload ping`: PING frames timed by their PONG, binary and at most 125
/// bytes, with no template or payload file.
fn ping_workload(l: &LoadArgs, payload: &PayloadSpec, per_conn: Option<f64>) -> Result<Workload> {
    if l.template.is_some() || l.payload_file.is_some() {
        return Err(Error::usage(
            "--template and --payload-file do not apply to pings: a PING carries only the timing header and filler",
        ));
    }
    if payload.kind == PayloadKind::Text {
        return Err(Error::usage(
            "--text does not apply to pings: PING payloads are binary",
        ));
    }
    if l.size > 125 {
        return Err(Error::usage(format!(
            "--size {}: a PING carries at most 125 bytes (RFC 6455); use --size 125 or less",
            l.size
        )));
    }
    Ok(Workload {
        name: "ping",
        message: Message::Ping,
        pacing: pacing_from(l, per_conn)?,
        session: None,
        broadcast: None,
    })
}

/// `--workload idle`: connections held open, sending nothing or, with
/// --heartbeat, a PING of at most 125 bytes every heartbeat.
fn idle_workload(l: &LoadArgs, per_conn: Option<f64>, name: &'static str) -> Result<Workload> {
    if per_conn.is_some() || l.inflight.is_some() {
        return Err(Error::usage(format!(
            "--workload {name} sends nothing; for timed keep-alives use --heartbeat 30s"
        )));
    }
    let (message, pacing) = match l.heartbeat {
        Some(h) if h.is_zero() => return Err(Error::usage("--heartbeat must be longer than zero")),
        Some(h) => {
            if l.size > 125 {
                return Err(Error::usage(format!(
                    "--size {}: heartbeats are PINGs of at most 125 bytes; use --size 125 or less",
                    l.size
                )));
            }
            (
                Message::Ping,
                Pacing::Open {
                    period: h,
                    max_inflight: None,
                },
            )
        }
        None => (Message::Data, Pacing::Hold),
    };
    Ok(Workload {
        name,
        message,
        pacing,
        session: None,
        broadcast: None,
    })
}

/// What `wsherd doctor`'s planned run asks of the host (its agent's share of
/// the connections and of the source addresses), and those addresses.
pub fn doctor_demand(a: &crate::cli::DoctorArgs) -> Result<(crate::host::Demand, Vec<IpAddr>)> {
    let mut addrs = std::collections::HashSet::new();
    for u in &a.urls {
        for t in Target::parse_many(u)? {
            addrs.insert(t.addr);
        }
    }
    let all = match &a.source_ip {
        Some(spec) => crate::source::parse(spec).map_err(Error::usage)?,
        None => Vec::new(),
    };
    let agent = a.agent.as_deref().map(parse_agent).transpose()?;
    let sources = crate::source::slice(&all, agent);
    let mine = match agent {
        Some((i, n)) => even_share(a.connections, n, i - 1),
        None => a.connections,
    };
    let demand = crate::host::Demand {
        connections: mine,
        targets: addrs.len().max(1) as u64,
        embedded: a.urls.is_empty(),
        sources: sources.len() as u64,
        whole: a.connections,
        all_sources: all.len() as u64,
        // Doctor's flags name no workload: a plain connection that sends.
        conn_bytes: crate::host::SENDING_BYTES,
    };
    Ok((demand, sources))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_index_comes_from_a_kubernetes_indexed_job() {
        assert_eq!(parse_agent_with("2/4", None).unwrap(), (2, 4));
        // JOB_COMPLETION_INDEX counts from 0, agents from 1.
        assert_eq!(parse_agent_with("job/4", Some("0")).unwrap(), (1, 4));
        assert_eq!(parse_agent_with("job/4", Some("3")).unwrap(), (4, 4));
        let e = parse_agent_with("job/4", Some("4")).unwrap_err();
        assert!(e.to_string().contains("1 <= I <= N"), "{e}");
        let e = parse_agent_with("job/4", None).unwrap_err();
        assert!(
            e.to_string().contains("JOB_COMPLETION_INDEX is not set"),
            "{e}"
        );
        assert!(e.to_string().contains("--agent 1/4"), "{e}");
        let e = parse_agent_with("job/4", Some("x")).unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        assert!(parse_agent_with("0/4", None).is_err());
    }

    #[test]
    fn cross_flag_checks() {
        let e = Run::from_args(["ws://127.0.0.1:1/", "-c", "0"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("-c 0"));
        let e = Run::from_args(["ws://127.0.0.1:1/", "--size", "3"]).unwrap_err();
        assert!(e.to_string().contains("timing header"), "{e}");
        let e = Run::from_args(["ws://127.0.0.1:1/", "--server-shards", "1"]).unwrap_err();
        assert!(e.to_string().contains("embedded"));
        let e = Run::from_args(["ws://127.0.0.1:1/", "-d", "-5s"]).unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
    }

    #[test]
    fn embedded_server_gets_its_own_cores() {
        let c = Run::from_args(["-c", "10"]).unwrap();
        assert!(c.plan.embedded());
        assert!(!c.plan.server_cores.is_empty());
        if crate::sys::available_cores().len() >= 2 {
            for core in &c.plan.shard_cores {
                assert!(
                    !c.plan.server_cores.contains(core),
                    "load and server share a core"
                );
            }
        }
    }

    #[test]
    fn fewer_shards_than_connections() {
        let c = Run::from_args(["ws://127.0.0.1:1/", "-c", "1"]).unwrap();
        assert_eq!(c.plan.shard_cores.len(), 1);
    }
}
