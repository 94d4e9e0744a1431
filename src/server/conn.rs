//! One server-side connection: upgrade, then echo every data frame back unmasked
//! (same opcode, same FIN bit, so fragmented messages are echoed as they came),
//! answer pings, and answer a close with a close.
//!
//! Like the load side, it borrows the shard's buffers: a connection that has been
//! quiet for a while waits for readiness before taking one, so idle connections
//! cost no buffer; a busy one reads directly to save a ring operation per message.
//!
//! In broadcast mode the shard spawns `broadcast::connection` instead (decided per
//! accepted connection, so the echo task below is the same as without broadcast).

use super::ServerShard;
use crate::shard::conn::io_cause;
use crate::ws::frame::{self, From, Kind};
use crate::ws::handshake::{self, Request};
use crate::ws::mask::apply_mask;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

/// Largest frame (and, in broadcast mode, message) the server accepts.
pub(super) const MAX_FRAME: usize = 64 << 20;
/// Time allowed for a client to send its upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn connection(shard: Rc<ServerShard>, mut stream: TcpStream) {
    let slot = shard.stop.slot();
    let _ = stream.set_nodelay(true);
    if let Some(pending) = upgrade(&shard, &mut stream, || {}).await {
        shard.open.set(shard.open.get() + 1);
        shard.connections.set(shard.connections.get() + 1);
        echo_loop(&shard, &mut stream, slot, pending).await;
        shard.open.set(shard.open.get() - 1);
    }
    shard.stop.release(slot);
    shard.live.set(shard.live.get() - 1);
}

/// Reads the request head and answers it. Returns bytes that followed the head.
/// `accepting` runs right before the 101 response is written.
pub(super) async fn upgrade(
    shard: &ServerShard,
    stream: &mut TcpStream,
    accepting: impl FnOnce(),
) -> Option<Vec<u8>> {
    let mut accepting = Some(accepting);
    let work = async {
        let mut head = Vec::new();
        loop {
            // Accepted connections wait for their request without holding a buffer.
            stream.readable(false).await.ok()?;
            let buf = shard.pool.take();
            let (res, buf) = stream.read(buf).await;
            let n = res.unwrap_or(0);
            head.extend_from_slice(&buf[..n]);
            shard.pool.put(buf);
            if n == 0 {
                return None;
            }
            match handshake::server_accept(&head) {
                Request::Partial => continue,
                Request::Upgrade { head_len, response } => {
                    if let Some(f) = accepting.take() {
                        f();
                    }
                    let (res, _) = stream.write_all(response).await;
                    res.ok()?;
                    head.drain(..head_len);
                    return Some(head);
                }
                Request::Reject(response) => {
                    shard.rejected.set(shard.rejected.get() + 1);
                    let _ = stream.write_all(response).await;
                    return None;
                }
            }
        }
    };
    monoio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .ok()
        .flatten()
}

enum Next {
    Continue,
    /// Close after flushing what was queued.
    Close,
}

/// Echoes every complete frame in `data` into `out`; unmasks in place.
fn on_bytes(shard: &ServerShard, data: &mut [u8], out: &mut Vec<u8>) -> (usize, Next) {
    let mut pos = 0;
    while pos < data.len() {
        let f = match frame::parse(&data[pos..], From::Client, MAX_FRAME) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => {
                shard.errors.set(shard.errors.get() + 1);
                frame::write_server_frame(out, Kind::Close, true, &1002u16.to_be_bytes());
                return (pos, Next::Close);
            }
        };
        let payload = &mut data[pos + f.header_len..pos + f.total_len()];
        if let Some(key) = f.mask {
            apply_mask(payload, key);
        }
        pos += f.total_len();
        match f.kind {
            Kind::Text | Kind::Binary | Kind::Continuation => {
                frame::write_server_frame(out, f.kind, f.fin, payload);
                if f.fin {
                    shard.messages.set(shard.messages.get() + 1);
                }
            }
            Kind::Ping => frame::write_server_frame(out, Kind::Pong, true, payload),
            Kind::Pong => {}
            Kind::Close => {
                let code = frame::close_code(payload);
                let reply = if code == 1005 { 1000 } else { code };
                frame::write_server_frame(out, Kind::Close, true, &reply.to_be_bytes());
                return (pos, Next::Close);
            }
        }
    }
    (pos, Next::Continue)
}

async fn echo_loop(shard: &ServerShard, stream: &mut TcpStream, slot: usize, mut pending: Vec<u8>) {
    // Start as if quiet: the first read waits for readiness, so a connection that
    // never talks never holds a buffer.
    let mut pace = super::ReadPace::new();
    let mut first = !pending.is_empty();
    loop {
        let mut buf = if first {
            first = false;
            std::mem::take(&mut pending)
        } else {
            if pace.wait_first() {
                match shard.stop.until(slot, stream.readable(false)).await {
                    None => return going_away(shard, stream).await,
                    Some(Err(_)) => return,
                    Some(Ok(())) => {}
                }
            }
            let buf = shard.pool.take();
            let (res, buf) = match shard.stop.until(slot, stream.read(buf)).await {
                None => return going_away(shard, stream).await,
                Some(r) => r,
            };
            match res {
                Ok(0) => {
                    shard.pool.put(buf);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    if io_cause(&e) != "reset" {
                        shard.errors.set(shard.errors.get() + 1);
                    }
                    shard.pool.put(buf);
                    return;
                }
            }
            if pending.is_empty() {
                buf
            } else {
                let mut p = std::mem::take(&mut pending);
                p.extend_from_slice(&buf);
                shard.pool.put(buf);
                p
            }
        };
        let now = pace.saw_data();
        // Test faults: a fixed service time, or a stall in progress.
        if let Some(wait) = shard.hold_back(now) {
            monoio::time::sleep(wait).await;
        }
        let mut out = shard.wpool.take();
        let (used, next) = on_bytes(shard, &mut buf, &mut out);
        if used < buf.len() {
            pending.extend_from_slice(&buf[used..]);
        }
        shard.pool.put(buf);
        if !out.is_empty() {
            let (res, out) = stream.write_all(out).await;
            shard.wpool.put(out);
            if res.is_err() {
                return;
            }
        } else {
            shard.wpool.put(out);
        }
        if let Next::Close = next {
            return;
        }
    }
}

/// The server is stopping: tell the client (1001) and give it a moment to answer.
async fn going_away(shard: &ServerShard, stream: &mut TcpStream) {
    let mut out = shard.wpool.take();
    frame::write_server_frame(&mut out, Kind::Close, true, &1001u16.to_be_bytes());
    let _ = monoio::time::timeout(Duration::from_millis(500), async {
        let (res, out) = stream.write_all(out).await;
        shard.wpool.put(out);
        if res.is_ok() {
            // The client's close (or its EOF): no need to read it, only to see it.
            let _ = stream.readable(false).await;
        }
    })
    .await;
}
