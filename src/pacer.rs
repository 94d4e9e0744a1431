//! Load over time: stages (k6 style), ramps, and the send schedule they imply.
//!
//! A `Profile` is a piecewise-linear target over the run: active connections for
//! closed-loop and holding workloads, messages per second for open loops. The
//! open-loop writer asks it when each message is due (`Schedule`), so a ramped rate
//! is the same engine as a constant one: a different curve, not another code path.
//! Everything here is pure arithmetic on f64 seconds, testable without a network.
//!
//! Pure arithmetic over time: never imports a shard, the plan or anything above; the
//! live level arrives as a value (`LiveLevel`).

use std::time::Duration;

/// One stage: move linearly to `target` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// Parses `30s:1000,1m:1k,30s:0`.
pub fn parse_stages(s: &str) -> Result<Vec<Stage>, String> {
    let mut out = Vec::new();
    for (i, part) in s.split(',').enumerate() {
        let part = part.trim();
        let (d, t) = part.split_once(':').ok_or_else(|| {
            format!(
                "stage {} '{part}': expected DURATION:TARGET, e.g. 30s:1000",
                i + 1
            )
        })?;
        let duration = crate::vocab::units::parse_duration(d)
            .map_err(|e| format!("stage {} '{part}': {e}", i + 1))?;
        let target = crate::vocab::units::parse_rate(t)
            .map_err(|e| format!("stage {} '{part}': target {e}", i + 1))?;
        if duration.is_zero() {
            return Err(format!(
                "stage {} '{part}': a stage must last longer than zero",
                i + 1
            ));
        }
        out.push(Stage { duration, target });
    }
    if out.is_empty() {
        return Err("no stages given; e.g. --stages 30s:1000,1m:1000,30s:0".into());
    }
    Ok(out)
}

/// A piecewise-linear target over time, starting from `start` at t = 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// (stage start in s, stage end in s, value at start, value at end)
    segments: Vec<(f64, f64, f64, f64)>,
}

impl Profile {
    pub fn new(start: f64, stages: &[Stage]) -> Profile {
        let mut t = 0.0;
        let mut v = start;
        let segments = stages
            .iter()
            .map(|s| {
                let seg = (t, t + s.duration.as_secs_f64(), v, s.target);
                t = seg.1;
                v = s.target;
                seg
            })
            .collect();
        Profile { segments }
    }

    /// The same curve with every value multiplied by `f` (an agent's share).
    pub fn scaled(&self, f: f64) -> Profile {
        Profile {
            segments: self
                .segments
                .iter()
                .map(|&(a, b, va, vb)| (a, b, va * f, vb * f))
                .collect(),
        }
    }

    /// A constant value for `duration`.
    pub fn constant(value: f64, duration: Duration) -> Profile {
        Profile::new(
            value,
            &[Stage {
                duration,
                target: value,
            }],
        )
    }

    /// Total length.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.segments.last().map_or(0.0, |s| s.1))
    }

    /// The target at `t` seconds (the last value after the end).
    pub fn at(&self, t: f64) -> f64 {
        for &(a, b, va, vb) in &self.segments {
            if t < b {
                let f = if b > a {
                    ((t - a) / (b - a)).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                return va + (vb - va) * f;
            }
        }
        self.segments.last().map_or(0.0, |s| s.3)
    }

    /// Each stage's end (seconds from the start) and target, in order.
    pub fn stage_ends(&self) -> Vec<(f64, f64)> {
        self.segments.iter().map(|s| (s.1, s.3)).collect()
    }

    /// True when the profile never moves (a constant rate or level).
    pub fn is_flat(&self) -> bool {
        let first = self.segments.first().map_or(0.0, |s| s.2);
        self.segments.iter().all(|s| s.2 == first && s.3 == first)
    }

    /// The largest target anywhere in the profile.
    pub fn peak(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.2.max(s.3))
            .fold(0.0, f64::max)
    }

    /// ∫₀ᵗ target: for a rate profile, the messages due by `t`.
    pub fn integral(&self, t: f64) -> f64 {
        let mut sum = 0.0;
        for &(a, b, va, vb) in &self.segments {
            if t <= a {
                break;
            }
            let end = t.min(b);
            let w = end - a;
            let slope = if b > a { (vb - va) / (b - a) } else { 0.0 };
            sum += va * w + 0.5 * slope * w * w;
        }
        sum
    }

    /// The earliest time at which `integral` reaches `n`, or None if it never does
    /// within the profile.
    pub fn time_for(&self, n: f64) -> Option<f64> {
        let mut sum = 0.0;
        for &(a, b, va, vb) in &self.segments {
            let w = b - a;
            let slope = if w > 0.0 { (vb - va) / w } else { 0.0 };
            let area = va * w + 0.5 * slope * w * w;
            if sum + area >= n {
                // Solve va*x + slope/2*x² = n - sum for x in [0, w].
                let need = n - sum;
                let x = if slope.abs() < 1e-12 {
                    if va <= 0.0 {
                        continue;
                    }
                    need / va
                } else {
                    let disc = (va * va + 2.0 * slope * need).max(0.0);
                    (-va + disc.sqrt()) / slope
                };
                return Some(a + x.clamp(0.0, w));
            }
            sum += area;
        }
        None
    }
}

/// The open-loop send schedule of one connection: message k is due when the
/// connection's share of the rate profile has accumulated k + phase messages since
/// it started. The phase (0..1) spreads the connections over one interval:
/// connections dialed in a burst would otherwise send in a burst every interval,
/// and the target would see the whole rate arrive in a sliver of each period.
#[derive(Debug, Clone)]
pub struct Schedule<'a> {
    /// The run's rate profile, messages/s for the whole run.
    profile: &'a Profile,
    /// This connection's share of the run's rate.
    share: f64,
    /// Messages the profile had accumulated (for this share) when it started, plus
    /// the phase.
    offset: f64,
    /// When it started, seconds into the run.
    start: f64,
}

impl<'a> Schedule<'a> {
    pub fn new(profile: &'a Profile, share: f64, start: f64, phase: f64) -> Schedule<'a> {
        let offset = profile.integral(start) * share + phase.clamp(0.0, 1.0);
        Schedule {
            profile,
            share,
            offset,
            start,
        }
    }

    /// When message `k` is due, in seconds into the run; None after the profile ends.
    pub fn due(&self, k: u64) -> Option<f64> {
        let t = self
            .profile
            .time_for((self.offset + k as f64) / self.share)?;
        Some(t.max(self.start))
    }
}

/// Where connection `id` sends within its interval (0..1): the golden-ratio
/// sequence, evenly spread for any number of connections.
pub fn phase_of(id: u64) -> f64 {
    (id as f64 * 0.618_033_988_749_895).fract()
}

/// A level that changes while the run goes (a ceiling search's), as a shard last
/// read it: the level, how often it changed, and when (ns since the run's origin).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveLevel {
    pub level: f64,
    pub gen: u64,
    pub at_ns: u64,
}

/// A pace whose rate changes while it runs (a ceiling search raising the rate in
/// place). The next due time moves with the rate and keeps its phase: what is left
/// of the wait is scaled by new period / old period, so connections spread over
/// one interval stay spread over the new one instead of all sending at the change.
/// A pace behind its schedule keeps its debt (late sends stay visible); a paused
/// pace (rate 0) forgets it.
#[derive(Debug, Clone, PartialEq)]
pub struct LivePace {
    /// When the next send is due, ns since the run's origin (infinite: paused).
    /// Kept in f64 so that periods below a nanosecond still add up (exact to the
    /// ns for 104 days).
    next_ns: f64,
    /// ns between sends (infinite: paused).
    period_ns: f64,
}

impl Default for LivePace {
    fn default() -> Self {
        LivePace {
            next_ns: f64::INFINITY,
            period_ns: f64::INFINITY,
        }
    }
}

impl LivePace {
    /// Moves the pace to `rate` per second at `at_ns`. `phase` (0..1) places the
    /// first send of a pace that was paused or new: `at_ns + phase * period`.
    pub fn set_rate(&mut self, rate: f64, at_ns: u64, phase: f64) {
        let at = at_ns as f64;
        let period = if rate > 0.0 && rate.is_finite() {
            1e9 / rate
        } else {
            f64::INFINITY
        };
        if period.is_infinite() {
            self.next_ns = f64::INFINITY;
        } else if self.next_ns.is_infinite() {
            self.next_ns = at + phase.clamp(0.0, 1.0) * period;
        } else if self.next_ns > at {
            self.next_ns = at + (self.next_ns - at) * period / self.period_ns;
        }
        self.period_ns = period;
    }

    /// Follows a live level if it changed since generation `gen`: `share` of it,
    /// resuming at `phase` after a pause.
    pub fn follow(&mut self, live: LiveLevel, gen: &mut u64, share: f64, phase: f64) {
        if *gen != live.gen {
            *gen = live.gen;
            self.set_rate(live.level * share, live.at_ns, phase);
        }
    }

    /// When the next send is due, ns since the run's origin (u64::MAX: paused).
    pub fn due(&self) -> u64 {
        if self.next_ns.is_finite() {
            self.next_ns as u64
        } else {
            u64::MAX
        }
    }

    /// The send that was due went out: the next is one period later.
    pub fn advance(&mut self) {
        self.next_ns += self.period_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64, target: f64) -> Stage {
        Stage {
            duration: Duration::from_secs(secs),
            target,
        }
    }

    #[test]
    fn parses_k6_style_stages() {
        let st = parse_stages("30s:1000, 1m:1k ,30s:0").unwrap();
        assert_eq!(st, vec![s(30, 1000.0), s(60, 1000.0), s(30, 0.0)]);
        assert!(parse_stages("30s").unwrap_err().contains("DURATION:TARGET"));
        assert!(parse_stages("30s:lots").unwrap_err().contains("target"));
        assert!(parse_stages("0s:10")
            .unwrap_err()
            .contains("longer than zero"));
        assert!(parse_stages("10:10").unwrap_err().contains("no unit"));
    }

    #[test]
    fn targets_ramp_linearly() {
        let p = Profile::new(0.0, &[s(10, 100.0), s(10, 100.0), s(10, 0.0)]);
        assert_eq!(p.duration(), Duration::from_secs(30));
        assert_eq!(p.at(0.0), 0.0);
        assert_eq!(p.at(5.0), 50.0);
        assert_eq!(p.at(15.0), 100.0);
        assert_eq!(p.at(25.0), 50.0);
        assert_eq!(p.at(99.0), 0.0);
        assert_eq!(p.peak(), 100.0);
    }

    #[test]
    fn integral_and_its_inverse_agree() {
        let p = Profile::new(0.0, &[s(10, 100.0), s(10, 100.0), s(10, 0.0)]);
        // Ramp up: 500, plateau: 1000, ramp down: 500.
        assert!((p.integral(10.0) - 500.0).abs() < 1e-9);
        assert!((p.integral(20.0) - 1500.0).abs() < 1e-9);
        assert!((p.integral(30.0) - 2000.0).abs() < 1e-9);
        for n in [1.0, 10.0, 499.0, 500.0, 750.0, 1500.0, 1999.0] {
            let t = p.time_for(n).unwrap();
            assert!((p.integral(t) - n).abs() < 1e-6, "n={n} t={t}");
        }
        assert_eq!(p.time_for(2001.0), None);
        let flat = Profile::constant(20.0, Duration::from_secs(10));
        assert!((flat.time_for(10.0).unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_connection_schedule_follows_its_share() {
        // 1000 msg/s across 100 connections: 10/s each, 100 ms apart.
        let p = Profile::constant(1000.0, Duration::from_secs(10));
        let sch = Schedule::new(&p, 1.0 / 100.0, 2.0, 0.0);
        assert_eq!(sch.due(0), Some(2.0));
        assert!((sch.due(1).unwrap() - 2.1).abs() < 1e-9);
        assert!((sch.due(10).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(sch.due(1000), None);
        // A phase of 0.25 moves every send a quarter of the interval later.
        let late = Schedule::new(&p, 1.0 / 100.0, 2.0, 0.25);
        assert!((late.due(0).unwrap() - 2.025).abs() < 1e-9);
        assert!((late.due(10).unwrap() - 3.025).abs() < 1e-9);
        // A ramp from 0: sends start slow and speed up.
        let ramp = Profile::new(0.0, &[s(10, 1000.0)]);
        let sch = Schedule::new(&ramp, 1.0 / 100.0, 0.0, 0.0);
        let gaps: Vec<f64> = (1..5)
            .map(|k| sch.due(k + 1).unwrap() - sch.due(k).unwrap())
            .collect();
        assert!(gaps.windows(2).all(|w| w[1] < w[0]), "{gaps:?}");
    }

    #[test]
    fn phases_spread_evenly() {
        // 50 connections: every tenth of the interval holds about 5 of them.
        let mut bins = [0; 10];
        for id in 0..50 {
            bins[(phase_of(id) * 10.0) as usize] += 1;
        }
        assert!(bins.iter().all(|&b| (4..=6).contains(&b)), "{bins:?}");
    }

    #[test]
    fn a_live_pace_keeps_its_phase_when_the_rate_changes() {
        let ms = 1_000_000u64;
        let mut p = LivePace::default();
        assert_eq!(p.due(), u64::MAX, "new paces are paused");
        // 10/s from t = 0, first send at once.
        p.set_rate(10.0, 0, 0.0);
        assert_eq!(p.due(), 0);
        p.advance();
        assert_eq!(p.due(), 100 * ms);
        // At 60 ms the rate doubles: 40 ms were left of 100, 20 ms of 50 are.
        p.set_rate(20.0, 60 * ms, 0.0);
        assert_eq!(p.due(), 80 * ms);
        p.advance();
        assert_eq!(p.due(), 130 * ms);
        // Behind schedule (the change comes after the due time): the debt stays.
        p.set_rate(5.0, 200 * ms, 0.0);
        assert_eq!(p.due(), 130 * ms);
        p.advance();
        assert_eq!(p.due(), 330 * ms);
        // Paused: nothing due, and the debt is forgotten; resumed with a phase.
        p.set_rate(0.0, 400 * ms, 0.0);
        assert_eq!(p.due(), u64::MAX);
        p.advance();
        assert_eq!(p.due(), u64::MAX);
        p.set_rate(4.0, 1000 * ms, 0.5);
        assert_eq!(p.due(), 1125 * ms);
    }
}
