//! A ceiling search as people read it: one line per step while it runs, then the
//! table of every step, the finding in one sentence, and the whole run's ledger.
//! Rendered from `CeilingResults` alone (the search's results types are all this
//! takes from `ceiling`).
//!
//! Reads only the search's results and the vocabulary; the controller calls
//! `step_line`, never the other way round.

use crate::results::ceiling::{CeilingResults, Step};
use crate::vocab::fmt::{fmt_level, fmt_us, group};
use crate::vocab::kinds::Dimension;
use std::fmt::Write;

/// The live line of a judged step (stderr while the search runs).
pub fn step_line(s: &Step, d: &Dimension) -> String {
    let unit = d.unit();
    format!(
        "step {:>2}{} {:>10} {unit}: p50 {} p99 {}, errors {:.2}%, {}/s answered{}  {}{}",
        s.index,
        mark(s),
        fmt_level(s.level),
        fmt_us(s.rtt_p50_us),
        fmt_us(s.rtt_p99_us),
        s.error_ratio * 100.0,
        fmt_level(s.received_per_sec),
        if *d == Dimension::Connections {
            format!(", {} open", group(s.open_min))
        } else {
            String::new()
        },
        if s.passed { "PASS" } else { "FAIL: " },
        s.reasons.join("; ")
    )
}

/// After a step's number: `c` measured again (it had failed once), `!` failed
/// far beyond the SLO (counted at once).
fn mark(s: &Step) -> &'static str {
    if s.confirm {
        "c"
    } else if s.far_beyond {
        "!"
    } else {
        " "
    }
}

/// The client's busiest shard, as a share of a core.
fn cpu(s: &Step) -> String {
    format!("{:.0}%", s.client.busiest_cpu().unwrap_or(0.0) * 100.0)
}

/// The summary of a search.
pub fn render(c: &CeilingResults) -> String {
    let mut o = String::new();
    let r = &c.run;
    let target = if r.config.embedded_server {
        format!("{} (built-in server)", r.config.targets.join(" "))
    } else {
        r.config.targets.join(" ")
    };
    let _ = writeln!(
        o,
        "Ceiling search: {} of {target}, {} workload ({} B {}), SLO {}",
        c.dimension,
        r.config.workload,
        r.config.message_size,
        r.config.message_kind,
        c.slo.join(", ")
    );
    let _ = writeln!(
        o,
        "  from {} to {} {}{}, ×{} per step until one fails, then bisected to {:.1}%; each step {:.0} s after {:.0} s to settle{}",
        fmt_level(c.start),
        fmt_level(c.max),
        c.unit,
        c.max_reason
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default(),
        c.growth,
        c.precision * 100.0,
        c.step_secs,
        c.settle_secs,
        if c.dimension == "connections" {
            String::new()
        } else {
            format!(", over {} connections", group(r.config.connections))
        }
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "  {:>4}  {:>12}  {:>9}  {:>9}  {:>9}  {:>7}  {:>10}  {:>10}  {:>15}  {:>6}  result",
        "step", c.unit, "p50", "p99", "max", "errors", "sent/s", "answered/s", "open", "client"
    );
    for s in &c.steps {
        let _ = writeln!(
            o,
            "  {:>3}{}  {:>12}  {:>9}  {:>9}  {:>9}  {:>6.2}%  {:>10}  {:>10}  {:>15}  {:>6}  {}",
            s.index,
            mark(s),
            fmt_level(s.level),
            fmt_us(s.rtt_p50_us),
            fmt_us(s.rtt_p99_us),
            fmt_us(s.rtt_max_us),
            s.error_ratio * 100.0,
            fmt_level(s.sent_per_sec),
            fmt_level(s.received_per_sec),
            format!("{}-{}", group(s.open_min), group(s.open_max)),
            cpu(s),
            if s.passed {
                "PASS".to_string()
            } else {
                format!("FAIL  {}", s.reasons.join("; "))
            }
        );
    }
    if c.steps.is_empty() {
        let _ = writeln!(o, "  (no step was measured)");
    }
    if c.steps.iter().any(|s| s.confirm) {
        let _ = writeln!(
            o,
            "  c: the level failed once and was measured again before the failure counted"
        );
    }
    if c.steps.iter().any(|s| s.far_beyond) {
        let _ = writeln!(
            o,
            "  !: failed far beyond the SLO (4x a limit, or answered at under half the level): counted at once"
        );
    }
    let _ = writeln!(
        o,
        "  client: CPU of the busiest load shard (100% = a full core)"
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "{}", c.verdict);
    let m = &r.messages;
    let k = &r.connections;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "The whole run ({:.0} s): connections {} attempted, {} established, {} failed; messages {}",
        r.elapsed_secs,
        group(k.attempted),
        group(k.established),
        group(k.failed),
        crate::report::text::ledger(m)
    );
    o
}
