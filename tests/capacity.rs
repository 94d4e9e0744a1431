//! The built-in server's capacity knobs, whose ceilings are known exactly, so a
//! ceiling search (issue 6) can be checked against them: `--max-connections N`
//! (upgrades beyond N get HTTP 503) and `--service-time D` (each shard serves one
//! message per D: at most 1/D messages per second). Every load here is bounded in
//! connections and seconds and stays on loopback; bounds are loose, the machine is
//! shared.

mod support;

use std::time::{Duration, Instant};
use support::{run, run_bin, serial};
use wsherd::engine::Run;
use wsherd::server::ServeConfig;
use wsherd::server::ServerHandle;

/// A run of `-d 2s`/`-d 3s` must be over well within this.
const LIMIT: Duration = Duration::from_secs(20);

/// The built-in server in-process with `knobs`.
fn serve(shards: &str, knobs: &[&str]) -> ServerHandle {
    support::serve_builtin(shards, knobs)
}

fn cause(map: &std::collections::BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

/// Waits (bounded) until the server has published that it holds no connection.
fn wait_until_empty(srv: &ServerHandle) {
    let until = Instant::now() + Duration::from_secs(5);
    while srv.open_connections() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(srv.open_connections(), 0, "connections still held");
}

// (a)
#[test]
fn max_connections_refuses_beyond_n_with_503_and_makes_room_again() {
    let _serial = serial();
    // Two shards share the one count.
    let srv = serve("2", &["--max-connections", "300"]);
    let url = format!("ws://{}/", srv.addr());
    let res = run(&[&url, "-c", "400", "-d", "2s", "-q"], LIMIT);
    let conns = &res.connections;
    assert_eq!(conns.attempted, 400, "{conns:?}");
    assert_eq!(conns.established, 300, "{conns:?}");
    assert_eq!(conns.failed, 100, "{conns:?}");
    assert_eq!(
        cause(&conns.failed_by_cause, "http_503"),
        100,
        "{:?}",
        conns.failed_by_cause
    );
    assert_eq!(conns.lost, 0, "{:?}", conns.lost_by_cause);
    assert!(res.messages.received > 0, "{:?}", res.messages);
    // Closed connections gave their places back: all 300 fit again.
    wait_until_empty(&srv);
    let again = run(&[&url, "-c", "300", "-d", "1s", "-q"], LIMIT);
    assert_eq!(
        again.connections.established, 300,
        "{:?}",
        again.connections
    );
    assert_eq!(
        again.connections.failed, 0,
        "{:?}",
        again.connections.failed_by_cause
    );
    let totals = srv.stop();
    assert_eq!(totals.rejected, 100, "{totals:?}");
    assert_eq!(totals.connections, 600, "{totals:?}");
}

// (b)
#[test]
fn service_time_caps_a_shard_at_one_message_per_d() {
    let _serial = serial();
    let srv = serve("1", &["--service-time", "1ms"]);
    let url = format!("ws://{}/", srv.addr());
    // Closed loop, 4 in flight: the shard is always busy, so it answers 1000/s.
    let res = run(&[&url, "-c", "4", "-d", "3s", "--shards", "1", "-q"], LIMIT);
    let rate = res.messages.received_per_sec;
    assert!(
        (850.0..=1050.0).contains(&rate),
        "closed loop against 1 ms service time: {rate:.0} round trips/s (expected ~1000)"
    );
    assert_eq!(res.connections.established, 4, "{:?}", res.connections);
    // Open loop at half the capacity: short queues, answers within a few ms.
    let res = run(
        &[
            &url, "-c", "4", "--rate", "500", "-d", "3s", "--shards", "1", "-q",
        ],
        LIMIT,
    );
    let p50 = res.latency.rtt.p50_us;
    assert!(res.messages.received > 1000, "{:?}", res.messages);
    assert!(p50 < 5_000.0, "at 500/s (half the capacity) p50 {p50} us");
    // Twice the capacity: the queue grows for the whole run, and so does latency.
    let res = run(
        &[
            &url, "-c", "4", "--rate", "2000", "-d", "3s", "--shards", "1", "-q",
        ],
        LIMIT,
    );
    let p99 = res.latency.rtt.p99_us;
    assert!(
        p99 > 100_000.0,
        "at 2000/s (twice the capacity) p99 {p99} us"
    );
    // Each whole second of the run: sent at ~2000, answered at ~1000 at most.
    let full: Vec<_> = res.series.iter().filter(|s| s.t < 3).collect();
    assert!(!full.is_empty(), "no per-second figures: {:?}", res.series);
    for s in full {
        assert!(
            s.received < 1100,
            "second {}: {} answered, more than 1/D allows ({:?})",
            s.t,
            s.received,
            res.series
        );
    }
    assert!(
        res.messages.received < res.messages.sent,
        "overloaded, some messages must still be queued at the end: {:?}",
        res.messages
    );
    // The reported rate is what the server answered within the run, not its
    // backlog arriving during the drain.
    assert!(
        res.messages.received_per_sec < 1100.0,
        "received rate {} counts the drain: {:?}",
        res.messages.received_per_sec,
        res.messages
    );
    drop(srv);
}

// (c)
#[test]
fn bad_knobs_are_usage_errors() {
    for (args, why) in [
        (&["--max-connections", "0"][..], "--max-connections"),
        (&["--max-connections", "-5"], "zero or more"),
        (&["--max-connections", "lots"], "not a count"),
        (&["--service-time", "0s"], "--service-time"),
        (&["--service-time", "-1ms"], "negative"),
        (&["--service-time", "soon"], "not a duration"),
        (&["--service-time", "200"], "no unit"),
    ] {
        let e = ServeConfig::from_args(args.iter().copied())
            .expect_err(&format!("{args:?} should be refused"));
        assert_eq!(e.exit_code(), 2, "{args:?}");
        assert!(e.to_string().contains(why), "{args:?}: {e}");
    }
    // The binary says so and exits 2 before listening.
    for args in [
        &["serve", "--max-connections", "0", "--addr", "127.0.0.1:0"][..],
        &["serve", "--service-time", "0s", "--addr", "127.0.0.1:0"],
        &["serve", "--service-time", "-3ms", "--addr", "127.0.0.1:0"],
    ] {
        let out = run_bin(args, Duration::from_secs(10));
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(args[1]), "{args:?}: {}", out.stderr);
    }
    // Test knobs of `wsherd serve` only: the embedded server of `run` has none.
    for knob in ["--max-connections", "--service-time"] {
        let e = Run::from_args([knob, "10ms"]).expect_err(knob);
        assert_eq!(e.exit_code(), 2, "{knob}: {e}");
    }
    let help = run_bin(&["serve", "--help"], Duration::from_secs(10));
    assert_eq!(help.code, Some(0));
    assert!(
        help.stdout
            .contains("Test knobs (for testing wsherd itself and ceiling searches)"),
        "{}",
        help.stdout
    );
    assert!(help.stdout.contains("--max-connections <N>"));
    assert!(help.stdout.contains("--service-time <D>"));
}
