//! Raw TCP ping-pong over monoio: the transport's own cost, with no WebSocket on top.
//!
//! This is the floor wsherd's end-to-end echo benchmark is measured against
//! (`scripts/bench-echo.sh`, `benches/README.md`): the same runtime (monoio, io_uring
//! driver), the same pinning (one thread per process, pinned with core_affinity), the
//! same closed loop (one message in flight per connection), but bytes instead of frames.
//! Whatever wsherd spends per round trip above this figure is its own doing.
//!
//! It must never grow features of its own: no framing, no histograms, no per-message
//! timing. Its value is that it does the least a client can do.
//!
//! Modes (cargo appends `--bench`; unknown `--flags` are ignored):
//!
//! ```text
//! rawtcp server ADDR CORE
//!     echo whatever is read, until killed; prints `listening ADDR` once bound
//!     (ADDR may use port 0).
//! rawtcp client ADDR CORE CONNS SECONDS SIZE
//!     CONNS connections, each with one SIZE-byte message in flight; after all are
//!     connected and a short warm-up, counts round trips for SECONDS and prints
//!     `rawtcp round_trips=N secs=S rtt_per_sec=X client_cpu_us_per_rt=Y total_round_trips=T`
//!     (CPU: getrusage(RUSAGE_SELF) user+sys over the measured period only; T also
//!     counts the warm-up).
//! rawtcp open ADDR CORE CONNS SECONDS SIZE RATE
//!     the open loop: CONNS connections, each sending one SIZE-byte write every
//!     1/RATE s (RATE per connection; phases spread over the interval) whatever the
//!     echoes do, while a reader per connection takes the echoes back; counts for
//!     SECONDS after the warm-up and prints
//!     `rawtcp open sent=N received_bytes=B secs=S msgs_per_sec=X client_cpu_us_per_msg=Y`
//!     (CPU per message sent, over the measured period only). Each connection
//!     sleeps on monoio's timer (1 ms wheel), so the sends due in one tick go out
//!     from one wake: the cheapest a paced client can be on this runtime.
//! ```
//!
//! Run: `cargo bench --bench rawtcp -- server 127.0.0.1:9000 1` and
//! `cargo bench --bench rawtcp -- client 127.0.0.1:9000 0 100 10 64`.

use std::cell::Cell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncReadRentExt, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

/// Round trips before the measured period starts: connections are open, caches and
/// the ring are warm, and the first burst of connects is not counted.
const WARMUP: Duration = Duration::from_millis(500);

/// Server read buffer per connection; larger than any message this bench sends, so a
/// message is normally echoed with one recv and one send.
const SERVER_BUF: usize = 16 * 1024;

/// io_uring submission queue entries: enough for one recv or send per connection.
const RING_ENTRIES: u32 = 4096;

fn usage() -> ExitCode {
    eprintln!(
        "usage: rawtcp server ADDR CORE\n       rawtcp client ADDR CORE CONNS SECONDS SIZE\n       \
         rawtcp open ADDR CORE CONNS SECONDS SIZE RATE"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // cargo passes `--bench` (and may pass other harness flags); drop every flag.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["server", addr, core] => parse_server(addr, core).and_then(|(a, c)| server(a, c)),
        ["client", addr, core, conns, secs, size] => {
            parse_client(addr, core, conns, secs, size).and_then(client)
        }
        ["open", addr, core, conns, secs, size, rate] => {
            parse_client(addr, core, conns, secs, size)
                .and_then(|a| Ok((a, num::<f64>("RATE", rate)?)))
                .and_then(|(a, r)| open_loop(a, r))
        }
        // `cargo bench` with no arguments runs every bench: do nothing, successfully.
        [] => {
            eprintln!("rawtcp: no mode given; see benches/README.md (nothing to do)");
            return ExitCode::SUCCESS;
        }
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rawtcp: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, String>;

fn num<T: std::str::FromStr>(what: &str, s: &str) -> Res<T> {
    s.parse().map_err(|_| format!("bad {what}: {s:?}"))
}

fn parse_server(addr: &str, core: &str) -> Res<(SocketAddr, usize)> {
    Ok((num("ADDR", addr)?, num("CORE", core)?))
}

struct ClientArgs {
    addr: SocketAddr,
    core: usize,
    conns: usize,
    secs: f64,
    size: usize,
}

fn parse_client(addr: &str, core: &str, conns: &str, secs: &str, size: &str) -> Res<ClientArgs> {
    let a = ClientArgs {
        addr: num("ADDR", addr)?,
        core: num("CORE", core)?,
        conns: num("CONNS", conns)?,
        secs: num("SECONDS", secs)?,
        size: num("SIZE", size)?,
    };
    if a.conns == 0 || a.size == 0 || !a.secs.is_finite() || a.secs <= 0.0 {
        return Err("CONNS, SECONDS and SIZE must be positive".into());
    }
    Ok(a)
}

/// Pin the calling thread; the whole bench is one thread, so this pins the process.
fn pin(core: usize) -> Res<()> {
    let ids = core_affinity::get_core_ids().ok_or("cannot read the CPU set")?;
    let id = ids
        .into_iter()
        .find(|c| c.id == core)
        .ok_or_else(|| format!("core {core} is not in this process's CPU set"))?;
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(format!("cannot pin to core {core}"))
    }
}

fn runtime() -> Res<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(RING_ENTRIES)
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot start monoio's io_uring runtime: {e}"))
}

fn server(addr: SocketAddr, core: usize) -> Res<()> {
    pin(core)?;
    let mut rt = runtime()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!("listening {local}");
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("rawtcp: accept: {e}");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            monoio::spawn(echo(stream));
        }
    })
}

async fn echo(mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(SERVER_BUF);
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // `read` set the Vec's length to the bytes received; send exactly those back.
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}

fn cpu_us() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Opens the CONNS connections, one after another (TCP_NODELAY on each).
async fn connect_all(a: &ClientArgs) -> Res<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(a.conns);
    for i in 0..a.conns {
        let s = TcpStream::connect_addr(a.addr)
            .await
            .map_err(|e| format!("connect {} (connection {i}): {e}", a.addr))?;
        let _ = s.set_nodelay(true);
        streams.push(s);
    }
    Ok(streams)
}

fn client(a: ClientArgs) -> Res<()> {
    pin(a.core)?;
    let mut rt = runtime()?;
    rt.block_on(async move {
        let streams = connect_all(&a).await?;
        let count = Rc::new(Cell::new(0u64));
        let stop = Rc::new(Cell::new(false));
        let failed = Rc::new(Cell::new(None::<String>));
        for s in streams {
            monoio::spawn(ping(s, a.size, count.clone(), stop.clone(), failed.clone()));
        }

        monoio::time::sleep(WARMUP).await;
        let (n0, cpu0, t0) = (count.get(), cpu_us(), Instant::now());
        monoio::time::sleep(Duration::from_secs_f64(a.secs)).await;
        let (n1, cpu1, secs) = (count.get(), cpu_us(), t0.elapsed().as_secs_f64());
        stop.set(true);

        if let Some(e) = failed.take() {
            return Err(format!("a connection failed: {e}"));
        }
        let n = n1 - n0;
        if n == 0 {
            return Err("no round trips completed".into());
        }
        // total_round_trips includes the warm-up, for callers that measure the server
        // over the client's whole life.
        println!(
            "rawtcp round_trips={n} secs={secs:.3} rtt_per_sec={:.0} client_cpu_us_per_rt={:.3} \
             total_round_trips={n1}",
            n as f64 / secs,
            (cpu1 - cpu0) / n as f64
        );
        Ok(())
    })
    // The ping tasks are still parked on their recvs; the process exits with them.
}

async fn ping(
    mut s: TcpStream,
    size: usize,
    count: Rc<Cell<u64>>,
    stop: Rc<Cell<bool>>,
    failed: Rc<Cell<Option<String>>>,
) {
    let mut buf: Box<[u8]> = vec![0x5a; size].into_boxed_slice();
    while !stop.get() {
        let (res, b) = s.write_all(buf).await;
        buf = b;
        if let Err(e) = res {
            failed.set(Some(format!("send: {e}")));
            return;
        }
        // read_exact fills the whole boxed slice: the echo of exactly one message.
        let (res, b) = s.read_exact(buf).await;
        buf = b;
        if let Err(e) = res {
            failed.set(Some(format!("recv: {e}")));
            return;
        }
        count.set(count.get() + 1);
    }
}

/// The open loop's counts, shared by every connection's tasks.
#[derive(Default)]
struct OpenCounts {
    sent: Cell<u64>,
    received: Cell<u64>,
    stop: Cell<bool>,
    failed: Cell<Option<String>>,
}

fn open_loop(a: ClientArgs, rate: f64) -> Res<()> {
    if !rate.is_finite() || rate <= 0.0 {
        return Err("RATE must be positive".into());
    }
    pin(a.core)?;
    let mut rt = runtime()?;
    rt.block_on(async move {
        use monoio::io::Splitable;
        let streams = connect_all(&a).await?;
        let counts = Rc::new(OpenCounts::default());
        let period = Duration::from_secs_f64(1.0 / rate);
        let start = monoio::time::Instant::now();
        for (i, s) in streams.into_iter().enumerate() {
            let (rd, wr) = s.into_split();
            let phase = period.mul_f64(i as f64 / a.conns as f64);
            monoio::spawn(open_reader(rd, counts.clone()));
            monoio::spawn(open_writer(
                wr,
                a.size,
                start + phase,
                period,
                counts.clone(),
            ));
        }

        monoio::time::sleep(WARMUP).await;
        let (s0, r0, cpu0, t0) = (
            counts.sent.get(),
            counts.received.get(),
            cpu_us(),
            Instant::now(),
        );
        monoio::time::sleep(Duration::from_secs_f64(a.secs)).await;
        let (s1, r1, cpu1) = (counts.sent.get(), counts.received.get(), cpu_us());
        let secs = t0.elapsed().as_secs_f64();
        counts.stop.set(true);

        if let Some(e) = counts.failed.take() {
            return Err(format!("a connection failed: {e}"));
        }
        let n = s1 - s0;
        if n == 0 {
            return Err("no messages sent".into());
        }
        println!(
            "rawtcp open sent={n} received_bytes={} secs={secs:.3} msgs_per_sec={:.0} \
             client_cpu_us_per_msg={:.3}",
            r1 - r0,
            n as f64 / secs,
            (cpu1 - cpu0) / n as f64
        );
        Ok(())
    })
}

/// Sends one `size`-byte write at `first`, then every `period`, whatever the echoes
/// do; one that fell behind sends each late message in its own write.
async fn open_writer(
    mut wr: monoio::net::tcp::TcpOwnedWriteHalf,
    size: usize,
    first: monoio::time::Instant,
    period: Duration,
    counts: Rc<OpenCounts>,
) {
    let mut buf: Box<[u8]> = vec![0x5a; size].into_boxed_slice();
    let mut next = first;
    while !counts.stop.get() {
        monoio::time::sleep_until(next).await;
        let (res, b) = wr.write_all(buf).await;
        buf = b;
        if let Err(e) = res {
            counts.failed.set(Some(format!("send: {e}")));
            return;
        }
        counts.sent.set(counts.sent.get() + 1);
        next += period;
    }
}

/// Takes the echoes back (bytes counted) until the connection ends.
async fn open_reader(mut rd: monoio::net::tcp::TcpOwnedReadHalf, counts: Rc<OpenCounts>) {
    let mut buf = Vec::with_capacity(SERVER_BUF);
    loop {
        buf.clear();
        let (res, b) = rd.read(buf).await;
        buf = b;
        match res {
            Ok(0) => return,
            Ok(n) => counts.received.set(counts.received.get() + n as u64),
            Err(e) => {
                if !counts.stop.get() {
                    counts.failed.set(Some(format!("recv: {e}")));
                }
                return;
            }
        }
    }
}
