//! Several results into one, without losing anything: counters add up and the
//! latency histograms travel in the results in full (HdrHistogram V2), so merged
//! percentiles are exactly those of one big run.
//!
//! Why it exists: the total of a scenario file (scenarios one after another or
//! side by side) and of several agents' results (processes or hosts) is one run's
//! results again, so every report and threshold reads it as it reads any run.
//!
//! Must import only the results (`results`) and the vocabulary (`vocab`): it
//! works from saved results alone, never from a plan, a shard or the engine.

use crate::results::*;
use crate::vocab::hist::decode_histogram;
use std::collections::BTreeMap;

/// How the parts ran relative to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// One after another: durations add, series follow each other.
    Sequential,
    /// At the same time: durations overlap, series add up second by second.
    Parallel,
}

fn add_maps(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// Merges latency distributions through their full histograms.
fn merge_latency<'a>(parts: impl Iterator<Item = &'a LatencyStats>) -> LatencyStats {
    let mut h = crate::vocab::hist::new_histogram();
    for l in parts {
        if let Some(p) = decode_histogram(&l.hdr) {
            let _ = h.add(&p);
        }
    }
    LatencyStats::from_histogram(&h)
}

fn merge_opt<'a>(parts: impl Iterator<Item = Option<&'a LatencyStats>>) -> Option<LatencyStats> {
    let present: Vec<&LatencyStats> = parts.flatten().collect();
    (!present.is_empty()).then(|| merge_latency(present.into_iter()))
}

/// Processes side by side add their memory; one after another, the largest counts.
/// Kernel TCP memory is host-wide: parts from one host share it (the largest),
/// parts from different hosts add.
fn merge_memory(parts: &[RunResults], seq: bool) -> Option<MemoryStats> {
    let present: Vec<(&MemoryStats, &str)> = parts
        .iter()
        .filter_map(|r| r.memory.as_ref().map(|m| (m, r.host.hostname.as_str())))
        .collect();
    if present.is_empty() {
        return None;
    }
    let mut m = MemoryStats::default();
    let mut kernel: BTreeMap<&str, u64> = BTreeMap::new();
    for (p, host) in &present {
        let k = kernel.entry(host).or_insert(0);
        *k = (*k).max(p.kernel_tcp_peak_kib);
        if seq {
            if p.held_connections >= m.held_connections {
                m.start_rss_kib = p.start_rss_kib;
                m.held_rss_kib = p.held_rss_kib;
                m.held_connections = p.held_connections;
            }
            m.peak_rss_kib = m.peak_rss_kib.max(p.peak_rss_kib);
        } else {
            m.start_rss_kib += p.start_rss_kib;
            m.held_rss_kib += p.held_rss_kib;
            m.held_connections += p.held_connections;
            m.peak_rss_kib += p.peak_rss_kib;
        }
    }
    m.kernel_tcp_peak_kib = if seq {
        kernel.values().copied().max().unwrap_or(0)
    } else {
        kernel.values().sum()
    };
    m.per_connection_bytes = (m.held_rss_kib.saturating_sub(m.start_rss_kib) * 1024)
        .checked_div(m.held_connections)
        .unwrap_or(0);
    Some(m)
}

/// Refuses to merge results that are not parts of one run: the same file twice (it
/// would count every message twice) or different workloads (their total would
/// mean nothing). `names` label the parts in the error.
pub fn check_parts(parts: &[RunResults], names: &[String]) -> Result<(), String> {
    let first = &parts[0];
    let what = |r: &RunResults| {
        let c = &r.config;
        format!(
            "{} workload, {} pacing, {}-byte {} messages",
            c.workload, c.pacing, c.message_size, c.message_kind
        )
    };
    for (i, r) in parts.iter().enumerate().skip(1) {
        if what(r) != what(first) {
            return Err(format!(
                "{} ({}) and {} ({}) are not parts of one run; merge the agents of one run only",
                names[0],
                what(first),
                names[i],
                what(r)
            ));
        }
        for (j, earlier) in parts[..i].iter().enumerate() {
            if earlier.started_at_unix == r.started_at_unix
                && earlier.connections.attempted == r.connections.attempted
                && earlier.messages.sent == r.messages.sent
                && earlier.latency.rtt.hdr == r.latency.rtt.hdr
            {
                return Err(format!(
                    "{} and {} are the same results; each agent's file should be given once",
                    names[j], names[i]
                ));
            }
        }
    }
    Ok(())
}

/// Merges `parts` (at least one) into one result: each section by its own step.
pub fn merge(parts: &[RunResults], timing: Timing) -> RunResults {
    let first = &parts[0];
    let seq = timing == Timing::Sequential;
    let elapsed = span(parts, seq, |r| r.elapsed_secs);
    let duration = span(parts, seq, |r| r.config.duration_secs);
    let mut merged = RunResults {
        schema_version: SCHEMA_VERSION,
        wsherd_version: first.wsherd_version.clone(),
        interrupted: parts.iter().any(|r| r.interrupted),
        // Each part that gave up, by its reason (agents may differ).
        gave_up: parts.iter().find_map(|r| r.gave_up.clone()),
        scenario: None,
        started_at_unix: parts
            .iter()
            .map(|r| r.started_at_unix)
            .fold(f64::INFINITY, f64::min),
        elapsed_secs: elapsed,
        config: merge_config(parts, seq, duration),
        host: first.host.clone(),
        connections: merge_connections(parts, seq),
        messages: merge_messages(parts, duration),
        errors: merge_errors(parts),
        latency: merge_latencies(parts),
        sessions: merge_sessions(parts, seq),
        broadcast: merge_broadcast(parts),
        push: merge_push(parts, seq),
        steps: merge_steps(parts),
        protocol: merge_protocol(parts),
        warmup: None,
        series: merge_series(parts, seq),
        memory: merge_memory(parts, seq),
        thresholds: Vec::new(),
        assessment: Vec::new(),
        agents: None,
    };
    // Assessed as the parts were (their bands; a rate against the sum asked).
    if first.assessment.is_empty() {
        return merged;
    }
    merged.assessment = crate::thresholds::reassess(&merged, &first.assessment);
    merged
}

/// The time the parts span: one after another, the sum of theirs; side by
/// side, the longest.
fn span(parts: &[RunResults], seq: bool, f: impl Fn(&RunResults) -> f64) -> f64 {
    if seq {
        parts.iter().map(f).sum()
    } else {
        parts.iter().map(f).fold(0.0, f64::max)
    }
}

/// The parts' configurations as one: what they share, "mixed" where they
/// differ, every target and source address once, and the connections held at
/// once (the most of any part one after another, their sum side by side).
fn merge_config(parts: &[RunResults], seq: bool, duration: f64) -> ConfigSummary {
    let first = &parts[0];
    ConfigSummary {
        targets: union(parts, |r| &r.config.targets),
        source_ips: union(parts, |r| &r.config.source_ips),
        proxies: union(parts, |r| &r.config.proxies),
        embedded_server: parts.iter().any(|r| r.config.embedded_server),
        workload: same(parts, |r| r.config.workload.clone()),
        pacing: same(parts, |r| r.config.pacing.clone()),
        // Side by side the rates add up; one after another a rate they all
        // asked for is the run's.
        rate: if seq {
            first
                .config
                .rate
                .filter(|r| parts.iter().all(|p| p.config.rate == Some(*r)))
        } else {
            parts.iter().map(|p| p.config.rate).sum::<Option<f64>>()
        },
        connections: if seq {
            parts
                .iter()
                .map(|r| r.config.connections)
                .max()
                .unwrap_or(0)
        } else {
            parts.iter().map(|r| r.config.connections).sum()
        },
        duration_secs: duration,
        connect_rate: first.config.connect_rate,
        connect_timeout_secs: first.config.connect_timeout_secs,
        message_size: first.config.message_size,
        message_kind: same(parts, |r| r.config.message_kind.clone()),
        inflight: first.config.inflight,
        shards: parts.iter().map(|r| r.config.shards).max().unwrap_or(1),
        // Set when every part matched replies by a field: the same one, or "mixed".
        // Side by side, the stages add up; one after another they are each
        // part's own: kept only when every part had the same.
        rate_stages: merged_stages(parts, seq),
        heartbeat_secs: first
            .config
            .heartbeat_secs
            .filter(|h| parts.iter().all(|r| r.config.heartbeat_secs == Some(*h))),
        steps_mode: parts
            .iter()
            .all(|r| r.config.steps_mode.is_some())
            .then(|| same(parts, |r| r.config.steps_mode.clone().unwrap_or_default())),
        correlate: parts
            .iter()
            .all(|r| r.config.correlate.is_some())
            .then(|| same(parts, |r| r.config.correlate.clone().unwrap_or_default())),
    }
}

/// The rate stages of the parts as one run: agents side by side ran the same
/// stages on their shares, so the targets add up; runs one after another keep
/// theirs only when all had the same. None when the parts' stages differ.
fn merged_stages(parts: &[RunResults], seq: bool) -> Vec<crate::results::RateStage> {
    let first = &parts[0].config.rate_stages;
    let same_shape = parts.iter().all(|r| {
        let s = &r.config.rate_stages;
        s.len() == first.len()
            && s.iter()
                .zip(first)
                .all(|(a, b)| (a.secs - b.secs).abs() < 1e-6)
    });
    if !same_shape || first.is_empty() {
        return Vec::new();
    }
    if seq {
        let equal = parts.iter().all(|r| &r.config.rate_stages == first);
        return if equal { first.clone() } else { Vec::new() };
    }
    (0..first.len())
        .map(|i| crate::results::RateStage {
            secs: first[i].secs,
            target: parts.iter().map(|r| r.config.rate_stages[i].target).sum(),
        })
        .collect()
}

/// The value every part has, or "mixed".
fn same(parts: &[RunResults], f: impl Fn(&RunResults) -> String) -> String {
    let v = f(&parts[0]);
    if parts.iter().all(|r| f(r) == v) {
        v
    } else {
        "mixed".into()
    }
}

/// Every part's values, each once, in the order first seen.
fn union(parts: &[RunResults], f: impl Fn(&RunResults) -> &Vec<String>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for r in parts {
        for t in f(r) {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
    }
    all
}

/// The connections' ledgers added up; the peak open is the highest of any part
/// one after another, their sum side by side.
fn merge_connections(parts: &[RunResults], seq: bool) -> ConnectionStats {
    let mut conns = ConnectionStats::default();
    for r in parts {
        let c = &r.connections;
        conns.attempted += c.attempted;
        conns.established += c.established;
        conns.aborted_at_stop += c.aborted_at_stop;
        conns.failed += c.failed;
        add_maps(&mut conns.failed_by_cause, &c.failed_by_cause);
        conns.lost += c.lost;
        add_maps(&mut conns.lost_by_cause, &c.lost_by_cause);
        add_maps(&mut conns.close_codes, &c.close_codes);
        conns.closed_clean += c.closed_clean;
        conns.closed_unanswered += c.closed_unanswered;
        conns.parks += c.parks;
        add_maps(&mut conns.subprotocols, &c.subprotocols);
        if let Some(t) = &c.tls {
            // Verified and resumed only if every part was.
            let m = conns.tls.get_or_insert_with(|| crate::results::TlsStats {
                verified: true,
                resumption: true,
                ..Default::default()
            });
            m.full += t.full;
            m.resumed += t.resumed;
            add_maps(&mut m.negotiated, &t.negotiated);
            m.verified &= t.verified;
            m.resumption &= t.resumption;
        }
        if let Some(d) = &c.deflate {
            let m = conns
                .deflate
                .get_or_insert_with(|| crate::results::DeflateStats {
                    offered: d.offered.clone(),
                    ..Default::default()
                });
            // The average zlib state, weighted by connections.
            let states = m.state_bytes_per_connection * m.negotiated
                + d.state_bytes_per_connection * d.negotiated;
            m.negotiated += d.negotiated;
            m.declined += d.declined;
            m.state_bytes_per_connection = states.checked_div(m.negotiated).unwrap_or(0);
            m.message_bytes_sent += d.message_bytes_sent;
            m.wire_bytes_sent += d.wire_bytes_sent;
            m.message_bytes_received += d.message_bytes_received;
            m.wire_bytes_received += d.wire_bytes_received;
        }
        if let Some(r) = &c.reconnects {
            let m = conns.reconnects.get_or_insert_with(Default::default);
            m.attempted += r.attempted;
            m.succeeded += r.succeeded;
            m.down_at_stop += r.down_at_stop;
            m.disconnected_secs += r.disconnected_secs;
        }
        conns.peak_open = if seq {
            conns.peak_open.max(c.peak_open)
        } else {
            conns.peak_open + c.peak_open
        };
    }
    // Side by side (agents started together), all were open when the last part's
    // were; one after another, there is no such moment.
    conns.all_open_secs = if seq {
        None
    } else {
        parts
            .iter()
            .map(|r| r.connections.all_open_secs)
            .collect::<Option<Vec<f64>>>()
            .and_then(|v| v.into_iter().reduce(f64::max))
    };
    conns
}

/// The messages' ledgers added up, and their rates: what each part achieved,
/// over the merged span of `duration` seconds.
fn merge_messages(parts: &[RunResults], duration: f64) -> MessageStats {
    let mut msgs = MessageStats::default();
    for r in parts {
        let m = &r.messages;
        msgs.sent += m.sent;
        msgs.received += m.received;
        msgs.failed += m.failed;
        msgs.in_flight_at_stop += m.in_flight_at_stop;
        msgs.unexpected += m.unexpected;
        msgs.bytes_sent += m.bytes_sent;
        msgs.bytes_received += m.bytes_received;
        msgs.pings_answered += m.pings_answered;
        let room = crate::metrics::UNEXPECTED_SAMPLES.saturating_sub(msgs.unexpected_samples.len());
        msgs.unexpected_samples
            .extend(m.unexpected_samples.iter().take(room).cloned());
        msgs.late += m.late;
        // Rates: what each part achieved, over the merged span.
        let part_secs = r.config.duration_secs.max(1e-9);
        msgs.sent_per_sec += m.sent_per_sec * part_secs;
        msgs.received_per_sec += m.received_per_sec * part_secs;
    }
    let span_secs = duration.max(1e-9);
    msgs.sent_per_sec /= span_secs;
    msgs.received_per_sec /= span_secs;
    msgs
}

/// The errors of every part, added up by kind.
fn merge_errors(parts: &[RunResults]) -> BTreeMap<String, u64> {
    let mut errors = BTreeMap::new();
    for r in parts {
        add_maps(&mut errors, &r.errors);
    }
    errors
}

/// Every latency merged through its full histogram; an optional one is there
/// when any part has it.
fn merge_latencies(parts: &[RunResults]) -> Latencies {
    let rtt = merge_latency(parts.iter().map(|r| &r.latency.rtt));
    let send_lag = merge_opt(parts.iter().map(|r| r.latency.send_lag.as_ref()));
    Latencies {
        send_lag_share: Latencies::lag_share(&rtt, send_lag.as_ref()),
        connect: merge_latency(parts.iter().map(|r| &r.latency.connect)),
        tls: merge_opt(parts.iter().map(|r| r.latency.tls.as_ref())),
        handshake: merge_latency(parts.iter().map(|r| &r.latency.handshake)),
        protocol_open: merge_opt(parts.iter().map(|r| r.latency.protocol_open.as_ref())),
        rtt,
        rtt_uncorrected: merge_opt(parts.iter().map(|r| r.latency.rtt_uncorrected.as_ref())),
        send_lag,
        delivery: merge_opt(parts.iter().map(|r| r.latency.delivery.as_ref())),
    }
}

/// The sessions of the parts that ran any: counts add up, the rate is their
/// mean one after another and their sum side by side.
fn merge_sessions(parts: &[RunResults], seq: bool) -> Option<SessionStats> {
    let present: Vec<&SessionStats> = parts.iter().filter_map(|r| r.sessions.as_ref()).collect();
    (!present.is_empty()).then(|| SessionStats {
        messages_per_session: present[0].messages_per_session,
        rate: None,
        completed: present.iter().map(|s| s.completed).sum(),
        per_sec: present.iter().map(|s| s.per_sec).sum::<f64>()
            / if seq { present.len() as f64 } else { 1.0 },
        late: present.iter().map(|s| s.late).sum(),
        duration: merge_latency(present.iter().map(|s| &s.duration)),
    })
}

/// The broadcasts of the parts that ran one, added up.
fn merge_broadcast(parts: &[RunResults]) -> Option<BroadcastStats> {
    let present: Vec<&BroadcastStats> = parts.iter().filter_map(|r| r.broadcast.as_ref()).collect();
    (!present.is_empty()).then(|| BroadcastStats {
        publishers: present.iter().map(|b| b.publishers).sum(),
        receivers: present.iter().map(|b| b.receivers).sum(),
        published: present.iter().map(|b| b.published).sum(),
        expected: present.iter().map(|b| b.expected).sum(),
        delivered: present.iter().map(|b| b.delivered).sum(),
        missing: present.iter().map(|b| b.missing).sum(),
        duplicates: present.iter().map(|b| b.duplicates).sum(),
        undelivered_at_stop: present.iter().map(|b| b.undelivered_at_stop).sum(),
        delivered_per_sec: present.iter().map(|b| b.delivered_per_sec).sum(),
    })
}

/// The protocol counts of the parts that ran one, added up.
fn merge_protocol(parts: &[RunResults]) -> Option<ProtocolStats> {
    let present: Vec<&ProtocolStats> = parts.iter().filter_map(|r| r.protocol.as_ref()).collect();
    let first = present.first()?;
    let mut received = BTreeMap::new();
    for p in &present {
        for (k, v) in &p.received {
            *received.entry(k.clone()).or_insert(0) += v;
        }
    }
    Some(ProtocolStats {
        name: same_of(&present, |p| p.name.clone()),
        namespace: first.namespace.clone(),
        event: first.event.clone(),
        opened: present.iter().map(|p| p.opened).sum(),
        pings_answered: present.iter().map(|p| p.pings_answered).sum(),
        received,
    })
}

/// What every item has in common, or "mixed".
fn same_of<T>(items: &[&T], f: impl Fn(&T) -> String) -> String {
    let first = f(items[0]);
    if items.iter().all(|i| f(i) == first) {
        first
    } else {
        "mixed".to_string()
    }
}

/// Conversation steps: the parts' steps of one name added up (counts and the
/// full histograms), in the order they first appear.
fn merge_steps(parts: &[RunResults]) -> Vec<StepResult> {
    let mut out: Vec<StepResult> = Vec::new();
    for s in parts.iter().flat_map(|r| &r.steps) {
        match out
            .iter_mut()
            .find(|o| o.name == s.name && o.kind == s.kind)
        {
            None => out.push(s.clone()),
            Some(o) => {
                o.count += s.count;
                o.ok += s.ok;
                o.timeout += s.timeout;
                o.mismatch += s.mismatch;
                o.closed += s.closed;
                o.stopped += s.stopped;
                o.latency = match (o.latency.take(), &s.latency) {
                    (Some(a), Some(b)) => Some(merge_latency([&a, b].into_iter())),
                    (a, b) => a.or_else(|| b.clone()),
                };
            }
        }
    }
    out
}

/// Push: counts added; rates added side by side, averaged over the time one
/// after another; the fields named when every part named the same.
fn merge_push(parts: &[RunResults], seq: bool) -> Option<PushStats> {
    let present: Vec<&PushStats> = parts.iter().filter_map(|r| r.push.as_ref()).collect();
    let first = present.first()?;
    let sum = |f: fn(&PushStats) -> u64| present.iter().map(|p| f(p)).sum::<u64>();
    let rate = |f: fn(&PushStats) -> f64| {
        let total: f64 = present.iter().map(|p| f(p)).sum();
        if seq {
            total / present.len() as f64
        } else {
            total
        }
    };
    let named = |f: fn(&PushStats) -> &Option<String>| {
        present
            .iter()
            .all(|p| f(p) == f(first))
            .then(|| f(first).clone())
            .flatten()
    };
    Some(PushStats {
        subscribes: sum(|p| p.subscribes),
        received: sum(|p| p.received),
        received_per_sec: rate(|p| p.received_per_sec),
        // Per connection: the mean over the parts (each part's figure is its own).
        per_connection_per_sec: present
            .iter()
            .map(|p| p.per_connection_per_sec)
            .sum::<f64>()
            / present.len() as f64,
        seq_field: named(|p| &p.seq_field),
        missing: sum(|p| p.missing),
        duplicates: sum(|p| p.duplicates),
        sent_at_field: named(|p| &p.sent_at_field),
        sent_at_unit: named(|p| &p.sent_at_unit),
        skewed: sum(|p| p.skewed),
        without_fields: sum(|p| p.without_fields),
    })
}

/// Series: one after another, or second by second.
fn merge_series(parts: &[RunResults], seq: bool) -> Vec<SecondStats> {
    let mut series: BTreeMap<u64, SecondStats> = BTreeMap::new();
    let mut offset = 0u64;
    for r in parts {
        for s in &r.series {
            let t = s.t + offset;
            let e = series.entry(t).or_insert_with(|| SecondStats {
                t,
                ..SecondStats::default()
            });
            e.open += s.open;
            e.connects += s.connects;
            e.connect_failures += s.connect_failures;
            e.sent += s.sent;
            e.received += s.received;
            e.errors += s.errors;
            // Percentiles of a second cannot be merged exactly from summaries;
            // keep the worst, which is what a dashboard of a second shows.
            e.rtt_p50_us = e.rtt_p50_us.max(s.rtt_p50_us);
            e.rtt_p90_us = e.rtt_p90_us.max(s.rtt_p90_us);
            e.rtt_p99_us = e.rtt_p99_us.max(s.rtt_p99_us);
            e.rtt_max_us = e.rtt_max_us.max(s.rtt_max_us);
        }
        if seq {
            offset += r.series.len() as u64;
        }
    }
    series.into_values().collect()
}
