//! `mixreplace-load`: a load generator for `multipart/x-mixed-replace` servers on this
//! machine, on one single-threaded `mio` loop like the server's.
//!
//! [`run`] opens `clients` connections (spread evenly over the ramp), sends one `GET`
//! on each, reads every stream to its closing delimiter and returns a [`Report`]. The
//! loop, in order, each turn:
//! 1. poll, for at most the time to the wheel's next deadline (0 when a client still has
//!    a turn owed, see [`client::ClientStep::Again`]);
//! 2. handle each event: finish a pending connect, then the client's `ready`;
//! 3. give the owed turns;
//! 4. close the clients that ended in steps 2–3, only now (a slab key is never reused
//!    inside a batch);
//! 5. run due timers: the ramp (start the clients now due, a bounded number per turn),
//!    connect timeouts, the progress line, the overall deadline.
//!
//! Invariants: it always stops by itself: at the end of the last stream or at
//! `--timeout-s`, where every client still open (or not yet started) fails as
//! `timeout`. It only ever connects to a loopback address ([`parse_url`] refuses anything
//! else). Time comes from one `Instant` at start, in 1 ms wheel ticks.

pub mod client;
pub mod multipart;
pub mod report;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use crate::wheel::Wheel;
use client::{Client, ClientStep};
pub use report::{Failure, Report, Tally};

/// Size of the one read buffer all clients share: large, so a throughput run takes what a
/// socket holds in few reads and measures the server rather than this reader.
pub const READ_BUFFER: usize = 256 * 1024;
/// Connects started per loop turn at most, so reading is not starved while thousands of
/// clients are due at once (`--ramp-ms 0`).
const CONNECTS_PER_TURN: usize = 256;
/// File descriptors kept for the process itself (epoll, stdio, logging) when warning
/// about the limit, as redis does.
const FD_RESERVE: u64 = 32;
/// The source addresses spread over: 127.0.0.2, 127.0.0.3, ...
const FIRST_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Where to connect and what to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `Host` header: the URL's authority as written.
    pub host: String,
    /// The request target, `/` at least.
    pub path: String,
}

/// Why a URL was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    NotHttp,
    BadHost(String),
    NotLoopback(IpAddr),
    BadPort(String),
    BadPath,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::NotHttp => f.write_str("only http://HOST[:PORT][/PATH] URLs are supported"),
            UrlError::BadHost(h) => write!(
                f,
                "host {h:?} is not an IP literal or localhost (no name lookups)"
            ),
            UrlError::NotLoopback(ip) => write!(
                f,
                "{ip} is not a loopback address: this tool only loads servers on this machine \
                 (127.0.0.0/8, ::1, localhost)"
            ),
            UrlError::BadPort(p) => write!(f, "bad port {p:?}"),
            UrlError::BadPath => f.write_str("the path must be printable ASCII without spaces"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Parses `http://HOST[:PORT][/PATH]` where HOST is a loopback IP literal (`127.x.x.x`,
/// `[::1]`) or `localhost` (taken as 127.0.0.1; no resolver is asked). Anything that could
/// reach another machine is refused.
pub fn parse_url(url: &str) -> Result<Target, UrlError> {
    let rest = url
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
        .ok_or(UrlError::NotHttp)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path = path.split('#').next().unwrap_or_default();
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UrlError::BadPath);
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let close = v6.find(']').ok_or_else(|| UrlError::BadHost(authority.into()))?;
            (&v6[..close], &v6[close + 1..])
        }
        None => match authority.rfind(':') {
            Some(colon) => authority.split_at(colon),
            None => (authority, ""),
        },
    };
    let port = match port {
        "" => 80,
        p => p
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|&p| p != 0)
            .ok_or_else(|| UrlError::BadPort(p.into()))?,
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>()
            .map_err(|_| UrlError::BadHost(host.into()))?
    };
    let loopback = match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    };
    if !loopback {
        return Err(UrlError::NotLoopback(ip));
    }
    Ok(Target {
        addr: SocketAddr::new(ip, port),
        host: authority.to_string(),
        path,
    })
}

/// The source addresses clients bind to, round-robin: for an IPv4 target (always
/// 127.x.x.x) and `sources > 1`, 127.0.0.2 .. 127.0.0.(sources+1). Each source address has
/// its own ~28k ephemeral ports towards one server port; an empty list means no bind.
pub fn source_addresses(target: SocketAddr, sources: u8) -> Vec<IpAddr> {
    if sources <= 1 || !target.is_ipv4() {
        return Vec::new();
    }
    let first = u32::from(FIRST_SOURCE);
    (0..u32::from(sources))
        .map(|i| IpAddr::V4(Ipv4Addr::from(first + i)))
        .collect()
}

/// A run's settings.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: Target,
    pub clients: u32,
    /// Connects are spread evenly over this time; zero starts them all at once.
    pub ramp: Duration,
    /// The whole run ends after this long.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// See [`source_addresses`].
    pub sources: u8,
    /// Print the one-line progress report on stderr each second.
    pub progress: bool,
}

impl LoadConfig {
    pub fn new(target: Target) -> LoadConfig {
        LoadConfig {
            target,
            clients: 1,
            ramp: Duration::ZERO,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            sources: 8,
            progress: true,
        }
    }

    /// The request every client sends.
    pub fn request(&self) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mixreplace-load\r\n\r\n",
            self.target.path, self.target.host
        )
        .into_bytes()
    }
}

#[derive(Clone, Copy, Debug)]
enum Wake {
    /// Start the clients whose ramp time has come.
    Ramp,
    Connect {
        key: usize,
        id: u32,
    },
    Progress,
    Deadline,
}

struct ClientSlot {
    stream: TcpStream,
    client: Client,
}

struct Driver<'a> {
    config: &'a LoadConfig,
    poll: Poll,
    clients: Slab<ClientSlot>,
    wheel: Wheel<Wake>,
    stats: Tally,
    request: Vec<u8>,
    buf: Box<[u8]>,
    sources: Vec<IpAddr>,
    start: Instant,
    /// The next client to start, in `0..config.clients`.
    next: u32,
    /// Clients that ended in this turn, closed after the batch.
    closing: Vec<usize>,
    /// Clients owed a turn ([`ClientStep::Again`]), by key and id.
    again: Vec<(usize, u32)>,
    /// Connect errors already logged at warn level (by reason index).
    warned: [bool; Failure::COUNT],
}

/// Runs the load and returns its report. Errors only when the loop itself cannot run
/// (no epoll); everything that goes wrong with a connection is counted instead.
pub fn run(config: &LoadConfig) -> io::Result<Report> {
    match crate::sys::raise_fd_limit() {
        Ok(limit) if u64::from(config.clients) + FD_RESERVE > limit => log::warn!(
            "the file descriptor limit is {limit}: clients past about {} will fail as connect_error",
            limit.saturating_sub(FD_RESERVE)
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }
    let poll = Poll::new()?;
    let capacity = config.clients.min(1 << 16) as usize;
    let mut driver = Driver {
        config,
        poll,
        clients: Slab::with_capacity(capacity),
        wheel: Wheel::with_capacity(capacity + 3),
        stats: Tally::new(u64::from(config.clients)),
        request: config.request(),
        buf: vec![0; READ_BUFFER].into_boxed_slice(),
        sources: source_addresses(config.target.addr, config.sources),
        start: Instant::now(),
        next: 0,
        closing: Vec::new(),
        again: Vec::new(),
        warned: [false; Failure::COUNT],
    };
    log::info!(
        "{} clients against http://{}{} ({} source addresses), ramp {:?}, timeout {:?}",
        config.clients,
        config.target.host,
        config.target.path,
        driver.sources.len().max(1),
        config.ramp,
        config.timeout
    );
    driver.run()?;
    let duration = driver.start.elapsed();
    log::info!("done after {duration:?}");
    Ok(Report {
        stats: driver.stats,
        duration,
    })
}

impl Driver<'_> {
    fn tick(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The tick at which client `i` is due.
    fn due(&self, i: u32) -> u64 {
        let ramp = self.config.ramp.as_millis() as u64;
        ramp * u64::from(i) / u64::from(self.config.clients)
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut due = Vec::new();
        self.wheel.insert(0, Wake::Ramp);
        self.wheel.insert(1000, Wake::Progress);
        self.wheel
            .insert(self.config.timeout.as_millis() as u64, Wake::Deadline);
        loop {
            let timeout = if self.again.is_empty() {
                let next = self.wheel.next_deadline().unwrap_or(0);
                Duration::from_millis(next.saturating_sub(self.tick()))
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            for event in events.iter() {
                self.ready(event.token().0);
            }
            for (key, id) in std::mem::take(&mut self.again) {
                if self.clients.get(key).is_some_and(|s| s.client.id == id) {
                    self.ready(key);
                }
            }
            self.close_finished();

            let now = self.tick();
            self.wheel.advance(now, &mut due);
            for timer in due.drain(..) {
                match timer {
                    Wake::Ramp => self.ramp(now),
                    Wake::Connect { key, id } => {
                        if let Some(slot) = self.clients.get_mut(key) {
                            if slot.client.id == id && slot.client.is_connecting() {
                                slot.client.connect_timer = None;
                                self.finish(key, Err(Failure::ConnectTimeout));
                            }
                        }
                    }
                    Wake::Progress => {
                        if self.config.progress {
                            eprintln!("{}", self.stats.progress_line(self.start.elapsed()));
                        }
                        self.wheel.insert(now / 1000 * 1000 + 1000, Wake::Progress);
                    }
                    Wake::Deadline => {
                        self.deadline();
                        return Ok(());
                    }
                }
            }
            self.close_finished();
            if self.next == self.config.clients && self.clients.is_empty() {
                return Ok(());
            }
        }
    }

    /// Starts the clients due by `now`, at most `CONNECTS_PER_TURN`, and re-arms itself.
    fn ramp(&mut self, now: u64) {
        let mut budget = CONNECTS_PER_TURN;
        while self.next < self.config.clients && self.due(self.next) <= now {
            if budget == 0 {
                // More are due already: come back on the next turn, after the reads.
                self.wheel.insert(now, Wake::Ramp);
                return;
            }
            budget -= 1;
            self.start_client(now);
        }
        if self.next < self.config.clients {
            self.wheel.insert(self.due(self.next), Wake::Ramp);
        }
    }

    fn start_client(&mut self, now: u64) {
        let id = self.next;
        self.next += 1;
        let source = match self.sources.len() {
            0 => None,
            n => Some(self.sources[id as usize % n]),
        };
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        let started = Instant::now();
        let stream = connect(self.config.target.addr, source).and_then(|mut stream| {
            self.poll.registry().register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match stream {
            Ok(stream) => {
                let mut client = Client::new(id, started);
                let deadline = now + self.config.connect_timeout.as_millis() as u64;
                client.connect_timer = Some(self.wheel.insert(deadline, Wake::Connect { key, id }));
                entry.insert(ClientSlot { stream, client });
            }
            Err(e) => {
                let reason = classify_connect(&e);
                self.connect_failed(id, reason, &e);
                self.stats.fail(reason, 1);
            }
        }
    }

    fn connect_failed(&mut self, id: u32, reason: Failure, e: &io::Error) {
        // Thousands of clients can fail alike: one warning per kind, the rest at debug.
        if std::mem::replace(&mut self.warned[reason.index()], true) {
            log::debug!("client {id}: connect: {e}");
        } else {
            log::warn!(
                "client {id}: connect: {e} (counted as {}; further ones at debug level)",
                reason.name()
            );
        }
    }

    /// Handles readiness (or an owed turn) for the client at `key`.
    fn ready(&mut self, key: usize) {
        let Some(slot) = self.clients.get_mut(key) else {
            return;
        };
        if slot.client.is_done() {
            return;
        }
        let now = Instant::now();
        if slot.client.is_connecting() {
            match connect_result(&slot.stream) {
                None => return, // spurious: still connecting
                Some(Ok(())) => {
                    if let Some(timer) = slot.client.connect_timer.take() {
                        self.wheel.cancel(timer);
                    }
                    slot.client.connected(now, &mut self.stats);
                }
                Some(Err(e)) => {
                    let (id, reason) = (slot.client.id, classify_connect(&e));
                    self.connect_failed(id, reason, &e);
                    self.finish(key, Err(reason));
                    return;
                }
            }
        }
        match slot.client.ready(
            &mut slot.stream,
            &self.request,
            &mut self.buf,
            &mut client::SystemClock,
            &mut self.stats,
        ) {
            ClientStep::Continue => {}
            ClientStep::Again => self.again.push((key, slot.client.id)),
            ClientStep::Done(result) => self.finish(key, result),
        }
    }

    /// Ends the client at `key`; its socket is closed after the batch.
    fn finish(&mut self, key: usize, result: Result<(), Failure>) {
        let slot = &mut self.clients[key];
        if slot.client.is_done() {
            return;
        }
        match result {
            Ok(()) => log::debug!("client {}: completed", slot.client.id),
            Err(reason) => log::debug!("client {}: failed: {}", slot.client.id, reason.name()),
        }
        if let Some(timer) = slot.client.connect_timer.take() {
            self.wheel.cancel(timer);
        }
        slot.client.finish(result, &mut self.stats);
        self.closing.push(key);
    }

    fn close_finished(&mut self) {
        // Dropping the stream closes its fd, which takes it out of the epoll set (the fd
        // is never duplicated), so no deregister call: 19,000 fewer syscalls, and no
        // event for the key can come after this, when the key may be reused.
        for key in self.closing.drain(..) {
            drop(self.clients.remove(key));
        }
    }

    /// `--timeout-s`: everything still open, or never started, fails as `timeout`.
    fn deadline(&mut self) {
        let keys: Vec<usize> = self.clients.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.finish(key, Err(Failure::Timeout));
        }
        self.close_finished();
        let unstarted = u64::from(self.config.clients - self.next);
        self.stats.fail(Failure::Timeout, unstarted);
        self.next = self.config.clients;
        log::info!(
            "timeout reached: {} clients still open or not started",
            self.stats.failed[Failure::Timeout.index()]
        );
    }
}

/// Starts a non-blocking connect from `source` (port chosen at connect time) to `addr`.
fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if let Some(ip) = source {
        // Without IP_BIND_ADDRESS_NO_PORT, bind() picks the port alone and keeps it off
        // limits for every destination; with it, connect() picks it for the 4-tuple.
        #[cfg(target_os = "linux")]
        set_bind_address_no_port(&socket)?;
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

#[cfg(target_os = "linux")]
fn set_bind_address_no_port(socket: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid fd, and an option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// After a readiness event on a connecting socket: `None` while still connecting
/// (a spurious event), else how the connect ended (mio's documented sequence:
/// `take_error`, then `peer_addr`).
fn connect_result(stream: &TcpStream) -> Option<io::Result<()>> {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(e)),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(_) => Some(Ok(())),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
        Err(e) => Some(Err(e)),
    }
}

fn classify_connect(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::ConnectRefused,
        io::ErrorKind::TimedOut => Failure::ConnectTimeout,
        _ => Failure::ConnectError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("http://127.0.0.1:8080/stream?x=1#frag").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/stream?x=1")
        );
        let t = parse_url("HTTP://localhost").unwrap();
        assert_eq!((t.addr, t.path.as_str()), ("127.0.0.1:80".parse().unwrap(), "/"));
        let t = parse_url("http://[::1]:9000?q").unwrap();
        assert_eq!((t.addr, t.path.as_str()), ("[::1]:9000".parse().unwrap(), "/?q"));
        assert!(parse_url("http://127.200.3.4:1/").is_ok());
        assert!(parse_url("http://[::ffff:127.0.0.1]:1/").is_ok());

        for (url, err) in [
            ("https://127.0.0.1/", UrlError::NotHttp),
            ("127.0.0.1:80", UrlError::NotHttp),
            ("http://example.com/", UrlError::BadHost("example.com".into())),
            (
                "http://user@127.0.0.1/",
                UrlError::BadHost("user@127.0.0.1".into()),
            ),
            (
                "http://10.0.0.1:80/",
                UrlError::NotLoopback("10.0.0.1".parse().unwrap()),
            ),
            (
                "http://192.168.1.1/",
                UrlError::NotLoopback("192.168.1.1".parse().unwrap()),
            ),
            (
                "http://0.0.0.0:80/",
                UrlError::NotLoopback("0.0.0.0".parse().unwrap()),
            ),
            ("http://[::]:80/", UrlError::NotLoopback("::".parse().unwrap())),
            (
                "http://[2001:db8::1]/",
                UrlError::NotLoopback("2001:db8::1".parse().unwrap()),
            ),
            ("http://127.0.0.1:0/", UrlError::BadPort(":0".into())),
            ("http://127.0.0.1:99999/", UrlError::BadPort(":99999".into())),
            ("http://127.0.0.1:80/a b", UrlError::BadPath),
        ] {
            assert_eq!(parse_url(url), Err(err), "{url}");
        }
    }

    #[test]
    fn sources() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        let s = source_addresses(v4, 8);
        assert_eq!(s.len(), 8);
        assert_eq!(s[0], IpAddr::from([127, 0, 0, 2]));
        assert_eq!(s[7], IpAddr::from([127, 0, 0, 9]));
        assert!(source_addresses(v4, 1).is_empty());
        assert!(source_addresses(v6, 8).is_empty());
    }

    #[test]
    fn request_bytes() {
        let config = LoadConfig::new(parse_url("http://localhost:81/a?b").unwrap());
        assert_eq!(
            config.request(),
            b"GET /a?b HTTP/1.1\r\nHost: localhost:81\r\nUser-Agent: mixreplace-load\r\n\r\n"
        );
    }
}
