//! The built-in server in broadcast mode (`wsherd serve --mode broadcast`), loaded by
//! tokio-tungstenite clients and raw TCP clients on loopback.
//!
//! Every server has two shards, so messages cross shards (the kernel spreads the
//! clients over the two SO_REUSEPORT listeners; the first test checks that both
//! shards got some). Each test is bounded by `LIMIT`, and the server stops when its
//! handle is dropped, whatever the test did.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsherd::server::{ServeConfig, ServerHandle};
use wsherd::ws::frame::{self, From, Kind};
use wsherd::ws::mask::apply_mask;

/// Most any one test may take.
const LIMIT: Duration = Duration::from_secs(60);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Tx = SplitSink<Ws, Message>;
type Rx = SplitStream<Ws>;

/// One test at a time: both shards are pinned to the machine's cores.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn start(extra: &[&str]) -> ServerHandle {
    let mut args = vec![
        "--addr",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--mode",
        "broadcast",
        "-q",
    ];
    args.extend_from_slice(extra);
    wsherd::server::start(ServeConfig::from_args(args).expect("valid serve args"))
        .expect("server starts")
}

/// Runs a test body on a two-thread tokio runtime, bounded by `LIMIT`.
fn run<F: std::future::Future<Output = ()>>(body: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        tokio::time::timeout(LIMIT, body)
            .await
            .expect("test took too long")
    });
}

async fn connect(addr: SocketAddr) -> (Tx, Rx) {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .expect("websocket connects");
    ws.split()
}

/// Waits until the server counts `n` open connections (it publishes 10 times a second).
async fn wait_open(server: &ServerHandle, n: u64) {
    let until = Instant::now() + Duration::from_secs(10);
    while server.open_connections() != n {
        assert!(
            Instant::now() < until,
            "server has {} open connections, expected {n}",
            server.open_connections()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next data message (pings and pongs skipped); None at close or end.
async fn next_data(rx: &mut Rx) -> Option<Message> {
    loop {
        match rx.next().await? {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => return Some(m),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn payload(m: &Message) -> Vec<u8> {
    match m {
        Message::Text(t) => t.as_bytes().to_vec(),
        Message::Binary(b) => b.to_vec(),
        other => panic!("not a data message: {other:?}"),
    }
}

#[test]
fn every_client_receives_every_message_exactly_once() {
    every_client_receives_everything(&[]);
}

#[test]
fn every_client_receives_every_message_exactly_once_on_epoll() {
    every_client_receives_everything(&["--io-driver", "epoll"]);
}

fn every_client_receives_everything(extra: &[&str]) {
    let _g = serial();
    const CLIENTS: usize = 20;
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 50;
    const TOTAL: usize = PUBLISHERS * PER_PUBLISHER;
    let server = start(extra);
    let addr = server.addr();
    run(async {
        let mut txs = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..CLIENTS {
            let (tx, mut rx) = connect(addr).await;
            txs.push(tx);
            readers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < TOTAL {
                    match tokio::time::timeout(Duration::from_secs(20), next_data(&mut rx)).await {
                        Ok(Some(m)) => got.push(m),
                        _ => break,
                    }
                }
                // A duplicate would arrive after the last expected message.
                if let Ok(Some(m)) =
                    tokio::time::timeout(Duration::from_millis(300), next_data(&mut rx)).await
                {
                    got.push(m);
                }
                (got, rx)
            }));
        }
        wait_open(&server, CLIENTS as u64).await;
        let per_shard = server.shard_connections();
        assert_eq!(per_shard.iter().sum::<u64>(), CLIENTS as u64);
        assert!(
            per_shard.iter().all(|&n| n > 0),
            "every shard should have clients (so messages cross shards): {per_shard:?}"
        );

        // Publishers send text and binary messages at the same time.
        let mut sends = Vec::new();
        for (p, mut tx) in txs.drain(..PUBLISHERS).enumerate() {
            sends.push(tokio::spawn(async move {
                for k in 0..PER_PUBLISHER {
                    let m = if k % 2 == 0 {
                        Message::text(format!("p{p}-m{k}"))
                    } else {
                        Message::binary(format!("p{p}-m{k}").into_bytes())
                    };
                    tx.send(m).await.expect("publisher sends");
                }
                tx
            }));
        }
        let mut keep = Vec::new();
        for s in sends {
            keep.push(s.await.unwrap());
        }
        for (i, r) in readers.into_iter().enumerate() {
            let (got, _rx) = r.await.unwrap();
            assert_eq!(got.len(), TOTAL, "client {i} got {} messages", got.len());
            let mut seen = HashSet::new();
            let mut last = [None::<usize>; PUBLISHERS];
            for m in &got {
                let s = String::from_utf8(payload(m)).unwrap();
                assert!(seen.insert(s.clone()), "client {i} got {s} twice");
                let (p, k) = s[1..].split_once("-m").unwrap();
                let (p, k): (usize, usize) = (p.parse().unwrap(), k.parse().unwrap());
                // Text stays text, binary stays binary.
                assert_eq!(matches!(m, Message::Text(_)), k % 2 == 0, "{s}");
                // One sender's messages arrive in the order sent.
                assert!(
                    last[p].is_none_or(|l| l < k),
                    "client {i}: {s} out of order"
                );
                last[p] = Some(k);
            }
        }
        drop(keep);
    });
    let t = server.stop();
    assert_eq!(t.published, TOTAL as u64, "{t:?}");
    assert_eq!(t.messages, TOTAL as u64, "{t:?}");
    assert_eq!(t.delivered, (TOTAL * CLIENTS) as u64, "{t:?}");
    assert_eq!(t.dropped, 0, "{t:?}");
    assert_eq!(t.errors, 0, "{t:?}");
}

/// Kernel buffer a connection can hold beyond our queue: the largest send buffer
/// plus a generous receive buffer.
fn kernel_slack_bytes() -> u64 {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4u64 << 20);
    wmem_max + (1 << 20)
}

/// A raw TCP client that upgrades and then never reads.
fn raw_upgrade(addr: SocketAddr, rcvbuf: Option<usize>) -> std::net::TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n).unwrap();
    }
    sock.connect(&addr.into()).unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    // Read the response head byte by byte so nothing after it is consumed.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("upgrade response");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

#[test]
fn a_slow_receiver_loses_copies_and_holds_up_nobody() {
    let _g = serial();
    const QUEUE: u64 = 8;
    const SIZE: usize = 64 * 1024;
    const FAST: usize = 4; // the publisher is one of them
    const WINDOW: u64 = 3; // messages a fast receiver may be behind (< QUEUE)
                           // Enough to overflow the slow receiver's queue and every kernel buffer on its way.
    let slack = QUEUE + 2 + kernel_slack_bytes().div_ceil(SIZE as u64);
    let total = slack + 100;
    let server = start(&["--queue", "8"]);
    let addr = server.addr();
    let slow = raw_upgrade(addr, Some(4096));
    run(async {
        let got: Arc<Vec<AtomicU64>> = Arc::new((0..FAST).map(|_| AtomicU64::new(0)).collect());
        let mut txs = Vec::new();
        let mut readers = Vec::new();
        for i in 0..FAST {
            let (tx, mut rx) = connect(addr).await;
            txs.push(tx);
            let got = got.clone();
            readers.push(tokio::spawn(async move {
                for k in 0..total {
                    let m = tokio::time::timeout(Duration::from_secs(20), next_data(&mut rx))
                        .await
                        .unwrap_or_else(|_| panic!("fast receiver {i} waited for message {k}"))
                        .unwrap_or_else(|| panic!("fast receiver {i} closed at message {k}"));
                    let p = payload(&m);
                    assert_eq!(p.len(), SIZE);
                    let n = u64::from_le_bytes(p[..8].try_into().unwrap());
                    assert_eq!(n, k, "fast receiver {i} lost or reordered a message");
                    assert!(p[8..].iter().all(|&b| b == n as u8));
                    got[i].store(k + 1, Ordering::Relaxed);
                }
                rx
            }));
        }
        wait_open(&server, FAST as u64 + 1).await;
        let mut tx = txs.swap_remove(0);
        let started = Instant::now();
        for k in 0..total {
            // Keep every fast receiver within WINDOW messages, so none of them ever
            // has a full queue, however the two cores are shared out.
            while got.iter().any(|g| g.load(Ordering::Relaxed) + WINDOW < k) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let mut p = vec![k as u8; SIZE];
            p[..8].copy_from_slice(&k.to_le_bytes());
            tx.send(Message::binary(p)).await.unwrap();
        }
        let mut rxs = Vec::new();
        for r in readers {
            rxs.push(r.await.unwrap());
        }
        let took = started.elapsed();
        // Wait for the counters (published ten times a second) while the slow
        // receiver is still connected: its copies are dropped, not waited for.
        let until = Instant::now() + Duration::from_secs(5);
        while server.totals().published < total && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let t = server.totals();
        assert_eq!(t.published, total, "{t:?}");
        // The slow receiver holds at most its queue, the write in progress and what
        // the kernel buffers: everything else published was dropped.
        assert!(
            t.dropped >= total - slack,
            "dropped {} of {total} copies for the slow receiver (slack {slack}): {t:?}",
            t.dropped
        );
        eprintln!("{total} x 64 KiB to {FAST} fast receivers and 1 stalled one in {took:?}: {t:?}");
        drop((tx, txs, rxs));
    });
    // The slow receiver goes away (with unread data: a reset); what was queued for it
    // or being written to it now counts as dropped too.
    drop(slow);
    let until = Instant::now() + Duration::from_secs(5);
    let owed = total * (FAST as u64 + 1);
    while {
        let t = server.totals();
        t.delivered + t.dropped < owed || server.open_connections() > 0
    } && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = server.stop();
    assert_eq!(
        t.delivered + t.dropped,
        owed,
        "every copy is accounted for: {t:?}"
    );
    assert!(t.delivered >= total * FAST as u64, "{t:?}");
}

#[test]
fn pings_closes_and_stopping_in_broadcast_mode() {
    let _g = serial();
    let server = start(&[]);
    let addr = server.addr();
    let server = run_returning(async move {
        let (mut a_tx, mut a_rx) = connect(addr).await;
        let (mut b_tx, mut b_rx) = connect(addr).await;
        wait_open(&server, 2).await;

        a_tx.send(Message::Ping(b"hello".to_vec().into()))
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(5), a_rx.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => assert_eq!(&p[..], b"hello"),
            other => panic!("expected a pong, got {other:?}"),
        }

        // A closes: the server answers with the same code, and A's copies stop.
        a_tx.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
        match tokio::time::timeout(Duration::from_secs(5), a_rx.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => assert_eq!(f.code, CloseCode::Normal),
            other => panic!("expected a close reply, got {other:?}"),
        }
        wait_open(&server, 1).await;

        b_tx.send(Message::text("only b")).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), next_data(&mut b_rx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(payload(&m), b"only b");

        // Stopping the server tells B it is going away.
        server.request_stop();
        match tokio::time::timeout(Duration::from_secs(5), b_rx.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => assert_eq!(f.code, CloseCode::Away),
            other => panic!("expected a 1001 close, got {other:?}"),
        }
        drop(b_tx);
        server
    });
    let t = server.stop();
    assert_eq!(t.published, 1, "{t:?}");
    assert_eq!(t.delivered, 1, "A had gone: only B gets the copy: {t:?}");
    assert_eq!(t.dropped, 0, "{t:?}");
    assert_eq!(t.connections, 2, "{t:?}");
}

fn run_returning<T, F: std::future::Future<Output = T>>(body: F) -> T {
    let mut out = None;
    run(async {
        out = Some(body.await);
    });
    out.unwrap()
}

/// Writes a masked client frame.
fn client_frame(out: &mut Vec<u8>, kind: Kind, fin: bool, payload: &[u8]) {
    let key = [0x11, 0x22, 0x33, 0x44];
    frame::write_header(out, kind, fin, Some(key), payload.len());
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
}

/// Reads one server frame from a blocking stream: (kind, fin, payload).
fn read_frame(s: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> (Kind, bool, Vec<u8>) {
    loop {
        if let Some(f) = frame::parse(buf, From::Server, 1 << 20).expect("valid server frame") {
            let p = buf[f.header_len..f.total_len()].to_vec();
            buf.drain(..f.total_len());
            return (f.kind, f.fin, p);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("server frame");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn fragmented_messages_are_relayed_whole() {
    let _g = serial();
    let server = start(&[]);
    let addr = server.addr();
    let mut raw = raw_upgrade(addr, None);
    run(async {
        let (_tx, mut rx) = connect(addr).await;
        wait_open(&server, 2).await;
        // Three fragments with a ping between them (control frames may interleave).
        let mut out = Vec::new();
        client_frame(&mut out, Kind::Text, false, b"frag");
        client_frame(&mut out, Kind::Continuation, false, b"mented ");
        client_frame(&mut out, Kind::Ping, true, b"p");
        client_frame(&mut out, Kind::Continuation, true, b"message");
        raw.write_all(&out).unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), next_data(&mut rx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m, Message::text("fragmented message"));
        // The sender gets its pong, then its own message, as one final frame.
        let mut buf = Vec::new();
        assert_eq!(
            read_frame(&mut raw, &mut buf),
            (Kind::Pong, true, b"p".to_vec())
        );
        assert_eq!(
            read_frame(&mut raw, &mut buf),
            (Kind::Text, true, b"fragmented message".to_vec())
        );
        // A continuation with nothing to continue is a protocol error: 1002.
        let mut out = Vec::new();
        client_frame(&mut out, Kind::Continuation, true, b"stray");
        raw.write_all(&out).unwrap();
        let (kind, _, p) = read_frame(&mut raw, &mut buf);
        assert_eq!(kind, Kind::Close);
        assert_eq!(frame::close_code(&p), 1002);
    });
    let t = server.stop();
    assert_eq!(t.published, 1, "{t:?}");
    assert_eq!(t.delivered, 2, "{t:?}");
}

#[test]
fn delay_fault_holds_back_broadcasts() {
    let _g = serial();
    let server = start(&["--delay", "300ms"]);
    let addr = server.addr();
    run(async {
        let (mut tx, mut rx) = connect(addr).await;
        let (_tx2, mut rx2) = connect(addr).await;
        wait_open(&server, 2).await;
        let sent = Instant::now();
        tx.send(Message::text("late")).await.unwrap();
        for rx in [&mut rx, &mut rx2] {
            let m = tokio::time::timeout(Duration::from_secs(5), next_data(rx))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(payload(&m), b"late");
        }
        assert!(
            sent.elapsed() >= Duration::from_millis(250),
            "broadcast came back after {:?}, before the 300ms delay",
            sent.elapsed()
        );
    });
    let t = server.stop();
    assert_eq!(t.delivered, 2, "{t:?}");
}

/// Test knobs in broadcast mode: `--service-time` per published message on the
/// publisher's shard, `--max-connections` across the shards.
#[test]
fn capacity_knobs_in_broadcast_mode() {
    let _g = serial();
    let server = start(&["--service-time", "100ms", "--max-connections", "2"]);
    let addr = server.addr();
    run(async {
        let (mut tx, mut rx) = connect(addr).await;
        let (_tx2, mut rx2) = connect(addr).await;
        wait_open(&server, 2).await;
        // A third is refused with 503 and Retry-After, whichever shard it reaches.
        match tokio_tungstenite::connect_async(format!("ws://{addr}/")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 503);
                assert_eq!(resp.headers()["retry-after"], "1");
            }
            other => panic!("a third connection beyond --max-connections 2: {other:?}"),
        }
        // Five messages at once: published one per 100 ms, in order.
        let sent = Instant::now();
        for i in 0..5u8 {
            tx.feed(Message::binary(vec![i])).await.unwrap();
        }
        tx.flush().await.unwrap();
        for rx in [&mut rx, &mut rx2] {
            for i in 0..5u8 {
                let m = tokio::time::timeout(Duration::from_secs(5), next_data(rx))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(payload(&m), vec![i]);
            }
        }
        let took = sent.elapsed();
        assert!(
            took >= Duration::from_millis(450),
            "five messages at 100 ms each published after {took:?}"
        );
    });
    let t = server.stop();
    assert_eq!(t.rejected, 1, "{t:?}");
    assert_eq!(t.published, 5, "{t:?}");
    assert_eq!(t.delivered, 10, "{t:?}");
}
