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

/// "st 2/3 →1k" (heading to 1,000 connections) or "st 1/2 →20k/s" (to 20,000
/// messages per second) for the second starting at `t`: short, so that a
/// staged line fits 80 columns.
pub fn stage_label(stages: &[StageMark], t: u64) -> Option<String> {
    if stages.is_empty() {
        return None;
    }
    let i = stages
        .iter()
        .position(|s| (t as f64) < s.end_secs)
        .unwrap_or(stages.len() - 1);
    let s = stages[i];
    let target = target(s.target);
    let per_sec = if s.rate { "/s" } else { "" };
    Some(format!("st {}/{} →{target}{per_sec}", i + 1, stages.len()))
}

/// A stage's target in a few characters: `950`, `1k`, `2.5k`, `20k`, `1.25M`.
fn target(v: f64) -> String {
    let n = v.max(0.0).round() as u64;
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    let f = n as f64;
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{}k", trim(format!("{:.1}", f / 1e3))),
        _ => format!("{}M", trim(format!("{:.2}", f / 1e6))),
    }
}

/// The figures of one second, as the progress line shows them: compact, so
/// that with the bar they fit a terminal's width (the bar's message is cut to
/// what is left of it). A staged run's line makes room for the stage: no p50,
/// one space between the fields; p99 and the errors stay.
pub fn figures(r: &SecondStats, staged: bool) -> String {
    let (gap, p50) = if staged {
        (" ", String::new())
    } else {
        ("  ", format!("  p50 {}", short_us(r.rtt_p50_us)))
    };
    format!(
        "open {}{gap}out {}/s{gap}in {}/s{p50}{gap}p99 {}{gap}err {}",
        short(r.open),
        short(r.sent),
        short(r.received),
        short_us(r.rtt_p99_us),
        short(r.errors)
    )
}

/// A latency in three significant digits: `850µs`, `12.3ms`, `123ms`, `1.20s`.
fn short_us(us: f64) -> String {
    let three = |v: f64, unit: &str| {
        if v >= 99.95 {
            format!("{v:.0}{unit}")
        } else if v >= 9.995 {
            format!("{v:.1}{unit}")
        } else {
            format!("{v:.2}{unit}")
        }
    };
    if us <= 0.0 {
        "-".into()
    } else if us < 999.5 {
        format!("{us:.0}µs")
    } else if us < 999_500.0 {
        three(us / 1e3, "ms")
    } else {
        three(us / 1e6, "s")
    }
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
    // As wide as the total, so the lines of a run align: [ 3s/10s], [drain].
    let secs = total.as_secs();
    let width = secs.to_string().len() * 2 + 3;
    let label = if r.t >= secs {
        format!("{:>width$}", "drain")
    } else {
        format!(
            "{:>w$}s/{secs}s",
            r.t + 1,
            w = width - 3 - secs.to_string().len()
        )
    };
    let stage = match stage_label(stages, r.t) {
        Some(s) if r.t < secs => format!("  {s} "),
        _ => String::new(),
    };
    format!("[{label}]{stage} {}", figures(r, !stages.is_empty()))
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
                b.set_message(format!("{stage}{}", figures(r, !self.stages.is_empty())));
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

    /// The busiest second a test can think of: every field at its widest.
    fn busy(t: u64) -> SecondStats {
        SecondStats {
            t,
            open: 100_000,
            sent: 123_456,
            received: 123_456,
            rtt_p50_us: 12_345.0,
            rtt_p99_us: 123_456.0,
            errors: 1_234,
            ..Default::default()
        }
    }

    fn columns(line: &str) -> usize {
        line.chars().count()
    }

    /// A busy second's figures and the time fit 80 columns without the bar.
    #[test]
    fn figures_fit_80_columns() {
        let r = busy(59);
        let line = format!("{:>9} {}", "60s/60s", figures(&r, false));
        assert!(columns(&line) <= 80, "{} columns: {line}", columns(&line));
        let plain = plain_line(&r, Duration::from_secs(60), &[]);
        assert!(
            columns(&plain) <= 80,
            "{} columns: {plain}",
            columns(&plain)
        );
        assert!(
            plain.contains("p50 12.3ms  p99 123ms  err 1,234"),
            "{plain}"
        );
        assert_eq!(short(9_999), "9,999");
        assert_eq!(short(20_000), "20.0k");
        assert_eq!(short(123_456), "123k");
        assert_eq!(short(3_531_840), "3.53M");
        assert_eq!(short_us(850.0), "850µs");
        assert_eq!(short_us(1_234.0), "1.23ms");
        assert_eq!(short_us(99_960.0), "100ms");
        assert_eq!(short_us(1_200_000.0), "1.20s");
        assert_eq!(short_us(0.0), "-");
    }

    /// With a stage label, a busy second still fits 80 columns, plain and
    /// without the bar, and keeps p99 and the errors; with the bar, 100.
    #[test]
    fn a_staged_line_fits_80_columns_with_p99_and_errors() {
        let rate = [
            StageMark {
                end_secs: 300.0,
                target: 20_000.0,
                rate: true,
            },
            StageMark {
                end_secs: 600.0,
                target: 20_000.0,
                rate: true,
            },
        ];
        let conns = rate.map(|s| StageMark {
            target: 12_500.0,
            rate: false,
            ..s
        });
        for stages in [&rate[..], &conns[..]] {
            let r = busy(59);
            let plain = plain_line(&r, Duration::from_secs(600), stages);
            assert!(
                columns(&plain) <= 80,
                "{} columns: {plain}",
                columns(&plain)
            );
            assert!(plain.ends_with(" in 123k/s p99 123ms err 1,234"), "{plain}");
            let label = stage_label(stages, r.t).unwrap();
            let narrow = format!("{:>9} {label}  {}", "60s/600s", figures(&r, true));
            assert!(
                columns(&narrow) <= 80,
                "{} columns: {narrow}",
                columns(&narrow)
            );
            assert!(9 + 2 + 12 + 2 + columns(&label) + 2 + figures(&r, true).len() <= 100);
        }
        let line = plain_line(&busy(59), Duration::from_secs(600), &rate);
        assert!(
            line.starts_with("[ 60s/600s]  st 1/2 →20k/s  open 100k"),
            "{line}"
        );
        assert_eq!(stage_label(&conns, 400).unwrap(), "st 2/2 →12.5k");
    }

    #[test]
    fn plain_lines_have_no_escapes() {
        let line = plain_line(&row(2), Duration::from_secs(10), &[]);
        assert!(
            line.starts_with("[ 3s/10s] open 10  out 100/s  in 99/s"),
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
            9 + 2 + 12 + 2 + figures(&busy, false).len() <= 100,
            "{}",
            figures(&busy, false)
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
                target: 1_000.0,
                rate: false,
            },
            StageMark {
                end_secs: 6.0,
                target: 0.0,
                rate: false,
            },
        ];
        assert_eq!(stage_label(&stages, 0).unwrap(), "st 1/3 →100");
        assert_eq!(stage_label(&stages, 2).unwrap(), "st 2/3 →1k");
        assert_eq!(stage_label(&stages, 5).unwrap(), "st 3/3 →0");
        let line = plain_line(&row(3), Duration::from_secs(6), &stages);
        assert!(
            line.starts_with("[4s/6s]  st 2/3 →1k  open 10 out"),
            "{line}"
        );
        assert_eq!(stage_label(&[], 3), None);
        assert_eq!(target(2_500.0), "2.5k");
        assert_eq!(target(20_000.0), "20k");
        assert_eq!(target(1_250_000.0), "1.25M");
    }
}
