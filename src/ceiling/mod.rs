//! `wsherd ceiling`: the highest load a target holds within an SLO.
//!
//! "How far can this server go?" is answered by one run whose level (connections,
//! messages/s or sessions/s) is changed in place while it goes: connections are
//! added without closing the open ones, the open-loop pacer's rate changes under
//! the running connections. A controller (`control`) judges each step on its own
//! seconds and asks the search (`search`) for the next level. This module runs a
//! checked `Setup` as that run, and turns what the controller saw into
//! `CeilingResults` (`results`): the numbers and the verdict's sentence.
//!
//! Why it exists: a search is a driver above the engine, not a kind of run; it
//! runs the engine once and owns what its results mean. Must never import the
//! flags (`cli`) or the configuration stage (`config`), which build its `Setup`,
//! and never renders: the text and HTML of a search live in `report/`
//! (`ceiling_text`, `ceiling_html`), which read `CeilingResults` alone.

pub mod control;

pub mod search;

use crate::error::{Error, Result};
use crate::results::ceiling::{outcome, CeilingResults, CEILING_SCHEMA};
use crate::thresholds::Threshold;
use crate::vocab::fmt::fmt_level;
use crate::vocab::kinds::Dimension;
use search::End;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A checked search, ready to run.
#[derive(Debug, Clone)]
pub struct Setup {
    pub run: crate::engine::Run,
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

/// A connections search that may go past half the ephemeral port range on one
/// (source, target) pair: it fits, but `connect()` gets slow there (as `doctor`
/// warns), and the client, not the target, may then set the ceiling.
fn port_warning(setup: &Setup) -> Option<String> {
    if setup.dimension != Dimension::Connections {
        return None;
    }
    let ports = crate::host::ephemeral_ports()?;
    let (pairs, targets) = crate::host::port_pairs(&setup.run.plan);
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

/// What to change when a search may not (or did not) finish within --max-time.
pub const MAX_TIME_HINT: &str = "the worst case is longer than --max-time: raise --max-time, shorten --settle or --step-duration, loosen --precision (10% takes a step less than 5%), or narrow --start/--max around the expected ceiling";

/// The search's plan before it starts: its steps at most and how long they
/// take, worst case: each step's settle and measurement and, for a paced load
/// (rate, sessions), the pause after each failed step of that path for its
/// backlog to drain, at its longest (`control::drain_pause_secs`). The bool is
/// false when that exceeds --max-time.
pub fn plan_estimate(setup: &Setup) -> (String, bool) {
    let (growing, bisecting, worst) =
        search::worst_case_steps(setup.start, setup.max, setup.growth, setup.precision);
    let per_step = setup.settle_secs + setup.step_secs;
    // The path with the most steps fails its last growing level twice and
    // each half twice: a pause after each of those failures.
    let (pauses, pause) = if setup.dimension == Dimension::Connections {
        (0, 0)
    } else {
        (
            (worst + 1).saturating_sub(growing).min(worst),
            control::drain_pause_secs(setup.step_secs, setup.settle_secs),
        )
    };
    let secs = worst * per_step + pauses * pause;
    let max_time = setup.run.plan.duration.as_secs();
    let fmt = |s: u64| humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
    let pausing = if pauses > 0 {
        format!(
            ", and up to {pauses} pauses of at most {pause} s for a failed step's backlog to drain"
        )
    } else {
        String::new()
    };
    let fits = secs <= max_time;
    (
        format!(
            "plan: at most {worst} steps ({growing} growing ×{}, then {bisecting} halvings to {:.0}%, \
             a failure measured twice), {per_step} s each ({} s to settle + {} s measured){pausing}: \
             {} at most, {} --max-time {}",
            setup.growth,
            setup.precision * 100.0,
            setup.settle_secs,
            setup.step_secs,
            fmt(secs),
            if fits { "within" } else { "longer than" },
            fmt(max_time)
        ),
        fits,
    )
}

/// Runs the search; ends early when `interrupt` is set (Ctrl-C), reporting what
/// was found so far.
pub fn search(setup: Setup, interrupt: Arc<AtomicBool>) -> Result<CeilingResults> {
    if let Some(p) = &setup.json {
        crate::report::check_writable("--json", p)?;
    }
    if let Some(p) = &setup.html {
        crate::report::check_writable("--html", p)?;
    }
    let (search, first) = search::Search::new(
        setup.start,
        setup.max,
        setup.growth,
        setup.precision,
        setup.dimension == Dimension::Connections,
    );
    let live = Arc::new(crate::shard::Live::new(setup.dimension, first));
    let plan = control::Params {
        cfg: setup.run.plan.clone(),
        targets: setup.run.plan.targets.clone(),
        dimension: setup.dimension,
        slo: setup.slo.clone(),
        step_secs: setup.step_secs,
        settle_secs: setup.settle_secs,
        shards: setup.run.plan.shard_cores.len(),
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
    if !setup.quiet {
        let (estimate, fits) = plan_estimate(&setup);
        eprintln!("{estimate}");
        if !fits {
            eprintln!("warning: {}", MAX_TIME_HINT);
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
        Some(p) => crate::report::write_json("--json", p, &results),
        None => Ok(()),
    }
    .and_then(|_| match &setup.html {
        Some(p) => crate::report::ceiling_html::write(p, &results),
        None => Ok(()),
    });
    written?;
    Ok(results)
}

fn slo_text(slo: &[Threshold]) -> Vec<String> {
    slo.iter().map(|t| t.expr.clone()).collect()
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
    steps: Vec<crate::results::ceiling::Step>,
    end: Option<End>,
    mut notes: Vec<String>,
    run: crate::results::RunResults,
) -> CeilingResults {
    let found = Found::of(&steps, end);
    // The step that settled a failing level: its confirmation.
    let limit_step = found
        .first_failing
        .and_then(|level| steps.iter().rev().find(|s| s.level == level && !s.passed));
    let limited_by = limit_step.map(|s| s.reasons.join("; "));
    let client_limited = limit_step.is_some_and(|s| client_limited_at(setup, s));
    let client_busy = limit_step.is_some_and(|s| s.client.saturated) && !client_limited;
    let mut verdict = outcome_sentence(setup, &found, limited_by.as_deref(), run.interrupted);
    verdict.push_str(&client_caveat(
        setup,
        limit_step,
        client_limited,
        client_busy,
    ));
    if found.outcome == outcome::CEILING || found.outcome == outcome::NO_CEILING {
        notes.extend(client_note(setup, &steps));
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
        unit: setup.dimension.unit().to_string(),
        slo: slo_text(&setup.slo),
        start: setup.start,
        max: setup.max,
        max_reason: setup.max_reason.clone(),
        growth: setup.growth,
        precision: setup.precision,
        step_secs: setup.step_secs as f64,
        settle_secs: setup.settle_secs as f64,
        outcome: found.outcome.to_string(),
        ceiling: found.ceiling,
        first_failing: found.first_failing,
        limited_by,
        client_limited,
        verdict,
        steps,
        run,
    }
}

/// How the search ended, in numbers.
struct Found {
    /// One of `outcome::*`.
    outcome: &'static str,
    /// The highest level that held the SLO (so far, when incomplete).
    ceiling: Option<f64>,
    /// The level that failed (twice) above it.
    first_failing: Option<f64>,
}

impl Found {
    /// What the steps measured established, given how the search ended (`None`:
    /// interrupted or out of time).
    fn of(steps: &[crate::results::ceiling::Step], end: Option<End>) -> Self {
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
        Found {
            outcome,
            ceiling,
            first_failing,
        }
    }
}

/// `v` with the search's unit: "1,000 connections".
fn level_text(setup: &Setup, v: f64) -> String {
    let u = setup.dimension.unit();
    format!("{} {u}", fmt_level(v))
}

/// The client was the limit at step `s`: near a full core, and (with a schedule
/// to keep) behind it. Sessions: behind means every -c slot was busy, the
/// client's own cap.
fn client_limited_at(setup: &Setup, s: &crate::results::ceiling::Step) -> bool {
    let open_loop = setup.run.plan.workload.open_loop();
    let sessions = setup.dimension == Dimension::Sessions;
    (s.client.saturated && (s.client.behind || !open_loop)) || (sessions && s.client.behind)
}

/// The verdict's first sentence: the outcome, its levels and, at the failing
/// level, why it failed (`limited_by`).
fn outcome_sentence(
    setup: &Setup,
    found: &Found,
    limited_by: Option<&str>,
    interrupted: bool,
) -> String {
    let lvl = |v: f64| level_text(setup, v);
    let limited_by = limited_by.unwrap_or_default();
    match found.outcome {
        outcome::CEILING => format!(
            "Ceiling: {} (the SLO held there; at {} {})",
            lvl(found.ceiling.unwrap_or(0.0)),
            lvl(found.first_failing.unwrap_or(0.0)),
            limited_by
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
            lvl(found.first_failing.unwrap_or(0.0)),
            limited_by
        ),
        _ => format!(
            "Search incomplete ({}): {}{}",
            if interrupted {
                "interrupted"
            } else {
                "--max-time reached"
            },
            found
                .ceiling
                .map_or("no level has held the SLO yet".to_string(), |c| format!(
                    "{} held",
                    lvl(c)
                )),
            found
                .first_failing
                .map_or(String::new(), |f| format!(", {} failed", lvl(f)))
        ),
    }
}

/// What the verdict adds when the load generator, not the target, may have set
/// the limit at the failing step: could not keep up (`client_limited`), or was
/// near saturation though on schedule (`client_busy`). Empty otherwise.
fn client_caveat(
    setup: &Setup,
    limit_step: Option<&crate::results::ceiling::Step>,
    client_limited: bool,
    client_busy: bool,
) -> String {
    let sessions = setup.dimension == Dimension::Sessions;
    let why = limit_step
        .and_then(|s| s.client.why.clone())
        .unwrap_or_default();
    if client_limited {
        let fix = if sessions && limit_step.is_some_and(|s| !s.client.saturated) {
            "raise -c (how many sessions run at once)"
        } else {
            "add shards, agents (--agent) or hosts"
        };
        format!(
            ". But the load generator itself could not keep up there ({why}): this ceiling is the client's, not the target's; {fix}"
        )
    } else if client_busy {
        format!(
            ". The load generator was near saturation there ({why}) though it kept its schedule: part of the latency may be its own; confirm with more shards or agents"
        )
    } else {
        String::new()
    }
}

/// A client at its limit below the ceiling weakens the finding too: the first
/// passing step where it could not keep up, else the first where it was near
/// saturation.
fn client_note(setup: &Setup, steps: &[crate::results::ceiling::Step]) -> Option<String> {
    if let Some(s) = steps
        .iter()
        .find(|s| s.passed && client_limited_at(setup, s))
    {
        Some(format!(
            "the load generator could not keep up already at {} ({})",
            level_text(setup, s.level),
            s.client.why.clone().unwrap_or_default()
        ))
    } else {
        steps
            .iter()
            .find(|s| s.passed && s.client.saturated)
            .map(|s| {
                format!(
                    "the load generator was near saturation from {} on ({})",
                    level_text(setup, s.level),
                    s.client.why.clone().unwrap_or_default()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan line says whether its worst case fits --max-time, and counts
    /// the pauses after a paced load's failed steps.
    #[test]
    fn the_plan_says_within_or_longer_than_max_time() {
        let plan = |extra: &[&str]| {
            let mut args = vec![
                "ws://127.0.0.1:9/",
                "--step-duration",
                "5s",
                "--settle",
                "2s",
            ];
            args.extend_from_slice(extra);
            plan_estimate(&Setup::from_args(&args).unwrap())
        };
        // 22 steps of 7 s (2m 34s), and 12 failures' pauses of at most 16 s.
        let (line, fits) = plan(&[
            "--dimension",
            "rate",
            "-c",
            "2",
            "--max-time",
            "30s",
            "--start",
            "100",
            "--max",
            "100k",
        ]);
        assert!(!fits);
        assert!(
            line.ends_with(
                "and up to 12 pauses of at most 16 s for a failed step's backlog to drain: \
                 5m 46s at most, longer than --max-time 30s"
            ),
            "{line}"
        );
        let (line, fits) = plan(&[
            "--dimension",
            "rate",
            "-c",
            "2",
            "--max-time",
            "10m",
            "--start",
            "100",
            "--max",
            "100k",
        ]);
        assert!(fits);
        assert!(
            line.ends_with("5m 46s at most, within --max-time 10m"),
            "{line}"
        );
        // Connections have no backlog to wait for (10 to 10k: 22 steps too, on
        // any host that fits 10k).
        let (line, fits) = plan(&[
            "--dimension",
            "connections",
            "--start",
            "10",
            "--max",
            "10k",
            "--max-time",
            "10m",
        ]);
        assert!(fits, "{line}");
        assert!(!line.contains("pauses"), "{line}");
        assert!(
            line.ends_with("2m 34s at most, within --max-time 10m"),
            "{line}"
        );
    }

    #[test]
    fn a_search_past_half_the_port_range_is_warned_about() {
        let Some(ports) = crate::host::ephemeral_ports() else {
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
