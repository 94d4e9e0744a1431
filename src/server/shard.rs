//! The state of one server shard, shared by its connection tasks, and what every
//! file of the server reads: the faults and knobs (`ServerFaults`), the totals
//! (`ServerTotals`), the largest frame or message a client may send
//! (`max_message`).
//!
//! It exists so the server's files form a DAG: mod.rs (start, the accept loop, the
//! handle) sits on top and the connection code below it reads `ServerShard` from
//! here. The order, bottom first: timing.rs and hub.rs, shard.rs, read.rs,
//! frames.rs, conn.rs, broadcast.rs, mod.rs; a file imports only files before it.
//! This one must never import mod.rs, read.rs, frames.rs, conn.rs or broadcast.rs.

use super::hub::Local;
use super::timing::Timers;
use crate::net::pool::BufPool;
use crate::net::stop::StopSignal;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest frame, and message held whole (reassembled or inflated), the server
/// accepts when not told otherwise (`--max-message`).
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// Read size of the server: a busy connection holds one while its read waits, so
/// it is modest; a pipelined flood simply takes a few reads.
const SERVER_READ_BUF: usize = 8 * 1024;

/// Faults the built-in server can inject and capacity knobs it can be given, so
/// tests (and ceiling searches) know the truth to measure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerFaults {
    /// Every message is answered this long after it arrived.
    pub delay: Option<Duration>,
    /// (stall, every): every `every`, stop answering for `stall`.
    pub stall: Option<(Duration, Duration)>,
    /// Capacity knob: at most this many WebSocket connections at once (per
    /// process, all shards together); beyond it upgrades get HTTP 503.
    pub max_connections: Option<u64>,
    /// Capacity knob: each shard serves data messages one at a time, this long
    /// each (a single-server queue per shard: throughput exactly 1/D per shard).
    pub service_time: Option<Duration>,
}

/// Totals kept per server shard and summed when the server stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServerTotals {
    /// WebSocket connections upgraded.
    pub connections: u64,
    /// Data messages received from clients (echoed, or published in broadcast mode).
    pub messages: u64,
    pub rejected: u64,
    pub errors: u64,
    /// Broadcast: messages published (each goes to every connected client).
    pub published: u64,
    /// Broadcast: copies written to receivers' sockets.
    pub delivered: u64,
    /// Broadcast: copies dropped (a receiver's queue was full, or the copy was still
    /// queued or being written when its receiver went away).
    pub dropped: u64,
}

/// State of one server shard, shared by its tasks.
pub(crate) struct ServerShard {
    /// This shard's number (0-based).
    pub index: usize,
    pub stop: StopSignal,
    /// Read buffers (borrowed only by connections with data ready).
    pub pool: BufPool,
    /// Write buffers: small, grown by what is written.
    pub wpool: BufPool,
    pub open: Cell<u64>,
    pub live: Cell<u64>,
    pub connections: Cell<u64>,
    pub messages: Cell<u64>,
    pub rejected: Cell<u64>,
    pub errors: Cell<u64>,
    pub faults: ServerFaults,
    /// --max-message: the largest frame, and message held whole, a client may
    /// send; larger ones close the connection (1009).
    pub max_message: usize,
    /// Connections held by all shards of the process (with --max-connections: one
    /// atomic operation per connection opened and per connection ended).
    held: Arc<AtomicU64>,
    /// --service-time: when this shard's single server is next free.
    busy_until: Cell<Instant>,
    /// When the server started (the stall schedule counts from here).
    pub origin: Instant,
    /// Broadcast mode: subscribers, counters and the way to the other shards.
    pub bcast: Option<Local>,
    /// What was last added to the cross-thread counters.
    pub(super) published_last: std::cell::RefCell<(ServerTotals, u64)>,
    /// With --metrics-addr: handling and fan-out timers.
    pub(crate) timers: Option<Timers>,
    /// Serve TLS (wss://) with this config.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Accept permessage-deflate: the shard's shared codecs and scratch buffers.
    pub deflate: Option<crate::ws::deflate::Scratch>,
}

impl ServerShard {
    pub(super) fn new(
        index: usize,
        faults: ServerFaults,
        held: Arc<AtomicU64>,
        origin: Instant,
        bcast: Option<Local>,
    ) -> ServerShard {
        ServerShard {
            index,
            stop: StopSignal::default(),
            pool: BufPool::new(SERVER_READ_BUF, 4 * SERVER_READ_BUF),
            wpool: BufPool::for_writes(),
            open: Cell::new(0),
            live: Cell::new(0),
            connections: Cell::new(0),
            messages: Cell::new(0),
            rejected: Cell::new(0),
            errors: Cell::new(0),
            published_last: Default::default(),
            timers: None,
            tls: None,
            deflate: None,
            max_message: DEFAULT_MAX_MESSAGE,
            faults,
            held,
            busy_until: Cell::new(origin),
            origin,
            bcast,
        }
    }

    /// --max-connections: takes a place for a connection about to be upgraded;
    /// false when every place is taken. Give it back with `leave`.
    pub fn admit(&self) -> bool {
        match self.faults.max_connections {
            None => true,
            Some(max) => self
                .held
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok(),
        }
    }

    /// A connection admitted by `admit` has ended (or its upgrade failed).
    pub fn leave(&self) {
        if self.faults.max_connections.is_some() {
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// When the answers to bytes read at `now` may go out, if not at once: after
    /// the --delay or the rest of a --stall, and with --service-time after this
    /// shard's single server has served the `messages` complete data messages they
    /// hold, one after another, behind every message that came before (a queue:
    /// answered at max(arrival, busy_until) + messages x D).
    pub fn answer_at(&self, now: Instant, messages: u32) -> Option<Instant> {
        let held = self.hold_back(now).map(|d| now + d);
        match self.faults.service_time {
            Some(d) if messages > 0 => {
                let start = held.unwrap_or(now).max(self.busy_until.get());
                let done = start + d * messages;
                self.busy_until.set(done);
                Some(done)
            }
            _ => held,
        }
    }

    /// How long answers must wait now: the configured delay, or the rest of a stall.
    pub fn hold_back(&self, now: Instant) -> Option<Duration> {
        let stall = self.faults.stall.and_then(|(stall, every)| {
            let into = now.duration_since(self.origin).as_nanos() % every.as_nanos();
            let into = Duration::from_nanos(into as u64);
            // Stalls take the first `stall` of every period after the first one.
            (now.duration_since(self.origin) >= every && into < stall).then(|| stall - into)
        });
        match (stall, self.faults.delay) {
            (Some(s), Some(d)) => Some(s.max(d)),
            (s, d) => s.or(d),
        }
    }
}
