//! Incremental, strict parser for one HTTP/1.x `multipart/x-mixed-replace` response, as the
//! load generator receives it.
//!
//! Bytes go in as they come off the socket, split anywhere; [`Parser::feed`] reports each
//! part the moment its body is complete and says when the closing delimiter
//! `--BOUNDARY--` has been seen. Invariants:
//!
//! - Memory per response is bounded and small: the only buffer holds one header line
//!   (at most [`MAX_LINE`] bytes). Part bodies are never buffered: with a `Content-Length`
//!   they are counted and discarded; without one the parser scans for `CRLF--BOUNDARY` and
//!   keeps only how many bytes of the delimiter it has matched so far (the tail window),
//!   never the bytes themselves.
//! - Strict framing: lines end in CRLF, the status line is `HTTP/1.0` or `HTTP/1.1`, the
//!   Content-Type is `multipart/x-mixed-replace` with a `boundary` parameter (quoted or
//!   not), a part with a `Content-Length` is followed directly by the delimiter. Anything
//!   else is an [`Error`], never a guess. The transfer coding may be `chunked` (what Node's
//!   `http` module sends) or none (read to the closing delimiter).
//! - The parser reads no clock and does no I/O: the caller timestamps the `on_part`
//!   callback, so lateness is measured at the moment the part's last byte was parsed.
//! - A part's `X-Timestamp` and `X-Frame` are read, never required: one that is missing
//!   or unreadable is `None` in its [`PartHeaders`], and the part still counts.

use std::fmt;

use crate::wire::{self, ChunkDecoder, Piece, decimal, trim};

/// Longest header line accepted, in the response head or in a part's headers.
pub const MAX_LINE: usize = 8 * 1024;
/// Most header lines accepted in the response head or in one part's headers.
pub const MAX_HEADERS: usize = 100;
/// Longest boundary accepted. RFC 2046 allows 70; being lenient here costs nothing since
/// the boundary is the only per-response allocation that is kept.
pub const MAX_BOUNDARY: usize = 200;

/// Why a response was rejected. Small and `Copy`, like `httparse::Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The status line carried a code other than 200.
    Status(u16),
    /// The bytes are not a well-formed `multipart/x-mixed-replace` response.
    Framing(&'static str),
    /// A chunked body ended (last chunk) before the closing delimiter.
    Truncated,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status(code) => write!(f, "status {code}"),
            Error::Framing(what) => write!(f, "bad framing: {what}"),
            Error::Truncated => f.write_str("body ended before the closing delimiter"),
        }
    }
}

impl std::error::Error for Error {}

/// What a [`Parser::feed`] reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// The closing delimiter has been seen; bytes after it (the epilogue) are ignored.
    Complete,
}

/// The part headers the load generator reads, reported when the part's body completes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartHeaders {
    /// `X-Timestamp`, in microseconds since the Unix epoch: when the part was due.
    pub timestamp: Option<u64>,
    /// `X-Frame`: the frame's number, for counting the frames a client skipped.
    pub frame: Option<u64>,
}

/// One response's parser. See the module docs for its invariants.
#[derive(Debug)]
pub struct Parser {
    state: State,
    transfer: Transfer,
    /// `CRLF--boundary`; empty until the head has been parsed.
    delim: Box<[u8]>,
    /// The header line being collected.
    line: Vec<u8>,
    /// Header lines seen in the current head (response or part).
    lines: usize,
    /// Response head: whether a usable Content-Type was seen.
    multipart: bool,
    /// Current part: `X-Timestamp` and `X-Frame`.
    headers: PartHeaders,
    /// Current part: `Content-Length`.
    length: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    StatusLine,
    Header,
    /// Before the first delimiter; `matched` bytes of `delim` are the tail seen so far.
    Preamble {
        matched: usize,
    },
    /// Right after `CRLF--boundary`: `--` closes, padding + CRLF opens a part.
    After(After),
    PartHeader,
    /// A body with a Content-Length.
    Body {
        remaining: u64,
    },
    /// The delimiter that must follow a Content-Length body.
    Expect {
        matched: usize,
    },
    /// A body without a Content-Length.
    Scan {
        matched: usize,
    },
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Start,
    Dash,
    Padding,
    Cr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transfer {
    /// Body bytes are the multipart entity itself.
    Identity,
    Chunked(ChunkDecoder),
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    pub fn new() -> Self {
        Parser {
            state: State::StatusLine,
            transfer: Transfer::Identity,
            delim: Box::default(),
            line: Vec::new(),
            lines: 0,
            multipart: false,
            headers: PartHeaders::default(),
            length: None,
        }
    }

    /// Whether the response head (status line and headers) has been parsed.
    pub fn head_done(&self) -> bool {
        !matches!(self.state, State::StatusLine | State::Header)
    }

    /// The boundary, once the head has been parsed.
    pub fn boundary(&self) -> &[u8] {
        self.delim.get(4..).unwrap_or_default()
    }

    /// Parses `data`, calling `on_part` with the part's headers for every part whose body
    /// completes inside it. After an `Err` the parser must not be fed again.
    pub fn feed(&mut self, mut data: &[u8], on_part: &mut impl FnMut(PartHeaders)) -> Result<Parsed, Error> {
        // After the closing delimiter everything is epilogue, chunk framing included: what
        // a later read brings is ignored as the rest of the read that completed it was.
        if self.state == State::Done {
            return Ok(Parsed::Complete);
        }
        while !self.head_done() {
            if data.is_empty() {
                return Ok(Parsed::Partial);
            }
            let used = self.head(data)?;
            data = &data[used..];
        }
        match self.transfer {
            Transfer::Identity => self.body(data, on_part),
            Transfer::Chunked(decoder) => self.chunked(decoder, data, on_part),
        }
    }

    /// Consumes response-head bytes from `data` (at most one line); returns how many.
    fn head(&mut self, data: &[u8]) -> Result<usize, Error> {
        let (used, complete) = take_line(&mut self.line, data)?;
        if !complete {
            return Ok(used);
        }
        let mut line = std::mem::take(&mut self.line);
        let content = &line[..line.len() - 2];
        if self.state == State::StatusLine {
            status_line(content)?;
            self.state = State::Header;
        } else if content.is_empty() {
            // The head's longest line is not worth keeping: `self.line` stays a new Vec.
            return self.end_of_head().map(|()| used);
        } else {
            self.response_header(content)?;
        }
        line.clear();
        self.line = line;
        Ok(used)
    }

    fn response_header(&mut self, line: &[u8]) -> Result<(), Error> {
        self.lines += 1;
        if self.lines > MAX_HEADERS {
            return Err(Error::Framing("too many response headers"));
        }
        let (name, value) = header(line)?;
        if name.eq_ignore_ascii_case(b"content-type") {
            if self.multipart {
                return Err(Error::Framing("two Content-Type headers"));
            }
            let boundary = boundary(value)?;
            let mut delim = Vec::with_capacity(4 + boundary.len());
            delim.extend_from_slice(b"\r\n--");
            delim.extend_from_slice(&boundary);
            self.delim = delim.into_boxed_slice();
            self.multipart = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only `chunked` alone is understood; a compressed stream cannot be framed.
            for coding in value.split(|&b| b == b',') {
                let coding = trim(coding);
                if coding.eq_ignore_ascii_case(b"chunked") && self.transfer == Transfer::Identity {
                    self.transfer = Transfer::Chunked(ChunkDecoder::default());
                } else if !coding.eq_ignore_ascii_case(b"identity") {
                    return Err(Error::Framing("unsupported Transfer-Encoding"));
                }
            }
        }
        Ok(())
    }

    fn end_of_head(&mut self) -> Result<(), Error> {
        if !self.multipart {
            return Err(Error::Framing("no multipart/x-mixed-replace Content-Type"));
        }
        self.lines = 0;
        // The first delimiter may open the body with no CRLF before it (RFC 2046 5.1.1):
        // start as if a CRLF had just been matched.
        self.state = State::Preamble { matched: 2 };
        Ok(())
    }

    /// Decodes chunked transfer coding and feeds the payload to `body`.
    fn chunked(
        &mut self,
        mut decoder: ChunkDecoder,
        mut data: &[u8],
        on_part: &mut impl FnMut(PartHeaders),
    ) -> Result<Parsed, Error> {
        let mut status = Parsed::Partial;
        while !data.is_empty() && status == Parsed::Partial {
            let (used, piece) = decoder.decode(data).map_err(Error::Framing)?;
            data = &data[used..];
            match piece {
                Piece::Data(payload) => status = self.body(payload, on_part)?,
                Piece::Last => return Err(Error::Truncated),
                Piece::Framing => {}
            }
        }
        self.transfer = Transfer::Chunked(decoder);
        Ok(status)
    }

    /// Parses multipart entity bytes. Returns `Complete` at the closing delimiter.
    fn body(&mut self, data: &[u8], on_part: &mut impl FnMut(PartHeaders)) -> Result<Parsed, Error> {
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            match self.state {
                State::Preamble { mut matched } | State::Scan { mut matched } => {
                    let in_part = matches!(self.state, State::Scan { .. });
                    match scan(&self.delim, rest, &mut matched) {
                        Some(end) => {
                            i += end;
                            if in_part {
                                on_part(self.headers);
                            }
                            self.state = State::After(After::Start);
                        }
                        None => {
                            i = data.len();
                            self.state = if in_part {
                                State::Scan { matched }
                            } else {
                                State::Preamble { matched }
                            };
                        }
                    }
                }
                State::After(after) => {
                    let b = rest[0];
                    i += 1;
                    self.state = match (after, b) {
                        (After::Start, b'-') => State::After(After::Dash),
                        (After::Dash, b'-') => State::Done,
                        (After::Start | After::Padding, b' ' | b'\t') => State::After(After::Padding),
                        (After::Start | After::Padding, b'\r') => State::After(After::Cr),
                        (After::Cr, b'\n') => {
                            self.headers = PartHeaders::default();
                            self.length = None;
                            self.lines = 0;
                            State::PartHeader
                        }
                        _ => return Err(Error::Framing("bad bytes after a delimiter")),
                    };
                }
                State::PartHeader => {
                    let (used, complete) = take_line(&mut self.line, rest)?;
                    i += used;
                    if complete {
                        self.part_header(on_part)?;
                    }
                }
                State::Body { remaining } => {
                    let n = remaining.min(rest.len() as u64);
                    i += n as usize;
                    self.state = if remaining == n {
                        on_part(self.headers);
                        State::Expect { matched: 0 }
                    } else {
                        State::Body {
                            remaining: remaining - n,
                        }
                    };
                }
                State::Expect { matched } => {
                    let n = (self.delim.len() - matched).min(rest.len());
                    if rest[..n] != self.delim[matched..matched + n] {
                        return Err(Error::Framing("part longer than its Content-Length"));
                    }
                    i += n;
                    self.state = if matched + n == self.delim.len() {
                        State::After(After::Start)
                    } else {
                        State::Expect { matched: matched + n }
                    };
                }
                State::Done => break,
                State::StatusLine | State::Header => unreachable!("head is parsed first"),
            }
            if self.state == State::Done {
                break;
            }
        }
        Ok(if self.state == State::Done {
            Parsed::Complete
        } else {
            Parsed::Partial
        })
    }

    /// Handles one complete line of a part's headers (in `self.line`).
    fn part_header(&mut self, on_part: &mut impl FnMut(PartHeaders)) -> Result<(), Error> {
        let line = &self.line[..self.line.len() - 2];
        if line.is_empty() {
            self.state = match self.length {
                Some(0) => {
                    on_part(self.headers);
                    State::Expect { matched: 0 }
                }
                Some(remaining) => State::Body { remaining },
                None => State::Scan { matched: 0 },
            };
        } else {
            self.lines += 1;
            if self.lines > MAX_HEADERS {
                return Err(Error::Framing("too many part headers"));
            }
            let (name, value) = header(line)?;
            if name.eq_ignore_ascii_case(b"content-length") {
                let length = decimal(value, 18).ok_or(Error::Framing("bad part Content-Length"))?;
                if self.length.is_some_and(|l| l != length) {
                    return Err(Error::Framing("two part Content-Lengths"));
                }
                self.length = Some(length);
            } else if name.eq_ignore_ascii_case(b"x-timestamp") {
                // Not framing: a part with an unreadable timestamp only loses its lateness.
                self.headers.timestamp = timestamp_micros(value);
            } else if name.eq_ignore_ascii_case(b"x-frame") {
                self.headers.frame = decimal(value, 20);
            }
        }
        self.line.clear();
        Ok(())
    }
}

/// Appends `data` up to and including the first LF to `line`. Returns the bytes used and
/// whether the line is complete (then it ends in CRLF).
fn take_line(line: &mut Vec<u8>, data: &[u8]) -> Result<(usize, bool), Error> {
    let (used, complete) = match data.iter().position(|&b| b == b'\n') {
        Some(p) => (p + 1, true),
        None => (data.len(), false),
    };
    if line.len() + used > MAX_LINE {
        return Err(Error::Framing("header line too long"));
    }
    line.extend_from_slice(&data[..used]);
    if complete && !line.ends_with(b"\r\n") {
        return Err(Error::Framing("line ends in a bare LF"));
    }
    Ok((used, complete))
}

/// Checks `HTTP/1.x SP 3DIGIT [SP reason]`; only 200 is accepted.
fn status_line(line: &[u8]) -> Result<(), Error> {
    let rest = match line {
        [
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            b'1',
            b'.',
            b'0' | b'1',
            b' ',
            rest @ ..,
        ] => rest,
        _ => return Err(Error::Framing("not an HTTP/1.x status line")),
    };
    let code = match rest {
        [a, b, c] | [a, b, c, b' ', ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(Error::Framing("bad status code")),
    };
    if code == 200 {
        Ok(())
    } else {
        Err(Error::Status(code))
    }
}

/// Splits `name: value`, trimming the value's optional whitespace.
fn header(line: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    wire::header(line).map_err(Error::Framing)
}

/// The boundary of a `multipart/x-mixed-replace` Content-Type value, quoted or not.
fn boundary(value: &[u8]) -> Result<Vec<u8>, Error> {
    const NOT_MULTIPART: Error = Error::Framing("Content-Type is not multipart/x-mixed-replace");
    let (essence, params) = wire::media_type(value);
    if !essence.eq_ignore_ascii_case(b"multipart/x-mixed-replace") {
        return Err(NOT_MULTIPART);
    }
    let found = wire::boundary_param(params).map_err(Error::Framing)?;
    let boundary = found.ok_or(Error::Framing("Content-Type without a boundary"))?;
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Err(Error::Framing("boundary empty or too long"));
    }
    // `scan` relies on the delimiter holding no CR past its first byte. A header value
    // cannot hold CR or LF (checked in `header`), so this holds; keep it explicit.
    debug_assert!(!boundary.contains(&b'\r'));
    Ok(boundary)
}

/// Finds the end of `delim` in `data`, given that the `*matched` bytes before `data` were
/// `delim[..*matched]`. Returns the index just past the delimiter, or `None` with
/// `*matched` updated to the longest delimiter prefix that `data` ends with.
///
/// `delim` is `CRLF--boundary` with no other CR, so on a mismatch the only prefix that
/// can still be under way is the one starting at this byte (if it is a CR): a complete
/// KMP failure table would be all zeros. Outside a match, the search jumps from CR to CR.
fn scan(delim: &[u8], data: &[u8], matched: &mut usize) -> Option<usize> {
    let mut m = *matched;
    let mut i = 0;
    while i < data.len() {
        if m == 0 {
            match data[i..].iter().position(|&b| b == b'\r') {
                Some(p) => i += p,
                None => break,
            }
        }
        let b = data[i];
        i += 1;
        if b == delim[m] {
            m += 1;
            if m == delim.len() {
                *matched = 0;
                return Some(i);
            }
        } else {
            m = usize::from(b == b'\r');
        }
    }
    *matched = m;
    None
}

/// `X-Timestamp: SECONDS[.FRACTION]` (seconds since the Unix epoch) in microseconds;
/// digits past the sixth fractional one are dropped.
pub fn timestamp_micros(value: &[u8]) -> Option<u64> {
    let (secs, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    let secs = decimal(secs, 12)?;
    let mut micros = 0;
    if value.contains(&b'.') {
        if frac.is_empty() || frac.len() > 9 || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for i in 0..6 {
            micros = micros * 10 + frac.get(i).map_or(0, |&d| u64::from(d - b'0'));
        }
    }
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` in order; returns the headers of the parts and the final status.
    fn parse(pieces: &[&[u8]]) -> Result<(Vec<PartHeaders>, Parsed), Error> {
        let mut parser = Parser::new();
        let mut parts = Vec::new();
        let mut status = Parsed::Partial;
        for piece in pieces {
            status = parser.feed(piece, &mut |headers| parts.push(headers))?;
            if status == Parsed::Complete {
                break;
            }
        }
        Ok((parts, status))
    }

    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
        Content-Type: multipart/x-mixed-replace;boundary=\"frame\"\r\n\
        Cache-Control: no-cache\r\n\r\n";

    fn body_mixed() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"--frame\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n");
        v.extend_from_slice(b"X-Timestamp: 1763722800.123456\r\nX-Frame: 7\r\n\r\nhello\r\n--frame\r\n");
        // No Content-Length; the body holds a CR, a CRLF and a near-delimiter.
        v.extend_from_slice(b"x-frame:9\r\ncontent-type: text/plain\r\nx-timestamp: 1763722801.5\r\n\r\n");
        v.extend_from_slice(b"a\rb\r\n--fram\r\n-\r\n--frame \t\r\n");
        // No headers at all, empty body.
        v.extend_from_slice(b"\r\n\r\n--frame\r\n");
        // Content-Length 0; a frame number past u64 is no number.
        v.extend_from_slice(
            b"Content-Length: 0\r\nX-Frame: 99999999999999999999\r\n\r\n\r\n--frame--\r\nepilogue",
        );
        v
    }

    const EXPECTED: [PartHeaders; 4] = [
        PartHeaders {
            timestamp: Some(1_763_722_800_123_456),
            frame: Some(7),
        },
        PartHeaders {
            timestamp: Some(1_763_722_801_500_000),
            frame: Some(9),
        },
        PartHeaders {
            timestamp: None,
            frame: None,
        },
        PartHeaders {
            timestamp: None,
            frame: None,
        },
    ];

    fn stream(head: &[u8], body: &[u8]) -> Vec<u8> {
        [head, body].concat()
    }

    #[test]
    fn whole_stream() {
        let s = stream(HEAD, &body_mixed());
        assert_eq!(parse(&[&s]), Ok((EXPECTED.to_vec(), Parsed::Complete)));
    }

    #[test]
    fn every_split_point_and_byte_by_byte() {
        let s = stream(HEAD, &body_mixed());
        for at in 0..=s.len() {
            let (a, b) = s.split_at(at);
            assert_eq!(
                parse(&[a, b]),
                Ok((EXPECTED.to_vec(), Parsed::Complete)),
                "split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(parse(&bytes), Ok((EXPECTED.to_vec(), Parsed::Complete)));
    }

    #[test]
    fn every_prefix_is_partial() {
        let s = stream(HEAD, &body_mixed());
        let end = s.len() - b"--\r\nepilogue".len();
        for at in 0..end {
            let (_, status) = parse(&[&s[..at]]).unwrap();
            assert_eq!(status, Parsed::Partial, "prefix {at}");
        }
    }

    fn chunk(data: &[u8], pieces: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let size = data.len().div_ceil(pieces).max(1);
        for (i, c) in data.chunks(size).enumerate() {
            if i % 2 == 0 {
                out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            } else {
                out.extend_from_slice(format!("{:X};ext=1\r\n", c.len()).as_bytes());
            }
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    // See: fuzz target load_multipart (2026-11-30): a chunk's bad CRLF after the closing
    // delimiter was an error when it came in a later read, and ignored in the same read.
    #[test]
    fn what_follows_the_closing_delimiter_is_ignored_in_any_read() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
            Content-Type: multipart/x-mixed-replace;boundary=q\r\n\r\n";
        let body = b"--q\r\nContent-Length: 2\r\n\r\nhi\r\n--q--\r\n";
        // The chunk claims two bytes more than it holds: its CRLF check sees "0\r".
        let mut s = head.to_vec();
        s.extend_from_slice(format!("{:x}\r\n", body.len() + 2).as_bytes());
        s.extend_from_slice(body);
        s.extend_from_slice(b"0\r\n\r\n");
        for at in 0..=s.len() {
            let (a, b) = s.split_at(at);
            // Both reads fed, as the load generator feeds what it reads after completion.
            let mut parser = Parser::new();
            let first = parser.feed(a, &mut |_| {});
            let second = parser.feed(b, &mut |_| {});
            assert!(first.is_ok(), "split at {at}: {first:?}");
            assert_eq!(second, Ok(Parsed::Complete), "split at {at}");
        }
    }

    #[test]
    fn chunked_at_every_split_point() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
            content-type: Multipart/X-Mixed-Replace; charset=x; BOUNDARY=frame\r\n\r\n";
        for pieces in [1, 3, 7, 40] {
            let s = stream(head, &chunk(&body_mixed(), pieces));
            for at in 0..=s.len() {
                let (a, b) = s.split_at(at);
                assert_eq!(
                    parse(&[a, b]),
                    Ok((EXPECTED.to_vec(), Parsed::Complete)),
                    "{pieces} chunks, split at {at}"
                );
            }
        }
    }

    #[test]
    fn http10_unquoted_boundary_and_preamble() {
        let s = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b-1\r\n\r\n\
            This is the preamble.\r\n--b-\r\n--b-1\r\nContent-Type: a\r\n\r\nA\r\n--b-1--";
        assert_eq!(parse(&[s]), Ok((vec![PartHeaders::default()], Parsed::Complete)));
    }

    #[test]
    fn the_node_peer_shape() {
        // What `http.createServer` sends: chunked, a quoted boundary, delimiter in the
        // same write as the body, and the terminating chunk later.
        let mut body = Vec::new();
        body.extend_from_slice(b"--boundary-0.5\r\n");
        body.extend_from_slice(b"Content-Type: text/plain\r\n\r\nHello\r\n--boundary-0.5\r\n");
        body.extend_from_slice(b"Content-Type: text/html\r\n\r\n<h1>x</h1>\r\n--boundary-0.5--\r\n");
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=\"boundary-0.5\"\r\n\
            Date: Fri, 21 Nov 2025 10:00:00 GMT\r\nConnection: keep-alive\r\n\
            Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let s = stream(head, &chunk(&body, 2));
        assert_eq!(
            parse(&[&s]),
            Ok((vec![PartHeaders::default(); 2], Parsed::Complete))
        );
    }

    #[test]
    fn errors() {
        let cases: &[(&[u8], Error)] = &[
            (b"HTTP/1.1 503 Service Unavailable\r\n", Error::Status(503)),
            (b"HTTP/1.1 404\r\n\r\n", Error::Status(404)),
            (
                b"HTTP/2 200 OK\r\n",
                Error::Framing("not an HTTP/1.x status line"),
            ),
            (b"HTTP/1.1 2000 OK\r\n", Error::Framing("bad status code")),
            (
                b"HTTP/1.1 200 OK\nContent-Type: x\n\n",
                Error::Framing("line ends in a bare LF"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
                Error::Framing("Content-Type is not multipart/x-mixed-replace"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                Error::Framing("no multipart/x-mixed-replace Content-Type"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace\r\n",
                Error::Framing("Content-Type without a boundary"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=\"x\r\n",
                Error::Framing("unterminated quoted boundary"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\
                  Transfer-Encoding: gzip, chunked\r\n",
                Error::Framing("unsupported Transfer-Encoding"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\r\n\
                  --x\r\nContent-Length: 2\r\n\r\nabc\r\n--x--",
                Error::Framing("part longer than its Content-Length"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\r\n\
                  --x\r\nContent-Length: -2\r\n\r\n",
                Error::Framing("bad part Content-Length"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\r\n\
                  --xy\r\n",
                Error::Framing("bad bytes after a delimiter"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\
                  Transfer-Encoding: chunked\r\n\r\n5\r\n--x\r\n\r\n0\r\n\r\n",
                Error::Truncated,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\
                  Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                Error::Framing("bad chunk size"),
            ),
        ];
        for (input, error) in cases {
            assert_eq!(
                parse(&[input]),
                Err(*error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn long_lines_are_refused_not_buffered() {
        let mut s = b"HTTP/1.1 200 OK\r\nX-Junk: ".to_vec();
        s.resize(s.len() + MAX_LINE, b'a');
        assert_eq!(parse(&[&s]), Err(Error::Framing("header line too long")));
    }

    #[test]
    fn bodies_are_not_buffered() {
        let mut parser = Parser::new();
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\r\n--x\r\n\r\n";
        let mut parts = 0;
        parser.feed(head, &mut |_| parts += 1).unwrap();
        let junk = vec![b'\r'; 1 << 20];
        for _ in 0..8 {
            parser.feed(&junk, &mut |_| parts += 1).unwrap();
        }
        assert!(parser.line.capacity() < 64);
        assert_eq!(
            parser.feed(b"\r\n--x--", &mut |_| parts += 1),
            Ok(Parsed::Complete)
        );
        assert_eq!(parts, 1);
    }

    #[test]
    fn boundary_parameters() {
        let ok: &[(&[u8], &[u8])] = &[
            (b"multipart/x-mixed-replace;boundary=abc", b"abc"),
            (b"multipart/x-mixed-replace; boundary=\"a b;c\"", b"a b;c"),
            (b"multipart/x-mixed-replace ; a=1 ; boundary=\"q\\\"x\";", b"q\"x"),
            (b"MULTIPART/X-MIXED-REPLACE;Boundary=Z", b"Z"),
        ];
        for (value, b) in ok {
            assert_eq!(boundary(value).as_deref(), Ok(*b));
        }
        for value in [
            &b"multipart/mixed; boundary=x"[..],
            b"multipart/x-mixed-replace; boundary=",
            b"multipart/x-mixed-replace; boundary=a; boundary=b",
            b"multipart/x-mixed-replace; =a",
        ] {
            assert!(boundary(value).is_err(), "{:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp_micros(b"1763722800.123456"),
            Some(1_763_722_800_123_456)
        );
        assert_eq!(timestamp_micros(b"1763722800.1"), Some(1_763_722_800_100_000));
        assert_eq!(
            timestamp_micros(b"1763722800.123456789"),
            Some(1_763_722_800_123_456)
        );
        assert_eq!(timestamp_micros(b"1763722800"), Some(1_763_722_800_000_000));
        for bad in [&b""[..], b".5", b"1.", b"1.2.3", b"-1", b"1e9", b"1.1234567890"] {
            assert_eq!(timestamp_micros(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn scan_keeps_only_a_count() {
        let d = b"\r\n--ab";
        let mut m = 0;
        assert_eq!(scan(d, b"xx\r\n-", &mut m), None);
        assert_eq!(m, 3);
        assert_eq!(scan(d, b"\r\r\n--a", &mut m), None);
        assert_eq!(m, 5);
        assert_eq!(scan(d, b"bz", &mut m), Some(1));
        assert_eq!(m, 0);
    }
}

/// The server's part encoder ([`crate::stream::multipart`]) read back through this parser:
/// what one side writes, the other must read, stamp for stamp and byte for byte, however
/// the bytes are split. The load generator measures lateness with these stamps, so a
/// drift between the two sides would skew every report without failing anything else.
#[cfg(test)]
mod server_round_trip {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    use super::*;
    use crate::stream::multipart::{Boundary, Part, Stamp, Then};

    /// The largest stamp the parser reads: 12 digits of seconds (the year 33658).
    const LAST_READABLE_US: u64 = 999_999_999_999_999_999;

    /// A number in `0..n` for `(seed, what)`: std's SipHash with its fixed keys, so the
    /// cases are the same on every run of one toolchain, without a third hand-written
    /// generator in the crate's tests.
    fn pick(seed: u64, what: u64, n: u64) -> u64 {
        let mut hasher = DefaultHasher::new();
        (seed, what).hash(&mut hasher);
        hasher.finish() % n
    }

    #[test]
    fn server_stamps_read_back_to_the_microsecond() {
        let edges = [0, 1, 999_999, 1_000_000, 1_763_722_800_000_042, LAST_READABLE_US];
        let spread = (0..10_000).map(|i| pick(1, i, LAST_READABLE_US + 1));
        for us in edges.into_iter().chain(spread) {
            let stamp = Stamp::new(us, None);
            assert_eq!(timestamp_micros(stamp.as_bytes()), Some(us), "{stamp:?}");
        }
        // Past 12 digits of seconds the parser reads no stamp (the part still counts).
        assert_eq!(
            timestamp_micros(Stamp::new(LAST_READABLE_US + 1, None).as_bytes()),
            None
        );
    }

    /// One part as the server encodes it, and what the parser must read back.
    struct Sent {
        content_type: &'static str,
        body: Vec<u8>,
        stamp: u64,
        frame: Option<u64>,
    }

    /// Bodies rich in what framing trips on: CR, LF, dashes.
    fn body(seed: u64, part: u64) -> Vec<u8> {
        let len = match pick(seed, part, 5) {
            0 => 0,
            1 => 1 + pick(seed, part + 100, 3),
            2 => pick(seed, part + 200, 64),
            _ => pick(seed, part + 300, 3000),
        };
        (0..len)
            .map(|i| b"\r\n-xA\0\xff"[pick(seed, 1000 * part + i, 7) as usize])
            .collect()
    }

    /// The response as the server writes it: a head, the opening delimiter, each part
    /// with its stamp, and the closing delimiter after the last one, or (`stopped`) an
    /// empty final part of the last part's type.
    fn wire(sent: &[Sent], stopped: bool) -> Vec<u8> {
        let boundary = Boundary::absent_from(sent.iter().map(|p| &p.body[..])).unwrap();
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={boundary}\r\n\
             Cache-Control: no-cache, no-store, must-revalidate\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(&boundary.opening());
        for (i, p) in sent.iter().enumerate() {
            let then = if i + 1 == sent.len() && !stopped {
                Then::End
            } else {
                Then::More
            };
            let part = Part::encode(&boundary, p.content_type, &p.body, then);
            let (head, tail) = part.halves();
            out.extend_from_slice(head);
            out.extend_from_slice(Stamp::new(p.stamp, p.frame).as_bytes());
            out.extend_from_slice(tail);
        }
        if stopped {
            let last = sent.last().map_or("text/plain", |p| p.content_type);
            out.extend_from_slice(&boundary.closing(last));
        }
        out
    }

    /// What the parser read of one part, byte by byte: the header lines it consumed, the
    /// body bytes it counted off, its Content-Length, stamp and frame number.
    #[derive(Debug, PartialEq)]
    struct Read {
        headers: Vec<Vec<u8>>,
        body: Vec<u8>,
        length: Option<u64>,
        seen: PartHeaders,
    }

    /// Feeds `wire` a byte at a time, watching the parser's state to see each part.
    fn read_bytewise(wire: &[u8]) -> Vec<Read> {
        let mut parser = Parser::new();
        let (mut headers, mut line, mut body) = (Vec::new(), Vec::new(), Vec::new());
        let mut parts = Vec::new();
        let mut status = Parsed::Partial;
        for &b in wire {
            match parser.state {
                State::PartHeader => {
                    line.push(b);
                    if b == b'\n' {
                        headers.push(std::mem::take(&mut line));
                    }
                }
                State::Body { .. } => body.push(b),
                _ => {}
            }
            let mut done = None;
            status = parser.feed(&[b], &mut |seen| done = Some(seen)).unwrap();
            if let Some(seen) = done {
                parts.push(Read {
                    headers: std::mem::take(&mut headers),
                    body: std::mem::take(&mut body),
                    length: parser.length,
                    seen,
                });
            }
        }
        assert_eq!(status, Parsed::Complete);
        parts
    }

    /// Feeds `wire` in random pieces; returns the part headers reported.
    fn read_in_pieces(wire: &[u8], seed: u64) -> Vec<PartHeaders> {
        let mut parser = Parser::new();
        let mut stamps = Vec::new();
        let mut status = Parsed::Partial;
        let (mut at, mut piece) = (0, 0);
        while at < wire.len() {
            let most = [1, 7, 100, 4096, wire.len()][pick(seed, 10_000 + piece, 5) as usize];
            let end = (at + 1 + pick(seed, 20_000 + piece, most as u64) as usize).min(wire.len());
            status = parser.feed(&wire[at..end], &mut |ts| stamps.push(ts)).unwrap();
            (at, piece) = (end, piece + 1);
        }
        assert_eq!(status, Parsed::Complete);
        stamps
    }

    #[test]
    fn server_parts_read_back_through_the_parser_in_any_chunking() {
        const TYPES: [&str; 4] = ["text/plain", "image/jpeg", "text/html;charset=utf-8", "a/b"];
        for seed in 0..300 {
            let sent: Vec<Sent> = (0..1 + pick(seed, 0, 6))
                .map(|i| Sent {
                    content_type: TYPES[pick(seed, 10 + i, 4) as usize],
                    body: body(seed, i),
                    stamp: pick(seed, 20 + i, LAST_READABLE_US + 1),
                    // Numbered or not, up to the largest number a u64 holds.
                    frame: match pick(seed, 30 + i, 3) {
                        0 => None,
                        1 => Some(pick(seed, 40 + i, 1000)),
                        _ => Some(u64::MAX - pick(seed, 40 + i, 2)),
                    },
                })
                .collect();
            let stopped = seed % 3 == 0;
            let wire = wire(&sent, stopped);
            let mut want: Vec<Read> = sent
                .iter()
                .map(|p| Read {
                    headers: [
                        format!("Content-Type: {}\r\n", p.content_type),
                        format!("Content-Length: {}\r\n", p.body.len()),
                        format!(
                            "X-Timestamp: {}\r\n",
                            String::from_utf8_lossy(Stamp::new(p.stamp, None).as_bytes())
                        ),
                    ]
                    .into_iter()
                    .chain(p.frame.map(|n| format!("X-Frame: {n}\r\n")))
                    .chain(["\r\n".to_owned()])
                    .map(String::into_bytes)
                    .collect(),
                    body: p.body.clone(),
                    length: Some(p.body.len() as u64),
                    seen: PartHeaders {
                        timestamp: Some(p.stamp),
                        frame: p.frame,
                    },
                })
                .collect();
            if stopped {
                // The empty final part: typed, no stamp, no body.
                let last = sent.last().unwrap().content_type;
                want.push(Read {
                    headers: vec![
                        format!("Content-Type: {last}\r\n").into_bytes(),
                        b"Content-Length: 0\r\n".to_vec(),
                        b"\r\n".to_vec(),
                    ],
                    body: Vec::new(),
                    length: Some(0),
                    seen: PartHeaders::default(),
                });
            }
            assert_eq!(read_bytewise(&wire), want, "seed {seed}");
            let stamps: Vec<PartHeaders> = want.iter().map(|r| r.seen).collect();
            for chunking in 0..4 {
                assert_eq!(read_in_pieces(&wire, seed * 4 + chunking), stamps, "seed {seed}");
            }
        }
    }
}
