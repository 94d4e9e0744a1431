//! The built-in target: a thread-per-core WebSocket echo server.
//!
//! Every run, test and benchmark needs a known target, and `wsherd run` with no URL
//! needs one in-process. Each shard is one pinned monoio runtime with its own
//! SO_REUSEPORT listener on the same address, so the kernel spreads connections
//! across shards and shards never talk to each other. It must be fast enough that
//! loading it measures the client, not the server.

mod conn;

pub use crate::config::{ServeConfig, ServerFaults};
use crate::error::{Error, Result};
use crate::shard::pool::BufPool;
use crate::shard::stop::StopSignal;
use socket2::{Domain, Protocol, Socket, Type};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Read size of the server: a busy connection holds one while it waits, so it is
/// modest; a pipelined flood simply takes a few reads.
const SERVER_READ_BUF: usize = 8 * 1024;

/// Totals kept per server shard and summed when the server stops.
#[derive(Debug, Default, Clone)]
pub struct ServerTotals {
    pub connections: u64,
    pub messages: u64,
    pub rejected: u64,
    pub errors: u64,
}

/// Cross-thread counters the shards publish once a tick (not per message).
#[derive(Default)]
struct Published {
    open: AtomicU64,
    connections: AtomicU64,
    messages: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
}

/// A running server; `stop` ends it and joins its threads.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<std::result::Result<&'static str, String>>>,
    published: Arc<Published>,
    drivers: Vec<&'static str>,
}

impl ServerHandle {
    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Open connections now (updated ten times a second).
    pub fn open_connections(&self) -> u64 {
        self.published.open.load(Ordering::Relaxed)
    }

    /// Asks the shards to stop without waiting.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn totals(&self) -> ServerTotals {
        ServerTotals {
            connections: self.published.connections.load(Ordering::Relaxed),
            messages: self.published.messages.load(Ordering::Relaxed),
            rejected: self.published.rejected.load(Ordering::Relaxed),
            errors: self.published.errors.load(Ordering::Relaxed),
        }
    }

    /// Stops the server, closing its connections, and joins its threads.
    pub fn stop(mut self) -> ServerTotals {
        self.request_stop();
        self.join()
    }

    fn join(&mut self) -> ServerTotals {
        for t in self.threads.drain(..) {
            if let Ok(Ok(d)) = t.join() {
                self.drivers.push(d);
            }
        }
        self.totals()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.request_stop();
        self.join();
    }
}

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// Binds one listener per shard and starts the shards.
pub fn start(cfg: ServeConfig) -> Result<ServerHandle> {
    let bind_err = |e: std::io::Error| Error::Bind {
        addr: cfg.addr.to_string(),
        why: if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("{e}; another process listens there, pick another --addr")
        } else {
            e.to_string()
        },
    };
    let first = listener(cfg.addr).map_err(bind_err)?;
    let addr = first.local_addr().map_err(bind_err)?;
    let mut listeners = vec![first];
    for _ in 1..cfg.cores.len() {
        listeners.push(listener(addr).map_err(bind_err)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Published::default());
    let origin = Instant::now();
    let mut threads = Vec::new();
    for (i, (l, &core)) in listeners.into_iter().zip(&cfg.cores).enumerate() {
        let stop = stop.clone();
        let published = published.clone();
        let driver = cfg.io_driver;
        let faults = cfg.faults.clone();
        let t = std::thread::Builder::new()
            .name(format!("wsherd-serve-{i}"))
            .spawn(move || {
                crate::rt::pin_to_core(core);
                crate::rt::block_on(driver, |_| {
                    serve_shard(i, l, stop, published, faults, origin)
                })
                .map(|(_, d)| d)
            })
            .map_err(|e| Error::Runtime(format!("server thread: {e}")))?;
        threads.push(t);
    }
    Ok(ServerHandle {
        addr,
        stop,
        threads,
        published,
        drivers: Vec::new(),
    })
}

/// `wsherd serve`: runs until Ctrl-C, then prints totals.
pub fn serve_blocking(cfg: ServeConfig) -> Result<ServerTotals> {
    let quiet = cfg.quiet;
    let cores = cfg.cores.clone();
    let handle = start(cfg)?;
    let interrupt = crate::sys::interrupt_flag();
    crate::sys::raise_nofile();
    if !quiet {
        eprintln!(
            "wsherd serve: echo on ws://{}/ with {} shard{} on cores {:?}; Ctrl-C stops",
            handle.addr(),
            cores.len(),
            if cores.len() == 1 { "" } else { "s" },
            cores
        );
    }
    let mut last_print = Instant::now();
    while !interrupt.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if !quiet && last_print.elapsed() >= Duration::from_secs(10) {
            let t = handle.totals();
            eprintln!(
                "wsherd serve: open {}  connections {}  messages {}  errors {}",
                handle.open_connections(),
                t.connections,
                t.messages,
                t.errors
            );
            last_print = Instant::now();
        }
    }
    let totals = handle.stop();
    if !quiet {
        eprintln!(
            "wsherd serve: stopped; {} connections, {} messages echoed, {} rejected, {} errors",
            totals.connections, totals.messages, totals.rejected, totals.errors
        );
    }
    Ok(totals)
}

/// State of one server shard, shared by its tasks.
pub(crate) struct ServerShard {
    pub stop: StopSignal,
    /// Read buffers (borrowed only by connections with data ready).
    pub pool: BufPool,
    /// Write buffers: small, grown by what is written.
    pub wpool: BufPool,
    pub open: Cell<u64>,
    pub live: Cell<u64>,
    pub connections: Cell<u64>,
    pub messages: Cell<u64>,
    pub rejected: Cell<u64>,
    pub errors: Cell<u64>,
    pub faults: ServerFaults,
    /// When the server started (the stall schedule counts from here).
    pub origin: Instant,
    /// What was last added to the cross-thread counters.
    published_last: std::cell::RefCell<(ServerTotals, u64)>,
}

impl ServerShard {
    /// How long answers must wait now: the configured delay, or the rest of a stall.
    pub fn hold_back(&self, now: Instant) -> Option<Duration> {
        let stall = self.faults.stall.and_then(|(stall, every)| {
            let into = now.duration_since(self.origin).as_nanos() % every.as_nanos();
            let into = Duration::from_nanos(into as u64);
            // Stalls take the first `stall` of every period after the first one.
            (now.duration_since(self.origin) >= every && into < stall).then(|| stall - into)
        });
        match (stall, self.faults.delay) {
            (Some(s), Some(d)) => Some(s.max(d)),
            (s, d) => s.or(d),
        }
    }

    /// Adds what changed since the last call to the cross-thread counters.
    fn publish(&self, to: &Published) {
        let now = ServerTotals {
            connections: self.connections.get(),
            messages: self.messages.get(),
            rejected: self.rejected.get(),
            errors: self.errors.get(),
        };
        let open = self.open.get();
        let mut last = self.published_last.borrow_mut();
        let (prev, prev_open) = &*last;
        to.connections
            .fetch_add(now.connections - prev.connections, Ordering::Relaxed);
        to.messages
            .fetch_add(now.messages - prev.messages, Ordering::Relaxed);
        to.rejected
            .fetch_add(now.rejected - prev.rejected, Ordering::Relaxed);
        to.errors
            .fetch_add(now.errors - prev.errors, Ordering::Relaxed);
        if open >= *prev_open {
            to.open.fetch_add(open - prev_open, Ordering::Relaxed);
        } else {
            to.open.fetch_sub(prev_open - open, Ordering::Relaxed);
        }
        *last = (now, open);
    }
}

async fn serve_shard(
    _index: usize,
    std_listener: std::net::TcpListener,
    stop: Arc<AtomicBool>,
    published: Arc<Published>,
    faults: ServerFaults,
    origin: Instant,
) {
    let listener = match monoio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(_) => return,
    };
    let shard = Rc::new(ServerShard {
        stop: StopSignal::default(),
        pool: BufPool::new(SERVER_READ_BUF, 4 * SERVER_READ_BUF),
        wpool: BufPool::for_writes(),
        open: Cell::new(0),
        live: Cell::new(0),
        connections: Cell::new(0),
        messages: Cell::new(0),
        rejected: Cell::new(0),
        errors: Cell::new(0),
        published_last: Default::default(),
        faults,
        origin,
    });
    monoio::spawn(watch(shard.clone(), stop, published.clone()));
    let slot = shard.stop.slot();
    while let Some(accepted) = shard.stop.until(slot, listener.accept()).await {
        match accepted {
            Ok((stream, _)) => {
                shard.live.set(shard.live.get() + 1);
                monoio::spawn(conn::connection(shard.clone(), stream));
            }
            Err(_) => {
                // EMFILE and friends: back off briefly instead of spinning.
                shard.errors.set(shard.errors.get() + 1);
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    // Let connections send their close frames and finish (bounded).
    let until = Instant::now() + Duration::from_secs(2);
    while shard.live.get() > 0 && Instant::now() < until {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    shard.open.set(0);
    shard.publish(&published);
}

/// Polls the stop flag and publishes counters, ten times a second.
async fn watch(shard: Rc<ServerShard>, stop: Arc<AtomicBool>, published: Arc<Published>) {
    loop {
        monoio::time::sleep(Duration::from_millis(100)).await;
        shard.publish(&published);
        if stop.load(Ordering::Relaxed) {
            shard.stop.trigger();
            break;
        }
    }
}
