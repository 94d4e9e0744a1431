//! The per-second series as CSV, for spreadsheets and plotting scripts: one row
//! per second of the run (the drain after the stop included), rendered from
//! `RunResults::series`. Latencies are in milliseconds with 3 decimals (µs
//! resolution); rates are per second because each row covers one second.
//!
//! A distributed run's CSV (`wsherd k8s run`) with an agent missing or late
//! opens with `#` lines before the header, the text summary's agents block:
//! how many agents reported (with one missing, the rows are the others' share
//! only), each missing one and why, each late one. Plotting tools skip them as
//! comments (gnuplot, numpy's `loadtxt`, pandas' `comment='#'`); a spreadsheet
//! shows them above the table; a plain CSV reader stumbles on them, which a
//! partial run should make it do. An ordinary run's CSV, and a distributed
//! run whose agents all reported on time, has none: the header comes first.
//!
//! Reads only the results, the text summary's agent lines and the vocabulary.

use super::text::agent_lines;
use crate::results::RunResults;
use std::fmt::Write;

/// The header row.
pub const HEADER: &str = "t_s,open,connects,connect_failures,sent_per_s,received_per_s,errors_per_s,rtt_p50_ms,rtt_p90_ms,rtt_p99_ms,rtt_max_ms";

/// The series as CSV text (header row first but for a distributed run's `#`
/// lines, `\n` line ends).
pub fn render(r: &RunResults) -> String {
    let mut o = String::with_capacity(64 * (r.series.len() + 1));
    agents(&mut o, r);
    o.push_str(HEADER);
    o.push('\n');
    let ms = |us: f64| us / 1000.0;
    for s in &r.series {
        let _ = writeln!(
            o,
            "{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3}",
            s.t,
            s.open,
            s.connects,
            s.connect_failures,
            s.sent,
            s.received,
            s.errors,
            ms(s.rtt_p50_us),
            ms(s.rtt_p90_us),
            ms(s.rtt_p99_us),
            ms(s.rtt_max_us)
        );
    }
    o
}

/// A distributed run's agents as `#` lines above the header when one is
/// missing or late; nothing otherwise.
fn agents(o: &mut String, r: &RunResults) {
    let Some(a) = r
        .agents
        .as_ref()
        .filter(|a| !a.missing.is_empty() || !a.late.is_empty())
    else {
        return;
    };
    // agent_lines has made every control character a space: no line break in
    // a pod's name or reason can end the comment and start a row.
    for line in agent_lines(a) {
        let _ = writeln!(o, "# {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{AgentsReport, LateAgent, MissingAgent};

    fn fixture() -> RunResults {
        serde_json::from_str(include_str!("../../tests/fixtures/results.json")).unwrap()
    }

    /// A partial distributed run says so above the header, a line per missing
    /// or late agent; a reason's line break cannot forge a row.
    #[test]
    fn a_distributed_run_opens_with_its_agents() {
        let mut r = fixture();
        r.agents = Some(AgentsReport {
            expected: 3,
            reported: vec![1, 2],
            missing: vec![MissingAgent {
                agent: 3,
                pod: "wsherd-x-2-abcde".into(),
                reason: "Failed: <script>alert(1)</script>\n9,9,9".into(),
            }],
            start_at_unix: r.started_at_unix,
            late: vec![LateAgent {
                agent: 2,
                secs: 4.3,
            }],
            notes: vec!["one-way latencies compare the clocks of different hosts".into()],
        });
        let csv = render(&r);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[..5],
            [
                "# Agents: 2 of 3 reported, merged as one run (the figures are the reporting agents' share only)",
                "# MISSING agent 3/3 (pod wsherd-x-2-abcde): Failed: <script>alert(1)</script> 9,9,9",
                "# LATE agent 2/3: started 4.3 s after the others were due",
                "# note: one-way latencies compare the clocks of different hosts",
                HEADER,
            ]
        );
        assert_eq!(lines.len(), 5 + r.series.len());
        // Below the header, the rows an ordinary run has.
        r.agents = None;
        let plain = render(&r);
        assert!(csv.ends_with(&plain), "{csv}");
    }

    /// An ordinary run's CSV starts with its header: no `#` line; so does a
    /// distributed run's whose agents all reported on time.
    #[test]
    fn an_ordinary_run_has_no_agent_lines() {
        let csv = render(&fixture());
        assert!(csv.starts_with(HEADER), "{csv}");
        assert!(!csv.contains('#'), "{csv}");
        assert_eq!(csv.lines().count(), 1 + fixture().series.len());
        let mut whole = fixture();
        whole.agents = Some(AgentsReport {
            expected: 2,
            reported: vec![1, 2],
            notes: vec!["one-way latencies compare the clocks of different hosts".into()],
            ..Default::default()
        });
        assert_eq!(render(&whole), csv);
    }
}
