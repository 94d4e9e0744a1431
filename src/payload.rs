//! What a message carries: connection id, sequence number, the time it was sent and
//! the time it was meant to be sent.
//!
//! Latency travels in the message, so any server that echoes the payload unchanged
//! can be measured and each echo matched to its send. The intended send time is what
//! open-loop runs time from (coordinated omission corrected); closed-loop messages
//! are sent when intended, so both times are equal there. Binary payloads carry the
//! header as little-endian integers; text payloads carry it as lowercase hex so they
//! stay valid UTF-8. The rest of the payload is a fixed filler, or the content of a
//! `--payload-file` (kept once, copied into each frame). A `--template` replaces the
//! header and filler with text rendered from the template (see `crate::template`),
//! the stamp written into it at fixed offsets.
//! Encoding and decoding never allocate: they write into and read from slices.

use crate::error::{Error, Result};
use crate::stamp::{fill, Stamp};
use crate::template::Template;
use std::path::Path;
use std::sync::Arc;

/// The largest message wsherd sends (a payload file plus its header, or a rendered
/// template, included).
pub const MAX_PAYLOAD: usize = 64 << 20;

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

/// Size and kind of the messages of a run, and what they carry after the stamp.
#[derive(Debug, Clone)]
pub struct PayloadSpec {
    /// Exact payload length of every message, in bytes.
    pub size: usize,
    pub kind: PayloadKind,
    body: Body,
}

/// What follows the timing header (or, for a template, the whole message).
#[derive(Clone)]
enum Body {
    /// `abc…z` repeated: the default.
    Filler,
    /// A payload file's content, read once and shared by every shard (an `Arc<Vec>`
    /// rather than `Arc<[u8]>`, which would copy up to 64 MiB once more).
    File(Arc<Vec<u8>>),
    /// A text template; it carries its own stamp, there is no header.
    Template(Arc<Template>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Filler => f.write_str("Filler"),
            Body::File(b) => write!(f, "File({} bytes)", b.len()),
            Body::Template(t) => t.fmt(f),
        }
    }
}

/// Length of the timing header of `kind` messages.
#[inline]
fn header_len(kind: PayloadKind) -> usize {
    match kind {
        PayloadKind::Binary => BINARY_HEADER,
        PayloadKind::Text => TEXT_HEADER,
    }
}

impl PayloadSpec {
    pub fn new(size: usize, kind: PayloadKind) -> Result<Self> {
        let min = header_len(kind);
        if size < min {
            return Err(Error::usage(format!(
                "--size {size} is smaller than the {min}-byte timing header of {} messages; use --size {min} or more",
                kind.name()
            )));
        }
        Ok(PayloadSpec {
            size,
            kind,
            body: Body::Filler,
        })
    }

    /// Messages of the timing header of `kind` followed by `body` (a payload file's
    /// content, named `name` in errors). Text messages need a UTF-8 body.
    pub fn with_body(kind: PayloadKind, body: Vec<u8>, name: &str) -> Result<Self> {
        if body.is_empty() {
            return Err(Error::usage(format!(
                "--payload-file {name} is empty; give a file with the message body"
            )));
        }
        let size = header_len(kind) + body.len();
        if size > MAX_PAYLOAD {
            return Err(Error::usage(format!(
                "--payload-file {name} is {} bytes; with the {}-byte timing header that is more than the {} MiB wsherd sends",
                body.len(),
                header_len(kind),
                MAX_PAYLOAD >> 20
            )));
        }
        if kind == PayloadKind::Text {
            if let Err(e) = std::str::from_utf8(&body) {
                return Err(Error::usage(format!(
                    "--payload-file {name} is not valid UTF-8 (first invalid byte at offset {}); \
                     text messages must be UTF-8: fix the file or send it with --binary",
                    e.valid_up_to()
                )));
            }
        }
        Ok(PayloadSpec {
            size,
            kind,
            body: Body::File(Arc::new(body)),
        })
    }

    /// Text messages rendered from a `--template` (see `crate::template`).
    pub fn from_template(src: &str) -> Result<Self> {
        Self::templated(Template::parse(src))
    }

    /// Text requests rendered from a request template (`--correlate`): only
    /// `{seq}` is required, replies are other messages matched by a field.
    pub fn from_request_template(src: &str) -> Result<Self> {
        Self::templated(Template::parse_request(src))
    }

    fn templated(t: std::result::Result<Template, crate::template::TemplateError>) -> Result<Self> {
        let t = t.map_err(|e| Error::usage(e.to_string()))?;
        Ok(PayloadSpec {
            size: t.len(),
            kind: PayloadKind::Text,
            body: Body::Template(Arc::new(t)),
        })
    }

    /// Builds the spec from the payload flags: `--size` and `--text`/`--binary`, or a
    /// body from `--payload-file` (the header of `kind` in front of the file; `--size`
    /// does not apply), or a `--template` (always text; `--size` does not apply).
    pub fn from_flags(
        size: usize,
        kind: PayloadKind,
        file: Option<&Path>,
        template: Option<&str>,
    ) -> Result<Self> {
        match (file, template) {
            (Some(_), Some(_)) => Err(Error::usage(
                "--payload-file and --template cannot be used together",
            )),
            (Some(path), None) => {
                let name = path.display().to_string();
                let body = read_file(path, MAX_PAYLOAD - header_len(kind), &name)?;
                PayloadSpec::with_body(kind, body, &name)
            }
            (None, Some(t)) => PayloadSpec::from_template(t),
            (None, None) => PayloadSpec::new(size, kind),
        }
    }

    /// True when messages are rendered from a template (a JSON value, as
    /// opposed to the text stamp and filler, which a protocol quotes).
    pub fn is_template(&self) -> bool {
        matches!(self.body, Body::Template(_))
    }

    /// True when decoded stamps carry the intended send time. Only a template without
    /// `{intended}` lacks it: it decodes intended = ts, which is right for a closed
    /// loop but would hide coordinated omission in an open loop.
    pub fn carries_intended(&self) -> bool {
        match &self.body {
            Body::Template(t) => t.has_intended(),
            Body::Filler | Body::File(_) => true,
        }
    }

    /// Writes a full payload of `self.size` bytes into `out`.
    #[inline]
    pub fn write(&self, stamp: Stamp, out: &mut [u8]) {
        debug_assert_eq!(out.len(), self.size);
        match &self.body {
            Body::Filler => {
                let hdr = write_header(self.kind, stamp, out);
                fill(&mut out[hdr..]);
            }
            Body::File(body) => write_file(self.kind, body, stamp, out),
            Body::Template(t) => t.render(stamp, out),
        }
    }
}

/// Reads a payload file of at most `max` bytes; errors name the file and the OS error.
fn read_file(path: &Path, max: usize, name: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let fail = |e: std::io::Error| Error::usage(format!("--payload-file {name}: {e}"));
    let mut f = std::fs::File::open(path).map_err(fail)?;
    // Stop reading past the limit rather than trusting the size the file claims.
    let mut body = Vec::with_capacity(f.metadata().map_or(0, |m| m.len() as usize).min(max) + 1);
    (&mut f)
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(fail)?;
    if body.len() > max {
        return Err(Error::usage(format!(
            "--payload-file {name} is more than {max} bytes; with the timing header that is more than the {} MiB wsherd sends",
            MAX_PAYLOAD >> 20
        )));
    }
    Ok(body)
}

/// Writes the timing header of `kind`, then the payload file's `body`. Kept out of
/// line so the default path's `write` stays small enough to inline.
#[inline(never)]
fn write_file(kind: PayloadKind, body: &[u8], stamp: Stamp, out: &mut [u8]) {
    let hdr = write_header(kind, stamp, out);
    out[hdr..].copy_from_slice(body);
}

/// Writes the timing header of `kind` at the start of `out`; returns its length.
#[inline(always)]
fn write_header(kind: PayloadKind, stamp: Stamp, out: &mut [u8]) -> usize {
    match kind {
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
    }
}

impl PayloadSpec {
    /// Reads the timing stamp of a payload this spec wrote: any wsherd header, or for
    /// a template, the numbers at their offsets in a message of the template's shape.
    #[inline]
    pub fn read(&self, payload: &[u8]) -> Option<Stamp> {
        match &self.body {
            Body::Template(t) => t.decode(payload),
            Body::Filler | Body::File(_) => read_stamp(payload),
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

    /// The default payload, byte for byte as wsherd has always sent it.
    #[test]
    fn default_payload_bytes_are_unchanged() {
        let s = Stamp {
            conn: 0x0102_0304,
            seq: 5,
            ts: 0x1122_3344_5566_7788,
            intended: 9,
        };
        let spec = PayloadSpec::from_flags(40, PayloadKind::Binary, None, None).unwrap();
        let mut buf = vec![0u8; 40];
        spec.write(s, &mut buf);
        let mut want = b"WSH\x02".to_vec();
        want.extend_from_slice(&[4, 3, 2, 1]);
        want.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
        want.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(b"abcdefgh");
        assert_eq!(buf, want);

        let spec = PayloadSpec::from_flags(90, PayloadKind::Text, None, None).unwrap();
        let mut buf = vec![0u8; 90];
        spec.write(s, &mut buf);
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            "wsh201020304000000000000000511223344556677880000000000000009\
             abcdefghijklmnopqrstuvwxyzabcd"
        );
        assert!(spec.carries_intended());
    }

    #[test]
    fn filler_is_the_alphabet_repeated() {
        for len in [0, 1, 25, 26, 27, 1039, 1040, 1041, 5000] {
            let mut buf = vec![0u8; len];
            fill(&mut buf);
            assert!(buf
                .iter()
                .enumerate()
                .all(|(i, &b)| b == b'a' + (i % 26) as u8));
        }
    }

    fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn payload_file_follows_the_header() {
        let s = Stamp {
            conn: 3,
            seq: 1 << 40,
            ts: 77,
            intended: 70,
        };
        let body = b"\x00\xff binary \x80 body";
        let f = file_with(body);
        // --size is ignored: the file sets the size.
        let spec =
            PayloadSpec::from_flags(9999, PayloadKind::Binary, Some(f.path()), None).unwrap();
        assert_eq!(spec.size, BINARY_HEADER + body.len());
        assert_eq!(spec.kind, PayloadKind::Binary);
        let mut buf = vec![0u8; spec.size];
        spec.write(s, &mut buf);
        assert_eq!(&buf[BINARY_HEADER..], body);
        assert_eq!(spec.read(&buf), Some(s));

        let text = "{\"msg\":\"héllo 🦀\"}\n";
        let f = file_with(text.as_bytes());
        let spec = PayloadSpec::from_flags(64, PayloadKind::Text, Some(f.path()), None).unwrap();
        assert_eq!(spec.size, TEXT_HEADER + text.len());
        let mut buf = vec![0u8; spec.size];
        spec.write(s, &mut buf);
        let out = std::str::from_utf8(&buf).unwrap();
        assert!(out.ends_with(text));
        assert_eq!(spec.read(&buf), Some(s));
        // The body is shared, not copied, when the spec is cloned for each shard.
        let c = spec.clone();
        match (&spec.body, &c.body) {
            (Body::File(a), Body::File(b)) => assert!(Arc::ptr_eq(a, b)),
            _ => panic!("file body"),
        }
    }

    #[test]
    fn payload_file_errors_name_the_file() {
        let f = file_with(b"ok so far \xe2\x82 broken");
        let e = PayloadSpec::from_flags(64, PayloadKind::Text, Some(f.path()), None).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        let e = e.to_string();
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        assert!(
            e.contains("not valid UTF-8 (first invalid byte at offset 10)"),
            "{e}"
        );
        // The same bytes are fine as a binary body.
        assert!(PayloadSpec::from_flags(64, PayloadKind::Binary, Some(f.path()), None).is_ok());

        let empty = file_with(b"");
        let e = PayloadSpec::from_flags(64, PayloadKind::Binary, Some(empty.path()), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is empty"), "{e}");
        assert!(e.contains(&empty.path().display().to_string()), "{e}");

        let missing = std::path::Path::new("/nonexistent/wsherd-payload.bin");
        let e = PayloadSpec::from_flags(64, PayloadKind::Binary, Some(missing), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--payload-file /nonexistent/wsherd-payload.bin: "),
            "{e}"
        );
        assert!(e.contains("No such file or directory (os error 2)"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let e = PayloadSpec::from_flags(64, PayloadKind::Binary, Some(dir.path()), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("os error 21"), "{e}");
    }

    #[test]
    fn payload_file_size_limit() {
        let max = MAX_PAYLOAD - BINARY_HEADER;
        let spec = PayloadSpec::with_body(PayloadKind::Binary, vec![1; max], "big").unwrap();
        assert_eq!(spec.size, MAX_PAYLOAD);
        let e = PayloadSpec::with_body(PayloadKind::Binary, vec![1; max + 1], "big")
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the 64 MiB"), "{e}");
        // A file is read only up to the limit.
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(MAX_PAYLOAD as u64).unwrap();
        let e = PayloadSpec::from_flags(64, PayloadKind::Text, Some(f.path()), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("more than {} bytes", MAX_PAYLOAD - TEXT_HEADER)),
            "{e}"
        );
    }

    #[test]
    fn template_spec() {
        let t = r#"{"seq":{seq},"c":{conn},"ts":{ts},"i":{intended}}"#;
        // Templates are text whatever --binary says; --size does not apply.
        let spec = PayloadSpec::from_flags(7, PayloadKind::Binary, None, Some(t)).unwrap();
        assert_eq!(spec.kind, PayloadKind::Text);
        assert_eq!(spec.size, t.len() - 25 + 16 + 11 + 16 + 16);
        assert!(spec.carries_intended());
        let s = Stamp {
            conn: 1,
            seq: 2,
            ts: 3,
            intended: 2,
        };
        let mut buf = vec![0u8; spec.size];
        spec.write(s, &mut buf);
        assert_eq!(spec.read(&buf), Some(s));
        // A template spec does not take default headers for its own messages.
        let mut hdr = vec![0u8; 64];
        PayloadSpec::new(64, PayloadKind::Text)
            .unwrap()
            .write(s, &mut hdr);
        assert_eq!(spec.read(&hdr), None);

        let spec = PayloadSpec::from_flags(64, PayloadKind::Text, None, Some("{conn}{seq}{ts}"));
        assert!(!spec.unwrap().carries_intended());
        let e = PayloadSpec::from_flags(64, PayloadKind::Text, None, Some("{conn}{seq}{ts}{x}"))
            .unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        assert!(e.to_string().ends_with("at byte 15"), "{e}");
        let f = file_with(b"x");
        assert!(PayloadSpec::from_flags(64, PayloadKind::Text, Some(f.path()), Some(t)).is_err());
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
