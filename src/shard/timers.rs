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

/// The shard's timer task: wakes due slots of `stop`, then sleeps to the
/// earliest deadline (deadlines are ns since `origin`, the run's clock origin).
/// Runs until the shard's runtime ends.
pub async fn run(t: &Timers, stop: &StopSignal, origin: Instant) {
    let now_ns = || origin.elapsed().as_nanos() as u64;
    t.armed.set(u64::MAX);
    let mut sleep = Box::pin(monoio::time::sleep(Duration::from_secs(3600)));
    loop {
        let now = now_ns();
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
        let wait = if next == u64::MAX {
            Duration::from_secs(3600)
        } else {
            Duration::from_nanos(next.saturating_sub(now_ns()))
        };
        sleep.as_mut().reset(monoio::time::Instant::now() + wait);
        // Until the deadline, or an earlier one filed (which wakes this task).
        std::future::poll_fn(|cx| {
            let earliest = t.earliest();
            if earliest < t.armed.get() {
                return Poll::Ready(());
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(()),
                Poll::Pending => {
                    *t.task.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
    }
}
