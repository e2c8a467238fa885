//! What starting or running a server can fail with: one small enum, each variant a kind
//! of mistake its caller handles differently (the binary exits 2 for the first two, 1
//! for the others).

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why a server did not start, or stopped serving.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A bad value given to the [`Builder`](crate::Builder): a path, a stream spec, a
    /// limit. The message names the method's subject (`stream /cam: …`).
    Config(String),
    /// A stream could not be built: its folder, script or standard input.
    Stream(String),
    /// The listen address cannot be used: taken, not an address of this machine, or not
    /// allowed.
    Bind { addr: SocketAddr, source: io::Error },
    /// A unix socket's path cannot be used (taken, a stale socket, a folder not
    /// writable), or a listener handed over is not one: `what` says which.
    Listen { what: String, source: io::Error },
    /// A system call the server cannot serve without failed (`epoll`, a thread).
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(message) | Error::Stream(message) => f.write_str(message),
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Listen { what, source } => write!(f, "cannot listen on {what}: {source}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Listen { source, .. } | Error::Io(source) => Some(source),
            Error::Config(_) | Error::Stream(_) => None,
        }
    }
}
