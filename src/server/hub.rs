//! Broadcast mode's data structures (see broadcast.rs): the cross-shard inboxes
//! and doorbells (`Hub`, `Bell`) and each shard's subscribers, their bounded queues
//! and counters (`Local`). It holds no connection and no task: broadcast.rs runs
//! those. It exists apart so that `ServerShard` (shard.rs) can hold a shard's
//! `Local` without importing the connection code that reads the shard.
//!
//! At the bottom of the server's order (see shard.rs): it must never import
//! another file of the server.
//!
//! **Across shards.** Shards are separate threads whose tasks are `!Send`, so a shard
//! cannot wake another shard's connections. Each shard has one inbox (a
//! `Mutex<VecDeque<Bytes>>`, bounded) and a doorbell: a non-blocking Unix socket pair.
//! A publishing shard fans out to its own subscribers directly, then appends the
//! batch it just read (all complete messages of one read, one lock per other shard,
//! not per message) to every other shard's inbox, and writes one byte to that shard's
//! doorbell only if the shard is parked on it (an `armed` flag under the same lock,
//! so a wake-up is never lost and never repeated: at most one byte per park). The
//! receiving shard's inbox task has a read pending on its end of the doorbell, drains
//! the whole inbox in one lock, fans out to its subscribers and parks again.
//!
//! Why not monoio's `sync` feature (cross-thread wakers)? It would work, but it is a
//! crate-wide switch: every runtime in the process, the load shards included, would
//! check a cross-thread waker channel twice on every park and keep an eventfd read in
//! its ring, and `block_on` would spawn its main future as a task, whether or not a
//! broadcast server runs. The doorbell costs echo mode and the load side nothing,
//! needs no new feature, works unchanged on the io_uring and the epoll driver, and is
//! the same mechanism (a byte on a file descriptor the parked ring waits on) at the
//! same price: one `write(2)` per wake-up of a parked shard, none while it is busy.
//! A polled inbox was the other option; it adds up to its interval to every
//! cross-shard delivery and burns CPU on idle servers.
//!
//! An inbox holds at most `max(queue, 1024)` messages; if a shard falls that far
//! behind, what does not fit is dropped and counted as one dropped copy per
//! subscriber of that shard when it next drains its inbox.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::task::Waker;

/// One broadcast message: a complete, unmasked server frame, shared by every receiver.
pub(crate) type Frame = Bytes;

/// Frames at least this long are written from the shared buffer, not copied.
const WRITE_DIRECT: usize = 16 * 1024;
/// Small frames are copied into one write buffer up to about this many bytes.
const COALESCE: usize = 32 * 1024;
/// A queue that empties keeps its allocation only up to this many slots.
const KEEP_QUEUE_SLOTS: usize = 32;
/// Smallest cross-shard inbox, in messages.
const MIN_INBOX: usize = 1024;

// ------------------------------------------------------------------ across shards --

/// The cross-shard part: one inbox per shard, shared by all shard threads.
pub(crate) struct Hub {
    inboxes: Vec<Inbox>,
}

struct Inbox {
    state: Mutex<InboxState>,
    /// Write end of the shard's doorbell (non-blocking).
    bell: UnixStream,
    cap: usize,
}

#[derive(Default)]
struct InboxState {
    frames: VecDeque<Frame>,
    /// The receiving shard found the inbox empty and waits on its doorbell: the next
    /// sender rings it (once) and clears this.
    armed: bool,
    /// Messages refused since the receiver last drained (the inbox was full).
    lost: u64,
}

/// The receiving end of a shard's doorbell, handed to that shard's thread.
pub(crate) struct Bell(pub(super) UnixStream);

impl Hub {
    /// A hub for `shards` shards, and each shard's doorbell (in shard order).
    pub(crate) fn new(shards: usize, queue: usize) -> std::io::Result<(Arc<Hub>, Vec<Bell>)> {
        let mut inboxes = Vec::with_capacity(shards);
        let mut bells = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (tx, rx) = UnixStream::pair()?;
            tx.set_nonblocking(true)?;
            rx.set_nonblocking(true)?;
            inboxes.push(Inbox {
                state: Mutex::new(InboxState::default()),
                bell: tx,
                cap: queue.max(MIN_INBOX),
            });
            bells.push(Bell(rx));
        }
        Ok((Arc::new(Hub { inboxes }), bells))
    }

    /// Appends `frames` to every inbox but `from`'s, ringing the parked ones.
    fn send(&self, from: usize, frames: &[Frame]) {
        for (i, inbox) in self.inboxes.iter().enumerate() {
            if i == from {
                continue;
            }
            let ring = {
                let mut st = inbox.state.lock().unwrap_or_else(|p| p.into_inner());
                let n = inbox.cap.saturating_sub(st.frames.len()).min(frames.len());
                st.frames.extend(frames[..n].iter().cloned());
                st.lost += (frames.len() - n) as u64;
                std::mem::replace(&mut st.armed, false)
            };
            if ring {
                // Never blocks; a full socket (impossible: one byte per park) or a
                // closed one (the shard ended) needs no second byte.
                let _ = (&inbox.bell).write(&[1]);
            }
        }
    }

    /// Swaps shard `me`'s inbox with `into` (which must be empty) and returns the
    /// number of messages lost since the last drain. When there is nothing, arms the
    /// doorbell: the caller must then wait on it before draining again.
    pub(super) fn drain(&self, me: usize, into: &mut VecDeque<Frame>) -> u64 {
        let mut st = self.inboxes[me]
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut st.frames, into);
        let lost = std::mem::take(&mut st.lost);
        if into.is_empty() && lost == 0 {
            st.armed = true;
        }
        lost
    }
}

// ------------------------------------------------------------------ within a shard --

/// A shard's broadcast state: its subscribers and counters (single-threaded).
pub(crate) struct Local {
    pub(super) index: usize,
    pub(super) hub: Arc<Hub>,
    /// Queue bound per receiver, in messages.
    cap: usize,
    subs: RefCell<Vec<Option<Sub>>>,
    free: RefCell<Vec<usize>>,
    /// Subscribers now.
    pub(super) count: Cell<u64>,
    /// Messages this shard's clients sent (each broadcast to all shards).
    pub published: Cell<u64>,
    /// Copies written to a receiver's socket.
    pub delivered: Cell<u64>,
    /// Copies dropped: queue full, inbox full, or unsent when the receiver went away.
    pub dropped: Cell<u64>,
}

#[derive(Default)]
struct Sub {
    queue: VecDeque<Frame>,
    /// The connection's task, when its writer waits for something to send.
    waker: Option<Waker>,
}

impl Local {
    pub(crate) fn new(index: usize, hub: Arc<Hub>, queue: usize) -> Local {
        Local {
            index,
            hub,
            cap: queue.max(1),
            subs: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            count: Cell::new(0),
            published: Cell::new(0),
            delivered: Cell::new(0),
            dropped: Cell::new(0),
        }
    }

    pub(super) fn subscribe(&self) -> usize {
        self.count.set(self.count.get() + 1);
        let mut subs = self.subs.borrow_mut();
        match self.free.borrow_mut().pop() {
            Some(id) => {
                subs[id] = Some(Sub::default());
                id
            }
            None => {
                subs.push(Some(Sub::default()));
                subs.len() - 1
            }
        }
    }

    /// Removes a subscriber; what it still had queued counts as dropped.
    pub(super) fn unsubscribe(&self, id: usize) {
        if let Some(sub) = self.subs.borrow_mut()[id].take() {
            self.add_dropped(sub.queue.len() as u64);
            self.count.set(self.count.get() - 1);
            self.free.borrow_mut().push(id);
        }
    }

    pub(super) fn add_dropped(&self, n: u64) {
        self.dropped.set(self.dropped.get() + n);
    }

    /// Broadcasts messages read on this shard: here, then to every other shard.
    pub(super) fn publish(&self, frames: &[Frame]) {
        self.published
            .set(self.published.get() + frames.len() as u64);
        self.fanout(frames);
        self.hub.send(self.index, frames);
    }

    /// Queues `frames` for every subscriber of this shard, dropping what does not fit.
    pub(super) fn fanout(&self, frames: &[Frame]) {
        if frames.is_empty() {
            return;
        }
        let mut dropped = 0;
        for sub in self.subs.borrow_mut().iter_mut().flatten() {
            let n = self.cap.saturating_sub(sub.queue.len()).min(frames.len());
            sub.queue.extend(frames[..n].iter().cloned());
            dropped += frames.len() - n;
            if n > 0 {
                if let Some(w) = sub.waker.take() {
                    // A task of this thread: this only schedules it.
                    w.wake();
                }
            }
        }
        self.add_dropped(dropped as u64);
    }

    pub(super) fn has_frames(&self, id: usize) -> bool {
        self.subs.borrow()[id]
            .as_ref()
            .is_some_and(|s| !s.queue.is_empty())
    }

    pub(super) fn register(&self, id: usize, waker: &Waker) {
        if let Some(sub) = self.subs.borrow_mut()[id].as_mut() {
            match &sub.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => sub.waker = Some(waker.clone()),
            }
        }
    }

    /// Takes what subscriber `id` should write next: small frames copied into `out`
    /// (up to about `COALESCE` bytes), or one large frame to write as it is when `out`
    /// is empty. Returns how many frames were copied.
    pub(super) fn take(&self, id: usize, out: &mut Vec<u8>) -> (u64, Option<Frame>) {
        let mut subs = self.subs.borrow_mut();
        let Some(sub) = subs[id].as_mut() else {
            return (0, None);
        };
        let mut copied = 0;
        let mut direct = None;
        while let Some(f) = sub.queue.front() {
            if f.len() >= WRITE_DIRECT {
                if out.is_empty() {
                    direct = sub.queue.pop_front();
                }
                break;
            }
            if !out.is_empty() && out.len() + f.len() > COALESCE {
                break;
            }
            out.extend_from_slice(f);
            sub.queue.pop_front();
            copied += 1;
        }
        if sub.queue.is_empty() && sub.queue.capacity() > KEEP_QUEUE_SLOTS {
            // A backlog has cleared: an idle receiver keeps no big queue.
            sub.queue = VecDeque::new();
        }
        (copied, direct)
    }
}
