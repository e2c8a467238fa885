//! `stdin`: live MJPEG from the process's standard input (one stream at most).
//!
//! Standard input is registered with the same `Poll` as the sockets, so it must be a
//! pipe, a socket or a terminal: epoll cannot wait on a regular file or on `/dev/null`
//! ([`check_stdin`] refuses them before the server listens). Its bytes go to the feed
//! ([`Feed::push_bytes`](super::Feed::push_bytes)); its end (or a read error) ends the
//! stream for every client, and it is deregistered then. Descriptor 0 is never closed:
//! it is the process's, not the input's.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use log::warn;
use mio::Interest;
use mio::unix::SourceFd;

use crate::stream::input::{Drained, Input, InputCx, InputState, drain_fd, set_nonblocking};

/// Its one descriptor's `sub` token.
const DATA: usize = 0;

#[derive(Debug)]
pub struct StdinInput {
    fd: RawFd,
    /// Registered and not ended.
    open: bool,
}

impl Default for StdinInput {
    fn default() -> StdinInput {
        StdinInput {
            fd: io::stdin().as_raw_fd(),
            open: false,
        }
    }
}

impl StdinInput {
    fn close(&mut self, cx: &mut InputCx<'_>) {
        if std::mem::take(&mut self.open) {
            let _ = cx.registry.deregister(&mut SourceFd(&self.fd));
        }
        cx.feed.end(cx.now);
    }
}

impl Input for StdinInput {
    fn start(&mut self, cx: &mut InputCx<'_>) -> io::Result<()> {
        check_stdin()?;
        set_nonblocking(self.fd)?;
        cx.registry
            .register(&mut SourceFd(&self.fd), cx.token(DATA), Interest::READABLE)?;
        self.open = true;
        cx.feed.set_state(InputState::Running);
        // Bytes may be waiting already: read them in the first turn.
        cx.again(DATA);
        Ok(())
    }

    fn on_ready(&mut self, _sub: usize, cx: &mut InputCx<'_>) {
        if !self.open {
            return;
        }
        match drain_fd(self.fd, DATA, cx) {
            Drained::Dry | Drained::Budget => {}
            Drained::End => self.close(cx),
            Drained::Failed(e) => {
                warn!(
                    "{}: reading standard input: {e}; ending the stream",
                    cx.feed.path()
                );
                self.close(cx);
            }
        }
    }

    fn shutdown(&mut self) {
        // Nothing to release: descriptor 0 stays the process's, and the loop's `Poll`
        // goes with the server.
        self.open = false;
    }
}

/// Whether standard input is something epoll can watch: a pipe, a socket or a terminal.
/// A regular file or another device (`/dev/null`, which is also what a closed standard
/// input becomes: Rust's runtime reopens a closed descriptor 0 to it) is refused with a
/// message that says what to do instead.
pub fn check_stdin() -> io::Result<()> {
    let fd = io::stdin().as_raw_fd();
    // SAFETY: `stat` is plain data, for which all zeroes is a valid value.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one `stat` through a pointer to a live, writable one.
    if unsafe { libc::fstat(fd, &mut stat) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::other(format!("standard input is closed ({e})")));
    }
    let refused = match stat.st_mode & libc::S_IFMT {
        libc::S_IFIFO | libc::S_IFSOCK => return Ok(()),
        // SAFETY: isatty only reads the descriptor's state.
        libc::S_IFCHR if unsafe { libc::isatty(fd) } == 1 => return Ok(()),
        libc::S_IFREG => "standard input is a regular file; pipe it instead (cat FILE | mixreplace …)",
        libc::S_IFCHR => {
            "standard input is /dev/null, closed, or a device that cannot be watched; \
             pipe MJPEG into it (ffmpeg … -f mjpeg - | mixreplace …)"
        }
        _ => "standard input is neither a pipe nor a socket; pipe MJPEG into it (… | mixreplace …)",
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, refused))
}
