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

use crate::clock::{Clock, Micros, tick_of_deadline};
use crate::http::{self, MAX_HEAD, Method, Request, Status, Version};
use crate::routes::access::{self, Access};
use crate::routes::stats::{Reason, Stats};
use crate::routes::view;
use crate::routes::{Route, Routes};
use crate::server::outbox::{Chunk, Flush, Outbox};
use crate::stream::multipart::Stamp;
use crate::stream::{Cursor, Next, Stream, Viewer};
use crate::wheel::{TimerId, Wheel};

/// Reads per turn before a connection yields to the others. Readiness is edge-triggered:
/// no new event comes for data already queued, so a connection that yields before
/// `WouldBlock` is queued for another turn ([`Cx::again`]).
const READS_PER_WAKE: usize = 4;

/// Output this small goes out even when the turn's write budget is spent: a short part
/// (a tick of a clock stream, a small frame, an answer) never waits behind the turns of
/// big writers, and at most this much per connection is added to a turn.
const SMALL_WRITE: usize = 16 * 1024;

/// Timer payload: which connection, and which incarnation of its slab slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    Conn {
        key: usize,
        serial: u32,
    },
    /// The graceful stop's deadline: past it the server exits whatever is still open.
    StopDeadline,
    /// Accepting was paused after accept failed (out of file descriptors, say); try again.
    ResumeAccept,
    /// The live input's fps cap allows the frame it held back.
    LiveFrame,
}

/// Timeouts and budgets, from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub head_timeout: Micros,
    pub send_timeout: Micros,
    pub linger: Micros,
    /// Bytes one connection may write per loop turn before the others get their turn.
    pub write_budget: usize,
    /// Bytes all connections together may write per loop turn. Past it the writes wait
    /// for the next turn, after the timers: with hundreds of fast readers of big parts,
    /// per-connection budgets alone add up to hundreds of MiB a turn, and every other
    /// client's part due meanwhile waits for the whole turn.
    pub turn_budget: usize,
}

/// Everything a connection may use while it handles one input.
#[derive(Debug)]
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
    /// Set by `GET /quit`.
    pub stop_requested: &'a mut bool,
    /// What is left of [`Limits::turn_budget`] this turn.
    pub turn_left: &'a mut usize,
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
        options: StreamOptions,
        /// `advance_headers`: the next part's header block already went out.
        header_sent: bool,
    },
    /// Writing the last bytes (an answer, or a stream's end); then lingering.
    Finishing,
    /// Our side is shut; discarding input until the client closes or time runs out.
    Lingering,
}

/// Per-request switches for the browsers' quirks (query parameters, as ustreamer names
/// them).
#[derive(Clone, Copy, Debug, Default)]
struct StreamOptions {
    /// `advance_headers=1`: send each part's header block right after the previous part.
    /// Chrome shows a part only once the next part's headers have arrived
    /// (crbug.com/527446), so without this it lags one part behind.
    advance_headers: bool,
    /// `dual_final_frames=1`: send a finished stream's last part twice, so Chrome shows it.
    dual_final: bool,
}

impl StreamOptions {
    fn of(request: &Request<'_>) -> StreamOptions {
        let on = |name| matches!(request.query_param(name), Some("1" | "true" | "yes"));
        StreamOptions {
            advance_headers: on("advance_headers"),
            dual_final: on("dual_final_frames"),
        }
    }
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
            progress_at: cx.now,
        };
        conn.arm(cx, cx.now + cx.limits.head_timeout);
        conn
    }

    /// A connection past the client cap: `503` with `Retry-After`, then a graceful close.
    pub fn refuse(socket: TcpStream, serial: u32, cx: &mut Cx<'_>) -> (Conn, Outcome) {
        let mut conn = Conn::new(socket, serial, cx);
        let extra = format!("Retry-After: 1\r\n{}", cx.access.headers());
        let outcome = conn.answer(Status::ServiceUnavailable, Version::Http11, false, &extra, cx);
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
                let resumed = std::mem::take(&mut self.write_blocked);
                self.pump(cx, resumed)
            }
            Input::Timer => {
                self.timer = None;
                self.on_timer(cx)
            }
            Input::Stop => self.on_stop(cx),
            // A live frame arrived: take it now unless a part is still going out.
            Input::Frame if self.out.is_empty() => self.pump(cx, false),
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
            State::Stream { .. } | State::Finishing => self.pump(cx, false),
        }
    }

    fn on_stop(&mut self, cx: &mut Cx<'_>) -> Outcome {
        match &self.state {
            State::Head { .. } => Outcome::Close(Reason::Stopped),
            State::Stream {
                stream,
                cursor,
                options,
                header_sent,
            } => {
                // Close the stream after the part in flight (never cut a part), unless the
                // closing delimiter already went out with the last part.
                if !stream.closed_for(cursor, options.dual_final) {
                    self.out.push(Chunk::Shared(stream.closing(*header_sent).clone()));
                }
                self.state = State::Finishing;
                self.pump(cx, false)
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
                    return match self.respond(&request, cx) {
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

    fn respond(&mut self, request: &Request<'_>, cx: &mut Cx<'_>) -> Outcome {
        let version = request.version;
        let head_only = request.method == Method::Head;
        let access = cx.access;
        // Browsers send CORS preflights without credentials: answer them before auth.
        if request.method == Method::Options && access.cors_enabled() {
            return self.answer(Status::NoContent, version, false, &access.preflight_headers(), cx);
        }
        if !access.allows(request.authorization) {
            let extra = format!("{}{}", access::CHALLENGE, access.headers());
            return self.answer(Status::Unauthorized, version, head_only, &extra, cx);
        }
        let Some(route) = cx.routes.get(request.path) else {
            return self.answer(Status::NotFound, version, head_only, access.headers(), cx);
        };
        let (allowed, method_ok) = match route {
            Route::Quit => ("GET", request.method == Method::Get),
            _ => (
                access.allowed_methods(),
                matches!(request.method, Method::Get | Method::Head),
            ),
        };
        if !method_ok {
            let extra = format!("Allow: {allowed}\r\n{}", access.headers());
            return self.answer(Status::MethodNotAllowed, version, head_only, &extra, cx);
        }
        match route {
            Route::Quit => {
                *cx.stop_requested = true;
                self.answer(Status::Accepted, version, false, access.headers(), cx)
            }
            // Stats count the answer that carries them, as they count its connection.
            Route::Stats => {
                cx.stats.answered(Status::Ok);
                let body = cx.stats.to_json(cx.now, cx.routes);
                self.send(version, "application/json", body.as_bytes(), head_only, cx)
            }
            Route::Metrics => {
                cx.stats.answered(Status::Ok);
                let body = cx.stats.to_metrics(cx.now, cx.routes);
                self.send(
                    version,
                    "text/plain; version=0.0.4; charset=utf-8",
                    body.as_bytes(),
                    head_only,
                    cx,
                )
            }
            Route::View => {
                cx.stats.answered(Status::Ok);
                let page = view::page(cx.routes);
                self.send(
                    version,
                    "text/html; charset=utf-8",
                    page.as_bytes(),
                    head_only,
                    cx,
                )
            }
            Route::Stream(stream) => match request.query_param("action") {
                None | Some("stream") => {
                    let stream = stream.clone();
                    self.start_stream(stream, version, head_only, StreamOptions::of(request), cx)
                }
                Some("snapshot") => {
                    let stream = stream.clone();
                    self.snapshot(&stream, version, head_only, cx)
                }
                Some(_) => self.answer(Status::BadRequest, version, head_only, access.headers(), cx),
            },
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
            return self.pump(cx, false);
        }
        cx.stats.streams += 1;
        self.out.push(Chunk::Shared(stream.opening().clone()));
        stream.watch(cx.key, self.serial);
        self.state = State::Stream {
            cursor: stream.cursor(cx.now),
            stream: Viewer::new(stream),
            options,
            header_sent: false,
        };
        // The first part (when due at once) goes out with the head, in the same write.
        let _ = self.queue_next(cx);
        self.pump(cx, false)
    }

    /// `?action=snapshot`: the stream's latest image as a single response.
    fn snapshot(&mut self, stream: &Stream, version: Version, head_only: bool, cx: &mut Cx<'_>) -> Outcome {
        let Some(part) = stream.snapshot() else {
            // A live stream before its first frame: come back shortly.
            let (status, extra) = match stream.is_live() {
                true => (
                    Status::ServiceUnavailable,
                    format!("Retry-After: 1\r\n{}", cx.access.headers()),
                ),
                false => (Status::NotFound, cx.access.headers().to_owned()),
            };
            return self.answer(status, version, head_only, &extra, cx);
        };
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
        self.pump(cx, false)
    }

    /// Writes what is queued, then moves the state on: queues the parts that are due,
    /// or arms the timer for the next one, or finishes. `resumed`: the outbox was
    /// blocked until now, so the client, not the schedule, decides when the next part
    /// may go (its timeline waits).
    fn pump(&mut self, cx: &mut Cx<'_>, resumed: bool) -> Outcome {
        let mut resumed = resumed;
        let mut budget = cx.limits.write_budget.min(*cx.turn_left);
        loop {
            if self.write_blocked {
                return Outcome::Continue;
            }
            if budget < SMALL_WRITE && self.out.pending() <= SMALL_WRITE {
                budget = SMALL_WRITE;
            }
            let (flush, written) = match self.out.flush(&mut self.socket, budget) {
                Ok(done) => done,
                Err(e) => return Outcome::Close(classify(&e)),
            };
            budget = budget.saturating_sub(written);
            *cx.turn_left = cx.turn_left.saturating_sub(written);
            cx.stats.bytes += written as u64;
            if written > 0 {
                self.progress_at = cx.now;
            }
            match flush {
                Flush::Blocked => {
                    self.write_blocked = true;
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
                    if std::mem::take(&mut resumed) {
                        cursor.client_waited(cx.now);
                    }
                    if let Some(at) = self.queue_next(cx) {
                        if let Some(at) = at {
                            self.arm(cx, at);
                        }
                        return Outcome::Continue;
                    }
                }
                State::Finishing => return self.linger(cx),
                State::Head { .. } | State::Lingering => return Outcome::Continue,
            }
        }
    }

    /// Queues what the stream has next: a part (stamped with the moment it was due), or
    /// the end. `None`: something was queued, write it. `Some(Some(at))`: nothing before
    /// `at`; `Some(None)`: nothing until a live frame arrives.
    fn queue_next(&mut self, cx: &mut Cx<'_>) -> Option<Option<Micros>> {
        let State::Stream {
            stream,
            cursor,
            options,
            header_sent,
        } = &mut self.state
        else {
            return Some(None);
        };
        let (part, at) = match stream.next(cursor, cx.now, options.dual_final) {
            Next::Part { part, at } => (part, at),
            Next::At(at) => return Some(Some(at)),
            Next::Idle => return Some(None),
            Next::End { closing } => {
                if closing {
                    self.out.push(Chunk::Shared(stream.closing(*header_sent).clone()));
                }
                self.state = State::Finishing;
                return None;
            }
        };
        cx.stats.parts += 1;
        let stamp = Stamp::new(cx.clock.epoch_us(at));
        if !options.advance_headers {
            self.out.push(Chunk::Part(part, stamp));
            return None;
        }
        if !*header_sent {
            self.out.push(Chunk::PartHeader(part.clone(), stamp));
        }
        self.out.push(Chunk::PartBody(part));
        *header_sent = true;
        match stream.peek(cursor, options.dual_final) {
            Some((next, due)) => self
                .out
                .push(Chunk::PartHeader(next, Stamp::new(cx.clock.epoch_us(due)))),
            None if stream.is_live() => self.out.push(Chunk::Static(LIVE_ADVANCE_HEADER)),
            None => *header_sent = false,
        }
        None
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
