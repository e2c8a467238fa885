//! Helpers for the hardening tests: the real binary on `127.0.0.1:0`, raw HTTP over real
//! sockets, a multipart reader, and what `/proc` says about the server process.
//!
//! Every wait is bounded (a deadline, then a panic that says what was awaited), every
//! socket has read and write timeouts, and every process started here is killed and
//! reaped when its guard drops, so a failing test leaves nothing behind.
//!
//! (Named `support`, not `common`: another branch adds `tests/common/mod.rs`.)

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Socket timeouts: long enough for a loaded machine, short enough that a stuck test
/// fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `probe` every 20 ms until it returns `Some`, or panics after `timeout` naming
/// `what` (with the last state `probe` reported, for the failure message).
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A child process that is killed and reaped when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server binary, started with `--listen 127.0.0.1:0` and the given arguments.
pub struct Server {
    child: ChildGuard,
    pub addr: SocketAddr,
    pub pid: u32,
    /// Open descriptors right after start-up (listener, epoll, signal pipe, stdio).
    pub base_fds: usize,
    /// Header lines (each ending in CRLF) the helpers' own requests carry: credentials.
    pub request_headers: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(args, |_| {})
    }

    /// Like [`Server::start`], with a chance to adjust the command (limits, for one).
    pub fn start_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mixreplace"));
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = ChildGuard(command.spawn().expect("start the mixreplace binary"));
        let pid = child.0.id();
        let stdout = child.0.stdout.take().expect("stdout is piped");
        let stderr = child.0.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || {
            // Read stdout to its end so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = ready_tx.send(line);
            }
        });
        let line = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no 'listening on' line; stderr: {:?}", lines.lock().unwrap()));
        let addr = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let mut server = Server {
            child,
            addr,
            pid,
            base_fds: 0,
            request_headers: String::new(),
            stderr: lines,
        };
        server.base_fds = server.fd_count();
        server
    }

    /// `GET path` as a complete exchange.
    pub fn get(&self, path: &str) -> Response {
        exchange(self.addr, self.request("GET", path).as_bytes())
    }

    /// A request head with the helpers' header lines.
    pub fn request(&self, method: &str, path: &str) -> String {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{}\r\n",
            self.request_headers
        )
    }

    pub fn stats(&self) -> Stats {
        let response = self.get("/stats");
        assert_eq!(response.status, 200, "GET /stats: {}", response.head);
        Stats(String::from_utf8(response.body).expect("stats are UTF-8"))
    }

    /// `/stats`, or `None` while the server refuses it (`503` at the client cap).
    pub fn try_stats(&self) -> Option<Stats> {
        let response = try_exchange(self.addr, self.request("GET", "/stats").as_bytes()).ok()?;
        (response.status == 200).then(|| Stats(String::from_utf8_lossy(&response.body).into_owned()))
    }

    /// Open file descriptors of the server process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// The numbers of the server's open file descriptors.
    pub fn fd_numbers(&self) -> Vec<u64> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|dir| {
                dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Resident memory (`VmRSS`), KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time the server used so far (user + system).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("read /proc/PID/stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').expect("comm field") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after comm.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_micros(ticks * 1_000_000 / per_second)
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child,
        // not yet reaped (the guard reaps it only when dropped).
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid);
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.child.wait_timeout(timeout)
    }

    /// Waits until the server holds no connection but the `/stats` request asking, and
    /// its descriptors are back to the start-up count.
    pub fn assert_clean(&self) {
        wait_for(
            "clients back to 1 (the /stats request)",
            Duration::from_secs(10),
            || {
                let stats = self.stats();
                match stats.get("clients") {
                    1 => Ok(()),
                    n => Err(format!("clients {n}")),
                }
            },
        );
        wait_for(
            "open descriptors back to the start-up count",
            Duration::from_secs(10),
            || match self.fd_count() {
                n if n == self.base_fds => Ok(()),
                n => Err(format!("{n} open, {} at start", self.base_fds)),
            },
        );
    }

    /// Waits until the server has exactly `n` descriptors open.
    pub fn wait_fds(&self, n: usize) {
        wait_for(
            &format!("{n} open descriptors"),
            Duration::from_secs(10),
            || match self.fd_count() {
                open if open == n => Ok(()),
                open => Err(format!("{open} open")),
            },
        );
    }

    /// Waits until every connection but streams being watched (and the `/stats` request
    /// asking) is gone: for checks while a [`Watcher`] runs.
    pub fn assert_settled(&self) {
        wait_for("only viewers left open", Duration::from_secs(10), || {
            let stats = self.stats();
            let (clients, viewers) = (stats.get("clients"), stats.viewers());
            let fds = self.fd_count();
            // The /stats connection may still be open while the descriptors are counted.
            if clients == 1 + viewers && fds <= self.base_fds + viewers as usize + 1 {
                Ok(())
            } else {
                Err(format!(
                    "clients {clients}, viewers {viewers}, fds {fds} (start-up {})",
                    self.base_fds
                ))
            }
        });
    }
}

/// The JSON of `/stats`, read by key (every key this test suite reads is unique in it).
#[derive(Clone, Debug)]
pub struct Stats(pub String);

impl Stats {
    pub fn get(&self, key: &str) -> u64 {
        let needle = format!("\"{key}\":");
        let at = self
            .0
            .find(&needle)
            .unwrap_or_else(|| panic!("no {needle} in {}", self.0))
            + needle.len();
        let digits: String = self.0[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a whole number in {}", self.0))
    }

    /// Viewers of every stream, added up.
    pub fn viewers(&self) -> u64 {
        let at = self.0.find("\"viewers\":{").expect("viewers") + "\"viewers\":{".len();
        let end = at + self.0[at..].find('}').expect("end of viewers");
        self.0[at..end]
            .split(',')
            .filter_map(|pair| pair.rsplit_once(':'))
            .map(|(_, n)| n.parse::<u64>().expect("viewer count"))
            .sum()
    }
}

/// A parsed response: status, head, body (by `Content-Length`), and how it ended.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    /// After the response the server closed its side cleanly (EOF, not a reset).
    pub clean_eof: bool,
    /// Bytes that followed the body before EOF (there should be none).
    pub trailing: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Sends `request` on a new connection and reads the one response.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    try_exchange(addr, request)
        .unwrap_or_else(|e| panic!("exchange {:?}: {e}", String::from_utf8_lossy(request)))
}

pub fn try_exchange(addr: SocketAddr, request: &[u8]) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(request)?;
    read_response(&mut stream, false)
}

/// Reads a response head, its body (`Content-Length`, none for `HEAD` and `204`), and
/// then to EOF, noting whether the server closed cleanly.
pub fn read_response(stream: &mut TcpStream, head_only: bool) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::other("response head over 64 KiB"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("EOF inside the head after {:?}", String::from_utf8_lossy(&buf)),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not a status line: {head:?}")))?;
    let mut response = Response {
        status,
        head,
        body: Vec::new(),
        clean_eof: false,
        trailing: Vec::new(),
    };
    let length = match (head_only || status == 204, response.header("content-length")) {
        (true, _) | (false, None) => 0,
        (false, Some(n)) => n.parse::<usize>().map_err(io::Error::other)?,
    };
    let mut rest = buf.split_off(head_end);
    while rest.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF inside the body",
            ));
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    response.trailing = rest.split_off(length);
    response.body = rest;
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => {
                response.clean_eof = true;
                break;
            }
            Ok(n) => response.trailing.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
        if response.trailing.len() > 1 << 20 {
            break;
        }
    }
    Ok(response)
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A small deterministic generator (xorshift64*), for reproducible "random" input.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One part of a multipart stream.
#[derive(Debug)]
pub struct Part {
    pub content_type: String,
    pub body: Vec<u8>,
    /// `X-Timestamp` in microseconds since the epoch.
    pub stamp_us: u64,
    /// When its last byte (and the delimiter after it) arrived.
    pub arrived: Instant,
    /// It ended with the closing delimiter.
    pub last: bool,
}

/// What a stream reader got next.
#[derive(Debug)]
pub enum Item {
    Part(Part),
    /// The stream ended after its last part (`--B--` right after the body).
    End,
    /// The stream ended with an empty, unstamped final part of the stream's type and the
    /// closing delimiter: a graceful stop.
    Stopped,
}

/// Reads a `multipart/x-mixed-replace` body part by part, checking the framing exactly.
pub struct PartReader<R> {
    reader: BufReader<R>,
    boundary: String,
    started: bool,
    ended: bool,
}

impl<R: Read> PartReader<R> {
    pub fn new(reader: BufReader<R>, boundary: &str) -> Self {
        PartReader {
            reader,
            boundary: boundary.to_owned(),
            started: false,
            ended: false,
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        self.reader.get_mut()
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.reader).take(16 * 1024).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(bad(format!(
                "unterminated line {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|e| bad(e.to_string()))
    }

    fn expect(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut got = vec![0; bytes.len()];
        self.reader.read_exact(&mut got)?;
        if got != bytes {
            return Err(bad(format!(
                "expected {:?}, got {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&got)
            )));
        }
        Ok(())
    }

    /// The next part, or how the stream ended. After an end, the connection must close.
    pub fn next_item(&mut self) -> io::Result<Item> {
        if self.ended {
            return Err(bad("read past the end of the stream".into()));
        }
        let dash = format!("--{}", self.boundary);
        if !self.started {
            self.started = true;
            let line = self.line()?;
            if line != dash {
                return Err(bad(format!("expected the opening {dash:?}, got {line:?}")));
            }
        }
        let mut content_type = None;
        let mut length = None;
        let mut stamp_us = None;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("bad part header {line:?}")))?;
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-type" => content_type = Some(value.to_owned()),
                "content-length" => length = Some(value.parse::<usize>().map_err(|e| bad(e.to_string()))?),
                "x-timestamp" => stamp_us = Some(parse_stamp(value)?),
                _ => {}
            }
        }
        let length = length.ok_or_else(|| bad("part without Content-Length".into()))?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        self.expect(format!("\r\n{dash}").as_bytes())?;
        let mut after = [0u8; 2];
        self.reader.read_exact(&mut after)?;
        let last = match &after {
            b"\r\n" => false,
            b"--" => {
                self.expect(b"\r\n")?;
                true
            }
            other => return Err(bad(format!("bad delimiter end {other:?}"))),
        };
        if stamp_us.is_none() && length == 0 && last {
            // A typed, empty, unstamped part and the closing delimiter: a graceful stop.
            self.ended = true;
            self.expect_eof()?;
            return Ok(Item::Stopped);
        }
        let part = Part {
            content_type: content_type.ok_or_else(|| bad("part without Content-Type".into()))?,
            body,
            stamp_us: stamp_us.ok_or_else(|| bad("part without X-Timestamp".into()))?,
            arrived: Instant::now(),
            last,
        };
        Ok(Item::Part(part))
    }

    /// After the last part: the stream is over.
    pub fn finish_after_last(&mut self) -> io::Result<Item> {
        self.ended = true;
        self.expect_eof()?;
        Ok(Item::End)
    }

    fn expect_eof(&mut self) -> io::Result<()> {
        let mut extra = [0u8; 64];
        match self.reader.read(&mut extra)? {
            0 => Ok(()),
            n => Err(bad(format!(
                "bytes after the closing delimiter: {:?}",
                String::from_utf8_lossy(&extra[..n])
            ))),
        }
    }
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// `1763722800.500000` → microseconds.
fn parse_stamp(value: &str) -> io::Result<u64> {
    let (secs, micros) = value
        .split_once('.')
        .ok_or_else(|| bad(format!("bad X-Timestamp {value:?}")))?;
    if micros.len() != 6 {
        return Err(bad(format!("X-Timestamp {value:?} needs 6 decimals")));
    }
    let secs: u64 = secs
        .parse()
        .map_err(|_| bad(format!("bad X-Timestamp {value:?}")))?;
    let micros: u64 = micros
        .parse()
        .map_err(|_| bad(format!("bad X-Timestamp {value:?}")))?;
    Ok(secs * 1_000_000 + micros)
}

/// Sends a stream request and reads its head; returns the part reader and the head.
pub fn open_stream(
    addr: SocketAddr,
    path: &str,
    extra_headers: &str,
) -> io::Result<(PartReader<TcpStream>, Response)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra_headers}\r\n");
    open_stream_raw(addr, request.as_bytes())
}

/// Sends `request` as it is (pipelined extras, a body…) and reads a stream's head.
pub fn open_stream_raw(addr: SocketAddr, request: &[u8]) -> io::Result<(PartReader<TcpStream>, Response)> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(request)?;
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let before = head.len();
        (&mut reader).take(16 * 1024).read_until(b'\n', &mut head)?;
        if head.len() == before {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF in the response head",
            ));
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let response = Response {
        status,
        head,
        body: Vec::new(),
        clean_eof: false,
        trailing: Vec::new(),
    };
    if status != 200 {
        return Err(io::Error::other(format!("stream answered {}", response.head)));
    }
    let content_type = response.header("content-type").unwrap_or_default().to_owned();
    let boundary = content_type
        .strip_prefix("multipart/x-mixed-replace; boundary=")
        .ok_or_else(|| io::Error::other(format!("not a stream: {content_type:?}")))?;
    Ok((PartReader::new(reader, boundary), response))
}

/// The demo's delays after each part, microseconds: 6 × 500 ms, the PNG's 1 s, 8 × 300 ms.
pub const DEMO_DELAYS_US: [u64; 15] = [
    500_000, 500_000, 500_000, 500_000, 500_000, 500_000, 1_000_000, 300_000, 300_000, 300_000, 300_000,
    300_000, 300_000, 300_000, 300_000,
];

/// How late a demo part may arrive (generous: the machine is shared and loaded).
pub const LATE_MARGIN: Duration = Duration::from_millis(300);

/// Watches the demo stream once from start to end and checks it: 15 parts, the closing
/// delimiter, exact `X-Timestamp` spacing, and each part within [`LATE_MARGIN`] of its
/// due time (counted from the request).
pub fn watch_demo(addr: SocketAddr, extra_headers: &str) -> Result<(), String> {
    let requested = Instant::now();
    let (mut reader, _) = open_stream(addr, "/", extra_headers).map_err(|e| format!("open: {e}"))?;
    let mut parts = Vec::new();
    loop {
        match reader
            .next_item()
            .map_err(|e| format!("part {}: {e}", parts.len()))?
        {
            Item::Part(part) => {
                let last = part.last;
                parts.push(part);
                if last {
                    break;
                }
            }
            other => {
                return Err(format!(
                    "stream ended early after {} parts: {other:?}",
                    parts.len()
                ));
            }
        }
        if parts.len() > DEMO_DELAYS_US.len() {
            return Err("more parts than the demo has".into());
        }
    }
    reader
        .finish_after_last()
        .map_err(|e| format!("after the last part: {e}"))?;
    if parts.len() != DEMO_DELAYS_US.len() {
        return Err(format!("{} parts, expected 15", parts.len()));
    }
    let mut due = Duration::ZERO;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            let spacing = part.stamp_us.wrapping_sub(parts[i - 1].stamp_us);
            if spacing != DEMO_DELAYS_US[i - 1] {
                return Err(format!("X-Timestamp spacing before part {i}: {spacing} µs"));
            }
            due += Duration::from_micros(DEMO_DELAYS_US[i - 1]);
        }
        let at = part.arrived - requested;
        // Never early (deadlines round up), at most LATE_MARGIN late.
        if at + Duration::from_millis(5) < due || at > due + LATE_MARGIN {
            return Err(format!("part {i} arrived at {at:?}, due at {due:?}"));
        }
    }
    Ok(())
}

/// A well-behaved demo client running beside hostile ones: it watches the demo again and
/// again until told to stop, and every run must be complete and on time.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<usize, String>>>,
}

impl Watcher {
    pub fn start(addr: SocketAddr) -> Watcher {
        Watcher::start_with(addr, "")
    }

    /// `extra_headers`: header lines (each ending in CRLF) for its requests.
    pub fn start_with(addr: SocketAddr, extra_headers: &str) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let extra = extra_headers.to_owned();
        let handle = thread::spawn(move || {
            let mut runs = 0;
            // Bounded: at most 20 runs (about two minutes).
            while runs < 20 {
                watch_demo(addr, &extra).map_err(|e| format!("demo run {runs}: {e}"))?;
                runs += 1;
                if flag.load(Ordering::SeqCst) {
                    break;
                }
            }
            Ok(runs)
        });
        Watcher {
            stop,
            handle: Some(handle),
        }
    }

    /// Lets the current run finish and checks every run; returns how many there were.
    pub fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let handle = self.handle.take().expect("finished once");
        match handle.join() {
            Ok(Ok(runs)) => runs,
            Ok(Err(e)) => panic!("the well-behaved demo client failed: {e}"),
            Err(_) => panic!("the demo client thread panicked"),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // On a failing test, do not wait for the demo to end.
        self.stop.store(true, Ordering::SeqCst);
    }
}
