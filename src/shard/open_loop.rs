//! The open-loop phase of a connection: messages go out on a schedule, whatever the
//! server does, and latency is timed from each message's intended send.
//!
//! A reader and a writer share one task over the two halves of the stream. The
//! writer files its next deadline with the shard's timer task (src/shard/timers.rs)
//! and sends when it is due; a writer that fell behind sends every late message at
//! once and counts it, none is skipped (coordinated omission stays visible). The
//! reader matches replies and queues control replies (pongs) for the writer; while
//! nothing is expected it waits for readiness holding no buffer. Heartbeats (idle
//! with --heartbeat) and broadcast publishers run here too.

use super::exchange::{on_read, queue_message, Conn, End};
use super::state::Shard;
use crate::net::sock::io_cause;
use monoio::io::{AsyncWriteRentExt, CancelableAsyncReadRent, Splitable};
use monoio::net::TcpStream;
use std::future::Future;
use std::time::Duration;

/// A send that goes out this much after its intended time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(10);
/// Most messages one catch-up write carries (the rest follow in the next write).
const MAX_BATCH: u64 = 1024;

/// The open-loop workload phase: a reader and a writer in the same task, over the two
/// halves of the stream. The writer sends on the schedule (`period` apart from the
/// moment the connection was established) whatever the server does; a writer that
/// fell behind sends every late message at once and counts it, none is skipped. The
/// reader matches replies and queues control replies (pongs) for the writer.
pub(super) async fn active_open(
    shard: &Shard,
    c: &mut Conn,
    stream: TcpStream,
    period: Duration,
) -> (End, TcpStream) {
    let (mut rd, mut wr) = stream.into_split();
    let conn = std::cell::RefCell::new(c);
    // Control frames the reader wants sent (pongs); the writer sends them first.
    let control = std::cell::RefCell::new(Vec::new());
    let slot = conn.borrow().slot;
    if shard.run.plan.workload.broadcast.is_some() {
        // Publish only once every receiver is connected (or the connect phase is
        // over), so every connection can get every message.
        let window = if shard.run.plan.connect_rate > 0.0 {
            Duration::from_secs_f64(shard.run.plan.connections as f64 / shard.run.plan.connect_rate)
        } else {
            Duration::ZERO
        } + shard.run.plan.connect_timeout;
        let slot = conn.borrow().slot;
        while shard
            .run
            .established
            .load(std::sync::atomic::Ordering::Relaxed)
            < shard.run.plan.connections
            && shard.run.origin.elapsed() < window
        {
            // Boxed: a timer inline would make the whole phase 128-byte aligned.
            if shard
                .stop
                .until(
                    slot,
                    Box::pin(monoio::time::sleep(Duration::from_millis(5))),
                )
                .await
                .is_none()
            {
                break;
            }
        }
    }
    // This connection's share of the run's rate curve, from the moment it started.
    let constant;
    let profile = match &shard.run.plan.rate_profile {
        Some(p) => p,
        None => {
            constant = crate::pacer::Profile::constant(
                shard.run.plan.connections as f64 / period.as_secs_f64(),
                shard.run.plan.duration,
            );
            &constant
        }
    };
    let senders = shard
        .run
        .plan
        .workload
        .broadcast
        .map_or(shard.run.plan.connections, |b| b.publishers);
    let share = 1.0 / senders.max(1) as f64;
    // Where in each interval this connection sends (connections dialed in a burst
    // would otherwise send in a burst every interval).
    let phase = crate::pacer::phase_of(u64::from(conn.borrow().id));
    let live_rate = shard
        .run
        .live
        .as_ref()
        .is_some_and(|l| l.dimension == crate::vocab::kinds::Dimension::Rate);
    let mut pace = if live_rate {
        let mut p = crate::pacer::LivePace::default();
        p.set_rate(shard.level.get() * share, shard.now_ns(), phase);
        Pace::Live(p, shard.level_gen.get())
    } else {
        Pace::Curve(
            crate::pacer::Schedule::new(profile, share, shard.now_ns() as f64 / 1e9, phase),
            0,
        )
    };
    let end = {
        let reader = async {
            // Bytes that arrived right behind the 101 response.
            let early = std::mem::take(&mut conn.borrow_mut().pending);
            if !early.is_empty() {
                let mut c = conn.borrow_mut();
                if let Err(end) = on_read(shard, &mut c, early, &mut control.borrow_mut()) {
                    return end;
                }
            }
            loop {
                if shard.stop.is_set_for(slot) {
                    return End::Stopped;
                }
                // Nothing expected (a heartbeat between beats, a quiet open loop):
                // wait for readiness holding no buffer, then take what came.
                let buf = if conn.borrow().outstanding() == 0 {
                    use crate::net::sock::ReadSide;
                    match shard.stop.until(slot, ReadSide::readable(&rd)).await {
                        None => return End::Stopped,
                        Some(Err(e)) => return End::Lost(io_cause(&e)),
                        Some(Ok(())) => {}
                    }
                    let mut buf = shard.pool.take();
                    let got = crate::net::sock::recv_now(ReadSide::fd(&rd), &mut buf);
                    match got {
                        Ok(Some(n)) if n > 0 => buf,
                        Ok(Some(_)) => {
                            shard.pool.put(buf);
                            return End::Lost("eof_without_close");
                        }
                        Ok(None) => {
                            shard.pool.put(buf);
                            continue;
                        }
                        Err(e) => {
                            shard.pool.put(buf);
                            return End::Lost(io_cause(&e));
                        }
                    }
                } else {
                    // Cancelled when the run stops, without losing what already
                    // arrived.
                    let buf = shard.pool.take();
                    let res = rd
                        .cancelable_read(buf, shard.stop.cancel_handle(slot))
                        .await;
                    match res {
                        (Err(e), b) if e.raw_os_error() == Some(libc::ECANCELED) => {
                            shard.pool.put(b);
                            return End::Stopped;
                        }
                        (Ok(0), b) => {
                            shard.pool.put(b);
                            return End::Lost("eof_without_close");
                        }
                        (Ok(_), b) => b,
                        (Err(e), b) => {
                            shard.pool.put(b);
                            return End::Lost(io_cause(&e));
                        }
                    }
                };
                let mut c = conn.borrow_mut();
                c.stopping = shard.stop.is_set_for(c.slot);
                if let Err(end) = on_read(shard, &mut c, buf, &mut control.borrow_mut()) {
                    return end;
                }
                if c.stopping && c.outstanding() == 0 {
                    return End::Stopped;
                }
            }
        };
        let writer = async {
            let cap = shard.run.plan.workload.max_inflight().map(u64::from);
            let room = || cap.map_or(u64::MAX, |k| k.saturating_sub(conn.borrow().outstanding()));
            let mut filed = 0u64;
            loop {
                // Until: the run stops, a control reply is queued, or the next message
                // is due and the cap (if any) leaves room. A reply that frees room
                // wakes this task through the reader, which shares it; a live level
                // that changes wakes it to re-time its next send.
                std::future::poll_fn(|cx| {
                    if shard.stop.is_set_for(slot) || !control.borrow().is_empty() {
                        return std::task::Poll::Ready(());
                    }
                    let due = pace.due(shard, share, phase);
                    let now = shard.now_ns();
                    if room() > 0 && now >= due {
                        return std::task::Poll::Ready(());
                    }
                    // The shard's timer task wakes this slot when the message is due
                    // (a monoio Sleep here would cost every paced connection 640
                    // bytes).
                    if due > now && due != u64::MAX && due != filed {
                        shard.timers.wake_at(slot, due);
                        filed = due;
                    }
                    shard.stop.register_waker(slot, cx.waker());
                    std::task::Poll::Pending
                })
                .await;
                let mut out = shard.wpool.take();
                out.append(&mut control.borrow_mut());
                let now = shard.now_ns();
                let stopping = shard.stop.is_set_for(slot);
                // The loop below stops at the first message not yet due.
                if !stopping {
                    let limit = MAX_BATCH.min(room());
                    let mut c = conn.borrow_mut();
                    let mut st_late = 0;
                    let mut sent = 0;
                    while sent < limit {
                        let intended = pace.due(shard, share, phase);
                        if intended > now {
                            break;
                        }
                        sent += 1;
                        let lag = now - intended;
                        if lag > LATE_AFTER.as_nanos() as u64 {
                            st_late += 1;
                        }
                        shard.stats.borrow_mut().send_lag.saturating_record(lag);
                        queue_message(shard, &mut c, &mut out, now, intended);
                        pace.advance();
                    }
                    shard.stats.borrow_mut().counters.late += st_late;
                }
                if !out.is_empty() {
                    let (res, out) = wr.write_all(out).await;
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
        };
        let mut reader = std::pin::pin!(reader);
        let mut writer = std::pin::pin!(writer);
        let mut writer_end: Option<End> = None;
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(end) = reader.as_mut().poll(cx) {
                return std::task::Poll::Ready(end);
            }
            if writer_end.is_none() {
                if let std::task::Poll::Ready(end) = writer.as_mut().poll(cx) {
                    writer_end = Some(end);
                }
            }
            match writer_end.take() {
                // The writer stopped on schedule: keep reading what is in flight.
                Some(End::Stopped) => {
                    writer_end = Some(End::Stopped);
                    std::task::Poll::Pending
                }
                Some(other) => std::task::Poll::Ready(other),
                None => std::task::Poll::Pending,
            }
        })
        .await
    };
    let stream = match rd.reunite(wr) {
        Ok(s) => s,
        Err(_) => unreachable!("both halves come from the same stream"),
    };
    // Control replies the writer did not get to send (a pong queued at the end).
    let _ = control;
    (end, stream)
}

/// When a paced connection's messages are due: on the run's rate curve (a fixed
/// rate, stages or a ramp), or at a ceiling search's live rate.
enum Pace<'a> {
    /// The schedule and the index of the next message.
    Curve(crate::pacer::Schedule<'a>, u64),
    /// The live pace and the shard's level generation it last followed.
    Live(crate::pacer::LivePace, u64),
}

impl Pace<'_> {
    /// When the next message is due, ns since the run's origin (u64::MAX: never,
    /// past the curve's end or while a live rate is zero). A live pace first
    /// follows a level that changed (`share`: this connection's part of it;
    /// `phase`: where in the interval it resumes after a pause).
    fn due(&mut self, shard: &Shard, share: f64, phase: f64) -> u64 {
        match self {
            Pace::Curve(s, k) => s.due(*k).map_or(u64::MAX, |t| (t * 1e9) as u64),
            Pace::Live(p, gen) => {
                p.follow(shard.live_level(), gen, share, phase);
                p.due()
            }
        }
    }

    /// The due message was sent.
    fn advance(&mut self) {
        match self {
            Pace::Curve(_, k) => *k += 1,
            Pace::Live(p, _) => p.advance(),
        }
    }
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
    fn open_loop_future_size() {
        fn open<'a, F: Future + 'a>(
            _: fn(&'a Shard, &'a mut Conn, TcpStream, Duration) -> F,
        ) -> (usize, usize) {
            (std::mem::size_of::<F>(), std::mem::align_of::<F>())
        }
        fn task<F: Future>(
            _: fn(Rc<Shard>, u32, usize, Option<(usize, Rc<Cell<bool>>)>) -> F,
        ) -> (usize, usize) {
            (std::mem::size_of::<F>(), std::mem::align_of::<F>())
        }
        let (o, t) = (open(active_open), task(super::super::conn::connection));
        eprintln!("active_open future {o:?}, connection task future {t:?} (size, align)");
    }
}
