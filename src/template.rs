//! Text message templates (`--template`): realistic messages, such as the JSON a chat
//! server validates, that still carry the timing stamp.
//!
//! Why it exists: a server that validates what it receives rejects wsherd's binary
//! or hex payloads; a template lets the load send what such a server expects and
//! still time every echo. Like `payload`, which renders it, it imports only
//! `stamp`, `error` and the vocabulary (`vocab`): never the plan, the shards or
//! anything else above the load layer, so what the hot path renders and decodes
//! depends on nothing that runs it.
//!
//! ```text
//! {"type":"chat","user":"u{conn}","seq":{seq},"ts":{ts},"body":"{pad:100}"}
//! ```
//!
//! Grammar:
//! - `{conn}`, `{seq}`, `{ts}`, `{intended}`: the stamp's fields, as numbers.
//! - `{pad:N}`: N filler characters (`abc…z`, repeated), safe inside JSON strings.
//! - A `{` directly followed by an ASCII letter opens a placeholder, which runs to
//!   the next `}`. Every other brace is literal text, so JSON goes in as it is.
//! - To write a placeholder's text literally, double its braces: `{{seq}}` renders
//!   `{seq}` (`{{` before a letter renders `{`; the `}}` closing that text renders
//!   `}`). A `{{` anywhere else is rejected: it is almost always format-string
//!   escaping carried over (`{{"a":1}}`), which would render broken JSON here.
//!
//! Numbers render at a fixed width so the stamp sits at offsets known when the
//! template is parsed: the value plus 10^(w-1), in w decimal digits, w = 11 for
//! `{conn}` (any u32) and 16 for `{seq}`, `{ts}` and `{intended}` (values below
//! 8×10^15: 92 days of nanoseconds). The leading digit is 1 to 8, so a number
//! placeholder is a valid JSON number (no leading zero) wherever JSON wants one, and
//! it stays below 2^53, so a server that parses the JSON as doubles (JavaScript) and
//! serializes it again writes back the very same digits. `{seq}` 42 renders
//! `1000000000000042`; `{conn}` 7 renders `10000000007`.
//!
//! A request template (`Template::parse_request`, for `--correlate`) needs only
//! `{seq}`: its reply is another message that names the request (a JSON-RPC
//! `"id"`), read back with [`seq_named_by`]; the send times stay with the sender.
//!
//! A template renders to the same length whatever the stamp, so a message is a copy
//! of the template rendered once (the image) with the numbers written over it: no
//! allocation per message. Decoding reads the numbers at their offsets, after
//! checking the echo's length and a few literal bytes around them, so a message that
//! is not ours is not taken for one.

use crate::stamp::Stamp;
use std::fmt;

/// The longest message a template may render (the largest message wsherd sends).
pub const MAX_RENDERED: usize = 64 << 20;

/// Width of a rendered `{conn}`: 10^10 + conn, 11 digits.
pub const CONN_WIDTH: usize = 11;
/// Width of a rendered `{seq}`, `{ts}` or `{intended}`: 10^15 + value, 16 digits.
pub const WIDE_WIDTH: usize = 16;
/// Largest `{seq}`, `{ts}` or `{intended}` value that renders exactly (8×10^15 - 1);
/// larger values render as this one.
pub const WIDE_MAX: u64 = 8 * 10u64.pow(15) - 1;

/// Literal bytes compared before each decoded field (and at both ends).
const GUARD: usize = 8;

const KNOWN: &str = "{conn}, {seq}, {ts}, {intended}, {pad:N}";

/// One placeholder of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Conn,
    Seq,
    Ts,
    Intended,
    /// N filler characters.
    Pad(usize),
}

impl Placeholder {
    /// Rendered width in bytes.
    pub fn width(self) -> usize {
        match self {
            Placeholder::Conn => CONN_WIDTH,
            Placeholder::Seq | Placeholder::Ts | Placeholder::Intended => WIDE_WIDTH,
            Placeholder::Pad(n) => n,
        }
    }
}

/// Why a template was rejected; `at` is the byte offset in the template, if the
/// problem sits at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub at: Option<usize>,
    pub what: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "template: {} at byte {at}", self.what),
            None => write!(f, "template: {}", self.what),
        }
    }
}

impl std::error::Error for TemplateError {}

fn err_at<T>(at: usize, what: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError {
        at: Some(at),
        what: what.into(),
    })
}

/// A number placeholder in the rendered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    at: usize,
    what: Placeholder,
}

/// A parsed template: the rendered image and where its numbers go.
#[derive(Clone)]
pub struct Template {
    /// The message rendered with every number 0 (valid UTF-8).
    image: Box<[u8]>,
    /// Every number placeholder, in order.
    fields: Box<[Field]>,
    /// `{conn}` and `{ts}`: always in an echoed template, optional in a request
    /// (`parse_request`), which is never decoded.
    conn_at: Option<usize>,
    seq_at: usize,
    ts_at: Option<usize>,
    intended_at: Option<usize>,
    /// Literal byte ranges of the image compared on decode.
    guards: Box<[(usize, usize)]>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("len", &self.image.len())
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses a template; errors name the byte offset of the problem. Reads it
    /// whole and finds the fields a message must carry, then (accepted) renders
    /// the image and finds the literal bytes decoding compares.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let image = Image::scan(src)?;
        let conn_at = image.required(
            Placeholder::Conn,
            "conn",
            "the connection an echo belongs to",
        )?;
        let seq_at = image.required(
            Placeholder::Seq,
            "seq",
            "how an echo is matched to its send",
        )?;
        let ts_at = image.required(Placeholder::Ts, "ts", "the send time latency is timed from")?;
        Ok(image.into_template(Some(conn_at), seq_at, Some(ts_at)))
    }

    /// Parses a request template, whose reply is another message matched by a
    /// field (`--correlate`) rather than an echo: only `{seq}` is required (the
    /// value the reply names), the send times are kept by the sender. Such a
    /// template is rendered, never decoded.
    pub fn parse_request(src: &str) -> Result<Template, TemplateError> {
        let image = Image::scan(src)?;
        let seq_at = image.required(
            Placeholder::Seq,
            "seq",
            "the value a reply names to be matched to its request",
        )?;
        let (conn_at, ts_at) = (image.first(Placeholder::Conn), image.first(Placeholder::Ts));
        Ok(image.into_template(conn_at, seq_at, ts_at))
    }

    /// Length of every rendered message in bytes.
    pub fn len(&self) -> usize {
        self.image.len()
    }

    /// Always false: a template renders at least its required placeholders.
    pub fn is_empty(&self) -> bool {
        self.image.is_empty()
    }

    /// True when the template carries `{intended}`; without it, decoding gives
    /// intended = ts, which is right only where messages are sent when intended
    /// (closed loop).
    pub fn has_intended(&self) -> bool {
        self.intended_at.is_some()
    }

    /// Renders the message for `stamp` into `out` (exactly `self.len()` bytes).
    #[inline(never)]
    pub fn render(&self, stamp: Stamp, out: &mut [u8]) {
        out.copy_from_slice(&self.image);
        for f in self.fields.iter() {
            let v = match f.what {
                Placeholder::Conn => stamp.conn as u64,
                Placeholder::Seq => stamp.seq,
                Placeholder::Ts => stamp.ts,
                Placeholder::Intended => stamp.intended,
                Placeholder::Pad(_) => continue,
            };
            write_number(f.what, v, &mut out[f.at..f.at + f.what.width()]);
        }
    }

    /// Renders one message into a new string (for tests and for showing a sample).
    pub fn render_to_string(&self, stamp: Stamp) -> String {
        let mut out = vec![0u8; self.len()];
        self.render(stamp, &mut out);
        String::from_utf8(out).expect("templates render valid UTF-8")
    }

    /// Reads the stamp of an echoed message: same length as ours, the literal bytes
    /// around the numbers as rendered, and well-formed numbers at their offsets.
    #[inline]
    pub fn decode(&self, payload: &[u8]) -> Option<Stamp> {
        let (Some(conn_at), Some(ts_at)) = (self.conn_at, self.ts_at) else {
            return None;
        };
        if payload.len() != self.image.len() {
            return None;
        }
        for &(s, e) in self.guards.iter() {
            if payload[s..e] != self.image[s..e] {
                return None;
            }
        }
        let ts = read_number(&payload[ts_at..ts_at + WIDE_WIDTH])?;
        Some(Stamp {
            conn: u32::try_from(read_number(&payload[conn_at..conn_at + CONN_WIDTH])?).ok()?,
            seq: read_number(&payload[self.seq_at..self.seq_at + WIDE_WIDTH])?,
            ts,
            intended: match self.intended_at {
                Some(at) => read_number(&payload[at..at + WIDE_WIDTH])?,
                None => ts,
            },
        })
    }
}

/// A template being parsed: what its message is made of and where its
/// numbers sit, checked whole (every placeholder, the length) before the image
/// is rendered, so a template that is refused allocates nothing its filler
/// asked for.
struct Image<'a> {
    src: &'a [u8],
    /// The message's pieces, in order.
    parts: Vec<Part>,
    fields: Vec<Field>,
    /// Rendered length so far (at most [`MAX_RENDERED`]).
    len: usize,
}

/// A piece of a template's message.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// Bytes `start..end` of the template, as they are.
    Literal(usize, usize),
    /// A `}` an escape renders (`{{seq}}` renders `{seq}`).
    Close,
    /// A placeholder: N filler characters, or a number rendered as 0.
    Hole(Placeholder),
}

impl<'a> Image<'a> {
    /// Reads `src`: literal text as it is, a `{{` escape as the text it stands
    /// for, each placeholder at its width. Refuses it (naming the byte) when a
    /// placeholder is wrong or the message would pass [`MAX_RENDERED`] bytes;
    /// allocates only in proportion to `src`.
    fn scan(src: &'a str) -> Result<Image<'a>, TemplateError> {
        let b = src.as_bytes();
        let mut image = Image {
            src: b,
            parts: Vec::new(),
            fields: Vec::new(),
            len: 0,
        };
        let mut i = 0;
        let mut lit = 0; // start of the literal run not yet taken
        while i < b.len() {
            if b[i] != b'{' {
                i += 1;
                continue;
            }
            match b.get(i + 1) {
                Some(b'{') => {
                    i = image.push_escape(i, lit)?;
                    lit = i;
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    i = image.push_placeholder(src, i, lit)?;
                    lit = i;
                }
                // Any other brace is literal: JSON needs no escaping.
                _ => i += 1,
            }
        }
        image.literal(lit, b.len());
        if image.len > MAX_RENDERED {
            return Err(TemplateError {
                at: None,
                what: format!(
                    "renders {} bytes, more than the {} MiB wsherd sends",
                    image.len,
                    MAX_RENDERED >> 20
                ),
            });
        }
        Ok(image)
    }

    /// Takes bytes `start..end` of the template as they are.
    fn literal(&mut self, start: usize, end: usize) {
        if start < end {
            self.parts.push(Part::Literal(start, end));
            self.len = self.len.saturating_add(end - start);
        }
    }

    /// The `{{` at `i`, after the literal text from `lit`: `{{name…` renders
    /// `{name…`, and the `}}` closing it renders `}`. Any other `{{` is
    /// rejected. Returns where the text after it starts.
    fn push_escape(&mut self, i: usize, lit: usize) -> Result<usize, TemplateError> {
        let b = self.src;
        if !b.get(i + 2).is_some_and(u8::is_ascii_alphabetic) {
            return err_at(
                i,
                "'{{' only escapes a placeholder's text ({{seq}} renders {seq}); \
                 other braces are literal as they are, so write a single '{'",
            );
        }
        self.literal(lit, i + 1);
        let mut j = i + 2;
        while j < b.len() && b[j] != b'{' && b[j] != b'}' {
            j += 1;
        }
        self.literal(i + 2, j);
        if b[j..].starts_with(b"}}") {
            self.parts.push(Part::Close);
            self.len = self.len.saturating_add(1);
            j += 2;
        }
        Ok(j)
    }

    /// The placeholder opening at `i` of `src`, after the literal text from
    /// `lit`: filler for `{pad:N}`, a number (and its field) for the others.
    /// Returns where the text after it starts.
    fn push_placeholder(
        &mut self,
        src: &str,
        i: usize,
        lit: usize,
    ) -> Result<usize, TemplateError> {
        let b = src.as_bytes();
        let end = match b[i + 1..].iter().position(|&c| c == b'{' || c == b'}') {
            Some(k) if b[i + 1 + k] == b'}' => i + 1 + k,
            _ => {
                return err_at(
                    i,
                    format!(
                        "unclosed '{{' (placeholders are {KNOWN}; \
                         {{{{ before a letter writes a literal '{{')"
                    ),
                )
            }
        };
        let what = placeholder(&src[i + 1..end], i)?;
        self.literal(lit, i);
        let width = what.width();
        if self.len.saturating_add(width) > MAX_RENDERED {
            return err_at(
                i,
                format!(
                    "{} makes the message longer than {} MiB",
                    clip(&src[i..=end]),
                    MAX_RENDERED >> 20
                ),
            );
        }
        if !matches!(what, Placeholder::Pad(_)) {
            self.fields.push(Field { at: self.len, what });
        }
        self.parts.push(Part::Hole(what));
        self.len += width;
        Ok(end + 1)
    }

    /// The message with every number 0 (valid UTF-8): allocated once, at its
    /// length, after the template was accepted.
    fn render(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.len);
        for part in &self.parts {
            let at = bytes.len();
            match *part {
                Part::Literal(s, e) => bytes.extend_from_slice(&self.src[s..e]),
                Part::Close => bytes.push(b'}'),
                Part::Hole(Placeholder::Pad(n)) => {
                    bytes.resize(at + n, 0);
                    crate::stamp::fill(&mut bytes[at..]);
                }
                Part::Hole(what) => {
                    bytes.resize(at + what.width(), 0);
                    write_number(what, 0, &mut bytes[at..]);
                }
            }
        }
        debug_assert_eq!(bytes.len(), self.len);
        bytes
    }

    /// Where the first `p` renders, if the template has one.
    fn first(&self, p: Placeholder) -> Option<usize> {
        self.fields.iter().find(|f| f.what == p).map(|f| f.at)
    }

    /// The parsed template: the image, its fields, and the literal bytes
    /// decoding compares around the stamp's fields.
    fn into_template(
        self,
        conn_at: Option<usize>,
        seq_at: usize,
        ts_at: Option<usize>,
    ) -> Template {
        let intended_at = self.first(Placeholder::Intended);
        let guards = self.guards([conn_at, Some(seq_at), ts_at, intended_at]);
        let bytes = self.render();
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Template {
            image: bytes.into_boxed_slice(),
            fields: self.fields.into_boxed_slice(),
            conn_at,
            seq_at,
            ts_at,
            intended_at,
            guards: guards.into_boxed_slice(),
        }
    }

    /// Where the first `{name}` renders; the template must have one, for `why`.
    fn required(&self, p: Placeholder, name: &str, why: &str) -> Result<usize, TemplateError> {
        self.first(p).ok_or_else(|| TemplateError {
            at: None,
            what: format!("needs {{{name}}} ({why}); add it, e.g. \"{name}\":{{{name}}}"),
        })
    }

    /// The literal byte ranges decoding compares: before each decoded field (at
    /// `decoded`), up to GUARD of them and not reaching into another number,
    /// plus the first and last bytes of the message. Sorted, without empty or
    /// repeated ranges.
    fn guards(&self, decoded: [Option<usize>; 4]) -> Vec<(usize, usize)> {
        let len = self.len;
        let first_at = self.fields.first().map_or(len, |f| f.at);
        let mut guards = vec![(0, first_at.min(GUARD))];
        let numbers: Vec<(usize, usize)> = self
            .fields
            .iter()
            .map(|f| (f.at, f.at + f.what.width()))
            .collect();
        let literal_before = |at: usize| {
            let floor = numbers
                .iter()
                .filter(|&&(_, e)| e <= at)
                .map(|&(_, e)| e)
                .max()
                .unwrap_or(0);
            (at.saturating_sub(GUARD).max(floor), at)
        };
        for at in decoded.into_iter().flatten() {
            guards.push(literal_before(at));
        }
        let last_end = numbers.iter().map(|&(_, e)| e).max().unwrap_or(0);
        guards.push((len.saturating_sub(GUARD).max(last_end), len));
        guards.retain(|&(s, e)| s < e);
        guards.sort_unstable();
        guards.dedup();
        guards
    }
}

/// The placeholder named by `inner` (the text between the braces at `at`).
fn placeholder(inner: &str, at: usize) -> Result<Placeholder, TemplateError> {
    let (name, arg) = match inner.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (inner, None),
    };
    let simple = match name {
        "conn" => Some(Placeholder::Conn),
        "seq" => Some(Placeholder::Seq),
        "ts" => Some(Placeholder::Ts),
        "intended" => Some(Placeholder::Intended),
        "pad" => None,
        _ => {
            return err_at(
                at,
                format!(
                "unknown placeholder {} (known: {KNOWN}; write {{{{{}}}}} for the literal text)",
                clip(&format!("{{{inner}}}")),
                clip(inner),
            ),
            )
        }
    };
    match (simple, arg) {
        (Some(p), None) => Ok(p),
        (Some(_), Some(_)) => err_at(
            at,
            format!(
                "{{{name}}} takes no argument (got {})",
                clip(&format!("{{{inner}}}"))
            ),
        ),
        (None, arg) => {
            let arg = arg.unwrap_or("");
            if arg.is_empty() || !arg.bytes().all(|c| c.is_ascii_digit()) {
                return err_at(
                    at,
                    format!(
                        "{{pad:N}} needs a number (got {})",
                        clip(&format!("{{{inner}}}"))
                    ),
                );
            }
            match arg.parse::<usize>() {
                Ok(n) if n <= MAX_RENDERED => Ok(Placeholder::Pad(n)),
                _ => err_at(
                    at,
                    format!(
                        "{{pad:{}}} is longer than the {} MiB wsherd sends",
                        clip(arg),
                        MAX_RENDERED >> 20
                    ),
                ),
            }
        }
    }
}

/// At most 40 characters of `s`, for error messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((k, _)) => format!("{}…", &s[..k]),
        None => s.to_string(),
    }
}

/// Writes `v` as a fixed-width placeholder number: 10^(w-1) + v in w digits.
#[inline]
fn write_number(what: Placeholder, v: u64, out: &mut [u8]) {
    const CONN_BASE: u64 = 10u64.pow(CONN_WIDTH as u32 - 1);
    const WIDE_BASE: u64 = 10u64.pow(WIDE_WIDTH as u32 - 1);
    let mut v = match what {
        Placeholder::Conn => v.min(u32::MAX as u64) + CONN_BASE,
        _ => v.min(WIDE_MAX) + WIDE_BASE,
    };
    for d in out.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The `{seq}` a reply names (`--correlate`): the rendered digits at the end of
/// `value`, the text of a JSON number (`1000000000000042`) or a string's content
/// (`req-1000000000000042`), exactly [`WIDE_WIDTH`] digits with no digit before
/// them. None for anything a request template cannot have rendered.
#[inline]
pub fn seq_named_by(value: &[u8]) -> Option<u64> {
    let start = value.len().checked_sub(WIDE_WIDTH)?;
    if start > 0 && value[start - 1].is_ascii_digit() {
        return None;
    }
    read_number(&value[start..])
}

/// Reads a fixed-width placeholder number: w digits, the first 1 to 8, minus 10^(w-1).
#[inline]
fn read_number(s: &[u8]) -> Option<u64> {
    let (&lead, rest) = s.split_first()?;
    if !(b'1'..=b'8').contains(&lead) {
        return None;
    }
    let mut v = (lead - b'1') as u64;
    for &c in rest {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str =
        r#"{"type":"chat","user":"u{conn}","seq":{seq},"ts":{ts},"body":"{pad:100}"}"#;

    fn stamp(conn: u32, seq: u64, ts: u64, intended: u64) -> Stamp {
        Stamp {
            conn,
            seq,
            ts,
            intended,
        }
    }

    fn err(src: &str) -> String {
        Template::parse(src).unwrap_err().to_string()
    }

    #[test]
    fn renders_fixed_width_numbers_with_a_nonzero_lead() {
        let t = Template::parse("c={conn} s={seq} t={ts} i={intended}").unwrap();
        let s = t.render_to_string(stamp(7, 42, 0, 123_456_789));
        assert_eq!(
            s,
            "c=10000000007 s=1000000000000042 t=1000000000000000 i=1000000123456789"
        );
        assert_eq!(t.len(), s.len());
        let max = t.render_to_string(stamp(u32::MAX, WIDE_MAX, WIDE_MAX, WIDE_MAX));
        assert_eq!(
            max,
            "c=14294967295 s=8999999999999999 t=8999999999999999 i=8999999999999999"
        );
        assert_eq!(max.len(), s.len());
    }

    #[test]
    fn the_chat_example_renders_json_that_round_trips() {
        let t = Template::parse(CHAT).unwrap();
        let st = stamp(12, 34, 5_000_000_123, 5_000_000_000);
        let s = t.render_to_string(st);
        let v: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(v["type"], "chat");
        assert_eq!(v["user"], "u10000000012");
        assert_eq!(v["seq"].as_u64(), Some(1_000_000_000_000_034));
        assert_eq!(v["ts"].as_u64(), Some(1_000_005_000_000_123));
        let body = v["body"].as_str().unwrap();
        assert_eq!(body.len(), 100);
        assert!(body.starts_with("abcdefghijklmnopqrstuvwxyzabc"));
        // A JavaScript-style server (numbers as doubles) writes the same digits back.
        assert!(v["seq"].as_u64().unwrap() < 1 << 53);
        assert_eq!(
            v["ts"].as_u64().unwrap() as f64 as u64,
            v["ts"].as_u64().unwrap()
        );
        // Without {intended}, intended is the send time.
        let back = t.decode(s.as_bytes()).unwrap();
        assert_eq!(back, stamp(12, 34, 5_000_000_123, 5_000_000_123));
        assert!(!t.has_intended());
    }

    #[test]
    fn nested_json_and_lone_braces_are_literal() {
        let src = r#"{"a":{"b":[{"c":{seq}}]},"x":"{}","y":{conn},"z":{ts}}"#;
        let t = Template::parse(src).unwrap();
        let s = t.render_to_string(stamp(1, 2, 3, 3));
        assert_eq!(
            s,
            r#"{"a":{"b":[{"c":1000000000000002}]},"x":"{}","y":10000000001,"z":1000000000000003}"#
        );
        serde_json::from_str::<serde_json::Value>(&s).unwrap();
        assert!(Template::parse("}{seq}}}{conn}{ts}} { }").is_ok());
    }

    #[test]
    fn doubled_braces_escape_placeholder_text() {
        let t = Template::parse("{{seq}} {{conn} {{a {conn}{seq}{ts}").unwrap();
        let s = t.render_to_string(stamp(0, 0, 0, 0));
        assert!(s.starts_with("{seq} {conn} {a 10000000000"), "{s}");
        let e = err(r#"{{"a":{seq}}}"#);
        assert_eq!(
            e,
            "template: '{{' only escapes a placeholder's text ({{seq}} renders {seq}); \
             other braces are literal as they are, so write a single '{' at byte 0"
        );
        assert!(err("{conn}{seq}{ts} {{ x").ends_with("at byte 16"));
    }

    #[test]
    fn errors_name_the_byte() {
        let e = err(r#"{"seq":{seq},"x":{conn"#);
        assert!(e.starts_with("template: unclosed '{'"), "{e}");
        assert!(e.ends_with("at byte 17"), "{e}");
        // A '{' before the closing brace leaves the placeholder unclosed too.
        assert!(err("ab{seq{conn}").ends_with("at byte 2"));

        let e = err("abcd {foo} {conn}{seq}{ts}");
        assert!(e.starts_with("template: unknown placeholder {foo}"), "{e}");
        assert!(e.contains("{{foo}}"), "{e}");
        assert!(e.ends_with("at byte 5"), "{e}");
        assert!(err("{Seq}").contains("unknown placeholder {Seq}"));

        for bad in [
            "{pad}",
            "{pad:}",
            "{pad:x}",
            "{pad:-1}",
            "{pad: 3}",
            "{pad:1.5}",
        ] {
            let src = format!("{{conn}}{{seq}}{{ts}} - {bad}");
            let e = err(&src);
            assert!(
                e.starts_with("template: {pad:N} needs a number"),
                "{bad}: {e}"
            );
            assert!(e.ends_with("at byte 18"), "{bad}: {e}");
        }
        let e = err("{conn:3}");
        assert!(e.contains("{conn} takes no argument"), "{e}");
        assert!(e.ends_with("at byte 0"));
        // Positions are bytes, multi-byte characters before them included.
        assert!(err("héllo {nope}").ends_with("at byte 7"));
    }

    #[test]
    fn request_templates_need_only_seq_and_are_never_decoded() {
        let t = Template::parse_request(r#"{"jsonrpc":"2.0","id":{seq},"method":"ping"}"#).unwrap();
        let msg = t.render_to_string(stamp(3, 42, 9, 9));
        assert_eq!(
            msg,
            r#"{"jsonrpc":"2.0","id":1000000000000042,"method":"ping"}"#
        );
        assert_eq!(t.decode(msg.as_bytes()), None);
        let e = Template::parse_request(r#"{"id":{conn}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("template: needs {seq}"), "{e}");
    }

    #[test]
    fn the_seq_a_reply_names() {
        assert_eq!(seq_named_by(b"1000000000000042"), Some(42));
        assert_eq!(seq_named_by(b"req-1000000000000042"), Some(42));
        assert_eq!(seq_named_by(b"8999999999999999"), Some(WIDE_MAX));
        for bad in [
            &b"42"[..],
            b"11000000000000042",
            b"0000000000000042",
            b"100000000000004x",
            b"",
        ] {
            assert_eq!(seq_named_by(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn required_placeholders() {
        for (src, missing) in [
            ("{seq}{ts}", "{conn}"),
            ("{conn}{ts}", "{seq}"),
            ("{conn}{seq}{intended}", "{ts}"),
            ("", "{conn}"),
        ] {
            let e = err(src);
            assert!(e.starts_with(&format!("template: needs {missing}")), "{e}");
            assert!(!e.contains("at byte"), "{e}");
        }
        assert!(Template::parse("{ts}{seq}{conn}").is_ok());
    }

    #[test]
    fn size_limits() {
        let big = format!("{{conn}}{{seq}}{{ts}}{{pad:{}}}", MAX_RENDERED);
        let e = err(&big);
        assert!(e.contains("longer than 64 MiB"), "{e}");
        assert!(e.ends_with("at byte 15"), "{e}");
        let e = err("{conn}{seq}{ts}{pad:99999999999999999999999}");
        assert!(e.contains("longer than the 64 MiB"), "{e}");
        let ok = format!("{{conn}}{{seq}}{{ts}}{{pad:{}}}", 1 << 20);
        assert_eq!(
            Template::parse(&ok).unwrap().len(),
            11 + 16 + 16 + (1 << 20)
        );
        assert_eq!(Template::parse("{conn}{seq}{ts}{pad:0}").unwrap().len(), 43);
    }

    #[test]
    fn utf8_survives_rendering() {
        let src = "héllo 🦀 {conn} ünïcödé {seq} ✓ {ts} {pad:30} ∎";
        let t = Template::parse(src).unwrap();
        let st = stamp(u32::MAX, 99, 1 << 40, 1 << 40);
        let out = t.render_to_string(st);
        assert!(out.starts_with("héllo 🦀 14294967295 ünïcödé"));
        assert!(out.ends_with(" ∎"));
        assert_eq!(t.decode(out.as_bytes()).unwrap().seq, 99);
    }

    #[test]
    fn decode_rejects_what_is_not_ours() {
        let t = Template::parse(CHAT).unwrap();
        let st = stamp(3, 4, 5, 5);
        let good = t.render_to_string(st).into_bytes();
        assert_eq!(t.decode(&good), Some(st));
        // Shorter, longer.
        assert_eq!(t.decode(&good[1..]), None);
        let mut longer = good.clone();
        longer.push(b' ');
        assert_eq!(t.decode(&longer), None);
        // Literal text next to a number changed.
        let mut other = good.clone();
        let at = t.seq_at - 2;
        other[at] = b'X';
        assert_eq!(t.decode(&other), None);
        // A number that is not one of ours: leading zero, a letter.
        for (off, c) in [
            (t.seq_at, b'0'),
            (t.ts_at.unwrap() + 5, b'x'),
            (t.conn_at.unwrap(), b'9'),
        ] {
            let mut bad = good.clone();
            bad[off] = c;
            assert_eq!(t.decode(&bad), None, "byte {off} = {}", c as char);
        }
        // The default text header is not a template message.
        assert_eq!(t.decode(&[b'a'; 60]), None);
        assert_eq!(t.decode(b""), None);
    }

    #[test]
    fn guards_stay_on_literal_bytes() {
        let t = Template::parse("{conn}{seq}{ts}").unwrap();
        assert!(t.guards.is_empty());
        let t = Template::parse("x{conn}ab{seq}{ts}{intended}yz").unwrap();
        for &(s, e) in t.guards.iter() {
            for f in t.fields.iter() {
                assert!(e <= f.at || s >= f.at + f.what.width(), "{s}..{e}");
            }
        }
        assert!(t.guards.contains(&(0, 1)));
        assert!(t.guards.contains(&(12, 14)));
        assert_eq!(*t.guards.last().unwrap(), (t.len() - 2, t.len()));
    }

    #[test]
    fn round_trips_over_many_stamps() {
        let templates = [
            CHAT,
            r#"{"t":{ts},"i":{intended},"c":{conn},"s":{seq}}"#,
            "{conn}{seq}{ts}{intended}",
            "{intended}{pad:3}{seq}{seq}{ts}{conn}{conn}",
        ];
        // xorshift: deterministic, spread over the whole range of each field.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for src in templates {
            let t = Template::parse(src).unwrap();
            let mut buf = vec![0u8; t.len()];
            for k in 0..20_000u64 {
                let r = next();
                let edge = [0, 1, 9, 10, 99, WIDE_MAX - 1, WIDE_MAX][(k % 7) as usize];
                let st = Stamp {
                    conn: if k % 5 == 0 { u32::MAX } else { r as u32 },
                    seq: if k % 3 == 0 { edge } else { k },
                    ts: r % (WIDE_MAX + 1),
                    intended: if t.has_intended() {
                        next() % (WIDE_MAX + 1)
                    } else {
                        r % (WIDE_MAX + 1)
                    },
                };
                t.render(st, &mut buf);
                assert!(std::str::from_utf8(&buf).is_ok());
                assert_eq!(t.decode(&buf), Some(st), "{src}: {st:?}");
                if src.starts_with("{\"") {
                    serde_json::from_slice::<serde_json::Value>(&buf).unwrap();
                }
            }
        }
    }

    #[test]
    fn values_past_the_range_saturate() {
        let t = Template::parse("{conn}{seq}{ts}").unwrap();
        let out = t.render_to_string(stamp(0, u64::MAX, WIDE_MAX + 1, 0));
        assert_eq!(out.len(), t.len());
        let back = t.decode(out.as_bytes()).unwrap();
        assert_eq!((back.seq, back.ts), (WIDE_MAX, WIDE_MAX));
    }
}
