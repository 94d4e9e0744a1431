//! One field of a JSON message, found by a JSON Pointer (RFC 6901: `/id`,
//! `/params/seq`, `/data/0/id`) in the message's bytes, without building a
//! document.
//!
//! Why it exists: the load matches replies to their requests and reads sequence
//! and time fields from every message it receives. Parsing each reply into a
//! `serde_json::Value` costs a tree of allocations per message on the load's hot
//! path; here a lookup walks the text once, skips whatever is off the path with
//! tight byte loops, stops at the value and borrows it. Nothing is allocated
//! unless a string's escapes are asked to be resolved.
//!
//! What it checks: the objects and arrays on the path (keys, colons, commas) and
//! the value found; values skipped over are checked only for balanced brackets
//! and closed strings; after the value, nothing but the next `,` or closing
//! bracket is read. A leaf: it imports nothing of wsherd's (vocab/ imports
//! nothing above it), only std.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// How deep objects and arrays may nest, counted from the document's top; a
/// lookup that meets deeper nesting finds nothing.
pub const MAX_DEPTH: usize = 128;

/// A parsed JSON Pointer (RFC 6901), e.g. `/params/seq`, `/data/0/id`, `` (the
/// whole document). Its tokens are kept decoded (`~1` is `/`, `~0` is `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<Token>,
}

/// One reference token: the key it names in an object, and the index it names
/// in an array if it is one (decimal, no leading zeros; `-` never is).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    key: String,
    index: Option<usize>,
}

impl Pointer {
    /// Parses a pointer as written; errors say what is wrong and how to fix it.
    pub fn parse(s: &str) -> Result<Pointer, String> {
        let Some(rest) = s.strip_prefix('/') else {
            if s.is_empty() {
                return Ok(Pointer {
                    text: String::new(),
                    tokens: Vec::new(),
                });
            }
            if let Some(frag) = s.strip_prefix('#') {
                return Err(format!(
                    "JSON pointer `{s}` is written as a URI fragment; drop the `#` (try `{frag}`)"
                ));
            }
            return Err(format!(
                "JSON pointer `{s}` must start with `/` (try `/{s}`)"
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            let mut key = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    key.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => key.push('~'),
                    Some('1') => key.push('/'),
                    _ => {
                        return Err(format!(
                            "JSON pointer `{s}` has a `~` not followed by 0 or 1; \
                             write `~0` for a `~` in a key and `~1` for a `/`"
                        ))
                    }
                }
            }
            let index = array_index(&key);
            tokens.push(Token { key, index });
        }
        Ok(Pointer {
            text: s.to_string(),
            tokens,
        })
    }

    /// The pointer as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The reference tokens, decoded (`/a~1b/0` gives `a/b`, `0`).
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().map(|t| t.key.as_str())
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Pointer {
    type Err = String;
    fn from_str(s: &str) -> Result<Pointer, String> {
        Pointer::parse(s)
    }
}

/// A token as an array index: `0`, or digits without a leading zero that fit.
fn array_index(token: &str) -> Option<usize> {
    let b = token.as_bytes();
    if b.is_empty() || (b[0] == b'0' && b.len() > 1) || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    token.parse().ok()
}

/// The value found, borrowing the document's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// The number as written (`-12.5e3`).
    Number(&'a [u8]),
    /// The string as written, quotes included and escapes not resolved, so that
    /// [`Value::raw`] can return it; [`Value::str_content`] is what lies between
    /// the quotes, [`Value::as_str`] that with its escapes resolved.
    Str(&'a [u8]),
    Bool(bool),
    Null,
    /// The whole object as written, braces included.
    Object(&'a [u8]),
    /// The whole array as written, brackets included.
    Array(&'a [u8]),
}

impl<'a> Value<'a> {
    /// An integer: a JSON number without fraction or exponent that fits u64, or a
    /// string whose content is such a number (servers often send ids as strings).
    pub fn as_u64(&self) -> Option<u64> {
        let t = self.numeric_text()?;
        if t.first() == Some(&b'-') || number_end(t, 0) != Some(t.len()) {
            return None;
        }
        digits_u64(t)
    }

    /// As [`Value::as_u64`], signed: `-5`, `"-5"`.
    pub fn as_i64(&self) -> Option<i64> {
        let t = self.numeric_text()?;
        if number_end(t, 0) != Some(t.len()) {
            return None;
        }
        let (neg, digits) = match t.strip_prefix(b"-") {
            Some(d) => (true, d),
            None => (false, t),
        };
        let m = i128::from(digits_u64(digits)?);
        i64::try_from(if neg { -m } else { m }).ok()
    }

    /// A number, or a string whose content is a JSON number, as f64 (fractions
    /// and exponents allowed); None if it does not fit a finite f64.
    pub fn as_f64(&self) -> Option<f64> {
        let t = self.numeric_text()?;
        if number_end(t, 0) != Some(t.len()) {
            return None;
        }
        let v: f64 = std::str::from_utf8(t).ok()?.parse().ok()?;
        v.is_finite().then_some(v)
    }

    /// A string's content with its escapes resolved (borrowed when it has none);
    /// None for other values, invalid escapes, lone surrogates or invalid UTF-8.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        let c = self.str_content()?;
        if !c.contains(&b'\\') {
            return std::str::from_utf8(c).ok().map(Cow::Borrowed);
        }
        let mut out = Vec::with_capacity(c.len());
        if !unescape(c, |piece| {
            out.extend_from_slice(piece);
            true
        })? {
            return None;
        }
        String::from_utf8(out).ok().map(Cow::Owned)
    }

    /// A string's content between its quotes, escapes not resolved.
    pub fn str_content(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Str(q) => q.strip_prefix(b"\"")?.strip_suffix(b"\""),
            _ => None,
        }
    }

    /// The value's JSON text as written (strings with their quotes), for equality
    /// checks against an expected JSON value and for reports.
    pub fn raw(&self) -> &'a [u8] {
        match *self {
            Value::Number(t) | Value::Str(t) | Value::Object(t) | Value::Array(t) => t,
            Value::Bool(true) => b"true",
            Value::Bool(false) => b"false",
            Value::Null => b"null",
        }
    }

    /// A number's text, or a string's content when it has no escapes.
    fn numeric_text(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Number(t) => Some(t),
            Value::Str(_) => self.str_content().filter(|c| !c.contains(&b'\\')),
            _ => None,
        }
    }
}

/// Decimal digits (at least one) as u64; None on anything else or overflow.
fn digits_u64(d: &[u8]) -> Option<u64> {
    if d.is_empty() {
        return None;
    }
    d.iter().try_fold(0u64, |acc, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// Finds the value at `ptr` in `doc` (JSON text; whitespace around it allowed).
///
/// None if the document is not JSON, is malformed on the way to the value, or has
/// no such path. Stops at the value; does not validate the rest: values skipped
/// on the way are checked only for balanced brackets and closed strings, and
/// nothing after the value is read beyond the next `,` or closing bracket (for
/// the empty pointer, the value is the document, so only whitespace may follow).
/// Object keys are compared with their escapes resolved; the first of duplicate
/// keys wins. Allocates nothing.
pub fn lookup<'a>(doc: &'a [u8], ptr: &Pointer) -> Option<Value<'a>> {
    let mut i = skip_ws(doc, 0);
    let mut closer = None;
    for (depth, tok) in ptr.tokens.iter().enumerate() {
        if depth >= MAX_DEPTH {
            return None;
        }
        (i, closer) = match *doc.get(i)? {
            b'{' => (
                find_key(doc, i + 1, tok.key.as_bytes(), depth + 1)?,
                Some(b'}'),
            ),
            b'[' => (find_index(doc, i + 1, tok.index?, depth + 1)?, Some(b']')),
            _ => return None,
        };
    }
    let (value, end) = value_at(doc, i, ptr.tokens.len())?;
    let next = skip_ws(doc, end);
    let ok = match (closer, doc.get(next)) {
        (None, None) => true,
        (Some(c), Some(&b)) => b == b',' || b == c,
        _ => false,
    };
    ok.then_some(value)
}

/// In an object whose `{` is just before `i`: where the value of `key` starts.
fn find_key(doc: &[u8], i: usize, key: &[u8], depth: usize) -> Option<usize> {
    let mut i = skip_ws(doc, i);
    if *doc.get(i)? == b'}' {
        return None;
    }
    loop {
        if *doc.get(i)? != b'"' {
            return None;
        }
        let (end, escaped) = scan_string(doc, i + 1)?;
        let k = &doc[i + 1..end];
        let hit = if escaped {
            unescaped_eq(k, key)?
        } else {
            k == key
        };
        i = skip_ws(doc, end + 1);
        if *doc.get(i)? != b':' {
            return None;
        }
        i = skip_ws(doc, i + 1);
        if hit {
            return Some(i);
        }
        i = skip_ws(doc, skip_value(doc, i, depth)?);
        if *doc.get(i)? != b',' {
            return None; // `}` (the key is absent) or malformed
        }
        i = skip_ws(doc, i + 1);
    }
}

/// In an array whose `[` is just before `i`: where element `n` starts.
fn find_index(doc: &[u8], i: usize, n: usize, depth: usize) -> Option<usize> {
    let mut i = skip_ws(doc, i);
    if *doc.get(i)? == b']' {
        return None;
    }
    for _ in 0..n {
        i = skip_ws(doc, skip_value(doc, i, depth)?);
        if *doc.get(i)? != b',' {
            return None; // `]` (out of range) or malformed
        }
        i = skip_ws(doc, i + 1);
    }
    Some(i)
}

/// The value starting at `i`, and where it ends.
fn value_at(doc: &[u8], i: usize, depth: usize) -> Option<(Value<'_>, usize)> {
    let end = match *doc.get(i)? {
        b'"' => scan_string(doc, i + 1)?.0 + 1,
        _ => skip_value(doc, i, depth)?,
    };
    let text = doc.get(i..end)?;
    let v = match *text.first()? {
        b'"' => Value::Str(text),
        b'{' => Value::Object(text),
        b'[' => Value::Array(text),
        b't' => Value::Bool(true),
        b'f' => Value::Bool(false),
        b'n' => Value::Null,
        _ => Value::Number(text),
    };
    Some((v, end))
}

/// Past the value starting at `i`, inside `depth` open objects and arrays
/// (checked no more than skipping needs: strings only for their end).
fn skip_value(doc: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *doc.get(i)? {
        b'"' => skip_string(doc, i + 1).map(|end| end + 1),
        b'{' | b'[' => skip_container(doc, i, depth),
        b't' => literal(doc, i, b"true"),
        b'f' => literal(doc, i, b"false"),
        b'n' => literal(doc, i, b"null"),
        _ => number_end(doc, i),
    }
}

fn literal(doc: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (doc.get(i..i + word.len())? == word).then_some(i + word.len())
}

fn skip_ws(doc: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = doc.get(i) {
        i += 1;
    }
    i
}

/// Past a JSON number starting at `i` (`-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`).
fn number_end(s: &[u8], mut i: usize) -> Option<usize> {
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    match *s.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits_end(s, i + 1),
        _ => return None,
    }
    if s.get(i) == Some(&b'.') {
        let j = digits_end(s, i + 1);
        if j == i + 1 {
            return None;
        }
        i = j;
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = s.get(i) {
            i += 1;
        }
        let j = digits_end(s, i);
        if j == i {
            return None;
        }
        i = j;
    }
    Some(i)
}

fn digits_end(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bytes of `w` below `n` (n <= 128) get their high bit set; the lowest set bit
/// is exact (borrows only carry upward, past a byte that is itself a match).
#[inline(always)]
fn bytes_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS
}

#[inline(always)]
fn bytes_equal(w: u64, b: u8) -> u64 {
    bytes_below(w ^ (ONES * u64::from(b)), 1)
}

/// A string whose content starts at `i`: the index of its closing quote, and
/// whether it has escapes. None if it is not closed or holds a control byte.
/// Eight bytes at a time while nothing in them needs a look.
fn scan_string(doc: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        while let Some(chunk) = doc.get(i..i + 8) {
            let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let w = u64::from_le_bytes(bytes);
            let hits = bytes_equal(w, b'"') | bytes_equal(w, b'\\') | bytes_below(w, 0x20);
            if hits != 0 {
                i += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *doc.get(i)? {
            b'"' => return Some((i, escaped)),
            b'\\' => {
                doc.get(i + 1)?;
                escaped = true;
                i += 2;
            }
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
}

/// The closing quote of a string whose content starts at `i`, looking at
/// nothing but quotes and backslashes: most strings in replies are short, so
/// the first bytes one by one, then eight at a time.
fn skip_string(doc: &[u8], mut i: usize) -> Option<usize> {
    let short = doc.len().min(i + 16);
    while i < short {
        match doc[i] {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    let stops = |w: u64| bytes_equal(w, b'"') | bytes_equal(w, b'\\');
    while let Some(chunk) = doc.get(i..i + 16) {
        let Ok(bytes) = <[u8; 16]>::try_from(chunk) else {
            break;
        };
        let w = u128::from_le_bytes(bytes);
        if stops(w as u64) | stops((w >> 64) as u64) != 0 {
            break;
        }
        i += 16;
    }
    loop {
        while let Some(chunk) = doc.get(i..i + 8) {
            let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let w = u64::from_le_bytes(bytes);
            let hits = stops(w);
            if hits != 0 {
                i += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *doc.get(i)? {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Past the object or array whose bracket is at `i`, inside `depth` open ones.
/// Only brackets and strings are looked at; without recursion: which of the
/// (at most [`MAX_DEPTH`]) open levels are objects is one bit each.
fn skip_container(doc: &[u8], mut i: usize, depth: usize) -> Option<usize> {
    let mut objects: u128 = 0;
    let mut level = 0usize;
    loop {
        let c = *doc.get(i)?;
        match c {
            b'"' => {
                i = skip_string(doc, i + 1)?;
            }
            b'{' | b'[' => {
                if depth + level >= MAX_DEPTH {
                    return None;
                }
                let bit = 1u128 << level;
                objects = if c == b'{' {
                    objects | bit
                } else {
                    objects & !bit
                };
                level += 1;
            }
            b'}' | b']' => {
                level = level.checked_sub(1)?;
                if (objects >> level & 1 == 1) != (c == b'}') {
                    return None;
                }
                if level == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Whether a key's content, its escapes resolved, is `key`; None if an escape is
/// invalid.
fn unescaped_eq(raw: &[u8], key: &[u8]) -> Option<bool> {
    let mut rest = key;
    let whole = unescape(raw, |piece| match rest.strip_prefix(piece) {
        Some(r) => {
            rest = r;
            true
        }
        None => false,
    })?;
    Some(whole && rest.is_empty())
}

/// Feeds a string's content to `sink` in pieces, escapes resolved (as UTF-8).
/// Some(false) if `sink` stopped it by returning false, None on an invalid
/// escape (unknown, short, or a lone surrogate).
fn unescape(raw: &[u8], mut sink: impl FnMut(&[u8]) -> bool) -> Option<bool> {
    let mut run = 0;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            i += 1;
            continue;
        }
        if !sink(&raw[run..i]) {
            return Some(false);
        }
        let mut utf8 = [0u8; 4];
        let (piece, len): (&[u8], usize) = match *raw.get(i + 1)? {
            b'"' => (b"\"", 2),
            b'\\' => (b"\\", 2),
            b'/' => (b"/", 2),
            b'b' => (b"\x08", 2),
            b'f' => (b"\x0c", 2),
            b'n' => (b"\n", 2),
            b'r' => (b"\r", 2),
            b't' => (b"\t", 2),
            b'u' => {
                let hi = hex4(raw.get(i + 2..i + 6)?)?;
                let (code, len) = match hi {
                    0xD800..=0xDBFF => {
                        if raw.get(i + 6..i + 8)? != b"\\u" {
                            return None;
                        }
                        let lo = hex4(raw.get(i + 8..i + 12)?)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return None;
                        }
                        (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => (hi, 6),
                };
                (char::from_u32(code)?.encode_utf8(&mut utf8).as_bytes(), len)
            }
            _ => return None,
        };
        if !sink(piece) {
            return Some(false);
        }
        i += len;
        run = i;
    }
    Some(sink(&raw[run..]))
}

fn hex4(h: &[u8]) -> Option<u32> {
    h.iter()
        .try_fold(0u32, |acc, &c| Some(acc << 4 | char::from(c).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as J;

    fn ptr(p: &str) -> Pointer {
        Pointer::parse(p).unwrap()
    }

    fn at<'a>(doc: &'a str, p: &str) -> Option<Value<'a>> {
        lookup(doc.as_bytes(), &ptr(p))
    }

    fn raw_at(doc: &str, p: &str) -> Option<String> {
        at(doc, p).map(|v| String::from_utf8_lossy(v.raw()).into_owned())
    }

    #[test]
    fn pointers_parse_and_say_what_is_wrong() {
        let p = ptr("/a~1b/~0/~01/0/");
        assert_eq!(p.tokens().collect::<Vec<_>>(), ["a/b", "~", "~1", "0", ""]);
        assert_eq!(p.as_str(), "/a~1b/~0/~01/0/");
        assert_eq!(p.to_string(), "/a~1b/~0/~01/0/");
        assert_eq!("/x".parse::<Pointer>(), Ok(ptr("/x")));
        assert_eq!(ptr("").tokens().count(), 0);
        assert_eq!(ptr("/").tokens().collect::<Vec<_>>(), [""]);
        let e = Pointer::parse("id").unwrap_err();
        assert!(e.contains("must start with `/` (try `/id`)"), "{e}");
        let e = Pointer::parse("#/id").unwrap_err();
        assert!(e.contains("drop the `#` (try `/id`)"), "{e}");
        for bad in ["/a~2", "/a~", "/~/x"] {
            let e = Pointer::parse(bad).unwrap_err();
            assert!(e.contains("`~0`") && e.contains("`~1`"), "{e}");
        }
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("17"), Some(17));
        for no in ["", "-", "01", "+1", "1a", "99999999999999999999999"] {
            assert_eq!(array_index(no), None, "{no}");
        }
    }

    #[test]
    fn finds_fields_in_nested_objects_and_arrays() {
        let rpc = r#"{"jsonrpc":"2.0","result":{"items":[{"id":1},{"id":2,"tags":["a","b"]}]},"id":12345}"#;
        assert_eq!(at(rpc, "/id"), Some(Value::Number(b"12345")));
        assert_eq!(at(rpc, "/id").unwrap().as_u64(), Some(12345));
        assert_eq!(at(rpc, "/result/items/1/id").unwrap().as_u64(), Some(2));
        assert_eq!(
            raw_at(rpc, "/result/items/1/tags/1").as_deref(),
            Some(r#""b""#)
        );
        assert_eq!(
            raw_at(rpc, "/result/items/0").as_deref(),
            Some(r#"{"id":1}"#)
        );
        assert_eq!(
            at(rpc, "/result/items/1/tags"),
            Some(Value::Array(br#"["a","b"]"#))
        );
        assert_eq!(
            at(rpc, "/jsonrpc").unwrap().as_str().as_deref(),
            Some("2.0")
        );
        assert_eq!(at(rpc, "").map(|v| v.raw()), Some(rpc.as_bytes()));
        let all = r#"{"t":true,"f":false,"n":null,"o":{},"a":[],"":5}"#;
        assert_eq!(at(all, "/t"), Some(Value::Bool(true)));
        assert_eq!(at(all, "/f"), Some(Value::Bool(false)));
        assert_eq!(at(all, "/n"), Some(Value::Null));
        assert_eq!(at(all, "/n").unwrap().raw(), b"null");
        assert_eq!(at(all, "/o"), Some(Value::Object(b"{}")));
        assert_eq!(at(all, "/a"), Some(Value::Array(b"[]")));
        assert_eq!(at(all, "/").unwrap().as_u64(), Some(5));
        // The first of duplicate keys wins.
        assert_eq!(raw_at(r#"{"a":1,"a":2}"#, "/a").as_deref(), Some("1"));
        // Array tokens are indexes; keys that look like them are keys in objects.
        assert_eq!(raw_at(r#"{"0":"x"}"#, "/0").as_deref(), Some(r#""x""#));
        assert_eq!(
            raw_at(r#"[[1,2],[3,[4,5]]]"#, "/1/1/0").as_deref(),
            Some("4")
        );
    }

    #[test]
    fn absent_paths_find_nothing() {
        let doc = r#"{"a":{"b":[10,20,30]},"s":"x","n":1}"#;
        for p in [
            "/nope",
            "/a/c",
            "/a/b/3",
            "/a/b/-",
            "/a/b/01",
            "/a/b/x",
            "/a/b/0/0",
            "/s/0",
            "/n/x",
            "/A",
            "/a/b/99999999999999999999",
        ] {
            assert_eq!(at(doc, p), None, "{p}");
        }
        assert_eq!(at("{}", "/a"), None);
        assert_eq!(at("[]", "/0"), None);
        assert_eq!(at("[1]", "/1"), None);
    }

    #[test]
    fn keys_are_compared_with_their_escapes_resolved() {
        let doc = r#"{"a\"b":1,"a\\b":2,"a\/b":3,"\u00e9":4,"\ud83d\ude00":5,"a~b":6,"ab\u0063d":7,"\n":8}"#;
        assert_eq!(raw_at(doc, "/a\"b").as_deref(), Some("1"));
        assert_eq!(raw_at(doc, "/a\\b").as_deref(), Some("2"));
        assert_eq!(raw_at(doc, "/a~1b").as_deref(), Some("3"));
        assert_eq!(raw_at(doc, "/é").as_deref(), Some("4"));
        assert_eq!(raw_at(doc, "/😀").as_deref(), Some("5"));
        assert_eq!(raw_at(doc, "/a~0b").as_deref(), Some("6"));
        assert_eq!(raw_at(doc, "/abcd").as_deref(), Some("7"));
        assert_eq!(raw_at(doc, "/\n").as_deref(), Some("8"));
        assert_eq!(at(doc, "/abc"), None);
        assert_eq!(at(doc, "/abcde"), None);
        // A key with an invalid escape on the way is a malformed document.
        assert_eq!(at(r#"{"\x":1,"a":2}"#, "/a"), None);
        assert_eq!(at(r#"{"\ud800":1,"a":2}"#, "/a"), None);
        assert_eq!(at(r#"{"\ude00":1,"a":2}"#, "/a"), None);
        assert_eq!(at(r#"{"\u00":1,"a":2}"#, "/a"), None);
    }

    #[test]
    fn strings_resolve_escapes_and_hold_brackets() {
        let doc = r#"{"s":"}{][\"\\","n":{"k":"]}\""},"e":"caf\u00e9 \ud83d\ude00\n\t\/","u":7}"#;
        assert_eq!(raw_at(doc, "/u").as_deref(), Some("7"));
        let s = at(doc, "/s").unwrap();
        assert_eq!(s.as_str().as_deref(), Some("}{][\"\\"));
        assert_eq!(s.str_content(), Some(&br#"}{][\"\\"#[..]));
        assert_eq!(s.raw(), br#""}{][\"\\""#);
        assert_eq!(at(doc, "/n/k").unwrap().as_str().as_deref(), Some("]}\""));
        assert_eq!(
            at(doc, "/e").unwrap().as_str().as_deref(),
            Some("café 😀\n\t/")
        );
        assert!(matches!(
            at(r#"{"a":"plain"}"#, "/a").unwrap().as_str(),
            Some(Cow::Borrowed("plain"))
        ));
        for bad in [
            r#""\x""#,
            r#""\ud800""#,
            r#""\ud800\u0041""#,
            r#""\u12""#,
            r#""\"#,
        ] {
            assert_eq!(Value::Str(bad.as_bytes()).as_str(), None, "{bad}");
        }
        assert_eq!(Value::Str(b"no quotes").as_str(), None);
        // Escapes anywhere in long strings, read byte by byte or a word at a time.
        for k in 0..40 {
            for esc in [r#"\""#, r#"\\"#, r#"\\\""#, r#"\u005c"#] {
                let text = format!("{}{esc}{}", "x".repeat(k), "y".repeat(40 - k));
                let doc = format!(r#"{{"s":"{text}","t":["{text}"],"u":7,"v":"{text}"}}"#);
                assert_eq!(raw_at(&doc, "/u").as_deref(), Some("7"), "{doc}");
                let want = serde_json::from_str::<J>(&doc).unwrap()["v"].clone();
                assert_eq!(at(&doc, "/v").unwrap().as_str().as_deref(), want.as_str());
                let key = format!(r#"{{"{text}":1,"k":2}}"#);
                assert_eq!(raw_at(&key, "/k").as_deref(), Some("2"), "{key}");
            }
        }
        assert_eq!(Value::Number(b"1").as_str(), None);
        // Raw control bytes are not JSON; invalid UTF-8 is skipped but not a str.
        assert_eq!(at("{\"a\":\"x\ny\"}", "/a"), None);
        let bytes = b"{\"a\":\"\xff\",\"b\":1}";
        assert_eq!(lookup(bytes, &ptr("/b")), Some(Value::Number(b"1")));
        assert_eq!(lookup(bytes, &ptr("/a")).unwrap().as_str(), None);
    }

    #[test]
    fn numbers_read_as_integers_and_floats() {
        let doc = r#"{"a":-12,"b":0,"c":1.5,"d":-1.5e-3,"e":1E+2,"max":18446744073709551615,
            "over":18446744073709551616,"min":-9223372036854775808,"one":1.0,"neg0":-0}"#;
        let v = |p| at(doc, p).unwrap();
        assert_eq!(v("/a").as_i64(), Some(-12));
        assert_eq!(v("/a").as_u64(), None);
        assert_eq!(v("/a").as_f64(), Some(-12.0));
        assert_eq!(v("/b").as_u64(), Some(0));
        assert_eq!(v("/c").as_f64(), Some(1.5));
        assert_eq!(v("/c").as_u64(), None);
        assert_eq!(v("/d").as_f64(), Some(-1.5e-3));
        assert_eq!(v("/d").raw(), b"-1.5e-3");
        assert_eq!(v("/e").as_f64(), Some(100.0));
        assert_eq!(v("/e").as_u64(), None);
        assert_eq!(v("/max").as_u64(), Some(u64::MAX));
        assert_eq!(v("/max").as_i64(), None);
        assert_eq!(v("/over").as_u64(), None);
        assert_eq!(v("/over").as_f64(), Some(18446744073709551616.0));
        assert_eq!(v("/min").as_i64(), Some(i64::MIN));
        assert_eq!(v("/one").as_u64(), None);
        assert_eq!(v("/neg0").as_i64(), Some(0));
        assert_eq!(v("/neg0").as_u64(), None);
        assert_eq!(at(r#"{"x":1e999}"#, "/x").unwrap().as_f64(), None);
        for bad in [
            "01", "1.", ".5", "-", "+1", "1e", "1e+", "-a", "0x1", "1.5.2", "Infinity",
        ] {
            assert_eq!(at(&format!(r#"{{"x":{bad}}}"#), "/x"), None, "{bad}");
            assert_eq!(at(&format!(r#"{{"x":{bad},"y":1}}"#), "/y"), None, "{bad}");
        }
        // Ids sent as strings read as numbers when their content is one.
        let ids =
            r#"{"a":"12345","b":"012","c":"-5","d":"1.5","e":"abc","f":"","g":"\u0031","h":" 1"}"#;
        let v = |p| at(ids, p).unwrap();
        assert_eq!(v("/a").as_u64(), Some(12345));
        assert_eq!(v("/a").as_i64(), Some(12345));
        assert_eq!(v("/b").as_u64(), None);
        assert_eq!(v("/c").as_i64(), Some(-5));
        assert_eq!(v("/c").as_u64(), None);
        assert_eq!(v("/d").as_f64(), Some(1.5));
        assert_eq!(v("/d").as_u64(), None);
        for p in ["/e", "/f", "/g", "/h"] {
            assert_eq!(
                (v(p).as_u64(), v(p).as_i64(), v(p).as_f64()),
                (None, None, None)
            );
        }
        assert_eq!(Value::Bool(true).as_u64(), None);
        assert_eq!(Value::Null.as_f64(), None);
    }

    #[test]
    fn whitespace_goes_anywhere_and_the_empty_pointer_is_the_document() {
        let doc = " \n\t{ \"a\" \r\n : \t [ 1 , 2 ] , \"b\" : 3 \n} \n";
        assert_eq!(raw_at(doc, "/a/1").as_deref(), Some("2"));
        assert_eq!(raw_at(doc, "/b").as_deref(), Some("3"));
        assert_eq!(
            raw_at(doc, "").as_deref(),
            Some("{ \"a\" \r\n : \t [ 1 , 2 ] , \"b\" : 3 \n}")
        );
        assert_eq!(at(" 5 ", ""), Some(Value::Number(b"5")));
        assert_eq!(at("\"x\"", ""), Some(Value::Str(b"\"x\"")));
        assert_eq!(at("null", ""), Some(Value::Null));
        assert_eq!(at("5 x", ""), None);
        assert_eq!(at("{} {}", ""), None);
    }

    #[test]
    fn malformed_and_truncated_documents_find_nothing() {
        for (doc, p) in [
            ("", ""),
            ("   ", ""),
            ("", "/a"),
            ("{", "/a"),
            ("{\"a\"", "/a"),
            ("{\"a\":", "/a"),
            ("{\"a\":}", "/a"),
            ("{\"a\" 1}", "/a"),
            ("{a:1}", "/a"),
            ("{'a':1}", "/a"),
            ("[1 2]", "/1"),
            ("[1,]", "/1"),
            ("[,1]", "/1"),
            ("{\"a\":1,,\"b\":2}", "/b"),
            ("{\"a\":1 \"b\":2}", "/b"),
            ("{\"a\":1,}", "/b"),
            ("{\"a\":1]", "/a"),
            ("[1}", "/0"),
            ("{\"a\":[},\"b\":1}", "/b"),
            ("{\"a\":{]},\"b\":1}", "/b"),
            ("{\"a\":\"x}\",\"b\":1", "/b"),
            ("{\"a\":12", "/a"),
            ("{\"a\":\"xy", "/a"),
            ("{\"a\":tru", "/a"),
            ("{\"a\":nul}", "/a"),
            ("{\"a\":truex}", "/a"),
            ("{\"a\":{\"b\":1}", "/a"),
            ("{\"a\":[1,2", "/a"),
            ("{\"a\":\"x\"y}", "/a"),
            ("{\"a\":1x}", "/a"),
            ("\"abc", ""),
            ("tru", ""),
            ("}", ""),
            ("]", "/0"),
            ("x", ""),
        ] {
            assert_eq!(at(doc, p), None, "{doc:?} at {p:?}");
        }
        // It stops at the value: what follows is not read.
        assert_eq!(raw_at("{\"a\":{\"b\":1}", "/a/b").as_deref(), Some("1"));
        assert_eq!(raw_at("{\"a\":1,\"b\":", "/a").as_deref(), Some("1"));
        assert_eq!(raw_at("{\"a\":1}xyz", "/a").as_deref(), Some("1"));
        assert_eq!(raw_at("{\"a\":1,\"b\":[}", "/a").as_deref(), Some("1"));
    }

    #[test]
    fn nesting_deeper_than_the_limit_finds_nothing() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let zeros = |n: usize| "/0".repeat(n);
        assert!(at(&nested(MAX_DEPTH), "").is_some());
        assert_eq!(at(&nested(MAX_DEPTH + 1), ""), None);
        assert_eq!(
            raw_at(&nested(MAX_DEPTH), &zeros(MAX_DEPTH)).as_deref(),
            Some("1")
        );
        assert_eq!(at(&nested(MAX_DEPTH + 1), &zeros(MAX_DEPTH + 1)), None);
        assert_eq!(at(&nested(200), &zeros(10)), None);
        let skipped = format!("{{\"a\":{},\"b\":2}}", nested(MAX_DEPTH - 1));
        assert_eq!(raw_at(&skipped, "/b").as_deref(), Some("2"));
        let skipped = format!("{{\"a\":{},\"b\":2}}", nested(MAX_DEPTH));
        assert_eq!(at(&skipped, "/b"), None);
        // Far deeper than any stack would take recursion: still no overflow.
        assert_eq!(at(&"[".repeat(1_000_000), ""), None);
        assert_eq!(at(&"{\"a\":".repeat(100_000), &"/a".repeat(100_000)), None);
    }

    /// splitmix64: small, deterministic, good enough to shake out cases.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len())].clone()
        }
    }

    const CHARS: &[char] = &[
        'a', 'b', 'z', 'A', '0', '1', '9', ' ', '"', '\\', '/', '~', '{', '}', '[', ']', ':', ',',
        '\n', '\t', '\u{1}', '\u{1f}', '\u{7f}', 'é', '中', '😀', '\u{2028}', '\u{ffff}',
    ];

    fn gen_string(r: &mut Rng) -> String {
        match r.below(6) {
            0 => r.next().to_string(),
            1 => r.pick(&["0", "id", "seq", "-", "01", ""]).to_string(),
            _ => (0..r.below(8)).map(|_| r.pick(CHARS)).collect(),
        }
    }

    fn gen_value(r: &mut Rng, depth: usize) -> J {
        match r.below(if depth >= 4 { 6 } else { 9 }) {
            0 => J::Null,
            1 => J::Bool(r.below(2) == 0),
            2 => J::from(r.next() >> r.below(64)),
            3 => J::from(-((r.next() >> (1 + r.below(63))) as i64) - 1),
            4 => {
                let m = r.next() as f64 / u64::MAX as f64 - 0.5;
                J::from(m * 10f64.powi(r.below(80) as i32 - 40))
            }
            5 => J::String(gen_string(r)),
            6 | 7 => J::Array((0..r.below(6)).map(|_| gen_value(r, depth + 1)).collect()),
            _ => J::Object(
                (0..r.below(6))
                    .map(|_| (gen_string(r), gen_value(r, depth + 1)))
                    .collect(),
            ),
        }
    }

    /// JSON as no serializer writes it: whitespace anywhere, `\/`, and any
    /// character as `\uXXXX` (surrogate pairs above the BMP) in either case.
    fn write_wild(v: &J, r: &mut Rng, out: &mut String) {
        let ws = |r: &mut Rng, out: &mut String| {
            for _ in 0..[0, 0, 0, 1, 2][r.below(5)] {
                out.push(r.pick(&[' ', '\t', '\n', '\r']));
            }
        };
        ws(r, out);
        match v {
            J::String(s) => write_wild_str(s, r, out),
            J::Array(a) => {
                out.push('[');
                ws(r, out);
                for (k, x) in a.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    write_wild(x, r, out);
                }
                out.push(']');
            }
            J::Object(o) => {
                out.push('{');
                ws(r, out);
                for (k, (key, x)) in o.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                        ws(r, out);
                    }
                    write_wild_str(key, r, out);
                    ws(r, out);
                    out.push(':');
                    write_wild(x, r, out);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
        ws(r, out);
    }

    fn write_wild_str(s: &str, r: &mut Rng, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            let mut units = [0u16; 2];
            let as_u = |out: &mut String, r: &mut Rng, units: &[u16]| {
                for u in units {
                    let hex = format!("{u:04x}");
                    let hex = if r.below(2) == 0 {
                        hex.to_uppercase()
                    } else {
                        hex
                    };
                    out.push_str("\\u");
                    out.push_str(&hex);
                }
            };
            match c {
                '"' if r.below(2) == 0 => out.push_str("\\\""),
                '\\' if r.below(2) == 0 => out.push_str("\\\\"),
                '\n' if r.below(2) == 0 => out.push_str("\\n"),
                '\t' if r.below(2) == 0 => out.push_str("\\t"),
                '/' if r.below(2) == 0 => out.push_str("\\/"),
                '/' if r.below(2) == 0 => out.push('/'),
                c if c < ' ' || c == '"' || c == '\\' || r.below(4) == 0 => {
                    as_u(out, r, c.encode_utf16(&mut units))
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    /// Every path in `v`, as pointers.
    fn paths(v: &J, prefix: &str, out: &mut Vec<String>) {
        out.push(prefix.to_string());
        match v {
            J::Array(a) => {
                for (k, x) in a.iter().enumerate() {
                    paths(x, &format!("{prefix}/{k}"), out);
                }
            }
            J::Object(o) => {
                for (key, x) in o {
                    let tok = key.replace('~', "~0").replace('/', "~1");
                    paths(x, &format!("{prefix}/{tok}"), out);
                }
            }
            _ => {}
        }
    }

    /// Paths next to `p` that may well be absent.
    fn near_misses(p: &str, r: &mut Rng) -> String {
        let tail = r.pick(&["0", "1", "5", "-", "01", "id", "", "a~1b", "~0"]);
        match r.below(3) {
            0 => format!("{p}/{tail}"),
            1 => match p.rfind('/') {
                Some(k) => format!("{}/{tail}", &p[..k]),
                None => format!("/{tail}"),
            },
            _ if p.is_empty() => "/x".to_string(),
            _ => format!("{p}x"),
        }
    }

    /// Does `lookup` agree with serde_json's `pointer` on `doc`, the text of `v`?
    fn agrees(doc: &str, v: &J, p: &str) {
        let got = lookup(doc.as_bytes(), &ptr(p));
        let want = v.pointer(p);
        let (got, want) = match (got, want) {
            (None, None) => return,
            (Some(g), Some(w)) => (g, w),
            (g, w) => panic!("{p:?} in {doc}: lookup {g:?}, serde_json {w:?}"),
        };
        let parsed: J = serde_json::from_slice(got.raw()).unwrap();
        assert_eq!(&parsed, want, "{p:?} in {doc}");
        match want {
            J::Number(n) => {
                assert_eq!(got.as_u64(), n.as_u64(), "{p:?} in {doc}");
                assert_eq!(got.as_i64(), n.as_i64(), "{p:?} in {doc}");
                assert_eq!(got.as_f64(), n.as_f64(), "{p:?} in {doc}");
            }
            J::String(s) => {
                assert_eq!(got.as_str().as_deref(), Some(s.as_str()), "{p:?} in {doc}");
                let int = s.bytes().all(|c| c.is_ascii_digit())
                    && (s == "0" || !s.starts_with('0'))
                    && !got.str_content().unwrap().contains(&b'\\');
                let want = if int { s.parse().ok() } else { None };
                assert_eq!(got.as_u64(), want, "{p:?} in {doc}");
            }
            _ => assert_eq!(got.as_u64(), None),
        }
    }

    #[test]
    fn agrees_with_serde_json_on_random_documents() {
        let mut r = Rng(0x5eed);
        let mut checked = 0;
        for _ in 0..1000 {
            let v = gen_value(&mut r, 0);
            let mut all = Vec::new();
            paths(&v, "", &mut all);
            let mut wild = String::new();
            write_wild(&v, &mut r, &mut wild);
            assert_eq!(serde_json::from_str::<J>(&wild).unwrap(), v, "{wild}");
            let texts = [
                serde_json::to_string(&v).unwrap(),
                serde_json::to_string_pretty(&v).unwrap(),
                wild,
            ];
            for _ in 0..12 {
                let p = r.pick(&all);
                let p = if r.below(4) == 0 {
                    near_misses(&p, &mut r)
                } else {
                    p
                };
                for doc in &texts {
                    agrees(doc, &v, &p);
                    checked += 1;
                }
            }
        }
        assert!(checked > 30_000);
    }

    /// Exercises every accessor, so a panic anywhere shows.
    fn poke(v: Option<Value<'_>>) {
        if let Some(v) = v {
            let _ = (v.as_u64(), v.as_i64(), v.as_f64(), v.as_str(), v.raw());
        }
    }

    #[test]
    fn never_panics_on_random_bytes_truncations_and_mutations() {
        let mut r = Rng(0xbad);
        let ptrs: Vec<Pointer> = ["", "/", "/a", "/0", "/a/0", "/\"", "/0/0/0", "/é"]
            .into_iter()
            .map(ptr)
            .collect();
        let alphabet = b"{}[]\"\\:,0123456789-+.eEtrufalsn u/\n\x01\xff\xc3\xa9a";
        for _ in 0..3000 {
            let len = r.below(40);
            let doc: Vec<u8> = (0..len)
                .map(|_| {
                    if r.below(8) == 0 {
                        r.next() as u8
                    } else {
                        r.pick(alphabet)
                    }
                })
                .collect();
            for p in &ptrs {
                poke(lookup(&doc, p));
            }
        }
        for _ in 0..80 {
            let v = gen_value(&mut r, 0);
            let mut all = Vec::new();
            paths(&v, "", &mut all);
            let mut doc = String::new();
            write_wild(&v, &mut r, &mut doc);
            let doc = doc.into_bytes();
            let picked: Vec<Pointer> = (0..4).map(|_| ptr(r.pick(&all).as_str())).collect();
            // A prefix finds nothing, or what the whole document has there (save
            // a bare number that the cut shortened: no text can tell).
            for cut in 0..doc.len() {
                for p in &picked {
                    let got = lookup(&doc[..cut], p);
                    poke(got);
                    if got.is_some() && !(p.tokens.is_empty() && v.is_number()) {
                        assert_eq!(got, lookup(&doc, p), "{:?} at {p}", &doc[..cut]);
                    }
                }
            }
            for _ in 0..200 {
                let mut m = doc.clone();
                for _ in 0..1 + r.below(3) {
                    let k = r.below(m.len() + 1);
                    match r.below(3) {
                        0 if k < m.len() => m[k] = r.pick(alphabet),
                        1 if k < m.len() => drop(m.remove(k)),
                        _ => m.insert(k, r.pick(alphabet)),
                    }
                }
                for p in picked.iter().chain(&ptrs) {
                    poke(lookup(&m, p));
                }
            }
        }
    }
}
