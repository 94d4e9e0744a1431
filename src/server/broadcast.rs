//! Broadcast mode of the built-in server (`wsherd serve --mode broadcast`): every data
//! message any client sends is delivered, unchanged, to every connected client on
//! every shard, the sender included. Pings get pongs, closes get closes, and the
//! `--delay`/`--stall` faults hold back what a connection reads (its publishes and
//! pongs) exactly as they hold back echoes. `--service-time D` applies per published
//! message, on the shard of its publisher: the shard publishes one message per D
//! (a queue, as in echo mode), and the fan-out that follows is not slowed.
//!
//! **Messages, not frames.** A fragmented message is reassembled on the sending
//! connection and published as one unfragmented frame: relaying fragments frame by
//! frame would interleave the fragments of two senders on a receiver, which is not a
//! valid WebSocket stream. A message is encoded once, as an unmasked server frame in a
//! `Bytes` (an `Arc`-counted buffer), and every receiver on every shard queues a
//! reference to that one buffer; small frames are copied into a pooled write buffer so
//! several go out in one write, large ones (16 KiB and up) are written from the
//! shared buffer itself.
//!
//! **Slow receivers.** Each connection has a queue of at most `--queue` messages.
//! A copy that finds its receiver's queue full is dropped (tail drop) and counted; the
//! sender, the shard and the other receivers never wait for a slow one, and memory per
//! receiver is bounded by its queue (references to shared frames) plus the one write
//! in progress. Copies still queued when a receiver goes away, or in a write that
//! failed, count as dropped too, so after every receiver has gone,
//! `delivered + dropped` is the number of copies owed. "Delivered" means handed to the
//! kernel (the write completed), not read by the client.
//!
//! **Within a connection** a reader and a writer run concurrently over the two halves
//! of the stream, driven by one task (one `poll_fn`, as the load side's open-loop phase
//! does): deliveries arrive at any time, and a receiver whose writes are blocked keeps
//! reading (its pings, its own publishes). The reader is echo mode's read step (see
//! `read`): it waits for readiness before it borrows a shard read buffer and gives
//! it back before it waits again, so an idle connection holds no buffer, only its
//! task and its subscriber slot (an empty queue and a waker, a few dozen bytes). No
//! timer lives in the connection's future (the handshake timeout and the goodbye
//! wait are boxed): monoio's timers would make every held connection's task 1-2 KiB.
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

use super::conn::{upgrade, MAX_FRAME};
use super::frames;
use super::read::{Got, Reader};
use super::ServerShard;
use crate::net::sock::ReadSide;
use crate::ws::frame::{self, Kind};
use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

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
/// How long a connection told that the server is going away waits for the client.
const GOODBYE_WAIT: Duration = Duration::from_millis(500);

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
pub(crate) struct Bell(UnixStream);

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
    fn drain(&self, me: usize, into: &mut VecDeque<Frame>) -> u64 {
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
    index: usize,
    hub: Arc<Hub>,
    /// Queue bound per receiver, in messages.
    cap: usize,
    subs: RefCell<Vec<Option<Sub>>>,
    free: RefCell<Vec<usize>>,
    /// Subscribers now.
    count: Cell<u64>,
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

    fn subscribe(&self) -> usize {
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
    fn unsubscribe(&self, id: usize) {
        if let Some(sub) = self.subs.borrow_mut()[id].take() {
            self.add_dropped(sub.queue.len() as u64);
            self.count.set(self.count.get() - 1);
            self.free.borrow_mut().push(id);
        }
    }

    fn add_dropped(&self, n: u64) {
        self.dropped.set(self.dropped.get() + n);
    }

    /// Broadcasts messages read on this shard: here, then to every other shard.
    fn publish(&self, frames: &[Frame]) {
        self.published
            .set(self.published.get() + frames.len() as u64);
        self.fanout(frames);
        self.hub.send(self.index, frames);
    }

    /// Queues `frames` for every subscriber of this shard, dropping what does not fit.
    fn fanout(&self, frames: &[Frame]) {
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

    fn has_frames(&self, id: usize) -> bool {
        self.subs.borrow()[id]
            .as_ref()
            .is_some_and(|s| !s.queue.is_empty())
    }

    fn register(&self, id: usize, waker: &Waker) {
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
    fn take(&self, id: usize, out: &mut Vec<u8>) -> (u64, Option<Frame>) {
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

/// A shard's inbox task: drains what other shards published and fans it out here.
pub(crate) async fn inbox_task(shard: std::rc::Rc<ServerShard>, bell: Bell) {
    let Some(b) = shard.bcast.as_ref() else {
        return;
    };
    let bell = match monoio::net::UnixStream::from_std(bell.0) {
        Ok(s) => s,
        Err(_) => {
            shard.errors.set(shard.errors.get() + 1);
            return;
        }
    };
    let mut bell = bell;
    let slot = shard.stop.slot();
    let mut frames = VecDeque::new();
    let mut ding = vec![0u8; 64];
    loop {
        let lost = b.hub.drain(b.index, &mut frames);
        if !frames.is_empty() || lost > 0 {
            b.add_dropped(lost * b.count.get());
            b.fanout(frames.make_contiguous());
            frames.clear();
            // Let the receivers (and everything else on this shard) run before
            // looking again, however busy the other shards are.
            yield_now().await;
            continue;
        }
        // Armed: the next sender rings. Bytes from earlier rings are drained here too.
        match shard.stop.until(slot, bell.read(ding)).await {
            None => break,
            Some((Ok(n), buf)) if n > 0 => ding = buf,
            Some(_) => {
                shard.errors.set(shard.errors.get() + 1);
                break;
            }
        }
    }
    shard.stop.release(slot);
}

/// Lets the other tasks of this thread run once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

// ------------------------------------------------------------------ one connection --

/// How far a connection's reader got, as its writer sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// A close reply (or a protocol error's close) is queued: send it and end.
    Closing,
    /// The server is stopping: say 1001 and end.
    Stopping,
}

enum ReadEnd {
    /// The reader handed over to the writer (see `Phase`).
    Handover(Phase),
    /// EOF or an error: nothing more can be sent either.
    Gone,
}

enum WriteEnd {
    /// Sent a close reply, or the peer is gone.
    Done,
    /// Sent 1001: give the client a moment to answer.
    WentAway,
}

/// A message being reassembled from fragments.
#[derive(Default)]
struct Partial {
    kind: Option<Kind>,
    data: Vec<u8>,
}

/// One broadcast connection: upgrade, subscribe, then read and write concurrently.
/// An `async move` block rather than an `async fn`, whose arguments (the stream is
/// 80 bytes) would be stored twice in the task for the connection's whole life.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see above
pub(crate) fn connection(
    shard: std::rc::Rc<ServerShard>,
    mut stream: TcpStream,
) -> impl Future<Output = ()> {
    async move {
        let slot = shard.stop.slot();
        let _ = stream.set_nodelay(true);
        if let Some(b) = shard.bcast.as_ref() {
            // Subscribe before the 101 goes out, so a client that sees its upgrade
            // answered receives everything published from then on.
            let id = Cell::new(None);
            let early = upgrade(&shard, &mut stream, || id.set(Some(b.subscribe()))).await;
            match (early, id.get()) {
                (Some(early), Some(sub)) => {
                    shard.open.set(shard.open.get() + 1);
                    shard.connections.set(shard.connections.get() + 1);
                    run(
                        &shard,
                        b,
                        stream.into_split(),
                        slot,
                        sub,
                        Reader::new(early),
                    )
                    .await;
                    b.unsubscribe(sub);
                    shard.open.set(shard.open.get() - 1);
                    shard.leave();
                }
                (_, Some(sub)) => b.unsubscribe(sub),
                _ => {}
            }
        }
        shard.stop.release(slot);
        shard.live.set(shard.live.get() - 1);
    }
}

/// Runs the reader and the writer of a subscribed connection until it ends.
/// Returns a future rather than being an `async fn`, which would store its
/// arguments twice.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see above
fn run<'a>(
    shard: &'a ServerShard,
    b: &'a Local,
    (mut rd, mut wr): (OwnedReadHalf<TcpStream>, OwnedWriteHalf<TcpStream>),
    slot: usize,
    id: usize,
    reader: Reader,
) -> impl Future<Output = ()> + 'a {
    async move {
        // Pongs and close replies the reader wants sent; the writer sends them first.
        let control = RefCell::new(Vec::new());
        let phase = Cell::new(Phase::Open);
        // Copies in the write under way (dropped if it never completes).
        let in_flight = Cell::new(0u64);

        let end = {
            let reader = read_loop(shard, b, &mut rd, slot, id, reader, &control);
            let writer = async {
                loop {
                    // Until there is something to send, the reader has handed over, or
                    // the server stops.
                    let woke = shard
                        .stop
                        .until(
                            slot,
                            std::future::poll_fn(|cx| {
                                if phase.get() != Phase::Open
                                    || !control.borrow().is_empty()
                                    || b.has_frames(id)
                                {
                                    Poll::Ready(())
                                } else {
                                    b.register(id, cx.waker());
                                    Poll::Pending
                                }
                            }),
                        )
                        .await;
                    let final_phase = match (phase.get(), woke) {
                        (Phase::Open, None) => Phase::Stopping,
                        (p, _) => p,
                    };
                    let mut out = shard.wpool.take();
                    out.append(&mut control.borrow_mut());
                    let mut direct = None;
                    match final_phase {
                        Phase::Open => {
                            // Either small frames copied into `out` or one large frame
                            // alone (only taken when `out` is empty), never both.
                            let (n, d) = b.take(id, &mut out);
                            in_flight.set(n + u64::from(d.is_some()));
                            direct = d;
                        }
                        Phase::Stopping => frame::write_server_frame(
                            &mut out,
                            Kind::Close,
                            true,
                            &1001u16.to_be_bytes(),
                        ),
                        Phase::Closing => {}
                    }
                    if !out.is_empty() {
                        let (res, out) = wr.write_all(out).await;
                        shard.wpool.put(out);
                        if res.is_err() {
                            return WriteEnd::Done;
                        }
                    } else {
                        shard.wpool.put(out);
                    }
                    if let Some(f) = direct {
                        if wr.write_all(f).await.0.is_err() {
                            return WriteEnd::Done;
                        }
                    }
                    b.delivered.set(b.delivered.get() + in_flight.replace(0));
                    match final_phase {
                        Phase::Open => {}
                        Phase::Closing => return WriteEnd::Done,
                        Phase::Stopping => return WriteEnd::WentAway,
                    }
                }
            };
            let mut reader = pin!(reader);
            let mut writer = pin!(writer);
            let mut reading = true;
            std::future::poll_fn(|cx| {
                if reading {
                    match reader.as_mut().poll(cx) {
                        Poll::Ready(ReadEnd::Gone) => return Poll::Ready(WriteEnd::Done),
                        Poll::Ready(ReadEnd::Handover(p)) => {
                            reading = false;
                            phase.set(p);
                        }
                        Poll::Pending => {}
                    }
                }
                writer.as_mut().poll(cx)
            })
            .await
        };
        b.add_dropped(in_flight.get());
        if let WriteEnd::WentAway = end {
            // The client's close (or its EOF): no need to read it, only to see it. Boxed:
            // a timer inline would make every connection's future as big as the timer.
            let _ = Box::pin(monoio::time::timeout(GOODBYE_WAIT, rd.readable())).await;
        }
    }
}

/// Reads, publishes and queues control replies until the connection ends or hands
/// over to the writer. Returns a future rather than being an `async fn`, which
/// would store its arguments twice.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see above
fn read_loop<'a>(
    shard: &'a ServerShard,
    b: &'a Local,
    rd: &'a mut OwnedReadHalf<TcpStream>,
    slot: usize,
    id: usize,
    mut reader: Reader,
    control: &'a RefCell<Vec<u8>>,
) -> impl Future<Output = ReadEnd> + 'a {
    async move {
        let mut msg = Partial::default();
        let mut batch: Vec<Frame> = Vec::new();
        loop {
            let mut buf = match reader.next_bytes(shard, rd, slot).await {
                Got::Bytes(buf) => buf,
                Got::Stop => return ReadEnd::Handover(Phase::Stopping),
                Got::Gone => return ReadEnd::Gone,
            };
            let read_at = shard.timers.as_ref().map(|_| Instant::now());
            let (used, closing) = on_bytes(
                shard,
                &mut buf,
                &mut control.borrow_mut(),
                &mut msg,
                &mut batch,
            );
            reader.done(shard, buf, used);
            if !batch.is_empty() {
                let fan_at = shard.timers.as_ref().map(|_| Instant::now());
                b.publish(&batch);
                if let (Some(t), Some(read_at), Some(fan_at)) = (&shard.timers, read_at, fan_at) {
                    t.fanned_out(fan_at, batch.len() as u64);
                    t.handled(read_at, batch.len() as u64);
                }
                batch.clear();
            }
            if closing {
                return ReadEnd::Handover(Phase::Closing);
            }
            if !control.borrow().is_empty() || b.has_frames(id) {
                // The writer of this connection runs in this task: let it, even when the
                // next read is ready at once (the epoll driver completes those inline).
                yield_now().await;
            }
        }
    }
}

/// Encodes a complete message as one server frame.
fn encode(kind: Kind, payload: &[u8]) -> Frame {
    let mut v = Vec::with_capacity(payload.len() + 10);
    frame::write_server_frame(&mut v, kind, true, payload);
    Bytes::from(v)
}

/// Handles every complete frame in `data` (unmasking in place): complete messages go
/// to `batch`, control replies to `control`. Returns the bytes used and whether the
/// connection is closing (a close reply is queued).
fn on_bytes(
    shard: &ServerShard,
    data: &mut [u8],
    control: &mut Vec<u8>,
    msg: &mut Partial,
    batch: &mut Vec<Frame>,
) -> (usize, bool) {
    let mut pos = 0;
    while pos < data.len() {
        let (f, range) = match frames::next(data, pos) {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(()) => {
                frames::protocol_error(shard, control, 1002);
                return (pos, true);
            }
        };
        let payload = &data[range];
        pos += f.total_len();
        match f.kind {
            Kind::Text | Kind::Binary if msg.kind.is_some() => {
                // A new message before the fragmented one ended.
                frames::protocol_error(shard, control, 1002);
                return (pos, true);
            }
            Kind::Text | Kind::Binary if f.fin => {
                batch.push(encode(f.kind, payload));
                shard.messages.set(shard.messages.get() + 1);
            }
            Kind::Text | Kind::Binary => {
                msg.kind = Some(f.kind);
                msg.data.extend_from_slice(payload);
            }
            Kind::Continuation => {
                let Some(kind) = msg.kind else {
                    frames::protocol_error(shard, control, 1002);
                    return (pos, true);
                };
                if msg.data.len() + payload.len() > MAX_FRAME {
                    frames::protocol_error(shard, control, 1009);
                    return (pos, true);
                }
                msg.data.extend_from_slice(payload);
                if f.fin {
                    batch.push(encode(kind, &msg.data));
                    shard.messages.set(shard.messages.get() + 1);
                    *msg = Partial::default();
                }
            }
            Kind::Ping => frame::write_server_frame(control, Kind::Pong, true, payload),
            Kind::Pong => {}
            Kind::Close => {
                frames::answer_close(control, payload);
                return (pos, true);
            }
        }
    }
    (pos, false)
}
