//! permessage-deflate (RFC 7692): the load against the built-in server serving it
//! (with and without context takeover, over TLS too), a server that declines it,
//! servers that answer the offer wrongly, a compression bomb (bounded by
//! --max-message, counted by cause), and bad options refused before the run.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::{assert_failed_only_with, assert_usage_errors, run, serial, serve_builtin, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(20);

fn url(server: &wsherd::server::ServerHandle) -> String {
    format!("ws://127.0.0.1:{}/", server.addr().port())
}

#[test]
fn messages_compress_both_ways_against_the_builtin_server() {
    let _serial = serial();
    let server = serve_builtin("1", &["--deflate"]);
    let url = url(&server);
    // Default offer (context kept both ways), no context, small windows; closed
    // and open loop; text messages compress well.
    for options in [
        "--deflate",
        "--deflate=client_no_context_takeover,server_no_context_takeover",
        "--deflate=client_max_window_bits=9,server_max_window_bits=10",
    ] {
        for shape in [&["--inflight", "2"][..], &["--rate", "400"][..]] {
            let mut args = vec![
                url.as_str(),
                options,
                "-q",
                "-c",
                "4",
                "-d",
                "1s",
                "--text",
                "-s",
                "2k",
            ];
            args.extend_from_slice(shape);
            let res = run(&args, LIMIT);
            support::assert_clean(&res, 4);
            let d = res.connections.deflate.as_ref().expect("deflate reported");
            assert_eq!((d.negotiated, d.declined), (4, 0), "{options}: {d:?}");
            assert!(
                d.message_bytes_sent > 0 && d.message_bytes_received > 0,
                "{d:?}"
            );
            // 2 KiB of repetitive text shrinks a lot, both ways.
            assert!(
                d.wire_bytes_sent * 4 < d.message_bytes_sent,
                "{options}: {d:?}"
            );
            assert!(
                d.wire_bytes_received * 4 < d.message_bytes_received,
                "{options}: {d:?}"
            );
            assert_eq!(
                d.message_bytes_received,
                res.messages.received * 2000,
                "{d:?}"
            );
            let kept = !options.contains("no_context");
            assert_eq!(d.state_bytes_per_connection > 0, kept, "{options}: {d:?}");
        }
    }
}

#[test]
fn deflate_over_tls_and_with_the_embedded_server() {
    let _serial = serial();
    let res = run(
        &[
            "--tls",
            "--deflate",
            "-q",
            "-c",
            "3",
            "-d",
            "1s",
            "--binary",
            "-s",
            "300",
        ],
        LIMIT,
    );
    support::assert_clean(&res, 3);
    assert_eq!(res.connections.deflate.as_ref().unwrap().negotiated, 3);
    assert!(res.connections.tls.is_some());
    // The JSON keeps its contract with the new fields.
    let schema: serde_json::Value = serde_json::from_str(wsherd::results::RESULTS_SCHEMA).unwrap();
    let doc = serde_json::to_value(&res).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let text = support::summary_text(&res);
    assert!(
        text.contains("permessage-deflate: negotiated 3 of 3"),
        "{text}"
    );
}

#[test]
fn a_server_that_declines_leaves_messages_uncompressed() {
    let _serial = serial();
    let server = serve_builtin("1", &[]);
    let res = run(
        &[&url(&server), "--deflate", "-q", "-c", "3", "-d", "1s"],
        LIMIT,
    );
    support::assert_clean(&res, 3);
    let d = res.connections.deflate.as_ref().unwrap();
    assert_eq!((d.negotiated, d.declined), (0, 3), "{d:?}");
    assert!(
        d.wire_bytes_sent > d.message_bytes_sent,
        "frames carry headers: {d:?}"
    );
}

/// A server that answers every upgrade with `extensions` (a header line, or
/// nothing), then sends `frame` (if any) and echoes nothing.
fn answering_server(extensions: &'static str, frame: Option<Arc<Vec<u8>>>) -> Server {
    Server::spawn("deflate-raw", move |mut stream: TcpStream, _stats| {
        let frame = frame.clone();
        async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or("")
                .trim()
                .to_string();
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n{extensions}\r\n"
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            if let Some(f) = frame {
                let _ = stream.write_all(&f).await;
            }
            // Hold the connection (reading what comes) until the client goes.
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
    })
}

#[test]
fn wrong_answers_to_the_offer_fail_with_their_cause() {
    let _serial = serial();
    for (answer, with_offer, cause) in [
        (
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
            false,
            "extension_not_offered",
        ),
        (
            "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n",
            true,
            "extension_not_offered",
        ),
        (
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99\r\n",
            true,
            "bad_extension_params",
        ),
    ] {
        let server = answering_server(answer, None);
        let url = server.url();
        let mut args = vec![url.as_str(), "-q", "-c", "2", "-d", "1s"];
        if with_offer {
            args.push("--deflate");
        }
        let res = run(&args, LIMIT);
        assert_failed_only_with(&res, cause);
    }
}

/// One server frame (unmasked, binary, RSV1) carrying `size` zero bytes
/// compressed: a few KiB on the wire.
fn bomb(size: usize) -> Vec<u8> {
    let mut c = flate2::Compress::new_with_window_bits(flate2::Compression::best(), false, 15);
    let input = vec![0u8; size];
    let mut out = Vec::with_capacity(size / 500 + 1024);
    c.compress_vec(&input, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    let mut frame = vec![0x80 | 0x40 | 0x2]; // FIN, RSV1, binary
    if out.len() < 65_536 {
        frame.push(126);
        frame.extend_from_slice(&(out.len() as u16).to_be_bytes());
    } else {
        frame.push(127);
        frame.extend_from_slice(&(out.len() as u64).to_be_bytes());
    }
    frame.extend_from_slice(&out);
    frame
}

#[test]
fn a_compression_bomb_stops_at_max_message() {
    let _serial = serial();
    let answer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    let frame = bomb(200 << 20);
    assert!(frame.len() < 400 * 1024, "{}", frame.len());
    let server = answering_server(answer, Some(Arc::new(frame)));
    let url = server.url();
    let rss_before = rss_kib();
    let res = run(
        &[
            &url,
            "--deflate",
            "--max-message",
            "1MiB",
            "-w",
            "idle",
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
        ],
        LIMIT,
    );
    assert_eq!(res.connections.established, 2, "{:?}", res.connections);
    assert_eq!(
        res.errors.get("message_too_large"),
        Some(&2),
        "{:?}",
        res.errors
    );
    assert_eq!(
        res.connections.lost_by_cause.get("protocol_error"),
        Some(&2),
        "{:?}",
        res.connections
    );
    // 200 MiB never came into memory: at most the cap per connection and change.
    let grew = rss_kib().saturating_sub(rss_before);
    assert!(grew < 64 * 1024, "RSS grew {grew} KiB");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn data_that_is_not_deflate_fails_the_connection() {
    let _serial = serial();
    // RSV1 set on a frame whose payload is not a deflate stream.
    let frame = vec![0x80 | 0x40 | 0x2, 5, 0xff, 0xff, 0xff, 0x00, 0x12];
    let server = answering_server(
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        Some(Arc::new(frame)),
    );
    let url = server.url();
    let res = run(
        &[&url, "--deflate", "-w", "idle", "-q", "-c", "2", "-d", "1s"],
        LIMIT,
    );
    assert_eq!(
        res.errors.get("protocol_bad_deflate"),
        Some(&2),
        "{:?}",
        res.errors
    );
    // Without --deflate, RSV1 is a reserved bit no extension claimed.
    let server = answering_server("", Some(Arc::new(vec![0x80 | 0x40 | 0x2, 1, 0])));
    let url = server.url();
    let res = run(&[&url, "-w", "idle", "-q", "-c", "2", "-d", "1s"], LIMIT);
    assert_eq!(
        res.errors.get("protocol_reserved_bits"),
        Some(&2),
        "{:?}",
        res.errors
    );
}

#[test]
fn bad_deflate_options_are_refused() {
    assert_usage_errors(&[
        (
            &["ws://127.0.0.1:9/", "--deflate=nope"],
            "not a permessage-deflate option",
        ),
        (
            &["ws://127.0.0.1:9/", "--deflate=client_max_window_bits=20"],
            "8 to 15 bits",
        ),
        (
            &[
                "ws://127.0.0.1:9/",
                "-H",
                "Sec-WebSocket-Extensions: permessage-deflate",
            ],
            "--deflate",
        ),
    ]);
    let Err(e) = wsherd::server::ServeConfig::from_args(["--deflate", "--mode", "broadcast"])
    else {
        panic!("serve --deflate --mode broadcast should be refused");
    };
    assert!(e.to_string().contains("--mode echo"), "{e}");
}
