//! A hostile-server suite (issue 14): raw TCP servers, written here, that upgrade
//! properly and then break RFC 6455 in each way it names for a server (a 64-bit
//! or oversized length, a fragmented or oversized control frame, invalid UTF-8
//! in a text message or a close reason, a masked frame, RSV bits with no
//! extension, a continuation with no start, a close code no endpoint may send),
//! or misbehave slowly or greedily (a 101 trickled a byte at a time, an endless
//! flood, half a frame then silence, a legitimate 16 MiB message, one over
//! `--max-message` whole or in fragments). For each: no panic, the run ends on
//! time (a violation's 1 s run within 5 s), the cause is counted by name, the
//! ledger balances and the report renders; for the flood and a length of 2^63,
//! the client's peak RSS (wsherd run as a child process) stays within 16 MiB of
//! the same run against a quiet server.

mod support;

use std::time::Duration;
use support::{run, serial, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(20);

/// What a hostile server does once it has read the upgrade request.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Write the 101 response (with `trickle`, one byte at a time, this apart).
    Upgrade {
        trickle: Option<Duration>,
    },
    /// Write these bytes.
    Send(&'static [u8]),
    /// Write a frame: FIN/RSV/opcode byte, payload length as given on the wire
    /// (7, 16 or 64 bits), `mask` set or not, and `payload`.
    Frame {
        first: u8,
        len: u64,
        masked: bool,
        payload: &'static [u8],
    },
    /// A binary frame of `len` bytes (a legitimate large message).
    Big(usize),
    /// One binary message in `count` fragments of `each` bytes.
    Fragments {
        count: usize,
        each: usize,
    },
    /// Unsolicited binary messages of 1 KiB as fast as the socket takes them.
    Flood,
    Sleep(Duration),
}

/// The frame header for `first`, a payload length `len` and a mask bit (an
/// all-zero key: the payload goes as it is).
fn header(first: u8, len: u64, masked: bool) -> Vec<u8> {
    support::frame_header(first, len, masked.then_some([0; 4]))
}

async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

async fn act(tcp: &mut TcpStream, key: &str, a: Act) -> std::io::Result<()> {
    match a {
        Act::Upgrade { trickle } => {
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            match trickle {
                None => tcp.write_all(resp.as_bytes()).await,
                Some(gap) => {
                    for b in resp.as_bytes() {
                        tcp.write_all(&[*b]).await?;
                        tokio::time::sleep(gap).await;
                    }
                    Ok(())
                }
            }
        }
        Act::Send(bytes) => tcp.write_all(bytes).await,
        Act::Frame {
            first,
            len,
            masked,
            payload,
        } => {
            let mut f = header(first, len, masked);
            f.extend_from_slice(payload);
            tcp.write_all(&f).await
        }
        Act::Big(n) => {
            let mut f = header(0x82, n as u64, false);
            f.resize(f.len() + n, b'x');
            tcp.write_all(&f).await
        }
        Act::Fragments { count, each } => {
            for i in 0..count {
                let opcode = if i == 0 { 0x02 } else { 0x00 };
                let fin = if i + 1 == count { 0x80 } else { 0 };
                let mut f = header(fin | opcode, each as u64, false);
                f.resize(f.len() + each, b'f');
                tcp.write_all(&f).await?;
            }
            Ok(())
        }
        Act::Flood => {
            let mut f = header(0x82, 1024, false);
            f.resize(f.len() + 1024, b'z');
            let burst = f.repeat(64);
            loop {
                tcp.write_all(&burst).await?;
            }
        }
        Act::Sleep(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
    }
}

/// A server that upgrades each connection and then plays `script`, then reads
/// and drops whatever comes until the client goes.
fn hostile(name: &str, script: &'static [Act]) -> Server {
    Server::spawn(name, move |mut tcp, _stats| async move {
        let Some(head) = read_head(&mut tcp).await else {
            return;
        };
        let key = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        for a in script {
            if act(&mut tcp, &key, *a).await.is_err() {
                return;
            }
        }
        let mut sink = vec![0u8; 64 * 1024];
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(n) = tcp.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    })
}

const UP: Act = Act::Upgrade { trickle: None };
const SOON: Act = Act::Sleep(Duration::from_millis(200));

/// Each violation, and the error it must be counted as.
const VIOLATIONS: &[(&str, &[Act], &str)] = &[
    (
        "a length of 2^63",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x82,
                len: 1 << 63,
                masked: false,
                payload: b"",
            },
        ],
        "protocol_frame_too_large",
    ),
    (
        "a 100 MiB frame",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x82,
                len: 100 << 20,
                masked: false,
                payload: b"",
            },
        ],
        "protocol_frame_too_large",
    ),
    (
        "a fragmented ping",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x09,
                len: 2,
                masked: false,
                payload: b"hi",
            },
        ],
        "protocol_bad_control_frame",
    ),
    (
        "a ping of 126 bytes",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x89,
                len: 126,
                masked: false,
                payload: &[b'p'; 126],
            },
        ],
        "protocol_bad_control_frame",
    ),
    (
        "invalid UTF-8 in a text message",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x81,
                len: 4,
                masked: false,
                payload: &[b'o', b'k', 0xff, 0xfe],
            },
        ],
        "protocol_invalid_utf8",
    ),
    (
        "invalid UTF-8 in a text message cut in fragments",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x01,
                len: 2,
                masked: false,
                payload: &[b'a', 0xe2],
            },
            Act::Frame {
                first: 0x80,
                len: 1,
                masked: false,
                payload: &[0x28],
            },
        ],
        "protocol_invalid_utf8",
    ),
    (
        "invalid UTF-8 in a close reason",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x88,
                len: 4,
                masked: false,
                payload: &[0x03, 0xe8, 0xc3, 0x28],
            },
        ],
        "protocol_invalid_utf8",
    ),
    (
        "a close code no endpoint sends (1005)",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x88,
                len: 2,
                masked: false,
                payload: &[0x03, 0xed],
            },
        ],
        "protocol_bad_close_code",
    ),
    (
        "a close payload of one byte",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x88,
                len: 1,
                masked: false,
                payload: &[0x03],
            },
        ],
        "protocol_bad_close_payload",
    ),
    (
        "a masked frame from the server",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x82,
                len: 2,
                masked: true,
                payload: b"hi",
            },
        ],
        "protocol_bad_masking",
    ),
    (
        "RSV1 with no extension",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0xc2,
                len: 2,
                masked: false,
                payload: b"hi",
            },
        ],
        "protocol_reserved_bits",
    ),
    (
        "a continuation with no start",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x80,
                len: 2,
                masked: false,
                payload: b"hi",
            },
        ],
        "protocol_bad_fragmentation",
    ),
    (
        "a reserved opcode",
        &[
            UP,
            SOON,
            Act::Frame {
                first: 0x8b,
                len: 0,
                masked: false,
                payload: b"",
            },
        ],
        "protocol_reserved_opcode",
    ),
];

/// A violation's run lasts 1 s; it must end within this (its connections
/// fail at once, the close window is short).
const ON_TIME: Duration = Duration::from_secs(5);

#[test]
fn every_violation_a_server_can_make_fails_its_connection_by_name() {
    let _serial = serial();
    for (what, script, cause) in VIOLATIONS {
        let server = hostile("violation", script);
        let started = std::time::Instant::now();
        let res = run(
            &[&server.url(), "-q", "-c", "2", "-d", "1s", "--rate", "20"],
            LIMIT,
        );
        let took = started.elapsed();
        assert!(took < ON_TIME, "{what}: the 1 s run took {took:?}");
        assert_eq!(res.errors.get(*cause), Some(&2), "{what}: {:?}", res.errors);
        assert_eq!(
            res.connections.lost_by_cause.get("protocol_error"),
            Some(&2),
            "{what}: {:?}",
            res.connections
        );
        assert!(res.messages.ledger_balances(), "{what}: {:?}", res.messages);
        // The report renders whatever happened.
        let text = support::summary_text(&res);
        assert!(text.contains(cause), "{what}: {text}");
    }
}

#[test]
fn slow_and_greedy_servers() {
    let _serial = serial();
    // A 101 trickled a byte at a time (about 130 bytes, 5 ms apart): slow, not wrong.
    const TRICKLE: &[Act] = &[Act::Upgrade {
        trickle: Some(Duration::from_millis(5)),
    }];
    let server = hostile("trickle", TRICKLE);
    let res = run(
        &[&server.url(), "-q", "-c", "2", "-d", "2s", "-w", "idle"],
        LIMIT,
    );
    assert_eq!(res.connections.established, 2, "{:?}", res.connections);
    assert!(
        res.latency.handshake.min_us > 500_000.0,
        "{:?}",
        res.latency.handshake
    );
    // An endless flood of unsolicited messages: the run still ends on time, and
    // every message is counted as unexpected.
    let server = hostile("flood", &[UP, Act::Flood]);
    let started = std::time::Instant::now();
    let res = run(
        &[&server.url(), "-q", "-c", "2", "-d", "1s", "-w", "idle"],
        LIMIT,
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(res.messages.unexpected > 1000, "{:?}", res.messages);
    // Half a frame, then silence: held until the stop, then closed unanswered.
    let server = hostile(
        "half",
        &[UP, Act::Send(&[0x82, 0x7e, 0x10, 0x00, b'a', b'b'])],
    );
    let started = std::time::Instant::now();
    let res = run(
        &[&server.url(), "-q", "-c", "2", "-d", "1s", "-w", "idle"],
        LIMIT,
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(res.connections.lost, 0, "{:?}", res.connections);
    // A legitimate 16 MiB message: received (and counted as unexpected, as any
    // message no send asked for); over --max-message, the connection fails.
    let server = hostile("big", &[UP, SOON, Act::Big(16 << 20)]);
    let res = run(
        &[&server.url(), "-q", "-c", "1", "-d", "2s", "-w", "idle"],
        LIMIT,
    );
    assert_eq!(res.messages.unexpected, 1, "{:?}", res.messages);
    assert_eq!(res.connections.lost, 0, "{:?}", res.connections);
    let res = run(
        &[
            &server.url(),
            "-q",
            "-c",
            "1",
            "-d",
            "2s",
            "-w",
            "idle",
            "--max-message",
            "1MiB",
        ],
        LIMIT,
    );
    // One frame over --max-message is refused from its header, before its
    // payload is read.
    assert_eq!(
        res.errors.get("protocol_frame_too_large"),
        Some(&1),
        "{:?}",
        res.errors
    );
    assert_eq!(res.errors.len(), 1, "{:?}", res.errors);
    // A message over it in fragments that each fit: refused once the
    // fragments held whole would pass it.
    const FRAGMENTS: &[Act] = &[
        UP,
        SOON,
        Act::Fragments {
            count: 4,
            each: 512 << 10,
        },
    ];
    let server = hostile("fragments", FRAGMENTS);
    let res = run(
        &[
            &server.url(),
            "-q",
            "-c",
            "1",
            "-d",
            "2s",
            "-w",
            "idle",
            "--max-message",
            "1MiB",
        ],
        LIMIT,
    );
    assert_eq!(
        res.errors.get("message_too_large"),
        Some(&1),
        "{:?}",
        res.errors
    );
    assert_eq!(res.errors.len(), 1, "{:?}", res.errors);
    // Under it, the same message is received whole.
    let res = run(
        &[
            &server.url(),
            "-q",
            "-c",
            "1",
            "-d",
            "2s",
            "-w",
            "idle",
            "--max-message",
            "2MiB",
        ],
        LIMIT,
    );
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert_eq!(res.messages.unexpected, 1, "{:?}", res.messages);
}

/// Runs the wsherd binary with `args` and `--json`: only the client lives in
/// that process, so the report's peak RSS (the process's VmHWM) is the
/// client's own.
fn run_child(args: &[&str]) -> wsherd::results::RunResults {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("out.json");
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", json.to_str().expect("a UTF-8 path")]);
    let started = std::time::Instant::now();
    let out = support::run_bin(&all, LIMIT);
    let took = started.elapsed();
    assert!(
        out.code.is_some() && !out.stderr.contains("panicked"),
        "{out:?}"
    );
    assert!(took < ON_TIME, "the 1 s run took {took:?}");
    let text = std::fs::read_to_string(&json).expect("the report is written");
    serde_json::from_str(&text).expect("the report is JSON")
}

#[test]
fn a_flood_and_a_length_of_2_63_leave_the_clients_memory_bounded() {
    let _serial = serial();
    let peak = |res: &wsherd::results::RunResults| {
        res.memory.as_ref().expect("memory figures").peak_rss_kib
    };
    // The same client against a server that upgrades and then says nothing.
    let quiet = hostile("quiet", &[UP]);
    let idle = ["-q", "-c", "2", "-d", "1s", "-w", "idle"];
    let base = peak(&run_child(&[&[quiet.url().as_str()][..], &idle].concat()));
    // What the hostile servers may add: the connections' buffers, far below
    // what a flood of a second (gigabytes on loopback) or a 2^63 frame would.
    const SLACK_KIB: u64 = 16 * 1024;
    let flood = hostile("flood", &[UP, Act::Flood]);
    let res = run_child(&[&[flood.url().as_str()][..], &idle].concat());
    assert!(res.messages.unexpected > 1000, "{:?}", res.messages);
    assert!(
        peak(&res) < base + SLACK_KIB,
        "flood: peak {} KiB, quiet {base} KiB",
        peak(&res)
    );
    let huge = hostile("2^63", VIOLATIONS[0].1);
    let res = run_child(&[&huge.url(), "-q", "-c", "2", "-d", "1s", "--rate", "20"]);
    assert_eq!(
        res.errors.get("protocol_frame_too_large"),
        Some(&2),
        "{:?}",
        res.errors
    );
    assert!(
        peak(&res) < base + SLACK_KIB,
        "2^63: peak {} KiB, quiet {base} KiB",
        peak(&res)
    );
}
