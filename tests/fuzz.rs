//! Fuzzing that runs in `cargo test` (issue 14): every parser that reads bytes
//! from the other side or text from the user, fed random and mutated inputs
//! from a deterministic generator. Properties: no panic; no allocation larger
//! than the input can justify (a length field of 2^63 must not allocate; this
//! binary's allocator records the largest request); what a decoder accepts is
//! self-consistent (a frame fits in its buffer, an inflated message stays
//! under its cap, a parsed template renders back to what decodes).
//!
//! `FUZZ_ITERS` (per target, default 2,000) and `FUZZ_SEED` (default fixed)
//! make longer runs: `scripts/fuzz.sh` runs each target for longer with a
//! random seed. An input that broke a property is written to
//! tests/fuzz/corpus/TARGET/ by that script's runs (see `found`); every file
//! there is replayed first, as a regression test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The system allocator, recording the largest single request of each thread
/// (the targets run on threads of their own, side by side).
struct Recording;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Notes a request of `size` bytes on this thread.
fn record(size: usize) {
    // (`try_with`: a thread being torn down still allocates.)
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded as given.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Recording = Recording;

/// A small, fast, deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// `seed` changed a few times: bytes flipped, replaced, inserted, removed,
    /// a run duplicated, the end cut, or an interesting value written in.
    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(v.len());
            match self.below(7) {
                0 if !v.is_empty() => v[at] ^= 1 << self.below(8),
                1 if !v.is_empty() => v[at] = self.next() as u8,
                2 => v.insert(at.min(v.len()), self.next() as u8),
                3 if !v.is_empty() => {
                    v.remove(at);
                }
                4 if !v.is_empty() => {
                    let end = (at + 1 + self.below(16)).min(v.len());
                    let run = v[at..end].to_vec();
                    v.splice(at..at, run);
                }
                5 => v.truncate(at),
                _ => {
                    const EDGES: [&[u8]; 8] = [
                        &[0xff; 8],
                        &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                        &[0x00],
                        &[0x80],
                        b"{",
                        b"\"",
                        b"\\u0000",
                        b"\r\n\r\n",
                    ];
                    let e = EDGES[self.below(EDGES.len())];
                    let at = at.min(v.len());
                    v.splice(at..at, e.iter().copied());
                }
            }
        }
        v
    }
}

fn iterations() -> usize {
    std::env::var("FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_ef01)
        | 1
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

/// Keeps `input` for `target` when `FUZZ_SAVE` is set (scripts/fuzz.sh), so a
/// failure found by a long run becomes a regression test.
fn found(target: &str, input: &[u8]) {
    if std::env::var_os("FUZZ_SAVE").is_none() {
        return;
    }
    let dir = corpus_dir(target);
    let _ = std::fs::create_dir_all(&dir);
    let name = format!(
        "{:016x}",
        input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
    );
    let _ = std::fs::write(dir.join(name), input);
}

/// Runs `check` on the corpus of `target`, on the `seeds` mutated, and on
/// random bytes: `FUZZ_ITERS` inputs in all. A panic, or an allocation larger
/// than `max_alloc(input)`, fails the test and names the input.
fn fuzz(target: &str, seeds: &[&[u8]], max_alloc: impl Fn(&[u8]) -> usize, check: impl Fn(&[u8])) {
    fuzz_n(target, iterations(), seeds, max_alloc, check);
}

/// As `fuzz`, with `n` inputs in all (the corpus first, however many it holds).
fn fuzz_n(
    target: &str,
    n: usize,
    seeds: &[&[u8]],
    max_alloc: impl Fn(&[u8]) -> usize,
    check: impl Fn(&[u8]),
) {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(corpus_dir(target)) {
        for e in dir.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                inputs.push(b);
            }
        }
    }
    inputs.extend(seeds.iter().map(|s| s.to_vec()));
    let mut rng = Rng(seed()
        ^ target
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    for i in 0..n.max(inputs.len()) {
        let input = if i < inputs.len() {
            inputs[i].clone()
        } else if !seeds.is_empty() && rng.below(4) != 0 {
            let s = seeds[rng.below(seeds.len())];
            rng.mutate(s)
        } else {
            rng.bytes(256)
        };
        LARGEST.with(|l| l.set(0));
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let largest = LARGEST.with(|l| l.get());
        if outcome.is_err() {
            found(target, &input);
            panic!(
                "{target}: panicked on input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
        let limit = max_alloc(&input);
        if largest > limit {
            found(target, &input);
            panic!(
                "{target}: allocated {largest} bytes at once (limit {limit}) on input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

/// What a parser of an input of `len` bytes may allocate at once: a few times
/// the input, plus room for its fixed tables.
fn modest(input: &[u8]) -> usize {
    64 * 1024 + 8 * input.len()
}

// ---- WebSocket frames ----------------------------------------------------

fn frame_seeds() -> Vec<Vec<u8>> {
    use wsherd::ws::frame::{self, Kind};
    let mut seeds = Vec::new();
    for (kind, len) in [
        (Kind::Text, 5),
        (Kind::Binary, 200),
        (Kind::Binary, 70_000),
        (Kind::Ping, 0),
        (Kind::Close, 2),
    ] {
        let mut out = Vec::new();
        frame::write_server_frame(&mut out, kind, true, &vec![b'a'; len][..len.min(300)]);
        seeds.push(out);
        let mut out = Vec::new();
        frame::write_client_frame_bytes(&mut out, kind, [1, 2, 3, 4], &vec![b'b'; len.min(300)]);
        seeds.push(out);
    }
    // 64-bit lengths at the edges.
    seeds.push(vec![
        0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    seeds.push(vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    seeds
}

#[test]
fn frames_from_a_server_and_from_a_client() {
    use wsherd::ws::frame::{self, From};
    let seeds = frame_seeds();
    let seed_refs: Vec<&[u8]> = seeds.iter().map(|s| s.as_slice()).collect();
    for (target, from) in [
        ("frame_from_server", From::Server),
        ("frame_from_client", From::Client),
    ] {
        // A valid frame from this side: "ok", masked when a client sent it.
        let mut good = Vec::new();
        match from {
            From::Server => frame::write_server_frame(&mut good, frame::Kind::Text, true, b"ok"),
            From::Client => {
                frame::write_client_frame_bytes(&mut good, frame::Kind::Text, [9, 8, 7, 6], b"ok")
            }
        }
        let ok = frame::parse(&good, from, 1 << 20)
            .expect("the good frame is valid")
            .expect("and complete");
        fuzz(target, &seed_refs, modest, |input| {
            for deflate in [false, true] {
                if let Ok(Some(f)) = frame::parse_with(input, from, 1 << 20, deflate) {
                    // What is accepted lies within the buffer.
                    assert!(f.header_len <= f.total_len());
                    assert!(f.total_len() <= input.len());
                    assert_eq!(f.total_len() - f.header_len, f.payload_len);
                    assert!(f.payload_len <= 1 << 20);
                }
                stream_stays_consistent(input, &good, ok, from, deflate);
            }
            let _ = frame::close_code(input);
        });
    }
}

/// The decoder's contract over a stream: parsing is stateless and looks only at
/// the frame at the start of the buffer. So, reading `input` frame by frame as a
/// connection does, with `good` (which parses as `ok`) arriving after it:
/// - every complete frame reads the same whatever follows it;
/// - an error is decided by the header alone: what follows does not change it;
/// - when `input` ends on a frame boundary, `good` parses next as itself;
/// - after an error, the next buffer parsed (`good` alone) parses as itself.
fn stream_stays_consistent(
    input: &[u8],
    good: &[u8],
    ok: wsherd::ws::frame::FrameRef,
    from: wsherd::ws::frame::From,
    deflate: bool,
) {
    use wsherd::ws::frame;
    const MAX: usize = 1 << 20;
    let mut both = input.to_vec();
    both.extend_from_slice(good);
    let mut at = 0;
    loop {
        let alone = frame::parse_with(&input[at..], from, MAX, deflate);
        let followed = frame::parse_with(&both[at..], from, MAX, deflate);
        match alone {
            Ok(Some(f)) => {
                assert_eq!(followed, Ok(Some(f)), "a complete frame at {at} changed");
                assert!(f.total_len() > 0);
                at += f.total_len();
            }
            Err(e) => {
                assert_eq!(followed, Err(e), "an error at {at} changed");
                // The next buffer parses on its own.
                assert_eq!(frame::parse_with(good, from, MAX, deflate), Ok(Some(ok)));
                return;
            }
            // Incomplete: the good frame's bytes become part of this one.
            Ok(None) if at < input.len() => return,
            Ok(None) => {
                assert_eq!(followed, Ok(Some(ok)), "the frame after the input");
                return;
            }
        }
    }
}

// ---- HTTP upgrade heads --------------------------------------------------

#[test]
fn upgrade_responses_and_requests() {
    use wsherd::ws::handshake::{self, Offer};
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n\r\n";
    let offer = Offer {
        subprotocols: vec!["chat".into()],
        deflate: Some(wsherd::ws::deflate::Offer::parse("").unwrap()),
        ..Offer::default()
    };
    fuzz(
        "upgrade_response",
        &[response, b"HTTP/1.1 403 Forbidden\r\n\r\n"],
        modest,
        |input| {
            let _ = handshake::check_response(input, key, &offer);
            let _ = handshake::check_response(input, key, &Offer::default());
        },
    );
    let request = b"GET /chat?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    fuzz("upgrade_request", &[request], modest, |input| {
        for deflate in [false, true] {
            let _ = handshake::server_accept(input, deflate);
        }
    });
}

// ---- permessage-deflate --------------------------------------------------

#[test]
fn inflating_what_a_server_sends_stays_under_the_cap() {
    use wsherd::ws::deflate::{Compressor, Decompressor};
    let mut c = Compressor::new(15, true);
    let mut seeds = Vec::new();
    for msg in [&b"hello hello hello hello"[..], &[0u8; 5000], b""] {
        let mut out = Vec::new();
        c.compress(msg, &mut out);
        seeds.push(out);
    }
    let refs: Vec<&[u8]> = seeds.iter().map(|s| s.as_slice()).collect();
    const CAP: usize = 256 * 1024;
    // A valid message for each window, compressed without context (so it
    // inflates on its own), to follow whatever the fuzzed one did.
    const AFTER: &[u8] = b"after an error, after an error: a valid message";
    let after = |bits: u8| {
        let mut out = Vec::new();
        Compressor::new(bits, true).compress(AFTER, &mut out);
        out
    };
    let (after15, after9) = (after(15), after(9));
    fuzz(
        "inflate",
        &refs,
        // The output under its cap (and a step of growth), beside zlib's own
        // state (its window and tables: fixed, whatever the input).
        |_| CAP + 2 * 1024 * 1024,
        |input| {
            for (bits, reset, next) in [
                (15, true, &after15),
                (9, true, &after9),
                (15, false, &after15),
                (9, false, &after9),
            ] {
                let mut d = Decompressor::new(bits, reset);
                let mut out = Vec::new();
                let first = d.decompress(input, &mut out, CAP);
                if first.is_ok() {
                    assert!(out.len() <= CAP);
                }
                let mut again = Vec::new();
                let second = d.decompress(next, &mut again, CAP);
                if reset {
                    // Without context the codec resets before each message and
                    // is shared by a shard's connections: after any message, an
                    // error or a cap passed included, the next valid one
                    // inflates exactly.
                    assert_eq!(second, Ok(()), "after {first:?}");
                    assert_eq!(again, AFTER, "after {first:?}");
                } else if second.is_ok() {
                    // With context, what came before is part of the stream (and
                    // an error ends the connection, its codec with it): the next
                    // message may inflate to anything, but never past the cap.
                    assert!(again.len() <= CAP, "after {first:?}");
                }
            }
        },
    );
    fuzz(
        "deflate_offer",
        &[b"client_max_window_bits=10,server_no_context_takeover"],
        modest,
        |input| {
            if let Ok(text) = std::str::from_utf8(input) {
                let _ = wsherd::ws::deflate::Offer::parse(text);
                let _ = wsherd::ws::deflate::negotiate(&[text]);
            }
        },
    );
}

// ---- What the user writes ------------------------------------------------

fn text_fuzz(target: &str, seeds: &[&str], check: impl Fn(&str)) {
    text_fuzz_within(target, modest, seeds, check);
}

/// As `text_fuzz`, with the allocation bound given by `max_alloc`.
fn text_fuzz_within(
    target: &str,
    max_alloc: impl Fn(&[u8]) -> usize,
    seeds: &[&str],
    check: impl Fn(&str),
) {
    let bytes: Vec<&[u8]> = seeds.iter().map(|s| s.as_bytes()).collect();
    fuzz(target, &bytes, max_alloc, |input| {
        check(&String::from_utf8_lossy(input));
    });
}

#[test]
fn templates_stages_thresholds_and_values() {
    use wsherd::template::Template;
    // A template is checked whole before its image is rendered: one that is
    // refused allocates in proportion to its text only, whatever filler it
    // asks for (`{pad:60000000}`); one that is accepted allocates its message
    // (up to the largest wsherd sends), once.
    let rendered = |input: &[u8]| {
        let t = String::from_utf8_lossy(input);
        let len = |p: Result<Template, _>| p.map_or(0, |p: Template| p.len());
        modest(input) + len(Template::parse(&t)).max(len(Template::parse_request(&t)))
    };
    for refused in [
        "{pad:60000000}{conn}{seq}",
        "{pad:60000000}{conn}{seq}{ts}{pad:10000000}",
        "{pad:60000000}{conn}{seq}{ts}{nope}",
        "{pad:60000000}{seq}{ts}{",
    ] {
        LARGEST.with(|l| l.set(0));
        assert!(Template::parse(refused).is_err(), "{refused}");
        let largest = LARGEST.with(|l| l.get());
        assert!(
            largest < 4096,
            "{refused}: allocated {largest} bytes at once"
        );
    }
    text_fuzz_within(
        "template",
        rendered,
        &[
            r#"{"type":"chat","user":"u{conn}","seq":{seq},"ts":{ts},"i":{intended},"body":"{pad:100}"}"#,
            "{conn}{seq}{ts}{{seq}}",
            r#"{"id":{seq}}"#,
        ],
        |t| {
            for parsed in [Template::parse(t), Template::parse_request(t)]
                .into_iter()
                .flatten()
            {
                let s = wsherd::stamp::Stamp {
                    conn: 7,
                    seq: 42,
                    ts: 99,
                    intended: 98,
                };
                let msg = parsed.render_to_string(s);
                assert_eq!(msg.len(), parsed.len());
                if let Some(back) = parsed.decode(msg.as_bytes()) {
                    assert_eq!((back.conn, back.seq, back.ts), (7, 42, 99));
                }
            }
        },
    );
    text_fuzz(
        "stages",
        &["30s:1000,1m:1000,30s:0", "10s:20k/s,5s:0/s"],
        |s| {
            if let Ok(stages) = wsherd::pacer::parse_stages(s) {
                let p = wsherd::pacer::Profile::new(0.0, &stages);
                let _ = (p.peak(), p.integral(p.duration().as_secs_f64()));
            }
        },
    );
    text_fuzz(
        "threshold",
        &[
            "rtt.p99<50ms",
            "errors<=0.1%",
            "rate>=19k/s",
            "step.login.p99.9<1s",
        ],
        |s| {
            let _ = wsherd::thresholds::parse(s);
        },
    );
    text_fuzz(
        "pattern",
        &["/chat/{conn}?u={data.user}", "{{conn}} {"],
        |s| {
            let cols = vec!["user".to_string()];
            if let Ok(p) = wsherd::values::Pattern::parse(s, &cols) {
                let row = vec!["x\"y".to_string()];
                let v = wsherd::values::Vars {
                    conn: 1,
                    agent: 1,
                    shard: 0,
                    row: Some(&row),
                    extra: &[],
                };
                let _ = p.rendered(&v, wsherd::values::Escape::Json);
            }
        },
    );
}

#[test]
fn scenario_files_and_conversations() {
    let quick = include_str!("../scripts/scenarios/quick.toml");
    let conversation = include_str!("../scripts/scenarios/conversation.toml");
    // Fewer inputs than the other targets: each parse plans whole runs.
    let n = (iterations() / 10).max(50);
    // Each scenario is planned through `wsherd run`'s command line, whose
    // tables (clap's) take one fixed request of about 92 KiB, whatever the file.
    let planned = |input: &[u8]| 128 * 1024 + modest(input);
    // Values at the edges: numbers past their type, a filler past what wsherd
    // sends, arrays nested past the TOML parser's depth.
    let edges = "[[scenario]]\nname = \"e\"\nconnections = 18446744073709551615\n\
                 rate = \"1e308\"\ntemplate = \"{pad:99999999999}{conn}{seq}{ts}\"\n\
                 [[scenario.step]]\nrepeat = 4294967295\nsteps = [{ send = \"x\" }]\n";
    let nested = format!("x = {}", "[".repeat(400));
    fuzz_n(
        "scenario",
        n,
        &[
            quick.as_bytes(),
            conversation.as_bytes(),
            edges.as_bytes(),
            nested.as_bytes(),
        ],
        planned,
        |input| {
            let _ = wsherd::scenario::parse(&String::from_utf8_lossy(input), "fuzz.toml");
        },
    );
}

// ---- Application protocols and JSON fields -------------------------------

#[test]
fn protocol_packets_and_json_fields() {
    use wsherd::proto::{parse_gql, parse_sio};
    use wsherd::vocab::jsonptr::{lookup, Pointer};
    fuzz(
        "socketio",
        &[
            br#"0{"sid":"x","pingInterval":300,"pingTimeout":200}"#,
            br#"42/chat,17["echo",{"a":[1,2,{"b":"c"}]}]"#,
            br#"43/chat,12["ok"]"#,
            b"2",
        ],
        modest,
        |input| {
            let _ = parse_sio(input);
        },
    );
    fuzz(
        "graphql_ws",
        &[br#"{"id":"12","type":"next","payload":{"data":{"ticks":{"seq":1,"sentMs":1.5e12}}}}"#],
        modest,
        |input| {
            let _ = parse_gql(input);
        },
    );
    let pointers: Vec<Pointer> = ["", "/id", "/a/b/1", "/payload/data/ticks/seq", "/~0~1/0"]
        .iter()
        .map(|p| Pointer::parse(p).unwrap())
        .collect();
    fuzz(
        "jsonptr",
        &[br#"{"id":1,"a":{"b":[true,null,"x\"y"]},"~/":[0],"payload":{"data":{"ticks":{"seq":7}}}}"#],
        modest,
        |input| {
            for p in &pointers {
                if let Some(v) = lookup(input, p) {
                    assert!(v.raw().len() <= input.len());
                    let _ = (v.as_u64(), v.as_f64(), v.as_str());
                }
            }
        },
    );
}
