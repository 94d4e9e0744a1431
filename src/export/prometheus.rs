//! Prometheus metrics of a run (`wsherd_client_*`) and of the built-in server
//! (`wsherd_server_*`), through the prometheus-client crate.
//!
//! People watch long stress runs on dashboards. The load side is fed by the
//! collector with each shard snapshot it merges (once a second per shard); the
//! server side by `wsherd serve`'s status loop from the shards' once-a-second
//! totals. Nothing here runs on the hot path.
//!
//! It never imports the engine, config, cli or the shards' internals: it reads
//! the server's totals through `server`'s public types (`ServerTotals`,
//! `ServerHistograms`) and the load's figures from the collector's snapshots
//! (`metrics::Snapshot`), so exporting can neither slow a run nor depend on how
//! one is planned or carried out.
//!
//! Latency histograms are exported in seconds with fixed buckets (`BOUNDS`),
//! derived from wsherd's HDR histograms: each interval's HDR histogram is walked
//! once and every recorded value's count is added to the bucket its value falls in
//! (values are told apart to 3 significant digits, so a value within 0.1% of a
//! bound may land on either side). `_sum` adds each value's count times its value.

use super::{MetricsServer, Render};
use crate::error::Result;
use crate::metrics::Snapshot;
use crate::server::{ServerHistograms, ServerTotals};
use hdrhistogram::Histogram;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Upper bounds of the exported latency buckets, in seconds (`+Inf` follows).
pub const BOUNDS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Default)]
struct BucketState {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A Prometheus histogram fed from HDR histograms (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct HdrBuckets {
    state: Arc<Mutex<BucketState>>,
}

impl HdrBuckets {
    /// Adds every value of `h` (in ns) to the buckets.
    pub fn add(&self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.counts.is_empty() {
            s.counts = vec![0; BOUNDS.len() + 1];
        }
        for v in h.iter_recorded() {
            let n = v.count_at_value();
            let value = v.value_iterated_to();
            let low = h.lowest_equivalent(value) as f64 / 1e9;
            let i = BOUNDS.partition_point(|&b| b < low);
            s.counts[i] += n;
            s.sum += h.median_equivalent(value) as f64 / 1e9 * n as f64;
            s.count += n;
        }
    }
}

impl TypedMetric for HdrBuckets {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for HdrBuckets {
    fn encode(&self, mut encoder: MetricEncoder) -> std::result::Result<(), std::fmt::Error> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .enumerate()
            .map(|(i, b)| (b, s.counts.get(i).copied().unwrap_or(0)))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(s.sum, s.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cause {
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorKind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepOutcome {
    step: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageKind {
    kind: String,
}

#[derive(Debug, Default)]
struct ClientInner {
    open_by_shard: Mutex<Vec<u64>>,
    active: Gauge,
    attempted: Counter,
    opened: Counter,
    failed: Family<Cause, Counter>,
    lost: Family<Cause, Counter>,
    sent: Counter,
    received: Counter,
    failed_msgs: Counter,
    unexpected: Counter,
    sent_bytes: Counter,
    received_bytes: Counter,
    errors: Family<ErrorKind, Counter>,
    sessions: Counter,
    delivered: Counter,
    missing: Counter,
    /// Conversations: the steps' names (by index), each expect's latency,
    /// each step's sends or outcomes.
    step_names: Mutex<Vec<String>>,
    steps: Family<StepLabel, HdrBuckets>,
    step_outcomes: Family<StepOutcome, Counter>,
    /// --protocol: opens, pings answered, messages by kind.
    proto_opened: Counter,
    proto_pings: Counter,
    proto_received: Family<MessageKind, Counter>,
    tls_full: Counter,
    tls_resumed: Counter,
    deflate_message_bytes_sent: Counter,
    deflate_message_bytes_received: Counter,
    rtt: HdrBuckets,
    rtt_uncorrected: HdrBuckets,
    connect: HdrBuckets,
    tls: HdrBuckets,
    handshake: HdrBuckets,
    delivery: HdrBuckets,
    session: HdrBuckets,
}

impl ClientInner {
    /// Connections: open now, attempted, opened, failed and lost.
    fn register_connections(&self, r: &mut Registry) {
        r.register(
            "wsherd_client_connections_active",
            "WebSocket connections open now",
            self.active.clone(),
        );
        r.register(
            "wsherd_client_connections_attempted",
            "Connections the load tried to open (TCP connect started)",
            self.attempted.clone(),
        );
        r.register(
            "wsherd_client_connections_opened",
            "Connections that completed the WebSocket upgrade",
            self.opened.clone(),
        );
        r.register(
            "wsherd_client_connections_failed",
            "Connections that never got established, by cause (refused, connect_timeout, http_403, ...)",
            self.failed.clone(),
        );
        r.register(
            "wsherd_client_connections_lost",
            "Established connections that ended before the run did, by cause",
            self.lost.clone(),
        );
    }

    /// Messages sent, received, failed and unexpected, and the bytes sent and
    /// received.
    fn register_messages(&self, r: &mut Registry) {
        r.register(
            "wsherd_client_messages_sent",
            "Messages sent",
            self.sent.clone(),
        );
        r.register(
            "wsherd_client_messages_received",
            "Echoes received and matched to their send",
            self.received.clone(),
        );
        r.register(
            "wsherd_client_messages_failed",
            "Messages whose connection died before their echo came back",
            self.failed_msgs.clone(),
        );
        r.register(
            "wsherd_client_messages_unexpected",
            "Data frames that matched no outstanding send",
            self.unexpected.clone(),
        );
        r.register_with_unit(
            "wsherd_client_sent",
            "Payload bytes sent",
            Unit::Bytes,
            self.sent_bytes.clone(),
        );
        r.register_with_unit(
            "wsherd_client_received",
            "Payload bytes received",
            Unit::Bytes,
            self.received_bytes.clone(),
        );
    }

    /// Errors by kind, then what the session and broadcast workloads count:
    /// completed sessions, broadcast copies delivered and missing.
    fn register_errors_and_sessions(&self, r: &mut Registry) {
        r.register(
            "wsherd_client_errors",
            "Errors of established connections, by kind",
            self.errors.clone(),
        );
        r.register(
            "wsherd_client_sessions",
            "Completed sessions (churn, chat): each is a reconnect",
            self.sessions.clone(),
        );
        r.register(
            "wsherd_client_broadcast_delivered",
            "Broadcast copies received (push: messages the server pushed)",
            self.delivered.clone(),
        );
        r.register(
            "wsherd_client_broadcast_missing",
            "Broadcast copies that never came (push: sequence numbers skipped)",
            self.missing.clone(),
        );
        r.register(
            "wsherd_client_tls_handshakes_full",
            "wss://: TLS handshakes with a certificate exchange",
            self.tls_full.clone(),
        );
        r.register(
            "wsherd_client_tls_handshakes_resumed",
            "wss://: TLS handshakes that resumed an earlier session",
            self.tls_resumed.clone(),
        );
        r.register(
            "wsherd_client_deflate_message_sent_bytes",
            "--deflate: data messages' own bytes sent, before compression (beside sent_bytes, the frames)",
            self.deflate_message_bytes_sent.clone(),
        );
        r.register(
            "wsherd_client_deflate_message_received_bytes",
            "--deflate: data messages' own bytes received, inflated (beside received_bytes, the frames)",
            self.deflate_message_bytes_received.clone(),
        );
    }

    /// The latency histograms, in seconds: round trip (corrected and not),
    /// connect, handshake, broadcast delivery, session.
    fn register_latencies(&self, r: &mut Registry) {
        let hist = |r: &mut Registry, name: &str, help: &str, h: &HdrBuckets| {
            r.register_with_unit(name, help, Unit::Seconds, h.clone());
        };
        hist(
            r,
            "wsherd_client_rtt",
            "Message round trip, from the intended send (coordinated-omission corrected in an open loop); buckets derived from HDR histograms",
            &self.rtt,
        );
        hist(
            r,
            "wsherd_client_rtt_uncorrected",
            "Open loop: round trip from the actual send; buckets derived from HDR histograms",
            &self.rtt_uncorrected,
        );
        hist(
            r,
            "wsherd_client_connect",
            "TCP connect time; buckets derived from HDR histograms",
            &self.connect,
        );
        hist(
            r,
            "wsherd_client_tls_handshake",
            "wss://: TLS handshake time, TCP connect to its end; buckets derived from HDR histograms",
            &self.tls,
        );
        hist(
            r,
            "wsherd_client_handshake",
            "WebSocket upgrade time; buckets derived from HDR histograms",
            &self.handshake,
        );
        hist(
            r,
            "wsherd_client_delivery",
            "Broadcast one-way delivery, intended publish to receipt; buckets derived from HDR histograms",
            &self.delivery,
        );
        hist(
            r,
            "wsherd_client_session",
            "Session duration (churn, chat); buckets derived from HDR histograms",
            &self.session,
        );
        r.register_with_unit(
            "wsherd_client_step",
            "Conversations: each expect, from the send before it, by step; buckets derived from HDR histograms",
            Unit::Seconds,
            self.steps.clone(),
        );
        r.register(
            "wsherd_client_step_outcomes",
            "Conversations: messages a send step sent or expects begun (outcome=count), and how expects ended (ok, timeout, mismatch, closed, stopped)",
            self.step_outcomes.clone(),
        );
        r.register(
            "wsherd_client_protocol_opened",
            "--protocol: connections whose protocol opened (Socket.IO namespace joined, graphql-ws connection acknowledged)",
            self.proto_opened.clone(),
        );
        r.register(
            "wsherd_client_protocol_pings_answered",
            "--protocol: the server's protocol pings answered",
            self.proto_pings.clone(),
        );
        r.register(
            "wsherd_client_protocol_received",
            "--protocol: messages received by kind (Socket.IO events by name; graphql-ws next, complete, error)",
            self.proto_received.clone(),
        );
    }
}

/// The load side's metrics; the collector feeds it every snapshot it merges.
#[derive(Clone, Debug)]
pub struct ClientMetrics {
    inner: Arc<ClientInner>,
}

impl ClientMetrics {
    /// The metrics and the registry that exposes them, registered in the order
    /// the exposition lists them.
    pub fn new() -> (ClientMetrics, Registry) {
        let m = ClientInner::default();
        let mut r = Registry::default();
        m.register_connections(&mut r);
        m.register_messages(&mut r);
        m.register_errors_and_sessions(&mut r);
        m.register_latencies(&mut r);
        (ClientMetrics { inner: Arc::new(m) }, r)
    }

    /// Adds one shard snapshot (called by the collector as it merges it).
    pub fn observe(&self, snap: &Snapshot) {
        let m = &*self.inner;
        {
            let mut open = m.open_by_shard.lock().unwrap_or_else(|e| e.into_inner());
            if open.len() <= snap.shard {
                open.resize(snap.shard + 1, 0);
            }
            open[snap.shard] = if snap.last { 0 } else { snap.open };
            m.active.set(open.iter().sum::<u64>() as i64);
        }
        let iv = &snap.interval;
        let k = &iv.counters;
        m.attempted.inc_by(k.attempted);
        m.opened.inc_by(k.established);
        for (cause, n) in &k.failed_by_cause {
            m.failed
                .get_or_create(&Cause {
                    cause: cause.clone(),
                })
                .inc_by(*n);
        }
        for (cause, n) in &k.lost_by_cause {
            m.lost
                .get_or_create(&Cause {
                    cause: cause.clone(),
                })
                .inc_by(*n);
        }
        for (kind, n) in &k.errors {
            m.errors
                .get_or_create(&ErrorKind { kind: kind.clone() })
                .inc_by(*n);
        }
        m.sent.inc_by(k.sent);
        m.received.inc_by(k.received);
        m.failed_msgs.inc_by(k.failed_msgs);
        m.unexpected.inc_by(k.unexpected);
        m.sent_bytes.inc_by(k.bytes_sent);
        m.received_bytes.inc_by(k.bytes_received);
        m.sessions.inc_by(k.sessions);
        m.tls_full.inc_by(k.tls_full);
        m.tls_resumed.inc_by(k.tls_resumed);
        m.deflate_message_bytes_sent.inc_by(k.msg_bytes_sent);
        m.deflate_message_bytes_received
            .inc_by(k.msg_bytes_received);
        m.delivered.inc_by(k.delivered);
        m.missing.inc_by(k.missing);
        m.proto_opened.inc_by(k.proto_opened);
        m.proto_pings.inc_by(k.proto_pings);
        for (kind, n) in &k.events {
            m.proto_received
                .get_or_create(&MessageKind { kind: kind.clone() })
                .inc_by(*n);
        }
        if !iv.steps.is_empty() {
            let names = m.step_names.lock().unwrap_or_else(|e| e.into_inner());
            for (i, s) in iv.steps.iter().enumerate() {
                let step = names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("step{}", i + 1));
                if let Some(h) = &s.latency {
                    m.steps
                        .get_or_create(&StepLabel { step: step.clone() })
                        .add(h);
                }
                for (outcome, n) in [
                    ("count", s.count),
                    ("ok", s.ok),
                    ("timeout", s.timeout),
                    ("mismatch", s.mismatch),
                    ("closed", s.closed),
                    ("stopped", s.stopped),
                ] {
                    if n > 0 {
                        m.step_outcomes
                            .get_or_create(&StepOutcome {
                                step: step.clone(),
                                outcome,
                            })
                            .inc_by(n);
                    }
                }
            }
        }
        m.rtt.add(&iv.rtt);
        m.rtt_uncorrected.add(&iv.rtt_uncorrected);
        m.connect.add(&iv.connect);
        m.tls.add(&iv.tls);
        m.handshake.add(&iv.handshake);
        m.delivery.add(&iv.delivery);
        m.session.add(&iv.session);
    }

    /// The names of a conversation's steps, in the script's order (the
    /// snapshots carry their indexes).
    pub fn name_steps(&self, names: Vec<String>) {
        *self
            .inner
            .step_names
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = names;
    }
}

/// A registry's exposition in the OpenMetrics text format.
pub fn exposition(r: &Registry) -> String {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, r);
    out
}

/// Renders a registry on each scrape.
fn renderer(r: Registry) -> Render {
    Arc::new(move || exposition(&r))
}

/// Binds `addr` and serves the load side's metrics there.
pub fn start_client(addr: SocketAddr) -> Result<(ClientMetrics, MetricsServer)> {
    let (m, r) = ClientMetrics::new();
    let server = MetricsServer::start(addr, renderer(r))?;
    Ok((m, server))
}

#[derive(Debug, Default)]
struct ServerInner {
    last: Mutex<ServerTotals>,
    current: Gauge,
    connections: Counter,
    errors: Counter,
    messages: Counter,
    rejected: Counter,
    published: Counter,
    delivered: Counter,
    dropped: Counter,
    broadcast: HdrBuckets,
    handling: HdrBuckets,
}

/// The built-in server's metrics, updated once a second from its totals.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    inner: Arc<ServerInner>,
}

impl ServerMetrics {
    pub fn new() -> (ServerMetrics, Registry) {
        let m = ServerInner::default();
        let mut r = Registry::default();
        r.register(
            "wsherd_server_connections_current",
            "WebSocket connections open now",
            m.current.clone(),
        );
        r.register(
            "wsherd_server_connections",
            "WebSocket connections upgraded since the server started",
            m.connections.clone(),
        );
        r.register(
            "wsherd_server_connection_errors",
            "Connections closed because of an error (protocol violation, I/O error) and failed accepts",
            m.errors.clone(),
        );
        r.register(
            "wsherd_server_connections_rejected",
            "Upgrade requests refused",
            m.rejected.clone(),
        );
        r.register(
            "wsherd_server_messages",
            "Data messages received from clients",
            m.messages.clone(),
        );
        r.register(
            "wsherd_server_broadcast_published",
            "Broadcast: messages published",
            m.published.clone(),
        );
        r.register(
            "wsherd_server_broadcast_delivered",
            "Broadcast: copies written to receivers",
            m.delivered.clone(),
        );
        r.register(
            "wsherd_server_broadcast_dropped",
            "Broadcast: copies dropped (a slow receiver's queue was full, or it left)",
            m.dropped.clone(),
        );
        r.register_with_unit(
            "wsherd_server_broadcast_duration",
            "Time to fan one message out to every subscriber of the shard that read it; buckets derived from HDR histograms",
            Unit::Seconds,
            m.broadcast.clone(),
        );
        r.register_with_unit(
            "wsherd_server_message_handling_duration",
            "From the read that brought a message to its echo written (echo) or its broadcast queued; buckets derived from HDR histograms",
            Unit::Seconds,
            m.handling.clone(),
        );
        (ServerMetrics { inner: Arc::new(m) }, r)
    }

    /// Brings the counters up to `t` (totals since the start), the gauge to `open`,
    /// and adds `h` (what the shards recorded since the previous update).
    pub fn update(&self, t: &ServerTotals, open: u64, h: &ServerHistograms) {
        let m = &*self.inner;
        let mut last = m.last.lock().unwrap_or_else(|e| e.into_inner());
        m.current.set(open as i64);
        m.connections
            .inc_by(t.connections.saturating_sub(last.connections));
        m.errors.inc_by(t.errors.saturating_sub(last.errors));
        m.messages.inc_by(t.messages.saturating_sub(last.messages));
        m.rejected.inc_by(t.rejected.saturating_sub(last.rejected));
        m.published
            .inc_by(t.published.saturating_sub(last.published));
        m.delivered
            .inc_by(t.delivered.saturating_sub(last.delivered));
        m.dropped.inc_by(t.dropped.saturating_sub(last.dropped));
        *last = t.clone();
        m.broadcast.add(&h.broadcast);
        m.handling.add(&h.handling);
    }
}

/// Binds `addr` and serves the server's metrics there.
pub fn start_server(addr: SocketAddr) -> Result<(ServerMetrics, MetricsServer)> {
    let (m, r) = ServerMetrics::new();
    let server = MetricsServer::start(addr, renderer(r))?;
    Ok((m, server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Interval;

    #[test]
    fn client_exposition_has_the_names_and_buckets() {
        let (m, r) = ClientMetrics::new();
        let mut iv = Interval::default();
        iv.counters.sent = 10;
        iv.counters.received = 9;
        iv.counters.fail("refused");
        iv.counters.error("protocol_error");
        iv.rtt.saturating_record(1_000_000); // 1 ms: the le=0.001 bucket
        iv.rtt.saturating_record(3_000_000); // 3 ms
        iv.rtt.saturating_record(90_000_000_000); // saturates at 60 s
        iv.counters.tls(true, "TLSv1.3", "TLS13_AES_256_GCM_SHA384");
        iv.counters
            .tls(false, "TLSv1.3", "TLS13_AES_256_GCM_SHA384");
        iv.counters.tls(true, "TLSv1.3", "TLS13_AES_256_GCM_SHA384");
        iv.tls.saturating_record(2_000_000);
        iv.counters.msg_bytes_sent = 4096;
        iv.step(1).count = 2;
        iv.step(1).met(4_000_000);
        iv.step(1).timeout = 1;
        iv.counters.event("tick");
        iv.counters.proto_opened = 3;
        m.name_steps(vec!["say".into(), "login".into()]);
        m.observe(&Snapshot {
            shard: 1,
            second: 1,
            open: 7,
            peak_open: 7,
            interval: iv,
            last: false,
            driver: "epoll",
        });
        let text = renderer(r)();
        for want in [
            "wsherd_client_connections_active 7",
            "wsherd_client_messages_sent_total 10",
            "wsherd_client_messages_received_total 9",
            "wsherd_client_connections_failed_total{cause=\"refused\"} 1",
            "wsherd_client_errors_total{kind=\"protocol_error\"} 1",
            "wsherd_client_rtt_seconds_bucket{le=\"0.001\"} 1",
            "wsherd_client_rtt_seconds_bucket{le=\"0.005\"} 2",
            "wsherd_client_rtt_seconds_bucket{le=\"60.0\"} 3",
            "wsherd_client_rtt_seconds_bucket{le=\"+Inf\"} 3",
            "wsherd_client_rtt_seconds_count 3",
            "wsherd_client_tls_handshakes_full_total 1",
            "wsherd_client_tls_handshakes_resumed_total 2",
            "wsherd_client_tls_handshake_seconds_count 1",
            "wsherd_client_deflate_message_sent_bytes_total 4096",
            "wsherd_client_step_seconds_bucket{le=\"0.005\",step=\"login\"} 1",
            "wsherd_client_step_outcomes_total{step=\"login\",outcome=\"ok\"} 1",
            "wsherd_client_step_outcomes_total{step=\"login\",outcome=\"timeout\"} 1",
            "wsherd_client_protocol_received_total{kind=\"tick\"} 1",
            "wsherd_client_protocol_opened_total 3",
            "# TYPE wsherd_client_rtt_seconds histogram",
            "# UNIT wsherd_client_sent_bytes bytes",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    #[test]
    fn server_counters_follow_totals() {
        let (m, r) = ServerMetrics::new();
        let mut t = ServerTotals {
            connections: 5,
            ..Default::default()
        };
        let mut h = ServerHistograms::default();
        h.handling.saturating_record(20_000);
        m.update(&t, 3, &h);
        t.connections = 8;
        t.errors = 1;
        m.update(&t, 2, &ServerHistograms::default());
        let text = renderer(r)();
        for want in [
            "wsherd_server_connections_current 2",
            "wsherd_server_connections_total 8",
            "wsherd_server_connection_errors_total 1",
            "wsherd_server_message_handling_duration_seconds_count 1",
            "wsherd_server_broadcast_duration_seconds_count 0",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
