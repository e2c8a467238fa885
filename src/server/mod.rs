//! The event loop: one thread, one `mio::Poll`, a slab of connections, one timer wheel.
//!
//! Each turn of the loop:
//! 1. sleep in `poll` until an event or the wheel's next deadline (0% CPU when idle);
//! 2. sample "now" once, and refill the turn's write budget;
//! 3. give connections that used up their last turn before `WouldBlock`, reading or
//!    writing, another one (edge-triggered readiness will not report them again), oldest
//!    first; a connection that finds the turn's write budget spent waits for the next;
//!    the same for live inputs that used up their read budget (one budget a turn each);
//! 4. hand each readiness event to its connection or live input, with mio's
//!    read-closed hint (the listeners only set a flag);
//! 5. accept while a listener has connections, up to a cap per turn shared by every
//!    listener, taken from them in turn (the flag stays set when capped: an
//!    edge-triggered listener sends no new event for the backlog);
//! 6. wake the clients of each live stream with a new frame (see [`inputs`]; one wake
//!    list per live stream: a connection adds itself when it starts watching);
//! 7. fire every due timer (all collected before any runs, so a 0 ms re-arm cannot spin);
//! 8. begin a requested stop (`/quit`, a first signal, or a [`Handle`](crate::Handle)'s
//!    `stop`): stop accepting and end every stream with its closing delimiter;
//! 9. remove the connections that closed during the turn, never in the middle of it, so
//!    a reused slab key cannot receive an event meant for its previous owner; then tell
//!    each live input whose viewers changed.
//!
//! Whichever way the loop ends (a graceful stop, a second signal, an error) the inputs'
//! shutdown hook runs before [`Server::run`] returns (and on drop).
//!
//! While any of 3, 5 or 6 has work left, `poll` does not sleep.
//!
//! The listeners (`listen`: TCP, unix, inherited from systemd) have a token range of
//! their own, `LISTENERS`. Under systemd, `notify` tells it the server is ready and
//! stopping, and pings its watchdog from a timer of the wheel: a loop that stops
//! turning stops pinging.
//!
//! Signals are watched only when the configuration asks (the binary does; an embedded
//! server leaves the process's signals alone): SIGINT and SIGTERM stop, SIGHUP reopens
//! the access log (`access_log`, written out at the end of every turn). A `Remote` reaches the loop from other
//! threads: its requests wait in a channel and its `mio::Waker` wakes `poll`, so the loop
//! pays nothing for them until one comes.

pub mod access_log;
pub mod conn;
mod held;
pub mod inputs;
pub mod listen;
pub mod memory;
mod notify;
pub mod outbox;
pub mod sabotage;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use log::{debug, info, warn};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::clock::{self, Clock, Micros, tick_of_deadline, tick_of_now};
use crate::date::DateLine;
use crate::error::Error;
use crate::routes::Routes;
use crate::routes::access::Access;
use crate::routes::proxies::Proxies;
use crate::routes::stats::{Counters, Reason, Stats};
use crate::server::access_log::AccessLog;
use crate::server::conn::{Conn, Cx, Input, Limits, Outcome};
use crate::server::inputs::{Env, Inputs, WakeLists, input_token};
use crate::server::listen::{ListenAddr, ListenConfig, Listeners, MAX_LISTENERS, Peer};
use crate::server::notify::Notifier;
use crate::stream::input::InputSpec;
use crate::sys;
use crate::wheel::Wheel;

/// Listener `i` is `Token(LISTENERS + i)`, for `i` below [`MAX_LISTENERS`].
const LISTENERS: usize = usize::MAX - 1024;
const SIGNALS: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 3);
/// Accepts per loop turn: enough to drain a burst quickly, few enough that streams due
/// in the same turn are not held up behind a flood of new clients.
const ACCEPTS_PER_TURN: usize = 256;
/// A graceful stop ends within this, whatever the clients do.
const STOP_GRACE: Micros = 900_000;
/// After accept fails (out of file descriptors, say), accepting resumes after this pause.
const ACCEPT_PAUSE: Micros = 100_000;
/// Repeated warnings (accept failing, e.g. out of descriptors) are logged at most this often.
const LOG_EVERY: Micros = 10_000_000;
/// The shared read buffer: request heads are at most 8 KiB; live inputs read in 64 KiB.
const SCRATCH: usize = 64 * 1024;

/// Timer payload: what the wheel wakes when a deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// A connection's one timer: which connection, and which incarnation of its slab
    /// slot (a timer for a connection that left is ignored).
    Conn { key: usize, serial: u32 },
    /// The graceful stop's deadline: past it the server exits whatever is still open.
    StopDeadline,
    /// Accepting was paused after accept failed (out of file descriptors, say); try again.
    ResumeAccept,
    /// A live input's timer: `tag` `inputs::FEED_TIMER` is its feed's (fps cap,
    /// heartbeat), any other the kind's own.
    Input { index: usize, tag: u32 },
    /// Time to tell systemd's watchdog the loop still turns.
    Watchdog,
    /// Time to look whether the status told to systemd changed.
    NotifyStatus,
}

#[derive(Debug)]
pub(crate) struct Config {
    pub listen: ListenConfig,
    pub limits: Limits,
    /// Open connections at most; past it new clients get `503`.
    pub max_clients: usize,
    pub access: Access,
    /// The live streams' inputs, by path (`--stream PATH=stdin`, `pipe:…`).
    pub inputs: Vec<(String, InputSpec)>,
    /// SIGINT and SIGTERM stop the server, SIGHUP reopens the access log (the
    /// binary's choice, not a library's).
    pub signals: bool,
    /// Tell systemd (`NOTIFY_SOCKET`) when ready, stopping, and alive.
    pub notify: bool,
    /// `--access-log`: a file, or `-` for standard error.
    pub access_log: Option<PathBuf>,
    pub proxies: Proxies,
}

/// How a server's loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `/quit`, a first signal or [`Handle::stop`](crate::Handle::stop): every stream was
    /// ended with its closing delimiter, or the grace period (0.9 s) ran out.
    Graceful,
    /// A second signal during the graceful stop (only with
    /// [`Builder::signals`](crate::Builder::signals)): the signal's number.
    Forced(i32),
}

/// What another thread asks of the loop, through a [`Remote`].
#[derive(Debug)]
pub(crate) enum Request {
    /// Send back a snapshot of the counters.
    Stats(mpsc::Sender<Stats>),
    /// Stop gracefully, as `/quit` does.
    Stop,
}

/// The other threads' way into a loop: a request channel, and the waker that makes
/// `poll` return to read it.
#[derive(Debug)]
pub(crate) struct Remote {
    requests: mpsc::Sender<Request>,
    waker: Waker,
}

impl Remote {
    /// A snapshot taken by the loop at its next turn; `None` once the loop has ended
    /// (its end drops the request channel, and with it every unanswered reply).
    pub fn stats(&self) -> Option<Stats> {
        let (reply, answer) = mpsc::channel();
        self.send(Request::Stats(reply));
        answer.recv().ok()
    }

    /// Asks for a graceful stop; a loop that has ended already ignores it.
    pub fn stop(&self) {
        self.send(Request::Stop);
    }

    fn send(&self, request: Request) {
        if self.requests.send(request).is_ok() {
            // mio's eventfd waker resets a full counter and retries: it does not fail
            // while the loop (and so its `Poll`) lives.
            let _ = self.waker.wake();
        }
    }
}

/// A connection and, once it closed during the current turn, why.
struct Slot {
    conn: Conn<Peer>,
    closed: Option<Reason>,
}

/// Everything but the slab: what a connection borrows while it handles an input.
struct Shared {
    clock: Clock,
    /// "Now", sampled once per loop turn.
    now: Micros,
    timers: Wheel<Timer>,
    routes: Routes,
    access: Access,
    limits: Limits,
    stats: Counters,
    scratch: Box<[u8]>,
    again: Vec<(usize, u32, Input)>,
    /// Each live stream's clients, to wake when a frame arrives (see [`inputs`]).
    watchers: WakeLists,
    stop_requested: bool,
    /// What the connections may still write this turn (see [`Limits::turn_budget`]).
    turn_left: usize,
    /// The `Date` line of "now", set as a connection is handed an input.
    date: DateLine,
    /// Written out at the end of every turn (in `reap`).
    log: AccessLog,
    proxies: Proxies,
}

impl Shared {
    fn new(routes: Routes, access: Access, limits: Limits) -> Shared {
        Shared {
            clock: Clock::new(),
            now: 0,
            timers: Wheel::with_capacity(1024),
            routes,
            access,
            limits,
            stats: Counters::default(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            again: Vec::new(),
            watchers: WakeLists::default(),
            stop_requested: false,
            turn_left: limits.turn_budget,
            date: DateLine::at(0),
            log: AccessLog::off(),
            proxies: Proxies::default(),
        }
    }

    fn cx(&mut self, key: usize) -> Cx<'_> {
        self.date.set(self.clock.epoch_us(self.now));
        Cx {
            now: self.now,
            key,
            clock: &self.clock,
            timers: &mut self.timers,
            routes: &self.routes,
            access: &self.access,
            limits: &self.limits,
            stats: &mut self.stats,
            scratch: &mut self.scratch,
            again: &mut self.again,
            watchers: &mut self.watchers,
            stop_requested: &mut self.stop_requested,
            turn_left: &mut self.turn_left,
            date: &self.date,
            log: &mut self.log,
            proxies: &self.proxies,
        }
    }
}

/// A server bound to its address, not serving yet: made by
/// [`Builder::bind`](crate::Builder::bind), served on the calling thread by
/// [`Server::run`]. (Not `Send`: its streams are shared by `Rc` within the loop's thread;
/// [`Builder::spawn`](crate::Builder::spawn) builds one on a thread of its own.)
pub struct Server {
    poll: Poll,
    /// Emptied when a stop begins.
    listeners: Listeners,
    /// What it listens on, in the listeners' order (kept after they close).
    addrs: Vec<ListenAddr>,
    /// systemd's notification socket, when asked for and given.
    notifier: Option<Notifier>,
    /// With [`Config::signals`] only.
    signals: Option<Signals>,
    /// Requests from a [`Remote`], once one was made.
    requests: Option<mpsc::Receiver<Request>>,
    conns: Slab<Slot>,
    shared: Shared,
    max_clients: usize,
    /// When a failed accept was last logged, and how many failures since went unlogged:
    /// one line per [`LOG_EVERY`], not one per retry.
    fd_warning: Option<(Micros, u64)>,
    /// Keys of connections closed this turn, removed at its end.
    closed: Vec<usize>,
    due: Vec<Timer>,
    next_serial: u32,
    /// Out of file descriptors: accepting waits for a timer.
    accept_paused: bool,
    stopping: bool,
    /// The live streams' inputs.
    inputs: Inputs,
}

/// What a log line or a test failure wants to see: where it listens and how busy it is.
impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .field("clients", &self.conns.len())
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listeners and prepares the loop; nothing is served until [`run`](Self::run).
    pub(crate) fn bind(config: Config, routes: Routes) -> Result<Server, Error> {
        let poll = Poll::new().map_err(Error::Io)?;
        let mut listeners = Listeners::bind(config.listen).map_err(Error::from)?;
        listeners
            .register(poll.registry(), LISTENERS)
            .map_err(Error::Io)?;
        let addrs = listeners.addrs().cloned().collect();
        let log = match &config.access_log {
            Some(path) => AccessLog::open(path)
                .map_err(|e| Error::Config(format!("access log {}: {e}", path.display())))?,
            None => AccessLog::off(),
        };
        let signals = if config.signals {
            Some(watch_signals(&poll).map_err(Error::Io)?)
        } else {
            None
        };
        let mut shared = Shared::new(routes, config.access.clone(), config.limits);
        shared.log = log;
        shared.proxies = config.proxies.clone();
        let inputs = inputs::of_routes(&config.inputs, &mut shared).map_err(Error::Stream)?;
        let mut server = Server {
            poll,
            listeners,
            addrs,
            notifier: if config.notify { Notifier::from_env() } else { None },
            signals,
            requests: None,
            conns: Slab::with_capacity(1024),
            shared,
            max_clients: config.max_clients,
            fd_warning: None,
            closed: Vec::new(),
            due: Vec::new(),
            next_serial: 0,
            accept_paused: false,
            stopping: false,
            inputs,
        };
        server.with_inputs(Inputs::start).map_err(Error::Stream)?;
        server.wake_inputs_watchers();
        Ok(server)
    }

    /// The address of its first TCP listener: with port 0 asked for, the port the
    /// system chose. (A server on unix sockets only answers `0.0.0.0:0`; see
    /// [`addrs`](Self::addrs).)
    pub fn local_addr(&self) -> SocketAddr {
        first_tcp(&self.addrs)
    }

    /// Everything it listens on, in order: inherited listeners first, then the
    /// builder's addresses (with the ports the system chose).
    pub fn addrs(&self) -> &[ListenAddr] {
        &self.addrs
    }

    /// Serves on the calling thread until `/quit` (with
    /// [`Builder::allow_quit`](crate::Builder::allow_quit)) or a signal (with
    /// [`Builder::signals`](crate::Builder::signals)) stops it, or a system call the
    /// loop needs fails.
    pub fn run(mut self) -> Result<Exit, Error> {
        self.serve()
    }

    /// The way in for other threads; registers the loop's one `mio::Waker`, so it is
    /// made once, before serving.
    pub(crate) fn remote(&mut self) -> io::Result<Remote> {
        let waker = Waker::new(self.poll.registry(), WAKER)?;
        let (requests, inbox) = mpsc::channel();
        self.requests = Some(inbox);
        Ok(Remote { requests, waker })
    }

    /// The counters now, as `/stats` would show them.
    pub(crate) fn snapshot(&self) -> Stats {
        let uptime = self.shared.clock.now();
        self.shared.stats.snapshot(uptime, &self.shared.routes)
    }

    /// The loop (see the module doc); it can be left with the server still whole, so
    /// that its final counters can be read. The inputs are shut down whichever way it
    /// ends.
    pub(crate) fn serve(&mut self) -> Result<Exit, Error> {
        let exit = self.turns();
        self.inputs.shutdown();
        exit
    }

    fn turns(&mut self) -> Result<Exit, Error> {
        let mut events = Events::with_capacity(1024);
        self.notify_ready();
        loop {
            if let Err(e) = self.poll.poll(&mut events, self.poll_timeout()) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Io(e));
            }
            self.shared.now = self.shared.clock.now();
            self.shared.turn_left = self.shared.limits.turn_budget;
            self.give_owed_turns();
            self.with_inputs(Inputs::take_pushed);
            if self.inputs.wants_again() {
                self.with_inputs(Inputs::give_again);
            }
            for event in events.iter() {
                match event.token() {
                    Token(t) if (LISTENERS..LISTENERS + MAX_LISTENERS).contains(&t) => {
                        self.listeners.mark_ready(t - LISTENERS);
                    }
                    WAKER => self.answer_requests(),
                    SIGNALS => {
                        if let Some(exit) = self.on_signals() {
                            self.close_all();
                            return Ok(exit);
                        }
                    }
                    Token(token) if input_token(token).is_some() => {
                        if let Some((index, sub)) = input_token(token) {
                            self.with_inputs(|inputs, env| inputs.ready(index, sub, env));
                        }
                    }
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            let read_closed = event.is_read_closed();
                            self.drive(key, Input::Readable { read_closed });
                        }
                        if event.is_writable() || event.is_error() {
                            self.drive(key, Input::Writable);
                        }
                    }
                }
            }
            if !self.accept_paused {
                self.accept();
            }
            self.with_inputs(Inputs::take_pushed);
            self.wake_inputs_watchers();
            if self.fire_timers() {
                info!("grace period over; closing {} connections", self.conns.len());
                self.close_all();
                return Ok(Exit::Graceful);
            }
            if self.shared.stop_requested && !self.stopping {
                self.begin_stop();
            }
            self.reap();
            let turn = self.shared.clock.now().saturating_sub(self.shared.now);
            self.shared.stats.turns.observe(turn);
            if self.stopping && self.conns.is_empty() {
                info!("stopped: every stream ended");
                return Ok(Exit::Graceful);
            }
        }
    }

    /// Drives the connections that used up their last turn with more to read or write,
    /// oldest first: they go before this turn's events, so that connections deferred by
    /// the turn's write budget are not passed over again by fresh events.
    fn give_owed_turns(&mut self) {
        for (key, serial, input) in std::mem::take(&mut self.shared.again) {
            if self
                .conns
                .get(key)
                .is_some_and(|slot| slot.conn.serial() == serial)
            {
                self.drive(key, input);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let more_to_accept = !self.accept_paused && self.listeners.any_ready();
        if more_to_accept || self.inputs.wants_again() || !self.shared.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = self.shared.timers.next_deadline()?;
        Some(clock::until_tick(self.shared.clock.now(), next))
    }

    /// Hands one input to a connection, unless it already closed this turn.
    fn drive(&mut self, key: usize, input: Input) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if slot.closed.is_some() {
            return;
        }
        let mut cx = self.shared.cx(key);
        if let Outcome::Close(reason) = slot.conn.handle(input, &mut cx) {
            slot.closed = Some(reason);
            self.closed.push(key);
        }
    }

    /// Accepts from the listeners in turn, up to the cap per turn they share.
    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(i) = self.listeners.next_ready() else {
                return;
            };
            match self.listeners.accept(i) {
                Ok((socket, peer)) => self.add(socket, peer, i),
                // That listener is drained; `next_ready` moves on to the others.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if sys::is_transient_accept_error(&e) => {}
                // Out of descriptors (EMFILE, ENFILE) or memory, or anything unexpected:
                // accepting again at once would fail again and spin, so pause on a timer.
                Err(e) => {
                    self.warn_accept_paused(&e);
                    self.accept_paused = true;
                    let at = tick_of_deadline(self.shared.now + ACCEPT_PAUSE);
                    self.shared.timers.insert(at, Timer::ResumeAccept);
                    return;
                }
            }
        }
    }

    fn warn_accept_paused(&mut self, e: &io::Error) {
        match &mut self.fd_warning {
            Some((at, unlogged)) if self.shared.now < *at + LOG_EVERY => *unlogged += 1,
            _ => {
                let unlogged = self.fd_warning.map_or(0, |(_, n)| n);
                warn!(
                    "accept: {e}; pausing accepts for {} ms at a time ({unlogged} more since the last warning)",
                    ACCEPT_PAUSE / 1000
                );
                self.fd_warning = Some((self.shared.now, 0));
            }
        }
    }

    /// A connection accepted by listener `via`, from `peer` (none over a unix socket).
    fn add(&mut self, mut socket: Peer, peer: Option<SocketAddr>, via: usize) {
        socket.set_nodelay();
        let from = PeerName(peer, self.listeners.addr(via));
        let open = self.conns.len();
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut socket, Token(key), interest) {
            warn!("register: {e}");
            return;
        }
        self.next_serial = self.next_serial.wrapping_add(1);
        let proxied = self.listeners.proxied(via) || self.shared.proxies.protocol;
        // A unix socket's peers are whoever its file's mode lets in: on a PROXY listener
        // they are the proxy. Over TCP only a trusted peer may send the header.
        let untrusted = proxied && peer.is_some_and(|p| !self.shared.proxies.trusts(p.ip()));
        let mut cx = self.shared.cx(key);
        let (mut conn, outcome) = if untrusted {
            // A PROXY header from anyone could claim any address: not even read, nor
            // answered (not even past the client cap).
            debug!("#{key} from {from} refused: not a trusted proxy");
            let conn = Conn::new(socket, self.next_serial, &mut cx);
            (conn, Outcome::Close(Reason::Refused))
        } else if open >= self.max_clients {
            debug!("#{key} from {from} refused: {open} clients open");
            Conn::refuse(socket, self.next_serial, &mut cx)
        } else {
            debug!("#{key} accepted from {from}");
            (Conn::new(socket, self.next_serial, &mut cx), Outcome::Continue)
        };
        if proxied {
            conn.await_proxy_header();
        }
        let closed = match outcome {
            Outcome::Continue => None,
            Outcome::Close(reason) => {
                self.closed.push(key);
                Some(reason)
            }
        };
        entry.insert(Slot { conn, closed });
        self.shared.stats.opened();
    }

    /// Fires every due timer; `true` when the graceful stop's deadline passed.
    fn fire_timers(&mut self) -> bool {
        let mut due = std::mem::take(&mut self.due);
        self.shared.timers.advance(tick_of_now(self.shared.now), &mut due);
        let mut deadline_passed = false;
        for timer in due.drain(..) {
            match timer {
                Timer::Conn { key, serial } => {
                    let current = self.conns.get(key).map(|slot| slot.conn.serial());
                    if current == Some(serial) {
                        self.drive(key, Input::Timer);
                    }
                }
                Timer::ResumeAccept => {
                    self.accept_paused = false;
                    self.listeners.mark_all_ready();
                }
                Timer::Watchdog => {
                    if let Some(notifier) = &mut self.notifier {
                        notifier.ping(self.shared.now, &mut self.shared.timers);
                    }
                }
                Timer::NotifyStatus => {
                    let status = self.status_line();
                    if let Some(notifier) = &mut self.notifier {
                        notifier.on_status(self.shared.now, &mut self.shared.timers, status);
                    }
                }
                Timer::StopDeadline => deadline_passed = true,
                Timer::Input { index, tag } => {
                    self.with_inputs(|inputs, env| inputs.on_timer(index, tag, env));
                    self.wake_inputs_watchers();
                }
            }
        }
        self.due = due;
        deadline_passed
    }

    /// Calls into the live inputs with what they may use of the loop.
    fn with_inputs<T>(&mut self, f: impl FnOnce(&mut Inputs, &mut Env<'_>) -> T) -> T {
        let mut env = Env {
            now: self.shared.now,
            registry: self.poll.registry(),
            scratch: &mut self.shared.scratch,
            timers: &mut self.shared.timers,
        };
        f(&mut self.inputs, &mut env)
    }

    /// Wakes the clients of every live stream whose input published since last time.
    fn wake_inputs_watchers(&mut self) {
        let woken = self.inputs.take_woken();
        for &list in &woken {
            self.wake_watchers(list);
        }
        self.inputs.put_woken(woken);
    }

    /// Wakes every client on wake list `list`; those that left drop off the list.
    fn wake_watchers(&mut self, list: usize) {
        self.enforce_held_frames_budget(list);
        // By index: a woken connection never adds itself again, but the list is the
        // loop's and `drive` borrows the rest of the loop.
        for i in 0..self.shared.watchers.len(list) {
            let (key, serial) = self.shared.watchers.get(list, i);
            if self.is_watching(key, serial) {
                self.drive(key, Input::Frame);
            }
        }
        self.drop_gone_watchers(list);
    }

    /// Drops the watchers that left, once they outnumber the viewers: frames may stop
    /// coming while clients come and go, and the lists must not grow with them.
    fn compact_watchers(&mut self) {
        for list in 0..self.shared.watchers.count() {
            let viewers = self.shared.watchers.viewers(list);
            if self.shared.watchers.len(list) as u64 > 2 * viewers + 64 {
                self.drop_gone_watchers(list);
            }
        }
    }

    fn drop_gone_watchers(&mut self, list: usize) {
        let mut watchers = std::mem::take(&mut self.shared.watchers);
        watchers.retain(list, |&(key, serial)| self.is_watching(key, serial));
        self.shared.watchers = watchers;
    }

    /// Whether the connection at `key` is still the one with `serial`, streaming.
    fn is_watching(&self, key: usize, serial: u32) -> bool {
        self.conns.get(key).is_some_and(|slot| {
            slot.closed.is_none() && slot.conn.serial() == serial && slot.conn.is_streaming()
        })
    }

    /// Answers every request waiting from a [`Remote`]; a stop begins at the end of the
    /// turn, as `/quit`'s does.
    fn answer_requests(&mut self) {
        let Some(requests) = &self.requests else {
            return;
        };
        let mut stop = false;
        for request in requests.try_iter() {
            match request {
                // The asker may have given up (its thread ended): nothing to do then.
                Request::Stats(reply) => drop(reply.send(self.snapshot())),
                Request::Stop => stop = true,
            }
        }
        if stop && !self.stopping {
            info!("stop requested by the embedding program");
            self.shared.stop_requested = true;
        }
    }

    /// Returns the exit to take now, if any: a second signal forces it.
    fn on_signals(&mut self) -> Option<Exit> {
        let Some(signals) = &mut self.signals else {
            return None;
        };
        for signal in signals.pending() {
            if signal == SIGHUP {
                self.shared.log.reopen(self.shared.now);
                continue;
            }
            if self.stopping || self.shared.stop_requested {
                warn!("signal {signal} again: exiting at once");
                return Some(Exit::Forced(signal));
            }
            info!("signal {signal}: stopping gracefully");
            self.shared.stop_requested = true;
        }
        None
    }

    /// Stops accepting and ends every stream with its closing delimiter.
    fn begin_stop(&mut self) {
        self.stopping = true;
        self.listeners.close(self.poll.registry());
        if let Some(notifier) = &mut self.notifier {
            notifier.stopping(self.shared.now);
        }
        info!("stopping: ending {} connections", self.conns.len());
        self.with_inputs(Inputs::stop);
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.drive(key, Input::Stop);
        }
        self.shared.timers.insert(
            tick_of_deadline(self.shared.now + STOP_GRACE),
            Timer::StopDeadline,
        );
    }

    /// Closes every connection left when the loop ends early (the grace period ran out,
    /// or a second signal), counted as stopped: the final counters add up.
    fn close_all(&mut self) {
        for (key, slot) in &mut self.conns {
            if slot.closed.is_none() {
                slot.closed = Some(Reason::Stopped);
                self.closed.push(key);
            }
        }
        self.reap();
    }

    /// Removes the connections that closed this turn. Dropping the socket closes it,
    /// which also takes it out of the epoll set.
    fn reap(&mut self) {
        for key in self.closed.drain(..) {
            let mut slot = self.conns.remove(key);
            slot.conn.release(&mut self.shared.timers);
            let shared = &mut self.shared;
            slot.conn.log_end(&mut shared.log, &shared.clock, shared.now);
            let reason = slot.closed.unwrap_or(Reason::Error);
            self.shared.stats.closed(reason);
            debug!("#{key} closed: {}", reason.name());
        }
        self.compact_watchers();
        self.with_inputs(Inputs::check_demand);
        self.wake_inputs_watchers();
        self.shared.log.flush(self.shared.now);
    }
}

impl Server {
    /// Tells systemd the server is ready, if it listens for that.
    fn notify_ready(&mut self) {
        if self.notifier.is_none() {
            return;
        }
        self.shared.now = self.shared.clock.now();
        let status = self.status_line();
        if let Some(notifier) = &mut self.notifier {
            notifier.ready(self.shared.now, &mut self.shared.timers, status);
        }
    }

    /// What `systemctl status` shows: clients, viewers and streams now.
    fn status_line(&self) -> String {
        let streams = self.shared.routes.streams().count();
        let viewers: u64 = self.shared.routes.streams().map(|(_, s)| s.viewers()).sum();
        format!(
            "{} clients, {viewers} viewers of {streams} streams",
            self.conns.len()
        )
    }
}

/// The first TCP address of `addrs`, or `0.0.0.0:0` without one.
pub(crate) fn first_tcp(addrs: &[ListenAddr]) -> SocketAddr {
    addrs
        .iter()
        .find_map(|addr| match addr {
            ListenAddr::Tcp(ip) => Some(*ip),
            ListenAddr::Unix(_) => None,
        })
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// A client in the log: its IP address, or the unix socket it came through.
struct PeerName<'a>(Option<SocketAddr>, &'a ListenAddr);

impl fmt::Display for PeerName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => write!(f, "{}", self.1),
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP, as events on `poll`.
fn watch_signals(poll: &Poll) -> io::Result<Signals> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    Ok(signals)
}
