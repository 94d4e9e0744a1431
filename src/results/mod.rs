//! The results of a run: the contract between the engine and every report.
//!
//! A `RunResults` is what `--json` writes (versioned by `SCHEMA_VERSION`, checked
//! against `src/results/run.schema.json` by a test) and what every report is
//! rendered from, so any report can be produced again from a saved run. It holds
//! counters and latency summaries, and each latency histogram in full (HdrHistogram
//! V2 compressed, base64) so results from several agents can be merged losslessly.
//! Nothing here is touched on the hot path: the collector builds it once at the end.
//!
//! A leaf of the house: reports, merge, thresholds and the ceiling read these
//! types; this module imports nothing of wsherd's but the vocabulary (`vocab`).

pub mod ceiling;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The committed JSON schema of `RunResults`.
pub const RESULTS_SCHEMA: &str = include_str!("run.schema.json");

/// Bumped whenever a field changes meaning or is removed (adding fields does not).
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    pub schema_version: u32,
    /// The wsherd version that produced these results.
    pub wsherd_version: String,
    /// True when the run was stopped early (Ctrl-C); the figures cover what ran.
    pub interrupted: bool,
    /// The scenario these results are of, in a scenario file's run (`total`
    /// for their total). Absent for a plain run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// Why the run gave up before its end: nothing could be reached (every
    /// connection attempt of its first seconds failed). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gave_up: Option<String>,
    /// Wall-clock time of the run's start, seconds since the Unix epoch.
    pub started_at_unix: f64,
    /// Seconds from the start of the run to the last shard's final report.
    pub elapsed_secs: f64,
    /// The validated configuration the run used.
    pub config: ConfigSummary,
    /// The machine and runtime the run used.
    pub host: HostInfo,
    pub connections: ConnectionStats,
    pub messages: MessageStats,
    /// Errors by kind (a stable snake_case name): protocol violations, unexpected
    /// messages, I/O errors after the connection was established.
    pub errors: BTreeMap<String, u64>,
    pub latency: Latencies,
    /// Session workloads (churn, chat) only.
    pub sessions: Option<SessionStats>,
    /// Broadcast fan-out only.
    pub broadcast: Option<BroadcastStats>,
    /// Server push (`--workload push`) only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushStats>,
    /// `--protocol socketio|graphql-ws` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolStats>,
    /// Conversations only: each step, in the script's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepResult>,
    /// With --warmup: the warm-up, measured apart. Latencies and rates elsewhere
    /// leave it out; counts and the ledger cover the whole run.
    pub warmup: Option<WarmupStats>,
    /// One entry per second of the run.
    pub series: Vec<SecondStats>,
    /// What holding the connections cost in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// `--threshold` verdicts on the measured phase (empty without thresholds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdOutcome>,
    /// Good / acceptable / poor per metric, with the bands used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assessment: Vec<Assessment>,
    /// A distributed run (`wsherd k8s run`): the agents it was merged from,
    /// those missing and why, those that started late. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentsReport>,
}

/// The agents a distributed run was merged from (`wsherd k8s run`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AgentsReport {
    /// Agents planned (the Job's completions).
    pub expected: u64,
    /// Agents whose results are in the merge (1-based).
    pub reported: Vec<u64>,
    /// Agents whose results are not: the run covers only the others' share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingAgent>,
    /// When the agents were to start (Unix seconds, `--start-at`).
    pub start_at_unix: f64,
    /// Agents that started more than a second after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late: Vec<LateAgent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MissingAgent {
    pub agent: u64,
    /// Its pod (empty: none was created).
    pub pod: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LateAgent {
    pub agent: u64,
    /// Seconds after the planned start.
    pub secs: f64,
}

/// What a scenario file's run produced (`wsherd run --scenario F --json`): each
/// scenario's results and their total (side by side, or one after another).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResults {
    pub schema_version: u32,
    /// "sequential" or "parallel".
    pub mode: String,
    pub scenarios: Vec<NamedResults>,
    pub total: RunResults,
}

/// One scenario's results under its name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedResults {
    pub name: String,
    pub results: RunResults,
}

/// Memory of the load process, and the kernel's socket buffers beside it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Resident memory before the first connection (runtime, histograms, and the
    /// embedded server when there is one).
    pub start_rss_kib: u64,
    /// Resident memory in the second the most connections were open.
    pub held_rss_kib: u64,
    /// Connections open in that second.
    pub held_connections: u64,
    /// (held - start) per held connection: what one connection costs in user space.
    pub per_connection_bytes: u64,
    /// Highest resident memory of the process (the end of a run included).
    pub peak_rss_kib: u64,
    /// Kernel memory in TCP socket buffers at its highest during the run, host-wide
    /// (/proc/net/sockstat; other processes' sockets, such as a local server's, count).
    pub kernel_tcp_peak_kib: u64,
}

/// The configuration as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigSummary {
    /// Target URLs.
    pub targets: Vec<String>,
    /// Source addresses the connections were opened from (`--source-ip`; empty:
    /// the kernel's choice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// HTTP CONNECT proxies the connections went through (`--proxy` or the
    /// environment; credentials left out); empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxies: Vec<String>,
    /// True when no URL was given and the built-in server was started in-process.
    pub embedded_server: bool,
    pub workload: String,
    /// "closed" (replies release sends), "open" (sends on a schedule) or "hold".
    pub pacing: String,
    /// Open loop: requested messages per second across the run.
    pub rate: Option<f64>,
    pub connections: u64,
    pub duration_secs: f64,
    pub connect_rate: f64,
    pub connect_timeout_secs: f64,
    pub message_size: usize,
    /// "binary" or "text".
    pub message_kind: String,
    pub inflight: u32,
    pub shards: usize,
    /// `--correlate`: the JSON pointer replies were matched to requests by
    /// (absent: replies were echoes matched by their timing stamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlate: Option<String>,
    /// Open loop with --stages or --ramp: how the requested rate moved, stage by
    /// stage, each ramped linearly from the one before (the first from 0);
    /// `rate` is then the mean over the run. Empty for a constant rate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_stages: Vec<RateStage>,
    /// --heartbeat: a timed PING every this many seconds per connection (idle,
    /// push); the run's messages are those PINGs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_secs: Option<f64>,
    /// Conversations: what a connection does at the end of the steps (`once`,
    /// `loop`, `session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_mode: Option<String>,
}

/// One stage of a staged rate: its length and the rate it reaches at its end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateStage {
    pub secs: f64,
    /// Messages per second at the stage's end.
    pub target: f64,
}

/// Where the run ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub cpus: usize,
    /// Cores the load shards were pinned to.
    pub shard_cores: Vec<usize>,
    /// Cores the embedded server was pinned to (empty when no embedded server).
    pub server_cores: Vec<usize>,
    /// "io_uring" or "epoll": the monoio driver the shards ran on.
    pub io_driver: String,
    /// How the shards timed their sends: "precise" (a timerfd, to the
    /// microsecond) or "1ms wheel" (monoio's timer; epoll always).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timer: String,
    pub kernel: String,
    /// Soft open-file limit in force during the run.
    pub nofile_limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// Connections the plan tried to open (TCP connect started).
    pub attempted: u64,
    /// Connections that completed the WebSocket upgrade.
    pub established: u64,
    /// Opens the end of the run cut short (not counted as failed).
    pub aborted_at_stop: u64,
    /// Connections that never got established, by cause (e.g. `refused`,
    /// `connect_timeout`, `http_403`, `bad_accept_key`).
    pub failed: u64,
    pub failed_by_cause: BTreeMap<String, u64>,
    /// Established connections that ended before the run's end, by cause
    /// (`reset`, `eof_without_close`, `closed_by_server`, ...).
    pub lost: u64,
    pub lost_by_cause: BTreeMap<String, u64>,
    /// Closes the server started (not its answers to ours), by close code.
    pub close_codes: BTreeMap<String, u64>,
    /// Connections closed by us at the end with a completed close handshake.
    pub closed_clean: u64,
    /// Connections closed by us at the end whose peer did not answer our close in time.
    pub closed_unanswered: u64,
    /// Most connections open at once (sum of the shards' peaks per second).
    pub peak_open: u64,
    /// Seconds from the run's start until every one of its connections was
    /// open: set when each was established once and none failed (not for
    /// sessions, which open and close again, nor with --reconnect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_open_secs: Option<f64>,
    /// With --subprotocol: connections established by the subprotocol the server
    /// chose, `(none)` where it chose none. Empty when none was offered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subprotocols: BTreeMap<String, u64>,
    /// wss:// only: what TLS did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStats>,
    /// --deflate only: what permessage-deflate did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deflate: Option<DeflateStats>,
    /// --reconnect only: dials after losses, and the time spent disconnected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<ReconnectStats>,
    /// Idle connections: how often one was parked with no task of its own (on
    /// the shard's one readiness wait): once when it opened, and again after
    /// each time its socket brought something. 0: every connection waited as a
    /// task.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parks: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `--reconnect`: every dial after a loss (or after a failed dial), those that
/// got the connection back, those still down at the stop, and the time from
/// each loss to its return or to the stop.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReconnectStats {
    pub attempted: u64,
    pub succeeded: u64,
    /// Connections lost and not back when the run stopped.
    #[serde(default)]
    pub down_at_stop: u64,
    /// Summed over every loss: to the return for those that came back, to the
    /// stop for those still down.
    pub disconnected_secs: f64,
}

/// permessage-deflate in a run that offered it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeflateStats {
    /// The offer's header value (`permessage-deflate; client_max_window_bits`).
    pub offered: String,
    /// Connections whose server accepted it, and those whose server did not.
    pub negotiated: u64,
    pub declined: u64,
    /// zlib state a negotiated connection holds, on average (zlib's estimate: a
    /// compressor and a decompressor for the directions that keep context).
    pub state_bytes_per_connection: u64,
    /// Data messages' own bytes (uncompressed), and the frames that carried
    /// them on the wire (`messages.bytes_sent`, `bytes_received`), both ways.
    pub message_bytes_sent: u64,
    pub wire_bytes_sent: u64,
    pub message_bytes_received: u64,
    pub wire_bytes_received: u64,
}

/// The TLS handshakes of a wss:// run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsStats {
    /// Handshakes with a certificate exchange.
    pub full: u64,
    /// Handshakes that resumed an earlier session (browsers do this on reconnect).
    pub resumed: u64,
    /// Connections by TLS version and cipher suite (`TLSv1.3 TLS13_AES_256_GCM_SHA384`).
    pub negotiated: BTreeMap<String, u64>,
    /// False with --insecure: the servers' certificates were not verified.
    pub verified: bool,
    /// False with --no-tls-resume.
    pub resumption: bool,
}

/// The message ledger: `sent = received + failed + in_flight_at_stop`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MessageStats {
    pub sent: u64,
    /// Echoes received and matched to their send.
    pub received: u64,
    /// Messages whose connection died before their echo came back.
    pub failed: u64,
    /// Messages still awaiting their echo when the run stopped.
    pub in_flight_at_stop: u64,
    /// Data frames that matched no outstanding send (foreign, duplicated, reordered).
    pub unexpected: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Messages sent per second over the measured time.
    pub sent_per_sec: f64,
    /// Echoes received per second over the measured time.
    pub received_per_sec: f64,
    /// Server pings answered with a pong.
    pub pings_answered: u64,
    /// Open loop: messages sent more than 10 ms after their intended time (the
    /// client fell behind its schedule; they went out at once, none was skipped).
    pub late: u64,
    /// The first few messages that matched no send, to show what came instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unexpected_samples: Vec<UnexpectedSample>,
}

/// A message that matched no send: its frame type, length and start (escaped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnexpectedSample {
    /// `text` or `binary`.
    pub kind: String,
    pub bytes: u64,
    /// Its first bytes as text: printable ASCII as is, other bytes as `\xNN`
    /// (valid UTF-8 text kept), `…` when cut.
    pub start: String,
}

impl MessageStats {
    /// True when every message sent is accounted for.
    pub fn ledger_balances(&self) -> bool {
        self.sent == self.received + self.failed + self.in_flight_at_stop
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latencies {
    /// TCP connect time.
    pub connect: LatencyStats,
    /// wss:// only: the TLS handshake, between the TCP connect and the upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<LatencyStats>,
    /// WebSocket upgrade time (request written to 101 verified; with a proxy,
    /// its CONNECT exchange too).
    pub handshake: LatencyStats,
    /// --protocol only: the protocol's open after the upgrade (Socket.IO's open
    /// packet to the namespace joined; graphql-ws's connection_init to its ack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_open: Option<LatencyStats>,
    /// Message round trip to the matched echo (or pong), timed from the intended
    /// send: in an open loop this is the coordinated-omission-corrected latency.
    pub rtt: LatencyStats,
    /// Open loop only: round trip timed from the actual send (hides server stalls).
    pub rtt_uncorrected: Option<LatencyStats>,
    /// Open loop only: how long after its intended time each message went out.
    pub send_lag: Option<LatencyStats>,
    /// Broadcast: one-way delivery, intended publish to receipt (same clock).
    /// Push with --sent-at: the server's send time to receipt (two clocks).
    pub delivery: Option<LatencyStats>,
    /// Open loop only: send lag p50 / round trip p50 (corrected), how much of the
    /// headline latency is the client sending late against its schedule rather
    /// than the server answering. From `SEND_LAG_WARNING` on, the report says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_share: Option<f64>,
}

/// The share of the corrected round trip's median that makes the report warn
/// that the client's own timer is much of it (see `Latencies::send_lag_share`).
pub const SEND_LAG_WARNING: f64 = 0.25;

impl Latencies {
    /// `send_lag_share` from the round trip and send lag as measured (None
    /// without a send lag, or with no round trip to compare).
    pub fn lag_share(rtt: &LatencyStats, send_lag: Option<&LatencyStats>) -> Option<f64> {
        let lag = send_lag.filter(|l| l.count > 0)?;
        (rtt.count > 0 && rtt.p50_us > 0.0).then(|| (lag.p50_us / rtt.p50_us).min(1.0))
    }

    /// True when the report should warn that send lag is much of the round trip.
    pub fn lag_dominates(&self) -> bool {
        self.send_lag_share.is_some_and(|s| s >= SEND_LAG_WARNING)
    }
}

/// The delivery ledger of a broadcast run:
/// `expected = delivered + missing + undelivered_at_stop`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BroadcastStats {
    pub publishers: u64,
    /// Connections receiving (all of them, publishers included).
    pub receivers: u64,
    /// Messages published.
    pub published: u64,
    /// published × receivers: every connection should get every message once
    /// (assumes each stayed connected; publishers start when all are connected).
    pub expected: u64,
    /// Copies received.
    pub delivered: u64,
    /// Copies that never came while a later one from the same publisher did.
    pub missing: u64,
    /// Copies received more than once (or out of order).
    pub duplicates: u64,
    /// Copies neither received nor known missing when the run stopped.
    pub undelivered_at_stop: u64,
    pub delivered_per_sec: f64,
}

/// An application protocol over the connections: how many opened it, the
/// server's pings answered, and its messages by kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtocolStats {
    /// `socketio` or `graphql-ws`.
    pub name: String,
    /// Socket.IO: the namespace joined; the event measured messages are emitted as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Connections whose protocol opened (namespace joined, connection acknowledged).
    pub opened: u64,
    /// The protocol's pings answered (Socket.IO `2`, graphql-ws `ping`).
    pub pings_answered: u64,
    /// Messages received by kind: Socket.IO events by name; graphql-ws `next`,
    /// `complete`, `error`.
    pub received: BTreeMap<String, u64>,
}

/// A conversation step: messages sent (send, every), or expects begun and how
/// each ended: `count = ok + timeout + mismatch + closed + stopped`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    /// `send` or `expect`.
    pub kind: String,
    pub count: u64,
    pub ok: u64,
    pub timeout: u64,
    pub mismatch: u64,
    pub closed: u64,
    pub stopped: u64,
    /// Expects: from the last send before the expect to the message that met it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyStats>,
}

impl StepResult {
    /// Expects that failed: timed out, mismatched, or their connection ended.
    /// Not those the run's stop cut short (`stopped`), as k6 does not count its
    /// interrupted iterations as failed: otherwise `step.NAME.failed<1` would
    /// fail whenever the stop fell while an answer was on its way.
    pub fn failed(&self) -> u64 {
        self.timeout + self.mismatch + self.closed
    }

    /// True when every expect begun is accounted for.
    pub fn balances(&self) -> bool {
        self.kind != "expect" || self.count == self.ok + self.failed() + self.stopped
    }
}

/// What the server pushed to the connections of a push workload. One-way
/// latency, from the time each message says it was sent to its arrival, is
/// `latency.delivery`: it compares the server's clock with this host's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushStats {
    /// Subscribe messages sent (one per connection opened; 0 without --subscribe).
    pub subscribes: u64,
    /// Messages the server pushed and the connections received.
    pub received: u64,
    /// Received per second over the measured time, across the connections.
    pub received_per_sec: f64,
    /// The same per connection of the run.
    pub per_connection_per_sec: f64,
    /// `--seq`: the pointer of the sequence number, and what it showed: numbers
    /// skipped, and numbers that came again or out of order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_field: Option<String>,
    pub missing: u64,
    pub duplicates: u64,
    /// `--sent-at`: the pointer of the server's send time and its unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_unit: Option<String>,
    /// Messages sent later than they arrived by this host's clock: the clocks
    /// disagree (left out of the one-way latency).
    pub skewed: u64,
    /// Messages lacking a field --seq or --sent-at names (a subscription's
    /// acknowledgement, say).
    pub without_fields: u64,
}

/// The warm-up phase, measured apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarmupStats {
    pub secs: f64,
    pub sent: u64,
    pub received: u64,
    pub established: u64,
    pub rtt: LatencyStats,
}

/// Short sessions: connect, exchange messages, close.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionStats {
    /// Messages per session.
    pub messages_per_session: u64,
    /// Requested new sessions per second, when paced.
    pub rate: Option<f64>,
    /// Sessions that exchanged all their messages and closed cleanly.
    pub completed: u64,
    /// Completed sessions per second over the run.
    pub per_sec: f64,
    /// Paced sessions that started more than 10 ms late (all -c slots were busy).
    pub late: u64,
    /// Connect start to completed close, per completed session.
    pub duration: LatencyStats,
}

/// A latency distribution: summary in microseconds plus the full histogram.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub stdev_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// The histogram (values in ns), HdrHistogram V2 compressed, base64.
    pub hdr: String,
}

impl LatencyStats {
    /// The summary of a histogram of ns values (in µs), with the histogram itself
    /// encoded losslessly.
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> LatencyStats {
        let us = |v: f64| v / 1000.0;
        if h.is_empty() {
            return LatencyStats {
                hdr: crate::vocab::hist::encode_histogram(h),
                ..LatencyStats::default()
            };
        }
        LatencyStats {
            count: h.len(),
            min_us: us(h.min() as f64),
            mean_us: us(h.mean()),
            stdev_us: us(h.stdev()),
            p50_us: us(h.value_at_quantile(0.5) as f64),
            p90_us: us(h.value_at_quantile(0.9) as f64),
            p99_us: us(h.value_at_quantile(0.99) as f64),
            p999_us: us(h.value_at_quantile(0.999) as f64),
            max_us: us(h.max() as f64),
            hdr: crate::vocab::hist::encode_histogram(h),
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecondStats {
    /// Seconds since the start of the run (the interval [t, t+1)).
    pub t: u64,
    pub open: u64,
    pub connects: u64,
    pub connect_failures: u64,
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
    pub rtt_p50_us: f64,
    pub rtt_p90_us: f64,
    pub rtt_p99_us: f64,
    pub rtt_max_us: f64,
}

/// The verdict of one threshold, as saved in the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    /// The expression as given (`rtt.p99<50ms`).
    pub expression: String,
    pub metric: String,
    /// `us`, `ratio`, `per_second` or `count`.
    pub unit: String,
    pub op: String,
    /// The limit in `unit`.
    pub limit: f64,
    /// The measured value in `unit`; null when the run has no data for the metric
    /// (which fails the threshold).
    pub value: Option<f64>,
    pub passed: bool,
}

/// One assessed metric, as saved in the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub metric: String,
    pub unit: String,
    pub value: f64,
    /// `good`, `acceptable` or `poor`.
    pub verdict: String,
    pub good: f64,
    pub acceptable: f64,
    pub higher_is_better: bool,
    /// Where the bands came from: `default` (the seed guide's table), `--bands`,
    /// or `requested` (a rate judged against the rate the run asked for: good
    /// from 99% of it, acceptable from 95%).
    #[serde(default = "default_source")]
    pub source: String,
    /// A threshold on the same metric that failed: it outranks the bands, and
    /// the verdict is then `poor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_threshold: Option<String>,
}

fn default_source() -> String {
    "default".into()
}
