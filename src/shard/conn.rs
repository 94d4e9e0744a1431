//! One load connection from dial to close: the connection loop every workload shares.
//!
//! TCP connect (timed), WebSocket upgrade (timed, accept key verified), then the
//! workload's messages, answering server pings, until the run stops; then a drain
//! (wait for echoes still in flight), a close handshake, and the ledger entry: every
//! message sent is received, failed (the connection died) or in flight at stop.
//!
//! Hot path rules: no allocation per message (buffers come from the shard's pool),
//! no lock, no atomic, no cross-thread call. An idle connection holds no buffer.

use super::{Shard, CLOSE_WAIT};
use crate::payload::{PayloadKind, Stamp};
use crate::workload::Message;
use crate::ws::frame::{self, From, Kind};
use crate::ws::handshake;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, CancelableAsyncReadRent, Splitable};
use monoio::net::TcpStream;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Largest frame accepted from a server.
const MAX_FRAME: usize = 64 << 20;

/// How a connection's active phase ended.
#[derive(Debug, PartialEq)]
enum End {
    /// The run stopped: drain and close.
    Stopped,
    /// A session exchanged all its messages: close.
    Done,
    /// The connection broke (cause as counted).
    Lost(&'static str),
    /// The server sent a close frame with this code.
    ClosedByServer(u16),
    /// The server broke the protocol.
    Protocol(&'static str),
}

/// What a read produced.
enum Read {
    Data(Vec<u8>),
    Eof,
    Failed(io::Error),
    /// The stop signal or the deadline came first.
    Interrupted,
}

/// Per-connection state. Small on purpose: thousands of these live per shard.
struct Conn {
    id: u32,
    slot: usize,
    /// Bytes of a frame that has not fully arrived yet (normally empty).
    pending: Vec<u8>,
    /// A fragmented message being reassembled (rare).
    frag: Option<Vec<u8>>,
    next_seq: u64,
    acked: u64,
    /// Set once the run stops: send no new messages.
    stopping: bool,
    /// Messages this connection may still send (sessions), else u64::MAX.
    budget: u64,
    /// Messages owed after a think time (chat).
    owed: u32,
    /// Broadcast: the next sequence number expected from each publisher.
    seen: Vec<u64>,
    got_close: Option<u16>,
}

impl Conn {
    #[inline]
    fn outstanding(&self) -> u64 {
        self.next_seq - self.acked
    }
}

/// Runs one connection to its end and accounts for it.
pub async fn connection(shard: Rc<Shard>, id: u32, target: usize) {
    let slot = shard.stop.slot();
    run_slot(&shard, slot, id, target).await;
    shard.stop.release(slot);
    shard.live.set(shard.live.get() - 1);
}

/// A connection whose stop slot the caller (a staged dialer) owns: it may retire
/// the slot to close this connection, and learns it ended through `ended`.
pub async fn staged_connection(
    shard: Rc<Shard>,
    id: u32,
    target: usize,
    slot: usize,
    ended: Rc<std::cell::Cell<bool>>,
) {
    run_slot(&shard, slot, id, target).await;
    ended.set(true);
    shard.live.set(shard.live.get() - 1);
}

async fn run_slot(shard: &Shard, slot: usize, id: u32, target: usize) {
    // Session workloads without a session rate: this slot starts its next session
    // as soon as the previous one closed, until the run stops.
    let repeat = shard.run.workload.session.is_some_and(|s| s.rate.is_none());
    loop {
        one_connection(shard, slot, id, target).await;
        if !repeat || shard.stop.is_set_for(slot) {
            break;
        }
    }
}

/// One connection (one session, for session workloads) from dial to close.
async fn one_connection(shard: &Shard, slot: usize, id: u32, target: usize) {
    let started = Instant::now();
    // The dial/upgrade and close phases are boxed: their state is large and short-
    // lived, and a held connection should only carry the state of its active phase.
    match Box::pin(open(shard, slot, id, target)).await {
        Ok((stream, leftover)) => {
            shard.conn_opened();
            let mut c = Conn {
                id,
                slot,
                pending: leftover,
                frag: None,
                next_seq: 0,
                acked: 0,
                stopping: false,
                budget: shard.run.workload.budget(),
                owed: 0,
                seen: Vec::new(),
                got_close: None,
            };
            // Broadcast: only publishers send; the others only receive.
            let sends = shard
                .run
                .workload
                .broadcast
                .is_none_or(|b| b.publisher(id as u64).is_some());
            let (end, mut stream) = match shard.run.workload.period().filter(|_| sends) {
                Some(period) => Box::pin(active_open(shard, &mut c, stream, period)).await,
                None => {
                    let mut stream = stream;
                    let end = active(shard, &mut c, &mut stream).await;
                    (end, stream)
                }
            };
            let done = end == End::Done;
            let clean = Box::pin(finish(shard, &mut c, &mut stream, end)).await;
            shard.conn_closed();
            if done && clean {
                let mut st = shard.stats.borrow_mut();
                st.counters.sessions += 1;
                st.session
                    .saturating_record(started.elapsed().as_nanos() as u64);
            }
        }
        // Cut short by the end of the run: not the server's failure.
        Err(ABORTED) => shard.stats.borrow_mut().counters.aborted += 1,
        Err(cause) => shard.stats.borrow_mut().counters.fail(cause),
    }
}

/// An open that the end of the run interrupted.
const ABORTED: &str = "aborted_at_stop";

/// Stable cause names for I/O errors.
pub fn io_cause(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused",
        Some(libc::ECONNRESET) => "reset",
        Some(libc::EPIPE) => "broken_pipe",
        Some(libc::EADDRNOTAVAIL) => "port_exhausted",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "fd_limit",
        Some(libc::ETIMEDOUT) => "timed_out",
        Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) => "unreachable",
        Some(libc::ENOBUFS) | Some(libc::ENOMEM) => "no_memory",
        _ => match e.kind() {
            io::ErrorKind::ConnectionRefused => "refused",
            io::ErrorKind::ConnectionReset => "reset",
            io::ErrorKind::TimedOut => "timed_out",
            _ => "io_error",
        },
    }
}

/// TCP connect and WebSocket upgrade. Returns the stream and any bytes that
/// followed the 101 response.
async fn open(
    shard: &Shard,
    slot: usize,
    id: u32,
    target: usize,
) -> Result<(TcpStream, Vec<u8>), &'static str> {
    let run = &shard.run;
    let t = &run.targets[target];
    let source = crate::source::pick(&run.sources, id as u64, run.targets.len() as u64);
    shard.stats.borrow_mut().counters.attempted += 1;
    let t0 = Instant::now();
    let stream = match shard
        .stop
        .until(
            slot,
            monoio::time::timeout(run.connect_timeout, super::dial::connect(source, t.addr)),
        )
        .await
    {
        None => return Err(ABORTED),
        Some(Err(_)) => return Err("connect_timeout"),
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
    let mut stream = stream;

    let remaining = run
        .connect_timeout
        .saturating_sub(connected.duration_since(t0));
    let leftover = match shard
        .stop
        .until(
            slot,
            monoio::time::timeout(
                remaining.max(Duration::from_millis(1)),
                upgrade(shard, &mut stream, t),
            ),
        )
        .await
    {
        None => return Err(ABORTED),
        Some(Err(_)) => return Err("handshake_timeout"),
        Some(Ok(Err(cause))) => return Err(cause),
        Some(Ok(Ok(l))) => l,
    };
    let mut st = shard.stats.borrow_mut();
    st.handshake
        .saturating_record(connected.elapsed().as_nanos() as u64);
    st.counters.established += 1;
    if shard.run.workload.broadcast.is_some() {
        run.established
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok((stream, leftover))
}

/// Writes the upgrade request and reads until the response head is complete.
async fn upgrade(
    shard: &Shard,
    stream: &mut TcpStream,
    t: &crate::config::Target,
) -> Result<Vec<u8>, &'static str> {
    let key = handshake::new_key();
    let mut req = shard.wpool.take();
    handshake::write_request(&mut req, &t.host_header, &t.path, &key);
    let (res, req) = stream.write_all(req).await;
    shard.wpool.put(req);
    res.map_err(|e| io_cause(&e))?;
    let mut head: Vec<u8> = Vec::new();
    loop {
        // Wait for the answer before borrowing a buffer: thousands of connections
        // may be mid-upgrade at once during a ramp.
        stream.readable(false).await.map_err(|e| io_cause(&e))?;
        let buf = shard.pool.take();
        let (res, buf) = stream.read(buf).await;
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                shard.pool.put(buf);
                return Err(io_cause(&e));
            }
        };
        head.extend_from_slice(&buf[..n]);
        shard.pool.put(buf);
        if n == 0 {
            return Err("closed_during_handshake");
        }
        match handshake::check_response(&head, &key) {
            Ok(None) => continue,
            Ok(Some(n)) => {
                head.drain(..n);
                head.shrink_to_fit();
                return Ok(head);
            }
            Err(e) => return Err(intern(e.cause())),
        }
    }
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

/// Reads once. With `deadline` None the read ends early when the run stops; with a
/// deadline (drain, close wait) it ends when the deadline passes. A connection that
/// expects nothing waits for readiness first, so it holds no buffer while idle.
async fn read_some(
    shard: &Shard,
    stream: &mut TcpStream,
    slot: usize,
    expecting: bool,
    deadline: Option<Instant>,
) -> Read {
    // Drain and close reads (with a deadline) happen on every connection at once at
    // the end of a run: wait for readiness there too, so the end costs no buffers.
    if !expecting || deadline.is_some() {
        let ready = match deadline {
            None => shard.stop.until(slot, stream.readable(false)).await,
            Some(d) => monoio::time::timeout(
                d.saturating_duration_since(Instant::now()),
                stream.readable(false),
            )
            .await
            .ok(),
        };
        match ready {
            None => return Read::Interrupted,
            Some(Err(e)) => return Read::Failed(e),
            Some(Ok(())) => {}
        }
    }
    let buf = shard.pool.take();
    let res = match deadline {
        // Cancelled when the run stops; what the kernel already delivered still
        // comes back, so the stream never loses bytes.
        None if shard.stop.is_set_for(slot) => {
            shard.pool.put(buf);
            return Read::Interrupted;
        }
        None => match stream
            .cancelable_read(buf, shard.stop.cancel_handle(slot))
            .await
        {
            (Err(e), b) if e.raw_os_error() == Some(libc::ECANCELED) => {
                shard.pool.put(b);
                return Read::Interrupted;
            }
            r => Some(r),
        },
        Some(d) => monoio::time::timeout(
            d.saturating_duration_since(Instant::now()),
            stream.read(buf),
        )
        .await
        .ok(),
    };
    match res {
        None => Read::Interrupted,
        Some((Ok(0), b)) => {
            shard.pool.put(b);
            Read::Eof
        }
        Some((Ok(_), b)) => Read::Data(b),
        Some((Err(e), b)) => {
            shard.pool.put(b);
            Read::Failed(e)
        }
    }
}

/// Writes `out` (if not empty) and returns the buffer to the pool.
async fn flush(
    shard: &Shard,
    stream: &mut TcpStream,
    slot: usize,
    out: Vec<u8>,
) -> Result<(), End> {
    if out.is_empty() {
        shard.wpool.put(out);
        return Ok(());
    }
    match shard.stop.until(slot, stream.write_all(out)).await {
        None => Err(End::Stopped),
        Some((res, out)) => {
            shard.wpool.put(out);
            res.map(|_| ()).map_err(|e| End::Lost(io_cause(&e)))
        }
    }
}

/// Appends `n` new messages to `out`, sent now and meant to be sent now (closed loop).
#[inline]
fn queue_messages(shard: &Shard, c: &mut Conn, out: &mut Vec<u8>, n: u32) {
    if n == 0 || c.stopping {
        return;
    }
    let n = (n as u64).min(c.budget) as u32;
    c.budget -= n as u64;
    for _ in 0..n {
        let now = shard.now_ns();
        queue_message(shard, c, out, now, now);
    }
}

/// Appends one message with its timing header to `out` and counts it.
#[inline]
fn queue_message(shard: &Shard, c: &mut Conn, out: &mut Vec<u8>, sent: u64, intended: u64) {
    let spec = &shard.run.payload;
    let kind = match (shard.run.workload.message, spec.kind) {
        (Message::Ping, _) => Kind::Ping,
        (Message::Data, PayloadKind::Binary) => Kind::Binary,
        (Message::Data, PayloadKind::Text) => Kind::Text,
    };
    let stamp = Stamp {
        conn: c.id,
        seq: c.next_seq,
        ts: sent,
        intended,
    };
    c.next_seq += 1;
    let before = out.len();
    let key = shard.rng.borrow_mut().next_key();
    frame::write_client_frame(out, kind, key, spec.size, |dst| spec.write(stamp, dst));
    let mut st = shard.stats.borrow_mut();
    st.counters.sent += 1;
    st.counters.bytes_sent += (out.len() - before) as u64;
    shard.outstanding.set(shard.outstanding.get() + 1);
}

/// A reply (an echo, or a PONG for ping workloads) arrived: match it to its send.
/// Returns how many new messages the workload sends in answer.
#[inline]
fn on_reply(shard: &Shard, c: &mut Conn, payload: &[u8], now_ns: u64) -> u32 {
    let mut st = shard.stats.borrow_mut();
    match shard.run.payload.read(payload) {
        Some(s) if s.conn == c.id && s.seq == c.acked && c.acked < c.next_seq => {
            // From the intended send: equal to the actual send in a closed loop,
            // the coordinated-omission-corrected latency in an open loop.
            st.rtt.saturating_record(now_ns.saturating_sub(s.intended));
            if shard.run.workload.open_loop() {
                st.rtt_uncorrected
                    .saturating_record(now_ns.saturating_sub(s.ts));
            }
            st.counters.received += 1;
            c.acked += 1;
            shard.outstanding.set(shard.outstanding.get() - 1);
            shard.run.workload.sends_per_reply()
        }
        _ => {
            st.counters.unexpected += 1;
            0
        }
    }
}

/// No copy from this publisher yet.
const UNSEEN: u64 = u64::MAX;

/// A broadcast copy: time its delivery, check it against the publisher's sequence,
/// and (for the publisher's own copy) settle the ledger like an echo.
fn on_delivery(
    shard: &Shard,
    c: &mut Conn,
    payload: &[u8],
    now_ns: u64,
    b: crate::workload::Broadcast,
) {
    let stamp = shard.run.payload.read(payload);
    let Some((s, p)) = stamp.and_then(|s| b.publisher(s.conn as u64).map(|p| (s, p as usize)))
    else {
        shard.stats.borrow_mut().counters.unexpected += 1;
        return;
    };
    if c.seen.is_empty() {
        c.seen = vec![UNSEEN; b.publishers as usize];
    }
    {
        let mut st = shard.stats.borrow_mut();
        st.delivery
            .saturating_record(now_ns.saturating_sub(s.intended));
        st.counters.delivered += 1;
        // A connection that joined late starts counting from the first copy it
        // sees of each publisher: earlier messages were never its to miss.
        let expected = if c.seen[p] == UNSEEN {
            s.seq
        } else {
            c.seen[p]
        };
        if s.seq >= expected {
            st.counters.missing += s.seq - expected;
            c.seen[p] = s.seq + 1;
        } else {
            st.counters.duplicates += 1;
        }
    }
    if s.conn == c.id {
        on_reply(shard, c, payload, now_ns);
    }
}

/// A complete data message: the reply itself, or (for ping workloads) unexpected.
#[inline]
fn on_data(shard: &Shard, c: &mut Conn, payload: &[u8], now_ns: u64) -> u32 {
    if let Some(b) = shard.run.workload.broadcast {
        on_delivery(shard, c, payload, now_ns, b);
        return 0;
    }
    match shard.run.workload.message {
        Message::Data => on_reply(shard, c, payload, now_ns),
        Message::Ping => {
            shard.stats.borrow_mut().counters.unexpected += 1;
            0
        }
    }
}

/// Handles every complete frame at the start of `data`; queues replies (pongs, new
/// messages) into `out`. Returns the bytes consumed.
fn on_bytes(shard: &Shard, c: &mut Conn, data: &[u8], out: &mut Vec<u8>) -> Result<usize, End> {
    let now = shard.now_ns();
    let mut pos = 0;
    let mut to_send = 0u32;
    let mut result = Ok(());
    while pos < data.len() {
        let f = match frame::parse(&data[pos..], From::Server, MAX_FRAME) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                result = Err(End::Protocol(e.name()));
                break;
            }
        };
        let payload = &data[pos + f.header_len..pos + f.total_len()];
        pos += f.total_len();
        match f.kind {
            Kind::Text | Kind::Binary if c.frag.is_none() => {
                if f.fin {
                    to_send += on_data(shard, c, payload, now);
                } else {
                    c.frag = Some(payload.to_vec());
                }
            }
            Kind::Continuation if c.frag.is_some() => {
                let buf = c.frag.as_mut().expect("checked above");
                buf.extend_from_slice(payload);
                if f.fin {
                    let whole = c.frag.take().unwrap_or_default();
                    to_send += on_data(shard, c, &whole, now);
                }
            }
            Kind::Text | Kind::Binary | Kind::Continuation => {
                result = Err(End::Protocol("protocol_bad_fragmentation"));
                break;
            }
            Kind::Ping => {
                let key = shard.rng.borrow_mut().next_key();
                frame::write_client_frame_bytes(out, Kind::Pong, key, payload);
                shard.stats.borrow_mut().counters.pings_answered += 1;
            }
            Kind::Pong => {
                // Our timed pings come back as pongs; unsolicited pongs (RFC 6455
                // allows them as heartbeats) carry no stamp of ours and are ignored.
                if shard.run.workload.message == Message::Ping
                    && shard.run.payload.read(payload).is_some()
                {
                    to_send += on_reply(shard, c, payload, now);
                }
            }
            Kind::Close => {
                let code = frame::close_code(payload);
                c.got_close = Some(code);
                result = Err(End::ClosedByServer(code));
                break;
            }
        }
    }
    shard.stats.borrow_mut().counters.bytes_received += pos as u64;
    if shard.run.workload.think().is_some() {
        // Chat: the next message goes out after the think time (see `active`).
        c.owed += to_send;
    } else {
        queue_messages(shard, c, out, to_send);
    }
    result.map(|_| pos)
}

/// Feeds a read buffer through the frame parser, keeping any partial frame.
fn on_read(shard: &Shard, c: &mut Conn, buf: Vec<u8>, out: &mut Vec<u8>) -> Result<(), End> {
    let res = if c.pending.is_empty() {
        let r = on_bytes(shard, c, &buf, out);
        if let Ok(used) = r {
            if used < buf.len() {
                c.pending.extend_from_slice(&buf[used..]);
            }
        }
        r
    } else {
        let mut pending = std::mem::take(&mut c.pending);
        pending.extend_from_slice(&buf);
        let r = on_bytes(shard, c, &pending, out);
        if let Ok(used) = r {
            pending.drain(..used);
            if pending.is_empty() && pending.capacity() > 4096 {
                pending = Vec::new();
            }
        }
        c.pending = pending;
        r
    };
    shard.pool.put(buf);
    res.map(|_| ())
}

/// The workload phase: runs until the stop signal, a close from the server, or a
/// broken connection.
async fn active(shard: &Shard, c: &mut Conn, stream: &mut TcpStream) -> End {
    let mut out = shard.wpool.take();
    queue_messages(shard, c, &mut out, shard.run.workload.initial_sends());
    // Bytes that arrived right behind the 101 response.
    if !c.pending.is_empty() {
        let early = std::mem::take(&mut c.pending);
        if let Err(end) = on_read(shard, c, early, &mut out) {
            shard.wpool.put(out);
            return end;
        }
    }
    if let Err(end) = flush(shard, stream, c.slot, out).await {
        return end;
    }
    loop {
        let buf = match read_some(shard, stream, c.slot, c.outstanding() > 0, None).await {
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
        let flushed = flush(shard, stream, c.slot, out).await;
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
            // Chat: think, then send what the answers released.
            let think = shard.run.workload.think().unwrap_or_default();
            if shard
                .stop
                .until(c.slot, monoio::time::sleep(think))
                .await
                .is_none()
            {
                return End::Stopped;
            }
            let mut out = shard.wpool.take();
            let owed = std::mem::take(&mut c.owed);
            queue_messages(shard, c, &mut out, owed);
            if let Err(end) = flush(shard, stream, c.slot, out).await {
                return end;
            }
        }
    }
}

/// A send that goes out this much after its intended time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(10);
/// Most messages one catch-up write carries (the rest follow in the next write).
const MAX_BATCH: u64 = 1024;

/// The open-loop workload phase: a reader and a writer in the same task, over the two
/// halves of the stream. The writer sends on the schedule (`period` apart from the
/// moment the connection was established) whatever the server does; a writer that
/// fell behind sends every late message at once and counts it, none is skipped. The
/// reader matches replies and queues control replies (pongs) for the writer.
async fn active_open(
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
    if shard.run.workload.broadcast.is_some() {
        // Publish only once every receiver is connected (or the connect phase is
        // over), so every connection can get every message.
        let window = if shard.run.connect_rate > 0.0 {
            Duration::from_secs_f64(shard.run.connections as f64 / shard.run.connect_rate)
        } else {
            Duration::ZERO
        } + shard.run.connect_timeout;
        let slot = conn.borrow().slot;
        while shard
            .run
            .established
            .load(std::sync::atomic::Ordering::Relaxed)
            < shard.run.connections
            && shard.run.origin.elapsed() < window
        {
            if shard
                .stop
                .until(slot, monoio::time::sleep(Duration::from_millis(5)))
                .await
                .is_none()
            {
                break;
            }
        }
    }
    // This connection's share of the run's rate curve, from the moment it started.
    let constant;
    let profile = match &shard.run.rate_profile {
        Some(p) => p,
        None => {
            constant = crate::pacer::Profile::constant(
                shard.run.connections as f64 / period.as_secs_f64(),
                shard.run.duration,
            );
            &constant
        }
    };
    let senders = shard
        .run
        .workload
        .broadcast
        .map_or(shard.run.connections, |b| b.publishers);
    let schedule = crate::pacer::Schedule::new(
        profile,
        1.0 / senders.max(1) as f64,
        shard.now_ns() as f64 / 1e9,
    );
    // When message k is due, ns since the run's origin (never, past the profile).
    let due_ns = |k: u64| schedule.due(k).map_or(u64::MAX, |t| (t * 1e9) as u64);

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
                // Cancelled when the run stops, without losing what already arrived.
                let buf = shard.pool.take();
                let res = rd
                    .cancelable_read(buf, shard.stop.cancel_handle(slot))
                    .await;
                let buf = match res {
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
            let mut next = 0u64; // index of the next scheduled message
            let cap = shard.run.workload.max_inflight().map(u64::from);
            let room = || cap.map_or(u64::MAX, |k| k.saturating_sub(conn.borrow().outstanding()));
            loop {
                let due = due_ns(next);
                let wait = Duration::from_nanos(due.saturating_sub(shard.now_ns()));
                let mut sleep = std::pin::pin!(monoio::time::sleep(wait));
                // Until: the run stops, a control reply is queued, or the next message
                // is due and the cap (if any) leaves room. A reply that frees room
                // wakes this task through the reader, which shares it.
                std::future::poll_fn(|cx| {
                    if shard.stop.is_set_for(slot) || !control.borrow().is_empty() {
                        return std::task::Poll::Ready(());
                    }
                    if room() == 0 {
                        return std::task::Poll::Pending;
                    }
                    sleep.as_mut().poll(cx)
                })
                .await;
                let mut out = shard.wpool.take();
                out.append(&mut control.borrow_mut());
                let now = shard.now_ns();
                let stopping = shard.stop.is_set_for(slot);
                if !stopping && now >= due {
                    let limit = MAX_BATCH.min(room());
                    let mut c = conn.borrow_mut();
                    let mut st_late = 0;
                    let mut sent = 0;
                    while sent < limit {
                        let intended = due_ns(next);
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
                        next += 1;
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

/// After the active phase: drain and close on stop, close a finished session, or
/// record why it ended; then settle the ledger for this connection. Returns true
/// when it closed cleanly.
async fn finish(shard: &Shard, c: &mut Conn, stream: &mut TcpStream, end: End) -> bool {
    c.stopping = true;
    let clean_close;
    match end {
        End::Done => clean_close = close_handshake(shard, c, stream).await,
        End::Stopped => {
            // Drain: wait for echoes still in flight, sending nothing new.
            let drain_until = shard.stopped_at.get().unwrap_or_else(Instant::now) + shard.run.drain;
            let mut broke = None;
            while c.outstanding() > 0 && Instant::now() < drain_until {
                match read_some(shard, stream, c.slot, true, Some(drain_until)).await {
                    Read::Data(b) => {
                        let mut out = shard.wpool.take();
                        let r = on_read(shard, c, b, &mut out);
                        let _ = write_best_effort(shard, stream, out, drain_until).await;
                        if let Err(e) = r {
                            broke = Some(e);
                            break;
                        }
                    }
                    Read::Interrupted => break,
                    Read::Eof => {
                        broke = Some(End::Lost("eof_without_close"));
                        break;
                    }
                    Read::Failed(e) => {
                        broke = Some(End::Lost(io_cause(&e)));
                        break;
                    }
                }
            }
            match broke {
                None => clean_close = close_handshake(shard, c, stream).await,
                Some(end) => {
                    settle_broken(shard, c, stream, end).await;
                    return false;
                }
            }
        }
        other => {
            settle_broken(shard, c, stream, other).await;
            return false;
        }
    }
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

/// A connection that ended before the run did (or broke while draining): its
/// messages in flight are failed; reply to a close or a protocol error politely.
async fn settle_broken(shard: &Shard, c: &mut Conn, stream: &mut TcpStream, end: End) {
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

/// Sends our close (1000) and waits briefly for the server's. Echoes that still
/// arrive are counted. Returns true when the server answered the close.
async fn close_handshake(shard: &Shard, c: &mut Conn, stream: &mut TcpStream) -> bool {
    let deadline = Instant::now() + CLOSE_WAIT;
    let mut out = shard.wpool.take();
    let key = shard.rng.borrow_mut().next_key();
    frame::write_client_frame_bytes(&mut out, Kind::Close, key, &1000u16.to_be_bytes());
    if !write_best_effort(shard, stream, out, deadline).await {
        return false;
    }
    loop {
        match read_some(shard, stream, c.slot, true, Some(deadline)).await {
            Read::Data(b) => {
                let mut out = shard.wpool.take();
                let r = on_read(shard, c, b, &mut out);
                shard.wpool.put(out);
                match r {
                    Ok(()) => continue,
                    Err(End::ClosedByServer(_)) => return true,
                    Err(_) => return false,
                }
            }
            _ => return false,
        }
    }
}

/// Writes with a deadline, ignoring the stop signal. Returns true on success.
async fn write_best_effort(
    shard: &Shard,
    stream: &mut TcpStream,
    out: Vec<u8>,
    deadline: Instant,
) -> bool {
    if out.is_empty() {
        shard.wpool.put(out);
        return true;
    }
    match monoio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        stream.write_all(out),
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
