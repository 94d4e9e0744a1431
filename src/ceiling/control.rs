//! The controller of a ceiling search: it sees every second of the run as the
//! collector finalizes it, and moves the live level from step to step.
//!
//! It lives in the collector's thread (a `SecondSink`), so it judges exactly the
//! seconds every report is made of, and touches the shards only through the live
//! level they poll. A step is: set the level, let it settle (whole seconds, and
//! for connections until the new ones are dialed), measure `step_secs` seconds,
//! judge them alone against the SLO and the level itself (were the connections
//! held, was the rate answered), then ask the search what comes next. After a
//! confirmed failure of a paced load, the load pauses until the target has caught
//! up, so its backlog does not fail the next, lower step.
//!
//! Why it exists apart from the search: the search (`search`) is pure arithmetic
//! on verdicts; this is where seconds become verdicts. Like all of `ceiling/`, it
//! must never import the flags (`cli`) or the configuration stage (`config`), and
//! never renders: the line it prints per step comes from `report::ceiling_text`.

use super::search::{End, Next, Search};
use crate::collector::Collected;
use crate::metrics::{Counters, Interval};
use crate::metrics::{Second, SecondSink};
use crate::results::ceiling::{ClientHealth, Step};
use crate::results::SecondStats;
use crate::shard::Live;
use crate::target::Target;
use crate::thresholds::Threshold;
use crate::vocab::kinds::Dimension;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shard at or above this share of a core is saturated.
const SATURATED_CPU: f64 = 0.9;
/// A paced load must send and be answered at this share of its level.
const KEPT_PACE: f64 = 0.95;
/// Open loops: more late sends than this share means the client fell behind.
const LATE_SHARE: f64 = 0.01;
/// A failure far beyond the SLO: a latency this many times its limit...
const FAR_TIMES_LIMIT: f64 = 4.0;
/// ... or a paced load answered at under this share of its level. Such a
/// failure is not noise: it counts at once, without being measured again.
const FAR_BELOW_PACE: f64 = 0.5;
/// After a failed paced step, the next waits for its backlog to drain: until
/// at most this share of the connections' messages is still owed...
const DRAINED_SHARE: f64 = 0.01;
/// ... or until nothing more was answered for this many seconds in a row (what
/// is still owed was dropped, not queued).
const STALE_SECS: u64 = 3;

/// The longest pause after a failed paced step for its backlog to drain (it
/// ends sooner once the backlog is near zero or nothing is answered for
/// `STALE_SECS`): two steps with their settling, and two seconds.
pub fn drain_pause_secs(step_secs: u64, settle_secs: u64) -> u64 {
    step_secs
        .saturating_add(settle_secs)
        .saturating_mul(2)
        .saturating_add(2)
}

/// What the controller needs to know about the run, fixed for the search.
pub struct Params {
    pub cfg: crate::plan::Plan,
    pub targets: Vec<Target>,
    pub dimension: Dimension,
    pub slo: Vec<Threshold>,
    pub step_secs: u64,
    pub settle_secs: u64,
    pub shards: usize,
    /// Print a line per step on stderr.
    pub verbose: bool,
}

enum State {
    /// Measuring from second `first` on (seconds before it settle). Measuring
    /// waits while fewer than `need_open` connections are open, up to `latest`.
    Measuring {
        first: u64,
        need_open: u64,
        latest: u64,
        acc: Option<Box<Interval>>,
        rows: Vec<SecondStats>,
        open: (u64, u64),
        cpu: Vec<f64>,
    },
    /// A paced load paused after a failure, until the target caught up (or
    /// `deadline`); then `level` is measured (again, if `confirm`). `stale`:
    /// seconds in a row with nothing answered.
    Recovering {
        deadline: u64,
        level: f64,
        confirm: bool,
        stale: u64,
    },
    Done,
}

/// The controller: a `SecondSink` that runs the search.
pub struct Controller {
    plan: Params,
    live: Arc<Live>,
    interrupt: Arc<AtomicBool>,
    search: Search,
    state: State,
    level: f64,
    confirm: bool,
    /// Whole-run counters so far, for the backlog after a failed step.
    sent: u64,
    answered: u64,
    /// Connections established and attempted so far in the run.
    established: u64,
    attempted: u64,
    /// Connections open at the end of the last second seen, and of the one before.
    last_open: u64,
    prev_open: u64,
    /// Each shard's CPU seconds at the last second seen.
    cpu_last: Vec<f64>,
    pub steps: Vec<Step>,
    pub end: Option<End>,
    /// Things the search noticed on the way (a target that had not caught up).
    pub notes: Vec<String>,
}

impl Controller {
    pub fn new(plan: Params, live: Arc<Live>, interrupt: Arc<AtomicBool>, search: Search) -> Self {
        let level = live.get();
        let need_open = match plan.dimension {
            Dimension::Connections => level as u64,
            Dimension::Rate => plan.cfg.connections,
            Dimension::Sessions => 0,
        };
        let latest = dial_secs(&plan, need_open).saturating_add(plan.settle_secs);
        let state = State::Measuring {
            first: plan.settle_secs,
            need_open: need_open.saturating_sub(plan.shards as u64),
            latest,
            acc: None,
            rows: Vec::new(),
            open: (u64::MAX, 0),
            cpu: Vec::new(),
        };
        Controller {
            plan,
            live,
            interrupt,
            search,
            state,
            level,
            confirm: false,
            sent: 0,
            answered: 0,
            established: 0,
            attempted: 0,
            last_open: 0,
            prev_open: 0,
            cpu_last: Vec::new(),
            steps: Vec::new(),
            end: None,
            notes: Vec::new(),
        }
    }

    /// Each shard's CPU seconds now.
    fn cpu_now(&self) -> Vec<f64> {
        let tids = self.live.tids.lock().map(|t| t.clone()).unwrap_or_default();
        tids.iter()
            .map(|&t| crate::sys::thread_cpu_secs(t).unwrap_or(0.0))
            .collect()
    }

    /// Starts measuring `level` from second `from` on (after its settle period).
    fn start(&mut self, level: f64, confirm: bool, from: u64) {
        let before = self.last_open;
        // A confirmation right after its step (connections) goes on at once; after a
        // pause (paced loads) the level settles again.
        let paused = self.live.get() == 0.0;
        self.level = level;
        self.confirm = confirm;
        self.live.set(level);
        let settle = if confirm && !paused {
            0
        } else {
            self.plan.settle_secs
        };
        let need_open = match self.plan.dimension {
            // A level measured again needs no new connections.
            _ if confirm => 0,
            Dimension::Connections => level as u64,
            Dimension::Rate => self.plan.cfg.connections,
            Dimension::Sessions => 0,
        };
        let first = from.saturating_add(settle);
        self.state = State::Measuring {
            first,
            need_open: need_open.saturating_sub(self.plan.shards as u64),
            latest: first.saturating_add(dial_secs(&self.plan, need_open.saturating_sub(before))),
            acc: None,
            rows: Vec::new(),
            open: (u64::MAX, 0),
            cpu: Vec::new(),
        };
    }

    fn finish(&mut self, end: End) {
        self.end = Some(end);
        self.state = State::Done;
        // The search is over: end the run (its report accounts for every message).
        self.interrupt.store(true, Ordering::Relaxed);
    }

    /// The search says what comes after a step at `level` that passed or failed
    /// (`decisive`: far beyond the SLO, not to be measured again).
    fn after(&mut self, passed: bool, decisive: bool, next_second: u64) {
        match self.search.judged_with(self.level, passed, decisive) {
            Next::Done(end) => self.finish(end),
            Next::Measure { level, confirm } => {
                let paced = self.plan.dimension != Dimension::Connections;
                // After a failure of a paced load, the target first works off
                // what it queued: a confirmation must not inherit the failed
                // step's backlog, nor a lower level.
                if !passed && paced {
                    // Let the target work off what the failed step left queued.
                    self.live.set(0.0);
                    let wait = drain_pause_secs(self.plan.step_secs, self.plan.settle_secs);
                    self.state = State::Recovering {
                        deadline: next_second.saturating_add(wait),
                        level,
                        confirm,
                        stale: 0,
                    };
                } else {
                    self.start(level, confirm, next_second);
                }
            }
        }
    }

    /// The verdict on a step measured in full at the current level.
    fn judge(&mut self, m: Measured) -> Step {
        judge_step(
            &self.plan,
            self.level,
            self.confirm,
            m.first,
            m.acc,
            m.rows,
            m.open,
            m.cpu,
        )
    }
}

/// Seconds to dial `n` connections at the connect rate, with the connect timeout.
fn dial_secs(plan: &Params, n: u64) -> u64 {
    let rate = plan.cfg.connect_rate;
    let dial = if rate > 0.0 { n as f64 / rate } else { 0.0 };
    ((dial + plan.cfg.connect_timeout.as_secs_f64()).ceil() as u64).saturating_add(1)
}

impl SecondSink for Controller {
    /// One final second: stop judging once the run stops, count what it
    /// changed, then let the state it came in (recovering, measuring) take it;
    /// a step measured in full is judged and the search moves on.
    fn second(&mut self, start: u64, _warmup: bool, s: &Second, row: &SecondStats) {
        let Some(interval) = s.interval.as_ref() else {
            return;
        };
        // Once the run stops (Ctrl-C, --max-time), seconds are partial or the
        // drain's: no step is judged on them.
        let stopped =
            self.interrupt.load(Ordering::Relaxed) || start + 1 > self.plan.cfg.duration.as_secs();
        if stopped && !matches!(self.state, State::Done) {
            self.state = State::Done;
        }
        let seen = self.tally(interval, s.open);
        let next_second = start + 1;
        let measured = match self.state {
            State::Done => None,
            State::Recovering { .. } => {
                self.recover(&interval.counters, s.open, next_second);
                None
            }
            State::Measuring { .. } => self.measure(start, interval, s.open, row, seen),
        };
        if let Some(m) = measured {
            self.conclude(m, next_second);
        }
    }
}

/// What one second changed besides its counters: each shard's CPU seconds in it,
/// and the connections open before it.
struct Seen {
    cpu: Vec<f64>,
    /// Connections open at the end of the second before.
    open_before: u64,
    /// Connections are still being dialed while their count grows.
    dialing: bool,
}

/// A step measured in full, ready to be judged.
struct Measured {
    first: u64,
    acc: Interval,
    rows: Vec<SecondStats>,
    open: (u64, u64),
    cpu: Vec<f64>,
}

impl Controller {
    /// Adds a second's counters to the run's so far, and reads the shards' CPU
    /// and the open connections it ends with.
    fn tally(&mut self, interval: &Interval, open_now: u64) -> Seen {
        let k = &interval.counters;
        self.sent += k.sent;
        self.established += k.established;
        self.attempted += k.attempted;
        self.answered += k.received + k.failed_msgs;
        let cpu_now = self.cpu_now();
        let cpu_second: Vec<f64> = cpu_now
            .iter()
            .enumerate()
            .map(|(i, c)| c - self.cpu_last.get(i).copied().unwrap_or(*c))
            .collect();
        self.cpu_last = cpu_now;
        let open_before = std::mem::replace(&mut self.last_open, open_now);
        let open_earlier = std::mem::replace(&mut self.prev_open, open_before);
        Seen {
            cpu: cpu_second,
            open_before,
            // Connections are still being dialed while their count grows.
            dialing: open_before > open_earlier,
        }
    }

    /// A second of a pause after a failed step: once the target has caught up
    /// (or the pause's deadline has come, with a note of what it still owed),
    /// the next level starts.
    fn recover(&mut self, k: &Counters, open_now: u64, next_second: u64) {
        let State::Recovering {
            deadline,
            level,
            confirm,
            stale,
        } = self.state
        else {
            return;
        };
        let backlog = self.sent.saturating_sub(self.answered);
        // Caught up: (almost) nothing owed any more, or nothing answered for
        // STALE_SECS seconds in a row (what is still owed was dropped, not
        // queued). One quiet second is not enough: an overloaded server may
        // pause (a collection) with its queue still full.
        let answered_now = k.received + k.failed_msgs;
        let stale = if answered_now == 0 { stale + 1 } else { 0 };
        let near_zero = (self.plan.cfg.connections as f64 * DRAINED_SHARE).max(0.0) as u64;
        let caught_up = match self.plan.dimension {
            Dimension::Sessions => open_now == 0,
            _ => backlog <= near_zero || stale >= STALE_SECS,
        };
        if let State::Recovering { stale: s, .. } = &mut self.state {
            *s = stale;
        }
        if caught_up || next_second >= deadline {
            if !caught_up {
                self.notes.push(format!(
                    "after the failed step at {}, the target still owed {backlog} answers when the search went on",
                    crate::vocab::fmt::fmt_level(self.level)
                ));
            }
            self.start(level, confirm, next_second);
        }
    }

    /// A second of a step being measured: skipped while the level settles or
    /// its connections are still being dialed, else added to the step; the
    /// step once it has `step_secs` seconds.
    fn measure(
        &mut self,
        start: u64,
        interval: &Interval,
        open_now: u64,
        row: &SecondStats,
        seen: Seen,
    ) -> Option<Measured> {
        let step_secs = self.plan.step_secs;
        let State::Measuring {
            first,
            need_open,
            latest,
            acc,
            rows,
            open,
            cpu,
        } = &mut self.state
        else {
            return None;
        };
        if start >= *first
            && rows.is_empty()
            && seen.open_before < *need_open
            && (seen.dialing || seen.open_before == 0)
            && start < *latest
        {
            // The connections of this level are still being dialed.
            *first = start + 1;
            return None;
        }
        if start < *first {
            return None;
        }
        match acc {
            Some(a) => a.merge(interval),
            None => *acc = Some(Box::new(interval.clone())),
        }
        rows.push(row.clone());
        open.0 = open.0.min(open_now);
        open.1 = open.1.max(open_now);
        for (i, c) in seen.cpu.iter().enumerate() {
            if cpu.len() <= i {
                cpu.push(0.0);
            }
            cpu[i] += c;
        }
        if (rows.len() as u64) < step_secs {
            return None;
        }
        Some(Measured {
            first: *first,
            acc: *acc.take().unwrap_or_default(),
            rows: std::mem::take(rows),
            open: *open,
            cpu: std::mem::take(cpu),
        })
    }

    /// Judges a step measured in full, prints and keeps it, and goes on: to
    /// what the search says next, or to the end when nothing ever connected.
    fn conclude(&mut self, m: Measured, next_second: u64) {
        let mut step = self.judge(m);
        step.index = self.steps.len() + 1;
        let passed = step.passed;
        // Not measured again when it failed far beyond the SLO.
        step.far_beyond = !passed && !step.confirm && far_beyond(&self.plan, &step);
        let decisive = step.far_beyond;
        if self.plan.verbose {
            eprintln!(
                "{}",
                crate::report::ceiling_text::step_line(&step, &self.plan.dimension)
            );
        }
        self.steps.push(step);
        if self.established == 0 && self.attempted > 0 {
            // Nothing ever connected: lower levels will not either.
            self.notes
                .push("no connection could be established at all".to_string());
            let level = self.level;
            self.finish(End::BelowLowest { lowest: level });
        } else {
            self.after(passed, decisive, next_second);
        }
    }
}

/// Did `step` fail far beyond the SLO: a latency (or any lower-is-better
/// figure) at `FAR_TIMES_LIMIT` times its limit or more, or a paced load
/// answered at under `FAR_BELOW_PACE` of its level?
fn far_beyond(plan: &Params, step: &Step) -> bool {
    let over = step.slo.iter().any(|o| {
        let lower_is_better = matches!(o.op.as_str(), "<" | "<=");
        match o.value {
            Some(v) if !o.passed && lower_is_better && o.limit > 0.0 => {
                v >= FAR_TIMES_LIMIT * o.limit
            }
            _ => false,
        }
    });
    let under = match plan.dimension {
        Dimension::Rate => step.received_per_sec < FAR_BELOW_PACE * step.level,
        Dimension::Sessions => step.sessions_per_sec.unwrap_or(0.0) < FAR_BELOW_PACE * step.level,
        Dimension::Connections => false,
    };
    over || under
}

/// Connections a level may be short of: the shards' shares are rounded apart.
fn tolerance_of(plan: &Params) -> f64 {
    plan.shards as f64
}

/// ` (125 connects failed: http_503 ×125)`, or nothing when none did.
fn causes_of(map: &std::collections::BTreeMap<String, u64>, what: &str) -> String {
    let n: u64 = map.values().sum();
    if n == 0 {
        return String::new();
    }
    let causes: Vec<String> = map.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
    format!(" ({n} {what}: {})", causes.join(", "))
}

/// The verdict on one step: the SLO on its own seconds, and whether the level
/// itself was held.
#[allow(clippy::too_many_arguments)]
fn judge_step(
    plan: &Params,
    level: f64,
    confirm: bool,
    first: u64,
    acc: Interval,
    rows: Vec<SecondStats>,
    open: (u64, u64),
    cpu: Vec<f64>,
) -> Step {
    let secs = rows.len().max(1) as u64;
    let n = StepCounts::of(plan, &acc.counters, secs);
    let r = step_results(plan, level, secs, acc, &rows, open.1);
    let slo = slo_outcomes(plan, &r);
    let mut reasons: Vec<String> = slo
        .iter()
        .filter(|o| !o.passed)
        .map(crate::thresholds::describe)
        .collect();
    reasons.extend(level_not_held(plan, level, open.0, &n, &r));
    let client = client_health(plan, level, &cpu, &n, &r);
    let rtt = &r.latency.rtt;
    Step {
        index: 0,
        level,
        confirm,
        start_secs: first as f64,
        secs: secs as f64,
        open_min: if open.0 == u64::MAX { 0 } else { open.0 },
        open_max: open.1,
        sent_per_sec: r.messages.sent_per_sec,
        received_per_sec: r.messages.received_per_sec,
        sessions_per_sec: r.sessions.as_ref().map(|s| s.per_sec),
        rtt_count: rtt.count,
        rtt_p50_us: rtt.p50_us,
        rtt_p90_us: rtt.p90_us,
        rtt_p99_us: rtt.p99_us,
        rtt_max_us: rtt.max_us,
        error_ratio: crate::thresholds::measure(
            &r,
            &crate::thresholds::parse_metric("errors").expect("a known metric"),
        )
        .unwrap_or(0.0),
        connects: n.connects,
        connect_failures: n.failed,
        failed_by_cause: n.failed_by_cause,
        passed: reasons.is_empty(),
        far_beyond: false,
        reasons,
        slo,
        client,
    }
}

/// What a step's counters say, read before its interval becomes a run's results.
struct StepCounts {
    /// The step's length in seconds (at least 1).
    secs: u64,
    /// Sends that went out late (open loops).
    late: u64,
    sent: u64,
    /// Connections established, and failed (with their causes), in the step.
    connects: u64,
    failed: u64,
    failed_by_cause: std::collections::BTreeMap<String, u64>,
    lost_by_cause: std::collections::BTreeMap<String, u64>,
    sessions_late: u64,
    /// Connections (each session dials one) started per second.
    started_rate: f64,
    /// Sessions waited for a slot: -c caps how many run at once.
    slots_full: bool,
}

impl StepCounts {
    /// The counts of a step of `secs` seconds.
    fn of(plan: &Params, k: &Counters, secs: u64) -> Self {
        StepCounts {
            secs,
            late: k.late,
            sent: k.sent,
            connects: k.established,
            failed: k.failed(),
            failed_by_cause: k.failed_by_cause.clone(),
            lost_by_cause: k.lost_by_cause.clone(),
            sessions_late: k.sessions_late,
            started_rate: k.attempted as f64 / secs as f64,
            slots_full: plan.dimension == Dimension::Sessions
                && k.sessions_late as f64 > k.attempted as f64 * LATE_SHARE,
        }
    }
}

/// The step as a run of its own, so every SLO metric means what it means for
/// `run --threshold`: its seconds alone, no warm-up, and (connections) the
/// step's level as the run's connections.
fn step_results(
    plan: &Params,
    level: f64,
    secs: u64,
    acc: Interval,
    rows: &[SecondStats],
    peak_open: u64,
) -> crate::results::RunResults {
    let mut cfg = plan.cfg.clone();
    cfg.duration = std::time::Duration::from_secs(secs);
    cfg.warmup = std::time::Duration::ZERO;
    if plan.dimension == Dimension::Connections {
        cfg.connections = level as u64;
    }
    let series = rows
        .iter()
        .enumerate()
        .map(|(i, r)| SecondStats {
            t: i as u64,
            ..r.clone()
        })
        .collect();
    let collected = Collected {
        total: acc,
        warmup: Interval::default(),
        series,
        peak_open,
        drivers: Vec::new(),
        memory: None,
    };
    crate::engine::assemble(
        &cfg,
        &plan.targets,
        collected,
        secs as f64,
        0.0,
        crate::engine::Ending::Full,
        0,
    )
}

/// The SLO evaluated on the step's results.
fn slo_outcomes(
    plan: &Params,
    r: &crate::results::RunResults,
) -> Vec<crate::results::ThresholdOutcome> {
    let mut slo = crate::thresholds::evaluate(&plan.slo, r);
    // A ratio with nothing to count (no connection dialed in the step, nothing
    // sent) has nothing that failed either.
    for o in &mut slo {
        if o.value.is_none() && o.unit == "ratio" {
            o.passed = true;
        }
    }
    slo
}

/// Why the level itself was not held, if it was not: connections not held
/// (`open_min`, the fewest open), a rate not sent or not answered, sessions not
/// started.
fn level_not_held(
    plan: &Params,
    level: f64,
    open_min: u64,
    n: &StepCounts,
    r: &crate::results::RunResults,
) -> Vec<String> {
    let fmt = crate::vocab::fmt::fmt_level;
    let received = r.messages.received_per_sec;
    let sent_rate = r.messages.sent_per_sec;
    let mut reasons = Vec::new();
    match plan.dimension {
        Dimension::Connections => {
            if (open_min as f64) < level - tolerance_of(plan) {
                reasons.push(format!(
                    "held only {} of {} connections{}{}",
                    fmt(open_min as f64),
                    fmt(level),
                    causes_of(&n.failed_by_cause, "connects failed"),
                    causes_of(&n.lost_by_cause, "lost")
                ));
            }
        }
        Dimension::Rate => {
            let want = plan.cfg.connections as f64 - tolerance_of(plan);
            if (open_min as f64) < want {
                reasons.push(format!(
                    "only {} of {} connections open{}",
                    fmt(open_min as f64),
                    fmt(plan.cfg.connections as f64),
                    causes_of(&n.lost_by_cause, "lost")
                ));
            }
            if sent_rate < level * KEPT_PACE {
                reasons.push(format!(
                    "sent only {}/s of the {}/s asked",
                    fmt(sent_rate),
                    fmt(level)
                ));
            } else if received < level * KEPT_PACE {
                reasons.push(format!(
                    "answered only {}/s of the {}/s sent",
                    fmt(received),
                    fmt(level)
                ));
            }
        }
        Dimension::Sessions => {
            // Judged on sessions started (each dials one connection): completions
            // lag starts by a session's length.
            if n.started_rate < level * KEPT_PACE {
                reasons.push(format!(
                    "started only {} sessions/s of the {}/s asked{}",
                    fmt(n.started_rate),
                    fmt(level),
                    if n.slots_full {
                        format!(
                            ": all {} session slots were busy (-c)",
                            fmt(plan.cfg.connections as f64)
                        )
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    reasons
}

/// The client's own health in the step: its shards' CPU (`cpu`, seconds each),
/// and whether sends kept time.
fn client_health(
    plan: &Params,
    level: f64,
    cpu: &[f64],
    n: &StepCounts,
    r: &crate::results::RunResults,
) -> ClientHealth {
    let fmt = crate::vocab::fmt::fmt_level;
    let sent_rate = r.messages.sent_per_sec;
    let (late, sent) = (n.late, n.sent);
    let shard_cpu: Vec<f64> = cpu.iter().map(|c| c / n.secs as f64).collect();
    let mut client = ClientHealth {
        shard_cpu,
        ..Default::default()
    };
    let busiest = client.busiest_cpu().unwrap_or(0.0);
    let open_loop = plan.cfg.workload.open_loop();
    let late_share = if sent > 0 {
        late as f64 / sent as f64
    } else {
        0.0
    };
    let short = plan.dimension == Dimension::Rate && sent_rate < level * KEPT_PACE;
    let behind = (open_loop && (late_share > LATE_SHARE || short)) || n.slots_full;
    let mut why = Vec::new();
    if busiest >= SATURATED_CPU {
        why.push(format!(
            "a load shard used {:.0}% of its core",
            busiest * 100.0
        ));
    }
    if n.slots_full {
        why.push(format!(
            "{} sessions started late: all {} session slots (-c) were busy",
            n.sessions_late,
            fmt(plan.cfg.connections as f64)
        ));
    } else if behind {
        why.push(if late_share > LATE_SHARE {
            format!(
                "{late} of {sent} sends ({:.1}%) went out more than 10 ms behind schedule",
                late_share * 100.0
            )
        } else {
            format!("it sent {}/s of the {}/s asked", fmt(sent_rate), fmt(level))
        });
    }
    client.send_lag_p99_us = r.latency.send_lag.as_ref().map(|l| l.p99_us);
    client.late = late;
    client.saturated = busiest >= SATURATED_CPU;
    client.behind = behind;
    client.why = (!why.is_empty()).then(|| why.join("; "));
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dimension: Dimension, args: &[&str]) -> Params {
        let mut all = vec!["ws://127.0.0.1:9/", "--shards", "1"];
        all.extend_from_slice(args);
        let cfg = crate::engine::Run::from_args(all).unwrap().plan;
        Params {
            targets: cfg.targets.clone(),
            cfg,
            dimension,
            slo: vec![crate::thresholds::parse("rtt.p99<50ms").unwrap()],
            step_secs: 2,
            settle_secs: 1,
            shards: 1,
            verbose: false,
        }
    }

    /// Two seconds with `per_sec` round trips of `rtt_ms` each second.
    fn seconds(per_sec: u64, rtt_ms: u64) -> (Interval, Vec<SecondStats>) {
        let mut acc = Interval::default();
        let mut rows = Vec::new();
        for t in 0..2 {
            acc.counters.sent += per_sec;
            acc.counters.received += per_sec;
            for _ in 0..per_sec {
                acc.rtt.saturating_record(rtt_ms * 1_000_000);
            }
            rows.push(SecondStats {
                t,
                open: 50,
                connects: 0,
                connect_failures: 0,
                sent: per_sec,
                received: per_sec,
                errors: 0,
                rtt_p50_us: 0.0,
                rtt_p90_us: 0.0,
                rtt_p99_us: 0.0,
                rtt_max_us: 0.0,
            });
        }
        (acc, rows)
    }

    /// Far beyond the SLO: a latency at 4 times its limit or more, or a paced
    /// load answered at under half its level; short of that, a failure is
    /// measured again.
    #[test]
    fn far_beyond_is_four_times_the_limit_or_under_half_the_pace() {
        let p = plan(Dimension::Rate, &["-c", "50", "--rate", "1000"]);
        // 1,000/s sent, `answered` of them answered in `rtt_ms`.
        let step = |rtt_ms: u64, answered: u64| {
            let (mut acc, mut rows) = seconds(answered, rtt_ms);
            acc.counters.sent = 2 * 1000;
            for r in &mut rows {
                r.sent = 1000;
            }
            judge_step(&p, 1000.0, false, 5, acc, rows, (50, 50), vec![0.2])
        };
        // rtt.p99<50ms: 190 ms fails, 3.8 times the limit: measured again.
        let s = step(190, 1000);
        assert!(!s.passed && !far_beyond(&p, &s), "{:?}", s.reasons);
        // 210 ms: past 4 times the limit.
        let s = step(210, 1000);
        assert!(!s.passed && far_beyond(&p, &s), "{:?}", s.reasons);
        // Answered at 60% of the level: a failure (under 95%), not far.
        let s = step(2, 600);
        assert!(!s.passed && !far_beyond(&p, &s), "{:?}", s.reasons);
        // At 40%: far, whatever the latency.
        let s = step(2, 400);
        assert!(!s.passed && far_beyond(&p, &s), "{:?}", s.reasons);
        // A connections search has no pace to fall under: only the latency.
        let c = plan(
            Dimension::Connections,
            &["-c", "50", "--rate-per-conn", "20"],
        );
        let (acc, rows) = seconds(10, 2);
        let s = judge_step(&c, 50.0, false, 5, acc, rows, (20, 20), vec![0.2]);
        assert!(!s.passed && !far_beyond(&c, &s), "{:?}", s.reasons);
        let (acc, rows) = seconds(10, 210);
        let s = judge_step(&c, 50.0, false, 5, acc, rows, (50, 50), vec![0.2]);
        assert!(!s.passed && far_beyond(&c, &s), "{:?}", s.reasons);
        // A limit a figure must stay above is not "times the limit".
        let mut q = plan(
            Dimension::Connections,
            &["-c", "50", "--rate-per-conn", "20"],
        );
        q.slo = vec![crate::thresholds::parse("rate>1000000/s").unwrap()];
        let (acc, rows) = seconds(1000, 2);
        let s = judge_step(&q, 50.0, false, 5, acc, rows, (50, 50), vec![0.2]);
        assert!(!s.passed && !far_beyond(&q, &s), "{:?}", s.reasons);
    }

    #[test]
    fn a_step_within_the_slo_passes() {
        let p = plan(Dimension::Rate, &["-c", "50", "--rate", "1000"]);
        let (acc, rows) = seconds(1000, 2);
        let s = judge_step(&p, 1000.0, false, 5, acc, rows, (50, 50), vec![0.2]);
        assert!(s.passed, "{:?}", s.reasons);
        assert_eq!(s.sent_per_sec, 1000.0);
        assert!((s.rtt_p99_us - 2000.0).abs() < 20.0, "{}", s.rtt_p99_us);
        assert!(!s.client.saturated);
        assert_eq!(s.client.shard_cpu, vec![0.1]);
        assert_eq!(s.slo.len(), 1);
        assert!(s.slo[0].passed);
    }

    #[test]
    fn a_rate_not_answered_fails_with_its_reasons() {
        let p = plan(Dimension::Rate, &["-c", "50", "--rate", "1000"]);
        // 2000/s asked and sent, 1000/s answered, 300 ms round trips.
        let (mut acc, mut rows) = seconds(1000, 300);
        acc.counters.sent *= 2;
        for r in &mut rows {
            r.sent *= 2;
        }
        let s = judge_step(&p, 2000.0, true, 5, acc, rows, (50, 50), vec![0.3]);
        assert!(!s.passed);
        assert!(s.confirm);
        assert!(
            s.reasons[0].starts_with("rtt.p99 ") && s.reasons[0].ends_with("(SLO rtt.p99<50ms)"),
            "{:?}",
            s.reasons
        );
        assert_eq!(s.reasons[1], "answered only 1,000/s of the 2,000/s sent");
    }

    #[test]
    fn connections_not_held_fail_with_the_refusals() {
        let p = plan(
            Dimension::Connections,
            &["-c", "4000", "--rate-per-conn", "1"],
        );
        let (mut acc, rows) = seconds(3000, 2);
        acc.counters.attempted = 125;
        acc.counters.failed_by_cause.insert("http_503".into(), 125);
        let s = judge_step(&p, 3125.0, false, 5, acc, rows, (3000, 3000), vec![0.1]);
        assert!(!s.passed);
        assert_eq!(
            s.reasons,
            ["held only 3,000 of 3,125 connections (125 connects failed: http_503 ×125)"]
        );
        assert_eq!(s.connect_failures, 125);
        // One connection short is within the rounding of the shards' shares.
        let (acc, rows) = seconds(3000, 2);
        let s = judge_step(&p, 3001.0, false, 5, acc, rows, (3000, 3000), vec![0.1]);
        assert!(s.passed, "{:?}", s.reasons);
    }

    #[test]
    fn a_busy_shard_marks_the_client_saturated() {
        let p = plan(Dimension::Rate, &["-c", "50", "--rate", "1000"]);
        let (mut acc, rows) = seconds(1000, 2);
        acc.counters.late = 100;
        // 1.9 CPU seconds over the 2-second step: 95% of a core.
        let s = judge_step(&p, 1000.0, false, 5, acc, rows, (50, 50), vec![1.9]);
        assert!(s.client.saturated && s.client.behind);
        let why = s.client.why.unwrap();
        assert!(why.contains("95% of its core"), "{why}");
        assert!(why.contains("100 of 2000 sends (5.0%)"), "{why}");
        // Busy but on schedule: near saturation, not behind.
        let (acc, rows) = seconds(1000, 2);
        let s = judge_step(&p, 1000.0, false, 5, acc, rows, (50, 50), vec![1.9]);
        assert!(s.client.saturated && !s.client.behind);
        assert_eq!(
            s.client.why.as_deref(),
            Some("a load shard used 95% of its core")
        );
    }
}
