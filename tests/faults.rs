//! Fault injection: targets that refuse, reject, lie in the handshake, close, reset
//! or break the protocol, and bad input on the command line. wsherd must count each
//! fault under its cause, keep its message ledger, and never panic.

mod support;

use std::time::Duration;
use support::{
    assert_clean, bad_accept_server, check_invariants, closed_port, forbidden_server,
    garbage_server, run, run_bin, serial, silent_server, try_run, ws_server, Ending, ServerStats,
    WsBehaviour,
};
use wsherd::results::RunResults;

/// A run of `-d 2s` must be over well within this.
const LIMIT: Duration = Duration::from_secs(15);

fn cause(map: &std::collections::BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

/// Every connection failed, none established, nothing sent.
fn assert_all_failed(res: &RunResults, connections: u64) {
    let conns = &res.connections;
    assert_eq!(conns.established, 0, "{conns:?}");
    assert_eq!(conns.failed, connections, "{conns:?}");
    assert_eq!(conns.lost, 0, "{conns:?}");
    assert_eq!(res.messages.sent, 0, "{:?}", res.messages);
    assert_eq!(res.latency.rtt.count, 0);
}

// (a)
#[test]
fn nothing_listening_is_refused() {
    let _serial = serial();
    let url = format!("ws://127.0.0.1:{}/", closed_port());
    let res = run(&[&url, "-c", "20", "-d", "1s", "-q"], LIMIT);
    assert_all_failed(&res, 20);
    assert_eq!(
        cause(&res.connections.failed_by_cause, "refused"),
        20,
        "{:?}",
        res.connections.failed_by_cause
    );
}

// (b)
#[test]
fn http_403_is_counted_by_status() {
    let _serial = serial();
    let server = forbidden_server();
    let url = server.url();
    let res = run(&[&url, "-c", "10", "-d", "1s", "-q"], LIMIT);
    assert_all_failed(&res, 10);
    assert_eq!(
        cause(&res.connections.failed_by_cause, "http_403"),
        10,
        "{:?}",
        res.connections.failed_by_cause
    );
    assert_eq!(ServerStats::get(&server.stats.ended), 10);
}

// (c)
#[test]
fn wrong_accept_key_is_rejected() {
    let _serial = serial();
    let server = bad_accept_server();
    let url = server.url();
    let res = run(&[&url, "-c", "10", "-d", "1s", "-q"], LIMIT);
    assert_all_failed(&res, 10);
    assert_eq!(
        cause(&res.connections.failed_by_cause, "bad_accept_key"),
        10,
        "{:?}",
        res.connections.failed_by_cause
    );
}

/// A server that accepts TCP and never answers the upgrade: every connection
/// fails within the connect timeout (whatever the cause is called) and the run
/// ends on time.
#[test]
fn silent_server_times_out_the_handshake() {
    let _serial = serial();
    let server = silent_server();
    let url = server.url();
    let started = std::time::Instant::now();
    let res = run(
        &[
            &url,
            "-c",
            "10",
            "-d",
            "2s",
            "--connect-timeout",
            "500ms",
            "-q",
        ],
        LIMIT,
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "run took {:?}",
        started.elapsed()
    );
    assert_all_failed(&res, 10);
}

/// A server that answers the upgrade with bytes that are not HTTP.
#[test]
fn garbage_handshake_response_fails_cleanly() {
    let _serial = serial();
    let server = garbage_server();
    let url = server.url();
    let res = run(&[&url, "-c", "10", "-d", "1s", "-q"], LIMIT);
    assert_all_failed(&res, 10);
    for key in res.connections.failed_by_cause.keys() {
        assert!(
            !key.starts_with("http_") && key != "refused",
            "garbage response counted as {key}: {:?}",
            res.connections.failed_by_cause
        );
    }
}

// (d)
#[test]
fn server_close_frame_1001_is_counted() {
    let _serial = serial();
    let server = ws_server(WsBehaviour {
        ping_every: None,
        unsolicited_after: None,
        ending: Ending::CloseFrame {
            after: Duration::from_millis(500),
            code: 1001,
        },
    });
    let url = server.url();
    let res = run(&[&url, "-c", "20", "-d", "2s", "-q"], LIMIT);
    let conns = &res.connections;
    assert_eq!(conns.failed, 0, "{conns:?}");
    assert!(conns.established >= 20, "{conns:?}");
    assert!(res.messages.received > 0, "{:?}", res.messages);
    assert!(
        cause(&conns.lost_by_cause, "closed_by_server") >= 20,
        "lost_by_cause: {:?}",
        conns.lost_by_cause
    );
    assert!(
        cause(&conns.close_codes, "1001") >= 20,
        "close_codes: {:?}",
        conns.close_codes
    );
    assert!(res.messages.ledger_balances(), "{:?}", res.messages);
    assert_eq!(res.messages.unexpected, 0, "{:?}", res.messages);
}

fn assert_lost_abruptly(res: &RunResults, connections: u64, expected_causes: &[&str]) {
    let conns = &res.connections;
    assert_eq!(conns.failed, 0, "{conns:?}");
    assert!(conns.established >= connections, "{conns:?}");
    assert!(res.messages.received > 0, "{:?}", res.messages);
    let by_expected: u64 = expected_causes
        .iter()
        .map(|c| cause(&conns.lost_by_cause, c))
        .sum();
    assert!(
        by_expected >= connections,
        "expected >= {connections} lost as {expected_causes:?}: {:?}",
        conns.lost_by_cause
    );
    assert!(
        conns.close_codes.is_empty(),
        "close codes without a close frame: {:?}",
        conns.close_codes
    );
    assert!(res.messages.ledger_balances(), "{:?}", res.messages);
}

// (e) FIN without a close frame.
#[test]
fn server_fin_without_close_is_lost() {
    let _serial = serial();
    let server = ws_server(WsBehaviour {
        ping_every: None,
        unsolicited_after: None,
        ending: Ending::Fin {
            after: Duration::from_millis(500),
        },
    });
    let url = server.url();
    let res = run(&[&url, "-c", "20", "-d", "2s", "-q"], LIMIT);
    assert_lost_abruptly(&res, 20, &["eof_without_close", "reset"]);
}

// (e) RST (SO_LINGER 0).
#[test]
fn server_reset_is_lost() {
    let _serial = serial();
    let server = ws_server(WsBehaviour {
        ping_every: None,
        unsolicited_after: None,
        ending: Ending::Reset {
            after: Duration::from_millis(500),
        },
    });
    let url = server.url();
    let res = run(&[&url, "-c", "20", "-d", "2s", "-q"], LIMIT);
    assert_lost_abruptly(&res, 20, &["reset", "eof_without_close"]);
}

/// A frame with a reserved opcode is a protocol violation: counted as an error,
/// the connection is lost, and the ledger still balances.
#[test]
fn reserved_opcode_is_a_protocol_error() {
    let _serial = serial();
    let server = ws_server(WsBehaviour {
        ping_every: None,
        unsolicited_after: None,
        ending: Ending::BadFrame {
            after: Duration::from_millis(300),
        },
    });
    let url = server.url();
    let res = run(&[&url, "-c", "10", "-d", "2s", "-q"], LIMIT);
    let conns = &res.connections;
    assert_eq!(conns.failed, 0, "{conns:?}");
    assert_eq!(conns.established, 10, "{conns:?}");
    assert_eq!(conns.lost, 10, "lost: {conns:?}");
    assert_eq!(
        res.errors.get("protocol_reserved_opcode"),
        Some(&10),
        "protocol errors not counted: {:?}",
        res.errors
    );
    assert_eq!(
        conns.lost_by_cause.get("protocol_error"),
        Some(&10),
        "{conns:?}"
    );
    assert!(res.messages.ledger_balances(), "{:?}", res.messages);
}

/// A data frame that matches no send is counted as unexpected, not as an echo.
#[test]
fn unsolicited_message_is_unexpected() {
    let _serial = serial();
    let server = ws_server(WsBehaviour {
        ping_every: None,
        unsolicited_after: Some(Duration::from_millis(300)),
        ending: Ending::Never,
    });
    let url = server.url();
    let res = run(&[&url, "-c", "10", "-d", "2s", "-q"], LIMIT);
    let conns = &res.connections;
    assert_eq!(conns.failed, 0, "{conns:?}");
    assert_eq!(conns.established, 10, "{conns:?}");
    assert_eq!(
        res.messages.unexpected, 10,
        "one unsolicited message per connection: {:?}",
        res.messages
    );
    assert!(res.messages.received > 0, "{:?}", res.messages);
    assert!(res.messages.ledger_balances(), "{:?}", res.messages);
}

// (f) Bad input through the binary.

/// The process exited with `expected` (one of) and said why in one line of stderr,
/// without a panic or a backtrace.
fn assert_clean_failure(args: &[&str], expected: &[i32]) {
    let out = run_bin(args, Duration::from_secs(20));
    let shown = args.join(" ");
    let code = out.code.unwrap_or(-1);
    assert!(
        expected.contains(&code),
        "`wsherd {shown}`: exit code {code}, expected one of {expected:?}; stderr:\n{}",
        out.stderr
    );
    let lower = out.stderr.to_lowercase();
    assert!(
        !lower.contains("panicked") && !lower.contains("backtrace"),
        "`wsherd {shown}` panicked:\n{}",
        out.stderr
    );
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "`wsherd {shown}`: expected a one-line error on stderr, got:\n{}",
        out.stderr
    );
}

#[test]
fn bad_url_without_host() {
    assert_clean_failure(&["run", "ws://", "-d", "1s", "-q"], &[2]);
}

#[test]
fn bad_url_http_scheme() {
    assert_clean_failure(&["run", "http://127.0.0.1:9/", "-d", "1s", "-q"], &[2]);
}

#[test]
fn bad_zero_connections() {
    assert_clean_failure(
        &["run", "ws://127.0.0.1:9/", "-c", "0", "-d", "1s", "-q"],
        &[2],
    );
}

#[test]
fn bad_negative_duration() {
    assert_clean_failure(&["run", "ws://127.0.0.1:9/", "-d", "-5s", "-q"], &[2]);
}

#[test]
fn bad_duration_word() {
    assert_clean_failure(&["run", "ws://127.0.0.1:9/", "-d", "banana", "-q"], &[2]);
}

#[test]
fn bad_size_below_timing_header() {
    assert_clean_failure(
        &["run", "ws://127.0.0.1:9/", "--size", "3", "-d", "1s", "-q"],
        &[2],
    );
}

#[test]
fn unresolvable_host() {
    let _serial = serial();
    assert_clean_failure(
        &[
            "run",
            "ws://no-such-host.invalid/",
            "-c",
            "1",
            "-d",
            "1s",
            "-q",
        ],
        &[1, 2],
    );
}

/// In-process, the same bad input is an `Err` with the usage exit code.
#[test]
fn bad_input_in_process_is_usage_error() {
    for args in [
        &["ws://", "-d", "1s"][..],
        &["http://127.0.0.1:9/", "-d", "1s"],
        &["ws://127.0.0.1:9/", "-c", "0"],
        &["ws://127.0.0.1:9/", "-d", "banana"],
        &["ws://127.0.0.1:9/", "--size", "3"],
        &["ws://127.0.0.1:9/", "--size", "59", "--text"],
        &["ws://127.0.0.1:9/", "--size", "31"],
    ] {
        match wsherd::engine::Run::from_args(args.iter().copied()) {
            Ok(_) => panic!("{args:?} accepted"),
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
                let msg = e.to_string();
                assert!(
                    !msg.trim().is_empty() && !msg.contains('\n'),
                    "{args:?}: {msg:?}"
                );
            }
        }
    }
}

/// The smallest sizes the timing header allows are accepted.
#[test]
fn minimum_sizes_are_accepted() {
    for args in [
        &["ws://127.0.0.1:9/", "--size", "32"][..],
        &["ws://127.0.0.1:9/", "--size", "60", "--text"],
    ] {
        if let Err(e) = wsherd::engine::Run::from_args(args.iter().copied()) {
            panic!("{args:?} rejected: {e}");
        }
    }
}

// (g)
#[test]
fn builtin_server_holds_100_connections() {
    let _serial = serial();
    let config =
        wsherd::server::ServeConfig::from_args(["--addr", "127.0.0.1:0", "--shards", "1", "-q"])
            .expect("serve config");
    let srv = wsherd::server::start(config).expect("start built-in server");
    let url = format!("ws://{}/", srv.addr());
    let result = try_run(&[&url, "-c", "100", "-d", "2s", "-q"], LIMIT);
    let totals = srv.stop();
    let res = result.unwrap_or_else(|e| panic!("run failed ({}): {}", e.exit_code, e.message));
    check_invariants(&res);
    assert_clean(&res, 100);
    assert_eq!(res.connections.peak_open, 100, "{:?}", res.connections);
    assert_eq!(totals.connections, 100, "server totals: {totals:?}");
    assert_eq!(totals.errors, 0, "server totals: {totals:?}");
    assert!(
        totals.messages >= res.messages.received,
        "server echoed {} messages, client matched {}",
        totals.messages,
        res.messages.received
    );
}
