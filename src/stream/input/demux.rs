//! A multipart body in, complete frames out: what a `relay:` input reads from its upstream
//! and what a `push` publisher sends. Sans-IO: bytes go in as they come off a socket,
//! split anywhere; frames come out through a callback, as [`jpeg::Splitter`] hands them.
//!
//! Two layers. Below, the transfer coding of the HTTP message ([`Transfer`]): a
//! `Content-Length` body, a `chunked` one (decoded by `wire::ChunkDecoder`) or one
//! delimited by the connection's close ([`Demux::finish`]). Above, the entity:
//! - `multipart/*` (x-mixed-replace, mixed…): parts between delimiter lines `--BOUNDARY`.
//!   The boundary comes from the Content-Type (quoted or not), or, with no Content-Type
//!   (ffmpeg's `-f mpjpeg -method PUT` sends none), from the body's first line that
//!   starts with `--`. What real servers send is read too: a boundary parameter that
//!   already carries the line's `--` (`boundary=--myboundary` with `--myboundary` lines;
//!   the body's first delimiter line decides which reading is meant), a body that starts
//!   with part headers (no first delimiter), part headers of any case, bare-LF lines,
//!   parts with or without `Content-Length`, whitespace or junk between a part and the
//!   next delimiter (junk costs a resync, not a frame).
//! - `image/*`, or no Content-Type and a body that starts with a JPEG's SOI (`curl -T
//!   frame.jpg` sends none): the whole body is one frame.
//!
//! Invariants:
//! - Bounded memory whatever the input: the only buffer holds one part's headers (at most
//!   [`MAX_PART_HEAD`]), or one part's body (at most `max_frame` plus a delimiter), plus
//!   what the last [`Demux::push`] brought. A body that outgrows `max_frame` is dropped and
//!   counted (`oversize`); with a `Content-Length` its bytes are skipped by count, without
//!   one the delimiter is searched while keeping only a delimiter's length of tail. Either
//!   way it costs only itself: the next part is read as usual.
//! - A part's body is searched for the next delimiter with `memchr::memmem`, from where
//!   the last search stopped (never twice over the same bytes, never byte by byte). A
//!   `Content-Length` part is handed out as soon as its last byte is in (no waiting for
//!   the next delimiter, which a pusher sends only with the next frame), once a search of
//!   its body shows that the length did not swallow a delimiter (then the delimiter
//!   wins: a lying length costs at most its own part).
//! - Frames come out in order; an empty part is no frame. The output depends only on the
//!   bytes, not on how they are cut into pushes.
//! - Fatal only: a broken transfer coding, a Content-Type that is neither multipart nor an
//!   image, a boundary that cannot be found (none given and no delimiter line within
//!   [`MAX_PREAMBLE`]), an empty or over-long boundary. Everything else is counted in
//!   [`DemuxStats`] and read past.
//!
//! [`jpeg::Splitter`]: crate::stream::jpeg::Splitter

use memchr::memmem::Finder;

use crate::wire::{self, ChunkDecoder, Piece};

/// The most bytes one part's headers may take; past it the part is malformed.
pub const MAX_PART_HEAD: usize = 8 * 1024;
/// With no boundary given, how far into the body its first delimiter line may come.
pub const MAX_PREAMBLE: usize = 64 * 1024;
/// The longest boundary accepted (RFC 2046 allows 70).
pub const MAX_BOUNDARY: usize = 200;

/// How the message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// By the connection's close: the body ends at [`Demux::finish`].
    Close,
    /// By a `Content-Length`.
    Length(u64),
    /// By the `chunked` transfer coding's last chunk.
    Chunked,
}

impl Transfer {
    /// The body's delimitation from a message's `Content-Length` and `Transfer-Encoding`
    /// values (RFC 9112 §6.3: `chunked` wins; any coding but `chunked` and `identity`
    /// cannot be read).
    pub fn of(
        content_length: Option<&[u8]>,
        transfer_encoding: Option<&[u8]>,
    ) -> Result<Transfer, &'static str> {
        if let Some(codings) = transfer_encoding {
            let mut chunked = false;
            for coding in codings.split(|&b| b == b',').map(wire::trim) {
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else if !coding.eq_ignore_ascii_case(b"identity") {
                    return Err("unsupported Transfer-Encoding");
                }
            }
            if chunked {
                return Ok(Transfer::Chunked);
            }
        }
        match content_length {
            Some(value) => wire::decimal(wire::trim(value), 18)
                .map(Transfer::Length)
                .ok_or("bad Content-Length"),
            None => Ok(Transfer::Close),
        }
    }
}

/// Counters since the demuxer was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Frames handed to `on_frame`.
    pub frames: u64,
    /// Parts dropped for being larger than `max_frame`.
    pub oversize: u64,
    /// Parts whose headers or framing were broken (read past to the next delimiter), and
    /// `Content-Length`s that swallowed a delimiter.
    pub malformed: u64,
    /// A part cut short by the body's end.
    pub cut: u64,
}

/// Whether the body goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// More body may come.
    More,
    /// The body is over (its length, its last chunk, or [`Demux::finish`]); later bytes
    /// are not read.
    Ended,
}

/// One message body's demuxer. See the module docs.
#[derive(Debug)]
pub struct Demux {
    decoding: Decoding,
    entity: Entity,
    max_frame: usize,
    /// Entity bytes not consumed yet.
    buf: Vec<u8>,
    stats: DemuxStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decoding {
    Close,
    Length { remaining: u64 },
    Chunked(ChunkDecoder),
    Over,
}

#[derive(Debug)]
enum Entity {
    /// No Content-Type: the first two bytes decide (JPEG SOI: one image; else multipart).
    Sniff,
    /// The whole body is one frame; `oversize` once it outgrew `max_frame`.
    Single { oversize: bool },
    /// Boxed: the delimiter's searcher is large, the other kinds are a word.
    Multipart(Box<Parts>),
}

impl Demux {
    /// A demuxer for a body of `content_type` (`None`: none was sent) delimited by
    /// `transfer`, dropping frames over `max_frame` bytes.
    pub fn new(
        content_type: Option<&[u8]>,
        transfer: Transfer,
        max_frame: usize,
    ) -> Result<Demux, &'static str> {
        let entity = match content_type {
            None => Entity::Sniff,
            Some(value) => {
                let (essence, params) = wire::media_type(value);
                if starts_with_ignore_case(essence, b"multipart/") {
                    let boundary = wire::boundary_param(params)?;
                    Entity::Multipart(Box::new(Parts::new(boundary)?))
                } else if starts_with_ignore_case(essence, b"image/") {
                    Entity::Single { oversize: false }
                } else {
                    return Err("Content-Type is neither multipart nor an image");
                }
            }
        };
        let decoding = match transfer {
            Transfer::Close => Decoding::Close,
            Transfer::Length(remaining) => Decoding::Length { remaining },
            Transfer::Chunked => Decoding::Chunked(ChunkDecoder::default()),
        };
        let mut demux = Demux {
            decoding,
            entity,
            max_frame,
            buf: Vec::new(),
            stats: DemuxStats::default(),
        };
        if transfer == Transfer::Length(0) {
            demux.end_of_body(&mut |_| {});
        }
        Ok(demux)
    }

    /// Reads `data` (the message body's next bytes, any split) and calls `on_frame` with
    /// each complete frame. After an `Err` the demuxer must not be fed again.
    pub fn push(&mut self, mut data: &[u8], mut on_frame: impl FnMut(&[u8])) -> Result<Flow, &'static str> {
        let on_frame = &mut on_frame;
        match self.decoding {
            Decoding::Over => {}
            Decoding::Close => self.entity_bytes(data, on_frame)?,
            Decoding::Length { remaining } => {
                let n = remaining.min(data.len() as u64);
                self.entity_bytes(&data[..n as usize], on_frame)?;
                self.decoding = Decoding::Length {
                    remaining: remaining - n,
                };
                if remaining == n {
                    self.end_of_body(on_frame);
                }
            }
            Decoding::Chunked(mut decoder) => {
                while !data.is_empty() {
                    let (used, piece) = decoder.decode(data)?;
                    data = &data[used..];
                    match piece {
                        Piece::Data(payload) => self.entity_bytes(payload, on_frame)?,
                        Piece::Last => {
                            self.end_of_body(on_frame);
                            return Ok(Flow::Ended);
                        }
                        Piece::Framing => {}
                    }
                }
                self.decoding = Decoding::Chunked(decoder);
            }
        }
        Ok(self.flow())
    }

    /// The connection's end: the body is over, wherever it was. A close-delimited single
    /// image is handed out; a part in progress, or a body that a length or a chunked
    /// coding said would go on, is counted as `cut`.
    pub fn finish(&mut self, mut on_frame: impl FnMut(&[u8])) {
        match self.decoding {
            Decoding::Over => {}
            Decoding::Close => self.end_of_body(&mut on_frame),
            Decoding::Length { .. } | Decoding::Chunked(_) => {
                let started = !self.buf.is_empty() || self.in_part();
                self.stats.cut += u64::from(started);
                self.entity = Entity::Multipart(Box::new(Parts::done()));
                self.buf = Vec::new();
                self.decoding = Decoding::Over;
            }
        }
    }

    /// Whether the body is over.
    pub fn flow(&self) -> Flow {
        if self.decoding == Decoding::Over {
            Flow::Ended
        } else {
            Flow::More
        }
    }

    /// Whether a multipart body's closing delimiter has come (what follows is epilogue:
    /// a relay hangs up and reconnects).
    pub fn closed(&self) -> bool {
        matches!(&self.entity, Entity::Multipart(parts) if parts.state == State::Done)
    }

    pub fn stats(&self) -> DemuxStats {
        self.stats
    }

    /// The boundary in use, once known (multipart bodies only).
    pub fn boundary(&self) -> Option<&[u8]> {
        match &self.entity {
            Entity::Multipart(parts) => parts.boundary(),
            _ => None,
        }
    }

    /// Bytes held between pushes (for tests of the memory bound).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn in_part(&self) -> bool {
        matches!(&self.entity, Entity::Multipart(parts) if parts.in_part(!self.buf.is_empty()))
    }

    fn entity_bytes(&mut self, data: &[u8], on_frame: &mut impl FnMut(&[u8])) -> Result<(), &'static str> {
        if let Entity::Sniff = self.entity {
            if self.buf.len() + data.len() < 2 {
                self.buf.extend_from_slice(data);
                return Ok(());
            }
            let first_two = [
                self.buf.first().copied(),
                data.first().copied(),
                data.get(1).copied(),
            ];
            let soi = matches!(
                first_two,
                [Some(0xFF), Some(0xD8), _] | [None, Some(0xFF), Some(0xD8)]
            );
            self.entity = if soi {
                Entity::Single { oversize: false }
            } else {
                Entity::Multipart(Box::new(Parts::new(None)?))
            };
        }
        match &mut self.entity {
            Entity::Sniff => unreachable!("decided above"),
            Entity::Single { oversize: true } => {}
            Entity::Single { oversize } => {
                if self.buf.len() + data.len() > self.max_frame {
                    *oversize = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(data);
                }
            }
            Entity::Multipart(parts) => {
                self.buf.extend_from_slice(data);
                let used = parts.run(&self.buf, self.max_frame, &mut self.stats, on_frame)?;
                self.buf.drain(..used);
            }
        }
        Ok(())
    }

    /// The body is over: a single image is handed out; a part in progress is cut.
    fn end_of_body(&mut self, on_frame: &mut impl FnMut(&[u8])) {
        match &mut self.entity {
            Entity::Single { oversize: true } => self.stats.oversize += 1,
            Entity::Single { oversize: false } => emit(&self.buf, usize::MAX, &mut self.stats, on_frame),
            // One byte is no image.
            Entity::Sniff => self.stats.malformed += u64::from(!self.buf.is_empty()),
            Entity::Multipart(parts) => {
                self.stats.cut += u64::from(parts.in_part(!self.buf.is_empty()));
                parts.state = State::Done;
            }
        }
        self.buf = Vec::new();
        self.decoding = Decoding::Over;
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The multipart layer: where the entity's next byte falls.
#[derive(Debug)]
struct Parts {
    state: State,
    /// `\n--BOUNDARY`, once the boundary is known, and its searcher. A delimiter line is
    /// found by its LF, so CRLF and bare-LF bodies read alike.
    delimiter: Option<(Vec<u8>, Finder<'static>)>,
    /// The boundary as the Content-Type gave it, until the body's first line confirms it.
    given: Option<Vec<u8>>,
    /// Preamble bytes read past while the boundary is unknown.
    preamble: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The body's start: blank lines are skipped; the first line decides whether it is a
    /// delimiter, a part's headers (no first delimiter) or a preamble.
    Start,
    /// Looking for a delimiter line (or, with no boundary, any line starting `--`).
    Preamble,
    /// Just after `--BOUNDARY`: `--` closes; else the rest of the line, then headers.
    AfterDelimiter,
    /// A part's header lines; `seen`: their bytes so far.
    Headers { length: Option<u64>, seen: usize },
    /// A part's body; `searched`: its bytes already searched for a delimiter.
    Body { length: Option<u64>, searched: usize },
    /// After a `Content-Length` body: whitespace, then the next delimiter.
    Trailer,
    /// An oversize `Content-Length` body: bytes left to skip.
    Skip { remaining: u64 },
    /// After the closing delimiter: the epilogue is ignored.
    Done,
}

impl Parts {
    fn new(given: Option<Vec<u8>>) -> Result<Parts, &'static str> {
        let mut parts = Parts {
            state: State::Start,
            delimiter: None,
            given: None,
            preamble: 0,
        };
        if let Some(boundary) = given {
            check_boundary(&boundary)?;
            // A parameter with the line's `--` in it most often means lines `--x`, not
            // `----x`: take that reading until the body's first line says otherwise.
            let line_form = boundary.strip_prefix(b"--").filter(|rest| !rest.is_empty());
            parts.set_boundary(line_form.unwrap_or(&boundary));
            parts.given = Some(boundary);
        }
        Ok(parts)
    }

    /// A layer that reads nothing more.
    fn done() -> Parts {
        Parts {
            state: State::Done,
            delimiter: None,
            given: None,
            preamble: 0,
        }
    }

    fn boundary(&self) -> Option<&[u8]> {
        self.delimiter.as_ref().map(|(needle, _)| &needle[3..])
    }

    /// Whether a part has begun (a header byte is in, `buffered` or consumed) and not
    /// ended.
    fn in_part(&self, buffered: bool) -> bool {
        match self.state {
            State::Headers { seen, .. } => seen > 0 || buffered,
            State::Body { .. } | State::Skip { .. } => true,
            _ => false,
        }
    }

    fn set_boundary(&mut self, boundary: &[u8]) {
        let mut needle = b"\n--".to_vec();
        needle.extend_from_slice(boundary);
        let finder = Finder::new(&needle).into_owned();
        self.delimiter = Some((needle, finder));
    }

    /// Consumes what it can of `buf` (the entity bytes not consumed yet); returns how
    /// many bytes it consumed.
    fn run(
        &mut self,
        buf: &[u8],
        max_frame: usize,
        stats: &mut DemuxStats,
        on_frame: &mut impl FnMut(&[u8]),
    ) -> Result<usize, &'static str> {
        let mut pos = 0;
        while pos < buf.len() {
            let rest = &buf[pos..];
            let before = self.state;
            let used = match before {
                State::Start => self.start(rest)?,
                State::Preamble => self.preamble(rest)?,
                State::AfterDelimiter => self.after_delimiter(rest),
                State::Headers { length, seen } => self.headers(rest, length, seen, max_frame, stats),
                State::Body { length, searched } => {
                    self.body(rest, length, searched, max_frame, stats, on_frame)
                }
                State::Trailer => self.trailer(rest, stats),
                State::Skip { remaining } => {
                    let n = remaining.min(rest.len() as u64);
                    self.state = match remaining - n {
                        0 => State::Trailer,
                        remaining => State::Skip { remaining },
                    };
                    Some(n as usize)
                }
                State::Done => Some(rest.len()),
            };
            match used {
                // Nothing used and no new state would be the same call again: wait instead.
                Some(0) if self.state == before => break,
                Some(used) => pos += used,
                None => break,
            }
        }
        Ok(pos)
    }

    /// `Some(bytes used)` when the state moved on (possibly using none), `None` when more
    /// bytes are needed: the same convention for every state below.
    fn start(&mut self, rest: &[u8]) -> Result<Option<usize>, &'static str> {
        // A line past the cap is no delimiter nor header, complete or not (the same answer
        // whatever the chunking).
        let Some((line, used)) = line(rest).filter(|&(_, used)| used <= MAX_PART_HEAD) else {
            if rest.len() <= MAX_PART_HEAD {
                return Ok(None);
            }
            self.state = State::Preamble;
            return Ok(Some(0));
        };
        if line.is_empty() {
            return Ok(Some(used));
        }
        if let Some(boundary_len) = line
            .strip_prefix(b"--")
            .and_then(|text| self.first_delimiter(text))
        {
            self.state = State::AfterDelimiter;
            return Ok(Some(2 + boundary_len));
        }
        if wire::header(line).is_ok() && self.delimiter.is_some() {
            // No first delimiter: the body opens with a part's headers.
            self.state = State::Headers {
                length: None,
                seen: 0,
            };
        } else {
            self.state = State::Preamble;
        }
        Ok(Some(0))
    }

    /// The body's first delimiter line (after its `--`) settles the boundary; returns its
    /// length, or `None` if the line holds no usable boundary (then it is no delimiter).
    fn first_delimiter(&mut self, text: &[u8]) -> Option<usize> {
        let text = trim_end(text);
        let boundary = match &self.given {
            Some(given) if text.starts_with(given) => given.clone(),
            Some(given) if given.starts_with(b"--") && text.starts_with(&given[2..]) => given[2..].to_vec(),
            // None given, or the body disagrees with the header: the body is what counts.
            _ => text.strip_suffix(b"--").unwrap_or(text).to_vec(),
        };
        check_boundary(&boundary).ok()?;
        self.given = None;
        self.set_boundary(&boundary);
        Some(boundary.len())
    }

    fn preamble(&mut self, rest: &[u8]) -> Result<Option<usize>, &'static str> {
        if let Some((needle, finder)) = &self.delimiter {
            return Ok(Some(match finder.find(rest) {
                Some(at) => {
                    self.state = State::AfterDelimiter;
                    at + needle.len()
                }
                None => keep_tail(rest, needle.len()),
            }));
        }
        // No boundary yet: the first line that starts with `--` gives it.
        // A candidate line spans at most this much from its LF on: a longer one, complete
        // or not, is passed over (the same answer whatever the chunking).
        const SPAN: usize = MAX_BOUNDARY + 8;
        let used = match memchr::memmem::find(rest, b"\n--") {
            Some(at) => match line(&rest[at + 3..]) {
                Some((text, used)) if 3 + used <= SPAN => match self.first_delimiter(text) {
                    Some(boundary_len) => {
                        self.state = State::AfterDelimiter;
                        at + 3 + boundary_len
                    }
                    None => at + 1,
                },
                Some(_) => at + 1,
                None if rest.len() - at > SPAN => at + 1,
                None if at == 0 => return Ok(None),
                None => at,
            },
            None => keep_tail(rest, 3),
        };
        self.preamble += used;
        if self.preamble > MAX_PREAMBLE {
            return Err("no boundary given and no delimiter line in the body");
        }
        Ok(Some(used))
    }

    fn after_delimiter(&mut self, rest: &[u8]) -> Option<usize> {
        match rest {
            [b'-'] => None,
            [b'-', b'-', ..] => {
                self.state = State::Done;
                Some(2)
            }
            _ => match line(rest) {
                Some((_, used)) => {
                    self.state = State::Headers {
                        length: None,
                        seen: 0,
                    };
                    Some(used)
                }
                None if rest.len() > MAX_PART_HEAD => {
                    self.state = State::Preamble;
                    Some(0)
                }
                None => None,
            },
        }
    }

    fn headers(
        &mut self,
        rest: &[u8],
        mut length: Option<u64>,
        seen: usize,
        max_frame: usize,
        stats: &mut DemuxStats,
    ) -> Option<usize> {
        let Some((line, used)) = line(rest).filter(|_| seen <= MAX_PART_HEAD) else {
            if seen + rest.len() <= MAX_PART_HEAD {
                return None;
            }
            stats.malformed += 1;
            self.state = State::Preamble;
            return Some(0);
        };
        let (needle, _) = self.delimiter.as_ref().expect("a part has a boundary");
        if line.starts_with(&needle[1..]) {
            // A delimiter where a header should be: the part had no blank line.
            stats.malformed += 1;
            self.state = State::AfterDelimiter;
            return Some(needle.len() - 1);
        }
        if line.is_empty() {
            self.state = match length {
                Some(n) if n > max_frame as u64 => {
                    stats.oversize += 1;
                    State::Skip { remaining: n }
                }
                _ => State::Body { length, searched: 0 },
            };
            return Some(used);
        }
        match wire::header(line) {
            Ok((name, value)) => {
                if name.eq_ignore_ascii_case(b"content-length") {
                    // An unreadable length is no length: the delimiter still ends the part.
                    length = wire::decimal(value, 18);
                }
                self.state = State::Headers {
                    length,
                    seen: seen + used,
                };
            }
            Err(_) => {
                stats.malformed += 1;
                self.state = State::Preamble;
            }
        }
        Some(used)
    }

    fn body(
        &mut self,
        rest: &[u8],
        length: Option<u64>,
        searched: usize,
        max_frame: usize,
        stats: &mut DemuxStats,
        on_frame: &mut impl FnMut(&[u8]),
    ) -> Option<usize> {
        let (needle, finder) = self.delimiter.as_ref().expect("a part has a boundary");
        let bare = &needle[1..];
        if searched == 0 && length.is_none_or(|n| n > 0) {
            // A delimiter right after the headers' blank line: an empty part.
            if rest.len() < bare.len() && bare.starts_with(rest) {
                return None;
            }
            if rest.starts_with(bare) {
                self.state = State::AfterDelimiter;
                stats.malformed += u64::from(length.is_some());
                return Some(bare.len());
            }
        }
        let complete = length.is_some_and(|n| rest.len() as u64 >= n);
        let end = match length {
            Some(n) if complete => n as usize,
            Some(_) => return None,
            None => rest.len(),
        };
        let from = searched.saturating_sub(needle.len() - 1);
        if let Some(at) = finder.find(&rest[from..end]).map(|at| from + at) {
            stats.malformed += u64::from(length.is_some());
            let frame = &rest[..at];
            emit(
                frame.strip_suffix(b"\r").unwrap_or(frame),
                max_frame,
                stats,
                on_frame,
            );
            self.state = State::AfterDelimiter;
            return Some(at + needle.len());
        }
        if complete {
            emit(&rest[..end], max_frame, stats, on_frame);
            self.state = State::Trailer;
            return Some(end);
        }
        if rest.len() > max_frame + needle.len() {
            stats.oversize += 1;
            self.state = State::Preamble;
            return Some(keep_tail(rest, needle.len()));
        }
        self.state = State::Body {
            length,
            searched: rest.len(),
        };
        None
    }

    fn trailer(&mut self, rest: &[u8], stats: &mut DemuxStats) -> Option<usize> {
        let (needle, _) = self.delimiter.as_ref().expect("a part has a boundary");
        let bare = &needle[1..];
        let blank = rest
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            .unwrap_or(rest.len());
        let next = &rest[blank..];
        if next.len() < bare.len() && bare.starts_with(next) {
            return (blank > 0).then_some(blank);
        }
        if next.starts_with(bare) {
            self.state = State::AfterDelimiter;
            return Some(blank + bare.len());
        }
        // Junk after the part: read past it to the next delimiter line.
        stats.malformed += 1;
        self.state = State::Preamble;
        Some(blank)
    }
}

/// Hands out `frame` unless it is empty (no frame) or over `max_frame` (counted).
fn emit(frame: &[u8], max_frame: usize, stats: &mut DemuxStats, on_frame: &mut impl FnMut(&[u8])) {
    if frame.len() > max_frame {
        stats.oversize += 1;
    } else if !frame.is_empty() {
        stats.frames += 1;
        on_frame(frame);
    }
}

fn check_boundary(boundary: &[u8]) -> Result<(), &'static str> {
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Err("boundary empty or too long");
    }
    if boundary.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err("boundary with a line break");
    }
    Ok(())
}

/// The first line of `rest` without its line end (CRLF or LF), and the bytes it took.
fn line(rest: &[u8]) -> Option<(&[u8], usize)> {
    let lf = memchr::memchr(b'\n', rest)?;
    let text = &rest[..lf];
    Some((text.strip_suffix(b"\r").unwrap_or(text), lf + 1))
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// How much of `rest` can go when no `needle_len`-byte needle starts in it: all but the
/// bytes a needle cut by the read's end could have begun in.
fn keep_tail(rest: &[u8], needle_len: usize) -> usize {
    rest.len().saturating_sub(needle_len - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a body gave: frames, counters, and the flow or the error.
    type Outcome = (Vec<Vec<u8>>, DemuxStats, Result<Flow, &'static str>);

    /// Feeds `body` in `step`-byte pushes (then `finish` unless the body ended or failed).
    fn read(
        content_type: Option<&str>,
        transfer: Transfer,
        max_frame: usize,
        body: &[u8],
        step: usize,
    ) -> Outcome {
        let mut demux = Demux::new(content_type.map(str::as_bytes), transfer, max_frame).expect("a demuxer");
        let mut frames = Vec::new();
        let mut flow = Ok(Flow::More);
        for piece in body.chunks(step) {
            flow = demux.push(piece, |frame: &[u8]| frames.push(frame.to_vec()));
            assert!(
                demux.buffered() <= max_frame + MAX_PART_HEAD + step,
                "{}",
                demux.buffered()
            );
            if flow != Ok(Flow::More) {
                break;
            }
        }
        if flow == Ok(Flow::More) {
            demux.finish(|frame: &[u8]| frames.push(frame.to_vec()));
            flow = Ok(demux.flow());
        }
        (frames, demux.stats(), flow)
    }

    /// `read` at every step from 1 to the body's length: all give the same outcome.
    fn read_any_split(
        content_type: Option<&str>,
        transfer: Transfer,
        max_frame: usize,
        body: &[u8],
    ) -> Outcome {
        let whole = read(content_type, transfer, max_frame, body, body.len().max(1));
        for step in 1..body.len() {
            assert_eq!(
                read(content_type, transfer, max_frame, body, step),
                whole,
                "step {step}"
            );
        }
        whole
    }

    fn frames(names: &[&str]) -> Vec<Vec<u8>> {
        names.iter().map(|name| name.as_bytes().to_vec()).collect()
    }

    fn chunked(body: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in body.chunks(size) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    const CT: Option<&str> = Some("multipart/x-mixed-replace;boundary=frame");
    const TWO: &[u8] = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\n\r\nfirst\r\n\
        --frame\r\nContent-Type: image/jpeg\r\nContent-Length: 6\r\n\r\nsecond\r\n--frame--\r\nepilogue";

    #[test]
    fn parts_with_lengths_in_any_split() {
        let (got, stats, flow) = read_any_split(CT, Transfer::Close, 100, TWO);
        assert_eq!(got, frames(&["first", "second"]));
        assert_eq!((stats.frames, stats.malformed, stats.cut), (2, 0, 0));
        assert_eq!(flow, Ok(Flow::Ended));
    }

    #[test]
    fn parts_without_lengths_any_header_case_and_bare_lf() {
        let body = b"--frame\r\ncontent-type: image/jpeg\r\n\r\nfirst\r\n--frame\nCONTENT-TYPE: image/jpeg\n\nsec\r\nond\n--frame\r\n\r\nthird\r\n--frame--";
        let (got, stats, _) = read_any_split(CT, Transfer::Close, 100, body);
        assert_eq!(got, frames(&["first", "sec\r\nond", "third"]));
        assert_eq!(stats.malformed, 0);
    }

    #[test]
    fn quoted_and_dashed_boundary_parameters() {
        let quoted = b"--my frame\r\n\r\nA\r\n--my frame\r\n\r\nB\r\n--my frame--\r\n";
        let (got, _, _) = read_any_split(
            Some("multipart/x-mixed-replace; boundary=\"my frame\""),
            Transfer::Close,
            100,
            quoted,
        );
        assert_eq!(got, frames(&["A", "B"]));
        // `boundary=--frame`, and lines `--frame` (the common misreading) …
        let dashed = Some("multipart/x-mixed-replace;boundary=--frame");
        let (got, _, _) = read_any_split(dashed, Transfer::Close, 100, TWO);
        assert_eq!(got, frames(&["first", "second"]));
        // … or lines `----frame`, as RFC 2046 reads the same parameter.
        let rfc = String::from_utf8_lossy(TWO).replace("--frame", "----frame");
        let (got, _, _) = read_any_split(dashed, Transfer::Close, 100, rfc.as_bytes());
        assert_eq!(got, frames(&["first", "second"]));
    }

    #[test]
    fn a_body_without_its_first_delimiter() {
        let body = b"Content-Type: image/jpeg\r\nContent-Length: 5\r\n\r\nfirst\r\n--frame\r\nContent-Type: image/jpeg\r\n\r\nsecond\r\n--frame\r\n";
        let (got, stats, _) = read_any_split(CT, Transfer::Close, 100, body);
        assert_eq!(got, frames(&["first", "second"]));
        assert_eq!(stats.cut, 0);
        // With the dashed parameter too.
        let (got, _, _) = read_any_split(
            Some("multipart/mixed; boundary=--frame"),
            Transfer::Close,
            100,
            body,
        );
        assert_eq!(got, frames(&["first", "second"]));
    }

    #[test]
    fn a_chunked_body_in_any_split() {
        for size in [1, 3, 7, 64] {
            let (got, stats, flow) = read_any_split(CT, Transfer::Chunked, 100, &chunked(TWO, size));
            assert_eq!(got, frames(&["first", "second"]), "{size}");
            assert_eq!((stats.cut, flow), (0, Ok(Flow::Ended)));
        }
    }

    /// ffmpeg's `-f mpjpeg -method PUT`: chunked, no Content-Type, `--ffmpeg` lines, each
    /// part with a length and the delimiter only when the next part comes.
    #[test]
    fn the_ffmpeg_push_shape_learns_the_boundary_and_hands_out_each_part_at_once() {
        let part = |body: &str| {
            format!(
                "--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: {}\r\n\r\n{body}\r\n",
                body.len()
            )
        };
        let mut demux = Demux::new(None, Transfer::Chunked, 100).unwrap();
        let mut got = Vec::new();
        let first = chunked(part("first").as_bytes(), 1000);
        let first = &first[..first.len() - 5]; // not the last chunk yet
        assert_eq!(demux.push(first, |f: &[u8]| got.push(f.to_vec())), Ok(Flow::More));
        assert_eq!(got, frames(&["first"]), "out before the next delimiter");
        assert_eq!(demux.boundary(), Some(&b"ffmpeg"[..]));
        let rest = chunked(format!("{}--ffmpeg--\r\n", part("second")).as_bytes(), 1000);
        assert_eq!(
            demux.push(&rest, |f: &[u8]| got.push(f.to_vec())),
            Ok(Flow::Ended)
        );
        assert_eq!(got, frames(&["first", "second"]));
    }

    #[test]
    fn one_image_per_body() {
        let jpeg = b"\xFF\xD8 an image \xFF\xD9";
        let length = Transfer::Length(jpeg.len() as u64);
        let (got, _, flow) = read_any_split(None, length, 100, jpeg);
        assert_eq!((got, flow), (vec![jpeg.to_vec()], Ok(Flow::Ended)));
        let (got, _, _) = read_any_split(Some("image/jpeg"), Transfer::Chunked, 100, &chunked(jpeg, 4));
        assert_eq!(got, vec![jpeg.to_vec()]);
        let (got, _, _) = read_any_split(Some("image/jpeg"), Transfer::Close, 100, jpeg);
        assert_eq!(got, vec![jpeg.to_vec()]);
        let (got, stats, _) = read_any_split(Some("image/jpeg"), Transfer::Close, 10, jpeg);
        assert_eq!((got.len(), stats.oversize), (0, 1));
        // A length that was not all sent: the image is cut, not handed out.
        let (got, stats, _) = read(None, Transfer::Length(100), 100, jpeg, 3);
        assert_eq!((got.len(), stats.cut), (0, 1));
    }

    #[test]
    fn an_oversize_part_costs_only_itself() {
        let big = "x".repeat(500);
        for length in [true, false] {
            let part = |body: &str| {
                let length = if length {
                    format!("Content-Length: {}\r\n", body.len())
                } else {
                    String::new()
                };
                format!("--frame\r\n{length}\r\n{body}\r\n")
            };
            let body = format!("{}{}{}--frame--\r\n", part("first"), part(&big), part("third"));
            let (got, stats, _) = read_any_split(CT, Transfer::Close, 100, body.as_bytes());
            assert_eq!(got, frames(&["first", "third"]), "length {length}");
            assert_eq!((stats.oversize, stats.malformed), (1, 0));
        }
    }

    #[test]
    fn memory_stays_bounded_on_endless_input() {
        let mut demux = Demux::new(CT.map(str::as_bytes), Transfer::Close, 1000).unwrap();
        let junk = vec![b'x'; 4096];
        assert_eq!(demux.push(b"--frame\r\n\r\n", |_: &[u8]| {}), Ok(Flow::More));
        for _ in 0..1000 {
            demux.push(&junk, |_: &[u8]| panic!("no frame")).unwrap();
            assert!(demux.buffered() < 1000 + junk.len());
        }
        let mut headers = Demux::new(CT.map(str::as_bytes), Transfer::Close, 1000).unwrap();
        headers.push(b"--frame\r\n", |_: &[u8]| {}).unwrap();
        for _ in 0..1000 {
            headers
                .push(b"X-Header: value\r\n", |_: &[u8]| panic!("no frame"))
                .unwrap();
            assert!(headers.buffered() <= MAX_PART_HEAD);
        }
        assert_eq!(headers.stats().malformed, 1);
    }

    #[test]
    fn lies_and_junk_cost_at_most_their_own_part() {
        // A length past the delimiter: the delimiter wins.
        let long = b"--frame\r\nContent-Length: 60\r\n\r\nfirst\r\n--frame\r\n\r\nsecond\r\n--frame\r\n\r\nthird, long enough to reach 60 bytes\r\n--frame--";
        let (got, stats, _) = read_any_split(CT, Transfer::Close, 100, long);
        assert_eq!(
            got,
            frames(&["first", "second", "third, long enough to reach 60 bytes"])
        );
        assert_eq!(stats.malformed, 1);
        // Junk between a part and the next delimiter, and a part with a broken header.
        let junk = b"--frame\r\nContent-Length: 5\r\n\r\nfirst\r\n\r\njunk\r\n--frame\r\nno colon\r\n\r\nlost\r\n--frame\r\n\r\nthird\r\n--frame--";
        let (got, stats, _) = read_any_split(CT, Transfer::Close, 100, junk);
        assert_eq!(got, frames(&["first", "third"]));
        assert_eq!(stats.malformed, 2);
        // A preamble, blank lines first, an empty part, a bad length value.
        let odd =
            b"\r\n\r\npreamble\r\n--frame\r\n\r\n\r\n--frame\r\nContent-Length: x\r\n\r\nfirst\r\n--frame--";
        let (got, _, _) = read_any_split(CT, Transfer::Close, 100, odd);
        assert_eq!(got, frames(&["first"]));
    }

    #[test]
    fn a_part_cut_by_the_end_is_counted() {
        let body = b"--frame\r\nContent-Length: 5\r\n\r\nfirst\r\n--frame\r\nContent-Length: 9\r\n\r\nsec";
        let (got, stats, flow) = read_any_split(CT, Transfer::Close, 100, body);
        assert_eq!((got, stats.cut, flow), (frames(&["first"]), 1, Ok(Flow::Ended)));
        let (_, stats, _) = read(CT, Transfer::Length(1000), 100, body, 7);
        assert_eq!(stats.cut, 1);
    }

    /// Found by the fuzzer: with no boundary given, a `--` line too long to be a
    /// delimiter was an error when it came whole and passed over when it came in pieces.
    #[test]
    fn an_over_long_dashed_line_is_passed_over_however_it_comes() {
        let mut body = b"junk\r\n--".to_vec();
        body.extend_from_slice(&[b'f'; 300]);
        body.extend_from_slice(b"\r\n--frame\r\n\r\none\r\n--frame--");
        let (got, _, flow) = read_any_split(None, Transfer::Close, 100, &body);
        assert_eq!((got, flow), (frames(&["one"]), Ok(Flow::Ended)));
        let mut first = b"--".to_vec();
        first.extend_from_slice(&[b'f'; MAX_PART_HEAD + 10]);
        first.extend_from_slice(b"\r\n--frame\r\n\r\none\r\n--frame--");
        let (got, _, _) = read(None, Transfer::Close, 100, &first, first.len());
        assert_eq!(got, frames(&["one"]));
        let (got, _, _) = read(None, Transfer::Close, 100, &first, 1000);
        assert_eq!(got, frames(&["one"]));
    }

    #[test]
    fn fatal_errors() {
        assert!(Demux::new(Some(&b"text/html"[..]), Transfer::Close, 100).is_err());
        assert!(Demux::new(Some(&b"multipart/mixed; boundary=\"\""[..]), Transfer::Close, 100).is_err());
        let mut unknown = Demux::new(None, Transfer::Close, 100).unwrap();
        let mut result = Ok(Flow::More);
        for _ in 0..100 {
            result = unknown.push(&[b'x'; 1024], |_: &[u8]| {});
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err("no boundary given and no delimiter line in the body"));
        let mut bad = Demux::new(CT.map(str::as_bytes), Transfer::Chunked, 100).unwrap();
        assert_eq!(bad.push(b"zz\r\n", |_: &[u8]| {}), Err("bad chunk size"));
        assert_eq!(Transfer::of(Some(b"12"), None), Ok(Transfer::Length(12)));
        assert_eq!(Transfer::of(Some(b"12"), Some(b"chunked")), Ok(Transfer::Chunked));
        assert_eq!(
            Transfer::of(None, Some(b"gzip, chunked")),
            Err("unsupported Transfer-Encoding")
        );
        assert_eq!(Transfer::of(None, None), Ok(Transfer::Close));
    }
}
