//! mixreplace: a small, fast server for `multipart/x-mixed-replace` HTTP streams, on one
//! single-threaded `mio` event loop.
//!
//! The crate is four layers; each imports only from the layers below it:
//!
//! | layer | modules | concern |
//! |---|---|---|
//! | the loop | [`server`] ([`server::conn`], [`server::outbox`], [`server::memory`]) | the only owner of `Poll` and sockets: accept, one connection's life, writes |
//! | answers | [`routes`] ([`routes::respond`], [`routes::access`], [`routes::stats`], [`routes::view`]) | what a request gets; no I/O |
//! | streams | [`stream`] ([`stream::multipart`], [`stream::spec`], [`stream::script`], [`stream::live`], [`stream::jpeg`], [`stream::testcard`]) | what is served, encoded once |
//! | leaves | [`http`], [`wheel`], [`clock`], [`sys`] | parsing, timers, time, system calls; nothing from the crate |
//!
//! [`cli`] turns flags into options for the loop; [`load`] is the load generator
//! `mixreplace-load`, beside the server, using only the leaves.
//!
//! # A request, from accept to the closing delimiter
//!
//! `GET /` of the demo, in the order the functions run:
//!
//! 1. `Server::run` sleeps in `poll`, samples "now" once, and the listener's event sets
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
//!    `Stats::closed` counts it, and dropping the socket closes it.
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

pub mod cli;
pub mod clock;
pub mod http;
pub mod load;
pub mod routes;
pub mod server;
pub mod stream;
pub mod sys;
pub mod wheel;
