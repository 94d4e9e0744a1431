//! Socket helpers shared by the load's connections and the built-in server:
//! readiness first, then a non-blocking `recv` (how a waiting connection holds no
//! buffer), and the stable cause names of I/O errors (`io_cause`, and `Failure`:
//! an error that carries a cause of its own, as TLS's do).
//!
//! An io_uring read owns its buffer until data comes, so ten thousand quiet
//! connections each reading would hold ten thousand buffers. Waiting for readiness
//! (a poll operation, no buffer) and then taking what the socket holds with
//! `recv(MSG_DONTWAIT)` into a borrowed buffer, given back at once, costs one more
//! operation per read: worth it for connections that wait, not for busy ones.
//!
//! Part of `net/`, below both sides: it must never import `shard/` or `server/`,
//! nor `tls` or `stream`, which build on it.

use monoio::io::OwnedReadHalf;
use monoio::net::TcpStream;
use std::io;
use std::os::fd::RawFd;

/// The stream behind a read half, for readiness and the fd only.
pub(crate) fn half_stream(rd: &OwnedReadHalf<TcpStream>) -> &TcpStream {
    // SAFETY: the halves share the stream through an `UnsafeCell`, and monoio's own
    // `read`/`write` on them take `&mut` to it concurrently (TcpStream is `Split`:
    // its reads and writes are independent). Readiness only clones the shared fd
    // into a poll operation, and the fd is a plain integer: neither touches anything
    // the write half uses.
    unsafe { &*rd.0.get() }
}

/// Reads what the socket holds now into the spare capacity of `buf`, without
/// waiting: `Ok(None)` when there is nothing, `Ok(Some(0))` at EOF.
pub(crate) fn recv_now(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    if buf.len() == buf.capacity() {
        buf.reserve(1024);
    }
    let spare = buf.spare_capacity_mut();
    loop {
        // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf`;
        // recv writes at most that many and returns how many it wrote.
        let n = unsafe {
            libc::recv(
                fd,
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: the kernel initialised the first `n` spare bytes.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(Some(n));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// A failure with a cause of its own (a TLS one): its stable cause name (counted in the ledger) and, for the
/// first connection that meets it, what went wrong and how to fix it.
#[derive(Debug)]
pub struct Failure {
    pub cause: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.cause, self.detail)
    }
}

impl std::error::Error for Failure {}

/// The failure with a cause of its own (a TLS one) an I/O error carries, if any.
pub fn failure(e: &io::Error) -> Option<&Failure> {
    e.get_ref().and_then(|i| i.downcast_ref::<Failure>())
}

/// Stable cause names for I/O errors.
pub fn io_cause(e: &io::Error) -> &'static str {
    if let Some(f) = failure(e) {
        return f.cause;
    }
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused",
        Some(libc::ECONNRESET) => "reset",
        Some(libc::EPIPE) => "broken_pipe",
        Some(libc::EADDRNOTAVAIL) => "port_exhausted",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "fd_limit",
        Some(libc::ETIMEDOUT) => "timed_out",
        Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) => "unreachable",
        Some(libc::ENOBUFS) | Some(libc::ENOMEM) => "no_memory",
        _ => match e.kind() {
            io::ErrorKind::ConnectionRefused => "refused",
            io::ErrorKind::ConnectionReset => "reset",
            io::ErrorKind::TimedOut => "timed_out",
            _ => "io_error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn recv_now_reads_what_is_there_and_never_waits() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut buf = Vec::with_capacity(16);
        assert!(recv_now(b.as_raw_fd(), &mut buf).unwrap().is_none());
        a.write_all(b"hello").unwrap();
        assert_eq!(recv_now(b.as_raw_fd(), &mut buf).unwrap(), Some(5));
        assert_eq!(buf, b"hello");
        // Appends to what the buffer holds, up to its capacity.
        a.write_all(&[7u8; 40]).unwrap();
        assert_eq!(recv_now(b.as_raw_fd(), &mut buf).unwrap(), Some(11));
        assert_eq!(buf.len(), 16);
        drop(a);
        let mut rest = Vec::with_capacity(64);
        assert_eq!(recv_now(b.as_raw_fd(), &mut rest).unwrap(), Some(29));
        assert_eq!(recv_now(b.as_raw_fd(), &mut rest).unwrap(), Some(0));
    }
}
