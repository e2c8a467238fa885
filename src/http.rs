//! HTTP/1.x requests in, response heads out.
//!
//! Every request gets one response and then the connection closes (`Connection: close`):
//! a stream ends only when the connection does, so there is no keep-alive to manage.
//! Requests are parsed with `httparse` from one buffer that grows up to [`MAX_HEAD`].

use std::fmt::Write as _;

/// The largest request head accepted; past it the answer is `431`.
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
    /// A CORS preflight asks with it.
    Options,
    Other,
}

/// A parsed request head: what routing needs, borrowed from the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub version: Version,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<&'a [u8]>,
}

impl Request<'_> {
    /// The value of `name` in the query string (`?name=value&…`), if present.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
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
    HeadTooLarge = 431,
    ServiceUnavailable = 503,
}

impl Status {
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
            Status::HeadTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

/// Parses a request head. `Ok(None)`: incomplete, read more. `Err(status)`: answer
/// `status` and close.
pub fn parse(buf: &[u8]) -> Result<Option<Request<'_>>, Status> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(Status::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Status::HeadTooLarge),
        Err(_) => return Err(Status::BadRequest),
    };
    if head_len > MAX_HEAD {
        return Err(Status::HeadTooLarge);
    }
    let version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is a 400.
    let hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    if version == Version::Http11 && hosts != 1 || hosts > 1 {
        return Err(Status::BadRequest);
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("OPTIONS") => Method::Options,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let asterisk_form = path == "*" && matches!(method, Method::Options | Method::Other);
    if !(path.starts_with('/') || asterisk_form) {
        return Err(Status::BadRequest);
    }
    let authorization = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))
        .map(|h| h.value);
    Ok(Some(Request {
        method,
        path,
        query,
        version,
        authorization,
    }))
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

/// A complete short answer: a `text/plain` body (omitted for `HEAD`), its length, and
/// `Connection: close`. `extra` holds further header lines, each ending in CRLF.
pub fn answer(status: Status, version: Version, head_only: bool, extra: &str) -> Vec<u8> {
    let body = format!("{} {}\n", status.code(), status.reason());
    response(
        status,
        version,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        head_only,
        extra,
    )
}

/// A complete response with a body (omitted for `HEAD`, its length still given; a 204
/// has neither, as RFC 9110 requires).
pub fn response(
    status: Status,
    version: Version,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    extra: &str,
) -> Vec<u8> {
    let mut out = String::with_capacity(160 + extra.len());
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
    let _ = write!(out, "Cache-Control: no-store\r\nConnection: close\r\n{extra}\r\n");
    let mut out = out.into_bytes();
    if !head_only && status != Status::NoContent {
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

    #[test]
    fn parses_get_and_head_of_both_versions() {
        let req = parsed("GET /cam?action=stream&x HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (req.method, req.path, req.version),
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
    fn every_prefix_of_a_request_is_incomplete() {
        let head = "GET / HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n";
        for end in 0..head.len() {
            assert_eq!(parsed(&head[..end]), Ok(None), "prefix {end}");
        }
        assert!(parsed(head).unwrap().is_some());
    }

    #[test]
    fn refuses_what_is_not_http_1() {
        for bad in [
            "GET / HTTP/2.0\r\n\r\n",
            "hello\r\n\r\n",
            "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\rHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET nopath HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(parsed(bad), Err(Status::BadRequest), "{bad:?}");
        }
    }

    #[test]
    fn refuses_heads_over_the_cap() {
        let long = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "y".repeat(MAX_HEAD));
        assert_eq!(parsed(&long), Err(Status::HeadTooLarge));
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X{i}: y\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(parsed(&many), Err(Status::HeadTooLarge));
    }

    #[test]
    fn answers_carry_length_and_close() {
        let text = String::from_utf8(answer(Status::NotFound, Version::Http11, false, "")).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 14\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n404 Not Found\n"));
        let head = answer(
            Status::MethodNotAllowed,
            Version::Http10,
            true,
            "Allow: GET, HEAD\r\n",
        );
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.0 405"));
        assert!(head.ends_with("Allow: GET, HEAD\r\n\r\n"));
        let empty = answer(Status::NoContent, Version::Http11, false, "");
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
