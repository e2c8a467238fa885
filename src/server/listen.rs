//! The listeners, and the connections they accept: TCP (`IP:PORT`, `[IPv6]:PORT`,
//! with `SO_REUSEPORT` when asked, so that several processes share a port), unix stream
//! sockets (`unix:PATH`), and listeners inherited ready-made (systemd's socket
//! activation, or an embedding program's). The loop keeps them in one `Listeners`
//! table and accepts from them in turn; what they accept is a [`Peer`], one type for
//! both kinds, which is the [`Socket`] of a [`Conn`](super::conn::Conn).
//!
//! Invariants:
//! - Every listener and every accepted socket is non-blocking and close-on-exec (an
//!   `exec:` child never holds a listener open).
//! - A socket file gets its mode before `listen()`: no client can connect while it has
//!   the umask's mode.
//! - A file already at a unix listener's path is removed only when asked
//!   ([`UnixOptions::remove_stale`]), only if it is a socket, and only if nothing
//!   answers on it: a live server's socket is refused, never taken over.
//! - The socket file is removed when its listener goes (the graceful stop drops the
//!   listeners first), by the listener that made it only (never an inherited one), and
//!   only while it is still the same file (device and inode): another server's socket
//!   made at the path since is left alone.
//! - A listener marked for the PROXY protocol (`--listen proxy:ADDR`) says so with each
//!   connection it hands out (`Listeners::proxied`); the connection reads the header.
//! - Accepting is fair: each turn of `Listeners::next_ready` hands out the ready
//!   listeners round-robin, starting past the one served last, so the loop's one
//!   per-turn accept cap is shared and a flood on one listener cannot starve another.

use std::fmt;
use std::fs;
use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use socket2::{Domain, SockAddr, Socket as RawSocket, Type};

use crate::error::Error;
use crate::server::conn::Socket;
use crate::sys;

/// Listeners one server holds at most: their tokens are a fixed range of the loop's.
pub const MAX_LISTENERS: usize = 64;

/// The longest path a unix socket can have: `sun_path` holds 108 bytes, with the NUL.
const MAX_UNIX_PATH: usize = 107;

/// Where a server listens: a TCP address, or the path of a unix stream socket.
///
/// Parsed from the binary's `--listen` syntax: `IP:PORT`, `[IPv6]:PORT` or `unix:PATH`;
/// shown the same way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// An IPv4 or IPv6 address and port (port 0: the system picks one).
    Tcp(SocketAddr),
    /// A unix stream socket's path. (A socket inherited without a path shows its
    /// abstract name as `@NAME`, or `(unnamed)`.)
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<ListenAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            check_unix_path(Path::new(path))?;
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        text.parse().map(ListenAddr::Tcp).map_err(|_| {
            format!(
                "invalid address '{}': expected IP:PORT, [IPv6]:PORT or unix:PATH",
                text.escape_debug()
            )
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> ListenAddr {
        ListenAddr::Tcp(addr)
    }
}

/// A path `bind` can take: not empty, no NUL, short enough for `sun_path`.
pub(crate) fn check_unix_path(path: &Path) -> Result<(), String> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() || bytes.contains(&0) || bytes.len() > MAX_UNIX_PATH {
        return Err(format!(
            "invalid unix socket path '{}': expected 1 to {MAX_UNIX_PATH} bytes without NUL",
            path.display()
        ));
    }
    Ok(())
}

/// How the unix sockets the server makes are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnixOptions {
    /// The socket file's permission bits (`0o660`, say); without, the umask decides.
    pub mode: Option<u32>,
    /// Remove a stale socket file found at the path (one nothing listens on).
    pub remove_stale: bool,
}

/// One listener of either kind.
#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A socket file this process made: removed when dropped, if it is still the same file.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn made_at(path: &Path) -> io::Result<SocketFile> {
        let meta = fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let same = fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if same {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A listener, what it listens on, and whether it may have connections waiting.
#[derive(Debug)]
struct Bound {
    // Declared before the file: the socket closes before its file is removed.
    listener: Listener,
    addr: ListenAddr,
    /// Held for its `Drop`, which removes the file.
    _file: Option<SocketFile>,
    /// Edge-triggered: set by its readiness event, cleared by `WouldBlock`.
    ready: bool,
    /// Its connections start with a PROXY protocol header.
    proxy: bool,
}

/// A TCP listener on `addr`, with `SO_REUSEPORT` if asked.
fn bind_tcp(addr: SocketAddr, reuse_port: bool) -> io::Result<Bound> {
    let listener = sys::listen(addr, reuse_port)?;
    let addr = ListenAddr::Tcp(listener.local_addr()?);
    Ok(Bound {
        listener: Listener::Tcp(listener),
        addr,
        _file: None,
        ready: true,
        proxy: false,
    })
}

/// A unix stream listener at `path`, made with `options`.
fn bind_unix(path: &Path, options: UnixOptions) -> io::Result<Bound> {
    if options.remove_stale {
        remove_stale(path)?;
    }
    let socket = RawSocket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
    socket.bind(&SockAddr::unix(path)?).map_err(explain_taken)?;
    let file = SocketFile::made_at(path)?;
    if let Some(mode) = options.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    socket.listen(sys::BACKLOG)?;
    let listener = std::os::unix::net::UnixListener::from(OwnedFd::from(socket));
    Ok(Bound {
        listener: Listener::Unix(UnixListener::from_std(listener)),
        addr: ListenAddr::Unix(path.to_owned()),
        _file: Some(file),
        ready: true,
        proxy: false,
    })
}

/// A taken path says what to do about it.
fn explain_taken(e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::AddrInUse {
        return e;
    }
    io::Error::new(
        e.kind(),
        "a file is there: another server's socket, or a stale one (remove it, or let the \
         server remove a stale one: --unix-rm)",
    )
}

/// Removes the file at `path` if it is a socket nothing listens on.
fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file is there, not a socket: not removed",
        ));
    }
    // A non-blocking connect: refused means nobody listens. A full backlog (EAGAIN) or
    // a connection means a live server.
    let probe = RawSocket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
    match probe.connect(&SockAddr::unix(path)?) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "a server is listening on it: not removed",
            ));
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A listener handed over open: a listening TCP or unix stream socket.
fn adopt(fd: OwnedFd) -> io::Result<Bound> {
    let socket = RawSocket::from(fd);
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    if socket.r#type()? != Type::STREAM {
        return Err(invalid("not a stream socket"));
    }
    if !socket.is_listener()? {
        return Err(invalid(
            "a socket that does not listen (a systemd unit with Accept=yes? use Accept=no)",
        ));
    }
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    let domain = socket.domain()?;
    let local = socket.local_addr()?;
    let fd = OwnedFd::from(socket);
    let (listener, addr) = if domain == Domain::UNIX {
        let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(fd));
        (Listener::Unix(listener), ListenAddr::Unix(unix_label(&local)))
    } else if domain == Domain::IPV4 || domain == Domain::IPV6 {
        let addr = local.as_socket().ok_or_else(|| invalid("no IP address"))?;
        let listener = TcpListener::from_std(std::net::TcpListener::from(fd));
        (Listener::Tcp(listener), ListenAddr::Tcp(addr))
    } else {
        return Err(invalid("neither a TCP nor a unix socket"));
    };
    Ok(Bound {
        listener,
        addr,
        _file: None,
        ready: true,
        proxy: false,
    })
}

/// A unix socket's path, or `@NAME` for an abstract one.
fn unix_label(addr: &SockAddr) -> PathBuf {
    if let Some(path) = addr.as_pathname() {
        return path.to_owned();
    }
    match addr.as_abstract_namespace() {
        Some(name) => PathBuf::from(format!("@{}", String::from_utf8_lossy(name))),
        None => PathBuf::from("(unnamed)"),
    }
}

/// What a server listens on, as its builder says.
#[derive(Debug, Default)]
pub(crate) struct ListenConfig {
    /// Each address, and whether its connections start with a PROXY protocol header.
    pub addrs: Vec<(ListenAddr, bool)>,
    pub unix: UnixOptions,
    pub reuse_port: bool,
    /// Listeners handed over open (systemd's, say).
    pub inherited: Vec<OwnedFd>,
}

/// Why a listener could not be had: which, and the system's reason.
#[derive(Debug)]
pub(crate) struct ListenError {
    what: Which,
    source: io::Error,
}

/// Which listener a [`ListenError`] is about.
#[derive(Debug)]
enum Which {
    Addr(ListenAddr),
    /// A listener handed over open: its descriptor.
    Inherited(RawFd),
    /// All of them: too many.
    All,
}

/// Every listener of a server, in a fixed token range of the loop's `Poll`.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    bound: Vec<Bound>,
    /// The index [`next_ready`](Self::next_ready) starts after.
    last: usize,
}

impl Listeners {
    /// Binds (or adopts) every listener of `config`: the inherited ones first, in the
    /// order given. On the first failure, what was bound so far is dropped (socket
    /// files made are removed).
    pub fn bind(config: ListenConfig) -> Result<Listeners, ListenError> {
        let count = config.addrs.len() + config.inherited.len();
        if count > MAX_LISTENERS {
            return Err(ListenError {
                what: Which::All,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{count} listeners: at most {MAX_LISTENERS}"),
                ),
            });
        }
        let mut bound = Vec::with_capacity(count);
        for fd in config.inherited {
            let raw = fd.as_raw_fd();
            bound.push(adopt(fd).map_err(|source| ListenError {
                what: Which::Inherited(raw),
                source,
            })?);
        }
        for (addr, proxy) in config.addrs {
            let made = match &addr {
                ListenAddr::Tcp(ip) => bind_tcp(*ip, config.reuse_port),
                ListenAddr::Unix(path) => bind_unix(path, config.unix),
            };
            let made = made.map_err(|source| ListenError {
                what: Which::Addr(addr.clone()),
                source,
            })?;
            bound.push(Bound { proxy, ..made });
        }
        Ok(Listeners { bound, last: 0 })
    }

    /// Registers listener `i` as token `base + i`, for readable events.
    pub fn register(&mut self, registry: &Registry, base: usize) -> io::Result<()> {
        for (i, bound) in self.bound.iter_mut().enumerate() {
            bound
                .listener
                .register(registry, Token(base + i), Interest::READABLE)?;
        }
        Ok(())
    }

    /// Drops every listener (the socket files made go with them): no more accepting.
    pub fn close(&mut self, registry: &Registry) {
        for mut bound in self.bound.drain(..) {
            let _ = bound.listener.deregister(registry);
        }
    }

    /// What each listener listens on, in token order.
    pub fn addrs(&self) -> impl Iterator<Item = &ListenAddr> {
        self.bound.iter().map(|bound| &bound.addr)
    }

    /// Listener `i` had a readiness event.
    pub fn mark_ready(&mut self, i: usize) {
        if let Some(bound) = self.bound.get_mut(i) {
            bound.ready = true;
        }
    }

    /// Every listener may have connections waiting again (after a pause in accepting).
    pub fn mark_all_ready(&mut self) {
        for bound in &mut self.bound {
            bound.ready = true;
        }
    }

    pub fn any_ready(&self) -> bool {
        self.bound.iter().any(|bound| bound.ready)
    }

    /// The next listener with connections waiting, round-robin.
    pub fn next_ready(&mut self) -> Option<usize> {
        let n = self.bound.len();
        let i = (1..=n)
            .map(|step| (self.last + step) % n)
            .find(|&i| self.bound[i].ready)?;
        self.last = i;
        Some(i)
    }

    /// What listener `i` listens on.
    pub fn addr(&self, i: usize) -> &ListenAddr {
        &self.bound[i].addr
    }

    /// Whether listener `i`'s connections start with a PROXY protocol header.
    pub fn proxied(&self, i: usize) -> bool {
        self.bound[i].proxy
    }

    /// Accepts one connection from listener `i`, with the peer's address (none over a
    /// unix socket); `WouldBlock` marks the listener drained.
    pub fn accept(&mut self, i: usize) -> io::Result<(Peer, Option<SocketAddr>)> {
        let bound = &mut self.bound[i];
        let accepted = match &bound.listener {
            Listener::Tcp(listener) => listener
                .accept()
                .map(|(stream, peer)| (Peer::Tcp(stream), Some(peer))),
            Listener::Unix(listener) => listener.accept().map(|(stream, _)| (Peer::Unix(stream), None)),
        };
        if matches!(&accepted, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            bound.ready = false;
        }
        accepted
    }
}

impl Source for Listener {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(registry, token, interests),
            Listener::Unix(l) => l.register(registry, token, interests),
        }
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(registry, token, interests),
            Listener::Unix(l) => l.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(registry),
            Listener::Unix(l) => l.deregister(registry),
        }
    }
}

/// An accepted connection, over TCP or a unix socket.
#[derive(Debug)]
pub enum Peer {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Peer {
    /// Parts are written whole and should leave at once, not wait for an ACK (TCP only:
    /// a unix socket has no Nagle).
    pub fn set_nodelay(&self) {
        if let Peer::Tcp(stream) = self {
            let _ = stream.set_nodelay(true);
        }
    }
}

impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Peer::Tcp(s) => s.read(buf),
            Peer::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Peer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Peer::Tcp(s) => s.write(buf),
            Peer::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Peer::Tcp(s) => s.write_vectored(bufs),
            Peer::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for Peer {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Peer::Tcp(s) => s.shutdown_write(),
            Peer::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    /// A unix socket has no reset: its close is the EOF a reset stands for.
    fn reset_on_close(&mut self) -> io::Result<()> {
        match self {
            Peer::Tcp(s) => s.reset_on_close(),
            Peer::Unix(_) => Ok(()),
        }
    }

    /// A unix socket has no `TCP_NOTSENT_LOWAT`, and needs none: its send buffer is
    /// `SO_SNDBUF` (about 200 KiB), not autotuned to megabytes.
    fn limit_unsent(&mut self, bytes: u32) -> io::Result<()> {
        match self {
            Peer::Tcp(s) => s.limit_unsent(bytes),
            Peer::Unix(_) => Ok(()),
        }
    }

    /// Over a unix socket the peer is a local process (a proxy, mostly): what it has not
    /// read yet (`SIOCOUTQ`) stands for what is not on the wire, so a reader that falls
    /// behind gets the newest frame when it catches up, as a slow TCP link does.
    fn unsent(&self) -> io::Result<usize> {
        match self {
            Peer::Tcp(s) => s.unsent(),
            Peer::Unix(s) => sys::unread_bytes(s.as_raw_fd()),
        }
    }

    /// A unix socket's peer has no IP address (the access log shows `-`).
    fn peer_ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(s) => s.peer_ip(),
            Peer::Unix(_) => None,
        }
    }
}

impl Source for Peer {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Peer::Tcp(s) => s.register(registry, token, interests),
            Peer::Unix(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Peer::Tcp(s) => s.reregister(registry, token, interests),
            Peer::Unix(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Peer::Tcp(s) => s.deregister(registry),
            Peer::Unix(s) => s.deregister(registry),
        }
    }
}

/// A TCP address keeps its own variant ([`Error::Bind`]); a unix path or an inherited
/// listener says what it was.
impl From<ListenError> for Error {
    fn from(e: ListenError) -> Error {
        let what = match e.what {
            Which::Addr(ListenAddr::Tcp(addr)) => {
                return Error::Bind {
                    addr,
                    source: e.source,
                };
            }
            Which::Addr(unix) => unix.to_string(),
            Which::Inherited(fd) => format!("inherited descriptor {fd}"),
            Which::All => "so many sockets".to_owned(),
        };
        Error::Listen {
            what,
            source: e.source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream as StdTcpStream;

    use super::*;

    #[test]
    fn addresses_parse_and_show_as_the_command_line_writes_them() {
        for text in [
            "127.0.0.1:8080",
            "[::1]:0",
            "unix:/run/mixreplace.sock",
            "unix:rel/x.sock",
        ] {
            let addr: ListenAddr = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        let long = format!("unix:/{}", "x".repeat(MAX_UNIX_PATH));
        for bad in ["localhost:80", "8080", "::1:80", "unix:", &long, "unix:/a\0b"] {
            let err = bad.parse::<ListenAddr>().unwrap_err();
            assert!(err.starts_with("invalid"), "{bad:?}: {err}");
        }
    }

    /// Three listeners with five clients waiting on each: the accepts alternate.
    #[test]
    fn ready_listeners_take_turns() {
        let addr = ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)));
        let config = ListenConfig {
            addrs: vec![(addr.clone(), false), (addr.clone(), true), (addr, false)],
            ..ListenConfig::default()
        };
        let mut listeners = Listeners::bind(config).unwrap();
        let mut clients = Vec::new();
        for addr in listeners.addrs() {
            let ListenAddr::Tcp(addr) = addr else {
                unreachable!()
            };
            clients.extend((0..5).map(|_| StdTcpStream::connect(addr).unwrap()));
        }
        // On loopback a connection is queued by the time `connect` returns. The loop
        // ends when every listener answered `WouldBlock` once, after its 5.
        let mut order = Vec::new();
        while let Some(i) = listeners.next_ready() {
            match listeners.accept(i) {
                Ok(_) => order.push(i),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "accept: {e}"),
            }
        }
        assert_eq!(order, [1, 2, 0].repeat(5));
        let proxied: Vec<bool> = (0..3).map(|i| listeners.proxied(i)).collect();
        assert_eq!(proxied, [false, true, false]);
    }

    #[test]
    fn a_unix_socket_file_is_made_with_its_mode_and_removed_with_its_listener() {
        let dir = std::env::temp_dir().join(format!("mixreplace-listen-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let options = UnixOptions {
            mode: Some(0o640),
            remove_stale: false,
        };
        let config = |options| ListenConfig {
            addrs: vec![(ListenAddr::Unix(path.clone()), false)],
            unix: options,
            ..ListenConfig::default()
        };
        let listeners = Listeners::bind(config(options)).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        // Taken, live: refused even with remove_stale.
        let live = UnixOptions {
            remove_stale: true,
            ..options
        };
        let err = Listeners::bind(config(live)).unwrap_err();
        assert!(
            err.source.to_string().contains("a server is listening"),
            "{err:?}"
        );
        drop(listeners);
        assert!(!path.exists());

        // A socket file another listener put there since is not ours to remove.
        let listeners = Listeners::bind(config(options)).unwrap();
        fs::remove_file(&path).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(listeners);
        assert!(path.exists());
        drop(other);
        // Now stale: refused without remove_stale, replaced with it.
        let err = Listeners::bind(config(options)).unwrap_err();
        assert!(err.source.to_string().contains("--unix-rm"), "{err:?}");
        drop(Listeners::bind(config(live)).unwrap());
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
