//! The summary people read at the end of a run, in the spirit of wrk2 and k6:
//! what ran, latency distributions, throughput, connections, errors, and the
//! message ledger that shows every message is accounted for.

use crate::results::{LatencyStats, RunResults};
use crate::vocab::fmt::{fmt_us, group};
use std::fmt::Write;

fn latency_row(out: &mut String, name: &str, l: &LatencyStats) {
    if l.count == 0 {
        let _ = writeln!(out, "  {name:<11} (no samples)");
        return;
    }
    let _ = writeln!(
        out,
        "  {name:<11}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>12}",
        fmt_us(l.min_us),
        fmt_us(l.mean_us),
        fmt_us(l.p50_us),
        fmt_us(l.p90_us),
        fmt_us(l.p99_us),
        fmt_us(l.p999_us),
        fmt_us(l.max_us),
        group(l.count)
    );
}

fn causes(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {}", group(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message ledger in one line: `sent N = received R + failed F + in flight at
/// stop I  (balanced)`.
pub fn ledger(m: &crate::results::MessageStats) -> String {
    format!(
        "sent {} = received {} + failed {} + in flight at stop {}  {}",
        group(m.sent),
        group(m.received),
        group(m.failed),
        group(m.in_flight_at_stop),
        if m.ledger_balances() {
            "(balanced)"
        } else {
            "(DOES NOT BALANCE)"
        }
    )
}

/// Held connections from which the summary quotes memory per connection.
const MEMORY_PER_CONN_FROM: u64 = 1000;

/// Renders the end-of-run summary.
pub fn render(r: &RunResults) -> String {
    let mut o = String::new();
    let c = &r.config;
    let target = if c.embedded_server {
        format!(
            "{} (built-in server, cores {:?})",
            c.targets.join(" "),
            r.host.server_cores
        )
    } else {
        c.targets.join(" ")
    };
    let _ = writeln!(o, "wsherd {}  {target}", r.wsherd_version);
    if !c.source_ips.is_empty() {
        let n = c.source_ips.len();
        let shown = if n <= 4 {
            c.source_ips.join(" ")
        } else {
            format!("{} .. {}", c.source_ips[0], c.source_ips[n - 1])
        };
        let _ = writeln!(
            o,
            "  from {n} source address{} ({shown})",
            if n == 1 { "" } else { "es" }
        );
    }
    let mut what = format!(
        "  {} workload, {} connections, {}s, {}-byte {} messages",
        c.workload,
        group(c.connections),
        c.duration_secs,
        c.message_size,
        c.message_kind
    );
    match (c.pacing.as_str(), c.rate) {
        _ if r.sessions.is_some() => {}
        ("closed", _) => {
            let _ = write!(
                what,
                ", closed loop, {} in flight per connection",
                c.inflight
            );
        }
        ("open", Some(rate)) => {
            let (senders, who) = match &r.broadcast {
                Some(b) => (b.publishers, "publisher"),
                None => (c.connections, "connection"),
            };
            let _ = write!(
                what,
                ", open loop at {rate:.0} msg/s ({:.3}/s per {who})",
                rate / senders.max(1) as f64
            );
        }
        _ => {}
    }
    let _ = writeln!(o, "{what}");
    let _ = writeln!(
        o,
        "  {} shard{} on cores {:?}, {} driver, ran {:.1}s{}",
        c.shards,
        if c.shards == 1 { "" } else { "s" },
        r.host.shard_cores,
        r.host.io_driver,
        r.elapsed_secs,
        if r.interrupted {
            "  ** INTERRUPTED: partial results **"
        } else {
            ""
        }
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<13}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>12}",
        "Latency", "min", "mean", "p50", "p90", "p99", "p99.9", "max", "count"
    );
    latency_row(&mut o, "connect", &r.latency.connect);
    latency_row(&mut o, "handshake", &r.latency.handshake);
    match &r.latency.rtt_uncorrected {
        Some(raw) => {
            latency_row(&mut o, "round trip", &r.latency.rtt);
            latency_row(&mut o, "uncorrected", raw);
            if let Some(lag) = &r.latency.send_lag {
                latency_row(&mut o, "send lag", lag);
            }
            let _ = writeln!(
                o,
                "  round trip is timed from each message's intended send time (coordinated\n  \
                 omission corrected); uncorrected is from the actual send and hides stalls;\n  \
                 send lag is how late the client sent against its schedule."
            );
        }
        None => latency_row(&mut o, "round trip", &r.latency.rtt),
    }
    let _ = writeln!(o);

    if let Some(w) = &r.warmup {
        let _ = writeln!(
            o,
            "  (the first {:.0}s were warm-up, measured apart: {} sent, {} received, round trip p50 {} p99 {};\n   latencies and rates above and below leave it out, counts and the ledger include it)",
            w.secs,
            group(w.sent),
            group(w.received),
            fmt_us(w.rtt.p50_us),
            fmt_us(w.rtt.p99_us)
        );
        let _ = writeln!(o);
    }
    let m = &r.messages;
    let _ = writeln!(o, "Throughput");
    let _ = writeln!(
        o,
        "  sent      {:>14} msgs {:>12.0}/s  {:>14} bytes",
        group(m.sent),
        m.sent_per_sec,
        group(m.bytes_sent)
    );
    let _ = writeln!(
        o,
        "  received  {:>14} msgs {:>12.0}/s  {:>14} bytes",
        group(m.received),
        m.received_per_sec,
        group(m.bytes_received)
    );
    if let Some(rate) = c.rate {
        let pct = if rate > 0.0 {
            100.0 * m.sent_per_sec / rate
        } else {
            0.0
        };
        let _ = writeln!(
            o,
            "  rate      requested {rate:.0}/s, achieved {:.0}/s ({pct:.1}%), late sends {} (>10ms behind schedule)",
            m.sent_per_sec,
            group(m.late)
        );
    }
    let _ = writeln!(o);

    if let Some(sess) = &r.sessions {
        let _ = writeln!(
            o,
            "Sessions ({} message{} each)",
            sess.messages_per_session,
            if sess.messages_per_session == 1 {
                ""
            } else {
                "s"
            }
        );
        let _ = write!(
            o,
            "  completed {}  ({:.1}/s",
            group(sess.completed),
            sess.per_sec
        );
        if let Some(rate) = sess.rate {
            let _ = write!(
                o,
                ", requested {rate:.1}/s, {} started late",
                group(sess.late)
            );
        }
        let _ = writeln!(o, ")");
        let _ = writeln!(
            o,
            "{:<13}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>12}",
            "  duration", "min", "mean", "p50", "p90", "p99", "p99.9", "max", "count"
        );
        latency_row(&mut o, "session", &sess.duration);
        let _ = writeln!(o);
    }

    if let Some(b) = &r.broadcast {
        let _ = writeln!(
            o,
            "Broadcast ({} publisher{}, {} receivers)",
            group(b.publishers),
            if b.publishers == 1 { "" } else { "s" },
            group(b.receivers)
        );
        let _ = writeln!(
            o,
            "  published {}  expected copies {} = delivered {} + missing {} + undelivered at stop {}",
            group(b.published),
            group(b.expected),
            group(b.delivered),
            group(b.missing),
            group(b.undelivered_at_stop)
        );
        let _ = writeln!(
            o,
            "  deliveries {:.0}/s, duplicates {}",
            b.delivered_per_sec,
            group(b.duplicates)
        );
        if let Some(d) = &r.latency.delivery {
            let _ = writeln!(
                o,
                "{:<13}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>12}",
                "  one-way", "min", "mean", "p50", "p90", "p99", "p99.9", "max", "count"
            );
            latency_row(&mut o, "delivery", d);
        }
        let _ = writeln!(o);
    }

    let k = &r.connections;
    let _ = writeln!(o, "Connections");
    let _ = writeln!(
        o,
        "  attempted {}  established {}  failed {}  peak open {}",
        group(k.attempted),
        group(k.established),
        group(k.failed),
        group(k.peak_open)
    );
    if k.failed > 0 {
        let _ = writeln!(o, "  failed by cause: {}", causes(&k.failed_by_cause));
    }
    if k.aborted_at_stop > 0 {
        let _ = writeln!(
            o,
            "  opening when the run ended (not counted as failed): {}",
            group(k.aborted_at_stop)
        );
    }
    if k.lost > 0 {
        let _ = writeln!(
            o,
            "  lost during the run: {} ({})",
            group(k.lost),
            causes(&k.lost_by_cause)
        );
    }
    let _ = writeln!(
        o,
        "  closed at the end: {} clean, {} unanswered",
        group(k.closed_clean),
        group(k.closed_unanswered)
    );
    if !k.close_codes.is_empty() {
        let _ = writeln!(
            o,
            "  closes started by the server, by code: {}",
            causes(&k.close_codes)
        );
    }
    if let Some(m) = &r.memory {
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        // Below a thousand connections the run's own growth (histograms, buffers
        // warmed up) outweighs them: the quotient would mislead.
        let per = if m.held_connections >= MEMORY_PER_CONN_FROM {
            format!("{} B per connection held, ", group(m.per_connection_bytes))
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  memory: {per}{} RSS with {} open, {} before the first{}; peak RSS {}; kernel TCP buffers {} at most (host-wide)",
            mib(m.held_rss_kib),
            group(m.held_connections),
            mib(m.start_rss_kib),
            if c.embedded_server { " (built-in server included)" } else { "" },
            mib(m.peak_rss_kib),
            mib(m.kernel_tcp_peak_kib)
        );
    }
    let _ = writeln!(o);

    let _ = writeln!(o, "Ledger");
    let _ = writeln!(o, "  {}", ledger(m));
    if m.unexpected > 0 {
        let _ = writeln!(
            o,
            "  unexpected messages (matched no send): {}",
            group(m.unexpected)
        );
    }
    if m.pings_answered > 0 {
        let _ = writeln!(o, "  server pings answered: {}", group(m.pings_answered));
    }
    let no_replies = m.sent > 0 && m.received == 0 && r.broadcast.is_none();
    if no_replies {
        let _ = writeln!(
            o,
            "  no replies matched: {} sent, {} frames came back that matched none; does the server echo the payload unchanged?",
            group(m.sent),
            group(m.unexpected)
        );
    }
    let _ = writeln!(o);
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
    if no_replies {
        problems.push(format!("no replies matched ({} sent)", group(m.sent)));
    }
    if problems.is_empty() {
        let _ = writeln!(o, "Errors: none");
    } else {
        let _ = writeln!(o, "Errors: {}", problems.join("; "));
    }
    o.push_str(&crate::thresholds::render(r));
    o
}
