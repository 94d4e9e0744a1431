//! Whole runs against wsherd's own server, in-process and as subprocesses:
//! counts, the ledger, stopping early, host limits and both io drivers.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wsherd::engine::Run;
use wsherd::results::RunResults;
use wsherd::server::ServeConfig;

fn serve() -> wsherd::server::ServerHandle {
    wsherd::server::start(
        ServeConfig::from_args(["--addr", "127.0.0.1:0", "--shards", "1", "-q"]).unwrap(),
    )
    .unwrap()
}

fn assert_clean(r: &RunResults, conns: u64) {
    assert_eq!(r.connections.attempted, conns, "{:?}", r.connections);
    assert_eq!(r.connections.established, conns, "{:?}", r.connections);
    assert_eq!(
        r.connections.failed, 0,
        "{:?}",
        r.connections.failed_by_cause
    );
    assert_eq!(r.connections.lost, 0, "{:?}", r.connections.lost_by_cause);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.messages.unexpected, 0);
    assert!(r.messages.ledger_balances(), "{:?}", r.messages);
    assert_eq!(r.latency.rtt.count, r.messages.received);
    assert_eq!(r.latency.connect.count, conns);
    assert_eq!(r.latency.handshake.count, conns);
}

#[test]
fn echo_against_served_server_accounts_for_everything() {
    let srv = serve();
    let url = format!("ws://{}/", srv.addr());
    let cfg = Run::from_args([
        url.as_str(),
        "-c",
        "200",
        "-d",
        "2s",
        "-q",
        "--inflight",
        "4",
    ])
    .unwrap();
    let r = wsherd::run(cfg).unwrap();
    assert_clean(&r, 200);
    assert!(
        r.messages.received > 1000,
        "only {} echoes",
        r.messages.received
    );
    assert!(r.latency.rtt.p50_us > 0.0 && r.latency.rtt.p50_us < 200_000.0);
    assert!(
        r.latency.rtt.min_us <= r.latency.rtt.p50_us
            && r.latency.rtt.p50_us <= r.latency.rtt.max_us
    );
    assert_eq!(r.connections.closed_clean, 200);
    assert_eq!(r.connections.peak_open, 200);
    assert!(!r.interrupted);
    let totals = srv.stop();
    // The server echoed at least what the client received.
    assert!(totals.messages >= r.messages.received);
    assert_eq!(totals.connections, 200);
}

#[test]
fn embedded_default_runs_text_and_epoll() {
    let cfg = Run::from_args([
        "-c",
        "20",
        "-d",
        "1s",
        "-q",
        "--text",
        "--size",
        "100",
        "--io-driver",
        "epoll",
    ])
    .unwrap();
    let r = wsherd::run(cfg).unwrap();
    assert_clean(&r, 20);
    assert!(r.config.embedded_server);
    assert_eq!(r.host.io_driver, "epoll");
    assert_eq!(r.config.message_kind, "text");
    // Each echo is a 100-byte payload plus a 2-byte server frame header.
    assert!(r.messages.bytes_received >= r.messages.received * 102);
}

#[test]
fn idle_holds_connections_without_messages() {
    let srv = serve();
    let url = format!("ws://{}/", srv.addr());
    let cfg = Run::from_args([
        url.as_str(),
        "-c",
        "300",
        "-d",
        "2s",
        "-q",
        "--workload",
        "idle",
        "--connect-rate",
        "0",
    ])
    .unwrap();
    let r = wsherd::run(cfg).unwrap();
    assert_clean(&r, 300);
    assert_eq!(r.messages.sent, 0);
    assert_eq!(r.connections.peak_open, 300);
    // While held, the server saw them all open at once.
    assert_eq!(r.connections.closed_clean, 300);
}

#[test]
fn connect_rate_paces_new_connections() {
    let srv = serve();
    let url = format!("ws://{}/", srv.addr());
    // 40 connections at 20/s take about 2 s to open: the first second opens ~20.
    let cfg = Run::from_args([
        url.as_str(),
        "-c",
        "40",
        "-d",
        "3s",
        "-q",
        "--connect-rate",
        "20",
        "--workload",
        "idle",
    ])
    .unwrap();
    let r = wsherd::run(cfg).unwrap();
    assert_clean(&r, 40);
    let first = &r.series[0];
    assert!(
        first.connects >= 15 && first.connects <= 25,
        "first second opened {}",
        first.connects
    );
}

#[test]
fn interrupt_stops_early_and_keeps_the_ledger() {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1200));
        f.store(true, Ordering::SeqCst);
    });
    let cfg = Run::from_args(["-c", "50", "-d", "60s", "-q"]).unwrap();
    let t0 = Instant::now();
    let r = wsherd::engine::run_with_interrupt(cfg, flag).unwrap();
    t.join().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert!(r.interrupted);
    assert!(r.messages.received > 0);
    assert!(r.messages.ledger_balances(), "{:?}", r.messages);
    assert_eq!(r.connections.closed_clean, 50);
}

#[test]
fn server_going_away_mid_run_is_counted() {
    let srv = serve();
    let url = format!("ws://{}/", srv.addr());
    let runner = std::thread::spawn(move || {
        let cfg = Run::from_args([
            url.as_str(),
            "-c",
            "30",
            "-d",
            "3s",
            "-q",
            "--connect-rate",
            "0",
        ])
        .unwrap();
        wsherd::run(cfg).unwrap()
    });
    std::thread::sleep(Duration::from_millis(1000));
    srv.stop();
    let r = runner.join().unwrap();
    assert_eq!(r.connections.established, 30);
    assert_eq!(r.connections.lost, 30, "{:?}", r.connections);
    assert_eq!(
        r.connections.lost_by_cause.get("closed_by_server"),
        Some(&30)
    );
    assert_eq!(r.connections.close_codes.get("1001"), Some(&30));
    assert!(r.messages.ledger_balances(), "{:?}", r.messages);
    assert!(r.messages.received > 0);
}

#[test]
fn a_plan_beyond_the_open_file_limit_is_refused_before_starting() {
    let (_, hard) = wsherd::sys::nofile_limits();
    if hard > 5_000_000 {
        eprintln!("hard open-file limit {hard}: nothing to refuse here");
        return;
    }
    // The embedded server holds the other end of every connection: 2 files each.
    let c = hard.to_string();
    let cfg = Run::from_args(["-c", c.as_str(), "-d", "1s", "-q"]).unwrap();
    let t0 = Instant::now();
    let e = wsherd::run(cfg).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "refused late");
    assert_eq!(e.exit_code(), 1);
    let msg = e.to_string();
    assert!(msg.contains("open files") && msg.contains("-c "), "{msg}");
}

#[test]
fn subprocess_ctrl_c_writes_a_partial_report_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let child = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(["run", "-c", "20", "-d", "60s", "-q", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t0 = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(130),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("INTERRUPTED"), "{stdout}");
    assert!(stdout.contains("(balanced)"), "{stdout}");
    let r: RunResults = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(r.interrupted);
    assert!(r.messages.ledger_balances());
}

#[test]
fn subprocess_serve_and_run_with_json() {
    // A free port for the server process.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(["serve", "--addr", addr.as_str(), "--shards", "1", "-q"])
        .spawn()
        .unwrap();
    // Wait until it listens (bounded).
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let url = format!("ws://{addr}/");
    let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(["run", url.as_str(), "-c", "300", "-d", "3s", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGINT) };
    let status = server.wait().unwrap();
    assert!(status.success(), "serve exited with {status:?}");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for part in [
        "Latency",
        "round trip",
        "Throughput",
        "Ledger",
        "(balanced)",
        "Errors: none",
    ] {
        assert!(stdout.contains(part), "summary lacks {part}: {stdout}");
    }
    // Progress lines went to stderr, once a second, as plain lines (not a tty).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().filter(|l| l.contains("open")).count() >= 2,
        "{stderr}"
    );
    let r: RunResults = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_clean(&r, 300);
}
