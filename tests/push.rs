//! Server push (`--workload push`, issue 13 item 3) against a server of another
//! stack that pushes a numbered sequence with its send time
//! (tests/servers/push_seq.py, Python `websockets`): messages counted per
//! second, gaps and repeats of the sequence counted, one-way latency timed from
//! the time the message carries, a server clock ahead of ours flagged as skew;
//! and the flags' errors.

mod support;

use std::time::Duration;
use support::{assert_usage_errors, run, serial, ChildServer};

const LIMIT: Duration = Duration::from_secs(20);

const SUBSCRIBE: &str = r#"{"op":"subscribe","channel":"ticks","user":"u{conn}"}"#;

fn push_server(args: &[&str]) -> ChildServer {
    ChildServer::script("python3", "push_seq.py", args, "the push server")
}

#[test]
fn pushed_messages_are_counted_checked_for_gaps_and_timed_one_way() {
    let _serial = serial();
    // 100 a second per connection; every 10th number skipped, every 7th message twice.
    let server = push_server(&["--rate", "100", "--skip-every", "10", "--dup-every", "7"]);
    let url = server.url("/");
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "4",
            "-d",
            "2s",
            "-w",
            "push",
            "--subscribe",
            SUBSCRIBE,
            "--seq",
            "/params/seq",
            "--sent-at",
            "/params/sent_us",
        ],
        LIMIT,
    );
    let p = res.push.as_ref().expect("a push section");
    assert_eq!(p.subscribes, 4, "{p:?}");
    // Each connection's acknowledgement carries neither field.
    assert_eq!(p.without_fields, 4, "{p:?}");
    // About 4 x 100/s x 2 s, the acknowledgements and the skipped slots aside.
    assert!(p.received > 500 && p.received < 1000, "{p:?}");
    let numbered = p.received - p.without_fields;
    // Of the S numbers a connection's schedule went through, S/10 were skipped
    // and S/7 came twice (but those of 70, 140, ... which were skipped): the
    // messages are S (1 - 1/10 + 1/7 - 1/70). Within two per connection at each end.
    let s = numbered as f64 / (1.0 - 0.1 + 1.0 / 7.0 - 1.0 / 70.0);
    let near = |got: u64, want: f64| (got as f64 - want).abs() <= 8.0;
    assert!(near(p.missing, s / 10.0), "{p:?}");
    assert!(near(p.duplicates, s / 7.0 - s / 70.0), "{p:?}");
    assert_eq!(p.skewed, 0, "{p:?}");
    assert!(
        p.per_connection_per_sec > 50.0 && p.per_connection_per_sec < 150.0,
        "{p:?}"
    );
    assert_eq!(
        p.sent_at_unit.as_deref(),
        Some("us"),
        "taken from the field's name"
    );
    let d = res.latency.delivery.as_ref().expect("one-way latency");
    assert_eq!(d.count, numbered, "{d:?}");
    // Same host, same clock: well under 100 ms one way.
    assert!(d.p50_us < 100_000.0, "{d:?}");
    // Nothing we sent awaited an answer.
    assert_eq!(res.messages.sent, 0);
    assert_eq!(res.messages.unexpected, 0);
    let text = support::summary_text(&res);
    assert!(text.contains("Server push"), "{text}");
    assert!(text.contains("/params/seq: "), "{text}");
    assert!(text.contains("only as right as they agree"), "{text}");
    support::assert_schema(&res);
    // Thresholds read the push figures.
    let judged = support::run(
        &[
            &url,
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "-w",
            "push",
            "--subscribe",
            SUBSCRIBE,
            "--seq",
            "/params/seq",
            "--sent-at",
            "/params/sent_ms",
            "--threshold",
            "missing<1",
            "--threshold",
            "delivery.p99<5s",
        ],
        LIMIT,
    );
    let verdicts: Vec<(String, bool)> = judged
        .thresholds
        .iter()
        .map(|t| (t.expression.clone(), t.passed))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("missing<1".to_string(), false),
            ("delivery.p99<5s".to_string(), true)
        ],
        "{:?}",
        judged.thresholds
    );
}

#[test]
fn a_server_clock_ahead_of_ours_is_flagged_as_skew() {
    let _serial = serial();
    let server = push_server(&["--rate", "50", "--clock-offset-ms", "5000", "--no-ack"]);
    let url = server.url("/");
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "-w",
            "push",
            "--subscribe",
            SUBSCRIBE,
            "--sent-at",
            "/params/sent_ms",
        ],
        LIMIT,
    );
    let p = res.push.as_ref().expect("a push section");
    assert!(p.received > 40, "{p:?}");
    assert_eq!(
        p.skewed, p.received,
        "every message was 'sent' 5 s in our future: {p:?}"
    );
    assert_eq!(res.latency.delivery.as_ref().map(|d| d.count), Some(0));
    let text = support::summary_text(&res);
    assert!(text.contains("CLOCK SKEW"), "{text}");
}

#[test]
fn push_errors_say_what_to_do() {
    assert_usage_errors(&[
        (
            &["-w", "push", "--sent-at", "/params/t"],
            "--sent-at /params/t: say the unit of the time it carries with --sent-at-unit",
        ),
        (
            &["-w", "push", "--seq", "params/seq"],
            "--seq: JSON pointer",
        ),
        (
            &["-w", "push", "--sent-at-unit", "ms"],
            "give --sent-at POINTER too",
        ),
        (&["--seq", "/seq"], "are for --workload push"),
        (
            &["-w", "push", "--rate", "10"],
            "--workload push sends nothing",
        ),
        (
            &["-w", "push", "--subscribe", r#"{"token":"{data.token}"}"#],
            "--subscribe: ",
        ),
    ]);
}

#[test]
fn the_shipped_scenario_runs_against_the_test_server() {
    let _serial = serial();
    let server = push_server(&["--rate", "20"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let res = support::run_shipped_scenario(
        "push.toml",
        &[
            ("127.0.0.1:9100", addr.as_str()),
            ("duration = \"20s\"", "duration = \"2s\""),
            ("connections = 500", "connections = 50"),
        ],
    );
    let p = res.scenarios[0]
        .results
        .push
        .as_ref()
        .expect("a push section");
    assert_eq!(p.subscribes, 50, "{p:?}");
    assert!(p.received > 500, "{p:?}");
    assert_eq!(p.seq_field.as_deref(), Some("/params/seq"));
    assert_eq!(p.sent_at_unit.as_deref(), Some("us"));
    assert_eq!((p.missing, p.duplicates, p.skewed), (0, 0, 0), "{p:?}");
}
