//! Shared helpers for the integration tests: WebSocket servers from another
//! implementation (tokio-tungstenite), fault-injection servers, and ways to run
//! wsherd in-process or as a subprocess with a time limit.
//!
//! Every server runs on its own thread with its own tokio runtime, listens on
//! 127.0.0.1 on a port the kernel picked, and stops by itself: when its handle is
//! dropped, or at the latest after `SERVER_LIFETIME`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod browser;

use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use wsherd::results::RunResults;

/// A server stops by itself after this long even if its handle is leaked.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(30);

/// Load tests in one test binary run one at a time: the machine has 2 cores and
/// every run pins its shards, so parallel runs would distort each other's latency.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a test server saw.
#[derive(Default)]
pub struct ServerStats {
    /// TCP connections accepted.
    pub accepted: AtomicU64,
    /// WebSocket upgrades completed.
    pub upgraded: AtomicU64,
    /// Data frames echoed back.
    pub echoed: AtomicU64,
    /// Pings the server sent.
    pub pings_sent: AtomicU64,
    /// Pongs the server received.
    pub pongs_received: AtomicU64,
    /// Connections the server ended on purpose (close frame, FIN, RST, bad frame).
    pub ended: AtomicU64,
    /// Accepted connections per peer (client) address.
    pub peers: Mutex<std::collections::HashMap<std::net::IpAddr, u64>>,
}

impl ServerStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A running test server; stops (and joins its thread) when dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<ServerStats>,
}

impl Server {
    /// Starts a server whose every accepted connection is handed to `handler`.
    pub fn spawn<F, Fut>(name: &str, handler: F) -> Server
    where
        F: Fn(TcpStream, Arc<ServerStats>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = std_listener.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ServerStats::default());
        let thread = {
            let stop = stop.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name(format!("test-server-{name}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("tokio runtime");
                    rt.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(std_listener)
                            .expect("tokio listener");
                        let started = Instant::now();
                        while !stop.load(Ordering::Relaxed) && started.elapsed() < SERVER_LIFETIME {
                            let accepted =
                                tokio::time::timeout(Duration::from_millis(20), listener.accept())
                                    .await;
                            if let Ok(Ok((stream, peer))) = accepted {
                                let _ = stream.set_nodelay(true);
                                stats.accepted.fetch_add(1, Ordering::Relaxed);
                                *stats
                                    .peers
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .entry(peer.ip())
                                    .or_insert(0) += 1;
                                tokio::spawn(handler(stream, stats.clone()));
                            }
                        }
                    });
                    // Dropping the runtime cancels every connection task still running.
                    drop(rt);
                })
                .expect("spawn server thread")
        };
        Server {
            addr,
            stop,
            thread: Some(thread),
            stats,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How a WebSocket server connection ends, `after` the upgrade.
#[derive(Clone, Copy, Debug)]
pub enum Ending {
    /// Echo until the client goes away.
    Never,
    /// Send a close frame with this code, then wait for the client to finish.
    CloseFrame { after: Duration, code: u16 },
    /// Shut down the write side (FIN) without a close frame, then drain until EOF.
    Fin { after: Duration },
    /// Reset the connection (SO_LINGER 0, then close: RST).
    Reset { after: Duration },
    /// Send a frame with a reserved opcode (a protocol violation), then drain.
    BadFrame { after: Duration },
}

impl Ending {
    fn after(self) -> Option<Duration> {
        match self {
            Ending::Never => None,
            Ending::CloseFrame { after, .. }
            | Ending::Fin { after }
            | Ending::Reset { after }
            | Ending::BadFrame { after } => Some(after),
        }
    }
}

/// What a tokio-tungstenite server connection does.
#[derive(Clone, Copy, Debug)]
pub struct WsBehaviour {
    /// Send a ping to the client this often.
    pub ping_every: Option<Duration>,
    /// Send one unsolicited binary message this long after the upgrade.
    pub unsolicited_after: Option<Duration>,
    pub ending: Ending,
}

impl WsBehaviour {
    pub const ECHO: WsBehaviour = WsBehaviour {
        ping_every: None,
        unsolicited_after: None,
        ending: Ending::Never,
    };
}

/// A tokio-tungstenite echo server: echoes text and binary messages; tungstenite
/// answers pings itself.
pub fn echo_server() -> Server {
    ws_server(WsBehaviour::ECHO)
}

/// A tokio-tungstenite server with the given behaviour.
pub fn ws_server(behaviour: WsBehaviour) -> Server {
    Server::spawn("ws", move |stream, stats| {
        ws_connection(stream, stats, behaviour)
    })
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick_opt(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn ws_connection(stream: TcpStream, stats: Arc<ServerStats>, behaviour: WsBehaviour) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    stats.upgraded.fetch_add(1, Ordering::Relaxed);
    let now = tokio::time::Instant::now();
    let end_at = behaviour.ending.after().map(|d| now + d);
    let mut unsolicited_at = behaviour.unsolicited_after.map(|d| now + d);
    let mut pings = behaviour
        .ping_every
        .map(|every| tokio::time::interval_at(now + every, every));
    let mut ping_seq: u64 = 0;
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                    if ws.send(msg).await.is_err() {
                        return;
                    }
                    stats.echoed.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(Message::Pong(_))) => {
                    stats.pongs_received.fetch_add(1, Ordering::Relaxed);
                }
                // tungstenite queues the answer to a close; send it now, before a
                // ping tick could try to write after the close and drop it.
                Some(Ok(Message::Close(_))) => {
                    let _ = ws.flush().await;
                    return;
                }
                // Pings are answered by tungstenite.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            _ = tick_opt(&mut pings) => {
                ping_seq += 1;
                let payload = ping_seq.to_be_bytes().to_vec();
                if ws.send(Message::Ping(payload.into())).await.is_err() {
                    return;
                }
                stats.pings_sent.fetch_add(1, Ordering::Relaxed);
            },
            _ = sleep_until_opt(unsolicited_at) => {
                unsolicited_at = None;
                // 64 bytes that match no send of any client.
                let junk = vec![0xA5u8; 64];
                if ws.send(Message::Binary(junk.into())).await.is_err() {
                    return;
                }
            },
            _ = sleep_until_opt(end_at) => {
                stats.ended.fetch_add(1, Ordering::Relaxed);
                end_connection(ws, behaviour.ending).await;
                return;
            },
        }
    }
}

/// How long a server waits for the client to finish after ending a connection.
const DRAIN_LIMIT: Duration = Duration::from_secs(3);

async fn end_connection(mut ws: WebSocketStream<TcpStream>, ending: Ending) {
    match ending {
        Ending::Never => {}
        Ending::CloseFrame { code, .. } => {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: "test server going away".into(),
            };
            if ws.close(Some(frame)).await.is_err() {
                return;
            }
            // Read (and drop) whatever the client still sends, until its close reply.
            let _ = tokio::time::timeout(DRAIN_LIMIT, async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
        Ending::Fin { .. } => {
            let mut tcp = ws.into_inner();
            let _ = tcp.shutdown().await;
            drain_raw(&mut tcp).await;
        }
        Ending::Reset { .. } => {
            let tcp = ws.into_inner();
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
            drop(tcp);
        }
        Ending::BadFrame { .. } => {
            let mut tcp = ws.into_inner();
            // FIN + opcode 0x3 (reserved), unmasked, empty payload.
            let _ = tcp.write_all(&[0x83, 0x00]).await;
            drain_raw(&mut tcp).await;
        }
    }
}

/// Reads and drops bytes until EOF, an error, or `DRAIN_LIMIT`.
async fn drain_raw(tcp: &mut TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(DRAIN_LIMIT, async {
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Reads an HTTP request head (up to the blank line); None on EOF, error or timeout.
async fn read_request_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(DRAIN_LIMIT, async {
        loop {
            let n = tcp.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Some(());
            }
            if head.len() > 64 * 1024 {
                return None;
            }
        }
    })
    .await;
    match read {
        Ok(Some(())) => Some(String::from_utf8_lossy(&head).into_owned()),
        _ => None,
    }
}

/// A plain-TCP server that answers every request with `response` verbatim, then
/// closes its side and drains until the client goes away.
pub fn raw_http_server(response: &'static str) -> Server {
    Server::spawn("raw-http", move |mut tcp, stats| async move {
        if read_request_head(&mut tcp).await.is_none() {
            return;
        }
        let _ = tcp.write_all(response.as_bytes()).await;
        stats.ended.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.shutdown().await;
        drain_raw(&mut tcp).await;
    })
}

/// Answers every upgrade with `HTTP/1.1 403 Forbidden`.
pub fn forbidden_server() -> Server {
    raw_http_server(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\
         Connection: close\r\n\r\nforbidden\n",
    )
}

/// Answers every upgrade with a 101 whose Sec-WebSocket-Accept is wrong, then
/// keeps the connection open (silent) until the client goes away.
pub fn bad_accept_server() -> Server {
    Server::spawn("bad-accept", |mut tcp, stats| async move {
        if read_request_head(&mut tcp).await.is_none() {
            return;
        }
        // The accept key of RFC 6455's example, which matches no random client key.
        let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                        Connection: Upgrade\r\n\
                        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let _ = tcp.write_all(response.as_bytes()).await;
        stats.ended.fetch_add(1, Ordering::Relaxed);
        drain_raw(&mut tcp).await;
    })
}

/// Accepts TCP connections and never answers the upgrade request.
pub fn silent_server() -> Server {
    Server::spawn("silent", |mut tcp, _stats| async move {
        drain_raw(&mut tcp).await;
    })
}

/// Answers the upgrade request with bytes that are not HTTP, then closes.
pub fn garbage_server() -> Server {
    Server::spawn("garbage", |mut tcp, stats| async move {
        if read_request_head(&mut tcp).await.is_none() {
            return;
        }
        let _ = tcp
            .write_all(b"\x00\x01\x02 SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n\r\n")
            .await;
        stats.ended.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.shutdown().await;
        drain_raw(&mut tcp).await;
    })
}

/// A loopback port on which nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    drop(listener);
    port
}

/// A failed in-process run: the error's message and exit code.
#[derive(Debug)]
pub struct RunError {
    pub message: String,
    pub exit_code: u8,
}

/// Parses `args` (what follows `wsherd run`) and runs the load in-process on a
/// separate thread; fails the test if the run takes longer than `limit`.
pub fn try_run(args: &[&str], limit: Duration) -> Result<RunResults, RunError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let shown = args.join(" ");
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("wsherd-run".into())
        .spawn(move || {
            let result = wsherd::engine::Run::from_args(args)
                .and_then(wsherd::run)
                .map_err(|e| RunError {
                    message: e.to_string(),
                    exit_code: e.exit_code(),
                });
            let _ = tx.send(result);
        })
        .expect("spawn run thread");
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("`wsherd run {shown}` did not finish within {limit:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("`wsherd run {shown}` panicked"),
    }
}

/// As `try_run`, and fails the test if the run returned an error.
pub fn run(args: &[&str], limit: Duration) -> RunResults {
    match try_run(args, limit) {
        Ok(res) => {
            check_invariants(&res);
            res
        }
        Err(e) => panic!(
            "`wsherd run {}` failed (exit code {}): {}",
            args.join(" "),
            e.exit_code,
            e.message
        ),
    }
}

/// What holds for every run, whatever happened in it.
pub fn check_invariants(res: &RunResults) {
    let conns = &res.connections;
    let msgs = &res.messages;
    assert_eq!(res.schema_version, wsherd::results::SCHEMA_VERSION);
    assert!(
        msgs.ledger_balances(),
        "ledger does not balance: sent {} != received {} + failed {} + in flight {}",
        msgs.sent,
        msgs.received,
        msgs.failed,
        msgs.in_flight_at_stop
    );
    assert_eq!(
        conns.failed,
        conns.failed_by_cause.values().sum::<u64>(),
        "failed != sum of failed_by_cause: {conns:?}"
    );
    assert_eq!(
        conns.lost,
        conns.lost_by_cause.values().sum::<u64>(),
        "lost != sum of lost_by_cause: {conns:?}"
    );
    assert!(
        conns.attempted == conns.established + conns.failed + conns.aborted_at_stop,
        "attempted != established + failed + aborted at stop: {conns:?}"
    );
    assert!(
        conns.lost <= conns.established,
        "more connections lost than established: {conns:?}"
    );
    assert!(
        msgs.received <= msgs.sent,
        "more echoes matched than messages sent: {msgs:?}"
    );
    assert!(
        res.latency.rtt.count <= msgs.received,
        "more round trips timed than echoes received: rtt count {} > received {}",
        res.latency.rtt.count,
        msgs.received
    );
}

/// What holds for a run with no faults against a working echo server.
pub fn assert_clean(res: &RunResults, connections: u64) {
    let conns = &res.connections;
    let msgs = &res.messages;
    assert_eq!(
        conns.failed, 0,
        "failed connections: {:?}",
        conns.failed_by_cause
    );
    assert_eq!(conns.attempted, connections, "attempted: {conns:?}");
    assert_eq!(conns.established, connections, "established: {conns:?}");
    assert_eq!(conns.lost, 0, "lost connections: {:?}", conns.lost_by_cause);
    assert!(
        res.errors.values().all(|&n| n == 0),
        "errors: {:?}",
        res.errors
    );
    assert_eq!(msgs.unexpected, 0, "unexpected messages: {msgs:?}");
    assert!(msgs.sent > 0, "nothing sent: {msgs:?}");
    assert!(msgs.received > 0, "nothing received: {msgs:?}");
    assert!(msgs.ledger_balances(), "ledger: {msgs:?}");
    assert!(
        msgs.failed == 0,
        "messages failed although no connection was lost: {msgs:?}"
    );
    assert_eq!(
        conns.closed_clean, connections,
        "close handshakes at the end: {conns:?}"
    );
    let rtt = &res.latency.rtt;
    assert!(rtt.count > 0, "no round trip recorded: {rtt:?}");
    assert!(
        rtt.p50_us > 0.0 && rtt.p50_us < 100_000.0,
        "implausible rtt p50 on loopback: {} us",
        rtt.p50_us
    );
    assert!(
        rtt.min_us <= rtt.p50_us && rtt.p50_us <= rtt.max_us,
        "rtt summary out of order: {rtt:?}"
    );
}

/// The output of a `wsherd` subprocess.
#[derive(Debug)]
pub struct BinOutput {
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `wsherd` binary with `args`; kills it and fails the test if it takes
/// longer than `limit`.
pub fn run_bin(args: &[&str], limit: Duration) -> BinOutput {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsherd");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for wsherd") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`wsherd {}` did not exit within {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    BinOutput {
        code: status.code(),
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// No connection was established, and every one that failed failed with `cause`.
pub fn assert_failed_only_with(res: &RunResults, cause: &str) {
    let c = &res.connections;
    assert_eq!(c.established, 0, "{c:?}");
    assert!(c.failed > 0, "{c:?}");
    assert_eq!(
        c.failed_by_cause.get(cause),
        Some(&c.failed),
        "{:?}",
        c.failed_by_cause
    );
}

/// Each `(args, why)`: `wsherd run ARGS` is refused before running, as a usage
/// error (exit code 2) whose message contains `why`.
pub fn assert_usage_errors(cases: &[(&[&str], &str)]) {
    for (args, why) in cases {
        let e = wsherd::engine::Run::from_args(args.iter().copied())
            .expect_err(&format!("{args:?} should be refused"));
        assert_eq!(e.exit_code(), 2, "{args:?}");
        assert!(e.to_string().contains(why), "{args:?}: {e}");
    }
}

/// The built-in server in-process on a free loopback port with `knobs`
/// (`--max-connections 300`, `--service-time 1ms`, ...). One shard on two cores
/// or more sits on the last core, away from the load's shard on the first.
pub fn serve_builtin(shards: &str, knobs: &[&str]) -> wsherd::server::ServerHandle {
    let mut args: Vec<String> = ["--addr", "127.0.0.1:0", "--shards", shards, "-q"]
        .map(String::from)
        .to_vec();
    let cores = wsherd::sys::available_cores();
    if shards == "1" && cores.len() >= 2 {
        args.push("--first-core".into());
        args.push(cores[cores.len() - 1].to_string());
    }
    args.extend(knobs.iter().map(|k| k.to_string()));
    wsherd::server::start(wsherd::server::ServeConfig::from_args(args).unwrap()).unwrap()
}

/// A server of another stack run as a child process (Python, Node): it prints
/// its port as its first line on stdout and exits by itself after the lifetime
/// its script is given; killed when dropped.
pub struct ChildServer {
    child: std::process::Child,
    pub port: u16,
}

impl ChildServer {
    /// Starts `program` with `args` (the script first); `what` names it in the
    /// failure message when it does not print a port.
    pub fn start(program: &str, args: &[&str], what: &str) -> ChildServer {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} does not run ({e}); scripts/setup-test-deps.sh installs what the tests need")
            });
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).ok();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not start (printed {line:?}); run scripts/setup-test-deps.sh");
        };
        ChildServer { child, port }
    }

    /// A script under tests/servers/, run by `program` (`python3`, `node`) with
    /// a lifetime of 60 s (its first argument) and `args`.
    pub fn script(program: &str, script: &str, args: &[&str], what: &str) -> ChildServer {
        let path = format!("{}/tests/servers/{script}", env!("CARGO_MANIFEST_DIR"));
        let all: Vec<&str> = [path.as_str(), "60"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        ChildServer::start(program, &all, what)
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The results keep the JSON contract: they validate against the committed
/// schema (src/results/run.schema.json).
pub fn assert_schema(res: &RunResults) {
    let schema: serde_json::Value =
        serde_json::from_str(wsherd::results::RESULTS_SCHEMA).expect("the schema is JSON");
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    let doc = serde_json::to_value(res).expect("results serialize");
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "results do not match the schema: {errors:?}"
    );
}

/// Runs the shipped scenario file `scripts/scenarios/NAME` with each `(from,
/// to)` of `replacements` applied to its text first (the test server's address,
/// a shorter duration), quietly.
pub fn run_shipped_scenario(
    name: &str,
    replacements: &[(&str, &str)],
) -> wsherd::scenario::ScenarioResults {
    let path = format!("{}/scripts/scenarios/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).expect("the shipped scenario file");
    for (from, to) in replacements {
        assert!(text.contains(from), "{name} has no {from:?}");
        text = text.replace(from, to);
    }
    let file = wsherd::scenario::parse(&text, name).expect("the shipped scenario parses");
    wsherd::scenario::run(file, true).expect("the shipped scenario runs")
}

/// The text summary of `res` with its long lines joined again (the summary
/// breaks lines at 80 columns, going on six spaces in), for tests that look
/// for a phrase wherever the break fell.
pub fn summary_text(res: &RunResults) -> String {
    wsherd::report::text::render(res).replace("\n      ", " ")
}

/// A raw WebSocket frame header as the hostile suites write it: `first` is the
/// FIN/RSV/opcode byte as given (reserved bits and opcodes included), `len` the
/// length written on the wire (7, 16 or 64 bits, whatever follows), then the
/// masking key when there is one.
pub fn frame_header(first: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut h = vec![first];
    if len < 126 {
        h.push(m | len as u8);
    } else if len <= u16::MAX as u64 {
        h.push(m | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(m | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        h.extend_from_slice(&key);
    }
    h
}
