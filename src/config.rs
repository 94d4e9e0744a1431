//! Stage two of configuration: validated, immutable configs every later stage reads.
//!
//! All cross-flag checks live here and nowhere else, so a run that starts is a run
//! that makes sense. Errors say what was wrong and which flag fixes it.

use crate::cli::{RunArgs, ServeArgs};
use crate::error::{Error, Result};
use crate::server::{ServeConfig, ServerFaults};
use crate::target::Target;
use crate::pacer::{parse_stages, Profile, Stage};
use crate::payload::{PayloadKind, PayloadSpec};
use crate::vocab::kinds::{IoDriver, WorkloadKind};
use crate::workload::{Message, Pacing, Workload};
use clap::Parser;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Largest message we agree to send (frames beyond this are a typo, not a test).
const MAX_MESSAGE_SIZE: u64 = 64 << 20;
/// Most messages in flight per connection.
const MAX_INFLIGHT: u64 = 65_536;

/// The cores a process may run on (its affinity mask), in order.
pub fn available_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if ids.is_empty() {
        ids.push(0);
    }
    ids
}

/// A validated `wsherd run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Targets; empty means: start the embedded server and load it.
    pub targets: Vec<Target>,
    /// This process's source addresses (its agent slice of `--source-ip`).
    pub sources: Vec<std::net::IpAddr>,
    /// Addresses `--source-ip` named for all agents together (0: none given).
    pub all_sources: u64,
    /// Connections of the whole run, every agent included.
    pub whole_connections: u64,
    /// Cores for the embedded server's shards (empty when targets are given).
    pub server_cores: Vec<usize>,
    pub connections: u64,
    pub duration: Duration,
    /// Staged or ramped active connections (closed-loop and holding workloads).
    pub conn_profile: Option<Profile>,
    /// Open loops: messages per second of the whole run over time.
    pub rate_profile: Option<Profile>,
    /// Leading part of the run measured apart (whole seconds).
    pub warmup: Duration,
    /// First connection id of this process (agents of one run use disjoint ids).
    pub conn_id_base: u64,
    /// (I, N) when this process is agent I of N.
    pub agent: Option<(u64, u64)>,
    /// Wall-clock start (Unix seconds), so agents begin together.
    pub start_at: Option<f64>,
    pub workload: Workload,
    pub payload: PayloadSpec,
    /// Connections per second across the run; 0 = unpaced.
    pub connect_rate: f64,
    pub connect_timeout: Duration,
    pub drain: Duration,
    /// The close window after the drain.
    pub close_timeout: Duration,
    /// One core per load shard.
    pub shard_cores: Vec<usize>,
    pub io_driver: IoDriver,
    pub json: Option<PathBuf>,
    /// HTML, CSV and .hgrm files rendered from the results.
    pub reports: crate::report::outputs::ReportFiles,
    /// HdrHistogram interval log of the round trip, one interval per second.
    pub hlog: Option<PathBuf>,
    pub quiet: bool,
    /// Where to serve Prometheus metrics during the run.
    pub metrics_addr: Option<SocketAddr>,
    /// Thresholds and assessment bands the results are judged by.
    pub judge: crate::thresholds::Judge,
}

impl RunConfig {
    /// Parses what follows `wsherd run` on a command line and validates it.
    pub fn from_args<I, S>(args: I) -> Result<RunConfig>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        #[derive(Parser)]
        #[command(name = "wsherd run")]
        struct Wrap {
            #[command(flatten)]
            args: RunArgs,
        }
        let argv =
            std::iter::once(OsString::from("wsherd run")).chain(args.into_iter().map(Into::into));
        let w = Wrap::try_parse_from(argv).map_err(|e| Error::usage(first_line(&e.to_string())))?;
        RunConfig::from_cli(w.args)
    }

    /// Validates parsed arguments.
    pub fn from_cli(a: RunArgs) -> Result<RunConfig> {
        let mut load = load_from(&a)?;
        let agent = a.agent.as_deref().map(parse_agent).transpose()?;
        // Agent I of N takes the I-th share of the connections (ids included) and
        // the same share of every rate, so the agents together make the whole run.
        let total = load.connections;
        let (conn_id_base, share) = match agent {
            None => (0, 1.0),
            Some((i, n)) => {
                let base = total / n;
                let extra = total % n;
                let slice = |k: u64| base + u64::from(k < extra);
                let mine = slice(i - 1);
                if mine == 0 {
                    return Err(Error::usage(format!(
                        "--agent {i}/{n}: -c {total} leaves this agent no connection; use at least -c {n}"
                    )));
                }
                let first: u64 = (0..i - 1).map(slice).sum();
                load.connections = mine;
                (first, mine as f64 / total as f64)
            }
        };
        if share < 1.0 {
            load.conn_profile = load.conn_profile.map(|p| p.scaled(share));
            load.rate_profile = load.rate_profile.map(|p| p.scaled(share));
        }
        if let Some(t) = a.start_at {
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
        let a = RunArgs {
            // Per-connection rates divide by the whole run's connections.
            connections: Some(total),
            duration: Some(load.duration),
            ..a
        };
        if a.conn.connect_timeout.is_zero() {
            return Err(Error::usage("--connect-timeout must be longer than zero"));
        }
        let kind = if a.text {
            PayloadKind::Text
        } else {
            PayloadKind::Binary
        };
        if a.size > MAX_MESSAGE_SIZE {
            return Err(Error::usage(format!(
                "--size {} is larger than the {} MiB wsherd sends",
                a.size,
                MAX_MESSAGE_SIZE >> 20
            )));
        }
        let payload = PayloadSpec::from_flags(
            a.size as usize,
            kind,
            a.payload_file.as_deref(),
            a.template.as_deref(),
        )?;
        let mut workload = workload_from(&a, &payload)?;
        if let Some(profile) = &load.rate_profile {
            // Rate stages make an open loop of echo or ping.
            if !matches!(
                WorkloadKind::from(a.workload),
                WorkloadKind::Echo | WorkloadKind::Ping
            ) {
                return Err(Error::usage(format!(
                    "rate stages (TARGET/s) are for --workload echo or ping, not {}",
                    workload.name
                )));
            }
            if !workload.open_loop() {
                let peak = profile.peak().max(1e-9);
                workload.pacing = Pacing::Open {
                    period: Duration::from_secs_f64(load.connections as f64 / peak),
                    max_inflight: a.inflight.map(|k| k as u32),
                };
            }
        }

        if workload.open_loop() && workload.message == Message::Data && !payload.carries_intended()
        {
            return Err(Error::usage(
                "an open loop times messages from their intended send: add {intended} to the --template (e.g. \"intended\":{intended})",
            ));
        }

        let targets: Vec<Target> = a
            .urls
            .iter()
            .map(|u| Target::parse_many(u))
            .collect::<Result<Vec<_>>>()?
            .concat();
        let (sources, all_sources) = match &a.conn.source_ip {
            None => (Vec::new(), 0),
            Some(spec) => {
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
                (mine, all.len() as u64)
            }
        };

        let cores = available_cores();
        let (server_cores, load_cores) = if targets.is_empty() {
            let n_server = match a.conn.server_shards {
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
            if a.conn.server_shards.is_some() {
                return Err(Error::usage(
                    "--server-shards only applies when no URL is given (the embedded server)",
                ));
            }
            (Vec::new(), cores.clone())
        };
        let n_shards = match a.conn.shards {
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
        let n_shards = n_shards.min(load.connections as usize).max(1);
        let shard_cores = if n_shards <= load_cores.len() {
            load_cores[..n_shards].to_vec()
        } else {
            cores[..n_shards].to_vec()
        };

        Ok(RunConfig {
            targets,
            sources,
            all_sources,
            whole_connections: total,
            server_cores,
            connections: load.connections,
            duration: load.duration,
            conn_profile: load.conn_profile,
            rate_profile: load.rate_profile.or_else(|| {
                // Everyone sends at the period, or only the broadcast publishers.
                let senders = workload
                    .broadcast
                    .map_or(load.connections, |b| b.publishers);
                // The rate as requested (a period rounded to ns would drift from it).
                let requested = match (a.rate, a.rate_per_conn) {
                    (Some(r), _) => Some(r * share),
                    (_, Some(r)) => Some(r * senders as f64),
                    _ => workload.period().map(|p| senders as f64 / p.as_secs_f64()),
                };
                workload
                    .period()
                    .and(requested)
                    .map(|rate| Profile::constant(rate, load.duration))
            }),
            warmup: load.warmup,
            conn_id_base,
            agent,
            start_at: a.start_at,
            workload,
            payload,
            connect_rate: a.conn.connect_rate * share,
            connect_timeout: a.conn.connect_timeout,
            drain: a.drain,
            close_timeout: a.close_timeout.unwrap_or_else(|| {
                let per_shard = load.connections.div_ceil(shard_cores.len().max(1) as u64);
                Duration::from_secs(1) + Duration::from_micros(100) * per_shard.min(1 << 30) as u32
            }),
            shard_cores,
            io_driver: a.conn.io_driver.into(),
            json: a.json,
            reports: a.reports.into(),
            hlog: a.hlog,
            quiet: a.quiet,
            metrics_addr: a
                .metrics_addr
                .as_deref()
                .map(crate::export::parse_addr)
                .transpose()?,
            judge: crate::thresholds::Judge::parse(&a.judge.thresholds, &a.judge.bands)?,
        })
    }

    /// True when the run starts its own server.
    pub fn embedded(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Connections, duration and load curves, from -c, -d, --stages, --ramp, --warmup.
struct Load {
    connections: u64,
    duration: Duration,
    conn_profile: Option<Profile>,
    rate_profile: Option<Profile>,
    warmup: Duration,
}

fn load_from(a: &RunArgs) -> Result<Load> {
    let open_flags = a.rate.is_some() || a.rate_per_conn.is_some();
    let stages = match &a.stages {
        Some(text) => {
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
            Some((st, all_rates))
        }
        None => None,
    };
    if stages.is_some() && a.duration.is_some() {
        return Err(Error::usage(
            "-d and --stages both set the length of the run; the stages add up to it, so leave out -d",
        ));
    }
    let duration = match &stages {
        Some((st, _)) => st.iter().map(|s| s.duration).sum(),
        None => a.duration.unwrap_or(Duration::from_secs(10)),
    };
    if duration.is_zero() {
        return Err(Error::usage("-d must be longer than zero (try -d 10s)"));
    }
    let staged_conns = matches!(stages, Some((_, false)));
    let connections = match (&stages, a.connections) {
        (Some((st, false)), c) => {
            let peak = st.iter().map(|s| s.target).fold(0.0, f64::max).ceil() as u64;
            match c {
                Some(c) if c < peak => {
                    return Err(Error::usage(format!(
                        "-c {c} is below the stages' peak of {peak} connections; leave -c out or raise it"
                    )))
                }
                Some(c) => c,
                None => peak,
            }
        }
        (_, c) => c.unwrap_or(50),
    };
    if connections == 0 {
        return Err(Error::usage(if staged_conns {
            "--stages never asks for a connection: give at least one stage a target above 0"
        } else {
            "-c 0: a run needs at least one connection (try -c 100)"
        }));
    }
    let mut conn_profile = None;
    let mut rate_profile = None;
    match (&stages, a.ramp) {
        (Some((st, true)), _) => rate_profile = Some(Profile::new(0.0, st)),
        (Some((st, false)), _) => conn_profile = Some(Profile::new(0.0, st)),
        (None, Some(ramp)) => {
            if ramp.is_zero() || ramp >= duration {
                return Err(Error::usage(format!(
                    "--ramp {} must be longer than zero and shorter than -d {}",
                    humantime::format_duration(ramp),
                    humantime::format_duration(duration)
                )));
            }
            let hold = duration - ramp;
            let full = match (a.rate, a.rate_per_conn) {
                (Some(r), _) => Some(r),
                (_, Some(r)) => Some(r * connections as f64),
                _ => None,
            };
            match full {
                Some(rate) => {
                    rate_profile = Some(Profile::new(
                        0.0,
                        &[
                            Stage {
                                duration: ramp,
                                target: rate,
                            },
                            Stage {
                                duration: hold,
                                target: rate,
                            },
                        ],
                    ))
                }
                None => {
                    let c = connections as f64;
                    conn_profile = Some(Profile::new(
                        0.0,
                        &[
                            Stage {
                                duration: ramp,
                                target: c,
                            },
                            Stage {
                                duration: hold,
                                target: c,
                            },
                        ],
                    ))
                }
            }
        }
        (None, None) => {}
    }
    let warmup = match a.warmup {
        None => Duration::ZERO,
        Some(w) => {
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
            w
        }
    };
    Ok(Load {
        connections,
        duration,
        conn_profile,
        rate_profile,
        warmup,
    })
}

/// Parses `--agent I/N`.
pub fn parse_agent(s: &str) -> Result<(u64, u64)> {
    let bad = || {
        Error::usage(format!(
            "--agent '{s}': expected I/N with 1 <= I <= N, e.g. --agent 2/4"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
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

/// Turns workload, pacing and payload flags into one `Workload`.
fn workload_from(a: &RunArgs, payload: &PayloadSpec) -> Result<Workload> {
    let kind = WorkloadKind::from(a.workload);
    let per_conn = match (a.rate, a.rate_per_conn) {
        (Some(r), _) if r <= 0.0 => {
            return Err(Error::usage(
                "--rate 0: an open-loop run needs a positive rate (e.g. --rate 20k)",
            ))
        }
        (_, Some(r)) if r <= 0.0 => return Err(Error::usage(
            "--rate-per-conn 0: an open-loop run needs a positive rate (e.g. --rate-per-conn 2)",
        )),
        (Some(r), _) => Some(r / a.connections.unwrap_or(1).max(1) as f64),
        (_, Some(r)) => Some(r),
        _ => None,
    };
    if let Some(r) = per_conn {
        if r > MAX_RATE_PER_CONN {
            return Err(Error::usage(format!(
                "{r:.0} messages/s per connection is more than wsherd schedules ({MAX_RATE_PER_CONN:.0}); use more connections"
            )));
        }
        if a.inflight == Some(0) || a.inflight.unwrap_or(1) > MAX_INFLIGHT {
            return Err(Error::usage(format!(
                "--inflight {} is out of range: an open loop caps unanswered messages per connection at 1 to {MAX_INFLIGHT} (leave it out for no cap)",
                a.inflight.unwrap_or(0)
            )));
        }
    }
    let closed = || -> Result<Pacing> {
        let inflight = a.inflight.unwrap_or(1);
        if inflight == 0 || inflight > MAX_INFLIGHT {
            return Err(Error::usage(format!(
                "--inflight {inflight} is out of range: each connection keeps 1 to {MAX_INFLIGHT} messages in flight"
            )));
        }
        Ok(Pacing::Closed {
            inflight: inflight as u32,
        })
    };
    let pacing = |r: Option<f64>| -> Result<Pacing> {
        match r {
            Some(r) => Ok(Pacing::Open {
                period: Duration::from_secs_f64(1.0 / r),
                max_inflight: a.inflight.map(|k| k as u32),
            }),
            None => closed(),
        }
    };
    if a.publishers.is_some() && kind != WorkloadKind::Broadcast {
        return Err(Error::usage("--publishers is for --workload broadcast"));
    }
    let sessions = matches!(kind, WorkloadKind::Churn | WorkloadKind::Chat);
    if !sessions && (a.messages.is_some() || a.session_rate.is_some() || a.think.is_some()) {
        return Err(Error::usage(
            "--messages, --session-rate and --think are for session workloads (--workload churn or chat)",
        ));
    }
    if a.heartbeat.is_some() && kind != WorkloadKind::Idle {
        return Err(Error::usage(
            "--heartbeat is for --workload idle (other workloads send their own messages)",
        ));
    }
    Ok(match kind {
        WorkloadKind::Echo => Workload {
            name: "echo",
            message: Message::Data,
            pacing: pacing(per_conn)?,
            session: None,
            broadcast: None,
        },
        WorkloadKind::Broadcast => {
            let c = a.connections.unwrap_or(1).max(1);
            let publishers = a.publishers.unwrap_or(1);
            if publishers == 0 || publishers > c {
                return Err(Error::usage(format!(
                    "--publishers {publishers}: between 1 and the {c} connections"
                )));
            }
            // Publishers publish on a schedule: --rate across all of them, or
            // --rate-per-conn each.
            let per_pub = match (a.rate, a.rate_per_conn) {
                (Some(r), _) => r / publishers as f64,
                (_, Some(r)) => r,
                _ => {
                    return Err(Error::usage(
                        "broadcast needs a publish rate: --rate N (messages/s across the publishers) or --rate-per-conn R (each)",
                    ))
                }
            };
            if a.inflight.is_some() {
                return Err(Error::usage("--inflight does not apply to broadcast"));
            }
            Workload {
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
            }
        }
        WorkloadKind::Churn | WorkloadKind::Chat => {
            if per_conn.is_some() || a.inflight.is_some() {
                return Err(Error::usage(
                    "sessions send one message at a time; pace them with --session-rate, not --rate or --inflight",
                ));
            }
            let chat = kind == WorkloadKind::Chat;
            if a.think.is_some() && !chat {
                return Err(Error::usage("--think is for --workload chat"));
            }
            let messages = a.messages.unwrap_or(if chat { 3 } else { 1 });
            if a.session_rate == Some(0.0) {
                return Err(Error::usage(
                    "--session-rate 0: give a positive rate (e.g. --session-rate 200), or leave it out",
                ));
            }
            Workload {
                name: if chat { "chat" } else { "churn" },
                message: Message::Data,
                pacing: if messages == 0 {
                    Pacing::Hold
                } else {
                    Pacing::Closed { inflight: 1 }
                },
                session: Some(crate::workload::Session {
                    messages,
                    think: a.think.filter(|t| !t.is_zero()),
                    rate: a.session_rate,
                }),
                broadcast: None,
            }
        }
        WorkloadKind::Ping => {
            if a.template.is_some() || a.payload_file.is_some() {
                return Err(Error::usage(
                    "--template and --payload-file do not apply to pings: a PING carries only the timing header and filler",
                ));
            }
            if payload.kind == PayloadKind::Text {
                return Err(Error::usage(
                    "--text does not apply to pings: PING payloads are binary",
                ));
            }
            if a.size > 125 {
                return Err(Error::usage(format!(
                    "--size {}: a PING carries at most 125 bytes (RFC 6455); use --size 125 or less",
                    a.size
                )));
            }
            Workload {
                name: "ping",
                message: Message::Ping,
                pacing: pacing(per_conn)?,
                session: None,
                broadcast: None,
            }
        }
        WorkloadKind::Idle => {
            if per_conn.is_some() || a.inflight.is_some() {
                return Err(Error::usage(
                    "--workload idle sends nothing; for timed keep-alives use --heartbeat 30s",
                ));
            }
            match a.heartbeat {
                Some(h) if h.is_zero() => {
                    return Err(Error::usage("--heartbeat must be longer than zero"))
                }
                Some(h) => {
                    if a.size > 125 {
                        return Err(Error::usage(format!(
                            "--size {}: heartbeats are PINGs of at most 125 bytes; use --size 125 or less",
                            a.size
                        )));
                    }
                    Workload {
                        name: "idle",
                        message: Message::Ping,
                        pacing: Pacing::Open {
                            period: h,
                            max_inflight: None,
                        },
                        session: None,
                        broadcast: None,
                    }
                }
                None => Workload {
                    name: "idle",
                    message: Message::Data,
                    pacing: Pacing::Hold,
                    session: None,
                    broadcast: None,
                },
            }
        }
    })
}

impl ServeConfig {
    /// Parses what follows `wsherd serve` on a command line and validates it.
    pub fn from_args<I, S>(args: I) -> Result<ServeConfig>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        #[derive(Parser)]
        #[command(name = "wsherd serve")]
        struct Wrap {
            #[command(flatten)]
            args: ServeArgs,
        }
        let argv =
            std::iter::once(OsString::from("wsherd serve")).chain(args.into_iter().map(Into::into));
        let w = Wrap::try_parse_from(argv).map_err(|e| Error::usage(first_line(&e.to_string())))?;
        ServeConfig::from_cli(w.args)
    }

    pub fn from_cli(a: ServeArgs) -> Result<ServeConfig> {
        let addr: SocketAddr = a.addr.parse().map_err(|_| {
            Error::usage(format!(
                "--addr '{}' is not an IP:port address (example: 127.0.0.1:9000)",
                a.addr
            ))
        })?;
        let all = available_cores();
        let first = a.first_core as usize;
        let candidates: Vec<usize> = all.iter().copied().filter(|&c| c >= first).collect();
        if candidates.is_empty() {
            return Err(Error::usage(format!(
                "--first-core {first}: no core at or above it is available (cores: {all:?})"
            )));
        }
        let n = match a.shards {
            Some(0) => return Err(Error::usage("--shards must be at least 1")),
            Some(n) if n as usize > candidates.len() => {
                return Err(Error::usage(format!(
                    "--shards {n} is more than the {} cores available from core {first}",
                    candidates.len()
                )))
            }
            Some(n) => n as usize,
            None => candidates.len(),
        };
        let stall = match (a.stall, a.stall_every) {
            (Some(s), Some(e)) if s.is_zero() || e.is_zero() => {
                return Err(Error::usage(
                    "--stall and --stall-every must be longer than zero",
                ))
            }
            (Some(s), Some(e)) if s >= e => {
                return Err(Error::usage(format!(
                "--stall {} must be shorter than --stall-every {} (or the server never answers)",
                humantime::format_duration(s),
                humantime::format_duration(e)
            )))
            }
            (Some(s), Some(e)) => Some((s, e)),
            _ => None,
        };
        if a.queue == 0 {
            return Err(Error::usage("--queue must be at least 1 message"));
        }
        if a.max_connections == Some(0) {
            return Err(Error::usage(
                "--max-connections must be at least 1 (it caps the connections held at once)",
            ));
        }
        if a.service_time.is_some_and(|d| d.is_zero()) {
            return Err(Error::usage(
                "--service-time must be longer than zero (e.g. 200us); leave it out for no service time",
            ));
        }
        Ok(ServeConfig {
            addr,
            mode: a.mode.into(),
            queue: a.queue as usize,
            cores: candidates[..n].to_vec(),
            io_driver: a.io_driver.into(),
            quiet: a.quiet,
            faults: ServerFaults {
                delay: a.delay.filter(|d| !d.is_zero()),
                stall,
                max_connections: a.max_connections,
                service_time: a.service_time,
            },
            metrics_addr: a
                .metrics_addr
                .as_deref()
                .map(crate::export::parse_addr)
                .transpose()?,
        })
    }
}

/// The first line of a clap error, without its "error: " prefix.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_flag_checks() {
        let e = RunConfig::from_args(["ws://127.0.0.1:1/", "-c", "0"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("-c 0"));
        let e = RunConfig::from_args(["ws://127.0.0.1:1/", "--size", "3"]).unwrap_err();
        assert!(e.to_string().contains("timing header"), "{e}");
        let e = RunConfig::from_args(["ws://127.0.0.1:1/", "--server-shards", "1"]).unwrap_err();
        assert!(e.to_string().contains("embedded"));
        let e = RunConfig::from_args(["ws://127.0.0.1:1/", "-d", "-5s"]).unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
    }

    #[test]
    fn embedded_server_gets_its_own_cores() {
        let c = RunConfig::from_args(["-c", "10"]).unwrap();
        assert!(c.embedded());
        assert!(!c.server_cores.is_empty());
        if available_cores().len() >= 2 {
            for core in &c.shard_cores {
                assert!(
                    !c.server_cores.contains(core),
                    "load and server share a core"
                );
            }
        }
    }

    #[test]
    fn fewer_shards_than_connections() {
        let c = RunConfig::from_args(["ws://127.0.0.1:1/", "-c", "1"]).unwrap();
        assert_eq!(c.shard_cores.len(), 1);
    }
}
