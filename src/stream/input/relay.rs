//! `relay:URL`: the frames of another `multipart/x-mixed-replace` server, over one
//! upstream connection, republished to any number of viewers — to share a camera that
//! allows one client, or to scale out (an origin feeding edges).
//!
//! The connection is a non-blocking `mio` `TcpStream` registered with the loop's `Poll`
//! (no thread): connect, write the request, read the answer through the protocol in
//! [`upstream`](super::upstream), whose frames go to the [`Feed`](super::Feed). The
//! upstream closing, failing, answering anything but a multipart `200`, or sending nothing
//! for `timeout` seconds (a stall: connect included) ends the connection; the next
//! attempt comes after the [`Backoff`] (1 s doubling to 30 s, back to 1 s once a connection
//! brings a frame), one log line per attempt. With `on_demand` the connection is made at the
//! first viewer or waiting snapshot and closed `idle` seconds after the last one leaves;
//! otherwise it is made at start-up and kept.
//!
//! Invariants: at most one upstream connection and at most one pending retry; timers
//! cannot be cancelled, so each kind of timer has its deadline here and a timer that
//! fires for a deadline since moved or cleared does nothing. A host name is resolved at
//! each attempt with the system resolver, which blocks the loop for as long as it takes:
//! give an IP address where that matters (an `/etc/hosts` name is instant).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};

use log::{info, warn};
use mio::Interest;
use mio::net::TcpStream;

use crate::clock::Micros;
use crate::stream::input::upstream::{Backoff, RelayUrl, Upstream, UpstreamError};
use crate::stream::input::{Demand, Input, InputCx, InputState, READ_BUDGET};

/// The connection's `sub` token.
const SOCKET: usize = 0;
/// Timer tags.
const RETRY: u32 = 0;
const IDLE: u32 = 1;
const STALL: u32 = 2;

/// A `relay:` spec: the URL and the relay's own options.
#[derive(Clone, Debug, PartialEq)]
pub struct RelaySpec {
    pub url: RelayUrl,
    /// `user:password` from the `user=` and `password=` options (they win over the URL's).
    pub credentials: Option<String>,
    /// Connect only while someone watches.
    pub on_demand: bool,
    /// With `on_demand`: how long after the last viewer the connection is closed.
    pub idle: Micros,
    /// No byte for this long (connecting included): the upstream has stalled.
    pub timeout: Micros,
}

#[derive(Debug)]
pub struct RelayInput {
    spec: RelaySpec,
    upstream: Upstream,
    backoff: Backoff,
    conn: Option<Connection>,
    /// Frames are wanted: always without `on_demand`, else while someone watches.
    wanted: bool,
    /// When the next attempt is due, if one is waiting.
    retry_at: Option<Micros>,
    /// With `on_demand`, nobody watching: when the connection goes.
    idle_at: Option<Micros>,
    /// Oversize parts of this connection already counted in the feed.
    oversize_counted: u64,
    /// The one stall timer outstanding, if any: one at a time, whatever the reconnects.
    stall_at: Option<Micros>,
    stopping: bool,
}

#[derive(Debug)]
struct Connection {
    socket: TcpStream,
    /// The connect completed.
    connected: bool,
    /// Bytes of the request written.
    written: usize,
    /// When a byte last came (or the attempt began): the stall timeout counts from here.
    last_read: Micros,
}

impl RelayInput {
    pub fn new(spec: RelaySpec) -> RelayInput {
        // Made again in `start`, with the feed's `max_frame`.
        let upstream = Upstream::new(&spec.url, spec.credentials.as_deref(), 0);
        RelayInput {
            wanted: !spec.on_demand,
            spec,
            upstream,
            backoff: Backoff::default(),
            conn: None,
            retry_at: None,
            idle_at: None,
            oversize_counted: 0,
            stall_at: None,
            stopping: false,
        }
    }

    fn name(&self) -> String {
        format!("http://{}{}", self.spec.url.authority, self.spec.url.target)
    }

    /// One attempt: resolve, connect (non-blocking), register. A failure here goes the
    /// way of every failure: logged, retried after the backoff.
    fn connect(&mut self, cx: &mut InputCx<'_>) {
        self.retry_at = None;
        self.oversize_counted = 0;
        self.upstream.restart();
        let url = &self.spec.url;
        let attempt = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .and_then(|mut addrs| {
                addrs
                    .next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
            })
            .and_then(|addr: SocketAddr| TcpStream::connect(addr))
            .and_then(|mut socket| {
                cx.registry
                    .register(
                        &mut socket,
                        cx.token(SOCKET),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .map(|()| socket)
            });
        match attempt {
            Ok(socket) => {
                self.conn = Some(Connection {
                    socket,
                    connected: false,
                    written: 0,
                    last_read: cx.now,
                });
                cx.feed.set_state(InputState::Waiting);
                self.arm_stall(cx.now + self.spec.timeout, cx);
            }
            Err(e) => self.fail(&format!("cannot connect: {e}"), cx),
        }
    }

    /// Sets the stall timer for `at` unless one is outstanding (it comes no later, and
    /// re-arms from the connection's last read when it fires).
    fn arm_stall(&mut self, at: Micros, cx: &mut InputCx<'_>) {
        if self.stall_at.is_none() {
            self.stall_at = Some(at);
            cx.wake_at(at, STALL);
        }
    }

    /// Ends the connection (if any) and, while frames are wanted, schedules the next
    /// attempt.
    fn fail(&mut self, why: &str, cx: &mut InputCx<'_>) {
        self.close(cx);
        if !self.wanted || self.stopping {
            return;
        }
        let delay = self.backoff.failed();
        warn!(
            "{}: relay {}: {why}; next attempt in {:.0} s",
            cx.feed.path(),
            self.name(),
            delay as f64 / 1e6
        );
        cx.feed.set_state(InputState::Restarting);
        let at = cx.now + delay;
        self.retry_at = Some(at);
        cx.wake_at(at, RETRY);
    }

    fn close(&mut self, cx: &mut InputCx<'_>) {
        if let Some(mut conn) = self.conn.take() {
            // The descriptor closes on drop whatever this says.
            let _ = cx.registry.deregister(&mut conn.socket);
        }
        self.upstream.restart();
    }

    /// The connect's outcome, once the socket is writable: `Ok(false)` still connecting.
    fn check_connected(conn: &mut Connection) -> io::Result<bool> {
        if conn.connected {
            return Ok(true);
        }
        if let Some(e) = conn.socket.take_error()? {
            return Err(e);
        }
        match conn.socket.peer_addr() {
            Ok(_) => {
                conn.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Connected: writes what is left of the request, then reads what came.
    fn drive(&mut self, cx: &mut InputCx<'_>) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if !Self::check_connected(conn).map_err(|e| format!("cannot connect: {e}"))? {
            return Ok(());
        }
        let request = self.upstream.request();
        while conn.written < request.len() {
            match conn.socket.write(&request[conn.written..]) {
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("sending the request: {e}")),
            }
        }
        let mut read = 0;
        while read < READ_BUDGET {
            let n = match conn.socket.read(cx.scratch) {
                Ok(0) => {
                    let feed = &mut *cx.feed;
                    let now = cx.now;
                    let why = self.upstream.on_eof(|frame| feed.offer(frame, now));
                    return Err(why.to_string());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("reading: {e}")),
            };
            read += n;
            conn.last_read = cx.now;
            let was_streaming = self.upstream.streaming();
            let (feed, now, mut frames) = (&mut *cx.feed, cx.now, 0);
            let result = self.upstream.on_data(&cx.scratch[..n], |frame| {
                frames += 1;
                feed.offer(frame, now);
            });
            if frames > 0 {
                self.backoff.frame();
            }
            // The demuxer drops oversize parts before they are whole (bounded memory).
            let oversize = self.upstream.demux_stats().map_or(0, |s| s.oversize);
            if oversize > self.oversize_counted {
                feed.count_oversize(oversize - self.oversize_counted);
                self.oversize_counted = oversize;
            }
            if !was_streaming && self.upstream.streaming() {
                let url = &self.spec.url;
                info!("{}: relaying http://{}{}", feed.path(), url.authority, url.target);
                feed.set_state(InputState::Running);
            }
            match result {
                Ok(()) => {}
                Err(UpstreamError::Closed) => return Err("ended the stream".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
        cx.again(SOCKET);
        Ok(())
    }
}

impl Input for RelayInput {
    fn start(&mut self, cx: &mut InputCx<'_>) -> io::Result<()> {
        let max_frame = cx.feed.options().max_frame;
        self.upstream = Upstream::new(&self.spec.url, self.spec.credentials.as_deref(), max_frame);
        cx.feed.set_state(InputState::Waiting);
        if self.wanted {
            self.connect(cx);
        }
        Ok(())
    }

    fn on_ready(&mut self, _sub: usize, cx: &mut InputCx<'_>) {
        if let Err(why) = self.drive(cx) {
            self.fail(&why, cx);
        }
    }

    fn on_timer(&mut self, tag: u32, cx: &mut InputCx<'_>) {
        match tag {
            RETRY if self.retry_at.is_some_and(|at| cx.now >= at) && self.conn.is_none() => {
                cx.feed.count_restart();
                self.connect(cx);
            }
            IDLE if self.idle_at.is_some_and(|at| cx.now >= at) => {
                self.idle_at = None;
                self.wanted = false;
                self.retry_at = None;
                if self.conn.is_some() {
                    info!("{}: nobody watching; closing the relay", cx.feed.path());
                }
                self.close(cx);
                self.backoff = Backoff::default();
                cx.feed.retire();
                cx.feed.set_state(InputState::Stopped);
            }
            STALL if self.stall_at.is_some_and(|at| cx.now >= at) => {
                self.stall_at = None;
                let Some(conn) = &self.conn else { return };
                let due = conn.last_read + self.spec.timeout;
                if cx.now >= due {
                    let secs = self.spec.timeout as f64 / 1e6;
                    self.fail(&format!("nothing came for {secs} s"), cx);
                } else {
                    self.arm_stall(due, cx);
                }
            }
            _ => {}
        }
    }

    fn on_demand(&mut self, demand: Demand, cx: &mut InputCx<'_>) {
        if !self.spec.on_demand || self.stopping {
            return;
        }
        if demand.wanted() {
            self.idle_at = None;
            self.wanted = true;
            if self.conn.is_none() && self.retry_at.is_none() {
                self.connect(cx);
            }
        } else if self.wanted && self.idle_at.is_none() {
            let at = cx.now + self.spec.idle;
            self.idle_at = Some(at);
            cx.wake_at(at, IDLE);
        }
    }

    fn on_stop(&mut self, cx: &mut InputCx<'_>) {
        self.stopping = true;
        self.retry_at = None;
        self.close(cx);
    }

    fn shutdown(&mut self) {
        self.stopping = true;
        self.conn = None;
    }
}
