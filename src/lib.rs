//! mixreplace: a small, fast server for `multipart/x-mixed-replace` HTTP streams, on one
//! single-threaded `mio` event loop. A program (`mixreplace --help`), and a library that
//! puts the same server inside a test or benchmark harness: streams whose content and
//! timing are known, on a port of their own, started and stopped from Rust.
//!
//! # Embedding
//!
//! A [`Builder`] describes the server: streams by spec ([`Builder::stream`], the syntax
//! of the binary's `--stream`) or by value ([`Builder::parts`] and
//! [`Builder::looping_parts`], lists of [`PartSpec`]), limits, access control and the
//! listen address (port 0: the system picks one). [`Builder::spawn`] starts it on a
//! thread of its own and returns once it listens, with a [`Handle`]: its
//! [`local_addr`](Handle::local_addr), a [`Stats`] snapshot, and a graceful
//! [`stop`](Handle::stop) that ends every stream with its closing delimiter and joins
//! the thread (dropping the handle does the same). [`Builder::bind`] and [`Server::run`]
//! serve on the calling thread instead, until `/quit` or a signal.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! use mixreplace::{Builder, PartSpec};
//!
//! let server = Builder::new()
//!     .listen(([127, 0, 0, 1], 0))
//!     .parts("/hello", [
//!         PartSpec::new("text/plain", "Hello,", 100), // then 100 ms until the next
//!         PartSpec::new("text/plain", "world!", 0),
//!     ])
//!     .spawn()?;
//!
//! let mut client = TcpStream::connect(server.local_addr())?;
//! client.set_read_timeout(Some(Duration::from_secs(10)))?;
//! client.write_all(b"GET /hello HTTP/1.0\r\n\r\n")?;
//! let mut answer = String::new();
//! client.read_to_string(&mut answer)?; // this stream ends after its last part
//!
//! let (head, body) = answer.split_once("\r\n\r\n").ok_or("no head")?;
//! assert!(head.starts_with("HTTP/1.0 200 OK\r\n"));
//! let boundary = head
//!     .split("boundary=")
//!     .nth(1)
//!     .and_then(|rest| rest.lines().next())
//!     .ok_or("no boundary")?;
//! let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
//! assert!(parts[1].starts_with("\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"));
//! assert!(parts[1].ends_with("\r\n\r\nHello,\r\n"));
//! assert!(parts[2].ends_with("\r\n\r\nworld!\r\n"));
//! assert_eq!(parts[3], "--\r\n"); // the closing delimiter
//!
//! drop(client);
//! let stats = server.stop()?;
//! assert_eq!((stats.streams, stats.parts), (1, 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is public
//!
//! The items re-exported here are the API: [`Builder`], [`Server`], [`Handle`],
//! [`Stats`], [`StreamStats`] and [`LiveInputStats`], [`PartSpec`], [`ListenAddr`], [`Exit`] and [`Error`]. The modules are
//! `pub` only so that the crate's own binaries (`mixreplace`, `mixreplace-load`),
//! benches, fuzz targets and integration tests reach them: they are `#[doc(hidden)]` and
//! promise nothing. The rule for new code: an item meant for embedding programs is
//! re-exported here and documented; an item the binaries, benches, fuzz targets or tests
//! need stays `pub` in its hidden module; anything else is `pub(crate)` or narrower, and
//! a module nothing outside uses is `pub(crate)` itself.
//!
//! # Inside
//!
//! For contributors (the modules are hidden from these docs; read them in the source).
//! The crate is four layers; each imports only from the layers below it:
//!
//! | layer | modules | concern |
//! |---|---|---|
//! | the loop | `server` (`server::conn`, `server::inputs`, `server::listen`, `server::notify`, `server::outbox`, `server::sabotage`, `server::memory`, `server::access_log`) | the only owner of `Poll` and sockets: listeners, accept, one connection's life, live inputs' turns, writes, telling systemd, the access log |
//! | answers | `routes` (`routes::respond`, `routes::access`, `routes::proxies`, `routes::stats`, `routes::view`) | what a request gets, and who the client is behind a trusted proxy; no I/O |
//! | streams | `stream` (`stream::multipart`, `stream::spec`, `stream::script`, `stream::input`, `stream::jpeg`, `stream::testcard`, `stream::fault`) | what is served, encoded once |
//! | leaves | `http`, `wire`, `proxy_protocol`, `wheel`, `clock`, `histogram`, `sys`, `systemd`, `child` | parsing (requests, PROXY headers), timers, time, measures, system calls, systemd's protocols, child processes; nothing from the crate |
//!
//! On top, `embed` (the API above: `Builder`, `Handle`) builds the routes and the loop's
//! configuration, and `cli` turns flags into a `Builder`; `error` is what both report.
//! `load` is the load generator `mixreplace-load`, beside the server, using only the
//! leaves.
//!
//! # A request, from accept to the closing delimiter
//!
//! `GET /` of the demo, in the order the functions run:
//!
//! 1. `Server::serve` (the loop behind `Server::run`) sleeps in `poll`, samples "now" once, and the listener's event marks
//!    it ready (`Listeners::mark_ready`). `Server::accept` takes the connection from the
//!    ready listeners in turn (`Listeners::next_ready`, `Listeners::accept`: a `Peer`,
//!    TCP or unix) and `Server::add` registers
//!    it (readable and writable, once) and makes its `Conn::new`, which arms the head
//!    timeout (`Conn::arm` → `clock::tick_of_deadline` → `Wheel::insert`).
//! 2. The request's readable event: `Server::drive` hands `Input::Readable` (with mio's
//!    read-closed hint) to `Conn::handle` → `Conn::on_readable` → `Conn::read_head`,
//!    which reads into the loop's shared buffer and calls `http::parse`.
//! 3. `routes::respond::respond` decides (`OPTIONS *`, a preflight, `Access::allows`,
//!    `Routes::get`, the method, the action) and answers `Reply::Stream`.
//! 4. `Conn::reply` → `Conn::start_stream`: `Stream::head`, `Stream::opening`,
//!    `Stream::cursor` and a `Viewer`; then `Conn::queue_next` (`Stream::next` →
//!    `Next::Part`, `Stamp::new`, `Outbox::push`) and `Conn::pump` → `Outbox::flush`,
//!    which hands the head and the first part to one `writev`
//!    (`Socket::write_vectored`).
//! 5. `Conn::pump` arms the next part's due time (`Pending::WaitUntil`). When it comes,
//!    `Server::fire_timers` → `Wheel::advance` → `Server::drive(Input::Timer)` →
//!    `Conn::on_timer` → `Conn::pump` → `Conn::queue_next` again. A write that blocks
//!    arms the send timeout instead and waits for `Input::Writable`.
//! 6. The last part was encoded with the closing delimiter; `Stream::next` then answers
//!    `Next::End`, `Conn::queue_next` moves to `Finishing`, and `Conn::pump` →
//!    `Conn::linger` shuts the write side (`Socket::shutdown_write`), arms the linger
//!    timeout and reads on (`Conn::discard_input`).
//! 7. The client's EOF: `Conn::discard_input` → `Conn::on_client_eof` →
//!    `Outcome::Close(Finished)`. `Server::drive` marks the slot closed, and at the end
//!    of the turn `Server::reap` removes it: `Conn::release` cancels its timer,
//!    `Counters::closed` counts it, and dropping the socket closes it.
//!
//! A snapshot on a kept-alive connection goes the same way to step 3 (`Conn::read_head`
//! → `Conn::serve_buffered`, which keeps what follows the head as the next request), then
//! `Conn::snapshot` writes the head and the shared image in one `writev` and
//! `Conn::finish_with_queued` moves to `Answering`; once it is out,
//! `Conn::await_next_request` goes back to `Head` under the idle timeout (and hands a
//! pipelined request to the next turn).
//!
//! # A live frame, from its input to every viewer
//!
//! 1. A live input's descriptor (standard input, a FIFO…) is ready: its token lies in
//!    the inputs' range, so `Server::turns` → `Inputs::ready` → the kind's
//!    `Input::on_ready` (`StdinInput`, `PipeInput`), which reads up to its budget
//!    (`drain_fd`) into its `Feed`. `Feed::push_bytes` → `Splitter::push` cuts frames at
//!    the JPEG markers, and the feed's policy (`max_frame`, `drop_same`, the fps cap) hands
//!    each frame it keeps to `Live::publish` (reached by `Stream::as_live`), which
//!    encodes it once (`Part::encode`) as the current frame. (With an fps cap, a frame
//!    that comes too soon waits for `Timer::Input` with the feed's tag →
//!    `Feed::on_timer`, and a newer one replaces it meanwhile; the same timer sends the
//!    `refresh` heartbeat, `Live::repeat`.)
//! 2. `Inputs::settle` notes the stream's wake list, and `Server::wake_inputs_watchers`
//!    → `Server::wake_watchers` walks it (`Conn::start_stream` put each client of that
//!    stream there, `WakeLists::add`): for each one `Server::is_watching`,
//!    `Server::drive(Input::Frame)` → `Conn::handle`. A connection still writing a part
//!    lets the frame be (it takes the newest one once that part is out, and once the
//!    kernel says it is about on the wire: `over_watermark`, `Conn::wait_for_drain`;
//!    viewers holding the oldest replaced frames past their budget were closed first,
//!    `Server::enforce_held_frames_budget`); the others
//!    `Conn::pump` → `Conn::queue_next` → `Stream::next`, which hands out the newest
//!    frame and counts the ones skipped → `Outbox::push` of the shared part with this
//!    connection's stamp → `Outbox::flush`.
//! 3. `Server::drop_gone_watchers` drops the entries of connections that left (and
//!    `Server::compact_watchers`, at each reap, keeps the lists bounded when frames
//!    stop); `Inputs::check_demand` then tells each input whose viewers changed.
//! 4. The input's end: `Feed::end` → `Live::end` and a last wake; `Stream::next`
//!    answers `Next::End`, and each connection closes the open part with the last frame
//!    (`closing_frame`) and the closing delimiter, and lingers as in step 6 above.
//!    Whichever way the loop ends, `Inputs::shutdown` runs.
//!
//! # An `exec:` command, from its start to its reap
//!
//! 1. `Input::start` (or, on demand, `Input::on_demand` with a first viewer or waiting
//!    snapshot) → `ExecInput`, which asks `ExecPolicy` what to do: `Action::Start` →
//!    `Child::spawn` (own process group, stdin `/dev/null`, `PR_SET_PDEATHSIG`), its
//!    stdout, stderr and pidfd registered under the input's tokens.
//! 2. Stdout's events go through `drain_fd` into the feed, as a FIFO's do; stderr's are
//!    cut into log lines (`StderrLines`).
//! 3. The pidfd turns readable when the process exits: `Child::try_reap` kills what is
//!    left of its group, then reaps it; the feed drops a frame cut short (`Feed::cut`),
//!    and `ExecPolicy::exited` says what follows — a restart after the backoff (a timer
//!    via `InputCx::wake_at` → `Input::on_timer`), waiting for a viewer, or the
//!    stream's end (`Feed::end`).
//! 4. The last viewer gone, `ExecPolicy` asks, `idle` later, for `Action::Terminate`
//!    (`SIGTERM` to the group), then `Action::Kill` after `kill_timeout`.
//! 5. The loop's end, whatever the way: `Inputs::shutdown` → `child::stop_all`, which
//!    waits what is left of the kill timeout (at most 1 s) and `SIGKILL`s and reaps.
//!
//! # A pushed frame, from a publisher's `PUT` to the viewers
//!
//! 1. `Conn::serve_buffered` → `respond`, which answers a `PUT` or `POST` of a `push`
//!    stream by the stream's rule (`Access::allows_publisher`) with `Reply::Publish`;
//!    the head's body headers make a `BodySpec` (a `Demux` bounded by `max_frame`).
//! 2. `Conn::start_publishing` claims the stream's `PushPort` (`409` if taken) and
//!    enters `State::Publishing`; `Conn::read_body` reads a few reads a turn, never past
//!    a `Content-Length`, into `Publishing::take` → `Demux::push`, whose whole frames go
//!    to `PushPort::put`.
//! 3. After the turn's events `Inputs::take_pushed` finds the port's news →
//!    `PushInput::on_ready` → `PushPort::drain` → `Feed::offer` for each frame; the
//!    stream's wake list is woken as for any input (step 2 of a live frame).
//! 4. The body's end → `204` (kept alive after a `Content-Length` body); the publisher
//!    gone, refused or silent for the send timeout → `Publishing` dropped, which
//!    releases the port; the input goes back to `waiting`, the last frame stays.
//!
//! # A stop from another thread
//!
//! 1. `Builder::spawn` moves the builder to a new thread, where `Builder::bind` builds
//!    the routes and `Server::bind` the loop; `Server::remote` registers a `mio::Waker`
//!    on the loop's `Poll` (token `WAKER`) and keeps the receiving end of a channel. The
//!    address and the `Remote` go back to `spawn`, which wraps them in a `Handle`.
//! 2. `Handle::stop` → `Remote::stop` sends `Request::Stop` and wakes the loop; its
//!    `WAKER` event → `Server::answer_requests` sets `stop_requested`, as `/quit` does,
//!    and at the end of the turn `Server::begin_stop` drives `Input::Stop` to every
//!    connection (the closing delimiter, then lingering as in step 6 of a request).
//!    `Handle::stats` is the same trip with `Request::Stats`, answered by
//!    `Server::snapshot` → `Counters::snapshot`.
//! 3. The last connection gone (or the grace period over, `Server::close_all`),
//!    `Server::serve` returns; the thread leaves the final snapshot for the handle and
//!    drops the server (its epoll and any socket left; the listener went at the stop's
//!    start) before `stop`'s `join` returns. The waker's eventfd goes with the handle.

pub use crate::embed::{Builder, Handle};
pub use crate::error::Error;
pub use crate::routes::live_stats::LiveInputStats;
pub use crate::routes::stats::{Stats, StreamStats};
pub use crate::server::listen::ListenAddr;
pub use crate::server::{Exit, Server};
pub use crate::stream::PartSpec;

mod auth_file;
#[doc(hidden)]
pub mod child;
#[doc(hidden)]
pub mod cli;
pub(crate) mod clock;
pub(crate) mod date;
mod embed;
mod error;
#[doc(hidden)]
pub mod histogram;
#[doc(hidden)]
pub mod http;
#[doc(hidden)]
pub mod load;
#[doc(hidden)]
pub mod proxy_protocol;
#[doc(hidden)]
pub mod routes;
#[doc(hidden)]
pub mod server;
#[doc(hidden)]
pub mod stream;
#[doc(hidden)]
pub mod sys;
#[doc(hidden)]
pub mod systemd;
#[doc(hidden)]
pub mod wheel;
pub(crate) mod wire;

/// The README's Rust example runs as a doctest too, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
