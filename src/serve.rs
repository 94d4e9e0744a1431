//! `wsherd serve`: the built-in server in the foreground until Ctrl-C, with its
//! status line, its Prometheus endpoint and its totals at the end.
//!
//! The server owns its counters and histograms; this module reads them and hands
//! them to the exporter, so neither the server nor the exporter knows the other.
//! Sits beside the engine; never imported by the server or the exporters.

use crate::error::Result;
use crate::server::{ServeConfig, ServerFaults, ServerTotals};
use crate::vocab::kinds::ServeMode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// `wsherd serve`: runs until Ctrl-C, then prints totals.
pub fn serve_blocking(cfg: ServeConfig) -> Result<ServerTotals> {
    let quiet = cfg.quiet;
    let cores = cfg.cores.clone();
    let mode = match cfg.mode {
        ServeMode::Echo => "echo".to_string(),
        ServeMode::Broadcast => format!("broadcast (queue {} per receiver)", cfg.queue),
    };
    let broadcast = cfg.mode == ServeMode::Broadcast;
    let handle_faults = cfg.faults.clone();
    // A taken metrics port is an error before the server starts.
    let exporter = cfg
        .metrics_addr
        .map(crate::export::prometheus::start_server)
        .transpose()?;
    let handle = crate::server::start(cfg)?;
    let interrupt = crate::sys::interrupt_flag();
    crate::sys::raise_nofile();
    if !quiet {
        eprintln!(
            "wsherd serve: {mode} on ws://{}/ with {} shard{} on cores {:?}; Ctrl-C stops",
            handle.addr(),
            cores.len(),
            if cores.len() == 1 { "" } else { "s" },
            cores
        );
    }
    if !quiet {
        if let Some(knobs) = knobs_line(&handle_faults, cores.len()) {
            eprintln!("wsherd serve: test knobs: {knobs}");
        }
    }
    if let (false, Some((_, m))) = (quiet, &exporter) {
        eprintln!("wsherd serve: metrics on http://{}/metrics", m.addr());
    }
    let g = crate::vocab::fmt::group;
    let mut last_print = Instant::now();
    let mut last_metrics = Instant::now();
    while !interrupt.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if let Some((m, _)) = &exporter {
            if last_metrics.elapsed() >= Duration::from_secs(1) {
                m.update(
                    &handle.totals(),
                    handle.open_connections(),
                    &handle.take_histograms(),
                );
                last_metrics = Instant::now();
            }
        }
        if !quiet && last_print.elapsed() >= Duration::from_secs(10) {
            let t = handle.totals();
            if broadcast {
                eprintln!(
                    "wsherd serve: open {}  connections {}  published {}  delivered {}  dropped {}  errors {}",
                    g(handle.open_connections()),
                    g(t.connections),
                    g(t.published),
                    g(t.delivered),
                    g(t.dropped),
                    g(t.errors)
                );
            } else {
                eprintln!(
                    "wsherd serve: open {}  connections {}  messages {}  errors {}",
                    g(handle.open_connections()),
                    g(t.connections),
                    g(t.messages),
                    g(t.errors)
                );
            }
            last_print = Instant::now();
        }
    }
    let totals = handle.stop();
    if !quiet && broadcast {
        eprintln!(
            "wsherd serve: stopped; {} connections, {} messages broadcast, {} copies delivered, {} dropped, {} rejected, {} errors",
            g(totals.connections),
            g(totals.published),
            g(totals.delivered),
            g(totals.dropped),
            g(totals.rejected),
            g(totals.errors)
        );
    } else if !quiet {
        eprintln!(
            "wsherd serve: stopped; {} connections, {} messages echoed, {} rejected, {} errors",
            g(totals.connections),
            g(totals.messages),
            g(totals.rejected),
            g(totals.errors)
        );
    }
    Ok(totals)
}

/// What the capacity knobs promise, for the start-up line (None without knobs).
fn knobs_line(f: &ServerFaults, shards: usize) -> Option<String> {
    use crate::vocab::fmt::{fmt_rate, group};
    let mut parts = Vec::new();
    if let Some(n) = f.max_connections {
        parts.push(format!(
            "at most {} connections (beyond: HTTP 503)",
            group(n)
        ));
    }
    if let Some(d) = f.service_time {
        let per_shard = 1.0 / d.as_secs_f64();
        parts.push(format!(
            "service time {} per message per shard (ceiling {} msg/s per shard, {} msg/s in all)",
            humantime::format_duration(d),
            fmt_rate(per_shard),
            fmt_rate(per_shard * shards as f64)
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_knobs_line_groups_its_figures() {
        let f = ServerFaults {
            max_connections: Some(250_000),
            service_time: Some(Duration::from_micros(10)),
            ..Default::default()
        };
        assert_eq!(
            knobs_line(&f, 4).unwrap(),
            "at most 250,000 connections (beyond: HTTP 503); service time 10us per message \
             per shard (ceiling 100,000 msg/s per shard, 400,000 msg/s in all)"
        );
        assert_eq!(knobs_line(&ServerFaults::default(), 1), None);
    }
}
