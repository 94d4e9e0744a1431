//! The end-of-run summary as a neutral structure: the sections people read
//! (latency, warm-up, throughput, sessions, broadcast, connections, ledger,
//! errors), each a title and its rows, latency tables, notes or problems.
//!
//! It exists so a row is defined once: which rows a run shows, when, and what
//! each says are decided here, and `text` lays the sections out as the terminal
//! summary while `html` lays them out as the page's summary tables. Values are
//! plain text (the page escapes them), numbers formatted through
//! `crate::vocab::fmt`; the one layout hint is [`Place`], how the text places a
//! row.
//!
//! Built from `RunResults` alone (`crate::results`), so a saved run summarizes
//! the same. It must never import the engine, shards, collector, config, cli or
//! ceiling, nor the layouts `text` and `html` (they import it).

use crate::results::{LatencyStats, MessageStats, RunResults};
use crate::vocab::fmt::{fmt_rate, fmt_us, group};
use std::collections::BTreeMap;

/// The summary's sections, in reading order.
pub struct Summary {
    pub sections: Vec<Section>,
}

/// A titled part of the summary. An empty title is a remark between sections
/// (the warm-up note): no heading of its own.
pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

/// What a section holds, in order.
pub enum Block {
    /// Label/value rows.
    Rows(Vec<Row>),
    /// Latency distributions, a row per kind measured.
    Latency(LatencyTable),
    /// A remark, in the lines the text breaks it into.
    Note(Vec<String>),
    /// A caution about reading the figures above it (text: `! ` before each
    /// line; the page sets it apart).
    Warning(Vec<String>),
    /// What went wrong, one entry per problem; empty: nothing did.
    Problems(Vec<String>),
}

/// One fact: a label and its value.
pub struct Row {
    pub label: &'static str,
    pub value: Value,
    pub place: Place,
    /// Nothing to report (a zero, no causes): the text leaves the row out, the
    /// page shows it so its tables keep their shape.
    pub quiet: bool,
}

/// How the text places a row (the page gives every row a line of its own).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Place {
    /// Its label padded to the section's label column.
    Column,
    /// `label value`, on one line with the next `Run` rows, two spaces apart.
    Run,
    /// `label value`, on one line with the next `List` rows, a comma apart.
    List,
    /// `label: value`, a line of its own.
    Line,
}

/// A row's value.
pub enum Value {
    Text(String),
    /// Amounts side by side: the text sets them in columns.
    Amounts(Vec<Amount>),
    /// A balance and whether it holds: `text` then the `verdict` word.
    Check {
        text: String,
        holds: bool,
        verdict: &'static str,
    },
}

/// A number and its unit.
pub struct Amount {
    pub value: String,
    pub unit: Unit,
}

pub enum Unit {
    /// A count of something: `54,304 msgs`.
    Of(&'static str),
    /// A rate: `27152/s`.
    PerSecond,
}

/// Latency distributions under one heading. No heading: the section's title is
/// the table's.
pub struct LatencyTable {
    pub heading: Option<&'static str>,
    pub rows: Vec<LatencyRow>,
}

/// The statistics of a latency table, in column order.
pub const LATENCY_COLUMNS: [&str; 8] =
    ["min", "mean", "p50", "p90", "p99", "p99.9", "max", "count"];

/// A kind of latency and its statistics (`LATENCY_COLUMNS`); `None`: no samples.
pub struct LatencyRow {
    pub name: String,
    pub cells: Option<[String; 8]>,
}

/// Held connections from which the summary quotes memory per connection: below a
/// thousand the run's own growth (histograms, buffers warmed up) outweighs them,
/// and the quotient would mislead.
const MEMORY_PER_CONN_FROM: u64 = 1000;

impl Row {
    fn new(label: &'static str, place: Place, value: impl Into<String>) -> Row {
        Row {
            label,
            value: Value::Text(value.into()),
            place,
            quiet: false,
        }
    }

    fn quiet_if(mut self, quiet: bool) -> Row {
        self.quiet = quiet;
        self
    }
}

/// The run's summary, section by section.
pub fn summarize(r: &RunResults) -> Summary {
    let sections = [
        Some(latency(r)),
        warmup(r),
        Some(throughput(r)),
        sessions(r),
        broadcast(r),
        push(r),
        steps(r),
        protocol(r),
        Some(connections(r)),
        Some(ledger(r)),
        Some(errors(r)),
    ];
    Summary {
        sections: sections.into_iter().flatten().collect(),
    }
}

fn latency_row(name: &str, l: &LatencyStats) -> LatencyRow {
    let cells = (l.count > 0).then(|| {
        [
            fmt_us(l.min_us),
            fmt_us(l.mean_us),
            fmt_us(l.p50_us),
            fmt_us(l.p90_us),
            fmt_us(l.p99_us),
            fmt_us(l.p999_us),
            fmt_us(l.max_us),
            group(l.count),
        ]
    });
    LatencyRow {
        name: name.to_string(),
        cells,
    }
}

/// `cause count, cause count`; `none` when there are none.
fn causes(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {}", group(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: u64, word: &str, suffix: &str) -> String {
    format!("{word}{}", if n == 1 { "" } else { suffix })
}

/// Connect, handshake and round trip; in an open loop also the uncorrected round
/// trip and the send lag, and what corrected means.
fn latency(r: &RunResults) -> Section {
    let l = &r.latency;
    let mut rows = vec![latency_row("connect", &l.connect)];
    if let Some(tls) = &l.tls {
        rows.push(latency_row("TLS", tls));
    }
    rows.push(latency_row("handshake", &l.handshake));
    if let Some(open) = &l.protocol_open {
        rows.push(latency_row("proto open", open));
    }
    rows.push(latency_row("round trip", &l.rtt));
    if let Some(raw) = &l.rtt_uncorrected {
        rows.push(latency_row("uncorrected", raw));
        if let Some(lag) = &l.send_lag {
            rows.push(latency_row("send lag", lag));
        }
    }
    let mut blocks = vec![Block::Latency(LatencyTable {
        heading: None,
        rows,
    })];
    if l.rtt_uncorrected.is_some() {
        blocks.push(Block::Note(vec![
            "round trip is timed from each message's intended send time (coordinated".into(),
            "omission corrected); uncorrected is from the actual send and hides stalls;".into(),
            "send lag is how late the client sent against its schedule.".into(),
        ]));
    }
    if let (true, Some(lag), Some(raw)) = (l.lag_dominates(), &l.send_lag, &l.rtt_uncorrected) {
        blocks.push(Block::Warning(vec![
            format!(
                "send lag is {:.0}% of round trip p50 ({} of {}): much of it is",
                l.send_lag_share.unwrap_or(0.0) * 100.0,
                fmt_us(lag.p50_us),
                fmt_us(l.rtt.p50_us)
            ),
            format!(
                "wsherd's own timer sending late, not the server (uncorrected p50 {}).",
                fmt_us(raw.p50_us)
            ),
        ]));
    }
    Section {
        title: "Latency".into(),
        blocks,
    }
}

/// What the warm-up measured apart, and what it means for the figures.
fn warmup(r: &RunResults) -> Option<Section> {
    let w = r.warmup.as_ref()?;
    let first = format!(
        "(the first {:.0}s were warm-up, measured apart: {} sent, {} received, round trip p50 {} p99 {};",
        w.secs,
        group(w.sent),
        group(w.received),
        fmt_us(w.rtt.p50_us),
        fmt_us(w.rtt.p99_us)
    );
    let second =
        " latencies and rates above and below leave it out, counts and the ledger include it)";
    Some(Section {
        title: String::new(),
        blocks: vec![Block::Note(vec![first, second.into()])],
    })
}

/// An open loop's rate asked for against the rate achieved: `requested 200/s,
/// achieved 199/s (99.5%)` (`on average` for a staged rate); None for other
/// loads.
pub fn requested_vs_achieved(r: &RunResults) -> Option<String> {
    let rate = r.config.rate?;
    let sent = r.messages.sent_per_sec;
    let pct = if rate > 0.0 { 100.0 * sent / rate } else { 0.0 };
    Some(format!(
        "requested {}/s{}, achieved {}/s ({pct:.1}%)",
        fmt_rate(rate),
        if r.config.rate_stages.is_empty() {
            ""
        } else {
            " on average"
        },
        fmt_rate(sent)
    ))
}

/// A count of `what`, its rate and its bytes, as one throughput row's value.
fn amounts_of(n: u64, what: &'static str, per_sec: f64, bytes: u64) -> Value {
    Value::Amounts(vec![
        Amount {
            value: group(n),
            unit: Unit::Of(what),
        },
        Amount {
            value: fmt_rate(per_sec),
            unit: Unit::PerSecond,
        },
        Amount {
            value: group(bytes),
            unit: Unit::Of("bytes"),
        },
    ])
}

/// Messages and bytes each way, and the rate asked for against the rate achieved.
fn throughput(r: &RunResults) -> Section {
    let m = &r.messages;
    let amounts = |msgs: u64, per_sec: f64, bytes: u64| amounts_of(msgs, "msgs", per_sec, bytes);
    let row = |label, value| Row {
        label,
        value,
        place: Place::Column,
        quiet: false,
    };
    // Broadcast: every copy received is counted and its bytes added, so the
    // count is of copies too (the ledger below counts each publisher's own).
    let received = match &r.broadcast {
        Some(b) => amounts_of(b.delivered, "copies", b.delivered_per_sec, m.bytes_received),
        None => amounts(m.received, m.received_per_sec, m.bytes_received),
    };
    let mut rows = vec![
        row("sent", amounts(m.sent, m.sent_per_sec, m.bytes_sent)),
        row("received", received),
    ];

    if let Some(asked) = requested_vs_achieved(r) {
        let said = format!(
            "{asked}, late sends {} (>10ms behind schedule)",
            group(m.late)
        );
        rows.push(Row::new("rate", Place::Column, said));
    }
    Section {
        title: "Throughput".into(),
        blocks: vec![Block::Rows(rows)],
    }
}

/// Sessions completed, against the session rate asked for, and how long they took.
fn sessions(r: &RunResults) -> Option<Section> {
    let s = r.sessions.as_ref()?;
    let mut completed = format!("{}  ({}/s", group(s.completed), fmt_rate(s.per_sec));
    if let Some(rate) = s.rate {
        completed += &format!(
            ", requested {}/s, {} started late",
            fmt_rate(rate),
            group(s.late)
        );
    }
    completed.push(')');
    Some(Section {
        title: format!(
            "Sessions ({} {} each)",
            s.messages_per_session,
            plural(s.messages_per_session, "message", "s")
        ),
        blocks: vec![
            Block::Rows(vec![Row::new("completed", Place::Run, completed)]),
            Block::Latency(LatencyTable {
                heading: Some("duration"),
                rows: vec![latency_row("session", &s.duration)],
            }),
        ],
    })
}

/// The broadcast's own ledger: every copy expected, delivered or missing, and the
/// one-way delivery latency.
fn broadcast(r: &RunResults) -> Option<Section> {
    let b = r.broadcast.as_ref()?;
    let copies = format!(
        "{} = delivered {} + missing {} + undelivered at stop {}",
        group(b.expected),
        group(b.delivered),
        group(b.missing),
        group(b.undelivered_at_stop)
    );
    let mut blocks = vec![Block::Rows(vec![
        Row::new("published", Place::Run, group(b.published)),
        Row::new("expected copies", Place::Run, copies),
        Row::new(
            "deliveries",
            Place::List,
            format!("{}/s", fmt_rate(b.delivered_per_sec)),
        ),
        Row::new("duplicates", Place::List, group(b.duplicates)),
    ])];
    if let Some(d) = &r.latency.delivery {
        blocks.push(Block::Latency(LatencyTable {
            heading: Some("one-way"),
            rows: vec![latency_row("delivery", d)],
        }));
    }
    Some(Section {
        title: format!(
            "Broadcast ({} {}, {} receivers)",
            group(b.publishers),
            plural(b.publishers, "publisher", "s"),
            group(b.receivers)
        ),
        blocks,
    })
}

/// The application protocol: connections that opened it, pings answered, and
/// what arrived by kind.
fn protocol(r: &RunResults) -> Option<Section> {
    let p = r.protocol.as_ref()?;
    let mut rows = vec![
        Row::new("opened", Place::Run, group(p.opened)),
        Row::new("pings answered", Place::Run, group(p.pings_answered)),
    ];
    if let (Some(ns), Some(ev)) = (&p.namespace, &p.event) {
        rows.push(Row::new("namespace", Place::Run, ns.clone()));
        rows.push(Row::new("emits", Place::Run, ev.clone()));
    }
    if !p.received.is_empty() {
        let by_kind: Vec<String> = p
            .received
            .iter()
            .map(|(k, v)| format!("{k} {}", group(*v)))
            .collect();
        rows.push(Row::new("received", Place::Line, by_kind.join(", ")));
    }
    let title = match p.name.as_str() {
        "socketio" => "Socket.IO",
        "graphql-ws" => "GraphQL over WebSocket (graphql-transport-ws)",
        other => other,
    };
    Some(Section {
        title: title.to_string(),
        blocks: vec![Block::Rows(rows)],
    })
}

/// A conversation's steps: what each send sent, how each expect ended, and the
/// latency of each expect (from the send before it), by step name.
fn steps(r: &RunResults) -> Option<Section> {
    if r.steps.is_empty() {
        return None;
    }
    let mut rows = Vec::new();
    for s in &r.steps {
        let said = if s.kind == "send" {
            format!("sent {}", group(s.count))
        } else {
            let mut said = format!("{} met of {}", group(s.ok), group(s.count));
            for (n, why) in [
                (s.timeout, "timed out"),
                (s.mismatch, "mismatched"),
                (s.closed, "closed"),
                (s.stopped, "stopped"),
            ] {
                if n > 0 {
                    said.push_str(&format!(", {} {why}", group(n)));
                }
            }
            said
        };
        rows.push(Row::new(
            "step",
            Place::Line,
            format!("{} ({}): {said}", s.name, s.kind),
        ));
    }
    let mut blocks = vec![Block::Rows(rows)];
    let timed: Vec<LatencyRow> = r
        .steps
        .iter()
        .filter_map(|s| s.latency.as_ref().map(|l| latency_row(&s.name, l)))
        .collect();
    if !timed.is_empty() {
        blocks.push(Block::Latency(LatencyTable {
            heading: Some("send to expect"),
            rows: timed,
        }));
    }
    let mode = r.config.steps_mode.as_deref().unwrap_or("once");
    Some(Section {
        title: format!("Conversation ({mode})"),
        blocks,
    })
}

/// What the server pushed: how much and how fast, what the sequence numbers
/// showed, and the one-way latency with what it assumes of the clocks.
fn push(r: &RunResults) -> Option<Section> {
    let p = r.push.as_ref()?;
    let mut rows = vec![
        Row::new("received", Place::Run, group(p.received)),
        Row::new(
            "rate",
            Place::Run,
            format!(
                "{}/s ({}/s per connection)",
                fmt_rate(p.received_per_sec),
                fmt_rate(p.per_connection_per_sec)
            ),
        ),
    ];
    if p.subscribes > 0 {
        rows.push(Row::new("subscribed", Place::Run, group(p.subscribes)));
    }
    if let Some(field) = &p.seq_field {
        rows.push(Row::new(
            "sequence",
            Place::Line,
            format!(
                "{field}: {} skipped, {} repeated or out of order",
                group(p.missing),
                group(p.duplicates)
            ),
        ));
    }
    if p.without_fields > 0 {
        rows.push(Row::new(
            "without the fields",
            Place::Line,
            format!(
                "{} messages carried no {} (an acknowledgement, or another kind of message)",
                group(p.without_fields),
                [p.seq_field.as_deref(), p.sent_at_field.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    }
    let mut blocks = vec![Block::Rows(rows)];
    if let (Some(d), Some(field)) = (&r.latency.delivery, &p.sent_at_field) {
        let mut said = format!(
            "from {field} ({}) to arrival: the server's clock against this host's, so only as right as they agree",
            p.sent_at_unit.as_deref().unwrap_or("?")
        );
        if p.skewed > 0 {
            said.push_str(&format!(
                "; {} messages arrived before their send time: CLOCK SKEW, left out",
                group(p.skewed)
            ));
        }
        blocks.push(Block::Rows(vec![Row::new("one-way", Place::Line, said)]));
        blocks.push(Block::Latency(LatencyTable {
            heading: Some("one-way"),
            rows: vec![latency_row("push", d)],
        }));
    }
    Some(Section {
        title: "Server push".into(),
        blocks,
    })
}

/// Connections opened, failed, lost and closed, and the memory they held.
fn connections(r: &RunResults) -> Section {
    let k = &r.connections;
    let mut rows = vec![
        Row::new("attempted", Place::Run, group(k.attempted)),
        Row::new("established", Place::Run, group(k.established)),
        Row::new("failed", Place::Run, group(k.failed)),
        Row::new("peak open", Place::Run, group(k.peak_open)),
        // Time to open: "... peak open 10,000  all open after 0.98 s".
        Row::new(
            "all open after",
            Place::Run,
            k.all_open_secs
                .map_or(String::new(), |s| format!("{s:.2} s")),
        )
        .quiet_if(k.all_open_secs.is_none()),
        Row::new("failed by cause", Place::Line, causes(&k.failed_by_cause))
            .quiet_if(k.failed == 0),
        Row::new(
            "opening when the run ended (not counted as failed)",
            Place::Line,
            group(k.aborted_at_stop),
        )
        .quiet_if(k.aborted_at_stop == 0),
        Row::new(
            "lost during the run",
            Place::Line,
            format!("{} ({})", group(k.lost), causes(&k.lost_by_cause)),
        )
        .quiet_if(k.lost == 0),
        Row::new(
            "closed at the end",
            Place::Line,
            format!(
                "{} clean, {} unanswered",
                group(k.closed_clean),
                group(k.closed_unanswered)
            ),
        ),
        Row::new(
            "closes started by the server, by code",
            Place::Line,
            causes(&k.close_codes),
        )
        .quiet_if(k.close_codes.is_empty()),
    ];
    if let Some(re) = &k.reconnects {
        // Every loss either came back or was still down at the stop.
        let losses = re.succeeded + re.down_at_stop;
        let down = if re.down_at_stop > 0 {
            format!(", {} still down at the stop", group(re.down_at_stop))
        } else {
            String::new()
        };
        let mean = if losses > 0 {
            format!(
                ", {:.1}s disconnected per loss on average",
                re.disconnected_secs / losses as f64
            )
        } else {
            String::new()
        };
        rows.push(Row::new(
            "reconnects",
            Place::Line,
            format!(
                "{} dials after a loss, {} back{down}{mean}",
                group(re.attempted),
                group(re.succeeded)
            ),
        ));
    }
    if !k.subprotocols.is_empty() {
        rows.push(Row::new(
            "subprotocol the server chose",
            Place::Line,
            causes(&k.subprotocols),
        ));
    }
    if let Some(t) = &k.tls {
        rows.push(Row::new(
            "TLS handshakes",
            Place::Line,
            format!(
                "{} full, {} resumed{}{}",
                group(t.full),
                group(t.resumed),
                if t.resumption {
                    ""
                } else {
                    " (--no-tls-resume)"
                },
                if t.verified {
                    ""
                } else {
                    "; certificates NOT verified (--insecure)"
                }
            ),
        ));
        if !t.negotiated.is_empty() {
            rows.push(Row::new(
                "TLS negotiated",
                Place::Line,
                causes(&t.negotiated),
            ));
        }
    }
    if let Some(d) = &k.deflate {
        let ratio = |wire: u64, msg: u64| {
            if msg == 0 {
                "-".to_string()
            } else {
                format!("{:.0}%", wire as f64 * 100.0 / msg as f64)
            }
        };
        rows.push(Row::new(
            "permessage-deflate",
            Place::Line,
            format!(
                "negotiated {} of {}; zlib state ~{:.1} KiB per connection; sent {} message bytes in {} on the wire ({}), received {} in {} ({})",
                group(d.negotiated),
                group(d.negotiated + d.declined),
                d.state_bytes_per_connection as f64 / 1024.0,
                group(d.message_bytes_sent),
                group(d.wire_bytes_sent),
                ratio(d.wire_bytes_sent, d.message_bytes_sent),
                group(d.message_bytes_received),
                group(d.wire_bytes_received),
                ratio(d.wire_bytes_received, d.message_bytes_received),
            ),
        ));
    }
    rows.extend(memory(r));
    Section {
        title: "Connections".into(),
        blocks: vec![Block::Rows(rows)],
    }
}

/// Memory held with the most connections open, in one line.
fn memory(r: &RunResults) -> Option<Row> {
    let m = r.memory.as_ref()?;
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    if m.held_connections == 0 {
        // Short sessions can all be closed at every once-a-second sample: no
        // figure of memory with connections held, only the peak.
        let said = format!(
            "peak RSS {}, {} before the first connection; no connection was open at a sample (once a second); kernel TCP buffers {} at most (host-wide)",
            mib(m.peak_rss_kib),
            mib(m.start_rss_kib),
            mib(m.kernel_tcp_peak_kib)
        );
        return Some(Row::new("memory", Place::Line, said));
    }
    let per = if m.held_connections >= MEMORY_PER_CONN_FROM {
        format!("{} B per connection held, ", group(m.per_connection_bytes))
    } else {
        String::new()
    };
    let said = format!(
        "{per}{} RSS with {} open, {} before the first{}; peak RSS {}; kernel TCP buffers {} at most (host-wide)",
        mib(m.held_rss_kib),
        group(m.held_connections),
        mib(m.start_rss_kib),
        if r.config.embedded_server {
            " (built-in server included)"
        } else {
            ""
        },
        mib(m.peak_rss_kib),
        mib(m.kernel_tcp_peak_kib)
    );
    Some(Row::new("memory", Place::Line, said))
}

/// The message ledger as a row: `sent N = received R + failed F + in flight at
/// stop I`, and whether it balances.
pub fn ledger_row(m: &MessageStats) -> Row {
    let holds = m.ledger_balances();
    Row {
        label: "sent",
        value: Value::Check {
            text: format!(
                "{} = received {} + failed {} + in flight at stop {}",
                group(m.sent),
                group(m.received),
                group(m.failed),
                group(m.in_flight_at_stop)
            ),
            holds,
            verdict: if holds {
                "balanced"
            } else {
                "DOES NOT BALANCE"
            },
        },
        place: Place::Run,
        quiet: false,
    }
}

/// Why messages may have matched no send, from what came back: text answers to
/// binary messages, or answers that are not the messages sent.
fn unexpected_hint(r: &RunResults) -> Option<String> {
    let m = &r.messages;
    let first = m.unexpected_samples.first()?;
    if m.received > 0 && m.unexpected * 10 < m.received {
        // A few strays beside matched replies: nothing to explain.
        return None;
    }
    let ours = r.config.message_kind.as_str();
    if !r.steps.is_empty() {
        return Some(
            "these came while no expect waited, or did not match the pending one: \
             check the expect steps against them (a strict expect fails on the first)"
                .into(),
        );
    }
    if let Some(ptr) = &r.config.correlate {
        return Some(format!(
            "no reply named a request sent and not yet answered in {ptr}: check that the server \
             answers with the request's {{seq}} value there (--correlate names the reply's field)"
        ));
    }
    Some(if first.kind == "text" && ours == "binary" {
        "the server answered text to binary messages; try --text, or --template for the JSON it expects".into()
    } else {
        format!(
            "the server's answers are not the {ours} messages wsherd sent: it must echo (or, for broadcast, relay) each message unchanged"
        )
    })
}

/// Sent, but no reply matched any send (and no broadcast explains it).
fn no_replies(r: &RunResults) -> bool {
    let m = &r.messages;
    // (Requests that failed, answered with errors or lost with their
    // connection, with nothing else coming back, are not a matching problem.)
    let only_failures = m.failed > 0 && m.unexpected == 0;
    m.sent > 0 && m.received == 0 && !only_failures && r.broadcast.is_none()
}

/// Where every message went, and what came back that matched no send.
fn ledger(r: &RunResults) -> Section {
    let m = &r.messages;
    let mut rows = vec![
        ledger_row(m),
        Row::new(
            if r.steps.is_empty() {
                "unexpected messages (matched no send)"
            } else {
                "unmatched messages (no expect took them)"
            },
            Place::Line,
            group(m.unexpected),
        )
        .quiet_if(m.unexpected == 0),
        Row::new(
            "server pings answered",
            Place::Line,
            group(m.pings_answered),
        )
        .quiet_if(m.pings_answered == 0),
    ];
    if no_replies(r) {
        let question = match &r.config.correlate {
            Some(ptr) => format!("does the server answer each request with its id in {ptr}?"),
            None => "does the server echo the payload unchanged?".to_string(),
        };
        let said = format!(
            "{} sent, {} frames came back that matched none; {question}",
            group(m.sent),
            group(m.unexpected)
        );
        rows.push(Row::new("no replies matched", Place::Line, said));
    }
    const FIRST: [&str; 3] = [
        "first unexpected message",
        "second unexpected message",
        "third unexpected message",
    ];
    for (label, u) in FIRST.iter().zip(&m.unexpected_samples) {
        rows.push(Row::new(
            label,
            Place::Line,
            format!("{}, {} bytes: {}", u.kind, group(u.bytes), u.start),
        ));
    }
    if let Some(hint) = unexpected_hint(r) {
        rows.push(Row::new("hint", Place::Line, hint));
    }
    Section {
        title: "Ledger".into(),
        blocks: vec![Block::Rows(rows)],
    }
}

/// Everything that went wrong, one entry per problem.
fn errors(r: &RunResults) -> Section {
    let k = &r.connections;
    let m = &r.messages;
    let mut problems = Vec::new();
    if k.failed > 0 {
        problems.push(format!(
            "{} connections failed to open ({})",
            group(k.failed),
            causes(&k.failed_by_cause)
        ));
    }
    if k.lost > 0 {
        problems.push(format!(
            "{} connections lost ({})",
            group(k.lost),
            causes(&k.lost_by_cause)
        ));
    }
    if m.unexpected > 0 {
        problems.push(format!("{} unexpected messages", group(m.unexpected)));
    }
    if !r.errors.is_empty() {
        problems.push(causes(&r.errors));
    }
    if no_replies(r) {
        problems.push(format!("no replies matched ({} sent)", group(m.sent)));
    }
    Section {
        title: "Errors".into(),
        blocks: vec![Block::Problems(problems)],
    }
}
