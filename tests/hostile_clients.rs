//! The built-in server against hostile clients (issue 14): raw TCP clients,
//! written here, that upgrade properly and then break RFC 6455 in each way it
//! names for a client (an unmasked frame, RSV bits with no extension, reserved
//! opcodes, a fragmented or oversized control frame, a continuation with no
//! start, a new message inside a fragmented one, text that is not UTF-8 (whole
//! or cut between fragments), a bad close code, payload or reason, a 64-bit or
//! oversized length, a message that reassembles or inflates beyond
//! `--max-message`, deflate that does not inflate), in echo, echo with
//! permessage-deflate, and broadcast mode. For each: the server answers with a
//! close whose code (1002/1007/1009) and reason name the violation, before any
//! payload it refused was sent, closes the connection, and counts an error; it
//! keeps serving everyone else.
//!
//! Then the greedy and the slow against a `wsherd serve` process, whose memory
//! is read from /proc: half frames held open stay within the documented bound
//! (`--max-message` each), a client that floods pings and never reads its pongs
//! stops being read instead of growing the server, a request head beyond
//! 16 KiB or 32 header lines is refused with 431, a head trickled a byte at a time is served, and
//! the server stops promptly with all of them still connected.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const MAX: usize = 64 * 1024;

/// A client frame: `first` is the FIN/RSV/opcode byte, `len` the length written
/// on the wire (7, 16 or 64 bits), masked with `KEY` unless `unmasked`.
fn frame_with(first: u8, len: u64, unmasked: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = support::frame_header(first, len, (!unmasked).then_some(KEY));
    if unmasked {
        f.extend_from_slice(payload);
    } else {
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    }
    f
}

/// A well-formed masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    frame_with(first, payload.len() as u64, false, payload)
}

const TEXT: u8 = 0x81;
const BINARY: u8 = 0x82;
const CLOSE: u8 = 0x88;
const PING: u8 = 0x89;

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Upgrades a raw connection (with `extra` header lines); panics unless 101.
fn upgrade(addr: SocketAddr, extra: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads an HTTP response head, byte by byte (nothing after it is consumed).
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            other => panic!(
                "response head cut off after {:?}: {other:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8(head).unwrap()
}

/// A server frame as read: opcode, FIN, RSV1 and payload.
#[derive(Debug)]
struct Got {
    opcode: u8,
    fin: bool,
    rsv1: bool,
    payload: Vec<u8>,
}

/// Reads one server frame; None at EOF.
fn read_frame(s: &mut TcpStream) -> Option<Got> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    assert_eq!(h[1] & 0x80, 0, "the server masked a frame");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    Some(Got {
        opcode: h[0] & 0x0f,
        fin: h[0] & 0x80 != 0,
        rsv1: h[0] & 0x40 != 0,
        payload,
    })
}

/// Reads frames up to the server's close: the data frames before it, and the
/// close's code and reason. Then the server must close the connection.
fn until_close(s: &mut TcpStream) -> (Vec<Got>, u16, String) {
    let mut data = Vec::new();
    loop {
        let f = read_frame(s).expect("the connection ended without a close frame");
        if f.opcode == 0x8 {
            assert!(f.payload.len() >= 2, "close without a code: {f:?}");
            let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
            let reason = String::from_utf8(f.payload[2..].to_vec()).expect("reason is UTF-8");
            let mut rest = [0u8; 16];
            let at = Instant::now();
            assert!(
                matches!(s.read(&mut rest), Ok(0)),
                "the server kept the connection open after its close"
            );
            assert!(at.elapsed() < Duration::from_secs(2));
            return (data, code, reason);
        }
        data.push(f);
    }
}

/// One violation: what to send and the close it earns.
struct Case {
    name: &'static str,
    send: Vec<u8>,
    code: u16,
    reason: &'static str,
}

fn case(name: &'static str, send: Vec<u8>, code: u16, reason: &'static str) -> Case {
    Case {
        name,
        send,
        code,
        reason,
    }
}

/// Every violation RFC 6455 says a server must fail a client's connection on.
fn violations() -> Vec<Case> {
    let cut_char = "a€".as_bytes(); // "a" then three bytes
    vec![
        case(
            "an unmasked frame",
            frame_with(TEXT, 2, true, b"hi"),
            1002,
            "protocol_bad_masking",
        ),
        case(
            "RSV2 with no extension",
            frame(BINARY | 0x20, b"x"),
            1002,
            "protocol_reserved_bits",
        ),
        case(
            "RSV1 with no extension",
            frame(TEXT | 0x40, b"x"),
            1002,
            "protocol_reserved_bits",
        ),
        case(
            "data opcode 0x3",
            frame(0x83, b"x"),
            1002,
            "protocol_reserved_opcode",
        ),
        case(
            "control opcode 0xB",
            frame(0x8b, b""),
            1002,
            "protocol_reserved_opcode",
        ),
        case(
            "a fragmented ping",
            frame(0x09, b"p"),
            1002,
            "protocol_bad_control_frame",
        ),
        case(
            "a ping of 126 bytes",
            frame(PING, &[b'p'; 126]),
            1002,
            "protocol_bad_control_frame",
        ),
        case(
            "a continuation with no start",
            frame(0x80, b"more"),
            1002,
            "protocol_bad_fragmentation",
        ),
        case(
            "a new message inside a fragmented one",
            [frame(0x01, b"first half"), frame(BINARY, b"other")].concat(),
            1002,
            "protocol_bad_fragmentation",
        ),
        case(
            "text that is not UTF-8",
            frame(TEXT, &[b'o', b'k', 0xff]),
            1007,
            "protocol_invalid_utf8",
        ),
        case(
            "text ending inside a character",
            [frame(0x01, &cut_char[..2]), frame(0x80, &cut_char[2..3])].concat(),
            1007,
            "protocol_invalid_utf8",
        ),
        case(
            "a fragment continuing a character wrongly",
            [frame(0x01, &cut_char[..2]), frame(0x80, b"zz")].concat(),
            1007,
            "protocol_invalid_utf8",
        ),
        case(
            "a close code no endpoint may send",
            frame(CLOSE, &close_payload(1005, b"")),
            1002,
            "protocol_bad_close_code",
        ),
        case(
            "an unassigned close code",
            frame(CLOSE, &close_payload(2999, b"")),
            1002,
            "protocol_bad_close_code",
        ),
        case(
            "a close of one byte",
            frame(CLOSE, &[0x03]),
            1002,
            "protocol_bad_close_payload",
        ),
        case(
            "a close reason that is not UTF-8",
            frame(CLOSE, &close_payload(1000, &[0xc3, 0x28])),
            1007,
            "protocol_invalid_utf8",
        ),
        case(
            "a frame longer than --max-message (header only)",
            frame_with(BINARY, MAX as u64 + 1, false, b""),
            1009,
            "protocol_frame_too_large",
        ),
        case(
            "a 64-bit length of 2^63 (header only)",
            frame_with(BINARY, 1 << 63, false, b""),
            1009,
            "protocol_frame_too_large",
        ),
    ]
}

/// Sends each case on its own connection, after one good message that must
/// come back whole (`check_echo`), and checks the close it earns. Returns
/// how many connections violated.
fn each_violation(addr: SocketAddr, extra: &str, cases: &[Case], echo: bool) -> u64 {
    for c in cases {
        let mut s = upgrade(addr, extra);
        if echo {
            // A valid text message cut inside characters first: it comes back
            // whole, fragment by fragment (echo), or in one frame (broadcast).
            let text = "añ€😀".as_bytes();
            let good = [
                frame(0x01, &text[..2]),
                frame(PING, b"between"),
                frame(0x00, &text[2..7]),
                frame(0x80, &text[7..]),
            ]
            .concat();
            s.write_all(&good).unwrap();
            let mut back = Vec::new();
            let mut pong = false;
            while back.len() < text.len() || !pong {
                let f = read_frame(&mut s).expect("echo");
                match f.opcode {
                    0xa => pong = true,
                    0x8 => panic!("{}: closed a valid message: {f:?}", c.name),
                    _ => back.extend_from_slice(&f.payload),
                }
            }
            assert_eq!(back, text, "{}", c.name);
        }
        s.write_all(&c.send).unwrap();
        let (_, code, reason) = until_close(&mut s);
        assert_eq!(
            (code, reason.as_str()),
            (c.code, c.reason),
            "{}: closed with {code} {reason:?}",
            c.name
        );
    }
    cases.len() as u64
}

/// Waits until the server's published totals (ten times a second) show `errors`.
fn wait_errors(server: &wsherd::server::ServerHandle, errors: u64) {
    let until = Instant::now() + Duration::from_secs(5);
    while server.totals().errors < errors && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A short closed-loop run against `server` that must account for everything.
fn still_serves(url: &str, extra: &[&str]) {
    let mut args = vec![url, "-c", "4", "-d", "1s", "--warmup", "0s", "-q"];
    args.extend_from_slice(extra);
    let res = support::run(&args, Duration::from_secs(20));
    support::assert_clean(&res, 4);
    assert!(res.messages.received > 0);
}

#[test]
fn every_violation_a_client_can_make_closes_it_by_name_in_echo_mode() {
    let _serial = support::serial();
    let server = support::serve_builtin("1", &["--max-message", "64KiB"]);
    let n = each_violation(server.addr(), "", &violations(), true);
    wait_errors(&server, n);
    still_serves(&format!("ws://{}/", server.addr()), &[]);
    let t = server.stop();
    assert_eq!(t.errors, n, "every violation counted once: {t:?}");
    assert_eq!(t.connections, n + 4);
}

#[test]
fn every_violation_a_client_can_make_closes_it_by_name_in_broadcast_mode() {
    let _serial = support::serial();
    let server = support::serve_builtin("1", &["--mode", "broadcast", "--max-message", "64KiB"]);
    let mut cases = violations();
    // Broadcast reassembles: a message may not grow beyond --max-message in
    // fragments that are each allowed.
    let half = vec![b'x'; MAX / 2 + 1];
    cases.push(case(
        "fragments that add up beyond --max-message",
        [frame(0x02, &half), frame(0x80, &half)].concat(),
        1009,
        "protocol_message_too_large",
    ));
    let n = each_violation(server.addr(), "", &cases, true);
    wait_errors(&server, n);
    let t = server.stop();
    assert_eq!(t.errors, n, "every violation counted once: {t:?}");
    assert_eq!(t.connections, n);
}

/// Raw deflate (RFC 7692: without the sync flush's last four bytes).
fn deflate(data: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let before = c.total_in() as usize;
        c.compress_vec(&data[before..], &mut out, FlushCompress::Sync)
            .unwrap();
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

#[test]
fn compressed_violations_close_by_name_and_good_compressed_text_echoes() {
    let _serial = support::serial();
    let server = support::serve_builtin("1", &["--deflate", "--max-message", "64KiB"]);
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n";
    // A good compressed message, in two fragments, comes back compressed.
    let mut s = upgrade(server.addr(), offer);
    let text = "ünïcödé ".repeat(50);
    let packed = deflate(text.as_bytes());
    let cut = packed.len() / 2;
    s.write_all(&[frame(0x41, &packed[..cut]), frame(0x80, &packed[cut..])].concat())
        .unwrap();
    let f = read_frame(&mut s).expect("compressed echo");
    assert!(f.rsv1 && f.fin && f.opcode == 0x1, "{f:?}");
    let mut tail = f.payload.clone();
    tail.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut plain = Vec::with_capacity(text.len() * 2);
    flate2::Decompress::new(false)
        .decompress_vec(&tail, &mut plain, flate2::FlushDecompress::Sync)
        .unwrap();
    assert_eq!(plain, text.as_bytes());
    drop(s);

    let mut cases = violations();
    // The offer allows RSV1: it is no violation here, so that case goes.
    cases.retain(|c| c.name != "RSV1 with no extension");
    cases.extend([
        case(
            "a message that inflates beyond --max-message",
            frame(0xc2, &deflate(&vec![0u8; 4 * MAX])),
            1009,
            "protocol_message_too_large",
        ),
        case(
            "compressed text that inflates to invalid UTF-8",
            frame(0xc1, &deflate(&[b'a', 0xff, b'b'])),
            1007,
            "protocol_invalid_utf8",
        ),
        case(
            "compressed bytes that are not deflate",
            frame(0xc2, &[0xff, 0xff, 0xff, 0xff]),
            1007,
            "protocol_bad_deflate",
        ),
        case(
            "RSV1 on a continuation",
            [frame(0x41, &deflate(b"abc")), frame(0xc0, b"x")].concat(),
            1002,
            "protocol_reserved_bits",
        ),
    ]);
    let n = each_violation(server.addr(), offer, &cases, true);
    wait_errors(&server, n);
    still_serves(&format!("ws://{}/", server.addr()), &["--deflate"]);
    let t = server.stop();
    assert_eq!(t.errors, n, "every violation counted once: {t:?}");
}

/// A `wsherd serve` process (one shard) and its address; killed when dropped.
struct Serve {
    child: std::process::Child,
    addr: SocketAddr,
    stderr: std::io::BufReader<std::process::ChildStderr>,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsherd"))
            .args(["serve", "--addr", "127.0.0.1:0", "--shards", "1"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn wsherd serve");
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        let addr = line
            .split("ws://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Serve {
            child,
            addr,
            stderr,
        }
    }

    /// Resident memory now, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// SIGINT, as Ctrl-C: the server must be gone within `limit`; returns its
    /// last line ("stopped; ...").
    fn interrupt(mut self, limit: Duration) -> String {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let at = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status:?}");
                break;
            }
            assert!(at.elapsed() < limit, "still running {limit:?} after SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        rest.lines()
            .rfind(|l| l.contains("stopped;"))
            .unwrap_or_else(|| panic!("no totals in {rest:?}"))
            .to_string()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server's RSS stops growing (three equal-ish readings).
fn settled_rss(server: &Serve) -> u64 {
    let mut last = server.rss_kib();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = server.rss_kib();
        if now.abs_diff(last) < 64 {
            return now;
        }
        last = now;
    }
    last
}

#[test]
fn the_greedy_and_the_slow_stay_within_the_documented_bounds() {
    let _serial = support::serial();
    const LIMIT: usize = 256 * 1024;
    const HALF_FRAMES: usize = 40;
    let server = Serve::start(&["--max-message", "256KiB"]);
    let base = settled_rss(&server);

    // Half frames: each claims the largest frame allowed and sends all of it but
    // a byte, then goes silent. The server holds each, at most --max-message.
    let mut held = Vec::new();
    for _ in 0..HALF_FRAMES {
        let mut s = upgrade(server.addr, "");
        let payload = vec![b'h'; LIMIT];
        let f = frame(BINARY, &payload);
        s.write_all(&f[..f.len() - 1]).unwrap();
        held.push(s);
    }
    let with_halves = settled_rss(&server);
    let per_half = (with_halves.saturating_sub(base)) * 1024 / HALF_FRAMES as u64;
    eprintln!(
        "RSS {base} KiB, with {HALF_FRAMES} half frames {with_halves} KiB: {per_half} bytes each"
    );
    assert!(
        per_half <= 2 * LIMIT as u64,
        "{per_half} bytes held per half frame, more than twice --max-message ({base} KiB -> {with_halves} KiB)"
    );
    // One more byte claimed than allowed: refused from the header.
    let mut s = upgrade(server.addr, "");
    s.write_all(&frame_with(BINARY, LIMIT as u64 + 1, false, b""))
        .unwrap();
    let (_, code, reason) = until_close(&mut s);
    assert_eq!((code, reason.as_str()), (1009, "protocol_frame_too_large"));

    // Greedy: pings as fast as the socket takes them, pongs never read. The
    // server's writes back up, so it stops reading this client.
    let mut greedy = upgrade(server.addr, "");
    greedy.set_nonblocking(true).unwrap();
    let ping = frame(PING, &[b'g'; 125]).repeat(64);
    let (mut sent, mut stuck_since) = (0usize, None);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        // A write may take part of the buffer: the next one goes on from there.
        match greedy.write(&ping[sent % ping.len()..]) {
            Ok(n) => {
                sent += n;
                stuck_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *stuck_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("greedy client: {e}"),
        }
    }
    assert!(
        stuck_since.is_some(),
        "the server kept taking pings for 10 s ({sent} bytes) without its pongs being read"
    );
    let greedy_rss = settled_rss(&server);
    eprintln!("greedy client: {sent} bytes of pings taken, then none; RSS {greedy_rss} KiB");
    assert!(
        greedy_rss.saturating_sub(with_halves) < 16 * 1024,
        "a client that does not read grew the server by {} KiB ({sent} bytes of pings sent)",
        greedy_rss.saturating_sub(with_halves)
    );

    // A request head beyond 16 KiB, or with more than 32 header lines: 431.
    for filler in [
        format!("X-Filler: {}\r\n", "f".repeat(1000)).repeat(17),
        "X-Many: 1\r\n".repeat(40),
    ] {
        let mut big = TcpStream::connect(server.addr).unwrap();
        big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{filler}\r\n"
        );
        // The server may close before taking it all: only its answer matters.
        let _ = big.write_all(req.as_bytes());
        let mut answer = String::new();
        let _ = big.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    }

    // A request trickled a byte at a time is still served.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.set_nodelay(true).unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    for b in req.as_bytes() {
        slow.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(read_head(&mut slow).starts_with("HTTP/1.1 101"));
    slow.write_all(&frame(TEXT, b"slow but fine")).unwrap();
    assert_eq!(read_frame(&mut slow).unwrap().payload, b"slow but fine");

    // Everyone else is still served, and the server stops promptly with the
    // half frames and the greedy client still connected.
    still_serves(&format!("ws://{}/", server.addr), &[]);
    let totals = server.interrupt(Duration::from_secs(5));
    assert!(totals.contains(" 1 errors"), "{totals}");
    drop((held, greedy, slow));
}

/// Every reason the server may close a connection with (its violations' names).
const REASONS: &[&str] = &[
    "protocol_bad_masking",
    "protocol_reserved_bits",
    "protocol_reserved_opcode",
    "protocol_bad_control_frame",
    "protocol_bad_fragmentation",
    "protocol_invalid_utf8",
    "protocol_bad_close_code",
    "protocol_bad_close_payload",
    "protocol_frame_too_large",
    "protocol_message_too_large",
    "protocol_bad_header",
    "protocol_bad_deflate",
];

#[test]
fn random_client_bytes_get_an_echo_or_a_named_close() {
    let _serial = support::serial();
    let server = support::serve_builtin("1", &["--max-message", "64KiB"]);
    let pieces: Vec<Vec<u8>> = vec![
        frame(TEXT, "héllo".as_bytes()),
        frame(BINARY, &[0, 1, 2, 0xff]),
        frame(0x01, &"€".as_bytes()[..1]),
        frame(0x00, &"€".as_bytes()[1..2]),
        frame(0x80, &"€".as_bytes()[2..]),
        frame(PING, b"p"),
        frame(0x8a, b"unsolicited pong"),
        frame(CLOSE, &close_payload(1000, b"bye")),
        frame(BINARY, &[b'b'; 300]),
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const CONNECTIONS: u64 = 150;
    let mut named = 0;
    for _ in 0..CONNECTIONS {
        let mut bytes = Vec::new();
        for _ in 0..1 + next() % 6 {
            bytes.extend_from_slice(&pieces[(next() % pieces.len() as u64) as usize]);
        }
        for _ in 0..next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        let mut s = upgrade(server.addr(), "");
        s.write_all(&bytes).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        // Whatever comes back ends with the connection closed, within the read
        // timeout; a close the server starts names a violation.
        loop {
            match read_frame(&mut s) {
                None => break,
                Some(f) if f.opcode == 0x8 && f.payload.len() > 2 => {
                    let reason = String::from_utf8_lossy(&f.payload[2..]).to_string();
                    if reason != "bye" {
                        assert!(
                            REASONS.contains(&reason.as_str()),
                            "{reason:?} for {bytes:x?}"
                        );
                        named += 1;
                    }
                }
                Some(_) => {}
            }
        }
    }
    eprintln!("{named} of {CONNECTIONS} random streams closed for a named violation");
    assert!(named > 0);
    wait_errors(&server, named);
    still_serves(&format!("ws://{}/", server.addr()), &[]);
    let t = server.stop();
    assert_eq!(t.errors, named, "{t:?}");
}
