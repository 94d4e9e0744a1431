//! A shard-local stop signal that wakes every waiting connection at once.
//!
//! Connections spend their idle time parked in a read. When the run ends the shard
//! must wake them all so they can drain and close; a cross-thread primitive or a
//! timer per read would cost on every message. Instead each connection owns a slot
//! for its waker, refreshed only when the waker changes, and `trigger` wakes them.
//! Single-threaded by design: `Cell`/`RefCell`, never shared with another thread.

use monoio::io::{CancelHandle, Canceller};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct StopSignal {
    stopped: Cell<bool>,
    wakers: RefCell<Vec<Option<Waker>>>,
    /// Per slot: stopped on its own (a ramp retiring one connection).
    retired: RefCell<Vec<bool>>,
    /// Per slot: cancels the slot's pending reads when it stops. A cancelled
    /// io_uring read still completes with the bytes the kernel already gave it,
    /// so stopping never loses part of the stream (dropping the read would).
    cancellers: RefCell<Vec<Option<Canceller>>>,
    free: RefCell<Vec<usize>>,
}

impl StopSignal {
    /// True once the whole shard stops.
    pub fn is_set(&self) -> bool {
        self.stopped.get()
    }

    /// True once the shard stops or this slot was retired.
    #[inline]
    pub fn is_set_for(&self, slot: usize) -> bool {
        self.stopped.get() || self.retired.borrow()[slot]
    }

    /// A handle for `cancelable_read`s of this slot, cancelled when it stops.
    pub fn cancel_handle(&self, slot: usize) -> CancelHandle {
        self.cancellers.borrow_mut()[slot]
            .get_or_insert_with(Canceller::new)
            .handle()
    }

    fn cancel_reads(&self, slot: usize) {
        let c = self.cancellers.borrow_mut()[slot].take();
        if let Some(c) = c {
            drop(c.cancel());
        }
    }

    /// Stops one slot's task (a ramp going down) and wakes it.
    pub fn retire(&self, slot: usize) {
        self.retired.borrow_mut()[slot] = true;
        self.cancel_reads(slot);
        let w = self.wakers.borrow_mut()[slot].take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Reserves a waker slot for one waiting task.
    pub fn slot(&self) -> usize {
        if let Some(s) = self.free.borrow_mut().pop() {
            return s;
        }
        let mut w = self.wakers.borrow_mut();
        w.push(None);
        self.retired.borrow_mut().push(false);
        self.cancellers.borrow_mut().push(None);
        w.len() - 1
    }

    /// Gives a slot back when its task ends.
    pub fn release(&self, slot: usize) {
        self.wakers.borrow_mut()[slot] = None;
        self.retired.borrow_mut()[slot] = false;
        self.cancellers.borrow_mut()[slot] = None;
        self.free.borrow_mut().push(slot);
    }

    fn register(&self, slot: usize, waker: &Waker) {
        let mut w = self.wakers.borrow_mut();
        match &w[slot] {
            Some(old) if old.will_wake(waker) => {}
            _ => w[slot] = Some(waker.clone()),
        }
    }

    /// Sets the signal and wakes every registered task.
    pub fn trigger(&self) {
        if self.stopped.replace(true) {
            return;
        }
        let slots = self.cancellers.borrow().len();
        for slot in 0..slots {
            self.cancel_reads(slot);
        }
        let wakers: Vec<Waker> = self
            .wakers
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Runs `fut` until it completes (`Some`) or the signal is set (`None`; `fut` is
    /// dropped, which cancels its I/O). A result that is ready wins over the signal,
    /// so nothing that already arrived is thrown away.
    pub async fn until<F: Future>(&self, slot: usize, fut: F) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if self.is_set_for(slot) => Poll::Ready(None),
            Poll::Pending => {
                self.register(slot, cx.waker());
                Poll::Pending
            }
        })
        .await
    }
}
