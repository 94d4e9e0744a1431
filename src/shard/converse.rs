//! The active phase of a conversation (`--workload conversation`): runs the
//! script's steps on one connection: sends, waits for expects (with their
//! timeouts), thinks, repeats, keeps heartbeats (`every`) going, closes; then
//! starts over (loop), holds the connection (once), or ends the session.
//!
//! While it waits it keeps reading: server pings are answered, every message is
//! checked against the pending expect (`steps::on_message`), heartbeats go out
//! when due. A wait is a readiness wait raced with one timer (the next deadline:
//! the expect's, the think's or a heartbeat's), so a waiting connection holds no
//! read buffer. An expect that is not met (timeout, or a strict mismatch) ends
//! the round: the next loop starts from the first step, a session closes, a
//! single run holds. Every expect begun ends as met, timeout, mismatch, closed
//! (the connection ended) or stopped (the run did): the steps' own ledger.
//!
//! Imports the connection's messages (`exchange`), its reads and writes (`io`)
//! and its state (`steps`); never the connection loop that calls it.

use super::exchange::{on_read, Conn, End};
use super::io::flush;
use super::state::Shard;
use super::steps::{queue_send, Outcome, Pending, ScriptRun};
use crate::net::sock::io_cause;
use crate::net::stop::STOPPED;
use crate::net::stream::Stream;
use crate::script::{Mode, Op, Script};
use std::time::Duration;

/// How a wait ended.
enum Waited {
    /// The deadline passed.
    Due,
    /// The pending expect was met, or failed as a mismatch.
    Settled,
    /// The connection or the run ended.
    Ended(End),
}

/// Runs the conversation until the run stops, the connection breaks, or a
/// session (or a `close` step) ends it.
pub(super) async fn active_script(shard: &Shard, c: &mut Conn, stream: &mut Stream) -> End {
    let Some(script) = shard.run.plan.script.clone() else {
        return End::Stopped;
    };
    c.script = Some(Box::new(ScriptRun::new(&script)));
    // Bytes that arrived right behind the 101 response.
    if !c.pending.is_empty() {
        let early = std::mem::take(&mut c.pending);
        let mut out = shard.wpool.take();
        if let Err(end) = on_read(shard, c, early, &mut out) {
            shard.wpool.put(out);
            return end;
        }
        if let Err(end) = flush(shard, stream, c.slot, out, STOPPED).await {
            return end;
        }
    }
    let end = steps(shard, &script, c, stream).await;
    // An expect still waited for ends with the connection, or with the run.
    if let Some(p) = run(c).pending.take().filter(|p| p.outcome.is_none()) {
        let mut st = shard.stats.borrow_mut();
        let s = st.step(p.step);
        if end == End::Stopped {
            s.stopped += 1;
        } else {
            s.closed += 1;
        }
    }
    end
}

fn run(c: &mut Conn) -> &mut ScriptRun {
    c.script.as_deref_mut().expect("set by active_script")
}

async fn steps(shard: &Shard, script: &Script, c: &mut Conn, stream: &mut Stream) -> End {
    loop {
        if shard.stop.is_set_for(c.slot) {
            return End::Stopped;
        }
        let pc = run(c).pc;
        let Some(op) = script.ops.get(pc) else {
            match script.mode {
                Mode::Loop => {
                    restart(run(c));
                    continue;
                }
                Mode::Session => return End::Done,
                Mode::Once => {
                    // Hold: read, answer and count until the run stops.
                    return match wait(shard, script, c, stream, None).await {
                        Waited::Ended(end) => end,
                        Waited::Due | Waited::Settled => End::Stopped,
                    };
                }
            }
        };
        match op {
            Op::Send(s) => {
                let mut out = shard.wpool.take();
                queue_send(shard, c.id, run(c), s, false, &mut out);
                if let Err(end) = flush(shard, stream, c.slot, out, STOPPED).await {
                    return end;
                }
                run(c).pc += 1;
            }
            Op::Every { period, .. } => {
                let r = run(c);
                // Started once, however often a loop passes here.
                if !r.everies.iter().any(|&(_, op)| op == pc) {
                    r.everies.push((shard.now_ns() + nanos(*period), pc));
                }
                r.pc += 1;
            }
            Op::Think(d) => {
                let until = shard.now_ns() + nanos(*d);
                match wait(shard, script, c, stream, Some(until)).await {
                    Waited::Ended(end) => return end,
                    Waited::Due | Waited::Settled => run(c).pc += 1,
                }
            }
            Op::Expect(e) => {
                shard.stats.borrow_mut().step(e.step).count += 1;
                run(c).pending = Some(Pending {
                    op: pc,
                    step: e.step,
                    outcome: None,
                });
                let until = shard.now_ns() + nanos(e.timeout);
                let waited = wait(shard, script, c, stream, Some(until)).await;
                let outcome = match waited {
                    Waited::Ended(end) => return end,
                    Waited::Due => None,
                    Waited::Settled => run(c).pending.and_then(|p| p.outcome),
                };
                run(c).pending = None;
                match outcome {
                    Some(Outcome::Met) => run(c).pc += 1,
                    failed => {
                        {
                            let mut st = shard.stats.borrow_mut();
                            let s = st.step(e.step);
                            if failed == Some(Outcome::Mismatch) {
                                s.mismatch += 1;
                            } else {
                                s.timeout += 1;
                            }
                        }
                        // The round is over: what follows depended on this answer.
                        match script.mode {
                            Mode::Loop => restart(run(c)),
                            Mode::Session => return End::Done,
                            Mode::Once => run(c).pc = script.ops.len(),
                        }
                    }
                }
            }
            Op::Repeat { times, .. } => {
                let r = run(c);
                r.repeats.push((pc, *times));
                r.pc += 1;
            }
            Op::EndRepeat { start } => {
                let r = run(c);
                match r.repeats.last_mut() {
                    Some((_, left)) if *left > 1 => {
                        *left -= 1;
                        r.pc = start + 1;
                    }
                    _ => {
                        r.repeats.pop();
                        r.pc += 1;
                    }
                }
            }
            Op::Close => return End::Done,
        }
    }
}

/// The next round of a loop starts from the first step (heartbeats go on).
fn restart(r: &mut ScriptRun) {
    r.pc = 0;
    r.repeats.clear();
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// Reads (answering pings, checking messages against the pending expect) and
/// sends heartbeats when due, until `until` (ns since the run's origin; None:
/// until the run stops), the pending expect settles, or the connection ends.
async fn wait(
    shard: &Shard,
    script: &Script,
    c: &mut Conn,
    stream: &mut Stream,
    until: Option<u64>,
) -> Waited {
    let mut filed = u64::MAX;
    loop {
        let now = shard.now_ns();
        // Heartbeats that are due.
        let mut out = shard.wpool.take();
        let id = c.id;
        let r = run(c);
        for i in 0..r.everies.len() {
            let (due, op) = r.everies[i];
            if due <= now {
                if let Op::Every { period, send } = &script.ops[op] {
                    queue_send(shard, id, r, send, true, &mut out);
                    r.everies[i].0 = now + nanos(*period);
                }
            }
        }
        if let Err(end) = flush(shard, stream, c.slot, out, STOPPED).await {
            return Waited::Ended(end);
        }
        if until.is_some_and(|u| u <= now) {
            return Waited::Due;
        }
        let next = run(c)
            .everies
            .iter()
            .map(|&(due, _)| due)
            .chain(until)
            .min();
        // The next deadline is filed with the shard's timer task (once: `filed`),
        // which wakes the slot then: to the microsecond where the timer is precise,
        // and no timer held while waiting.
        let due = next.unwrap_or(u64::MAX);
        if due != u64::MAX && due != filed && due > shard.now_ns() {
            shard.timers.wake_at(c.slot, due);
            filed = due;
        }
        let ready = {
            let mut readable = std::pin::pin!(shard.stop.until(c.slot, stream.readable()));
            std::future::poll_fn(|cx| {
                if due != u64::MAX && shard.now_ns() >= due {
                    return std::task::Poll::Ready(Some(None));
                }
                use std::future::Future;
                readable.as_mut().poll(cx).map(|r| r.map(Some))
            })
            .await
        };
        match ready {
            None => return Waited::Ended(End::Stopped),
            Some(None) => continue,
            Some(Some(Err(e))) => return Waited::Ended(End::Lost(io_cause(&e))),
            Some(Some(Ok(()))) => {}
        }
        let mut buf = shard.pool.take();
        match stream.recv_now(&mut buf) {
            Ok(None) => {
                shard.pool.put(buf);
                continue;
            }
            Ok(Some(0)) => {
                shard.pool.put(buf);
                return Waited::Ended(End::Lost("eof_without_close"));
            }
            Ok(Some(_)) => {}
            Err(e) => {
                shard.pool.put(buf);
                return Waited::Ended(End::Lost(io_cause(&e)));
            }
        }
        let mut out = shard.wpool.take();
        let res = on_read(shard, c, buf, &mut out);
        // Pongs go out even when the frames ended the connection.
        let flushed = flush(shard, stream, c.slot, out, STOPPED).await;
        if let Err(end) = res {
            return Waited::Ended(end);
        }
        if let Err(end) = flushed {
            return Waited::Ended(end);
        }
        let r = run(c);
        if r.broken {
            return Waited::Ended(End::Protocol("unmatched_message"));
        }
        if r.pending.is_some_and(|p| p.outcome.is_some()) {
            return Waited::Settled;
        }
    }
}
