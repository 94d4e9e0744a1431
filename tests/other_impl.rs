//! Whole loads on loopback against a WebSocket server from another implementation
//! (tokio-tungstenite): wsherd must measure any server that echoes, not only its own.

mod support;

use std::time::Duration;
use support::{assert_clean, echo_server, run, run_bin, serial, ws_server, ServerStats};
use support::{Ending, WsBehaviour};
use wsherd::results::RunResults;

/// A run of `-d 2s` must be over well within this.
const LIMIT: Duration = Duration::from_secs(15);

#[test]
fn binary_echo_against_tokio_tungstenite() {
    let _serial = serial();
    let server = echo_server();
    let url = server.url();
    let res = run(&[&url, "-c", "20", "-d", "2s", "-q"], LIMIT);
    assert_clean(&res, 20);
    assert_eq!(res.config.connections, 20);
    assert_eq!(res.config.message_kind, "binary");
    assert_eq!(res.config.message_size, 64);
    assert!(
        res.messages.bytes_sent >= res.messages.sent * 64,
        "bytes_sent {} < sent {} x 64",
        res.messages.bytes_sent,
        res.messages.sent
    );
    // The server echoed every message wsherd counted as received.
    assert!(ServerStats::get(&server.stats.echoed) >= res.messages.received);
    assert_eq!(ServerStats::get(&server.stats.upgraded), 20);
}

#[test]
fn text_echo_against_tokio_tungstenite() {
    let _serial = serial();
    let server = echo_server();
    let url = server.url();
    let res = run(&[&url, "-c", "20", "-d", "2s", "--text", "-q"], LIMIT);
    assert_clean(&res, 20);
    assert_eq!(res.config.message_kind, "text");
    assert!(ServerStats::get(&server.stats.echoed) >= res.messages.received);
}

#[test]
fn inflight_8_against_tokio_tungstenite() {
    let _serial = serial();
    let server = echo_server();
    let url = server.url();
    let res = run(
        &[
            &url,
            "-c",
            "20",
            "-d",
            "2s",
            "--inflight",
            "8",
            "--size",
            "256",
            "-q",
        ],
        LIMIT,
    );
    assert_clean(&res, 20);
    assert_eq!(res.config.inflight, 8);
    assert_eq!(res.config.message_size, 256);
    assert!(
        res.messages.in_flight_at_stop <= 20 * 8,
        "more in flight at stop than connections x inflight: {:?}",
        res.messages
    );
}

#[test]
fn subprocess_json_against_tokio_tungstenite() {
    let _serial = serial();
    let server = echo_server();
    let url = server.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("results.json");
    let json_arg = json.to_str().expect("utf-8 temp path");
    let out = run_bin(
        &[
            "run", &url, "-c", "10", "-d", "1s", "-q", "--json", json_arg,
        ],
        LIMIT,
    );
    assert_eq!(
        out.code,
        Some(0),
        "exit code; stderr:\n{}\nstdout:\n{}",
        out.stderr,
        out.stdout
    );
    let text = std::fs::read_to_string(&json).expect("--json file written");
    let res: RunResults = serde_json::from_str(&text).expect("--json parses as RunResults");
    support::check_invariants(&res);
    assert_clean(&res, 10);
    assert_eq!(res.config.targets, vec![url.clone()]);
    assert!(!res.interrupted);
    assert!(
        res.elapsed_secs >= 0.9 && res.elapsed_secs < 10.0,
        "elapsed_secs {} for -d 1s",
        res.elapsed_secs
    );
}

#[test]
fn server_pings_are_answered() {
    let _serial = serial();
    let server = ws_server(WsBehaviour {
        ping_every: Some(Duration::from_millis(100)),
        unsolicited_after: None,
        ending: Ending::Never,
    });
    let url = server.url();
    let res = run(&[&url, "-c", "10", "-d", "2s", "-q"], LIMIT);
    assert_clean(&res, 10);
    let pings_sent = ServerStats::get(&server.stats.pings_sent);
    let pongs_seen = ServerStats::get(&server.stats.pongs_received);
    assert!(pings_sent > 0, "the server sent no ping");
    assert!(
        res.messages.pings_answered > 0,
        "wsherd answered no ping (server sent {pings_sent}, saw {pongs_seen} pongs)"
    );
    assert!(pongs_seen > 0, "the server saw no pong");
    assert!(
        res.messages.pings_answered <= pings_sent,
        "answered {} pings, only {pings_sent} sent",
        res.messages.pings_answered
    );
}
