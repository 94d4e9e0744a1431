//! Client frames as both server modes take them: parsed and unmasked in place,
//! checked for everything RFC 6455 says a server must fail a connection on (a
//! malformed, unmasked or oversized frame, fragments out of order, text that is
//! not UTF-8, a bad close), a violation turned into a counted error and a close
//! that names it, and a client's close answered. Echo (conn.rs) and broadcast
//! (broadcast.rs) differ only in what they do with a data frame.
//!
//! In the server's order (see shard.rs) it sits below conn.rs: it must never import
//! mod.rs, conn.rs or broadcast.rs.

use super::shard::ServerShard;
use crate::ws::deflate::{Codec, InflateError, Params, Scratch, Side};
use crate::ws::frame::{self, FrameRef, From, Kind, ProtocolError};
use crate::ws::mask::apply_mask;
use std::ops::Range;

/// What a client did that fails its connection: the close code it gets and the
/// reason sent with it (the name the client side counts the same violation by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

impl Violation {
    /// A continuation with no message to continue, or a new message before the
    /// fragmented one ended (RFC 6455 5.4).
    pub const FRAGMENTS: Violation = Violation {
        code: 1002,
        reason: "protocol_bad_fragmentation",
    };
    /// Text that is not UTF-8 (RFC 6455 8.1).
    pub const UTF8: Violation = Violation {
        code: 1007,
        reason: "protocol_invalid_utf8",
    };
    /// A message larger than `--max-message` once reassembled or inflated.
    pub const TOO_LARGE: Violation = Violation {
        code: 1009,
        reason: "protocol_message_too_large",
    };
    /// Compressed data that does not inflate.
    pub const DEFLATE: Violation = Violation {
        code: 1007,
        reason: "protocol_bad_deflate",
    };
}

impl std::convert::From<ProtocolError> for Violation {
    fn from(e: ProtocolError) -> Violation {
        Violation {
            code: if e == ProtocolError::TooLarge {
                1009
            } else {
                1002
            },
            reason: e.name(),
        }
    }
}

/// The next client frame at `pos` of `data`, its payload unmasked in place, with
/// the payload's range: `Ok(None)` while incomplete, `Err` when malformed or
/// larger than `max` (the caller ends the connection after `protocol_error`).
/// With `deflate` (negotiated), RSV1 marks a compressed message.
pub(super) fn next(
    data: &mut [u8],
    pos: usize,
    max: usize,
    deflate: bool,
) -> Result<Option<(FrameRef, Range<usize>)>, Violation> {
    let f = match frame::parse_with(&data[pos..], From::Client, max, deflate) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let payload = pos + f.header_len..pos + f.total_len();
    if let Some(key) = f.mask {
        apply_mask(&mut data[payload.clone()], key);
    }
    Ok(Some((f, payload)))
}

/// A protocol violation: counted, and a close with its code (1002, 1007, 1009)
/// and its name as the reason queued in `out`.
#[cold]
pub(super) fn protocol_error(shard: &ServerShard, out: &mut Vec<u8>, v: Violation) {
    shard.errors.set(shard.errors.get() + 1);
    let mut payload = v.code.to_be_bytes().to_vec();
    payload.extend_from_slice(v.reason.as_bytes());
    frame::write_server_frame(out, Kind::Close, true, &payload);
}

/// Answers a client's close (its `payload`) with the same code, 1000 for none;
/// Err when the close itself is bad (a code no endpoint may send, one byte, a
/// reason that is not UTF-8), for `protocol_error` to answer instead.
pub(super) fn answer_close(out: &mut Vec<u8>, payload: &[u8]) -> Result<(), Violation> {
    if let Some(reason) = frame::close_problem(payload) {
        let code = if reason == Violation::UTF8.reason {
            1007
        } else {
            1002
        };
        return Err(Violation { code, reason });
    }
    let code = frame::close_code(payload);
    let reply = if code == 1005 { 1000 } else { code };
    frame::write_server_frame(out, Kind::Close, true, &reply.to_be_bytes());
    Ok(())
}

/// The order of a connection's data frames and the UTF-8 of its text, checked
/// frame by frame: echo mode sends fragments back as they come and keeps none, so
/// a character cut between two fragments is carried over (at most three bytes).
/// Six bytes per connection.
#[derive(Debug, Default)]
pub(super) struct Order {
    /// The kind of the fragmented message under way.
    open: Option<Kind>,
    /// The message under way is compressed: its text is checked once inflated.
    packed: bool,
    /// The start of a character the last text fragment ended in.
    carry: [u8; 3],
    carried: u8,
}

impl Order {
    /// Checks data frame `f` (its unmasked `payload`): it starts a message when
    /// none is under way, or continues the one that is; text must be UTF-8 so far,
    /// and whole when the message ends. Returns the message's kind.
    #[inline]
    pub fn data(&mut self, f: &FrameRef, payload: &[u8]) -> Result<Kind, Violation> {
        let kind = match (f.kind, self.open) {
            (Kind::Continuation, Some(kind)) => kind,
            (Kind::Text | Kind::Binary, None) => {
                self.packed = f.rsv1;
                f.kind
            }
            _ => return Err(Violation::FRAGMENTS),
        };
        if kind == Kind::Text && !self.packed {
            if f.fin && self.carried == 0 {
                // The common case: a whole message in one frame.
                std::str::from_utf8(payload).map_err(|_| Violation::UTF8)?;
            } else {
                self.text(payload, f.fin)?;
            }
        }
        self.open = (!f.fin).then_some(kind);
        Ok(kind)
    }

    /// A text fragment: the character carried over completed first, then the
    /// rest, whose cut-off last character (if any) is carried to the next one.
    #[cold]
    fn text(&mut self, mut payload: &[u8], fin: bool) -> Result<(), Violation> {
        if self.carried > 0 {
            let have = usize::from(self.carried);
            let need = utf8_width(self.carry[0]) - have;
            let take = need.min(payload.len());
            let mut ch = [0u8; 4];
            ch[..have].copy_from_slice(&self.carry[..have]);
            ch[have..have + take].copy_from_slice(&payload[..take]);
            match std::str::from_utf8(&ch[..have + take]) {
                Ok(_) => self.carried = 0,
                // Still short of the character's end, but right so far.
                Err(e) if e.error_len().is_none() && take < need => {
                    self.carry[have..have + take].copy_from_slice(&payload[..take]);
                    self.carried += take as u8;
                }
                Err(_) => return Err(Violation::UTF8),
            }
            payload = &payload[take..];
        }
        if let Err(e) = std::str::from_utf8(payload) {
            // Only a character cut off by the fragment's end may be incomplete.
            if e.error_len().is_some() {
                return Err(Violation::UTF8);
            }
            let tail = &payload[e.valid_up_to()..];
            self.carry[..tail.len()].copy_from_slice(tail);
            self.carried = tail.len() as u8;
        }
        if fin && self.carried > 0 {
            return Err(Violation::UTF8);
        }
        Ok(())
    }
}

/// The length of the UTF-8 sequence a leading byte starts (1 for a byte that
/// cannot lead one: `from_utf8` then refuses it).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
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
/// `max` bytes; text must be UTF-8) and compressed again for the way back, in
/// one frame with RSV1. Err: what the client did wrong.
pub(super) fn echo_compressed(
    d: &Scratch,
    c: &mut ConnDeflate,
    max: usize,
    kind: Kind,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Violation> {
    let plain = d.inflate(&mut c.codec, data, max).map_err(|e| match e {
        InflateError::TooLarge => Violation::TOO_LARGE,
        InflateError::Corrupt => Violation::DEFLATE,
    })?;
    if kind == Kind::Text && std::str::from_utf8(&plain).is_err() {
        return Err(Violation::UTF8);
    }
    d.compress(&mut c.codec, &plain, |packed| {
        frame::write_server_frame_compressed(out, kind, packed)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_frame(kind: Kind, fin: bool) -> FrameRef {
        FrameRef {
            kind,
            fin,
            rsv1: false,
            mask: None,
            header_len: 2,
            payload_len: 0,
        }
    }

    /// Feeds `msg` as a text message cut at `cuts`: Ok when every frame passed.
    fn fragments(msg: &[u8], cuts: &[usize]) -> Result<(), Violation> {
        let mut order = Order::default();
        let mut from = 0;
        let mut ends: Vec<usize> = cuts.iter().copied().filter(|&c| c < msg.len()).collect();
        ends.sort_unstable();
        ends.push(msg.len());
        for (i, &end) in ends.iter().enumerate() {
            let kind = if i == 0 {
                Kind::Text
            } else {
                Kind::Continuation
            };
            let end = end.max(from);
            order.data(&data_frame(kind, i + 1 == ends.len()), &msg[from..end])?;
            from = end;
        }
        Ok(())
    }

    #[test]
    fn text_cut_anywhere_is_judged_as_the_whole_message() {
        let mut samples: Vec<Vec<u8>> = vec![
            "plain".into(),
            "é".into(),
            "€uro".into(),
            "a😀b😀".into(),
            vec![0xff],
            vec![b'a', 0xe2, 0x82],       // cut off at the end
            vec![0xe2, 0x28, 0xa1],       // a bad continuation byte
            vec![0xf0, 0x9f, 0x98],       // three of four
            vec![0xed, 0xa0, 0x80],       // a surrogate
            vec![0xc0, 0xaf],             // overlong
            vec![0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
        ];
        // Pseudo-random bytes, mostly from the multi-byte ranges.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            let len = (x % 9) as usize;
            let mut v = Vec::new();
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(match x % 4 {
                    0 => b'a',
                    1 => 0x80 | (x >> 8) as u8 & 0x3f,
                    _ => (x >> 16) as u8,
                });
            }
            samples.push(v);
        }
        for msg in &samples {
            let whole = std::str::from_utf8(msg).is_ok();
            for a in 0..=msg.len() {
                for b in a..=msg.len() {
                    let got = fragments(msg, &[a, b]);
                    assert_eq!(got.is_ok(), whole, "{msg:x?} cut at {a}, {b}: {got:?}");
                    if let Err(v) = got {
                        assert_eq!(v, Violation::UTF8);
                    }
                }
            }
        }
    }

    #[test]
    fn fragments_out_of_order_are_refused() {
        let mut order = Order::default();
        let cont = data_frame(Kind::Continuation, true);
        assert_eq!(order.data(&cont, b""), Err(Violation::FRAGMENTS));
        let mut order = Order::default();
        assert_eq!(
            order.data(&data_frame(Kind::Binary, false), b"a"),
            Ok(Kind::Binary)
        );
        let new = data_frame(Kind::Text, true);
        assert_eq!(order.data(&new, b"b"), Err(Violation::FRAGMENTS));
        let mut order = Order::default();
        order
            .data(&data_frame(Kind::Binary, false), &[0xff])
            .unwrap();
        // Binary is not UTF-8 checked; its continuation takes its kind.
        assert_eq!(order.data(&cont, &[0xfe]), Ok(Kind::Binary));
        assert_eq!(order.data(&new, b"ok"), Ok(Kind::Text));
    }

    #[test]
    fn a_bad_close_is_a_violation_and_a_good_one_is_answered() {
        let mut out = Vec::new();
        assert_eq!(answer_close(&mut out, &[0x03]).unwrap_err().code, 1002);
        assert_eq!(
            answer_close(&mut out, &999u16.to_be_bytes())
                .unwrap_err()
                .code,
            1002
        );
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.push(0xff);
        assert_eq!(
            answer_close(&mut out, &bad_reason).unwrap_err(),
            Violation::UTF8
        );
        assert!(out.is_empty());
        answer_close(&mut out, &4000u16.to_be_bytes()).unwrap();
        assert_eq!(out, [0x88, 2, 0x0f, 0xa0]);
    }
}
