//! Live MJPEG from standard input: read in the event loop, split into frames, published
//! to one shared live stream.
//!
//! Standard input is registered with the same `Poll` as the sockets (it must be a pipe
//! or a socket: epoll cannot wait on a regular file). Frames are split at JPEG markers
//! ([`Splitter`]), held at most `max_frame` bytes each, and published as the stream's
//! current frame; with an fps cap, a frame that comes too soon after the last one is held
//! back and replaced by any newer one until its turn (the newest frame wins, as for
//! slow clients). End of input ends the stream for every client.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use log::{debug, info, warn};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::clock::Micros;
use crate::stream::Stream;
use crate::stream::jpeg::Splitter;

/// Bytes read from standard input per loop turn before the sockets get their turn.
const READ_BUDGET: usize = 1 << 20;

/// How a live input is configured (`--stream PATH=stdin[,fps=N][,max_frame=BYTES]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveConfig {
    /// Frames published per second, at most; `None`: as they come.
    pub fps: Option<f64>,
    /// Largest frame accepted; larger ones are dropped.
    pub max_frame: usize,
}

/// What reading did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// A new frame is current: wake the watchers.
    pub published: bool,
    /// A frame is held back by the fps cap until this time.
    pub hold_until: Option<Micros>,
    /// The read budget ran out with input left: read again next turn.
    pub more: bool,
    /// End of input: the stream is over.
    pub ended: bool,
}

#[derive(Debug)]
pub struct LiveInput {
    stream: Rc<Stream>,
    splitter: Splitter,
    min_interval: Micros,
    last_published: Option<Micros>,
    /// The newest frame waiting for the fps cap.
    held: Option<Vec<u8>>,
    fd: RawFd,
}

impl LiveInput {
    /// Standard input, made non-blocking, feeding `stream`.
    pub fn stdin(stream: Rc<Stream>, config: LiveConfig) -> io::Result<LiveInput> {
        let fd = io::stdin().as_raw_fd();
        set_nonblocking(fd)?;
        Ok(LiveInput {
            stream,
            splitter: Splitter::new(config.max_frame),
            min_interval: config.fps.map_or(0, |fps| (1e6 / fps).round() as Micros),
            last_published: None,
            held: None,
            fd,
        })
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry
            .register(&mut SourceFd(&self.fd), token, Interest::READABLE)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::EPERM) {
                    io::Error::other(
                        "standard input is a regular file; pipe it instead (cat FILE | mixreplace …)",
                    )
                } else {
                    e
                }
            })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Reads what standard input has, up to the budget, and publishes complete frames.
    pub fn on_readable(&mut self, now: Micros, buf: &mut [u8]) -> Progress {
        let mut progress = Progress::default();
        let mut read = 0;
        let mut input = io::stdin().lock();
        while read < READ_BUDGET {
            let n = match input.read(buf) {
                Ok(0) => {
                    self.end(now, &mut progress);
                    return progress;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return progress,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("reading standard input: {e}; ending the live stream");
                    self.end(now, &mut progress);
                    return progress;
                }
            };
            read += n;
            self.split(&buf[..n], now, &mut progress);
        }
        progress.more = true;
        progress
    }

    /// The fps cap's wait is over: publish the frame held back, if still there.
    pub fn on_timer(&mut self, now: Micros) -> bool {
        match self.held.take() {
            Some(frame) => self.publish(&frame, now),
            None => false,
        }
    }

    fn split(&mut self, data: &[u8], now: Micros, progress: &mut Progress) {
        let LiveInput {
            stream,
            splitter,
            min_interval,
            last_published,
            held,
            ..
        } = self;
        splitter.push(data, |frame| {
            let next_slot = last_published.map_or(0, |last| last + *min_interval);
            if now >= next_slot && held.is_none() {
                if stream.publish(frame, now) {
                    *last_published = Some(now);
                    progress.published = true;
                }
            } else {
                // Too soon for the cap: keep only the newest frame for the next slot.
                let slot = held.get_or_insert_with(Vec::new);
                slot.clear();
                slot.extend_from_slice(frame);
                progress.hold_until = Some(next_slot);
            }
        });
    }

    fn publish(&mut self, frame: &[u8], now: Micros) -> bool {
        let published = self.stream.publish(frame, now);
        if published {
            self.last_published = Some(now);
        } else {
            debug!("dropped a frame that holds the stream's boundary");
        }
        published
    }

    fn end(&mut self, now: Micros, progress: &mut Progress) {
        if let Some(frame) = self.held.take() {
            progress.published |= self.publish(&frame, now);
        }
        let stats = self.splitter.stats();
        info!(
            "standard input ended: {} frames, {} junk bytes, {} oversize frames dropped",
            stats.frames, stats.junk_bytes, stats.oversize_dropped
        );
        self.stream.end();
        progress.ended = true;
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
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
