//! The real `mixreplace` binary, started on `127.0.0.1:0` ([`Server`]) or run to its exit
//! ([`run_binary`]) and refused ([`check_refused`]), and what `/stats` and `/proc` say
//! about it.
//!
//! The server logs (`RUST_LOG=info`) to a file in its own scratch folder, so it never
//! blocks on a full pipe; a test that panics prints the log's last lines.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::http::{Response, exchange};
use super::json::{self, Value};
use super::process::{self, Guard, Output};
use super::solo;
use super::{Scratch, wait_for};

pub const BIN: &str = env!("CARGO_BIN_EXE_mixreplace");
/// How long the server may take to print its ready line: a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// No server outlives this, whatever its test does.
const SERVER_LIMIT: Duration = Duration::from_secs(300);
/// How long the server may take to let go of connections and descriptors.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server binary, started with `--listen 127.0.0.1:0` and the given arguments;
/// killed and reaped when dropped.
#[derive(Debug)]
pub struct Server {
    process: Guard,
    addr: SocketAddr,
    /// Every listener the ready line lists: `http://IP:PORT/` or `unix:PATH`.
    listening: Vec<String>,
    stdin: Option<ChildStdin>,
    /// Holds the log, `stderr`.
    scratch: Scratch,
    /// Open descriptors right after start-up (listener, epoll, signal pipe, stdio).
    pub base_fds: usize,
    /// Header lines (each ending in CRLF) the helpers' own requests carry: credentials.
    pub request_headers: String,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(args, |_| {})
    }

    /// With standard input piped from the test, for `stdin` streams ([`Server::feed`]).
    pub fn start_live(args: &[&str]) -> Server {
        Server::start_with(args, |command| {
            command.stdin(Stdio::piped());
        })
    }

    /// With a chance to adjust the command (standard input, limits).
    pub fn start_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Server {
        Server::start_via(&[], args, configure)
    }

    /// Started by `wrapper` (a program and its arguments, which runs the server as its
    /// last argument does: `systemd-socket-activate -l ADDR`), or directly without one.
    pub fn start_via(wrapper: &[&str], args: &[&str], configure: impl FnOnce(&mut Command)) -> Server {
        let scratch = Scratch::new("server");
        let log = File::create(scratch.join("stderr")).expect("create the server's log");
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        configure(&mut command);
        let mut process = Guard::spawn(&mut command, SERVER_LIMIT);
        let stdin = process.child().stdin.take();
        let stdout = process.child().stdout.take().expect("piped stdout");
        let (ready, line) = mpsc::channel();
        // The server prints one line; this thread ends when the server does.
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = ready.send(lines.next());
            for _ in lines {}
        });
        let line = match line.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let log = std::fs::read_to_string(scratch.join("stderr")).unwrap_or_default();
                panic!("no ready line from {BIN} {args:?} ({other:?}); its log:\n{log}");
            }
        };
        let listening: Vec<String> = line
            .strip_prefix("listening on ")
            .map(|rest| rest.split(' ').map(str::to_owned).collect())
            .unwrap_or_default();
        // The first TCP listener: the helpers' own `127.0.0.1:0` unless the wrapper
        // passed listeners, which come first.
        let addr: SocketAddr = listening
            .iter()
            .find_map(|word| word.strip_prefix("http://")?.strip_suffix('/')?.parse().ok())
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{line:?}");
        let mut server = Server {
            process,
            addr,
            listening,
            stdin,
            scratch,
            base_fds: 0,
            request_headers: String::new(),
        };
        server.base_fds = server.fd_count();
        server
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every listener the ready line lists, in its order: `http://IP:PORT/`, `unix:PATH`.
    pub fn listening(&self) -> &[String] {
        &self.listening
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// A request head for `path` with the helpers' header lines, the only request on its
    /// connection (`Connection: close`: the answer is read to the close).
    pub fn request(&self, method: &str, path: &str) -> String {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{}\r\n",
            self.request_headers
        )
    }

    /// `GET path` as a complete exchange.
    pub fn get(&self, path: &str) -> Response {
        exchange(self.addr, self.request("GET", path).as_bytes())
    }

    /// `GET /stats`, checked and returned for its counters.
    pub fn stats(&self) -> Stats {
        let response = self.get("/stats");
        assert_eq!(response.status, 200, "GET /stats: {response:?}");
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        Stats::parse(String::from_utf8(response.body).expect("/stats is UTF-8"))
    }

    pub fn signal(&self, signal: libc::c_int) {
        self.process.signal(signal);
    }

    /// Waits up to `timeout` for the server to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// The numbers of the server's open file descriptors.
    pub fn fd_numbers(&self) -> Vec<u64> {
        solo::fd_numbers(&self.pid().to_string())
    }

    pub fn fd_count(&self) -> usize {
        self.fd_numbers().len()
    }

    /// A number from `/proc/PID/status`, in KiB: `VmRSS` (resident now), `VmHWM` (peak).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the server's /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    pub fn rss_kib(&self) -> u64 {
        self.memory_kib("VmRSS")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.join("stderr")).unwrap_or_default()
    }

    /// Writes `bytes` to the server's standard input ([`Server::start_live`]).
    pub fn feed(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("standard input is open");
        stdin.write_all(bytes).expect("feed the server");
        stdin.flush().expect("feed the server");
    }

    /// Takes the server's standard input (to hand it to a feeding thread).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("standard input is open")
    }

    /// Closes standard input: the live stream ends.
    pub fn end_input(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits until the stream at `path` has `n` viewers.
    pub fn wait_viewers(&self, path: &str, n: u64) {
        wait_for(&format!("{n} viewers of {path}"), SETTLE_TIMEOUT, || {
            match self.stats().viewers(path) {
                count if count == n => Ok(()),
                count => Err(format!("{count} viewers")),
            }
        });
    }

    /// Waits until the server has exactly `n` descriptors open.
    pub fn wait_fds(&self, n: usize) {
        wait_for(&format!("{n} open descriptors"), SETTLE_TIMEOUT, || {
            match self.fd_count() {
                open if open == n => Ok(()),
                open => Err(format!("{open} open")),
            }
        });
    }

    /// Waits until the server holds no connection but the `/stats` request asking, and
    /// its descriptors are back to the start-up count.
    pub fn assert_clean(&self) {
        wait_for(
            "clients back to 1 (the /stats request)",
            SETTLE_TIMEOUT,
            || match self.stats().get("clients") {
                1 => Ok(()),
                n => Err(format!("clients {n}")),
            },
        );
        self.wait_fds(self.base_fds);
    }

    /// Waits until every connection but streams being watched (and the `/stats` request
    /// asking) is gone: for checks while a [`super::demo::Watcher`] runs.
    pub fn assert_settled(&self) {
        wait_for("only viewers left open", SETTLE_TIMEOUT, || {
            let stats = self.stats();
            let (clients, viewers) = (stats.get("clients"), stats.all_viewers());
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

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("--- the server's last log lines ---\n{}", tail.join("\n"));
        }
    }
}

/// `/stats`, read as JSON; a missing key fails the test.
#[derive(Debug)]
pub struct Stats {
    json: Value,
    text: String,
}

impl Stats {
    pub fn parse(text: String) -> Stats {
        Stats {
            json: json::parse(&text),
            text,
        }
    }

    /// A top-level counter: `clients`, `accepted`, `streams`, `parts`, `bytes`, …
    pub fn get(&self, key: &str) -> u64 {
        self.json.int(key)
    }

    /// Answers given with `status`.
    pub fn answers(&self, status: u16) -> u64 {
        self.json.get("answers").int(&status.to_string())
    }

    /// Connections closed for `reason`: `finished`, `client_gone`, `send_timeout`, …
    pub fn closed(&self, reason: &str) -> u64 {
        self.json.get("closed").int(reason)
    }

    pub fn viewers(&self, path: &str) -> u64 {
        self.json.get("viewers").int(path)
    }

    /// Viewers of every stream, added up.
    pub fn all_viewers(&self) -> u64 {
        let viewers = self.json.get("viewers");
        viewers.keys().iter().map(|path| viewers.int(path)).sum()
    }

    /// The input of the live stream at `path` (`state`, `restarts`, `frames_in`, …).
    pub fn input(&self, path: &str) -> &Value {
        self.json.get("inputs").get(path)
    }

    /// Live frames the viewers of `path` skipped.
    pub fn skipped(&self, path: &str) -> u64 {
        self.json.get("skipped_frames").int(path)
    }
}

/// The JSON text as the server sent it, for failure messages.
impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text.trim_end())
    }
}

/// Runs the binary with `args` (and extra environment) to its exit, within 10 s.
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_binary_with(args, |command| {
        command.envs(env.iter().copied());
    })
}

/// [`run_binary`] with a chance to adjust the command (environment, what standard input
/// is); its standard input is `/dev/null` unless `configure` arranges otherwise in the
/// child.
pub fn run_binary_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(BIN);
    command.args(args);
    configure(&mut command);
    process::run(&mut command, None, Duration::from_secs(10))
}

/// Checks the answer to a start-up the binary refuses: exit code 2, one line on stderr
/// naming each of `names`, nothing on stdout (it never listened). `shown`: what was run,
/// for the failure messages.
pub fn check_refused(done: &Output, shown: &str, names: &[&str]) {
    let stderr = done.stderr_text();
    assert_eq!(done.status.code(), Some(2), "{shown}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{shown}: {stderr}");
    for name in names {
        assert!(
            stderr.contains(name),
            "{shown}: {stderr:?} does not name {name:?}"
        );
    }
    assert!(done.stdout.is_empty(), "{shown}: {}", done.stdout_text());
}
