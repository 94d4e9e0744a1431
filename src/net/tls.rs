//! TLS under a connection, for both sides (the load's `wss://` connections and the
//! built-in server's): a rustls session fed straight from the socket, the async
//! handshake, the stable cause names of TLS failures and the fix each one asks
//! for, and the self-signed certificates of `serve --tls-self-signed` and
//! `run --tls`.
//!
//! rustls does no I/O. Reads go readiness first (as every idle read here does):
//! when the socket is readable its bytes go from the kernel into rustls's own
//! record buffer (`read_tls` over a non-blocking `recv`), and the plaintext comes
//! out into the caller's pooled buffer, so a quiet connection holds no buffer of
//! ours, only the session. Writes encrypt the caller's plaintext into rustls's
//! records and take the records back into the same buffer, which is then written.
//! The buffered `rustls::Connection` rather than its unbuffered API: one code path
//! for client and server, close_notify and key updates handled by rustls; its
//! cost per message and per held connection is measured in benches/README.md.
//!
//! The crypto provider is aws-lc-rs, chosen by measurement against ring
//! (benches/tls-provider, scripts/bench-tls-provider.sh; figures in its README):
//! full handshakes cost the client 9-15% less CPU and the built-in server 14% (ECDSA)
//! to 46% (RSA) less, resumed ones 14% less; records per message are within 3%
//! either way; an idle connection holds about 200 bytes more.
//!
//! Part of `net/`, the wire layer: it must never import `shard/`, `server/` or
//! anything of the load layer and above.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, Connection, Error as TlsError};
use std::fmt;
use std::io::{self, Read, Write};
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
    conn: Connection,
    /// The peer closed (TCP EOF seen by rustls).
    eof: bool,
    /// Decrypted bytes (or the peer's close) wait to be taken: a read needs no
    /// readiness.
    pending: bool,
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

/// A TLS failure: its stable cause name (counted in the ledger) and, for the
/// first connection that meets it, what went wrong and how to fix it.
#[derive(Debug)]
pub struct Failure {
    pub cause: &'static str,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause, self.detail)
    }
}

impl std::error::Error for Failure {}

/// The TLS failure an I/O error carries, if it is one.
pub fn failure(e: &io::Error) -> Option<&Failure> {
    e.get_ref().and_then(|i| i.downcast_ref::<Failure>())
}

impl Session {
    pub fn client(
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Self> {
        let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| failed(&e))?;
        // `encrypt` takes every record out at once: no limit needed (or wanted:
        // a message larger than rustls's default 64 KiB would not go out).
        conn.set_buffer_limit(None);
        Ok(Session {
            conn: conn.into(),
            eof: false,
            pending: false,
        })
    }

    pub fn server(config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let mut conn = rustls::ServerConnection::new(config).map_err(|e| failed(&e))?;
        conn.set_buffer_limit(None);
        Ok(Session {
            conn: conn.into(),
            eof: false,
            pending: false,
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether decrypted bytes (or the peer's close) wait to be taken: a read
    /// needs no readiness.
    pub fn has_plaintext(&self) -> bool {
        self.pending
    }

    /// Notes whether plaintext waits in rustls (after a handshake, whose last
    /// flight may carry the first application bytes).
    fn refresh_pending(&mut self) {
        self.pending = match self.conn.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || self.eof,
            // The error comes back from the next read.
            Err(_) => true,
        };
    }

    /// Moves the records rustls wants sent (handshake, alerts, key updates) onto `out`.
    pub fn take_outgoing(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    /// Feeds what the socket holds now to rustls, without waiting. `Ok(true)` when
    /// something came (or the peer closed), `Ok(false)` when there was nothing.
    /// Stops taking more once plaintext is waiting: memory stays bounded by one
    /// read of records.
    fn fill(&mut self, fd: RawFd) -> io::Result<bool> {
        let mut got = false;
        loop {
            match self.conn.read_tls(&mut FdReader(fd)) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(true);
                }
                Ok(_) => got = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // rustls's record buffer is full: process what it holds first.
                Err(e) if e.kind() == io::ErrorKind::Other && got => return Ok(true),
                Err(e) => return Err(e),
            }
            let state = self.conn.process_new_packets().map_err(|e| failed(&e))?;
            if state.plaintext_bytes_to_read() > 0 {
                return Ok(true);
            }
        }
    }

    /// Takes the plaintext waiting, and what the socket holds now, into the spare
    /// capacity of `out`, without waiting. Same answers as `sock::recv_now`:
    /// `Ok(None)` nothing yet (a partial record, or nothing at all), `Ok(Some(0))`
    /// the peer closed, `Ok(Some(n))` n bytes appended.
    pub fn recv_now(&mut self, fd: RawFd, out: &mut Vec<u8>) -> io::Result<Option<usize>> {
        if out.len() == out.capacity() {
            out.reserve(1024);
        }
        let start = out.len();
        loop {
            let n = self.drain_plaintext(out)?;
            if n == Drained::Closed {
                return Ok(Some(out.len() - start));
            }
            if out.len() > start || out.len() == out.capacity() {
                return Ok(Some(out.len() - start));
            }
            if !self.fill(fd)? {
                return Ok(None);
            }
        }
    }

    /// Feeds the records a read brought (the bytes of `buf`; none: the peer
    /// closed) to rustls and replaces them with the plaintext that came out, for
    /// reads through the ring. Same answers as `recv_now`: `Ok(None)` when no
    /// whole record came yet (read again), `Ok(Some(0))` the peer closed.
    pub fn decrypt(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        if buf.is_empty() {
            self.eof = true;
            let _ = self.conn.read_tls(&mut &[][..]);
        }
        let n = buf.len();
        let mut at = 0;
        // What rustls could not take before its plaintext was drained (reads
        // larger than its buffers: rare, so copied aside).
        let mut rest: Option<Vec<u8>> = None;
        while at < n {
            match self.conn.read_tls(&mut &buf[at..n]) {
                Ok(k) if k > 0 => at += k,
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Other => {
                    rest = Some(buf[at..n].to_vec());
                    break;
                }
                Err(e) => return Err(e),
            }
            self.conn.process_new_packets().map_err(|e| failed(&e))?;
        }
        buf.clear();
        let mut closed = self.drain_plaintext(buf)? == Drained::Closed;
        if let Some(rest) = rest {
            let mut input = &rest[..];
            while !input.is_empty() {
                // Make room: everything decrypted so far goes into `buf`.
                buf.reserve(input.len());
                closed |= self.drain_plaintext(buf)? == Drained::Closed;
                match self.conn.read_tls(&mut input) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Other => {}
                    Err(e) => return Err(e),
                }
                self.conn.process_new_packets().map_err(|e| failed(&e))?;
            }
            buf.reserve(16 * 1024);
            closed |= self.drain_plaintext(buf)? == Drained::Closed;
        }
        match (buf.len(), closed) {
            (0, true) => Ok(Some(0)),
            (0, false) => Ok(None),
            (len, _) => Ok(Some(len)),
        }
    }

    /// The plaintext rustls already holds, into the spare capacity of `buf`:
    /// `Some(n)` bytes taken (0: the peer closed), None when there was none.
    pub fn decrypt_pending(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        if buf.len() == buf.capacity() {
            buf.reserve(1024);
        }
        let start = buf.len();
        let closed = self.drain_plaintext(buf)? == Drained::Closed;
        Ok(match buf.len() - start {
            0 if !closed => None,
            n => Some(n),
        })
    }

    /// Copies the decrypted bytes rustls holds into the spare capacity of `out`.
    fn drain_plaintext(&mut self, out: &mut Vec<u8>) -> io::Result<Drained> {
        self.conn.process_new_packets().map_err(|e| failed(&e))?;
        loop {
            let len = out.len();
            if len == out.capacity() {
                // Full: more may wait (or the peer's close behind the data).
                self.pending = self.eof
                    || self.conn.process_new_packets().map_or(true, |s| {
                        s.plaintext_bytes_to_read() > 0 || s.peer_has_closed()
                    });
                return Ok(Drained::More);
            }
            out.resize(out.capacity(), 0);
            let r = self.conn.reader().read(&mut out[len..]);
            match r {
                Ok(0) => {
                    out.truncate(len);
                    self.pending = true;
                    return Ok(Drained::Closed);
                }
                Ok(n) => out.truncate(len + n),
                Err(e) => {
                    out.truncate(len);
                    self.pending = self.eof;
                    return match e.kind() {
                        io::ErrorKind::WouldBlock if self.eof => Ok(Drained::Closed),
                        io::ErrorKind::WouldBlock => Ok(Drained::More),
                        // Closed without close_notify: an EOF all the same.
                        io::ErrorKind::UnexpectedEof => {
                            self.pending = true;
                            Ok(Drained::Closed)
                        }
                        _ => Err(e),
                    };
                }
            }
        }
    }

    /// Replaces the plaintext in `buf` with the records that carry it (and any
    /// record rustls had waiting before them).
    pub fn encrypt(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        self.conn.writer().write_all(buf)?;
        buf.clear();
        self.take_outgoing(buf);
        Ok(())
    }

    /// Queues a close_notify (sent with the next write).
    pub fn close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// What the handshake settled on (None while it runs).
    pub fn negotiated(&self) -> Option<Negotiated> {
        let suite = self.conn.negotiated_cipher_suite()?;
        let version = match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        Some(Negotiated {
            version,
            suite: suite.suite().as_str().unwrap_or("unknown"),
            resumed: self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        })
    }
}

#[derive(PartialEq)]
enum Drained {
    /// Nothing more waits (or `out` is full).
    More,
    /// The peer closed.
    Closed,
}

/// The handshake over `tcp`: records out, records in, until it completes.
/// `early` holds bytes that already came from the peer (a proxy's tunnel may pass
/// them on). A failure is an I/O error carrying a `Failure`.
pub async fn handshake(
    tcp: &monoio::net::TcpStream,
    session: &mut Session,
    early: &[u8],
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    if !early.is_empty() {
        let mut rd = early;
        while !rd.is_empty() {
            session.conn.read_tls(&mut rd)?;
            session.conn.process_new_packets().map_err(|e| failed(&e))?;
        }
    }
    loop {
        if session.conn.wants_write() {
            let mut out = Vec::new();
            session.take_outgoing(&mut out);
            // monoio needs an owned buffer; `&mut` to the stream only for the call.
            write_all_now(tcp, &out).await?;
        }
        if !session.is_handshaking() {
            session.refresh_pending();
            return Ok(());
        }
        tcp.readable(false).await?;
        let got = match session.fill(fd) {
            Ok(got) => got,
            Err(e) => {
                // Tell the peer why (an alert), best effort.
                let mut out = Vec::new();
                session.take_outgoing(&mut out);
                let _ = send_now(fd, &out);
                return Err(e);
            }
        };
        if got && session.eof && session.is_handshaking() {
            return Err(io::Error::other(Failure {
                cause: "closed_during_tls",
                detail: "the server closed the connection during the TLS handshake: is it a \
                         TLS server (wss://), and does it accept this client?"
                    .into(),
            }));
        }
    }
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

/// `read_tls`'s source: a non-blocking `recv` on the socket.
struct FdReader(RawFd);

impl Read for FdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is writable for `buf.len()` bytes; recv writes at most that.
        let n = unsafe {
            libc::recv(
                self.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            Ok(n as usize)
        } else {
            Err(io::Error::last_os_error())
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

    /// A client and a server session, handshake done, over in-memory buffers.
    fn pair() -> (Session, Session) {
        let made = self_signed(&["localhost".into()]).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
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
        let name = ServerName::try_from("localhost").unwrap();
        let mut c = Session::client(Arc::new(client), name).unwrap();
        let mut s = Session::server(Arc::new(server)).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            c.take_outgoing(&mut wire);
            if !wire.is_empty() {
                s.decrypt(&mut wire).unwrap();
            }
            let mut wire = Vec::new();
            s.take_outgoing(&mut wire);
            if !wire.is_empty() {
                c.decrypt(&mut wire).unwrap();
            }
        }
        assert!(!c.is_handshaking() && !s.is_handshaking());
        (c, s)
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
