//! A shard's state, which its tasks share through `Rc`: the run's plan and
//! signals (`RunShared`, the same for every shard), and the shard's own
//! statistics, timers, buffer pools and counts (`Shard`); and the live level a
//! ceiling search sets (`Live`).
//!
//! The bottom of `shard/`: every other file of the folder reads it; it imports
//! none of them.

use super::{park, timers};
use crate::metrics::Interval;
use crate::net::{pool, stop};
use crate::plan::Plan;
use crate::target::Target;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long to wait for the peer's close frame after ours.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A load level that changes while the run goes: a ceiling search raising
/// connections, messages/s or sessions/s (for the whole process). Shards read it
/// in their ticker, ten or more times a second, into a shard-local copy: nothing
/// on the hot path touches it.
#[derive(Debug)]
pub struct Live {
    pub dimension: crate::vocab::kinds::Dimension,
    bits: std::sync::atomic::AtomicU64,
    /// Kernel thread ids of the shard threads (each pushes its own at start), so a
    /// controller can read their CPU time.
    pub tids: std::sync::Mutex<Vec<i32>>,
}

impl Live {
    pub fn new(dimension: crate::vocab::kinds::Dimension, level: f64) -> Live {
        Live {
            dimension,
            bits: level.to_bits().into(),
            tids: Default::default(),
        }
    }

    /// Sets the level (connections, or per second), for every shard.
    pub fn set(&self, level: f64) {
        self.bits.store(level.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }

    /// The calling shard thread's CPU time so far, read by others through its tid.
    pub(super) fn register_thread(&self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        if let Ok(mut t) = self.tids.lock() {
            t.push(tid);
        }
    }
}

/// `Shard::heartbeats`: the server's ping never came.
pub const MISSED: u32 = u32::MAX;

/// What every shard of a run reads (immutable, shared by `Arc`): the plan, the
/// targets as resolved (the embedded server's address once it listens), and the
/// run's clock and signals.
#[derive(Debug)]
pub struct RunShared {
    pub plan: Plan,
    /// The plan's targets, or the embedded server's.
    pub targets: Vec<Target>,
    /// Connections established so far across all shards: broadcast publishers wait
    /// for every receiver before they publish. Touched once per connection.
    pub established: Arc<std::sync::atomic::AtomicU64>,
    /// Clock origin of the run: timestamps in payloads are ns since this.
    pub origin: Instant,
    /// The wall clock at `origin`, ns since the Unix epoch: what a time a server
    /// wrote into a message (push, `--sent-at`) is compared with.
    pub origin_unix_ns: u64,
    /// Set by Ctrl-C (or a caller) to end the run early.
    pub interrupt: Arc<AtomicBool>,
    /// Set by the collector when nothing could be reached in the run's first
    /// seconds (see `engine::GiveUp`): the run ends early, not interrupted.
    pub gave_up: AtomicBool,
    /// Shards with their runtime built, waiting for `go` before the first dial (so
    /// the process's RSS can be read with every fixed cost in and no connection).
    pub ready: std::sync::atomic::AtomicUsize,
    pub go: AtomicBool,
    /// A level changed during the run (ceiling search); None: the plan's load.
    pub live: Option<Arc<Live>>,
    /// With -v: the upgrade failure causes already shown (the first of each is).
    pub shown_causes: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl RunShared {
    /// Called by each shard once it is set up; returns when the run may dial. Gives
    /// up waiting after 5 s (the engine sets `go` long before).
    pub(super) fn ready_and_wait(&self) {
        self.ready.fetch_add(1, Ordering::AcqRel);
        let t0 = Instant::now();
        while !self.go.load(Ordering::Acquire) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The shard's state, shared by its tasks through `Rc`.
pub struct Shard {
    pub index: usize,
    pub run: Arc<RunShared>,
    pub stats: RefCell<Interval>,
    pub stop: stop::StopSignal,
    /// Deadlines of paced writers, served by one timer task.
    pub timers: timers::Timers,
    /// Read buffers, sized for the workload's messages.
    pub pool: pool::BufPool,
    /// Write buffers: small, grown by what is written.
    pub wpool: pool::BufPool,
    pub rng: RefCell<crate::ws::mask::MaskRng>,
    /// Connections open now, and the most during the current interval.
    pub open: Cell<u64>,
    pub peak_open: Cell<u64>,
    /// Connection tasks alive (dialing, open or closing).
    pub live: Cell<u64>,
    /// Messages sent and not yet accounted (received, failed or in flight at stop)
    /// across the shard's connections: what abandoned tasks still owe the ledger.
    pub outstanding: Cell<u64>,
    pub dialing_done: Cell<bool>,
    /// The shard's copy of the live level (ceiling search), how often it changed,
    /// and when it last did (ns since the run's origin).
    pub level: Cell<f64>,
    pub level_gen: Cell<u64>,
    pub level_at_ns: Cell<u64>,
    /// Socket.IO heartbeats, per slot: the time (ms since the run's origin) by
    /// which the server's next ping is due and the window the server announced
    /// (ping interval + timeout); a deadline of 0 is none, `MISSED` a ping that
    /// never came. Swept by the ticker, so a connection holds no timer for it.
    pub heartbeats: RefCell<Vec<(u32, u32)>>,
    /// --debug-frames: frames of connection `debug_conn` still to print (0 on
    /// every shard but the one holding the process's first connection).
    pub debug_frames: Cell<u32>,
    pub debug_conn: u32,
    /// permessage-deflate: codecs shared by connections that keep no context,
    /// and the scratch buffers messages are built, inflated and compressed in.
    pub deflate: crate::ws::deflate::Scratch,
    /// Idle connections held with no task (see `park`); None: every connection
    /// waits as a task (the epoll driver, or no epoll set).
    pub parking: Option<park::Parking>,
}

impl Shard {
    /// ns since the run's clock origin.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.run.origin.elapsed().as_nanos() as u64
    }

    /// Waits until `due_ns` (ns since the run's origin): true then, false once
    /// `slot` stops first. The deadline is filed with the shard's timer task, which
    /// wakes the slot then (to the microsecond on the io_uring driver, see
    /// `timers`), so the waiter holds no timer of its own: think times, reconnect
    /// backoffs, the connect rate's and session starts' pacing.
    pub fn sleep_until_ns(
        &self,
        slot: usize,
        due_ns: u64,
    ) -> impl std::future::Future<Output = bool> + '_ {
        let mut filed = false;
        std::future::poll_fn(move |cx| {
            if self.stop.is_set_for(slot) {
                return std::task::Poll::Ready(false);
            }
            if self.now_ns() >= due_ns {
                return std::task::Poll::Ready(true);
            }
            if !filed {
                self.timers.wake_at(slot, due_ns);
                filed = true;
            }
            self.stop.register_waker(slot, cx.waker());
            std::task::Poll::Pending
        })
    }

    /// The wall clock now, ns since the Unix epoch (the run's origin plus the
    /// monotonic time since: steps of the system clock during the run do not
    /// show).
    #[inline]
    pub fn unix_ns(&self) -> u64 {
        self.run.origin_unix_ns + self.now_ns()
    }

    /// What connection `id` fills its patterns with (a subscribe message, an
    /// auth object, a conversation's sends): its id, the agent, this shard, its
    /// row of the data file, and the caller's `extra` values.
    pub fn vars<'a>(&'a self, id: u32, extra: &'a [String]) -> crate::values::Vars<'a> {
        let plan = &self.run.plan;
        crate::values::Vars {
            conn: id as u64,
            agent: plan.agent.map_or(1, |(i, _)| i),
            shard: self.index,
            row: plan
                .per_conn
                .as_ref()
                .and_then(|p| p.data.as_ref())
                .map(|d| d.row(id as u64)),
            extra,
        }
    }

    /// Slot `slot`'s server pinged (or opened with a ping window `window_ms`,
    /// which is kept): its next ping is due within the window.
    pub fn heard(&self, slot: usize, window_ms: Option<u32>) {
        let now = (self.now_ns() / 1_000_000) as u32;
        let mut hb = self.heartbeats.borrow_mut();
        if hb.len() <= slot {
            hb.resize(slot + 1, (0, 0));
        }
        let e = &mut hb[slot];
        if let Some(w) = window_ms {
            e.1 = w;
        }
        if e.1 > 0 && e.0 != MISSED {
            e.0 = now.saturating_add(e.1).max(1);
        }
    }

    /// Retires (see `StopSignal::retire`) every slot whose server's ping is
    /// overdue, marking it so that the connection ends as lost.
    pub fn sweep_heartbeats(&self) {
        let now = (self.now_ns() / 1_000_000) as u32;
        let mut hb = self.heartbeats.borrow_mut();
        for (slot, e) in hb.iter_mut().enumerate() {
            if e.0 != 0 && e.0 != MISSED && e.0 < now {
                e.0 = MISSED;
                self.stop.retire(slot);
            }
        }
    }

    /// True when slot `slot` was retired for a missed ping; forgets the slot's
    /// heartbeat either way (its connection is ending).
    pub fn missed_heartbeat(&self, slot: usize) -> bool {
        let mut hb = self.heartbeats.borrow_mut();
        match hb.get_mut(slot) {
            Some(e) => std::mem::take(e).0 == MISSED,
            None => false,
        }
    }

    pub fn conn_opened(&self) {
        let o = self.open.get() + 1;
        self.open.set(o);
        if o > self.peak_open.get() {
            self.peak_open.set(o);
        }
    }

    /// The shard's live level (ceiling search) and its generation, for a pace
    /// to follow.
    pub fn live_level(&self) -> crate::pacer::LiveLevel {
        crate::pacer::LiveLevel {
            level: self.level.get(),
            gen: self.level_gen.get(),
            at_ns: self.level_at_ns.get(),
        }
    }

    pub fn conn_closed(&self) {
        self.open.set(self.open.get().saturating_sub(1));
    }
}

/// Moves a stopped shard (`slot` None) or one retired slot through the end
/// phases: the drain is over `drain` after the stop, the close window `close`
/// after that.
pub(super) fn advance_end(
    stop: &stop::StopSignal,
    slot: Option<usize>,
    at: Instant,
    now: Instant,
    drain: Duration,
    close: Duration,
) {
    let phase = if now >= at + drain + close {
        stop::CLOSE_OVER
    } else if now >= at + drain {
        stop::DRAINED
    } else {
        return;
    };
    match slot {
        None => stop.advance(phase),
        Some(s) => stop.advance_slot(s, phase),
    }
}
