//! The open-loop phase of a connection: messages go out on a schedule, whatever the
//! server does, and latency is timed from each message's intended send. It exists
//! apart from the closed loop (`conn`) because its reader and writer run
//! concurrently, over the two halves of the stream, with a schedule of their own.
//!
//! A reader and a writer share one task. The writer files its next deadline with
//! the shard's timer task (src/shard/timers.rs) and sends when it is due; a writer
//! that fell behind sends every late message at once and counts it, none is skipped
//! (coordinated omission stays visible). The reader matches replies and queues
//! control replies (pongs) for the writer. Broadcast publishers run here too, and
//! heartbeats when a ceiling search moves the rate or a protocol opens first
//! (other heartbeats beat from `conn::hold`, which is far smaller).
//!
//! **How the reader waits.** A connection that sends less often than every
//! `READ_ARMED_UNDER` (a slow pace) waits for readiness holding no
//! buffer while nothing is expected, then takes what came with a `recv`. One that
//! sends more often keeps a read in the ring with a pooled buffer (sized to the
//! traffic, 512 bytes for small messages) all the time: readiness then `recv` is
//! two trips into the kernel per reply where the armed read is one, and cost 2-3 µs
//! more per message at 1,000 connections x 20/s (benches/README.md, issue 16).
//!
//! The steps that wait are futures built in place (`fn … -> impl Future` over an
//! `async move` block, never an `async fn`, which would store its arguments twice),
//! and everything between two waits (reading what came, choosing the messages that
//! are due, the accounting) is a plain `fn`: the phase is boxed and held for the
//! whole life of every paced or heartbeat connection, so its size is memory per
//! connection (the test below prints it: 992 bytes, rustc 1.95, debug build; 1072
//! when the reader and writer were `async` blocks inline, 1104 as `async fn`s).
//!
//! Within `shard/` it sits above `exchange` and `state` and imports only them (and
//! `timers` through the shard); it must never import the engine, the collector, the
//! reports, the config or the cli.

use super::exchange::{on_read, queue_scheduled, queue_subscribe, Conn, End};
use super::state::Shard;
use crate::net::sock::io_cause;
use crate::net::stream::{ReadHalf, Stream, WriteHalf};
use crate::plan::Plan;
use monoio::io::{AsyncWriteRentExt, CancelableAsyncReadRent};
use std::cell::RefCell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

/// Most messages one catch-up write carries (the rest follow in the next write).
const MAX_BATCH: u64 = 1024;
/// A connection that sends at least this often keeps a read armed in the ring (a
/// pooled buffer held) instead of waiting for readiness with none: see the module doc.
pub const READ_ARMED_UNDER: Duration = Duration::from_millis(100);

/// The open-loop workload phase: a reader and a writer in the same task, over the two
/// halves of the stream. The writer sends on the schedule (`period` apart from the
/// moment the connection was established) whatever the server does; a writer that
/// fell behind sends every late message at once and counts it, none is skipped. The
/// reader matches replies and queues control replies (pongs) for the writer.
pub(super) async fn active_open(
    shard: &Shard,
    c: &mut Conn,
    stream: Stream,
    period: Duration,
) -> (End, Stream) {
    let (mut rd, mut wr) = stream.split();
    let (slot, id) = (c.slot, c.id);
    let conn = RefCell::new(c);
    // Control frames the reader wants sent (pongs); the writer sends them first.
    // A push connection's subscribe message goes first of all.
    let control = RefCell::new(Vec::new());
    queue_subscribe(shard, &conn.borrow(), &mut control.borrow_mut());
    if shard.run.plan.workload.broadcast.is_some() {
        // Publish only once every receiver is connected (or the connect phase is
        // over), so every connection can get every message.
        let window = publish_window(&shard.run.plan);
        while receivers_missing(shard, window) {
            // Boxed: a timer inline would make the whole phase 128-byte aligned.
            let nap = Box::pin(monoio::time::sleep(Duration::from_millis(5)));
            if shard.stop.until(slot, nap).await.is_none() {
                break;
            }
        }
    }
    let mut constant = None;
    let pace = Paced::start(shard, rate_curve(shard, period, &mut constant), id);
    let end = {
        let armed = period <= READ_ARMED_UNDER;
        let reader = pin!(read_side(shard, &conn, &control, &mut rd, slot, armed));
        let writer = pin!(write_side(shard, &conn, &control, &mut wr, pace, slot));
        run_both(reader, writer).await
    };
    let stream = Stream::reunite(rd, wr);
    // Control replies the writer did not get to send (a pong queued at the end).
    let _ = control;
    (end, stream)
}

/// How long a broadcast publisher waits for the receivers: the connect phase at
/// the connect rate, plus the connect timeout.
fn publish_window(plan: &Plan) -> Duration {
    let connecting = if plan.connect_rate > 0.0 {
        Duration::from_secs_f64(plan.connections as f64 / plan.connect_rate)
    } else {
        Duration::ZERO
    };
    connecting + plan.connect_timeout
}

/// Whether a publisher should still wait: not every connection is established and
/// the run is still within `window`.
fn receivers_missing(shard: &Shard, window: Duration) -> bool {
    let established = shard
        .run
        .established
        .load(std::sync::atomic::Ordering::Relaxed);
    established < shard.run.plan.connections && shard.run.origin.elapsed() < window
}

/// The run's rate curve (messages/s for the whole run): its profile, or a constant
/// one (kept in `constant`) from `period` per connection.
fn rate_curve<'a>(
    shard: &'a Shard,
    period: Duration,
    constant: &'a mut Option<crate::pacer::Profile>,
) -> &'a crate::pacer::Profile {
    match &shard.run.plan.rate_profile {
        Some(p) => p,
        None => constant.insert(crate::pacer::Profile::constant(
            shard.run.plan.connections as f64 / period.as_secs_f64(),
            shard.run.plan.duration,
        )),
    }
}

/// Polls the reader and the writer in turn until the phase ends: when the reader
/// ends, or the writer fails. A writer that stopped on schedule leaves the reader
/// to take in what is still in flight. (A `poll_fn`, not an `async` level.)
fn run_both<'a, R: Future<Output = End>, W: Future<Output = End>>(
    mut reader: Pin<&'a mut R>,
    mut writer: Pin<&'a mut W>,
) -> impl Future<Output = End> + use<'a, R, W> {
    let mut writer_stopped = false;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(end) = reader.as_mut().poll(cx) {
            return Poll::Ready(end);
        }
        if !writer_stopped {
            match writer.as_mut().poll(cx) {
                Poll::Ready(End::Stopped) => writer_stopped = true,
                Poll::Ready(other) => return Poll::Ready(other),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
}

// ------------------------------------------------------------------ the reader --

/// Reads replies until the connection ends or, once the run stopped, nothing is in
/// flight. Unless `armed`, while nothing is expected (a slow pace between sends)
/// it waits for readiness holding no buffer, then takes what came; otherwise it
/// reads through the ring, cancelled when the run stops without losing what
/// already arrived.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see the module doc
fn read_side<'a, 'c: 'a>(
    shard: &'a Shard,
    conn: &'a RefCell<&'c mut Conn>,
    control: &'a RefCell<Vec<u8>>,
    rd: &'a mut ReadHalf,
    slot: usize,
    armed: bool,
) -> impl Future<Output = End> + use<'a, 'c> {
    async move {
        if let Err(end) = read_early(shard, &mut conn.borrow_mut(), &mut control.borrow_mut()) {
            return end;
        }
        loop {
            if shard.stop.is_set_for(slot) {
                return End::Stopped;
            }
            let buf = if !armed && conn.borrow().outstanding() == 0 {
                match shard.stop.until(slot, rd.readable()).await {
                    None => return End::Stopped,
                    Some(Err(e)) => return End::Lost(io_cause(&e)),
                    Some(Ok(())) => {}
                }
                match recv_ready(shard, rd) {
                    Ok(Some(buf)) => buf,
                    Ok(None) => continue,
                    Err(end) => return end,
                }
            } else {
                let buf = shard.pool.take();
                let cancel = shard.stop.cancel_handle(slot);
                let res = if rd.is_tls() {
                    rd.tls_read(buf, cancel).await
                } else {
                    rd.tcp_mut().cancelable_read(buf, cancel).await
                };
                match ring_read(shard, res) {
                    Ok(buf) => buf,
                    Err(end) => return end,
                }
            };
            let got = took(
                shard,
                &mut conn.borrow_mut(),
                buf,
                &mut control.borrow_mut(),
            );
            if let Some(end) = got {
                return end;
            }
        }
    }
}

/// Handles the bytes that arrived right behind the 101 response.
fn read_early(shard: &Shard, c: &mut Conn, control: &mut Vec<u8>) -> Result<(), End> {
    let early = std::mem::take(&mut c.pending);
    if early.is_empty() {
        return Ok(());
    }
    on_read(shard, c, early, control)
}

/// Takes what a readable socket holds now into a pooled buffer: `Ok(None)` when
/// there was nothing after all (the buffer goes back).
fn recv_ready(shard: &Shard, rd: &mut ReadHalf) -> Result<Option<Vec<u8>>, End> {
    let mut buf = shard.pool.take();
    let got = rd.recv_now(&mut buf);
    match got {
        Ok(Some(n)) if n > 0 => Ok(Some(buf)),
        Ok(Some(_)) => {
            shard.pool.put(buf);
            Err(End::Lost("eof_without_close"))
        }
        Ok(None) => {
            shard.pool.put(buf);
            Ok(None)
        }
        Err(e) => {
            shard.pool.put(buf);
            Err(End::Lost(io_cause(&e)))
        }
    }
}

/// What a read through the ring brought: bytes, or how the phase ends (the buffer
/// goes back).
fn ring_read(shard: &Shard, res: (std::io::Result<usize>, Vec<u8>)) -> Result<Vec<u8>, End> {
    match res {
        (Err(e), b) if e.raw_os_error() == Some(libc::ECANCELED) => {
            shard.pool.put(b);
            Err(End::Stopped)
        }
        (Ok(0), b) => {
            shard.pool.put(b);
            Err(End::Lost("eof_without_close"))
        }
        (Ok(_), b) => Ok(b),
        (Err(e), b) => {
            shard.pool.put(b);
            Err(End::Lost(io_cause(&e)))
        }
    }
}

/// Handles bytes read: frames parsed, replies matched and timed, control replies
/// queued. Returns how the phase ends, if it does (a stopping connection ends once
/// nothing is in flight).
fn took(shard: &Shard, c: &mut Conn, buf: Vec<u8>, control: &mut Vec<u8>) -> Option<End> {
    c.stopping = shard.stop.is_set_for(c.slot);
    if let Err(end) = on_read(shard, c, buf, control) {
        return Some(end);
    }
    (c.stopping && c.outstanding() == 0).then_some(End::Stopped)
}

// ------------------------------------------------------------------ the writer --

/// Sends control replies and every message that is due, until the run stops (then
/// returns `Stopped`) or a write fails. Waits on the stop slot's waker: the
/// shard's timer task wakes it when the next message is due, the reader when a
/// reply freed room or queued a control reply (they share the task), the ticker
/// when a live level changed.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see the module doc
fn write_side<'a, 'c: 'a>(
    shard: &'a Shard,
    conn: &'a RefCell<&'c mut Conn>,
    control: &'a RefCell<Vec<u8>>,
    wr: &'a mut WriteHalf,
    mut pace: Paced<'a>,
    slot: usize,
) -> impl Future<Output = End> + use<'a, 'c> {
    async move {
        let cap = shard.run.plan.workload.max_inflight().map(u64::from);
        let mut filed = 0u64;
        loop {
            std::future::poll_fn(|cx| {
                let room = room(cap, &conn.borrow());
                if write_ready(shard, slot, &control.borrow(), &mut pace, room, &mut filed) {
                    return Poll::Ready(());
                }
                shard.stop.register_waker(slot, cx.waker());
                Poll::Pending
            })
            .await;
            let mut out = shard.wpool.take();
            out.append(&mut control.borrow_mut());
            let stopping = shard.stop.is_set_for(slot);
            if !stopping {
                let room = room(cap, &conn.borrow());
                queue_due(shard, &mut conn.borrow_mut(), &mut pace, &mut out, room);
            }
            if !out.is_empty() {
                if let Err(e) = wr.seal(&mut out) {
                    shard.wpool.put(out);
                    return End::Lost(io_cause(&e));
                }
                let (res, out) = wr.tcp_mut().write_all(out).await;
                shard.wpool.put(out);
                if let Err(e) = res {
                    return End::Lost(io_cause(&e));
                }
            } else {
                shard.wpool.put(out);
            }
            if stopping {
                return End::Stopped;
            }
        }
    }
}

/// Messages the cap on messages in flight (if any) leaves room for.
fn room(cap: Option<u64>, c: &Conn) -> u64 {
    cap.map_or(u64::MAX, |k| k.saturating_sub(c.outstanding()))
}

/// Whether the writer has something to do: the run stopped, a control reply is
/// queued, or the next message is due and `room` allows it. If not, files the next
/// deadline (once: `filed`) with the shard's timer task, which wakes this slot then
/// (a monoio Sleep here would cost every paced connection 640 bytes).
fn write_ready(
    shard: &Shard,
    slot: usize,
    control: &[u8],
    pace: &mut Paced,
    room: u64,
    filed: &mut u64,
) -> bool {
    if shard.stop.is_set_for(slot) || !control.is_empty() {
        return true;
    }
    let due = pace.due(shard);
    let now = shard.now_ns();
    if room > 0 && now >= due {
        return true;
    }
    if due > now && due != u64::MAX && due != *filed {
        shard.timers.wake_at(slot, due);
        *filed = due;
    }
    false
}

/// Queues into `out` every message due by now, at most `room` and one batch; each
/// is stamped with its intended time, its lag recorded, and counted late if it is
/// more than `LATE_AFTER` behind. Stops at the first message not yet due.
fn queue_due(shard: &Shard, c: &mut Conn, pace: &mut Paced, out: &mut Vec<u8>, room: u64) {
    let now = shard.now_ns();
    let limit = MAX_BATCH.min(room);
    let mut sent = 0;
    while sent < limit {
        let intended = pace.due(shard);
        if intended > now {
            break;
        }
        sent += 1;
        queue_scheduled(shard, c, out, now, intended);
        pace.advance();
    }
}

// -------------------------------------------------------------------- the pace --

/// A connection's pace: when its messages are due, and its part of the run's rate.
struct Paced<'a> {
    pace: Pace<'a>,
    /// This connection's share of the run's rate.
    share: f64,
    /// Where in each interval it sends (connections dialed in a burst would
    /// otherwise send in a burst every interval).
    phase: f64,
}

impl<'a> Paced<'a> {
    /// Connection `id`'s share of the run's rate curve (`profile`), or of a ceiling
    /// search's live rate, from now.
    fn start(shard: &Shard, profile: &'a crate::pacer::Profile, id: u32) -> Paced<'a> {
        let senders = shard
            .run
            .plan
            .workload
            .broadcast
            .map_or(shard.run.plan.connections, |b| b.publishers);
        let share = 1.0 / senders.max(1) as f64;
        let phase = crate::pacer::phase_of(u64::from(id));
        let live_rate = shard
            .run
            .live
            .as_ref()
            .is_some_and(|l| l.dimension == crate::vocab::kinds::Dimension::Rate);
        let pace = if live_rate {
            let mut p = crate::pacer::LivePace::default();
            p.set_rate(shard.level.get() * share, shard.now_ns(), phase);
            Pace::Live(p, shard.level_gen.get())
        } else {
            let start = shard.now_ns() as f64 / 1e9;
            Pace::Curve(crate::pacer::Schedule::new(profile, share, start, phase), 0)
        };
        Paced { pace, share, phase }
    }

    /// When the next message is due, ns since the run's origin (u64::MAX: never,
    /// past the curve's end or while a live rate is zero). A live pace first
    /// follows a level that changed.
    fn due(&mut self, shard: &Shard) -> u64 {
        match &mut self.pace {
            Pace::Curve(s, k) => s.due(*k).map_or(u64::MAX, |t| (t * 1e9) as u64),
            Pace::Live(p, gen) => {
                p.follow(shard.live_level(), gen, self.share, self.phase);
                p.due()
            }
        }
    }

    /// The due message was sent.
    fn advance(&mut self) {
        match &mut self.pace {
            Pace::Curve(_, k) => *k += 1,
            Pace::Live(p, _) => p.advance(),
        }
    }
}

/// When a paced connection's messages are due: on the run's rate curve (a fixed
/// rate, stages or a ramp), or at a ceiling search's live rate.
enum Pace<'a> {
    /// The schedule and the index of the next message.
    Curve(crate::pacer::Schedule<'a>, u64),
    /// The live pace and the shard's level generation it last followed.
    Live(crate::pacer::LivePace, u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// The open-loop phase is boxed (held for the life of a paced or heartbeat
    /// connection), the connection's task holds the box: both sizes are memory per
    /// connection.
    #[test]
    fn open_loop_futures_stay_small() {
        fn open<'a, F: Future + 'a>(
            _: fn(&'a Shard, &'a mut Conn, Stream, Duration) -> F,
        ) -> (usize, usize) {
            (std::mem::size_of::<F>(), std::mem::align_of::<F>())
        }
        type Staged = Option<(usize, Rc<Cell<bool>>)>;
        fn task<F: Future>(_: fn(Rc<Shard>, u32, Staged) -> F) -> (usize, usize) {
            (std::mem::size_of::<F>(), std::mem::align_of::<F>())
        }
        let (o, t) = (open(active_open), task(super::super::conn::connection));
        eprintln!("active_open future {o:?}, connection task future {t:?} (size, align)");
        // Measured 992 and 832 bytes (rustc 1.95, debug build); active_open was 1072
        // before its reader and writer became futures built in place.
        assert!(o.0 <= 1024 && o.1 <= 16, "active_open {o:?}");
        assert!(t.0 <= 896 && t.1 <= 16, "connection {t:?}");
    }
}
