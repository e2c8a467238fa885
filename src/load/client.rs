//! One load client's state machine: send the request, read the stream to its closing
//! delimiter, count what arrives.
//!
//! No `Poll` and no clock inside: the loop (`super`) finds out when the TCP connect is
//! done and hands in the time and a wall clock (read when a timestamped part completes,
//! so lateness is measured at that moment); [`Client::ready`] is generic over
//! `Read + Write`, so a test drives it with an in-memory stream and a fixed clock.
//! Invariants:
//! - Readiness is edge-triggered, so `ready` writes until done or `WouldBlock` and reads
//!   until `WouldBlock`, except that it stops after [`READS_PER_TURN`] reads and answers
//!   [`ClientStep::Again`]: the loop calls it again after the other clients had their
//!   turn (an edge-triggered socket would send no new event for the bytes already
//!   waiting).
//! - The read buffer is the loop's, shared by every client; a client keeps only the
//!   parser's small state.
//! - A client ends exactly once, through [`Client::finish`], which does the accounting.
//! - Frames are counted per client ([`FrameGaps`]): a gap in its `X-Frame` numbers is
//!   frames it never got, whatever the other clients got.

use std::io::{self, Read, Write};
use std::time::Instant;

use super::multipart::{self, Parser, PartHeaders};
use super::report::{Failure, Tally};
use crate::wheel::TimerId;

/// Reads per client per turn: with the loop's 64 KiB buffer, 256 KiB.
pub const READS_PER_TURN: usize = 4;

/// Where a client reads the time. The loop passes [`SystemClock`]; tests a fixed one.
pub trait TimeSource {
    fn now(&mut self) -> Instant;
    /// Microseconds since the Unix epoch: the clock `X-Timestamp` is written in.
    fn wall_micros(&mut self) -> u64;
}

/// The real clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl TimeSource for SystemClock {
    fn now(&mut self) -> Instant {
        Instant::now()
    }

    fn wall_micros(&mut self) -> u64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        wall.as_micros() as u64
    }
}

/// What the loop does next with a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Wait for the next readiness event.
    Continue,
    /// Out of turn with bytes possibly waiting: call `ready` again soon, without an event.
    Again,
    /// The client is done: pass this to [`Client::finish`].
    Done(Result<(), Failure>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Connecting,
    Sending { written: usize },
    Receiving,
    Done,
}

#[derive(Debug)]
pub struct Client {
    /// The client's number in `0..clients`; timers carry it, so a timer for a client
    /// whose slab key was reused is told apart.
    pub id: u32,
    /// The connect timeout, cancelled once connected.
    pub connect_timer: Option<TimerId>,
    state: State,
    started: Instant,
    first_byte: bool,
    parser: Parser,
    frames: FrameGaps,
}

/// One client's `X-Frame` numbers so far: the frames it skipped are the gaps between the
/// numbers it got. A number not above the one before (a repeat, or a server that started
/// counting again) is counted as out of order, and the count goes on from it.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameGaps {
    last: Option<u64>,
    dropped: u64,
}

impl FrameGaps {
    /// Counts the part numbered `n` in `stats`.
    pub fn see(&mut self, n: u64, stats: &mut Tally) {
        stats.numbered_parts += 1;
        match self.last {
            Some(last) if n <= last => stats.out_of_order_frames += 1,
            Some(last) if n - last > 1 => {
                if self.dropped == 0 {
                    stats.clients_with_drops += 1;
                }
                // Saturating: a server may number frames anyhow.
                self.dropped = self.dropped.saturating_add(n - last - 1);
                stats.dropped_frames = stats.dropped_frames.saturating_add(n - last - 1);
            }
            _ => {}
        }
        self.last = Some(n);
    }
}

impl Client {
    /// A client whose connect started at `started`.
    pub fn new(id: u32, started: Instant) -> Client {
        Client {
            id,
            connect_timer: None,
            state: State::Connecting,
            started,
            first_byte: false,
            parser: Parser::new(),
            frames: FrameGaps::default(),
        }
    }

    pub fn is_connecting(&self) -> bool {
        self.state == State::Connecting
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The TCP connect completed.
    pub fn connected(&mut self, now: Instant, stats: &mut Tally) {
        debug_assert!(self.is_connecting());
        stats.connected += 1;
        stats.open += 1;
        stats.connect.record(micros(now - self.started));
        self.state = State::Sending { written: 0 };
    }

    /// Writes what is left of `request`, then reads and parses what has arrived.
    /// The clock is read when the first byte arrives and when a timestamped part's body
    /// is complete (on loopback the answer often arrives within this same call, right
    /// after the request: a time taken at the start of the turn would hide it).
    pub fn ready<S: Read + Write>(
        &mut self,
        io: &mut S,
        request: &[u8],
        buf: &mut [u8],
        clock: &mut impl TimeSource,
        stats: &mut Tally,
    ) -> ClientStep {
        if let State::Sending { mut written } = self.state {
            while written < request.len() {
                match io.write(&request[written..]) {
                    Ok(0) => break,
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // The server may have answered (a 503) and closed before reading the
                    // whole request: what it said is in the read queue, so read it.
                    Err(e) => {
                        log::debug!("client {}: write: {e}", self.id);
                        written = request.len();
                    }
                }
            }
            self.state = if written == request.len() {
                State::Receiving
            } else {
                State::Sending { written }
            };
        }
        if !matches!(self.state, State::Sending { .. } | State::Receiving) {
            return ClientStep::Continue;
        }
        for _ in 0..READS_PER_TURN {
            let n = match io.read(buf) {
                Ok(0) => {
                    log::debug!("client {}: end of stream before the closing delimiter", self.id);
                    return ClientStep::Done(Err(Failure::Eof));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ClientStep::Continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("client {}: read: {e}", self.id);
                    return ClientStep::Done(Err(Failure::Reset));
                }
            };
            if !self.first_byte {
                self.first_byte = true;
                stats.first_byte.record(micros(clock.now() - self.started));
            }
            stats.bytes += n as u64;
            let frames = &mut self.frames;
            let mut on_part = |seen: PartHeaders| {
                let now = seen.timestamp.map_or(0, |_| clock.wall_micros());
                stats.part(seen.timestamp, now);
                if let Some(n) = seen.frame {
                    frames.see(n, stats);
                }
            };
            match self.parser.feed(&buf[..n], &mut on_part) {
                Ok(multipart::Parsed::Partial) => {}
                Ok(multipart::Parsed::Complete) => return ClientStep::Done(Ok(())),
                Err(e) => {
                    log::debug!("client {}: {e}", self.id);
                    return ClientStep::Done(Err(match e {
                        multipart::Error::Status(code) => Failure::BadStatus(code),
                        multipart::Error::Framing(_) => Failure::BadFraming,
                        multipart::Error::Truncated => Failure::Eof,
                    }));
                }
            }
        }
        ClientStep::Again
    }

    /// Ends the client (once) and counts how.
    pub fn finish(&mut self, result: Result<(), Failure>, stats: &mut Tally) {
        if self.is_done() {
            return;
        }
        if !self.is_connecting() {
            stats.open -= 1;
        }
        self.state = State::Done;
        match result {
            Ok(()) => stats.completed += 1,
            Err(reason) => stats.fail(reason, 1),
        }
    }
}

fn micros(d: std::time::Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::time::Duration;

    /// An in-memory socket: reads come from `incoming`, one queued read at a time
    /// (`WouldBlock` when empty unless `eof`), writes go to `written` at most `window`
    /// bytes at a time.
    #[derive(Default)]
    struct Mock {
        incoming: VecDeque<Vec<u8>>,
        eof: bool,
        written: Vec<u8>,
        window: usize,
    }

    impl Read for Mock {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.incoming.pop_front() {
                Some(chunk) => {
                    assert!(chunk.len() <= buf.len());
                    buf[..chunk.len()].copy_from_slice(&chunk);
                    Ok(chunk.len())
                }
                None if self.eof => Ok(0),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Mock {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let n = data.len().min(self.window);
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.written.extend_from_slice(&data[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    /// A clock that stands still at `ms` after `start`, wall time `wall_us`.
    struct Fixed {
        mono: Instant,
        wall_us: u64,
    }

    impl TimeSource for Fixed {
        fn now(&mut self) -> Instant {
            self.mono
        }
        fn wall_micros(&mut self) -> u64 {
            self.wall_us
        }
    }

    fn at(start: Instant, ms: u64, wall_us: u64) -> Fixed {
        Fixed {
            mono: start + Duration::from_millis(ms),
            wall_us,
        }
    }

    #[test]
    fn a_stream_from_connect_to_closing_delimiter() {
        let start = Instant::now();
        let mut stats = Tally::new(1);
        let mut client = Client::new(0, start);
        let mut io = Mock {
            window: 10,
            ..Mock::default()
        };
        let mut buf = vec![0; 256];
        client.connected(start + Duration::from_millis(2), &mut stats);
        // The request goes out in pieces as the window allows.
        io.window = 10;
        assert_eq!(
            client.ready(&mut io, REQUEST, &mut buf, &mut at(start, 3, 0), &mut stats),
            ClientStep::Continue
        );
        io.window = 100;
        assert_eq!(
            client.ready(&mut io, REQUEST, &mut buf, &mut at(start, 4, 0), &mut stats),
            ClientStep::Continue
        );
        assert_eq!(io.written, REQUEST);

        let head = b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\r\n";
        io.incoming.push_back(head.to_vec());
        let part = b"--b\r\nX-Timestamp: 100.000000\r\n\r\nab";
        io.incoming.push_back(part.to_vec());
        assert_eq!(
            client.ready(
                &mut io,
                REQUEST,
                &mut buf,
                &mut at(start, 10, 100_000_000),
                &mut stats
            ),
            ClientStep::Continue
        );
        assert_eq!(stats.parts, 0);
        io.incoming.push_back(b"c\r\n--b".to_vec());
        io.incoming.push_back(b"--\r\n".to_vec());
        assert_eq!(
            client.ready(
                &mut io,
                REQUEST,
                &mut buf,
                &mut at(start, 20, 100_007_000),
                &mut stats
            ),
            ClientStep::Done(Ok(()))
        );
        client.finish(Ok(()), &mut stats);
        client.finish(Err(Failure::Timeout), &mut stats); // a second end is ignored
        assert_eq!(stats.parts, 1);
        assert_eq!(stats.lateness.max(), Some(7_000));
        assert_eq!(stats.connect.max(), Some(2_000));
        assert_eq!(stats.first_byte.max(), Some(10_000));
        assert_eq!((stats.completed, stats.failed_total(), stats.open), (1, 0, 0));
        assert_eq!(stats.bytes, (head.len() + part.len() + 6 + 4) as u64);
    }

    #[test]
    fn gaps_in_the_frame_numbers_are_dropped_frames() {
        let mut stats = Tally::new(2);
        let mut one = FrameGaps::default();
        // The first number sets the start: a client that joins late has skipped nothing.
        for n in [57, 58, 60, 64, 64, 2, 3] {
            one.see(n, &mut stats);
        }
        let mut other = FrameGaps::default();
        for n in [0, 2, u64::MAX - 1, u64::MAX, 0] {
            other.see(n, &mut stats);
        }
        assert_eq!(stats.numbered_parts, 12);
        // 1 + 3, then 1 and a gap of nearly 2^64: the sum stops at the largest count.
        assert_eq!(stats.dropped_frames, u64::MAX);
        assert_eq!((stats.clients_with_drops, stats.out_of_order_frames), (2, 3));
    }

    #[test]
    fn a_client_counts_the_frames_it_skipped() {
        let start = Instant::now();
        let mut stats = Tally::new(1);
        let mut client = Client::new(0, start);
        client.connected(start, &mut stats);
        let mut io = Mock {
            window: 100,
            ..Mock::default()
        };
        let mut wire =
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\r\n".to_vec();
        for n in [4, 5, 8] {
            wire.extend_from_slice(
                format!("--b\r\nContent-Length: 1\r\nX-Frame: {n}\r\n\r\nx\r\n").as_bytes(),
            );
        }
        wire.extend_from_slice(b"--b--\r\n");
        io.incoming.push_back(wire);
        let step = client.ready(
            &mut io,
            REQUEST,
            &mut vec![0; 4096],
            &mut at(start, 0, 0),
            &mut stats,
        );
        assert_eq!(step, ClientStep::Done(Ok(())));
        assert_eq!(
            (stats.parts, stats.timestamped_parts, stats.numbered_parts),
            (3, 0, 3)
        );
        assert_eq!((stats.dropped_frames, stats.clients_with_drops), (2, 1));
    }

    #[test]
    fn a_busy_client_yields_its_turn() {
        let start = Instant::now();
        let mut stats = Tally::new(1);
        let mut client = Client::new(0, start);
        client.connected(start, &mut stats);
        let mut io = Mock {
            window: 100,
            ..Mock::default()
        };
        // Exactly two turns' worth of reads: the head, then body bytes.
        io.incoming.push_back(
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\r\n--b\r\n\r\n"
                .to_vec(),
        );
        for _ in 1..2 * READS_PER_TURN {
            io.incoming.push_back(vec![b'x'; 64]);
        }
        let mut buf = vec![0; 256];
        let mut now = at(start, 0, 0);
        assert_eq!(
            client.ready(&mut io, REQUEST, &mut buf, &mut now, &mut stats),
            ClientStep::Again
        );
        assert_eq!(
            client.ready(&mut io, REQUEST, &mut buf, &mut now, &mut stats),
            ClientStep::Again
        );
        assert_eq!(
            client.ready(&mut io, REQUEST, &mut buf, &mut now, &mut stats),
            ClientStep::Continue
        );
    }

    #[test]
    fn failures_are_classified() {
        let cases: [(&[u8], bool, ClientStep); 4] = [
            (
                b"HTTP/1.1 503 Busy\r\n",
                false,
                ClientStep::Done(Err(Failure::BadStatus(503))),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
                false,
                ClientStep::Done(Err(Failure::BadFraming)),
            ),
            (b"HTTP/1.1 200 OK\r\n", true, ClientStep::Done(Err(Failure::Eof))),
            (b"", true, ClientStep::Done(Err(Failure::Eof))),
        ];
        for (input, eof, step) in cases {
            let start = Instant::now();
            let mut stats = Tally::new(1);
            let mut client = Client::new(0, start);
            client.connected(start, &mut stats);
            let mut io = Mock {
                window: 100,
                eof,
                ..Mock::default()
            };
            io.incoming.push_back(input.to_vec());
            let mut buf = vec![0; 64];
            let got = client.ready(&mut io, REQUEST, &mut buf, &mut at(start, 0, 0), &mut stats);
            assert_eq!(got, step, "{:?}", String::from_utf8_lossy(input));
            let ClientStep::Done(result) = got else {
                unreachable!()
            };
            client.finish(result, &mut stats);
            assert_eq!((stats.open, stats.failed_total()), (0, 1));
        }
    }
}
