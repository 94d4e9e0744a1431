//! TCP connect from a chosen source address (`--source-ip`).
//!
//! monoio's `connect_addr` creates its own socket, so it cannot bind first. Here the
//! socket is made by hand: non-blocking, `IP_BIND_ADDRESS_NO_PORT` (the kernel picks
//! the port at connect time, per destination, so each (source, destination) pair
//! has the whole ephemeral range), bound to the source with port 0, connected
//! (EINPROGRESS), handed to the runtime and awaited for writability; the connect's
//! outcome is then read from SO_ERROR. An exhausted pair fails with EADDRNOTAVAIL,
//! which the ledger counts as `port_exhausted`.
//!
//! Imports nothing of wsherd's: sockets only.

use monoio::net::TcpStream;
use socket2::{Domain, SockRef, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// Connects to `dest`, from `source` when given (else as the kernel routes).
pub async fn connect(source: Option<IpAddr>, dest: SocketAddr) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect_addr(dest).await;
    };
    let domain = if dest.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(domain, Type::STREAM.nonblocking().cloexec(), None)?;
    bind_no_port(&sock)?;
    sock.bind(&SocketAddr::new(source, 0).into())?;
    match sock.connect(&dest.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(sock))?;
    stream.writable(false).await?;
    // SAFETY: the fd stays open (owned by `stream`) while the borrow lives.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    if let Some(e) = SockRef::from(&fd).take_error()? {
        return Err(e);
    }
    Ok(stream)
}

fn bind_no_port(sock: &Socket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket, a c_int option value of the right length.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
