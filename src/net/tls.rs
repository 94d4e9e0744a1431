//! TLS under a connection, for both sides (the load's `wss://` connections and the
//! built-in server's): a rustls session fed straight from the socket, the async
//! handshake, the stable cause names of TLS failures and the fix each one asks
//! for, and the self-signed certificates of `serve --tls-self-signed` and
//! `run --tls`. It exists so that the stream (`net::stream`) can carry TLS for
//! both sides without either of them knowing rustls.
//!
//! rustls does no I/O, and here it holds no buffer either: the session is driven
//! through rustls's *unbuffered* API, over buffers that are the caller's. A read's
//! records (from the ring into the pooled read buffer, or from a non-blocking
//! `recv` into the spare capacity of the caller's buffer) are decrypted in place
//! and their plaintext is compacted to the front of the same buffer; only the
//! bytes of a record not whole yet stay with the session, in a vector freed as
//! soon as the next read completes it. A write's plaintext is encrypted into a
//! scratch vector of the thread's (each shard is one thread) and the records are
//! copied back into the caller's buffer, which is then written. Records rustls
//! must send outside a write and that a read brings about (alerts, the server's
//! session tickets, a client's last flight) wait in a vector of the session's,
//! normally empty, and go out in front of the next write's records (rustls puts
//! the answer to a key update there itself). Plaintext that came with the
//! handshake's last flight (a TLS 1.3 client sends its Finished and its first
//! request together) waits in another, likewise, so no read needs readiness for
//! it.
//!
//! Why the unbuffered API rather than the buffered `rustls::Connection`: memory
//! per held connection. The buffered connection keeps its record buffer (at
//! least 4 KiB, even idle) and is 1176 bytes itself: held idle `wss://`
//! connections cost 10.4 to 10.9 KiB each with it, against 1.00 KiB for `ws://`
//! (`scripts/bench-endpoints.sh`, was bench-tls.sh, case m: 10,000 connections against 1,000, VmRSS of
//! the load process). Over the unbuffered API a quiet session holds only rustls's
//! connection state (its handshake deframer's spans, the server's certificates,
//! the traffic state) and the record-layer keys, about 3.5 KiB, in a box of
//! 1 KiB: 6.2 to 6.4 KiB per held connection, of which some 0.4 KiB is memory
//! the thousand-odd handshakes in flight during the ramp freed and the allocator
//! had not yet returned (5.9 KiB with `MIMALLOC_PURGE_DELAY=0`). The client CPU
//! per message did not grow (case a, wss/ws: 1.12x and 1.17x after, 1.17x to
//! 1.30x before, on a shared machine).
//!
//! The crypto provider is aws-lc-rs, chosen by measurement against ring
//! (benches/tls-provider, scripts/bench-tls-provider.sh; figures in its README):
//! full handshakes cost the client 9-15% less CPU and the built-in server 14% (ECDSA)
//! to 46% (RSA) less, resumed ones 14% less; records per message are within 3%
//! either way; an idle connection holds about 200 bytes more.
//!
//! Part of `net/`, the wire layer: it must never import `shard/`, `server/` or
//! anything of the load layer and above.

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, UnbufferedStatus, WriteTraffic,
};
use rustls::{CertificateError, CommonState, Error as TlsError};
use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// The crypto provider every config of wsherd's is built on.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The client side's settings for a run's `wss://` connections.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub config: Arc<rustls::ClientConfig>,
    /// `--sni`: the name to send and verify instead of each URL's host.
    pub sni: Option<ServerName<'static>>,
    /// `--insecure`: certificates are not verified.
    pub insecure: bool,
    /// Session resumption (off with `--no-tls-resume`).
    pub resume: bool,
}

/// One side of a TLS connection.
pub struct Session {
    conn: Side,
    /// The end of the last read that is not whole records yet (with, during a
    /// handshake, the records of a message rustls is still putting together): the
    /// front of the next read. Normally empty and unallocated.
    partial: Vec<u8>,
    q: Queues,
}

/// What a session keeps between reads and writes besides rustls's own state and
/// `partial`: nothing allocated on an idle connection.
#[derive(Default)]
struct Queues {
    /// Boxed, and only while it holds something: a session stays within 1 KiB.
    rare: Option<Box<Rare>>,
    /// The peer closed (close_notify or TCP EOF): reads answer EOF once the
    /// plaintext waiting is taken.
    closed: bool,
}

#[derive(Default)]
struct Rare {
    /// Records to send in front of the next ones `encrypt` makes: found while
    /// reading (alerts, session tickets, a handshake's flights) or queued
    /// (close_notify).
    outgoing: Vec<u8>,
    /// Plaintext to take before anything read next: what came with the
    /// handshake's last flight (or, never in practice, what did not fit over the
    /// records that carried it).
    plain: Vec<u8>,
    /// The failure that ended the session: every read and write answers it
    /// again (rustls must not be given records after one).
    error: Option<TlsError>,
}

impl Queues {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn outgoing(&mut self) -> &mut Vec<u8> {
        &mut self.rare().outgoing
    }

    fn plain(&mut self) -> &mut Vec<u8> {
        &mut self.rare().plain
    }

    fn has_outgoing(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| !r.outgoing.is_empty())
    }

    fn has_plain(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| !r.plain.is_empty())
    }

    /// The records waiting to be sent, handed over.
    fn take_outgoing(&mut self) -> Vec<u8> {
        let v = self.rare.as_mut().map(|r| std::mem::take(&mut r.outgoing));
        self.tidy();
        v.unwrap_or_default()
    }

    /// The plaintext waiting, handed over.
    fn take_plain(&mut self) -> Vec<u8> {
        let v = self.rare.as_mut().map(|r| std::mem::take(&mut r.plain));
        self.tidy();
        v.unwrap_or_default()
    }

    /// Notes the failure that ended the session.
    fn fail(&mut self, e: &TlsError) {
        self.rare().error.get_or_insert_with(|| e.clone());
    }

    /// The failure that ended the session, as an I/O error.
    fn failed(&self) -> Option<io::Error> {
        self.rare.as_ref()?.error.as_ref().map(failed)
    }

    /// Frees what holds nothing.
    fn tidy(&mut self) {
        if self
            .rare
            .as_ref()
            .is_some_and(|r| r.outgoing.is_empty() && r.plain.is_empty() && r.error.is_none())
        {
            self.rare = None;
        }
    }
}

/// The client inline (the load's thousands of sessions, each a box of 1 KiB
/// with it), the server boxed.
#[allow(clippy::large_enum_variant)] // on purpose: see above
enum Side {
    Client(UnbufferedClientConnection),
    Server(Box<UnbufferedServerConnection>),
}

/// rustls's unbuffered client and server connections, for code written once.
trait Records {
    type Data;
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn common(&self) -> &CommonState;
}

impl Records for UnbufferedClientConnection {
    type Data = rustls::client::ClientConnectionData;
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

impl Records for UnbufferedServerConnection {
    type Data = rustls::server::ServerConnectionData;
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

/// `$body` with `$c` the session's connection (`&mut`), client or server.
macro_rules! with_conn {
    ($side:expr, $c:ident => $body:expr) => {
        match $side {
            Side::Client($c) => $body,
            Side::Server(boxed) => {
                let $c = &mut **boxed;
                $body
            }
        }
    };
}

thread_local! {
    /// Where `encrypt` has rustls write the records before they are copied back
    /// into the caller's buffer: one per thread (a shard), as large as the largest
    /// message it sealed.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What a handshake settled on, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: &'static str,
    /// The cipher suite's IANA name (`TLS13_AES_128_GCM_SHA256`).
    pub suite: &'static str,
    /// A resumed session (no certificate exchange).
    pub resumed: bool,
}

pub use super::sock::{failure, Failure};

impl Session {
    pub fn client(
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Self> {
        let conn = UnbufferedClientConnection::new(config, name).map_err(|e| failed(&e))?;
        Ok(Session::new(Side::Client(conn)))
    }

    pub fn server(config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(|e| failed(&e))?;
        Ok(Session::new(Side::Server(Box::new(conn))))
    }

    fn new(conn: Side) -> Self {
        Session {
            conn,
            partial: Vec::new(),
            q: Queues::default(),
        }
    }

    fn common(&self) -> &CommonState {
        match &self.conn {
            Side::Client(c) => c.common(),
            Side::Server(c) => c.common(),
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.common().is_handshaking()
    }

    /// Whether decrypted bytes (or the peer's close) wait to be taken: a read
    /// needs no readiness.
    pub fn has_plaintext(&self) -> bool {
        self.q.has_plain() || self.q.closed
    }

    /// Moves the records waiting to be sent (handshake, alerts, session tickets,
    /// close_notify) onto `out`.
    pub fn take_outgoing(&mut self, out: &mut Vec<u8>) {
        with_conn!(&mut self.conn, c => queued_records(c, &mut self.q));
        if self.q.has_outgoing() {
            out.extend_from_slice(&self.q.take_outgoing());
        }
    }

    /// Takes the plaintext waiting, or else what the socket holds now, into the
    /// spare capacity of `out`, without waiting. Same answers as `sock::recv_now`:
    /// `Ok(None)` nothing yet (a partial record, or nothing at all), `Ok(Some(0))`
    /// the peer closed, `Ok(Some(n))` n bytes appended. The records are received
    /// into `out` and decrypted there; the plaintext of a record completed by
    /// this read (its front came with the last one) may grow `out`.
    pub fn recv_now(&mut self, fd: RawFd, out: &mut Vec<u8>) -> io::Result<Option<usize>> {
        if out.len() == out.capacity() {
            out.reserve(1024);
        }
        if self.has_plaintext() {
            return Ok(self.take_plain(out));
        }
        if let Some(e) = self.q.failed() {
            return Err(e);
        }
        let start = out.len();
        loop {
            match super::sock::recv_now(fd, out)? {
                None => return Ok(None),
                Some(0) => {
                    self.q.closed = true;
                    return Ok(Some(0));
                }
                Some(_) => self.feed(out, start)?,
            }
            if self.q.has_plain() && out.len() < out.capacity() {
                self.take_plain(out);
            }
            if out.len() > start {
                return Ok(Some(out.len() - start));
            }
            if self.q.closed {
                return Ok(Some(0));
            }
            // Only the front of a record (or records without plaintext): the
            // socket may hold the rest.
        }
    }

    /// Replaces the records a read brought (the bytes of `buf`; none: the peer
    /// closed) with the plaintext they carry, for reads through the ring. Same
    /// answers as `recv_now`: `Ok(None)` when no whole record came yet (read
    /// again), `Ok(Some(0))` the peer closed.
    pub fn decrypt(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        if let Some(e) = self.q.failed() {
            return Err(e);
        }
        if buf.is_empty() {
            self.q.closed = true;
        } else {
            self.feed(buf, 0)?;
        }
        if self.q.has_plain() {
            // Plaintext that waited (or did not fit in place) comes after.
            buf.extend_from_slice(&self.q.take_plain());
        }
        Ok(match buf.len() {
            0 if self.q.closed => Some(0),
            0 => None,
            n => Some(n),
        })
    }

    /// The plaintext waiting, into the spare capacity of `buf`: `Some(n)` bytes
    /// taken (0: the peer closed), None when there was none.
    pub fn decrypt_pending(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        if buf.len() == buf.capacity() {
            buf.reserve(1024);
        }
        Ok(self.take_plain(buf))
    }

    /// Moves what fits of the plaintext waiting into the spare capacity of `out`:
    /// `Some(n)` bytes moved, `Some(0)` when none waits and the peer closed, None
    /// when none waits.
    fn take_plain(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        if !self.q.has_plain() {
            return self.q.closed.then_some(0);
        }
        let plain = self.q.plain();
        let k = plain.len().min(out.capacity() - out.len());
        out.extend_from_slice(&plain[..k]);
        consume(plain, k);
        self.q.tidy();
        Some(k)
    }

    /// Replaces the records in `buf[start..]` (which follow the bytes kept from
    /// the last read, if any) with the plaintext they carry, and keeps what is not
    /// a whole record yet.
    fn feed(&mut self, buf: &mut Vec<u8>, start: usize) -> io::Result<()> {
        if let Some(e) = self.q.failed() {
            return Err(e);
        }
        if self.q.closed {
            // Nothing counts after the peer's close.
            buf.truncate(start);
            return Ok(());
        }
        let done;
        if self.partial.is_empty() {
            // In place: the plaintext over the records it came in.
            let mut cur = Cursor {
                w: start,
                at: start,
            };
            done = with_conn!(&mut self.conn, c => process(c, &mut self.q, buf, &mut cur));
            if cur.at < buf.len() {
                self.partial = buf[cur.at..].to_vec();
            }
            buf.truncate(cur.w);
        } else {
            // Behind the front of a record: both together, in the session's vector.
            self.partial.extend_from_slice(&buf[start..]);
            buf.truncate(start);
            let mut cur = Cursor::default();
            done = with_conn!(&mut self.conn, c => process(c, &mut self.q, &mut self.partial, &mut cur));
            buf.extend_from_slice(&self.partial[..cur.w]);
            consume(&mut self.partial, cur.at);
        }
        done.map_err(|e| failed(&e))
    }

    /// Processes the bytes kept (a handshake's records): the plaintext that came
    /// with them waits in `plain`.
    fn advance(&mut self) -> Result<(), TlsError> {
        let mut cur = Cursor::default();
        let done =
            with_conn!(&mut self.conn, c => process(c, &mut self.q, &mut self.partial, &mut cur));
        if cur.w > 0 {
            let mut plain = self.partial[..cur.w].to_vec();
            plain.extend_from_slice(&self.q.take_plain());
            *self.q.plain() = plain;
        }
        consume(&mut self.partial, cur.at);
        done
    }

    /// Replaces the plaintext in `buf` with the records that carry it (behind any
    /// record waiting to be sent).
    pub fn encrypt(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        with_conn!(&mut self.conn, c => with_writer(c, &mut self.partial, &mut self.q, |w, q| seal(w, q, buf)))
    }

    /// Queues a close_notify (sent with the next write).
    pub fn close_notify(&mut self) {
        let _ = with_conn!(&mut self.conn, c => with_writer(c, &mut self.partial, &mut self.q, |w, q| {
            let out = q.outgoing();
            let len = out.len();
            loop {
                match w.queue_close_notify(&mut out[len..]) {
                    Ok(n) => {
                        out.truncate(len + n);
                        return Ok(());
                    }
                    Err(EncryptError::InsufficientSize(s)) => out.resize(len + s.required_size, 0),
                    Err(EncryptError::EncryptExhausted) => {
                        out.truncate(len);
                        return Ok(());
                    }
                }
            }
        }));
    }

    /// What the handshake settled on (None while it runs).
    pub fn negotiated(&self) -> Option<Negotiated> {
        let c = self.common();
        let suite = c.negotiated_cipher_suite()?;
        let version = match c.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        Some(Negotiated {
            version,
            suite: suite.suite().as_str().unwrap_or("unknown"),
            resumed: c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        })
    }
}

/// How far `process` got through a buffer: plaintext written up to `w`, records
/// consumed up to `at` (`w <= at`).
#[derive(Default)]
struct Cursor {
    w: usize,
    at: usize,
}

/// Feeds the records of `data[cur.at..]` to rustls until it needs more: their
/// plaintext goes to `data[cur.w..]`, over the records already consumed (or to
/// `q.plain` when it does not fit there, or when plaintext already waits there:
/// the order holds), the records rustls wants sent to `q.outgoing`. `cur.at`
/// ends where the bytes still needed begin (a record not whole yet, or the front
/// of a handshake message), errors included.
fn process<C: Records>(
    conn: &mut C,
    q: &mut Queues,
    data: &mut [u8],
    cur: &mut Cursor,
) -> Result<(), TlsError> {
    loop {
        let status = conn.records(&mut data[cur.at..]);
        let discard = status.discard;
        let step = match status.state.map(|s| common_step(s, q)) {
            Ok(Ok(step)) => step,
            Ok(Err(ConnectionState::Closed)) => {
                q.closed = true;
                Step::Done
            }
            // BlockedHandshake, WriteTraffic: every whole record was taken.
            Ok(Err(_)) => Step::Done,
            Err(e) => Step::Failed(e),
        };
        cur.at += discard;
        let failed = match step {
            Step::Next => continue,
            Step::Plaintext => match take_plaintext(conn, q, data, cur) {
                Ok(()) => continue,
                Err(e) => e,
            },
            Step::Done => return Ok(()),
            Step::Failed(e) => e,
        };
        q.fail(&failed);
        return Err(failed);
    }
}

enum Step {
    Next,
    Plaintext,
    Done,
    Failed(TlsError),
}

/// The states every loop over rustls's records handles alike: records rustls
/// wants sent (into `q.outgoing`, which the caller sends), the peer's close,
/// plaintext to take, early data (refused). Any other comes back.
fn common_step<'c, 'i, D>(
    state: ConnectionState<'c, 'i, D>,
    q: &mut Queues,
) -> Result<Step, ConnectionState<'c, 'i, D>> {
    Ok(match state {
        ConnectionState::ReadTraffic(_) => Step::Plaintext,
        ConnectionState::EncodeTlsData(mut e) => {
            encode(&mut e, q.outgoing());
            Step::Next
        }
        ConnectionState::TransmitTlsData(t) => {
            t.done();
            Step::Next
        }
        ConnectionState::PeerClosed => {
            q.closed = true;
            Step::Next
        }
        ConnectionState::ReadEarlyData(_) => Step::Failed(early_data()),
        other => return Err(other),
    })
}

/// Takes the plaintext of the record rustls just decrypted to `data[cur.w..]`
/// (see `process`). rustls hands out the plaintext it holds before it looks at
/// its input, so it is asked with an empty one: `data` stays free to write to.
fn take_plaintext<C: Records>(
    conn: &mut C,
    q: &mut Queues,
    data: &mut [u8],
    cur: &mut Cursor,
) -> Result<(), TlsError> {
    let mut none = [0u8; 0];
    match conn.records(&mut none).state {
        Ok(ConnectionState::ReadTraffic(mut r)) => {
            while let Some(record) = r.next_record() {
                let p = record?.payload;
                let end = cur.w + p.len();
                if !q.has_plain() && end <= cur.at {
                    data[cur.w..end].copy_from_slice(p);
                    cur.w = end;
                } else {
                    q.plain().extend_from_slice(p);
                }
            }
            Ok(())
        }
        Ok(other) => Err(TlsError::General(format!(
            "rustls announced plaintext, then gave {other:?}"
        ))),
        Err(e) => Err(e),
    }
}

/// Early data: never accepted (the server's config leaves it off).
fn early_data() -> TlsError {
    TlsError::General("early data came, which this server does not accept".into())
}

/// Appends the record rustls wants sent to `out`.
fn encode<D>(e: &mut EncodeTlsData<'_, D>, out: &mut Vec<u8>) {
    let len = out.len();
    loop {
        match e.encode(&mut out[len..]) {
            Ok(n) => {
                out.truncate(len + n);
                return;
            }
            Err(EncodeError::InsufficientSize(s)) => out.resize(len + s.required_size, 0),
            Err(EncodeError::AlreadyEncoded) => {
                out.truncate(len);
                return;
            }
        }
    }
}

/// Moves the records rustls has queued (an alert after a failure) to
/// `q.outgoing`. rustls hands them out before it looks at its input.
fn queued_records<C: Records>(conn: &mut C, q: &mut Queues) {
    let mut none = [0u8; 0];
    while conn.common().wants_write() {
        match conn.records(&mut none).state {
            Ok(ConnectionState::EncodeTlsData(mut e)) => encode(&mut e, q.outgoing()),
            _ => break,
        }
    }
}

/// Runs `f` with rustls's writer, once what rustls had to say first is in
/// `q.outgoing`. `partial` is what rustls was last given (no whole record).
fn with_writer<C: Records, T>(
    conn: &mut C,
    partial: &mut Vec<u8>,
    q: &mut Queues,
    mut f: impl FnMut(&mut WriteTraffic<'_, C::Data>, &mut Queues) -> io::Result<T>,
) -> io::Result<T> {
    if let Some(e) = q.failed() {
        return Err(e);
    }
    let closed = |what: &str| io::Error::new(io::ErrorKind::NotConnected, format!("TLS: {what}"));
    loop {
        let status = conn.records(partial);
        let discard = status.discard;
        // Plaintext here: never in practice (every read takes its own).
        let step = match status.state.map(|s| common_step(s, q)) {
            Ok(Ok(step)) => step,
            Ok(Err(ConnectionState::WriteTraffic(mut w))) => {
                let wrote = f(&mut w, q);
                consume(partial, discard);
                return wrote;
            }
            Ok(Err(ConnectionState::Closed)) => return Err(closed("closed both ways")),
            Ok(Err(ConnectionState::BlockedHandshake)) => {
                return Err(closed("the handshake is not done"))
            }
            Ok(Err(other)) => return Err(closed(&format!("cannot write in state {other:?}"))),
            Err(e) => Step::Failed(e),
        };
        consume(partial, discard);
        let e = match step {
            Step::Next | Step::Done => continue,
            Step::Plaintext => match take_plaintext(conn, q, &mut [], &mut Cursor::default()) {
                Ok(()) => continue,
                Err(e) => e,
            },
            Step::Failed(e) => e,
        };
        q.fail(&e);
        return Err(failed(&e));
    }
}

/// Encrypts `buf` into the thread's scratch vector and puts the records back in
/// `buf`, behind those waiting in `q.outgoing`.
fn seal<D>(w: &mut WriteTraffic<'_, D>, q: &mut Queues, buf: &mut Vec<u8>) -> io::Result<()> {
    SCRATCH.with_borrow_mut(|out| {
        // Fragments of 16 KiB at most, each with a header, a tag and its content
        // type or explicit nonce; rustls says when more is needed (a key update).
        let need = buf.len() + (buf.len() / (16 * 1024) + 1) * 64;
        if out.len() < need {
            out.resize(need, 0);
        }
        let n = loop {
            match w.encrypt(buf, out) {
                Ok(n) => break n,
                Err(EncryptError::InsufficientSize(s)) => out.resize(s.required_size, 0),
                Err(EncryptError::EncryptExhausted) => return Err(failed(&TlsError::EncryptError)),
            }
        };
        buf.clear();
        if q.has_outgoing() {
            buf.extend_from_slice(&q.take_outgoing());
        }
        buf.extend_from_slice(&out[..n]);
        Ok(())
    })
}

/// Drops the first `n` bytes of `v`, freeing it once empty (and a large one
/// left holding a few bytes).
fn consume(v: &mut Vec<u8>, n: usize) {
    if n >= v.len() {
        *v = Vec::new();
    } else if n > 0 {
        if v.capacity() > 2 * (v.len() - n) + 1024 {
            *v = v[n..].to_vec();
        } else {
            v.drain(..n);
        }
    }
}

/// The handshake over `tcp`: records out, records in, until it completes.
/// `early` holds bytes that already came from the peer (a proxy's tunnel may pass
/// them on). A failure is an I/O error carrying a `Failure`. Application data
/// that came with the last flight waits in the session (`has_plaintext`).
pub async fn handshake(
    tcp: &monoio::net::TcpStream,
    session: &mut Session,
    early: &[u8],
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    session.partial.extend_from_slice(early);
    loop {
        if let Err(e) = session.advance() {
            // Tell the peer why (an alert), best effort.
            let mut out = Vec::new();
            session.take_outgoing(&mut out);
            let _ = send_now(fd, &out);
            return Err(failed(&e));
        }
        if session.q.has_outgoing() {
            let out = session.q.take_outgoing();
            write_all_now(tcp, &out).await?;
        }
        if !session.is_handshaking() {
            return Ok(());
        }
        if session.q.closed {
            return Err(closed_during_tls());
        }
        tcp.readable(false).await?;
        // A server's flight (its certificates) in one or two receives.
        session.partial.reserve(8 * 1024);
        if super::sock::recv_now(fd, &mut session.partial)? == Some(0) {
            return Err(closed_during_tls());
        }
    }
}

fn closed_during_tls() -> io::Error {
    io::Error::other(Failure {
        cause: "closed_during_tls",
        detail: "the server closed the connection during the TLS handshake: is it a TLS \
                 server (wss://), and does it accept this client?"
            .into(),
    })
}

/// Writes all of `buf`: non-blocking sends, waiting for writability between them
/// (a handshake's few records; no owned buffer needed, the stream only borrowed).
async fn write_all_now(tcp: &monoio::net::TcpStream, buf: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    let mut at = 0;
    while at < buf.len() {
        match send_now(fd, &buf[at..]) {
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => tcp.writable(false).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One non-blocking `send` (no SIGPIPE).
pub fn send_now(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes; MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::send(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A rustls error as an I/O error carrying its cause and its fix.
fn failed(e: &TlsError) -> io::Error {
    io::Error::other(describe(e))
}

/// The stable cause of a TLS failure, and what to do about it.
pub fn describe(e: &TlsError) -> Failure {
    let f = |cause: &'static str, detail: String| Failure { cause, detail };
    match e {
        TlsError::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => f(
                "tls_unknown_issuer",
                "the server's certificate was issued by a CA this client does not trust: pass \
                 --ca FILE (the PEM of the CA that signed it), or --insecure to skip verification"
                    .into(),
            ),
            CertificateError::NotValidForName => f(
                "tls_name_mismatch",
                "the server's certificate is not valid for the name connected to: connect by a \
                 name it holds, or set --sni NAME"
                    .into(),
            ),
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => f(
                "tls_name_mismatch",
                format!(
                    "the server's certificate is not valid for {}: it holds {}; connect by one \
                     of those names, or set --sni NAME",
                    name_of(expected),
                    if presented.is_empty() {
                        "no names".to_string()
                    } else {
                        presented.join(", ")
                    }
                ),
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => f(
                "tls_cert_expired",
                format!(
                    "the server's certificate has expired ({c:?}); renew it, or pass --insecure \
                     to skip verification"
                ),
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => f(
                "tls_cert_not_yet_valid",
                format!(
                    "the server's certificate is not valid yet ({c:?}); check both clocks, or \
                     pass --insecure"
                ),
            ),
            other => f(
                "tls_bad_certificate",
                format!("the peer's certificate was refused: {other:?}"),
            ),
        },
        TlsError::AlertReceived(a) => {
            let cause = match a {
                rustls::AlertDescription::HandshakeFailure => "tls_alert_handshake_failure",
                rustls::AlertDescription::CertificateRequired => "tls_alert_certificate_required",
                rustls::AlertDescription::UnknownCA => "tls_alert_unknown_ca",
                rustls::AlertDescription::BadCertificate => "tls_alert_bad_certificate",
                rustls::AlertDescription::ProtocolVersion => "tls_alert_protocol_version",
                rustls::AlertDescription::NoApplicationProtocol => {
                    "tls_alert_no_application_protocol"
                }
                rustls::AlertDescription::UnrecognisedName => "tls_alert_unrecognised_name",
                rustls::AlertDescription::DecryptError => "tls_alert_decrypt_error",
                _ => "tls_alert",
            };
            let fix = match a {
                rustls::AlertDescription::CertificateRequired => {
                    ": the server wants a client certificate (--cert FILE --key FILE)"
                }
                rustls::AlertDescription::UnknownCA | rustls::AlertDescription::BadCertificate => {
                    ": the server refused the client certificate (--cert, --key)"
                }
                _ => "",
            };
            f(cause, format!("the server sent the alert {a:?}{fix}"))
        }
        TlsError::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => f(
            "tls_not_tls",
            "the server's answer is not TLS: is it a plain ws:// server? (use ws://)".into(),
        ),
        TlsError::NoCertificatesPresented => f(
            "tls_no_client_certificate",
            "the client sent no certificate and this server requires one".into(),
        ),
        other => f("tls_error", format!("{other}")),
    }
}

fn name_of(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => format!("{n:?}"),
    }
}

/// A certificate made at start: a CA of its own and a leaf it signed for `names`
/// (DNS names or IP addresses), ECDSA P-256. `ca_pem` is what a client trusts.
pub struct SelfSigned {
    pub ca_pem: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Makes a CA and a leaf certificate for `names`, valid from a day ago for a year.
pub fn self_signed(names: &[String]) -> Result<SelfSigned, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let err = |e: rcgen::Error| format!("cannot make a self-signed certificate: {e}");
    let now = std::time::SystemTime::now();
    let from = now - std::time::Duration::from_secs(86_400);
    let until = now + std::time::Duration::from_secs(365 * 86_400);
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name
        .push(DnType::CommonName, "wsherd self-signed CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = from.into();
    ca.not_after = until.into();
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).map_err(err)?;
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "wsherd serve");
    leaf.not_before = from.into();
    leaf.not_after = until.into();
    let leaf_key = KeyPair::generate().map_err(err)?;
    let cert = leaf.signed_by(&leaf_key, &ca).map_err(err)?;
    Ok(SelfSigned {
        ca_pem: ca.pem(),
        chain: vec![cert.der().clone(), ca.der().clone()],
        key: PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_name_the_fix() {
        let e = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        let d = describe(&e);
        assert_eq!(d.cause, "tls_unknown_issuer");
        assert!(d.detail.contains("--ca FILE") && d.detail.contains("--insecure"));
        let e = TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("example.com").unwrap(),
            presented: vec!["DnsName(\"localhost\")".into()],
        });
        let d = describe(&e);
        assert_eq!(d.cause, "tls_name_mismatch");
        assert!(d.detail.contains("example.com") && d.detail.contains("localhost"));
        let io = io::Error::other(describe(&TlsError::NoCertificatesPresented));
        assert_eq!(failure(&io).unwrap().cause, "tls_no_client_certificate");
        assert!(failure(&io::Error::other("x")).is_none());
    }

    /// A server's and a client's config (TLS 1.3 and 1.2, resumption on), the
    /// client trusting the server's self-signed CA.
    fn configs() -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
        configs_of(rustls::DEFAULT_VERSIONS)
    }

    /// As `configs`, the server speaking only `versions`.
    fn configs_of(
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
        let made = self_signed(&["localhost".into()]).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(made.chain.clone(), made.key.clone_key())
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.chain[1].clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(client), Arc::new(server))
    }

    fn localhost() -> ServerName<'static> {
        ServerName::try_from("localhost").unwrap()
    }

    /// A client and a server session of these configs, handshake done (and the
    /// server's tickets taken by the client), over in-memory buffers.
    fn pair_of(
        configs: &(Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>),
    ) -> (Session, Session) {
        let mut c = Session::client(configs.0.clone(), localhost()).unwrap();
        let mut s = Session::server(configs.1.clone()).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            c.take_outgoing(&mut wire);
            if !wire.is_empty() {
                assert_eq!(s.decrypt(&mut wire).unwrap(), None);
            }
            let mut wire = Vec::new();
            s.take_outgoing(&mut wire);
            if !wire.is_empty() {
                assert_eq!(c.decrypt(&mut wire).unwrap(), None);
            }
        }
        assert!(!c.is_handshaking() && !s.is_handshaking());
        (c, s)
    }

    /// A client and a server session, handshake done, over in-memory buffers.
    fn pair() -> (Session, Session) {
        pair_of(&configs())
    }

    /// Sends `msg` from `a` to `b` in one buffer and checks it comes out whole.
    fn send(a: &mut Session, b: &mut Session, msg: &[u8]) {
        let mut wire = msg.to_vec();
        a.encrypt(&mut wire).unwrap();
        assert_ne!(wire, msg);
        assert_eq!(b.decrypt(&mut wire).unwrap(), Some(msg.len()));
        assert_eq!(wire, msg);
        assert!(!b.has_plaintext());
    }

    /// Whether a session holds no buffer at all (as an idle one must).
    fn holds_nothing(s: &Session) -> bool {
        s.partial.capacity() == 0 && s.q.rare.is_none()
    }

    #[test]
    fn records_of_any_size_come_through_in_any_chunks() {
        let (mut c, mut s) = pair();
        for size in [1usize, 64, 16 * 1024, 40 * 1024, 200 * 1024] {
            for chunk in [7usize, 1500, 16 * 1024, 64 * 1024, usize::MAX] {
                let msg: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
                let mut wire = msg.clone();
                c.encrypt(&mut wire).unwrap();
                let mut got = Vec::new();
                for piece in wire.chunks(chunk.min(wire.len())) {
                    // As a read would: the piece in a buffer of its own capacity.
                    let mut buf = Vec::with_capacity(piece.len().max(16 * 1024));
                    buf.extend_from_slice(piece);
                    match s.decrypt(&mut buf).unwrap() {
                        None => {}
                        Some(n) => {
                            assert!(n > 0);
                            got.extend_from_slice(&buf);
                        }
                    }
                    while s.has_plaintext() {
                        let mut more = Vec::with_capacity(16 * 1024);
                        match s.decrypt_pending(&mut more).unwrap() {
                            Some(n) => assert!(n > 0, "not closed"),
                            None => break,
                        }
                        got.extend_from_slice(&more);
                    }
                }
                assert_eq!(got.len(), msg.len(), "size {size}, chunks of {chunk}");
                assert!(got == msg, "size {size}, chunks of {chunk}");
            }
        }
    }

    #[test]
    fn a_session_stays_within_a_kib_and_an_idle_one_holds_no_buffer() {
        // The load holds one per wss:// connection (boxed): the allocator's size
        // class above 1 KiB is 1.25 KiB.
        assert!(std::mem::size_of::<Session>() <= 1024);
        let (mut c, mut s) = pair();
        assert!(holds_nothing(&c) && holds_nothing(&s));
        send(&mut c, &mut s, b"hello");
        send(&mut s, &mut c, b"hello back");
        // A record in two reads: its front waits in the session, then is freed.
        let mut wire = vec![42u8; 3000];
        c.encrypt(&mut wire).unwrap();
        let mut rest = wire.split_off(1000);
        assert_eq!(s.decrypt(&mut wire).unwrap(), None);
        assert!(s.partial.len() == 1000 && !s.has_plaintext());
        assert_eq!(s.decrypt(&mut rest).unwrap(), Some(3000));
        assert!(rest.iter().all(|&b| b == 42));
        assert!(holds_nothing(&c) && holds_nothing(&s));
    }

    #[test]
    fn sessions_resume_and_say_so() {
        let configs = configs();
        let (mut c, mut s) = pair_of(&configs);
        assert_eq!(c.negotiated().unwrap().version, "TLSv1.3");
        assert!(!c.negotiated().unwrap().resumed && !s.negotiated().unwrap().resumed);
        send(&mut c, &mut s, b"first");
        let (mut c, mut s) = pair_of(&configs);
        assert!(c.negotiated().unwrap().resumed && s.negotiated().unwrap().resumed);
        send(&mut c, &mut s, b"second");
        send(&mut s, &mut c, b"and back");
    }

    #[test]
    fn tls12_carries_data_resumes_and_closes() {
        let configs = configs_of(&[&rustls::version::TLS12]);
        let (mut c, mut s) = pair_of(&configs);
        assert_eq!(c.negotiated().unwrap().version, "TLSv1.2");
        assert!(!c.negotiated().unwrap().resumed);
        send(&mut c, &mut s, b"over TLS 1.2");
        send(&mut s, &mut c, &[7u8; 40 * 1024]);
        let (mut c, mut s) = pair_of(&configs);
        assert!(c.negotiated().unwrap().resumed && s.negotiated().unwrap().resumed);
        send(&mut c, &mut s, b"resumed");
        c.close_notify();
        let mut wire = Vec::new();
        c.take_outgoing(&mut wire);
        assert_eq!(s.decrypt(&mut wire).unwrap(), Some(0));
        assert!(holds_nothing(&c));
    }

    #[test]
    fn a_request_that_comes_with_the_finished_is_kept_as_plaintext() {
        // The server's side of the handshake over a socket; the client's, by
        // hand over a blocking one, sends its Finished and its request at once.
        use std::io::{Read, Write};
        let (client, server) = configs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            let mut c = Session::client(client, localhost()).unwrap();
            let mut wire = Vec::new();
            c.take_outgoing(&mut wire);
            tcp.write_all(&wire).unwrap();
            while c.is_handshaking() {
                let mut buf = vec![0u8; 16 * 1024];
                let n = tcp.read(&mut buf).unwrap();
                assert!(n > 0, "the server closed during the handshake");
                buf.truncate(n);
                assert_eq!(c.decrypt(&mut buf).unwrap(), None);
            }
            let mut wire = b"GET / HTTP/1.1\r\n\r\n".to_vec();
            c.encrypt(&mut wire).unwrap();
            tcp.write_all(&wire).unwrap();
            // Held open until the server is done with it.
            let _ = tcp.read(&mut [0u8; 1]);
        });
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        let mut s = rt.block_on(async {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_nonblocking(true).unwrap();
            let tcp = monoio::net::TcpStream::from_std(tcp).unwrap();
            let mut s = Session::server(server).unwrap();
            handshake(&tcp, &mut s, b"").await.unwrap();
            s
        });
        // One send carried both: the request waits, no readiness needed.
        assert!(s.has_plaintext());
        let mut buf = Vec::with_capacity(4);
        let mut got = Vec::new();
        while s.has_plaintext() {
            buf.clear();
            assert!(s.decrypt_pending(&mut buf).unwrap().unwrap() > 0);
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(s.negotiated().unwrap().version, "TLSv1.3");
        assert!(holds_nothing(&s));
        drop(s);
        peer.join().unwrap();
    }

    #[test]
    fn the_peers_close_notify_and_a_bare_eof_both_read_as_eof() {
        // close_notify behind the last data, in one read.
        let (mut c, mut s) = pair();
        let mut wire = b"last".to_vec();
        c.encrypt(&mut wire).unwrap();
        c.close_notify();
        c.take_outgoing(&mut wire);
        assert_eq!(s.decrypt(&mut wire).unwrap(), Some(4));
        assert_eq!(wire, b"last");
        assert!(s.has_plaintext());
        let mut buf = Vec::new();
        assert_eq!(s.decrypt_pending(&mut buf).unwrap(), Some(0));
        assert!(s.has_plaintext(), "EOF stays");
        // close_notify alone, through the ring's path.
        let (mut c, mut s) = pair();
        c.close_notify();
        let mut wire = Vec::new();
        c.encrypt(&mut wire).unwrap();
        assert!(!wire.is_empty());
        assert_eq!(s.decrypt(&mut wire).unwrap(), Some(0));
        // A bare TCP EOF (an empty read), even behind the front of a record.
        let (mut c, mut s) = pair();
        let mut wire = b"cut short".to_vec();
        c.encrypt(&mut wire).unwrap();
        wire.truncate(7);
        assert_eq!(s.decrypt(&mut wire).unwrap(), None);
        assert_eq!(s.decrypt(&mut Vec::new()).unwrap(), Some(0));
        assert!(s.has_plaintext());
    }

    #[test]
    fn recv_now_decrypts_in_place_and_reads_both_closes_as_eof() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        use std::os::unix::net::UnixStream;
        let (mut c, mut s) = pair();
        let (mut a, b) = UnixStream::pair().unwrap();
        let fd = b.as_raw_fd();
        let mut out = Vec::with_capacity(64);
        assert_eq!(s.recv_now(fd, &mut out).unwrap(), None);
        // Two records, the second in two pieces; `out` keeps what it held.
        let mut one = b"one".to_vec();
        c.encrypt(&mut one).unwrap();
        let mut two = b"two".to_vec();
        c.encrypt(&mut two).unwrap();
        a.write_all(&one).unwrap();
        a.write_all(&two[..10]).unwrap();
        out.extend_from_slice(b">");
        assert_eq!(s.recv_now(fd, &mut out).unwrap(), Some(3));
        assert_eq!(out, b">one");
        assert_eq!(s.recv_now(fd, &mut out).unwrap(), None);
        a.write_all(&two[10..]).unwrap();
        assert_eq!(s.recv_now(fd, &mut out).unwrap(), Some(3));
        assert_eq!(out, b">onetwo");
        assert!(holds_nothing(&s) && !s.has_plaintext());
        // The peer's close_notify.
        c.close_notify();
        let mut wire = Vec::new();
        c.take_outgoing(&mut wire);
        a.write_all(&wire).unwrap();
        assert_eq!(s.recv_now(fd, &mut out).unwrap(), Some(0));
        assert_eq!(s.recv_now(fd, &mut out).unwrap(), Some(0));
        // A bare EOF.
        let (mut c, mut s) = pair();
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut wire = b"bye".to_vec();
        c.encrypt(&mut wire).unwrap();
        a.write_all(&wire).unwrap();
        drop(a);
        let mut out = Vec::with_capacity(64);
        assert_eq!(s.recv_now(b.as_raw_fd(), &mut out).unwrap(), Some(3));
        assert_eq!(s.recv_now(b.as_raw_fd(), &mut out).unwrap(), Some(0));
        assert!(s.has_plaintext());
    }

    /// Has `s` (a client) ask for a key update, sent with its next records.
    fn request_key_update(s: &mut Session) {
        let Side::Client(c) = &mut s.conn else {
            panic!("a client")
        };
        match c.process_tls_records(&mut s.partial).state {
            Ok(ConnectionState::WriteTraffic(w)) => w.refresh_traffic_keys().unwrap(),
            other => panic!("not ready to write: {other:?}"),
        }
    }

    /// How many records `wire` holds (whole ones, back to back).
    fn records_in(mut wire: &[u8]) -> usize {
        let mut n = 0;
        while wire.len() >= 5 {
            let len = u16::from_be_bytes([wire[3], wire[4]]) as usize;
            wire = &wire[5 + len..];
            n += 1;
        }
        assert!(wire.is_empty());
        n
    }

    #[test]
    fn a_key_update_is_answered_in_front_of_the_next_records() {
        let (mut c, mut s) = pair();
        for round in 0..3 {
            request_key_update(&mut c);
            let mut wire = b"under new keys".to_vec();
            c.encrypt(&mut wire).unwrap();
            assert_eq!(records_in(&wire), 2, "the request, then the data");
            assert_eq!(s.decrypt(&mut wire).unwrap(), Some(14));
            assert_eq!(wire, b"under new keys");
            // rustls answers with the server's next write, not before.
            let mut early = Vec::new();
            s.take_outgoing(&mut early);
            assert!(early.is_empty());
            let mut wire = format!("answer {round}").into_bytes();
            s.encrypt(&mut wire).unwrap();
            assert_eq!(records_in(&wire), 2, "the answer, then the data");
            assert_eq!(c.decrypt(&mut wire).unwrap(), Some(8));
            assert_eq!(wire, format!("answer {round}").as_bytes());
            send(&mut c, &mut s, b"and on");
            send(&mut s, &mut c, b"both ways");
        }
        assert!(holds_nothing(&c) && holds_nothing(&s));
    }

    #[test]
    fn an_alert_found_while_reading_comes_out_of_take_outgoing() {
        let (mut c, mut s) = pair();
        let mut wire = b"tampered with".to_vec();
        c.encrypt(&mut wire).unwrap();
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let e = s.decrypt(&mut wire).unwrap_err();
        assert_eq!(failure(&e).unwrap().cause, "tls_error");
        let mut alert = Vec::new();
        s.take_outgoing(&mut alert);
        assert!(!alert.is_empty());
        let e = c.decrypt(&mut alert).unwrap_err();
        let f = failure(&e).unwrap();
        assert_eq!(f.cause, "tls_alert");
        assert!(f.detail.contains("BadRecordMac"), "{f}");
        // Nothing more can be sent.
        assert!(s.encrypt(&mut b"x".to_vec()).is_err());
    }

    #[test]
    fn self_signed_chain_verifies_for_its_names() {
        let s = self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(s.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(s.chain.len(), 2);
        // The leaf verifies against the CA for both names, and not for another.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(s.chain[1].clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let now = rustls::pki_types::UnixTime::now();
        for name in ["localhost", "127.0.0.1"] {
            let n = ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&s.chain[0], &s.chain[1..], &n, &[], now)
                .unwrap();
        }
        let other = ServerName::try_from("example.com").unwrap();
        assert!(verifier
            .verify_server_cert(&s.chain[0], &s.chain[1..], &other, &[], now)
            .is_err());
    }
}
