//! The access log (`--access-log FILE|-`): one line per finished request, in the
//! combined log format with the duration added:
//!
//! ```text
//! 127.0.0.1 - alice [30/Nov/2026:10:00:00 +0000] "GET /live HTTP/1.1" 200 123456 "-" "curl/8.1" 12.345
//! ```
//!
//! Fields: the client address (behind a trusted proxy, the one it gave: see
//! `routes::proxies`; `-` when the socket has none), `-` (identd), the Basic
//! authentication user the request named (`-` without; named, not necessarily accepted:
//! a `401` shows who tried), the time the request head was complete (UTC), the request
//! line as sent, the status, the bytes written for it (head included, as nginx's
//! `$bytes_sent`; a stream's whole length), `Referer`, `User-Agent`, and the seconds from
//! the head to the last byte written (a stream's whole life), to the millisecond.
//! Quotes, backslashes, controls and bytes past ASCII are written `\xHH` (a space too, in
//! the user), so a client cannot forge a line or a field.
//!
//! Invariants:
//! - Writing never blocks the loop for long and never stops it: lines go to a buffer the
//!   loop writes out once a turn ([`AccessLog::flush`]), or at once when it passes
//!   [`FLUSH_AT`]. A failed write (a full disk, a closed pipe) drops what was buffered,
//!   counts it, and warns at most once per 10 s: memory stays bounded and the
//!   streams go on.
//! - No allocation per line once the buffer has grown: a line is formatted straight into
//!   it, the request head it reads is copied into a buffer its connection reuses from
//!   one request to the next, and the date is formatted once per second.
//! - On a kept-alive connection each request has its own line, written when its answer
//!   is all sent, in the order the requests came; its bytes are what the connection
//!   wrote past [`Entry::sent_before`].
//! - [`AccessLog::reopen`] (SIGHUP, for logrotate) writes out what is buffered to the old
//!   file first, then opens the path again; if that fails the old file is kept.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use log::{info, warn};

use crate::clock::Micros;
use crate::date;

/// Buffered lines past this are written at once, not at the end of the turn.
pub const FLUSH_AT: usize = 64 * 1024;
/// Failed writes are warned about at most this often.
const WARN_EVERY: Micros = 10_000_000;
/// Header fields read from a request head, as `http::parse` allows.
const MAX_HEADERS: usize = 64;
/// The longest `user:password` decoded from `Authorization`; a longer one logs `-`.
const MAX_CREDENTIALS: usize = 256;

/// What one request leaves for its log line, kept by its connection until it is written.
#[derive(Debug, Default)]
pub struct Entry {
    /// The request head as received (after any PROXY header); the buffer is the
    /// connection's, reused for each of its requests.
    pub head: Vec<u8>,
    pub client: Option<IpAddr>,
    pub status: u16,
    /// Loop time when the head was complete.
    pub received: Micros,
    /// The connection's byte count when the request began: its answer is what is
    /// written past it.
    pub sent_before: u64,
}

enum Target {
    Stderr,
    File { path: PathBuf, file: File },
}

/// The access log, or no log at all ([`AccessLog::off`], the default).
pub struct AccessLog {
    target: Option<Target>,
    buf: Vec<u8>,
    /// The second whose date `date` holds.
    date_second: u64,
    date: [u8; date::LOG_TIME_LEN],
    /// Writes that failed, and the bytes they dropped.
    failures: u64,
    dropped: u64,
    warned_at: Option<Micros>,
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            None => "off".into(),
            Some(Target::Stderr) => "stderr".into(),
            Some(Target::File { path, .. }) => path.display().to_string(),
        };
        f.debug_struct("AccessLog")
            .field("target", &target)
            .field("buffered", &self.buf.len())
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog::off()
    }
}

impl AccessLog {
    pub fn off() -> AccessLog {
        AccessLog {
            target: None,
            buf: Vec::new(),
            date_second: u64::MAX,
            date: [b' '; date::LOG_TIME_LEN],
            failures: 0,
            dropped: 0,
            warned_at: None,
        }
    }

    /// Appends to `path` (created if missing, mode 0640), or writes to standard error
    /// for `-`.
    pub fn open(path: &Path) -> io::Result<AccessLog> {
        let target = match path.as_os_str() == "-" {
            true => Target::Stderr,
            false => Target::File {
                path: path.to_owned(),
                file: append(path)?,
            },
        };
        Ok(AccessLog {
            target: Some(target),
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            ..AccessLog::off()
        })
    }

    pub fn is_on(&self) -> bool {
        self.target.is_some()
    }

    /// The lines not written out yet (the connection tests read them here).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Writes failed so far (each dropped what was buffered).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Writes out what is buffered, then opens the file's path again (logrotate moved
    /// the file away). Standard error, or no log, has nothing to reopen.
    pub fn reopen(&mut self, now: Micros) {
        self.flush(now);
        let Some(Target::File { path, file }) = &mut self.target else {
            info!("SIGHUP: no access log file to reopen");
            return;
        };
        match append(path) {
            Ok(new) => {
                *file = new;
                info!("SIGHUP: access log {} reopened", path.display());
            }
            Err(e) => warn!(
                "SIGHUP: cannot reopen the access log {}: {e}; still writing to the old file",
                path.display()
            ),
        }
    }

    /// Adds the line of a finished request; `sent`: the connection's byte count now,
    /// `epoch_us`: the request's `received` as wall-clock time, `now`: loop time.
    pub fn write(&mut self, entry: &Entry, sent: u64, epoch_us: u64, now: Micros) {
        if self.target.is_none() {
            return;
        }
        let fields = Fields::of(&entry.head);
        match entry.client {
            Some(ip) => {
                let _ = write!(self.buf, "{ip}");
            }
            None => self.buf.push(b'-'),
        }
        self.buf.extend_from_slice(b" - ");
        let mut credentials = [0; MAX_CREDENTIALS];
        match user(fields.authorization, &mut credentials) {
            Some(user) if !user.is_empty() => escape(&mut self.buf, user, true),
            _ => self.buf.push(b'-'),
        }
        self.buf.extend_from_slice(b" [");
        self.set_date(epoch_us / 1_000_000);
        self.buf.extend_from_slice(&self.date);
        self.buf.extend_from_slice(b"] \"");
        match fields.line.is_empty() {
            // No request line: an answer before any (503 past the client cap).
            true => self.buf.push(b'-'),
            false => escape(&mut self.buf, fields.line, false),
        }
        let duration = now.saturating_sub(entry.received);
        let bytes = sent.saturating_sub(entry.sent_before);
        let _ = write!(self.buf, "\" {} {bytes} \"", entry.status);
        quoted_or_dash(&mut self.buf, fields.referer);
        self.buf.extend_from_slice(b" \"");
        quoted_or_dash(&mut self.buf, fields.agent);
        let _ = writeln!(
            self.buf,
            " {}.{:03}",
            duration / 1_000_000,
            duration / 1000 % 1000
        );
        if self.buf.len() >= FLUSH_AT {
            self.flush(now);
        }
    }

    /// Writes out the buffered lines (the loop calls it once a turn).
    pub fn flush(&mut self, now: Micros) {
        if self.buf.is_empty() {
            return;
        }
        let written = match &mut self.target {
            None => Ok(()),
            Some(Target::Stderr) => io::stderr().lock().write_all(&self.buf),
            Some(Target::File { file, .. }) => file.write_all(&self.buf),
        };
        if let Err(e) = written {
            self.failures += 1;
            self.dropped += self.buf.len() as u64;
            self.warn_failed(&e, now);
        }
        self.buf.clear();
    }

    fn warn_failed(&mut self, e: &io::Error, now: Micros) {
        if self.warned_at.is_some_and(|at| now < at + WARN_EVERY) {
            return;
        }
        self.warned_at = Some(now);
        warn!(
            "access log: {e}; {} writes failed so far, {} bytes of lines dropped",
            self.failures, self.dropped
        );
    }

    /// `30/Nov/2026:10:00:00 +0000`, formatted again only when the second changes.
    fn set_date(&mut self, second: u64) {
        if second != self.date_second {
            self.date_second = second;
            self.date = date::log_time(second);
        }
    }
}

/// Opens `path` for appending, creating it readable by its owner and group only (an
/// access log names clients and users).
fn append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// What a line shows of a request head.
struct Fields<'h> {
    line: &'h [u8],
    authorization: Option<&'h [u8]>,
    referer: Option<&'h [u8]>,
    agent: Option<&'h [u8]>,
}

impl<'h> Fields<'h> {
    /// The first line as sent, and the headers when the head parses (a `400`'s may not).
    fn of(head: &'h [u8]) -> Fields<'h> {
        // Empty lines before a request line are allowed (RFC 9112 §2.2) and skipped.
        let start = head
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(head.len());
        let rest = &head[start..];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut storage);
        let headers: &[httparse::Header<'h>] = match request.parse(head) {
            Ok(httparse::Status::Complete(_)) => request.headers,
            _ => &[],
        };
        let find = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        Fields {
            line,
            authorization: find("authorization"),
            referer: find("referer"),
            agent: find("user-agent"),
        }
    }
}

/// The user of `Basic` credentials, decoded into `out`.
fn user<'o>(authorization: Option<&[u8]>, out: &'o mut [u8; MAX_CREDENTIALS]) -> Option<&'o [u8]> {
    let value = authorization?.trim_ascii();
    let split = value.iter().position(|&b| b == b' ')?;
    let (scheme, token) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(token.trim_ascii(), out)
        .ok()?;
    let decoded = &out[..n];
    Some(decoded.split(|&b| b == b':').next().unwrap_or(decoded))
}

fn quoted_or_dash(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => {
            escape(out, value, false);
            out.push(b'"');
        }
        None => {
            // The opening quote is out already: `"-"`.
            out.extend_from_slice(b"-\"");
        }
    }
}

/// Printable ASCII as is; `"`, `\`, controls, bytes past ASCII (and a space when
/// `space`) as `\xHH`.
fn escape(out: &mut Vec<u8>, bytes: &[u8], space: bool) {
    for &b in bytes {
        let plain = (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' && !(space && b == b' ');
        if plain {
            out.push(b);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log into a buffer: `target` only has to be on for `write` to format.
    fn buffered() -> AccessLog {
        AccessLog {
            target: Some(Target::Stderr),
            ..AccessLog::off()
        }
    }

    fn line(head: &[u8], client: Option<&str>, status: u16, sent: u64, elapsed: Micros) -> String {
        let mut log = buffered();
        let entry = Entry {
            head: head.to_vec(),
            client: client.map(|c| c.parse().unwrap()),
            status,
            received: 1_000,
            sent_before: 100,
        };
        // 2026-11-30T10:00:00Z
        log.write(&entry, 100 + sent, 1_796_032_800_000_000, 1_000 + elapsed);
        String::from_utf8(std::mem::take(&mut log.buf)).unwrap()
    }

    #[test]
    fn a_line_has_the_combined_fields_and_the_duration() {
        let head = b"GET /live?x=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: curl/8.1\r\n\
                     Referer: http://t/view\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n";
        assert_eq!(
            line(head, Some("127.0.0.1"), 200, 123_456, 12_345_678),
            "127.0.0.1 - alice [30/Nov/2026:10:00:00 +0000] \"GET /live?x=1 HTTP/1.1\" 200 123456 \
             \"http://t/view\" \"curl/8.1\" 12.345\n"
        );
        assert_eq!(
            line(b"GET / HTTP/1.0\r\n\r\n", Some("2001:db8::1"), 404, 0, 999),
            "2001:db8::1 - - [30/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.0\" 404 0 \"-\" \"-\" 0.000\n"
        );
    }

    #[test]
    fn a_client_cannot_forge_a_line_or_a_field() {
        let head = b"\r\nGET /\"x\\ HTTP/1.1\r\nUser-Agent: a\" \"b\xc3\xa9\r\n\
                     Authorization: Basic YSBiOmM=\r\n\r\n";
        assert_eq!(
            line(head, None, 400, 5, 1_000),
            "- - a\\x20b [30/Nov/2026:10:00:00 +0000] \"GET /\\x22x\\x5C HTTP/1.1\" 400 5 \
             \"-\" \"a\\x22 \\x22b\\xC3\\xA9\" 0.001\n"
        );
        // A head that does not parse still shows its first line.
        assert_eq!(
            line(b"BAD\x01LINE\r\n\r\n", None, 400, 0, 0),
            "- - - [30/Nov/2026:10:00:00 +0000] \"BAD\\x01LINE\" 400 0 \"-\" \"-\" 0.000\n"
        );
    }

    #[test]
    fn a_failed_write_drops_the_buffer_and_counts() {
        let dir = std::env::temp_dir().join(format!("mixreplace-access-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let mut log = AccessLog::open(&path).unwrap();
        let entry = Entry {
            head: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            ..Entry::default()
        };
        log.write(&entry, 10, 0, 0);
        log.flush(0);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        // /dev/full: every write fails with ENOSPC, as a full disk does.
        if let Ok(full) = OpenOptions::new().append(true).open("/dev/full") {
            log.target = Some(Target::File {
                path: "/dev/full".into(),
                file: full,
            });
            log.write(&entry, 10, 0, 0);
            log.flush(0);
            log.write(&entry, 10, 0, 1);
            log.flush(1);
            assert_eq!(log.failures(), 2);
            assert!(log.buf.is_empty());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
