//! One client connection: a state machine driven by readiness and timer inputs.
//!
//! ```text
//!  Head ──request──▶ Stream ──last part / stop──▶ Finishing ──all sent──▶ Lingering ──▶ closed
//!    │                                              ▲                        │
//!    └──────── short answer (404, 408, …) ──────────┘      client EOF or linger timeout
//! ```
//!
//! Invariants:
//! - A connection has at most one pending timer; what it means follows from the state:
//!   the head deadline, the next part's due time, the send timeout (while a write is
//!   blocked), or the end of lingering.
//! - The outbox holds at most the part being written (plus framing): a client that reads
//!   slowly makes its own timeline wait rather than queueing parts, so memory per
//!   connection is bounded by the largest part.
//! - The server never closes a connection with bytes still to send: it shuts down its
//!   side and reads what the client still sends until the client closes (lingering
//!   close, as nginx does), so the client reads the answer instead of a reset.
//! - A connection never touches `Poll`; it reports `Close` and the loop removes it after
//!   the event batch.

use std::io::{self, Read};
use std::net::Shutdown;
use std::rc::Rc;

use log::debug;
use mio::net::TcpStream;

use crate::clock::{Clock, Micros, ms, tick_of_deadline};
use crate::http::{self, MAX_HEAD, Method, Status, Version};
use crate::routes::Routes;
use crate::routes::access::Access;
use crate::routes::respond::{self, Reply, StreamOptions};
use crate::routes::stats::{Reason, Stats};
use crate::server::Timer;
use crate::server::outbox::{Chunk, Flush, Outbox};
use crate::stream::multipart::{Part, Stamp};
use crate::stream::{Cursor, Next, Stream, Viewer};
use crate::wheel::{TimerId, Wheel};

/// Reads per turn before a connection yields to the others. Readiness is edge-triggered:
/// no new event comes for data already queued, so a connection that yields before
/// `WouldBlock` is queued for another turn ([`Cx::again`]).
const READS_PER_WAKE: usize = 4;

/// Timeouts and budgets, from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub head_timeout: Micros,
    pub send_timeout: Micros,
    pub linger: Micros,
    /// Bytes one connection may write per loop turn before the others get their turn.
    pub write_budget: usize,
}

/// The command line's defaults.
impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_timeout: ms(10_000),
            send_timeout: ms(30_000),
            linger: ms(2_000),
            write_budget: 256 * 1024,
        }
    }
}

/// Everything a connection may use while it handles one input.
pub struct Cx<'a> {
    pub now: Micros,
    pub key: usize,
    pub clock: &'a Clock,
    pub timers: &'a mut Wheel<Timer>,
    pub routes: &'a Routes,
    pub access: &'a Access,
    pub limits: &'a Limits,
    pub stats: &'a mut Stats,
    /// Shared read buffer: connections read into it and keep only what they need.
    pub scratch: &'a mut [u8],
    /// Connections that used up their turn with more to read or write: driven again
    /// next turn with this input (key, serial, input).
    pub again: &'a mut Vec<(usize, u32, Input)>,
    /// The live stream's wake list (key, serial): a connection that starts watching the
    /// live stream adds itself; the loop wakes the list with [`Input::Frame`].
    pub watchers: &'a mut Vec<(usize, u32)>,
    /// Set by `GET /quit`.
    pub stop_requested: &'a mut bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Readable,
    Writable,
    Timer,
    /// The server is stopping: end the stream with its closing delimiter.
    Stop,
    /// A live stream this connection watches has a new frame.
    Frame,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    Close(Reason),
}

#[derive(Debug)]
enum State {
    /// Reading the request head; the buffer is dropped once the head is parsed.
    Head { buf: Vec<u8> },
    /// Sending a stream: the cursor says what comes next and when.
    Stream {
        stream: Viewer,
        cursor: Cursor,
        /// See [`StreamOptions`].
        advance_headers: bool,
        /// `advance_headers`: the next part's header block already went out.
        header_sent: bool,
    },
    /// Writing the last bytes (an answer, or a stream's end); then lingering.
    Finishing,
    /// Our side is shut; discarding input until the client closes or time runs out.
    Lingering,
}

/// What [`Conn::queue_next`] left in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// A part or the stream's end was queued: write it.
    Queued,
    /// Nothing is due before this time.
    WaitUntil(Micros),
    /// Nothing until a live frame arrives (the loop wakes the connection then).
    WaitForFrame,
}

/// Sent ahead of a live frame that has not arrived yet, with `advance_headers`: its
/// length and stamp are not known, so the client finds its end by the delimiter.
const LIVE_ADVANCE_HEADER: &[u8] = b"Content-Type: image/jpeg\r\n\r\n";

#[derive(Debug)]
pub struct Conn {
    socket: TcpStream,
    serial: u32,
    state: State,
    out: Outbox,
    timer: Option<TimerId>,
    /// The last write hit `WouldBlock`; wait for a writable event.
    write_blocked: bool,
    /// A write blocked since the outbox was last empty: once it empties, the client, not
    /// the schedule, has set the pace, so the stream's timeline waits for it
    /// ([`Cursor::client_waited`]).
    client_held: bool,
    /// When the last byte was written (or the blocked write began): the send timeout
    /// counts from here.
    progress_at: Micros,
}

impl Conn {
    pub fn new(socket: TcpStream, serial: u32, cx: &mut Cx<'_>) -> Conn {
        let mut conn = Conn {
            socket,
            serial,
            state: State::Head { buf: Vec::new() },
            out: Outbox::default(),
            timer: None,
            write_blocked: false,
            client_held: false,
            progress_at: cx.now,
        };
        conn.arm(cx, cx.now + cx.limits.head_timeout);
        conn
    }

    /// A connection past the client cap: `503` with `Retry-After`, then a graceful close.
    pub fn refuse(socket: TcpStream, serial: u32, cx: &mut Cx<'_>) -> (Conn, Outcome) {
        let mut conn = Conn::new(socket, serial, cx);
        let outcome = conn.reply(Reply::retry_later(cx.access), Version::Http11, false, cx);
        (conn, outcome)
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Whether a stream is being sent (a live stream wakes only such connections).
    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Stream { .. })
    }

    /// The one transition function.
    pub fn handle(&mut self, input: Input, cx: &mut Cx<'_>) -> Outcome {
        match input {
            Input::Readable => self.on_readable(cx),
            Input::Writable => {
                self.write_blocked = false;
                self.pump(cx)
            }
            Input::Timer => {
                self.timer = None;
                self.on_timer(cx)
            }
            Input::Stop => self.on_stop(cx),
            // A live frame arrived: take it now unless a part is still going out.
            Input::Frame if self.out.is_empty() => self.pump(cx),
            Input::Frame => Outcome::Continue,
        }
    }

    /// Frees what the connection holds outside itself: its timer.
    pub fn release(&mut self, timers: &mut Wheel<Timer>) {
        if let Some(id) = self.timer.take() {
            timers.cancel(id);
        }
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>) -> Outcome {
        match self.state {
            State::Head { .. } => self.read_head(cx),
            _ => self.discard_input(cx),
        }
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>) -> Outcome {
        match self.state {
            State::Head { .. } => self.answer(
                Status::RequestTimeout,
                Version::Http11,
                false,
                cx.access.headers(),
                cx,
            ),
            State::Lingering => Outcome::Close(Reason::Finished),
            State::Stream { .. } | State::Finishing if !self.out.is_empty() => self.check_send_timeout(cx),
            State::Stream { .. } | State::Finishing => self.pump(cx),
        }
    }

    fn on_stop(&mut self, cx: &mut Cx<'_>) -> Outcome {
        match &self.state {
            State::Head { .. } => Outcome::Close(Reason::Stopped),
            State::Stream {
                stream,
                cursor,
                header_sent,
                ..
            } => {
                // Close the stream after the part in flight (never cut a part), unless the
                // closing delimiter already went out with the last part.
                if !stream.closed_for(cursor) {
                    self.out.push(Chunk::Shared(stream.closing(*header_sent).clone()));
                }
                self.state = State::Finishing;
                self.pump(cx)
            }
            State::Finishing | State::Lingering => Outcome::Continue,
        }
    }

    fn read_head(&mut self, cx: &mut Cx<'_>) -> Outcome {
        for _ in 0..READS_PER_WAKE {
            let n = match self.socket.read(cx.scratch) {
                Ok(0) => return Outcome::Close(Reason::ClientGone),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Outcome::Close(classify(&e)),
            };
            // A short read emptied the socket: what arrives later (data, FIN, reset)
            // raises a new edge, so there is no need to read on to WouldBlock.
            let drained = n < cx.scratch.len();
            let State::Head { buf } = &mut self.state else {
                unreachable!("read_head outside the Head state")
            };
            // Keep one byte past the cap, so the parser can tell "too large".
            let keep = n.min(MAX_HEAD + 1 - buf.len());
            buf.extend_from_slice(&cx.scratch[..keep]);
            let buf = std::mem::take(buf);
            match http::parse(&buf) {
                Ok(None) if drained => {
                    self.state = State::Head { buf };
                    return Outcome::Continue;
                }
                Ok(None) => self.state = State::Head { buf },
                Ok(Some(request)) => {
                    let reply = respond::respond(&request, cx.routes, cx.access);
                    let head_only = request.method == Method::Head;
                    return match self.reply(reply, request.version, head_only, cx) {
                        // The rest of what the client sent (a body, pipelined requests)
                        // is read and dropped, so EOF and resets are seen.
                        Outcome::Continue if !drained => self.discard_input(cx),
                        close => close,
                    };
                }
                Err(status) => {
                    return self.answer(status, Version::Http11, false, cx.access.headers(), cx);
                }
            }
        }
        cx.again.push((cx.key, self.serial, Input::Readable));
        Outcome::Continue
    }

    /// Carries a reply out; `head_only`: the request was a `HEAD`, so no body.
    fn reply(&mut self, reply: Reply, version: Version, head_only: bool, cx: &mut Cx<'_>) -> Outcome {
        match reply {
            Reply::Answer { status, extra } => self.answer(status, version, head_only, &extra, cx),
            Reply::Page(page) => {
                // Stats count the answer that carries them, as they count its connection.
                cx.stats.answered(Status::Ok);
                let body = page.render(cx.stats, cx.now, cx.routes);
                self.send(version, page.content_type(), body.as_bytes(), head_only, cx)
            }
            Reply::Stream { stream, options } => self.start_stream(stream, version, head_only, options, cx),
            Reply::Snapshot(part) => self.snapshot(part, version, head_only, cx),
            Reply::Quit => {
                *cx.stop_requested = true;
                self.answer(Status::Accepted, version, head_only, cx.access.headers(), cx)
            }
        }
    }

    /// A `200` with a body made for this request (stats, the view page; the caller counts
    /// it), then a graceful close.
    fn send(
        &mut self,
        version: Version,
        content_type: &str,
        body: &[u8],
        head_only: bool,
        cx: &mut Cx<'_>,
    ) -> Outcome {
        let bytes = http::response(
            Status::Ok,
            version,
            content_type,
            body,
            head_only,
            cx.access.headers(),
        );
        self.finish_with(Chunk::Owned(bytes.into_boxed_slice()), cx)
    }

    fn start_stream(
        &mut self,
        stream: Rc<Stream>,
        version: Version,
        head_only: bool,
        options: StreamOptions,
        cx: &mut Cx<'_>,
    ) -> Outcome {
        cx.stats.answered(Status::Ok);
        self.disarm(cx);
        self.out.push(Chunk::Shared(stream.head(version).clone()));
        if head_only {
            self.state = State::Finishing;
            return self.pump(cx);
        }
        cx.stats.streams += 1;
        self.out.push(Chunk::Shared(stream.opening().clone()));
        if stream.as_live().is_some() {
            cx.watchers.push((cx.key, self.serial));
        }
        self.state = State::Stream {
            cursor: stream.cursor(cx.now, options.dual_final),
            stream: Viewer::new(stream),
            advance_headers: options.advance_headers,
            header_sent: false,
        };
        // The first part (when due at once) goes out with the head, in the same write.
        let _ = self.queue_next(cx);
        self.pump(cx)
    }

    /// `?action=snapshot`: one image as a single response.
    fn snapshot(&mut self, part: Rc<Part>, version: Version, head_only: bool, cx: &mut Cx<'_>) -> Outcome {
        cx.stats.answered(Status::Ok);
        let head = http::response(
            Status::Ok,
            version,
            part.content_type(),
            part.body(),
            true,
            cx.access.headers(),
        );
        self.out.push(Chunk::Owned(head.into_boxed_slice()));
        if !head_only {
            self.out.push(Chunk::Body(part));
        }
        self.finish_with_queued(cx)
    }

    /// A short `text/plain` answer, then a graceful close.
    fn answer(
        &mut self,
        status: Status,
        version: Version,
        head_only: bool,
        extra: &str,
        cx: &mut Cx<'_>,
    ) -> Outcome {
        debug!("#{} answers {}", cx.key, status.code());
        cx.stats.answered(status);
        let bytes = http::answer(status, version, head_only, extra);
        self.finish_with(Chunk::Owned(bytes.into_boxed_slice()), cx)
    }

    fn finish_with(&mut self, chunk: Chunk, cx: &mut Cx<'_>) -> Outcome {
        self.out.push(chunk);
        self.finish_with_queued(cx)
    }

    fn finish_with_queued(&mut self, cx: &mut Cx<'_>) -> Outcome {
        self.state = State::Finishing;
        self.disarm(cx);
        self.pump(cx)
    }

    /// Writes what is queued, then moves the state on: queues the parts that are due,
    /// or arms the timer for the next one, or finishes.
    fn pump(&mut self, cx: &mut Cx<'_>) -> Outcome {
        let mut budget = cx.limits.write_budget;
        loop {
            if self.write_blocked {
                return Outcome::Continue;
            }
            let (flush, written) = match self.out.flush(&mut self.socket, budget) {
                Ok(done) => done,
                Err(e) => return Outcome::Close(classify(&e)),
            };
            budget = budget.saturating_sub(written);
            cx.stats.bytes += written as u64;
            if written > 0 {
                self.progress_at = cx.now;
            }
            match flush {
                Flush::Blocked => {
                    self.write_blocked = true;
                    self.client_held = true;
                    if self.timer.is_none() {
                        self.progress_at = cx.now;
                        self.arm(cx, cx.now + cx.limits.send_timeout);
                    }
                    return Outcome::Continue;
                }
                Flush::Budget => {
                    cx.again.push((cx.key, self.serial, Input::Writable));
                    return Outcome::Continue;
                }
                Flush::Done => {}
            }
            match &mut self.state {
                State::Stream { cursor, .. } => {
                    if std::mem::take(&mut self.client_held) {
                        cursor.client_waited(cx.now);
                    }
                    match self.queue_next(cx) {
                        Pending::Queued => {}
                        Pending::WaitUntil(at) => {
                            self.arm(cx, at);
                            return Outcome::Continue;
                        }
                        Pending::WaitForFrame => return Outcome::Continue,
                    }
                }
                State::Finishing => return self.linger(cx),
                State::Head { .. } | State::Lingering => return Outcome::Continue,
            }
        }
    }

    /// Queues what the stream has next: a part (stamped with the moment it was due), or
    /// the end.
    fn queue_next(&mut self, cx: &mut Cx<'_>) -> Pending {
        let State::Stream {
            stream,
            cursor,
            advance_headers,
            header_sent,
        } = &mut self.state
        else {
            return Pending::WaitForFrame;
        };
        let (part, at) = match stream.next(cursor, cx.now) {
            Next::Part { part, at } => (part, at),
            Next::At(at) => return Pending::WaitUntil(at),
            Next::Idle => return Pending::WaitForFrame,
            Next::End { closing } => {
                if closing {
                    self.out.push(Chunk::Shared(stream.closing(*header_sent).clone()));
                }
                self.state = State::Finishing;
                return Pending::Queued;
            }
        };
        // A slow reader makes its own timeline wait rather than queueing parts: memory
        // per connection stays bounded by the largest part (see the module header).
        debug_assert!(!self.out.holds_part(), "a part queued behind another");
        cx.stats.parts += 1;
        let stamp = Stamp::new(cx.clock.epoch_us(at));
        if !*advance_headers {
            self.out.push(Chunk::Part(part, stamp));
            return Pending::Queued;
        }
        if !*header_sent {
            self.out.push(Chunk::PartHeader(part.clone(), stamp));
        }
        self.out.push(Chunk::PartBody(part));
        *header_sent = true;
        match stream.peek(cursor) {
            Some((next, due)) => self
                .out
                .push(Chunk::PartHeader(next, Stamp::new(cx.clock.epoch_us(due)))),
            None if stream.as_live().is_some() => self.out.push(Chunk::Static(LIVE_ADVANCE_HEADER)),
            None => *header_sent = false,
        }
        Pending::Queued
    }

    /// Everything is sent: shut our side and read until the client closes.
    fn linger(&mut self, cx: &mut Cx<'_>) -> Outcome {
        if let Err(e) = self.socket.shutdown(Shutdown::Write) {
            return Outcome::Close(classify(&e));
        }
        self.state = State::Lingering;
        self.arm(cx, cx.now + cx.limits.linger);
        self.discard_input(cx)
    }

    fn check_send_timeout(&mut self, cx: &mut Cx<'_>) -> Outcome {
        let deadline = self.progress_at + cx.limits.send_timeout;
        if cx.now >= deadline {
            debug!("#{} made no write progress for the send timeout", cx.key);
            return Outcome::Close(Reason::SendTimeout);
        }
        // Writes progressed since the timer was set: wait out the rest.
        self.arm(cx, deadline);
        Outcome::Continue
    }

    /// Reads and drops input, to see the client's EOF or reset.
    fn discard_input(&mut self, cx: &mut Cx<'_>) -> Outcome {
        for _ in 0..READS_PER_WAKE {
            match self.socket.read(cx.scratch) {
                Ok(0) => return self.on_client_eof(),
                Ok(n) if n < cx.scratch.len() => return Outcome::Continue,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Outcome::Close(classify(&e)),
            }
        }
        cx.again.push((cx.key, self.serial, Input::Readable));
        Outcome::Continue
    }

    fn on_client_eof(&mut self) -> Outcome {
        match self.state {
            // The answer is still going out to a client that only half-closed.
            State::Finishing => Outcome::Continue,
            State::Lingering => Outcome::Close(Reason::Finished),
            State::Head { .. } | State::Stream { .. } => Outcome::Close(Reason::ClientGone),
        }
    }

    fn arm(&mut self, cx: &mut Cx<'_>, at: Micros) {
        self.disarm(cx);
        let timer = Timer::Conn {
            key: cx.key,
            serial: self.serial,
        };
        self.timer = Some(cx.timers.insert(tick_of_deadline(at), timer));
    }

    fn disarm(&mut self, cx: &mut Cx<'_>) {
        if let Some(id) = self.timer.take() {
            cx.timers.cancel(id);
        }
    }
}

/// Peer hang-ups are the normal end of a stream; anything else is an error.
fn classify(e: &io::Error) -> Reason {
    use io::ErrorKind::*;
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | WriteZero => Reason::ClientGone,
        _ => Reason::Error,
    }
}
