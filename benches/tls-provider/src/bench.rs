//! The measurements: a rustls client and server in this one thread, their bytes
//! passed between them through two `Vec`s, no sockets. The client's own calls are
//! timed apart from the server's with the thread's CPU clock.

use crate::alloc;
use crate::certs::{KeyType, ServerCerts};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::ServerSessionMemoryCache;
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, ProtocolVersion,
    RootCertStore, ServerConfig, ServerConnection,
};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type Result<T> = std::result::Result<T, String>;

/// The two crypto providers of rustls 0.23.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Ring,
    AwsLcRs,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Ring => "ring",
            Provider::AwsLcRs => "aws-lc-rs",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        [Provider::Ring, Provider::AwsLcRs]
            .into_iter()
            .find(|p| p.name() == s)
    }

    /// The provider as wsherd would take it: its `default_provider()`.
    fn crypto(self) -> CryptoProvider {
        match self {
            Provider::Ring => rustls::crypto::ring::default_provider(),
            Provider::AwsLcRs => rustls::crypto::aws_lc_rs::default_provider(),
        }
    }

    /// The TLS 1.3 ticket encrypter from the same provider (wsherd's server uses
    /// the ring one).
    fn ticketer(self) -> Result<Arc<dyn rustls::server::ProducesTickets>> {
        match self {
            Provider::Ring => rustls::crypto::ring::Ticketer::new(),
            Provider::AwsLcRs => rustls::crypto::aws_lc_rs::Ticketer::new(),
        }
        .map_err(|e| format!("ticketer: {e}"))
    }
}

// ------------------------------------------------------------------ the clock --

/// This thread's CPU time, in ns. Not in the vDSO: a real system call, whose own
/// cost [`clock_overhead_ns`] measures.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What one reading of [`thread_cpu_ns`] adds to an interval it bounds: the
/// median gap between two readings taken back to back (the second half of one
/// call and the first half of the next, so about one call's cost).
pub fn clock_overhead_ns() -> f64 {
    let mut gaps: Vec<u64> = (0..31)
        .map(|_| {
            let n = 2000;
            let mut sum = 0;
            for _ in 0..n {
                let a = thread_cpu_ns();
                let b = thread_cpu_ns();
                sum += b - a;
            }
            sum / n
        })
        .collect();
    gaps.sort_unstable();
    gaps[gaps.len() / 2] as f64
}

/// The client's CPU time, summed over the timed calls.
#[derive(Default)]
struct ClientClock {
    ns: u64,
    /// Intervals timed (each holds about one clock reading's cost too).
    spans: u64,
}

impl ClientClock {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let a = thread_cpu_ns();
        let r = f();
        self.ns += thread_cpu_ns() - a;
        self.spans += 1;
        r
    }
}

// ---------------------------------------------------------------- the configs --

const SERVER_NAME: &str = "localhost";

/// A server config as wsherd's built-in server makes one (config/tls.rs):
/// safe default versions, one certificate, ALPN http/1.1, a session cache for
/// TLS 1.2 and stateless tickets for TLS 1.3 from the same provider.
fn server_config(p: Provider, certs: &ServerCerts) -> Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(p.crypto()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server config: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![certs.leaf.clone()], certs.key.clone_key())
        .map_err(|e| format!("server certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(65_536);
    config.ticketer = p.ticketer()?;
    Ok(Arc::new(config))
}

/// A client config as wsherd's (config/tls.rs): safe default versions, the
/// certificate verified against a root store (here the bench CA alone), ALPN
/// http/1.1, and an in-memory ticket store of 4096 sessions or none.
fn client_config(
    crypto: CryptoProvider,
    certs: &ServerCerts,
    resume: bool,
) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(certs.ca.clone())
        .map_err(|e| format!("root store: {e}"))?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(crypto))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("client config: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = if resume {
        Resumption::in_memory_sessions(4096)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

// ------------------------------------------------------------------ the wire --

/// The two directions' bytes.
#[derive(Default)]
struct Wire {
    c2s: Vec<u8>,
    s2c: Vec<u8>,
}

/// Everything a side queued to send, appended to `out`.
fn drain_tls<D>(conn: &mut ConnectionCommon<D>, out: &mut Vec<u8>) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

/// `bytes` into a side, processed; any plaintext it yields is read out and
/// counted into `plain`.
fn feed<D>(conn: &mut ConnectionCommon<D>, mut bytes: &[u8], plain: &mut usize) -> Result<()> {
    let mut buf = [0u8; 4096];
    while !bytes.is_empty() {
        conn.read_tls(&mut bytes)
            .map_err(|e| format!("read_tls: {e}"))?;
        conn.process_new_packets()
            .map_err(|e| format!("process_new_packets: {e}"))?;
        loop {
            match conn.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => *plain += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
    Ok(())
}

/// One handshake, to the end: both sides done and the client has taken the
/// server's tickets. The client's calls (its `new` included) are timed on `clock`.
fn handshake(
    client_config: &Arc<ClientConfig>,
    server_config: &Arc<ServerConfig>,
    name: &ServerName<'static>,
    wire: &mut Wire,
    clock: &mut ClientClock,
) -> Result<(ClientConnection, ServerConnection)> {
    let mut client = clock
        .time(|| ClientConnection::new(client_config.clone(), name.clone()))
        .map_err(|e| format!("client: {e}"))?;
    let mut server =
        ServerConnection::new(server_config.clone()).map_err(|e| format!("server: {e}"))?;
    let mut plain = 0;
    for _ in 0..10 {
        wire.c2s.clear();
        clock
            .time(|| drain_tls(&mut client, &mut wire.c2s))
            .map_err(|e| format!("client write_tls: {e}"))?;
        feed(&mut server, &wire.c2s, &mut plain)?;
        wire.s2c.clear();
        drain_tls(&mut server, &mut wire.s2c).map_err(|e| format!("server write_tls: {e}"))?;
        if !wire.s2c.is_empty() {
            clock.time(|| feed(&mut client, &wire.s2c, &mut plain))?;
        }
        if wire.c2s.is_empty() && wire.s2c.is_empty() {
            if client.is_handshaking() || server.is_handshaking() {
                return Err("the handshake stalled".into());
            }
            return Ok((client, server));
        }
    }
    Err("the handshake did not end in 10 flights".into())
}

/// The parameters a client settled on, checked: TLS 1.3 and the expected kind.
fn check(client: &ClientConnection, want: HandshakeKind) -> Result<()> {
    if client.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
        return Err(format!(
            "negotiated {:?}, not TLS 1.3",
            client.protocol_version()
        ));
    }
    if client.handshake_kind() != Some(want) {
        return Err(format!(
            "a {:?} handshake where a {want:?} one was wanted",
            client.handshake_kind()
        ));
    }
    Ok(())
}

/// `kx suite` as negotiated, for the report.
fn negotiated(client: &ClientConnection) -> (String, String) {
    let kx = client
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_else(|| "-".into());
    let suite = client
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "-".into());
    (kx, suite)
}

// ------------------------------------------------------------ the measurements --

/// How long to run a case.
#[derive(Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
    /// One reading of the thread CPU clock, ns (see [`clock_overhead_ns`]).
    pub clock_ns: f64,
}

/// One timed stretch of handshakes.
struct HandshakeRun {
    n: u64,
    /// The thread's, both sides.
    cpu_ns: u64,
    wall: Duration,
    client: ClientClock,
    /// Key exchange group and suite.
    negotiated: (String, String),
}

/// Full or resumed handshakes, back to back, for `timing.measure`.
///
/// Prints `hs provider cert mode count wall_ns cpu_ns client_cpu_ns kx suite`:
/// wall and CPU time of the whole thread (both sides) and the client's part,
/// less the clock's own cost, and what was negotiated.
pub fn handshakes(
    p: Provider,
    kind: KeyType,
    certs: &ServerCerts,
    resumed: bool,
    timing: Timing,
) -> Result<()> {
    let server = server_config(p, certs)?;
    let client = client_config(p.crypto(), certs, resumed)?;
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let want = if resumed {
        HandshakeKind::Resumed
    } else {
        HandshakeKind::Full
    };
    let mut wire = Wire::default();

    // The first: full either way (it gives the ticket store its first tickets).
    let mut clock = ClientClock::default();
    let (first, _) = handshake(&client, &server, &name, &mut wire, &mut clock)?;
    check(&first, HandshakeKind::Full)?;
    drop(first);

    let mut run = |secs: Duration| -> Result<HandshakeRun> {
        let mut clock = ClientClock::default();
        let mut n = 0u64;
        let mut seen = (String::new(), String::new());
        let start = Instant::now();
        let cpu0 = thread_cpu_ns();
        loop {
            let (c, s) = handshake(&client, &server, &name, &mut wire, &mut clock)?;
            check(&c, want)?;
            if n == 0 {
                seen = negotiated(&c);
            }
            drop(s);
            clock.time(|| drop(c));
            n += 1;
            if start.elapsed() >= secs {
                break;
            }
        }
        Ok(HandshakeRun {
            n,
            cpu_ns: thread_cpu_ns() - cpu0,
            wall: start.elapsed(),
            client: clock,
            negotiated: seen,
        })
    };
    run(timing.warmup)?;
    let HandshakeRun {
        n,
        cpu_ns,
        wall,
        client: clock,
        negotiated: (kx, suite),
    } = run(timing.measure)?;
    // Each timed span holds about one clock reading; the thread's totals hold
    // two per span (both readings, whole).
    let spans = clock.spans as f64;
    let client_ns = clock.ns as f64 - spans * timing.clock_ns;
    let cpu_ns = cpu_ns as f64 - 2.0 * spans * timing.clock_ns;
    let wall_ns = wall.as_nanos() as f64 - 2.0 * spans * timing.clock_ns;
    println!(
        "hs\t{}\t{}\t{}\t{n}\t{wall_ns:.0}\t{cpu_ns:.0}\t{client_ns:.0}\t{kx}\t{suite}",
        p.name(),
        kind.name(),
        if resumed { "resumed" } else { "full" },
    );
    Ok(())
}

/// The TLS 1.3 suites measured, by their short names.
pub const SUITES: [(&str, CipherSuite); 3] = [
    ("aes128", CipherSuite::TLS13_AES_128_GCM_SHA256),
    ("aes256", CipherSuite::TLS13_AES_256_GCM_SHA384),
    ("chacha20", CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
];

/// Messages per batch: the client encrypts a batch, then decrypts the server's
/// answers to it, each half timed as a whole. 64 messages of 1 KiB stay in L2.
const BATCH: usize = 64;

/// Application data both ways over one connection (ECDSA certificate, the
/// client offering `suite` alone), for each message size in `sizes`.
///
/// Per batch: the server first encrypts the batch's answers (untimed) and they
/// are cut into their records; then the client, timed, encrypts the batch's
/// messages (`writer().write_all` + `write_tls`, one record each) and then, timed
/// apart, decrypts the answers one record at a time (`read_tls` of that record +
/// `process_new_packets` + `reader().read`), as it would take them one read each
/// from a socket; then the server decrypts the batch (untimed).
///
/// Prints `rec provider suite size messages enc_cpu_ns dec_cpu_ns wall_ns`, or
/// `missing provider suite` when the provider does not offer the suite; then,
/// for each size, what [`aead_alone`] prints.
pub fn records(
    p: Provider,
    suite_name: &str,
    certs: &ServerCerts,
    sizes: &[usize],
    timing: Timing,
) -> Result<()> {
    let (_, suite) = SUITES
        .iter()
        .find(|(n, _)| *n == suite_name)
        .ok_or_else(|| format!("unknown suite {suite_name}"))?;
    let mut crypto = p.crypto();
    let Some(offered) = crypto
        .cipher_suites
        .iter()
        .find(|s| s.suite() == *suite)
        .copied()
    else {
        println!("missing\t{}\t{suite_name}", p.name());
        return Ok(());
    };
    crypto.cipher_suites = vec![offered];
    let client_config = client_config(crypto, certs, false)?;
    let server_config = server_config(p, certs)?;
    let name = ServerName::try_from(SERVER_NAME).unwrap();

    for &size in sizes {
        let mut wire = Wire::default();
        let (mut client, mut server) = handshake(
            &client_config,
            &server_config,
            &name,
            &mut wire,
            &mut ClientClock::default(),
        )?;
        check(&client, HandshakeKind::Full)?;
        // A batch of answers is queued at once: past the default 64 KiB limit at 1 KiB.
        server.set_buffer_limit(None);
        if client.negotiated_cipher_suite().map(|s| s.suite()) != Some(*suite) {
            return Err(format!(
                "negotiated {:?}, not {suite:?}",
                client.negotiated_cipher_suite()
            ));
        }
        let msg = vec![0x5au8; size];
        let mut answer = vec![0u8; size + 1];
        let mut ends = Vec::with_capacity(BATCH + 1);
        wire.c2s.reserve(BATCH * (size + 64));
        wire.s2c.reserve(BATCH * (size + 64));

        let mut run = |secs: Duration| -> Result<(u64, u64, u64, u64, u64)> {
            let (mut msgs, mut enc, mut dec, mut wall, mut batches) =
                (0u64, 0u64, 0u64, 0u64, 0u64);
            let start = Instant::now();
            loop {
                // The server's answers, record by record.
                wire.s2c.clear();
                for _ in 0..BATCH {
                    server
                        .writer()
                        .write_all(&msg)
                        .map_err(|e| format!("server write: {e}"))?;
                }
                drain_tls(&mut server, &mut wire.s2c)
                    .map_err(|e| format!("server write_tls: {e}"))?;
                ends.clear();
                ends.push(0);
                let mut at = 0;
                while at < wire.s2c.len() {
                    at += 5 + u16::from_be_bytes([wire.s2c[at + 3], wire.s2c[at + 4]]) as usize;
                    ends.push(at);
                }
                if ends.len() != BATCH + 1 || at != wire.s2c.len() {
                    return Err(format!(
                        "the server's {BATCH} answers made {} records",
                        ends.len() - 1
                    ));
                }

                wire.c2s.clear();
                let w0 = Instant::now();
                let t0 = thread_cpu_ns();
                for _ in 0..BATCH {
                    client
                        .writer()
                        .write_all(&msg)
                        .map_err(|e| format!("client write: {e}"))?;
                    client
                        .write_tls(&mut wire.c2s)
                        .map_err(|e| format!("client write_tls: {e}"))?;
                }
                let t1 = thread_cpu_ns();
                for i in 0..BATCH {
                    let mut record = &wire.s2c[ends[i]..ends[i + 1]];
                    client
                        .read_tls(&mut record)
                        .map_err(|e| format!("client read_tls: {e}"))?;
                    client
                        .process_new_packets()
                        .map_err(|e| format!("client process_new_packets: {e}"))?;
                    let mut got = 0;
                    while got < size {
                        match client.reader().read(&mut answer[got..]) {
                            Ok(0) => return Err("the server closed".into()),
                            Ok(n) => got += n,
                            Err(e) => return Err(format!("client read: {e}")),
                        }
                    }
                }
                let t2 = thread_cpu_ns();
                wall += w0.elapsed().as_nanos() as u64;
                enc += t1 - t0;
                dec += t2 - t1;

                let mut plain = 0;
                feed(&mut server, &wire.c2s, &mut plain)?;
                if plain != BATCH * size {
                    return Err(format!("the server got {plain} bytes of {}", BATCH * size));
                }
                msgs += BATCH as u64;
                batches += 1;
                if start.elapsed() >= secs {
                    return Ok((msgs, enc, dec, wall, batches));
                }
            }
        };
        run(timing.warmup)?;
        let (msgs, enc, dec, wall, batches) = run(timing.measure)?;
        // Each batch's two intervals share three readings: one reading's cost in
        // each, and the wall interval holds all three.
        let c = timing.clock_ns * batches as f64;
        println!(
            "rec\t{}\t{suite_name}\t{size}\t{msgs}\t{:.0}\t{:.0}\t{:.0}",
            p.name(),
            enc as f64 - c,
            dec as f64 - c,
            wall as f64 - 3.0 * c,
        );

        aead_alone(p, suite_name, offered, certs, size, timing)?;
    }
    Ok(())
}

/// The provider's part of the record path alone: the `MessageEncrypter` and
/// `MessageDecrypter` it gives rustls for the suite, called as rustls calls them
/// (one record of `size` bytes of application data each; the encrypter's output
/// buffer allocated and dropped; decryption in place, TLS 1.3 padding stripped),
/// keyed with a real connection's traffic secrets. What the record figures add to
/// these is rustls's own framing and buffering.
///
/// Prints `aead provider suite size messages seal_cpu_ns open_cpu_ns`.
fn aead_alone(
    p: Provider,
    suite_name: &str,
    offered: rustls::SupportedCipherSuite,
    certs: &ServerCerts,
    size: usize,
    timing: Timing,
) -> Result<()> {
    use rustls::crypto::cipher::{
        InboundOpaqueMessage, MessageDecrypter, MessageEncrypter, OutboundChunks,
        OutboundPlainMessage,
    };
    use rustls::{ConnectionTrafficSecrets, ContentType};

    let aead = offered.tls13().ok_or("not a TLS 1.3 suite")?.aead_alg;
    let mut crypto = p.crypto();
    crypto.cipher_suites = vec![offered];
    let mut client_config = (*client_config(crypto, certs, false)?).clone();
    client_config.enable_secret_extraction = true;
    let mut server_config = (*server_config(p, certs)?).clone();
    server_config.enable_secret_extraction = true;
    let (client, server) = handshake(
        &Arc::new(client_config),
        &Arc::new(server_config),
        &ServerName::try_from(SERVER_NAME).unwrap(),
        &mut Wire::default(),
        &mut ClientClock::default(),
    )?;
    let secrets = |s: ConnectionTrafficSecrets| match s {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => Ok((key, iv)),
        _ => Err("unknown traffic secrets".to_string()),
    };
    let c = client
        .dangerous_extract_secrets()
        .map_err(|e| format!("client secrets: {e}"))?;
    let s = server
        .dangerous_extract_secrets()
        .map_err(|e| format!("server secrets: {e}"))?;
    // Fresh keys count from sequence number 0, as rustls's do after every key
    // change (aws-lc's TLS 1.3 AES-GCM sealing key insists on it).
    let (_, c_tx) = c.tx;
    let (_, c_rx) = c.rx;
    let (_, s_tx) = s.tx;
    let (mut c_seq, mut c_rx_seq, mut s_seq) = (0u64, 0u64, 0u64);
    let (key, iv) = secrets(c_tx)?;
    let mut seal: Box<dyn MessageEncrypter> = aead.encrypter(key, iv);
    let (key, iv) = secrets(c_rx)?;
    let mut open: Box<dyn MessageDecrypter> = aead.decrypter(key, iv);
    let (key, iv) = secrets(s_tx)?;
    let mut server_seal: Box<dyn MessageEncrypter> = aead.encrypter(key, iv);

    let msg = vec![0x5au8; size];
    let plain = || OutboundPlainMessage {
        typ: ContentType::ApplicationData,
        version: ProtocolVersion::TLSv1_2,
        payload: OutboundChunks::Single(&msg),
    };
    let mut answers: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let mut run = |secs: Duration| -> Result<(u64, u64, u64, u64)> {
        let (mut msgs, mut enc, mut dec, mut batches) = (0u64, 0u64, 0u64, 0u64);
        let start = Instant::now();
        loop {
            answers.clear();
            for _ in 0..BATCH {
                let record = server_seal
                    .encrypt(plain(), s_seq)
                    .map_err(|e| format!("server encrypt (seq {s_seq}): {e}"))?;
                s_seq += 1;
                answers.push(record.encode());
            }
            let t0 = thread_cpu_ns();
            for _ in 0..BATCH {
                let record = seal
                    .encrypt(plain(), c_seq)
                    .map_err(|e| format!("encrypt: {e}"))?;
                c_seq += 1;
                std::hint::black_box(record);
            }
            let t1 = thread_cpu_ns();
            for answer in answers.iter_mut() {
                let record = InboundOpaqueMessage::new(
                    ContentType::ApplicationData,
                    ProtocolVersion::TLSv1_2,
                    &mut answer[5..],
                );
                let got = open
                    .decrypt(record, c_rx_seq)
                    .map_err(|e| format!("decrypt: {e}"))?;
                c_rx_seq += 1;
                if got.payload.len() != size || got.typ != ContentType::ApplicationData {
                    return Err("the decrypted answer is not the message".into());
                }
            }
            let t2 = thread_cpu_ns();
            enc += t1 - t0;
            dec += t2 - t1;
            msgs += BATCH as u64;
            batches += 1;
            if start.elapsed() >= secs {
                return Ok((msgs, enc, dec, batches));
            }
        }
    };
    run(timing.warmup)?;
    let (msgs, enc, dec, batches) = run(timing.measure)?;
    let c = timing.clock_ns * batches as f64;
    println!(
        "aead\t{}\t{suite_name}\t{size}\t{msgs}\t{:.0}\t{:.0}",
        p.name(),
        enc as f64 - c,
        dec as f64 - c,
    );
    Ok(())
}

/// The heap an idle client connection holds once its handshake is over: `conns`
/// handshakes, each client kept (in a `Vec` reserved beforehand) and each server
/// dropped; the heap's growth over them, per connection, plus the connection's
/// own size (it sits in the `Vec`).
///
/// Prints `mem provider cert mode conns malloc_bytes rust_bytes size_of`.
pub fn memory(
    p: Provider,
    kind: KeyType,
    certs: &ServerCerts,
    resumed: bool,
    conns: usize,
) -> Result<()> {
    let server = server_config(p, certs)?;
    let client = client_config(p.crypto(), certs, resumed)?;
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let want = if resumed {
        HandshakeKind::Resumed
    } else {
        HandshakeKind::Full
    };
    let mut wire = Wire::default();
    let mut clock = ClientClock::default();
    // Warm-up: the providers' one-time set-up, the wire buffers at their size,
    // the ticket store at its steady state.
    for i in 0..50 {
        let (c, _) = handshake(&client, &server, &name, &mut wire, &mut clock)?;
        check(&c, if i == 0 { HandshakeKind::Full } else { want })?;
    }
    let mut held: Vec<ClientConnection> = Vec::with_capacity(conns);
    let m0 = alloc::malloc_live();
    let r0 = alloc::rust_live();
    for _ in 0..conns {
        let (c, s) = handshake(&client, &server, &name, &mut wire, &mut clock)?;
        check(&c, want)?;
        drop(s);
        held.push(c);
    }
    let m1 = alloc::malloc_live();
    let r1 = alloc::rust_live();
    let size = std::mem::size_of::<ClientConnection>();
    println!(
        "mem\t{}\t{}\t{}\t{conns}\t{:.0}\t{:.0}\t{size}",
        p.name(),
        kind.name(),
        if resumed { "resumed" } else { "full" },
        (m1 - m0) as f64 / conns as f64 + size as f64,
        (r1 - r0) as f64 / conns as f64 + size as f64,
    );
    drop(held);
    Ok(())
}
