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
//! **Across shards** each message crosses to the other shards once, through one
//! inbox per shard; the inboxes, the doorbells and each shard's subscribers are in
//! hub.rs. This file holds the connections and the shard's inbox task.
//!
//! **Why a file of its own:** an echo connection (conn.rs) answers what it reads
//! and is one loop; a broadcast connection writes what other connections publish,
//! at any time, so it needs a reader and a writer side by side and a subscription.
//! The reader (`read_loop`) and the writer (`write_loop`) are futures built in
//! place (`fn … -> impl Future`, not `async fn`), and what they decide between two
//! waits is in plain `fn`s (`on_bytes`, `Between`): every level of `async fn`
//! would add to every connection's task (measured in mod.rs's test).
//!
//! In the server's order (see shard.rs) it sits just below mod.rs: it must never
//! import mod.rs. Outside the server it must never import the load side's
//! `shard/` or the exporters (`export/`).

use super::conn::upgrade;
use super::frames;
use super::hub::{Bell, Frame, Local};
use super::read::{Got, Reader};
use super::shard::ServerShard;

use crate::net::stream::{ReadHalf, Stream, WriteHalf};
use crate::ws::frame::{self, FrameRef, Kind};
use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// How long a connection told that the server is going away waits for the client.
const GOODBYE_WAIT: Duration = Duration::from_millis(500);

// ------------------------------------------------------------------ within a shard --

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
    order: frames::Order,
    data: Vec<u8>,
}

/// One broadcast connection: upgrade, subscribe, then read and write concurrently.
/// An `async move` block rather than an `async fn`, whose arguments (the stream is
/// 80 bytes) would be stored twice in the task for the connection's whole life.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see above
pub(crate) fn connection(
    shard: std::rc::Rc<ServerShard>,
    mut stream: Stream,
) -> impl Future<Output = ()> {
    async move {
        let slot = shard.stop.slot();
        let ready = shard.bcast.is_some() && super::conn::secure(&shard, &mut stream).await;
        if let (Some(b), true) = (shard.bcast.as_ref(), ready) {
            // Subscribe before the 101 goes out, so a client that sees its upgrade
            // answered receives everything published from then on.
            let id = Cell::new(None);
            let early = upgrade(&shard, &mut stream, || id.set(Some(b.subscribe())))
                .await
                .map(|(early, _)| early);
            match (early, id.get()) {
                (Some(early), Some(sub)) => {
                    shard.open.set(shard.open.get() + 1);
                    shard.connections.set(shard.connections.get() + 1);
                    run(&shard, b, stream.split(), slot, sub, Reader::new(early)).await;
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
    (mut rd, mut wr): (ReadHalf, WriteHalf),
    slot: usize,
    id: usize,
    reader: Reader,
) -> impl Future<Output = ()> + 'a {
    async move {
        let between = Between {
            control: RefCell::new(Vec::new()),
            phase: Cell::new(Phase::Open),
            in_flight: Cell::new(0),
        };
        let end = {
            let reader = read_loop(shard, b, &mut rd, slot, id, reader, &between.control);
            let writer = write_loop(shard, b, &mut wr, slot, id, &between);
            let mut reader = pin!(reader);
            let mut writer = pin!(writer);
            let mut reading = true;
            std::future::poll_fn(|cx| {
                if reading {
                    match reader.as_mut().poll(cx) {
                        Poll::Ready(ReadEnd::Gone) => {
                            // The peer is gone; a write under way may have completed
                            // all the same (the peer read it, then left): the writer
                            // counts it delivered when polled once more.
                            if let Poll::Ready(end) = writer.as_mut().poll(cx) {
                                return Poll::Ready(end);
                            }
                            return Poll::Ready(WriteEnd::Done);
                        }
                        Poll::Ready(ReadEnd::Handover(p)) => {
                            reading = false;
                            between.phase.set(p);
                        }
                        Poll::Pending => {}
                    }
                }
                writer.as_mut().poll(cx)
            })
            .await
        };
        b.add_dropped(between.in_flight.get());
        if let WriteEnd::WentAway = end {
            // The client's close (or its EOF): no need to read it, only to see it. Boxed:
            // a timer inline would make every connection's future as big as the timer.
            let _ = Box::pin(monoio::time::timeout(GOODBYE_WAIT, rd.readable())).await;
        }
    }
}

/// What a connection's reader and writer share (one task: a borrow never spans a
/// wait).
struct Between {
    /// Pongs and close replies the reader wants sent; the writer sends them first.
    control: RefCell<Vec<u8>>,
    /// How far the reader got.
    phase: Cell<Phase>,
    /// Copies in the write under way (dropped if it never completes).
    in_flight: Cell<u64>,
}

impl Between {
    /// Whether the writer has something to do: the reader handed over, a control
    /// reply is queued or a delivery is waiting.
    fn writable(&self, b: &Local, id: usize) -> bool {
        self.phase.get() != Phase::Open || !self.control.borrow().is_empty() || b.has_frames(id)
    }

    /// Fills `out` with the next write for `phase`: control replies, then small
    /// frames copied in, or returns one large frame to write alone (only when `out`
    /// is empty), never both; or the 1001 close when the server is stopping.
    fn next_write(&self, b: &Local, id: usize, phase: Phase, out: &mut Vec<u8>) -> Option<Frame> {
        out.append(&mut self.control.borrow_mut());
        match phase {
            Phase::Open => {
                let (n, direct) = b.take(id, out);
                self.in_flight.set(n + u64::from(direct.is_some()));
                direct
            }
            Phase::Stopping => {
                frame::write_server_frame(out, Kind::Close, true, &1001u16.to_be_bytes());
                None
            }
            Phase::Closing => None,
        }
    }
}

/// Writes deliveries and control replies until the reader's handover is sent or
/// the peer is gone. Returns a future rather than being an `async fn`, which would
/// store its arguments twice.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see above
fn write_loop<'a>(
    shard: &'a ServerShard,
    b: &'a Local,
    wr: &'a mut WriteHalf,
    slot: usize,
    id: usize,
    between: &'a Between,
) -> impl Future<Output = WriteEnd> + 'a {
    async move {
        loop {
            // Until there is something to send, the reader has handed over, or the
            // server stops.
            let woke = shard
                .stop
                .until(
                    slot,
                    std::future::poll_fn(|cx| {
                        if between.writable(b, id) {
                            Poll::Ready(())
                        } else {
                            b.register(id, cx.waker());
                            Poll::Pending
                        }
                    }),
                )
                .await;
            let final_phase = match (between.phase.get(), woke) {
                (Phase::Open, None) => Phase::Stopping,
                (p, _) => p,
            };
            let mut out = shard.wpool.take();
            let direct = between.next_write(b, id, final_phase, &mut out);
            if !out.is_empty() {
                if wr.seal(&mut out).is_err() {
                    shard.wpool.put(out);
                    return WriteEnd::Done;
                }
                let (res, out) = wr.tcp_mut().write_all(out).await;
                shard.wpool.put(out);
                if res.is_err() {
                    return WriteEnd::Done;
                }
            } else {
                shard.wpool.put(out);
            }
            if let Some(f) = direct {
                let sent = if wr.is_tls() {
                    // TLS: the records are this connection's own; seal a copy.
                    let mut out = f.to_vec();
                    match wr.seal(&mut out) {
                        Ok(()) => wr.tcp_mut().write_all(out).await.0.is_ok(),
                        Err(_) => false,
                    }
                } else {
                    wr.tcp_mut().write_all(f).await.0.is_ok()
                };
                if !sent {
                    return WriteEnd::Done;
                }
            }
            b.delivered
                .set(b.delivered.get() + between.in_flight.replace(0));
            match final_phase {
                Phase::Open => {}
                Phase::Closing => return WriteEnd::Done,
                Phase::Stopping => return WriteEnd::WentAway,
            }
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
    rd: &'a mut ReadHalf,
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
        let (f, range) = match frames::next(data, pos, shard.max_message, false) {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(v) => {
                frames::protocol_error(shard, control, v);
                return (pos, true);
            }
        };
        let payload = &data[range];
        pos += f.total_len();
        let done = match f.kind {
            Kind::Text | Kind::Binary | Kind::Continuation => {
                data_frame(shard, msg, batch, f, payload)
            }
            Kind::Ping => {
                frame::write_server_frame(control, Kind::Pong, true, payload);
                Ok(())
            }
            Kind::Pong => Ok(()),
            Kind::Close => match frames::answer_close(control, payload) {
                Ok(()) => return (pos, true),
                Err(v) => Err(v),
            },
        };
        if let Err(v) = done {
            frames::protocol_error(shard, control, v);
            return (pos, true);
        }
    }
    (pos, false)
}

/// A data frame: a whole message goes to `batch`, a fragment is kept in `msg`
/// until its message ends (at most --max-message bytes). Order and UTF-8 are
/// checked by `msg.order` as in echo mode.
#[inline]
fn data_frame(
    shard: &ServerShard,
    msg: &mut Partial,
    batch: &mut Vec<Frame>,
    f: FrameRef,
    payload: &[u8],
) -> Result<(), frames::Violation> {
    let kind = msg.order.data(&f, payload)?;
    if f.fin && msg.data.is_empty() {
        batch.push(encode(kind, payload));
    } else {
        if msg.data.len() + payload.len() > shard.max_message {
            return Err(frames::Violation::TOO_LARGE);
        }
        msg.data.extend_from_slice(payload);
        if !f.fin {
            return Ok(());
        }
        batch.push(encode(kind, &msg.data));
        msg.data = Vec::new();
    }
    shard.messages.set(shard.messages.get() + 1);
    Ok(())
}
