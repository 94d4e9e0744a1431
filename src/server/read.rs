//! The server's read step, shared by echo connections (the whole stream) and
//! broadcast connections (their read half): wait for data, read it into a shard
//! buffer, join it to the partial frame left by the last read, apply the test
//! faults' hold-back, and hand the bytes to the caller's frame handler.
//!
//! **No buffer waits in a read.** A quiet connection waits for readiness first and
//! then takes what the socket holds with a non-blocking `recv(2)` into a borrowed
//! buffer, which it gives back before it next waits: so ten thousand connections
//! whose clients all close at once (or all send one message) use one shard buffer
//! between them, not one each. Only a busy connection (its last two messages came
//! less than `BUSY_WINDOW` apart) reads through the ring at once and holds a buffer
//! while that read waits, saving a ring operation per message while it is busy.
//!
//! **No timer in the future.** monoio's timers are large (a `Sleep` is 640 bytes
//! with 128-byte alignment) and would make every connection's task that big for its
//! whole life; the rare hold-back sleep is boxed, so a connection pays for it only
//! while it sleeps.
//!
//! In the server's order (see shard.rs) it sits just above shard.rs: it must never
//! import mod.rs, frames.rs, conn.rs or broadcast.rs.

use super::shard::ServerShard;
use crate::net::sock::io_cause;
use crate::net::stream::ReadSide;
use crate::ws::frame::{self, From, Kind};
use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::{Duration, Instant};

/// Whether a server connection reads at once or waits for readiness first: at once
/// only while it is busy (its last two messages came less than `BUSY_WINDOW` apart),
/// so a connection that talks now and then (a heartbeat) holds no buffer between
/// messages, and a busy one saves a ring operation per message.
pub(crate) struct ReadPace {
    last: Instant,
    busy: bool,
}

/// Messages closer together than this make a connection busy.
const BUSY_WINDOW: Duration = Duration::from_millis(10);

impl ReadPace {
    /// A new connection starts quiet: its first read waits for readiness.
    pub(crate) fn new() -> Self {
        ReadPace {
            last: Instant::now() - BUSY_WINDOW * 2,
            busy: false,
        }
    }

    /// True when the next read should wait for readiness first.
    pub(crate) fn wait_first(&self) -> bool {
        !self.busy || self.last.elapsed() > BUSY_WINDOW
    }

    /// Data arrived now; returns the time.
    pub(crate) fn saw_data(&mut self) -> Instant {
        let now = Instant::now();
        self.busy = now.duration_since(self.last) <= BUSY_WINDOW;
        self.last = now;
        now
    }
}

/// What `Reader::next_bytes` got.
pub(crate) enum Got {
    /// Bytes to handle: the partial frame kept from before, then what was read.
    /// Give the buffer back with `Reader::done`.
    Bytes(Vec<u8>),
    /// The shard is stopping.
    Stop,
    /// EOF or an error: the connection is over.
    Gone,
}

/// The read state of one connection.
pub(crate) struct Reader {
    pace: ReadPace,
    /// The start of a frame not complete yet (normally empty: no allocation).
    pending: Vec<u8>,
    /// `pending` holds bytes that came with the upgrade request, not handled yet.
    early: bool,
}

impl Reader {
    /// A reader whose first bytes are `early` (what followed the upgrade request).
    pub(crate) fn new(early: Vec<u8>) -> Reader {
        Reader {
            // Start as if quiet: the first read waits for readiness, so a connection
            // that never talks never holds a buffer.
            pace: ReadPace::new(),
            early: !early.is_empty(),
            pending: early,
        }
    }

    /// The next bytes to handle, after the configured hold-back (test faults).
    /// One `async move` block, not nested `async fn`s: each `async fn` stores its
    /// arguments twice in the future, which every held connection carries.
    #[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see above
    pub(crate) fn next_bytes<'a, R: ReadSide>(
        &'a mut self,
        shard: &'a ServerShard,
        rd: &'a mut R,
        slot: usize,
    ) -> impl Future<Output = Got> + 'a {
        async move {
            let buf = if std::mem::take(&mut self.early) {
                std::mem::take(&mut self.pending)
            } else {
                let buf = if self.pace.wait_first() {
                    loop {
                        // The operation stays in this frame and `until` gets a reference
                        // to it: 8 bytes in its state, where the operation would be
                        // stored twice.
                        {
                            let mut ready = pin!(rd.readable());
                            match shard.stop.until(slot, ready.as_mut()).await {
                                None => return Got::Stop,
                                Some(Err(_)) => return Got::Gone,
                                Some(Ok(())) => {}
                            }
                        }
                        // Something is there: take it now, and give the buffer back
                        // before the next wait.
                        let mut buf = shard.pool.take();
                        match rd.recv_now(&mut buf) {
                            Ok(Some(n)) if n > 0 => break buf,
                            // Readiness without data (a spurious wake): wait again.
                            Ok(None) => shard.pool.put(buf),
                            other => {
                                shard.pool.put(buf);
                                return ended(shard, other.err());
                            }
                        }
                    }
                } else {
                    // Busy: read through the ring at once, holding the buffer meanwhile.
                    let mut reading = pin!(rd.ring_read(shard.pool.take()));
                    let (res, buf) = match shard.stop.until(slot, reading.as_mut()).await {
                        None => return Got::Stop,
                        Some(r) => r,
                    };
                    match res {
                        Ok(n) if n > 0 => buf,
                        other => {
                            shard.pool.put(buf);
                            return ended(shard, other.err());
                        }
                    }
                };
                if self.pending.is_empty() {
                    buf
                } else {
                    let mut p = std::mem::take(&mut self.pending);
                    p.extend_from_slice(&buf);
                    shard.pool.put(buf);
                    p
                }
            };
            let now = self.pace.saw_data();
            // Test faults and knobs: a fixed delay, a stall in progress, or this
            // shard's service-time queue. Boxed: a timer inline would make every
            // connection's future as big as the timer.
            let messages = if shard.faults.service_time.is_some() {
                complete_messages(&buf, shard.max_message)
            } else {
                0
            };
            if let Some(at) = shard.answer_at(now, messages) {
                Box::pin(monoio::time::sleep_until(at.into())).await;
            }
            Got::Bytes(buf)
        }
    }

    /// Keeps what `buf` holds after `used` (a partial frame) for the next read and
    /// gives `buf` back to the shard.
    pub(crate) fn done(&mut self, shard: &ServerShard, buf: Vec<u8>, used: usize) {
        if used < buf.len() {
            self.pending.extend_from_slice(&buf[used..]);
        }
        shard.pool.put(buf);
    }
}

/// Complete data messages in `buf` (frames with FIN set: a fragmented message
/// counts once, with its last fragment), for --service-time. Stops at the first
/// incomplete or bad frame; the frame handler deals with those.
fn complete_messages(buf: &[u8], max: usize) -> u32 {
    let (mut pos, mut n) = (0, 0);
    while let Ok(Some(f)) = frame::parse(&buf[pos..], From::Client, max) {
        if f.fin && matches!(f.kind, Kind::Text | Kind::Binary | Kind::Continuation) {
            n += 1;
        }
        pos += f.total_len();
    }
    n
}

/// A read found EOF (`None`) or an error: counts unexpected errors.
fn ended(shard: &ServerShard, err: Option<io::Error>) -> Got {
    if let Some(e) = err {
        if io_cause(&e) != "reset" {
            shard.errors.set(shard.errors.get() + 1);
        }
    }
    Got::Gone
}
