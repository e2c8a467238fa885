//! Live inputs: where a live stream's frames come from, and the one API every kind of
//! input plugs into.
//!
//! A live stream (`--stream PATH=KIND…`) is fed by exactly one input. Its spec is an
//! [`InputSpec`]: the kind ([`Source`]) and the options every kind shares
//! ([`LiveOptions`]: `fps`, `max_frame`, `drop_same`, `refresh`, parsed once in `spec`).
//! At start-up the loop (`server::inputs`) asks the spec for the kind's runtime
//! ([`Source::input`], a `Box<dyn` [`Input`]`>`), pairs it with a [`Feed`] for the
//! stream, gives it a range of `mio` tokens and calls [`Input::start`].
//!
//! # The API a kind codes against
//!
//! - The kind owns its descriptors and processes; it registers each with
//!   [`InputCx::registry`] under [`InputCx::token`]`(sub)`, `sub` < [`SUBTOKENS`] (its
//!   data fd, a child's stderr, a pidfd…), and gets [`Input::on_ready`]`(sub)` for each
//!   readiness event (mio is edge-triggered: read until `WouldBlock`, or ask for another
//!   turn with [`InputCx::again`] when a read budget runs out — see [`drain_fd`]).
//! - Frames go to the [`Feed`] ([`InputCx::feed`]): byte-stream kinds (stdin, pipe, exec)
//!   hand it raw bytes ([`Feed::push_bytes`], split at JPEG markers inside), and call
//!   [`Feed::cut`] when their producer goes away mid-frame (a restart: the partial
//!   frame is dropped, never glued to the next producer's bytes); framed kinds (relay,
//!   push) hand it whole frames ([`Feed::offer`]). The feed applies the policy every kind
//!   shares (size cap, fps cap, `drop_same`, the boundary check, the `refresh`
//!   heartbeat), publishes to the stream and keeps the per-input counters; the loop wakes
//!   the stream's viewers after any call that published. The kind reports its state
//!   ([`Feed::set_state`], [`Feed::count_restart`]) and, for good, its end
//!   ([`Feed::end`]: every viewer gets the closing delimiter). An on-demand kind that
//!   stops its producer calls [`Feed::retire`]: the last frame then goes to no viewer
//!   that joins and no snapshot (they wait for the next frame, which starts the
//!   producer again), and no heartbeat repeats it.
//! - Timers: [`InputCx::wake_at`]`(at, tag)` calls [`Input::on_timer`]`(tag)` at or after
//!   `at` (the loop's wheel, 1 ms ticks, never early). Timers cannot be cancelled: a kind
//!   that re-arms keeps its own deadline and ignores a `tag` that fires early or stale.
//!   The feed's own timers (fps cap, heartbeat) are the loop's business.
//! - Demand: after any turn in which the stream's viewers or waiting snapshot requests
//!   changed, the loop calls [`Input::on_demand`] with the new [`Demand`] (and once
//!   after [`Input::start`]). An on-demand kind starts its producer when
//!   [`Demand::wanted`] and stops it `idle` seconds after it is not. A snapshot of a
//!   live stream with no frame yet waits for the first frame (up to a timeout, then
//!   `503`) and counts in [`Demand::snapshots`] meanwhile, so that it starts an
//!   on-demand producer too.
//! - Stopping: [`Input::on_stop`] when a graceful stop begins (send SIGTERM, close the
//!   upstream); [`Input::shutdown`] on EVERY way out of the loop (the graceful end, a
//!   second signal, an error, the server dropped): kill and reap what is left, at once,
//!   without blocking. It may be called after [`Input::on_stop`], and must be idempotent.
//!
//! Adding a kind: a variant of [`Source`] (the marked places), its parsing in `spec`, a
//! file of its own here with a type that implements [`Input`], and one arm in
//! [`Source::input`].

pub mod demux;
pub mod exec;
pub mod exec_policy;
pub mod exec_spec;
pub mod feed;
pub mod pipe;
pub mod push;
pub mod relay;
pub mod stderr_lines;
pub mod stdin;
pub mod upstream;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;

use mio::{Registry, Token};

use crate::clock::Micros;
pub use crate::stream::input::exec_spec::ExecConfig;
pub use crate::stream::input::feed::{Feed, InputState, InputStats};

/// Tokens each input may use: `token(sub)` for `sub` below this.
pub const SUBTOKENS: usize = 8;
/// Bytes a byte-stream input reads per loop turn before the sockets get their turn.
pub const READ_BUDGET: usize = 1 << 20;

/// What feeds a live stream, as the command line gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The process's standard input (one stream at most). Its end ends the stream.
    Stdin,
    /// A FIFO (or anything epoll can wait on) another process writes MJPEG into; when
    /// the writer closes, the stream waits for the next writer.
    Pipe(PathBuf),
    /// A command the server runs (`exec[,OPTION…]:COMMAND`), MJPEG on its standard
    /// output; started, stopped and restarted as its options say.
    Exec(ExecConfig),
    /// Another `multipart/x-mixed-replace` server's frames, over one upstream connection.
    Relay(Box<relay::RelaySpec>),
    /// Frames a client `PUT`s or `POST`s to the stream's path (see [`push`]).
    Push(push::PushSpec),
}

impl Source {
    /// The kind's name, as written in a spec.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Stdin => "stdin",
            Source::Pipe(_) => "pipe",
            Source::Exec(_) => "exec",
            Source::Relay(_) => "relay",
            Source::Push(_) => "push",
        }
    }

    /// Checks what can be checked before the server listens (standard input is a pipe,
    /// the FIFO exists…): the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Source::Stdin => stdin::check_stdin().map_err(|e| e.to_string()),
            Source::Pipe(path) => pipe::check_pipe(path),
            // A command that cannot start is retried, never refused: it may appear later.
            Source::Exec(_) => Ok(()),
            // The upstream may be down at start-up: that is retried, not refused.
            Source::Relay(_) => Ok(()),
            Source::Push(_) => Ok(()),
        }
    }

    /// The kind's runtime, not started: the loop calls [`Input::start`].
    pub fn input(&self) -> Box<dyn Input> {
        match self {
            Source::Stdin => Box::new(stdin::StdinInput::default()),
            Source::Pipe(path) => Box::new(pipe::PipeInput::new(path.clone())),
            Source::Exec(config) => Box::new(exec::ExecInput::new(config.clone())),
            Source::Relay(spec) => Box::new(relay::RelayInput::new((**spec).clone())),
            Source::Push(_) => Box::new(push::PushInput::default()),
        }
    }
}

/// The options every live kind shares: `fps`, `max_frame`, `drop_same`, `refresh`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveOptions {
    /// Frames published per second, at most; `None`: as they come.
    pub fps: Option<f64>,
    /// Largest frame accepted; larger ones are dropped (and counted).
    pub max_frame: usize,
    /// Skip a frame byte-identical to the current one, at most this many in a row
    /// (0: never skip).
    pub drop_same: u32,
    /// With no new frame for this long, viewers get the current frame again (0: never).
    pub refresh: Micros,
}

/// A live stream's input: its kind and the shared options.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub source: Source,
    pub options: LiveOptions,
}

/// Who wants the stream's frames now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Clients streaming it.
    pub viewers: u64,
    /// Snapshot requests waiting for its first frame.
    pub snapshots: u64,
}

impl Demand {
    /// Anyone at all: an on-demand producer should run.
    pub fn wanted(&self) -> bool {
        self.viewers + self.snapshots > 0
    }
}

/// What the loop asked of it, besides the feed: timers and extra turns.
#[derive(Debug, Default)]
pub struct Requests {
    /// `(at, tag)`: call [`Input::on_timer`]`(tag)` at or after `at`.
    pub timers: Vec<(Micros, u32)>,
    /// Bit `sub` set: call [`Input::on_ready`]`(sub)` again next turn.
    pub again: u8,
}

/// What an input may use while the loop calls it.
pub struct InputCx<'a> {
    /// "Now", sampled once per loop turn.
    pub now: Micros,
    /// Where its descriptors are registered (the loop's one `Poll`).
    pub registry: &'a Registry,
    /// Its stream's frame policy and counters.
    pub feed: &'a mut Feed,
    /// The loop's shared read buffer (64 KiB).
    pub scratch: &'a mut [u8],
    /// Its first token: [`InputCx::token`] adds `sub`.
    pub base: usize,
    pub requests: &'a mut Requests,
}

impl fmt::Debug for InputCx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputCx")
            .field("now", &self.now)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl InputCx<'_> {
    /// The token of its descriptor number `sub` (< [`SUBTOKENS`]).
    pub fn token(&self, sub: usize) -> Token {
        debug_assert!(sub < SUBTOKENS);
        Token(self.base + sub)
    }

    /// Calls [`Input::on_timer`]`(tag)` at or after `at`.
    pub fn wake_at(&mut self, at: Micros, tag: u32) {
        self.requests.timers.push((at, tag));
    }

    /// Calls [`Input::on_ready`]`(sub)` again next turn (a read budget ran out).
    pub fn again(&mut self, sub: usize) {
        self.requests.again |= 1 << sub;
    }
}

/// One kind's runtime; see the module header for the contract.
pub trait Input: fmt::Debug {
    /// Opens and registers what it reads (called once, when the loop is made). An error
    /// here stops the server from starting: a kind whose failures are retried (a command
    /// that will not start) logs them and returns `Ok`.
    fn start(&mut self, cx: &mut InputCx<'_>) -> io::Result<()>;
    /// Its descriptor `sub` is ready (or asked for another turn).
    fn on_ready(&mut self, sub: usize, cx: &mut InputCx<'_>);
    /// A timer it set with [`InputCx::wake_at`] is due.
    fn on_timer(&mut self, _tag: u32, _cx: &mut InputCx<'_>) {}
    /// Who wants the stream changed (see [`Demand`]).
    fn on_demand(&mut self, _demand: Demand, _cx: &mut InputCx<'_>) {}
    /// A graceful stop begins.
    fn on_stop(&mut self, _cx: &mut InputCx<'_>) {}
    /// The loop ends, whatever the way: release everything now, without blocking.
    fn shutdown(&mut self);
}

/// How a [`drain_fd`] ended.
#[derive(Debug)]
pub enum Drained {
    /// Read everything there was (`WouldBlock`).
    Dry,
    /// The read budget ran out with input left: [`InputCx::again`] was asked.
    Budget,
    /// End of input (a pipe's writers all closed).
    End,
    /// A read failed.
    Failed(io::Error),
}

/// Reads a non-blocking `fd` into the feed's splitter until it would block, ends, fails
/// or [`READ_BUDGET`] is used up (then `again(sub)` is asked).
pub fn drain_fd(fd: RawFd, sub: usize, cx: &mut InputCx<'_>) -> Drained {
    let mut read = 0;
    while read < READ_BUDGET {
        // SAFETY: reads into the loop's scratch buffer, which lives for the call and
        // is at least `len` bytes long; `fd` is a descriptor the caller owns.
        let n = unsafe { libc::read(fd, cx.scratch.as_mut_ptr().cast(), cx.scratch.len()) };
        match n {
            0 => return Drained::End,
            n if n > 0 => {
                let n = n as usize;
                read += n;
                cx.feed.push_bytes(&cx.scratch[..n], cx.now);
            }
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return Drained::Dry,
                    io::ErrorKind::Interrupted => {}
                    _ => return Drained::Failed(e),
                }
            }
        }
    }
    cx.again(sub);
    Drained::Budget
}

/// Makes `fd` non-blocking.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
