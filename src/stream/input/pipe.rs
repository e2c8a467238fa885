//! `pipe:PATH`: live MJPEG from a FIFO (or a character device epoll can wait on) that
//! other processes write into, one writer after another.
//!
//! The FIFO is opened once, `O_RDONLY | O_NONBLOCK` (which returns at once even with no
//! writer) and kept for the server's life. When its last writer closes, a read answers
//! end of input: the feed drops any frame that writer left half written
//! ([`Feed::cut`](super::Feed::cut)), the input is `waiting`, and the stream goes on —
//! viewers keep their connections. The same descriptor then reports the next writer's
//! bytes (the kernel wakes a FIFO's readers on every write), so there is nothing to
//! reopen and no dummy writer of our own: a dummy writer would hide the writer's
//! departure, and with it the cut that keeps a truncated frame from swallowing the next
//! writer's first one. With no writer the descriptor stays "hung up", but mio's
//! readiness is edge-triggered, so a silent FIFO costs no loop turn.
//!
//! Regular files (epoll cannot wait on them), folders and sockets are refused at
//! start-up ([`check_pipe`]), as is a path that does not exist (`mkfifo` it first).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use log::{info, warn};
use mio::Interest;
use mio::unix::SourceFd;

use crate::stream::input::{Drained, Input, InputCx, InputState, drain_fd};

/// Its one descriptor's `sub` token.
const DATA: usize = 0;

#[derive(Debug)]
pub struct PipeInput {
    path: PathBuf,
    /// Open from `start` on.
    file: Option<File>,
    /// A writer's bytes came since the last end of input.
    writer: bool,
}

impl PipeInput {
    pub fn new(path: PathBuf) -> PipeInput {
        PipeInput {
            path,
            file: None,
            writer: false,
        }
    }

    /// The writer left: drop its unfinished frame and wait for the next one.
    fn writer_gone(&mut self, cx: &mut InputCx<'_>) {
        if std::mem::take(&mut self.writer) {
            info!(
                "{}: the writer of {} closed; waiting for the next",
                cx.feed.path(),
                self.path.display()
            );
        }
        cx.feed.cut();
        cx.feed.set_state(InputState::Waiting);
    }
}

impl Input for PipeInput {
    fn start(&mut self, cx: &mut InputCx<'_>) -> io::Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        let fd = file.as_raw_fd();
        cx.registry
            .register(&mut SourceFd(&fd), cx.token(DATA), Interest::READABLE)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{}: cannot be watched ({e}); use a FIFO (mkfifo)",
                        self.path.display()
                    ),
                )
            })?;
        self.file = Some(file);
        cx.feed.set_state(InputState::Waiting);
        // A writer may be there already, with bytes waiting.
        cx.again(DATA);
        Ok(())
    }

    fn on_ready(&mut self, _sub: usize, cx: &mut InputCx<'_>) {
        let Some(fd) = self.file.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        let before = cx.feed.stats().bytes_in;
        let drained = drain_fd(fd, DATA, cx);
        if cx.feed.stats().bytes_in > before && !self.writer {
            self.writer = true;
            cx.feed.set_state(InputState::Running);
        }
        match drained {
            Drained::Dry | Drained::Budget => {}
            Drained::End => self.writer_gone(cx),
            Drained::Failed(e) => {
                warn!("{}: reading {}: {e}", cx.feed.path(), self.path.display());
                self.writer_gone(cx);
            }
        }
    }

    fn shutdown(&mut self) {
        // Closing the descriptor also takes it out of the epoll set.
        self.file = None;
    }
}

/// Refuses, with a message that says what to do, a path the loop cannot wait on.
pub fn check_pipe(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!("{shown} does not exist; create the FIFO first (mkfifo {shown})"),
        _ => format!("{shown}: {e}"),
    })?;
    let kind = metadata.file_type();
    if kind.is_fifo() || kind.is_char_device() {
        return Ok(());
    }
    let what = if kind.is_file() {
        "a regular file (epoll cannot wait on one; for a file, use dir: or script:)"
    } else if kind.is_dir() {
        "a folder"
    } else {
        "neither a FIFO nor a device"
    };
    Err(format!("{shown} is {what}; pipe: takes a FIFO (mkfifo {shown})"))
}
