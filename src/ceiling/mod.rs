//! `wsherd ceiling`: the highest load a target holds within an SLO.
//!
//! "How far can this server go?" is answered by one run whose level (connections,
//! messages/s or sessions/s) is changed in place while it goes: connections are
//! added without closing the open ones, the open-loop pacer's rate changes under
//! the running connections. A controller (`control`) judges each step on its own
//! seconds and asks the search (`search`) for the next level. This module turns
//! the command line into that run, checks it against the host first, and turns
//! what the controller saw into `CeilingResults` (`results`). Rendering lives in
//! `report` (`report::ceiling_text`, `report::ceiling_html`), from the results alone.

pub mod control;
pub mod results;
pub mod search;

use crate::cli::{CeilingArgs, Dimension, RunArgs, WorkloadKind};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::report::ceiling_text::fmt_level;
use crate::thresholds::Threshold;
use results::{outcome, CeilingResults, CEILING_SCHEMA};
use search::End;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Default highest rates when --max is not given.
const MAX_RATE: f64 = 10e6;
const MAX_SESSIONS: f64 = 1e6;

/// A checked search, ready to run.
#[derive(Debug, Clone)]
pub struct Setup {
    pub run: RunConfig,
    pub dimension: Dimension,
    pub slo: Vec<Threshold>,
    pub start: f64,
    pub max: f64,
    pub max_reason: Option<String>,
    pub growth: f64,
    pub precision: f64,
    pub step_secs: u64,
    pub settle_secs: u64,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub quiet: bool,
}

impl Setup {
    /// Parses a command line (`wsherd ceiling ...` without the `wsherd ceiling`).
    pub fn from_args<I, S>(args: I) -> Result<Setup>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: CeilingArgs,
        }
        let argv = std::iter::once(std::ffi::OsString::from("wsherd-ceiling"))
            .chain(args.into_iter().map(Into::into));
        let p = P::try_parse_from(argv)
            .map_err(|e| Error::usage(crate::commands::clap_error_line(&e)))?;
        Setup::from_cli(p.a)
    }

    /// Checks the arguments against each other and the host.
    pub fn from_cli(a: CeilingArgs) -> Result<Setup> {
        let slo = parse_slo(&a.slo)?;
        let precision = parse_precision(&a.precision)?;
        if !(a.growth > 1.0 && a.growth <= 100.0) {
            return Err(Error::usage(format!(
                "--growth {} must be above 1 and at most 100 (2 doubles the level each step)",
                a.growth
            )));
        }
        if a.step_duration < std::time::Duration::from_secs(1) {
            return Err(Error::usage(
                "--step-duration must be at least 1s (steps are measured in whole seconds)",
            ));
        }
        if a.settle < std::time::Duration::from_secs(1) {
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
        let step_secs = a.step_duration.as_secs_f64().ceil() as u64;
        let settle_secs = a.settle.as_secs_f64().ceil() as u64;
        let workload = check_workload(&a, &slo)?;
        let default_start = match a.dimension {
            Dimension::Connections => 100.0,
            Dimension::Rate => 1000.0,
            Dimension::Sessions => 50.0,
        };
        let start = a.start.unwrap_or(default_start);
        if start <= 0.0 {
            return Err(Error::usage("--start must be above zero"));
        }
        if a.dimension == Dimension::Connections && start.fract() != 0.0 {
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
        let mut args = default_run_args();
        args.urls = a.urls.clone();
        args.workload = workload;
        args.size = a.size;
        args.text = a.text;
        args.inflight = a.inflight;
        args.rate_per_conn = a.rate_per_conn;
        // Connections each send a message a second unless told otherwise: a
        // closed loop's latency grows with every connection added (they share
        // the same throughput), which is a different ceiling.
        if a.dimension == Dimension::Connections
            && a.inflight.is_none()
            && a.rate_per_conn.is_none()
            && matches!(workload, WorkloadKind::Echo | WorkloadKind::Ping)
        {
            args.rate_per_conn = Some(1.0);
        }
        args.messages = a.messages;
        args.think = a.think;
        args.heartbeat = a.heartbeat;
        args.conn = a.conn.clone();
        args.duration = Some(a.max_time);
        args.metrics_addr = a.metrics_addr.clone();
        args.quiet = true;
        let (max, max_reason) = match a.dimension {
            Dimension::Connections => {
                // First the largest plan this host fits, then the search's own.
                args.connections = Some(a.max.unwrap_or(start) as u64);
                let probe = RunConfig::from_cli(args.clone())?;
                let (fit, why) = host_fit(&probe);
                let max = match a.max {
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
                args.connections = Some(max.0 as u64);
                max
            }
            Dimension::Rate => {
                args.connections = a.connections;
                args.rate = Some(start);
                // Each connection sends at most MAX_RATE_PER_CONN messages/s.
                let c = a.connections.unwrap_or(50).max(1) as f64;
                let most = crate::config::MAX_RATE_PER_CONN * c;
                match a.max {
                    Some(m) if m > most => {
                        return Err(Error::usage(format!(
                            "--max {}/s over {} connections is more than wsherd schedules ({}/s per connection); raise -c",
                            fmt_level(m),
                            fmt_level(c),
                            fmt_level(crate::config::MAX_RATE_PER_CONN)
                        )))
                    }
                    Some(m) => (m, None),
                    None if MAX_RATE > most => (
                        most,
                        Some(format!(
                            "{}/s per connection over {} connections",
                            fmt_level(crate::config::MAX_RATE_PER_CONN),
                            fmt_level(c)
                        )),
                    ),
                    None => (MAX_RATE, None),
                }
            }
            Dimension::Sessions => {
                args.connections = Some(a.connections.unwrap_or(1000));
                args.session_rate = Some(start);
                (a.max.unwrap_or(MAX_SESSIONS), None)
            }
        };
        let run = RunConfig::from_cli(args)?;
        Ok(Setup {
            run,
            dimension: a.dimension,
            slo,
            start,
            max,
            max_reason,
            growth: a.growth,
            precision,
            step_secs,
            settle_secs,
            json: a.json,
            html: a.html,
            quiet: a.quiet,
        })
    }
}

/// `run`'s arguments with their defaults (the search fills in its own).
fn default_run_args() -> RunArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        a: RunArgs,
    }
    P::try_parse_from(["wsherd-run"])
        .expect("run's defaults parse")
        .a
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
fn check_workload(a: &CeilingArgs, slo: &[Threshold]) -> Result<WorkloadKind> {
    let d = a.dimension.name();
    let w = a.workload.unwrap_or(match a.dimension {
        Dimension::Sessions => WorkloadKind::Churn,
        _ => WorkloadKind::Echo,
    });
    let name = |w: WorkloadKind| {
        use clap::ValueEnum;
        w.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    };
    let fits = match a.dimension {
        Dimension::Connections => matches!(
            w,
            WorkloadKind::Echo | WorkloadKind::Ping | WorkloadKind::Idle
        ),
        Dimension::Rate => matches!(w, WorkloadKind::Echo | WorkloadKind::Ping),
        Dimension::Sessions => matches!(w, WorkloadKind::Churn | WorkloadKind::Chat),
    };
    if !fits {
        let fit = match a.dimension {
            Dimension::Connections => "echo, ping or idle",
            Dimension::Rate => "echo or ping",
            Dimension::Sessions => "churn or chat",
        };
        return Err(Error::usage(format!(
            "--dimension {d} does not fit the {} workload: use -w {fit}",
            name(w)
        )));
    }
    if a.dimension != Dimension::Connections {
        if a.inflight.is_some() {
            return Err(Error::usage(format!(
                "--inflight makes a closed loop, but --dimension {d} paces its load (an open loop whose rate the search sets); drop --inflight, or search --dimension connections"
            )));
        }
        if a.rate_per_conn.is_some() {
            return Err(Error::usage(format!(
                "--rate-per-conn goes with --dimension connections; with --dimension {d} the search sets the rate"
            )));
        }
    } else if a.connections.is_some() {
        return Err(Error::usage(
            "-c does not go with --dimension connections: the search sets the connections (--start, --max)",
        ));
    }
    if a.dimension == Dimension::Connections && a.inflight.is_some() && a.rate_per_conn.is_some() {
        return Err(Error::usage(
            "--inflight (a closed loop) and --rate-per-conn (an open loop) do not go together",
        ));
    }
    if w == WorkloadKind::Idle && a.heartbeat.is_none() {
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
fn host_fit(cfg: &RunConfig) -> (u64, String) {
    let (limit, fds) = crate::engine::fd_fit(cfg);
    let (pairs, _) = crate::engine::port_pairs(cfg);
    match crate::doctor::ephemeral_ports().map(|p| p * pairs) {
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

/// A connections search that may go past half the ephemeral port range on one
/// (source, target) pair: it fits, but `connect()` gets slow there (as `doctor`
/// warns), and the client, not the target, may then set the ceiling.
fn port_warning(setup: &Setup) -> Option<String> {
    if setup.dimension != Dimension::Connections {
        return None;
    }
    let ports = crate::doctor::ephemeral_ports()?;
    let (pairs, targets) = crate::engine::port_pairs(&setup.run);
    let per_pair = (setup.max as u64).div_ceil(pairs);
    (per_pair * 2 > ports).then(|| {
        format!(
            "up to {} connections on one (source, target) pair, past half the {} ephemeral ports: connect() gets slow there and may saturate the client; spread with --source-ip (at least {} addresses)",
            fmt_level(per_pair as f64),
            fmt_level(ports as f64),
            (setup.max as u64).div_ceil(ports / 2).div_ceil(targets)
        )
    })
}

/// Runs the search; ends early when `interrupt` is set (Ctrl-C), reporting what
/// was found so far.
pub fn search(setup: Setup, interrupt: Arc<AtomicBool>) -> Result<CeilingResults> {
    for p in [&setup.json, &setup.html].into_iter().flatten() {
        crate::report::check_writable(p)?;
    }
    let (search, first) = search::Search::new(
        setup.start,
        setup.max,
        setup.growth,
        setup.precision,
        setup.dimension == Dimension::Connections,
    );
    let live = Arc::new(crate::shard::Live::new(setup.dimension, first));
    let plan = control::Plan {
        cfg: setup.run.clone(),
        targets: setup.run.targets.clone(),
        dimension: setup.dimension,
        slo: setup.slo.clone(),
        step_secs: setup.step_secs,
        settle_secs: setup.settle_secs,
        shards: setup.run.shard_cores.len(),
        verbose: !setup.quiet,
    };
    if !setup.quiet {
        eprintln!(
            "searching the {} ceiling from {} to {} {} under {} ({}s steps after {}s to settle)",
            match setup.dimension {
                Dimension::Connections => "connections",
                Dimension::Rate => "message-rate",
                Dimension::Sessions => "session-rate",
            },
            fmt_level(first),
            fmt_level(setup.max),
            setup.dimension.unit(),
            slo_text(&setup.slo).join(", "),
            setup.step_secs,
            setup.settle_secs
        );
    }
    // The run's own stop flag: the controller sets it when the search is over,
    // and `interrupt` (Ctrl-C) is passed on to it. Setting `interrupt` itself
    // would make the user's next Ctrl-C, while the results are written, a second
    // one (which exits at once).
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let relay = {
        let (stop, done, interrupt) = (stop.clone(), done.clone(), interrupt.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if interrupt.load(Ordering::Relaxed) {
                    stop.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    if let Some(w) = port_warning(&setup) {
        if !setup.quiet {
            eprintln!("warning: {w}");
        }
    }
    let controller = control::Controller::new(plan, live.clone(), stop.clone(), search);
    let ran = crate::engine::run_with(setup.run.clone(), stop, Some(live), Some(controller));
    done.store(true, Ordering::Relaxed);
    let _ = relay.join();
    let (mut run, controller) = ran?;
    let c = controller.expect("the controller comes back with the run");
    // Only a Ctrl-C is an interruption; the search ending the run is not.
    run.interrupted = interrupt.load(Ordering::Relaxed) && c.end.is_none();
    // The run's configured rate was the search's first level: not what ran.
    run.config.rate = None;
    if let Some(s) = run.sessions.as_mut() {
        s.rate = None;
    }
    let results = assemble(&setup, c.steps, c.end, c.notes, run);
    let written = match &setup.json {
        Some(p) => crate::report::write_json(p, &results),
        None => Ok(()),
    }
    .and_then(|_| match &setup.html {
        Some(p) => write_html(p, &results),
        None => Ok(()),
    });
    written?;
    Ok(results)
}

fn slo_text(slo: &[Threshold]) -> Vec<String> {
    slo.iter().map(|t| t.expr.clone()).collect()
}

/// Writes the HTML page of a search.
pub fn write_html(p: &std::path::Path, c: &CeilingResults) -> Result<()> {
    crate::report::outputs::write_file(p, crate::report::ceiling_html::render(c))
}

/// True when the JSON read holds a ceiling search (`"schema": "wsherd-ceiling/1"`),
/// not a run's results.
pub fn is_ceiling(v: &serde_json::Value) -> bool {
    v.get("schema")
        .and_then(|s| s.as_str())
        .is_some_and(|s| s.starts_with("wsherd-ceiling/"))
}

/// A search from the JSON read from `p` (written by `--json`).
pub fn from_value(p: &std::path::Path, v: serde_json::Value) -> Result<CeilingResults> {
    let shown = p.display();
    let c: CeilingResults = serde_json::from_value(v)
        .map_err(|e| Error::usage(format!("{shown}: not a ceiling search's results ({e})")))?;
    if c.schema != CEILING_SCHEMA {
        return Err(Error::usage(format!(
            "{shown}: ceiling schema {}, this wsherd reads {CEILING_SCHEMA}",
            c.schema
        )));
    }
    Ok(c)
}

/// The findings, in numbers and in one sentence.
fn assemble(
    setup: &Setup,
    steps: Vec<results::Step>,
    end: Option<End>,
    mut notes: Vec<String>,
    run: crate::results::RunResults,
) -> CeilingResults {
    let u = setup.dimension.unit();
    let lvl = |v: f64| format!("{} {u}", fmt_level(v));
    // The step that settled a failing level: its confirmation.
    let failing_step = |level: f64| steps.iter().rev().find(|s| s.level == level && !s.passed);
    let passing = steps
        .iter()
        .filter(|s| s.passed)
        .map(|s| s.level)
        .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
    let (outcome, ceiling, first_failing) = match end {
        Some(End::Ceiling { lo, hi }) => (outcome::CEILING, Some(lo), Some(hi)),
        Some(End::NoCeiling) => (outcome::NO_CEILING, passing, None),
        Some(End::BelowLowest { lowest }) => (outcome::BELOW_START, None, Some(lowest)),
        None => {
            // Interrupted or out of time: what was established so far.
            let confirmed_fail = steps
                .iter()
                .filter(|s| !s.passed && s.confirm)
                .map(|s| s.level)
                .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.min(l))));
            (outcome::INCOMPLETE, passing, confirmed_fail)
        }
    };
    let limit_step = first_failing.and_then(failing_step);
    let limited_by = limit_step.map(|s| s.reasons.join("; "));
    let open_loop = setup.run.workload.open_loop();
    // The client was the limit: near a full core, and (with a schedule to keep)
    // behind it.
    // Sessions: behind means every -c slot was busy, the client's own cap.
    let sessions = setup.dimension == Dimension::Sessions;
    let limited = |s: &results::Step| {
        (s.client.saturated && (s.client.behind || !open_loop)) || (sessions && s.client.behind)
    };
    let client_limited = limit_step.is_some_and(limited);
    let client_busy = limit_step.is_some_and(|s| s.client.saturated) && !client_limited;
    let mut verdict = match outcome {
        outcome::CEILING => format!(
            "Ceiling: {} (the SLO held there; at {} {})",
            lvl(ceiling.unwrap_or(0.0)),
            lvl(first_failing.unwrap_or(0.0)),
            limited_by.clone().unwrap_or_default()
        ),
        outcome::NO_CEILING => format!(
            "No ceiling below {}: every level up to {} held the SLO{}",
            lvl(setup.max),
            lvl(setup.max),
            setup
                .max_reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        outcome::BELOW_START => format!(
            "No level held the SLO: even {} failed ({}); the target is in trouble below the lowest level, or the SLO is out of its reach",
            lvl(first_failing.unwrap_or(0.0)),
            limited_by.clone().unwrap_or_default()
        ),
        _ => format!(
            "Search incomplete ({}): {}{}",
            if run.interrupted {
                "interrupted"
            } else {
                "--max-time reached"
            },
            ceiling.map_or("no level has held the SLO yet".to_string(), |c| format!(
                "{} held",
                lvl(c)
            )),
            first_failing.map_or(String::new(), |f| format!(", {} failed", lvl(f)))
        ),
    };
    let why = limit_step
        .and_then(|s| s.client.why.clone())
        .unwrap_or_default();
    if client_limited {
        let fix = if sessions && limit_step.is_some_and(|s| !s.client.saturated) {
            "raise -c (how many sessions run at once)"
        } else {
            "add shards, agents (--agent) or hosts"
        };
        verdict.push_str(&format!(
            ". But the load generator itself could not keep up there ({why}): this ceiling is the client's, not the target's; {fix}"
        ));
    } else if client_busy {
        verdict.push_str(&format!(
            ". The load generator was near saturation there ({why}) though it kept its schedule: part of the latency may be its own; confirm with more shards or agents"
        ));
    }
    if outcome == outcome::CEILING || outcome == outcome::NO_CEILING {
        // A client at its limit below the ceiling weakens the finding too.
        if let Some(s) = steps.iter().find(|s| s.passed && limited(s)) {
            notes.push(format!(
                "the load generator could not keep up already at {} ({})",
                lvl(s.level),
                s.client.why.clone().unwrap_or_default()
            ));
        } else if let Some(s) = steps.iter().find(|s| s.passed && s.client.saturated) {
            notes.push(format!(
                "the load generator was near saturation from {} on ({})",
                lvl(s.level),
                s.client.why.clone().unwrap_or_default()
            ));
        }
    }
    let mut all_notes = notes;
    all_notes.dedup();
    if !all_notes.is_empty() {
        verdict.push_str(". Note: ");
        verdict.push_str(&all_notes.join("; "));
    }
    CeilingResults {
        schema: CEILING_SCHEMA.to_string(),
        dimension: setup.dimension.name().to_string(),
        unit: u.to_string(),
        slo: slo_text(&setup.slo),
        start: setup.start,
        max: setup.max,
        max_reason: setup.max_reason.clone(),
        growth: setup.growth,
        precision: setup.precision,
        step_secs: setup.step_secs as f64,
        settle_secs: setup.settle_secs as f64,
        outcome: outcome.to_string(),
        ceiling,
        first_failing,
        limited_by,
        client_limited,
        verdict,
        steps,
        run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_past_half_the_port_range_is_warned_about() {
        let Some(ports) = crate::doctor::ephemeral_ports() else {
            return; // no /proc here
        };
        let max = (ports * 5 / 8).to_string();
        let setup = |extra: &[&str]| {
            let mut args = vec![
                "ws://127.0.0.1:9/",
                "--dimension",
                "connections",
                "--start",
                "10",
                "--max",
                &max,
            ];
            args.extend_from_slice(extra);
            Setup::from_args(args).unwrap()
        };
        let w = port_warning(&setup(&[])).expect("a warning");
        assert!(w.contains("past half"), "{w}");
        assert!(w.contains("at least 2 addresses"), "{w}");
        assert_eq!(
            port_warning(&setup(&["--source-ip", "127.0.0.1-127.0.0.2"])),
            None
        );
    }
}
