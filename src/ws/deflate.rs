//! permessage-deflate (RFC 7692), for both sides: the offer a client makes, the
//! negotiation a server does and the check a client makes of its answer, and the
//! codec (raw deflate with a sync flush, the trailing `00 00 ff ff` taken off on
//! the way out and put back on the way in) over flate2's zlib-rs backend.
//!
//! A side that keeps no context between messages (`*_no_context_takeover`) can
//! share one codec among all its connections and reset it per message; one that
//! keeps context needs a codec per connection, whose zlib state is the memory cost
//! the report states (`state_bytes`).
//!
//! Part of `ws/`, the wire layer: it imports nothing of wsherd's.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

/// The extension's name, as it appears in `Sec-WebSocket-Extensions`.
pub const NAME: &str = "permessage-deflate";
/// What a sync flush ends with, and what the sender takes off (RFC 7692 7.2.1).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
/// zlib's memLevel for our compressors (its default).
const MEM_LEVEL: u32 = 8;

/// What a client offers (`--deflate[=OPTIONS]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offer {
    /// Ask the server not to keep context between its messages.
    pub server_no_context_takeover: bool,
    /// Promise to keep no context between our messages.
    pub client_no_context_takeover: bool,
    /// The largest window our compressor uses (8-15); None: offer the bare
    /// parameter, so the server may pick one.
    pub client_max_window_bits: Option<u8>,
    /// Ask the server to use at most this window for its messages.
    pub server_max_window_bits: Option<u8>,
}

impl Offer {
    /// The zlib state one connection may hold under this offer: a compressor
    /// unless we promised no context, a decompressor unless we asked the server
    /// to keep none, each at the window offered (15 when left to the server).
    /// The server may grant less, never more.
    pub fn state_bytes_at_most(&self) -> usize {
        let tx = if self.client_no_context_takeover {
            0
        } else {
            compressor_bytes(self.client_max_window_bits.unwrap_or(15))
        };
        let rx = if self.server_no_context_takeover {
            0
        } else {
            decompressor_bytes(self.server_max_window_bits.unwrap_or(15))
        };
        tx + rx
    }

    /// Parses `--deflate` options: a comma-separated list of the RFC's parameter
    /// names (`client_no_context_takeover`, `server_no_context_takeover`,
    /// `client_max_window_bits=N`, `server_max_window_bits=N`).
    pub fn parse(list: &str) -> Result<Offer, String> {
        let mut o = Offer::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (item, None),
            };
            let bits = |v: Option<&str>| -> Result<u8, String> {
                match v.map(str::parse::<u8>) {
                    Some(Ok(b)) if (8..=15).contains(&b) => Ok(b),
                    _ => Err(format!("'{item}': the window is 8 to 15 bits ({name}=12)")),
                }
            };
            match (name, value) {
                ("client_no_context_takeover", None) => o.client_no_context_takeover = true,
                ("server_no_context_takeover", None) => o.server_no_context_takeover = true,
                ("client_max_window_bits", v) => o.client_max_window_bits = Some(bits(v)?),
                ("server_max_window_bits", v) => o.server_max_window_bits = Some(bits(v)?),
                _ => {
                    return Err(format!(
                        "'{item}' is not a permessage-deflate option; use client_no_context_takeover, \
                         server_no_context_takeover, client_max_window_bits=N, server_max_window_bits=N"
                    ))
                }
            }
        }
        Ok(o)
    }

    /// The request's header line (with its CRLF).
    pub fn header_line(&self) -> String {
        let mut s = format!("Sec-WebSocket-Extensions: {NAME}");
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        match self.client_max_window_bits {
            Some(b) => s.push_str(&format!("; client_max_window_bits={b}")),
            None => s.push_str("; client_max_window_bits"),
        }
        if let Some(b) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={b}"));
        }
        s.push_str("\r\n");
        s
    }
}

/// What a handshake settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// Windows of the two directions' compressors (9-15; 8 is taken as 9, as
    /// zlib does for raw deflate).
    pub client_max_window_bits: u8,
    pub server_max_window_bits: u8,
}

/// The parameters of one extension in a header value: (name, value).
fn params(ext: &str) -> Vec<(String, Option<String>)> {
    ext.split(';')
        .skip(1)
        .map(|p| {
            let p = p.trim();
            match p.split_once('=') {
                Some((n, v)) => (
                    n.trim().to_ascii_lowercase(),
                    Some(v.trim().trim_matches('"').to_string()),
                ),
                None => (p.to_ascii_lowercase(), None),
            }
        })
        .collect()
}

fn window(v: Option<&str>) -> Option<u8> {
    match v?.parse::<u8>() {
        Ok(b) if (8..=15).contains(&b) => Some(b.max(9)),
        _ => None,
    }
}

/// Checks a server's `Sec-WebSocket-Extensions` answer against `offer` (None: we
/// offered nothing). `Ok(None)`: no extension in use.
pub fn accept_answer(
    values: &[&str],
    offer: Option<&Offer>,
) -> Result<Option<Params>, &'static str> {
    let exts: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if exts.is_empty() {
        return Ok(None);
    }
    let Some(offer) = offer else {
        return Err("extension_not_offered");
    };
    if exts.len() > 1 {
        return Err("extension_not_offered");
    }
    let ext = exts[0];
    let name = ext.split(';').next().unwrap_or("").trim();
    if !name.eq_ignore_ascii_case(NAME) {
        return Err("extension_not_offered");
    }
    let mut p = Params {
        server_no_context_takeover: false,
        client_no_context_takeover: offer.client_no_context_takeover,
        client_max_window_bits: offer.client_max_window_bits.unwrap_or(15).max(9),
        server_max_window_bits: 15,
    };
    let mut seen = Vec::new();
    for (n, v) in params(ext) {
        if seen.contains(&n) {
            return Err("bad_extension_params");
        }
        seen.push(n.clone());
        match (n.as_str(), v.as_deref()) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            ("server_max_window_bits", v) => {
                p.server_max_window_bits = window(v).ok_or("bad_extension_params")?;
            }
            // Only if we offered it; the server may lower our window.
            ("client_max_window_bits", v) => {
                let b = window(v).ok_or("bad_extension_params")?;
                if offer.client_max_window_bits.is_some_and(|o| b > o.max(9)) {
                    return Err("bad_extension_params");
                }
                p.client_max_window_bits = b;
            }
            _ => return Err("bad_extension_params"),
        }
    }
    if offer
        .server_max_window_bits
        .is_some_and(|o| p.server_max_window_bits > o.max(9))
    {
        return Err("bad_extension_params");
    }
    if offer.server_no_context_takeover && !p.server_no_context_takeover {
        // We asked; RFC 7692 7.1.1.1: a server that accepts must include it.
        return Err("bad_extension_params");
    }
    Ok(Some(p))
}

/// A server's answer to a client's offers (`Sec-WebSocket-Extensions` values):
/// the first permessage-deflate offer whose parameters it accepts, as settled
/// parameters and the response header line. None: no acceptable offer.
pub fn negotiate(values: &[&str]) -> Option<(Params, String)> {
    for ext in values.iter().flat_map(|v| v.split(',')) {
        let name = ext.split(';').next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case(NAME) {
            continue;
        }
        let mut p = Params {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            client_max_window_bits: 15,
            server_max_window_bits: 15,
        };
        let mut line = format!("Sec-WebSocket-Extensions: {NAME}");
        let mut ok = true;
        let mut seen = Vec::new();
        for (n, v) in params(ext) {
            if seen.contains(&n) {
                ok = false;
                break;
            }
            seen.push(n.clone());
            match (n.as_str(), v.as_deref()) {
                ("server_no_context_takeover", None) => {
                    p.server_no_context_takeover = true;
                    line.push_str("; server_no_context_takeover");
                }
                ("client_no_context_takeover", None) => {
                    p.client_no_context_takeover = true;
                    line.push_str("; client_no_context_takeover");
                }
                ("server_max_window_bits", v) => match window(v) {
                    Some(b) => {
                        p.server_max_window_bits = b;
                        line.push_str(&format!("; server_max_window_bits={b}"));
                    }
                    None => ok = false,
                },
                ("client_max_window_bits", None) => {}
                ("client_max_window_bits", v) => match window(v) {
                    Some(b) => {
                        p.client_max_window_bits = b;
                        line.push_str(&format!("; client_max_window_bits={b}"));
                    }
                    None => ok = false,
                },
                _ => ok = false,
            }
        }
        if ok {
            line.push_str("\r\n");
            return Some((p, line));
        }
    }
    None
}

/// zlib's own estimate of a compressor's state (zconf.h), in bytes.
pub fn compressor_bytes(window_bits: u8) -> usize {
    (1 << (window_bits as u32 + 2)) + (1 << (MEM_LEVEL + 9)) + 6 * 1024
}

/// zlib's own estimate of a decompressor's state (zconf.h), in bytes.
pub fn decompressor_bytes(window_bits: u8) -> usize {
    (1 << window_bits as u32) + 7 * 1024
}

/// Which end of the connection a codec serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Codecs that connections keeping no context share, one per window size, reset
/// before each message: a shard's, so such connections hold no zlib state.
#[derive(Default)]
pub struct Shared {
    tx: RefCell<Vec<(u8, Compressor)>>,
    rx: RefCell<Vec<(u8, Decompressor)>>,
}

impl Shared {
    fn compress(&self, bits: u8, msg: &[u8], out: &mut Vec<u8>) {
        let mut all = self.tx.borrow_mut();
        let i = match all.iter().position(|(b, _)| *b == bits) {
            Some(i) => i,
            None => {
                all.push((bits, Compressor::new(bits, true)));
                all.len() - 1
            }
        };
        all[i].1.compress(msg, out);
    }

    fn decompress(
        &self,
        bits: u8,
        data: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        let mut all = self.rx.borrow_mut();
        let i = match all.iter().position(|(b, _)| *b == bits) {
            Some(i) => i,
            None => {
                all.push((bits, Decompressor::new(bits, true)));
                all.len() - 1
            }
        };
        all[i].1.decompress(data, out, max)
    }
}

/// A shard's permessage-deflate, for either end: the codecs its connections
/// that keep no context share, and the scratch buffers a message is built or
/// inflated into and compressed into (empty until a message needs them; one
/// that grew past `KEEP_SCRATCH` for a large message is let go).
#[derive(Default)]
pub struct Scratch {
    shared: Shared,
    plain: RefCell<Vec<u8>>,
    packed: RefCell<Vec<u8>>,
}

/// Largest scratch buffer a shard keeps between messages.
const KEEP_SCRATCH: usize = 1 << 20;

impl Scratch {
    /// The message of `len` bytes that `fill` writes, built in the scratch.
    pub fn build(&self, len: usize, fill: impl FnOnce(&mut [u8])) -> Plain<'_> {
        let mut plain = self.take_plain();
        plain.resize(len, 0);
        fill(&mut plain.buf);
        plain
    }

    /// The message `data` carried, inflated by `codec` (at most `max` bytes).
    pub fn inflate(
        &self,
        codec: &mut Codec,
        data: &[u8],
        max: usize,
    ) -> Result<Plain<'_>, InflateError> {
        let mut plain = self.take_plain();
        codec.decompress(&self.shared, data, &mut plain.buf, max)?;
        Ok(plain)
    }

    /// `msg` compressed by `codec` (without the sync flush's tail), for `out`.
    pub fn compress<T>(&self, codec: &mut Codec, msg: &[u8], out: impl FnOnce(&[u8]) -> T) -> T {
        let mut packed = self.packed.borrow_mut();
        packed.clear();
        codec.compress(&self.shared, msg, &mut packed);
        let r = out(&packed);
        if packed.capacity() > KEEP_SCRATCH {
            *packed = Vec::new();
        }
        r
    }

    /// The plain buffer, taken out while a message is in it (its user may call
    /// back into the shard), given back when the message is dropped.
    fn take_plain(&self) -> Plain<'_> {
        let mut buf = std::mem::take(&mut *self.plain.borrow_mut());
        buf.clear();
        Plain { scratch: self, buf }
    }
}

/// A whole message in a shard's scratch buffer (built or inflated), which goes
/// back to the scratch when dropped.
pub struct Plain<'a> {
    scratch: &'a Scratch,
    buf: Vec<u8>,
}

impl std::ops::Deref for Plain<'_> {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl std::ops::DerefMut for Plain<'_> {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl Drop for Plain<'_> {
    fn drop(&mut self) {
        if self.buf.capacity() <= KEEP_SCRATCH {
            *self.scratch.plain.borrow_mut() = std::mem::take(&mut self.buf);
        }
    }
}

/// One end's permessage-deflate on one connection: what was agreed, and its own
/// codecs for a direction that keeps context (made at its first message; a
/// direction without context uses the shard's `Shared` ones).
pub struct Codec {
    pub params: Params,
    side: Side,
    tx: Option<Compressor>,
    rx: Option<Decompressor>,
}

impl Codec {
    pub fn new(params: Params, side: Side) -> Codec {
        Codec {
            params,
            side,
            tx: None,
            rx: None,
        }
    }

    /// (keeps no context, window) of what this end sends.
    fn outgoing(&self) -> (bool, u8) {
        let p = &self.params;
        match self.side {
            Side::Client => (p.client_no_context_takeover, p.client_max_window_bits),
            Side::Server => (p.server_no_context_takeover, p.server_max_window_bits),
        }
    }

    /// (keeps no context, window) of what this end receives.
    fn incoming(&self) -> (bool, u8) {
        let p = &self.params;
        match self.side {
            Side::Client => (p.server_no_context_takeover, p.server_max_window_bits),
            Side::Server => (p.client_no_context_takeover, p.client_max_window_bits),
        }
    }

    /// Appends `msg` compressed (without the sync flush's tail) to `out`.
    pub fn compress(&mut self, shared: &Shared, msg: &[u8], out: &mut Vec<u8>) {
        match self.outgoing() {
            (true, bits) => shared.compress(bits, msg, out),
            (false, bits) => self
                .tx
                .get_or_insert_with(|| Compressor::new(bits, false))
                .compress(msg, out),
        }
    }

    /// Appends the message `data` carried, inflated (at most `max` bytes), to `out`.
    pub fn decompress(
        &mut self,
        shared: &Shared,
        data: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        match self.incoming() {
            (true, bits) => shared.decompress(bits, data, out, max),
            (false, bits) => self
                .rx
                .get_or_insert_with(|| Decompressor::new(bits, false))
                .decompress(data, out, max),
        }
    }

    /// The zlib state a connection of this end holds once both directions were
    /// used (zlib's own estimate): none for a direction without context.
    pub fn state_bytes(&self) -> usize {
        let (out_shared, out_bits) = self.outgoing();
        let (in_shared, in_bits) = self.incoming();
        let tx = if out_shared {
            0
        } else {
            compressor_bytes(out_bits)
        };
        let rx = if in_shared {
            0
        } else {
            decompressor_bytes(in_bits)
        };
        tx + rx
    }
}

/// One direction's compressor.
pub struct Compressor {
    c: Compress,
    /// No context between messages: reset before each.
    reset_each: bool,
}

impl Compressor {
    pub fn new(window_bits: u8, reset_each: bool) -> Compressor {
        Compressor {
            c: Compress::new_with_window_bits(
                Compression::default(),
                false,
                window_bits.clamp(9, 15),
            ),
            reset_each,
        }
    }

    /// Appends `msg` compressed to `out`, ending on a sync flush without its tail.
    pub fn compress(&mut self, msg: &[u8], out: &mut Vec<u8>) {
        if self.reset_each {
            self.c.reset();
        }
        let start = out.len();
        let before = self.c.total_in();
        loop {
            out.reserve(msg.len() / 2 + 64);
            let done = (self.c.total_in() - before) as usize;
            // compress_vec writes into spare capacity only.
            let _ = self.c.compress_vec(&msg[done..], out, FlushCompress::Sync);
            let consumed = (self.c.total_in() - before) as usize == msg.len();
            // A sync flush is complete when it left room in the buffer.
            if consumed && out.len() < out.capacity() {
                break;
            }
        }
        if out.len() >= start + 4 && out[out.len() - 4..] == TAIL {
            out.truncate(out.len() - 4);
        }
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// Larger than the cap once inflated (a bomb, or just large).
    TooLarge,
    /// Not valid deflate data.
    Corrupt,
}

impl InflateError {
    pub fn name(self) -> &'static str {
        match self {
            InflateError::TooLarge => "message_too_large",
            InflateError::Corrupt => "protocol_bad_deflate",
        }
    }
}

/// One direction's decompressor.
pub struct Decompressor {
    d: Decompress,
    reset_each: bool,
}

impl Decompressor {
    pub fn new(window_bits: u8, reset_each: bool) -> Decompressor {
        Decompressor {
            d: Decompress::new_with_window_bits(false, window_bits.clamp(9, 15)),
            reset_each,
        }
    }

    /// Appends the message `data` carried, inflated, to `out`; never more than
    /// `max` bytes: the buffer grows only up to the cap (+1 byte, to see that the
    /// message would pass it), so memory stays bounded whatever the data holds.
    pub fn decompress(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        if self.reset_each {
            self.d.reset(false);
        }
        let start = out.len();
        let limit = start.saturating_add(max).saturating_add(1);
        for input in [data, &TAIL[..]] {
            let mut at = 0;
            loop {
                if out.len() == out.capacity() {
                    let grow = limit.saturating_sub(out.len()).min(64 * 1024);
                    if grow == 0 {
                        return Err(InflateError::TooLarge);
                    }
                    out.reserve_exact(grow);
                }
                let (in_before, out_before) = (self.d.total_in(), out.len());
                let status = self
                    .d
                    .decompress_vec(&input[at..], out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Corrupt)?;
                at += (self.d.total_in() - in_before) as usize;
                if out.len() - start > max {
                    return Err(InflateError::TooLarge);
                }
                let progressed = at > 0 && self.d.total_in() > in_before || out.len() > out_before;
                // Done with this input when all of it went in and zlib stopped with
                // room to spare (nothing more waiting to come out).
                if status == Status::StreamEnd
                    || (at == input.len() && out.len() < out.capacity())
                    || !progressed
                {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_parse_and_print() {
        let o = Offer::parse("client_no_context_takeover, server_max_window_bits=10").unwrap();
        assert!(o.client_no_context_takeover && !o.server_no_context_takeover);
        assert_eq!(o.server_max_window_bits, Some(10));
        assert_eq!(
            o.header_line(),
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; \
             client_max_window_bits; server_max_window_bits=10\r\n"
        );
        for bad in [
            "client_max_window_bits=16",
            "nope",
            "server_no_context_takeover=1",
        ] {
            assert!(Offer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_checks_the_answer_against_its_offer() {
        let offer = Offer::default();
        let p = accept_answer(
            &["permessage-deflate; server_no_context_takeover"],
            Some(&offer),
        )
        .unwrap()
        .unwrap();
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!(
            (p.client_max_window_bits, p.server_max_window_bits),
            (15, 15)
        );
        let p = accept_answer(
            &["permessage-deflate; client_max_window_bits=10"],
            Some(&offer),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.client_max_window_bits, 10);
        assert_eq!(accept_answer(&[], Some(&offer)), Ok(None));
        for (answer, offer, why) in [
            ("permessage-deflate", None, "extension_not_offered"),
            (
                "x-webkit-deflate-frame",
                Some(&offer),
                "extension_not_offered",
            ),
            (
                "permessage-deflate; mystery",
                Some(&offer),
                "bad_extension_params",
            ),
            (
                "permessage-deflate; server_max_window_bits=20",
                Some(&offer),
                "bad_extension_params",
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                Some(&offer),
                "bad_extension_params",
            ),
        ] {
            assert_eq!(accept_answer(&[answer], offer), Err(why), "{answer}");
        }
        let asked = Offer {
            server_no_context_takeover: true,
            ..Offer::default()
        };
        assert_eq!(
            accept_answer(&["permessage-deflate"], Some(&asked)),
            Err("bad_extension_params")
        );
    }

    #[test]
    fn a_server_takes_the_first_offer_it_can() {
        let (p, line) = negotiate(&[
            "permessage-deflate; mystery, permessage-deflate; client_no_context_takeover; client_max_window_bits",
        ])
        .unwrap();
        assert!(p.client_no_context_takeover);
        assert_eq!(
            line,
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
        );
        assert!(negotiate(&["x-other"]).is_none());
    }

    #[test]
    fn messages_round_trip_with_and_without_context() {
        for reset in [false, true] {
            let mut c = Compressor::new(15, reset);
            let mut d = Decompressor::new(15, reset);
            let msg = br#"{"type":"quote","symbol":"ACME","price":101.25,"size":300}"#.repeat(20);
            let mut sizes = Vec::new();
            for _ in 0..3 {
                let mut wire = Vec::new();
                c.compress(&msg, &mut wire);
                assert!(!wire.ends_with(&TAIL));
                sizes.push(wire.len());
                let mut back = Vec::new();
                d.decompress(&wire, &mut back, 1 << 20).unwrap();
                assert_eq!(back, msg);
            }
            assert!(sizes[0] < msg.len() / 4, "{sizes:?}");
            if !reset {
                // The second message refers to the first: much smaller.
                assert!(sizes[1] < sizes[0] / 2, "{sizes:?}");
            }
        }
    }

    #[test]
    fn a_bomb_stops_at_the_cap_and_garbage_is_corrupt() {
        let mut c = Compressor::new(15, true);
        let mut wire = Vec::new();
        c.compress(&vec![0u8; 10 << 20], &mut wire);
        assert!(wire.len() < 64 * 1024);
        let mut d = Decompressor::new(15, true);
        let mut out = Vec::new();
        assert_eq!(
            d.decompress(&wire, &mut out, 1 << 20),
            Err(InflateError::TooLarge)
        );
        assert!(
            out.capacity() <= (1 << 20) + 128 * 1024,
            "{}",
            out.capacity()
        );
        let mut d = Decompressor::new(15, true);
        let mut out = Vec::new();
        assert_eq!(
            d.decompress(&[0xff, 0xff, 0xff, 0x00, 0x12], &mut out, 1 << 20),
            Err(InflateError::Corrupt)
        );
    }
}
