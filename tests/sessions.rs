//! Session workloads end to end: churn (connect, exchange, close, again) as fast as
//! possible or at a session rate, and chat (request/response with think time).

mod support;

use std::time::Duration;
use support::{check_invariants, echo_server, run, serial};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn churn_repeats_sessions_on_every_slot() {
    let _s = serial();
    let r = run(
        &[
            "-c",
            "10",
            "-d",
            "2s",
            "-q",
            "--workload",
            "churn",
            "--messages",
            "4",
        ],
        LIMIT,
    );
    check_invariants(&r);
    let s = r.sessions.as_ref().expect("session stats");
    assert_eq!(s.messages_per_session, 4);
    assert!(s.completed >= 50, "only {} sessions in 2 s", s.completed);
    assert_eq!(s.duration.count, s.completed);
    // Every session opened its own connection; at most one per slot was cut by the stop.
    assert!(r.connections.established >= s.completed);
    assert!(r.connections.established <= s.completed + 10);
    assert_eq!(r.connections.failed, 0);
    assert!(r.connections.peak_open <= 10);
    // Each completed session exchanged exactly its messages.
    assert!(r.messages.received >= s.completed * 4);
    assert!(r.messages.received <= s.completed * 4 + 10 * 4);
    assert_eq!(
        r.connections.closed_clean, r.connections.established,
        "{:?}",
        r.connections
    );
}

#[test]
fn churn_at_a_session_rate() {
    let _s = serial();
    let r = run(
        &[
            "-c",
            "20",
            "-d",
            "3s",
            "-q",
            "--workload",
            "churn",
            "--session-rate",
            "100",
            "--messages",
            "2",
        ],
        LIMIT,
    );
    check_invariants(&r);
    let s = r.sessions.as_ref().unwrap();
    assert_eq!(s.rate, Some(100.0));
    // 100/s for 3 s: about 300 sessions (the last few may be cut by the stop).
    assert!(
        (270..=310).contains(&s.completed),
        "{} sessions",
        s.completed
    );
    assert!((90.0..=105.0).contains(&s.per_sec), "{}/s", s.per_sec);
}

#[test]
fn chat_thinks_between_messages() {
    let _s = serial();
    let srv = echo_server();
    let r = run(
        &[
            &srv.url(),
            "-c",
            "5",
            "-d",
            "2s",
            "-q",
            "--workload",
            "chat",
            "--messages",
            "3",
            "--think",
            "100ms",
        ],
        LIMIT,
    );
    check_invariants(&r);
    let s = r.sessions.as_ref().unwrap();
    assert_eq!(r.config.workload, "chat");
    assert!(s.completed >= 20, "{} sessions", s.completed);
    // Two think times per 3-message session.
    assert!(
        s.duration.min_us >= 200_000.0,
        "session min {}µs",
        s.duration.min_us
    );
    // Round trips exclude the think time.
    assert!(r.latency.rtt.p50_us < 50_000.0);
    // The same against the built-in server (no URL).
    let own = run(
        &[
            "-c",
            "5",
            "-d",
            "2s",
            "-q",
            "--workload",
            "chat",
            "--messages",
            "2",
            "--think",
            "50ms",
        ],
        LIMIT,
    );
    check_invariants(&own);
    let s = own.sessions.as_ref().unwrap();
    assert!(s.completed >= 40, "{} sessions", s.completed);
    assert!(s.duration.min_us >= 50_000.0);
}

#[test]
fn session_flags_are_checked() {
    support::assert_usage_errors(&[
        (&["--messages", "3"][..], "session workloads"),
        (&["--workload", "churn", "--think", "1s"][..], "chat"),
        (
            &["--workload", "churn", "--rate", "10"][..],
            "--session-rate",
        ),
        (
            &["--workload", "chat", "--session-rate", "0"][..],
            "positive",
        ),
    ]);
}
