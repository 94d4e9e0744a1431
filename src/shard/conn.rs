//! One load connection from dial to close: the connection loop every workload shares.
//!
//! TCP connect (timed), WebSocket upgrade (timed, accept key verified), then the
//! workload's messages, answering server pings, until the run stops; then a drain
//! (wait for echoes still in flight), a close handshake, and the ledger entry: every
//! message sent is received, failed (the connection died) or in flight at stop.
//! The closed-loop active phase is here, and `hold` for connections that send
//! nothing of their own but heartbeats (idle, push); the open-loop one (paced
//! sends) is in `open_loop`.
//!
//! The end of a run is paced by the shard, not by timers in each connection (see
//! `stop`): the drain ends at the shard's `DRAINED` phase, and close handshakes take
//! turns (a few hundred at once per shard) until the close window is over; a
//! connection whose turn never came closes without waiting and counts as unanswered.
//!
//! Hot path rules: no allocation per message (buffers come from the shard's pool),
//! no lock, no atomic, no cross-thread call. A held connection holds no buffer and
//! no timer: its task is 600 bytes (release build; 640 with monoio's task header,
//! one mimalloc size class), because only `hold` is inline and every phase with
//! larger state (open, active, the open loop, finish) is boxed while it runs.
//! The futures are functions returning `async move` blocks where an `async fn`
//! would store its arguments twice (`connection`, `one_connection`, `hold`).
//! An idle connection (no beat, nothing pushed, plain TCP) holds not even a
//! task: between what its socket brings it is parked with the shard (`park`),
//! its state boxed (about 300 bytes), and resumed as a task when its socket is
//! readable or its slot stops.

use super::exchange::{on_read, queue_messages, queue_subscribe, Conn, End};
use super::io::{flush, read_some, Read};
use super::state::{Shard, CLOSE_WAIT};
use crate::net::sock::io_cause;
use crate::net::stop::{CLOSE_OVER, DRAINED, STOPPED};
use crate::net::stream::Stream;
use crate::ws::frame::{self, Kind};
use crate::ws::handshake;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Runs one connection to its end and accounts for it. With `staged`, the caller (a
/// staged dialer) owns the stop slot: it may retire the slot to close this
/// connection, and learns it ended through the flag.
///
/// Session workloads without a session rate: the slot starts its next session as
/// soon as the previous one closed, until the run stops. (One function rather
/// than a wrapper per case: every level of `async fn` adds to each task.)
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see `hold`
pub fn connection(
    shard: Rc<Shard>,
    id: u32,
    staged: Option<(usize, Rc<std::cell::Cell<bool>>)>,
) -> impl std::future::Future<Output = ()> {
    run_connection(shard, id, staged, None)
}

/// `connection`, or the rest of a parked one's (`resumed`: its socket was
/// readable, or its slot stopped).
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see `hold`
fn run_connection(
    shard: Rc<Shard>,
    id: u32,
    mut staged: Option<(usize, Rc<std::cell::Cell<bool>>)>,
    mut resumed: Option<Box<Held>>,
) -> impl std::future::Future<Output = ()> {
    async move {
        // (Each variable here is in every connection's task: no second binding,
        // the slot in 4 bytes.)
        if staged.is_none() {
            staged = resumed.as_mut().and_then(|h| h.staged.take());
        }
        let slot = match (&resumed, &staged) {
            (Some(h), _) => h.c.slot,
            (None, Some((slot, _))) => *slot,
            (None, None) => shard.stop.slot(),
        } as u32;
        // --reconnect (a staged dialer redials on its own): when the connection was
        // lost (ns since the run's origin, 0: it is not), and how many dials have
        // failed since. (Compact: every connection's task holds them.)
        let (mut lost_at, mut tries) = resumed.as_ref().map_or((0, 0), |h| (h.lost_at, h.tries));
        loop {
            // Taken apart at once: what is parked is handled before any other
            // wait, so that no wait holds it.
            let Ended {
                established,
                broken,
                parked,
            } = one_connection(&shard, slot, id, resumed.take()).await;
            if let (true, at @ 1..) = (lost_at > 0, established) {
                // Back after an outage (counted when this connection ends, the
                // run's stop included).
                let mut st = shard.stats.borrow_mut();
                st.counters.reconnects += 1;
                st.counters.disconnected_ns += at.saturating_sub(lost_at);
                lost_at = 0;
                tries = 0;
            }
            if let Some(mut held) = parked {
                // Idle: parked with no task until its socket is readable or its
                // slot stops (the slot and the count of live tasks go with it).
                held.staged = staged.take();
                held.lost_at = lost_at;
                held.tries = tries;
                match park(&shard, held) {
                    Ok(()) => return,
                    Err(mut back) => {
                        // Refused: it waits as a task.
                        staged = back.staged.take();
                        back.parks = false;
                        resumed = Some(back);
                        continue;
                    }
                }
            }
            if shard.stop.is_set_for(slot as usize) {
                break;
            }
            if broken && shard.run.plan.reconnect.is_some() && staged.is_none() {
                if lost_at == 0 {
                    lost_at = shard.now_ns().max(1);
                }
                let wait = backoff(&shard, tries);
                tries = tries.saturating_add(1);
                let due = shard.now_ns() + wait.as_nanos() as u64;
                if !shard.sleep_until_ns(slot as usize, due).await {
                    break;
                }
                shard.stats.borrow_mut().counters.reconnect_attempts += 1;
                continue;
            }
            if !repeats(&shard.run.plan) {
                break;
            }
        }
        if lost_at > 0 {
            // Lost and not back when the run stopped: down from the loss to the stop.
            let mut st = shard.stats.borrow_mut();
            st.counters.down_at_stop += 1;
            st.counters.disconnected_ns += shard.now_ns().saturating_sub(lost_at);
        }
        match staged {
            Some((_, ended)) => ended.set(true),
            None => shard.stop.release(slot as usize),
        }
        shard.live.set(shard.live.get() - 1);
    }
}

/// Session workloads without a session rate: a slot starts its next session as
/// soon as the previous one closed.
fn repeats(plan: &crate::plan::Plan) -> bool {
    plan.workload.session.is_some_and(|s| s.rate.is_none())
        || plan
            .script
            .as_ref()
            .is_some_and(|s| s.mode == crate::script::Mode::Session)
}

/// An idle connection parked with no task (`park`): what its task held.
struct Held {
    c: Conn,
    stream: Stream,
    /// When it started and was established (ns since the run's origin).
    started: u64,
    established: u64,
    /// `run_connection`'s: the staged dialer's slot and flag, and --reconnect's
    /// outage.
    staged: Option<(usize, Rc<std::cell::Cell<bool>>)>,
    lost_at: u64,
    tries: u32,
    /// False once the parking refused it.
    parks: bool,
}

/// Parks `held` with the shard (its task then ends), or gives it back.
fn park(shard: &Shard, held: Box<Held>) -> Result<(), Box<Held>> {
    let Some(parking) = &shard.parking else {
        return Err(held);
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(held.stream.tcp());
    let slot = held.c.slot;
    match parking.park(&shard.stop, fd, slot, held) {
        Ok(()) => {
            shard.stats.borrow_mut().counters.parks += 1;
            Ok(())
        }
        Err(back) => Err(back
            .downcast::<Held>()
            .expect("the parking gives back what it took")),
    }
}

/// The shard's parker: resumes each parked connection, as a task again, when
/// its socket is readable (a ping, a message, the server's close or a reset)
/// or its slot stops (the end of the run, a ramp retiring it). Runs until the
/// shard's runtime ends.
pub async fn parker(shard: Rc<Shard>) {
    let Some(parking) = &shard.parking else {
        return;
    };
    let mut ready = Vec::new();
    loop {
        parking.next(&shard.stop, &mut ready).await;
        for held in ready.drain(..) {
            if let Ok(held) = held.downcast::<Held>() {
                let id = held.c.id;
                monoio::spawn(run_connection(shard.clone(), id, None, Some(held)));
            }
        }
    }
}

/// The wait before dial `tries + 1` after a loss (`--reconnect=MIN..MAX`), with
/// the shard's generator: see `backoff_wait`.
fn backoff(shard: &Shard, tries: u32) -> Duration {
    let (min, max) = shard.run.plan.reconnect.unwrap_or_default();
    let random = shard.rng.borrow_mut().next_u64();
    backoff_wait(min, max, tries, random)
}

/// The wait before dial `tries + 1` after a loss: full jitter over an
/// exponential ceiling, uniform between `min` and `min * 2^tries` capped at
/// `max` (so never below `min` nor above `max`). `random` is a uniform 64-bit
/// value; its fraction of 2^64 picks the point in the spread, so a spread of
/// any length is covered (1s..30s reaches 30 s).
pub(crate) fn backoff_wait(min: Duration, max: Duration, tries: u32, random: u64) -> Duration {
    let (min_ns, max_ns) = (min.as_nanos(), max.as_nanos().max(min.as_nanos()));
    let growth = 1u128.checked_shl(tries.min(127)).unwrap_or(u128::MAX);
    let ceiling = min_ns.saturating_mul(growth).min(max_ns);
    let spread = (ceiling - min_ns).min(u64::MAX as u128);
    // random / 2^64 of (spread + 1) ns: 0 ..= spread.
    let jitter = (random as u128 * (spread + 1)) >> 64;
    min + Duration::from_nanos(jitter as u64)
}

/// How one connection ended, for `--reconnect`.
struct Ended {
    /// When it was established, ns since the run's origin (0: it never was).
    established: u64,
    /// Its dial failed, or the server or the network ended it (not the run).
    broken: bool,
    /// It is idle and waits parked (`park`), not ended.
    parked: Option<Box<Held>>,
}

/// One connection (one session, for session workloads) from dial to close.
///
/// A held connection's task sits in this future for its whole life, so it must stay
/// small: the dial/upgrade, open-loop and close phases are boxed (their state is
/// large and short-lived) and nothing it awaits inline holds a monoio timer.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see `hold`
fn one_connection<'a>(
    shard: &'a Shard,
    slot: u32,
    id: u32,
    resumed: Option<Box<Held>>,
) -> impl std::future::Future<Output = Ended> + 'a {
    async move {
        // Bound once, mutable: a second binding of the stream or the state
        // would be a second copy in every held task.
        let (mut c, mut stream, started, established, first, parks) = match resumed {
            Some(held) => {
                let Held {
                    c,
                    stream,
                    started,
                    established,
                    parks,
                    ..
                } = *held;
                (c, stream, started, established, false, parks)
            }
            None => match Box::pin(open_conn(shard, slot as usize, id)).await {
                Ok((c, stream, started, established)) => {
                    (c, stream, started, established, true, true)
                }
                Err(ended) => return ended,
            },
        };
        // Broadcast: only publishers send; the others only receive.
        let sends = shard
            .run
            .plan
            .workload
            .broadcast
            .is_none_or(|b| b.publisher(id as u64).is_some());
        let period = shard.run.plan.workload.period().filter(|_| sends);
        // A connection that sends nothing of its own but heartbeats (idle, push) is
        // held by `hold`, inline and small, which waits for the socket or the next beat
        // (the open loop's boxed reader and writer cost about 1 KiB more); unless a
        // ceiling search moves the rate. The other phases are boxed, so that a held
        // connection's task is no bigger than holding needs.
        let live_rate = shard
            .run
            .live
            .as_ref()
            .is_some_and(|l| l.dimension == crate::vocab::kinds::Dimension::Rate);
        let workload = &shard.run.plan.workload;
        let beats = workload.heartbeat().is_some() && sends && !live_rate;
        let holds = workload.session.is_none()
            && workload.broadcast.is_none()
            && (matches!(workload.pacing, crate::workload::Pacing::Hold) || beats);
        // Idle (no beat, nothing pushed): parked with no task between what the
        // socket brings (`park`), over plain TCP.
        let parked = parks
            && holds
            && !beats
            && shard.parking.is_some()
            && shard.run.plan.push.is_none()
            && !stream.is_tls();
        let (end, mut stream) =
            if shard.run.plan.protocol.opens() || shard.run.plan.script.is_some() {
                // The rarer phases, boxed so that a plain connection's task stays small.
                Box::pin(other_phase(shard, &mut c, stream, period)).await
            } else if parked {
                match Box::pin(hold_turn(shard, &mut c, &mut stream, first)).await {
                    Ok(()) => {
                        return Ended {
                            established: established.max(1),
                            broken: false,
                            parked: Some(Box::new(Held {
                                c,
                                stream,
                                started,
                                established,
                                staged: None,
                                lost_at: 0,
                                tries: 0,
                                parks: true,
                            })),
                        }
                    }
                    Err(end) => (end, stream),
                }
            } else if holds {
                let end = hold(shard, &mut c, &mut stream, beats).await;
                (end, stream)
            } else if let Some(period) = period {
                Box::pin(super::open_loop::active_open(shard, &mut c, stream, period)).await
            } else {
                let end = Box::pin(active(shard, &mut c, &mut stream)).await;
                (end, stream)
            };
        let done = end == End::Done;
        let broken = !matches!(end, End::Done | End::Stopped);
        // Boxed: every connection of a shard finishes at once at the end of a run, but
        // a held connection would otherwise carry the drain's state all its life.
        let clean = Box::pin(finish(shard, &mut c, &mut stream, end)).await;
        shard.conn_closed();
        if done && clean {
            let mut st = shard.stats.borrow_mut();
            st.counters.sessions += 1;
            st.session
                .saturating_record(shard.now_ns().saturating_sub(started));
        }
        Ended {
            established: established.max(1),
            broken,
            parked: None,
        }
    }
}

/// `open` and the connection's state: the connection, its stream, when it
/// started and when it was established (ns since the run's origin), or how it
/// ended before it was. Boxed by the caller: its state is the open's.
async fn open_conn(shard: &Shard, slot: usize, id: u32) -> Result<(Conn, Stream, u64, u64), Ended> {
    let started = shard.now_ns();
    let (stream, leftover, deflate) = match open(shard, slot, id).await {
        Ok(opened) => opened,
        // Cut short by the end of the run: not the server's failure.
        Err(ABORTED) => {
            shard.stats.borrow_mut().counters.aborted += 1;
            return Err(Ended {
                established: 0,
                broken: false,
                parked: None,
            });
        }
        Err(cause) => {
            shard.stats.borrow_mut().counters.fail(cause);
            return Err(Ended {
                established: 0,
                broken: true,
                parked: None,
            });
        }
    };
    let established = shard.now_ns();
    shard.conn_opened();
    let c = Conn {
        id,
        slot,
        pending: leftover,
        frag: None,
        next_seq: 0,
        acked: 0,
        stopping: false,
        frag_text: false,
        budget: shard.run.plan.workload.budget(),
        owed: 0,
        seen: Box::default(),
        got_close: None,
        deflate,
        requests: None,
        script: None,
        proto: if shard.run.plan.protocol.opens() {
            super::protocol::OPENING
        } else {
            super::protocol::OPEN
        },
    };
    Ok((c, stream, started, established))
}

/// The phases of a protocol (its open first) or a conversation, then the
/// workload's: paced sends, the conversation's steps, or the closed loop.
async fn other_phase(
    shard: &Shard,
    c: &mut Conn,
    stream: Stream,
    period: Option<std::time::Duration>,
) -> (End, Stream) {
    let mut stream = stream;
    if shard.run.plan.protocol.opens() {
        if let Err(end) = super::opening::open_protocol(shard, c, &mut stream).await {
            return (end, stream);
        }
    }
    if let Some(period) = period {
        return super::open_loop::active_open(shard, c, stream, period).await;
    }
    let end = if shard.run.plan.script.is_some() {
        super::converse::active_script(shard, c, &mut stream).await
    } else {
        active(shard, c, &mut stream).await
    };
    (end, stream)
}

/// An open that the end of the run interrupted.
const ABORTED: &str = "aborted_at_stop";

/// TCP connect, a proxy's tunnel, TLS and the WebSocket upgrade. Returns the
/// stream and any bytes that followed the 101 response.
async fn open(
    shard: &Shard,
    slot: usize,
    id: u32,
) -> Result<(Stream, Vec<u8>, Option<Box<super::exchange::ConnDeflate>>), &'static str> {
    let run = &shard.run;
    let (target, source) = crate::plan::endpoint(id as u64, run.targets.len(), &run.plan.sources);
    let t = &run.targets[target];
    shard.stats.borrow_mut().counters.attempted += 1;
    let t0 = Instant::now();
    let stream = match shard
        .stop
        .until(
            slot,
            monoio::time::timeout(
                run.plan.connect_timeout,
                super::dial::connect(source, t.dial_addr()),
            ),
        )
        .await
    {
        None => return Err(ABORTED),
        Some(Err(_)) if t.proxy.is_some() => return Err("proxy_connect_timeout"),
        Some(Err(_)) => return Err("connect_timeout"),
        // A proxy that cannot be reached is the proxy's failure, not the target's.
        Some(Ok(Err(e))) if t.proxy.is_some() => return Err(proxy_cause(&e)),
        Some(Ok(Err(e))) => return Err(io_cause(&e)),
        Some(Ok(Ok(s))) => s,
    };
    let connected = Instant::now();
    shard
        .stats
        .borrow_mut()
        .connect
        .saturating_record(connected.duration_since(t0).as_nanos() as u64);
    let _ = stream.set_nodelay(true);

    let remaining = run
        .plan
        .connect_timeout
        .saturating_sub(connected.duration_since(t0));
    let in_tls = Cell::new(false);
    let opened = match shard
        .stop
        .until(
            slot,
            monoio::time::timeout(
                remaining.max(Duration::from_millis(1)),
                establish(shard, stream, t, id, &in_tls),
            ),
        )
        .await
    {
        None => return Err(ABORTED),
        Some(Err(_)) if in_tls.get() => return Err("tls_handshake_timeout"),
        Some(Err(_)) => return Err("handshake_timeout"),
        Some(Ok(Err(cause))) => return Err(cause),
        Some(Ok(Ok(o))) => o,
    };
    let Established {
        stream,
        leftover,
        chosen,
        tls_time,
        deflate,
    } = opened;
    let now_ns = shard.now_ns();
    let mut st = shard.stats.borrow_mut();
    st.counters.last_established_ns = st.counters.last_established_ns.max(now_ns);
    // The HTTP exchanges: the time since the connect, TLS left out.
    st.handshake
        .saturating_record(connected.elapsed().saturating_sub(tls_time).as_nanos() as u64);
    st.counters.established += 1;
    let offered = &run.plan.offer.subprotocols;
    if !offered.is_empty() {
        st.counters.subprotocol(chosen.map(|i| offered[i].as_str()));
    }
    let deflate = deflate.map(|p| {
        let codec = crate::ws::deflate::Codec::new(p, crate::ws::deflate::Side::Client);
        st.counters.deflate_negotiated += 1;
        st.counters.deflate_state_bytes += codec.state_bytes() as u64;
        Box::new(super::exchange::ConnDeflate {
            codec,
            frag_compressed: false,
        })
    });
    if deflate.is_none() && run.plan.offer.deflate.is_some() {
        st.counters.deflate_declined += 1;
    }
    if shard.run.plan.workload.broadcast.is_some() {
        run.established
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok((stream, leftover, deflate))
}

/// An open connection, and how it got there.
struct Established {
    stream: Stream,
    /// Bytes that followed the 101 response.
    leftover: Vec<u8>,
    /// The subprotocol the server chose (an index into the plan's offer).
    chosen: Option<usize>,
    /// How long the TLS handshake took (zero for ws://).
    tls_time: Duration,
    /// permessage-deflate, when the server accepted it.
    deflate: Option<crate::ws::deflate::Params>,
}

/// Over a connected socket: a proxy's tunnel (when the target has one), TLS (for
/// wss://, timed and counted) and the upgrade. `in_tls` says whether a timeout
/// caught it in the TLS handshake.
async fn establish(
    shard: &Shard,
    tcp: TcpStream,
    t: &crate::target::Target,
    id: u32,
    in_tls: &Cell<bool>,
) -> Result<Established, &'static str> {
    let mut stream = Stream::plain(tcp);
    let early = match &t.proxy {
        Some(p) => tunnel(shard, &mut stream, p, &t.authority).await?,
        None => Vec::new(),
    };
    let mut tls_time = Duration::ZERO;
    let (mut stream, head) = match (&t.tls, &shard.run.plan.tls) {
        (Some(name), Some(tls)) => {
            let name = tls.sni.clone().unwrap_or_else(|| name.clone());
            let session = crate::net::tls::Session::client(tls.config.clone(), name)
                .map_err(|e| io_cause(&e))?;
            in_tls.set(true);
            let t0 = Instant::now();
            let stream = Stream::handshake(stream.into_tcp(), Box::new(session), &early)
                .await
                .map_err(|e| tls_failed(shard, id, &e))?;
            in_tls.set(false);
            tls_time = t0.elapsed();
            let mut st = shard.stats.borrow_mut();
            st.tls.saturating_record(tls_time.as_nanos() as u64);
            if let Some(n) = stream.session().and_then(|s| s.negotiated()) {
                st.counters.tls(n.resumed, n.version, n.suite);
            }
            (stream, Vec::new())
        }
        _ => (stream, early),
    };
    let (leftover, chosen, deflate) = upgrade(shard, &mut stream, t, id, head).await?;
    Ok(Established {
        stream,
        leftover,
        chosen,
        tls_time,
        deflate,
    })
}

/// A TLS handshake that failed: its cause, and for the first connection with
/// each cause, what went wrong and how to fix it, on stderr (always: a
/// certificate problem stops a whole run, and the fix is a flag away).
#[cold]
fn tls_failed(shard: &Shard, id: u32, e: &io::Error) -> &'static str {
    let cause = io_cause(e);
    if let Some(f) = crate::net::tls::failure(e) {
        if first_of(shard, cause) {
            eprintln!("wsherd: connection {id}: {cause}: {}", f.detail);
        }
    }
    cause
}

/// Writes the upgrade request and reads until the response head is complete.
/// `head` holds bytes that already came (a proxy's, behind its answer). Returns
/// the bytes after the head and the subprotocol chosen (an index into the plan's
/// offer).
async fn upgrade(
    shard: &Shard,
    stream: &mut Stream,
    t: &crate::target::Target,
    id: u32,
    mut head: Vec<u8>,
) -> Result<(Vec<u8>, Option<usize>, Option<crate::ws::deflate::Params>), &'static str> {
    let key = handshake::new_key();
    let mut req = shard.wpool.take();
    let offer = &shard.run.plan.offer;
    write_request(shard, t, id, &key, &mut req);
    let sent = shard.run.plan.verbose.then(|| req.clone());
    stream.seal(&mut req).map_err(|e| io_cause(&e))?;
    let (res, req) = stream.tcp_mut().write_all(req).await;
    shard.wpool.put(req);
    res.map_err(|e| io_cause(&e))?;
    loop {
        if !head.is_empty() {
            // Bytes a proxy passed on behind its answer: the start of the response.
            match handshake::check_response(&head, &key, offer) {
                Ok(None) => {}
                Ok(Some(a)) => {
                    head.drain(..a.head_len);
                    head.shrink_to_fit();
                    return Ok((head, a.subprotocol, a.deflate));
                }
                Err(e) => {
                    let cause = intern(e.cause());
                    show_failure(shard, id, cause, sent.as_deref(), &head);
                    return Err(cause);
                }
            }
        }
        let n = read_more(shard, stream, &mut head)
            .await
            .map_err(|e| io_cause(&e))?;
        if n == 0 {
            show_failure(shard, id, "closed_during_handshake", sent.as_deref(), &head);
            return Err("closed_during_handshake");
        }
    }
}

/// Reads what came next of an answer's head onto `head`; the bytes read (0: the
/// peer closed). Waits for the answer before borrowing a buffer: thousands of
/// connections may be mid-upgrade at once during a ramp.
async fn read_more(shard: &Shard, stream: &mut Stream, head: &mut Vec<u8>) -> io::Result<usize> {
    stream.readable().await?;
    let buf = shard.pool.take();
    let (res, buf) = stream.read(buf).await;
    if let Ok(n) = res {
        head.extend_from_slice(&buf[..n]);
    }
    shard.pool.put(buf);
    res
}

/// With -v, the first connection that fails its upgrade with each cause shows
/// the request it sent (`> `) and what came back (`< `: status line, headers,
/// the start of the body) on stderr. Cold: only on a failure, once per cause.
fn show_failure(shard: &Shard, id: u32, cause: &str, sent: Option<&[u8]>, got: &[u8]) {
    let Some(sent) = sent else {
        return;
    };
    if first_of(shard, cause) {
        eprint!("{}", handshake::transcript(id, cause, sent, got));
    }
}

/// Whether this is the run's first failure with `cause` (its details are shown
/// once).
fn first_of(shard: &Shard, cause: &str) -> bool {
    shard
        .run
        .shown_causes
        .lock()
        .map(|mut s| s.insert(cause.to_string()))
        .unwrap_or(false)
}

/// The upgrade request of connection `id` to `t`: the plan's, with the
/// connection's values filled in where the path or a header has placeholders.
fn write_request(shard: &Shard, t: &crate::target::Target, id: u32, key: &str, out: &mut Vec<u8>) {
    let plan = &shard.run.plan;
    let offered = &plan.offer.subprotocols;
    let Some(per) = &plan.per_conn else {
        let head = handshake::Head::of(&plan.offer, &t.host_header, &t.path);
        handshake::write_request(out, &head, key, offered);
        return;
    };
    use crate::values::Escape;
    let v = per.vars(id as u64, shard.index);
    let path = t.path_pattern.as_ref().map(|p| p.rendered(&v, Escape::Url));
    let headers = per.headers.rendered(&v, Escape::None);
    let host = per.host.as_ref().map(|p| p.rendered(&v, Escape::None));
    let user_agent = per
        .user_agent
        .as_ref()
        .map(|p| p.rendered(&v, Escape::None));
    let head = handshake::Head {
        host: host.as_deref().unwrap_or(&t.host_header),
        path: path.as_deref().unwrap_or(&t.path),
        headers: &headers,
        user_agent: user_agent.as_deref(),
    };
    handshake::write_request(out, &head, key, offered);
}

/// Asks `proxy` for a tunnel to `authority` over `stream` (already connected to
/// the proxy). Returns any bytes the proxy passed on behind its answer.
async fn tunnel(
    shard: &Shard,
    stream: &mut Stream,
    proxy: &crate::proxy::Proxy,
    authority: &str,
) -> Result<Vec<u8>, &'static str> {
    let mut req = shard.wpool.take();
    req.extend_from_slice(proxy.connect_request(authority).as_bytes());
    let (res, req) = stream.tcp_mut().write_all(req).await;
    shard.wpool.put(req);
    res.map_err(|e| proxy_cause(&e))?;
    let mut head = Vec::new();
    loop {
        let n = read_more(shard, stream, &mut head)
            .await
            .map_err(|e| proxy_cause(&e))?;
        if n == 0 {
            return Err("proxy_closed");
        }
        match crate::proxy::check_connect(&head) {
            Ok(None) => continue,
            Ok(Some(n)) => {
                head.drain(..n);
                return Ok(head);
            }
            Err(e) => return Err(intern(e.cause())),
        }
    }
}

/// An I/O failure on the way to or through a proxy: the proxy's, not the
/// target's (`proxy_refused`, `proxy_reset`, ...).
fn proxy_cause(e: &io::Error) -> &'static str {
    intern(format!("proxy_{}", io_cause(e)))
}

/// Causes with an HTTP status are built at run time; intern them so counters can
/// keep `&'static str` (a few distinct statuses per run at most).
fn intern(s: String) -> &'static str {
    thread_local! {
        static INTERNED: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    INTERNED.with(|i| {
        let mut i = i.borrow_mut();
        if let Some(found) = i.iter().find(|x| **x == s) {
            return *found;
        }
        let leaked: &'static str = Box::leak(s.into_boxed_str());
        i.push(leaked);
        leaked
    })
}

/// The workload phase: runs until the stop signal, a close from the server, or a
/// broken connection.
async fn active(shard: &Shard, c: &mut Conn, stream: &mut Stream) -> End {
    let mut out = shard.wpool.take();
    queue_subscribe(shard, c, &mut out);
    queue_messages(shard, c, &mut out, shard.run.plan.workload.initial_sends());
    // Bytes that arrived right behind the 101 response.
    if !c.pending.is_empty() {
        let early = std::mem::take(&mut c.pending);
        if let Err(end) = on_read(shard, c, early, &mut out) {
            shard.wpool.put(out);
            return end;
        }
    }
    if let Err(end) = flush(shard, stream, c.slot, out, STOPPED).await {
        return end;
    }
    loop {
        let buf = match read_some(shard, stream, c.slot, c.outstanding() > 0, STOPPED).await {
            Read::Data(b) => b,
            Read::Eof => return End::Lost("eof_without_close"),
            Read::Failed(e) => return End::Lost(io_cause(&e)),
            Read::Interrupted => return End::Stopped,
        };
        // Once the run stops, no new messages: only what is in flight is awaited.
        c.stopping = shard.stop.is_set_for(c.slot);
        let mut out = shard.wpool.take();
        let res = on_read(shard, c, buf, &mut out);
        // Replies (pongs, a close echo) go out even when the frame loop ended.
        let flushed = flush(shard, stream, c.slot, out, STOPPED).await;
        if let Err(end) = res {
            return end;
        }
        if let Err(end) = flushed {
            return end;
        }
        if c.stopping && c.outstanding() == 0 {
            return End::Stopped;
        }
        if c.budget == 0 && c.outstanding() == 0 {
            return End::Done;
        }
        if c.owed > 0 {
            // Chat: think (on the shard's timer task: no timer held), then send
            // what the answers released.
            let wait = shard.run.plan.workload.think().unwrap_or_default();
            let due = shard.now_ns() + wait.as_nanos() as u64;
            if !shard.sleep_until_ns(c.slot, due).await {
                return End::Stopped;
            }
            let mut out = shard.wpool.take();
            let owed = std::mem::take(&mut c.owed);
            queue_messages(shard, c, &mut out, owed);
            if let Err(end) = flush(shard, stream, c.slot, out, STOPPED).await {
                return end;
            }
        }
    }
}

/// Holds a connection that sends nothing of its own (idle, push) or only
/// heartbeats (`beats`): waits for the socket, holding no buffer, or for the next
/// beat; takes what came without waiting and answers it (pongs, a close). Inline
/// in the task of every held connection, so small: its writes (a subscribe, pongs,
/// beats) are rare, and their state is boxed while they last. A pong in flight
/// does not hold up the beats after it.
///
/// A function returning a future rather than an `async fn`, which would store its
/// arguments twice; the subscribe and the early bytes are a step of their own, so
/// their buffer is not kept in the frame.
#[allow(clippy::manual_async_fn)]
fn hold<'a>(
    shard: &'a Shard,
    c: &'a mut Conn,
    stream: &'a mut Stream,
    beats: bool,
) -> impl std::future::Future<Output = End> + 'a {
    async move {
        if let Err(end) = hold_start(shard, c, stream).await {
            return end;
        }
        // Boxed: 8 bytes in every held connection's task, the schedule only in those
        // that beat.
        let mut beat = (shard.run.plan.workload.heartbeat())
            .filter(|_| beats)
            .map(|period| Box::new(Beat::start(shard, c.id, period)));
        let slot = c.slot;
        loop {
            // Readable (true), a beat due (false), or None once the run stops. (Inline
            // rather than a future of `Beat`'s: 80 bytes less in every held task.)
            let due = beat.as_mut().map_or(u64::MAX, |b| b.file(shard, slot));
            let ready = {
                let mut readable = std::pin::pin!(shard.stop.until(slot, stream.readable()));
                std::future::poll_fn(|cx| {
                    if shard.stop.is_set_for(slot) {
                        return std::task::Poll::Ready(None);
                    }
                    if due != u64::MAX && shard.now_ns() >= due {
                        return std::task::Poll::Ready(Some(Ok(false)));
                    }
                    use std::future::Future;
                    readable
                        .as_mut()
                        .poll(cx)
                        .map(|r| r.map(|r| r.map(|()| true)))
                })
                .await
            };
            let mut out = shard.wpool.take();
            match ready {
                None => {
                    shard.wpool.put(out);
                    return End::Stopped;
                }
                Some(Err(e)) => {
                    shard.wpool.put(out);
                    return End::Lost(io_cause(&e));
                }
                Some(Ok(false)) => {
                    if let Some(b) = &mut beat {
                        b.queue_due(shard, c, &mut out);
                    }
                }
                Some(Ok(true)) => {
                    let res = take_now(shard, c, stream, &mut out);
                    // Replies (pongs, a close echo) go out even when the frame loop ended.
                    let flushed = send_rare(shard, stream, c.slot, out).await;
                    if let Err(end) = res.and(flushed) {
                        return end;
                    }
                    if c.stopping && c.outstanding() == 0 {
                        return End::Stopped;
                    }
                    continue;
                }
            }
            if let Err(end) = send_rare(shard, stream, c.slot, out).await {
                return end;
            }
        }
    }
}

/// One turn of a parked connection before it parks (again): its first writes
/// (`first`), or what its socket brought; an error, or the stop, ends it.
async fn hold_turn(
    shard: &Shard,
    c: &mut Conn,
    stream: &mut Stream,
    first: bool,
) -> Result<(), End> {
    if first {
        hold_start(shard, c, stream).await?;
    } else {
        let mut out = shard.wpool.take();
        let res = take_now(shard, c, stream, &mut out);
        // Replies (pongs, a close echo) go out even when the frame loop ended.
        let flushed = send_rare(shard, stream, c.slot, out).await;
        res.and(flushed)?;
    }
    if shard.stop.is_set_for(c.slot) || (c.stopping && c.outstanding() == 0) {
        return Err(End::Stopped);
    }
    Ok(())
}

/// What a held connection's socket has (without waiting): frames handled, pings
/// and a close answered into `out`; its end when the stream ended or broke.
/// (Not async: the caller flushes `out` with `send_rare`, and a held task keeps
/// no more state than that.)
fn take_now(
    shard: &Shard,
    c: &mut Conn,
    stream: &mut Stream,
    out: &mut Vec<u8>,
) -> Result<(), End> {
    let mut buf = shard.pool.take();
    match stream.recv_now(&mut buf) {
        Ok(None) => {
            shard.pool.put(buf);
            Ok(())
        }
        Ok(Some(0)) => {
            shard.pool.put(buf);
            Err(End::Lost("eof_without_close"))
        }
        Ok(Some(_)) => {
            c.stopping = shard.stop.is_set_for(c.slot);
            on_read(shard, c, buf, out)
        }
        Err(e) => {
            shard.pool.put(buf);
            Err(End::Lost(io_cause(&e)))
        }
    }
}

/// A held connection's first writes: a push connection's subscribe, and the
/// answers to bytes that came right behind the 101 response.
async fn hold_start(shard: &Shard, c: &mut Conn, stream: &mut Stream) -> Result<(), End> {
    let mut out = shard.wpool.take();
    queue_subscribe(shard, c, &mut out);
    if !c.pending.is_empty() {
        let early = std::mem::take(&mut c.pending);
        if let Err(end) = on_read(shard, c, early, &mut out) {
            shard.wpool.put(out);
            return Err(end);
        }
    }
    send_rare(shard, stream, c.slot, out).await
}

/// `flush` for a held connection, which writes rarely: its state is boxed while
/// it lasts; nothing to write costs nothing (over TLS the stream still seals).
async fn send_rare(
    shard: &Shard,
    stream: &mut Stream,
    slot: usize,
    out: Vec<u8>,
) -> Result<(), End> {
    if out.is_empty() && !stream.is_tls() {
        shard.wpool.put(out);
        return Ok(());
    }
    Box::pin(flush(shard, stream, slot, out, STOPPED)).await
}

/// A heartbeat's schedule: a PING every `period`, from when the connection was
/// established plus its phase (as the open loop paces, `pacer::phase_of`), filed
/// with the shard's timer task: 24 bytes instead of the open loop's boxed reader
/// and writer.
struct Beat {
    /// When the next beat is due, ns since the run's origin.
    next: u64,
    period: u64,
    /// The deadline filed with the timer task (it wakes the slot then).
    filed: u64,
}

impl Beat {
    fn start(shard: &Shard, id: u32, period: Duration) -> Beat {
        let period = (period.as_nanos() as u64).max(1);
        let phase = crate::pacer::phase_of(u64::from(id));
        Beat {
            next: shard.now_ns() + (phase * period as f64) as u64,
            period,
            filed: 0,
        }
    }

    /// Files the next beat with the shard's timer task (once per beat: it wakes
    /// `slot` then) and returns when it is due.
    fn file(&mut self, shard: &Shard, slot: usize) -> u64 {
        if self.filed != self.next && shard.now_ns() < self.next {
            shard.timers.wake_at(slot, self.next);
            self.filed = self.next;
        }
        self.next
    }

    /// Queues every beat due by now (a late one is counted and none is skipped,
    /// as the open loop does), each stamped with its intended time.
    fn queue_due(&mut self, shard: &Shard, c: &mut Conn, out: &mut Vec<u8>) {
        let now = shard.now_ns();
        while self.next <= now && !c.stopping {
            super::exchange::queue_scheduled(shard, c, out, now, self.next);
            self.next += self.period;
        }
    }
}

/// After the active phase: drain and close on stop, close a finished session, or
/// record why it ended; then settle the ledger for this connection. Returns true
/// when it closed cleanly.
///
/// Inline in every connection's task, so small: the drain waits on the shard's
/// `DRAINED` phase rather than a timer, a connection waits for its close turn with
/// no buffer and no timer, and only the close handshake itself (a few hundred at a
/// time per shard) and the error paths are boxed.
async fn finish(shard: &Shard, c: &mut Conn, stream: &mut Stream, end: End) -> bool {
    c.stopping = true;
    // A slot retired because the server's heartbeat stopped (Socket.IO): lost.
    // (Asked for every ending, which forgets the slot's heartbeat.)
    let missed = shard.run.plan.protocol.opens() && shard.missed_heartbeat(c.slot);
    let end = match end {
        End::Stopped if missed => End::Lost("socketio_ping_timeout"),
        other => other,
    };
    match end {
        End::Done => {}
        End::Stopped => {
            if let Err(end) = drain(shard, c, stream).await {
                Box::pin(settle_broken(shard, c, stream, end)).await;
                return false;
            }
        }
        other => {
            Box::pin(settle_broken(shard, c, stream, other)).await;
            return false;
        }
    }
    // Replies that arrive while waiting for the turn stay in the socket; the close
    // handshake reads and counts them.
    let clean_close = match shard.stop.close_turn(c.slot).await {
        Some(turn) => {
            let slot = c.slot;
            let answered = shard
                .stop
                .until_phase(
                    slot,
                    CLOSE_OVER,
                    Box::pin(close_handshake(shard, c, stream)),
                )
                .await;
            drop(turn);
            answered.unwrap_or(false)
        }
        None => {
            close_now(shard, stream);
            false
        }
    };
    let owed = c.outstanding();
    let mut st = shard.stats.borrow_mut();
    st.counters.in_flight_at_stop += owed;
    if clean_close {
        st.counters.closed_clean += 1;
    } else {
        st.counters.closed_unanswered += 1;
    }
    shard.outstanding.set(shard.outstanding.get() - owed);
    clean_close
}

/// Waits for echoes still in flight, sending nothing new (pongs are still
/// answered), until none is left or the drain is over. Err when the connection
/// broke or the server closed it meanwhile.
async fn drain(shard: &Shard, c: &mut Conn, stream: &mut Stream) -> Result<(), End> {
    while c.outstanding() > 0 {
        match read_some(shard, stream, c.slot, true, DRAINED).await {
            Read::Data(b) => {
                let mut out = shard.wpool.take();
                let r = on_read(shard, c, b, &mut out);
                if out.is_empty() {
                    shard.wpool.put(out);
                } else {
                    // A pong (nothing new is sent while draining): rare, so boxed.
                    let _ = Box::pin(flush(shard, stream, c.slot, out, CLOSE_OVER)).await;
                }
                r?;
            }
            Read::Interrupted => break,
            Read::Eof => return Err(End::Lost("eof_without_close")),
            Read::Failed(e) => return Err(End::Lost(io_cause(&e))),
        }
    }
    Ok(())
}

/// The close window is over: send our close if the socket takes it at once, and
/// close without waiting for the answer.
fn close_now(shard: &Shard, stream: &mut Stream) {
    let mut out = shard.wpool.take();
    let key = shard.rng.borrow_mut().next_key();
    frame::write_client_frame_bytes(&mut out, Kind::Close, key, &1000u16.to_be_bytes());
    stream.send_now(&mut out);
    shard.wpool.put(out);
}

/// A connection that ended before the run did (or broke while draining): its
/// messages in flight are failed; reply to a close or a protocol error politely.
async fn settle_broken(shard: &Shard, c: &mut Conn, stream: &mut Stream, end: End) {
    let deadline = Instant::now() + CLOSE_WAIT;
    match end {
        End::ClosedByServer(code) => {
            let mut out = shard.wpool.take();
            let echo = if code == 1005 { 1000 } else { code };
            let key = shard.rng.borrow_mut().next_key();
            frame::write_client_frame_bytes(&mut out, Kind::Close, key, &echo.to_be_bytes());
            let _ = write_best_effort(shard, stream, out, deadline).await;
            let mut st = shard.stats.borrow_mut();
            *st.counters.close_codes.entry(code).or_insert(0) += 1;
            st.counters.lose("closed_by_server");
        }
        End::Protocol(kind) => {
            let mut out = shard.wpool.take();
            let key = shard.rng.borrow_mut().next_key();
            frame::write_client_frame_bytes(&mut out, Kind::Close, key, &1002u16.to_be_bytes());
            let _ = write_best_effort(shard, stream, out, deadline).await;
            let mut st = shard.stats.borrow_mut();
            st.counters.error(kind);
            st.counters.lose("protocol_error");
        }
        End::Lost(cause) => shard.stats.borrow_mut().counters.lose(cause),
        End::Stopped | End::Done => shard.stats.borrow_mut().counters.lose("stopped"),
    }
    let owed = c.outstanding();
    shard.stats.borrow_mut().counters.failed_msgs += owed;
    shard.outstanding.set(shard.outstanding.get() - owed);
}

/// Sends our close (1000) and waits briefly (`CLOSE_WAIT`) for the server's.
/// Echoes that still arrive are counted. Returns true when the server answered the
/// close. Boxed by its caller: it holds timers.
async fn close_handshake(shard: &Shard, c: &mut Conn, stream: &mut Stream) -> bool {
    let deadline = Instant::now() + CLOSE_WAIT;
    let mut out = shard.wpool.take();
    let key = shard.rng.borrow_mut().next_key();
    frame::write_client_frame_bytes(&mut out, Kind::Close, key, &1000u16.to_be_bytes());
    if !write_best_effort(shard, stream, out, deadline).await {
        return false;
    }
    loop {
        let ready = monoio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            stream.readable(),
        )
        .await;
        if !matches!(ready, Ok(Ok(()))) {
            return false;
        }
        // Readable: take what came without waiting (a TLS record still partial
        // waits for the next readiness).
        let mut b = shard.pool.take();
        match stream.recv_now(&mut b) {
            Ok(None) => {
                shard.pool.put(b);
                continue;
            }
            Ok(Some(n)) if n > 0 => {}
            _ => {
                shard.pool.put(b);
                return false;
            }
        }
        let mut out = shard.wpool.take();
        let r = on_read(shard, c, b, &mut out);
        shard.wpool.put(out);
        match r {
            Ok(()) => continue,
            Err(End::ClosedByServer(_)) => return true,
            Err(_) => return false,
        }
    }
}

/// Writes with a deadline, ignoring the stop signal. Returns true on success.
async fn write_best_effort(
    shard: &Shard,
    stream: &mut Stream,
    mut out: Vec<u8>,
    deadline: Instant,
) -> bool {
    if out.is_empty() {
        shard.wpool.put(out);
        return true;
    }
    if stream.seal(&mut out).is_err() {
        shard.wpool.put(out);
        return false;
    }
    match monoio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        stream.tcp_mut().write_all(out),
    )
    .await
    {
        Ok((res, out)) => {
            shard.wpool.put(out);
            res.is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_wait;
    use crate::ws::mask::MaskRng;
    use std::time::Duration;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_from_min() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(3600));
        for tries in 0..10 {
            let top = min * (1 << tries);
            // The lowest random value waits MIN, the highest the ceiling.
            assert_eq!(backoff_wait(min, max, tries, 0), min, "tries {tries}");
            let hi = backoff_wait(min, max, tries, u64::MAX);
            assert!(
                hi <= top && top - hi < Duration::from_nanos(2),
                "tries {tries}: {hi:?}"
            );
            // Half-way: half the spread.
            let mid = backoff_wait(min, max, tries, 1 << 63);
            let want = min + (top - min) / 2;
            assert!(
                mid.abs_diff(want) < Duration::from_nanos(2),
                "tries {tries}: {mid:?}"
            );
        }
    }

    #[test]
    fn backoff_is_capped_at_max() {
        for tries in [5, 6, 20, 63, 64, 127, 128, u32::MAX] {
            let hi = backoff_wait(S, 30 * S, tries, u64::MAX);
            assert!(
                hi <= 30 * S && 30 * S - hi < Duration::from_nanos(2),
                "{tries}: {hi:?}"
            );
            assert_eq!(backoff_wait(S, 30 * S, tries, 0), S);
        }
        // MIN == MAX: no jitter at all.
        assert_eq!(backoff_wait(S, S, 40, u64::MAX), S);
        // Huge durations neither overflow nor panic.
        let far = Duration::from_secs(u64::MAX / 4);
        assert!(backoff_wait(S, far, u32::MAX, u64::MAX) <= far);
    }

    #[test]
    fn backoff_jitter_covers_the_spread() {
        // 1s..30s at a high try count: the waits spread over the whole
        // second to thirty seconds, far beyond the 4.3 s a 32-bit jitter reached.
        let mut rng = MaskRng::new(0x5eed);
        let waits: Vec<Duration> = (0..2000)
            .map(|_| backoff_wait(S, 30 * S, 12, rng.next_u64()))
            .collect();
        assert!(waits.iter().all(|w| (S..=30 * S).contains(w)));
        let above = |d: Duration| waits.iter().filter(|w| **w > d).count();
        assert!(
            above(Duration::from_millis(4300)) > 1500,
            "{}",
            above(Duration::from_millis(4300))
        );
        assert!(above(25 * S) > 200, "{}", above(25 * S));
        assert!(waits.iter().any(|w| *w < 2 * S));
        // Every second of the spread is hit.
        for s in 1..30 {
            assert!(
                waits.iter().any(|w| w.as_secs() == s),
                "no wait in [{s}s, {}s)",
                s + 1
            );
        }
    }
}
