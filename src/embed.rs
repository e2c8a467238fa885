//! The embedding API: a [`Builder`] describes a server (its streams, limits, access and
//! address); the server then runs on the calling thread ([`Builder::run`], or
//! [`Builder::bind`] and [`Server::run`]) or on a thread of its own ([`Builder::spawn`]),
//! whose [`Handle`] gives the bound address, a [`Stats`] snapshot and a graceful stop.
//!
//! Invariants:
//! - A builder is plain `Send` data (specs, parts, numbers). Nothing is read, encoded or
//!   bound before `bind`, `run` or `spawn`; `spawn` moves the builder to the new thread
//!   and builds the server there, because a server's streams are shared by `Rc`, and
//!   sends back the bound address, or the first error, before it returns.
//! - A builder method never fails: the first bad value is kept and comes back from
//!   `bind`, `run` or `spawn` as [`Error::Config`], so a chain of calls reads straight.
//! - An embedded server leaves the process alone: it installs no signal handler and
//!   keeps the file descriptor limit as it is, unless asked ([`Builder::signals`],
//!   [`Builder::raise_fd_limit`]; the binary asks for both).
//! - A spawned server is one thread, the loop itself. The handle reaches it through a
//!   channel and a `mio::Waker` registered with the loop's `Poll` ([`Handle::stats`]
//!   asks and waits for the answer, taken between two turns); nothing is published on
//!   the loop's hot path, and an idle loop stays asleep.
//! - Dropping a [`Handle`] stops its server and joins its thread, as [`Handle::stop`]
//!   does: no thread and no descriptor outlive the handle.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{info, warn};

use crate::clock::Micros;
use crate::error::Error;
use crate::http;
use crate::routes::access::Access;
use crate::routes::proxies::{Cidr, Proxies};
use crate::routes::stats::Stats;
use crate::routes::{Route, Routes};
use crate::server::conn::Limits;
use crate::server::listen::{self, ListenAddr, ListenConfig, UnixOptions};
use crate::server::{Config, Exit, Remote, Server};
use crate::stream::input::{InputSpec, Source as InputSource};
use crate::stream::script::{self, MAX_WAIT_MS};
use crate::stream::spec::StreamSpec;
use crate::stream::{PartSpec, Stream};
use crate::sys;

/// Descriptors kept back from clients when the client cap comes from the descriptor
/// limit: stdio, epoll, the listener, the waker or signal pipe, and room to answer
/// clients past the cap with a 503 instead of failing to accept them.
const FD_RESERVE: u64 = 64;
/// Paths the server answers itself, which a stream cannot take.
const RESERVED: [&str; 4] = ["/stats", "/metrics", "/view", "/quit"];
/// The longest timeout: a day, as for a script's waits.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// What a path serves, before it is built.
#[derive(Clone, Debug)]
enum Source {
    /// As `--stream PATH=SPEC` says.
    Spec(StreamSpec),
    /// Parts given as values; from `loop_from` on they repeat.
    Parts {
        parts: Vec<PartSpec>,
        loop_from: Option<usize>,
    },
}

impl Source {
    fn build(self, extra: &str) -> Result<Stream, String> {
        match self {
            Source::Spec(spec) => spec.build(extra),
            Source::Parts { parts, loop_from } => {
                Stream::scripted(parts, 0, loop_from, extra).map_err(|e| e.to_string())
            }
        }
    }
}

/// A server to be: streams, limits, access and address. See the [crate] documentation
/// for an example.
///
/// Without any stream, `/` serves the demo. Every server also answers `GET /stats`,
/// `/metrics` and `/view` (and `/quit` with [`allow_quit`](Self::allow_quit)).
#[derive(Clone, Debug)]
#[must_use]
pub struct Builder {
    /// As given; none: [`fallback`](Self::fallback), unless listeners were handed over.
    /// With whether each reads PROXY protocol headers.
    listen: Vec<(ListenAddr, bool)>,
    fallback: SocketAddr,
    unix: UnixOptions,
    reuse_port: bool,
    /// Listeners handed over open; shared, so that a builder stays `Clone` (each bind
    /// takes a duplicate).
    inherited: Vec<Arc<OwnedFd>>,
    /// Binding fails without an inherited listener (the binary's `--systemd`).
    require_inherited: bool,
    notify: bool,
    streams: Vec<(String, Source)>,
    limits: Limits,
    max_clients: Option<usize>,
    /// `USER:PASS` of each user allowed in; none: no authentication.
    credentials: Vec<String>,
    /// Said as warnings once the logger runs, when the server binds (the command
    /// line's: a password `ps` can show).
    warnings: Vec<String>,
    origin: Option<String>,
    allow_quit: bool,
    signals: bool,
    raise_fd_limit: bool,
    access_log: Option<PathBuf>,
    trusted_proxies: Vec<Cidr>,
    proxy_protocol: bool,
    /// The proxies write `Forwarded`, not `X-Forwarded-For`.
    forwarded_header: bool,
    /// The first bad value given, for `bind` to return.
    error: Option<String>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A server on `127.0.0.1` at a port the system picks, with the binary's default
    /// limits (10 s for a request head, 30 s without write progress), no access
    /// control, and no signal handling.
    pub fn new() -> Builder {
        Builder {
            listen: Vec::new(),
            fallback: SocketAddr::from(([127, 0, 0, 1], 0)),
            unix: UnixOptions::default(),
            reuse_port: false,
            inherited: Vec::new(),
            require_inherited: false,
            notify: false,
            streams: Vec::new(),
            limits: Limits::default(),
            max_clients: None,
            credentials: Vec::new(),
            warnings: Vec::new(),
            origin: None,
            allow_quit: false,
            signals: false,
            raise_fd_limit: false,
            access_log: None,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            forwarded_header: false,
            error: None,
        }
    }

    /// Listens on `addr` (IPv4 or IPv6); call it again to listen on several. Port 0
    /// lets the system pick one (read it from [`Server::local_addr`] or
    /// [`Handle::local_addr`]). Without any listener the server listens on
    /// `127.0.0.1:0`.
    pub fn listen(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.listen.push((ListenAddr::Tcp(addr.into()), false));
        self
    }

    /// Listens on a unix stream socket made at `path` (at most 107 bytes), with
    /// [`unix_mode`](Self::unix_mode) if given; the file is removed when the server
    /// stops. A file already there is refused unless
    /// [`unix_remove_stale`](Self::unix_remove_stale) allows removing a stale socket.
    pub fn listen_unix(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let checked = listen::check_unix_path(path)
            .map(|()| self.listen.push((ListenAddr::Unix(path.to_owned()), false)));
        self.keep_error(checked, || "listen_unix".to_owned())
    }

    /// The permission bits of the unix sockets made (`0o660`: owner and group may
    /// connect); without, the process's umask decides.
    pub fn unix_mode(mut self, mode: u32) -> Self {
        let checked = if mode <= 0o777 {
            self.unix.mode = Some(mode);
            Ok(())
        } else {
            Err(format!("{mode:o} is not a permission mode (0 to 777, octal)"))
        };
        self.keep_error(checked, || "unix_mode".to_owned())
    }

    /// Removes a stale socket file found at a unix socket's path (a socket nothing
    /// listens on; a live server's socket and other files are still refused).
    pub fn unix_remove_stale(mut self, on: bool) -> Self {
        self.unix.remove_stale = on;
        self
    }

    /// Sets `SO_REUSEPORT` on the TCP listeners: several processes (of one user) can
    /// listen on the same port, and the kernel spreads new connections over them.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Serves on a listening socket opened elsewhere (TCP or unix, listening already):
    /// systemd's socket activation, or a parent's. It is made non-blocking and
    /// close-on-exec; the server's listeners list it first, before
    /// [`listen`](Self::listen)'s. With one, the server does not fall back to
    /// `127.0.0.1:0`.
    pub fn listen_fd(mut self, fd: OwnedFd) -> Self {
        self.inherited.push(Arc::new(fd));
        self
    }

    /// Binding fails unless [`listen_fd`](Self::listen_fd) gave a listener (the
    /// binary's `--systemd`: insist on socket activation).
    pub fn require_listen_fd(mut self, on: bool) -> Self {
        self.require_inherited = on;
        self
    }

    /// Tells systemd, through the datagram socket in `NOTIFY_SOCKET` if set, when the
    /// server is ready (`READY=1`), what it does (`STATUS=`), that it still turns
    /// (`WATCHDOG=1` at half of `WATCHDOG_USEC`) and when it stops (`STOPPING=1`). The
    /// binary turns it on.
    pub fn sd_notify(mut self, on: bool) -> Self {
        self.notify = on;
        self
    }

    /// The address without any listener given: the binary's is `127.0.0.1:8080`.
    pub(crate) fn fallback_listen(mut self, addr: SocketAddr) -> Self {
        self.fallback = addr;
        self
    }

    /// Serves `spec` at `path`, as the binary's `--stream PATH=SPEC` does: `demo`,
    /// `synthetic:parts=N,size=BYTES,interval=MS`, `script:FILE`, `dir:FOLDER[,fps=N]`,
    /// `stdin[,fps=N]` (the process's standard input; one stream at most), `pipe:FIFO`
    /// and the rest
    /// of `mixreplace --help`. `path` starts with `/`; `%XX` escapes in it are decoded,
    /// as they are in requests.
    pub fn stream(mut self, path: &str, spec: &str) -> Self {
        let added = self.try_stream(path, spec);
        self.keep_error(added, || format!("stream {}", path.escape_debug()))
    }

    /// Serves `parts` at `path`, once: each part's `delay_ms` after it, then the next;
    /// the last one carries the closing delimiter. Content types are
    /// `type/subtype[;name=value…]`; delays are at most a day.
    pub fn parts(self, path: &str, parts: impl IntoIterator<Item = PartSpec>) -> Self {
        self.typed_parts(path, parts.into_iter().collect(), None)
    }

    /// Serves `parts` at `path` in a loop, from the first part again after the last,
    /// until the client leaves or the server stops.
    pub fn looping_parts(self, path: &str, parts: impl IntoIterator<Item = PartSpec>) -> Self {
        self.typed_parts(path, parts.into_iter().collect(), Some(0))
    }

    /// Open connections at most (at least 1); past it clients get `503` with
    /// `Retry-After`. Default: the file descriptor limit less 64.
    pub fn max_clients(mut self, n: usize) -> Self {
        let checked = if n > 0 {
            self.max_clients = Some(n);
            Ok(())
        } else {
            Err("must be at least 1".to_owned())
        };
        self.keep_error(checked, || "max_clients".to_owned())
    }

    /// Time allowed for a request head (then `408`); more than 0 and at most a day.
    pub fn head_timeout(mut self, timeout: Duration) -> Self {
        let checked = micros(timeout).map(|us| self.limits.head_timeout = us);
        self.keep_error(checked, || "head_timeout".to_owned())
    }

    /// How long a connection's writes may make no progress before it is closed; more
    /// than 0 and at most a day.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        let checked = micros(timeout).map(|us| self.limits.send_timeout = us);
        self.keep_error(checked, || "send_timeout".to_owned())
    }

    /// Live viewers' unsent-data watermark in bytes (`TCP_NOTSENT_LOWAT`): a viewer gets
    /// the newest frame once its last one is about on the wire, not queued in its
    /// socket. 0 turns it off. Default: 8 KiB (the README's measured table).
    pub fn live_unsent(mut self, bytes: u32) -> Self {
        self.limits.live_unsent = bytes;
        self
    }

    /// Bytes of a live stream's old frames that connections may hold while writing them
    /// (the current frame is not counted); past it the connections holding the oldest are
    /// closed (`held_frames` in the stats). At least 1; default 64 MiB.
    pub fn held_frames_budget(mut self, bytes: usize) -> Self {
        let checked = if bytes > 0 {
            self.limits.held_frames_budget = bytes;
            Ok(())
        } else {
            Err("must be at least 1".to_owned())
        };
        self.keep_error(checked, || "held_frames_budget".to_owned())
    }

    /// How long a kept-alive connection may wait for its next request before it is
    /// closed; more than 0 and at most a day. Default: 5 s.
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Self {
        let checked = micros(timeout).map(|us| self.limits.keepalive_timeout = us);
        self.keep_error(checked, || "keepalive_timeout".to_owned())
    }

    /// Requests one connection may make (at least 1: every answer closes); the answer
    /// to the last says `Connection: close`. Default: 1000.
    pub fn keepalive_requests(mut self, n: u32) -> Self {
        let checked = match n {
            0 => Err("must be at least 1".to_owned()),
            n => {
                self.limits.keepalive_requests = n;
                Ok(())
            }
        };
        self.keep_error(checked, || "keepalive_requests".to_owned())
    }

    /// Requires HTTP Basic authentication on every route (`401` without); `user` holds
    /// no `:`. Called again, it adds a user: each one's credentials are accepted.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        let checked = if user.contains(':') {
            Err("the user name must not contain ':'".to_owned())
        } else {
            self.credentials.push(format!("{user}:{password}"));
            Ok(())
        };
        self.keep_error(checked, || "basic_auth".to_owned())
    }

    /// Sends CORS headers allowing `origin` (or `*`) and answers preflights.
    pub fn allow_origin(mut self, origin: &str) -> Self {
        let checked = check_origin(origin).map(|()| self.origin = Some(origin.to_owned()));
        self.keep_error(checked, || "allow_origin".to_owned())
    }

    /// `GET /quit` answers `202` and stops the server gracefully.
    pub fn allow_quit(mut self, allow: bool) -> Self {
        self.allow_quit = allow;
        self
    }

    /// Stops gracefully on the first SIGINT or SIGTERM and at once on a second one
    /// ([`Exit::Forced`]); SIGHUP reopens the [access log](Self::access_log) and does
    /// nothing else. Signals belong to a program, not to a library: the binary
    /// turns this on; an embedded server leaves it off (the default).
    pub fn signals(mut self, on: bool) -> Self {
        self.signals = on;
        self
    }

    /// Writes one line per finished request to `path` (appended to; created with mode
    /// 0640), or to standard error for `-`: the combined log format and the seconds it
    /// took (see the README's "Access log"). Off by default. A file that cannot be
    /// opened is an [`Error::Config`] from `bind`; a write that fails later is counted
    /// and warned about, never fatal.
    pub fn access_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.access_log = Some(path.into());
        self
    }

    /// Trusts the proxies in `cidr` (`IP` or `IP/PREFIX`, IPv4 or IPv6; repeatable): a
    /// request from one of them has its client address taken from its
    /// `X-Forwarded-For` header, or `Forwarded` (see
    /// [`forwarded_header`](Self::forwarded_header)): the rightmost address not
    /// trusted. It may start
    /// with a PROXY header (see [`proxy_protocol`](Self::proxy_protocol)). From anyone
    /// else those headers are ignored.
    pub fn trust_proxy(mut self, cidr: &str) -> Self {
        let parsed = cidr.parse().map(|cidr| self.trusted_proxies.push(cidr));
        self.keep_error(parsed, || "trust_proxy".to_owned())
    }

    /// Which header the trusted proxies write the client's address in:
    /// `X-Forwarded-For` (the default) or `Forwarded` (RFC 7239), any case. Only that
    /// one is read: a proxy passes the other on as the client sent it.
    pub fn forwarded_header(mut self, name: &str) -> Self {
        let checked = match name.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(false),
            "forwarded" => Ok(true),
            _ => Err(format!("'{name}': expected X-Forwarded-For or Forwarded")),
        }
        .map(|forwarded| self.forwarded_header = forwarded);
        self.keep_error(checked, || "forwarded_header".to_owned())
    }

    /// Every connection, on every listener, starts with a PROXY protocol header (v1
    /// or v2, as HAProxy's `send-proxy` or `send-proxy-v2` sends), read before the
    /// request within the head timeout; its client address stands in for the peer's.
    /// Only trusted proxies may connect: others, and malformed headers, are closed
    /// unanswered. For some listeners only: [`listen_proxy`](Self::listen_proxy).
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.proxy_protocol = on;
        self
    }

    /// Listens on `addr` (TCP, or a unix socket: [`ListenAddr::Unix`]) for a proxy
    /// that starts every connection with a PROXY protocol header, as
    /// [`proxy_protocol`](Self::proxy_protocol) does for all listeners: over TCP only
    /// from [trusted](Self::trust_proxy) proxies; over a unix socket from whoever its
    /// mode lets connect. The other listeners read no header.
    pub fn listen_proxy(mut self, addr: impl Into<ListenAddr>) -> Self {
        let addr = addr.into();
        let checked = match &addr {
            ListenAddr::Unix(path) => listen::check_unix_path(path),
            ListenAddr::Tcp(_) => Ok(()),
        };
        let checked = checked.map(|()| self.listen.push((addr, true)));
        self.keep_error(checked, || "listen_proxy".to_owned())
    }

    /// Raises the process's soft file descriptor limit to its hard limit when the
    /// server binds (a process-wide change; the binary turns it on).
    pub fn raise_fd_limit(mut self, on: bool) -> Self {
        self.raise_fd_limit = on;
        self
    }

    /// Builds every stream (reading and encoding its parts once) and binds the address,
    /// on the calling thread; [`Server::run`] then serves.
    pub fn bind(self) -> Result<Server, Error> {
        if let Some(message) = self.error {
            return Err(Error::Config(message));
        }
        for warning in &self.warnings {
            warn!("{warning}");
        }
        // Over TCP a PROXY header is read from trusted proxies only (a unix socket's
        // peers are whoever its mode lets in).
        let tcp_proxied = self
            .listen
            .iter()
            .any(|(addr, proxy)| *proxy && matches!(addr, ListenAddr::Tcp(_)));
        if (self.proxy_protocol || tcp_proxied) && self.trusted_proxies.is_empty() {
            return Err(Error::Config(
                "proxy_protocol: no trusted proxy to accept a PROXY header from (trust_proxy)".to_owned(),
            ));
        }
        let users: Vec<&str> = self.credentials.iter().map(String::as_str).collect();
        let access = Access::with_users(&users, self.origin.as_deref());
        let inputs = self.inputs();
        let routes = build_routes(self.streams, &access, self.allow_quit).map_err(Error::Stream)?;
        let mut proxies = Proxies::new(self.trusted_proxies, self.proxy_protocol);
        proxies.forwarded = self.forwarded_header;
        let listen = listen_config(
            self.listen,
            self.fallback,
            self.unix,
            self.reuse_port,
            self.inherited,
        )?;
        if self.require_inherited && listen.inherited.is_empty() {
            return Err(Error::Config(
                "no listening socket was handed over (systemd's LISTEN_FDS, for this process)".into(),
            ));
        }
        let config = Config {
            listen,
            limits: self.limits,
            max_clients: client_cap(self.max_clients, self.raise_fd_limit),
            access,
            inputs,
            signals: self.signals,
            notify: self.notify,
            access_log: self.access_log,
            proxies,
        };
        let server = Server::bind(config, routes)?;
        if let Some(cap) = sys::somaxconn() {
            info!("listen backlog {cap} (net.core.somaxconn)");
        }
        Ok(server)
    }

    /// Binds and serves on the calling thread until the server stops (see
    /// [`Server::run`]).
    pub fn run(self) -> Result<Exit, Error> {
        self.bind()?.run()
    }

    /// Builds and binds the server on a thread of its own, and returns once it listens
    /// (or with the error that kept it from listening).
    pub fn spawn(self) -> Result<Handle, Error> {
        let ended = Arc::new(Mutex::new(None));
        let (ready, listening) = mpsc::sync_channel(1);
        let thread = {
            let ended = ended.clone();
            thread::Builder::new()
                .name("mixreplace".to_owned())
                .spawn(move || serve_spawned(self, &ready, &ended))
                .map_err(Error::Io)?
        };
        match listening.recv() {
            Ok((addrs, remote)) => Ok(Handle {
                local_addr: crate::server::first_tcp(&addrs),
                addrs,
                remote,
                ended,
                thread: Some(thread),
            }),
            // The thread ended before it listened: its result says why.
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e),
                Ok(Ok(_)) => Err(Error::Io(std::io::Error::other(
                    "the server's thread ended before it listened",
                ))),
                Err(panic) => std::panic::resume_unwind(panic),
            },
        }
    }

    /// Adds the stream `spec` at `path` (`%XX` escapes decoded); the error says what is
    /// wrong, for the caller to prefix with the path or flag.
    pub(crate) fn try_stream(&mut self, path: &str, spec: &str) -> Result<(), String> {
        let spec = StreamSpec::parse(spec)?;
        let reads_stdin = |input: &InputSpec| input.source == InputSource::Stdin;
        if let StreamSpec::Live(input) = &spec {
            if reads_stdin(input) && self.inputs().iter().any(|(_, other)| reads_stdin(other)) {
                return Err("standard input already feeds another stream".into());
            }
        }
        self.add(path, Source::Spec(spec))
    }

    fn typed_parts(mut self, path: &str, parts: Vec<PartSpec>, loop_from: Option<usize>) -> Self {
        let added = check_parts(&parts).and_then(|()| self.add(path, Source::Parts { parts, loop_from }));
        self.keep_error(added, || format!("parts {}", path.escape_debug()))
    }

    fn add(&mut self, written: &str, source: Source) -> Result<(), String> {
        let path = decode_path(written)?;
        if RESERVED.contains(&path.as_str()) || self.streams.iter().any(|(p, _)| *p == path) {
            return Err("that path is already taken".into());
        }
        self.streams.push((path, source));
        Ok(())
    }

    /// The live streams' inputs, by (decoded) path.
    fn inputs(&self) -> Vec<(String, InputSpec)> {
        self.streams
            .iter()
            .filter_map(|(path, source)| match source {
                Source::Spec(StreamSpec::Live(input)) => Some((path.clone(), input.clone())),
                _ => None,
            })
            .collect()
    }

    /// A warning to log when the server binds (the logger may not run before).
    pub(crate) fn warn_at_bind(mut self, warning: String) -> Self {
        self.warnings.push(warning);
        self
    }

    /// Keeps the first error, prefixed with what it concerns.
    fn keep_error(mut self, result: Result<(), String>, subject: impl FnOnce() -> String) -> Self {
        if let Err(e) = result {
            self.error.get_or_insert_with(|| format!("{}: {e}", subject()));
        }
        self
    }
}

/// What to listen on: the addresses given, or `fallback` when neither they nor inherited
/// listeners are. An inherited listener is taken as it is (systemd's descriptor 3 stays
/// 3), or duplicated if a clone of the builder still shares it.
fn listen_config(
    mut addrs: Vec<(ListenAddr, bool)>,
    fallback: SocketAddr,
    unix: UnixOptions,
    reuse_port: bool,
    inherited: Vec<Arc<OwnedFd>>,
) -> Result<ListenConfig, Error> {
    if addrs.is_empty() && inherited.is_empty() {
        addrs.push((ListenAddr::Tcp(fallback), false));
    }
    let inherited = inherited
        .into_iter()
        .map(|fd| Arc::try_unwrap(fd).or_else(|shared| shared.try_clone()))
        .collect::<Result<_, _>>()
        .map_err(Error::Io)?;
    Ok(ListenConfig {
        addrs,
        unix,
        reuse_port,
        inherited,
    })
}

/// The route table: the streams, built, then the server's own pages.
fn build_routes(streams: Vec<(String, Source)>, access: &Access, allow_quit: bool) -> Result<Routes, String> {
    let mut routes = Routes::default();
    let streams = if streams.is_empty() {
        vec![("/".to_owned(), Source::Spec(StreamSpec::Demo))]
    } else {
        streams
    };
    for (path, source) in streams {
        let stream = source.build(access.headers())?;
        routes.add(&path, Route::Stream(Rc::new(stream)));
    }
    routes.add("/stats", Route::Stats);
    routes.add("/metrics", Route::Metrics);
    routes.add("/view", Route::View);
    if allow_quit {
        routes.add("/quit", Route::Quit);
    }
    Ok(routes)
}

/// The cap on open connections: as asked, or the descriptor limit (raised first if
/// asked) less [`FD_RESERVE`].
fn client_cap(asked: Option<usize>, raise: bool) -> usize {
    let fd_limit = if raise {
        sys::raise_fd_limit().unwrap_or_else(|e| {
            warn!("cannot raise the file descriptor limit: {e}");
            sys::fd_limit()
        })
    } else {
        sys::fd_limit()
    };
    let cap = asked.unwrap_or_else(|| {
        usize::try_from(fd_limit.saturating_sub(FD_RESERVE))
            .unwrap_or(usize::MAX)
            .max(1)
    });
    info!("file descriptor limit {fd_limit}: up to {cap} clients");
    cap
}

/// Decodes a stream's path as request paths are, so `/my cam` and `/my%20cam` name the
/// same stream. A raw `?` or `#` would end the path in a URL: written here it is a
/// mistake, not a path.
fn decode_path(written: &str) -> Result<String, String> {
    match http::percent_decode(written) {
        Some(path) if written.starts_with('/') && !written.contains(['?', '#']) => Ok(path.into_owned()),
        _ => Err(format!(
            "invalid path '{}': it must start with / and hold no ?, #, control character \
             or bad %-escape (write % as %25)",
            written.escape_debug()
        )),
    }
}

/// An origin goes into a header line verbatim: no spaces, no control characters.
pub(crate) fn check_origin(origin: &str) -> Result<(), String> {
    if origin.is_empty() || origin.contains(|c: char| c.is_ascii_control() || c == ' ') {
        return Err(format!(
            "invalid origin '{}': expected an origin (scheme://host[:port]) or *",
            origin.escape_debug()
        ));
    }
    Ok(())
}

/// What a script would refuse in a part given as a value.
fn check_parts(parts: &[PartSpec]) -> Result<(), String> {
    if parts.is_empty() {
        return Err("a stream needs at least one part".into());
    }
    for (i, part) in parts.iter().enumerate() {
        script::check_content_type(&part.content_type).map_err(|e| format!("part {i}: {e}"))?;
        if part.delay_ms > MAX_WAIT_MS {
            return Err(format!("part {i}: a delay is at most a day ({MAX_WAIT_MS} ms)"));
        }
    }
    Ok(())
}

/// A timeout in the loop's microseconds: more than 0, at most [`MAX_TIMEOUT`].
fn micros(timeout: Duration) -> Result<Micros, String> {
    match u64::try_from(timeout.as_micros()) {
        Ok(us) if us > 0 && timeout <= MAX_TIMEOUT => Ok(us),
        _ => Err(format!("must be more than 0 and at most a day, got {timeout:?}")),
    }
}

/// The spawned thread: builds and binds the server, sends its address and remote back,
/// serves, and leaves its final counters in `ended`.
fn serve_spawned(
    builder: Builder,
    ready: &mpsc::SyncSender<(Vec<ListenAddr>, Remote)>,
    ended: &Mutex<Option<Stats>>,
) -> Result<Exit, Error> {
    let mut server = builder.bind()?;
    let remote = server.remote().map_err(Error::Io)?;
    // `spawn` waits for this; it cannot have gone.
    let _ = ready.send((server.addrs().to_vec(), remote));
    let exit = server.serve();
    *ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(server.snapshot());
    exit
}

/// A server serving on its own thread (from [`Builder::spawn`]). Dropping the handle
/// stops the server gracefully and waits for its thread, as [`stop`](Self::stop) does.
#[derive(Debug)]
pub struct Handle {
    local_addr: SocketAddr,
    addrs: Vec<ListenAddr>,
    remote: Remote,
    /// The counters the loop ended with, left by its thread as it ends.
    ended: Arc<Mutex<Option<Stats>>>,
    /// `None` once joined.
    thread: Option<JoinHandle<Result<Exit, Error>>>,
}

impl Handle {
    /// The address of the server's first TCP listener (with port 0 asked for, the
    /// port it got); `0.0.0.0:0` on unix sockets only.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Everything the server listens on, as [`Server::addrs`] says.
    pub fn addrs(&self) -> &[ListenAddr] {
        &self.addrs
    }

    /// The counters `/stats` shows, taken by the loop between two of its turns (this
    /// waits for the loop's next turn: it wakes the loop if it sleeps). Once the server
    /// has stopped (by `/quit`, say), the counters it stopped with.
    ///
    /// # Panics
    ///
    /// If the server's thread panicked.
    pub fn stats(&self) -> Stats {
        self.remote
            .stats()
            .or_else(|| self.ended.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .expect("the mixreplace server's thread panicked")
    }

    /// Stops the server gracefully: it stops accepting, ends every stream with its
    /// closing delimiter, waits (0.9 s at most) for the clients to take it, and its
    /// thread ends. Returns the counters it stopped with, or why it had failed.
    ///
    /// # Panics
    ///
    /// With the server thread's panic, if it panicked.
    pub fn stop(mut self) -> Result<Stats, Error> {
        match self.finish() {
            Some(Ok(exit)) => exit?,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Exit::Graceful,
        };
        // The thread leaves its counters before it ends.
        let ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner).take();
        Ok(ended.unwrap_or_default())
    }

    /// Asks for a stop and joins the thread; `None` once joined.
    fn finish(&mut self) -> Option<thread::Result<Result<Exit, Error>>> {
        let thread = self.thread.take()?;
        self.remote.stop();
        Some(thread.join())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // A panic of the server's thread was printed when it happened; raising it again
        // from a destructor could abort the process.
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(builder: &Builder) -> Vec<&str> {
        builder.streams.iter().map(|(path, _)| path.as_str()).collect()
    }

    #[test]
    fn stream_paths_are_decoded_like_request_paths() {
        for (written, decoded) in [
            ("/my cam", "/my cam"),
            ("/my%20cam", "/my cam"),
            ("/caméra", "/caméra"),
            ("/cam{1}", "/cam{1}"),
            ("/100%25", "/100%"),
            ("/a%3Fb", "/a?b"),
        ] {
            let builder = Builder::new().stream(written, "demo");
            assert_eq!(builder.error, None, "{written}");
            assert_eq!(paths(&builder), [decoded], "{written}");
        }
        for bad in ["cam", "/a?b", "/a#b", "/100%", "/a%zz", "/a%00", "/a\tb", "/%FF"] {
            let err = Builder::new().try_stream(bad, "demo").unwrap_err();
            assert!(err.starts_with("invalid path"), "{bad}: {err}");
        }
        for (first, same) in [("/my cam", "/my%20cam"), ("/a", "/a"), ("/x", "/st%61ts")] {
            let mut builder = Builder::new().stream(first, "demo");
            let err = builder.try_stream(same, "demo").unwrap_err();
            assert!(err.ends_with("that path is already taken"), "{same}: {err}");
        }
    }

    #[test]
    fn the_first_bad_value_is_kept_and_named() {
        let builder = Builder::new()
            .stream("/a", "video")
            .max_clients(0)
            .stream("/b", "demo");
        assert!(
            builder
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("stream /a: unknown stream kind 'video'")),
            "{:?}",
            builder.error
        );
        assert_eq!(paths(&builder), ["/b"]);
        for (builder, says) in [
            (Builder::new().max_clients(0), "max_clients: must be at least 1"),
            (
                Builder::new().head_timeout(Duration::ZERO),
                "head_timeout: must be more than 0",
            ),
            (
                Builder::new().head_timeout(Duration::from_nanos(10)),
                "head_timeout: must be more",
            ),
            (
                Builder::new().send_timeout(MAX_TIMEOUT * 2),
                "send_timeout: must be more than 0",
            ),
            (
                Builder::new().basic_auth("a:b", "c"),
                "basic_auth: the user name must not",
            ),
            (
                Builder::new().allow_origin("a b"),
                "allow_origin: invalid origin 'a b'",
            ),
            (Builder::new().allow_origin(""), "allow_origin: invalid origin ''"),
            (
                Builder::new().parts("/p", []),
                "parts /p: a stream needs at least one part",
            ),
            (
                Builder::new().parts("/p", [PartSpec::new("text/plain\r\nX-Evil: 1", "x", 0)]),
                "parts /p: part 0: bad content type",
            ),
            (
                Builder::new().looping_parts("/p", [PartSpec::new("text/plain", "x", MAX_WAIT_MS + 1)]),
                "parts /p: part 0: a delay is at most a day",
            ),
            (
                Builder::new().parts("/stats", [PartSpec::new("text/plain", "x", 0)]),
                "already taken",
            ),
            (
                Builder::new().stream("/a", "stdin").stream("/b", "stdin"),
                "standard input already feeds",
            ),
        ] {
            let err = builder.error.unwrap_or_default();
            assert!(err.contains(says), "{err:?} does not say {says:?}");
        }
        let good = Builder::new()
            .head_timeout(Duration::from_millis(1))
            .send_timeout(MAX_TIMEOUT)
            .basic_auth("user", "pa:ss")
            .allow_origin("*")
            .looping_parts("/p", [PartSpec::new("image/png;q=1", "x", MAX_WAIT_MS)]);
        assert_eq!(good.error, None);
        assert_eq!(
            (good.limits.head_timeout, good.limits.send_timeout),
            (1_000, 86_400_000_000)
        );
        assert_eq!(good.credentials, ["user:pa:ss"]);
    }

    #[test]
    fn a_bad_value_comes_back_from_bind_and_spawn() {
        let err = Builder::new().stream("/x", "video").bind().unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        let err = Builder::new().max_clients(0).spawn().unwrap_err();
        assert!(err.to_string().starts_with("max_clients:"), "{err}");
        let err = Builder::new()
            .stream("/x", "script:/nonexistent/x")
            .spawn()
            .unwrap_err();
        assert!(matches!(err, Error::Stream(_)), "{err:?}");
    }
}
