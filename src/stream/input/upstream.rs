//! The `relay:` input's protocol, sans I/O: the upstream URL, the request, the response
//! head, the body through a [`Demux`], and the reconnect backoff. The loop side owns the
//! socket, the timers and the Feed; it hands this module bytes and takes frames.
//!
//! One upstream connection per relay: `GET PATH HTTP/1.1` with `Host`, `Connection:
//! close` and, when the URL carries credentials (`http://user:pass@host/…`, percent-
//! escapes decoded) or the spec gives them, `Authorization: Basic`. The answer must be a
//! `200` with a `multipart/*` Content-Type (or none: the boundary is then learnt from
//! the body); anything else is an [`UpstreamError`] that the loop logs and retries after
//! the [`Backoff`]. The body may be chunked, have a length, or run to the close.
//!
//! Invariants: memory per relay is the head (at most [`MAX_RESPONSE_HEAD`]) or the
//! demuxer's bound, never both; no clock is read here (the loop passes times in).

use std::borrow::Cow;
use std::fmt;

use base64::Engine;

use crate::clock::Micros;
use crate::http;
use crate::stream::input::demux::{Demux, DemuxStats, Flow, Transfer};
use crate::wire;

/// The longest response head accepted from an upstream.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Most header lines accepted in an upstream's response head.
const MAX_RESPONSE_HEADERS: usize = 64;

/// A `relay:` URL: `http://[user[:password]@]host[:port][/path][?query]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayUrl {
    /// The host to connect to: a name, an IPv4 address or an IPv6 one (no brackets).
    pub host: String,
    pub port: u16,
    /// `Host` header value: the authority as written, without credentials.
    pub authority: String,
    /// The request target: path and query, `/` when the URL has none.
    pub target: String,
    /// `user:password`, decoded, when the URL carries credentials.
    pub credentials: Option<String>,
}

impl RelayUrl {
    /// Parses a `relay:` URL; the error is one line for the command line.
    pub fn parse(url: &str) -> Result<RelayUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("URL {url:?}: only http:// is supported"))?;
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) || target.contains('#') {
            return Err(format!(
                "relay URL {url:?}: spaces, controls or a fragment in the path"
            ));
        }
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let decoded = http::percent_decode(userinfo)
                    .ok_or_else(|| format!("URL {url:?}: bad escape in the credentials"))?;
                (Some(decoded.into_owned()), host_port)
            }
            None => (None, authority),
        };
        let (host, port) =
            split_host_port(host_port).ok_or_else(|| format!("URL {url:?}: bad host or port"))?;
        Ok(RelayUrl {
            host: host.to_owned(),
            port,
            authority: host_port.to_owned(),
            target,
            credentials,
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (port 80 when absent).
fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':').map_or(Ok(""), Ok::<&str, ()>).ok()?)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, port),
            Some(_) => return None,
            None => (text, ""),
        }
    };
    if text.starts_with('[') && !text.ends_with(']') && port.is_empty() {
        return None;
    }
    let port = match port {
        "" => 80,
        port => port.parse().ok().filter(|&p| p > 0)?,
    };
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"-._~:%".contains(&b);
    (!host.is_empty() && host.bytes().all(valid)).then_some((host, port))
}

/// Why an upstream connection was given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamError {
    /// The answer's status was not 200.
    Status(u16),
    /// The answer's head or body could not be read (the reason).
    Framing(Cow<'static, str>),
    /// The connection closed (the body's end, or before a whole head).
    Closed,
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Status(code) => write!(f, "answered {code}"),
            UpstreamError::Framing(why) => write!(f, "unreadable answer: {why}"),
            UpstreamError::Closed => f.write_str("closed the connection"),
        }
    }
}

/// One relay's upstream protocol: a request to write, then a response to read, anew for
/// each connection ([`Upstream::restart`]).
#[derive(Debug)]
pub struct Upstream {
    request: Box<[u8]>,
    max_frame: usize,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// The response head so far.
    Head(Vec<u8>),
    /// Boxed: a demuxer is large, a head buffer three words.
    Body(Box<Demux>),
}

impl Upstream {
    /// The protocol for `url`; `credentials` (`user:password`) from the spec win over the
    /// URL's.
    pub fn new(url: &RelayUrl, credentials: Option<&str>, max_frame: usize) -> Upstream {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mixreplace/{}\r\n\
             Accept: multipart/x-mixed-replace, multipart/*;q=0.9, */*;q=0.1\r\nConnection: close\r\n",
            url.target,
            url.authority,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(credentials) = credentials.or(url.credentials.as_deref()) {
            let token = base64::engine::general_purpose::STANDARD.encode(credentials);
            request.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        Upstream {
            request: request.into_bytes().into_boxed_slice(),
            max_frame,
            phase: Phase::Head(Vec::new()),
        }
    }

    /// The request to write on each new connection.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// A new connection: the next bytes are a response head.
    pub fn restart(&mut self) {
        self.phase = Phase::Head(Vec::new());
    }

    /// Whether the response head has been read (the upstream is streaming).
    pub fn streaming(&self) -> bool {
        matches!(self.phase, Phase::Body(_))
    }

    /// The body's counters, while streaming.
    pub fn demux_stats(&self) -> Option<DemuxStats> {
        match &self.phase {
            Phase::Body(demux) => Some(demux.stats()),
            Phase::Head(_) => None,
        }
    }

    /// Reads bytes from the upstream; `on_frame` gets each complete frame. `Ok(())`: read
    /// on. An error ends this connection (the body's end is [`UpstreamError::Closed`]).
    pub fn on_data(&mut self, data: &[u8], on_frame: impl FnMut(&[u8])) -> Result<(), UpstreamError> {
        let body = match &mut self.phase {
            Phase::Body(demux) => return body_flow(demux, data, on_frame),
            Phase::Head(head) => {
                let keep = data.len().min(MAX_RESPONSE_HEAD + 1 - head.len());
                head.extend_from_slice(&data[..keep]);
                match parse_head(head, self.max_frame)? {
                    None if head.len() > MAX_RESPONSE_HEAD => {
                        return Err(UpstreamError::Framing("response head too large".into()));
                    }
                    None => return Ok(()),
                    Some((used, demux)) => {
                        // The body's first bytes: past the head in `head`, then the rest
                        // of `data` that was not kept there.
                        let mut rest = head[used..].to_vec();
                        rest.extend_from_slice(&data[keep..]);
                        self.phase = Phase::Body(Box::new(demux));
                        rest
                    }
                }
            }
        };
        match &mut self.phase {
            Phase::Body(demux) => body_flow(demux, &body, on_frame),
            Phase::Head(_) => unreachable!("the head was just read"),
        }
    }

    /// The upstream closed the connection: a close-delimited last frame comes out (a
    /// part in progress is counted cut); always ends the connection.
    pub fn on_eof(&mut self, on_frame: impl FnMut(&[u8])) -> UpstreamError {
        if let Phase::Body(demux) = &mut self.phase {
            demux.finish(on_frame);
        }
        UpstreamError::Closed
    }
}

/// Body bytes through the demuxer: its end, or the closing delimiter, ends the connection.
fn body_flow(demux: &mut Demux, data: &[u8], on_frame: impl FnMut(&[u8])) -> Result<(), UpstreamError> {
    match demux.push(data, on_frame) {
        Ok(Flow::More) if demux.closed() => Err(UpstreamError::Closed),
        Ok(Flow::More) => Ok(()),
        Ok(Flow::Ended) => Err(UpstreamError::Closed),
        Err(why) => Err(UpstreamError::Framing(why.into())),
    }
}

/// A complete response head: its length and the body's demuxer. `Ok(None)`: read more.
fn parse_head(head: &[u8], max_frame: usize) -> Result<Option<(usize, Demux)>, UpstreamError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let used = match response.parse(head) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(UpstreamError::Framing(format!("response head: {e}").into())),
    };
    match response.code {
        Some(200) => {}
        code => return Err(UpstreamError::Status(code.unwrap_or(0))),
    }
    let find = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let content_type = find("content-type");
    if content_type.is_some_and(|value| !is_multipart(value)) {
        let shown = String::from_utf8_lossy(content_type.unwrap_or_default()).into_owned();
        return Err(UpstreamError::Framing(
            format!("Content-Type {shown:?} is not multipart").into(),
        ));
    }
    let transfer = Transfer::of(find("content-length"), find("transfer-encoding"))
        .map_err(|why| UpstreamError::Framing(why.into()))?;
    let demux =
        Demux::new(content_type, transfer, max_frame).map_err(|why| UpstreamError::Framing(why.into()))?;
    Ok(Some((used, demux)))
}

fn is_multipart(content_type: &[u8]) -> bool {
    let (essence, _) = wire::media_type(content_type);
    essence.len() > 10 && essence[..10].eq_ignore_ascii_case(b"multipart/")
}

/// Reconnect delays: 1 s, doubling to 30 s while attempts fail; back to 1 s once a
/// connection brings a frame (an origin that restarts is back within a second or two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    next: Micros,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Backoff::FIRST }
    }
}

impl Backoff {
    pub const FIRST: Micros = 1_000_000;
    pub const MAX: Micros = 30_000_000;

    /// A frame came: the upstream works.
    pub fn frame(&mut self) {
        self.next = Backoff::FIRST;
    }

    /// The connection failed: how long to wait before the next attempt.
    pub fn failed(&mut self) -> Micros {
        let delay = self.next;
        self.next = (self.next * 2).min(Backoff::MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = RelayUrl::parse("http://admin:p%40ss@cam.local:8080/stream?x=1").unwrap();
        assert_eq!(url.host, "cam.local");
        assert_eq!(url.port, 8080);
        assert_eq!(url.authority, "cam.local:8080");
        assert_eq!(url.target, "/stream?x=1");
        assert_eq!(url.credentials.as_deref(), Some("admin:p@ss"));
        let url = RelayUrl::parse("http://[::1]:81").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.target.as_str()),
            ("::1", 81, "/")
        );
        let url = RelayUrl::parse("http://192.168.4.1?action=stream").unwrap();
        assert_eq!((url.port, url.target.as_str()), (80, "/?action=stream"));
        for bad in [
            "https://cam/",
            "http://",
            "http://cam:0/",
            "http://cam:99999/",
            "http://cam:x/",
            "http://[::1/",
            "http://cam/a b",
            "http://a:b:c/",
        ] {
            assert!(RelayUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_request() {
        let url = RelayUrl::parse("http://u:p@cam:8080/s").unwrap();
        let request = String::from_utf8(Upstream::new(&url, None, 100).request().to_vec()).unwrap();
        assert!(
            request.starts_with("GET /s HTTP/1.1\r\nHost: cam:8080\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nAuthorization: Basic dTpw\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n"));
        let given = Upstream::new(&url, Some("a:b"), 100);
        assert!(String::from_utf8_lossy(given.request()).contains("Basic YTpi"));
    }

    fn frames_of(upstream: &mut Upstream, pieces: &[&[u8]]) -> (Vec<Vec<u8>>, Result<(), UpstreamError>) {
        let mut frames = Vec::new();
        for piece in pieces {
            let result = upstream.on_data(piece, |f: &[u8]| frames.push(f.to_vec()));
            if result.is_err() {
                return (frames, result);
            }
        }
        (frames, Ok(()))
    }

    #[test]
    fn answers() {
        let url = RelayUrl::parse("http://cam/").unwrap();
        let mut upstream = Upstream::new(&url, None, 100);
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n";
        for split in 1..ok.len() {
            upstream.restart();
            let (frames, result) = frames_of(&mut upstream, &[&ok[..split], &ok[split..]]);
            assert_eq!((frames, result), (vec![b"one".to_vec()], Ok(())), "{split}");
            assert!(upstream.streaming());
        }
        upstream.restart();
        let (_, result) = frames_of(&mut upstream, &[b"HTTP/1.1 401 Unauthorized\r\n\r\n"]);
        assert_eq!(result, Err(UpstreamError::Status(401)));
        upstream.restart();
        let (_, result) = frames_of(
            &mut upstream,
            &[b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"],
        );
        assert!(matches!(result, Err(UpstreamError::Framing(_))), "{result:?}");
        upstream.restart();
        let (_, result) = frames_of(&mut upstream, &[&[b'x'; MAX_RESPONSE_HEAD + 10]]);
        assert!(matches!(result, Err(UpstreamError::Framing(_))), "{result:?}");
        // The closing delimiter ends the connection; so does a close.
        upstream.restart();
        let (_, result) = frames_of(&mut upstream, &[ok, b"--b--\r\n"]);
        assert_eq!(result, Err(UpstreamError::Closed));
        assert_eq!(upstream.on_eof(|_: &[u8]| {}), UpstreamError::Closed);
    }

    #[test]
    fn backoff_doubles_to_30_s_and_starts_over_after_a_frame() {
        let mut backoff = Backoff::default();
        let delays: Vec<Micros> = (0..7).map(|_| backoff.failed() / 1_000_000).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        backoff.frame();
        assert_eq!(backoff.failed(), Backoff::FIRST);
    }
}
