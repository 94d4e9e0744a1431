//! One server-side connection: upgrade, then echo every data frame back unmasked
//! (same opcode, same FIN bit, so fragmented messages are echoed as they came),
//! answer pings, and answer a close with a close.
//!
//! Like the load side, it borrows the shard's buffers (see `read`): a connection
//! that has been quiet for a while waits for readiness and takes what came at once,
//! so idle connections cost no buffer; a busy one reads directly to save a ring
//! operation per message. No timer lives in the connection's future: the handshake
//! timeout and the goodbye wait are boxed, so a held idle connection costs its task
//! (a few hundred bytes) and its socket.
//!
//! In broadcast mode the shard spawns `broadcast::connection` instead (decided per
//! accepted connection, so the echo task below is the same as without broadcast).
//!
//! In the server's order (see shard.rs) it sits below broadcast.rs, which reuses its
//! `upgrade`: it must never import mod.rs or broadcast.rs.

use super::frames;
use super::read::{Got, Reader};
use super::shard::ServerShard;
use crate::net::stream::Stream;
use crate::ws::deflate::Params;
use crate::ws::frame::{self, Kind};
use crate::ws::handshake::{self, Request};
use monoio::io::AsyncWriteRentExt;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Time allowed for a client to send its upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One echo connection, from accept to close. An `async move` block rather than an
/// `async fn`, whose arguments (the stream is 80 bytes) would be stored twice in the
/// task for the connection's whole life.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see above
pub(crate) fn connection(shard: Rc<ServerShard>, mut stream: Stream) -> impl Future<Output = ()> {
    async move {
        let slot = shard.stop.slot();
        if secure(&shard, &mut stream).await {
            if let Some((early, deflate)) = upgrade(&shard, &mut stream, || {}).await {
                shard.open.set(shard.open.get() + 1);
                shard.connections.set(shard.connections.get() + 1);
                let deflate = deflate.map(|p| Box::new(frames::ConnDeflate::new(p)));
                echo_loop(&shard, &mut stream, slot, Reader::new(early), deflate).await;
                shard.open.set(shard.open.get() - 1);
                shard.leave();
            }
        }
        shard.stop.release(slot);
        shard.live.set(shard.live.get() - 1);
    }
}

/// Readies an accepted connection's stream: no delay, and TLS when the server
/// serves wss:// (the handshake within `HANDSHAKE_TIMEOUT`; a failed one is
/// counted as an error and ends the connection: false).
pub(super) async fn secure(shard: &ServerShard, stream: &mut Stream) -> bool {
    let _ = stream.tcp().set_nodelay(true);
    let Some(config) = &shard.tls else {
        return true;
    };
    // Boxed: the session's handshake state and the timer are needed only now.
    let made = Box::pin(monoio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let session = crate::net::tls::Session::server(config.clone()).ok()?;
        stream.start_tls(Box::new(session), &[]).await.ok()
    }))
    .await
    .ok()
    .flatten()
    .is_some();
    if !made {
        shard.errors.set(shard.errors.get() + 1);
    }
    made
}

/// Seals `out` (TLS) and writes it; the buffer comes back.
async fn send(stream: &mut Stream, mut out: Vec<u8>) -> (std::io::Result<()>, Vec<u8>) {
    if let Err(e) = stream.seal(&mut out) {
        return (Err(e), out);
    }
    let (res, out) = stream.tcp_mut().write_all(out).await;
    (res.map(|_| ()), out)
}

/// Reads the request head and answers it, within `HANDSHAKE_TIMEOUT`. Returns the
/// bytes that followed the head (normally none: an empty, unallocated vector) and
/// permessage-deflate's parameters when it was agreed.
/// `accepting` runs right before the 101 response is written.
pub(super) async fn upgrade(
    shard: &ServerShard,
    stream: &mut Stream,
    accepting: impl FnOnce(),
) -> Option<(Vec<u8>, Option<Params>)> {
    // Boxed: the timer is needed during the handshake only, and inline it would make
    // the connection's future (which lives as long as the connection) as big as it.
    Box::pin(monoio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(shard, stream, accepting),
    ))
    .await
    .ok()
    .flatten()
}

async fn handshake(
    shard: &ServerShard,
    stream: &mut Stream,
    accepting: impl FnOnce(),
) -> Option<(Vec<u8>, Option<Params>)> {
    // The request so far, when it took more than one read (rare).
    let mut head = Vec::new();
    loop {
        // Accepted connections wait for their request without holding a buffer, and
        // take what came at once, so none holds one while a read waits.
        stream.readable().await.ok()?;
        let mut buf = shard.pool.take();
        match stream.recv_now(&mut buf) {
            Ok(Some(n)) if n > 0 => {}
            Ok(None) => {
                shard.pool.put(buf);
                continue;
            }
            _ => {
                shard.pool.put(buf);
                return None;
            }
        }
        let joined = !head.is_empty();
        if joined {
            head.extend_from_slice(&buf);
        }
        let data = if joined { &head[..] } else { &buf[..] };
        match handshake::server_accept(data, shard.deflate.is_some()) {
            Request::Partial => {
                if !joined {
                    head.extend_from_slice(&buf);
                }
                shard.pool.put(buf);
            }
            Request::Upgrade {
                head_len,
                response,
                deflate,
            } => {
                // Only what followed the head is kept (no allocation when nothing).
                let early = data[head_len..].to_vec();
                shard.pool.put(buf);
                drop(head);
                // --max-connections: a place is taken before the 101 goes out, and
                // given back if the upgrade does not complete (the guard also runs
                // when the handshake's timeout drops this future).
                if !shard.admit() {
                    shard.rejected.set(shard.rejected.get() + 1);
                    let _ = send(stream, handshake::BUSY.to_vec()).await;
                    return None;
                }
                let place = Place(shard);
                accepting();
                let (res, _) = send(stream, response).await;
                res.ok()?;
                // Upgraded: the connection gives the place back when it ends.
                std::mem::forget(place);
                return Some((early, deflate));
            }
            Request::Reject(response) => {
                shard.pool.put(buf);
                shard.rejected.set(shard.rejected.get() + 1);
                let _ = send(stream, response).await;
                return None;
            }
        }
    }
}

/// A place taken by `ServerShard::admit` during a handshake, given back if the
/// handshake does not complete.
struct Place<'a>(&'a ServerShard);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

enum Next {
    Continue,
    /// Close after flushing what was queued.
    Close,
}

/// Echoes every complete frame in `data` into `out`; unmasks in place. `order`
/// checks that data frames come in order and text is UTF-8 (a violation is
/// answered with a close naming it). Compressed messages (permessage-deflate)
/// are inflated and compressed again.
fn on_bytes(
    shard: &ServerShard,
    data: &mut [u8],
    out: &mut Vec<u8>,
    order: &mut frames::Order,
    deflate: &mut Option<Box<frames::ConnDeflate>>,
) -> (usize, Next) {
    let mut pos = 0;
    while pos < data.len() {
        let violation = match frames::next(data, pos, shard.max_message, deflate.is_some()) {
            Ok(None) => break,
            Err(v) => v,
            Ok(Some((f, range))) => {
                let payload = &data[range];
                pos += f.total_len();
                let done = match f.kind {
                    Kind::Text | Kind::Binary | Kind::Continuation => {
                        let compressed_msg =
                            deflate.as_ref().is_some_and(|d| f.rsv1 || d.frag.is_some());
                        match order.data(&f, payload) {
                            Err(v) => Err(v),
                            Ok(kind) if compressed_msg => {
                                let d = deflate.as_deref_mut().expect("checked above");
                                compressed(shard, d, kind, f.fin, payload, out)
                            }
                            Ok(_) => {
                                frame::write_server_frame(out, f.kind, f.fin, payload);
                                if f.fin {
                                    shard.messages.set(shard.messages.get() + 1);
                                }
                                Ok(())
                            }
                        }
                    }
                    Kind::Ping => {
                        frame::write_server_frame(out, Kind::Pong, true, payload);
                        Ok(())
                    }
                    Kind::Pong => Ok(()),
                    Kind::Close => match frames::answer_close(out, payload) {
                        Ok(()) => return (pos, Next::Close),
                        Err(v) => Err(v),
                    },
                };
                match done {
                    Ok(()) => continue,
                    Err(v) => v,
                }
            }
        };
        frames::protocol_error(shard, out, violation);
        return (pos, Next::Close);
    }
    (pos, Next::Continue)
}

/// A frame of a compressed message of `kind` (its order already checked): kept
/// until the message is whole, then echoed compressed.
#[cold]
fn compressed(
    shard: &ServerShard,
    d: &mut frames::ConnDeflate,
    kind: Kind,
    fin: bool,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), frames::Violation> {
    let Some(sd) = &shard.deflate else {
        return Err(frames::Violation::DEFLATE);
    };
    let max = shard.max_message;
    match d.frag.take() {
        None if fin => frames::echo_compressed(sd, d, max, kind, payload, out)?,
        None => d.frag = Some((kind, payload.to_vec())),
        Some((kind, mut so_far)) => {
            // What is held to inflate later is bounded by the same limit.
            if so_far.len() + payload.len() > max {
                return Err(frames::Violation::TOO_LARGE);
            }
            so_far.extend_from_slice(payload);
            if !fin {
                d.frag = Some((kind, so_far));
                return Ok(());
            }
            frames::echo_compressed(sd, d, max, kind, &so_far, out)?;
        }
    }
    if fin {
        shard.messages.set(shard.messages.get() + 1);
    }
    Ok(())
}

/// Echoes until the client closes or goes, or the shard stops. Returns a future
/// rather than being an `async fn`, which would store its arguments twice.
#[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see above
fn echo_loop<'a>(
    shard: &'a ServerShard,
    stream: &'a mut Stream,
    slot: usize,
    mut reader: Reader,
    mut deflate: Option<Box<frames::ConnDeflate>>,
) -> impl Future<Output = ()> + 'a {
    async move {
        let mut order = frames::Order::default();
        loop {
            let mut buf = match reader.next_bytes(shard, stream, slot).await {
                Got::Bytes(buf) => buf,
                Got::Stop => return going_away(shard, stream).await,
                Got::Gone => return,
            };
            // With metrics: from these bytes read to their echoes written.
            let timed = shard
                .timers
                .as_ref()
                .map(|_| (Instant::now(), shard.messages.get()));
            let mut out = shard.wpool.take();
            let (used, next) = on_bytes(shard, &mut buf, &mut out, &mut order, &mut deflate);
            reader.done(shard, buf, used);
            if !out.is_empty() {
                if stream.seal(&mut out).is_err() {
                    shard.wpool.put(out);
                    return;
                }
                let (res, out) = stream.tcp_mut().write_all(out).await;
                shard.wpool.put(out);
                if res.is_err() {
                    return;
                }
            } else {
                shard.wpool.put(out);
            }
            if let (Some(t), Some((since, before))) = (&shard.timers, timed) {
                t.handled(since, shard.messages.get() - before);
            }
            if let Next::Close = next {
                return;
            }
        }
    }
}

/// The server is stopping: tell the client (1001) and give it a moment to answer.
async fn going_away(shard: &ServerShard, stream: &mut Stream) {
    let mut out = shard.wpool.take();
    frame::write_server_frame(&mut out, Kind::Close, true, &1001u16.to_be_bytes());
    // Boxed, as the handshake's timer: only a stopping connection pays for it.
    let _ = Box::pin(monoio::time::timeout(Duration::from_millis(500), async {
        let (res, out) = send(stream, out).await;
        shard.wpool.put(out);
        if res.is_ok() {
            // The client's close (or its EOF): no need to read it, only to see it.
            let _ = stream.readable().await;
        }
    }))
    .await;
}
