//! The live progress line of a run, once a second on stderr.
//!
//! On a terminal it is an indicatif progress bar (elapsed/total time, the bar, the
//! current stage of a staged run, and the second's figures) redrawn in place; on
//! anything else (CI logs, pipes) it is one plain line per second, so logs stay
//! readable and greppable. It draws from the collector's per-second rows only.

use crate::results::SecondStats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// A stage of a staged run: where it ends (seconds) and its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageMark {
    pub end_secs: f64,
    pub target: f64,
    /// The target is messages per second (rate stages), not connections.
    pub rate: bool,
}

/// Stage marks from a load profile (empty for a profile of one stage).
pub fn stage_marks(profile: Option<&crate::pacer::Profile>, rate: bool) -> Vec<StageMark> {
    let ends = profile.map(|p| p.stage_ends()).unwrap_or_default();
    if ends.len() < 2 {
        return Vec::new();
    }
    ends.into_iter()
        .map(|(end_secs, target)| StageMark {
            end_secs,
            target,
            rate,
        })
        .collect()
}

/// "stage 2/3 → 1000 conns" for the second starting at `t`.
pub fn stage_label(stages: &[StageMark], t: u64) -> Option<String> {
    if stages.is_empty() {
        return None;
    }
    let i = stages
        .iter()
        .position(|s| (t as f64) < s.end_secs)
        .unwrap_or(stages.len() - 1);
    let s = stages[i];
    let what = if s.rate {
        format!("{:.0} msg/s", s.target)
    } else {
        format!("{:.0} conns", s.target)
    };
    Some(format!("stage {}/{} → {what}", i + 1, stages.len()))
}

/// The figures of one second, as the progress line shows them: compact, so
/// that with the bar they fit a terminal's width (the bar's message is cut to
/// what is left of it).
pub fn figures(r: &SecondStats) -> String {
    use crate::vocab::fmt::fmt_us;
    format!(
        "open {}  out {}/s  in {}/s  p50 {}  p99 {}  err {}",
        short(r.open),
        short(r.sent),
        short(r.received),
        fmt_us(r.rtt_p50_us),
        fmt_us(r.rtt_p99_us),
        short(r.errors)
    )
}

/// A count in at most five characters: `999`, `12.3k`, `123k`, `1.23M`.
fn short(n: u64) -> String {
    let f = n as f64;
    match n {
        0..=9_999 => crate::vocab::fmt::group(n),
        10_000..=99_999 => format!("{:.1}k", f / 1e3),
        100_000..=999_999 => format!("{:.0}k", f / 1e3),
        _ => format!("{:.2}M", f / 1e6),
    }
}

/// Terminals narrower than this show the figures without the bar (the time
/// and the figures then fit 80 columns).
const BAR_FROM_COLUMNS: u16 = 100;

/// The plain line for one second (no terminal).
pub fn plain_line(r: &SecondStats, total: Duration, stages: &[StageMark]) -> String {
    // Rows past the duration are the drain and close after the stop.
    let label = if r.t >= total.as_secs() {
        "  drain".to_string()
    } else {
        format!("{:>4}s/{}s", r.t + 1, total.as_secs())
    };
    let stage = match stage_label(stages, r.t) {
        Some(s) if r.t < total.as_secs() => format!("  {s}"),
        _ => String::new(),
    };
    format!("[{label}]{stage} {}", figures(r))
}

/// Draws the progress: a bar on a terminal, plain lines otherwise.
pub struct Live {
    total: Duration,
    stages: Vec<StageMark>,
    bar: Option<ProgressBar>,
}

impl Live {
    pub fn new(total: Duration, stages: Vec<StageMark>) -> Live {
        Live::with_terminal(total, stages, std::io::stderr().is_terminal())
    }

    /// `tty` decides between the bar and plain lines.
    pub fn with_terminal(total: Duration, stages: Vec<StageMark>, tty: bool) -> Live {
        let bar = tty.then(|| {
            let b = ProgressBar::with_draw_target(
                Some(total.as_secs().max(1)),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            // `wide_msg`: the figures take what the terminal has left, and are
            // cut there rather than wrapped onto a second line; a narrow
            // terminal gets no bar, so that at 80 columns the figures fit.
            let wide = console::Term::stderr()
                .size_checked()
                .is_none_or(|(_, cols)| cols >= BAR_FROM_COLUMNS);
            let template = if wide {
                "{prefix:>9} [{bar:12.cyan/blue}] {wide_msg}"
            } else {
                "{prefix:>9} {wide_msg}"
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            b.set_style(style);
            b.set_prefix(format!("0s/{}s", total.as_secs()));
            b
        });
        Live { total, stages, bar }
    }

    /// Shows one finished second.
    pub fn row(&mut self, r: &SecondStats) {
        match &self.bar {
            Some(b) => {
                let secs = self.total.as_secs();
                let done = (r.t + 1).min(secs);
                b.set_position(done);
                if r.t >= secs {
                    b.set_prefix("drain");
                } else {
                    b.set_prefix(format!("{}s/{}s", r.t + 1, secs));
                }
                let stage = match stage_label(&self.stages, r.t) {
                    Some(s) if r.t < secs => format!("{s}  "),
                    _ => String::new(),
                };
                b.set_message(format!("{stage}{}", figures(r)));
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{}", plain_line(r, self.total, &self.stages));
            }
        }
    }

    /// Leaves the last bar on screen and moves past it.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: u64) -> SecondStats {
        SecondStats {
            t,
            open: 10,
            sent: 100,
            received: 99,
            ..Default::default()
        }
    }

    /// A busy second's figures and the time fit 80 columns without the bar.
    #[test]
    fn figures_fit_80_columns() {
        let mut r = row(59);
        r.open = 100_000;
        r.sent = 123_456;
        r.received = 123_456;
        r.rtt_p50_us = 12_345.0;
        r.rtt_p99_us = 123_456.0;
        r.errors = 1_234;
        let line = format!("{:>9} {}", "60s/60s", figures(&r));
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
        assert_eq!(short(9_999), "9,999");
        assert_eq!(short(20_000), "20.0k");
        assert_eq!(short(123_456), "123k");
        assert_eq!(short(3_531_840), "3.53M");
    }

    #[test]
    fn plain_lines_have_no_escapes() {
        let line = plain_line(&row(2), Duration::from_secs(10), &[]);
        assert!(
            line.starts_with("[   3s/10s] open 10  out 100/s  in 99/s"),
            "{line}"
        );
        // With the bar's prefix (9) and a 12-column bar, a busy second fits 100
        // columns whole; a narrower terminal cuts the message (`wide_msg`)
        // rather than wrapping it.
        let busy = SecondStats {
            t: 2,
            open: 100_000,
            sent: 250_000,
            received: 250_000,
            errors: 3,
            ..Default::default()
        };
        assert!(
            9 + 2 + 12 + 2 + figures(&busy).len() <= 100,
            "{}",
            figures(&busy)
        );
        assert!(!line.contains('\x1b') && !line.contains('\r'));
        let drain = plain_line(&row(10), Duration::from_secs(10), &[]);
        assert!(drain.starts_with("[  drain]"), "{drain}");
    }

    #[test]
    fn stages_are_named() {
        let stages = vec![
            StageMark {
                end_secs: 2.0,
                target: 100.0,
                rate: false,
            },
            StageMark {
                end_secs: 5.0,
                target: 100.0,
                rate: false,
            },
            StageMark {
                end_secs: 6.0,
                target: 0.0,
                rate: false,
            },
        ];
        assert_eq!(stage_label(&stages, 0).unwrap(), "stage 1/3 → 100 conns");
        assert_eq!(stage_label(&stages, 2).unwrap(), "stage 2/3 → 100 conns");
        assert_eq!(stage_label(&stages, 5).unwrap(), "stage 3/3 → 0 conns");
        let line = plain_line(&row(3), Duration::from_secs(6), &stages);
        assert!(line.contains("stage 2/3"), "{line}");
        assert_eq!(stage_label(&[], 3), None);
    }
}
