//! WebSocket frames: parse from a byte buffer, build into a byte buffer.
//!
//! The header codec is tungstenite's (`FrameHeader::parse` / `format`); what this
//! module adds is the protocol checks a peer must make (reserved bits, control frame
//! rules, masking direction) and builders that write header and payload straight
//! into a reusable output buffer, so sending a message allocates nothing.
//!
//! Imports nothing of wsherd's but the mask: shared by the load and the built-in
//! server, it knows neither.

use super::mask::apply_mask;
use std::io::Cursor;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// Which side sent the frames we parse (decides the masking rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// Frames from a server: must not be masked.
    Server,
    /// Frames from a client: must be masked.
    Client,
}

/// The kind of a frame, reduced to what the engine acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Binary,
    Continuation,
    Close,
    Ping,
    Pong,
}

/// A complete frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef {
    pub kind: Kind,
    pub fin: bool,
    /// RSV1: with permessage-deflate, the first frame of a compressed message.
    pub rsv1: bool,
    pub mask: Option<[u8; 4]>,
    /// Header length in bytes; the payload starts here.
    pub header_len: usize,
    pub payload_len: usize,
}

impl FrameRef {
    /// Header plus payload.
    pub fn total_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// A violation of RFC 6455 by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// Reserved bits set without a negotiated extension.
    ReservedBits,
    /// An opcode RFC 6455 reserves.
    ReservedOpcode,
    /// A control frame longer than 125 bytes or fragmented.
    BadControlFrame,
    /// A server frame that was masked, or a client frame that was not.
    BadMasking,
    /// A frame larger than we accept.
    TooLarge,
    /// The header could not be decoded.
    BadHeader,
}

impl ProtocolError {
    /// Stable snake_case name used as an error kind in the results.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolError::ReservedBits => "protocol_reserved_bits",
            ProtocolError::ReservedOpcode => "protocol_reserved_opcode",
            ProtocolError::BadControlFrame => "protocol_bad_control_frame",
            ProtocolError::BadMasking => "protocol_bad_masking",
            ProtocolError::TooLarge => "protocol_frame_too_large",
            ProtocolError::BadHeader => "protocol_bad_header",
        }
    }
}

/// Parses the frame at the start of `buf`. `Ok(None)`: not all of it is here yet
/// (the header, or the payload of up to `max_payload` bytes).
#[inline]
pub fn parse(
    buf: &[u8],
    from: From,
    max_payload: usize,
) -> Result<Option<FrameRef>, ProtocolError> {
    parse_with(buf, from, max_payload, false)
}

/// As `parse`, with RSV1 allowed on the first frame of a data message when
/// `deflate` (permessage-deflate was negotiated).
#[inline]
pub fn parse_with(
    buf: &[u8],
    from: From,
    max_payload: usize,
    deflate: bool,
) -> Result<Option<FrameRef>, ProtocolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let mut cur = Cursor::new(buf);
    let (hdr, len) = match FrameHeader::parse(&mut cur) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        // tungstenite refuses reserved opcodes while decoding: name them properly.
        Err(_) if matches!(buf[0] & 0x0f, 3..=7 | 0xb..=0xf) => {
            return Err(ProtocolError::ReservedOpcode)
        }
        Err(_) => return Err(ProtocolError::BadHeader),
    };
    if (hdr.rsv1 && !deflate) || hdr.rsv2 || hdr.rsv3 {
        return Err(ProtocolError::ReservedBits);
    }
    let kind = match hdr.opcode {
        OpCode::Data(Data::Text) => Kind::Text,
        OpCode::Data(Data::Binary) => Kind::Binary,
        OpCode::Data(Data::Continue) => Kind::Continuation,
        OpCode::Control(Control::Close) => Kind::Close,
        OpCode::Control(Control::Ping) => Kind::Ping,
        OpCode::Control(Control::Pong) => Kind::Pong,
        _ => return Err(ProtocolError::ReservedOpcode),
    };
    if matches!(kind, Kind::Close | Kind::Ping | Kind::Pong) && (len > 125 || !hdr.is_final) {
        return Err(ProtocolError::BadControlFrame);
    }
    // RFC 7692 6: RSV1 marks a compressed message on its first frame only.
    if hdr.rsv1 && !matches!(kind, Kind::Text | Kind::Binary) {
        return Err(ProtocolError::ReservedBits);
    }
    match (from, hdr.mask.is_some()) {
        (From::Server, true) | (From::Client, false) => return Err(ProtocolError::BadMasking),
        _ => {}
    }
    if len > max_payload as u64 {
        return Err(ProtocolError::TooLarge);
    }
    let header_len = cur.position() as usize;
    let payload_len = len as usize;
    if buf.len() < header_len + payload_len {
        return Ok(None);
    }
    Ok(Some(FrameRef {
        kind,
        fin: hdr.is_final,
        rsv1: hdr.rsv1,
        mask: hdr.mask,
        header_len,
        payload_len,
    }))
}

fn opcode(kind: Kind) -> OpCode {
    match kind {
        Kind::Text => OpCode::Data(Data::Text),
        Kind::Binary => OpCode::Data(Data::Binary),
        Kind::Continuation => OpCode::Data(Data::Continue),
        Kind::Close => OpCode::Control(Control::Close),
        Kind::Ping => OpCode::Control(Control::Ping),
        Kind::Pong => OpCode::Control(Control::Pong),
    }
}

/// Appends a frame header to `out`.
#[inline]
pub fn write_header(out: &mut Vec<u8>, kind: Kind, fin: bool, mask: Option<[u8; 4]>, len: usize) {
    write_header_rsv1(out, kind, fin, false, mask, len);
}

/// As `write_header`, with RSV1 (a compressed message's first frame) when `rsv1`.
#[inline]
pub fn write_header_rsv1(
    out: &mut Vec<u8>,
    kind: Kind,
    fin: bool,
    rsv1: bool,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    let hdr = FrameHeader {
        is_final: fin,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode: opcode(kind),
        mask,
    };
    // Writing to a Vec cannot fail.
    let _ = hdr.format(len as u64, out);
}

/// Appends a masked client frame whose payload `fill` writes into the given slice.
#[inline]
pub fn write_client_frame(
    out: &mut Vec<u8>,
    kind: Kind,
    key: [u8; 4],
    len: usize,
    fill: impl FnOnce(&mut [u8]),
) {
    write_header(out, kind, true, Some(key), len);
    let start = out.len();
    out.resize(start + len, 0);
    fill(&mut out[start..]);
    apply_mask(&mut out[start..], key);
}

/// Appends a masked client frame carrying `payload`.
#[inline]
pub fn write_client_frame_bytes(out: &mut Vec<u8>, kind: Kind, key: [u8; 4], payload: &[u8]) {
    write_client_frame(out, kind, key, payload.len(), |dst| {
        dst.copy_from_slice(payload)
    });
}

/// Appends a masked client frame carrying `payload`, a compressed message (RSV1).
pub fn write_client_frame_compressed(out: &mut Vec<u8>, kind: Kind, key: [u8; 4], payload: &[u8]) {
    write_header_rsv1(out, kind, true, true, Some(key), payload.len());
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
}

/// Appends an unmasked server frame carrying `payload`, a compressed message (RSV1).
pub fn write_server_frame_compressed(out: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    write_header_rsv1(out, kind, true, true, None, payload.len());
    out.extend_from_slice(payload);
}

/// Appends an unmasked server frame carrying `payload`.
#[inline]
pub fn write_server_frame(out: &mut Vec<u8>, kind: Kind, fin: bool, payload: &[u8]) {
    write_header(out, kind, fin, None, payload.len());
    out.extend_from_slice(payload);
}

/// The status code of a close frame's payload (1005 when it carries none).
/// What is wrong with a close frame's payload, by RFC 6455 (5.5.1, 7.4): one
/// byte alone, a code no endpoint may send (below 1000, 1004-1006, 1015,
/// 1016-2999 unassigned, 5000 and up), or a reason that is not UTF-8. None for
/// a valid one (empty included).
pub fn close_problem(payload: &[u8]) -> Option<&'static str> {
    match payload.len() {
        0 => None,
        1 => Some("protocol_bad_close_payload"),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                Some("protocol_bad_close_code")
            } else if std::str::from_utf8(&payload[2..]).is_err() {
                Some("protocol_invalid_utf8")
            } else {
                None
            }
        }
    }
}

pub fn close_code(payload: &[u8]) -> u16 {
    if payload.len() >= 2 {
        u16::from_be_bytes([payload[0], payload[1]])
    } else {
        1005
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frame_round_trips_through_the_parser() {
        for len in [0usize, 1, 125, 126, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            write_client_frame_bytes(&mut out, Kind::Binary, [1, 2, 3, 4], &payload);
            let f = parse(&out, From::Client, 1 << 20).unwrap().unwrap();
            assert_eq!(f.kind, Kind::Binary);
            assert!(f.fin);
            assert_eq!(f.payload_len, len);
            assert_eq!(f.total_len(), out.len());
            let mut p = out[f.header_len..].to_vec();
            apply_mask(&mut p, f.mask.unwrap());
            assert_eq!(p, payload);
            // Every strict prefix is incomplete, never an error.
            for cut in [0, 1, f.header_len.saturating_sub(1), out.len() - 1] {
                if cut < out.len() {
                    assert_eq!(parse(&out[..cut], From::Client, 1 << 20), Ok(None));
                }
            }
        }
    }

    #[test]
    fn protocol_rules_are_enforced() {
        let mut out = Vec::new();
        write_server_frame(&mut out, Kind::Text, true, b"hi");
        assert_eq!(
            parse(&out, From::Client, 1024),
            Err(ProtocolError::BadMasking)
        );
        assert!(parse(&out, From::Server, 1024).unwrap().is_some());
        let mut rsv = out.clone();
        rsv[0] |= 0x40;
        assert_eq!(
            parse(&rsv, From::Server, 1024),
            Err(ProtocolError::ReservedBits)
        );
        let mut ping = Vec::new();
        write_server_frame(&mut ping, Kind::Ping, false, b"x");
        assert_eq!(
            parse(&ping, From::Server, 1024),
            Err(ProtocolError::BadControlFrame)
        );
        let mut big = Vec::new();
        write_server_frame(&mut big, Kind::Binary, true, &[0u8; 2000]);
        assert_eq!(
            parse(&big, From::Server, 1024),
            Err(ProtocolError::TooLarge)
        );
        let reserved = [0x83u8, 0x00];
        assert_eq!(
            parse(&reserved, From::Server, 1024),
            Err(ProtocolError::ReservedOpcode)
        );
    }

    #[test]
    fn close_codes() {
        assert_eq!(close_code(&[0x03, 0xe8, b'o', b'k']), 1000);
        assert_eq!(close_code(&[]), 1005);
    }

    #[test]
    fn close_payloads_rfc_6455_forbids() {
        let close = |code: u16, reason: &[u8]| {
            let mut p = code.to_be_bytes().to_vec();
            p.extend_from_slice(reason);
            close_problem(&p)
        };
        assert_eq!(close_problem(&[]), None);
        assert_eq!(close(1000, b"bye"), None);
        assert_eq!(close(4403, b"Forbidden"), None);
        assert_eq!(close_problem(&[0x03]), Some("protocol_bad_close_payload"));
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert_eq!(close(bad, b""), Some("protocol_bad_close_code"), "{bad}");
        }
        assert_eq!(close(1000, &[0xff, 0xfe]), Some("protocol_invalid_utf8"));
    }
}
