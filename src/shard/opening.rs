//! The application protocol's open, between the WebSocket upgrade and the
//! workload (`--protocol socketio|graphql-ws`): graphql-ws's `connection_init`
//! until the `connection_ack`; Socket.IO's open packet answered with the
//! namespace connect until the server confirms it; timed into its own
//! histogram (`protocol_open`). Reads through the
//! connection's messages (`exchange`), which hand each packet to `protocol`;
//! bounded by the connect timeout (`protocol_open_timeout`). A refusal ends the
//! connection with the protocol's cause (`socketio_connect_error`, a close code).
//!
//! Imports the connection's messages, reads and writes, and the protocol;
//! never the connection loop that calls it.

use super::exchange::{on_read, Conn, End};
use super::io::{flush, read_some, Read};
use super::protocol::{queue_open, OPEN};
use super::state::Shard;
use crate::net::sock::io_cause;
use crate::net::stop::STOPPED;
use crate::net::stream::Stream;

/// Opens the protocol on `c`; Ok once it is open.
pub(super) async fn open_protocol(
    shard: &Shard,
    c: &mut Conn,
    stream: &mut Stream,
) -> Result<(), End> {
    let started = std::time::Instant::now();
    let mut out = shard.wpool.take();
    queue_open(shard, c.id, &mut out);
    // Bytes that arrived right behind the 101 response (Socket.IO's open).
    if !c.pending.is_empty() {
        let early = std::mem::take(&mut c.pending);
        if let Err(end) = on_read(shard, c, early, &mut out) {
            shard.wpool.put(out);
            return Err(end);
        }
    }
    flush(shard, stream, c.slot, out, STOPPED).await?;
    let slot = c.slot;
    let opened = monoio::time::timeout(shard.run.plan.connect_timeout, async {
        while c.proto != OPEN {
            let buf = match read_some(shard, stream, slot, true, STOPPED).await {
                Read::Data(b) => b,
                Read::Eof => return Err(End::Lost("eof_without_close")),
                Read::Failed(e) => return Err(End::Lost(io_cause(&e))),
                Read::Interrupted => return Err(End::Stopped),
            };
            let mut out = shard.wpool.take();
            let res = on_read(shard, c, buf, &mut out);
            flush(shard, stream, slot, out, STOPPED).await?;
            res?;
        }
        Ok(())
    })
    .await;
    let opened = opened.unwrap_or(Err(End::Lost("protocol_open_timeout")));
    if opened.is_ok() {
        shard
            .stats
            .borrow_mut()
            .proto_open
            .saturating_record(started.elapsed().as_nanos() as u64);
    }
    opened
}
