//! Broadcast fan-out measured end to end against a relay from another
//! implementation (tokio-tungstenite, every message to every client), and the
//! delivery ledger that proves every copy is accounted for.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use support::{check_invariants, run, serial};

const LIMIT: Duration = Duration::from_secs(20);

/// A relay: every data message any client sends goes to every connected client.
/// Stops by itself after 20 s.
fn relay() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let (bus, _) =
                tokio::sync::broadcast::channel::<tokio_tungstenite::tungstenite::Message>(1 << 16);
            let serve = async {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let bus = bus.clone();
                    tokio::spawn(async move {
                        let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                            return;
                        };
                        let (mut sink, mut stream) = ws.split();
                        let mut sub = bus.subscribe();
                        let forward = tokio::spawn(async move {
                            while let Ok(m) = sub.recv().await {
                                if sink.send(m).await.is_err() {
                                    break;
                                }
                            }
                        });
                        while let Some(Ok(m)) = stream.next().await {
                            if m.is_text() || m.is_binary() {
                                let _ = bus.send(m);
                            } else if m.is_close() {
                                break;
                            }
                        }
                        forward.abort();
                    });
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(20), serve).await;
        });
    });
    rx.recv().unwrap()
}

#[test]
fn every_published_message_reaches_every_connection_once() {
    let _s = serial();
    let addr = relay();
    let url = format!("ws://{addr}/");
    let r = run(
        &[
            &url,
            "-c",
            "20",
            "-d",
            "3s",
            "-q",
            "--workload",
            "broadcast",
            "--publishers",
            "4",
            "--rate",
            "200",
            "--connect-rate",
            "0",
        ],
        LIMIT,
    );
    check_invariants(&r);
    let b = r.broadcast.as_ref().expect("broadcast stats");
    assert_eq!(b.publishers, 4);
    assert_eq!(b.receivers, 20);
    assert!(b.published >= 400, "published {}", b.published);
    assert_eq!(b.expected, b.published * 20);
    assert_eq!(b.missing, 0, "{b:?}");
    assert_eq!(b.duplicates, 0, "{b:?}");
    assert_eq!(b.expected, b.delivered + b.missing + b.undelivered_at_stop);
    // Nothing is dropped by this relay: at most the last moments' copies are in flight.
    assert!(b.undelivered_at_stop <= 20 * 20, "{b:?}");
    let d = r.latency.delivery.as_ref().unwrap();
    assert_eq!(d.count, b.delivered);
    assert!(d.p50_us > 0.0 && d.p50_us < 100_000.0, "{d:?}");
    // Publishers' own copies settle their ledger like echoes.
    assert!(r.messages.ledger_balances());
    assert_eq!(r.messages.unexpected, 0);
}

/// With no URL, a broadcast run loads the built-in server in broadcast mode.
#[test]
fn the_built_in_server_relays_every_message_to_everyone() {
    let _s = serial();
    let r = run(
        &[
            "-c",
            "30",
            "-d",
            "3s",
            "-q",
            "--workload",
            "broadcast",
            "--publishers",
            "3",
            "--rate",
            "150",
            "--connect-rate",
            "0",
        ],
        LIMIT,
    );
    check_invariants(&r);
    let b = r.broadcast.as_ref().expect("broadcast stats");
    assert!(b.published >= 300, "published {}", b.published);
    assert_eq!((b.missing, b.duplicates), (0, 0), "{b:?}");
    assert_eq!(b.expected, b.delivered + b.missing + b.undelivered_at_stop);
    assert!(b.undelivered_at_stop <= 30 * 10, "{b:?}");
    assert_eq!(r.messages.unexpected, 0);
    assert!(r.messages.ledger_balances());
}

#[test]
fn broadcast_flags_are_checked() {
    support::assert_usage_errors(&[
        (&["--workload", "broadcast"][..], "publish rate"),
        (
            &[
                "--workload",
                "broadcast",
                "--rate",
                "10",
                "--publishers",
                "0",
            ][..],
            "between 1",
        ),
        (
            &[
                "--workload",
                "broadcast",
                "-c",
                "5",
                "--rate",
                "10",
                "--publishers",
                "6",
            ][..],
            "between 1",
        ),
        (&["--publishers", "2"][..], "--workload broadcast"),
    ]);
}
