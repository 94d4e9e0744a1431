//! What a message carries: connection id, sequence number, the time it was sent and
//! the time it was meant to be sent.
//!
//! Latency travels in the message, so any server that echoes the payload unchanged
//! can be measured and each echo matched to its send. The intended send time is what
//! open-loop runs time from (coordinated omission corrected); closed-loop messages
//! are sent when intended, so both times are equal there. Binary payloads carry the
//! header as little-endian integers; text payloads carry it as lowercase hex so they
//! stay valid UTF-8. The rest of the payload is a fixed filler.
//! Encoding and decoding never allocate: they write into and read from slices.

use crate::error::{Error, Result};

/// Binary header: magic(4) conn(4) seq(8) sent(8) intended(8).
pub const BINARY_HEADER: usize = 32;
/// Text header: magic(4) conn(8 hex) seq(16 hex) sent(16 hex) intended(16 hex).
pub const TEXT_HEADER: usize = 60;

const BIN_MAGIC: [u8; 4] = *b"WSH\x02";
const TEXT_MAGIC: [u8; 4] = *b"wsh2";

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
    /// Intended send time (open loop's schedule), ns since the clock origin.
    pub intended: u64,
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

    /// Builds the spec from the payload flags: `--size` and `--text`/`--binary`, or a
    /// body from `--payload-file`, or a text `--template`.
    pub fn from_flags(
        size: usize,
        kind: PayloadKind,
        file: Option<&std::path::Path>,
        template: Option<&str>,
    ) -> Result<Self> {
        if file.is_some() || template.is_some() {
            return Err(Error::usage(
                "--payload-file and --template are not supported yet",
            ));
        }
        PayloadSpec::new(size, kind)
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
                out[24..32].copy_from_slice(&stamp.intended.to_le_bytes());
                BINARY_HEADER
            }
            PayloadKind::Text => {
                out[..4].copy_from_slice(&TEXT_MAGIC);
                hex(stamp.conn as u64, &mut out[4..12]);
                hex(stamp.seq, &mut out[12..28]);
                hex(stamp.ts, &mut out[28..44]);
                hex(stamp.intended, &mut out[44..60]);
                TEXT_HEADER
            }
        };
        for (i, b) in out[hdr..].iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }
    }
}

impl PayloadSpec {
    /// Reads the timing header of a payload this spec wrote (or any wsherd header).
    #[inline]
    pub fn read(&self, payload: &[u8]) -> Option<Stamp> {
        read_stamp(payload)
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
            intended: u64::from_le_bytes(payload[24..32].try_into().ok()?),
        })
    } else if payload.len() >= TEXT_HEADER && payload[..4] == TEXT_MAGIC {
        Some(Stamp {
            conn: unhex(&payload[4..12])? as u32,
            seq: unhex(&payload[12..28])?,
            ts: unhex(&payload[28..44])?,
            intended: unhex(&payload[44..60])?,
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
            intended: 123_000_000,
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
            intended: 1,
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
        assert!(e.contains("--size 60"), "{e}");
        assert!(PayloadSpec::new(32, PayloadKind::Binary).is_ok());
        assert!(PayloadSpec::new(31, PayloadKind::Binary).is_err());
    }

    #[test]
    fn foreign_payloads_have_no_stamp() {
        assert_eq!(read_stamp(b"hello world, this is not ours at all!!"), None);
        let mut t = *b"wsh2zzzzzzzz000000000000000000000000000000000000000000000000";
        assert_eq!(read_stamp(&t), None);
        t[4..12].copy_from_slice(b"00000001");
        assert!(read_stamp(&t).is_some());
    }
}
