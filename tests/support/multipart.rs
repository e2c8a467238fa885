//! The one strict reader of `multipart/x-mixed-replace` bodies: [`PartReader`], part by
//! part as they arrive, and [`parse_all`] on top of it for a body already read.
//!
//! Every byte must be where RFC 2046 and the server's framing put it (CRLF everywhere):
//!
//! ```text
//! --B                                  the opening delimiter, nothing before it
//! Content-Type: T                      ┐ a part: exactly these three headers, in this
//! Content-Length: N                    │ order, and in a numbered stream (testcard, live)
//! X-Timestamp: SECONDS.MICROS          │ `X-Frame` after them; N bytes of body (which
//! X-Frame: DIGITS                      │ never hold the delimiter), then at once CRLF--B
//!                                      │ and CRLF for another part or --CRLF for the
//! <N bytes>                            ┘ last one
//! ```
//!
//! Two more shapes, and nothing else:
//! - a part with only `Content-Type`, its body running to the next delimiter: a live
//!   frame whose header block went out ahead of it (`?advance_headers=1`);
//! - an empty final part, a graceful stop ([`Item::Stopped`]): `Content-Type` of the
//!   stream's type, `Content-Length: 0` (absent when its header went out ahead), no
//!   stamp, no body, and the closing delimiter.
//!
//! After the closing delimiter the server must close the connection: nothing may follow,
//! and a reset instead of the EOF is an error.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::http::{self, Response, bad};
use super::{IO_TIMEOUT, now_us};

/// Longest part header line read before giving up.
const MAX_LINE: u64 = 16 * 1024;
/// Most header lines in one part (the server sends at most four).
const MAX_HEADERS: usize = 8;
/// Largest part body accepted, and most parts read by [`PartReader::read_to_end`].
const MAX_BODY: usize = 256 << 20;
const MAX_PARTS: usize = 1_000_000;

/// One part as read from the wire.
#[derive(Debug)]
pub struct Part {
    /// The header lines, in order.
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
    /// `X-Timestamp` in microseconds since the Unix epoch: when the part was due.
    pub stamp: Option<u64>,
    /// `X-Frame`, in a numbered stream.
    pub frame: Option<u64>,
    /// Its delimiter was the closing one (`--B--`).
    pub last: bool,
    /// When its header block had been read, in microseconds since the epoch.
    pub head_at_us: u64,
    /// When its body and delimiter had been read.
    pub arrived: Instant,
}

impl Part {
    /// The `X-Timestamp`, which every part but an ahead-of-time live frame carries.
    pub fn stamp_us(&self) -> u64 {
        self.stamp
            .unwrap_or_else(|| panic!("a part without X-Timestamp: {:?}", self.headers))
    }

    /// The `X-Frame`, which every part of a numbered stream carries.
    pub fn frame_number(&self) -> u64 {
        self.frame
            .unwrap_or_else(|| panic!("a part without X-Frame: {:?}", self.headers))
    }
}

/// What a [`PartReader`] read next.
#[derive(Debug)]
pub enum Item {
    Part(Part),
    /// After the last part (`--B--`), the connection closed.
    End,
    /// The empty final part of a stream ended early, then the close.
    Stopped(Part),
}

/// A whole stream: its parts, and the empty final part if it was stopped early.
#[derive(Debug)]
pub struct Parts {
    pub parts: Vec<Part>,
    pub stopped: Option<Part>,
}

/// Reads a multipart body part by part, checking the framing exactly (module docs).
#[derive(Debug)]
pub struct PartReader<R> {
    reader: BufReader<Tap<R>>,
    boundary: String,
    started: bool,
    /// The previous part was the last one: next comes the close.
    last_seen: bool,
    ended: bool,
    closed_at: Option<Instant>,
}

/// Passes reads through, keeping a copy of the bytes once [`PartReader::record`] asks.
#[derive(Debug)]
struct Tap<R> {
    inner: R,
    raw: Option<Vec<u8>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(raw) = &mut self.raw {
            raw.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

impl<R: Read> PartReader<R> {
    /// Reads the body in `inner` (its first byte the opening delimiter).
    pub fn new(inner: R, boundary: &str) -> Self {
        PartReader::buffered(BufReader::new(Tap { inner, raw: None }), boundary)
    }

    fn buffered(reader: BufReader<Tap<R>>, boundary: &str) -> Self {
        PartReader {
            reader,
            boundary: boundary.to_owned(),
            started: false,
            last_seen: false,
            ended: false,
            closed_at: None,
        }
    }

    /// Keeps every byte of the body from here on, for [`PartReader::raw`]; before the
    /// first part is read, so the copy is the whole body.
    pub fn record(mut self) -> Self {
        assert!(!self.started, "record before reading");
        let buffered = self.reader.buffer().to_vec();
        self.reader.get_mut().raw = Some(buffered);
        self
    }

    /// The body as read so far (see [`PartReader::record`]).
    pub fn raw(&self) -> &[u8] {
        self.reader.get_ref().raw.as_deref().expect("a recording reader")
    }

    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader.get_mut().inner
    }

    /// The connection itself, to close it some other way ([`http::reset`]).
    pub fn into_inner(self) -> R {
        self.reader.into_inner().inner
    }

    /// When the close after the closing delimiter was read.
    pub fn closed_at(&self) -> Option<Instant> {
        self.closed_at
    }

    /// The next part, or how the stream ended.
    pub fn next(&mut self) -> io::Result<Item> {
        if self.ended {
            return Err(bad("read past the end of the stream".into()));
        }
        if self.last_seen {
            self.expect_close()?;
            return Ok(Item::End);
        }
        if !self.started {
            self.started = true;
            self.expect(
                format!("--{}\r\n", self.boundary).as_bytes(),
                "the opening delimiter",
            )?;
        }
        let headers = self.headers()?;
        let head_at_us = now_us();
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        let value = |i: usize| headers[i].1.as_str();
        let (body, stamp, frame, stop) = match names[..] {
            ["Content-Type", "Content-Length", "X-Timestamp", ref numbered @ ..] => {
                let length = content_length(value(1))?;
                let stamp =
                    parse_stamp(value(2)).ok_or_else(|| bad(format!("X-Timestamp {:?}", value(2))))?;
                let frame = match numbered {
                    ["X-Frame"] => Some(frame_number(value(3))?),
                    [] => None,
                    _ => return Err(bad(format!("a part with headers {names:?}"))),
                };
                (self.body(length)?, Some(stamp), frame, false)
            }
            ["Content-Type", "Content-Length"] if value(1) == "0" => (Vec::new(), None, None, true),
            ["Content-Type"] => {
                let body = self.body_to_delimiter()?;
                let stop = body.is_empty();
                (body, None, None, stop)
            }
            _ => return Err(bad(format!("a part with headers {names:?}"))),
        };
        let last = self.delimiter_end()?;
        let part = Part {
            content_type: value(0).to_owned(),
            headers,
            body,
            stamp,
            frame,
            last,
            head_at_us,
            arrived: Instant::now(),
        };
        if stop {
            if !last {
                return Err(bad(format!(
                    "an empty unstamped part that is not the last: {part:?}"
                )));
            }
            self.expect_close()?;
            return Ok(Item::Stopped(part));
        }
        self.last_seen = last;
        Ok(Item::Part(part))
    }

    /// Every part to the end of the stream, and the close.
    pub fn read_to_end(&mut self) -> io::Result<Parts> {
        let mut parts = Vec::new();
        for _ in 0..MAX_PARTS {
            match self.next()? {
                Item::Part(part) => parts.push(part),
                Item::End => return Ok(Parts { parts, stopped: None }),
                Item::Stopped(part) => {
                    return Ok(Parts {
                        parts,
                        stopped: Some(part),
                    });
                }
            }
        }
        Err(bad(format!("more than {MAX_PARTS} parts")))
    }

    /// The header lines of a part, up to its blank line.
    fn headers(&mut self) -> io::Result<Vec<(String, String)>> {
        let mut headers = Vec::new();
        loop {
            let mut line = Vec::new();
            (&mut self.reader).take(MAX_LINE).read_until(b'\n', &mut line)?;
            if line.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF in a part's headers",
                ));
            }
            let text = line
                .strip_suffix(b"\r\n")
                .filter(|text| !text.contains(&b'\r'))
                .ok_or_else(|| bad(format!("a part header line {:?}", String::from_utf8_lossy(&line))))?;
            if text.is_empty() {
                return Ok(headers);
            }
            let text = std::str::from_utf8(text).map_err(|e| bad(format!("a part header line: {e}")))?;
            let (name, value) = text
                .split_once(": ")
                .filter(|(_, value)| !value.is_empty() && value.trim() == *value)
                .ok_or_else(|| bad(format!("a part header line {text:?}")))?;
            headers.push((name.to_owned(), value.to_owned()));
            if headers.len() > MAX_HEADERS {
                return Err(bad(format!("more than {MAX_HEADERS} part headers")));
            }
        }
    }

    /// `length` bytes of body, which must not hold the delimiter.
    fn body(&mut self, length: usize) -> io::Result<Vec<u8>> {
        if length > MAX_BODY {
            return Err(bad(format!("a part of {length} bytes")));
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        let delimiter = format!("\r\n--{}", self.boundary);
        if find(&body, delimiter.as_bytes()).is_some() {
            return Err(bad("a part body holds the delimiter".into()));
        }
        Ok(body)
    }

    /// The body of a part without `Content-Length`: everything up to `CRLF--B`, which is
    /// left to read.
    fn body_to_delimiter(&mut self) -> io::Result<Vec<u8>> {
        let delimiter = format!("\r\n--{}", self.boundary);
        let mut body = Vec::new();
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside a part"));
            }
            // Where a delimiter split over two reads may start.
            let from = body.len().saturating_sub(delimiter.len() - 1);
            let before = body.len();
            body.extend_from_slice(chunk);
            let took = chunk.len();
            if let Some(at) = find(&body[from..], delimiter.as_bytes()) {
                let end = from + at;
                self.reader.consume(end - before);
                body.truncate(end);
                return Ok(body);
            }
            self.reader.consume(took);
            if body.len() > MAX_BODY {
                return Err(bad("a part without Content-Length that never ends".into()));
            }
        }
    }

    /// The delimiter after a body; returns whether it is the closing one.
    fn delimiter_end(&mut self) -> io::Result<bool> {
        self.expect(
            format!("\r\n--{}", self.boundary).as_bytes(),
            "the delimiter after a body",
        )?;
        let mut after = [0u8; 2];
        self.reader.read_exact(&mut after)?;
        match &after {
            b"\r\n" => Ok(false),
            b"--" => self
                .expect(b"\r\n", "CRLF after the closing delimiter")
                .map(|()| true),
            other => Err(bad(format!("{other:?} after a delimiter"))),
        }
    }

    fn expect(&mut self, bytes: &[u8], what: &str) -> io::Result<()> {
        let mut got = vec![0; bytes.len()];
        self.reader.read_exact(&mut got)?;
        if got != bytes {
            return Err(bad(format!(
                "expected {what} {:?}, got {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&got)
            )));
        }
        Ok(())
    }

    /// After the closing delimiter: nothing more, then a clean EOF.
    fn expect_close(&mut self) -> io::Result<()> {
        self.ended = true;
        let mut extra = [0u8; 64];
        match self.reader.read(&mut extra)? {
            0 => {
                self.closed_at = Some(Instant::now());
                Ok(())
            }
            n => Err(bad(format!(
                "bytes after the closing delimiter: {:?}",
                String::from_utf8_lossy(&extra[..n])
            ))),
        }
    }
}

/// A `Content-Length` value: digits, no leading zero.
fn content_length(text: &str) -> io::Result<usize> {
    Some(text)
        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()) && (*t == "0" || !t.starts_with('0')))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad(format!("Content-Length {text:?}")))
}

/// `X-Frame`: digits, no leading zero but for 0 itself, within a u64.
fn frame_number(text: &str) -> io::Result<u64> {
    Some(text)
        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()) && (*t == "0" || !t.starts_with('0')))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad(format!("X-Frame {text:?}")))
}

/// `SECONDS.MICROS` (exactly six digits after the dot) in microseconds.
pub fn parse_stamp(text: &str) -> Option<u64> {
    let (secs, micros) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || !digits(micros) || micros.len() != 6 {
        return None;
    }
    secs.parse::<u64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(micros.parse().ok()?)
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A whole multipart body, already read.
pub fn parse_all(body: &[u8], boundary: &str) -> io::Result<Parts> {
    PartReader::new(body, boundary).read_to_end()
}

/// A whole body another client wrote out (curl's output, say), its boundary taken from
/// its opening delimiter; any framing error fails the test, naming `whose` output.
pub fn parse_written(body: &[u8], whose: &str) -> Parts {
    let first_line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let boundary = std::str::from_utf8(first_line)
        .ok()
        .and_then(|line| line.strip_prefix("--")?.strip_suffix('\r'))
        .unwrap_or_else(|| panic!("{whose} output does not open with a delimiter"));
    parse_all(body, boundary).unwrap_or_else(|e| panic!("{whose} output: {e}"))
}

/// Reads the head of a stream response on `stream` (its request sent); checks it
/// ([`http::check_stream_head`]) and returns the reader of its parts.
pub fn over<S: Read>(stream: S) -> io::Result<(PartReader<S>, Response)> {
    let mut reader = BufReader::new(Tap {
        inner: stream,
        raw: None,
    });
    let head = http::read_head(&mut reader)?;
    if head.status != 200 {
        return Err(bad(format!("the stream was answered {head:?}")));
    }
    let boundary = http::check_stream_head(&head);
    Ok((PartReader::buffered(reader, &boundary), head))
}

/// Sends `request` (a stream request, maybe with more after it) and reads the head.
pub fn open_with(addr: SocketAddr, request: &[u8]) -> io::Result<(PartReader<TcpStream>, Response)> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(request)?;
    over(stream)
}

/// `GET target`: its parts.
pub fn open(addr: SocketAddr, target: &str) -> PartReader<TcpStream> {
    let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n");
    open_with(addr, request.as_bytes())
        .unwrap_or_else(|e| panic!("GET {target}: {e}"))
        .0
}

/// A stream read to its close, all of it kept.
#[derive(Debug)]
pub struct Fetched {
    /// Just before the request was sent: no part can be due before this.
    pub sent_at: Instant,
    pub head: Response,
    pub boundary: String,
    pub parts: Vec<Part>,
    pub stopped: Option<Part>,
    /// The whole multipart body.
    pub raw: Vec<u8>,
    pub closed_at: Instant,
}

/// Sends `request` and reads its stream to the close; any framing error fails the test.
pub fn fetch_stream(addr: SocketAddr, request: &[u8]) -> Fetched {
    let sent_at = Instant::now();
    let shown = String::from_utf8_lossy(request);
    let (reader, head) = open_with(addr, request).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
    Fetched::read(sent_at, reader, head)
}

impl Fetched {
    /// Reads the stream of `reader`, just opened (its request sent at `sent_at`, its
    /// `head` read), to the close; any framing error fails the test.
    pub fn read(sent_at: Instant, reader: PartReader<TcpStream>, head: Response) -> Fetched {
        let mut reader = reader.record();
        let Parts { parts, stopped } = reader
            .read_to_end()
            .unwrap_or_else(|e| panic!("{}: {e}", head.status_line));
        Fetched {
            sent_at,
            head,
            boundary: reader.boundary().to_owned(),
            parts,
            stopped,
            raw: reader.raw().to_vec(),
            closed_at: reader.closed_at().expect("closed after its end"),
        }
    }
}
