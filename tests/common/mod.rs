//! The harness of the integration tests: the real `mixreplace` binary on `127.0.0.1:0`,
//! real sockets, and a strict reading of every byte that comes back.
//!
//! Invariants, so that a failing test never hangs and never leaves anything behind:
//! - every socket has read and write timeouts, and every loop has a deadline or a count;
//! - every spawned process (the server, curl, python) sits in a guard whose `Drop` kills
//!   and reaps it, also when the test panics;
//! - a child's stdout and stderr are drained by threads, so its pipes never fill up.
//!
//! What the server should send is spelled out here from the specification (the issue),
//! not taken from `src/`, so a change on one side cannot silently move the other.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub const BIN: &str = env!("CARGO_BIN_EXE_mixreplace");
/// The longest one socket operation may block (the demo's longest pause is 1 s).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The demo lasts 6.4 s; a whole stream must be read within this.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the server may take to print its ready line: a debug build on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
pub const GET_1_0: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

// ---------------------------------------------------------------------------------------
// Processes

/// Waits up to `timeout` for `child` to exit.
fn wait_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// A child process (curl, python, the binary run to completion), killed and reaped
/// when dropped.
pub struct Proc {
    child: Child,
    name: String,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// How a [`Proc`] ended.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl Proc {
    /// Spawns `command` with its output collected, feeding it `input` on stdin.
    pub fn spawn(mut command: Command, input: Option<Vec<u8>>) -> io::Result<Proc> {
        let stdin = if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
        let name = format!("{:?}", command.get_program());
        let mut child = command.spawn()?;
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("piped stdin");
            // A thread, so a child that does not read cannot block the test; stdin
            // closes when the thread ends.
            thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Ok(Proc {
            child,
            name,
            stdout,
            stderr,
        })
    }

    /// Waits for the exit; past `timeout` the process is killed and the test fails.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let Some(status) = wait_within(&mut self.child, timeout) else {
            kill_and_reap(&mut self.child);
            panic!("{} did not exit within {timeout:?}", self.name);
        };
        let join = |handle: Option<JoinHandle<Vec<u8>>>| {
            handle.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        Finished {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Runs the binary with `args` (and extra environment) to its exit, within 10 s.
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut command = Command::new(BIN);
    command.args(args).envs(env.iter().copied());
    Proc::spawn(command, None)
        .expect("spawn mixreplace")
        .finish(Duration::from_secs(10))
}

/// Whether `tool` runs here. A missing tool skips the check with a message, except under
/// CI (env `CI` set), where it is a failure.
pub fn have_tool(tool: &str) -> bool {
    let mut command = Command::new(tool);
    command.arg("--version");
    let ok = Proc::spawn(command, None)
        .map(|p| p.finish(Duration::from_secs(10)).status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("`{tool}` is required under CI but does not run here");
        }
        eprintln!("SKIPPED: `{tool}` is not installed; the checks that need it did not run");
    }
    ok
}

// ---------------------------------------------------------------------------------------
// The server

/// The server binary, started on `127.0.0.1:0`; killed and reaped when dropped.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// Starts the server with `args` (after `--listen 127.0.0.1:0`) and waits for the
    /// line that says it listens.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mixreplace");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = ready_tx.send(reader.read_line(&mut line).map(|_| line));
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        // From here on the guard owns the child, so a failed start kills it too.
        let mut server = Server {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stderr,
        };
        let line = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) => line,
            other => panic!(
                "no ready line from the server ({other:?}); its stderr:\n{}",
                server.stderr_text()
            ),
        };
        server.addr = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.strip_suffix("/\n"))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
        assert!(server.addr.ip().is_loopback(), "{line:?}");
        assert_ne!(server.addr.port(), 0, "{line:?}");
        server
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file descriptors the server process has open now.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read the server's /proc/PID/fd")
            .count()
    }

    /// `GET /stats`, checked and returned for its counters.
    pub fn stats(&self) -> Stats {
        let bytes = get(self.addr, "/stats");
        let (head, body) = split_head(&bytes).unwrap_or_else(|e| panic!("/stats: {e}"));
        assert_eq!(head.status_line, "HTTP/1.1 200 OK");
        assert_eq!(head.get("Content-Type"), Some("application/json"));
        assert_eq!(head.get("Content-Length"), Some(&*body.len().to_string()));
        Stats(String::from_utf8(body.to_vec()).expect("/stats is UTF-8"))
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).unwrap();
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet (the guard reaps
        // it only on exit or drop), so the pid cannot have been reused.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal})");
    }

    /// Waits up to `timeout` for the server to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_within(&mut self.child, timeout)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
        if thread::panicking() {
            let log = self.stderr_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("--- the server's last log lines ---\n{}", tail.join("\n"));
        }
    }
}

/// The `/stats` JSON. Its values are plain numbers under unique keys, so finding
/// `"key":` is enough (`"clients":` does not match `"peak_clients":`).
pub struct Stats(pub String);

impl Stats {
    pub fn get(&self, key: &str) -> u64 {
        let pattern = format!("\"{key}\":");
        let at = self
            .0
            .find(&pattern)
            .unwrap_or_else(|| panic!("no {key} in /stats: {}", self.0))
            + pattern.len();
        let digits: String = self.0[at..].chars().take_while(char::is_ascii_digit).collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a whole number in /stats: {}", self.0))
    }
}

// ---------------------------------------------------------------------------------------
// Sockets

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Everything read from a connection until the server closed it, with arrival times.
pub struct Capture {
    pub bytes: Vec<u8>,
    /// After each read: how many bytes had arrived in all, and when.
    pub reads: Vec<(usize, Instant)>,
    /// When the server's close (EOF) was read.
    pub closed_at: Instant,
}

impl Capture {
    /// When the byte at `offset - 1` had arrived (the first read that reached `offset`).
    pub fn arrival(&self, offset: usize) -> Instant {
        self.reads
            .iter()
            .find(|(end, _)| *end >= offset)
            .map(|(_, at)| *at)
            .unwrap_or_else(|| panic!("offset {offset} past the {} bytes read", self.bytes.len()))
    }
}

/// Reads until the server closes, before `deadline`. A reset, any other error, or the
/// deadline fails the test: the server promises a clean close, never a reset.
pub fn read_to_close(stream: &mut TcpStream, deadline: Instant) -> Capture {
    let mut bytes = Vec::new();
    let mut reads = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the server did not close within the deadline ({} bytes read)",
            bytes.len()
        );
        stream.set_read_timeout(Some(left.min(IO_TIMEOUT))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => {
                return Capture {
                    bytes,
                    reads,
                    closed_at: Instant::now(),
                };
            }
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                reads.push((bytes.len(), Instant::now()));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {} bytes: {e}", bytes.len()),
        }
    }
}

/// Sends `request` on a new connection and returns all the server sends before it closes.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    stream.write_all(request).expect("send the request");
    read_to_close(&mut stream, Instant::now() + STREAM_TIMEOUT).bytes
}

/// `GET path` over HTTP/1.1.
pub fn get(addr: SocketAddr, path: &str) -> Vec<u8> {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

/// A stream of 64 MiB, far more than the socket buffers, sent as fast as the client
/// reads: `--stream` it, and a [`stalled_client`] keeps the server's write blocked.
pub const BIG_STREAM: &str = "/big=synthetic:parts=1024,size=65536,interval=0";

/// A client with a tiny receive buffer that requests `path` and never reads: once the
/// buffers are full (after a short wait here) the server's write stays blocked in the
/// middle of a part.
pub fn stalled_client(addr: SocketAddr, path: &str) -> socket2::Socket {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // Set before connecting, so the window stays small (no autotuning).
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap();
    (&socket)
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    socket
}

// ---------------------------------------------------------------------------------------
// HTTP heads

/// A response head: the status line and the header fields, in order.
#[derive(Debug)]
pub struct Head {
    pub status_line: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The value of header `name` (any case); a header sent twice fails the test.
    pub fn get(&self, name: &str) -> Option<&str> {
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

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Splits a response into its head and what follows it. Strict: every line ends in
/// CRLF, with no bare CR or LF inside, and every header is `Name: value`.
pub fn split_head(bytes: &[u8]) -> Result<(Head, &[u8]), String> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {:?}", String::from_utf8_lossy(bytes)))?;
    let text = std::str::from_utf8(&bytes[..end]).map_err(|e| format!("head: {e}"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    for line in std::iter::once(status_line.as_str()).chain(lines.clone()) {
        if line.contains(['\r', '\n', '\0']) {
            return Err(format!("bare CR, LF or NUL in head line {line:?}"));
        }
    }
    for line in lines {
        let (name, value) = line
            .split_once(": ")
            .filter(|(name, _)| is_token(name))
            .ok_or_else(|| format!("malformed header line {line:?}"))?;
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok((Head { status_line, headers }, &bytes[end + 4..]))
}

/// Checks a short answer (404, 405, 400, …): the status line, a `text/plain` body of
/// exactly the announced length (none for HEAD), `Connection: close`, nothing more.
pub fn check_answer(bytes: &[u8], status_line: &str, head_only: bool) -> Head {
    let (head, body) = split_head(bytes).unwrap_or_else(|e| panic!("{status_line}: {e}"));
    assert_eq!(head.status_line, status_line);
    let content_type = head.get("Content-Type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{head:?}");
    assert_eq!(head.get("Connection"), Some("close"), "{head:?}");
    assert_eq!(head.get("Transfer-Encoding"), None, "{head:?}");
    let length: usize = head
        .get("Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length: {head:?}"));
    if head_only {
        assert!(body.is_empty(), "a body after a HEAD answer: {body:?}");
        assert!(length > 0, "{head:?}");
    } else {
        assert_eq!(body.len(), length, "body {:?}", String::from_utf8_lossy(body));
        assert!(!body.is_empty(), "an empty body");
    }
    head
}

/// Checks the head of a stream response for `version` and returns its boundary.
pub fn check_stream_head(head: &Head, version: &str) -> String {
    assert_eq!(head.status_line, format!("{version} 200 OK"), "{head:?}");
    assert_eq!(
        head.get("Cache-Control"),
        Some("no-cache, no-store, must-revalidate")
    );
    assert_eq!(head.get("Pragma"), Some("no-cache"));
    assert_eq!(head.get("X-Accel-Buffering"), Some("no"));
    assert_eq!(head.get("Connection"), Some("close"));
    assert_eq!(head.get("Content-Length"), None, "{head:?}");
    assert_eq!(head.get("Transfer-Encoding"), None, "{head:?}");
    let content_type = head.get("Content-Type").unwrap_or_default();
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

// ---------------------------------------------------------------------------------------
// Multipart

/// One part as read from the wire.
#[derive(Debug)]
pub struct Part {
    pub content_type: String,
    pub body: Vec<u8>,
    /// `X-Timestamp` in microseconds since the Unix epoch.
    pub stamp_us: u64,
    /// Offset in the multipart body just past this part's delimiter.
    pub end: usize,
}

#[derive(Debug)]
pub struct Multipart {
    pub parts: Vec<Part>,
    /// The stream was ended early: an empty final part, `\r\n--B\r\n` then `\r\n--B--\r\n`.
    pub stopped_early: bool,
}

/// Parses a `multipart/x-mixed-replace` body as the server must frame it, byte by byte:
/// `--B\r\n`, then each part exactly `Content-Type`, `Content-Length`, `X-Timestamp`, a
/// blank line, `Content-Length` bytes of body, `\r\n--B` and `\r\n` (more) or `--\r\n`
/// (the end); or, after a delimiter, the empty final part of a stream stopped early.
/// Nothing may follow the closing delimiter, and no body may contain a delimiter.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Result<Multipart, String> {
    let delimiter = format!("\r\n--{boundary}");
    let empty_final = format!("{delimiter}--\r\n");
    let opening = format!("--{boundary}\r\n");
    let mut at = opening.len();
    if !body.starts_with(opening.as_bytes()) {
        return Err(format!(
            "the body does not open with --{boundary}\\r\\n: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        ));
    }
    let mut parts = Vec::new();
    let mut stopped_early = false;
    loop {
        if body[at..].starts_with(empty_final.as_bytes()) {
            at += empty_final.len();
            stopped_early = true;
            break;
        }
        let index = parts.len();
        let mut header = |name: &str| -> Result<String, String> {
            let line_end = body[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| format!("part {index}: unterminated header line at {at}"))?;
            let line = std::str::from_utf8(&body[at..at + line_end])
                .map_err(|e| format!("part {index}: header line at {at}: {e}"))?;
            let value = line
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
                .filter(|v| !v.is_empty() && !v.contains(['\r', '\n']))
                .ok_or_else(|| format!("part {index}: expected {name} at {at}, got {line:?}"))?;
            at += line_end + 2;
            Ok(value.to_owned())
        };
        let content_type = header("Content-Type")?;
        let length = header("Content-Length")?;
        let stamp = header("X-Timestamp")?;
        let length: usize = Some(&length)
            .filter(|l| l.bytes().all(|b| b.is_ascii_digit()) && (l == &"0" || !l.starts_with('0')))
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| format!("part {index}: Content-Length {length:?}"))?;
        let stamp_us = parse_stamp(&stamp).ok_or_else(|| format!("part {index}: X-Timestamp {stamp:?}"))?;
        if body.get(at..at + 2) != Some(b"\r\n") {
            return Err(format!("part {index}: no blank line after the three headers"));
        }
        at += 2;
        let part_body = body
            .get(at..at.saturating_add(length))
            .ok_or_else(|| format!("part {index}: body cut short ({length} bytes announced)"))?
            .to_vec();
        if part_body
            .windows(delimiter.len())
            .any(|w| w == delimiter.as_bytes())
        {
            return Err(format!("part {index}: the body contains the delimiter"));
        }
        at += length;
        if !body[at..].starts_with(delimiter.as_bytes()) {
            return Err(format!(
                "part {index}: no \\r\\n--boundary right after its {length} body bytes: {:?}",
                String::from_utf8_lossy(&body[at..body.len().min(at + 80)])
            ));
        }
        at += delimiter.len();
        let last = match body.get(at..at + 4) {
            Some(b"--\r\n") => true,
            _ if body.get(at..at + 2) == Some(b"\r\n") => false,
            _ => {
                return Err(format!(
                    "part {index}: the delimiter is not followed by CRLF or --CRLF"
                ));
            }
        };
        at += if last { 4 } else { 2 };
        parts.push(Part {
            content_type,
            body: part_body,
            stamp_us,
            end: at,
        });
        if last {
            break;
        }
        if at == body.len() {
            return Err(format!(
                "the stream ends after part {index} without its closing delimiter"
            ));
        }
    }
    if at != body.len() {
        return Err(format!(
            "{} bytes after the closing delimiter: {:?}",
            body.len() - at,
            String::from_utf8_lossy(&body[at..body.len().min(at + 80)])
        ));
    }
    Ok(Multipart { parts, stopped_early })
}

/// `SECS.MICROS` (exactly six digits after the dot) in microseconds.
fn parse_stamp(text: &str) -> Option<u64> {
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

/// A stream response read to its close and parsed strictly.
pub struct Fetched {
    /// Just before the request was sent: no part can be due before this.
    pub sent_at: Instant,
    pub capture: Capture,
    pub head: Head,
    pub boundary: String,
    /// Where the multipart body starts in `capture.bytes`.
    pub body_start: usize,
    pub multipart: Multipart,
}

impl Fetched {
    pub fn body(&self) -> &[u8] {
        &self.capture.bytes[self.body_start..]
    }

    /// When part `index` (and its delimiter) had arrived.
    pub fn arrival(&self, index: usize) -> Instant {
        self.capture
            .arrival(self.body_start + self.multipart.parts[index].end)
    }
}

/// Sends `request` (an HTTP `version` request for a stream) and reads and parses the
/// stream to its end.
pub fn fetch_stream(addr: SocketAddr, request: &[u8], version: &str) -> Fetched {
    let mut stream = connect(addr);
    let sent_at = Instant::now();
    stream.write_all(request).expect("send the request");
    let capture = read_to_close(&mut stream, sent_at + STREAM_TIMEOUT);
    let (head, body) = split_head(&capture.bytes).unwrap_or_else(|e| panic!("{e}"));
    let boundary = check_stream_head(&head, version);
    let body_start = capture.bytes.len() - body.len();
    let multipart = parse_multipart(body, &boundary).unwrap_or_else(|e| panic!("{e}"));
    Fetched {
        sent_at,
        capture,
        head,
        boundary,
        body_start,
        multipart,
    }
}

// ---------------------------------------------------------------------------------------
// The demo, as the specification states it

pub const PNG: &[u8] = include_bytes!("../../src/demo.png");
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// The IEND chunk: length 0, type, CRC.
const PNG_END: &[u8] = b"\0\0\0\0IEND\xaeB`\x82";

pub struct ExpectedPart {
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The pause after this part (after the last one: before the connection closes).
    pub delay: Duration,
}

/// The 15 parts of `GET /` and their delays, spelled out from the issue.
pub fn demo_parts() -> Vec<ExpectedPart> {
    let part = |content_type, body: &[u8], ms| ExpectedPart {
        content_type,
        body: body.to_vec(),
        delay: Duration::from_millis(ms),
    };
    let mut parts = Vec::new();
    for _ in 0..3 {
        parts.push(part("text/plain", b"Hello,       text       ", 500));
        parts.push(part("text/plain", b"       plain      world!", 500));
    }
    parts.push(part("image/png", PNG, 1000));
    let words = ["Hello,", "the", "<i>wonderful</i>", "world", "of", "HTML!"];
    for n in 0..=6 {
        let html = format!("<!doctype html><h1>{}</h1>", words[..n].join(" "));
        parts.push(part("text/html", html.as_bytes(), 300));
    }
    let image = format!(
        "<!doctype html><h1>{}</h1>\r\n<img src=\"data:image/png;base64,{}\">",
        words.join(" "),
        base64::engine::general_purpose::STANDARD.encode(PNG)
    );
    parts.push(part("text/html", image.as_bytes(), 300));
    parts
}

fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
    format!("{} bytes {text:?}", bytes.len())
}

/// Checks that `parts` are the first parts of the demo, byte for byte.
pub fn check_demo_prefix(parts: &[Part]) {
    let expected = demo_parts();
    assert!(parts.len() <= expected.len(), "{} parts", parts.len());
    for (i, (got, want)) in parts.iter().zip(&expected).enumerate() {
        assert_eq!(got.content_type, want.content_type, "part {i}");
        assert!(
            got.body == want.body,
            "part {i}: got {}, expected {}",
            show(&got.body),
            show(&want.body)
        );
    }
}

/// Checks a complete demo stream: all 15 parts exact, the PNG, the data URI, and the
/// stamps spaced exactly by the delays.
pub fn check_demo(multipart: &Multipart) {
    assert!(!multipart.stopped_early, "the demo stream was stopped early");
    let parts = &multipart.parts;
    assert_eq!(parts.len(), 15, "parts in the demo");
    check_demo_prefix(parts);
    let png = &parts[6].body;
    assert!(
        png.starts_with(PNG_SIGNATURE) && png.ends_with(PNG_END),
        "part 6 is no PNG"
    );
    let html = std::str::from_utf8(&parts[14].body).expect("part 14 is UTF-8");
    let (heading, img) = html.split_once("\r\n").expect("part 14: heading CRLF img");
    assert_eq!(
        heading,
        "<!doctype html><h1>Hello, the <i>wonderful</i> world of HTML!</h1>"
    );
    let data = img
        .strip_prefix("<img src=\"data:image/png;base64,")
        .and_then(|rest| rest.strip_suffix("\">"))
        .unwrap_or_else(|| panic!("part 14: not an img with a PNG data URI: {img:.80}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("part 14: the data URI is valid base64");
    assert!(decoded == PNG, "part 14: the data URI is not the demo PNG");
    let expected = demo_parts();
    for i in 1..parts.len() {
        let gap = parts[i].stamp_us - parts[i - 1].stamp_us;
        assert_eq!(
            u128::from(gap),
            expected[i - 1].delay.as_micros(),
            "X-Timestamp gap from part {} to part {i}",
            i - 1
        );
    }
}

// ---------------------------------------------------------------------------------------
// Randomness

/// SplitMix64: a tiny seeded generator, so a random schedule can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_takes_a_well_framed_stream_and_its_early_end() {
        let b = "B".repeat(24);
        let part = |t: &str, body: &str, stamp: &str| {
            format!(
                "Content-Type: {t}\r\nContent-Length: {}\r\nX-Timestamp: {stamp}\r\n\r\n{body}",
                body.len()
            )
        };
        let whole = format!(
            "--{b}\r\n{}\r\n--{b}\r\n{}\r\n--{b}--\r\n",
            part("text/plain", "hi", "1.000000"),
            part("text/html", "", "1.500000")
        );
        let parsed = parse_multipart(whole.as_bytes(), &b).unwrap();
        assert_eq!(parsed.parts.len(), 2);
        assert!(!parsed.stopped_early);
        assert_eq!(parsed.parts[0].body, b"hi");
        assert_eq!(parsed.parts[1].stamp_us, 1_500_000);
        let stopped = format!(
            "--{b}\r\n{}\r\n--{b}\r\n\r\n--{b}--\r\n",
            part("text/plain", "hi", "1.000000")
        );
        let parsed = parse_multipart(stopped.as_bytes(), &b).unwrap();
        assert_eq!(parsed.parts.len(), 1);
        assert!(parsed.stopped_early);
    }

    #[test]
    fn the_parser_refuses_every_framing_mistake() {
        let b = "B".repeat(24);
        let ok = |body: &str| {
            format!(
                "--{b}\r\nContent-Type: t\r\nContent-Length: 2\r\nX-Timestamp: 1.000000\r\n\r\n{body}\r\n--{b}--\r\n"
            )
        };
        assert!(parse_multipart(ok("hi").as_bytes(), &b).is_ok());
        for bad in [
            ok("hi") + "x",                                                   // bytes after the end
            ok("hi").replace("\r\n--B", "\n--B"),                             // LF before a delimiter
            ok("hi").replace("Length: 2", "Length: 3"),                       // wrong length
            ok("hi").replace("Length: 2", "Length: 02"),                      // leading zero
            ok("hi").replace("1.000000", "1.0"),                              // short micros
            ok("hi").replace("Content-Type: t\r\n", ""),                      // missing header
            ok("hi").replace(&format!("--{b}--\r\n"), &format!("--{b}\r\n")), // no end
            ok("hi").replace(&format!("--{b}--\r\n"), &format!("--{b}--")),   // no CRLF
            format!("\r\n{}", ok("hi")),                                      // preamble
        ] {
            assert!(parse_multipart(bad.as_bytes(), &b).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_expected_demo_matches_the_issue() {
        let parts = demo_parts();
        assert_eq!(parts.len(), 15);
        let total: Duration = parts.iter().map(|p| p.delay).sum();
        assert_eq!(total, Duration::from_millis(6400));
        assert_eq!(
            parts[13].body,
            b"<!doctype html><h1>Hello, the <i>wonderful</i> world of HTML!</h1>"
        );
    }
}
