//! The search itself, as pure arithmetic: which level to measure next given the
//! verdicts so far. No clock, no network, so every path is unit-tested.
//!
//! Levels grow geometrically from the start until one fails; a failing level is
//! measured once more before it counts (one noisy interval must not end the
//! search); then the interval between the highest passing and the lowest failing
//! level is bisected until it is within the precision. A start that already fails
//! steps down the same way.

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Measure `level`; `confirm`: it failed once and is measured again.
    Measure { level: f64, confirm: bool },
    /// The search is over.
    Done(End),
}

/// How a finished search ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    /// `lo` held, `hi` failed twice, and they are within the precision.
    Ceiling { lo: f64, hi: f64 },
    /// Every level up to the maximum held.
    NoCeiling,
    /// Even `lowest` failed (twice).
    BelowLowest { lowest: f64 },
}

/// The search's state.
#[derive(Debug, Clone)]
pub struct Search {
    max: f64,
    growth: f64,
    precision: f64,
    /// Levels are whole numbers (connections).
    whole: bool,
    /// The highest level that held, and the lowest that failed twice.
    lo: Option<f64>,
    hi: Option<f64>,
    /// A level that failed once and is being measured again.
    failed_once: Option<f64>,
}

impl Search {
    /// A search from `start` up to `max`; returns it with the first level.
    pub fn new(start: f64, max: f64, growth: f64, precision: f64, whole: bool) -> (Search, f64) {
        let s = Search {
            max,
            growth,
            precision,
            whole,
            lo: None,
            hi: None,
            failed_once: None,
        };
        let first = s.round(start).min(s.top());
        (s, first)
    }

    /// The highest level the search may measure: `max`, rounded down to a level.
    fn top(&self) -> f64 {
        if self.whole || self.max >= 100.0 {
            self.max.floor()
        } else {
            (self.max * 100.0).floor() / 100.0
        }
    }

    /// The smallest difference between two levels.
    fn quantum(&self, around: f64) -> f64 {
        if self.whole || around >= 100.0 {
            1.0
        } else {
            0.01
        }
    }

    /// The highest level that held so far.
    pub fn passing(&self) -> Option<f64> {
        self.lo
    }

    /// The lowest level that failed (confirmed) so far.
    pub fn failing(&self) -> Option<f64> {
        self.hi
    }

    fn round(&self, v: f64) -> f64 {
        if self.whole {
            v.round().max(1.0)
        } else if v >= 100.0 {
            v.round()
        } else {
            ((v * 100.0).round() / 100.0).max(0.01)
        }
    }

    /// The lowest level worth measuring.
    fn floor(&self) -> f64 {
        if self.whole {
            1.0
        } else {
            0.01
        }
    }

    /// The verdict on `level`; returns what to measure next.
    pub fn judged(&mut self, level: f64, passed: bool) -> Next {
        self.judged_with(level, passed, false)
    }

    /// As `judged`; a `decisive` failure (far beyond the SLO) counts at once,
    /// without measuring the level again: noise does not fail a step by that
    /// much.
    pub fn judged_with(&mut self, level: f64, passed: bool, decisive: bool) -> Next {
        if passed {
            self.failed_once = None;
            self.lo = Some(self.lo.map_or(level, |l| l.max(level)));
        } else if decisive {
            self.failed_once = None;
            self.hi = Some(self.hi.map_or(level, |h| h.min(level)));
        } else if self.failed_once != Some(level) {
            self.failed_once = Some(level);
            return Next::Measure {
                level,
                confirm: true,
            };
        } else {
            self.failed_once = None;
            self.hi = Some(self.hi.map_or(level, |h| h.min(level)));
        }
        self.next()
    }

    fn next(&self) -> Next {
        let measure = |level| Next::Measure {
            level,
            confirm: false,
        };
        match (self.lo, self.hi) {
            (Some(lo), None) => {
                if lo >= self.top() {
                    return Next::Done(End::NoCeiling);
                }
                // At least one quantum up, however small the growth.
                let up = self
                    .round(lo * self.growth)
                    .max(lo + self.quantum(lo))
                    .min(self.top());
                measure(up)
            }
            (None, Some(hi)) => {
                if hi <= self.floor() {
                    return Next::Done(End::BelowLowest { lowest: hi });
                }
                let down = self
                    .round(hi / self.growth)
                    .min(hi - self.quantum(hi))
                    .max(self.floor());
                measure(down)
            }
            (Some(lo), Some(hi)) => {
                let mid = self.round((lo + hi) / 2.0);
                if hi <= lo * (1.0 + self.precision) || mid <= lo || mid >= hi {
                    Next::Done(End::Ceiling { lo, hi })
                } else {
                    measure(mid)
                }
            }
            (None, None) => unreachable!("judged records a verdict before asking"),
        }
    }
}

/// The most steps a search from `start` up to `max` can take, as (growing,
/// bisecting, in all): levels grow by `growth` until one fails (and is
/// measured again), then the last interval is halved until within
/// `precision`, each half possibly failing and measured again. A start that
/// fails steps down as many times at most.
pub fn worst_case_steps(start: f64, max: f64, growth: f64, precision: f64) -> (u64, u64, u64) {
    let growing = if max > start && growth > 1.0 {
        ((max / start).ln() / growth.ln()).ceil() as u64 + 1
    } else {
        1
    };
    let bisecting = if growth - 1.0 > precision && precision > 0.0 {
        ((growth - 1.0) / precision).log2().ceil() as u64
    } else {
        0
    };
    (growing, bisecting, growing + 1 + 2 * bisecting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_case_bounds_every_search() {
        // 1,000 to 1M by x2: 11 levels; then halving an interval of 100% to 5%:
        // 5 more, each maybe measured twice; one confirmation of the failure.
        assert_eq!(worst_case_steps(1000.0, 1e6, 2.0, 0.05), (11, 5, 22));
        assert_eq!(worst_case_steps(100.0, 100.0, 2.0, 0.05), (1, 5, 12));
        // Searches against known caps never take more.
        for cap in [1.0, 150.0, 999.0, 3000.0, 12_345.0, 999_999.0] {
            let (seen, _) = against(cap, 100.0, 1e6, true, &[]);
            let (_, _, worst) = worst_case_steps(100.0, 1e6, 2.0, 0.05);
            assert!(
                seen.len() as u64 <= worst,
                "{cap}: {} steps > {worst}",
                seen.len()
            );
        }
    }

    /// Runs a search against a target that holds every level up to `cap`, with
    /// verdicts flipped at the measurements listed in `noise` (0-based); returns
    /// the levels measured and the end.
    fn against(
        cap: f64,
        start: f64,
        max: f64,
        whole: bool,
        noise: &[usize],
    ) -> (Vec<(f64, bool)>, End) {
        let (mut s, mut level) = Search::new(start, max, 2.0, 0.05, whole);
        let mut seen = Vec::new();
        let mut confirm = false;
        for i in 0..100 {
            seen.push((level, confirm));
            let passed = (level <= cap) != noise.contains(&i);
            match s.judged(level, passed) {
                Next::Measure {
                    level: l,
                    confirm: c,
                } => {
                    level = l;
                    confirm = c;
                }
                Next::Done(end) => return (seen, end),
            }
        }
        panic!("no end after 100 steps: {seen:?}");
    }

    #[test]
    fn grows_then_bisects_to_the_precision() {
        let (seen, end) = against(3000.0, 1000.0, 20_000.0, true, &[]);
        let levels: Vec<f64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(
            levels,
            [
                1000.0, 2000.0, 4000.0, 4000.0, 3000.0, 3500.0, 3500.0, 3250.0, 3250.0, 3125.0,
                3125.0
            ]
        );
        // Each failing level was measured twice, the second time as a confirmation.
        assert!(seen[3].1 && seen[6].1 && !seen[4].1);
        assert_eq!(
            end,
            End::Ceiling {
                lo: 3000.0,
                hi: 3125.0
            }
        );
    }

    #[test]
    fn a_decisive_failure_is_not_measured_again() {
        let (mut s, first) = Search::new(1000.0, 1e6, 2.0, 0.05, false);
        assert_eq!(
            s.judged(first, true),
            Next::Measure {
                level: 2000.0,
                confirm: false
            }
        );
        // Far beyond the SLO at 2,000: straight to bisecting, no confirmation.
        assert_eq!(
            s.judged_with(2000.0, false, true),
            Next::Measure {
                level: 1500.0,
                confirm: false
            }
        );
        assert_eq!(s.failing(), Some(2000.0));
    }

    #[test]
    fn one_noisy_failure_does_not_end_the_search() {
        // The 2000 step fails once by noise (measurement 1) and passes when measured again.
        let (seen, end) = against(3000.0, 1000.0, 20_000.0, true, &[1]);
        assert_eq!(
            &seen[1..4],
            &[(2000.0, false), (2000.0, true), (4000.0, false)]
        );
        assert!(matches!(end, End::Ceiling { lo: 3000.0, .. }), "{end:?}");
    }

    #[test]
    fn holding_everything_up_to_max_is_no_ceiling() {
        let (seen, end) = against(1e9, 100.0, 1000.0, true, &[]);
        assert_eq!(end, End::NoCeiling);
        // 100, 200, 400, 800, then max itself.
        assert_eq!(seen.last().unwrap().0, 1000.0);
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn a_failing_start_steps_down_then_bisects() {
        let (seen, end) = against(300.0, 1000.0, 20_000.0, false, &[]);
        assert_eq!(seen[0], (1000.0, false));
        assert_eq!(seen[1], (1000.0, true));
        assert_eq!(seen[2].0, 500.0);
        match end {
            End::Ceiling { lo, hi } => {
                assert!(lo <= 300.0 && hi > 300.0 && hi <= lo * 1.05, "{lo} {hi}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_holds_ends_below_the_lowest_level() {
        let (_, end) = against(0.0, 8.0, 100.0, true, &[]);
        assert_eq!(end, End::BelowLowest { lowest: 1.0 });
    }

    #[test]
    fn a_small_growth_still_moves_and_max_is_never_passed() {
        // ×1.04 from 10 rounds back to 10: the search steps one up instead.
        let (mut s, first) = Search::new(10.0, 20.0, 1.04, 0.05, true);
        assert_eq!(first, 10.0);
        assert_eq!(
            s.judged(10.0, true),
            Next::Measure {
                level: 11.0,
                confirm: false
            }
        );
        // Down from a failing start as well.
        let (mut s, _) = Search::new(10.0, 20.0, 1.04, 0.05, true);
        s.judged(10.0, false);
        assert_eq!(
            s.judged(10.0, false),
            Next::Measure {
                level: 9.0,
                confirm: false
            }
        );
        // A fractional max is a ceiling on the levels, not rounded past.
        let (mut s, first) = Search::new(100.0, 150.6, 2.0, 0.05, false);
        assert_eq!(first, 100.0);
        assert_eq!(
            s.judged(100.0, true),
            Next::Measure {
                level: 150.0,
                confirm: false
            }
        );
        assert_eq!(s.judged(150.0, true), Next::Done(End::NoCeiling));
        let (_, first) = Search::new(500.0, 150.6, 2.0, 0.05, false);
        assert_eq!(first, 150.0);
    }

    #[test]
    fn rates_bisect_to_the_precision() {
        let (_, end) = against(1000.0, 200.0, 1e7, false, &[]);
        match end {
            End::Ceiling { lo, hi } => {
                assert!((950.0..=1000.0).contains(&lo), "{lo}");
                assert!(hi > 1000.0 && hi <= lo * 1.05, "{hi}");
            }
            other => panic!("{other:?}"),
        }
    }
}
