//! The summary people read at the end of a run, in the spirit of wrk2 and k6:
//! what ran, latency distributions, throughput, connections, errors, and the
//! message ledger that shows every message is accounted for.
//!
//! This module is a layout: the header (what ran, where, how) is its own, and
//! every section below it comes from `report::summary`, which decides the rows;
//! here they are set in the terminal's columns, byte for byte as they always were
//! (tests/fixtures/results.txt holds one). The threshold and assessment lines
//! come from `crate::thresholds`. It must never import the engine, shards,
//! collector, config, cli or ceiling; results types come from `crate::results`,
//! numbers are formatted through `crate::vocab::fmt`.

use super::summary::{
    self, Amount, Block, LatencyRow, LatencyTable, Place, Row, Section, Unit, Value,
    LATENCY_COLUMNS,
};
use crate::results::{AgentsReport, MessageStats, RunResults};
use crate::vocab::fmt::{fmt_rate, fmt_us, group};
use std::fmt::Write;

/// The width of a throughput row's label (after the two-space indent).
const LABEL_COLUMN: usize = 10;

/// The message ledger in one line: `sent N = received R + failed F + in flight at
/// stop I  (balanced)`.
pub fn ledger(m: &MessageStats) -> String {
    phrase(&summary::ledger_row(m))
}

/// Renders the end-of-run summary.
pub fn render(r: &RunResults) -> String {
    let mut o = String::new();
    header(&mut o, r);
    agents(&mut o, r);
    let _ = writeln!(o);
    for (i, s) in summary::summarize(r).sections.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(o);
        }
        section(&mut o, s);
    }
    o.push_str(&crate::thresholds::render(r));
    fit(&o, WIDTH)
}

/// The summary's width: it fits an 80-column terminal.
pub const WIDTH: usize = 80;

/// `text` with every line longer than `width` columns broken at spaces, the
/// rest indented under the line's own start (4 more spaces): a long header,
/// memory or rate line reads as a paragraph instead of wrapping anywhere.
pub fn fit(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if body.chars().count() <= width {
            out.push_str(line);
            continue;
        }
        let indent = body.len() - body.trim_start().len();
        let more = format!("{}    ", &body[..indent]);
        let mut current = String::from(&body[..indent]);
        for (i, word) in body[indent..].split(' ').enumerate() {
            // Runs of spaces (columns) stay: an empty word adds its space.
            let sep = if i == 0 { "" } else { " " };
            let over = current.chars().count() + sep.len() + word.chars().count() > width;
            if over && !word.is_empty() && !current.trim().is_empty() {
                out.push_str(current.trim_end());
                out.push('\n');
                current = more.clone();
            } else {
                current.push_str(sep);
            }
            current.push_str(word);
        }
        out.push_str(current.trim_end());
        out.push_str(nl);
    }
    out
}

/// A distributed run's agents (`wsherd k8s run`): how many reported, which
/// are missing and why (the figures are then the others' share only), which
/// started late, and what to keep in mind.
fn agents(o: &mut String, r: &RunResults) {
    let Some(a) = &r.agents else {
        return;
    };
    for (i, line) in agent_lines(a).iter().enumerate() {
        let _ = writeln!(o, "{}{line}", if i == 0 { "" } else { "  " });
    }
}

/// The agents block's lines, unindented: the count first, then each missing
/// agent, each late one and each note. The CSV's `#` lines say the same.
pub(crate) fn agent_lines(a: &AgentsReport) -> Vec<String> {
    let mut lines = vec![format!(
        "Agents: {} of {} reported, merged as one run{}",
        a.reported.len(),
        a.expected,
        if a.missing.is_empty() {
            ""
        } else {
            " (the figures are the reporting agents' share only)"
        }
    )];
    for m in &a.missing {
        let pod = if m.pod.is_empty() {
            String::new()
        } else {
            format!(" (pod {})", m.pod)
        };
        lines.push(format!(
            "MISSING agent {}/{}{pod}: {}",
            m.agent, a.expected, m.reason
        ));
    }
    for l in &a.late {
        lines.push(format!(
            "LATE agent {}/{}: started {:.1} s after the others were due",
            l.agent, a.expected, l.secs
        ));
    }
    for n in &a.notes {
        lines.push(format!("note: {n}"));
    }
    // A pod's name and a reason come from the cluster: a line break (or any
    // control character) in them would break the block's layout, and end a
    // CSV comment line to start a row.
    lines
        .into_iter()
        .map(|l| {
            l.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        })
        .collect()
}

/// What ran: version and targets, source addresses, the workload and its pacing,
/// shards, driver and time.
fn header(o: &mut String, r: &RunResults) {
    let c = &r.config;
    let target = if c.embedded_server {
        format!(
            "{} (built-in server, cores {:?})",
            c.targets.join(" "),
            r.host.server_cores
        )
    } else {
        c.targets.join(" ")
    };
    let _ = writeln!(o, "wsherd {}  {target}", r.wsherd_version);
    if !c.proxies.is_empty() {
        let _ = writeln!(o, "  through proxy {}", c.proxies.join(" "));
    }
    if !c.source_ips.is_empty() {
        let n = c.source_ips.len();
        let shown = if n <= 4 {
            c.source_ips.join(" ")
        } else {
            format!("{} .. {}", c.source_ips[0], c.source_ips[n - 1])
        };
        let _ = writeln!(
            o,
            "  from {n} source address{} ({shown})",
            if n == 1 { "" } else { "es" }
        );
    }
    let _ = writeln!(
        o,
        "  {} workload, {} connections, {}s, {}",
        c.workload,
        group(c.connections),
        c.duration_secs,
        what_is_sent(r)
    );
    if let Some(ptr) = &c.correlate {
        let _ = writeln!(o, "  replies matched to requests by {ptr} (any order)");
    }
    if let Some(p) = &r.protocol {
        match (&p.namespace, &p.event) {
            (Some(ns), Some(ev)) => {
                let _ = writeln!(o, "  over Socket.IO: namespace {ns}, emitting '{ev}'");
            }
            _ => {
                let _ = writeln!(o, "  over {}", p.name);
            }
        }
    }
    let _ = writeln!(
        o,
        "  {} shard{} on cores {:?}, {} driver{}, ran {:.1}s{}",
        c.shards,
        if c.shards == 1 { "" } else { "s" },
        r.host.shard_cores,
        r.host.io_driver,
        if r.host.timer.is_empty() || r.config.pacing != "open" {
            String::new()
        } else {
            format!(", {} timer", r.host.timer)
        },
        r.elapsed_secs,
        if r.interrupted {
            "  ** INTERRUPTED: partial results **"
        } else if r.gave_up.is_some() {
            "  ** GAVE UP: nothing reachable **"
        } else {
            ""
        }
    );
}

/// What the connections send and how it is paced, as the header says it: a
/// heartbeat's PINGs, nothing at all (a hold), or messages in a closed or open
/// loop (a staged rate by its stages, not its mean).
pub(crate) fn what_is_sent(r: &RunResults) -> String {
    let c = &r.config;
    if let Some(h) = c.heartbeat_secs {
        let total = c.rate.map_or(String::new(), |rate| {
            format!(" ({}/s in all)", fmt_rate(rate))
        });
        return format!(
            "a {}-byte PING every {} per connection, timed by its PONG{total}",
            c.message_size,
            fmt_secs(h)
        );
    }
    if c.pacing == "hold" {
        return "holding the connections open (no messages)".into();
    }
    let what = if c.workload == "ping" {
        format!("{}-byte PINGs", c.message_size)
    } else {
        format!("{}-byte {} messages", c.message_size, c.message_kind)
    };
    format!("{what}{}", pacing(r))
}

/// Seconds as a flag would give them: `30s`, `1.5s`, `0.25s`.
fn fmt_secs(s: f64) -> String {
    format!("{}s", (s * 1000.0).round() / 1000.0)
}

/// A scenario file's results: each scenario's summary, the total's, then a
/// table comparing the scenarios (rate, latency, errors, verdict), as k6's
/// end-of-test summary does.
pub fn render_scenarios(res: &crate::results::ScenarioResults) -> String {
    let mut text = String::new();
    for s in &res.scenarios {
        text.push_str(&format!("=== scenario {} ===\n", s.name));
        text.push_str(&render(&s.results));
        text.push('\n');
    }
    text.push_str(&format!(
        "=== total ({} scenarios, {}) ===\n",
        res.scenarios.len(),
        res.mode
    ));
    text.push_str(&render(&res.total));
    text.push_str(&comparison(res));
    text
}

/// One row per scenario: received per second, round trip p50 and p99, errors
/// (connections failed or lost, messages failed), and the thresholds' verdict.
fn comparison(res: &crate::results::ScenarioResults) -> String {
    let mut o = String::from("\nScenarios\n");
    let width = res
        .scenarios
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 24);
    let _ = writeln!(
        o,
        "  {:<width$}  {:>10}  {:>8}  {:>8}  {:>7}  verdict",
        "scenario", "rate", "p50", "p99", "errors"
    );
    for s in &res.scenarios {
        let r = &s.results;
        let errors = r.connections.failed + r.connections.lost + r.messages.failed;
        let verdict = if r.thresholds.is_empty() {
            "-".to_string()
        } else {
            let failed = r.thresholds.iter().filter(|t| !t.passed).count();
            if failed == 0 {
                "PASS".to_string()
            } else {
                format!("FAIL ({failed} of {})", r.thresholds.len())
            }
        };
        let name: String = s.name.chars().take(width).collect();
        let _ = writeln!(
            o,
            "  {name:<width$}  {:>10}  {:>8}  {:>8}  {:>7}  {verdict}",
            format!("{}/s", fmt_rate(r.messages.received_per_sec)),
            fmt_us(r.latency.rtt.p50_us),
            fmt_us(r.latency.rtt.p99_us),
            group(errors)
        );
    }
    o
}

/// How messages were paced, after what is sent (nothing for sessions, whose
/// pace is their own section's).
fn pacing(r: &RunResults) -> String {
    let c = &r.config;
    match (c.pacing.as_str(), c.rate) {
        _ if r.sessions.is_some() => String::new(),
        ("closed", _) => format!(", closed loop, {} in flight per connection", c.inflight),
        ("open", Some(_)) if !c.rate_stages.is_empty() => {
            let mut s = String::from(", open loop, rate 0");
            let mut last = 0.0;
            for st in &c.rate_stages {
                if st.target == last {
                    s += &format!(", held {}", fmt_secs(st.secs));
                } else {
                    s += &format!(" → {}/s over {}", fmt_rate(st.target), fmt_secs(st.secs));
                }
                last = st.target;
            }
            s
        }
        ("open", Some(rate)) => {
            let (senders, who) = match &r.broadcast {
                Some(b) => (b.publishers, "publisher"),
                None => (c.connections, "connection"),
            };
            format!(
                ", open loop at {} msg/s ({}/s per {who})",
                fmt_rate(rate),
                fmt_rate(rate / senders.max(1) as f64)
            )
        }
        _ => String::new(),
    }
}

/// A section: its title on a line of its own (in the header of a latency table
/// that opens it, before the problems of an errors line), then its blocks.
fn section(o: &mut String, s: &Section) {
    match s.blocks.first() {
        Some(Block::Latency(t)) if t.heading.is_none() => {}
        Some(Block::Problems(_)) => {}
        _ if s.title.is_empty() => {}
        _ => {
            let _ = writeln!(o, "{}", s.title);
        }
    }
    for b in &s.blocks {
        match b {
            Block::Rows(rows) => lines(o, rows),
            Block::Latency(t) => latency_table(o, &s.title, t),
            Block::Note(text) => {
                for line in text {
                    let _ = writeln!(o, "  {line}");
                }
            }
            Block::Warning(text) => {
                for line in text {
                    let _ = writeln!(o, "  ! {line}");
                }
            }
            Block::Problems(p) if p.is_empty() => {
                let _ = writeln!(o, "{}: none", s.title);
            }
            Block::Problems(p) => {
                let _ = writeln!(o, "{}: {}", s.title, p.join("; "));
            }
        }
    }
}

/// A latency table: its header (the section's title, or its own heading
/// indented), then a row per kind.
fn latency_table(o: &mut String, title: &str, t: &LatencyTable) {
    let head = match t.heading {
        Some(h) => format!("  {h}"),
        None => title.to_string(),
    };
    // At 80 columns: p90 stays in the JSON, the page and the .hgrm files.
    let c = LATENCY_COLUMNS;
    let _ = writeln!(
        o,
        "{head:<13}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}",
        c[0], c[1], c[2], c[4], c[5], c[6], c[7]
    );
    for row in &t.rows {
        latency_row(o, row);
    }
}

fn latency_row(o: &mut String, row: &LatencyRow) {
    let name = &row.name;
    match &row.cells {
        None => {
            let _ = writeln!(o, "  {name:<11} (no samples)");
        }
        Some(c) => {
            let _ = writeln!(
                o,
                "  {name:<11}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}",
                c[0], c[1], c[2], c[4], c[5], c[6], c[7]
            );
        }
    }
}

/// Rows as lines: quiet rows left out, consecutive `Run` (or `List`) rows on one
/// line.
fn lines(o: &mut String, rows: &[Row]) {
    let mut line = String::new();
    let mut joining: Option<Place> = None;
    for row in rows.iter().filter(|r| !r.quiet) {
        let sep = match row.place {
            Place::Run => "  ",
            Place::List => ", ",
            Place::Column | Place::Line => "",
        };
        if joining == Some(row.place) && !sep.is_empty() {
            line.push_str(sep);
        } else {
            if joining.is_some() {
                let _ = writeln!(o, "  {line}");
            }
            line.clear();
        }
        line.push_str(&phrase(row));
        joining = Some(row.place);
    }
    if joining.is_some() {
        let _ = writeln!(o, "  {line}");
    }
}

/// A row as the text says it.
fn phrase(row: &Row) -> String {
    let value = value(&row.value);
    match row.place {
        Place::Column => format!("{:<LABEL_COLUMN$}{value}", row.label),
        Place::Run | Place::List => format!("{} {value}", row.label),
        Place::Line => format!("{}: {value}", row.label),
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Amounts(a) => amounts(a),
        Value::Check { text, verdict, .. } => format!("{text}  ({verdict})"),
    }
}

/// Amounts in the throughput columns: `{:>14} msgs {:>12}/s  {:>14} bytes`.
fn amounts(a: &[Amount]) -> String {
    let cells: Vec<String> = a
        .iter()
        .map(|x| match x.unit {
            Unit::Of(unit) => format!("{:>14} {unit}", x.value),
            // A rate keeps a space clear of the column after it.
            Unit::PerSecond => format!("{:>12}/s ", x.value),
        })
        .collect();
    cells.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{BroadcastStats, Latencies};

    /// A summary with its long lines joined again (their continuations are
    /// indented six spaces under a two-space line).
    fn unwrapped(text: &str) -> String {
        text.replace("\n      ", " ")
    }

    fn fixture() -> RunResults {
        serde_json::from_str(include_str!("../../tests/fixtures/results.json")).unwrap()
    }

    /// An open loop whose send lag is much of the corrected round trip says so
    /// (text and page), and the header gives rates without ambiguous decimals.
    #[test]
    fn send_lag_that_dominates_the_round_trip_is_called_out() {
        let mut r = fixture();
        r.config.pacing = "open".into();
        r.config.rate = Some(200.0);
        r.config.connections = 10;
        let mut lag = r.latency.rtt.clone();
        lag.p50_us = r.latency.rtt.p50_us * 0.8;
        let mut raw = r.latency.rtt.clone();
        raw.p50_us = r.latency.rtt.p50_us * 0.2;
        r.latency.send_lag = Some(lag.clone());
        r.latency.rtt_uncorrected = Some(raw);
        r.latency.send_lag_share = Latencies::lag_share(&r.latency.rtt, Some(&lag));
        assert!((r.latency.send_lag_share.unwrap() - 0.8).abs() < 1e-9);
        let text = unwrapped(&render(&r));
        assert!(
            text.contains("open loop at 200 msg/s (20/s per connection)"),
            "{text}"
        );
        assert!(
            text.contains("  ! send lag is 80% of round trip p50"),
            "{text}"
        );
        assert!(text.contains("wsherd's own timer sending late"), "{text}");
        let page = crate::report::html::render(&r);
        assert!(
            page.contains("<p class=\"warning\">Send lag is 80%"),
            "no warning on the page"
        );
        // A small share: no warning.
        lag.p50_us = r.latency.rtt.p50_us * 0.1;
        r.latency.send_lag = Some(lag.clone());
        r.latency.send_lag_share = Latencies::lag_share(&r.latency.rtt, Some(&lag));
        assert!(!render(&r).contains("! send lag"));
    }

    /// The header says what the workload sends: a heartbeat's PINGs, nothing
    /// for a hold, a staged rate by its stages; memory with nothing held at a
    /// sample is no "0.0 MiB with 0 open"; broadcast counts copies like bytes.
    #[test]
    fn the_header_says_what_the_workload_does() {
        let mut r = fixture();
        r.config.workload = "idle".into();
        r.config.heartbeat_secs = Some(1.0);
        r.config.rate = Some(20.0);
        assert_eq!(
            what_is_sent(&r),
            "a 64-byte PING every 1s per connection, timed by its PONG (20/s in all)"
        );
        r.config.heartbeat_secs = None;
        r.config.pacing = "hold".into();
        assert_eq!(
            what_is_sent(&r),
            "holding the connections open (no messages)"
        );

        let mut r = fixture();
        r.config.rate = Some(1600.0);
        r.config.rate_stages = vec![
            crate::results::RateStage {
                secs: 10.0,
                target: 1000.0,
            },
            crate::results::RateStage {
                secs: 20.0,
                target: 2000.0,
            },
            crate::results::RateStage {
                secs: 30.0,
                target: 2000.0,
            },
        ];
        assert_eq!(
            what_is_sent(&r),
            "64-byte binary messages, open loop, rate 0 → 1,000/s over 10s → 2,000/s over 20s, held 30s"
        );
        let text = unwrapped(&render(&r));
        assert!(text.contains("requested 1,600/s on average"), "{text}");
        assert!(!text.contains("open loop at 1,600"), "{text}");

        let mut r = fixture();
        let m = r.memory.as_mut().unwrap();
        m.held_connections = 0;
        m.held_rss_kib = 0;
        let text = unwrapped(&render(&r));
        assert!(!text.contains("with 0 open"), "{text}");
        assert!(
            text.contains("no connection was open at a sample"),
            "{text}"
        );

        let mut r = fixture();
        r.broadcast = Some(BroadcastStats {
            publishers: 1,
            receivers: 5,
            published: 200,
            expected: 1000,
            delivered: 1000,
            missing: 0,
            duplicates: 0,
            undelivered_at_stop: 0,
            delivered_per_sec: 500.0,
        });
        r.messages.bytes_received = 66_000;
        let text = unwrapped(&render(&r));
        assert!(text.contains("1,000 copies"), "{text}");
        assert!(text.contains("66,000 bytes"), "{text}");
    }

    /// Every line of a summary fits 80 columns; a long one breaks at spaces
    /// and goes on indented, columns (runs of spaces) kept.
    #[test]
    fn the_summary_fits_80_columns() {
        let mut r = fixture();
        r.config.targets =
            vec!["wss://a-rather-long-host-name.example.com:8443/some/deep/path?token=abc".into()];
        let text = render(&r);
        for line in text.lines() {
            assert!(
                line.chars().count() <= WIDTH,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(text.contains("  attempted 20  established 20"), "{text}");
        let wrapped = fit("  one two three four five six seven\n", 16);
        assert_eq!(
            wrapped,
            "  one two three\n      four five\n      six seven\n"
        );
        assert_eq!(fit("a  b\n", 80), "a  b\n");
    }

    /// Rows placed together share a line; quiet rows stay out; causes follow.
    #[test]
    fn rows_join_as_the_summary_always_read() {
        let mut r = fixture();
        r.broadcast = Some(BroadcastStats {
            publishers: 1,
            receivers: 20,
            published: 396,
            expected: 7920,
            delivered: 7919,
            missing: 1,
            duplicates: 2,
            undelivered_at_stop: 0,
            delivered_per_sec: 3960.4,
        });
        let k = &mut r.connections;
        k.failed = 3;
        k.failed_by_cause = [("refused".to_string(), 3)].into();
        k.lost = 0;
        k.close_codes.clear();
        let text = unwrapped(&render(&r));
        for line in [
            "Broadcast (1 publisher, 20 receivers)\n  published 396  expected copies 7,920 = delivered 7,919 + missing 1 + undelivered at stop 0\n  deliveries 3,960/s, duplicates 2\n",
            "  failed by cause: refused 3\n",
            "Errors: 3 connections failed to open (refused 3)",
        ] {
            assert!(text.contains(line), "{line}\nnot in\n{text}");
        }
        assert!(!text.contains("lost during the run"));
        assert!(!text.contains("by code"));
        assert_eq!(
            ledger(&r.messages),
            format!(
                "sent {} = received {} + failed {} + in flight at stop {}  (balanced)",
                group(r.messages.sent),
                group(r.messages.received),
                group(r.messages.failed),
                group(r.messages.in_flight_at_stop)
            )
        );
    }
}
