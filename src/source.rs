//! Streams: what a path serves, as parts encoded once at start-up.
//!
//! A stream is a timeline of parts, each with the delay that follows it. Every connection
//! walks the same timeline from its own start: part `k` is due at start + the sum of the
//! delays before it, whatever time the earlier writes took, so lateness never accumulates.
//! The connections share the encoded parts (`Rc`); a connection holds only its position.

use std::cell::Cell;
use std::io;
use std::ops::Deref;
use std::rc::Rc;

use crate::clock::{Micros, ms};
use crate::http::{self, Version};
use crate::multipart::{Boundary, Part, Then};

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
pub struct Step {
    pub part: Rc<Part>,
    pub delay: Micros,
}

#[derive(Debug)]
enum Timeline {
    /// Fixed parts, played once (the last one carries the closing delimiter) or, with
    /// `repeat`, over and over until the client leaves.
    Steps { steps: Vec<Step>, repeat: bool },
    /// `count` parts of one deterministic body, for benchmark harnesses: two encodings
    /// serve any count.
    Synthetic { step: Step, last: Step, count: u64 },
}

/// What one path serves: response heads, framing and the timeline, all encoded once.
#[derive(Debug)]
pub struct Stream {
    /// Clients watching now (see [`Viewer`]).
    viewers: Cell<u64>,
    boundary: Boundary,
    heads: [Rc<[u8]>; 2],
    opening: Rc<[u8]>,
    closing: Rc<[u8]>,
    timeline: Timeline,
}

impl Stream {
    /// A stream of fixed parts, played once, or repeated forever when `repeat`.
    /// `extra`: header lines every response head carries (CORS).
    pub fn scripted(parts: &[PartSpec], repeat: bool, extra: &str) -> io::Result<Stream> {
        let boundary = Boundary::absent_from(parts.iter().map(|p| &p.body[..]))?;
        let steps = parts
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let then = if !repeat && i + 1 == parts.len() {
                    Then::End
                } else {
                    Then::More
                };
                Step {
                    part: Rc::new(Part::encode(&boundary, &spec.content_type, &spec.body, then)),
                    delay: ms(spec.delay_ms),
                }
            })
            .collect();
        Ok(Stream::framed(boundary, Timeline::Steps { steps, repeat }, extra))
    }

    /// `count` parts of `size` deterministic bytes, `interval_ms` apart.
    pub fn synthetic(count: u64, size: usize, interval_ms: u64, extra: &str) -> io::Result<Stream> {
        let body = synthetic_body(size);
        let boundary = Boundary::absent_from([&body[..]].into_iter())?;
        let step = |then| Step {
            part: Rc::new(Part::encode(&boundary, "application/octet-stream", &body, then)),
            delay: ms(interval_ms),
        };
        let timeline = Timeline::Synthetic {
            step: step(Then::More),
            last: step(Then::End),
            count,
        };
        Ok(Stream::framed(boundary, timeline, extra))
    }

    fn framed(boundary: Boundary, timeline: Timeline, extra: &str) -> Stream {
        let head = |version| Rc::from(http::stream_head(version, &boundary, extra).into_bytes());
        Stream {
            viewers: Cell::new(0),
            heads: [head(Version::Http10), head(Version::Http11)],
            opening: Rc::from(boundary.opening()),
            closing: Rc::from(boundary.closing()),
            boundary,
            timeline,
        }
    }

    pub fn viewers(&self) -> u64 {
        self.viewers.get()
    }

    pub fn boundary(&self) -> &Boundary {
        &self.boundary
    }

    /// The response head (status line and headers) for a client of `version`.
    pub fn head(&self, version: Version) -> &Rc<[u8]> {
        &self.heads[version as usize]
    }

    /// `--B\r\n`, sent once after the head.
    pub fn opening(&self) -> &Rc<[u8]> {
        &self.opening
    }

    /// `\r\n--B--\r\n`, to end the stream early after a part's delimiter.
    pub fn closing(&self) -> &Rc<[u8]> {
        &self.closing
    }

    /// Part `index` of the timeline and the delay after it; `None` past the end.
    pub fn step(&self, index: u64) -> Option<&Step> {
        match &self.timeline {
            Timeline::Steps { steps, repeat } => {
                let index = if *repeat && !steps.is_empty() {
                    index % steps.len() as u64
                } else {
                    index
                };
                steps.get(usize::try_from(index).ok()?)
            }
            Timeline::Synthetic { step, last, count } => match index + 1 {
                n if n < *count => Some(step),
                n if n == *count => Some(last),
                _ => None,
            },
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

/// Deterministic, recognisable filler: the bytes `0, 1, …, 250, 0, 1, …` (251 is prime,
/// so the pattern does not line up with power-of-two buffer sizes).
pub fn synthetic_body(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// The origin's demo, part for part and delay for delay (about 6.4 s in all).
pub fn demo_parts() -> Vec<PartSpec> {
    const PNG: &[u8] = include_bytes!("demo.png");
    let mut parts = Vec::with_capacity(15);
    for _ in 0..3 {
        parts.push(PartSpec::new("text/plain", "Hello,       text       ", 500));
        parts.push(PartSpec::new("text/plain", "       plain      world!", 500));
    }
    parts.push(PartSpec::new("image/png", PNG, 1000));
    // The "typewriter": 0, 1, … all the words, then all of them again with the image.
    let words = ["Hello,", "the", "<i>wonderful</i>", "world", "of", "HTML!"];
    let heading = |n: usize| format!("<!doctype html><h1>{}</h1>", words[..n].join(" "));
    for n in 0..=words.len() {
        parts.push(PartSpec::new("text/html", heading(n), 300));
    }
    let image = format!(
        "{}\r\n<img src=\"data:image/png;base64,{}\">",
        heading(words.len()),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, PNG)
    );
    parts.push(PartSpec::new("text/html", image, 300));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_has_the_origins_parts_and_delays() {
        let parts = demo_parts();
        assert_eq!(parts.len(), 15);
        let total: u64 = parts.iter().map(|p| p.delay_ms).sum();
        assert_eq!(total, 6400);
        assert_eq!(parts[0].body, b"Hello,       text       ");
        assert_eq!(parts[5].body, b"       plain      world!");
        assert!(parts[6].body.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(parts[7].body, b"<!doctype html><h1></h1>");
        assert_eq!(
            parts[13].body,
            b"<!doctype html><h1>Hello, the <i>wonderful</i> world of HTML!</h1>"
        );
        assert!(parts[14].body.ends_with(b"\">"));
    }

    #[test]
    fn a_scripted_stream_ends_once_or_repeats() {
        let parts = [
            PartSpec::new("text/plain", "a", 1),
            PartSpec::new("text/plain", "b", 2),
        ];
        let once = Stream::scripted(&parts, false, "").unwrap();
        assert_eq!(once.step(1).unwrap().delay, 2000);
        assert!(once.step(1).unwrap().part.halves().1.ends_with(b"--\r\n"));
        assert!(once.step(2).is_none());
        let forever = Stream::scripted(&parts, true, "").unwrap();
        assert_eq!(forever.step(3).unwrap().part.body(), b"b");
        assert!(!forever.step(1).unwrap().part.halves().1.ends_with(b"--\r\n"));
    }

    #[test]
    fn a_synthetic_stream_has_count_parts_and_ends() {
        let stream = Rc::new(Stream::synthetic(3, 600, 0, "X: y\r\n").unwrap());
        assert!(String::from_utf8_lossy(stream.head(Version::Http10)).ends_with("X: y\r\n\r\n"));
        let viewers = [Viewer::new(stream.clone()), Viewer::new(stream.clone())];
        assert_eq!(stream.viewers(), 2);
        drop(viewers);
        assert_eq!(stream.viewers(), 0);
        assert_eq!(stream.step(0).unwrap().part.body(), &synthetic_body(600)[..]);
        assert!(stream.step(2).unwrap().part.halves().1.ends_with(b"--\r\n"));
        assert!(stream.step(3).is_none());
        assert_eq!(synthetic_body(253)[251..], [0, 1]);
    }
}

/// What `--stream PATH=SPEC` asks for: `KIND[:ARG][,key=value…]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamSpec {
    Demo,
    Synthetic {
        parts: u64,
        size: usize,
        interval_ms: u64,
    },
}

/// The largest synthetic part: it is held in memory once, shared by all clients.
const MAX_SYNTHETIC_SIZE: usize = 64 << 20;

impl StreamSpec {
    pub fn parse(text: &str) -> Result<StreamSpec, String> {
        let (kind, args) = text.split_once(':').unwrap_or((text, ""));
        match kind {
            "demo" if args.is_empty() => Ok(StreamSpec::Demo),
            "demo" => Err("demo takes no arguments".into()),
            "synthetic" => parse_synthetic(args),
            _ => Err(format!(
                "unknown stream kind '{kind}' (expected demo or synthetic)"
            )),
        }
    }

    /// Encodes the stream; `extra`: header lines every response head carries.
    pub fn build(&self, extra: &str) -> io::Result<Stream> {
        match *self {
            StreamSpec::Demo => Stream::scripted(&demo_parts(), false, extra),
            StreamSpec::Synthetic {
                parts,
                size,
                interval_ms,
            } => Stream::synthetic(parts, size, interval_ms, extra),
        }
    }
}

fn parse_synthetic(args: &str) -> Result<StreamSpec, String> {
    let (mut parts, mut size, mut interval_ms) = (None, None, None);
    for pair in args.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("synthetic: expected key=value, got '{pair}'"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("synthetic: {key} must be a whole number, got '{value}'"))
        };
        match key {
            "parts" => parts = Some(number()?),
            "size" => size = Some(number()?),
            "interval" => interval_ms = Some(number()?),
            _ => {
                return Err(format!(
                    "synthetic: unknown key '{key}' (expected parts, size, interval)"
                ));
            }
        }
    }
    let missing = |name| format!("synthetic: {name}= is required");
    let parts = parts.ok_or_else(|| missing("parts"))?;
    let size = size.ok_or_else(|| missing("size"))?;
    let interval_ms = interval_ms.ok_or_else(|| missing("interval"))?;
    if parts == 0 {
        return Err("synthetic: parts must be at least 1".into());
    }
    if size > MAX_SYNTHETIC_SIZE as u64 {
        return Err(format!("synthetic: size must be at most {MAX_SYNTHETIC_SIZE}"));
    }
    if interval_ms > 86_400_000 {
        return Err("synthetic: interval must be at most a day (86400000 ms)".into());
    }
    Ok(StreamSpec::Synthetic {
        parts,
        size: size as usize,
        interval_ms,
    })
}

#[cfg(test)]
mod spec_tests {
    use super::*;

    #[test]
    fn parses_the_kinds() {
        assert_eq!(StreamSpec::parse("demo"), Ok(StreamSpec::Demo));
        assert_eq!(
            StreamSpec::parse("synthetic:parts=3,size=10,interval=0"),
            Ok(StreamSpec::Synthetic {
                parts: 3,
                size: 10,
                interval_ms: 0
            })
        );
    }

    #[test]
    fn explains_what_is_wrong() {
        for (spec, says) in [
            ("video", "unknown stream kind 'video'"),
            ("demo:x", "demo takes no arguments"),
            ("synthetic:parts=3,size=10", "interval= is required"),
            (
                "synthetic:parts=x,size=1,interval=1",
                "parts must be a whole number",
            ),
            ("synthetic:parts=0,size=1,interval=1", "at least 1"),
            ("synthetic:parts=1,size=1,interval=1,fps=2", "unknown key 'fps'"),
            ("synthetic:parts", "expected key=value"),
        ] {
            let err = StreamSpec::parse(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }
}
