//! The collector: one thread that merges the shards' snapshots into the run total
//! and a per-second series, and prints the live progress line.
//!
//! It only ever receives: shards push on their own timer and never wait for it. A
//! second is final once every shard has reported past it; its histogram is then
//! reduced to percentiles and dropped, so memory does not grow with run length.

use crate::metrics::{Interval, Snapshot};
use crate::metrics::{Second, SecondSink};
use crate::results::SecondStats;
use crossbeam_channel::Receiver;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the collector hands back when every shard has finished.
pub struct Collected {
    /// Counters of the whole run; histograms of the measured phase (after warm-up).
    pub total: Interval,
    /// The warm-up: its counters and histograms (empty without a warm-up).
    pub warmup: Interval,
    pub series: Vec<SecondStats>,
    pub peak_open: u64,
    pub drivers: Vec<&'static str>,
    pub memory: Option<crate::results::MemoryStats>,
}

/// Memory sampled once a second (two small /proc reads): the process's RSS in the
/// second with the most open connections, and the kernel's TCP buffers at their
/// highest.
struct MemoryTrack {
    held: (u64, u64),
    /// The largest RSS sampled.
    max_rss: u64,
    kernel_peak: u64,
}

impl MemoryTrack {
    fn new() -> Self {
        MemoryTrack {
            held: (0, 0),
            max_rss: 0,
            kernel_peak: crate::sys::tcp_kernel_kib().unwrap_or(0),
        }
    }

    fn sample(&mut self, open: u64) {
        if let Some(rss) = crate::sys::status_kib("VmRSS:") {
            self.max_rss = self.max_rss.max(rss);
            if open > 0 && open >= self.held.0 {
                self.held = (open, rss);
            }
        }
        if let Some(k) = crate::sys::tcp_kernel_kib() {
            self.kernel_peak = self.kernel_peak.max(k);
        }
    }

    /// The figures; the caller fills in the RSS before the first connection and
    /// the cost per connection (the collector starts before the shards do).
    fn finish(self) -> Option<crate::results::MemoryStats> {
        let (open, held) = self.held;
        crate::sys::status_kib("VmRSS:")?;
        Some(crate::results::MemoryStats {
            start_rss_kib: 0,
            held_rss_kib: held,
            held_connections: open,
            per_connection_bytes: 0,
            // VmHWM is only updated lazily by the kernel (at unmap, not when an
            // allocator returns pages with madvise), so it can read below an RSS
            // sampled earlier: take the larger.
            peak_rss_kib: crate::sys::status_kib("VmHWM:")
                .unwrap_or(0)
                .max(self.max_rss),
            kernel_tcp_peak_kib: self.kernel_peak,
        })
    }
}

/// Progress output settings.
#[derive(Default)]
pub struct Progress {
    pub enabled: bool,
    pub total: Duration,
    /// Stages of a staged run, named in the progress line.
    pub stages: Vec<crate::export::progress::StageMark>,
    /// `--metrics-addr`: every merged snapshot also feeds the Prometheus metrics.
    pub metrics: Option<crate::export::prometheus::ClientMetrics>,
}

/// Seconds at the start of the run whose latencies are kept apart (warm-up).
#[derive(Debug, Clone, Copy, Default)]
pub struct Warmup {
    pub secs: u64,
}

/// Receives until every one of `shards` has sent its last snapshot.
pub fn collect(
    rx: Receiver<Snapshot>,
    shards: usize,
    progress: Progress,
    warmup: Warmup,
) -> Collected {
    collect_with(rx, shards, progress, warmup, Vec::new())
}

/// `collect`, handing each final second to every one of `sinks`, in order.
pub fn collect_with(
    rx: Receiver<Snapshot>,
    shards: usize,
    progress: Progress,
    warmup: Warmup,
    mut sinks: Vec<&mut dyn SecondSink>,
) -> Collected {
    let mut total = Interval::default();
    let mut warm = Interval::default();
    let mut pending: BTreeMap<u64, Second> = BTreeMap::new();
    let mut latest = vec![0u64; shards];
    let mut finished = vec![false; shards];
    let mut drivers = vec![""; shards];
    let mut series = Vec::new();
    let mut peak_open = 0;
    let mut live = progress
        .enabled
        .then(|| crate::export::progress::Live::new(progress.total, progress.stages.clone()));
    let mut memory = MemoryTrack::new();

    while finished.iter().any(|f| !f) {
        let snap = match rx.recv() {
            Ok(s) => s,
            Err(_) => break, // every shard sender is gone (a shard thread died)
        };
        let i = snap.shard;
        drivers[i] = snap.driver;
        // A shard whose ticker slipped past a whole second merged it into this
        // snapshot: its connections were still open in the seconds it skipped
        // (not final yet: this shard had not reported past them), or those
        // seconds would show the other shards' connections only.
        for skipped in latest[i] + 1..snap.second {
            let sec = pending.entry(skipped.max(1)).or_default();
            sec.open += snap.open;
            sec.peak += snap.peak_open;
        }
        latest[i] = latest[i].max(snap.second);
        finished[i] |= snap.last;
        if let Some(m) = &progress.metrics {
            m.observe(&snap);
        }
        if snap.second <= warmup.secs {
            // Counters always count (the ledger covers the whole run); latencies
            // of the warm-up are kept apart.
            // Connects and upgrades stay in the totals: a ramp happens in the
            // warm-up, and its connect latencies are the ones people want.
            warm.merge(&snap.interval);
            total.counters.add(&snap.interval.counters);
            let _ = total.connect.add(&snap.interval.connect);
            let _ = total.tls.add(&snap.interval.tls);
            let _ = total.handshake.add(&snap.interval.handshake);
            let _ = total.proto_open.add(&snap.interval.proto_open);
            // A conversation's steps: counts too (each expect begun ends in
            // the totals however the warm-up cuts it), not their latency.
            total.add_step_counts(&snap.interval);
        } else {
            total.merge(&snap.interval);
        }
        let sec = pending.entry(snap.second.max(1)).or_default();
        sec.open += snap.open;
        sec.peak += snap.peak_open;
        match &mut sec.interval {
            Some(i) => i.merge(&snap.interval),
            None => sec.interval = Some(snap.interval),
        }
        // Seconds every shard has reported past are final.
        let horizon = (0..shards)
            .map(|s| if finished[s] { u64::MAX } else { latest[s] })
            .min()
            .unwrap_or(u64::MAX);
        while let Some((&t, _)) = pending.first_key_value() {
            if t > horizon {
                break;
            }
            let (t, s) = pending.pop_first().expect("non-empty");
            let row = finalize(&mut sinks, t, &s, warmup, &mut peak_open);
            memory.sample(row.open);
            if let Some(l) = live.as_mut() {
                l.row(&row);
            }
            series.push(row);
        }
    }
    for (t, s) in std::mem::take(&mut pending) {
        series.push(finalize(&mut sinks, t, &s, warmup, &mut peak_open));
    }
    if let Some(l) = live {
        l.finish();
    }
    Collected {
        total,
        warmup: warm,
        series,
        peak_open,
        drivers,
        memory: memory.finish(),
    }
}

/// Second `t` is final: its series row, after every sink has seen it.
fn finalize(
    sinks: &mut [&mut dyn SecondSink],
    t: u64,
    s: &Second,
    warmup: Warmup,
    peak_open: &mut u64,
) -> SecondStats {
    *peak_open = (*peak_open).max(s.peak);
    let row = row(t, s);
    if s.interval.is_some() {
        for sink in sinks.iter_mut() {
            sink.second(t.saturating_sub(1), t <= warmup.secs, s, &row);
        }
    }
    row
}

/// The series row of second `t` (which covers [t-1, t)).
fn row(t: u64, s: &Second) -> SecondStats {
    // Row t covers [t-1, t): label it by its start.
    let Some(Interval { counters, rtt, .. }) = &s.interval else {
        return SecondStats {
            t: t.saturating_sub(1),
            open: s.open,
            ..Default::default()
        };
    };
    let us = |v: u64| v as f64 / 1000.0;
    SecondStats {
        t: t.saturating_sub(1),
        open: s.open,
        connects: counters.established,
        connect_failures: counters.failed(),
        sent: counters.sent,
        received: counters.received,
        errors: counters.error_count(),
        rtt_p50_us: us(rtt.value_at_quantile(0.5)),
        rtt_p90_us: us(rtt.value_at_quantile(0.9)),
        rtt_p99_us: us(rtt.value_at_quantile(0.99)),
        rtt_max_us: us(rtt.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Snapshot;

    fn snap(shard: usize, second: u64, sent: u64, last: bool) -> Snapshot {
        let mut interval = Interval::default();
        interval.counters.sent = sent;
        interval
            .rtt
            .saturating_record(1_000_000 * (shard as u64 + 1));
        Snapshot {
            shard,
            second,
            open: 10,
            peak_open: 10,
            interval,
            last,
            driver: "epoll",
        }
    }

    #[test]
    fn merges_shards_and_seconds_without_losing_counts() {
        let (tx, rx) = crossbeam_channel::unbounded();
        // Shard 1 is a second behind; shard 0 merged two seconds into one snapshot.
        tx.send(snap(0, 1, 5, false)).unwrap();
        tx.send(snap(1, 1, 7, false)).unwrap();
        tx.send(snap(0, 3, 11, false)).unwrap();
        tx.send(snap(1, 2, 13, false)).unwrap();
        tx.send(snap(1, 3, 17, true)).unwrap();
        tx.send(snap(0, 4, 19, true)).unwrap();
        let c = collect(
            rx,
            2,
            Progress {
                enabled: false,
                total: Duration::from_secs(3),
                ..Default::default()
            },
            Warmup { secs: 1 },
        );
        assert_eq!(c.total.counters.sent, 5 + 7 + 11 + 13 + 17 + 19);
        let per_second: u64 = c.series.iter().map(|s| s.sent).sum();
        assert_eq!(per_second, c.total.counters.sent);
        assert_eq!(
            c.series.iter().map(|s| s.t).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(c.series[0].sent, 12);
        // Second 1 (two snapshots) was the warm-up: counted, timed apart.
        assert_eq!(c.total.rtt.len(), 4);
        assert_eq!(c.warmup.rtt.len(), 2);
        assert_eq!(c.warmup.counters.sent, 12);
        assert_eq!(c.drivers, vec!["epoll", "epoll"]);
        assert_eq!(c.peak_open, 20);
        // Shard 0 skipped second 2: its 10 connections still count there (the
        // last second is shard 0's alone: shard 1 had finished).
        assert_eq!(
            c.series.iter().map(|s| s.open).collect::<Vec<_>>(),
            vec![20, 20, 20, 10]
        );
    }
}
