//! What a message carries: connection id, sequence number and send timestamp.
//!
//! Latency travels in the message, so any server that echoes the payload unchanged
//! can be measured and each echo matched to its send. Binary payloads carry the
//! header as little-endian integers; text payloads carry it as lowercase hex so they
//! stay valid UTF-8. The rest of the payload is a fixed filler.
//! Encoding and decoding never allocate: they write into and read from slices.

use crate::error::{Error, Result};

/// Binary header: magic(4) conn(4) seq(8) ts(8).
pub const BINARY_HEADER: usize = 24;
/// Text header: magic(4) conn(8 hex) seq(16 hex) ts(16 hex).
pub const TEXT_HEADER: usize = 44;

const BIN_MAGIC: [u8; 4] = *b"WSH\x01";
const TEXT_MAGIC: [u8; 4] = *b"wsh1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Binary,
    Text,
}

impl PayloadKind {
    pub fn name(self) -> &'static str {
        match self {
            PayloadKind::Binary => "binary",
            PayloadKind::Text => "text",
        }
    }
}

/// The timing header of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub conn: u32,
    pub seq: u64,
    /// Send time, ns since the run's clock origin.
    pub ts: u64,
}

/// Size and kind of the messages of a run.
#[derive(Debug, Clone)]
pub struct PayloadSpec {
    pub size: usize,
    pub kind: PayloadKind,
}

impl PayloadSpec {
    pub fn new(size: usize, kind: PayloadKind) -> Result<Self> {
        let min = match kind {
            PayloadKind::Binary => BINARY_HEADER,
            PayloadKind::Text => TEXT_HEADER,
        };
        if size < min {
            return Err(Error::usage(format!(
                "--size {size} is smaller than the {min}-byte timing header of {} messages; use --size {min} or more",
                kind.name()
            )));
        }
        Ok(PayloadSpec { size, kind })
    }

    /// Writes a full payload of `self.size` bytes into `out`.
    #[inline]
    pub fn write(&self, stamp: Stamp, out: &mut [u8]) {
        debug_assert_eq!(out.len(), self.size);
        let hdr = match self.kind {
            PayloadKind::Binary => {
                out[..4].copy_from_slice(&BIN_MAGIC);
                out[4..8].copy_from_slice(&stamp.conn.to_le_bytes());
                out[8..16].copy_from_slice(&stamp.seq.to_le_bytes());
                out[16..24].copy_from_slice(&stamp.ts.to_le_bytes());
                BINARY_HEADER
            }
            PayloadKind::Text => {
                out[..4].copy_from_slice(&TEXT_MAGIC);
                hex(stamp.conn as u64, &mut out[4..12]);
                hex(stamp.seq, &mut out[12..28]);
                hex(stamp.ts, &mut out[28..44]);
                TEXT_HEADER
            }
        };
        for (i, b) in out[hdr..].iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }
    }
}

/// Reads the timing header of a received payload (binary or text), if it has one.
#[inline]
pub fn read_stamp(payload: &[u8]) -> Option<Stamp> {
    if payload.len() >= BINARY_HEADER && payload[..4] == BIN_MAGIC {
        Some(Stamp {
            conn: u32::from_le_bytes(payload[4..8].try_into().ok()?),
            seq: u64::from_le_bytes(payload[8..16].try_into().ok()?),
            ts: u64::from_le_bytes(payload[16..24].try_into().ok()?),
        })
    } else if payload.len() >= TEXT_HEADER && payload[..4] == TEXT_MAGIC {
        Some(Stamp {
            conn: unhex(&payload[4..12])? as u32,
            seq: unhex(&payload[12..28])?,
            ts: unhex(&payload[28..44])?,
        })
    } else {
        None
    }
}

#[inline]
fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

#[inline]
fn unhex(s: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_round_trip() {
        let spec = PayloadSpec::new(64, PayloadKind::Binary).unwrap();
        let mut buf = vec![0u8; 64];
        let s = Stamp {
            conn: 77,
            seq: u64::MAX - 3,
            ts: 123_456_789,
        };
        spec.write(s, &mut buf);
        assert_eq!(read_stamp(&buf), Some(s));
    }

    #[test]
    fn text_round_trip_is_utf8() {
        let spec = PayloadSpec::new(100, PayloadKind::Text).unwrap();
        let mut buf = vec![0u8; 100];
        let s = Stamp {
            conn: u32::MAX,
            seq: 42,
            ts: 987_654_321_000,
        };
        spec.write(s, &mut buf);
        assert!(std::str::from_utf8(&buf).is_ok());
        assert_eq!(read_stamp(&buf), Some(s));
    }

    #[test]
    fn too_small_is_rejected_with_the_minimum() {
        let e = PayloadSpec::new(10, PayloadKind::Text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--size 44"), "{e}");
        assert!(PayloadSpec::new(24, PayloadKind::Binary).is_ok());
    }

    #[test]
    fn foreign_payloads_have_no_stamp() {
        assert_eq!(read_stamp(b"hello world, this is not ours at all!!"), None);
        let mut t = *b"wsh1zzzzzzzz0000000000000000000000000000000000";
        assert_eq!(read_stamp(&t), None);
        t[4..12].copy_from_slice(b"00000001");
        assert!(read_stamp(&t).is_some());
    }
}
