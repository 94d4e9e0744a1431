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

/// Idle connections wait parked with no task of their own (`shard::park`): a
/// ping resumes one, it answers, and it parks again; a server's close or reset
/// reaches it as it would a task; and at the stop every one closes cleanly.
#[test]
fn parked_idle_connections_answer_pings_and_see_the_server_end() {
    let _serial = serial();
    let server = ws_server(WsBehaviour {
        ping_every: Some(Duration::from_millis(100)),
        unsolicited_after: None,
        ending: Ending::Never,
    });
    let url = server.url();
    let res = run(&[&url, "-w", "idle", "-c", "20", "-d", "2s", "-q"], LIMIT);
    let conns = &res.connections;
    assert_eq!(
        (conns.established, conns.failed, conns.lost),
        (20, 0, 0),
        "{conns:?}"
    );
    assert!(res.errors.values().all(|&n| n == 0), "{:?}", res.errors);
    assert_eq!(res.messages.unexpected, 0, "{:?}", res.messages);
    let pings_sent = ServerStats::get(&server.stats.pings_sent);
    let pongs_seen = ServerStats::get(&server.stats.pongs_received);
    // About 19 pings to each of 20 connections; every one that came before the
    // stop was answered and seen.
    assert!(pings_sent >= 200, "the server sent {pings_sent} pings");
    assert!(
        res.messages.pings_answered + 40 >= pings_sent && res.messages.pings_answered <= pings_sent,
        "answered {} of {pings_sent} pings",
        res.messages.pings_answered
    );
    assert!(
        pongs_seen + 40 >= pings_sent,
        "the server saw {pongs_seen} pongs of {pings_sent}"
    );
    // Parked when opened, and again after each ping.
    assert!(
        res.connections.parks >= 20 + res.messages.pings_answered / 2,
        "parks {} for {} pings answered",
        res.connections.parks,
        res.messages.pings_answered
    );
    assert_eq!(res.connections.closed_clean, 20, "{:?}", res.connections);

    for (ending, cause, code) in [
        (
            Ending::CloseFrame {
                after: Duration::from_millis(500),
                code: 1001,
            },
            "closed_by_server",
            Some("1001"),
        ),
        (
            Ending::Reset {
                after: Duration::from_millis(500),
            },
            "reset",
            None,
        ),
    ] {
        let server = ws_server(WsBehaviour {
            ping_every: None,
            unsolicited_after: None,
            ending,
        });
        let url = server.url();
        let res = run(&[&url, "-w", "idle", "-c", "20", "-d", "2s", "-q"], LIMIT);
        let conns = &res.connections;
        assert_eq!(conns.established, 20, "{ending:?}: {conns:?}");
        assert!(conns.parks >= 20, "{ending:?}: {conns:?}");
        assert_eq!(conns.lost, 20, "{ending:?}: {conns:?}");
        assert_eq!(
            conns.lost_by_cause.get(cause).copied(),
            Some(20),
            "{ending:?}: {conns:?}"
        );
        match code {
            Some(code) => assert_eq!(conns.close_codes.get(code).copied(), Some(20), "{conns:?}"),
            None => assert!(conns.close_codes.is_empty(), "{conns:?}"),
        }
        assert!(res.messages.ledger_balances(), "{:?}", res.messages);
    }
}
