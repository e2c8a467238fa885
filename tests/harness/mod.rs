//! What the integration tests share: the real server binary started on `127.0.0.1:0`
//! ([`Server`]), scratch folders ([`Scratch`]), HTTP over plain sockets ([`fetch`]), a
//! strict reader of `multipart/x-mixed-replace` responses ([`Multipart`]), identifiable
//! JPEG frames ([`frame`]) and solid-colour PNGs ([`solid_png`]).
//!
//! Every wait is bounded: sockets have read and write timeouts, the ready line and every
//! poll have deadlines, and a watchdog kills a server that outlives its test's limit, so
//! a hung server fails a test instead of hanging it. Every process a test starts is
//! killed and waited for when its guard drops, whatever the test did.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const BIN: &str = env!("CARGO_BIN_EXE_mixreplace");
/// How long a socket read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// No server outlives this, whatever its test does.
pub const SERVER_LIMIT: Duration = Duration::from_secs(60);

/// A real JPEG from ffmpeg whose EXIF APP1 segment holds a whole thumbnail JPEG, EOI and
/// all: a splitter that cuts at the first `FF D9` breaks it.
pub const EXIF_JPEG: &[u8] = include_bytes!("../data/mjpeg/exif.jpg");
pub const PROGRESSIVE_JPEG: &[u8] = include_bytes!("../data/mjpeg/progressive.jpg");
pub const RESTART_JPEG: &[u8] = include_bytes!("../data/mjpeg/restart.jpg");

/// A temporary folder, removed with everything in it when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mixreplace-it-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `bytes` to `name` and returns its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills a process after a deadline unless told to stand down first; joined before the
/// process is reaped, so it can never signal a reused pid.
struct Watchdog {
    stand_down: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    /// `pid`: a process, or (negative) a process group.
    fn new(pid: i32, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: pid {pid} outlived {limit:?}; killing it");
                // SAFETY: plain syscall; the pid is not reaped before this thread is joined.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Watchdog {
            stand_down: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stand_down.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A child process that is killed and reaped when dropped (watchdog first).
pub struct Guard {
    child: Child,
    /// The child leads its own process group, killed whole (a browser's helpers too).
    group: bool,
    watchdog: Option<Watchdog>,
}

impl Guard {
    pub fn spawn(command: &mut Command, limit: Duration) -> Guard {
        Guard::start(command, limit, false)
    }

    /// Starts the child in a process group of its own, which is killed whole.
    pub fn spawn_group(command: &mut Command, limit: Duration) -> Guard {
        std::os::unix::process::CommandExt::process_group(command, 0);
        Guard::start(command, limit, true)
    }

    fn start(command: &mut Command, limit: Duration, group: bool) -> Guard {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let pid = child.id() as i32;
        let watchdog = Some(Watchdog::new(if group { -pid } else { pid }, limit));
        Guard {
            child,
            group,
            watchdog,
        }
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit, at most `limit`; `None` if it is still running then.
    pub fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.watchdog.take());
        if self.group {
            // SAFETY: plain syscall; the group's leader is not reaped yet, so its id is ours.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real server, started with `args` and `--listen 127.0.0.1:0`; its log (stderr) goes
/// to a file in its scratch folder, so it never blocks on a full pipe.
pub struct Server {
    process: Guard,
    addr: SocketAddr,
    stdin: Option<ChildStdin>,
    scratch: Scratch,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::launch(args, false)
    }

    /// With standard input piped from the test, for `stdin` streams.
    pub fn start_live(args: &[&str]) -> Server {
        Server::launch(args, true)
    }

    fn launch(args: &[&str], live: bool) -> Server {
        let scratch = Scratch::new("server");
        let log = File::create(scratch.join("stderr")).unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(if live { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(log);
        let mut process = Guard::spawn(&mut command, SERVER_LIMIT);
        let stdin = process.child().stdin.take();
        let stdout = process.child().stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // The server prints one line; this thread ends when the server does.
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let line = match rx.recv_timeout(IO_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let log = std::fs::read_to_string(scratch.join("stderr")).unwrap_or_default();
                panic!("no ready line from {BIN} {args:?} ({other:?}); its log:\n{log}");
            }
        };
        let addr = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
        Server {
            process,
            addr,
            stdin,
            scratch,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Writes `bytes` to the server's standard input.
    pub fn feed(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("standard input is open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Takes the server's standard input (to hand it to a feeding thread).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("standard input is open")
    }

    /// Closes standard input: the live stream ends.
    pub fn end_input(&mut self) {
        drop(self.stdin.take());
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.join("stderr")).unwrap_or_default()
    }

    /// The body of `GET /stats`.
    pub fn stats(&self) -> String {
        let response = fetch(self.addr, "GET", "/stats");
        assert_eq!(response.status, 200, "{response:?}");
        String::from_utf8(response.body).unwrap()
    }

    /// Polls `/stats` until the stream at `path` has `n` viewers (bounded).
    pub fn wait_viewers(&self, path: &str, n: u64) {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let stats = self.stats();
            if json_u64(&stats, path) == Some(n) {
                return;
            }
            assert!(Instant::now() < deadline, "{path} never had {n} viewers: {stats}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit (bounded), e.g. after its standard input or a `/quit` ended it.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_for(limit)
    }

    /// A number from `/proc/PID/status` (in kB), e.g. `VmRSS` or `VmHWM`.
    pub fn proc_status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }
}

/// The number after the first `"key":` in a JSON text (enough for `/stats`, whose keys
/// other than the per-stream ones are fixed words).
pub fn json_u64(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Runs the server binary with `args` and no listener wanted: for start-up errors.
/// Returns the exit code and what it printed on stderr.
pub fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let scratch = Scratch::new("run");
    let log = File::create(scratch.join("stderr")).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut process = Guard::spawn(&mut command, SERVER_LIMIT);
    let status = process
        .wait_for(IO_TIMEOUT)
        .unwrap_or_else(|| panic!("{args:?} did not exit"));
    let stderr = std::fs::read_to_string(scratch.join("stderr")).unwrap();
    (status.code(), stderr)
}

/// A TCP connection to `addr` with both timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let socket = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket
}

pub fn send_request(socket: &mut TcpStream, method: &str, target: &str) {
    let request =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: mixreplace-tests\r\n\r\n");
    socket.write_all(request.as_bytes()).unwrap();
}

/// A whole response (the server closes every connection after its answer).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One request, and its response read to the end.
pub fn fetch(addr: SocketAddr, method: &str, target: &str) -> Response {
    let mut socket = connect(addr);
    send_request(&mut socket, method, target);
    let mut bytes = Vec::new();
    socket
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    let end = find(&bytes, b"\r\n\r\n").unwrap_or_else(|| panic!("no head in {bytes:?}"));
    let (status, headers) = parse_head(&bytes[..end + 4]);
    Response {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    }
}

/// Status and headers of a response head (`\r\n\r\n` included).
fn parse_head(head: &[u8]) -> (u16, Vec<(String, String)>) {
    let text = std::str::from_utf8(head).expect("an ASCII head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    (status, header_lines(lines))
}

fn header_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .take_while(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            (name.to_owned(), value.trim().to_owned())
        })
        .collect()
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One part of a multipart response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Its delimiter was the closing one (`--B--`).
    pub last: bool,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn content_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }

    /// `X-Timestamp` in microseconds since the epoch.
    pub fn stamp_us(&self) -> u64 {
        let stamp = self.header("X-Timestamp").expect("an X-Timestamp");
        let (secs, micros) = stamp.split_once('.').expect("S.US");
        assert_eq!(micros.len(), 6, "{stamp}");
        secs.parse::<u64>().unwrap() * 1_000_000 + micros.parse::<u64>().unwrap()
    }
}

/// A strict reader of one `multipart/x-mixed-replace` response: every byte must be where
/// RFC 2046 and the server's framing put it (`Content-Length` bodies, `\r\n--B` right
/// after each body); it keeps every byte read in `raw`, for other parsers to check.
pub struct Multipart {
    socket: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub boundary: String,
    /// Everything after the response head, as read.
    pub raw: Vec<u8>,
    ended: bool,
}

impl Multipart {
    /// `GET target`, and the head and opening delimiter of its stream.
    pub fn open(addr: SocketAddr, target: &str) -> Multipart {
        let mut socket = connect(addr);
        send_request(&mut socket, "GET", target);
        Multipart::over(socket)
    }

    /// Reads the response head of a request already sent on `socket`.
    pub fn over(socket: TcpStream) -> Multipart {
        let mut reader = Multipart {
            socket,
            buf: Vec::new(),
            pos: 0,
            status: 0,
            headers: Vec::new(),
            boundary: String::new(),
            raw: Vec::new(),
            ended: false,
        };
        let head = reader.read_through(b"\r\n\r\n");
        let (status, headers) = parse_head(&head);
        reader.raw = reader.buf[reader.pos..].to_vec();
        reader.status = status;
        reader.headers = headers;
        assert_eq!(status, 200, "{:?}", reader.headers);
        let content_type = reader.header("Content-Type").unwrap().to_owned();
        let boundary = content_type
            .strip_prefix("multipart/x-mixed-replace; boundary=")
            .unwrap_or_else(|| panic!("Content-Type {content_type:?}"));
        reader.boundary = boundary.to_owned();
        let opening = reader.take(boundary.len() + 4);
        assert_eq!(opening, format!("--{boundary}\r\n").as_bytes());
        reader
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// More bytes into the buffer; panics at EOF (a cut stream) or on a timeout.
    fn fill(&mut self) {
        let mut chunk = [0u8; 64 * 1024];
        let n = self
            .socket
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("reading the stream: {e}"));
        assert!(n > 0, "the stream was cut short (EOF)");
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.extend_from_slice(&chunk[..n]);
        self.raw.extend_from_slice(&chunk[..n]);
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() - self.pos < n {
            self.fill();
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }

    /// Bytes up to and including `needle`.
    fn read_through(&mut self, needle: &[u8]) -> Vec<u8> {
        loop {
            if let Some(at) = find(&self.buf[self.pos..], needle) {
                return self.take(at + needle.len());
            }
            self.fill();
        }
    }

    /// The next part's header block (up to its blank line); `None` after the last part.
    pub fn read_headers(&mut self) -> Option<Vec<(String, String)>> {
        if self.ended {
            return None;
        }
        // An empty part (no headers, no body): the CRLF that follows belongs to the next
        // delimiter (RFC 2046: the CRLF before `--B` is part of the delimiter).
        let delimiter = format!("\r\n--{}", self.boundary);
        while self.buf.len() - self.pos < delimiter.len() {
            self.fill();
        }
        if self.buf[self.pos..].starts_with(delimiter.as_bytes()) {
            return Some(Vec::new());
        }
        let mut lines = Vec::new();
        loop {
            let line = self.read_through(b"\r\n");
            if line == b"\r\n" {
                break;
            }
            assert!(lines.len() < 100, "a header block without end");
            lines.push(String::from_utf8(line).expect("ASCII part headers"));
        }
        Some(header_lines(lines.iter().map(|l| l.trim_end_matches("\r\n"))))
    }

    /// The body after `headers` and the delimiter that ends it.
    pub fn read_body(&mut self, headers: Vec<(String, String)>) -> Part {
        let delimiter = format!("\r\n--{}", self.boundary);
        let body = match header(&headers, "Content-Length") {
            Some(length) => {
                let body = self.take(length.parse().expect("a numeric Content-Length"));
                assert_eq!(
                    self.take(delimiter.len()),
                    delimiter.as_bytes(),
                    "no delimiter after the body"
                );
                body
            }
            // Only the empty final part (and a live part whose header went ahead) have none.
            None => {
                let mut body = self.read_through(delimiter.as_bytes());
                body.truncate(body.len() - delimiter.len());
                body
            }
        };
        let last = match &self.take(2)[..] {
            b"\r\n" => false,
            b"--" => {
                assert_eq!(self.take(2), b"\r\n", "the closing delimiter ends with CRLF");
                true
            }
            other => panic!("{other:?} after the boundary"),
        };
        self.ended = last;
        Part { headers, body, last }
    }

    /// The next part; `None` once the closing delimiter has been read.
    pub fn next_part(&mut self) -> Option<Part> {
        let headers = self.read_headers()?;
        Some(self.read_body(headers))
    }

    /// After the closing delimiter: nothing more, then EOF.
    pub fn expect_eof(&mut self) {
        assert!(self.ended, "the stream has not ended");
        assert_eq!(self.pos, self.buf.len(), "bytes after the closing delimiter");
        let mut rest = Vec::new();
        self.socket.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "bytes after the closing delimiter: {rest:?}");
    }

    /// Every part to the end of the stream, then EOF.
    pub fn read_to_end(&mut self) -> Vec<Part> {
        let mut parts = Vec::new();
        while let Some(part) = self.next_part() {
            parts.push(part);
            assert!(parts.len() < 100_000, "an endless stream");
        }
        self.expect_eof();
        parts
    }
}

/// A short stand-in for bytes in assertions: their length and FNV-1a hash.
pub fn sum(bytes: &[u8]) -> (usize, u64) {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (bytes.len(), hash)
}

/// Compares bytes without printing them all: a mismatch shows the lengths and where
/// they first differ.
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let window = |b: &[u8]| {
            String::from_utf8_lossy(&b[at.saturating_sub(16)..(at + 16).min(b.len())]).into_owned()
        };
        panic!(
            "{what}: {} bytes, want {}; first difference at {at}: {:?} vs {:?}",
            got.len(),
            want.len(),
            window(got),
            window(want)
        );
    }
}

/// Microseconds since the epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// Prefix of the comment that numbers a test frame.
const FRAME_TAG: &[u8] = b"mixreplace test frame ";

/// A real JPEG (the EXIF one) numbered `id` in a COM segment right after SOI, padded with
/// further COM segments to at least `size` bytes: every frame is identifiable and any
/// size, and stays a JPEG a decoder accepts.
pub fn frame(id: u32, size: usize) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let comment = |out: &mut Vec<u8>, text: &[u8]| {
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(text);
    };
    comment(&mut out, &[FRAME_TAG, format!("{id:08}").as_bytes()].concat());
    let rest = &EXIF_JPEG[2..];
    while out.len() + rest.len() < size {
        let pad = (size - out.len() - rest.len()).saturating_sub(4).clamp(1, 65_000);
        comment(&mut out, &vec![b'.'; pad]);
    }
    out.extend_from_slice(rest);
    out
}

/// The number of a frame made by [`frame`].
pub fn frame_id(body: &[u8]) -> u32 {
    let at = find(body, FRAME_TAG).expect("a numbered frame") + FRAME_TAG.len();
    std::str::from_utf8(&body[at..at + 8]).unwrap().parse().unwrap()
}

/// A `width`×`height` PNG of one colour.
pub fn solid_png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    let pixels: Vec<u8> = rgb
        .iter()
        .copied()
        .cycle()
        .take((width * height * 3) as usize)
        .collect();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    out
}

/// Whether an external tool must be there: a missing one fails the test instead of
/// skipping it when `MIXREPLACE_REQUIRE_TOOLS=1` (which `.ci/run` sets) or `CI=true`.
pub fn tools_required() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| v == "1" || v == "true");
    set("MIXREPLACE_REQUIRE_TOOLS") || set("CI")
}

/// The path of `name` on `PATH`, if it is there.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first of `names` found on `PATH`; when none is, the test skips (returns `None`)
/// with a message saying how to install it, or fails where tools are required.
pub fn require_tool(names: &[&str], package: &str) -> Option<PathBuf> {
    if let Some(path) = names.iter().find_map(|name| which(name)) {
        return Some(path);
    }
    let missing = format!(
        "{} not found on PATH (Debian package: {package})",
        names.join(" or ")
    );
    assert!(
        !tools_required(),
        "{missing}, and MIXREPLACE_REQUIRE_TOOLS=1 or CI=true says the tests need it"
    );
    let message = format!(
        "{missing}; set MIXREPLACE_REQUIRE_TOOLS=1 (as .ci/run does) to make this a failure instead of a skip"
    );
    eprintln!("SKIPPED: {message}");
    None
}

/// Reads all of `reader` on a thread; the handle yields the bytes.
pub fn drain<R: Read + Send + 'static>(mut reader: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    })
}

/// Copies `from` into `to` on a thread, then closes `to`.
pub fn pump<R: Read + Send + 'static, W: Write + Send + 'static>(
    mut from: R,
    mut to: W,
) -> thread::JoinHandle<io::Result<u64>> {
    thread::spawn(move || {
        let copied = io::copy(&mut from, &mut to);
        drop(to);
        copied
    })
}
