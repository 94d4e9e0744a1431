//! The shared vocabulary of measurement: shard-local stats and the snapshots a
//! shard hands to the collector.
//!
//! A shard records into its own `ShardStats` (no lock, no atomic: the shard is one
//! thread). Once a second it swaps the interval part out for a fresh one and sends
//! it as a `Snapshot` over crossbeam-channel with `try_send`; when the channel is
//! full it keeps the snapshot and merges the next interval into it, so a shard never
//! blocks on the collector and nothing is dropped.

use crate::vocab::hist::new_histogram;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// Counters that add up across intervals, shards and agents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub attempted: u64,
    pub established: u64,
    /// Opens cut short by the end of the run (neither established nor failed).
    pub aborted: u64,
    pub failed_by_cause: BTreeMap<String, u64>,
    pub lost_by_cause: BTreeMap<String, u64>,
    pub close_codes: BTreeMap<u16, u64>,
    pub closed_clean: u64,
    pub closed_unanswered: u64,
    pub sent: u64,
    pub received: u64,
    pub failed_msgs: u64,
    pub in_flight_at_stop: u64,
    pub unexpected: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub pings_answered: u64,
    /// Open-loop messages sent more than `LATE_AFTER` after their intended time.
    pub late: u64,
    /// Sessions that exchanged all their messages and closed.
    pub sessions: u64,
    /// Sessions started more than `LATE_AFTER` after their scheduled time.
    pub sessions_late: u64,
    /// Broadcast copies received (each published message, at each connection);
    /// push: messages the server pushed.
    pub delivered: u64,
    /// Broadcast copies that never came (a later one from the same publisher did);
    /// push: sequence numbers skipped.
    pub missing: u64,
    /// Broadcast copies received twice (or out of order); push: messages whose
    /// sequence number came before (a repeat, or out of order).
    pub duplicates: u64,
    /// Push: subscribe messages sent (one per connection opened).
    pub subscribes: u64,
    /// --reconnect: dials after a loss (or a failed dial), those that
    /// established again, those lost and not back at the stop, and the time
    /// from each loss to its reconnection (or to the stop).
    pub reconnect_attempts: u64,
    pub reconnects: u64,
    pub down_at_stop: u64,
    pub disconnected_ns: u64,
    /// Idle connections parked with no task (`shard::park`): once when opened
    /// and again after each time their socket brought something.
    pub parks: u64,
    /// When the last connection was established (ns since the run's origin;
    /// merged as the latest, not added).
    pub last_established_ns: u64,
    /// --protocol: connections whose protocol opened (Socket.IO namespace
    /// joined, graphql-ws connection acknowledged), the protocol's pings
    /// answered, and its messages by kind (Socket.IO events by name;
    /// graphql-ws `next`, `complete`, `error`).
    pub proto_opened: u64,
    pub proto_pings: u64,
    pub events: BTreeMap<String, u64>,
    /// Push: messages lacking a field `--seq` or `--sent-at` names.
    pub push_unfielded: u64,
    /// Push: messages whose `--sent-at` is later than their arrival by this
    /// host's clock (the clocks disagree; left out of the one-way histogram).
    pub skewed: u64,
    pub errors: BTreeMap<String, u64>,
    /// Connections established by the subprotocol the server chose, `(none)`
    /// for none (counted only when subprotocols were offered).
    pub subprotocols: BTreeMap<String, u64>,
    /// wss://: connections whose TLS handshake was full / resumed.
    pub tls_full: u64,
    pub tls_resumed: u64,
    /// wss://: connections by the TLS version and cipher suite negotiated
    /// (`TLSv1.3 TLS13_AES_256_GCM_SHA384`).
    pub tls_negotiated: BTreeMap<String, u64>,
    /// --deflate: connections where the server accepted permessage-deflate, and
    /// where it did not.
    pub deflate_negotiated: u64,
    pub deflate_declined: u64,
    /// --deflate: zlib state the negotiated connections hold (zlib's estimate).
    pub deflate_state_bytes: u64,
    /// --deflate: bytes of the data messages themselves (uncompressed), sent and
    /// received; beside `bytes_sent`/`bytes_received`, the frames on the wire.
    pub msg_bytes_sent: u64,
    pub msg_bytes_received: u64,
    /// The first few messages that matched no send (`UNEXPECTED_SAMPLES` at
    /// most), to show what the server answered instead.
    pub unexpected_samples: Vec<Unexpected>,
}

/// How many unexpected messages a run keeps to show.
pub const UNEXPECTED_SAMPLES: usize = 3;

/// A message that matched no send, as it came (its start only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexpected {
    /// A text frame (else binary).
    pub text: bool,
    /// The whole message's length.
    pub len: usize,
    /// Its first bytes (at most `UNEXPECTED_START`).
    pub start: Vec<u8>,
}

/// Bytes kept of an unexpected message.
pub const UNEXPECTED_START: usize = 96;

fn add_map<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.attempted += o.attempted;
        self.established += o.established;
        self.aborted += o.aborted;
        add_map(&mut self.failed_by_cause, &o.failed_by_cause);
        add_map(&mut self.lost_by_cause, &o.lost_by_cause);
        add_map(&mut self.close_codes, &o.close_codes);
        self.closed_clean += o.closed_clean;
        self.closed_unanswered += o.closed_unanswered;
        self.sent += o.sent;
        self.received += o.received;
        self.failed_msgs += o.failed_msgs;
        self.in_flight_at_stop += o.in_flight_at_stop;
        self.unexpected += o.unexpected;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.pings_answered += o.pings_answered;
        self.late += o.late;
        self.sessions += o.sessions;
        self.sessions_late += o.sessions_late;
        self.delivered += o.delivered;
        self.missing += o.missing;
        self.duplicates += o.duplicates;
        self.subscribes += o.subscribes;
        self.reconnect_attempts += o.reconnect_attempts;
        self.reconnects += o.reconnects;
        self.down_at_stop += o.down_at_stop;
        self.disconnected_ns += o.disconnected_ns;
        self.parks += o.parks;
        self.last_established_ns = self.last_established_ns.max(o.last_established_ns);
        self.proto_opened += o.proto_opened;
        self.proto_pings += o.proto_pings;
        add_map(&mut self.events, &o.events);
        self.push_unfielded += o.push_unfielded;
        self.skewed += o.skewed;
        add_map(&mut self.errors, &o.errors);
        add_map(&mut self.subprotocols, &o.subprotocols);
        self.tls_full += o.tls_full;
        self.tls_resumed += o.tls_resumed;
        add_map(&mut self.tls_negotiated, &o.tls_negotiated);
        self.deflate_negotiated += o.deflate_negotiated;
        self.deflate_declined += o.deflate_declined;
        self.deflate_state_bytes += o.deflate_state_bytes;
        self.msg_bytes_sent += o.msg_bytes_sent;
        self.msg_bytes_received += o.msg_bytes_received;
        let room = UNEXPECTED_SAMPLES.saturating_sub(self.unexpected_samples.len());
        self.unexpected_samples
            .extend(o.unexpected_samples.iter().take(room).cloned());
    }

    /// A message that matched no send: counted, and kept to show if it is among
    /// the first few.
    pub fn unexpected(&mut self, text: bool, payload: &[u8]) {
        self.unexpected += 1;
        if self.unexpected_samples.len() < UNEXPECTED_SAMPLES {
            self.unexpected_samples.push(Unexpected {
                text,
                len: payload.len(),
                start: payload[..payload.len().min(UNEXPECTED_START)].to_vec(),
            });
        }
    }

    pub fn failed(&self) -> u64 {
        self.failed_by_cause.values().sum()
    }

    pub fn lost(&self) -> u64 {
        self.lost_by_cause.values().sum()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.failed() + self.lost() + self.unexpected
    }

    pub fn fail(&mut self, cause: &str) {
        bump(&mut self.failed_by_cause, cause);
    }

    pub fn lose(&mut self, cause: &str) {
        bump(&mut self.lost_by_cause, cause);
    }

    pub fn error(&mut self, kind: &str) {
        bump(&mut self.errors, kind);
    }

    /// A protocol message of kind (or Socket.IO event name) `name`.
    pub fn event(&mut self, name: &str) {
        bump(&mut self.events, name);
    }

    /// A connection established with subprotocol `name` (`None`: the server
    /// chose none).
    pub fn subprotocol(&mut self, name: Option<&str>) {
        bump(&mut self.subprotocols, name.unwrap_or(NO_SUBPROTOCOL));
    }

    /// A TLS handshake that completed: resumed or full, and what it settled on.
    pub fn tls(&mut self, resumed: bool, version: &str, suite: &str) {
        if resumed {
            self.tls_resumed += 1;
        } else {
            self.tls_full += 1;
        }
        match self.tls_negotiated.iter_mut().find(|(k, _)| {
            k.len() == version.len() + 1 + suite.len()
                && k.starts_with(version)
                && k.ends_with(suite)
        }) {
            Some((_, v)) => *v += 1,
            None => {
                self.tls_negotiated.insert(format!("{version} {suite}"), 1);
            }
        }
    }
}

/// The key of connections whose server chose no subprotocol (a subprotocol is an
/// HTTP token, which cannot hold parentheses).
pub const NO_SUBPROTOCOL: &str = "(none)";

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(v) => *v += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

/// One interval of one shard: what changed since the previous snapshot.
#[derive(Debug, Clone)]
pub struct Interval {
    pub counters: Counters,
    /// Round trip from the intended send (corrected in an open loop).
    pub rtt: Histogram<u64>,
    /// Round trip from the actual send; recorded in open loops only.
    pub rtt_uncorrected: Histogram<u64>,
    /// How late open-loop sends went out after their intended time.
    pub send_lag: Histogram<u64>,
    /// Session workloads: connect start to completed close, per completed session.
    pub session: Histogram<u64>,
    /// Broadcast: one-way delivery latency, intended publish to receipt.
    pub delivery: Histogram<u64>,
    pub connect: Histogram<u64>,
    /// wss://: the TLS handshake, from TCP connect to its end.
    pub tls: Histogram<u64>,
    /// The HTTP exchanges of opening: the upgrade (and a proxy's CONNECT).
    pub handshake: Histogram<u64>,
    /// --protocol: the protocol's open, from the upgrade's end to the
    /// namespace joined (Socket.IO) or the connection acknowledged (graphql-ws).
    pub proto_open: Histogram<u64>,
    /// Conversations: each step's counts and latency, by the step's index in
    /// the script (grown when a step first records).
    pub steps: Vec<StepStats>,
}

/// A conversation step in one interval: sends, or expects and how they ended.
#[derive(Debug, Clone, Default)]
pub struct StepStats {
    /// Messages sent (a send or every step), or expects begun.
    pub count: u64,
    /// Expects met; not met: no match within the timeout, another message came
    /// first (strict), the connection closed, the run stopped.
    pub ok: u64,
    pub timeout: u64,
    pub mismatch: u64,
    pub closed: u64,
    pub stopped: u64,
    /// Expects met: from the last send before the expect (made at the first).
    pub latency: Option<Histogram<u64>>,
}

impl StepStats {
    fn add(&mut self, o: &StepStats) {
        self.count += o.count;
        self.ok += o.ok;
        self.timeout += o.timeout;
        self.mismatch += o.mismatch;
        self.closed += o.closed;
        self.stopped += o.stopped;
        if let Some(h) = &o.latency {
            let _ = self.latency.get_or_insert_with(new_histogram).add(h);
        }
    }

    /// An expect met `ns` after its send.
    pub fn met(&mut self, ns: u64) {
        self.ok += 1;
        self.latency
            .get_or_insert_with(new_histogram)
            .saturating_record(ns);
    }
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            counters: Counters::default(),
            rtt: new_histogram(),
            rtt_uncorrected: new_histogram(),
            send_lag: new_histogram(),
            session: new_histogram(),
            delivery: new_histogram(),
            connect: new_histogram(),
            tls: new_histogram(),
            handshake: new_histogram(),
            proto_open: new_histogram(),
            steps: Vec::new(),
        }
    }
}

impl Interval {
    pub fn merge(&mut self, o: &Interval) {
        self.counters.add(&o.counters);
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.rtt.add(&o.rtt);
        let _ = self.rtt_uncorrected.add(&o.rtt_uncorrected);
        let _ = self.send_lag.add(&o.send_lag);
        let _ = self.session.add(&o.session);
        let _ = self.delivery.add(&o.delivery);
        let _ = self.connect.add(&o.connect);
        let _ = self.tls.add(&o.tls);
        let _ = self.handshake.add(&o.handshake);
        let _ = self.proto_open.add(&o.proto_open);
        if self.steps.len() < o.steps.len() {
            self.steps.resize_with(o.steps.len(), StepStats::default);
        }
        for (s, o) in self.steps.iter_mut().zip(&o.steps) {
            s.add(o);
        }
    }

    /// The steps' counts of `o`, without their latency (the warm-up's).
    pub fn add_step_counts(&mut self, o: &Interval) {
        for (i, s) in o.steps.iter().enumerate() {
            let t = self.step(i);
            let latency = t.latency.take();
            t.add(&StepStats {
                latency: None,
                ..s.clone()
            });
            t.latency = latency;
        }
    }

    /// Step `i`'s stats in this interval.
    pub fn step(&mut self, i: usize) -> &mut StepStats {
        if self.steps.len() <= i {
            self.steps.resize_with(i + 1, StepStats::default);
        }
        &mut self.steps[i]
    }
}

/// What a shard sends to the collector.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub shard: usize,
    /// The second of the run this snapshot closes (interval [second-1, second)
    /// for regular ticks; when snapshots were merged because the channel was full,
    /// the last second they cover).
    pub second: u64,
    /// Connections open at the snapshot.
    pub open: u64,
    /// Most connections open at once during the interval.
    pub peak_open: u64,
    pub interval: Interval,
    /// The shard's last snapshot: it has stopped.
    pub last: bool,
    /// The monoio driver the shard runs on.
    pub driver: &'static str,
}

/// One second of the run, merged over every shard's snapshot of it.
#[derive(Default)]
pub struct Second {
    /// Connections open at the end of the second, and the most during it.
    pub open: u64,
    pub peak: u64,
    /// Counters and histograms of the second (None until a shard reported it).
    pub interval: Option<Interval>,
}

/// Sees each second once it is final, before the collector reduces it to
/// percentiles and drops it (the `--hlog` writer, a ceiling search's controller).
pub trait SecondSink: Send {
    /// `start`: the second's start (seconds since the run began); `warmup`: the
    /// second belongs to the warm-up; `row`: its series row, as the report shows it.
    fn second(&mut self, start: u64, warmup: bool, s: &Second, row: &crate::results::SecondStats);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_counters_and_histograms() {
        let mut a = Interval::default();
        a.counters.sent = 3;
        a.counters.fail("refused");
        a.rtt.saturating_record(5_000);
        let mut b = Interval::default();
        b.counters.sent = 4;
        b.counters.fail("refused");
        b.counters.fail("http_403");
        b.rtt.saturating_record(7_000);
        b.rtt.saturating_record(120_000_000_000); // saturates at 60 s
        a.merge(&b);
        assert_eq!(a.counters.sent, 7);
        assert_eq!(a.counters.failed_by_cause["refused"], 2);
        assert_eq!(a.counters.failed(), 3);
        assert_eq!(a.rtt.len(), 3);
        assert!(a.rtt.max() >= 59_000_000_000);
    }
}
