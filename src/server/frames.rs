//! Client frames as both server modes take them: parsed and unmasked in place, a
//! malformed frame turned into a counted protocol error with a close queued, and a
//! client's close answered. Echo (conn.rs) and broadcast (broadcast.rs) differ only
//! in what they do with a data frame.
//!
//! In the server's order (see shard.rs) it sits below conn.rs: it must never import
//! mod.rs, conn.rs or broadcast.rs.

use super::shard::{ServerShard, MAX_FRAME};
use crate::ws::deflate::{Codec, InflateError, Params, Scratch, Side};
use crate::ws::frame::{self, FrameRef, From, Kind};
use crate::ws::mask::apply_mask;
use std::ops::Range;

/// The next client frame at `pos` of `data`, its payload unmasked in place, with
/// the payload's range: `Ok(None)` while incomplete, `Err(())` when malformed
/// (the caller ends the connection after `protocol_error`). With `deflate`
/// (negotiated), RSV1 marks a compressed message.
pub(super) fn next(
    data: &mut [u8],
    pos: usize,
    deflate: bool,
) -> Result<Option<(FrameRef, Range<usize>)>, ()> {
    let f = match frame::parse_with(&data[pos..], From::Client, MAX_FRAME, deflate) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(_) => return Err(()),
    };
    let payload = pos + f.header_len..pos + f.total_len();
    if let Some(key) = f.mask {
        apply_mask(&mut data[payload.clone()], key);
    }
    Ok(Some((f, payload)))
}

/// A protocol error: counted, and a close with `code` (1002, 1009) queued in `out`.
pub(super) fn protocol_error(shard: &ServerShard, out: &mut Vec<u8>, code: u16) {
    shard.errors.set(shard.errors.get() + 1);
    frame::write_server_frame(out, Kind::Close, true, &code.to_be_bytes());
}

/// Answers a client's close (its `payload`) with the same code, 1000 for none.
pub(super) fn answer_close(out: &mut Vec<u8>, payload: &[u8]) {
    let code = frame::close_code(payload);
    let reply = if code == 1005 { 1000 } else { code };
    frame::write_server_frame(out, Kind::Close, true, &reply.to_be_bytes());
}

/// A connection's permessage-deflate: its codec, and a compressed message still
/// arriving in fragments (its kind and bytes so far).
pub(super) struct ConnDeflate {
    pub codec: Codec,
    pub frag: Option<(Kind, Vec<u8>)>,
}

impl ConnDeflate {
    pub fn new(params: Params) -> ConnDeflate {
        ConnDeflate {
            codec: Codec::new(params, Side::Server),
            frag: None,
        }
    }
}

/// Echoes a whole compressed message (`data`, as it came): inflated (at most
/// `MAX_FRAME` bytes) and compressed again for the way back, in one frame with
/// RSV1. Err: the close code the client earned (1009 too large, 1007 not
/// deflate).
pub(super) fn echo_compressed(
    d: &Scratch,
    c: &mut ConnDeflate,
    kind: Kind,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), u16> {
    let plain = d
        .inflate(&mut c.codec, data, MAX_FRAME)
        .map_err(|e| match e {
            InflateError::TooLarge => 1009u16,
            InflateError::Corrupt => 1007,
        })?;
    d.compress(&mut c.codec, &plain, |packed| {
        frame::write_server_frame_compressed(out, kind, packed)
    });
    Ok(())
}
