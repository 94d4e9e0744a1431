//! How a shard opens its connections: all of its slice at its connect rate,
//! following a level over time (stages, a ceiling search's connections), or
//! sessions on a schedule. Each connection then runs in `conn`. It exists apart
//! from `conn` because when and how many connections to open is the shard's
//! decision, made by one task per shard, not by any connection.
//!
//! Each dialer is one task per shard, so its future's size hardly matters; still,
//! its bookkeeping between two ticks (`Staging`) is plain `fn`s, not `async` levels.
//!
//! Within `shard/` it sits above `conn`, `open_loop` and `state`; it must never
//! import the engine, the collector, the reports, the config or the cli.

use super::conn;
use super::state::{advance_end, Shard, CLOSE_WAIT};
use crate::plan::ShardPlan;
use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Opens the shard's connections at its pace until all are started or the run stops.
pub(super) async fn dialer(shard: Rc<Shard>, plan: ShardPlan) {
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

/// Sleeps until `due` (on the shard's timer task); false when the run stopped first.
async fn sleep_until(shard: &Shard, slot: usize, due: Instant) -> bool {
    let wait = due.saturating_duration_since(Instant::now());
    shard
        .sleep_until_ns(slot, shard.now_ns() + wait.as_nanos() as u64)
        .await
}

async fn connection_dialer(shard: &Rc<Shard>, plan: &ShardPlan, slot: usize) {
    let start = Instant::now();
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
        shard.live.set(shard.live.get() + 1);
        monoio::spawn(conn::connection(shard.clone(), id as u32, None));
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
    let share = plan.share;
    let mut stage = Staging::new(plan);
    loop {
        if !sleep_until(shard, slot, Instant::now() + STAGE_TICK).await {
            break;
        }
        let now = Instant::now();
        stage.reap(shard, now);
        stage.close_retired(shard, now);
        let t = shard.run.origin.elapsed().as_secs_f64();
        let want = ((target(t) * share).round() as u64).min(plan.count);
        // Connections waiting to be dialed again count as wanted ones: a failing
        // connection must not be replaced by a fresh id at once.
        let have = stage.live.len() as u64 + stage.cooling.len() as u64;
        if want > have {
            stage.grow(shard, plan, want - have);
        } else {
            stage.shrink(shard, have - want, now);
        }
    }
    // The run stopped: connections close themselves; their slots are released as
    // the shard winds down (nothing reuses them).
}

/// A staged dialer's connections, by state, and its connect credit.
struct Staging {
    /// Connection ids not in use.
    free: Vec<u64>,
    /// The live connections, newest last.
    live: Vec<Staged>,
    /// Connections retired (the target fell), draining and closing.
    retiring: Vec<Staged>,
    /// Ids of connections that failed or were lost, free again from the given time
    /// (in order: every pause is the same).
    cooling: VecDeque<(Instant, u64)>,
    /// Connections that may be dialed now (the connect rate's share per tick).
    credit: f64,
}

impl Staging {
    /// Every id of the shard's slice free, none dialed.
    fn new(plan: &ShardPlan) -> Staging {
        Staging {
            free: (plan.first_conn..plan.first_conn + plan.count)
                .rev()
                .collect(),
            live: Vec::new(),
            retiring: Vec::new(),
            cooling: VecDeque::new(),
            credit: 0.0,
        }
    }

    /// Connections that ended give their id back: a retired one at once, one that
    /// failed or was lost after a pause (a refused upgrade dialed again every tick
    /// would only burn the client's CPU on refusals).
    fn reap(&mut self, shard: &Shard, now: Instant) {
        let (cooling, free) = (&mut self.cooling, &mut self.free);
        self.live.retain(|c| {
            if c.ended.get() {
                shard.stop.release(c.slot);
                cooling.push_back((now + RECONNECT_AFTER, c.id));
            }
            !c.ended.get()
        });
        self.retiring.retain(|c| {
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
    }

    /// Retired connections drain and close on their own clock.
    fn close_retired(&self, shard: &Shard, now: Instant) {
        for c in &self.retiring {
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
    }

    /// Dials up to `missing` connections, paced like the initial connects: the
    /// connect rate's share per tick.
    fn grow(&mut self, shard: &Rc<Shard>, plan: &ShardPlan, missing: u64) {
        self.credit += if plan.connect_rate > 0.0 {
            plan.connect_rate * STAGE_TICK.as_secs_f64()
        } else {
            f64::INFINITY
        };
        let n = missing.min(self.credit.floor().min(1e9) as u64);
        self.credit = (self.credit - n as f64).min(plan.connect_rate.max(1.0));
        for _ in 0..n {
            let Some(id) = self.free.pop() else { break };
            let s = shard.stop.slot();
            let ended = Rc::new(Cell::new(false));
            self.live.push(Staged {
                id,
                slot: s,
                ended: ended.clone(),
                retired_at: None,
            });
            shard.live.set(shard.live.get() + 1);
            monoio::spawn(conn::connection(shard.clone(), id as u32, Some((s, ended))));
        }
    }

    /// `excess` fewer wanted: first forget the ones waiting to be dialed again,
    /// then retire the newest live ones (they drain and close cleanly).
    fn shrink(&mut self, shard: &Shard, mut excess: u64, now: Instant) {
        self.credit = 0.0;
        while excess > 0 {
            let Some((_, id)) = self.cooling.pop_back() else {
                break;
            };
            self.free.push(id);
            excess -= 1;
        }
        for _ in 0..excess {
            if let Some(mut entry) = self.live.pop() {
                shard.stop.retire(entry.slot);
                entry.retired_at = Some(now);
                self.retiring.push(entry);
            }
        }
    }
}

/// Sessions on a schedule: this shard's share of `rate` new sessions per second
/// (or of a ceiling search's live level), at most its share of -c at once. A
/// session that finds every slot busy starts as soon as one frees and counts as
/// late; none is skipped.
async fn session_dialer(shard: &Rc<Shard>, plan: &ShardPlan, slot: usize, rate: f64) {
    let share = plan.share;
    let live = shard.run.live.is_some();
    let cap = plan.count.max(1);
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
        if shard.now_ns().saturating_sub(due_ns) > super::exchange::LATE_AFTER.as_nanos() as u64 {
            shard.stats.borrow_mut().counters.sessions_late += 1;
        }
        pace.advance();
        let id = plan.first_conn + k % cap;
        shard.live.set(shard.live.get() + 1);
        monoio::spawn(conn::connection(shard.clone(), id as u32, None));
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One dialer per shard: its size is printed, not held to a bound (1152 and
    /// 1408 bytes, rustc 1.95, debug build).
    #[test]
    fn dialer_future_size() {
        type Target<'a> = &'a dyn Fn(f64) -> f64;
        fn staged<'a, F: std::future::Future + 'a>(
            _: fn(&'a Rc<Shard>, &'a ShardPlan, usize, Target<'a>) -> F,
        ) -> usize {
            std::mem::size_of::<F>()
        }
        fn whole<F: std::future::Future>(_: fn(Rc<Shard>, ShardPlan) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        eprintln!(
            "staged_dialer future {}, dialer {} bytes",
            staged(staged_dialer),
            whole(dialer)
        );
    }
}
