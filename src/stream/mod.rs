//! Streams: what a path serves, encoded once, walked by many connections.
//!
//! Two kinds of timeline:
//! - **Scripted** (the demo, scripts, image folders, synthetic streams): fixed parts, each
//!   with the delay that follows it. Every connection walks the timeline from its own
//!   start: part `k` is due at start + the delays before it, whatever time the earlier
//!   writes took, so lateness never accumulates. A client that reads slower than the
//!   timeline makes its own timeline wait ([`Cursor::client_waited`]); others never notice.
//! - **Live** (frames from a pipe, published through [`Stream::as_live`]): one current
//!   frame, replaced as frames arrive. A client gets the newest frame once it has
//!   finished sending the previous one; frames it had no time for are skipped (and
//!   counted), never queued, and a part is never cut. Which connections to wake is the
//!   loop's business, not the stream's.
//!
//! Connections share the encoded parts (`Rc`); a connection holds only a [`Cursor`].
//!
//! Numbered streams (testcards and live input) give every part a frame number, its
//! `X-Frame`: a testcard's step index, counting on across its loop for each client from
//! 0; a live frame's number in publishing order from 0, the same for every client, so a
//! client that skips frames sees the gap.
//!
//! A scripted stream (a testcard too) may carry faults on purpose
//! ([`Stream::with_faults`], see [`fault`]): its bytes re-framed once at start-up, a part
//! swapped in at one index for `wrong_length`, and a plan for its connections' write
//! path; its stamps follow its line ends ([`Stream::stamp`]). A stream without faults
//! pays one branch per part for them.

pub mod fault;
pub mod input;
pub mod jpeg;
pub mod multipart;
pub mod script;
pub mod spec;
pub mod testcard;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::ops::Deref;
use std::rc::{Rc, Weak};

use crate::clock::{Micros, ms};
use crate::histogram::FixedBuckets;
use crate::http::{self, Version};
use crate::stream::fault::{Fault, Faults, OddPart, WirePlan};
use crate::stream::input::InputStats;
use crate::stream::input::push::{PushPort, PushSpec};
use crate::stream::multipart::{Boundary, Part, Stamp, Then};

/// One part of a scripted stream, before encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartSpec {
    pub content_type: String,
    pub body: Vec<u8>,
    /// How long after this part the next one is due (or, after the last, the stream ends).
    pub delay_ms: u64,
}

impl PartSpec {
    pub fn new(content_type: &str, body: impl Into<Vec<u8>>, delay_ms: u64) -> Self {
        PartSpec {
            content_type: content_type.to_owned(),
            body: body.into(),
            delay_ms,
        }
    }
}

/// A part and the delay after it.
#[derive(Debug)]
struct Step {
    part: Rc<Part>,
    delay: Micros,
}

#[derive(Debug)]
enum Timeline {
    /// Fixed parts after a lead-in. Without `loop_from` they play once and the last one
    /// carries the closing delimiter; with it, `steps[loop_from..]` repeat until the
    /// client leaves.
    Steps {
        lead: Micros,
        steps: Vec<Step>,
        loop_from: Option<usize>,
        /// The last part framed as "more to come", for `?dual_final_frames=1`.
        last_again: Option<Rc<Part>>,
        /// Each part's `X-Frame` is its step index (see the module header).
        numbered: bool,
    },
    /// `count` parts of one deterministic body, for benchmark harnesses: three
    /// encodings serve any count.
    Synthetic { more: Step, last: Step, count: u64 },
    /// Boxed: a live stream's state is a few hundred bytes, the other timelines a few words.
    Live(Box<Live>),
}

/// A live stream's state: the newest frame, replaced as frames arrive (reached by
/// [`Stream::as_live`]). Who waits for the next frame is the loop's business: it keeps
/// the wake list and wakes those connections after [`Live::publish`] or [`Live::end`].
#[derive(Debug)]
pub struct Live {
    /// The stream's boundary, to frame each frame and to refuse a frame that holds it.
    boundary: Boundary,
    current: RefCell<Option<Frame>>,
    ended: Cell<bool>,
    /// Its input's counters, as its feed last left them (see `input::feed`).
    input: Cell<InputStats>,
    /// Snapshot requests waiting for the first frame (see [`FrameWaiter`]).
    waiting: Cell<u64>,
    /// The current frame is no longer news ([`Live::retire`]): kept for its number
    /// only, until the next frame.
    stale: Cell<bool>,
    /// A `push` stream's meeting point with its publisher (see `input::push`).
    push: Option<Box<PushPort>>,
    /// Frames replaced while connections still wrote them, oldest first: weak, so an
    /// entry dies with the last connection holding its frame (see [`Live::evict_below`]).
    held: RefCell<VecDeque<Held>>,
}

/// A replaced frame some connection may still hold.
#[derive(Debug)]
struct Held {
    seq: u64,
    part: Weak<Part>,
    bytes: usize,
}

impl Live {
    /// A `push` stream's port; `None` for the other kinds.
    pub fn push_port(&self) -> Option<&PushPort> {
        self.push.as_deref()
    }

    /// Makes `body` the current frame. `false` (frame dropped) when the body holds the
    /// boundary, which would cut the part short for every client.
    pub fn publish(&self, body: &[u8], now: Micros) -> bool {
        if self.boundary.occurs_in(body) {
            return false;
        }
        let part = Rc::new(Part::encode(&self.boundary, "image/jpeg", body, Then::More));
        let mut current = self.current.borrow_mut();
        let seq = current.as_ref().map_or(0, |f| f.seq + 1);
        let old = current.replace(Frame { part, seq, at: now });
        // Only a frame a connection still writes stays in memory once replaced.
        if let Some(old) = old.filter(|f| Rc::strong_count(&f.part) > 1) {
            self.held.borrow_mut().push_back(Held {
                seq: old.seq,
                part: Rc::downgrade(&old.part),
                bytes: old.part.encoded_len(),
            });
        }
        self.stale.set(false);
        true
    }

    /// Bytes of replaced frames still held by connections.
    pub fn held_bytes(&self) -> usize {
        let mut held = self.held.borrow_mut();
        held.retain(|h| h.part.strong_count() > 0);
        held.iter().map(|h| h.bytes).sum()
    }

    /// Past `budget` bytes of replaced frames still held: the frame number below which
    /// the holders are to let go (closed by the loop), oldest first, until what is left
    /// fits. `None` within the budget. Frames are pushed in publishing order, so the
    /// list's front is the oldest.
    pub fn evict_below(&self, budget: usize) -> Option<u64> {
        let mut total = self.held_bytes();
        let mut bound = None;
        for held in self.held.borrow().iter() {
            if total <= budget {
                break;
            }
            total -= held.bytes;
            bound = Some(held.seq + 1);
        }
        bound
    }

    /// The producer stopped on purpose (an on-demand input idle): its last frame is no
    /// longer news, so viewers that join and snapshots wait for the next frame instead
    /// of getting it, and no heartbeat repeats it. The next [`Live::publish`] undoes it.
    pub fn retire(&self) {
        self.stale.set(true);
    }

    /// The current frame again, under the next frame number (a heartbeat): the same
    /// encoded part and arrival time, so nothing is copied or encoded. `false` when
    /// there is no frame yet.
    pub fn repeat(&self) -> bool {
        if self.stale.get() {
            return false;
        }
        let mut current = self.current.borrow_mut();
        match current.as_mut() {
            Some(frame) => {
                frame.seq += 1;
                true
            }
            None => false,
        }
    }

    /// Whether `body` is byte for byte the current frame (for `drop_same`).
    pub fn is_current(&self, body: &[u8]) -> bool {
        self.current
            .borrow()
            .as_ref()
            .is_some_and(|f| f.part.body() == body)
    }

    /// The input ended; every client gets the closing delimiter.
    pub fn end(&self) {
        self.ended.set(true);
    }

    /// Whether the input ended.
    pub fn is_ended(&self) -> bool {
        self.ended.get()
    }

    /// Snapshot requests waiting for the first frame: they are demand, as viewers are
    /// (an on-demand input starts for them).
    pub fn waiting(&self) -> u64 {
        self.waiting.get()
    }

    /// Its input's counters (see `input::feed`).
    pub fn input_stats(&self) -> InputStats {
        self.input.get()
    }

    pub fn set_input_stats(&self, stats: InputStats) {
        self.input.set(stats);
    }
}

#[derive(Clone, Debug)]
struct Frame {
    part: Rc<Part>,
    /// Frames are numbered from 0 in publishing order: the `X-Frame` of every client.
    seq: u64,
    /// When the frame arrived: its `X-Timestamp`.
    at: Micros,
}

/// Where one connection is in its stream.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    /// Scripted: the index of the next step. Live: the lowest frame number not yet seen.
    next: u64,
    /// Scripted: when the next step is due.
    due: Micros,
    /// `?dual_final_frames=1`: send the last part twice (Chrome shows a part only once
    /// the next one's headers arrive, so a single final part would never be shown).
    dual_final: bool,
    /// Live with `dual_final`: the last frame was sent a second time.
    repeated_last: bool,
}

impl Cursor {
    /// The client took until `now` to take the previous part: its timeline waits for it
    /// rather than sending the parts it fell behind on back to back.
    pub fn client_waited(&mut self, now: Micros) {
        self.due = self.due.max(now);
    }

    /// Live: whether the last frame handed out is numbered below `bound`.
    pub fn sent_before(&self, bound: u64) -> bool {
        self.next <= bound
    }
}

/// What a connection should do next.
#[derive(Debug)]
pub enum Next {
    /// Send this part, stamped with `at` (when it was due or arrived) and, in a numbered
    /// stream, its frame number.
    Part {
        part: Rc<Part>,
        at: Micros,
        frame: Option<u64>,
    },
    /// Nothing before this time.
    At(Micros),
    /// Live: nothing until a frame arrives (the connection is woken then).
    Idle,
    /// The stream is over; `closing`: the closing delimiter has still to be sent.
    End { closing: bool },
}

/// A stream's deliveries, for `/stats` and `/metrics`.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Parts handed to clients (one per part per client).
    pub parts: u64,
    /// Their encoded bytes (framing and headers included; a response head is not a part).
    pub part_bytes: u64,
    /// How long after its due time each part was handed to the client's socket: for a
    /// scripted part its place in the timeline, for a live frame its arrival.
    pub lateness: FixedBuckets,
}

/// What one path serves: response heads, framing and the timeline, all encoded once.
#[derive(Debug)]
pub struct Stream {
    /// Clients watching now (see [`Viewer`]).
    viewers: Cell<u64>,
    /// Live frames skipped because a client was still busy with an earlier one.
    skipped: Cell<u64>,
    /// What went to its clients: parts, their bytes, how late each was handed over.
    delivered: RefCell<Delivered>,
    heads: [Rc<[u8]>; 2],
    opening: Rc<[u8]>,
    closing: Rc<[u8]>,
    close_delimiter: Rc<[u8]>,
    /// Whether every part is an image, so an `<img>` can show the stream.
    images: bool,
    timeline: Timeline,
    /// Kept to re-frame the stream for faults.
    boundary: Boundary,
    /// The faults asked for, if any ([`Stream::with_faults`]).
    faulted: Option<Box<Faulted>>,
}

/// What a stream's faults leave besides its re-framed bytes.
#[derive(Debug)]
struct Faulted {
    faults: Faults,
    /// `wrong_length`: parts swapped in at their index.
    odd: Vec<OddPart>,
    /// What each connection does in its write path.
    wire: Option<Rc<WirePlan>>,
}

impl Faulted {
    /// The part to send at `index` where `part` would be.
    fn swap<'a>(&'a self, index: u64, part: &'a Rc<Part>) -> &'a Rc<Part> {
        self.odd
            .iter()
            .find(|o| o.index == index && Rc::ptr_eq(&o.usual, part))
            .map_or(part, |o| &o.odd)
    }
}

impl Stream {
    /// A stream of fixed parts: `lead_ms` before the first, then each part's delay; from
    /// `loop_from` on the parts repeat forever. `extra`: header lines every response head
    /// carries (CORS). Each body is dropped once encoded, so start-up holds every part
    /// once, not twice.
    pub fn scripted(
        parts: Vec<PartSpec>,
        lead_ms: u64,
        loop_from: Option<usize>,
        extra: &str,
    ) -> io::Result<Self> {
        if parts.is_empty() || loop_from.is_some_and(|from| from >= parts.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a stream needs parts",
            ));
        }
        let boundary = Boundary::absent_from(parts.iter().map(|p| &p.body[..]))?;
        let encode =
            |spec: &PartSpec, then| Rc::new(Part::encode(&boundary, &spec.content_type, &spec.body, then));
        let last = parts.len() - 1;
        let last_again = loop_from.is_none().then(|| encode(&parts[last], Then::More));
        let images = parts.iter().all(|p| p.content_type.starts_with("image/"));
        // A stream of one type ends with an empty part of that type; a mixed one with
        // RFC 2046's default.
        let first_type = &parts[0].content_type;
        let single_type = parts.iter().all(|p| &p.content_type == first_type);
        let final_type = if single_type {
            first_type.clone()
        } else {
            "text/plain".to_owned()
        };
        let steps = parts
            .into_iter()
            .enumerate()
            .map(|(i, spec)| Step {
                part: encode(
                    &spec,
                    if i == last && loop_from.is_none() {
                        Then::End
                    } else {
                        Then::More
                    },
                ),
                delay: ms(spec.delay_ms),
            })
            .collect();
        let timeline = Timeline::Steps {
            lead: ms(lead_ms),
            steps,
            loop_from,
            last_again,
            numbered: false,
        };
        Ok(Stream::framed(&boundary, timeline, images, &final_type, extra))
    }

    /// JPEG `frames` played in a loop forever, `interval` apart, each part numbered
    /// (`X-Frame`): a testcard. Each frame is dropped once encoded.
    pub fn numbered_loop(frames: Vec<Vec<u8>>, interval: Micros, extra: &str) -> io::Result<Self> {
        if frames.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a stream needs parts",
            ));
        }
        let boundary = Boundary::absent_from(frames.iter().map(|f| &f[..]))?;
        let steps = frames
            .into_iter()
            .map(|body| Step {
                part: Rc::new(Part::encode(&boundary, "image/jpeg", &body, Then::More)),
                delay: interval,
            })
            .collect();
        let timeline = Timeline::Steps {
            lead: 0,
            steps,
            loop_from: Some(0),
            last_again: None,
            numbered: true,
        };
        Ok(Stream::framed(&boundary, timeline, true, "image/jpeg", extra))
    }

    /// `count` parts of `body`, `interval_ms` apart.
    pub fn synthetic(count: u64, body: &[u8], interval_ms: u64, extra: &str) -> io::Result<Self> {
        if count == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a stream needs parts",
            ));
        }
        let boundary = Boundary::absent_from([body].into_iter())?;
        let step = |then| Step {
            part: Rc::new(Part::encode(&boundary, "application/octet-stream", body, then)),
            delay: ms(interval_ms),
        };
        let timeline = Timeline::Synthetic {
            more: step(Then::More),
            last: step(Then::End),
            count,
        };
        Ok(Stream::framed(
            &boundary,
            timeline,
            false,
            "application/octet-stream",
            extra,
        ))
    }

    /// A live stream fed by a client's `PUT` or `POST` (`push`), through its port.
    /// `max_frame`: the largest frame its publishers' bodies may hold.
    pub fn pushed(extra: &str, spec: &PushSpec, max_frame: usize) -> io::Result<Self> {
        let mut stream = Stream::live(extra)?;
        if let Timeline::Live(live) = &mut stream.timeline {
            live.push = Some(Box::new(PushPort::new(spec, max_frame)));
        }
        Ok(stream)
    }

    /// A live stream of JPEG frames, fed through [`Stream::as_live`].
    pub fn live(extra: &str) -> io::Result<Self> {
        let boundary = Boundary::random()?;
        let live = Live {
            boundary: boundary.clone(),
            current: RefCell::new(None),
            ended: Cell::new(false),
            input: Cell::default(),
            waiting: Cell::new(0),
            stale: Cell::new(false),
            push: None,
            held: RefCell::default(),
        };
        Ok(Stream::framed(
            &boundary,
            Timeline::Live(Box::new(live)),
            true,
            "image/jpeg",
            extra,
        ))
    }

    fn framed(
        boundary: &Boundary,
        timeline: Timeline,
        images: bool,
        final_type: &str,
        extra: &str,
    ) -> Stream {
        let head = |version| Rc::from(http::stream_head(version, boundary, extra).into_bytes());
        Stream {
            viewers: Cell::new(0),
            skipped: Cell::new(0),
            delivered: RefCell::default(),
            heads: [head(Version::Http10), head(Version::Http11)],
            opening: Rc::from(boundary.opening()),
            closing: Rc::from(boundary.closing(final_type)),
            close_delimiter: Rc::from(boundary.close_delimiter().into_bytes()),
            images,
            timeline,
            boundary: boundary.clone(),
            faulted: None,
        }
    }

    /// The stream with `faults` (see [`fault`]): its head, delimiters and parts re-framed
    /// once, here, and the plan its connections follow. `extra`: as for the constructors.
    /// Only scripted streams take faults; a part a fault names must be one the stream
    /// has, and a `wrong_length` must leave a length of 0 or more.
    pub fn with_faults(mut self, faults: Faults, extra: &str) -> Result<Stream, String> {
        if self.faulted.is_some() {
            return Err("faults given twice".into());
        }
        if faults.is_empty() {
            return Ok(self);
        }
        let parts = match &self.timeline {
            Timeline::Live(_) => return Err("faults apply to scripted streams, not to live ones".into()),
            Timeline::Steps {
                steps,
                loop_from: None,
                ..
            } => Some(steps.len() as u64),
            Timeline::Steps { .. } => None,
            Timeline::Synthetic { count, .. } => Some(*count),
        };
        let past_the_end = |f: &&Fault| parts.is_some_and(|n| f.part().is_some_and(|p| p > n));
        if let Some(fault) = faults.as_slice().iter().find(past_the_end) {
            return Err(format!(
                "fault {fault}: the stream has only {} parts",
                parts.unwrap_or_default()
            ));
        }
        let framing = faults.framing();
        let boundary = self.boundary.clone();
        let head = |version| {
            let param = framing.boundary_param(&boundary);
            let extra = framing.head_extra(version == Version::Http11, extra);
            Rc::from(http::stream_head(version, &param, &extra).into_bytes())
        };
        self.heads = [head(Version::Http10), head(Version::Http11)];
        self.opening = Rc::from(framing.opening(&boundary));
        self.closing = Rc::from(framing.closing(&self.closing, &boundary));
        self.close_delimiter = Rc::from(framing.closing(&self.close_delimiter, &boundary));
        // The parts `wrong_length` swaps out, found before re-framing replaces them.
        let wrong: Vec<_> = faults
            .wrong_lengths()
            .map(|(by, part)| (part - 1, by, self.parts_at(part - 1)))
            .collect();
        let mut odd = Vec::new();
        for slot in self.part_slots() {
            let old = slot.clone();
            *slot = Rc::new(
                framing
                    .part(&old, &boundary, 0)
                    .expect("no offset, no negative length"),
            );
            for (index, by, usual) in &wrong {
                if usual.iter().any(|u| Rc::ptr_eq(u, &old)) {
                    let part = framing.part(&old, &boundary, *by).ok_or_else(|| {
                        format!(
                            "fault wrong_length={by:+}@{}: the part has only {} bytes",
                            index + 1,
                            slot.body().len()
                        )
                    })?;
                    odd.push(OddPart {
                        index: *index,
                        usual: slot.clone(),
                        odd: Rc::new(part),
                    });
                }
            }
        }
        let wire = faults.wire_plan().map(Rc::new);
        self.faulted = Some(Box::new(Faulted { faults, odd, wire }));
        Ok(self)
    }

    /// Every encoded part of a scripted timeline, to re-frame.
    fn part_slots(&mut self) -> Vec<&mut Rc<Part>> {
        match &mut self.timeline {
            Timeline::Steps {
                steps, last_again, ..
            } => steps
                .iter_mut()
                .map(|step| &mut step.part)
                .chain(last_again.as_mut())
                .collect(),
            Timeline::Synthetic { more, last, .. } => vec![&mut more.part, &mut last.part],
            Timeline::Live(_) => Vec::new(),
        }
    }

    /// Every part that may be sent at `index`, with or without `dual_final`.
    fn parts_at(&self, index: u64) -> Vec<Rc<Part>> {
        [false, true]
            .into_iter()
            .filter_map(|dual_final| self.plain_step(index, dual_final))
            .map(|(part, _)| part.clone())
            .collect()
    }

    pub fn viewers(&self) -> u64 {
        self.viewers.get()
    }

    pub fn skipped(&self) -> u64 {
        self.skipped.get()
    }

    /// Counts a part handed to a client's outbox `lateness_us` after it was due.
    pub fn delivered(&self, part: &Part, lateness_us: Micros) {
        let mut delivered = self.delivered.borrow_mut();
        delivered.parts += 1;
        delivered.part_bytes += part.encoded_len() as u64;
        delivered.lateness.observe(lateness_us);
    }

    pub fn delivery(&self) -> std::cell::Ref<'_, Delivered> {
        self.delivered.borrow()
    }

    /// The live state, for a live stream.
    pub fn as_live(&self) -> Option<&Live> {
        match &self.timeline {
            Timeline::Live(live) => Some(live),
            _ => None,
        }
    }

    pub fn is_images(&self) -> bool {
        self.images
    }

    /// A connection's stamp for a part of this stream: with `lf_only`, the line end
    /// inside it (before `X-Frame`) is LF alone, as every other line of the framing.
    pub fn stamp(&self, epoch_us: u64, frame: Option<u64>) -> Stamp {
        let lf_only = self.faulted.as_ref().is_some_and(|f| f.faults.lf_only());
        Stamp::with_line_end(epoch_us, frame, lf_only)
    }

    /// The faults asked for, in the order given (none for most streams).
    pub fn faults(&self) -> &[Fault] {
        self.faulted.as_ref().map_or(&[], |f| f.faults.as_slice())
    }

    /// `busy_page`: requests for the stream get a busy page instead.
    pub fn is_busy(&self) -> bool {
        self.faulted.as_ref().is_some_and(|f| f.faults.busy())
    }

    /// What each connection of the stream does in its write path, if anything.
    pub fn wire_plan(&self) -> Option<&Rc<WirePlan>> {
        self.faulted.as_ref()?.wire.as_ref()
    }

    /// The response head (status line and headers) for a client of `version`.
    pub fn head(&self, version: Version) -> &Rc<[u8]> {
        &self.heads[version as usize]
    }

    /// `--B\r\n`, sent once after the head.
    pub fn opening(&self) -> &Rc<[u8]> {
        &self.opening
    }

    /// What ends the stream early, after a part's delimiter: an empty final part and the
    /// closing delimiter, or (`header_sent`: its header block already went out, with
    /// `advance_headers`) only the closing delimiter.
    pub fn closing(&self, header_sent: bool) -> &Rc<[u8]> {
        if header_sent {
            &self.close_delimiter
        } else {
            &self.closing
        }
    }

    /// A cursor for a client that starts now; `dual_final`: see [`Cursor`].
    pub fn cursor(&self, now: Micros, dual_final: bool) -> Cursor {
        let (next, due) = match &self.timeline {
            Timeline::Steps { lead, .. } => (0, now + lead),
            Timeline::Synthetic { .. } => (0, now),
            // A client that joins gets the current frame at once.
            // A client that joins a retired stream waits for the next frame.
            Timeline::Live(live) => {
                let current = live.current.borrow();
                (
                    current
                        .as_ref()
                        .map_or(0, |f| f.seq + u64::from(live.stale.get())),
                    now,
                )
            }
        };
        Cursor {
            next,
            due,
            dual_final,
            repeated_last: false,
        }
    }

    /// What the client at `cursor` gets next, moving the cursor past it.
    pub fn next(&self, cursor: &mut Cursor, now: Micros) -> Next {
        if let Timeline::Live(live) = &self.timeline {
            return self.next_live(live, cursor);
        }
        if cursor.due > now {
            return Next::At(cursor.due);
        }
        match self.step(cursor.next, cursor.dual_final) {
            Some((part, delay)) => {
                let (at, frame) = (cursor.due, self.frame_number(cursor));
                cursor.next += 1;
                cursor.due += delay;
                Next::Part {
                    part: part.clone(),
                    at,
                    frame,
                }
            }
            None => Next::End { closing: false },
        }
    }

    /// Whether the client at `cursor` already got the closing delimiter (with the last
    /// part of a scripted stream).
    pub fn closed_for(&self, cursor: &Cursor) -> bool {
        self.as_live().is_none() && self.step(cursor.next, cursor.dual_final).is_none()
    }

    /// The part after the cursor, when it is due and its frame number, if known now (not
    /// for live streams).
    pub fn peek(&self, cursor: &Cursor) -> Option<(Rc<Part>, Micros, Option<u64>)> {
        let (part, _) = self.step(cursor.next, cursor.dual_final)?;
        Some((part.clone(), cursor.due, self.frame_number(cursor)))
    }

    /// The `X-Frame` of the scripted step at the cursor: its index, in a numbered stream.
    fn frame_number(&self, cursor: &Cursor) -> Option<u64> {
        match &self.timeline {
            Timeline::Steps { numbered: true, .. } => Some(cursor.next),
            _ => None,
        }
    }

    /// Scripted step `index` and the delay after it, as sent: a fault may swap the part;
    /// `None` past the end.
    fn step(&self, index: u64, dual_final: bool) -> Option<(&Rc<Part>, Micros)> {
        let (part, delay) = self.plain_step(index, dual_final)?;
        match &self.faulted {
            None => Some((part, delay)),
            Some(faulted) => Some((faulted.swap(index, part), delay)),
        }
    }

    /// Scripted step `index` as the timeline has it.
    fn plain_step(&self, index: u64, dual_final: bool) -> Option<(&Rc<Part>, Micros)> {
        match &self.timeline {
            Timeline::Steps {
                steps,
                loop_from: Some(from),
                ..
            } => {
                let (from, len) = (*from as u64, steps.len() as u64);
                let index = if index < len {
                    index
                } else {
                    from + (index - from) % (len - from)
                };
                let step = &steps[index as usize];
                Some((&step.part, step.delay))
            }
            Timeline::Steps {
                steps, last_again, ..
            } => {
                let last = steps.len() as u64 - 1;
                match (index.cmp(&last), dual_final, last_again) {
                    (std::cmp::Ordering::Less, ..) => steps.get(index as usize).map(|s| (&s.part, s.delay)),
                    (std::cmp::Ordering::Equal, true, Some(again)) => Some((again, 0)),
                    (std::cmp::Ordering::Equal, ..) => steps.last().map(|s| (&s.part, s.delay)),
                    _ if index == last + 1 && dual_final => steps.last().map(|s| (&s.part, s.delay)),
                    _ => None,
                }
            }
            Timeline::Synthetic { more, last, count } => {
                let last_index = count - 1;
                match index {
                    i if i < last_index || (i == last_index && dual_final) => Some((&more.part, more.delay)),
                    i if i == last_index || (i == last_index + 1 && dual_final) => {
                        Some((&last.part, last.delay))
                    }
                    _ => None,
                }
            }
            Timeline::Live(_) => None,
        }
    }

    fn next_live(&self, live: &Live, cursor: &mut Cursor) -> Next {
        let current = live.current.borrow();
        if let Some(frame) = current.as_ref().filter(|f| f.seq >= cursor.next) {
            self.skipped.set(self.skipped.get() + (frame.seq - cursor.next));
            cursor.next = frame.seq + 1;
            return Next::Part {
                part: frame.part.clone(),
                at: frame.at,
                frame: Some(frame.seq),
            };
        }
        if !live.ended.get() {
            return Next::Idle;
        }
        match current.as_ref() {
            Some(frame) if cursor.dual_final && !cursor.repeated_last => {
                cursor.repeated_last = true;
                Next::Part {
                    part: frame.part.clone(),
                    at: frame.at,
                    frame: Some(frame.seq),
                }
            }
            _ => Next::End { closing: true },
        }
    }

    /// Live: whether a frame the client at `cursor` has not had is waiting (not after
    /// the stream's end, which goes out at once).
    pub fn has_new_frame(&self, cursor: &Cursor) -> bool {
        self.as_live().is_some_and(|live| {
            !live.ended.get()
                && live
                    .current
                    .borrow()
                    .as_ref()
                    .is_some_and(|f| f.seq >= cursor.next)
        })
    }

    /// A live stream's newest frame and when it arrived: what closes the part left open
    /// when the stream ends. `None` for other streams.
    pub fn last_frame(&self) -> Option<(Rc<Part>, Micros)> {
        let live = self.as_live()?;
        let current = live.current.borrow();
        current.as_ref().map(|f| (f.part.clone(), f.at))
    }

    /// The image a snapshot request gets: a live stream's current frame, or a scripted
    /// stream's first image.
    pub fn snapshot(&self) -> Option<Rc<Part>> {
        match &self.timeline {
            Timeline::Live(live) if live.stale.get() => None,
            Timeline::Live(live) => live.current.borrow().as_ref().map(|f| f.part.clone()),
            Timeline::Steps { steps, .. } => steps
                .iter()
                .find(|s| s.part.content_type().starts_with("image/"))
                .map(|s| s.part.clone()),
            Timeline::Synthetic { .. } => None,
        }
    }
}

/// A client watching a stream: counted while this lives, so every way out of streaming
/// (the end, a stop, a hang-up) uncounts it.
#[derive(Debug)]
pub struct Viewer(Rc<Stream>);

impl Viewer {
    pub fn new(stream: Rc<Stream>) -> Viewer {
        stream.viewers.set(stream.viewers.get() + 1);
        Viewer(stream)
    }
}

/// A snapshot request waiting for a live stream's first frame: counted in
/// [`Live::waiting`] while this lives, so every way out (the frame, the timeout, a stop,
/// a hang-up) uncounts it.
#[derive(Debug)]
pub struct FrameWaiter(Rc<Stream>);

impl FrameWaiter {
    /// `None` when `stream` is not live.
    pub fn new(stream: Rc<Stream>) -> Option<FrameWaiter> {
        let live = stream.as_live()?;
        live.waiting.set(live.waiting.get() + 1);
        Some(FrameWaiter(stream))
    }

    pub fn stream(&self) -> &Rc<Stream> {
        &self.0
    }
}

impl Drop for FrameWaiter {
    fn drop(&mut self) {
        if let Some(live) = self.0.as_live() {
            live.waiting.set(live.waiting.get() - 1);
        }
    }
}

impl Deref for Viewer {
    type Target = Stream;

    fn deref(&self) -> &Stream {
        &self.0
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.0.viewers.set(self.0.viewers.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::fault::Faults;

    fn parts(n: usize) -> Vec<PartSpec> {
        (0..n)
            .map(|i| PartSpec::new("image/png", format!("p{i}"), 10 * (i as u64 + 1)))
            .collect()
    }

    /// Walks a stream as a client reading instantly would, up to `limit` parts:
    /// (body, due time in ms) of each part.
    fn walk(stream: &Stream, dual_final: bool, limit: usize) -> (Vec<(String, u64)>, bool) {
        let mut cursor = stream.cursor(0, dual_final);
        let mut now = 0;
        let mut got = vec![];
        while got.len() < limit {
            match stream.next(&mut cursor, now) {
                Next::Part { part, at, .. } => {
                    got.push((String::from_utf8_lossy(part.body()).into(), at / 1000))
                }
                Next::At(at) => now = at,
                Next::Idle => unreachable!("scripted streams are never idle"),
                Next::End { .. } => return (got, true),
            }
        }
        (got, false)
    }

    fn bodies(got: &[(String, u64)]) -> Vec<&str> {
        got.iter().map(|(b, _)| b.as_str()).collect()
    }

    #[test]
    fn a_scripted_stream_plays_once_with_its_lead_and_delays() {
        let stream = Stream::scripted(parts(3), 5, None, "").unwrap();
        let (got, ended) = walk(&stream, false, 10);
        assert!(ended);
        assert_eq!(got, [("p0".into(), 5), ("p1".into(), 15), ("p2".into(), 35)]);
        assert!(stream.is_images());
        assert_eq!(stream.snapshot().unwrap().body(), b"p0");
    }

    #[test]
    fn only_the_last_part_closes_and_dual_final_repeats_it() {
        let stream = Stream::scripted(parts(2), 0, None, "").unwrap();
        let mut cursor = stream.cursor(0, false);
        let closes = |next: Next| match next {
            Next::Part { part, .. } => part.halves().1.ends_with(b"--\r\n"),
            other => panic!("{other:?}"),
        };
        assert!(!closes(stream.next(&mut cursor, 1_000_000)));
        assert!(closes(stream.next(&mut cursor, 1_000_000)));
        let (got, ended) = walk(&stream, true, 10);
        assert!(ended);
        assert_eq!(bodies(&got), ["p0", "p1", "p1"]);
        // The repeat follows at once; the final delay comes after it.
        assert_eq!(got[2].1, got[1].1);
    }

    #[test]
    fn a_loop_repeats_its_body_forever() {
        let stream = Stream::scripted(parts(3), 0, Some(1), "").unwrap();
        let (got, ended) = walk(&stream, false, 7);
        assert!(!ended);
        assert_eq!(bodies(&got), ["p0", "p1", "p2", "p1", "p2", "p1", "p2"]);
        assert!(Stream::scripted(parts(2), 0, Some(2), "").is_err());
        assert!(Stream::scripted(Vec::new(), 0, None, "").is_err());
    }

    #[test]
    fn a_synthetic_stream_has_count_parts_then_ends() {
        let stream = Rc::new(Stream::synthetic(3, b"xyz", 7, "X: y\r\n").unwrap());
        assert!(String::from_utf8_lossy(stream.head(Version::Http10)).ends_with("X: y\r\n\r\n"));
        let (got, ended) = walk(&stream, false, 10);
        assert!(ended);
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), [0, 7, 14]);
        assert_eq!(walk(&stream, true, 10).0.len(), 4);
        let viewers = [Viewer::new(stream.clone()), Viewer::new(stream.clone())];
        assert_eq!(stream.viewers(), 2);
        drop(viewers);
        assert_eq!(stream.viewers(), 0);
    }

    #[test]
    fn a_numbered_loop_counts_its_frames_on_across_loops() {
        let stream = Stream::numbered_loop(vec![b"a".to_vec(), b"b".to_vec()], 40_000, "").unwrap();
        assert!(stream.is_images());
        let mut cursor = stream.cursor(0, false);
        let mut got = Vec::new();
        let mut now = 0;
        while got.len() < 5 {
            match stream.next(&mut cursor, now) {
                Next::Part { part, at, frame } => got.push((part.body().to_vec(), at, frame)),
                Next::At(at) => now = at,
                other => panic!("{other:?}"),
            }
        }
        let want: Vec<(Vec<u8>, Micros, Option<u64>)> = (0..5)
            .map(|i| (vec![b"ab"[i % 2]], 40_000 * i as u64, Some(i as u64)))
            .collect();
        assert_eq!(got, want);
        // What goes ahead (`advance_headers`) is numbered too.
        let (part, due, frame) = stream.peek(&cursor).unwrap();
        assert_eq!((part.body(), due, frame), (&b"b"[..], 200_000, Some(5)));
        // Other scripted streams are not numbered.
        let plain = Stream::scripted(parts(1), 0, Some(0), "").unwrap();
        let mut cursor = plain.cursor(0, false);
        assert!(matches!(
            plain.next(&mut cursor, 0),
            Next::Part { frame: None, .. }
        ));
        assert!(Stream::numbered_loop(Vec::new(), 1, "").is_err());
    }

    #[test]
    fn live_frames_are_numbered_from_0_for_every_client() {
        let stream = Stream::live("").unwrap();
        let live = stream.as_live().unwrap();
        let frame = |next: Next| match next {
            Next::Part { frame, .. } => frame,
            other => panic!("{other:?}"),
        };
        let mut first = stream.cursor(0, false);
        live.publish(b"f0", 10);
        assert_eq!(frame(stream.next(&mut first, 10)), Some(0));
        live.publish(b"f1", 20);
        live.publish(b"f2", 30);
        let mut late = stream.cursor(30, false);
        // The one that skipped a frame sees the gap; one that joins later starts there.
        assert_eq!(frame(stream.next(&mut first, 30)), Some(2));
        assert_eq!(frame(stream.next(&mut late, 30)), Some(2));
    }

    #[test]
    fn a_live_client_gets_the_newest_frame_and_skips_the_rest() {
        let stream = Stream::live("").unwrap();
        let live = stream.as_live().unwrap();
        let mut early = stream.cursor(0, false);
        assert!(matches!(stream.next(&mut early, 0), Next::Idle));
        assert!(live.publish(b"f1", 10));
        let mut late = stream.cursor(20, true);
        let body = |next: Next| match next {
            Next::Part { part, .. } => part.body().to_vec(),
            other => panic!("{other:?}"),
        };
        assert_eq!(body(stream.next(&mut early, 20)), b"f1");
        // A client that joins gets the current frame at once.
        assert_eq!(body(stream.next(&mut late, 20)), b"f1");
        live.publish(b"f2", 30);
        live.publish(b"f3", 40);
        assert_eq!(body(stream.next(&mut early, 40)), b"f3");
        assert_eq!(stream.skipped(), 1);
        assert!(matches!(stream.next(&mut early, 50), Next::Idle));
        live.end();
        assert!(matches!(stream.next(&mut early, 60), Next::End { closing: true }));
        // With `dual_final`, the last frame goes out twice.
        assert_eq!(body(stream.next(&mut late, 60)), b"f3");
        assert_eq!(body(stream.next(&mut late, 60)), b"f3");
        assert!(matches!(stream.next(&mut late, 60), Next::End { closing: true }));
    }

    /// The `Content-Length` of each part a client at `cursor` gets, `count` of them.
    fn lengths(stream: &Stream, dual_final: bool, count: usize) -> Vec<String> {
        let mut cursor = stream.cursor(0, dual_final);
        (0..count)
            .map_while(|_| match stream.next(&mut cursor, u64::MAX / 2) {
                Next::Part { part, .. } => {
                    let head = String::from_utf8_lossy(part.halves().0).into_owned();
                    Some(head.split("Content-Length: ").nth(1)?.lines().next()?.to_owned())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_wrong_length_swaps_its_part_in_wherever_that_part_is_sent() {
        let faults = |texts: &[&str]| Faults::parse(texts.iter().copied()).unwrap();
        let wrong = faults(&["wrong_length=+5@2", "wrong_length=-1@3"]);
        let once = Stream::scripted(parts(3), 0, None, "").unwrap();
        let once = once.with_faults(wrong.clone(), "").unwrap();
        assert_eq!(lengths(&once, false, 10), ["2", "7", "1"]);
        // With dual_final the third part is sent twice: once more framed, once closing.
        assert_eq!(lengths(&once, true, 10), ["2", "7", "1", "2"]);
        let looped = Stream::scripted(parts(3), 0, Some(1), "").unwrap();
        let looped = looped.with_faults(wrong.clone(), "").unwrap();
        assert_eq!(lengths(&looped, false, 5), ["2", "7", "1", "2", "2"]);
        let synthetic = Stream::synthetic(3, b"xy", 0, "").unwrap();
        let synthetic = synthetic.with_faults(wrong.clone(), "").unwrap();
        assert_eq!(lengths(&synthetic, false, 10), ["2", "7", "1"]);
        assert_eq!(synthetic.faults().len(), 2);
        assert!(!synthetic.is_busy() && synthetic.wire_plan().is_none());
        // A loop has no last part: any part may be named.
        let far = Stream::scripted(parts(2), 0, Some(0), "").unwrap();
        assert!(
            far.with_faults(faults(&["reset@99"]), "")
                .unwrap()
                .wire_plan()
                .is_some()
        );
        let live = Stream::live("").unwrap().with_faults(faults(&["chunked"]), "");
        assert!(live.unwrap_err().contains("not to live ones"));
        let twice = Stream::synthetic(1, b"x", 0, "").unwrap();
        let twice = twice.with_faults(faults(&["chunked"]), "").unwrap();
        assert_eq!(
            twice.with_faults(faults(&["lf_only"]), "").unwrap_err(),
            "faults given twice"
        );
    }

    #[test]
    fn framing_faults_reach_the_head_the_opening_and_the_closings() {
        let faults = Faults::parse(["quoted_boundary", "no_first_boundary", "chunked", "lf_only"]).unwrap();
        let stream = Stream::scripted(parts(1), 0, None, "X: y\r\n").unwrap();
        let boundary = stream.boundary.clone();
        let stream = stream.with_faults(faults, "X: y\r\n").unwrap();
        let head = |version| String::from_utf8_lossy(stream.head(version)).into_owned();
        assert!(head(Version::Http11).contains(&format!("; boundary=\"{boundary}\"\r\n")));
        assert!(head(Version::Http11).ends_with("Transfer-Encoding: chunked\r\nX: y\r\n\r\n"));
        assert!(head(Version::Http10).ends_with("Connection: close\r\nX: y\r\n\r\n"));
        assert!(stream.opening().is_empty());
        assert_eq!(
            &stream.closing(true)[..],
            format!("\n--{boundary}--\n").as_bytes()
        );
        assert!(
            stream
                .closing(false)
                .starts_with(b"Content-Type: image/png\nContent-Length: 0\n\n\n--")
        );
    }

    #[test]
    fn a_live_frame_holding_the_boundary_is_dropped() {
        let stream = Stream::live("").unwrap();
        let live = stream.as_live().unwrap();
        let body = format!("x{}y", live.boundary);
        assert!(!live.publish(body.as_bytes(), 0));
        assert!(stream.snapshot().is_none());
        assert!(Stream::synthetic(1, b"x", 0, "").unwrap().as_live().is_none());
    }
}
