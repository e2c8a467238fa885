//! One connection without a network: an in-memory socket ([`MemorySocket`]) and a driver
//! ([`Harness`]) that hands a [`Conn`] its inputs at explicit times, as the loop would.
//!
//! The unit tests of [`conn`](super::conn) and the `conn` fuzz target run on these (the
//! model is `load/client.rs`, tested with a mock socket and a fixed clock). Nothing in
//! the server's serving path uses them.
//!
//! Invariant checked on every call: the connection never writes after shutting down its
//! write side (a write then panics).

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::IpAddr;

use crate::clock::{Clock, Micros, tick_of_now};
use crate::routes::Routes;
use crate::routes::access::Access;
use crate::routes::proxies::Proxies;
use crate::routes::stats::Counters;
use crate::server::access_log::AccessLog;
use crate::server::conn::{Conn, Input, Limits, Outcome, Socket};
use crate::server::{Shared, Timer};

/// What the client did after the bytes it sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerEnd {
    /// Nothing yet: reading past the bytes answers `WouldBlock`.
    #[default]
    Open,
    /// Its FIN: reading past the bytes answers end of input; writes still go through
    /// (a half-close and a departure look the same).
    Fin,
    /// A reset: every read and write fails with `ConnectionReset`.
    Reset,
}

/// A socket in memory: the client's bytes to read, room to write, what was written.
#[derive(Clone, Debug)]
pub struct MemorySocket {
    /// What the client sent and the server has not read: a read takes from the front
    /// entry only, so each entry is what one `read` can return at most.
    pub incoming: VecDeque<Vec<u8>>,
    /// What follows the incoming bytes.
    pub end: PeerEnd,
    /// Bytes the send buffer still takes; past them a write answers `WouldBlock`.
    pub room: usize,
    /// Bytes one write takes at most (a short write when less than offered).
    pub step: usize,
    /// Everything the server wrote, in order.
    pub written: Vec<u8>,
    /// The server shut down its write side.
    pub shut: bool,
    /// `shutdown_write` fails with this kind (`NotConnected`: the client reset first).
    pub shutdown_error: Option<io::ErrorKind>,
    /// The server asked for its close to be a reset.
    pub reset: bool,
    /// What the kernel would say is written and not sent yet (`SIOCOUTQNSD`).
    pub unsent: usize,
    /// The client's address (none by default, as a unix socket's).
    pub peer: Option<IpAddr>,
}

impl Default for MemorySocket {
    /// No bytes yet, no limit on writes.
    fn default() -> Self {
        MemorySocket {
            incoming: VecDeque::new(),
            end: PeerEnd::Open,
            room: usize::MAX,
            step: usize::MAX,
            written: Vec::new(),
            shut: false,
            shutdown_error: None,
            reset: false,
            unsent: 0,
            peer: None,
        }
    }
}

impl MemorySocket {
    /// A socket whose client sent `bytes` (one read's worth).
    pub fn sending(bytes: &[u8]) -> MemorySocket {
        let mut socket = MemorySocket::default();
        socket.incoming.push_back(bytes.to_vec());
        socket
    }
}

impl Read for MemorySocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.end == PeerEnd::Reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let Some(front) = self.incoming.front_mut() else {
            return match self.end {
                PeerEnd::Fin => Ok(0),
                _ => Err(io::ErrorKind::WouldBlock.into()),
            };
        };
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        front.drain(..n);
        if front.is_empty() {
            self.incoming.pop_front();
        }
        Ok(n)
    }
}

impl Write for MemorySocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// Takes the slices in order, as `writev` does, up to the room and the step.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        assert!(!self.shut, "a write after shutting down the write side");
        if self.end == PeerEnd::Reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let n = total.min(self.room).min(self.step);
        if n == 0 && total > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut left = n;
        for buf in bufs {
            let take = left.min(buf.len());
            self.written.extend_from_slice(&buf[..take]);
            left -= take;
        }
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for MemorySocket {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self.shutdown_error {
            Some(kind) => Err(kind.into()),
            None => {
                self.shut = true;
                Ok(())
            }
        }
    }

    fn reset_on_close(&mut self) -> io::Result<()> {
        self.reset = true;
        Ok(())
    }

    fn unsent(&self) -> io::Result<usize> {
        Ok(self.unsent)
    }

    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer
    }
}

/// The loop's part for one connection: its shared state, the time, its timer and its
/// extra turns. The connection sits at slab key 0 with serial 1.
pub struct Harness {
    shared: Shared,
    due: Vec<Timer>,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("now", &self.shared.now)
            .field("stats", &self.shared.stats)
            .finish_non_exhaustive()
    }
}

/// The wall-clock time of a harness's time 0 (2023-11-14 22:13:20 UTC): fixed, so
/// stamps and `Date` lines are the same bytes in every run.
pub const EPOCH_US: u64 = 1_700_000_000_000_000;

const KEY: usize = 0;
const SERIAL: u32 = 1;

impl Harness {
    /// Time starts at 0, which is [`EPOCH_US`] on the wall clock.
    pub fn new(routes: Routes, access: Access, limits: Limits) -> Harness {
        let mut shared = Shared::new(routes, access, limits);
        shared.clock = Clock::at_epoch(EPOCH_US);
        Harness {
            shared,
            due: Vec::new(),
        }
    }

    pub fn now(&self) -> Micros {
        self.shared.now
    }

    pub fn stats(&self) -> &Counters {
        &self.shared.stats
    }

    pub fn routes(&self) -> &Routes {
        &self.shared.routes
    }

    /// Trusted proxies and the PROXY protocol, for the connections opened from now on.
    pub fn set_proxies(&mut self, proxies: Proxies) {
        self.shared.proxies = proxies;
    }

    /// An access log for the requests from now on; lines stay buffered (nothing here
    /// flushes it), for [`AccessLog::buffered`] to show.
    pub fn set_access_log(&mut self, log: AccessLog) {
        self.shared.log = log;
    }

    pub fn access_log(&self) -> &AccessLog {
        &self.shared.log
    }

    /// Whether a request asked the server to stop (`/quit`).
    pub fn stop_requested(&self) -> bool {
        self.shared.stop_requested
    }

    /// The live streams' wake lists: (key, serial) of each connection that watches one.
    pub fn watchers(&self) -> Vec<(usize, u32)> {
        self.shared.watchers.all()
    }

    /// Accepts a connection on `socket`, as the loop does under the client cap.
    pub fn open(&mut self, socket: MemorySocket) -> Conn<MemorySocket> {
        Conn::new(socket, SERIAL, &mut self.shared.cx(KEY))
    }

    /// Accepts a connection past the client cap.
    pub fn refuse(&mut self, socket: MemorySocket) -> (Conn<MemorySocket>, Outcome) {
        Conn::refuse(socket, SERIAL, &mut self.shared.cx(KEY))
    }

    /// Removes a connection, as the loop does after it closed (writing its request's
    /// log line if it still owes one), so the next one opened starts clean.
    pub fn close(&mut self, mut conn: Conn<MemorySocket>) {
        conn.release(&mut self.shared.timers);
        let shared = &mut self.shared;
        conn.log_end(&mut shared.log, &shared.clock, shared.now);
        self.shared.again.clear();
        self.shared.watchers.clear();
    }

    /// Hands the connection one input now, as a loop turn of its own: the turn's write
    /// budget is refilled first.
    pub fn input(&mut self, conn: &mut Conn<MemorySocket>, input: Input) -> Outcome {
        self.shared.turn_left = self.shared.limits.turn_budget;
        conn.handle(input, &mut self.shared.cx(KEY))
    }

    /// Moves time on to `now` (never back) and fires the connection's timer if it is due
    /// by then.
    pub fn advance(&mut self, conn: &mut Conn<MemorySocket>, now: Micros) -> Outcome {
        self.shared.now = self.shared.now.max(now);
        self.shared
            .timers
            .advance(tick_of_now(self.shared.now), &mut self.due);
        let fired = self.due.drain(..).any(|timer| {
            timer
                == Timer::Conn {
                    key: KEY,
                    serial: SERIAL,
                }
        });
        match fired {
            true => self.input(conn, Input::Timer),
            false => Outcome::Continue,
        }
    }

    /// Whether the connection used up its turn with more to do (the loop would drive it
    /// again next turn).
    pub fn wants_again(&self) -> bool {
        !self.shared.again.is_empty()
    }

    /// Gives the connection the extra turn it asked for, as the loop's next turn does.
    pub fn again(&mut self, conn: &mut Conn<MemorySocket>) -> Outcome {
        for (_, _, input) in std::mem::take(&mut self.shared.again) {
            if let Outcome::Close(reason) = self.input(conn, input) {
                self.shared.again.clear();
                return Outcome::Close(reason);
            }
        }
        Outcome::Continue
    }
}
