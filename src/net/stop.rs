//! A shard-local stop signal that wakes every waiting connection at once, in phases,
//! and the shard's close turns.
//!
//! Connections spend their idle time parked in a read. When the run ends the shard
//! must wake them all so they can drain and close; a cross-thread primitive or a
//! timer per read would cost on every message, and a timer held by every connection
//! costs memory (monoio's is over 500 bytes). Instead each connection owns a slot
//! for its waker, refreshed only when the waker changes, and the shard advances the
//! signal through its phases, waking them all each time:
//!
//! - [`STOPPED`]: send nothing new; pending reads are cancelled (without losing
//!   what the kernel already delivered).
//! - [`DRAINED`]: the drain is over; stop waiting for echoes still in flight.
//! - [`CLOSE_OVER`]: the close window is over; close without waiting.
//!
//! The shard's ticker advances the whole shard at its deadlines; one slot can also be
//! advanced alone (a ramp retiring one connection), so per-connection deadlines need
//! no timer in the connection.
//!
//! Close turns: at the end of a big run every connection closes at once; on a
//! saturated core most close handshakes would then go unanswered within the close
//! wait and every connection would hold its close state together. A shard hands out
//! at most [`CLOSE_TURNS`] turns; the others wait their turn (FIFO) with no buffer and
//! no timer, until the close window is over.
//!
//! Single-threaded by design: `Cell`/`RefCell`, never shared with another thread.
//!
//! The built-in server's shards stop their connections with it too. Part of
//! `net/`, below both sides: it must never import `shard/` or `server/`.

use monoio::io::{CancelHandle, Canceller};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Running: nothing is set.
pub const RUNNING: u8 = 0;
/// The run stopped (or the slot was retired): send nothing new.
pub const STOPPED: u8 = 1;
/// The drain is over: stop waiting for replies.
pub const DRAINED: u8 = 2;
/// The close window is over: close without waiting.
pub const CLOSE_OVER: u8 = 3;

/// Close handshakes a shard runs at once.
pub const CLOSE_TURNS: usize = 512;

/// Per-slot state bits: the slot's own phase, and its place in the close turns.
const PHASE: u8 = 0b11;
const QUEUED: u8 = 0b100;
const GRANTED: u8 = 0b1000;

pub struct StopSignal {
    /// The whole shard's phase.
    phase: Cell<u8>,
    wakers: RefCell<Vec<Option<Waker>>>,
    /// Per slot: its own phase (a ramp retiring one connection) and turn bits.
    state: RefCell<Vec<u8>>,
    /// Per slot: cancels the slot's pending reads when it stops. A cancelled
    /// io_uring read still completes with the bytes the kernel already gave it,
    /// so stopping never loses part of the stream (dropping the read would).
    cancellers: RefCell<Vec<Option<Canceller>>>,
    free: RefCell<Vec<usize>>,
    /// Close turns not in use.
    turns_free: Cell<usize>,
    /// Bumped whenever slots were woken by a phase (the shard's or one slot's)
    /// or all at once: a waiter standing in for many slots (the shard's parked
    /// connections) looks at their phases again only when it changed.
    epoch: Cell<u64>,
    /// Slots waiting for a close turn, first come first served. An entry whose slot
    /// no longer has `QUEUED` set (it gave up, or ended) is skipped.
    turn_queue: RefCell<VecDeque<usize>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal {
            phase: Cell::new(RUNNING),
            wakers: RefCell::default(),
            state: RefCell::default(),
            cancellers: RefCell::default(),
            free: RefCell::default(),
            turns_free: Cell::new(CLOSE_TURNS),
            epoch: Cell::new(0),
            turn_queue: RefCell::default(),
        }
    }
}

/// The future of [`StopSignal::until_phase`]: a plain struct rather than an `async
/// fn`, which would hold `fut` twice (as argument and as pinned local); connections
/// sit in these for their whole life.
pub struct Until<'a, F> {
    signal: &'a StopSignal,
    slot: usize,
    phase: u8,
    fut: F,
}

impl<F: Future> Future for Until<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of `self`, and
        // `Until` has no `Drop` and is `Unpin` only when `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        match fut.poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if this.signal.phase_for(this.slot) >= this.phase => Poll::Ready(None),
            Poll::Pending => {
                this.signal.register(this.slot, cx.waker());
                Poll::Pending
            }
        }
    }
}

/// A close turn; the next waiting slot gets it when this is dropped.
pub struct Turn<'a>(&'a StopSignal);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.pass_turn();
    }
}

impl StopSignal {
    /// True once the whole shard stops.
    pub fn is_set(&self) -> bool {
        self.phase.get() >= STOPPED
    }

    /// The phase of one slot: the shard's, or the slot's own if further.
    #[inline]
    pub fn phase_for(&self, slot: usize) -> u8 {
        self.phase.get().max(self.state.borrow()[slot] & PHASE)
    }

    /// True once the shard stops or this slot was retired.
    #[inline]
    pub fn is_set_for(&self, slot: usize) -> bool {
        self.phase_for(slot) >= STOPPED
    }

    /// Changes whenever a phase was set (for the shard or one slot) or every
    /// task was woken.
    pub fn epoch(&self) -> u64 {
        self.epoch.get()
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
        self.advance_slot(slot, STOPPED);
    }

    /// Moves one slot to `phase` (if it is not there yet) and wakes its task.
    pub fn advance_slot(&self, slot: usize, phase: u8) {
        {
            let mut st = self.state.borrow_mut();
            if st[slot] & PHASE >= phase {
                return;
            }
            st[slot] = (st[slot] & !PHASE) | (phase & PHASE);
        }
        self.epoch.set(self.epoch.get() + 1);
        self.cancel_reads(slot);
        self.wake_slot(slot);
    }

    /// Reserves a waker slot for one waiting task.
    pub fn slot(&self) -> usize {
        if let Some(s) = self.free.borrow_mut().pop() {
            return s;
        }
        let mut w = self.wakers.borrow_mut();
        w.push(None);
        self.state.borrow_mut().push(RUNNING);
        self.cancellers.borrow_mut().push(None);
        w.len() - 1
    }

    /// Gives a slot back when its task ends.
    pub fn release(&self, slot: usize) {
        let granted = {
            let mut st = self.state.borrow_mut();
            let granted = st[slot] & GRANTED != 0;
            st[slot] = RUNNING;
            granted
        };
        if granted {
            // Its task ended without using the turn it was given: pass it on.
            self.pass_turn();
        }
        self.wakers.borrow_mut()[slot] = None;
        self.cancellers.borrow_mut()[slot] = None;
        self.free.borrow_mut().push(slot);
    }

    /// Wakes the task waiting on `slot` (a shard timer came due).
    pub fn wake_slot(&self, slot: usize) {
        let w = self
            .wakers
            .borrow_mut()
            .get_mut(slot)
            .and_then(Option::take);
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Registers the task waiting on `slot` to be woken by the signal or a timer.
    pub fn register_waker(&self, slot: usize, waker: &Waker) {
        self.register(slot, waker);
    }

    fn register(&self, slot: usize, waker: &Waker) {
        let mut w = self.wakers.borrow_mut();
        match &w[slot] {
            Some(old) if old.will_wake(waker) => {}
            _ => w[slot] = Some(waker.clone()),
        }
    }

    /// Wakes every registered task without changing any phase (a live level
    /// changed: paced writers re-time their next send).
    pub fn wake_all(&self) {
        self.epoch.set(self.epoch.get() + 1);
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

    /// Sets the signal and wakes every registered task.
    pub fn trigger(&self) {
        self.advance(STOPPED);
    }

    /// Moves the whole shard to `phase` (if it is not there yet) and wakes every
    /// registered task. Reaching `STOPPED` cancels every pending read.
    pub fn advance(&self, phase: u8) {
        let was = self.phase.get();
        if was >= phase {
            return;
        }
        self.phase.set(phase);
        if was < STOPPED {
            let slots = self.cancellers.borrow().len();
            for slot in 0..slots {
                self.cancel_reads(slot);
            }
        }
        self.wake_all();
    }

    /// Runs `fut` until it completes (`Some`) or the signal is set (`None`; `fut` is
    /// dropped, which cancels its I/O). A result that is ready wins over the signal,
    /// so nothing that already arrived is thrown away.
    pub fn until<F: Future>(&self, slot: usize, fut: F) -> Until<'_, F> {
        self.until_phase(slot, STOPPED, fut)
    }

    /// Runs `fut` until it completes (`Some`) or the slot reaches `phase` (`None`).
    pub fn until_phase<F: Future>(&self, slot: usize, phase: u8, fut: F) -> Until<'_, F> {
        Until {
            signal: self,
            slot,
            phase,
            fut,
        }
    }

    /// Waits for a close turn (`Some`), or gives up when the slot's close window is
    /// over (`None`). Turns go first come, first served.
    pub async fn close_turn(&self, slot: usize) -> Option<Turn<'_>> {
        std::future::poll_fn(|cx| {
            let over = self.phase_for(slot) >= CLOSE_OVER;
            let mut st = self.state.borrow_mut();
            let s = st[slot];
            if over {
                st[slot] = s & !(QUEUED | GRANTED);
                drop(st);
                if s & GRANTED != 0 {
                    self.pass_turn();
                }
                return Poll::Ready(None);
            }
            if s & GRANTED != 0 {
                st[slot] = s & !GRANTED;
                return Poll::Ready(Some(Turn(self)));
            }
            if s & QUEUED == 0 {
                let free = self.turns_free.get();
                if free > 0 {
                    self.turns_free.set(free - 1);
                    return Poll::Ready(Some(Turn(self)));
                }
                st[slot] = s | QUEUED;
                self.turn_queue.borrow_mut().push_back(slot);
            }
            drop(st);
            self.register(slot, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// A turn ended: hand it to the first slot still waiting, else free it.
    fn pass_turn(&self) {
        let next = {
            let mut q = self.turn_queue.borrow_mut();
            let mut st = self.state.borrow_mut();
            loop {
                match q.pop_front() {
                    Some(slot) if st[slot] & QUEUED != 0 => {
                        st[slot] = (st[slot] & !QUEUED) | GRANTED;
                        break Some(slot);
                    }
                    Some(_) => continue,
                    None => break None,
                }
            }
        };
        match next {
            Some(slot) => {
                let w = self.wakers.borrow_mut()[slot].take();
                if let Some(w) = w {
                    w.wake();
                }
            }
            None => self.turns_free.set(self.turns_free.get() + 1),
        }
    }

    /// Close turns free now (for tests and reports).
    pub fn turns_free(&self) -> usize {
        self.turns_free.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;

    fn poll<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn close_turns_are_limited_passed_on_in_order_and_given_up_when_over() {
        let s = StopSignal::default();
        let slots: Vec<usize> = (0..CLOSE_TURNS + 2).map(|_| s.slot()).collect();
        let mut turns = Vec::new();
        for &slot in &slots[..CLOSE_TURNS] {
            match poll(pin!(s.close_turn(slot))) {
                Poll::Ready(Some(t)) => turns.push(t),
                _ => panic!("a free turn was not given"),
            }
        }
        assert_eq!(s.turns_free(), 0);
        let (a, b) = (slots[CLOSE_TURNS], slots[CLOSE_TURNS + 1]);
        let mut wait_a = pin!(s.close_turn(a));
        let mut wait_b = pin!(s.close_turn(b));
        assert!(poll(wait_a.as_mut()).is_pending());
        assert!(poll(wait_b.as_mut()).is_pending());
        // Polled again while waiting: still one place in the queue.
        assert!(poll(wait_a.as_mut()).is_pending());
        // A turn ends: the first waiter gets it, the second keeps waiting.
        turns.pop();
        assert!(poll(wait_b.as_mut()).is_pending());
        let turn_a = match poll(wait_a.as_mut()) {
            Poll::Ready(Some(t)) => t,
            _ => panic!("the first waiter did not get the turn"),
        };
        // The close window ends: the second gives up; the turns come back.
        s.advance(CLOSE_OVER);
        assert!(matches!(poll(wait_b.as_mut()), Poll::Ready(None)));
        drop(turn_a);
        turns.clear();
        assert_eq!(s.turns_free(), CLOSE_TURNS);
    }

    #[test]
    fn phases_go_forward_per_shard_and_per_slot() {
        let s = StopSignal::default();
        let (a, b) = (s.slot(), s.slot());
        s.advance_slot(a, DRAINED);
        assert_eq!(s.phase_for(a), DRAINED);
        assert_eq!(s.phase_for(b), RUNNING);
        assert!(s.is_set_for(a) && !s.is_set_for(b) && !s.is_set());
        s.trigger();
        assert_eq!(s.phase_for(b), STOPPED);
        assert_eq!(s.phase_for(a), DRAINED);
        // Never backwards.
        s.advance(STOPPED);
        s.advance_slot(a, STOPPED);
        assert_eq!(s.phase_for(a), DRAINED);
        let mut read = pin!(s.until_phase(b, DRAINED, std::future::pending::<()>()));
        assert!(poll(read.as_mut()).is_pending());
        s.advance(DRAINED);
        assert!(matches!(poll(read.as_mut()), Poll::Ready(None)));
        // A released slot starts afresh.
        s.release(a);
        let c = s.slot();
        assert_eq!(c, a);
        assert_eq!(s.phase_for(c), DRAINED); // the shard's phase
    }
}
