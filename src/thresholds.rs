//! Pass/fail thresholds (`--threshold 'rtt.p99<50ms'`, k6-like) and the
//! good / acceptable / poor assessment of a run.
//!
//! CI judges a load run by its exit code, people by a verdict: this module turns
//! saved results into both. Everything is computed from `RunResults` (the measured
//! phase: latencies and rates leave the warm-up out), so `wsherd report FILE
//! --threshold ...` judges a saved run exactly as the run itself would have.
//! Percentiles the JSON summary lacks (p95, p75, ...) are read from the full
//! histogram that travels in the results.
//!
//! Metric names: `LATENCY.STAT` with LATENCY one of `rtt`, `rtt_uncorrected`, `protocol_open`,
//! `connect`, `handshake`, `delivery`, `session`, `send_lag` and STAT one of
//! `min`, `mean` (`avg`), `max`, `stdev`, `p50` (`med`), `p90`, `p95`, `p99`,
//! `p999`, or any `pNN`/`pNN.N`; ratios `errors`, `connect_errors`,
//! `message_errors`, `connect_success`, `message_success`; rates `rate`
//! (received/s), `sent_rate`, `session_rate`, `delivery_rate`; counts `attempted`,
//! `established`, `failed`, `lost`, `sent`, `received`, `unexpected`, `late`,
//! `missing`, `duplicates` (broadcast, or push's sequence), `skewed` (push);
//! a conversation's steps as `step.NAME.STAT` (a latency statistic of an
//! expect, or `ok`, `failed`, `timeout`, `mismatch`).
//! For a push workload, `delivery` is the one-way latency from `--sent-at` and
//! `delivery_rate` the messages pushed per second.
//!
//! Reads the results and the vocabulary; never a renderer, the engine, config or cli.

use crate::results::{Assessment, LatencyStats, RunResults, ThresholdOutcome};
use crate::vocab::fmt::fmt_us;
use std::fmt::Write;

/// Latency families a threshold can name.
const LATENCIES: &[&str] = &[
    "rtt",
    "rtt_uncorrected",
    "connect",
    "tls",
    "handshake",
    "protocol_open",
    "delivery",
    "session",
    "send_lag",
];
const STATS: &[&str] = &[
    "min", "mean", "avg", "max", "stdev", "p50", "med", "p90", "p95", "p99", "p999",
];
const RATIOS: &[&str] = &[
    "errors",
    "connect_errors",
    "message_errors",
    "connect_success",
    "message_success",
];
const RATES: &[&str] = &["rate", "sent_rate", "session_rate", "delivery_rate"];
const COUNTS: &[&str] = &[
    "attempted",
    "established",
    "failed",
    "lost",
    "sent",
    "received",
    "unexpected",
    "late",
    "missing",
    "duplicates",
    "skewed",
];

/// What a metric measures, which decides its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds internally; written with ns/us/µs/ms/s/m.
    Latency,
    /// A fraction internally; written as `0.1%` or `0.001`.
    Ratio,
    /// Per second; written `19000/s`, `19k/s` or `19000`.
    Rate,
    /// A plain count (SI suffixes allowed).
    Count,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Latency => "us",
            Unit::Ratio => "ratio",
            Unit::Rate => "per_second",
            Unit::Count => "count",
        }
    }

    /// Whether a higher value is better (for the assessment's bands).
    fn higher_is_better(self, metric: &str) -> bool {
        match self {
            Unit::Rate => true,
            Unit::Ratio => metric.ends_with("_success"),
            Unit::Count => matches!(metric, "established" | "received" | "sent" | "attempted"),
            Unit::Latency => false,
        }
    }

    /// A value in this unit, as people read it.
    pub fn show(self, v: f64) -> String {
        match self {
            Unit::Latency => {
                if v == 0.0 {
                    "0µs".into()
                } else {
                    fmt_us(v)
                }
            }
            Unit::Ratio => {
                let p = v * 100.0;
                if p != 0.0 && p.abs() < 0.01 {
                    format!("{p:.4}%")
                } else {
                    format!("{p:.2}%")
                }
            }
            Unit::Rate => format!("{}/s", crate::vocab::fmt::fmt_rate(v)),
            Unit::Count => crate::vocab::fmt::group(v.max(0.0).round() as u64),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
            Op::Eq => value == limit,
            Op::Ne => value != limit,
        }
    }
}

/// A metric a threshold or a band names.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// As written (normalized: `avg` → `mean`, `med` → `p50`).
    pub name: String,
    pub unit: Unit,
}

/// One parsed `--threshold` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as given.
    pub expr: String,
    pub metric: Metric,
    pub op: Op,
    /// In the metric's internal unit (µs, fraction, per second, count).
    pub limit: f64,
}

/// Every metric name a threshold accepts, for error messages.
pub fn known_metrics() -> String {
    let lat: Vec<String> = LATENCIES.iter().map(|l| format!("{l}.STAT")).collect();
    format!(
        "{} (STAT: {}, or any pNN such as p75, p99.99); ratios: {}; rates: {}; counts: {}; conversations: step.NAME.STAT, step.NAME.ok/failed/timeout/mismatch",
        lat.join(", "),
        STATS.join(", "),
        RATIOS.join(", "),
        RATES.join(", "),
        COUNTS.join(", ")
    )
}

/// A percentile from a stat name: `p95` → 95.0, `p999` → 99.9, `p99.99` → 99.99.
fn percentile(stat: &str) -> Option<f64> {
    let digits = stat.strip_prefix('p')?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let q = if digits.contains('.') || digits.len() <= 2 {
        digits.parse::<f64>().ok()?
    } else {
        // p999 = 99.9, p9999 = 99.99: digits after the first two are decimals.
        format!("{}.{}", &digits[..2], &digits[2..]).parse().ok()?
    };
    (q > 0.0 && q <= 100.0).then_some(q)
}

/// Parses a metric name.
pub fn parse_metric(name: &str) -> Result<Metric, String> {
    let n = name.trim();
    let unknown = || format!("unknown metric '{n}'; known metrics: {}", known_metrics());
    if let Some(rest) = n.strip_prefix("step.") {
        return step_metric(n, rest);
    }
    if let Some((fam, stat)) = n.split_once('.') {
        if !LATENCIES.contains(&fam) {
            return Err(unknown());
        }
        let stat = match stat {
            "avg" => "mean",
            "med" => "p50",
            s => s,
        };
        if !matches!(stat, "min" | "mean" | "max" | "stdev") && percentile(stat).is_none() {
            return Err(unknown());
        }
        return Ok(Metric {
            name: format!("{fam}.{stat}"),
            unit: Unit::Latency,
        });
    }
    if LATENCIES.contains(&n) {
        return Err(format!(
            "'{n}' is a latency: name a statistic, e.g. {n}.p99 or {n}.mean"
        ));
    }
    let unit = if RATIOS.contains(&n) {
        Unit::Ratio
    } else if RATES.contains(&n) {
        Unit::Rate
    } else if COUNTS.contains(&n) {
        Unit::Count
    } else {
        return Err(unknown());
    };
    Ok(Metric {
        name: n.to_string(),
        unit,
    })
}

/// A conversation step's metric, `step.NAME.STAT`: a latency statistic of an
/// expect, or a count of its outcomes (`ok`, `failed`, `timeout`, `mismatch`).
fn step_metric(n: &str, rest: &str) -> Result<Metric, String> {
    let bad = || {
        format!(
            "'{n}': a step's metric is step.NAME.STAT, STAT a latency statistic ({}, pNN) or a count (ok, failed, timeout, mismatch, closed, stopped), e.g. step.login.p99",
            STATS.join(", ")
        )
    };
    let (step, stat) = rest.rsplit_once('.').ok_or_else(bad)?;
    if step.is_empty() {
        return Err(bad());
    }
    let stat = match stat {
        "avg" => "mean",
        "med" => "p50",
        s => s,
    };
    let unit = if matches!(
        stat,
        "ok" | "failed" | "timeout" | "mismatch" | "closed" | "stopped"
    ) {
        Unit::Count
    } else if matches!(stat, "min" | "mean" | "max" | "stdev") || percentile(stat).is_some() {
        Unit::Latency
    } else {
        return Err(bad());
    };
    Ok(Metric {
        name: format!("step.{step}.{stat}"),
        unit,
    })
}

/// Parses a limit in the unit of `metric`.
fn parse_value(text: &str, metric: &Metric) -> Result<f64, String> {
    let t = text.trim();
    let bad = |why: &str| format!("'{t}' {why}");
    let num = |s: &str| -> Result<f64, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| bad("is not a number with a unit"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(bad("must be zero or more"));
        }
        Ok(v)
    };
    match metric.unit {
        Unit::Latency => {
            let units = [
                ("ns", 1e-3),
                ("us", 1.0),
                ("µs", 1.0),
                ("ms", 1e3),
                ("s", 1e6),
                ("m", 60e6),
                ("h", 3600e6),
            ];
            for (suffix, mult) in units {
                if let Some(n) = t.strip_suffix(suffix) {
                    // "ms" also ends in "s" and "m": take the first exact match.
                    if n.ends_with(|c: char| c.is_ascii_alphabetic() || c == 'µ') {
                        continue;
                    }
                    return Ok(num(n)? * mult);
                }
            }
            Err(bad(&format!(
                "needs a time unit for {} (ns, us, ms, s, m or h: e.g. 50ms, 200us, 1.5s)",
                metric.name
            )))
        }
        Unit::Ratio => match t.strip_suffix('%') {
            Some(n) => Ok(num(n)? / 100.0),
            None => {
                let v = num(t)?;
                if v > 1.0 {
                    return Err(bad(&format!(
                        "is above 1 for the ratio {}: write a percentage such as {v}%",
                        metric.name
                    )));
                }
                Ok(v)
            }
        },
        Unit::Rate => {
            let n = t.strip_suffix("/s").unwrap_or(t);
            crate::vocab::units::parse_rate(n)
                .map_err(|_| bad("is not a rate (e.g. 19000/s, 19k/s)"))
        }
        Unit::Count => crate::vocab::units::parse_count(t)
            .map(|v| v as f64)
            .map_err(|_| bad("is not a count (e.g. 0, 10, 2k)")),
    }
}

/// Parses `METRIC OP VALUE`, e.g. `rtt.p99<50ms`, `errors<0.1%`, `rate>=19000/s`.
pub fn parse(expr: &str) -> Result<Threshold, String> {
    let e = expr.trim();
    let at = e
        .find(['<', '>', '=', '!'])
        .ok_or_else(|| {
            format!(
                "threshold '{e}' has no comparison; write METRIC<VALUE such as rtt.p99<50ms, errors<0.1%, rate>=19000/s"
            )
        })?;
    let (name, rest) = e.split_at(at);
    let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = rest.strip_prefix("===").or_else(|| rest.strip_prefix("==")) {
        (Op::Eq, v)
    } else if let Some(v) = rest.strip_prefix("!=") {
        (Op::Ne, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Lt, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Op::Gt, v)
    } else {
        return Err(format!(
            "threshold '{e}': unknown comparison; use <, <=, >, >=, == or !="
        ));
    };
    if name.trim().is_empty() {
        return Err(format!("threshold '{e}' names no metric"));
    }
    if value.trim().is_empty() {
        return Err(format!("threshold '{e}' has no value"));
    }
    let metric = parse_metric(name).map_err(|m| format!("threshold '{e}': {m}"))?;
    let limit = parse_value(value, &metric).map_err(|m| format!("threshold '{e}': {m}"))?;
    Ok(Threshold {
        expr: e.to_string(),
        metric,
        op,
        limit,
    })
}

fn latency<'a>(r: &'a RunResults, fam: &str) -> Option<&'a LatencyStats> {
    let l = &r.latency;
    match fam {
        "rtt" => Some(&l.rtt),
        "rtt_uncorrected" => l.rtt_uncorrected.as_ref(),
        "connect" => Some(&l.connect),
        "tls" => l.tls.as_ref(),
        "protocol_open" => l.protocol_open.as_ref(),
        "handshake" => Some(&l.handshake),
        "delivery" => l.delivery.as_ref(),
        "session" => r.sessions.as_ref().map(|s| &s.duration),
        "send_lag" => l.send_lag.as_ref(),
        _ => None,
    }
}

/// A statistic of a latency, in µs (None without samples); percentiles the
/// summary lacks are read from the full histogram.
fn latency_stat(l: &LatencyStats, stat: &str) -> Option<f64> {
    if l.count == 0 {
        return None;
    }
    Some(match stat {
        "min" => l.min_us,
        "mean" => l.mean_us,
        "max" => l.max_us,
        "stdev" => l.stdev_us,
        "p50" => l.p50_us,
        "p90" => l.p90_us,
        "p99" => l.p99_us,
        "p999" => l.p999_us,
        s => {
            let q = percentile(s)?;
            let h = crate::vocab::hist::decode_histogram(&l.hdr)?;
            h.value_at_quantile(q / 100.0) as f64 / 1000.0
        }
    })
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The measured value of `metric` in `r` (in the metric's internal unit), or None
/// when the run has no data for it.
pub fn measure(r: &RunResults, metric: &Metric) -> Option<f64> {
    let c = &r.connections;
    let m = &r.messages;
    if let Some(rest) = metric.name.strip_prefix("step.") {
        let (name, stat) = rest.rsplit_once('.')?;
        let s = r.steps.iter().find(|s| s.name == name)?;
        return match stat {
            "ok" => Some(s.ok as f64),
            "failed" => Some(s.failed() as f64),
            "timeout" => Some(s.timeout as f64),
            "mismatch" => Some(s.mismatch as f64),
            "closed" => Some(s.closed as f64),
            "stopped" => Some(s.stopped as f64),
            _ => latency_stat(s.latency.as_ref()?, stat),
        };
    }
    if let Some((fam, stat)) = metric.name.split_once('.') {
        return latency_stat(latency(r, fam)?, stat);
    }
    let errors: u64 = r.errors.values().sum();
    match metric.name.as_str() {
        // Everything that went wrong over everything tried: failed connections,
        // errors of established ones, and messages lost with their connection,
        // over connection attempts plus messages sent.
        "errors" => ratio(c.failed + errors + m.failed, c.attempted + m.sent),
        "connect_errors" => ratio(c.failed, c.attempted),
        "connect_success" => ratio(c.established, c.attempted),
        "message_errors" => ratio(m.failed, m.received + m.failed),
        "message_success" => ratio(m.received, m.received + m.failed),
        "rate" => Some(m.received_per_sec),
        "sent_rate" => Some(m.sent_per_sec),
        "session_rate" => r.sessions.as_ref().map(|s| s.per_sec),
        "delivery_rate" => r
            .broadcast
            .as_ref()
            .map(|b| b.delivered_per_sec)
            .or(r.push.as_ref().map(|p| p.received_per_sec)),
        "attempted" => Some(c.attempted as f64),
        "established" => Some(c.established as f64),
        "failed" => Some(c.failed as f64),
        "lost" => Some(c.lost as f64),
        "sent" => Some(m.sent as f64),
        "received" => Some(m.received as f64),
        "unexpected" => Some(m.unexpected as f64),
        "late" => Some(m.late as f64),
        "missing" => r
            .broadcast
            .as_ref()
            .map(|b| b.missing as f64)
            .or(r.push.as_ref().map(|p| p.missing as f64)),
        "duplicates" => r
            .broadcast
            .as_ref()
            .map(|b| b.duplicates as f64)
            .or(r.push.as_ref().map(|p| p.duplicates as f64)),
        "skewed" => r.push.as_ref().map(|p| p.skewed as f64),
        _ => None,
    }
}

/// The thresholds and bands a run (or a saved run) is judged by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judge {
    pub thresholds: Vec<Threshold>,
    /// Custom bands (replacing or adding to the defaults).
    pub bands: Vec<Band>,
}

impl Judge {
    /// Parses threshold expressions (`--threshold`) and band lists (`--bands`);
    /// any mistake is a usage error.
    pub fn parse(thresholds: &[String], bands: &[String]) -> crate::Result<Judge> {
        let exprs = thresholds;
        let thresholds = exprs
            .iter()
            .map(|t| parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(crate::Error::Usage)?;
        let mut parsed = Vec::new();
        for b in bands {
            parsed.extend(parse_band(b).map_err(crate::Error::Usage)?);
        }
        Ok(Judge {
            thresholds,
            bands: parsed,
        })
    }

    /// True when nothing was asked for.
    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty() && self.bands.is_empty()
    }

    /// Fills in `r.thresholds` and `r.assessment`; a failed threshold outranks
    /// the assessment of its metric.
    pub fn apply(&self, r: &mut RunResults) {
        r.thresholds = evaluate(&self.thresholds, r);
        let custom: Vec<&str> = self.bands.iter().map(|b| b.metric.name.as_str()).collect();
        r.assessment = assess_from(&merge_bands(self.bands.clone()), &custom, r);
        outrank(&mut r.assessment, &r.thresholds);
    }
}

/// Judges every threshold against `r`.
pub fn evaluate(list: &[Threshold], r: &RunResults) -> Vec<ThresholdOutcome> {
    list.iter()
        .map(|t| {
            let value = measure(r, &t.metric);
            ThresholdOutcome {
                expression: t.expr.clone(),
                metric: t.metric.name.clone(),
                unit: t.metric.unit.name().to_string(),
                op: t.op.symbol().to_string(),
                limit: t.limit,
                value,
                passed: value.is_some_and(|v| t.op.holds(v, t.limit)),
            }
        })
        .collect()
}

/// One verdict in words: `rtt.p99 312 ms (SLO rtt.p99<50ms)`, or `rtt.p99: no
/// data (SLO ...)` when the run had nothing to measure it by.
pub fn describe(o: &ThresholdOutcome) -> String {
    match o.value {
        Some(v) => format!(
            "{} {} (SLO {})",
            o.metric,
            unit_of(&o.unit).show(v),
            o.expression
        ),
        None => format!("{}: no data (SLO {})", o.metric, o.expression),
    }
}

/// True when every threshold held.
pub fn all_passed(outcomes: &[ThresholdOutcome]) -> bool {
    outcomes.iter().all(|o| o.passed)
}

fn unit_of(name: &str) -> Unit {
    match name {
        "ratio" => Unit::Ratio,
        "per_second" => Unit::Rate,
        "count" => Unit::Count,
        _ => Unit::Latency,
    }
}

/// Good / acceptable bounds for one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub metric: Metric,
    /// Better than or equal to this: good.
    pub good: f64,
    /// Better than or equal to this (and not good): acceptable; beyond: poor.
    pub acceptable: f64,
}

/// The default bands, after the seed load-test guide's table.
pub fn default_bands() -> Vec<Band> {
    let b = |name: &str, good: f64, acceptable: f64| Band {
        metric: parse_metric(name).expect("built-in metric names parse"),
        good,
        acceptable,
    };
    vec![
        b("connect.mean", 100e3, 500e3),
        b("connect.max", 500e3, 2e6),
        b("connect_success", 0.99, 0.95),
        b("rtt.mean", 100e3, 500e3),
        b("rtt.p95", 200e3, 1e6),
        b("rtt.p99", 500e3, 2e6),
        b("delivery.p99", 500e3, 2e6),
        b("rate", 100.0, 50.0),
        b("message_success", 0.99, 0.95),
    ]
}

/// Parses `--bands METRIC=GOOD,ACCEPTABLE` (several separated by `;` or given
/// several times), e.g. `rtt.p99=50ms,200ms`, `rate=20k/s,10k/s`.
pub fn parse_band(spec: &str) -> Result<Vec<Band>, String> {
    let mut out = Vec::new();
    for one in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, bounds) = one.split_once('=').ok_or_else(|| {
            format!("--bands '{one}': write METRIC=GOOD,ACCEPTABLE such as rtt.p99=50ms,200ms")
        })?;
        let metric = parse_metric(name).map_err(|e| format!("--bands '{one}': {e}"))?;
        let (g, a) = bounds.split_once(',').ok_or_else(|| {
            format!("--bands '{one}': give two bounds, GOOD,ACCEPTABLE (e.g. 50ms,200ms)")
        })?;
        let good = parse_value(g, &metric).map_err(|e| format!("--bands '{one}': {e}"))?;
        let acceptable = parse_value(a, &metric).map_err(|e| format!("--bands '{one}': {e}"))?;
        let hib = metric.unit.higher_is_better(&metric.name);
        if (hib && good < acceptable) || (!hib && good > acceptable) {
            return Err(format!(
                "--bands '{one}': the good bound must be {} than the acceptable one for {}",
                if hib { "higher" } else { "lower" },
                metric.name
            ));
        }
        out.push(Band {
            metric,
            good,
            acceptable,
        });
    }
    Ok(out)
}

/// The default bands with `custom` replacing or adding to them.
pub fn merge_bands(custom: Vec<Band>) -> Vec<Band> {
    let mut bands = default_bands();
    for c in custom {
        match bands.iter_mut().find(|b| b.metric.name == c.metric.name) {
            Some(b) => *b = c,
            None => bands.push(c),
        }
    }
    bands
}

/// Assesses every band whose metric the run measured, as default bands.
pub fn assess(bands: &[Band], r: &RunResults) -> Vec<Assessment> {
    assess_from(bands, &[], r)
}

/// Assesses every band whose metric the run measured; `custom` names the
/// metrics whose bands the user gave (`--bands`), the others are the defaults.
/// A run that asked for a rate has its rate judged against that request, not
/// against the default band (99/s is good for `--rate 100`).
fn assess_from(bands: &[Band], custom: &[&str], r: &RunResults) -> Vec<Assessment> {
    bands
        .iter()
        .filter_map(|b| {
            let value = measure(r, &b.metric)?;
            // A rate assessment means nothing for a run that sends no messages.
            if b.metric.unit == Unit::Rate && r.messages.sent == 0 {
                return None;
            }
            let mut source = if custom.contains(&b.metric.name.as_str()) {
                "--bands"
            } else {
                "default"
            };
            let (mut good, mut acceptable) = (b.good, b.acceptable);
            if let (Some(asked), "rate", "default") =
                (r.config.rate, b.metric.name.as_str(), source)
            {
                (good, acceptable, source) = (0.99 * asked, 0.95 * asked, "requested");
            }
            let hib = b.metric.unit.higher_is_better(&b.metric.name);
            let within = |bound: f64| if hib { value >= bound } else { value <= bound };
            let verdict = if within(good) {
                "good"
            } else if within(acceptable) {
                "acceptable"
            } else {
                "poor"
            };
            Some(Assessment {
                metric: b.metric.name.clone(),
                unit: b.metric.unit.name().to_string(),
                value,
                verdict: verdict.to_string(),
                good,
                acceptable,
                higher_is_better: hib,
                source: source.to_string(),
                failed_threshold: None,
            })
        })
        .collect()
}

/// Assesses `r` with the bands `like` was assessed with (the defaults, and
/// the parts' own `--bands`): for merged results, so a merge shows the
/// assessment each part showed.
pub fn reassess(r: &RunResults, like: &[Assessment]) -> Vec<Assessment> {
    let custom: Vec<Band> = like
        .iter()
        .filter(|a| a.source == "--bands")
        .filter_map(|a| {
            Some(Band {
                metric: parse_metric(&a.metric).ok()?,
                good: a.good,
                acceptable: a.acceptable,
            })
        })
        .collect();
    let names: Vec<&str> = custom.iter().map(|b| b.metric.name.as_str()).collect();
    assess_from(&merge_bands(custom.clone()), &names, r)
}

/// True when a threshold on `threshold` judges what the assessment of
/// `assessed` does: the same metric, or its complement (`connect_errors` and
/// `connect_success`), or for messages the run's whole error ratio too
/// (`errors` counts every failed message: "FAIL errors<0.1%" beside
/// "message_success good" would contradict itself).
fn judges(threshold: &str, assessed: &str) -> bool {
    threshold == assessed
        || matches!(
            (threshold, assessed),
            ("connect_errors", "connect_success")
                | ("message_errors" | "errors", "message_success")
        )
}

/// A failed threshold outranks the assessment of its metric (or of the
/// metric it judges, `judges`): the verdict becomes `poor`, naming the
/// threshold, so the two never disagree.
fn outrank(assessment: &mut [Assessment], thresholds: &[ThresholdOutcome]) {
    for a in assessment {
        if let Some(t) = thresholds
            .iter()
            .find(|t| !t.passed && judges(&t.metric, &a.metric))
        {
            a.verdict = "poor".into();
            a.failed_threshold = Some(t.expression.clone());
        }
    }
}

/// How far a failed threshold's value missed its limit, in its unit ("by
/// 6.64ms", "by 12/s"); None for a threshold that passed or had no data.
pub fn missed_by(t: &ThresholdOutcome) -> Option<String> {
    let v = t.value.filter(|_| !t.passed)?;
    let u = unit_of(&t.unit);
    let gap = (v - t.limit).abs();
    let times =
        (t.limit > 0.0 && v > 2.0 * t.limit).then(|| format!(", {:.1}x the limit", v / t.limit));
    Some(format!("by {}{}", u.show(gap), times.unwrap_or_default()))
}

/// A threshold's measured value as people read it ("no data" without one).
pub fn shown_value(t: &ThresholdOutcome) -> String {
    t.value
        .map_or_else(|| "no data".to_string(), |v| unit_of(&t.unit).show(v))
}

/// An assessment's value as people read it.
pub fn shown_assessed(a: &Assessment) -> String {
    unit_of(&a.unit).show(a.value)
}

/// What an assessment's verdict rests on, in brackets: its bounds (and where
/// they came from when not the defaults), or the threshold that outranked them.
pub fn assessment_basis(a: &Assessment) -> String {
    let u = unit_of(&a.unit);
    if let Some(t) = &a.failed_threshold {
        return format!("(threshold {t} failed)");
    }
    let cmp = if a.higher_is_better { "≥" } else { "≤" };
    let bounds = format!("{cmp}{} / {cmp}{}", u.show(a.good), u.show(a.acceptable));
    match a.source.as_str() {
        "requested" => format!("({bounds} of {} asked)", u.show(a.good / 0.99)),
        "--bands" => format!("({bounds}, --bands)"),
        _ => format!("({bounds})"),
    }
}

/// The summary's Thresholds and Assessment sections (empty when there are none).
pub fn render(r: &RunResults) -> String {
    let mut o = String::new();
    if !r.thresholds.is_empty() {
        let passed = r.thresholds.iter().filter(|t| t.passed).count();
        let _ = writeln!(
            o,
            "\nThresholds ({passed} of {} passed)",
            r.thresholds.len()
        );
        for t in &r.thresholds {
            let u = unit_of(&t.unit);
            let value = t.value.map_or_else(|| "no data".to_string(), |v| u.show(v));
            let _ = writeln!(
                o,
                "  {}  {:<28} {}",
                if t.passed { "PASS" } else { "FAIL" },
                t.expression,
                value
            );
        }
    }
    if !r.assessment.is_empty() {
        let _ = writeln!(
            o,
            "\nAssessment (bounds good / acceptable: the seed guide's, unless marked)"
        );
        for a in &r.assessment {
            let _ = writeln!(
                o,
                "  {:<16} {:>10}  {:<10}  {}",
                a.metric,
                unit_of(&a.unit).show(a.value),
                a.verdict,
                assessment_basis(a)
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> RunResults {
        let text = include_str!("../tests/data/thresholds-results.json");
        serde_json::from_str(text).expect("fixture parses")
    }

    /// `step.NAME.failed` counts what the server failed (timed out, mismatched,
    /// closed), not the expects the run's stop cut short; `stopped` is its own.
    #[test]
    fn a_step_stopped_by_the_run_is_not_failed() {
        let mut r = results();
        r.steps = vec![crate::results::StepResult {
            name: "said".into(),
            kind: "expect".into(),
            count: 10,
            ok: 8,
            timeout: 0,
            mismatch: 0,
            closed: 0,
            stopped: 2,
            latency: None,
        }];
        assert!(r.steps[0].balances());
        let exprs = [
            "step.said.failed<1",
            "step.said.stopped<2",
            "step.said.closed<1",
        ];
        let judge = Judge::parse(&exprs.map(String::from), &[]).unwrap();
        judge.apply(&mut r);
        let passed: Vec<(f64, bool)> = r
            .thresholds
            .iter()
            .map(|t| (t.value.unwrap(), t.passed))
            .collect();
        assert_eq!(passed, [(0.0, true), (2.0, false), (0.0, true)]);
        r.steps[0].closed = 1;
        r.steps[0].ok = 7;
        judge.apply(&mut r);
        assert_eq!(r.thresholds[0].value, Some(1.0));
        assert!(!r.thresholds[0].passed);
    }

    #[test]
    fn a_failed_threshold_outranks_the_bands_and_a_rate_is_judged_against_its_request() {
        let mut r = results();
        let judge = Judge::parse(&["rtt.p99<1us".into()], &["rtt.mean=1s,2s".into()]).unwrap();
        judge.apply(&mut r);
        let a = |r: &RunResults, m: &str| {
            r.assessment
                .iter()
                .find(|a| a.metric == m)
                .cloned()
                .unwrap()
        };
        let p99 = a(&r, "rtt.p99");
        assert_eq!(p99.verdict, "poor");
        assert_eq!(p99.failed_threshold.as_deref(), Some("rtt.p99<1us"));
        assert_eq!(assessment_basis(&p99), "(threshold rtt.p99<1us failed)");
        assert_eq!(a(&r, "rtt.mean").source, "--bands");
        assert_eq!(a(&r, "rtt.p95").source, "default");
        let got = r.messages.received_per_sec;
        assert!(got > 0.0);
        // Asked for a little more than it got: good, whatever the default band.
        r.config.rate = Some(got / 0.995);
        judge.apply(&mut r);
        let rate = a(&r, "rate");
        assert_eq!(
            (rate.verdict.as_str(), rate.source.as_str()),
            ("good", "requested")
        );
        assert!(
            assessment_basis(&rate).ends_with("asked)"),
            "{}",
            assessment_basis(&rate)
        );
        r.config.rate = Some(got / 0.97);
        judge.apply(&mut r);
        assert_eq!(a(&r, "rate").verdict, "acceptable");
        r.config.rate = Some(got / 0.5);
        judge.apply(&mut r);
        assert_eq!(a(&r, "rate").verdict, "poor");
        // A missed threshold says by how much.
        let t = &r.thresholds[0];
        assert!(
            missed_by(t).unwrap().starts_with("by "),
            "{:?}",
            missed_by(t)
        );
    }

    #[test]
    fn a_failed_error_threshold_outranks_the_success_bands() {
        let mut r = results();
        let verdict = |r: &RunResults, m: &str| {
            let a = r.assessment.iter().find(|a| a.metric == m).unwrap();
            (a.verdict.clone(), a.failed_threshold.clone())
        };
        // 1% of the messages and one connect failed.
        r.messages.failed = r.messages.received / 100;
        r.connections.failed = 1;
        r.connections.attempted += 1;
        for (expr, outranked, untouched) in [
            ("errors<0.01%", "message_success", "connect_success"),
            ("message_errors<0.01%", "message_success", "connect_success"),
            ("connect_errors<0.01%", "connect_success", "message_success"),
        ] {
            Judge::parse(&[expr.into()], &[]).unwrap().apply(&mut r);
            assert!(!r.thresholds[0].passed, "{expr}");
            assert_eq!(
                verdict(&r, outranked),
                ("poor".to_string(), Some(expr.to_string())),
                "{expr}"
            );
            assert_eq!(verdict(&r, untouched).1, None, "{expr}");
        }
        // Passed, they leave the bands alone.
        Judge::parse(&["errors<50%".into()], &[])
            .unwrap()
            .apply(&mut r);
        assert!(r.thresholds[0].passed);
        assert_eq!(verdict(&r, "message_success").1, None);
    }

    #[test]
    fn parses_each_operator() {
        for (e, op) in [
            ("rtt.p99<50ms", Op::Lt),
            ("rtt.p99<=50ms", Op::Le),
            ("rate>19000/s", Op::Gt),
            ("rate>=19000/s", Op::Ge),
            ("lost==0", Op::Eq),
            ("lost===0", Op::Eq),
            ("failed!=3", Op::Ne),
        ] {
            assert_eq!(parse(e).unwrap().op, op, "{e}");
        }
        assert!(parse("rtt.p99 = 5ms").is_err());
        assert!(parse("rtt.p99 50ms").unwrap_err().contains("no comparison"));
        assert!(parse("<5ms").unwrap_err().contains("no metric"));
        assert!(parse("rtt.p99<").unwrap_err().contains("no value"));
    }

    #[test]
    fn parses_units() {
        let l = |e: &str| parse(e).unwrap().limit;
        assert_eq!(l("rtt.p99<50ms"), 50_000.0);
        assert_eq!(l("rtt.p99<200us"), 200.0);
        assert_eq!(l("rtt.p99<200µs"), 200.0);
        assert_eq!(l("connect.p95 < 1.5s"), 1_500_000.0);
        assert_eq!(l("rtt.max<2m"), 120e6);
        assert_eq!(l("session.p99<1h"), 3600e6);
        assert_eq!(l("session.max<1.5h"), 5400e6);
        assert_eq!(l("rtt.min<500ns"), 0.5);
        assert!((l("errors<0.1%") - 0.001).abs() < 1e-12);
        assert_eq!(l("errors<0.001"), 0.001);
        assert_eq!(l("rate>=19000/s"), 19000.0);
        assert_eq!(l("rate>=19k/s"), 19000.0);
        assert_eq!(l("sent_rate>100"), 100.0);
        assert_eq!(l("established>=2k"), 2000.0);
        assert!(parse("rtt.p99<50").unwrap_err().contains("time unit"));
        assert!(parse("errors<5").unwrap_err().contains("percentage"));
        assert!(parse("rtt.p99<-5ms").is_err());
        assert!(parse("rate>fast").is_err());
    }

    #[test]
    fn unknown_metrics_list_the_known_ones() {
        let e = parse("latency.p99<5ms").unwrap_err();
        assert!(e.contains("unknown metric 'latency.p99'"), "{e}");
        assert!(
            e.contains("rtt.STAT") && e.contains("connect_errors"),
            "{e}"
        );
        assert!(parse("rtt.p0x<5ms").unwrap_err().contains("unknown metric"));
        assert!(parse("bogus<1").unwrap_err().contains("unknown metric"));
        assert!(parse("rtt<5ms").unwrap_err().contains("rtt.p99"));
        assert_eq!(parse("rtt.avg<5ms").unwrap().metric.name, "rtt.mean");
        assert_eq!(parse("rtt.med<5ms").unwrap().metric.name, "rtt.p50");
    }

    #[test]
    fn percentiles_read_names() {
        assert_eq!(percentile("p95"), Some(95.0));
        assert_eq!(percentile("p999"), Some(99.9));
        assert_eq!(percentile("p9999"), Some(99.99));
        assert_eq!(percentile("p99.5"), Some(99.5));
        assert_eq!(percentile("p0"), None);
        assert_eq!(percentile("px"), None);
    }

    #[test]
    fn evaluates_against_results() {
        let r = results();
        let p99 = r.latency.rtt.p99_us;
        let out = evaluate(
            &[
                parse(&format!("rtt.p99<{}us", p99 + 1.0)).unwrap(),
                parse(&format!("rtt.p99<{}us", p99)).unwrap(),
                parse(&format!("rtt.p99<={}us", p99)).unwrap(),
                parse("errors<0.1%").unwrap(),
                parse("rate>=1/s").unwrap(),
                parse("rate>=1000000000/s").unwrap(),
                parse("delivery.p99<1s").unwrap(),
            ],
            &r,
        );
        let passed: Vec<bool> = out.iter().map(|o| o.passed).collect();
        assert_eq!(passed, [true, false, true, true, true, false, false]);
        // No broadcast in the fixture: no data, which fails.
        assert_eq!(out[6].value, None);
        assert!(!all_passed(&out));
        assert!(all_passed(&out[..1]));
    }

    #[test]
    fn p95_comes_from_the_histogram() {
        let r = results();
        let m = parse_metric("rtt.p95").unwrap();
        let v = measure(&r, &m).unwrap();
        assert!(
            v >= r.latency.rtt.p50_us && v <= r.latency.rtt.p99_us,
            "{v}"
        );
    }

    #[test]
    fn ratios_are_defined() {
        let mut r = results();
        r.connections.attempted = 100;
        r.connections.failed = 2;
        r.messages.sent = 900;
        r.messages.failed = 3;
        r.errors.clear();
        r.errors.insert("protocol_error".into(), 5);
        let v = |n: &str| measure(&r, &parse_metric(n).unwrap()).unwrap();
        assert!((v("errors") - 10.0 / 1000.0).abs() < 1e-12);
        assert!((v("connect_errors") - 0.02).abs() < 1e-12);
    }

    #[test]
    fn bands_assess_and_parse() {
        let r = results();
        let custom = parse_band("rtt.p99=1us,2us;rate=1/s,0.5/s").unwrap();
        let bands = merge_bands(custom);
        let a = assess(&bands, &r);
        let p99 = a.iter().find(|a| a.metric == "rtt.p99").unwrap();
        assert_eq!(p99.verdict, "poor");
        assert_eq!(p99.good, 1.0);
        let rate = a.iter().find(|a| a.metric == "rate").unwrap();
        assert_eq!(rate.verdict, "good");
        assert!(!a.iter().any(|a| a.metric == "delivery.p99"));
        assert!(parse_band("rtt.p99=200ms,50ms").is_err());
        assert!(parse_band("rtt.p99=50ms").is_err());
        assert!(parse_band("nope=1,2")
            .unwrap_err()
            .contains("unknown metric"));
    }

    #[test]
    fn renders_pass_fail_and_values() {
        let mut r = results();
        r.thresholds = evaluate(
            &[parse("rtt.p99<1us").unwrap(), parse("errors<1%").unwrap()],
            &r,
        );
        r.assessment = assess(&default_bands(), &r);
        let text = render(&r);
        assert!(text.contains("Thresholds (1 of 2 passed)"), "{text}");
        assert!(text.contains("FAIL  rtt.p99<1us"), "{text}");
        assert!(text.contains("PASS  errors<1%"), "{text}");
        assert!(text.contains("Assessment"), "{text}");
        assert!(text.contains("(≤500.00ms / ≤2.00s)"), "{text}");
    }

    #[test]
    fn describes_a_verdict_in_words() {
        let r = results();
        let out = evaluate(
            &[
                parse("rtt.p99<1us").unwrap(),
                parse("delivery.p99<1ms").unwrap(),
            ],
            &r,
        );
        let a = describe(&out[0]);
        assert!(
            a.starts_with("rtt.p99 ") && a.ends_with("(SLO rtt.p99<1us)"),
            "{a}"
        );
        assert!(a.contains("ms") || a.contains("µs"), "{a}");
        assert_eq!(
            describe(&out[1]),
            "delivery.p99: no data (SLO delivery.p99<1ms)"
        );
    }
}
