//! Shard-local timers of the built-in server for `--metrics-addr`: how long
//! handling a message takes and how long fanning a broadcast out takes.
//!
//! Each shard records into its own histograms (one thread: `RefCell`, no atomic,
//! no lock per message, no allocation); its watcher adds them to the shared
//! totals once a second under a mutex and starts afresh. Without `--metrics-addr`
//! the shard has no timers and pays nothing, not even a clock read.
//!
//! At the bottom of the server's order (see shard.rs): it must never import another
//! file of the server.

use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::sync::Mutex;
use std::time::Instant;

/// The server's histograms, summed over its shards (values in ns).
#[derive(Debug, Clone)]
pub struct ServerHistograms {
    /// Time to fan one message out (queued for every local subscriber, handed to
    /// the other shards).
    pub broadcast: Histogram<u64>,
    /// From the read that brought a message to its echo written (echo mode) or its
    /// broadcast queued (broadcast mode).
    pub handling: Histogram<u64>,
}

impl Default for ServerHistograms {
    fn default() -> Self {
        ServerHistograms {
            broadcast: crate::vocab::hist::new_histogram(),
            handling: crate::vocab::hist::new_histogram(),
        }
    }
}

/// One shard's timers.
pub(crate) struct Timers {
    handling: RefCell<Histogram<u64>>,
    broadcast: RefCell<Histogram<u64>>,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            handling: RefCell::new(crate::vocab::hist::new_histogram()),
            broadcast: RefCell::new(crate::vocab::hist::new_histogram()),
        }
    }

    /// `n` messages handled, the first byte of which was read at `since`.
    pub(crate) fn handled(&self, since: Instant, n: u64) {
        if n > 0 {
            let ns = since.elapsed().as_nanos() as u64;
            let _ = self.handling.borrow_mut().record_n(ns.max(1), n);
        }
    }

    /// `n` messages fanned out, all of them from `since` to now.
    pub(crate) fn fanned_out(&self, since: Instant, n: u64) {
        if let Some(ns) = (since.elapsed().as_nanos() as u64).checked_div(n) {
            let _ = self.broadcast.borrow_mut().record_n(ns.max(1), n);
        }
    }

    /// Adds what was recorded to `to` and starts afresh (once a second).
    pub(crate) fn flush(&self, to: &Mutex<ServerHistograms>) {
        let mut h = self.handling.borrow_mut();
        let mut b = self.broadcast.borrow_mut();
        if h.is_empty() && b.is_empty() {
            return;
        }
        let mut shared = to.lock().unwrap_or_else(|e| e.into_inner());
        let _ = shared.handling.add(&*h);
        let _ = shared.broadcast.add(&*b);
        h.reset();
        b.reset();
    }
}
