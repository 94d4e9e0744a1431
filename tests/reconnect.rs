//! `--reconnect` (issue 14): the built-in server is stopped in the middle of a
//! run and started again on the same port; the connections it closed are dialed
//! again with a backoff until it is back, and the report accounts for every
//! connection and message across the outage (idle, open loop, broadcast).

mod support;

use std::time::Duration;
use support::{serial, try_run};

const LIMIT: Duration = Duration::from_secs(30);

/// The built-in server on `port`, in `mode`.
fn serve_on(port: u16, mode: &str) -> wsherd::server::ServerHandle {
    let addr = format!("127.0.0.1:{port}");
    let args = ["--addr", &addr, "--shards", "1", "-q", "--mode", mode];
    let cfg = wsherd::server::ServeConfig::from_args(args.iter().map(|s| s.to_string())).unwrap();
    wsherd::server::start(cfg).unwrap()
}

/// Runs `args` against a server on a fixed port that is stopped 800 ms in and
/// started again 700 ms later.
fn across_an_outage(mode: &str, args: &[&str]) -> wsherd::results::RunResults {
    let port = support::closed_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let server = serve_on(port, mode);
    let mut all = vec![url.as_str(), "-q", "-d", "3s", "--reconnect=100ms..300ms"];
    all.extend_from_slice(args);
    let owned: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    let run = std::thread::spawn(move || {
        let refs: Vec<&str> = owned.iter().map(|s| s.as_str()).collect();
        try_run(&refs, LIMIT)
    });
    std::thread::sleep(Duration::from_millis(800));
    drop(server);
    std::thread::sleep(Duration::from_millis(700));
    let again = serve_on(port, mode);
    let res = run.join().expect("the run thread").expect("the run");
    drop(again);
    support::check_invariants(&res);
    res
}

#[test]
fn held_connections_come_back_after_the_server_restarts() {
    let _serial = serial();
    let res = across_an_outage("echo", &["-c", "4", "-w", "idle"]);
    let k = &res.connections;
    // All four were closed by the stopping server (1001) and came back.
    assert_eq!(k.lost, 4, "{k:?}");
    let re = k.reconnects.as_ref().expect("reconnect stats");
    assert_eq!(re.succeeded, 4, "{re:?}");
    assert!(re.attempted >= 4, "{re:?}");
    // Each was away for about the outage (700 ms), give or take the backoff.
    let mean = re.disconnected_secs / 4.0;
    assert!((0.4..2.0).contains(&mean), "{re:?}");
    // Dials during the outage were refused, and counted.
    assert_eq!(
        k.attempted,
        k.established + k.failed + k.aborted_at_stop,
        "{k:?}"
    );
    assert_eq!(k.established, 8, "{k:?}");
    assert_eq!(k.failed, re.attempted - re.succeeded, "{k:?}");
    let text = support::summary_text(&res);
    assert!(text.contains("reconnects: "), "{text}");
    support::assert_schema(&res);
}

#[test]
fn connections_still_down_at_the_stop_count_their_time_disconnected() {
    let _serial = serial();
    let port = support::closed_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let server = serve_on(port, "echo");
    let args: Vec<String> = [&url, "-q", "-c", "4", "-w", "idle", "-d", "2500ms"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--reconnect=100ms..300ms".to_string()])
        .collect();
    let started = std::time::Instant::now();
    let run = std::thread::spawn(move || {
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        try_run(&refs, LIMIT)
    });
    // Stopped 700 ms in and never started again.
    std::thread::sleep(Duration::from_millis(700));
    drop(server);
    let down_from = started.elapsed().as_secs_f64();
    let res = run.join().expect("the run thread").expect("the run");
    support::check_invariants(&res);
    let k = &res.connections;
    assert_eq!((k.established, k.lost), (4, 4), "{k:?}");
    let re = k.reconnects.as_ref().expect("reconnect stats");
    assert_eq!((re.succeeded, re.down_at_stop), (0, 4), "{re:?}");
    // Dialed again and again (100..300 ms apart), every dial refused.
    assert!(re.attempted >= 8, "{re:?}");
    assert_eq!(k.failed, re.attempted, "{k:?}");
    // Each was down from the loss to the stop: the rest of the run, give or
    // take how long the run took to start and the server to close.
    let remaining = res.elapsed_secs - down_from;
    let mean = re.disconnected_secs / 4.0;
    assert!(
        (remaining - 0.5..remaining + 0.2).contains(&mean),
        "{mean:.3}s each, {remaining:.3}s left after the loss: {re:?}"
    );
    let text = support::summary_text(&res);
    assert!(text.contains("4 still down at the stop"), "{text}");
    support::assert_schema(&res);
}

#[test]
fn an_open_loop_and_a_broadcast_account_for_every_message_across_the_outage() {
    let _serial = serial();
    let res = across_an_outage("echo", &["-c", "4", "--rate", "200"]);
    let m = &res.messages;
    assert!(m.ledger_balances(), "{m:?}");
    let re = res.connections.reconnects.as_ref().unwrap();
    assert_eq!(re.succeeded, 4, "{re:?}");
    // Messages flowed again after the restart (3 s at 200/s, 0.7 s of it out).
    assert!(m.received > 300, "{m:?}");
    let res = across_an_outage(
        "broadcast",
        &[
            "-c",
            "4",
            "-w",
            "broadcast",
            "--publishers",
            "1",
            "--rate",
            "50",
        ],
    );
    let re = res.connections.reconnects.as_ref().unwrap();
    assert_eq!(re.succeeded, 4, "{re:?}");
    assert!(res.messages.ledger_balances(), "{:?}", res.messages);
    assert!(res.broadcast.as_ref().unwrap().delivered > 0);
}

/// A TCP relay on a fixed port in front of `upstream` that can crash: every
/// connection it carries is reset (no close frame, no FIN) and it stops
/// listening, as a server killed outright does.
struct Relay {
    crash: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn on(port: u16, upstream: std::net::SocketAddr) -> Relay {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the relay");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let (crash, crashed) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let mut conns = tokio::task::JoinSet::new();
                let mut stop = crashed.clone();
                loop {
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = tokio::time::sleep(support::SERVER_LIFETIME) => break,
                        accepted = listener.accept() => {
                            if let Ok((client, _)) = accepted {
                                conns.spawn(relay_one(client, upstream, crashed.clone()));
                            }
                        }
                    }
                }
                drop(listener);
                while conns.join_next().await.is_some() {}
            });
        });
        Relay {
            crash,
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.crash.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Carries one connection both ways until either side ends it, or resets
/// both sides when the relay crashes.
async fn relay_one(
    mut client: tokio::net::TcpStream,
    upstream: std::net::SocketAddr,
    mut crashed: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        _ = crashed.changed() => {}
    }
    // Closed with a zero linger: the kernel sends RST, not FIN.
    for s in [&client, &server] {
        let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
    }
}

/// Runs `args` through a relay on a fixed port in front of the built-in server
/// (in `mode`); the relay crashes 800 ms in, resetting every connection, and is
/// back 700 ms later. Returns the results and the time of the crash (s since the
/// run was started).
fn across_a_crash(mode: &str, args: &[&str]) -> (wsherd::results::RunResults, f64) {
    let server = serve_on(support::closed_port(), mode);
    let upstream = server.addr();
    let port = support::closed_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let relay = Relay::on(port, upstream);
    let mut all = vec![url.as_str(), "-q", "-d", "3s", "--reconnect=100ms..300ms"];
    all.extend_from_slice(args);
    let owned: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    let started = std::time::Instant::now();
    let run = std::thread::spawn(move || {
        let refs: Vec<&str> = owned.iter().map(|s| s.as_str()).collect();
        try_run(&refs, LIMIT)
    });
    std::thread::sleep(Duration::from_millis(800));
    drop(relay);
    let crashed_at = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(700));
    let again = Relay::on(port, upstream);
    let res = run.join().expect("the run thread").expect("the run");
    drop((again, server));
    support::check_invariants(&res);
    (res, crashed_at)
}

#[test]
fn held_connections_come_back_after_the_server_vanishes_without_a_close() {
    let _serial = serial();
    let (res, _) = across_a_crash("echo", &["-c", "4", "-w", "idle"]);
    let k = &res.connections;
    // All four were reset (no close frame) and came back.
    assert_eq!(k.lost, 4, "{k:?}");
    assert_eq!(k.lost_by_cause.get("reset"), Some(&4), "{k:?}");
    assert!(k.close_codes.is_empty(), "{k:?}");
    let re = k.reconnects.as_ref().expect("reconnect stats");
    assert_eq!((re.succeeded, re.down_at_stop), (4, 0), "{re:?}");
    assert_eq!(k.established, 8, "{k:?}");
    let mean = re.disconnected_secs / 4.0;
    assert!((0.4..2.0).contains(&mean), "{re:?}");
    support::assert_schema(&res);
}

#[test]
fn a_broadcast_delivers_again_after_the_server_vanishes_without_a_close() {
    let _serial = serial();
    let rate = 50.0;
    let (res, crashed_at) = across_a_crash(
        "broadcast",
        &[
            "-c",
            "4",
            "-w",
            "broadcast",
            "--publishers",
            "1",
            "--rate",
            "50",
        ],
    );
    let k = &res.connections;
    assert_eq!(k.lost_by_cause.get("reset"), Some(&4), "{k:?}");
    let re = k.reconnects.as_ref().unwrap();
    assert_eq!(re.succeeded, 4, "{re:?}");
    assert!(res.messages.ledger_balances(), "{:?}", res.messages);
    let b = res.broadcast.as_ref().unwrap();
    // Until the crash, the publisher could have published at most `rate` a
    // second, each copied to the four connections; whatever was delivered
    // beyond that was delivered after the relay came back (about 1.5 s of
    // publishing, 300 copies).
    let before = (crashed_at * rate).ceil() as u64 * 4;
    assert!(
        b.delivered > before + 100,
        "{} delivered, at most {before} before the crash: {b:?}",
        b.delivered
    );
}

#[test]
fn reconnect_errors_say_what_to_do() {
    support::assert_usage_errors(&[
        (&["--reconnect=5s"], "a backoff is MIN..MAX"),
        (&["--reconnect=0s..1s"], "MIN must be above zero"),
        (&["--reconnect=5s..1s"], "MAX at least MIN"),
    ]);
}

/// What the fault proxy does to each connection it carries.
#[derive(Clone, Copy)]
enum Fault {
    /// Holds every chunk this long before passing it on (both ways).
    Delay(Duration),
    /// Passes nothing on for `for` once `after` has passed, then goes on.
    Stall { after: Duration, r#for: Duration },
    /// Cuts the connection (both sides) once `after` has passed, holding every
    /// chunk `delay` until then (so messages are in flight when it cuts).
    Cut { after: Duration, delay: Duration },
}

/// A TCP proxy in front of `upstream` that applies `fault` to every connection.
fn fault_proxy(upstream: std::net::SocketAddr, fault: Fault) -> support::Server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    support::Server::spawn("fault-proxy", move |client, _stats| async move {
        let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
            return;
        };
        let started = tokio::time::Instant::now();
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let pipe = |mut from: tokio::net::tcp::OwnedReadHalf,
                    mut to: tokio::net::tcp::OwnedWriteHalf| async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                match fault {
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    Fault::Stall { after, r#for } => {
                        let at = started + after;
                        let now = tokio::time::Instant::now();
                        if now >= at && now < at + r#for {
                            tokio::time::sleep_until(at + r#for).await;
                        }
                    }
                    Fault::Cut { delay, .. } => tokio::time::sleep(delay).await,
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to.shutdown().await;
        };
        let both = async {
            tokio::join!(pipe(cr, sw), pipe(sr, cw));
        };
        match fault {
            Fault::Cut { after, .. } => {
                // Dropping the halves mid-flight resets both sides.
                let _ = tokio::time::timeout(after, both).await;
            }
            _ => both.await,
        }
    })
}

#[test]
fn a_proxy_that_delays_stalls_and_cuts_loses_nothing_unaccounted() {
    let _serial = serial();
    let server = support::serve_builtin("1", &[]);
    // Delayed by 20 ms each way: every round trip takes at least 40 ms.
    let proxy = fault_proxy(server.addr(), Fault::Delay(Duration::from_millis(20)));
    let res = support::run(&[&proxy.url(), "-q", "-c", "4", "-d", "1500ms"], LIMIT);
    assert!(res.latency.rtt.min_us >= 40_000.0, "{:?}", res.latency.rtt);
    assert!(res.messages.received > 40, "{:?}", res.messages);
    // Stalled for 600 ms: the open loop's messages wait and come through, timed
    // from their intended send.
    let proxy = fault_proxy(
        server.addr(),
        Fault::Stall {
            after: Duration::from_millis(500),
            r#for: Duration::from_millis(600),
        },
    );
    let res = support::run(
        &[&proxy.url(), "-q", "-c", "4", "-d", "2s", "--rate", "200"],
        LIMIT,
    );
    assert!(res.latency.rtt.max_us > 400_000.0, "{:?}", res.latency.rtt);
    assert_eq!(res.connections.lost, 0, "{:?}", res.connections);
    // Cut after 600 ms: lost, dialed again, cut again, ...; every message sent is
    // received, failed with its connection, or in flight at the stop.
    let proxy = fault_proxy(
        server.addr(),
        Fault::Cut {
            after: Duration::from_millis(600),
            // 40 ms a round trip at 50 messages a second per connection: about
            // two in flight whenever it cuts.
            delay: Duration::from_millis(20),
        },
    );
    let res = support::run(
        &[
            &proxy.url(),
            "-q",
            "-c",
            "4",
            "-d",
            "2500ms",
            "--rate",
            "200",
            "--reconnect=50ms..100ms",
        ],
        LIMIT,
    );
    let k = &res.connections;
    assert!(k.lost >= 8, "{k:?}");
    let re = k.reconnects.as_ref().unwrap();
    assert!(re.succeeded >= 8, "{re:?}");
    let m = &res.messages;
    assert!(m.ledger_balances() && m.failed > 0, "{m:?}");
}
