//! `push`: a live stream fed by a client's `PUT` or `POST` of its path — a multipart
//! body (`ffmpeg -f mpjpeg -method PUT`, an ESP32's `multipart/x-mixed-replace`) or one
//! JPEG per request (`curl -T frame.jpg`).
//!
//! # How a connection reaches the feed
//!
//! The publisher is a client connection (`server::conn`), which the loop drives with its
//! own context; the stream's [`Feed`](super::Feed) belongs to the loop's inputs table,
//! out of the connection's reach. Rather than hand every connection a handle to that
//! table (a borrow of the whole loop for the few connections that publish), the meeting
//! point is a [`PushPort`] inside the stream's `Live` (the `Rc<Stream>` both sides hold
//! already): the connection that publishes claims it, demuxes its body itself (bounded
//! by `max_frame`, see `demux`) and leaves each complete frame there; once a turn the
//! loop gives the stream's [`PushInput`] a turn when its port has news, and the input
//! offers the frames to the feed, which applies the policy every kind shares and wakes
//! the viewers as any input's frames do. Nothing else crosses: no callback, no second
//! owner of the feed.
//!
//! Invariants: at most one publisher at a time, by (connection key, serial), so a claim
//! left by a closed connection cannot outlive it (the connection's body state releases
//! it when dropped, whatever way the connection ends); the port holds only the frames of
//! the current turn's reads (the connection reads a bounded amount a turn, and the loop
//! drains the port in the same turn), never a backlog; the publisher leaving keeps the
//! stream's last frame and its viewers, and puts the input in state `waiting`.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use crate::stream::Stream;
use crate::stream::input::{Input, InputCx, InputState};

/// A `push` spec's own option.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushSpec {
    /// `token=SECRET`: a publisher may give it instead of the server's credentials.
    pub token: Option<String>,
}

/// Where a publishing connection leaves its frames for the loop (see the module header).
#[derive(Debug)]
pub struct PushPort {
    token: Option<String>,
    /// The stream's `max_frame`, for the publisher's demuxer.
    max_frame: usize,
    inner: RefCell<PortInner>,
}

#[derive(Debug, Default)]
struct PortInner {
    /// The connection publishing now: (slab key, serial).
    publisher: Option<(usize, u32)>,
    /// Complete frames not yet offered to the feed.
    frames: Vec<Vec<u8>>,
    /// Frames the demuxer dropped for their size, not yet counted in the feed.
    oversize: u64,
    /// The publisher came or went since the input last looked.
    changed: bool,
}

impl PushPort {
    pub fn new(spec: &PushSpec, max_frame: usize) -> PushPort {
        PushPort {
            token: spec.token.clone(),
            max_frame,
            inner: RefCell::default(),
        }
    }

    /// The stream's `token=`, if it has one.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The largest frame the publisher's demuxer keeps.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Makes connection (`key`, `serial`) the publisher; `false`: another one is.
    pub fn claim(&self, key: usize, serial: u32) -> bool {
        let mut inner = self.inner.borrow_mut();
        if inner.publisher.is_some() {
            return false;
        }
        inner.publisher = Some((key, serial));
        inner.changed = true;
        true
    }

    /// The publisher (`key`, `serial`) is done; anyone else's release does nothing.
    pub fn release(&self, key: usize, serial: u32) {
        let mut inner = self.inner.borrow_mut();
        if inner.publisher == Some((key, serial)) {
            inner.publisher = None;
            inner.changed = true;
        }
    }

    /// A complete frame from the publisher.
    pub fn put(&self, frame: &[u8]) {
        self.inner.borrow_mut().frames.push(frame.to_vec());
    }

    /// Frames the publisher's demuxer dropped for their size.
    pub fn count_oversize(&self, frames: u64) {
        self.inner.borrow_mut().oversize += frames;
    }

    /// Takes what came since the last call.
    pub fn drain(&self) -> PortNews {
        let mut inner = self.inner.borrow_mut();
        PortNews {
            frames: std::mem::take(&mut inner.frames),
            oversize: std::mem::take(&mut inner.oversize),
            publishing: inner.publisher.is_some(),
            changed: std::mem::take(&mut inner.changed),
        }
    }

    /// Whether the input has something to do.
    pub fn has_news(&self) -> bool {
        let inner = self.inner.borrow();
        inner.changed || !inner.frames.is_empty() || inner.oversize > 0
    }
}

/// What came to a port since it was last drained.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PortNews {
    /// Complete frames, in order.
    pub frames: Vec<Vec<u8>>,
    /// Frames dropped for their size.
    pub oversize: u64,
    /// A publisher is at it now.
    pub publishing: bool,
    /// A publisher came or went.
    pub changed: bool,
}

/// The loop's side of a `push` stream: offers what its port holds to the feed.
#[derive(Debug, Default)]
pub struct PushInput {
    stream: Option<Rc<Stream>>,
}

impl PushInput {
    fn port(&self) -> Option<&PushPort> {
        self.stream.as_deref()?.as_live()?.push_port()
    }
}

impl Input for PushInput {
    fn start(&mut self, cx: &mut InputCx<'_>) -> io::Result<()> {
        self.stream = Some(cx.feed.stream().clone());
        if self.port().is_none() {
            return Err(io::Error::other("a push stream without its port"));
        }
        cx.feed.set_state(InputState::Waiting);
        Ok(())
    }

    /// The port has news (the loop looks once a turn): frames, a publisher come or gone.
    fn on_ready(&mut self, _sub: usize, cx: &mut InputCx<'_>) {
        let Some(port) = self.port() else { return };
        let news = port.drain();
        if news.changed {
            let state = match news.publishing {
                true => InputState::Running,
                false => InputState::Waiting,
            };
            cx.feed.set_state(state);
        }
        if news.oversize > 0 {
            cx.feed.count_oversize(news.oversize);
        }
        for frame in &news.frames {
            cx.feed.offer(frame, cx.now);
        }
    }

    fn shutdown(&mut self) {}
}
