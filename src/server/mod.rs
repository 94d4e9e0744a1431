//! The built-in target: a thread-per-core WebSocket server, echo or broadcast.
//!
//! Every run, test and benchmark needs a known target, and `wsherd run` with no URL
//! needs one in-process. Each shard is one pinned monoio runtime with its own
//! SO_REUSEPORT listener on the same address, so the kernel spreads connections
//! across shards, and across several `wsherd serve` processes on one port the same
//! way. In echo mode shards never talk to each other; in broadcast mode (see
//! `broadcast`) each message crosses to the other shards once, through one inbox per
//! shard (a broadcast reaches the clients of one process only). It must be fast
//! enough that loading it measures the client, not the server.
//!
//! It must also be cheap to hold: a held idle connection costs its task (a future of
//! about 500 bytes in echo mode, no timer inside) and its socket, and borrows a shard
//! buffer only while it has bytes to handle (see `read`).
//!
//! This file is the top of the server: start, the listeners and accept loops, the
//! handle and its totals. No other file of the server imports it; the state the
//! connection tasks share (`ServerShard`) is in shard.rs, which lists the order.

mod broadcast;
mod conn;
mod frames;
mod hub;
mod read;
mod shard;
mod timing;

pub use shard::{ServerFaults, ServerTotals, DEFAULT_MAX_MESSAGE};
pub use timing::ServerHistograms;

use crate::error::{Error, Result};
use crate::vocab::kinds::ServeMode;
use shard::ServerShard;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A validated `wsherd serve` (built by the configuration stage,
/// `ServeConfig::from_cli`, or by the engine for the embedded server).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub mode: crate::vocab::kinds::ServeMode,
    /// Broadcast: bounded queue per receiver, in messages.
    pub queue: usize,
    pub cores: Vec<usize>,
    pub io_driver: crate::vocab::kinds::IoDriver,
    pub quiet: bool,
    pub faults: ServerFaults,
    /// Where to serve Prometheus metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// Serve TLS (wss://) with this config.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Accept permessage-deflate (echo mode).
    pub deflate: bool,
    /// `--reuse-port`: join other servers already listening on `addr`; without
    /// it, an address in use is refused.
    pub reuse_port: bool,
    /// `--max-message`: the largest frame, and message held whole, a client may
    /// send.
    pub max_message: usize,
}

/// Cross-thread counters the shards publish once a tick (not per message).
struct Published {
    open: AtomicU64,
    connections: AtomicU64,
    messages: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    /// Connections upgraded, per shard.
    shard_connections: Vec<AtomicU64>,
    /// With metrics: what the shards' timers recorded since the last `take`
    /// (added once a second by each shard's watcher).
    hists: std::sync::Mutex<ServerHistograms>,
}

impl Published {
    fn new(shards: usize) -> Published {
        Published {
            open: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            shard_connections: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            hists: Default::default(),
        }
    }
}

/// A running server; `stop` ends it and joins its threads.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<std::result::Result<&'static str, String>>>,
    published: Arc<Published>,
    drivers: Vec<&'static str>,
    mode: ServeMode,
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

    /// Connections upgraded so far, per shard (updated ten times a second).
    pub fn shard_connections(&self) -> Vec<u64> {
        self.published
            .shard_connections
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// What the shards' timers recorded since the last call (with metrics on;
    /// empty otherwise): the watchers add their shard's once a second.
    pub fn take_histograms(&self) -> ServerHistograms {
        let mut h = self
            .published
            .hists
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *h)
    }

    /// Echo or broadcast.
    pub fn mode(&self) -> ServeMode {
        self.mode
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
            published: self.published.published.load(Ordering::Relaxed),
            delivered: self.published.delivered.load(Ordering::Relaxed),
            dropped: self.published.dropped.load(Ordering::Relaxed),
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

/// Binds `addr` without SO_REUSEPORT, and lets it go: fails with AddrInUse
/// when another socket holds it.
fn probe(addr: SocketAddr) -> std::io::Result<()> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())
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

/// Binds one listener per shard and starts the shards. Every listener sets
/// SO_REUSEPORT, so other `wsherd serve` processes (same user) can bind the same
/// address and share its connections.
pub fn start(cfg: ServeConfig) -> Result<ServerHandle> {
    let bind_err = |e: std::io::Error| Error::Bind {
        addr: cfg.addr.to_string(),
        why: if e.kind() == std::io::ErrorKind::AddrInUse {
            // Another `wsherd serve` would have joined (SO_REUSEPORT): this one did
            // not set it, or belongs to another user.
            format!("{e}; another program listens there, pick another --addr")
        } else {
            e.to_string()
        },
    };
    if !cfg.reuse_port && cfg.addr.port() != 0 {
        // The shards' listeners set SO_REUSEPORT (they share the address among
        // themselves), which would let this process join another's: a plain
        // bind first tells whether anything listens there already.
        probe(cfg.addr).map_err(|e| Error::Bind {
            addr: cfg.addr.to_string(),
            why: if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "{e}: something already listens there (another wsherd serve?); pick another --addr, \
                     or give every server --reuse-port to share it on purpose"
                )
            } else {
                e.to_string()
            },
        })?;
    }
    let first = listener(cfg.addr).map_err(bind_err)?;
    let addr = first.local_addr().map_err(bind_err)?;
    let mut listeners = vec![first];
    for _ in 1..cfg.cores.len() {
        listeners.push(listener(addr).map_err(bind_err)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Published::new(cfg.cores.len()));
    // --max-connections: one count for every shard of this process.
    let held = Arc::new(AtomicU64::new(0));
    let origin = Instant::now();
    // Broadcast: the cross-shard inboxes, and each shard's doorbell.
    let mut bells: Vec<Option<(Arc<hub::Hub>, hub::Bell)>> = match cfg.mode {
        ServeMode::Echo => cfg.cores.iter().map(|_| None).collect(),
        ServeMode::Broadcast => {
            let (hub, bells) = hub::Hub::new(cfg.cores.len(), cfg.queue)
                .map_err(|e| Error::Runtime(format!("broadcast doorbells: {e}")))?;
            bells.into_iter().map(|b| Some((hub.clone(), b))).collect()
        }
    };
    let mut handle = ServerHandle {
        addr,
        stop: stop.clone(),
        threads: Vec::new(),
        published: published.clone(),
        drivers: Vec::new(),
        mode: cfg.mode,
    };
    for (i, (l, &core)) in listeners.into_iter().zip(&cfg.cores).enumerate() {
        let stop = stop.clone();
        let published = published.clone();
        let driver = cfg.io_driver;
        let setup = ShardSetup {
            index: i,
            faults: cfg.faults.clone(),
            held: held.clone(),
            origin,
            queue: cfg.queue,
            broadcast: bells[i].take(),
            timing: cfg.metrics_addr.is_some(),
            tls: cfg.tls.clone(),
            deflate: cfg.deflate,
            max_message: cfg.max_message,
        };
        let t = std::thread::Builder::new()
            .name(format!("wsherd-serve-{i}"))
            .spawn(move || {
                crate::rt::pin_to_core(core);
                crate::rt::block_on(driver, |_| serve_shard(setup, l, stop, published))
                    .map(|(_, d)| d)
            })
            // Dropping `handle` stops and joins the shards already started.
            .map_err(|e| Error::Runtime(format!("server thread: {e}")))?;
        handle.threads.push(t);
    }
    Ok(handle)
}

/// What one shard thread starts from.
struct ShardSetup {
    index: usize,
    faults: ServerFaults,
    /// Connections held by all shards (counted with --max-connections only).
    held: Arc<AtomicU64>,
    /// When the server started (the stall schedule counts from here).
    origin: Instant,
    queue: usize,
    /// Broadcast mode: the hub and this shard's doorbell.
    broadcast: Option<(Arc<hub::Hub>, hub::Bell)>,
    /// Record handling and fan-out times (for --metrics-addr).
    timing: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
    deflate: bool,
    max_message: usize,
}

/// The shard's part in the handle's totals (`ServerShard` itself is in shard.rs).
impl ServerShard {
    /// Adds what changed since the last call to the cross-thread counters.
    fn publish(&self, to: &Published) {
        let b = self.bcast.as_ref();
        let now = ServerTotals {
            connections: self.connections.get(),
            messages: self.messages.get(),
            rejected: self.rejected.get(),
            errors: self.errors.get(),
            published: b.map_or(0, |b| b.published.get()),
            delivered: b.map_or(0, |b| b.delivered.get()),
            dropped: b.map_or(0, |b| b.dropped.get()),
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
        to.published
            .fetch_add(now.published - prev.published, Ordering::Relaxed);
        to.delivered
            .fetch_add(now.delivered - prev.delivered, Ordering::Relaxed);
        to.dropped
            .fetch_add(now.dropped - prev.dropped, Ordering::Relaxed);
        to.shard_connections[self.index]
            .fetch_add(now.connections - prev.connections, Ordering::Relaxed);
        if open >= *prev_open {
            to.open.fetch_add(open - prev_open, Ordering::Relaxed);
        } else {
            to.open.fetch_sub(prev_open - open, Ordering::Relaxed);
        }
        *last = (now, open);
    }
}

async fn serve_shard(
    setup: ShardSetup,
    std_listener: std::net::TcpListener,
    stop: Arc<AtomicBool>,
    published: Arc<Published>,
) {
    let listener = match monoio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(_) => return,
    };
    let ShardSetup {
        index,
        faults,
        held,
        origin,
        queue,
        broadcast: bcast,
        timing,
        tls,
        deflate,
        max_message,
    } = setup;
    let (bcast, bell) = match bcast {
        Some((hub, bell)) => (Some(hub::Local::new(index, hub, queue)), Some(bell)),
        None => (None, None),
    };
    let mut shard = ServerShard::new(index, faults, held, origin, bcast);
    if timing {
        shard.timers = Some(timing::Timers::new());
    }
    shard.tls = tls;
    shard.deflate = deflate.then(Default::default);
    shard.max_message = max_message;
    let shard = Rc::new(shard);
    monoio::spawn(watch(shard.clone(), stop, published.clone()));
    if let Some(bell) = bell {
        monoio::spawn(broadcast::inbox_task(shard.clone(), bell));
    }
    let slot = shard.stop.slot();
    while let Some(accepted) = shard.stop.until(slot, listener.accept()).await {
        match accepted {
            Ok((stream, _)) => {
                shard.live.set(shard.live.get() + 1);
                let stream = crate::net::stream::Stream::plain(stream);
                if shard.bcast.is_some() {
                    monoio::spawn(broadcast::connection(shard.clone(), stream));
                } else {
                    monoio::spawn(conn::connection(shard.clone(), stream));
                }
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

/// Polls the stop flag and publishes counters, ten times a second; once a
/// second hands freed memory back (a burst of handshakes would otherwise stay
/// resident, `sys::release_freed_memory`).
async fn watch(shard: Rc<ServerShard>, stop: Arc<AtomicBool>, published: Arc<Published>) {
    let mut tick = 0u64;
    loop {
        monoio::time::sleep(Duration::from_millis(100)).await;
        shard.publish(&published);
        tick += 1;
        if tick.is_multiple_of(10) {
            crate::sys::release_freed_memory();
            if let Some(t) = &shard.timers {
                t.flush(&published.hists);
            }
        }
        if stop.load(Ordering::Relaxed) {
            shard.stop.trigger();
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A held connection's memory is mostly its task, whose size is the size of its
    /// future: keep timers (hundreds of bytes, 128-byte aligned) out of it.
    #[test]
    fn connection_futures_stay_small() {
        let sizes = crate::rt::block_on(crate::vocab::kinds::IoDriver::Epoll, |_| async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = || {
                let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
                crate::net::stream::Stream::plain(monoio::net::TcpStream::from_std(s).unwrap())
            };
            let (hub, _bells) = hub::Hub::new(1, 16).unwrap();
            let local = hub::Local::new(0, hub, 16);
            let echo = Rc::new(ServerShard::new(
                0,
                Default::default(),
                Default::default(),
                Instant::now(),
                None,
            ));
            let bcast = Rc::new(ServerShard::new(
                0,
                Default::default(),
                Default::default(),
                Instant::now(),
                Some(local),
            ));
            let e = conn::connection(echo, stream());
            let b = broadcast::connection(bcast, stream());
            (
                (std::mem::size_of_val(&e), std::mem::align_of_val(&e)),
                (std::mem::size_of_val(&b), std::mem::align_of_val(&b)),
            )
        })
        .unwrap()
        .0;
        eprintln!(
            "echo connection future {:?}, broadcast {:?} (size, align)",
            sizes.0, sizes.1
        );
        // Measured 568 and 1240 bytes (rustc 1.95, debug build; 560 and 1144 before
        // the stream could carry TLS); with timers inline
        // they were 1664 and 2048, 128-byte aligned.
        assert!(sizes.0 .0 <= 640 && sizes.0 .1 <= 16, "echo {:?}", sizes.0);
        assert!(
            sizes.1 .0 <= 1280 && sizes.1 .1 <= 16,
            "broadcast {:?}",
            sizes.1
        );
    }
}
