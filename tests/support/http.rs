//! HTTP over plain sockets: a request out, a response read strictly.
//!
//! Strict means as the server promises to write it: every head line ends in CRLF with no
//! bare CR, LF or NUL inside, every header is `Name: value` with a token name, and a
//! header sent twice fails the test when it is asked for ([`Response::header`]). The
//! server closes every connection after its answer, so a response is read to the close,
//! and whether that close was clean (EOF, not a reset) is part of it.
//!
//! [`read_raw`] is the exception: it takes every byte as it comes, for the faults on
//! purpose, whose tests spell out the bytes themselves.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::IO_TIMEOUT;

/// Longest head line, and longest head, read before giving up.
const MAX_LINE: u64 = 16 * 1024;
const MAX_HEAD: usize = 64 * 1024;
/// Bytes read after a response before giving up on its close.
const MAX_TRAILING: usize = 1 << 20;

/// A TCP connection to `addr` with both timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("a read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("a write timeout");
    stream
}

/// Closes `stream` with a reset (`SO_LINGER` 0) instead of a FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream);
}

/// A response: its head, its body (by `Content-Length`), and how the connection ended.
#[derive(Debug)]
pub struct Response {
    /// `HTTP/1.1 200 OK`.
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes that came after the body, before the close (there should be none).
    pub trailing: Vec<u8>,
    /// The server closed its side cleanly (EOF) after the response, not with a reset.
    pub clean_eof: bool,
}

impl Response {
    /// The value of header `name` (any case); a header sent twice fails the test.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let value = values.next();
        assert!(values.next().is_none(), "{name} sent twice: {self:?}");
        value
    }
}

/// Reads a response head, strictly, up to and including its blank line.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Response> {
    let status_line = head_line(reader)?;
    let status = ["HTTP/1.1 ", "HTTP/1.0 "]
        .iter()
        .find_map(|version| status_line.strip_prefix(version))
        .filter(|rest| rest.len() > 4 && rest.as_bytes()[3] == b' ')
        .and_then(|rest| rest[..3].parse().ok())
        .ok_or_else(|| bad(format!("not a status line: {status_line:?}")))?;
    let mut headers = Vec::new();
    let mut size = status_line.len();
    loop {
        let line = head_line(reader)?;
        if line.is_empty() {
            break;
        }
        size += line.len();
        if size > MAX_HEAD {
            return Err(bad("a response head over 64 KiB".into()));
        }
        let (name, value) = line
            .split_once(": ")
            .filter(|(name, value)| is_token(name) && value.trim() == *value)
            .ok_or_else(|| bad(format!("malformed header line {line:?}")))?;
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(Response {
        status_line,
        status,
        headers,
        body: Vec::new(),
        trailing: Vec::new(),
        clean_eof: false,
    })
}

/// One line of a head, without its CRLF.
fn head_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader.take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "EOF in the response head",
        ));
    }
    let Some(text) = line.strip_suffix(b"\r\n") else {
        return Err(bad(format!(
            "a head line without CRLF: {:?}",
            String::from_utf8_lossy(&line)
        )));
    };
    if text.iter().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err(bad(format!(
            "bare CR, LF or NUL in {:?}",
            String::from_utf8_lossy(text)
        )));
    }
    String::from_utf8(text.to_vec()).map_err(|e| bad(format!("a head line that is not UTF-8: {e}")))
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Reads a response: its head, its body (`Content-Length` bytes; none for the answer to
/// a HEAD, `head_only`, or a 204), then to the close, noting anything more and whether
/// the close was clean.
pub fn read_response(stream: &mut TcpStream, head_only: bool) -> io::Result<Response> {
    let mut reader = BufReader::new(stream);
    let mut response = read_head(&mut reader)?;
    let length = match response.header("Content-Length") {
        _ if head_only || response.status == 204 => 0,
        None => 0,
        Some(n) => n
            .parse::<usize>()
            .map_err(|e| bad(format!("Content-Length {n:?}: {e}")))?,
    };
    response.body = vec![0; length];
    reader.read_exact(&mut response.body)?;
    let mut chunk = [0u8; 4096];
    while response.trailing.len() <= MAX_TRAILING {
        match reader.read(&mut chunk) {
            Ok(0) => {
                response.clean_eof = true;
                break;
            }
            Ok(n) => response.trailing.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Ok(response)
}

/// How the server ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// A FIN: reading gave end of input.
    Eof,
    /// A reset: reading failed with `ConnectionReset`.
    Reset,
}

/// Every byte of a response, however malformed, and how it ended.
#[derive(Debug)]
pub struct Raw {
    pub bytes: Vec<u8>,
    pub end: End,
    /// From just before the request was sent to the end.
    pub elapsed: Duration,
}

impl Raw {
    /// The head (up to and including the blank line) without its `Date` line (checked by
    /// [`undated`]), and the rest.
    pub fn split_head(&self) -> (String, &[u8]) {
        let at = super::multipart::find(&self.bytes, b"\r\n\r\n").expect("a response head") + 4;
        let head = String::from_utf8(self.bytes[..at].to_vec()).expect("a UTF-8 head");
        (undated(&head), &self.bytes[at..])
    }
}

/// `text` (a response head, or more) without the head's `Date` line, which must be there
/// exactly once and hold an IMF-fixdate within a day of now: the one line of a head that
/// the test cannot know byte for byte.
pub fn undated(text: &str) -> String {
    let head_end = text.find("\r\n\r\n").expect("a response head") + 2;
    let lines: Vec<&str> = text[..head_end].split_inclusive("\r\n").collect();
    let dates: Vec<&&str> = lines.iter().filter(|l| l.starts_with("Date: ")).collect();
    assert_eq!(dates.len(), 1, "one Date line in {text:?}");
    let value = dates[0].trim_start_matches("Date: ").trim_end_matches("\r\n");
    let secs = parse_imf_fixdate(value).unwrap_or_else(|| panic!("Date {value:?} is no IMF-fixdate"));
    let now = super::now_us() / 1_000_000;
    assert!(secs.abs_diff(now) < 86_400, "Date {value:?} is not today");
    let kept: String = lines
        .iter()
        .filter(|l| !l.starts_with("Date: "))
        .copied()
        .collect();
    kept + &text[head_end..]
}

/// An IMF-fixdate (RFC 9110 §5.6.7: `Sun, 06 Nov 1994 08:49:37 GMT`) in seconds since
/// the Unix epoch; `None` unless it is one exactly, its weekday right.
pub fn parse_imf_fixdate(text: &str) -> Option<u64> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let bytes = text.as_bytes();
    if bytes.len() != 29 || &text[3..5] != ", " || &text[25..] != " GMT" {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = &text[range];
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (day, year) = (number(5..7)?, number(12..16)?);
    let month = MONTHS.iter().position(|m| *m == &text[8..11])? as u64 + 1;
    let (hour, minute, second) = (number(17..19)?, number(20..22)?, number(23..25)?);
    let separators = [(7, b' '), (11, b' '), (16, b' '), (19, b':'), (22, b':')];
    if separators.iter().any(|&(at, b)| bytes[at] != b) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    // Days from 1970-01-01, counted the slow way: this is the oracle, not the server.
    let leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day > month_days[month as usize - 1] {
        return None;
    }
    let days = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum::<u64>()
        + month_days[..month as usize - 1].iter().sum::<u64>()
        + day
        - 1;
    (DAYS[(days % 7) as usize] == &text[..3]).then_some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Sends `request` on a new connection and reads everything to the close, at most
/// [`MAX_TRAILING`] bytes, taking nothing for granted about what comes back.
pub fn read_raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let started = std::time::Instant::now();
    let mut stream = connect(addr);
    stream.write_all(request).expect("send the request");
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        assert!(bytes.len() <= MAX_TRAILING, "more than {MAX_TRAILING} bytes");
        match stream.read(&mut chunk) {
            Ok(0) => break End::Eof,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break End::Reset,
            Err(e) => panic!("reading after {} bytes: {e}", bytes.len()),
        }
    };
    Raw {
        bytes,
        end,
        elapsed: started.elapsed(),
    }
}

/// Sends `request` on a new connection and reads its response, whose body (if it has a
/// `Content-Length`) follows its head.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    send_and_read(addr, request, false)
}

/// `METHOD target` over HTTP/1.1, one request on its connection (`Connection: close`:
/// the answer is read to the close); the answer to a `HEAD` has no body.
pub fn fetch(addr: SocketAddr, method: &str, target: &str) -> Response {
    let request = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    send_and_read(addr, request.as_bytes(), method == "HEAD")
}

fn send_and_read(addr: SocketAddr, request: &[u8], head_only: bool) -> Response {
    let shown = || String::from_utf8_lossy(&request[..request.len().min(200)]).into_owned();
    let mut stream = connect(addr);
    stream
        .write_all(request)
        .unwrap_or_else(|e| panic!("sending {:?}: {e}", shown()));
    read_response(&mut stream, head_only).unwrap_or_else(|e| panic!("the answer to {:?}: {e}", shown()))
}

/// Checks a short answer (404, 405, 400, …): the status line, a `text/plain` body of
/// exactly the announced length (none after a HEAD), `Connection: close`, nothing more,
/// and a clean close.
pub fn check_answer(response: &Response, status_line: &str) {
    assert_eq!(response.status_line, status_line, "{response:?}");
    let content_type = response.header("Content-Type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{response:?}");
    assert_eq!(response.header("Connection"), Some("close"), "{response:?}");
    assert_eq!(response.header("Transfer-Encoding"), None, "{response:?}");
    let length: usize = response
        .header("Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length: {response:?}"));
    assert!(length > 0, "an empty answer: {response:?}");
    assert!(
        response.trailing.is_empty(),
        "bytes after the answer: {response:?}"
    );
    assert!(
        response.clean_eof,
        "no clean close after the answer: {response:?}"
    );
}

/// Checks the head of a stream response and returns its boundary.
pub fn check_stream_head(head: &Response) -> String {
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(
        head.header("Cache-Control"),
        Some("no-cache, no-store, must-revalidate")
    );
    assert_eq!(head.header("Pragma"), Some("no-cache"));
    assert_eq!(head.header("X-Accel-Buffering"), Some("no"));
    assert_eq!(head.header("Connection"), Some("close"));
    assert_eq!(head.header("Content-Length"), None, "{head:?}");
    assert_eq!(head.header("Transfer-Encoding"), None, "{head:?}");
    let content_type = head.header("Content-Type").unwrap_or_default();
    let boundary = content_type
        .strip_prefix("multipart/x-mixed-replace; boundary=")
        .unwrap_or_else(|| panic!("Content-Type {content_type:?}"));
    assert!(
        (24..=70).contains(&boundary.len())
            && !boundary.starts_with('-')
            && boundary
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "boundary {boundary:?}: 24 to 70 of [A-Za-z0-9_-], not starting with -"
    );
    boundary.to_owned()
}
