//! A connection's byte stream, plain TCP or TLS over it, for both sides: readiness,
//! non-blocking takes, the seal that turns plaintext into records before a write,
//! and the split into a read half and a write half that the open loop (and the
//! broadcast server) run concurrently in one task.
//!
//! Plain streams keep every fast path they had (io_uring reads, cancelable reads,
//! writes straight from the pooled buffer); a TLS stream reads readiness first
//! (`tls::Session::recv_now`) and seals each write in place. Callers write through
//! `tcp_mut()` after `seal`, so their write loops stay what they were.
//!
//! Part of `net/`, the wire layer: it must never import `shard/`, `server/` or
//! anything of the load layer and above.

use super::sock::{self, half_stream};
use super::tls::Session;
use monoio::io::{AsyncReadRent, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;

/// What a connection reads from: a stream, or the read half of one.
pub trait ReadSide {
    /// Waits until a read has something to take (or EOF, or an error), holding
    /// no buffer.
    fn readable(&self) -> impl Future<Output = io::Result<()>>;
    /// Takes what can be read now, without waiting (see `Stream::recv_now`).
    fn recv_now(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>>;
    fn is_tls(&self) -> bool;
    /// An io_uring read, holding `buf` until data comes (for TLS: until a whole
    /// record came).
    fn ring_read(&mut self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;
}

impl ReadSide for Stream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        Stream::readable(self)
    }
    fn recv_now(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        Stream::recv_now(self, buf)
    }
    fn is_tls(&self) -> bool {
        Stream::is_tls(self)
    }
    #[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see `tls_read`
    fn ring_read(&mut self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)> {
        async move {
            match &mut self.tls {
                None => self.tcp.read(buf).await,
                Some(s) => Box::pin(tls_ring_read(&mut self.tcp, &mut **s, buf, None)).await,
            }
        }
    }
}

impl ReadSide for ReadHalf {
    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        ReadHalf::readable(self)
    }
    fn recv_now(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        ReadHalf::recv_now(self, buf)
    }
    fn is_tls(&self) -> bool {
        ReadHalf::is_tls(self)
    }
    #[allow(clippy::manual_async_fn)] // smaller than an `async fn`: see `tls_read`
    fn ring_read(&mut self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)> {
        async move {
            match &self.tls {
                None => self.tcp.read(buf).await,
                Some(s) => Box::pin(tls_ring_read(&mut self.tcp, &**s, buf, None)).await,
            }
        }
    }
}

/// A connection's stream: TCP, with a TLS session over it for `wss://`.
pub struct Stream {
    tcp: TcpStream,
    tls: Option<Box<Session>>,
}

impl Stream {
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream { tcp, tls: None }
    }

    /// Runs the TLS handshake over `tcp` (`early`: bytes the peer already sent,
    /// such as what a proxy passed on behind its answer).
    pub async fn handshake(
        tcp: TcpStream,
        mut session: Box<Session>,
        early: &[u8],
    ) -> Result<Stream, io::Error> {
        super::tls::handshake(&tcp, &mut session, early).await?;
        Ok(Stream {
            tcp,
            tls: Some(session),
        })
    }

    /// Runs the TLS handshake over this plain stream, which then carries TLS
    /// (in place: a connection task holds one stream, not a socket and a stream).
    pub async fn start_tls(&mut self, mut session: Box<Session>, early: &[u8]) -> io::Result<()> {
        super::tls::handshake(&self.tcp, &mut session, early).await?;
        self.tls = Some(session);
        Ok(())
    }

    /// The TCP stream of a plain stream (a tunnel made over it, TLS next); a TLS
    /// session, if any, is dropped.
    pub fn into_tcp(self) -> TcpStream {
        self.tcp
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The TCP stream, for writes of what `seal` made and plain reads.
    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    pub fn session(&self) -> Option<&Session> {
        self.tls.as_deref()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// Waits until a read has something to take (or EOF, or an error), holding no
    /// buffer: at once when TLS already holds decrypted bytes.
    pub async fn readable(&self) -> io::Result<()> {
        if self.tls.as_ref().is_some_and(|s| s.has_plaintext()) {
            return Ok(());
        }
        self.tcp.readable(false).await
    }

    /// Takes what can be read now into the spare capacity of `buf` (plaintext for
    /// TLS), without waiting: `Ok(None)` nothing yet, `Ok(Some(0))` EOF.
    pub fn recv_now(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        match &mut self.tls {
            Some(s) => s.recv_now(self.tcp.as_raw_fd(), buf),
            None => sock::recv_now(self.tcp.as_raw_fd(), buf),
        }
    }

    /// Reads once (waiting as long as it takes): an io_uring read for plain TCP;
    /// readiness and a non-blocking take for TLS, until a whole record came.
    pub async fn read(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if self.tls.is_none() {
            return self.tcp.read(buf).await;
        }
        loop {
            if let Err(e) = self.readable().await {
                return (Err(e), buf);
            }
            match self.recv_now(&mut buf) {
                Ok(None) => continue,
                Ok(Some(n)) => return (Ok(n), buf),
                Err(e) => return (Err(e), buf),
            }
        }
    }

    /// For TLS: a read through the ring, cancelled through `cancel`
    /// (ECANCELED), the records it brought decrypted in place (reading again
    /// while a record is still partial; plaintext rustls already holds comes
    /// first). Plain streams read through `tcp_mut()` instead. Boxed: the caller
    /// sits in every connection's task, whose size is memory per connection, and
    /// only wss:// connections pay for this loop's state.
    pub fn tls_read(&mut self, buf: Vec<u8>, cancel: monoio::io::CancelHandle) -> BoxedRead<'_> {
        match &mut self.tls {
            Some(s) => Box::pin(tls_ring_read(&mut self.tcp, &mut **s, buf, Some(cancel))),
            None => {
                use monoio::io::CancelableAsyncReadRent;
                Box::pin(self.tcp.cancelable_read(buf, cancel))
            }
        }
    }

    /// Turns the plaintext in `buf` into the TLS records that carry it (nothing
    /// to do for plain TCP). Then write `buf` through `tcp_mut()`.
    #[inline]
    pub fn seal(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        match &mut self.tls {
            Some(s) => s.encrypt(buf),
            None => Ok(()),
        }
    }

    /// Sends `buf` (plaintext) if the socket takes it at once: best effort, for a
    /// close when the close window is over.
    pub fn send_now(&mut self, buf: &mut Vec<u8>) {
        if self.seal(buf).is_ok() {
            let _ = super::tls::send_now(self.tcp.as_raw_fd(), buf);
        }
    }

    /// The two halves, for a reader and a writer in one task.
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        let (rd, wr) = self.tcp.into_split();
        let tls = self.tls.map(|s| Rc::new(RefCell::new(s)));
        (
            ReadHalf {
                tcp: rd,
                tls: tls.clone(),
            },
            WriteHalf { tcp: wr, tls },
        )
    }

    /// The stream the halves came from.
    pub fn reunite(rd: ReadHalf, wr: WriteHalf) -> Stream {
        let tls = rd.tls;
        drop(wr.tls);
        let tcp = match rd.tcp.reunite(wr.tcp) {
            Ok(s) => s,
            Err(_) => unreachable!("both halves come from the same stream"),
        };
        let tls = tls.map(|s| match Rc::try_unwrap(s) {
            Ok(s) => s.into_inner(),
            Err(_) => unreachable!("the write half's share was dropped"),
        });
        Stream { tcp, tls }
    }
}

/// A read's future, boxed: what it read into the buffer it gives back.
pub type BoxedRead<'a> = Pin<Box<dyn Future<Output = (io::Result<usize>, Vec<u8>)> + 'a>>;

/// A TLS session as a reader reaches it: its own, or shared with a write half
/// (borrowed only between two waits, never across one).
trait SessionRef {
    fn with<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> T;
}

impl SessionRef for &mut Session {
    fn with<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> T {
        f(self)
    }
}

impl SessionRef for &RefCell<Box<Session>> {
    fn with<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> T {
        f(&mut self.borrow_mut())
    }
}

/// A read through the ring over TLS (see `Stream::cancelable_read`), for a
/// stream or a read half; cancelable when given a handle.
async fn tls_ring_read<R: monoio::io::CancelableAsyncReadRent>(
    tcp: &mut R,
    mut session: impl SessionRef,
    mut buf: Vec<u8>,
    cancel: Option<monoio::io::CancelHandle>,
) -> (io::Result<usize>, Vec<u8>) {
    loop {
        if session.with(|s| s.has_plaintext()) {
            match session.with(|s| s.decrypt_pending(&mut buf)) {
                Ok(None) => {}
                Ok(Some(n)) => return (Ok(n), buf),
                Err(e) => return (Err(e), buf),
            }
        }
        buf.clear();
        let (res, b) = match &cancel {
            Some(c) => tcp.cancelable_read(buf, c.clone()).await,
            None => tcp.read(buf).await,
        };
        buf = b;
        if let Err(e) = res {
            return (Err(e), buf);
        }
        match session.with(|s| s.decrypt(&mut buf)) {
            Ok(None) => continue,
            Ok(Some(n)) => return (Ok(n), buf),
            Err(e) => return (Err(e), buf),
        }
    }
}

/// The read side of a split stream.
pub struct ReadHalf {
    tcp: OwnedReadHalf<TcpStream>,
    tls: Option<Rc<RefCell<Box<Session>>>>,
}

impl ReadHalf {
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// As `Stream::tls_read`.
    pub fn tls_read(&mut self, buf: Vec<u8>, cancel: monoio::io::CancelHandle) -> BoxedRead<'_> {
        match &self.tls {
            Some(s) => Box::pin(tls_ring_read(&mut self.tcp, &**s, buf, Some(cancel))),
            None => {
                use monoio::io::CancelableAsyncReadRent;
                Box::pin(self.tcp.cancelable_read(buf, cancel))
            }
        }
    }

    /// The TCP read half, for io_uring reads of a plain stream.
    pub fn tcp_mut(&mut self) -> &mut OwnedReadHalf<TcpStream> {
        &mut self.tcp
    }

    /// As `Stream::readable`.
    pub async fn readable(&self) -> io::Result<()> {
        if self
            .tls
            .as_ref()
            .is_some_and(|s| s.borrow().has_plaintext())
        {
            return Ok(());
        }
        half_stream(&self.tcp).readable(false).await
    }

    /// As `Stream::recv_now`.
    pub fn recv_now(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        let fd = half_stream(&self.tcp).as_raw_fd();
        match &self.tls {
            Some(s) => s.borrow_mut().recv_now(fd, buf),
            None => sock::recv_now(fd, buf),
        }
    }
}

/// The write side of a split stream.
pub struct WriteHalf {
    tcp: OwnedWriteHalf<TcpStream>,
    tls: Option<Rc<RefCell<Box<Session>>>>,
}

impl WriteHalf {
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// As `Stream::seal`.
    #[inline]
    pub fn seal(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        match &self.tls {
            Some(s) => s.borrow_mut().encrypt(buf),
            None => Ok(()),
        }
    }

    /// The TCP write half, for writes of what `seal` made.
    pub fn tcp_mut(&mut self) -> &mut OwnedWriteHalf<TcpStream> {
        &mut self.tcp
    }
}
