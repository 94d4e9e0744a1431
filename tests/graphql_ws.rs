//! `--protocol graphql-ws` (issue 13 item 4) against Node's `graphql-ws` server
//! (tests/servers/node/graphql_ws_server.js, installed by
//! scripts/setup-test-deps.sh): connection_init and its ack, queries timed from
//! the subscribe to their `next`, errors counted as failed requests, a
//! subscription's `next` messages pushed and checked, a refused init, and the
//! flags' errors.

mod support;

use std::time::Duration;
use support::{assert_clean, assert_usage_errors, run, serial, ChildServer};

const LIMIT: Duration = Duration::from_secs(20);

fn gql_server(args: &[&str]) -> ChildServer {
    ChildServer::script(
        "node",
        "node/graphql_ws_server.js",
        args,
        "the graphql-ws server",
    )
}

#[test]
fn queries_are_timed_to_their_next_and_errors_fail_them() {
    let _serial = serial();
    let server = gql_server(&[]);
    let url = server.url("/graphql");
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "3",
            "-d",
            "1500ms",
            "--protocol",
            "graphql-ws",
            "--inflight",
            "2",
            "--query",
            "query($m: String!) { echo(msg: $m) }",
            "--variables",
            r#"{"m":"hi"}"#,
        ],
        LIMIT,
    );
    assert_clean(&res, 3);
    let m = &res.messages;
    assert!(m.received > 200, "{m:?}");
    let p = res.protocol.as_ref().expect("a protocol section");
    assert_eq!((p.name.as_str(), p.opened), ("graphql-ws", 3), "{p:?}");
    assert_eq!(p.received.get("next"), Some(&m.received), "{p:?}");
    assert!(
        p.received.get("complete").copied().unwrap_or(0) + 6 >= m.received,
        "{p:?}"
    );
    assert_eq!(
        res.connections.subprotocols.get("graphql-transport-ws"),
        Some(&3)
    );
    support::assert_schema(&res);
    // A query the schema refuses: every request answered with an error, failed.
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "--protocol",
            "graphql-ws",
            "--query",
            "{ nope }",
        ],
        LIMIT,
    );
    let m = &res.messages;
    assert!(m.sent > 50 && m.received == 0, "{m:?}");
    assert_eq!(m.failed + m.in_flight_at_stop, m.sent, "{m:?}");
    assert_eq!(
        res.errors.get("graphql_error"),
        Some(&m.failed),
        "{:?}",
        res.errors
    );
    // Answered with errors is not "nothing matched".
    let text = support::summary_text(&res);
    assert!(!text.contains("no replies matched"), "{text}");
    assert!(text.contains("graphql_error"), "{text}");
}

#[test]
fn a_subscription_pushes_next_messages() {
    let _serial = serial();
    let server = gql_server(&[]);
    let res = run(
        &[
            &server.url("/"),
            "-q",
            "-c",
            "4",
            "-d",
            "2s",
            "--protocol",
            "graphql-ws",
            "-w",
            "push",
            "--subscribe",
            "subscription { ticks(count: 30, intervalMs: 10) { seq sentMs } }",
            "--seq",
            "/data/ticks/seq",
            "--sent-at",
            "/data/ticks/sentMs",
        ],
        LIMIT,
    );
    let push = res.push.as_ref().expect("a push section");
    assert_eq!((push.subscribes, push.received), (4, 120), "{push:?}");
    assert_eq!(
        (push.missing, push.duplicates, push.skewed),
        (0, 0, 0),
        "{push:?}"
    );
    assert_eq!(push.sent_at_unit.as_deref(), Some("ms"));
    let p = res.protocol.as_ref().unwrap();
    assert_eq!(p.received.get("complete"), Some(&4), "{p:?}");
}

#[test]
fn a_refused_init_closes_with_its_code() {
    let _serial = serial();
    let server = gql_server(&["--require-init-payload", "t0k"]);
    let url = server.url("/");
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "--protocol",
            "graphql-ws",
            "--query",
            "{ hello }",
        ],
        LIMIT,
    );
    assert_eq!(
        res.connections.close_codes.get("4403"),
        Some(&2),
        "{:?}",
        res.connections
    );
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "--protocol",
            "graphql-ws",
            "--query",
            "{ hello }",
            "--init-payload",
            r#"{"token":"t0k"}"#,
        ],
        LIMIT,
    );
    assert_clean(&res, 2);
}

#[test]
fn graphql_ws_errors_say_what_to_do() {
    assert_usage_errors(&[
        (
            &["--protocol", "graphql-ws"],
            "give the operation to time with --query",
        ),
        (
            &["--protocol", "graphql-ws", "-w", "push"],
            "give the subscription with --subscribe",
        ),
        (
            &["--protocol", "graphql-ws", "-w", "ping"],
            "does not carry --workload ping",
        ),
        (
            &[
                "--protocol",
                "graphql-ws",
                "--query",
                "{ a }",
                "--variables",
                "[1]",
            ],
            "is not a JSON object",
        ),
        (
            &[
                "--protocol",
                "graphql-ws",
                "--query",
                "{ a }",
                "--subprotocol",
                "chat",
            ],
            "add it to --subprotocol",
        ),
        (
            &["--protocol", "graphql-ws", "--query", "{ a }", "--ack"],
            "--ack is for --protocol socketio",
        ),
    ]);
}

#[test]
fn the_shipped_scenario_runs_against_the_test_server() {
    let _serial = serial();
    let server = gql_server(&[]);
    let addr = format!("127.0.0.1:{}", server.port);
    let res = support::run_shipped_scenario(
        "graphql.toml",
        &[
            ("127.0.0.1:4000", addr.as_str()),
            ("duration = \"10s\"", "duration = \"1500ms\""),
        ],
    );
    let query = &res.scenarios[0].results;
    assert!(query.messages.received > 100, "{:?}", query.messages);
    assert_eq!(query.messages.failed, 0, "{:?}", query.messages);
    let push = res.scenarios[1].results.push.as_ref().unwrap();
    assert!(push.received > 1000 && push.missing == 0, "{push:?}");
}
