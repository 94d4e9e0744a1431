//! What a planned run asks of this host, and whether it fits: open files (one
//! socket per connection, two with the built-in server in the same process) and
//! ephemeral ports per (source address, target) pair.
//!
//! The engine refuses a plan that does not fit before it starts; `doctor` reports
//! the same arithmetic check by check; a ceiling search caps its levels by it.
//! Reads the host (`sys`, /proc) and the plan; never imports the engine, the
//! drivers or the shards.

use crate::error::{Error, Result};
use crate::plan::Plan;

/// File descriptors kept free for the runtime, the collector and output files.
const FD_RESERVE: u64 = 64;

/// What a planned run asks of the host: its connections, their spread over
/// targets and source addresses, and whether the built-in server holds the
/// other ends in this process.
#[derive(Debug, Clone)]
pub struct Demand {
    /// Connections of this process.
    pub connections: u64,
    /// Distinct targets (destination address and port) the connections spread over.
    pub targets: u64,
    /// True when the built-in server runs in the same process (two sockets each).
    pub embedded: bool,
    /// This process's source addresses (0: the kernel's one address per route).
    pub sources: u64,
    /// Connections of the whole run (all agents; = `connections` without --agent).
    pub whole: u64,
    /// Source addresses of the whole run (all agents).
    pub all_sources: u64,
    /// User-space bytes each connection holds (`conn_bytes`); without a plan, a
    /// plain connection that sends (`SENDING_BYTES`).
    pub conn_bytes: u64,
}

impl Demand {
    /// A plan for one process without --source-ip.
    pub fn simple(connections: u64, targets: u64, embedded: bool) -> Demand {
        Demand {
            connections,
            targets,
            embedded,
            sources: 0,
            whole: connections,
            all_sources: 0,
            conn_bytes: SENDING_BYTES,
        }
    }

    /// Connections on the busiest (source, destination) pair.
    pub fn per_pair(&self) -> u64 {
        crate::source::per_pair(
            self.connections,
            self.sources,
            self.targets,
            self.whole,
            self.all_sources,
        )
    }

    /// What to change when a pair needs more than `ports` ports.
    pub fn port_fix(&self, ports: u64) -> String {
        let pairs_needed = self.whole.div_ceil(ports);
        let sources_needed = pairs_needed.div_ceil(self.targets.max(1));
        format!(
            "use at least {sources_needed} source addresses (--source-ip 127.0.0.1-127.0.0.{}; on a real host, addresses assigned to its interfaces), \
             or spread over more targets, or widen the range (sysctl -w net.ipv4.ip_local_port_range=\"10000 65535\", tuning/99-wsherd.conf)",
            sources_needed.clamp(1, 254)
        )
    }
}

/// Ephemeral ports the kernel hands out per (source, destination) pair.
pub fn ephemeral_ports() -> Option<u64> {
    let r = crate::sys::nums(&crate::sys::read_sys(
        "/proc/sys/net/ipv4/ip_local_port_range",
    )?);
    (r.len() == 2 && r[1] >= r[0]).then(|| r[1] - r[0] + 1)
}

/// Refuses a plan whose connections per target exceed the ephemeral ports of one
/// source address, with the fix.
pub fn check_ports(plan: &Demand) -> Result<(), String> {
    let Some(ports) = ephemeral_ports() else {
        return Ok(());
    };
    let per_pair = plan.per_pair();
    if per_pair > ports {
        return Err(format!(
            "{per_pair} connections on one (source address, target) pair need {per_pair} source ports, but net.ipv4.ip_local_port_range gives {ports}; {}",
            plan.port_fix(ports)
        ));
    }
    Ok(())
}

/// The open-file limit (raised to the hard limit) and how many connections of
/// `cfg`'s kind fit under it: one socket each, two with the embedded server (it
/// holds the other end), leaving `FD_RESERVE` for the rest.
pub fn fd_fit(cfg: &Plan) -> (u64, u64) {
    let limit = crate::sys::raise_nofile();
    let per_conn = if cfg.embedded() { 2 } else { 1 };
    let fits = limit.saturating_sub(crate::sys::open_fds() + FD_RESERVE) / per_conn;
    (limit, fits)
}

/// Distinct (source address, target address) pairs of `cfg`: each has its own
/// ephemeral port range.
pub fn port_pairs(cfg: &Plan) -> (u64, u64) {
    let distinct: std::collections::HashSet<_> =
        cfg.targets.iter().map(|t| t.dial_addr()).collect();
    let targets = distinct.len().max(1) as u64;
    (cfg.sources.len().max(1) as u64 * targets, targets)
}

/// Raises the open-file limit and refuses a plan that cannot fit, with the numbers.
pub fn check_fds(cfg: &Plan) -> Result<u64> {
    let (limit, fits) = fd_fit(cfg);
    let (_, hard) = crate::sys::nofile_limits();
    if cfg.connections > fits {
        let per_conn = if cfg.embedded() { 2 } else { 1 };
        let need = cfg.connections * per_conn + crate::sys::open_fds() + FD_RESERVE;
        return Err(Error::HostLimit(format!(
            "{} connections need about {need} open files{}, but this process may open {limit} (hard limit {hard}); \
             use -c {fits} or fewer, raise the limit (ulimit -n, or nofile in /etc/security/limits.conf), \
             or split the run across processes",
            cfg.connections,
            if cfg.embedded() { " (both ends: the embedded server runs in this process)" } else { "" },
        )));
    }
    Ok(limit)
}

/// What `plan` asks of the host.
pub fn demand(plan: &Plan) -> Demand {
    Demand {
        connections: plan.connections,
        targets: port_pairs(plan).1,
        embedded: plan.embedded(),
        sources: plan.sources.len() as u64,
        whole: plan.whole_connections,
        all_sources: plan.all_sources,
        conn_bytes: conn_bytes(plan),
    }
}

/// User-space memory of one load connection by what it does, as
/// `scripts/bench-hold.sh` measures it (benches/README.md, "Memory per connection
/// by kind": RSS at 10,000 connections against 1,000), rounded up for the
/// allocator's slack. An idle plain connection parks (no task, no buffer): 0.43
/// KiB opened at the default connect rate, 0.67 KiB opened all at once.
pub const PARKED_BYTES: u64 = 768;
/// A connection with a heartbeat (0.94 KiB): its task stays, waiting in `hold`.
pub const BEAT_BYTES: u64 = 1024;
/// A connection that sends (echo, open or closed loop, sessions) or is pushed
/// to (2.02 KiB sending one message a second): its task, a pooled read buffer
/// while reads are armed, its stamps in flight.
pub const SENDING_BYTES: u64 = 2560;
/// What TLS adds to any connection: rustls's state and keys (the unbuffered API
/// holds no record buffer while idle). An idle wss:// connection, which keeps
/// its task, measures 5.39 KiB.
pub const TLS_BYTES: u64 = 5120;
/// Message sizes up to this ride in the measured figures; beyond it a sending
/// connection may hold one message being written and one being read.
const MEASURED_SIZE: u64 = 64;

/// User-space bytes one connection of `plan` may hold: the measured figure for
/// its kind, plus TLS, plus its messages beyond the measured size, plus the zlib
/// state its permessage-deflate offer allows (the server may grant less).
pub fn conn_bytes(plan: &Plan) -> u64 {
    use crate::workload::{Message, Pacing};
    let w = &plan.workload;
    let holds = w.pacing == Pacing::Hold && w.broadcast.is_none() && plan.push.is_none();
    let base = if holds && plan.tls.is_none() {
        PARKED_BYTES
    } else if holds || (w.message == Message::Ping && w.broadcast.is_none()) {
        BEAT_BYTES
    } else {
        SENDING_BYTES + 2 * (plan.payload.size as u64).saturating_sub(MEASURED_SIZE)
    };
    let tls = if plan.tls.is_some() { TLS_BYTES } else { 0 };
    let zlib = plan
        .offer
        .deflate
        .map_or(0, |o| o.state_bytes_at_most() as u64);
    base + tls + zlib
}
