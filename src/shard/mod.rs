//! A shard: one thread pinned to one core, one monoio runtime, its own connections,
//! pacing and statistics.
//!
//! Nothing inside a shard is shared with another thread: state is `Rc`/`Cell`/
//! `RefCell`. The only ways out are the snapshot channel (try_send once a second,
//! never blocking) and the shard's return value; the only way in is the run's
//! interrupt flag, which the ticker polls ten times a second, not per message.

pub mod conn;
pub mod dial;
pub mod open_loop;
pub mod timers;

use crate::metrics::{Interval, Snapshot};
use crate::net::{pool, stop};
use crate::plan::{Plan, ShardPlan};
use crate::target::Target;
use crossbeam_channel::{Sender, TrySendError};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
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
    fn register_thread(&self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        if let Ok(mut t) = self.tids.lock() {
            t.push(tid);
        }
    }
}

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
    /// Set by Ctrl-C (or a caller) to end the run early.
    pub interrupt: Arc<AtomicBool>,
    /// Shards with their runtime built, waiting for `go` before the first dial (so
    /// the process's RSS can be read with every fixed cost in and no connection).
    pub ready: std::sync::atomic::AtomicUsize,
    pub go: AtomicBool,
    /// A level changed during the run (ceiling search); None: the plan's load.
    pub live: Option<Arc<Live>>,
}

impl RunShared {
    /// Called by each shard once it is set up; returns when the run may dial. Gives
    /// up waiting after 5 s (the engine sets `go` long before).
    fn ready_and_wait(&self) {
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
}

impl Shard {
    /// ns since the run's clock origin.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.run.origin.elapsed().as_nanos() as u64
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

/// Runs one shard to completion on the current thread (already pinned). Returns the
/// driver name.
pub fn run_shard(
    plan: ShardPlan,
    run: Arc<RunShared>,
    tx: Sender<Snapshot>,
    driver: crate::vocab::kinds::IoDriver,
) -> Result<&'static str, String> {
    let (_, name) = crate::rt::block_on(driver, |name| async move {
        let pool = read_pool(&run);
        let shard = Rc::new(Shard {
            index: plan.index,
            rng: RefCell::new(crate::ws::mask::MaskRng::from_entropy(
                plan.index as u64 + 1,
            )),
            run,
            stats: RefCell::new(Interval::default()),
            stop: stop::StopSignal::default(),
            timers: timers::Timers::default(),
            pool,
            wpool: pool::BufPool::for_writes(),
            open: Cell::new(0),
            peak_open: Cell::new(0),
            live: Cell::new(0),
            outstanding: Cell::new(0),
            dialing_done: Cell::new(false),
            level: Cell::new(0.0),
            level_gen: Cell::new(0),
            level_at_ns: Cell::new(0),
        });
        if let Some(live) = &shard.run.live {
            live.register_thread();
            shard.level.set(live.get());
        }
        shard.run.ready_and_wait();
        monoio::spawn(timers::run(shard.clone()));
        monoio::spawn(dialer(shard.clone(), plan.clone()));
        ticker(shard, tx, name).await;
    })?;
    Ok(name)
}

/// Read buffers big enough for what a connection expects at once (its messages in
/// flight, with frame headers), at least 512 bytes and at most 64 KiB: a connection
/// waiting for an echo holds one, so they are sized to the traffic, not to the worst case.
fn read_pool(run: &RunShared) -> pool::BufPool {
    let per_msg = run.plan.payload.size + 14;
    let want = per_msg.saturating_mul(run.plan.workload.inflight().max(1) as usize);
    let size = want.clamp(512, 64 * 1024);
    pool::BufPool::new(size, 4 * size)
}

/// Opens the shard's connections at its pace until all are started or the run stops.
async fn dialer(shard: Rc<Shard>, plan: ShardPlan) {
    let slot = shard.stop.slot();
    let live = shard.run.live.as_ref().map(|l| l.dimension);
    if let Some(rate) = shard.run.plan.workload.session.and_then(|s| s.rate) {
        session_dialer(&shard, &plan, slot, rate).await;
    } else if live == Some(crate::vocab::kinds::Dimension::Connections) {
        staged_dialer(&shard, &plan, slot, &|_| shard.level.get()).await;
    } else if live.is_some() {
        // A search's rate runs over all -c connections for hours: one the target
        // closes is dialed again (after a pause), or every later step runs short.
        let all = shard.run.plan.connections as f64;
        staged_dialer(&shard, &plan, slot, &|_| all).await;
    } else if let Some(profile) = shard.run.plan.conn_profile.clone() {
        staged_dialer(&shard, &plan, slot, &|t| profile.at(t)).await;
    } else {
        connection_dialer(&shard, &plan, slot).await;
    }
    shard.stop.release(slot);
    shard.dialing_done.set(true);
}

/// Sleeps until `due`; false when the run stopped first.
async fn sleep_until(shard: &Shard, slot: usize, due: Instant) -> bool {
    let now = Instant::now();
    due <= now
        || shard
            .stop
            .until(slot, monoio::time::sleep(due - now))
            .await
            .is_some()
}

async fn connection_dialer(shard: &Rc<Shard>, plan: &ShardPlan, slot: usize) {
    let start = Instant::now();
    let targets = shard.run.targets.len() as u64;
    for i in 0..plan.count {
        if shard.stop.is_set() {
            break;
        }
        if plan.connect_rate > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / plan.connect_rate);
            if !sleep_until(shard, slot, due).await {
                break;
            }
        }
        let id = plan.first_conn + i;
        let target = (id % targets) as usize;
        shard.live.set(shard.live.get() + 1);
        monoio::spawn(conn::connection(shard.clone(), id as u32, target, None));
    }
}

/// How often a staged dialer compares open connections with the target.
const STAGE_TICK: Duration = Duration::from_millis(10);
/// How long a staged dialer waits before it dials again for a connection that
/// failed or was lost.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// A connection of a staged dialer.
struct Staged {
    id: u64,
    slot: usize,
    /// Set by the connection's task when it ended.
    ended: Rc<Cell<bool>>,
    /// When the dialer retired it (the target fell).
    retired_at: Option<Instant>,
}

/// Connections that follow a target (the run's active connections at `t` seconds:
/// a stage profile, or a ceiling search's live level): this shard's share of it,
/// opened at the connect rate and closed (newest first, with a clean close) when
/// the target falls. The connections already open are never touched by a rise.
async fn staged_dialer(
    shard: &Rc<Shard>,
    plan: &ShardPlan,
    slot: usize,
    target: &dyn Fn(f64) -> f64,
) {
    let share = plan.count as f64 / shard.run.plan.connections.max(1) as f64;
    let targets = shard.run.targets.len() as u64;
    // Connection ids not in use, and the live ones (newest last) with their slots.
    let mut free: Vec<u64> = (plan.first_conn..plan.first_conn + plan.count)
        .rev()
        .collect();
    let mut live: Vec<Staged> = Vec::new();
    let mut retiring: Vec<Staged> = Vec::new();
    // Ids of connections that failed or were lost, free again from the given time
    // (in order: every pause is the same).
    let mut cooling: std::collections::VecDeque<(Instant, u64)> = Default::default();
    let mut credit = 0.0f64;
    let origin = shard.run.origin;
    loop {
        if !sleep_until(shard, slot, Instant::now() + STAGE_TICK).await {
            break;
        }
        // Connections that ended give their id back: a retired one at once, one
        // that failed or was lost after a pause (a refused upgrade dialed again
        // every tick would only burn the client's CPU on refusals).
        let now = Instant::now();
        live.retain(|c| {
            if c.ended.get() {
                shard.stop.release(c.slot);
                cooling.push_back((now + RECONNECT_AFTER, c.id));
            }
            !c.ended.get()
        });
        retiring.retain(|c| {
            if c.ended.get() {
                shard.stop.release(c.slot);
                free.push(c.id);
            }
            !c.ended.get()
        });
        while cooling.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, id)) = cooling.pop_front() {
                free.push(id);
            }
        }
        // Retired connections drain and close on their own clock.
        for c in &retiring {
            if let Some(at) = c.retired_at {
                advance_end(
                    &shard.stop,
                    Some(c.slot),
                    at,
                    now,
                    shard.run.plan.drain,
                    CLOSE_WAIT,
                );
            }
        }
        let t = origin.elapsed().as_secs_f64();
        let want = ((target(t) * share).round() as u64).min(plan.count);
        // Connections waiting to be dialed again count as wanted ones: a failing
        // connection must not be replaced by a fresh id at once.
        let have = live.len() as u64 + cooling.len() as u64;
        if want > have {
            // Paced like the initial connects: the connect rate's share per tick.
            credit += if plan.connect_rate > 0.0 {
                plan.connect_rate * STAGE_TICK.as_secs_f64()
            } else {
                f64::INFINITY
            };
            let n = (want - have).min(credit.floor().min(1e9) as u64);
            credit = (credit - n as f64).min(plan.connect_rate.max(1.0));
            for _ in 0..n {
                let Some(id) = free.pop() else { break };
                let s = shard.stop.slot();
                let ended = Rc::new(Cell::new(false));
                live.push(Staged {
                    id,
                    slot: s,
                    ended: ended.clone(),
                    retired_at: None,
                });
                shard.live.set(shard.live.get() + 1);
                monoio::spawn(conn::connection(
                    shard.clone(),
                    id as u32,
                    (id % targets) as usize,
                    Some((s, ended)),
                ));
            }
        } else {
            credit = 0.0;
            let mut excess = have - want;
            // Fewer wanted: first forget the ones waiting to be dialed again.
            while excess > 0 {
                let Some((_, id)) = cooling.pop_back() else {
                    break;
                };
                free.push(id);
                excess -= 1;
            }
            for _ in 0..excess {
                if let Some(mut entry) = live.pop() {
                    shard.stop.retire(entry.slot);
                    entry.retired_at = Some(now);
                    retiring.push(entry);
                }
            }
        }
    }
    // The run stopped: connections close themselves; their slots are released as
    // the shard winds down (nothing reuses them).
    let _ = (live, retiring);
}

/// Sessions on a schedule: this shard's share of `rate` new sessions per second
/// (or of a ceiling search's live level), at most its share of -c at once. A
/// session that finds every slot busy starts as soon as one frees and counts as
/// late; none is skipped.
async fn session_dialer(shard: &Rc<Shard>, plan: &ShardPlan, slot: usize, rate: f64) {
    let share = plan.count as f64 / shard.run.plan.connections.max(1) as f64;
    let live = shard.run.live.is_some();
    let cap = plan.count.max(1);
    let targets = shard.run.targets.len() as u64;
    let mut pace = crate::pacer::LivePace::default();
    let mut gen = shard.level_gen.get();
    pace.set_rate(
        if live { shard.level.get() } else { rate } * share,
        shard.now_ns(),
        0.0,
    );
    let mut k: u64 = 0;
    loop {
        if live {
            pace.follow(shard.live_level(), &mut gen, share, 0.0);
        }
        let due_ns = pace.due();
        if shard.stop.is_set() {
            break;
        }
        // A live level is looked at again every 50 ms (a paused pace is never due).
        let now_ns = shard.now_ns();
        if due_ns > now_ns {
            let wait = Duration::from_nanos(due_ns - now_ns);
            let wait = if live {
                wait.min(Duration::from_millis(50))
            } else {
                wait
            };
            if !sleep_until(shard, slot, Instant::now() + wait).await {
                break;
            }
            continue;
        }
        while shard.live.get() >= cap {
            if !sleep_until(shard, slot, Instant::now() + Duration::from_millis(1)).await {
                return;
            }
        }
        if shard.now_ns().saturating_sub(due_ns) > open_loop::LATE_AFTER.as_nanos() as u64 {
            shard.stats.borrow_mut().counters.sessions_late += 1;
        }
        pace.advance();
        let id = plan.first_conn + k % cap;
        shard.live.set(shard.live.get() + 1);
        monoio::spawn(conn::connection(
            shard.clone(),
            id as u32,
            (id % targets) as usize,
            None,
        ));
        k += 1;
    }
}

/// Once a second hands the interval to the collector; ends the run at its deadline
/// or on interrupt; sends the last snapshot when every connection has finished.
async fn ticker(shard: Rc<Shard>, tx: Sender<Snapshot>, driver: &'static str) {
    let origin = shard.run.origin;
    let deadline = origin + shard.run.plan.duration;
    let mut second = 0u64;
    let mut held: Option<Snapshot> = None;
    let mut stopped_at: Option<Instant> = None;
    // Connections still busy this long after the stop are abandoned (and what they
    // had in flight is reported as such): drain, close handshake, a connect timeout.
    let grace = shard.run.plan.drain
        + shard.run.plan.close_timeout
        + shard.run.plan.connect_timeout
        + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        let next_tick = origin + Duration::from_secs(second + 1);
        let poll = if shard.run.live.is_some() { 20 } else { 100 };
        let mut wake = next_tick.min(now + Duration::from_millis(poll));
        if let Some(at) = stopped_at {
            // The end-of-run phases are due on time: connections hold no timer.
            for due in [
                at + shard.run.plan.drain,
                at + shard.run.plan.drain + shard.run.plan.close_timeout,
            ] {
                if due > now {
                    wake = wake.min(due);
                }
            }
        }
        monoio::time::sleep(wake.saturating_duration_since(now)).await;
        let now = Instant::now();
        if let Some(live) = &shard.run.live {
            let level = live.get();
            if level != shard.level.get() {
                shard.level.set(level);
                shard.level_gen.set(shard.level_gen.get() + 1);
                shard.level_at_ns.set(shard.now_ns());
                // Paced writers sleep to their next send: let them re-time it.
                if live.dimension == crate::vocab::kinds::Dimension::Rate {
                    shard.stop.wake_all();
                }
            }
        }

        if stopped_at.is_none() && (now >= deadline || shard.run.interrupt.load(Ordering::Relaxed))
        {
            stopped_at = Some(now);
            shard.stop.trigger();
        }
        if let Some(at) = stopped_at {
            advance_end(
                &shard.stop,
                None,
                at,
                now,
                shard.run.plan.drain,
                shard.run.plan.close_timeout,
            );
        }
        if now >= next_tick {
            second = now.duration_since(origin).as_secs();
            let snap = take_snapshot(&shard, second, false, driver);
            held = match held.take() {
                Some(mut h) => {
                    merge_snapshot(&mut h, snap);
                    Some(h)
                }
                None => Some(snap),
            };
            if let Some(s) = held.take() {
                match tx.try_send(s) {
                    Ok(()) => {}
                    Err(TrySendError::Full(s)) => held = Some(s),
                    Err(TrySendError::Disconnected(_)) => {}
                }
            }
        }
        if let Some(at) = stopped_at {
            let done = shard.live.get() == 0 && shard.dialing_done.get();
            if done || now.duration_since(at) > grace {
                break;
            }
        }
    }
    // Whatever abandoned connections still owed the ledger was in flight at stop.
    let owed = shard.outstanding.replace(0);
    shard.stats.borrow_mut().counters.in_flight_at_stop += owed;
    let second = origin.elapsed().as_secs() + 1;
    let mut last = take_snapshot(&shard, second, true, driver);
    if let Some(mut h) = held.take() {
        merge_snapshot(&mut h, last);
        last = h;
        last.last = true;
    }
    // The last snapshot may wait for the collector: the shard has nothing else to do.
    let _ = tx.send(last);
}

/// Moves a stopped shard (`slot` None) or one retired slot through the end
/// phases: the drain is over `drain` after the stop, the close window `close`
/// after that.
fn advance_end(
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

fn take_snapshot(shard: &Shard, second: u64, last: bool, driver: &'static str) -> Snapshot {
    let interval = std::mem::take(&mut *shard.stats.borrow_mut());
    let open = shard.open.get();
    let peak = shard.peak_open.replace(open);
    Snapshot {
        shard: shard.index,
        second,
        open,
        peak_open: peak,
        interval,
        last,
        driver,
    }
}

fn merge_snapshot(into: &mut Snapshot, later: Snapshot) {
    into.interval.merge(&later.interval);
    into.second = later.second;
    into.open = later.open;
    into.peak_open = into.peak_open.max(later.peak_open);
    into.last |= later.last;
}
