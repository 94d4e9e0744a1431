//! The per-second series as CSV, for spreadsheets and plotting scripts: one row
//! per second of the run (the drain after the stop included), rendered from
//! `RunResults::series`. Latencies are in milliseconds with 3 decimals (µs
//! resolution); rates are per second because each row covers one second.
//!
//! Reads only the results and the vocabulary.

use crate::results::RunResults;
use std::fmt::Write;

/// The header row.
pub const HEADER: &str = "t_s,open,connects,connect_failures,sent_per_s,received_per_s,errors_per_s,rtt_p50_ms,rtt_p90_ms,rtt_p99_ms,rtt_max_ms";

/// The series as CSV text (header row first, `\n` line ends).
pub fn render(r: &RunResults) -> String {
    let mut o = String::with_capacity(64 * (r.series.len() + 1));
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
