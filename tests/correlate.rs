//! Replies matched by a field (`--correlate`, issue 13 item 2): a JSON-RPC server
//! of another stack that answers with messages of its own, out of order
//! (tests/servers/jsonrpc_ooo.py, Python `websockets`), in the closed and the open
//! loop; requests it never answers stay in the ledger, replies naming no request
//! are counted and shown; and the flags' errors.

mod support;

use std::time::Duration;
use support::{assert_usage_errors, run, serial, ChildServer};

const LIMIT: Duration = Duration::from_secs(20);

const RPC: &str = r#"{"jsonrpc":"2.0","id":{seq},"method":"echo","params":["u{conn}","hello"]}"#;

fn rpc_server(args: &[&str]) -> ChildServer {
    ChildServer::script("python3", "jsonrpc_ooo.py", args, "the JSON-RPC server")
}

#[test]
fn out_of_order_replies_are_matched_in_the_closed_loop() {
    let _serial = serial();
    let server = rpc_server(&["--max-delay-ms", "5"]);
    let url = server.url("/");
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "4",
            "-d",
            "2s",
            "--inflight",
            "8",
            "--template",
            RPC,
            "--correlate",
            "/id",
        ],
        LIMIT,
    );
    let m = &res.messages;
    assert!(m.received > 200, "{m:?}");
    assert_eq!(m.unexpected, 0, "{m:?}");
    assert_eq!(
        m.in_flight_at_stop, 0,
        "the drain waits for every reply: {m:?}"
    );
    assert_eq!(res.latency.rtt.count, m.received);
    // The server delays each reply by 0-5 ms, so round trips spread over them.
    assert!(res.latency.rtt.max_us > 1000.0, "{:?}", res.latency.rtt);
    assert_eq!(res.config.correlate.as_deref(), Some("/id"));
    let text = support::summary_text(&res);
    assert!(
        text.contains("replies matched to requests by /id"),
        "{text}"
    );
    support::assert_schema(&res);
}

#[test]
fn the_open_loop_times_from_the_intended_send_and_keeps_unanswered_requests() {
    let _serial = serial();
    // Every fifth request is never answered.
    let server = rpc_server(&["--max-delay-ms", "3", "--drop-every", "5"]);
    let url = server.url("/");
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "4",
            "-d",
            "2s",
            "--rate",
            "400",
            "--drain",
            "500ms",
            "--template",
            RPC,
            "--correlate",
            "/id",
        ],
        LIMIT,
    );
    let m = &res.messages;
    assert!(m.sent > 400, "{m:?}");
    // Requests 5, 10, 15, ... of each connection were dropped: a fifth of them
    // (give or take one per connection) is still awaited at the stop.
    let dropped = m.sent / 5;
    assert!(
        m.in_flight_at_stop + 4 >= dropped && m.in_flight_at_stop <= dropped + 4,
        "{m:?}"
    );
    assert_eq!(m.received + m.in_flight_at_stop + m.failed, m.sent);
    assert_eq!(m.unexpected, 0, "{m:?}");
    assert!(
        res.latency.rtt_uncorrected.is_some(),
        "an open loop keeps both figures"
    );
}

#[test]
fn replies_that_name_no_request_are_counted_and_shown() {
    let _serial = serial();
    let server = rpc_server(&["--stray-every", "3"]);
    let url = server.url("/");
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "--template",
            RPC,
            "--correlate",
            "/id",
        ],
        LIMIT,
    );
    let m = &res.messages;
    assert!(m.received > 30, "{m:?}");
    // One stray after every third reply (the last one of each connection may
    // come after its close).
    assert!(
        m.unexpected + 2 >= m.received / 3 && m.unexpected <= m.received / 3 + 2,
        "{m:?}"
    );
    assert!(m.unexpected_samples[0].start.contains("stray"), "{m:?}");
    // A field that no reply carries: nothing matches, and the report says where it looked.
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "1",
            "-d",
            "1s",
            "--rate",
            "50",
            "--template",
            RPC,
            "--correlate",
            "/result/id",
        ],
        LIMIT,
    );
    assert_eq!(res.messages.received, 0);
    let text = support::summary_text(&res);
    assert!(
        text.contains("does the server answer each request with its id in /result/id?"),
        "{text}"
    );
    assert!(text.contains("hint"), "{text}");
}

#[test]
fn an_echo_server_answers_requests_too() {
    // The built-in server echoes: the reply carries the request's id, as a
    // string here, matched by the digits at its end.
    let _serial = serial();
    let res = run(
        &[
            "-q",
            "-c",
            "3",
            "-d",
            "1s",
            "--inflight",
            "2",
            "--template",
            r#"{"id":"req-{seq}","q":"x"}"#,
            "--correlate",
            "/id",
        ],
        LIMIT,
    );
    support::assert_clean(&res, 3);
    assert!(res.messages.received > 100);
}

#[test]
fn correlate_errors_say_what_to_do() {
    assert_usage_errors(&[
        (&["--correlate", "/id"], "give the request with --template"),
        (
            &["--correlate", "id", "--template", r#"{"id":{seq}}"#],
            "--correlate: JSON pointer",
        ),
        (
            &["--correlate", "/id", "--template", r#"{"id":{conn}}"#],
            "template: needs {seq}",
        ),
        (
            &[
                "-w",
                "ping",
                "--correlate",
                "/id",
                "--template",
                r#"{"id":{seq}}"#,
            ],
            "do not apply to pings",
        ),
        (
            &[
                "-w",
                "idle",
                "--correlate",
                "/id",
                "--template",
                r#"{"id":{seq}}"#,
            ],
            "--correlate does not apply to --workload idle",
        ),
        (
            &[
                "-w",
                "broadcast",
                "--rate",
                "10",
                "--correlate",
                "/id",
                "--template",
                r#"{"id":{seq}}"#,
            ],
            "--correlate does not apply to --workload broadcast",
        ),
    ]);
}

#[test]
fn the_shipped_scenario_runs_against_the_test_server() {
    let _serial = serial();
    let server = rpc_server(&["--max-delay-ms", "5"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let res = support::run_shipped_scenario(
        "jsonrpc.toml",
        &[
            ("127.0.0.1:8545", addr.as_str()),
            ("duration = \"10s\"", "duration = \"1s\""),
        ],
    );
    for s in &res.scenarios {
        let m = &s.results.messages;
        assert!(m.received > 50, "{}: {m:?}", s.name);
        assert_eq!(m.unexpected, 0, "{}: {m:?}", s.name);
        assert!(m.ledger_balances(), "{}: {m:?}", s.name);
        assert_eq!(s.results.config.correlate.as_deref(), Some("/id"));
    }
}
