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
//! [`Stats`] and [`StreamStats`], [`PartSpec`], [`Exit`] and [`Error`]. The modules are
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
//! | the loop | `server` (`server::conn`, `server::outbox`, `server::sabotage`, `server::memory`, `server::access_log`) | the only owner of `Poll` and sockets: accept, one connection's life, writes, the access log |
//! | answers | `routes` (`routes::respond`, `routes::access`, `routes::proxies`, `routes::stats`, `routes::view`) | what a request gets, and who the client is behind a trusted proxy; no I/O |
//! | streams | `stream` (`stream::multipart`, `stream::spec`, `stream::script`, `stream::live`, `stream::jpeg`, `stream::testcard`, `stream::fault`) | what is served, encoded once |
//! | leaves | `http`, `proxy_protocol`, `wheel`, `clock`, `histogram`, `sys` | parsing (requests, PROXY headers), timers, time, measures, system calls; nothing from the crate |
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
//! 1. `Server::serve` (the loop behind `Server::run`) sleeps in `poll`, samples "now" once, and the listener's event sets
//!    `accept_ready`. `Server::accept` takes the connection and `Server::add` registers
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
//! # A live frame, from its input to every viewer
//!
//! 1. Standard input's event sets `live_ready`; `Server::read_live` →
//!    `LiveInput::on_readable` reads up to its budget and `Splitter::push` cuts frames at
//!    the JPEG markers. Each whole frame goes to `Live::publish` (reached by
//!    `Stream::as_live`), which encodes it once (`Part::encode`) as the current frame.
//!    (With an fps cap, a frame that comes too soon waits for `Timer::LiveFrame` →
//!    `LiveInput::on_timer`, and a newer one replaces it meanwhile.)
//! 2. `Server::wake_live_watchers` walks the loop's wake list, where `Conn::start_stream`
//!    put each client of the live stream: for each one `Server::is_watching`,
//!    `Server::drive(Input::Frame)` → `Conn::handle`. A connection still writing a part
//!    lets the frame be (it takes the newest one once that part is out); the others
//!    `Conn::pump` → `Conn::queue_next` → `Stream::next`, which hands out the newest
//!    frame and counts the ones skipped → `Outbox::push` of the shared part with this
//!    connection's stamp → `Outbox::flush`.
//! 3. `Server::drop_gone_watchers` drops the entries of connections that left (and
//!    `Server::compact_live_watchers`, at each reap, keeps the list bounded when frames
//!    stop).
//! 4. The input's end: `LiveInput::end` → `Live::end` and a last wake; `Stream::next`
//!    answers `Next::End`, and each connection sends the closing delimiter and lingers
//!    as in step 6 above.
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
pub use crate::routes::stats::{Stats, StreamStats};
pub use crate::server::{Exit, Server};
pub use crate::stream::PartSpec;

#[doc(hidden)]
pub mod cli;
pub(crate) mod clock;
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
pub mod wheel;

/// The README's Rust example runs as a doctest too, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
