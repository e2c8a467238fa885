//! HTTP/1.x requests in, response heads out.
//!
//! Requests are parsed with `httparse` from one buffer that grows up to [`MAX_HEAD`];
//! [`Request::len`] says where the head ends, so the bytes after it are the next request
//! of a pipeline. [`Request::persistent`] says whether the client lets the connection
//! stay open after the answer (RFC 9112 §9.3); the connection decides whether it does
//! (a stream ends only when its connection does, so it always closes). Every response
//! head ends with the lines the connection gives: `Date` and `Connection`.
//!
//! What [`parse`] accepts (RFC 9110, RFC 9112), and the answer for what it does not:
//! - A head of at most [`MAX_HEAD`] bytes. The request line comes first: one that does not
//!   end within the cap is a target too long (`414`); header fields past the cap, or more
//!   than 64 of them, are `431`.
//! - `HTTP/1.0` and `HTTP/1.1`; a later `HTTP/1.x` is served as `HTTP/1.1` (RFC 9112
//!   §2.3); `HTTP/2.0` and later majors in a request line are `505`; anything else `400`.
//! - A target in origin-form (`/path?query`), absolute-form (`http://host/path?query`,
//!   RFC 9112 §3.2.2: its authority stands in for `Host`) or, for `OPTIONS` and unknown
//!   methods, asterisk-form (`*`, and then [`Request::path`] is `"*"`). Anything else is
//!   `400`.
//! - The path is percent-decoded once, and the decoded path is what routes match. `%2F`
//!   decodes to `/` like any other escape: routes are exact strings and no file system is
//!   behind them, so there is no traversal to guard. Query parameters are split at `&` and
//!   `=` first, then each side is decoded the same way. A malformed escape (`%zz`, `%2`),
//!   or one that decodes to a control character or to bytes that are not UTF-8, is `400`:
//!   no route can hold them, and a control character would reach the logs.
//! - At most one `Host`, exactly one in HTTP/1.1, its value empty or `host[:port]`
//!   (RFC 9110 §7.2, RFC 3986 §3.2.2); otherwise `400`.
//! - `Content-Length` is digits, and all its values (repeated lines, or a list in one
//!   line) agree; with `Transfer-Encoding` beside it the request is `400` (RFC 9112 §6.3:
//!   framing two parsers could read differently is how requests are smuggled). No body is
//!   read: a request that announces one (`Content-Length` above 0, or any
//!   `Transfer-Encoding`) is not [`persistent`](Request::persistent), so it is answered
//!   and the connection closed, and its body is never read as the next request.
//! - `Connection` is a list of tokens: `close` ends the connection after the answer;
//!   HTTP/1.1 stays open without it, HTTP/1.0 only with `keep-alive`.

use std::borrow::Cow;

/// The largest request head accepted, request line included (see the module doc for the
/// answers past it).
pub const MAX_HEAD: usize = 8 * 1024;
/// More header lines than this also get `431`.
const MAX_HEADERS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10 = 0,
    Http11 = 1,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// A CORS preflight asks with it, and so does `OPTIONS *`.
    Options,
    /// `PUT` and `POST` publish to a `push` stream, and nowhere else.
    Put,
    Post,
    Other,
}

/// A parsed request head: what routing needs, borrowed from the read buffer where no
/// percent-escape had to be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The percent-decoded path, what routes match: it starts with `/`, or is `*` for an
    /// asterisk-form target (`OPTIONS * HTTP/1.1`).
    pub path: Cow<'a, str>,
    pub version: Version,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<&'a [u8]>,
    /// A browser asks for an image: its `Accept` lists an image type first, or its
    /// `Sec-Fetch-Dest` says `image` (`is_image_request`).
    pub image_request: bool,
    /// The values of every `X-Forwarded-For` and `Forwarded` line, in order (one list
    /// each; empty, with nothing allocated, when the request has none). Whether to
    /// believe them is the caller's choice: see `routes::proxies`.
    pub forwarded_for: Vec<&'a [u8]>,
    pub forwarded: Vec<&'a [u8]>,
    /// The query's `name=value` pairs in order, each side percent-decoded.
    params: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// The head's length in bytes: what follows it in the buffer is the next request.
    pub len: usize,
    /// The client lets the connection stay open after the answer: HTTP/1.1 without
    /// `Connection: close`, HTTP/1.0 with `Connection: keep-alive`, and no body announced.
    pub persistent: bool,
    /// The message body's framing and type, raw, when one is announced (a publisher's):
    /// `Content-Length`, `Transfer-Encoding`, `Content-Type`.
    pub body: Option<BodyHeaders<'a>>,
}

/// A request body's headers, as sent (the demuxer reads them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyHeaders<'a> {
    pub content_length: Option<&'a [u8]>,
    pub transfer_encoding: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    /// The connection may persist once the body is read (as [`Request::persistent`]
    /// would say without the body).
    pub persistent: bool,
    /// `Expect: 100-continue` (curl sends it with a body over 1 MiB, then waits a
    /// second for the interim answer before sending anyway).
    pub expect_continue: bool,
}

impl Request<'_> {
    /// The decoded value of the first `name` in the query string (`?name=value&…`; a name
    /// without `=` has the value `""`), if present.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_ref())
    }
}

/// Statuses this server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Ok = 200,
    Accepted = 202,
    NoContent = 204,
    BadRequest = 400,
    Unauthorized = 401,
    NotFound = 404,
    MethodNotAllowed = 405,
    RequestTimeout = 408,
    /// A `push` stream has its publisher already.
    Conflict = 409,
    TargetTooLong = 414,
    HeadTooLarge = 431,
    ServiceUnavailable = 503,
    VersionNotSupported = 505,
}

impl Status {
    /// Every status, in order of code (the order `/stats` lists them in).
    pub const ALL: [Status; 13] = [
        Status::Ok,
        Status::Accepted,
        Status::NoContent,
        Status::BadRequest,
        Status::Unauthorized,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::RequestTimeout,
        Status::Conflict,
        Status::TargetTooLong,
        Status::HeadTooLarge,
        Status::ServiceUnavailable,
        Status::VersionNotSupported,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Accepted => "Accepted",
            Status::NoContent => "No Content",
            Status::BadRequest => "Bad Request",
            Status::Unauthorized => "Unauthorized",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::Conflict => "Conflict",
            Status::TargetTooLong => "URI Too Long",
            Status::HeadTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// Parses a request head. `Ok(None)`: incomplete, read more. `Err(status)`: answer
/// `status` and close.
pub fn parse(buf: &[u8]) -> Result<Option<Request<'_>>, Status> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Some(head) = parse_head(buf, &mut storage)? else {
        return Ok(None);
    };
    let headers = &storage[..head.headers];
    check_host(headers, head.version)?;
    let has_body = check_framing(headers)?;
    let persistent = !has_body && wants_persistence(headers, head.version);
    let method = match head.method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        "PUT" => Method::Put,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let (path, query) = split_target(head.target, method)?;
    let path = percent_decode(path).ok_or(Status::BadRequest)?;
    let params = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key)?, percent_decode(value)?))
        })
        .collect::<Option<_>>()
        .ok_or(Status::BadRequest)?;
    let authorization = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))
        .map(|h| h.value);
    let values = |name: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let body = has_body.then(|| BodyHeaders {
        content_length: header("content-length"),
        transfer_encoding: header("transfer-encoding"),
        content_type: header("content-type"),
        persistent: wants_persistence(headers, head.version),
        expect_continue: head.version == Version::Http11
            && header("expect").is_some_and(|value| value.trim_ascii().eq_ignore_ascii_case(b"100-continue")),
    });
    Ok(Some(Request {
        method,
        path,
        version: head.version,
        authorization,
        image_request: is_image_request(headers),
        forwarded_for: values("x-forwarded-for"),
        forwarded: values("forwarded"),
        params,
        len: head.len,
        persistent,
        body,
    }))
}

/// Whether the request is a browser's for an image (an `<img>`, a CSS background): its
/// `Accept` lists an image type first (Chromium sends `image/avif,image/webp,…`, Firefox
/// `image/avif,image/webp,*/*`, Safari `image/webp,image/avif,…`), or `Sec-Fetch-Dest`
/// says `image` (sent to HTTPS and localhost origins only). Scripts, ffmpeg, curl and
/// proxies send `*/*` or nothing.
fn is_image_request(headers: &[httparse::Header<'_>]) -> bool {
    let value = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
    };
    let image_first = value("accept").is_some_and(|accept| {
        let first = accept.split(|&b| b == b',').next().unwrap_or_default();
        first.trim_ascii().len() > 6 && first.trim_ascii()[..6].eq_ignore_ascii_case(b"image/")
    });
    image_first || value("sec-fetch-dest").is_some_and(|dest| dest.eq_ignore_ascii_case(b"image"))
}

/// RFC 9112 §9.3: whether the client's `Connection` lines let the connection persist.
fn wants_persistence(headers: &[httparse::Header<'_>], version: Version) -> bool {
    let tokens = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii);
    let (mut close, mut keep_alive) = (false, false);
    for token in tokens {
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    !close && (version == Version::Http11 || keep_alive)
}

/// The request line of a complete head, and how many header fields follow it.
struct Head<'b> {
    method: &'b str,
    target: &'b str,
    version: Version,
    headers: usize,
    /// Bytes of the head, its blank line included.
    len: usize,
}

fn parse_head<'b>(buf: &'b [u8], headers: &mut [httparse::Header<'b>]) -> Result<Option<Head<'b>>, Status> {
    let mut req = httparse::Request::new(headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => Ok(Some(Head {
            method: req.method.unwrap_or_default(),
            target: req.path.unwrap_or_default(),
            version: match req.version {
                Some(0) => Version::Http10,
                _ => Version::Http11,
            },
            headers: req.headers.len(),
            len,
        })),
        Ok(httparse::Status::Complete(_)) => Err(over_the_cap(buf)),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(over_the_cap(buf)),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::Version) => parse_head_of_later_version(buf, headers),
        Err(httparse::Error::TooManyHeaders) => Err(Status::HeadTooLarge),
        Err(_) => Err(Status::BadRequest),
    }
}

/// httparse knows `HTTP/1.0` and `HTTP/1.1` only, and stops at any other version after
/// it has checked the method and the target. RFC 9112 §2.3: a later minor version of 1
/// is served as 1.1 (its header fields parsed here); a later major one is `505`.
fn parse_head_of_later_version<'b>(
    buf: &'b [u8],
    headers: &mut [httparse::Header<'b>],
) -> Result<Option<Head<'b>>, Status> {
    let Some(line_end) = buf.iter().position(|&b| b == b'\n') else {
        // The version is still arriving (`HTTP/2` is refused by httparse at its `2`).
        return if buf.len() > MAX_HEAD {
            Err(Status::BadRequest)
        } else {
            Ok(None)
        };
    };
    let line = &buf[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // The method and the target each end at one space: httparse has checked them.
    let mut words = line.splitn(3, |&b| b == b' ').map(std::str::from_utf8);
    let (Some(Ok(method)), Some(Ok(target)), Some(Ok(version))) = (words.next(), words.next(), words.next())
    else {
        return Err(Status::BadRequest);
    };
    match version.as_bytes() {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] => {}
        [b'H', b'T', b'T', b'P', b'/', b'2'..=b'9', b'.', b'0'..=b'9'] => {
            return Err(Status::VersionNotSupported);
        }
        _ => return Err(Status::BadRequest),
    }
    let fields_at = line_end + 1;
    match httparse::parse_headers(&buf[fields_at..], headers) {
        Ok(httparse::Status::Complete((len, parsed))) if fields_at + len <= MAX_HEAD => Ok(Some(Head {
            method,
            target,
            version: Version::Http11,
            headers: parsed.len(),
            len: fields_at + len,
        })),
        Ok(httparse::Status::Complete(_)) => Err(over_the_cap(buf)),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(over_the_cap(buf)),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(Status::HeadTooLarge),
        Err(_) => Err(Status::BadRequest),
    }
}

/// Which limit a head over [`MAX_HEAD`] broke. The request line is read first: if it
/// does not end within the cap, the target is too long (`414`), else the header fields
/// are (`431`). A first line without a space is no request line at all (`400`).
fn over_the_cap(buf: &[u8]) -> Status {
    let capped = &buf[..buf.len().min(MAX_HEAD)];
    if capped.contains(&b'\n') {
        Status::HeadTooLarge
    } else if capped.contains(&b' ') {
        Status::TargetTooLong
    } else {
        Status::BadRequest
    }
}

/// The path and the query of a target (RFC 9112 §3.2), before decoding.
fn split_target(target: &str, method: Method) -> Result<(&str, Option<&str>), Status> {
    if target == "*"
        && matches!(
            method,
            Method::Options | Method::Put | Method::Post | Method::Other
        )
    {
        return Ok(("*", None));
    }
    let (before, query) = match target.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (target, None),
    };
    if before.starts_with('/') {
        return Ok((before, query));
    }
    // Absolute-form: `scheme://authority[/path]`, only the schemes this server speaks.
    let (scheme, rest) = before.split_once("://").ok_or(Status::BadRequest)?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(Status::BadRequest);
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    // RFC 9110 §4.2.1: an http URI has a host. Userinfo (`user@`) fails the check too,
    // as §4.2.4 asks.
    match host_of_authority(authority.as_bytes()) {
        Some(host) if !host.is_empty() => Ok((if path.is_empty() { "/" } else { path }, query)),
        _ => Err(Status::BadRequest),
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`, an HTTP/1.0 one at most,
/// and its value is empty or a valid `host[:port]`.
fn check_host(headers: &[httparse::Header<'_>], version: Version) -> Result<(), Status> {
    let mut hosts = headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::Http11 => Err(Status::BadRequest),
        (Some(_), Some(_)) => Err(Status::BadRequest),
        (Some(host), None) if host_of_authority(host.value.trim_ascii()).is_none() => Err(Status::BadRequest),
        _ => Ok(()),
    }
}

/// The host of `host[:port]` (RFC 3986 §3.2.2–3.2.3), or `None` if it is not one: an IP
/// literal in brackets, or a reg-name (which an IPv4 address also is) of unreserved
/// characters, sub-delims and `%XX` escapes, possibly empty; a port of digits.
fn host_of_authority(text: &[u8]) -> Option<&[u8]> {
    let (host, port) = match text.strip_prefix(b"[") {
        Some(inside) => {
            let close = inside.iter().position(|&b| b == b']')?;
            let literal = &inside[..close];
            // IPv6, with a zone (RFC 6874), or IPvFuture: all within these characters.
            let ip_char = |b: &u8| is_unreserved(*b) || is_sub_delim(*b) || b":%".contains(b);
            if literal.is_empty() || !literal.iter().all(ip_char) {
                return None;
            }
            text.split_at(close + 2)
        }
        None => {
            let (host, port) = text.split_at(text.iter().position(|&b| b == b':').unwrap_or(text.len()));
            if !is_reg_name(host) {
                return None;
            }
            (host, port)
        }
    };
    match port {
        [] => Some(host),
        [b':', digits @ ..] if digits.iter().all(u8::is_ascii_digit) => Some(host),
        _ => None,
    }
}

fn is_reg_name(host: &[u8]) -> bool {
    let mut bytes = host.iter();
    while let Some(&b) = bytes.next() {
        let ok = match b {
            b'%' => {
                bytes.next().is_some_and(u8::is_ascii_hexdigit)
                    && bytes.next().is_some_and(u8::is_ascii_hexdigit)
            }
            _ => is_unreserved(b) || is_sub_delim(b),
        };
        if !ok {
            return false;
        }
    }
    true
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn is_sub_delim(b: u8) -> bool {
    b"!$&'()*+,;=".contains(&b)
}

/// RFC 9112 §6.3: `Content-Length` is digits, and all its values (repeated lines, or a
/// list in one line) must agree; with `Transfer-Encoding` beside it the framing is
/// ambiguous. Either is refused rather than guessed at. Values are compared as digit
/// strings, never converted: RFC 9110 §8.6 wants no overflow from a huge but valid one.
/// `Ok(true)`: a body is announced (a length above 0, or a transfer coding).
fn check_framing(headers: &[httparse::Header<'_>]) -> Result<bool, Status> {
    let mut length: Option<&[u8]> = None;
    let mut transfer_encoding = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            for item in header.value.split(|&b| b == b',') {
                let digits = item.trim_ascii();
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(Status::BadRequest);
                }
                let value = &digits[digits.iter().take_while(|&&b| b == b'0').count()..];
                if length.replace(value).is_some_and(|before| before != value) {
                    return Err(Status::BadRequest);
                }
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        }
    }
    match (length, transfer_encoding) {
        (Some(_), true) => Err(Status::BadRequest),
        // Leading zeros are gone: an empty value was all zeros.
        (length, transfer_encoding) => Ok(transfer_encoding || length.is_some_and(|l| !l.is_empty())),
    }
}

/// Decodes the `%XX` escapes of `text` once. `None` if an escape is malformed, or the
/// result holds a control character or is not UTF-8. Request paths, query parameters and
/// the paths given on the command line all go through here, so they compare as equals.
pub fn percent_decode(text: &str) -> Option<Cow<'_, str>> {
    let is_control = |b: u8| b < 0x20 || b == 0x7f;
    if !text.bytes().any(|b| b == b'%' || is_control(b)) {
        return Some(Cow::Borrowed(text));
    }
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        let byte = match b {
            b'%' => hex_digit(bytes.next()?)? << 4 | hex_digit(bytes.next()?)?,
            _ => b,
        };
        if is_control(byte) {
            return None;
        }
        out.push(byte);
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// The head of a stream response. `boundary` is the first and only parameter, unquoted
/// (it is a token), as strict clients expect.
pub fn stream_head(version: Version, boundary: &impl std::fmt::Display, extra: &str) -> String {
    format!(
        "{} 200 OK\r\n\
         Content-Type: multipart/x-mixed-replace; boundary={boundary}\r\n\
         Cache-Control: no-cache, no-store, must-revalidate\r\n\
         Pragma: no-cache\r\n\
         X-Accel-Buffering: no\r\n\
         Connection: close\r\n\
         {extra}\r\n",
        version.as_str()
    )
}

/// A complete short answer: a `text/plain` body (omitted for `HEAD`) and its length.
/// `lines`: the header lines that end its head, each ending in CRLF (see [`response`]).
pub fn answer(status: Status, version: Version, head_only: bool, lines: &[&[u8]]) -> Vec<u8> {
    let body = format!("{} {}\n", status.code(), status.reason());
    response(
        status,
        version,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        head_only,
        lines,
    )
}

/// A complete response with a body (omitted for `HEAD`, its length still given; a 204
/// has neither, as RFC 9110 requires). `lines`: the header lines that end its head, each
/// ending in CRLF: the connection's `Date` and `Connection`, and any the answer adds.
/// Built straight into the one buffer that is sent: a snapshot's head costs one
/// allocation.
pub fn response(
    status: Status,
    version: Version,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    lines: &[&[u8]],
) -> Vec<u8> {
    use std::io::Write as _;
    let with_body = !head_only && status != Status::NoContent;
    let lines_len: usize = lines.iter().map(|line| line.len()).sum();
    let body_len = if with_body { body.len() } else { 0 };
    let mut out = Vec::with_capacity(128 + content_type.len() + lines_len + body_len);
    let _ = write!(
        out,
        "{} {} {}\r\n",
        version.as_str(),
        status.code(),
        status.reason()
    );
    if status != Status::NoContent {
        let _ = write!(
            out,
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    out.extend_from_slice(b"Cache-Control: no-store\r\n");
    for line in lines {
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b"\r\n");
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(head: &str) -> Result<Option<Request<'_>>, Status> {
        parse(head.as_bytes())
    }

    /// What a head parses to: method, decoded path, version (or the error status).
    fn outcome(head: &str) -> Result<(Method, String, Version), Status> {
        let req = parsed(head)?.unwrap_or_else(|| panic!("incomplete: {head:?}"));
        Ok((req.method, req.path.into_owned(), req.version))
    }

    #[test]
    fn parses_get_and_head_of_both_versions() {
        let req = parsed("GET /cam?action=stream&x HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (req.method, req.path.as_ref(), req.version),
            (Method::Get, "/cam", Version::Http11)
        );
        assert_eq!(req.query_param("action"), Some("stream"));
        assert_eq!(req.query_param("x"), Some(""));
        assert_eq!(req.query_param("y"), None);
        let req = parsed("HEAD / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!((req.method, req.version), (Method::Head, Version::Http10));
        let req = parsed("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
        assert_eq!(req.method, Method::Other);
    }

    #[test]
    fn a_browser_asking_for_an_image_is_told_apart_from_other_clients() {
        for (headers, image) in [
            // Chromium's and Firefox's `<img>` requests.
            (
                "Accept: image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8\r\n",
                true,
            ),
            ("accept:  IMAGE/avif,image/webp,*/*\r\n", true),
            ("Sec-Fetch-Dest: image\r\nAccept: */*\r\n", true),
            // Navigations, scripts, curl, ffmpeg and proxies.
            (
                "Accept: text/html,application/xhtml+xml,image/webp,*/*;q=0.8\r\n",
                false,
            ),
            ("Accept: */*\r\n", false),
            ("Accept: image/\r\n", false),
            ("Sec-Fetch-Dest: document\r\n", false),
            ("", false),
        ] {
            let head = format!("GET /cam HTTP/1.1\r\nHost: a\r\n{headers}\r\n");
            let req = parsed(&head).unwrap().unwrap();
            assert_eq!(req.image_request, image, "{headers:?}");
        }
    }

    #[test]
    fn persistence_follows_the_version_connection_and_body() {
        for (head, persistent) in [
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nconnection: TE, Close\r\n\r\n",
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            ("GET / HTTP/1.5\r\nHost: a\r\n\r\n", true),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                false,
            ),
            // A body is never read: the connection closes after the answer.
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
                false,
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\n\r\n", true),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
            ),
        ] {
            assert_eq!(parsed(head).unwrap().unwrap().persistent, persistent, "{head:?}");
        }
    }

    #[test]
    fn the_head_length_leaves_the_next_request_in_the_buffer() {
        let first = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
        let later = "GET /b HTTP/1.5\r\nHost: a\r\n\r\n";
        for (buf, len) in [
            (format!("{first}{later}"), first.len()),
            (format!("{later}{first}"), later.len()),
            (format!("{first}GET /c HT"), first.len()),
        ] {
            assert_eq!(parsed(&buf).unwrap().unwrap().len, len, "{buf:?}");
        }
    }

    #[test]
    fn accepts_every_target_form_and_later_minor_versions() {
        use Method::*;
        use Version::*;
        for (head, method, path, version) in [
            (
                "GET http://h/cam?x HTTP/1.1\r\nHost: h\r\n\r\n",
                Get,
                "/cam",
                Http11,
            ),
            (
                "GET HTTPS://h:8080 HTTP/1.1\r\nHost: other\r\n\r\n",
                Get,
                "/",
                Http11,
            ),
            ("GET http://[::1]:80/a/b HTTP/1.0\r\n\r\n", Get, "/a/b", Http10),
            ("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", Options, "*", Http11),
            ("GET / HTTP/1.2\r\nHost: h\r\n\r\n", Get, "/", Http11),
            ("HEAD /x HTTP/1.9\r\nHost: h\r\nX: y\r\n\r\n", Head, "/x", Http11),
            ("GET / HTTP/1.1\r\nHost:\r\n\r\n", Get, "/", Http11),
            ("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", Get, "/", Http11),
            (
                "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n",
                Get,
                "/",
                Http11,
            ),
            ("GET / HTTP/1.1\r\nHost: a.b-c_d~e%41\r\n\r\n", Get, "/", Http11),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nContent-Length: 05\r\n\r\n",
                Get,
                "/",
                Http11,
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 000\r\n\r\n",
                Get,
                "/",
                Http11,
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                Get,
                "/",
                Http11,
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                Get,
                "/",
                Http11,
            ),
        ] {
            assert_eq!(outcome(head), Ok((method, path.to_owned(), version)), "{head:?}");
        }
    }

    #[test]
    fn paths_and_query_values_are_percent_decoded_once() {
        for (target, path) in [
            ("/cam%C3%A9ra", "/caméra"),
            ("/caméra", "/caméra"),
            ("/cam%7B1%7d", "/cam{1}"),
            ("/my%20cam", "/my cam"),
            ("/a%2Fb", "/a/b"),
            ("/100%2525", "/100%25"),
            ("http://h/my%20cam", "/my cam"),
        ] {
            let head = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(
                outcome(&head),
                Ok((Method::Get, path.to_owned(), Version::Http11))
            );
        }
        let req = parsed("GET /?action=snap%73hot&a%26b=%3D&c=1%2B1 HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.query_param("action"), Some("snapshot"));
        assert_eq!(req.query_param("a&b"), Some("="));
        assert_eq!(req.query_param("c"), Some("1+1"));
        assert!(matches!(req.path, Cow::Borrowed("/")), "no escape, no copy");
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        for head in [
            "GET / HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n",
            "GET / HTTP/1.2\r\nHost: example\r\n\r\n",
        ] {
            for end in 0..head.len() {
                assert_eq!(parsed(&head[..end]), Ok(None), "prefix {end} of {head:?}");
            }
            assert!(parsed(head).unwrap().is_some());
        }
        // A later major version is known once its request line is complete.
        let head = "PRI * HTTP/2.0\r\n";
        for end in 0..head.len() {
            assert_eq!(parsed(&head[..end]), Ok(None), "prefix {end} of {head:?}");
        }
        assert_eq!(parsed(head), Err(Status::VersionNotSupported));
    }

    /// Every status `parse` answers, with the request that earns it.
    #[test]
    fn answers_each_bad_head_by_the_rfcs() {
        use Status::*;
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "t".repeat(MAX_HEAD));
        let long_field = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "y".repeat(MAX_HEAD));
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X{i}: y\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        let many_later = many.replacen("HTTP/1.1", "HTTP/1.5", 1);
        let junk = "x".repeat(MAX_HEAD + 1);
        let cases: &[(&str, Status)] = &[
            // Not HTTP/1, or no request line.
            ("hello\r\n\r\n", BadRequest),
            (&junk, BadRequest),
            ("GET / HTTP/1.10\r\nHost: a\r\n\r\n", BadRequest),
            ("GET / HTTP/0.9\r\nHost: a\r\n\r\n", BadRequest),
            ("GET / HTTP/2\r\nHost: a\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\rHost: a\r\n\r\n", BadRequest),
            ("GET / HTTP/1.2\r\nHost a\r\n\r\n", BadRequest),
            // Later major versions.
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", VersionNotSupported),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", VersionNotSupported),
            ("GET / HTTP/3.0\r\n\r\n", VersionNotSupported),
            // Targets.
            ("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            ("GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            ("OPTIONS *?x HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            ("CONNECT h:80 HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
            ("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
            ("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
            ("GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
            ("GET http://h:x/ HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
            // Escapes: malformed, a control character, not UTF-8.
            ("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            ("GET /%2 HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            ("GET /a%00 HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            ("GET /a%0D%0A HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            ("GET /%FF HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            ("GET /?action=%zz HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
            // Host.
            ("GET / HTTP/1.1\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", BadRequest),
            ("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nHost: []\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nHost: \"a\"\r\n\r\n", BadRequest),
            // Framing.
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
                BadRequest,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
                BadRequest,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                BadRequest,
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", BadRequest),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
                BadRequest,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\nContent-Length: 0\r\n\r\n",
                BadRequest,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",
                BadRequest,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                BadRequest,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                BadRequest,
            ),
            (
                "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\ncontent-length: 0\r\n\r\n",
                BadRequest,
            ),
            // Sizes: the request line first, then the fields.
            (&long_target, TargetTooLong),
            (&long_target[..MAX_HEAD + 1], TargetTooLong),
            (&long_field, HeadTooLarge),
            (&many, HeadTooLarge),
            (&many_later, HeadTooLarge),
        ];
        for (head, status) in cases {
            let shown = &head[..head.len().min(80)];
            assert_eq!(parsed(head).map(|r| r.is_some()), Err(*status), "{shown:?}");
        }
        // Every status parse can answer is in the table.
        let mut seen: Vec<Status> = cases.iter().map(|(_, s)| *s).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen,
            [BadRequest, TargetTooLong, HeadTooLarge, VersionNotSupported]
        );
    }

    #[test]
    fn a_request_line_that_fills_the_cap_is_too_long_even_if_it_ends_later() {
        // The line's end arrives, but past the cap: the target did not fit.
        let line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "t".repeat(MAX_HEAD - 10));
        assert_eq!(parsed(&line), Err(Status::TargetTooLong));
        // A line that fits, with fields past the cap: those are too large.
        let fits = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "t".repeat(100),
            "y".repeat(MAX_HEAD)
        );
        assert_eq!(parsed(&fits), Err(Status::HeadTooLarge));
    }

    #[test]
    fn percent_decoding_refuses_what_no_path_can_hold() {
        assert_eq!(percent_decode("/a%41"), Some(Cow::Owned("/aA".to_owned())));
        for bad in ["%", "%4", "%g0", "%00", "%1f", "%7F", "\u{1}", "%C3", "%80"] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_status_has_its_code_and_a_reason() {
        for status in Status::ALL {
            let text = String::from_utf8(answer(status, Version::Http11, false, &[])).unwrap();
            assert!(text.starts_with(&format!("HTTP/1.1 {} {}\r\n", status.code(), status.reason())));
        }
        assert!(Status::ALL.windows(2).all(|w| w[0] < w[1]), "in order of code");
    }

    #[test]
    fn answers_carry_their_length_and_the_lines_given() {
        let close: &[&[u8]] = &[b"Connection: close\r\n"];
        let text = String::from_utf8(answer(Status::NotFound, Version::Http11, false, close)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 14\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n404 Not Found\n"
        );
        let head = answer(
            Status::MethodNotAllowed,
            Version::Http10,
            true,
            &[b"Date: x\r\n", b"Allow: GET, HEAD\r\n"],
        );
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.0 405"));
        assert!(head.ends_with("Date: x\r\nAllow: GET, HEAD\r\n\r\n"));
        let empty = answer(Status::NoContent, Version::Http11, false, &[]);
        let empty = String::from_utf8(empty).unwrap();
        assert!(empty.starts_with("HTTP/1.1 204 No Content\r\n") && empty.ends_with("\r\n\r\n"));
        assert!(!empty.contains("Content-Length"));
    }

    #[test]
    fn the_stream_head_names_only_the_boundary() {
        let head = stream_head(Version::Http11, &"abc", "");
        assert!(head.contains("\r\nContent-Type: multipart/x-mixed-replace; boundary=abc\r\n"));
        assert!(!head.contains("Content-Length"));
        assert!(head.ends_with("Connection: close\r\n\r\n"));
    }
}
