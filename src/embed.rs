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
use std::path::PathBuf;
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
use crate::server::{Config, Exit, Remote, Server};
use crate::stream::live::LiveConfig;
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
    listen: SocketAddr,
    streams: Vec<(String, Source)>,
    limits: Limits,
    max_clients: Option<usize>,
    credentials: Option<String>,
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
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            streams: Vec::new(),
            limits: Limits::default(),
            max_clients: None,
            credentials: None,
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

    /// The address to listen on; port 0 lets the system pick one (read it from
    /// [`Server::local_addr`] or [`Handle::local_addr`]).
    pub fn listen(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.listen = addr.into();
        self
    }

    /// Serves `spec` at `path`, as the binary's `--stream PATH=SPEC` does: `demo`,
    /// `synthetic:parts=N,size=BYTES,interval=MS`, `script:FILE`, `dir:FOLDER[,fps=N]`,
    /// `stdin[,fps=N]` (the process's standard input; one stream at most) and the rest
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

    /// Requires HTTP Basic authentication on every route (`401` without); `user` holds
    /// no `:`.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        let checked = if user.contains(':') {
            Err("the user name must not contain ':'".to_owned())
        } else {
            self.credentials = Some(format!("{user}:{password}"));
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

    /// Every connection starts with a PROXY protocol header (v1 or v2, as HAProxy's
    /// `send-proxy` or `send-proxy-v2` sends), read before the request within the head
    /// timeout; its client address stands in for the peer's. Only trusted proxies may
    /// connect: others, and malformed headers, are closed unanswered.
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.proxy_protocol = on;
        self
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
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return Err(Error::Config(
                "proxy_protocol: no trusted proxy to accept a PROXY header from (trust_proxy)".to_owned(),
            ));
        }
        let access = Access::new(self.credentials.as_deref(), self.origin.as_deref());
        let live = self.live_config();
        let routes = build_routes(self.streams, &access, self.allow_quit).map_err(Error::Stream)?;
        let mut proxies = Proxies::new(self.trusted_proxies, self.proxy_protocol);
        proxies.forwarded = self.forwarded_header;
        let config = Config {
            listen: self.listen,
            limits: self.limits,
            max_clients: client_cap(self.max_clients, self.raise_fd_limit),
            access,
            live,
            signals: self.signals,
            access_log: self.access_log,
            proxies,
        };
        let server = Server::bind(&config, routes)?;
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
            Ok((local_addr, remote)) => Ok(Handle {
                local_addr,
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
        if matches!(spec, StreamSpec::Stdin(_)) && self.live_config().is_some() {
            return Err("standard input already feeds another stream".into());
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

    /// The live input's configuration, if a stream reads standard input.
    fn live_config(&self) -> Option<LiveConfig> {
        self.streams.iter().find_map(|(_, source)| match source {
            Source::Spec(StreamSpec::Stdin(live)) => Some(*live),
            _ => None,
        })
    }

    /// Keeps the first error, prefixed with what it concerns.
    fn keep_error(mut self, result: Result<(), String>, subject: impl FnOnce() -> String) -> Self {
        if let Err(e) = result {
            self.error.get_or_insert_with(|| format!("{}: {e}", subject()));
        }
        self
    }
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
    ready: &mpsc::SyncSender<(SocketAddr, Remote)>,
    ended: &Mutex<Option<Stats>>,
) -> Result<Exit, Error> {
    let mut server = builder.bind()?;
    let remote = server.remote().map_err(Error::Io)?;
    // `spawn` waits for this; it cannot have gone.
    let _ = ready.send((server.local_addr(), remote));
    let exit = server.serve();
    *ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(server.snapshot());
    exit
}

/// A server serving on its own thread (from [`Builder::spawn`]). Dropping the handle
/// stops the server gracefully and waits for its thread, as [`stop`](Self::stop) does.
#[derive(Debug)]
pub struct Handle {
    local_addr: SocketAddr,
    remote: Remote,
    /// The counters the loop ended with, left by its thread as it ends.
    ended: Arc<Mutex<Option<Stats>>>,
    /// `None` once joined.
    thread: Option<JoinHandle<Result<Exit, Error>>>,
}

impl Handle {
    /// The address the server listens on (with port 0 asked for, the port it got).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
        assert_eq!(good.credentials.as_deref(), Some("user:pa:ss"));
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
