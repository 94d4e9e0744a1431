//! What a ceiling search found: the contract between the search and its reports.
//!
//! `--json` writes a `CeilingResults`; the text table and the HTML knee chart are
//! rendered from it alone, so a saved search can be read again. The whole run's
//! results ride along (`run`), with every message of every step in its ledger.
//!
//! Imports only the run's results; never the search (`ceiling/`) or a renderer.

use super::{RunResults, ThresholdOutcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Names this document's layout; bumped when a field changes meaning.
pub const CEILING_SCHEMA: &str = "wsherd-ceiling/1";

/// The JSON schema of what `--json` writes (checked by tests/ceiling.rs).
pub const CEILING_JSON_SCHEMA: &str = include_str!("ceiling.schema.json");

/// How a search ended.
pub mod outcome {
    /// A level passed and a higher one failed (twice) within `precision`.
    pub const CEILING: &str = "ceiling";
    /// Every level up to `max` passed.
    pub const NO_CEILING: &str = "no_ceiling_below_max";
    /// Even the lowest level tried failed.
    pub const BELOW_START: &str = "below_lowest_level";
    /// Interrupted (Ctrl-C) or out of `--max-time` before the search converged.
    pub const INCOMPLETE: &str = "incomplete";
}

/// A whole search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CeilingResults {
    /// `wsherd-ceiling/1`.
    pub schema: String,
    /// `connections`, `rate` or `sessions`.
    pub dimension: String,
    /// Unit of every level: `connections`, `messages/s` or `sessions/s`.
    pub unit: String,
    /// The SLO, one threshold expression per entry (`rtt.p99<50ms`).
    pub slo: Vec<String>,
    pub start: f64,
    pub max: f64,
    /// Why `max` is what it is when the search chose it (`this host fits 19,900
    /// connections (open files)`); None when given with --max.
    pub max_reason: Option<String>,
    pub growth: f64,
    /// Bisection stops when (first failing - ceiling) / ceiling <= precision.
    pub precision: f64,
    pub step_secs: f64,
    pub settle_secs: f64,
    /// One of the `outcome` constants.
    pub outcome: String,
    /// The highest level that held the SLO (None: none did).
    pub ceiling: Option<f64>,
    /// The lowest level that failed, confirmed (None: none did).
    pub first_failing: Option<f64>,
    /// What failed at `first_failing`, in words (`rtt.p99 = 312 ms, over 50 ms`).
    pub limited_by: Option<String>,
    /// True when the load generator itself was the limit at `first_failing`: a
    /// shard near a full core and its sends behind schedule (or, in a closed loop,
    /// a shard near a full core). Then the ceiling found is the client's.
    pub client_limited: bool,
    /// The finding in one sentence, as the summary prints it.
    pub verdict: String,
    /// Every measured step, in order (confirmations included).
    pub steps: Vec<Step>,
    /// The whole run: counters, the ledger, latencies over all steps.
    pub run: RunResults,
}

/// One measured step: a level held for `secs` after its settle period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// 1-based, in the order measured.
    pub index: usize,
    pub level: f64,
    /// True when this step measured a level again because it had failed once.
    pub confirm: bool,
    /// The measured window, seconds since the run's start.
    pub start_secs: f64,
    pub secs: f64,
    /// Connections open at the end of its seconds, lowest and highest.
    pub open_min: u64,
    pub open_max: u64,
    pub sent_per_sec: f64,
    pub received_per_sec: f64,
    /// Completed sessions per second (session workloads).
    pub sessions_per_sec: Option<f64>,
    /// Round trips measured in the window.
    pub rtt_count: u64,
    pub rtt_p50_us: f64,
    pub rtt_p90_us: f64,
    pub rtt_p99_us: f64,
    pub rtt_max_us: f64,
    /// errors / (connection attempts + messages sent) in the window.
    pub error_ratio: f64,
    pub connects: u64,
    pub connect_failures: u64,
    pub failed_by_cause: BTreeMap<String, u64>,
    /// Each SLO threshold judged on this window alone.
    pub slo: Vec<ThresholdOutcome>,
    pub passed: bool,
    /// It failed far beyond the SLO (a latency several times its limit, or a
    /// paced load answered at well under its level): the failure counts at
    /// once, without measuring the level again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub far_beyond: bool,
    /// Why it failed, one entry per reason (empty when it passed).
    pub reasons: Vec<String>,
    pub client: ClientHealth,
}

/// The load generator's own state during a step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientHealth {
    /// CPU of each load shard thread over the window, in cores (1.0: a full core).
    pub shard_cpu: Vec<f64>,
    /// Open loops: how far sends ran behind their schedule, p99.
    pub send_lag_p99_us: Option<f64>,
    /// Open loops: sends more than 10 ms behind schedule.
    pub late: u64,
    /// True when a load shard used 90% of its core or more: its own delays are
    /// then part of the latency measured.
    pub saturated: bool,
    /// True when sends fell behind their schedule (more than 1% late, or less
    /// than 95% of the asked rate sent): with `saturated`, the client, not the
    /// target, was the limit.
    #[serde(default)]
    pub behind: bool,
    /// Why it counts as saturated.
    pub why: Option<String>,
}

impl ClientHealth {
    /// The busiest load shard's CPU over the step, in cores (None: not measured).
    pub fn busiest_cpu(&self) -> Option<f64> {
        self.shard_cpu
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    }
}
