//! A shard: one thread pinned to one core, one monoio runtime, its own connections,
//! pacing and statistics.
//!
//! Nothing inside a shard is shared with another thread: state is `Rc`/`Cell`/
//! `RefCell`. The only ways out are the snapshot channel (try_send once a second,
//! never blocking) and the shard's return value; the only way in is the run's
//! interrupt flag, which the ticker polls ten times a second, not per message.

pub mod conn;
pub mod converse;
pub mod dial;
pub mod dialers;
pub mod exchange;
pub mod io;
pub mod open_loop;
pub mod opening;
pub mod park;
pub mod protocol;
pub mod state;
pub mod steps;
pub mod timers;

pub use state::{Live, RunShared, Shard, CLOSE_WAIT};

use crate::metrics::{Interval, Snapshot};
use crate::net::{pool, stop};
use crate::plan::ShardPlan;
use crossbeam_channel::{Sender, TrySendError};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        // --debug-frames watches the process's first connection, on its shard.
        let debug_conn = run.plan.conn_id_base as u32;
        let debug_frames = if plan.first_conn == run.plan.conn_id_base {
            run.plan.debug_frames
        } else {
            0
        };
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
            heartbeats: Default::default(),
            debug_frames: Cell::new(debug_frames),
            debug_conn,
            deflate: Default::default(),
            // Idle connections park on one readiness wait (io_uring; WSHERD_NO_PARK=1
            // keeps a task per connection, for before/after measurements).
            parking: (name == crate::rt::URING && std::env::var_os("WSHERD_NO_PARK").is_none())
                .then(park::Parking::new)
                .flatten(),
        });
        if let Some(live) = &shard.run.live {
            live.register_thread();
            shard.level.set(live.get());
        }
        shard.run.ready_and_wait();
        let s = shard.clone();
        // The io_uring driver times to the nanosecond (a timerfd), epoll to the
        // wheel's millisecond.
        let precise = name == crate::rt::URING && s.run.plan.precise_timer(plan.share);
        monoio::spawn(async move { timers::run(&s.timers, &s.stop, s.run.origin, precise).await });
        if shard.parking.is_some() {
            monoio::spawn(conn::parker(shard.clone()));
        }
        monoio::spawn(dialers::dialer(shard.clone(), plan.clone()));
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

        if stopped_at.is_none() {
            shard.sweep_heartbeats();
        }
        if stopped_at.is_none()
            && (now >= deadline
                || shard.run.interrupt.load(Ordering::Relaxed)
                || shard.run.gave_up.load(Ordering::Relaxed))
        {
            stopped_at = Some(now);
            shard.stop.trigger();
        }
        if let Some(at) = stopped_at {
            state::advance_end(
                &shard.stop,
                None,
                at,
                now,
                shard.run.plan.drain,
                shard.run.plan.close_timeout,
            );
        }
        if now >= next_tick {
            crate::sys::release_freed_memory();
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
