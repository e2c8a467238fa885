//! What the loop needs from the operating system beyond `mio`: the file descriptor
//! limit, a listener with a full-size backlog, the classification of accept errors, and
//! a TCP socket's unsent bytes.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::{Domain, Socket, Type};

/// `listen()` silently caps the backlog at `net.core.somaxconn`, so asking for the most
/// gets whatever the system allows (4096 on current kernels).
pub(crate) const BACKLOG: i32 = 65_535;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = nofile()?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// The soft `RLIMIT_NOFILE` (1024 if it cannot be read).
pub fn fd_limit() -> u64 {
    nofile().map_or(1024, |limit| limit.rlim_cur)
}

fn nofile() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// The kernel's cap on a listen backlog, if it can be read.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A non-blocking listener with `SO_REUSEADDR` (a restart does not wait for old
/// connections in TIME_WAIT) and the largest backlog the system allows; with
/// `reuse_port`, `SO_REUSEPORT` too: several processes (of the same user) listen on the
/// same port, and the kernel spreads new connections over them.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        None,
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Accept errors that concern one connection only (it was reset while queued, or a
/// signal interrupted the call): carry on accepting.
pub fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(libc::EPROTO)
}

/// Bytes written to the TCP socket `fd` and not sent yet (`SIOCOUTQNSD`): those still
/// queued behind the congestion window, not those in flight.
pub fn unsent_bytes(fd: RawFd) -> io::Result<usize> {
    queue_ioctl(fd, libc::SIOCOUTQNSD)
}

/// Bytes written to the unix stream socket `fd` that its peer has not read yet
/// (`SIOCOUTQ`, which is `TIOCOUTQ`: the memory they take, so a little more than the
/// bytes themselves).
pub fn unread_bytes(fd: RawFd) -> io::Result<usize> {
    queue_ioctl(fd, libc::TIOCOUTQ as libc::c_ulong)
}

/// A socket's queue size, from an ioctl that writes one int.
fn queue_ioctl(fd: RawFd, request: libc::c_ulong) -> io::Result<usize> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: SIOCOUTQ and SIOCOUTQNSD write one int through the pointer, to `bytes`,
    // which lives across the call.
    if unsafe { libc::ioctl(fd, request as _, &mut bytes) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(bytes).unwrap_or(0))
}
