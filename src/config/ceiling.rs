//! The configuration of a ceiling search: its own flags checked against each
//! other and against the host, and the run it drives, planned from the same load
//! flags as `run` (`LoadArgs`) with a `RunShape` its dimension sets.
//!
//! Never imports the command layer; builds `ceiling::Setup`, which the search
//! runs.

use super::run::{build, RunShape};
use crate::ceiling::Setup;
use crate::cli::{CeilingArgs, LoadArgs};
use crate::engine::Run;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::thresholds::{Judge, Threshold};
use crate::vocab::fmt::fmt_level;
use crate::vocab::kinds::{Dimension, WorkloadKind};
use std::time::Duration;

/// Default highest rates when --max is not given.
const MAX_RATE: f64 = 10e6;
const MAX_SESSIONS: f64 = 1e6;

impl Setup {
    /// Parses a command line (`wsherd ceiling ...` without the `wsherd ceiling`).
    pub fn from_args<I, S>(args: I) -> Result<Setup>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        setup_from(crate::cli::parse_ceiling_args(args)?)
    }
}

/// Checks `wsherd ceiling`'s flags against each other and the host.
pub fn setup_from(a: CeilingArgs) -> Result<Setup> {
    let dimension = Dimension::from(a.dimension);
    let slo = parse_slo(&a.slo)?;
    let precision = parse_precision(&a.precision)?;
    check_steps(&a)?;
    let workload = check_workload(&a, dimension, &slo)?;
    let start = check_start(&a, dimension)?;
    let shape = shape_for(&a.load, dimension, workload, a.max_time);
    let (run, max, max_reason) = match dimension {
        Dimension::Connections => connections_run(&a, shape, start)?,
        Dimension::Rate => rate_run(&a, shape, start)?,
        Dimension::Sessions => {
            let shape = RunShape {
                connections: Some(a.load.connections.unwrap_or(1000)),
                session_rate: Some(start),
                ..shape
            };
            (build(&a.load, shape)?, a.max.unwrap_or(MAX_SESSIONS), None)
        }
    };
    Ok(Setup {
        run,
        dimension,
        slo,
        start,
        max,
        max_reason,
        growth: a.growth,
        precision,
        step_secs: a.step_duration.as_secs_f64().ceil() as u64,
        settle_secs: a.settle.as_secs_f64().ceil() as u64,
        json: a.load.json,
        html: a.html,
        quiet: a.load.quiet,
    })
}

/// --growth, --step-duration, --settle and --max-time.
fn check_steps(a: &CeilingArgs) -> Result<()> {
    if !(a.growth > 1.0 && a.growth <= 100.0) {
        return Err(Error::usage(format!(
            "--growth {} must be above 1 and at most 100 (2 doubles the level each step)",
            a.growth
        )));
    }
    if a.step_duration < Duration::from_secs(1) {
        return Err(Error::usage(
            "--step-duration must be at least 1s (steps are measured in whole seconds)",
        ));
    }
    if a.settle < Duration::from_secs(1) {
        return Err(Error::usage(
            "--settle must be at least 1s: the second in which a level changes is never measured",
        ));
    }
    if a.step_duration + a.settle > a.max_time {
        return Err(Error::usage(format!(
            "--max-time {} leaves no room for one step of --settle {} and --step-duration {}",
            humantime::format_duration(a.max_time),
            humantime::format_duration(a.settle),
            humantime::format_duration(a.step_duration)
        )));
    }
    Ok(())
}

/// The first level: --start, or the dimension's default.
fn check_start(a: &CeilingArgs, dimension: Dimension) -> Result<f64> {
    let start = a.start.unwrap_or(match dimension {
        Dimension::Connections => 100.0,
        Dimension::Rate => 1000.0,
        Dimension::Sessions => 50.0,
    });
    if start <= 0.0 {
        return Err(Error::usage("--start must be above zero"));
    }
    if dimension == Dimension::Connections && start.fract() != 0.0 {
        return Err(Error::usage(format!(
            "--start {start}: connections are whole numbers"
        )));
    }
    if let Some(m) = a.max {
        if start > m {
            return Err(Error::usage(format!(
                "--start {} is above --max {}: the search climbs from --start to --max; lower --start or raise --max",
                fmt_level(start),
                fmt_level(m)
            )));
        }
    }
    Ok(start)
}

/// The run under a search: as long as --max-time, quiet (the search prints its
/// steps), without a run's own JSON or thresholds (the search judges steps).
fn shape_for(l: &LoadArgs, d: Dimension, workload: WorkloadKind, max_time: Duration) -> RunShape {
    // Connections each send a message a second unless told otherwise: a closed
    // loop's latency grows with every connection added (they share the same
    // throughput), which is a different ceiling.
    let one_a_second = d == Dimension::Connections
        && l.inflight.is_none()
        && l.rate_per_conn.is_none()
        && matches!(workload, WorkloadKind::Echo | WorkloadKind::Ping);
    RunShape {
        connections: None,
        workload,
        rate_per_conn: if one_a_second {
            Some(1.0)
        } else {
            l.rate_per_conn
        },
        json: None,
        quiet: true,
        duration: Some(max_time),
        stages: None,
        ramp: None,
        warmup: None,
        rate: None,
        publishers: None,
        session_rate: None,
        drain: Duration::from_secs(1),
        close_timeout: None,
        agent: None,
        start_at: None,
        reports: Default::default(),
        hlog: None,
        judge: Judge::default(),
    }
}

/// A connections search: first the largest plan this host fits, then the
/// search's own --max within it.
fn connections_run(
    a: &CeilingArgs,
    shape: RunShape,
    start: f64,
) -> Result<(Run, f64, Option<String>)> {
    let probe = build(
        &a.load,
        RunShape {
            connections: Some(a.max.unwrap_or(start) as u64),
            ..shape.clone()
        },
    )?
    .plan;
    let (fit, why) = host_fit(&probe);
    let (max, reason) = match a.max {
        Some(m) if m > fit as f64 => {
            return Err(Error::HostLimit(format!(
                "--max {} connections does not fit this host: it fits {} ({why}); lower --max, or see `wsherd doctor -c {}` for what to raise",
                fmt_level(m),
                fmt_level(fit as f64),
                m as u64
            )))
        }
        Some(m) => (m.floor(), None),
        None if (fit as f64) < start * a.growth => {
            return Err(Error::usage(format!(
                "--max is required here: this host fits only {} connections ({why}), less than one step above --start {}; give --max {} or less, or raise the limit (wsherd doctor)",
                fmt_level(fit as f64),
                fmt_level(start),
                fit
            )))
        }
        None => (
            fit as f64,
            Some(format!(
                "this host fits {} connections ({why})",
                fmt_level(fit as f64)
            )),
        ),
    };
    let shape = RunShape {
        connections: Some(max as u64),
        ..shape
    };
    Ok((build(&a.load, shape)?, max, reason))
}

/// A rate search over -c connections, each scheduled at most
/// `MAX_RATE_PER_CONN` messages/s.
fn rate_run(a: &CeilingArgs, shape: RunShape, start: f64) -> Result<(Run, f64, Option<String>)> {
    let per_conn = super::run::MAX_RATE_PER_CONN;
    let c = a.load.connections.unwrap_or(50).max(1) as f64;
    let most = per_conn * c;
    let (max, reason) = match a.max {
        Some(m) if m > most => {
            return Err(Error::usage(format!(
                "--max {}/s over {} connections is more than wsherd schedules ({}/s per connection); raise -c",
                fmt_level(m),
                fmt_level(c),
                fmt_level(per_conn)
            )))
        }
        Some(m) => (m, None),
        None if MAX_RATE > most => (
            most,
            Some(format!(
                "{}/s per connection over {} connections",
                fmt_level(per_conn),
                fmt_level(c)
            )),
        ),
        None => (MAX_RATE, None),
    };
    let shape = RunShape {
        connections: a.load.connections,
        rate: Some(start),
        ..shape
    };
    Ok((build(&a.load, shape)?, max, reason))
}

/// `--slo 'rtt.p99<50ms,errors<0.1%'` (repeatable) into thresholds.
fn parse_slo(list: &[String]) -> Result<Vec<Threshold>> {
    let mut out = Vec::new();
    for part in list.iter().flat_map(|s| s.split(',')) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        out.push(crate::thresholds::parse(part).map_err(|e| Error::usage(format!("--slo: {e}")))?);
    }
    if out.is_empty() {
        return Err(Error::usage(
            "--slo is empty; give at least one threshold, e.g. --slo 'rtt.p99<50ms,errors<0.1%'",
        ));
    }
    Ok(out)
}

/// `5%` or `0.05`.
fn parse_precision(s: &str) -> Result<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match v {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(Error::usage(format!(
            "--precision '{s}' must be a share between 0 and 100%, e.g. 5% or 0.05"
        ))),
    }
}

/// The workload for the dimension, or why it does not fit.
fn check_workload(
    a: &CeilingArgs,
    dimension: Dimension,
    slo: &[Threshold],
) -> Result<WorkloadKind> {
    let d = dimension.name();
    let w = a
        .load
        .workload
        .map(WorkloadKind::from)
        .unwrap_or(match dimension {
            Dimension::Sessions => WorkloadKind::Churn,
            _ => WorkloadKind::Echo,
        });
    let name = |w: WorkloadKind| w.name();
    let fits = match dimension {
        Dimension::Connections => matches!(
            w,
            WorkloadKind::Echo | WorkloadKind::Ping | WorkloadKind::Idle
        ),
        Dimension::Rate => matches!(w, WorkloadKind::Echo | WorkloadKind::Ping),
        Dimension::Sessions => matches!(w, WorkloadKind::Churn | WorkloadKind::Chat),
    };
    if !fits {
        let fit = match dimension {
            Dimension::Connections => "echo, ping or idle",
            Dimension::Rate => "echo or ping",
            Dimension::Sessions => "churn or chat",
        };
        return Err(Error::usage(format!(
            "--dimension {d} does not fit the {} workload: use -w {fit}",
            name(w)
        )));
    }
    if dimension != Dimension::Connections {
        if a.load.inflight.is_some() {
            return Err(Error::usage(format!(
                "--inflight makes a closed loop, but --dimension {d} paces its load (an open loop whose rate the search sets); drop --inflight, or search --dimension connections"
            )));
        }
        if a.load.rate_per_conn.is_some() {
            return Err(Error::usage(format!(
                "--rate-per-conn goes with --dimension connections; with --dimension {d} the search sets the rate"
            )));
        }
    } else if a.load.connections.is_some() {
        return Err(Error::usage(
            "-c does not go with --dimension connections: the search sets the connections (--start, --max)",
        ));
    }
    if dimension == Dimension::Connections
        && a.load.inflight.is_some()
        && a.load.rate_per_conn.is_some()
    {
        return Err(Error::usage(
            "--inflight (a closed loop) and --rate-per-conn (an open loop) do not go together",
        ));
    }
    if w == WorkloadKind::Idle && a.load.heartbeat.is_none() {
        if let Some(t) = slo.iter().find(|t| t.metric.name.starts_with("rtt")) {
            return Err(Error::usage(format!(
                "the idle workload sends nothing to time, so '{}' has no data: add --heartbeat 1s, or leave rtt out of --slo",
                t.expr
            )));
        }
    }
    Ok(w)
}

/// The most connections this host fits for `cfg` (open files, and source ports
/// per (source, target) pair), and what limits it.
fn host_fit(cfg: &Plan) -> (u64, String) {
    let (limit, fds) = crate::host::fd_fit(cfg);
    let (pairs, _) = crate::host::port_pairs(cfg);
    match crate::host::ephemeral_ports().map(|p| p * pairs) {
        Some(p) if p < fds => (
            p,
            format!("{pairs} source/target pairs × the ephemeral port range"),
        ),
        _ => (
            fds,
            format!(
                "open-file limit {limit}{}",
                if cfg.embedded() {
                    ", two per connection with the built-in server in this process"
                } else {
                    ""
                }
            ),
        ),
    }
}
