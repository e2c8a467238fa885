//! Faults on purpose: the malformed streams real devices and servers send, served on
//! demand (`--stream PATH=KIND…,fault=NAME`, repeatable) so a harness can test how an
//! MJPEG client copes with them.
//!
//! Two kinds, both decided once, at start-up:
//! - **Framing faults** change the bytes of the stream: the response head, the opening
//!   delimiter, each part's head, body and delimiter, the closing. [`Framing`] re-frames
//!   the stream's encoded parts once, so serving them stays zero-copy and costs what any
//!   stream costs.
//! - **Connection faults** change how the bytes go out: a stall, a reset or a close in
//!   the middle of a part, a chunked body, a trickle. They become a [`WirePlan`] that each
//!   connection of the stream follows in its write path (`server::sabotage`).
//!
//! Invariants:
//! - Nothing here applies unless asked for: a stream without `fault=` has no [`Faults`]
//!   and is served exactly as before.
//! - Every fault is deterministic: no randomness is involved (the boundary stays random,
//!   as for every stream), so a fault sends the same bytes on every connection.
//! - `@PART` counts the parts one connection is sent, from 1.
//! - Bodies are never changed but by `jpeg_trailer`, which appends [`TRAILER`]; a body's
//!   bytes are never searched or rewritten, only the framing around them.

use std::fmt;
use std::rc::Rc;

use memchr::memmem;

use crate::clock::{Micros, ms};
use crate::stream::multipart::{Boundary, Part};

/// What `jpeg_trailer` appends to every body, inside the part (its `Content-Length`
/// counts it): padding and line ends, as encoders and cameras leave after a JPEG's EOI.
pub const TRAILER: &[u8] = b"\0\0\0\0\0\0\0\0\r\njunk\r\n";

/// What `busy_page` answers instead of the stream, as DroidCam answers a second viewer.
pub const BUSY_PAGE: &str = "<!doctype html>\n<html><head><title>Busy</title></head><body><h1>Busy</h1>\
     <p>Another client is watching this camera.</p></body></html>\n";

/// The longest stall and the longest drip interval: an hour, far past any client's
/// patience, far from the timeline's arithmetic limits.
const MAX_DELAY_MS: u64 = 3_600_000;
/// The largest `wrong_length` offset: a length off by more says nothing new.
const MAX_LENGTH_OFFSET: i64 = 1 << 30;

/// Every fault's name, in the order `--help` and the README list them.
const NAMES: [&str; 16] = [
    "no_first_boundary",
    "dashed_boundary",
    "quoted_boundary",
    "no_length",
    "bare_delimiter",
    "lf_only",
    "duplicate_length",
    "wrong_length=±N@PART",
    "jpeg_trailer",
    "no_close",
    "busy_page",
    "stall=MS@PART",
    "reset@PART",
    "truncate@PART",
    "chunked",
    "drip=BYTES/MS",
];

/// One fault, as `fault=` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The first delimiter is missing: the head, then the first part's headers (Tasmota,
    /// ESP32 camera servers).
    NoFirstBoundary,
    /// The `boundary` parameter carries the delimiter's leading `--` (py-mjpeg).
    DashedBoundary,
    /// `boundary="B"`: legal, and missed by clients that do not unquote.
    QuotedBoundary,
    /// Parts without `Content-Length` (Flask's MJPEG snippet).
    NoLength,
    /// No CRLF between a body and its delimiter (the Tcl origin).
    BareDelimiter,
    /// LF line ends in the multipart framing (the HTTP head keeps CRLF).
    LfOnly,
    /// Two `Content-Length` headers, both right.
    DuplicateLength,
    /// `Content-Length` off by `by` on part `part`.
    WrongLength { by: i64, part: u64 },
    /// [`TRAILER`] after every body, inside the part.
    JpegTrailer,
    /// The stream ends without the closing delimiter: the last part ends with a plain
    /// delimiter, and the connection closes.
    NoClose,
    /// `200 text/html` ([`BUSY_PAGE`]) instead of the stream.
    BusyPage,
    /// Part `part` stops in the middle for `ms`.
    Stall { ms: u64, part: u64 },
    /// A reset (RST) in the middle of part `part`.
    Reset { part: u64 },
    /// A close (FIN) in the middle of part `part`.
    Truncate { part: u64 },
    /// An HTTP/1.1 chunked body (to HTTP/1.1 clients).
    Chunked,
    /// Every byte after the head trickles out, `bytes` every `ms`.
    Drip { bytes: usize, ms: u64 },
}

impl Fault {
    /// Parses one `fault=` value: `NAME`, `NAME@PART`, `NAME=VALUE` or `NAME=VALUE@PART`.
    pub fn parse(text: &str) -> Result<Fault, String> {
        let (head, part) = match text.split_once('@') {
            Some((head, part)) => (head, Some(part)),
            None => (text, None),
        };
        let (name, value) = match head.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (head, None),
        };
        let shape = || {
            let expected = NAMES.iter().find(|n| n.split(['=', '@']).next() == Some(name));
            match expected {
                Some(expected) => format!("fault '{text}': expected {expected}"),
                None => format!("unknown fault '{text}' (expected {})", NAMES.join(", ")),
            }
        };
        let part = part.map(|p| parse_part(p).ok_or_else(shape)).transpose()?;
        let fault = match (name, value, part) {
            ("no_first_boundary", None, None) => Fault::NoFirstBoundary,
            ("dashed_boundary", None, None) => Fault::DashedBoundary,
            ("quoted_boundary", None, None) => Fault::QuotedBoundary,
            ("no_length", None, None) => Fault::NoLength,
            ("bare_delimiter", None, None) => Fault::BareDelimiter,
            ("lf_only", None, None) => Fault::LfOnly,
            ("duplicate_length", None, None) => Fault::DuplicateLength,
            ("wrong_length", Some(by), Some(part)) => Fault::WrongLength {
                by: parse_offset(by).ok_or_else(|| {
                    format!("fault '{text}': the offset is a non-zero whole number of bytes, as +3 or -3")
                })?,
                part,
            },
            ("jpeg_trailer", None, None) => Fault::JpegTrailer,
            ("no_close", None, None) => Fault::NoClose,
            ("busy_page", None, None) => Fault::BusyPage,
            ("stall", Some(ms), Some(part)) => Fault::Stall {
                ms: parse_delay(ms).ok_or_else(|| delay_error(text))?,
                part,
            },
            ("reset", None, Some(part)) => Fault::Reset { part },
            ("truncate", None, Some(part)) => Fault::Truncate { part },
            ("chunked", None, None) => Fault::Chunked,
            ("drip", Some(rate), None) => {
                let (bytes, ms) = rate.split_once('/').ok_or_else(shape)?;
                let bytes = bytes
                    .parse::<usize>()
                    .ok()
                    .filter(|&b| b > 0)
                    .ok_or_else(|| format!("fault '{text}': BYTES is a whole number from 1"))?;
                Fault::Drip {
                    bytes,
                    ms: parse_delay(ms).ok_or_else(|| delay_error(text))?,
                }
            }
            _ => return Err(shape()),
        };
        Ok(fault)
    }

    /// The part a fault is about, for the faults that name one.
    pub fn part(self) -> Option<u64> {
        match self {
            Fault::WrongLength { part, .. }
            | Fault::Stall { part, .. }
            | Fault::Reset { part }
            | Fault::Truncate { part } => Some(part),
            _ => None,
        }
    }

    /// The name alone, without value or part.
    fn name(self) -> &'static str {
        match self {
            Fault::NoFirstBoundary => "no_first_boundary",
            Fault::DashedBoundary => "dashed_boundary",
            Fault::QuotedBoundary => "quoted_boundary",
            Fault::NoLength => "no_length",
            Fault::BareDelimiter => "bare_delimiter",
            Fault::LfOnly => "lf_only",
            Fault::DuplicateLength => "duplicate_length",
            Fault::WrongLength { .. } => "wrong_length",
            Fault::JpegTrailer => "jpeg_trailer",
            Fault::NoClose => "no_close",
            Fault::BusyPage => "busy_page",
            Fault::Stall { .. } => "stall",
            Fault::Reset { .. } => "reset",
            Fault::Truncate { .. } => "truncate",
            Fault::Chunked => "chunked",
            Fault::Drip { .. } => "drip",
        }
    }
}

/// The form `fault=` takes: `wrong_length=+3@2`, `stall=500@3`, `drip=100/10`, `lf_only`.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match *self {
            Fault::WrongLength { by, .. } => write!(f, "={by:+}")?,
            Fault::Stall { ms, .. } => write!(f, "={ms}")?,
            Fault::Drip { bytes, ms } => write!(f, "={bytes}/{ms}")?,
            _ => {}
        }
        match self.part() {
            Some(part) => write!(f, "@{part}"),
            None => Ok(()),
        }
    }
}

/// Whether a fault cuts its part in the middle.
fn is_cut(fault: Fault) -> bool {
    matches!(
        fault,
        Fault::Stall { .. } | Fault::Reset { .. } | Fault::Truncate { .. }
    )
}

/// A part number: from 1.
fn parse_part(text: &str) -> Option<u64> {
    text.parse().ok().filter(|&p| p >= 1)
}

/// `+N`, `-N` or `N`, not zero.
fn parse_offset(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    let by: i64 = digits.parse().ok()?;
    (by != 0 && by.abs() <= MAX_LENGTH_OFFSET && !digits.starts_with('+')).then_some(by)
}

fn parse_delay(text: &str) -> Option<u64> {
    text.parse().ok().filter(|ms| (1..=MAX_DELAY_MS).contains(ms))
}

fn delay_error(text: &str) -> String {
    format!("fault '{text}': MS is a whole number of milliseconds from 1 to {MAX_DELAY_MS}")
}

/// A stream's faults, checked to go together, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    list: Vec<Fault>,
}

impl Faults {
    /// Parses the `fault=` values of one `--stream`, and refuses what cannot go together:
    /// a fault given twice (at the same part), `busy_page` beside another (no stream is
    /// sent to carry it), and `no_length` beside another length fault.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Faults, String> {
        let mut list: Vec<Fault> = Vec::new();
        for text in texts {
            let fault = Fault::parse(text)?;
            // A fault once (once a part), and one cut a part: a part is cut in one place.
            let same = |other: &&Fault| {
                other.part() == fault.part()
                    && (other.name() == fault.name() || is_cut(**other) && is_cut(fault))
            };
            if let Some(other) = list.iter().find(same) {
                return Err(format!("fault '{fault}' clashes with '{other}': one a part"));
            }
            list.push(fault);
        }
        let faults = Faults { list };
        if faults.busy() && faults.list.len() > 1 {
            return Err("fault busy_page sends no stream: it goes alone".into());
        }
        let other_length = faults
            .list
            .iter()
            .any(|f| matches!(f, Fault::DuplicateLength | Fault::WrongLength { .. }));
        if faults.has(Fault::NoLength) && other_length {
            return Err("fault no_length leaves no Content-Length for another length fault".into());
        }
        Ok(faults)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn as_slice(&self) -> &[Fault] {
        &self.list
    }

    fn has(&self, fault: Fault) -> bool {
        self.list.contains(&fault)
    }

    /// `lf_only`: the multipart framing's lines end in LF alone.
    pub fn lf_only(&self) -> bool {
        self.has(Fault::LfOnly)
    }

    /// `busy_page`: the stream is never sent.
    pub fn busy(&self) -> bool {
        self.has(Fault::BusyPage)
    }

    /// `(by, part)` of each `wrong_length`.
    pub fn wrong_lengths(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.list.iter().filter_map(|f| match *f {
            Fault::WrongLength { by, part } => Some((by, part)),
            _ => None,
        })
    }

    /// How the stream's bytes are framed.
    pub fn framing(&self) -> Framing {
        Framing {
            eol: if self.lf_only() { b"\n" } else { b"\r\n" },
            bare_delimiter: self.has(Fault::BareDelimiter),
            length: match (self.has(Fault::NoLength), self.has(Fault::DuplicateLength)) {
                (true, _) => Length::Absent,
                (_, true) => Length::Twice,
                _ => Length::Once,
            },
            trailer: self.has(Fault::JpegTrailer),
            close: !self.has(Fault::NoClose),
            first_boundary: !self.has(Fault::NoFirstBoundary),
            dashed: self.has(Fault::DashedBoundary),
            quoted: self.has(Fault::QuotedBoundary),
            chunked: self.has(Fault::Chunked),
        }
    }

    /// What each connection does in its write path; `None` when nothing.
    pub fn wire_plan(&self) -> Option<WirePlan> {
        let mut cuts: Vec<(u64, Cut)> = self
            .list
            .iter()
            .filter_map(|f| match *f {
                Fault::Stall { ms: wait, part } => Some((part, Cut::Stall(ms(wait)))),
                Fault::Reset { part } => Some((part, Cut::Reset)),
                Fault::Truncate { part } => Some((part, Cut::Truncate)),
                _ => None,
            })
            .collect();
        cuts.sort_by_key(|(part, _)| *part);
        let drip = self.list.iter().find_map(|f| match *f {
            Fault::Drip { bytes, ms: every } => Some((bytes, ms(every))),
            _ => None,
        });
        let chunked = self.has(Fault::Chunked);
        (chunked || drip.is_some() || !cuts.is_empty()).then_some(WirePlan { chunked, drip, cuts })
    }
}

/// What happens in the middle of a part (see [`WirePlan::cuts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Nothing more is written for this long, then the part goes on.
    Stall(Micros),
    /// The connection is reset (`SO_LINGER` 0, then close: an RST).
    Reset,
    /// The connection is closed (a FIN).
    Truncate,
}

/// The connection faults of a stream, followed by each of its connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WirePlan {
    /// An HTTP/1.1 chunked body: one chunk for each piece queued (the opening delimiter,
    /// a part, a closing), then `0\r\n\r\n`. HTTP/1.0 clients get the plain body.
    pub chunked: bool,
    /// After the head, `bytes` at a time, `every` apart.
    pub drip: Option<(usize, Micros)>,
    /// By part, in order: where a part is cut, after its header block and half its body
    /// (rounded down), and what happens there.
    pub cuts: Vec<(u64, Cut)>,
}

/// How `Content-Length` is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Length {
    Once,
    Absent,
    Twice,
}

/// The framing faults of a stream, as what each encoded piece becomes.
#[derive(Clone, Copy, Debug)]
pub struct Framing {
    /// The line end of the multipart framing.
    eol: &'static [u8],
    bare_delimiter: bool,
    length: Length,
    trailer: bool,
    /// The last part ends with the closing delimiter (not with `no_close`).
    close: bool,
    first_boundary: bool,
    dashed: bool,
    quoted: bool,
    chunked: bool,
}

impl Framing {
    /// The `boundary` parameter of the response head's `Content-Type`.
    pub fn boundary_param(&self, boundary: &Boundary) -> String {
        let dashes = if self.dashed { "--" } else { "" };
        match self.quoted {
            true => format!("\"{dashes}{boundary}\""),
            false => format!("{dashes}{boundary}"),
        }
    }

    /// Header lines the response head carries for `version` besides `extra`.
    pub fn head_extra(&self, http11: bool, extra: &str) -> String {
        match self.chunked && http11 {
            true => format!("Transfer-Encoding: chunked\r\n{extra}"),
            false => extra.to_owned(),
        }
    }

    /// What opens the stream, after the head.
    pub fn opening(&self, boundary: &Boundary) -> Vec<u8> {
        match self.first_boundary {
            true => [b"--", boundary.as_str().as_bytes(), self.eol].concat(),
            false => Vec::new(),
        }
    }

    /// The delimiter after a body: the line end before it (none with `bare_delimiter`),
    /// `--B`, `--` when it closes the stream, and the line end.
    fn delimiter(&self, boundary: &Boundary, closes: bool) -> Vec<u8> {
        let before: &[u8] = if self.bare_delimiter { b"" } else { self.eol };
        let dashes: &[u8] = if closes { b"--" } else { b"" };
        [before, b"--", boundary.as_str().as_bytes(), dashes, self.eol].concat()
    }

    /// `part`, as encoded for the stream, re-framed; its `Content-Length` is off by
    /// `offset` (`wrong_length`). `None` when that leaves a negative length.
    pub fn part(&self, part: &Part, boundary: &Boundary, offset: i64) -> Option<Part> {
        let (before_stamp, rest) = part.halves();
        let after_body = part.body_and_delimiter();
        let after_stamp = &rest[..rest.len() - after_body.len()];
        let body = part.body();
        let closes = &after_body[body.len()..] == boundary.close_delimiter().as_bytes();
        let trailer: &[u8] = if self.trailer { TRAILER } else { b"" };
        let length = (body.len() + trailer.len()) as i64 + offset;
        if length < 0 {
            return None;
        }
        let mut bytes = Vec::with_capacity(part.halves().0.len() + after_body.len() + 64);
        self.head_lines(before_stamp, length, &mut bytes);
        let stamp_at = bytes.len();
        self.head_lines(after_stamp, length, &mut bytes);
        let body_at = bytes.len();
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(trailer);
        bytes.extend_from_slice(&self.delimiter(boundary, closes && self.close));
        Some(Part::from_framed(
            bytes,
            stamp_at,
            body_at,
            body.len() + trailer.len(),
        ))
    }

    /// An early end (`Stream::closing`: an empty final part and the closing delimiter,
    /// or the delimiter alone), re-framed; nothing with `no_close`.
    pub fn closing(&self, closing: &[u8], boundary: &Boundary) -> Vec<u8> {
        if !self.close {
            return Vec::new();
        }
        let head = &closing[..closing.len() - boundary.close_delimiter().len()];
        let mut bytes = Vec::with_capacity(closing.len());
        self.head_lines(head, 0, &mut bytes);
        bytes.extend_from_slice(&self.delimiter(boundary, true));
        bytes
    }

    /// Copies a piece of a part's head: each CRLF-ended line with this framing's line
    /// end, `Content-Length` as the faults say (`length`: its value); a last line without
    /// CRLF (the stamp's line, cut where the stamp goes) as it is.
    fn head_lines(&self, text: &[u8], length: i64, out: &mut Vec<u8>) {
        let mut rest = text;
        while let Some(end) = memmem::find(rest, b"\r\n") {
            let line = &rest[..end];
            rest = &rest[end + 2..];
            let copies = match line.starts_with(b"Content-Length: ") {
                false => {
                    out.extend_from_slice(line);
                    out.extend_from_slice(self.eol);
                    continue;
                }
                true if self.length == Length::Absent => 0,
                true if self.length == Length::Twice => 2,
                true => 1,
            };
            for _ in 0..copies {
                out.extend_from_slice(format!("Content-Length: {length}").as_bytes());
                out.extend_from_slice(self.eol);
            }
        }
        out.extend_from_slice(rest);
    }
}

/// A part swapped in at one index of a stream's timeline (`wrong_length`): at `index`,
/// wherever `usual` would be sent, `odd` is.
#[derive(Debug)]
pub struct OddPart {
    pub index: u64,
    pub usual: Rc<Part>,
    pub odd: Rc<Part>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::multipart::Then;

    fn faults(texts: &[&str]) -> Faults {
        Faults::parse(texts.iter().copied()).unwrap()
    }

    #[test]
    fn every_fault_reads_back_as_written() {
        for text in [
            "no_first_boundary",
            "dashed_boundary",
            "quoted_boundary",
            "no_length",
            "bare_delimiter",
            "lf_only",
            "duplicate_length",
            "wrong_length=+3@2",
            "wrong_length=-1@1",
            "jpeg_trailer",
            "no_close",
            "busy_page",
            "stall=500@3",
            "reset@1",
            "truncate@7",
            "chunked",
            "drip=100/10",
        ] {
            assert_eq!(Fault::parse(text).map(|f| f.to_string()), Ok(text.into()));
        }
        assert_eq!(
            Fault::parse("wrong_length=3@2"),
            Ok(Fault::WrongLength { by: 3, part: 2 })
        );
    }

    #[test]
    fn explains_what_is_wrong() {
        for (texts, says) in [
            (
                &["nope"][..],
                "unknown fault 'nope' (expected no_first_boundary, ",
            ),
            (&["stall=500"], "fault 'stall=500': expected stall=MS@PART"),
            (&["stall@2"], "expected stall=MS@PART"),
            (
                &["stall=0@2"],
                "MS is a whole number of milliseconds from 1 to 3600000",
            ),
            (&["stall=5@0"], "expected stall=MS@PART"),
            (&["reset"], "expected reset@PART"),
            (&["reset@x"], "expected reset@PART"),
            (&["lf_only=1"], "expected lf_only"),
            (&["lf_only@1"], "expected lf_only"),
            (&["wrong_length=0@1"], "the offset is a non-zero whole number"),
            (&["wrong_length=++1@1"], "the offset is a non-zero whole number"),
            (&["wrong_length=1"], "expected wrong_length=±N@PART"),
            (&["drip=10"], "expected drip=BYTES/MS"),
            (&["drip=0/10"], "BYTES is a whole number from 1"),
            (&["drip=10/0"], "MS is a whole number"),
            (&["chunked", "chunked"], "'chunked' clashes with 'chunked'"),
            (&["reset@2", "truncate@2"], "'truncate@2' clashes with 'reset@2'"),
            (
                &["reset@2", "truncate@3", "wrong_length=1@2", "wrong_length=2@3"],
                "",
            ),
            (&["reset@2", "reset@2"], "clashes"),
            (&["drip=1/1", "drip=2/2"], "clashes"),
            (&["busy_page", "chunked"], "busy_page sends no stream"),
            (
                &["no_length", "duplicate_length"],
                "no_length leaves no Content-Length",
            ),
        ] {
            match Faults::parse(texts.iter().copied()) {
                Ok(_) => assert_eq!(says, "", "{texts:?}"),
                Err(e) => assert!(!says.is_empty() && e.contains(says), "{texts:?}: {e}"),
            }
        }
    }

    #[test]
    fn connection_faults_make_a_plan_in_part_order() {
        assert_eq!(faults(&["lf_only", "no_length"]).wire_plan(), None);
        let plan = faults(&["truncate@5", "stall=20@2", "drip=3/4", "chunked"])
            .wire_plan()
            .unwrap();
        assert_eq!(
            plan,
            WirePlan {
                chunked: true,
                drip: Some((3, 4000)),
                cuts: vec![(2, Cut::Stall(20_000)), (5, Cut::Truncate)],
            }
        );
    }

    /// A part as it goes out, with `stamp` in its slot.
    fn wire(part: &Part) -> String {
        let (head, tail) = part.halves();
        String::from_utf8([head, b"STAMP", tail].concat()).unwrap()
    }

    #[test]
    fn parts_are_reframed_as_the_faults_say() {
        let boundary = Boundary::absent_from([&b"x"[..]].into_iter()).unwrap();
        let b = boundary.as_str();
        let more = Part::encode(&boundary, "image/jpeg", b"JPEG", Then::More);
        let last = Part::encode(&boundary, "image/jpeg", b"JPEG", Then::End);
        let none = faults(&[]).framing();
        assert_eq!(wire(&none.part(&more, &boundary, 0).unwrap()), wire(&more));
        assert_eq!(wire(&none.part(&last, &boundary, 0).unwrap()), wire(&last));
        for (given, offset, part, want) in [
            (
                &["lf_only", "bare_delimiter"][..],
                0,
                &more,
                format!("Content-Type: image/jpeg\nContent-Length: 4\nX-Timestamp: STAMP\n\nJPEG--{b}\n"),
            ),
            (
                &["no_length", "no_close"],
                0,
                &last,
                format!("Content-Type: image/jpeg\r\nX-Timestamp: STAMP\r\n\r\nJPEG\r\n--{b}\r\n"),
            ),
            (
                &["duplicate_length", "jpeg_trailer"],
                -2,
                &last,
                format!(
                    "Content-Type: image/jpeg\r\nContent-Length: 18\r\nContent-Length: 18\r\n\
                     X-Timestamp: STAMP\r\n\r\nJPEG\0\0\0\0\0\0\0\0\r\njunk\r\n\r\n--{b}--\r\n"
                ),
            ),
        ] {
            let framed = faults(given).framing().part(part, &boundary, offset).unwrap();
            assert_eq!(wire(&framed), want, "{given:?}");
            assert_eq!(framed.content_type(), "image/jpeg");
        }
    }

    #[test]
    fn the_head_opening_and_closing_follow_the_faults() {
        let boundary = Boundary::absent_from([&b"x"[..]].into_iter()).unwrap();
        let b = boundary.as_str();
        let closing = boundary.closing("image/jpeg");
        let plain = faults(&[]).framing();
        assert_eq!(plain.boundary_param(&boundary), b);
        assert_eq!(plain.opening(&boundary), boundary.opening());
        assert_eq!(plain.closing(&closing, &boundary), closing);
        assert_eq!(
            plain.closing(boundary.close_delimiter().as_bytes(), &boundary),
            boundary.close_delimiter().as_bytes()
        );
        let odd = faults(&[
            "dashed_boundary",
            "quoted_boundary",
            "no_first_boundary",
            "lf_only",
        ])
        .framing();
        assert_eq!(odd.boundary_param(&boundary), format!("\"--{b}\""));
        assert_eq!(odd.opening(&boundary), b"");
        assert_eq!(
            odd.closing(&closing, &boundary),
            format!("Content-Type: image/jpeg\nContent-Length: 0\n\n\n--{b}--\n").as_bytes()
        );
        assert_eq!(faults(&["no_close"]).framing().closing(&closing, &boundary), b"");
        let chunked = faults(&["chunked"]).framing();
        assert_eq!(
            chunked.head_extra(true, "X: y\r\n"),
            "Transfer-Encoding: chunked\r\nX: y\r\n"
        );
        assert_eq!(chunked.head_extra(false, "X: y\r\n"), "X: y\r\n");
    }
}
