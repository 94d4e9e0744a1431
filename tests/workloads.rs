//! Workloads end to end: open-loop rate (coordinated omission corrected), pings,
//! idle heartbeats, and the server faults that prove the measurement is honest.
//! Bounds are wide where the machine's noise lives (shared, 2 cores) and tight
//! where the truth is known by construction (a stall, a fixed delay).

mod support;

use std::time::Duration;
use support::{check_invariants, echo_server, run, serial};
use wsherd::server::ServeConfig;

const LIMIT: Duration = Duration::from_secs(20);

fn serve(extra: &[&str]) -> wsherd::server::ServerHandle {
    let mut args = vec!["--addr", "127.0.0.1:0", "--shards", "1", "-q"];
    args.extend_from_slice(extra);
    wsherd::server::start(ServeConfig::from_args(args).unwrap()).unwrap()
}

#[test]
fn open_loop_keeps_the_requested_rate() {
    let _s = serial();
    let srv = serve(&[]);
    let url = format!("ws://{}/", srv.addr());
    let r = run(
        &[
            &url,
            "-c",
            "20",
            "-d",
            "3s",
            "-q",
            "--rate",
            "2000",
            "--connect-rate",
            "0",
        ],
        LIMIT,
    );
    check_invariants(&r);
    assert_eq!(r.config.pacing, "open");
    assert_eq!(r.config.rate, Some(2000.0));
    let achieved = r.messages.sent_per_sec;
    assert!(
        (1900.0..=2100.0).contains(&achieved),
        "achieved {achieved}/s of 2000/s"
    );
    assert_eq!(
        r.messages.received,
        r.messages.sent - r.messages.in_flight_at_stop - r.messages.failed
    );
    let raw = r
        .latency
        .rtt_uncorrected
        .as_ref()
        .expect("open loop keeps the uncorrected histogram");
    assert_eq!(raw.count, r.latency.rtt.count);
    // Timed from the intended send, a message can only look slower, never faster.
    assert!(r.latency.rtt.p50_us >= raw.p50_us);
    assert!(r.latency.send_lag.is_some());
}

#[test]
fn closed_loop_has_no_uncorrected_histogram() {
    let _s = serial();
    let r = run(&["-c", "5", "-d", "1s", "-q"], LIMIT);
    assert_eq!(r.config.pacing, "closed");
    assert!(r.latency.rtt_uncorrected.is_none());
    assert!(r.latency.send_lag.is_none());
    assert_eq!(r.config.rate, None);
}

/// The server stops answering for 100 ms every second. An open loop capped at one
/// message in flight (wrk2's model) shows the stall in the corrected p99, while the
/// uncorrected histogram and a closed loop hide most of it.
#[test]
fn a_server_stall_shows_in_the_corrected_p99_only() {
    let _s = serial();
    let srv = serve(&["--stall", "100ms", "--stall-every", "1s"]);
    let url = format!("ws://{}/", srv.addr());
    // 10 connections at 200/s each: a stall holds 20 scheduled sends per connection.
    let open = run(
        &[
            &url,
            "-c",
            "10",
            "-d",
            "4s",
            "-q",
            "--rate",
            "2000",
            "--inflight",
            "1",
            "--connect-rate",
            "0",
        ],
        LIMIT,
    );
    check_invariants(&open);
    let corrected = open.latency.rtt.p99_us;
    let uncorrected = open.latency.rtt_uncorrected.as_ref().unwrap().p99_us;
    assert!(
        corrected >= 30_000.0,
        "corrected p99 {corrected}µs misses a 100 ms stall"
    );
    assert!(
        uncorrected * 3.0 < corrected,
        "uncorrected p99 {uncorrected}µs should hide most of the stall (corrected {corrected}µs)"
    );
    // The sends that waited behind the stall were sent late, not skipped.
    assert!(open.messages.late > 0, "{:?}", open.messages);
    let closed = run(
        &[&url, "-c", "10", "-d", "3s", "-q", "--connect-rate", "0"],
        LIMIT,
    );
    check_invariants(&closed);
    assert!(
        closed.latency.rtt.p99_us * 3.0 < corrected,
        "closed-loop p99 {}µs should hide the stall",
        closed.latency.rtt.p99_us
    );
    // But the stall is real: the closed loop's maximum sees it.
    assert!(closed.latency.rtt.max_us >= 50_000.0);

    // Without a cap the schedule never waits: every message sent into the stall
    // waits it out, and both histograms say so.
    let pure = run(
        &[
            &url,
            "-c",
            "10",
            "-d",
            "3s",
            "-q",
            "--rate",
            "2000",
            "--connect-rate",
            "0",
        ],
        LIMIT,
    );
    check_invariants(&pure);
    assert!(pure.latency.rtt.p99_us >= 30_000.0);
    // (Whether it fell behind depends on how busy this shared machine is, so the
    // count of late sends is not asserted here.)
}

/// A fixed service time comes out as the round trip's median.
#[test]
fn a_fixed_server_delay_is_the_median_round_trip() {
    let _s = serial();
    let srv = serve(&["--delay", "5ms"]);
    let url = format!("ws://{}/", srv.addr());
    let r = run(&[&url, "-c", "10", "-d", "2s", "-q"], LIMIT);
    check_invariants(&r);
    let p50 = r.latency.rtt.p50_us;
    // The server's timer has millisecond ticks: a 5 ms sleep ends within 5-6 ms.
    assert!(
        (5_000.0..8_000.0).contains(&p50),
        "p50 {p50}µs for a 5 ms delay"
    );
}

#[test]
fn pings_are_timed_by_their_pongs_closed_and_open() {
    let _s = serial();
    for extra in [&[][..], &["--rate-per-conn", "100"][..]] {
        // wsherd's own server and another implementation both answer pings.
        let own = serve(&[]);
        let other = echo_server();
        for url in [format!("ws://{}/", own.addr()), other.url()] {
            let mut args = vec![
                url.as_str(),
                "-c",
                "10",
                "-d",
                "2s",
                "-q",
                "--workload",
                "ping",
                "--size",
                "100",
            ];
            args.extend_from_slice(extra);
            let r = run(&args, LIMIT);
            check_invariants(&r);
            assert_eq!(r.config.workload, "ping");
            assert_eq!(r.connections.established, 10);
            assert!(
                r.messages.received > 100,
                "{url} {extra:?}: {:?}",
                r.messages
            );
            assert_eq!(r.messages.unexpected, 0);
            assert_eq!(r.latency.rtt.count, r.messages.received);
        }
    }
}

#[test]
fn idle_heartbeats_are_timed_pings() {
    let _s = serial();
    let srv = serve(&[]);
    let url = format!("ws://{}/", srv.addr());
    let r = run(
        &[
            &url,
            "-c",
            "20",
            "-d",
            "2s",
            "-q",
            "--workload",
            "idle",
            "--heartbeat",
            "500ms",
            "--connect-rate",
            "0",
        ],
        LIMIT,
    );
    check_invariants(&r);
    assert_eq!(r.config.workload, "idle");
    assert_eq!(r.connections.established, 20);
    assert_eq!(r.connections.lost, 0);
    // One ping at once, then one every 500 ms: 4 or 5 per connection in 2 s.
    let per_conn = r.messages.sent as f64 / 20.0;
    assert!(
        (3.0..=5.5).contains(&per_conn),
        "{per_conn} heartbeats per connection"
    );
    assert_eq!(
        r.messages.received + r.messages.in_flight_at_stop,
        r.messages.sent
    );
}

/// A server that upgrades, then never reads again: no PING is ever answered.
/// The beats go on, on schedule, each one in flight at the stop.
#[test]
fn heartbeats_go_on_when_no_pong_comes() {
    let _s = serial();
    let srv = support::Server::spawn("deaf", |stream, _stats| async move {
        if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(ws);
        }
    });
    let r = run(
        &[
            &srv.url(),
            "-c",
            "5",
            "-d",
            "2s",
            "-q",
            "--workload",
            "idle",
            "--heartbeat",
            "400ms",
            "--connect-rate",
            "0",
            "--drain",
            "200ms",
            "--close-timeout",
            "200ms",
        ],
        LIMIT,
    );
    check_invariants(&r);
    assert_eq!(r.connections.established, 5);
    assert_eq!(r.messages.received, 0, "nothing answers");
    // One beat at once (or within 400 ms, by phase), then one every 400 ms: 5 or 6
    // per connection in 2 s, although none was ever answered.
    let per_conn = r.messages.sent as f64 / 5.0;
    assert!(
        (4.0..=6.5).contains(&per_conn),
        "{per_conn} beats per connection"
    );
    assert_eq!(
        r.messages.in_flight_at_stop + r.messages.failed,
        r.messages.sent
    );
}

#[test]
fn open_loop_against_another_implementation() {
    let _s = serial();
    let srv = echo_server();
    let r = run(
        &[
            &srv.url(),
            "-c",
            "10",
            "-d",
            "2s",
            "-q",
            "--rate",
            "1000",
            "--text",
        ],
        LIMIT,
    );
    check_invariants(&r);
    assert!(r.messages.received > 1500, "{:?}", r.messages);
    assert_eq!(r.messages.unexpected, 0);
}

#[test]
fn workload_flags_that_cannot_work_are_refused() {
    support::assert_usage_errors(&[
        (&["--rate", "0"][..], "positive rate"),
        (&["--rate-per-conn", "0"][..], "positive rate"),
        (&["--workload", "ping", "--text"][..], "binary"),
        (&["--workload", "ping", "--size", "200"][..], "125"),
        (&["--heartbeat", "1s"][..], "--workload idle"),
        (&["--workload", "idle", "--rate", "10"][..], "--heartbeat"),
        (&["--rate", "100", "--inflight", "0"][..], "--inflight"),
    ]);
    let e = ServeConfig::from_args(["--stall", "2s", "--stall-every", "1s"]).unwrap_err();
    assert!(e.to_string().contains("shorter"), "{e}");
}

#[test]
fn connection_stages_ramp_up_hold_and_down() {
    let _s = serial();
    let srv = serve(&[]);
    let url = format!("ws://{}/", srv.addr());
    let r = run(
        &[
            &url,
            "--stages",
            "2s:40,1s:40,1s:0",
            "-q",
            "--workload",
            "idle",
        ],
        LIMIT,
    );
    check_invariants(&r);
    // -c defaults to the peak of the stages; the duration is their sum.
    assert_eq!(r.config.connections, 40);
    assert_eq!(r.config.duration_secs, 4.0);
    assert_eq!(r.connections.established, 40);
    assert_eq!(r.connections.peak_open, 40);
    // At the end of each second: half way up, all, all, then closed down to nothing.
    let open: Vec<u64> = r.series.iter().map(|s| s.open).collect();
    assert!((15..=25).contains(&open[0]), "open per second {open:?}");
    assert_eq!(open[1], 40, "open per second {open:?}");
    assert_eq!(open[2], 40, "open per second {open:?}");
    assert!(open[3] <= 5, "open per second {open:?}");
    // Idle connections wait parked (no task of their own); retired from there,
    // they close cleanly; nothing was lost.
    assert!(r.connections.parks >= 40, "{:?}", r.connections);
    assert_eq!(r.connections.closed_clean, 40);
    assert_eq!(r.connections.lost, 0);
}

#[test]
fn rate_stages_and_ramps_follow_the_curve() {
    let _s = serial();
    let srv = serve(&[]);
    let url = format!("ws://{}/", srv.addr());
    // 0 → 1000/s over 2 s, then 1000/s for 1 s: 1000 + 1000 messages.
    let r = run(
        &[
            &url,
            "-c",
            "20",
            "--stages",
            "2s:1000/s,1s:1000/s",
            "-q",
            "--connect-rate",
            "0",
        ],
        LIMIT,
    );
    check_invariants(&r);
    assert_eq!(r.config.pacing, "open");
    let sent = r.messages.sent as f64;
    assert!(
        (1800.0..=2100.0).contains(&sent),
        "sent {sent}, expected about 2000"
    );
    let s = &r.series;
    assert!(
        s[0].sent < s[1].sent && s[1].sent < s[2].sent,
        "not ramping: {:?}",
        s.iter().map(|x| x.sent).collect::<Vec<_>>()
    );
    // The short form: --ramp over -d.
    let r = run(
        &[
            &url,
            "-c",
            "20",
            "-d",
            "3s",
            "--rate",
            "1000",
            "--ramp",
            "2s",
            "-q",
            "--connect-rate",
            "0",
        ],
        LIMIT,
    );
    check_invariants(&r);
    let sent = r.messages.sent as f64;
    assert!(
        (1800.0..=2100.0).contains(&sent),
        "sent {sent}, expected about 2000"
    );
}

#[test]
fn warmup_is_measured_apart() {
    let _s = serial();
    let r = run(&["-c", "5", "-d", "3s", "--warmup", "1s", "-q"], LIMIT);
    check_invariants(&r);
    let w = r.warmup.as_ref().expect("warm-up stats");
    assert_eq!(w.secs, 1.0);
    assert!(w.received > 0);
    // Latencies leave the warm-up out; the ledger does not.
    assert_eq!(r.latency.rtt.count + w.rtt.count, r.messages.received);
    assert!(r.messages.ledger_balances());
    // Connects happened in the warm-up and are still reported.
    assert_eq!(r.latency.connect.count, 5);
}

#[test]
fn stage_flags_that_cannot_work_are_refused() {
    support::assert_usage_errors(&[
        (&["--stages", "10s"][..], "DURATION:TARGET"),
        (&["--stages", "10s:5,5s:10/s"][..], "rate"),
        (&["--stages", "10s:5", "-d", "5s"][..], "leave out -d"),
        (&["--stages", "10s:50", "-c", "10"][..], "peak"),
        (&["--stages", "10s:0"][..], "above 0"),
        (&["--ramp", "20s", "-d", "10s"][..], "shorter than -d"),
        (&["--warmup", "10s", "-d", "10s"][..], "nothing to measure"),
        (
            &["--stages", "5s:100/s", "--rate", "100"][..],
            "leave out --rate",
        ),
        (
            &["--workload", "idle", "--stages", "5s:100/s"][..],
            "echo or ping",
        ),
    ]);
}

/// A server that upgrades but never answers: the report says no reply matched,
/// with the counts, instead of showing an empty or zero latency.
#[test]
fn a_server_that_never_echoes_is_reported_as_such() {
    use futures_util::StreamExt;
    let _s = serial();
    let srv = support::Server::spawn("mute", |tcp, _stats| async move {
        if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
            // Read everything, answer nothing (the close handshake included).
            while let Some(Ok(_)) = ws.next().await {}
        }
    });
    let r = run(
        &[&srv.url(), "-c", "5", "-d", "1s", "-q", "--drain", "200ms"],
        LIMIT,
    );
    check_invariants(&r);
    assert_eq!(r.connections.established, 5);
    assert_eq!(r.messages.sent, 5, "one message in flight per connection");
    assert_eq!(r.messages.received, 0);
    assert_eq!(r.messages.in_flight_at_stop, 5);
    assert_eq!(r.latency.rtt.count, 0);
    let text = wsherd::report::text::render(&r);
    assert!(text.contains("no replies matched"), "{text}");
    assert!(text.contains("round trip  (no samples)"), "{text}");
}

/// Stopping cancels reads that are in flight; a cancelled read still hands back
/// what the kernel had delivered, so a busy open loop stops without losing bytes
/// (which would break the framing: reserved bits, lost connections, lost echoes).
#[test]
fn a_busy_open_loop_stops_without_losing_bytes() {
    let _s = serial();
    for _ in 0..3 {
        let r = run(
            &[
                "-c",
                "50",
                "-d",
                "1s",
                "-q",
                "--rate",
                "50k",
                "--connect-rate",
                "0",
            ],
            LIMIT,
        );
        check_invariants(&r);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.connections.lost, 0, "{:?}", r.connections.lost_by_cause);
        assert_eq!(r.messages.unexpected, 0);
        assert_eq!(r.connections.closed_clean, 50, "{:?}", r.connections);
    }
}
