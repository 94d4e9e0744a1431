//! Raw TCP ping-pong over monoio, tokio or glommio: why wsherd runs on monoio.
//!
//! Both sides run the same runtime, each on one thread pinned to its own core, in two
//! processes: the server (a child of this process unless `--connect` is given) echoes
//! whatever it reads; the client keeps one message in flight on each of `--conns`
//! connections (`write_all`, then `read_exact` of the echo), and after a warm-up counts
//! round trips for `--secs`. No framing, no histograms, no per-message timing: the
//! same closed loop as wsherd's `benches/rawtcp.rs` (monoio only), so the monoio
//! figures here and there compare.
//!
//! What differs between the runtimes is how a socket operation reaches the kernel:
//!
//! - monoio 0.2 (io_uring driver): recv and send are io_uring SQEs, submitted and
//!   reaped in batches: with many connections, one `io_uring_enter` for many
//!   operations.
//! - tokio 1 (current-thread runtime): epoll readiness, then a `recvfrom`/`sendto`
//!   syscall per operation (and a read that returns EAGAIN before parking).
//! - glommio 0.9: a `recv`/`send` syscall (MSG_DONTWAIT) per operation; io_uring only
//!   to poll for readiness when that syscall would block.
//!
//! Figures printed (client side; the process's own CPU time is read with
//! getrusage, over the measured period only):
//!
//! ```text
//! result runtime=R conns=N size=B secs=S round_trips=N rtt_per_sec=X
//!        client_cpu_us_per_rt=Y client_proc_cpu_us_per_rt=Z server_cpu_us_per_rt=W
//!        total_round_trips=T
//! ```
//!
//! (one line). `client_cpu_us_per_rt` is the client runtime thread's CPU
//! (`RUSAGE_THREAD`), `client_proc_cpu_us_per_rt` the whole client process's
//! (`RUSAGE_SELF`: glommio's helper thread and io_uring's kernel workers too),
//! `server_cpu_us_per_rt` the server process's (from `/proc/PID/stat`, absent with
//! `--connect`). `total_round_trips` also counts the warm-up, for callers that measure
//! the client over its whole life (`strace -c`).
//!
//! Usage (see `--help`): `runtimes monoio --conns 100 --secs 5`.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Server read buffer per connection; larger than any message sent here, so a message
/// is normally echoed with one read and one write.
const SERVER_BUF: usize = 16 * 1024;

/// monoio's io_uring submission queue entries: as `benches/rawtcp.rs`, enough for one
/// recv or send per connection.
const MONOIO_ENTRIES: u32 = 4096;

/// glommio allocates its "io memory" (buffers for storage I/O) up front and registers
/// it with io_uring; registered buffers are pinned and count against RLIMIT_MEMLOCK
/// for a process without CAP_IPC_LOCK. The default, 10 MiB, is more than the 8 MiB
/// limit common on Linux hosts (ours included), so an unprivileged run could not
/// register it (glommio then logs a warning and goes on without). Sockets never use
/// that memory (glommio's recv and send are plain syscalls into our own buffers), so
/// 512 KiB, which fits: checked as an unprivileged user with the 8 MiB limit.
const GLOMMIO_IO_MEMORY: usize = 512 * 1024;

const USAGE: &str = "\
usage: runtimes RUNTIME [--conns N] [--secs S] [--warmup S] [--size BYTES]
                        [--client-core C] [--server-core C]
       runtimes RUNTIME --server ADDR [--server-core C]
       runtimes RUNTIME --connect ADDR [--conns N] [--secs S] [--warmup S] [--size BYTES]
                        [--client-core C]

RUNTIME is monoio (io_uring driver), tokio (current-thread, epoll) or glommio.

With neither --server nor --connect, starts the server as a child process on
127.0.0.1 (an ephemeral port) pinned to --server-core, runs the client pinned to
--client-core, and prints the result. --server ADDR runs only the server (port 0
picks one; it prints `listening ADDR` once bound); --connect ADDR runs only the
client, against a server started that way (used by scripts/bench-runtimes.sh to
trace the client alone).

  --conns N        connections, one message in flight on each (default 100)
  --secs S         measured period in seconds (default 5)
  --warmup S       round trips before the measured period, not counted (default 0.5)
  --size BYTES     message size (default 64)
  --client-core C  CPU of the client thread (default 0)
  --server-core C  CPU of the server thread (default 1)";

type Res<T> = Result<T, String>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Runtime {
    Monoio,
    Tokio,
    Glommio,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Monoio => "monoio",
            Runtime::Tokio => "tokio",
            Runtime::Glommio => "glommio",
        }
    }
}

enum Mode {
    /// Server as a child process, client here.
    Both,
    Server(SocketAddr),
    Connect(SocketAddr),
}

struct Opts {
    runtime: Runtime,
    mode: Mode,
    conns: usize,
    secs: f64,
    warmup: f64,
    size: usize,
    client_core: usize,
    server_core: usize,
}

fn num<T: std::str::FromStr>(what: &str, s: &str) -> Res<T> {
    s.parse().map_err(|_| format!("bad {what}: {s:?}"))
}

fn parse(args: &[String]) -> Res<Opts> {
    let mut o = Opts {
        runtime: Runtime::Monoio,
        mode: Mode::Both,
        conns: 100,
        secs: 5.0,
        warmup: 0.5,
        size: 64,
        client_core: 0,
        server_core: 1,
    };
    let mut runtime = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "monoio" => runtime = Some(Runtime::Monoio),
            "tokio" => runtime = Some(Runtime::Tokio),
            "glommio" => runtime = Some(Runtime::Glommio),
            "--conns" => o.conns = num("--conns", &val(a)?)?,
            "--secs" => o.secs = num("--secs", &val(a)?)?,
            "--warmup" => o.warmup = num("--warmup", &val(a)?)?,
            "--size" => o.size = num("--size", &val(a)?)?,
            "--client-core" => o.client_core = num("--client-core", &val(a)?)?,
            "--server-core" => o.server_core = num("--server-core", &val(a)?)?,
            "--server" => o.mode = Mode::Server(num("--server", &val(a)?)?),
            "--connect" => o.mode = Mode::Connect(num("--connect", &val(a)?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    o.runtime = runtime.ok_or("give a runtime: monoio, tokio or glommio")?;
    if o.conns == 0 || o.size == 0 {
        return Err("--conns and --size must be positive".into());
    }
    if !(o.secs.is_finite() && o.secs > 0.0 && o.warmup.is_finite() && o.warmup >= 0.0) {
        return Err("--secs must be positive and --warmup not negative".into());
    }
    if matches!(o.mode, Mode::Both) && o.client_core == o.server_core {
        return Err("client and server must be on different cores".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("runtimes: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => {
            let _ = std::io::stdout().flush();
            // The client's connection tasks are still parked on their reads, and
            // glommio's executor would wait for its sources on drop: leave them all
            // to the process's exit.
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("runtimes: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: &Opts) -> Res<()> {
    match o.mode {
        Mode::Server(addr) => match o.runtime {
            Runtime::Monoio => mono::server(addr, o.server_core),
            Runtime::Tokio => tok::server(addr, o.server_core),
            Runtime::Glommio => glom::server(addr, o.server_core),
        },
        Mode::Connect(addr) => {
            let m = client(o, addr, None)?;
            report(o, &m);
            Ok(())
        }
        Mode::Both => {
            let (mut child, addr) = spawn_server(o)?;
            let m = client(o, addr, Some(child.id()));
            let _ = child.kill();
            let _ = child.wait();
            let m = m?;
            report(o, &m);
            Ok(())
        }
    }
}

fn client(o: &Opts, addr: SocketAddr, server_pid: Option<u32>) -> Res<Measured> {
    let a = ClientArgs {
        addr,
        core: o.client_core,
        conns: o.conns,
        size: o.size,
        warmup: Duration::from_secs_f64(o.warmup),
        secs: Duration::from_secs_f64(o.secs),
        server_pid,
    };
    match o.runtime {
        Runtime::Monoio => mono::client(a),
        Runtime::Tokio => tok::client(a),
        Runtime::Glommio => glom::client(a),
    }
}

/// Start this same binary as the server, on an ephemeral loopback port, and wait for
/// its `listening ADDR` line.
fn spawn_server(o: &Opts) -> Res<(Child, SocketAddr)> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        o.runtime.name(),
        "--server",
        "127.0.0.1:0",
        "--server-core",
        &o.server_core.to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; the server dies with us, whatever happens.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let out = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    let read = BufReader::new(out).read_line(&mut line);
    let addr = match read {
        Ok(n) if n > 0 => line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok()),
        _ => None,
    };
    match addr {
        Some(a) => Ok((child, a)),
        None => {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            Err(format!("the server did not start ({status})"))
        }
    }
}

struct ClientArgs {
    addr: SocketAddr,
    core: usize,
    conns: usize,
    size: usize,
    warmup: Duration,
    secs: Duration,
    server_pid: Option<u32>,
}

/// What one client run measured.
struct Measured {
    round_trips: u64,
    total_round_trips: u64,
    secs: f64,
    thread_cpu_us: f64,
    proc_cpu_us: f64,
    server_cpu_us: Option<f64>,
}

fn report(o: &Opts, m: &Measured) {
    let n = m.round_trips as f64;
    let rate = n / m.secs;
    let thread = m.thread_cpu_us / n;
    let proc_ = m.proc_cpu_us / n;
    let server = m.server_cpu_us.map(|s| s / n);
    println!(
        "{}: {} connection{}, {}-byte messages, {:.2} s measured after {} s of warm-up, \
         client on CPU {}{}",
        o.runtime.name(),
        o.conns,
        if o.conns == 1 { "" } else { "s" },
        o.size,
        m.secs,
        o.warmup,
        o.client_core,
        match o.mode {
            Mode::Both => format!(", server on CPU {}", o.server_core),
            _ => String::new(),
        }
    );
    println!(
        "  {rate:.0} round trips/s; client CPU {thread:.2} µs per round trip (its process: \
         {proc_:.2}){}",
        server
            .map(|s| format!("; server CPU {s:.2} µs per round trip"))
            .unwrap_or_default()
    );
    println!(
        "result runtime={} conns={} size={} secs={:.3} round_trips={} rtt_per_sec={rate:.0} \
         client_cpu_us_per_rt={thread:.3} client_proc_cpu_us_per_rt={proc_:.3}{} \
         total_round_trips={}",
        o.runtime.name(),
        o.conns,
        o.size,
        m.secs,
        m.round_trips,
        server
            .map(|s| format!(" server_cpu_us_per_rt={s:.3}"))
            .unwrap_or_default(),
        m.total_round_trips
    );
}

// ------------------------------------------------------------------ measurement --

fn rusage_us(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime of another process, in µs (clock-tick resolution: 10 ms at the usual
/// 100 Hz, small against a measured period of seconds).
fn proc_cpu_us(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks * 1e6 / hz)
}

/// One reading at a boundary of the measured period. Taken on the client's runtime
/// thread, so RUSAGE_THREAD is that thread.
struct Mark {
    count: u64,
    at: Instant,
    thread_us: f64,
    proc_us: f64,
    server_us: Option<f64>,
}

impl Mark {
    fn now(count: u64, server_pid: Option<u32>) -> Mark {
        Mark {
            count,
            at: Instant::now(),
            thread_us: rusage_us(libc::RUSAGE_THREAD),
            proc_us: rusage_us(libc::RUSAGE_SELF),
            server_us: server_pid.and_then(proc_cpu_us),
        }
    }

    fn until(&self, end: &Mark) -> Measured {
        Measured {
            round_trips: end.count - self.count,
            total_round_trips: end.count,
            secs: end.at.duration_since(self.at).as_secs_f64(),
            thread_cpu_us: end.thread_us - self.thread_us,
            proc_cpu_us: end.proc_us - self.proc_us,
            server_cpu_us: match (self.server_us, end.server_us) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
        }
    }
}

/// State the client's connection tasks share (one thread: Rc and Cell).
#[derive(Clone, Default)]
struct Shared {
    count: Rc<Cell<u64>>,
    failed: Rc<Cell<Option<String>>>,
}

impl Shared {
    fn fail(&self, what: &str, e: std::io::Error) {
        self.failed.set(Some(format!("{what}: {e}")));
    }

    /// The result, once the measured period is over.
    fn finish(&self, start: Mark, end: Mark) -> Res<Measured> {
        if let Some(e) = self.failed.take() {
            return Err(format!("a connection failed: {e}"));
        }
        let m = start.until(&end);
        if m.round_trips == 0 {
            return Err("no round trips completed".into());
        }
        Ok(m)
    }
}

// ---------------------------------------------------------------------- pinning --

/// Pin the calling thread to `core` (monoio and tokio; glommio pins its own).
fn pin(core: usize) -> Res<()> {
    let ids = core_affinity::get_core_ids().ok_or("cannot read the CPU set")?;
    let id = ids
        .into_iter()
        .find(|c| c.id == core)
        .ok_or_else(|| format!("core {core} is not in this process's CPU set"))?;
    if !core_affinity::set_for_current(id) {
        return Err(format!("cannot pin to core {core}"));
    }
    check_pinned(core)
}

/// The calling thread may run on `core` and nowhere else.
fn check_pinned(core: usize) -> Res<()> {
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    let n = unsafe { libc::CPU_COUNT(&set) };
    if n == 1 && unsafe { libc::CPU_ISSET(core, &set) } {
        Ok(())
    } else {
        Err(format!("this thread is not pinned to CPU {core} alone"))
    }
}

fn listening(addr: std::io::Result<SocketAddr>) -> Res<()> {
    let addr = addr.map_err(|e| format!("local address: {e}"))?;
    println!("listening {addr}");
    std::io::stdout().flush().map_err(|e| e.to_string())
}

// ----------------------------------------------------------------------- monoio --

mod mono {
    use super::*;
    use monoio::io::{AsyncReadRent, AsyncReadRentExt, AsyncWriteRentExt};
    use monoio::net::{TcpListener, TcpStream};

    type Rt = monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>;

    fn runtime(core: usize) -> Res<Rt> {
        pin(core)?;
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(MONOIO_ENTRIES)
            .enable_timer()
            .build()
            .map_err(|e| format!("cannot start monoio's io_uring runtime: {e}"))
    }

    pub fn server(addr: SocketAddr, core: usize) -> Res<()> {
        let mut rt = runtime(core)?;
        rt.block_on(async move {
            let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
            listening(listener.local_addr())?;
            loop {
                match listener.accept().await {
                    Ok((s, _)) => {
                        let _ = s.set_nodelay(true);
                        monoio::spawn(echo(s));
                    }
                    Err(e) => {
                        eprintln!("runtimes: accept: {e}");
                        monoio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
    }

    async fn echo(mut s: TcpStream) {
        let mut buf = Vec::with_capacity(SERVER_BUF);
        loop {
            buf.clear();
            let (res, b) = s.read(buf).await;
            buf = b;
            match res {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // `read` set the Vec's length to the bytes received: send exactly those.
            let (res, b) = s.write_all(buf).await;
            buf = b;
            if res.is_err() {
                return;
            }
        }
    }

    pub fn client(a: ClientArgs) -> Res<Measured> {
        let mut rt = runtime(a.core)?;
        let m = rt.block_on(async move {
            let sh = Shared::default();
            for i in 0..a.conns {
                let s = TcpStream::connect_addr(a.addr)
                    .await
                    .map_err(|e| format!("connect {} (connection {i}): {e}", a.addr))?;
                let _ = s.set_nodelay(true);
                monoio::spawn(ping(s, a.size, sh.clone()));
            }
            monoio::time::sleep(a.warmup).await;
            let start = Mark::now(sh.count.get(), a.server_pid);
            monoio::time::sleep(a.secs).await;
            let end = Mark::now(sh.count.get(), a.server_pid);
            sh.finish(start, end)
        });
        std::mem::forget(rt);
        m
    }

    async fn ping(mut s: TcpStream, size: usize, sh: Shared) {
        let mut buf: Box<[u8]> = vec![0x5a; size].into_boxed_slice();
        loop {
            let (res, b) = s.write_all(buf).await;
            buf = b;
            if let Err(e) = res {
                return sh.fail("send", e);
            }
            let (res, b) = s.read_exact(buf).await;
            buf = b;
            if let Err(e) = res {
                return sh.fail("recv", e);
            }
            sh.count.set(sh.count.get() + 1);
        }
    }
}

// ------------------------------------------------------------------------ tokio --

mod tok {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::LocalSet;

    fn runtime(core: usize) -> Res<tokio::runtime::Runtime> {
        pin(core)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start tokio's current-thread runtime: {e}"))
    }

    pub fn server(addr: SocketAddr, core: usize) -> Res<()> {
        let rt = runtime(core)?;
        // A LocalSet, so that tasks need not be Send, as on monoio and glommio.
        LocalSet::new().block_on(&rt, async move {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("bind {addr}: {e}"))?;
            listening(listener.local_addr())?;
            loop {
                match listener.accept().await {
                    Ok((s, _)) => {
                        let _ = s.set_nodelay(true);
                        tokio::task::spawn_local(echo(s));
                    }
                    Err(e) => {
                        eprintln!("runtimes: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
    }

    async fn echo(mut s: TcpStream) {
        let mut buf = vec![0u8; SERVER_BUF];
        loop {
            let n = match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if s.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    pub fn client(a: ClientArgs) -> Res<Measured> {
        let rt = runtime(a.core)?;
        let m = LocalSet::new().block_on(&rt, async move {
            let sh = Shared::default();
            for i in 0..a.conns {
                let s = TcpStream::connect(a.addr)
                    .await
                    .map_err(|e| format!("connect {} (connection {i}): {e}", a.addr))?;
                let _ = s.set_nodelay(true);
                tokio::task::spawn_local(ping(s, a.size, sh.clone()));
            }
            tokio::time::sleep(a.warmup).await;
            let start = Mark::now(sh.count.get(), a.server_pid);
            tokio::time::sleep(a.secs).await;
            let end = Mark::now(sh.count.get(), a.server_pid);
            sh.finish(start, end)
        });
        std::mem::forget(rt);
        m
    }

    async fn ping(mut s: TcpStream, size: usize, sh: Shared) {
        let mut buf = vec![0x5a; size];
        loop {
            if let Err(e) = s.write_all(&buf).await {
                return sh.fail("send", e);
            }
            if let Err(e) = s.read_exact(&mut buf).await {
                return sh.fail("recv", e);
            }
            sh.count.set(sh.count.get() + 1);
        }
    }
}

// ---------------------------------------------------------------------- glommio --

mod glom {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use glommio::net::{TcpListener, TcpStream};
    use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};

    /// An executor on the calling thread, which glommio pins to `core`.
    fn executor(core: usize) -> Res<LocalExecutor> {
        let ex = LocalExecutorBuilder::new(Placement::Fixed(core))
            .io_memory(GLOMMIO_IO_MEMORY)
            .make()
            .map_err(|e| format!("cannot start glommio's executor: {e}"))?;
        check_pinned(core)?;
        Ok(ex)
    }

    pub fn server(addr: SocketAddr, core: usize) -> Res<()> {
        let ex = executor(core)?;
        ex.run(async move {
            let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
            listening(listener.local_addr().map_err(std::io::Error::from))?;
            loop {
                match listener.accept().await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        glommio::spawn_local(echo(s)).detach();
                    }
                    Err(e) => {
                        eprintln!("runtimes: accept: {e}");
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
    }

    async fn echo(mut s: TcpStream) {
        let mut buf = vec![0u8; SERVER_BUF];
        loop {
            let n = match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if s.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    pub fn client(a: ClientArgs) -> Res<Measured> {
        let ex = executor(a.core)?;
        let m = ex.run(async move {
            let sh = Shared::default();
            for i in 0..a.conns {
                let s = TcpStream::connect(a.addr)
                    .await
                    .map_err(|e| format!("connect {} (connection {i}): {e}", a.addr))?;
                let _ = s.set_nodelay(true);
                glommio::spawn_local(ping(s, a.size, sh.clone())).detach();
            }
            glommio::timer::sleep(a.warmup).await;
            let start = Mark::now(sh.count.get(), a.server_pid);
            glommio::timer::sleep(a.secs).await;
            let end = Mark::now(sh.count.get(), a.server_pid);
            sh.finish(start, end)
        });
        std::mem::forget(ex);
        m
    }

    async fn ping(mut s: TcpStream, size: usize, sh: Shared) {
        let mut buf = vec![0x5a; size];
        loop {
            if let Err(e) = s.write_all(&buf).await {
                return sh.fail("send", e);
            }
            if let Err(e) = s.read_exact(&mut buf).await {
                return sh.fail("recv", e);
            }
            sh.count.set(sh.count.get() + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let o = parse(&args("tokio")).unwrap();
        assert_eq!(o.runtime, Runtime::Tokio);
        assert_eq!(
            (o.conns, o.size, o.client_core, o.server_core),
            (100, 64, 0, 1)
        );
        let o = parse(&args("glommio --conns 1 --secs 2 --size 128")).unwrap();
        assert_eq!(
            (o.runtime, o.conns, o.secs, o.size),
            (Runtime::Glommio, 1, 2.0, 128)
        );
        assert!(parse(&args("--conns 1")).is_err());
        assert!(parse(&args("monoio --conns 0")).is_err());
        assert!(parse(&args("monoio --client-core 1 --server-core 1")).is_err());
        assert!(parse(&args("monoio --bogus")).is_err());
    }
}
