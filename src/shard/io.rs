//! A load connection's reads and writes: a read that ends early when the run
//! stops (holding no buffer while it waits), the same with a deadline (for a
//! conversation's timeouts, think times and heartbeats), and a flush of what a
//! connection queued. Shared by the connection loop (`conn`) and conversations
//! (`converse`); imports neither, nor the open loop (which splits the stream and
//! writes on its own).

use super::exchange::End;
use super::state::Shard;
use crate::net::sock::io_cause;
use crate::net::stop::STOPPED;
use crate::net::stream::Stream;
use monoio::buf::IoBuf;
use monoio::io::{AsyncWriteRent, CancelableAsyncReadRent};
use std::io;

/// What a read produced.
pub(super) enum Read {
    Data(Vec<u8>),
    Eof,
    Failed(io::Error),
    /// The slot reached the phase the read was waiting on.
    Interrupted,
}

/// Reads once, or ends early (`Interrupted`) when the slot reaches phase `until`:
/// `STOPPED` while the run goes on, `DRAINED` while draining. A connection that
/// expects nothing waits for readiness first, so it holds no buffer while idle; so
/// does every drain read (all connections drain at once at the end of a run).
pub(super) async fn read_some(
    shard: &Shard,
    stream: &mut Stream,
    slot: usize,
    expecting: bool,
    until: u8,
) -> Read {
    if stream.is_tls() && (!expecting || until != STOPPED) {
        return read_tls(shard, stream, slot, until).await;
    }
    if !expecting || until != STOPPED {
        match shard.stop.until_phase(slot, until, stream.readable()).await {
            None => return Read::Interrupted,
            Some(Err(e)) => return Read::Failed(e),
            Some(Ok(())) => {}
        }
    }
    let buf = shard.pool.take();
    let res = if until == STOPPED {
        if shard.stop.is_set_for(slot) {
            shard.pool.put(buf);
            return Read::Interrupted;
        }
        // Cancelled when the run stops; what the kernel already delivered still
        // comes back, so the stream never loses bytes.
        let cancel = shard.stop.cancel_handle(slot);
        let read = if stream.is_tls() {
            stream.tls_read(buf, cancel).await
        } else {
            stream.tcp_mut().cancelable_read(buf, cancel).await
        };
        match read {
            (Err(e), b) if e.raw_os_error() == Some(libc::ECANCELED) => {
                shard.pool.put(b);
                return Read::Interrupted;
            }
            r => r,
        }
    } else {
        // The socket is readable: this completes at once.
        stream.read(buf).await
    };
    match res {
        (Ok(0), b) => {
            shard.pool.put(b);
            Read::Eof
        }
        (Ok(_), b) => Read::Data(b),
        (Err(e), b) => {
            shard.pool.put(b);
            Read::Failed(e)
        }
    }
}

/// `read_some` over TLS: readiness, then what whole records brought (a partial
/// record waits for the rest). Boxed: only wss:// connections pay for its state.
fn read_tls<'a>(
    shard: &'a Shard,
    stream: &'a mut Stream,
    slot: usize,
    until: u8,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Read> + 'a>> {
    Box::pin(async move {
        loop {
            match shard.stop.until_phase(slot, until, stream.readable()).await {
                None => return Read::Interrupted,
                Some(Err(e)) => return Read::Failed(e),
                Some(Ok(())) => {}
            }
            let mut buf = shard.pool.take();
            match stream.recv_now(&mut buf) {
                Ok(None) => shard.pool.put(buf),
                Ok(Some(0)) => {
                    shard.pool.put(buf);
                    return Read::Eof;
                }
                Ok(Some(_)) => return Read::Data(buf),
                Err(e) => {
                    shard.pool.put(buf);
                    return Read::Failed(e);
                }
            }
        }
    })
}

/// Writes `out` (if not empty) and returns the buffer to the pool; gives up (and
/// drops the write) when the slot reaches phase `until`. A loop of plain writes
/// rather than `write_all`, whose future is larger: this one is inline in every
/// connection's task.
pub(super) async fn flush(
    shard: &Shard,
    stream: &mut Stream,
    slot: usize,
    mut out: Vec<u8>,
    until: u8,
) -> Result<(), End> {
    if let Err(e) = stream.seal(&mut out) {
        shard.wpool.put(out);
        return Err(End::Lost(io_cause(&e)));
    }
    let stream = stream.tcp_mut();
    let len = out.len();
    let mut written = 0;
    while written < len {
        let part = out.slice(written..len);
        let Some((res, part)) = shard
            .stop
            .until_phase(slot, until, stream.write(part))
            .await
        else {
            return Err(End::Stopped);
        };
        out = part.into_inner();
        match res {
            Ok(n) if n > 0 => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A write of nothing (as `write_all` reports it: an I/O error).
            Ok(_) => {
                shard.wpool.put(out);
                return Err(End::Lost("io_error"));
            }
            Err(e) => {
                shard.wpool.put(out);
                return Err(End::Lost(io_cause(&e)));
            }
        }
    }
    shard.wpool.put(out);
    Ok(())
}
