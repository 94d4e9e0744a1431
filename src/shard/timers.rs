//! Shard-wide timers: one monoio `Sleep` per shard instead of one per connection.
//!
//! An open-loop writer (a heartbeat, a paced sender) waits for its next send most
//! of its life. A monoio `Sleep` is 640 bytes with 128-byte alignment, and kept in
//! the connection's task it made every paced connection pay for it (and for the
//! alignment) for its whole life. Instead a connection files its next deadline here
//! (a heap entry: a deadline and its stop slot) and waits on its stop slot's waker;
//! one task per shard sleeps until the earliest deadline and wakes the slots that
//! are due. Deadlines keep the timer's precision (the task sleeps to the earliest
//! one, re-armed when an earlier one is filed). Stale entries (a connection that
//! ended, or filed a later deadline) only cause a spurious wake, which the waiting
//! side re-checks. The heap is a `Vec`: no allocation per deadline once it has grown.
//!
//! **Precision.** monoio's timers sit on a wheel of 1 ms ticks, and a sleep rounds
//! up to the tick after its deadline: a send was up to 2 ms late (benches/README.md,
//! send lag). On the io_uring driver the task instead arms a timerfd (one per
//! shard) to the deadline's nanosecond and waits on an io_uring read of it, which
//! completes when the timer fires; the epoll driver keeps the wheel (a read of a
//! timerfd would block its thread there). A thread wakes tens of microseconds
//! after its timer fires, so the timerfd is armed that much early and the last
//! stretch is waited out by yielding to the other tasks (`run_precise`).
//!
//! Never imports the shard's state: it is handed the timers, the stop signal and the
//! clock origin.

use crate::net::stop::StopSignal;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Timers {
    /// (deadline in ns since the run's origin, stop slot), earliest first.
    heap: RefCell<BinaryHeap<Reverse<(u64, u32)>>>,
    /// The deadline the timer task is sleeping to (u64::MAX: none).
    armed: Cell<u64>,
    /// The timer task's waker, to re-arm it for an earlier deadline.
    task: RefCell<Option<Waker>>,
}

impl Timers {
    /// Wakes `slot`'s task at `due_ns` (ns since the run's origin).
    pub fn wake_at(&self, slot: usize, due_ns: u64) {
        self.heap.borrow_mut().push(Reverse((due_ns, slot as u32)));
        if due_ns < self.armed.get() {
            if let Some(w) = self.task.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// The earliest deadline filed (u64::MAX: none).
    fn earliest(&self) -> u64 {
        self.heap
            .borrow()
            .peek()
            .map_or(u64::MAX, |Reverse((d, _))| *d)
    }
}

/// A timerfd (CLOCK_MONOTONIC, blocking, so that an io_uring read of it waits
/// for the expiry) and the file monoio reads it through.
struct Clock {
    fd: std::os::fd::RawFd,
    file: monoio::fs::File,
}

impl Clock {
    fn new() -> Option<Clock> {
        use std::os::fd::FromRawFd;
        // SAFETY: timerfd_create has no preconditions; the fd it returns is owned
        // by the File below, which closes it.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let std = unsafe { std::fs::File::from_raw_fd(fd) };
        let file = monoio::fs::File::from_std(std).ok()?;
        Some(Clock { fd, file })
    }

    /// Fires `after` from now (at least 1 ns: a zero would disarm it).
    fn arm(&self, after: Duration) {
        let ns = after.as_nanos().clamp(1, 3_600_000_000_000) as i64;
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and a valid itimerspec; the old value is not asked for.
        unsafe { libc::timerfd_settime(self.fd, 0, &spec, std::ptr::null_mut()) };
    }
}

/// The shard's timer task: wakes due slots of `stop`, then sleeps to the
/// earliest deadline (deadlines are ns since `origin`, the run's clock origin):
/// on a timerfd to the nanosecond with `precise` (the io_uring driver), else on
/// monoio's 1 ms wheel. Runs until the shard's runtime ends.
pub async fn run(t: &Timers, stop: &StopSignal, origin: Instant, precise: bool) {
    if let Some(clock) = precise.then(Clock::new).flatten() {
        return run_precise(t, stop, origin, &clock).await;
    }
    run_wheel(t, stop, origin).await
}

/// Wakes every slot due by now; returns the earliest deadline left (u64::MAX:
/// none), which the task then sleeps to.
fn wake_due(t: &Timers, stop: &StopSignal, now: u64) -> u64 {
    loop {
        let top = t.heap.borrow().peek().map(|Reverse(e)| *e);
        match top {
            Some((due, slot)) if due <= now => {
                t.heap.borrow_mut().pop();
                stop.wake_slot(slot as usize);
            }
            _ => break,
        }
    }
    let next = t.earliest();
    t.armed.set(next);
    next
}

/// `run` on the timerfd: one read of it in flight at a time; an earlier
/// deadline filed meanwhile re-arms the timer, and the same read completes then.
///
/// A sleeping thread wakes some tens of microseconds after its timer fires (on
/// this project's VM 40-90 µs: the send lag's floor, benches/README.md). So the
/// timer is armed `early` before the deadline, `early` being the median of the
/// wake-up delays seen so far ([`Early`]), and a task woken before its deadline
/// waits out the rest by yielding: the runtime reaps completions and runs the
/// other tasks between two looks at the clock, so an echo that arrives meanwhile
/// is timed when it arrives. A deadline nearer than `early` is waited for the
/// same way rather than slept to, since a sleep could not end on time.
async fn run_precise(t: &Timers, stop: &StopSignal, origin: Instant, clock: &Clock) {
    let now_ns = || origin.elapsed().as_nanos() as u64;
    t.armed.set(u64::MAX);
    let mut read = Box::pin(clock.file.read_at(vec![0u8; 8], 0));
    let mut early = Early::default();
    loop {
        let now = now_ns();
        let next = wake_due(t, stop, now);
        if next != u64::MAX && next <= now + early.ns {
            yield_once().await;
            continue;
        }
        // The instant the timerfd fires, to learn each wake-up's delay.
        let target = next.saturating_sub(early.ns);
        clock.arm(until(target, now));
        if let Some((_, buf)) = fired_or_earlier(t, read.as_mut()).await {
            if next != u64::MAX {
                early.learn(now_ns().saturating_sub(target));
            }
            // The same 8-byte buffer for the next read: no allocation per wake.
            read = Box::pin(clock.file.read_at(buf, 0));
        }
    }
}

/// How early to arm the timer: a running estimate of the median delay from a
/// timerfd's expiry to the timer task running (a step up when a wake-up came
/// later than the estimate, a step down when sooner), within `0..=MAX_NS`.
struct Early {
    ns: u64,
}

impl Early {
    /// Each wake-up moves the estimate this far.
    const STEP_NS: u64 = 1_000;
    /// Never earlier than this: a wake-up later than it is a stall (the thread
    /// busy, the machine loaded), not the timer's delay, and waiting it out by
    /// yielding would cost more than it saves.
    const MAX_NS: u64 = 150_000;

    fn learn(&mut self, delay_ns: u64) {
        self.ns = if delay_ns > self.ns {
            (self.ns + Self::STEP_NS).min(Self::MAX_NS)
        } else {
            self.ns.saturating_sub(Self::STEP_NS)
        };
    }
}

impl Default for Early {
    fn default() -> Early {
        Early { ns: 20_000 }
    }
}

/// Lets every other ready task run and the runtime reap completions once, then
/// resumes (monoio has no `yield_now`).
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// `run` on monoio's timer wheel (1 ms ticks).
async fn run_wheel(t: &Timers, stop: &StopSignal, origin: Instant) {
    let now_ns = || origin.elapsed().as_nanos() as u64;
    t.armed.set(u64::MAX);
    let mut sleep = Box::pin(monoio::time::sleep(Duration::from_secs(3600)));
    loop {
        let next = wake_due(t, stop, now_ns());
        sleep
            .as_mut()
            .reset(monoio::time::Instant::now() + until(next, now_ns()));
        let _ = fired_or_earlier(t, sleep.as_mut()).await;
    }
}

/// From `now` to the deadline `next` (ns since the origin; an hour for none).
fn until(next: u64, now: u64) -> Duration {
    if next == u64::MAX {
        Duration::from_secs(3600)
    } else {
        Duration::from_nanos(next.saturating_sub(now))
    }
}

/// Waits until `timer` completes (its output), or an earlier deadline than the
/// one armed is filed (None: `wake_at` wakes this task, and the caller re-arms).
async fn fired_or_earlier<F: Future>(
    t: &Timers,
    mut timer: std::pin::Pin<&mut F>,
) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        if t.earliest() < t.armed.get() {
            return Poll::Ready(None);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending => {
                *t.task.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::Early;

    #[test]
    fn early_follows_the_median_delay_within_its_bounds() {
        let mut e = Early::default();
        // Three wake-ups in four 40 µs late, the others on time: the median is
        // 40 µs, and the estimate settles there.
        for i in 0..2_000 {
            e.learn(if i % 4 == 0 { 0 } else { 40_000 });
        }
        assert!((38_000..=41_000).contains(&e.ns), "{}", e.ns);
        // Wake-ups always 60 µs late: the estimate climbs to them.
        for _ in 0..200 {
            e.learn(60_000);
        }
        assert!((59_000..=61_000).contains(&e.ns), "{}", e.ns);
        // Stalls of a second: never more than the bound.
        for _ in 0..1_000 {
            e.learn(1_000_000_000);
        }
        assert_eq!(e.ns, Early::MAX_NS);
        // On time from now on: back down to zero, and not below.
        for _ in 0..1_000 {
            e.learn(0);
        }
        assert_eq!(e.ns, 0);
    }
}
