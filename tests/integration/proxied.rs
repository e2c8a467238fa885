//! Behind a proxy, and the access log (issue 10): one line per finished request in the
//! combined format plus the seconds taken (a snapshot, a stream, a 404, a 401 naming its
//! user); SIGHUP reopens the log while a stream runs on; the PROXY protocol (v1, v2,
//! LOCAL) and `X-Forwarded-For` or `Forwarded` (the one configured) believed from trusted
//! addresses only; a line per request on a kept-alive connection, pipelined ones too;
//! `--listen proxy:ADDR` beside plain listeners (TCP and unix) in one server;
//! HAProxy with `send-proxy-v2` in front as the real peer; the library's builder the same.
//!
//! Untrusted peers are the same machine on another loopback address (`127.0.0.2`): the
//! server trusts `127.0.0.1/32` alone.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use socket2::{Domain, Socket, Type};

use crate::support::http::{End, Raw, read_raw};
use crate::support::process::Guard;
use crate::support::server::Server;
use crate::support::tools::require_tool;
use crate::support::{IO_TIMEOUT, Scratch, wait_for};

/// How long a log line may take to show up in its file (written at the end of a turn).
const LINE_WITHIN: Duration = Duration::from_secs(10);
/// A stream of five 1,000-byte parts 20 ms apart, which ends by itself.
const SHORT_STREAM: &str = "/s=synthetic:parts=5,size=1000,interval=20";
/// A stream that runs for as long as any test: a part every 20 ms.
const ENDLESS_STREAM: &str = "/s=synthetic:parts=1000000,size=100,interval=20";

/// One access log line, taken apart by the format the README states.
#[derive(Debug, PartialEq)]
struct Line {
    client: String,
    user: String,
    time: String,
    request: String,
    status: u16,
    bytes: u64,
    referer: String,
    agent: String,
    seconds: f64,
}

impl Line {
    /// `IP - USER [TIME] "REQUEST" STATUS BYTES "REFERER" "AGENT" SECONDS`, strictly.
    fn parse(text: &str) -> Line {
        let fail = || -> ! { panic!("not an access log line: {text:?}") };
        let (client, rest) = text.split_once(" - ").unwrap_or_else(|| fail());
        let (user, rest) = rest.split_once(" [").unwrap_or_else(|| fail());
        let (time, rest) = rest.split_once("] \"").unwrap_or_else(|| fail());
        let (request, rest) = rest.split_once("\" ").unwrap_or_else(|| fail());
        let (status, rest) = rest.split_once(' ').unwrap_or_else(|| fail());
        let (bytes, rest) = rest.split_once(" \"").unwrap_or_else(|| fail());
        let (referer, rest) = rest.split_once("\" \"").unwrap_or_else(|| fail());
        let (agent, seconds) = rest.split_once("\" ").unwrap_or_else(|| fail());
        let (whole, millis) = seconds.split_once('.').unwrap_or_else(|| fail());
        assert!(
            millis.len() == 3 && !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()),
            "{text:?}"
        );
        assert!(!user.contains(' ') && !client.contains(' '), "{text:?}");
        Line {
            client: client.to_owned(),
            user: user.to_owned(),
            time: time.to_owned(),
            request: request.to_owned(),
            status: status.parse().unwrap_or_else(|_| fail()),
            bytes: bytes.parse().unwrap_or_else(|_| fail()),
            referer: referer.to_owned(),
            agent: agent.to_owned(),
            seconds: seconds.parse().unwrap_or_else(|_| fail()),
        }
    }
}

/// A server logging to `access.log` in a scratch folder of its own, with `args`.
fn logged_server(name: &str, args: &[&str]) -> (Scratch, PathBuf, Server) {
    let scratch = Scratch::new(name);
    let log = scratch.join("access.log");
    let mut all = vec!["--access-log", log.to_str().expect("a UTF-8 temporary path")];
    all.extend_from_slice(args);
    let server = Server::start(&all);
    (scratch, log, server)
}

/// Trusting `127.0.0.1` alone, with the PROXY protocol on.
const BEHIND_PROXY: [&str; 3] = ["--trust-proxy", "127.0.0.1/32", "--proxy-protocol"];

/// The lines of the log at `path` whose request line is `request`, once there are
/// `count` of them.
fn wait_lines(path: &Path, request: &str, count: usize) -> Vec<Line> {
    wait_matching(path, count, |line| line.request == request)
}

/// The lines of the log at `path` that `keep` keeps, in the file's order, once there
/// are `count` of them.
fn wait_matching(path: &Path, count: usize, keep: impl Fn(&Line) -> bool) -> Vec<Line> {
    wait_for(&format!("{count} log lines"), LINE_WITHIN, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a line cut short: {text:?}"
        );
        let lines: Vec<Line> = text.lines().map(Line::parse).filter(|line| keep(line)).collect();
        match lines.len() {
            n if n == count => Ok(lines),
            n => Err(format!("{n} lines in {text:?}")),
        }
    })
}

/// The one line for `request` in the log at `path`.
fn wait_line(path: &Path, request: &str) -> Line {
    wait_lines(path, request, 1).remove(0)
}

/// Today's date as the log writes it (`30/Nov/2026`), from `date`, not from our code.
fn utc_day() -> String {
    let out = Command::new("date")
        .args(["-u", "+%d/%b/%Y"])
        .env("LC_ALL", "C")
        .output()
        .expect("run date");
    String::from_utf8(out.stdout).expect("UTF-8").trim().to_owned()
}

fn basic(credentials: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(credentials);
    format!("Authorization: Basic {token}\r\n")
}

/// A connection to `to` from the loopback address `from`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> std::net::TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("bind a loopback source address");
    socket.connect_timeout(&to.into(), IO_TIMEOUT).expect("connect");
    let stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Sends `bytes` from the loopback address `from` and reads everything to the close.
fn raw_from(from: [u8; 4], to: SocketAddr, bytes: &[u8]) -> Raw {
    let started = std::time::Instant::now();
    let mut stream = connect_from(from, to);
    stream.write_all(bytes).expect("send");
    let mut got = Vec::new();
    let end = match stream.read_to_end(&mut got) {
        Ok(_) => End::Eof,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => End::Reset,
        Err(e) => panic!("reading after {} bytes: {e}", got.len()),
    };
    Raw {
        bytes: got,
        end,
        elapsed: started.elapsed(),
    }
}

fn status_of(raw: &Raw) -> u16 {
    let (head, _) = raw.split_head();
    head[9..12].parse().expect("a status code")
}

#[test]
fn access_log_lines_for_a_snapshot_a_stream_a_404_and_a_401() {
    let day_before = utc_day();
    let (_scratch, log, server) = logged_server(
        "access-log",
        &[
            "--auth",
            "alice:secret",
            "--stream",
            "/=demo",
            "--stream",
            SHORT_STREAM,
        ],
    );
    let addr = server.addr();
    let alice = basic("alice:secret");

    let request = format!(
        "GET /?action=snapshot HTTP/1.1\r\nHost: t\r\n{alice}User-Agent: test-agent/1.0\r\n\
         Referer: http://example.org/view\r\n\r\n"
    );
    let snapshot = read_raw(addr, request.as_bytes());
    assert_eq!(status_of(&snapshot), 200);
    let stream = read_raw(
        addr,
        format!("GET /s HTTP/1.1\r\nHost: t\r\n{alice}\r\n").as_bytes(),
    );
    assert_eq!(status_of(&stream), 200);
    let missing = read_raw(addr, format!("GET /nope HTTP/1.0\r\n{alice}\r\n").as_bytes());
    assert_eq!(status_of(&missing), 404);
    let wrong = basic("bob:guess");
    let refused = read_raw(
        addr,
        format!("GET /s HTTP/1.1\r\nHost: t\r\n{wrong}\r\n").as_bytes(),
    );
    assert_eq!(status_of(&refused), 401);

    let line = wait_line(&log, "GET /?action=snapshot HTTP/1.1");
    assert_eq!(
        (line.client.as_str(), line.user.as_str(), line.status),
        ("127.0.0.1", "alice", 200)
    );
    assert_eq!(line.bytes, snapshot.bytes.len() as u64, "{line:?}");
    assert_eq!(
        (line.referer.as_str(), line.agent.as_str()),
        ("http://example.org/view", "test-agent/1.0")
    );
    let day_after = utc_day();
    assert!(
        line.time.ends_with(" +0000")
            && [&day_before, &day_after]
                .iter()
                .any(|day| line.time.starts_with(&format!("{day}:"))),
        "{line:?}"
    );

    // The stream's line and the 401's.
    let lines = wait_lines(&log, "GET /s HTTP/1.1", 2);
    let line = lines.iter().find(|l| l.status == 200).expect("the stream's line");
    assert_eq!(line.user, "alice");
    assert_eq!(line.bytes, stream.bytes.len() as u64, "{line:?}");
    assert!(stream.bytes.len() > 5_000, "{} bytes", stream.bytes.len());
    // Its duration is the stream's whole life: four 20 ms gaps at least.
    assert!(line.seconds >= 0.079, "{line:?}");
    assert_eq!((line.referer.as_str(), line.agent.as_str()), ("-", "-"));

    let line = wait_line(&log, "GET /nope HTTP/1.0");
    assert_eq!((line.user.as_str(), line.status), ("alice", 404));
    assert_eq!(line.bytes, missing.bytes.len() as u64);

    // A 401 names the user who tried; the stream was not sent.
    let line = lines.iter().find(|l| l.status == 401).expect("the 401's line");
    assert_eq!(line.user, "bob");
    assert_eq!(line.bytes, refused.bytes.len() as u64);
    println!(
        "access log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn sighup_reopens_the_access_log_and_streams_run_on() {
    let (scratch, log, mut server) = logged_server("sighup", &["--stream", ENDLESS_STREAM]);
    let rotated = scratch.join("access.log.1");
    let addr = server.addr();
    let mut viewer = crate::support::http::connect(addr);
    viewer.write_all(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut chunk = [0u8; 4096];
    let read_some = |viewer: &mut std::net::TcpStream, chunk: &mut [u8]| {
        let n = viewer.read(chunk).expect("the stream goes on");
        assert!(n > 0, "the stream ended");
        n
    };
    read_some(&mut viewer, &mut chunk);

    assert_eq!(
        status_of(&read_raw(addr, b"GET /before HTTP/1.1\r\nHost: t\r\n\r\n")),
        404
    );
    wait_line(&log, "GET /before HTTP/1.1");
    std::fs::rename(&log, &rotated).expect("rotate the log");
    server.signal(libc::SIGHUP);
    wait_for("the reopen in the server's log", LINE_WITHIN, || {
        match server.log().contains("access log") && server.log().contains("reopened") {
            true => Ok(()),
            false => Err(server.log()),
        }
    });
    assert_eq!(
        status_of(&read_raw(addr, b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")),
        404
    );
    wait_line(&log, "GET /after HTTP/1.1");

    // The stream ran on through the signal, and the server did not die of it.
    let mut after = 0;
    while after < 2_000 {
        after += read_some(&mut viewer, &mut chunk);
    }
    assert!(server.is_running());
    drop(viewer);
    let line = wait_line(&log, "GET /s HTTP/1.1");
    assert_eq!(line.status, 200);
    assert!(line.bytes > 2_000, "{line:?}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("GET /before") && !old.contains("GET /after") && !old.contains("GET /s "),
        "{old}"
    );
    server.signal(libc::SIGTERM);
    assert!(
        server
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
}

/// A PROXY v2 header for TCP over IPv4 (command 1: PROXY; 0: LOCAL).
fn proxy_v2(command: u8, source: [u8; 4], port: u16) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x20 | command, 0x11, 0, 12 + 7]);
    out.extend_from_slice(&source);
    out.extend_from_slice(&[127, 0, 0, 1]);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&80u16.to_be_bytes());
    // A TLV (PP2_TYPE_NOOP, 4 bytes): skipped.
    out.extend_from_slice(&[0x04, 0, 4, 1, 2, 3, 4]);
    out
}

#[test]
fn proxy_protocol_from_a_trusted_peer_gives_the_logged_address() {
    let args = [&BEHIND_PROXY[..], &["--stream", SHORT_STREAM]].concat();
    let (_scratch, log, server) = logged_server("proxy-protocol", &args);
    let addr = server.addr();
    let trusted = [127, 0, 0, 1];

    let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 4711 80\r\nGET /v1 HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_eq!(status_of(&raw_from(trusted, addr, v1)), 404);
    assert_eq!(wait_line(&log, "GET /v1 HTTP/1.1").client, "203.0.113.7");
    let v1_six = b"PROXY TCP6 2001:db8::7 ::1 4711 80\r\nGET /v1-6 HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_eq!(status_of(&raw_from(trusted, addr, v1_six)), 404);
    assert_eq!(wait_line(&log, "GET /v1-6 HTTP/1.1").client, "2001:db8::7");

    // The header and the request in separate writes: read whatever the cut.
    let mut v2 = proxy_v2(1, [198, 51, 100, 9], 5000);
    let mut stream = connect_from(trusted, addr);
    stream.write_all(&v2[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stream.write_all(&v2[10..]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stream.write_all(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(wait_line(&log, "GET /s HTTP/1.1").client, "198.51.100.9");

    // LOCAL: the proxy speaks for itself; its own address is logged.
    v2 = proxy_v2(0, [198, 51, 100, 9], 5000);
    v2.extend_from_slice(b"GET /local HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status_of(&raw_from(trusted, addr, &v2)), 404);
    assert_eq!(wait_line(&log, "GET /local HTTP/1.1").client, "127.0.0.1");

    // A trusted peer without a header, or with a bad one: closed unanswered.
    for bad in [
        &b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"PROXY TCP4 203.0.113.7 127.0.0.1 4711\r\nGET /short HTTP/1.1\r\n\r\n",
        b"PROXY TCP4 999.0.113.7 127.0.0.1 4711 80\r\nGET /bad HTTP/1.1\r\n\r\n",
    ] {
        let raw = raw_from(trusted, addr, bad);
        assert!(raw.bytes.is_empty(), "{:?}", String::from_utf8_lossy(&raw.bytes));
    }

    // Stats through the proxy protocol too: the refusals are counted.
    let mut stats = proxy_v2(1, [192, 0, 2, 1], 1);
    stats.extend_from_slice(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
    let raw = raw_from(trusted, addr, &stats);
    let (_, body) = raw.split_head();
    let json = crate::support::json::parse(std::str::from_utf8(body).unwrap());
    assert_eq!(json.get("closed").int("refused"), 3, "{json:?}");
    assert_eq!(wait_line(&log, "GET /stats HTTP/1.1").client, "192.0.2.1");
}

#[test]
fn proxy_protocol_from_an_untrusted_peer_is_refused() {
    let (_scratch, log, server) = logged_server("proxy-untrusted", &BEHIND_PROXY);
    let addr = server.addr();
    let untrusted = [127, 0, 0, 2];
    for request in [
        &b"PROXY TCP4 203.0.113.7 127.0.0.1 4711 80\r\nGET /v1 HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        &[
            proxy_v2(1, [203, 0, 113, 7], 1).as_slice(),
            b"GET /v2 HTTP/1.1\r\n\r\n",
        ]
        .concat(),
        b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let raw = raw_from(untrusted, addr, request);
        assert!(raw.bytes.is_empty(), "{:?}", String::from_utf8_lossy(&raw.bytes));
    }
    // Nothing was served, so nothing was logged; a trusted request is, after them.
    let trusted = b"PROXY TCP4 203.0.113.8 127.0.0.1 1 80\r\nGET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_eq!(status_of(&raw_from([127, 0, 0, 1], addr, trusted)), 404);
    wait_line(&log, "GET /ok HTTP/1.1");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
}

/// Requests from `from` to `addr` with one header line each: the client each one's log
/// line names, in order.
fn logged_clients(log: &Path, addr: SocketAddr, cases: &[([u8; 4], &str, &str)]) -> Vec<String> {
    cases
        .iter()
        .map(|(from, path, header)| {
            let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n{header}\r\n\r\n");
            assert_eq!(status_of(&raw_from(*from, addr, request.as_bytes())), 404);
            wait_line(log, &format!("GET {path} HTTP/1.1")).client
        })
        .collect()
}

#[test]
fn forwarded_headers_are_believed_from_trusted_addresses_only() {
    let (trusted, untrusted) = ([127, 0, 0, 1], [127, 0, 0, 2]);
    let (_scratch, log, server) = logged_server("forwarded", &["--trust-proxy", "127.0.0.1"]);
    let cases = [
        // The client wrote the first entry itself; the proxy appended the real one.
        (trusted, "/xff", "X-Forwarded-For: 6.6.6.6, 198.51.100.2"),
        // The proxy writes X-Forwarded-For: a Forwarded header is the client's own.
        (trusted, "/fwd-forged", "Forwarded: for=6.6.6.6"),
        (untrusted, "/xff-untrusted", "X-Forwarded-For: 198.51.100.2"),
    ];
    let clients = logged_clients(&log, server.addr(), &cases);
    assert_eq!(clients, ["198.51.100.2", "127.0.0.1", "127.0.0.2"]);

    let args = ["--trust-proxy", "127.0.0.1", "--forwarded-header", "Forwarded"];
    let (_scratch, log, server) = logged_server("forwarded-rfc", &args);
    let cases = [
        (
            trusted,
            "/fwd",
            "Forwarded: for=\"[2001:db8::7]:4711\";proto=http",
        ),
        (trusted, "/xff-forged", "X-Forwarded-For: 6.6.6.6"),
        (untrusted, "/fwd-untrusted", "Forwarded: for=198.51.100.2"),
    ];
    let clients = logged_clients(&log, server.addr(), &cases);
    assert_eq!(clients, ["2001:db8::7", "127.0.0.1", "127.0.0.2"]);
}

/// HAProxy's configuration: HTTP mode, the server behind it with `send-proxy-v2`.
fn haproxy_config(server: SocketAddr) -> String {
    format!(
        "global\n    maxconn 100\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    \
         timeout server 30s\n    option http-no-delay\n\
         frontend front\n    bind fd@3\n    default_backend back\n\
         backend back\n    server mixreplace {server} send-proxy-v2\n"
    )
}

/// HAProxy in the foreground on `listener` (passed as descriptor 3: no port to race
/// for), logging to a file in `scratch`.
fn start_haproxy(haproxy: &Path, scratch: &Scratch, listener: &TcpListener, server: SocketAddr) -> Guard {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let config = scratch.write("haproxy.cfg", haproxy_config(server));
    let output = std::fs::File::create(scratch.join("haproxy.log")).unwrap();
    let mut command = Command::new(haproxy);
    command
        .args(["-db", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output);
    let fd = listener.as_raw_fd();
    // SAFETY: between fork and exec the closure calls only dup2 or fcntl, which are
    // async-signal-safe, on a descriptor the parent keeps open across the spawn.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec set: clear it instead.
            let done = match fd {
                3 => libc::fcntl(3, libc::F_SETFD, 0),
                _ => libc::dup2(fd, 3),
            };
            match done {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            }
        });
    }
    Guard::spawn(&mut command, Duration::from_secs(120))
}

#[test]
fn haproxy_with_send_proxy_v2_in_front() {
    let Some(haproxy) = require_tool(&["haproxy"], "haproxy") else {
        return;
    };
    let args = [&BEHIND_PROXY[..], &["--stream", SHORT_STREAM]].concat();
    let (scratch, log, server) = logged_server("haproxy", &args);
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener for HAProxy");
    let front = listener.local_addr().unwrap();
    let mut proxy = start_haproxy(&haproxy, &scratch, &listener, server.addr());
    drop(listener);

    // The client comes from 127.0.0.3; HAProxy connects from 127.0.0.1 and says so.
    let client = [127, 0, 0, 3];
    let stream = wait_for("HAProxy to answer", Duration::from_secs(20), || {
        let said = || std::fs::read_to_string(scratch.join("haproxy.log")).unwrap_or_default();
        assert!(proxy.is_running(), "HAProxy exited: {}", said());
        // The listener was listening before HAProxy started: a refusal means it is gone.
        std::net::TcpStream::connect_timeout(&front, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("HAProxy's listener: {e}; HAProxy said: {}", said()));
        let request = b"GET /s HTTP/1.1\r\nHost: t\r\nUser-Agent: behind/1\r\nConnection: close\r\n\r\n";
        let raw = raw_from(client, front, request);
        match raw.bytes.starts_with(b"HTTP/1.1 200") {
            true => Ok(raw),
            false => Err(String::from_utf8_lossy(&raw.bytes).into_owned()),
        }
    });
    assert!(stream.bytes.len() > 5_000, "{} bytes", stream.bytes.len());
    let line = wait_line(&log, "GET /s HTTP/1.1");
    assert_eq!(
        (line.client.as_str(), line.status, line.agent.as_str()),
        ("127.0.0.3", 200, "behind/1")
    );
    // (`Connection: close`: HAProxy keeps a client's connection open after the answer.)
    let missing = raw_from(
        client,
        front,
        b"GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(missing.bytes.starts_with(b"HTTP/1.1 404"));
    assert_eq!(wait_line(&log, "GET /nope HTTP/1.1").client, "127.0.0.3");
    // The same client straight to the server, past HAProxy: refused unanswered.
    let direct = raw_from(client, server.addr(), b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(direct.bytes.is_empty());
    proxy.signal(libc::SIGTERM);
    assert!(
        proxy.wait_exit(Duration::from_secs(10)).is_some(),
        "HAProxy did not stop"
    );
    let ip: IpAddr = line.client.parse().unwrap();
    assert!(ip.is_loopback());
}

#[test]
fn the_library_logs_and_trusts_as_the_binary_does() {
    let scratch = Scratch::new("embedded-log");
    let log = scratch.join("access.log");
    let unconfigured = mixreplace::Builder::new().proxy_protocol(true).spawn();
    assert!(
        matches!(&unconfigured, Err(mixreplace::Error::Config(m)) if m.contains("trust_proxy")),
        "{unconfigured:?}"
    );
    let one_listener = mixreplace::Builder::new()
        .listen_proxy(SocketAddr::from(([127, 0, 0, 1], 0)))
        .spawn();
    assert!(
        matches!(&one_listener, Err(mixreplace::Error::Config(m)) if m.contains("trust_proxy")),
        "{one_listener:?}"
    );
    let bad = mixreplace::Builder::new().trust_proxy("10.0.0.0/33").spawn();
    assert!(matches!(bad, Err(mixreplace::Error::Config(_))), "{bad:?}");

    let server = mixreplace::Builder::new()
        .access_log(&log)
        .trust_proxy("127.0.0.0/8")
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .listen_proxy(SocketAddr::from(([127, 0, 0, 1], 0)))
        .spawn()
        .expect("spawn");
    let request = b"GET /lib HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.77\r\n\r\n";
    assert_eq!(status_of(&read_raw(server.local_addr(), request)), 404);
    assert_eq!(wait_line(&log, "GET /lib HTTP/1.1").client, "192.0.2.77");
    let [_, mixreplace::ListenAddr::Tcp(proxied)] = server.addrs() else {
        panic!("two TCP listeners: {:?}", server.addrs())
    };
    let request = b"PROXY TCP4 192.0.2.78 127.0.0.1 1 80\r\nGET /lib-p HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_eq!(status_of(&read_raw(*proxied, request)), 404);
    assert_eq!(wait_line(&log, "GET /lib-p HTTP/1.1").client, "192.0.2.78");
    server.stop().expect("a graceful stop");
}

/// The length of each answer in `bytes`, in order: its head and its `Content-Length`
/// body (none for the answer to a `HEAD`, the requests' `head_only`).
fn answer_lengths(bytes: &[u8], head_only: &[bool]) -> Vec<usize> {
    let mut at = 0;
    let lengths = head_only
        .iter()
        .map(|&head_only| {
            let rest = &bytes[at..];
            let head_end = crate::support::multipart::find(rest, b"\r\n\r\n").expect("an answer's head") + 4;
            let head = std::str::from_utf8(&rest[..head_end]).expect("a UTF-8 head");
            let body: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("Content-Length: "))
                .expect("a Content-Length")
                .parse()
                .expect("a number");
            let len = head_end + if head_only { 0 } else { body };
            at += len;
            len
        })
        .collect();
    assert_eq!(at, bytes.len(), "bytes past the last answer");
    lengths
}

#[test]
fn pipelined_requests_on_a_kept_alive_connection_get_a_line_each_in_order() {
    let (_scratch, log, server) = logged_server("keepalive-log", &[]);
    let requests = [
        ("GET /?action=snapshot", "one", ""),
        ("HEAD /?action=snapshot", "two", ""),
        ("GET /stats", "three", ""),
        ("GET /?action=snapshot", "four", "Connection: close\r\n"),
    ];
    // All four in one write: the server answers them one after the other.
    let pipeline: String = requests
        .iter()
        .map(|(line, agent, extra)| {
            format!("{line} HTTP/1.1\r\nHost: t\r\nUser-Agent: {agent}\r\n{extra}\r\n")
        })
        .collect();
    let raw = read_raw(server.addr(), pipeline.as_bytes());
    assert_eq!(raw.end, End::Eof);
    let head_only: Vec<bool> = requests
        .iter()
        .map(|(line, _, _)| line.starts_with("HEAD"))
        .collect();
    let lengths = answer_lengths(&raw.bytes, &head_only);
    let lines = wait_matching(&log, requests.len(), |_| true);
    for (line, ((request, agent, _), length)) in lines.iter().zip(requests.iter().zip(&lengths)) {
        assert_eq!(
            (line.request.as_str(), line.agent.as_str(), line.status),
            (format!("{request} HTTP/1.1").as_str(), *agent, 200),
            "{line:?}"
        );
        assert_eq!(
            (line.bytes, line.client.as_str()),
            (*length as u64, "127.0.0.1"),
            "{line:?}"
        );
    }
    println!(
        "answers of {lengths:?} bytes; log:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

/// The `IP:PORT` of a `http://IP:PORT/` word of the ready line.
fn tcp_listener(word: &str) -> SocketAddr {
    word.strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("not a TCP listener: {word:?}"))
}

/// Sends `bytes` over the unix socket at `path` and reads everything to the close.
fn unix_exchange(path: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(path).expect("connect to the unix socket");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(bytes).expect("send");
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("read to the close");
    got
}

#[test]
fn a_proxy_listener_beside_plain_ones_in_one_server() {
    let scratch = Scratch::new("proxy-listeners");
    let (plain_unix, proxy_unix) = (scratch.join("plain.sock"), scratch.join("proxy.sock"));
    let plain_arg = format!("unix:{}", plain_unix.display());
    let proxy_arg = format!("proxy:unix:{}", proxy_unix.display());
    let args = [
        "--trust-proxy",
        "127.0.0.1/32",
        "--listen",
        "proxy:127.0.0.1:0",
        "--listen",
        &plain_arg,
        "--listen",
        &proxy_arg,
    ];
    let (_log_scratch, log, server) = logged_server("proxy-listeners-log", &args);
    // The helper's own plain `127.0.0.1:0` comes first, then the flags' in order.
    let listening = server.listening();
    assert_eq!(listening.len(), 4, "{listening:?}");
    let (plain, proxy) = (tcp_listener(&listening[0]), tcp_listener(&listening[1]));
    let (trusted, untrusted) = ([127, 0, 0, 1], [127, 0, 0, 2]);
    let v1 = |path: &str| {
        format!("PROXY TCP4 203.0.113.7 127.0.0.1 4711 80\r\nGET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
    };
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");

    // The proxy listener: the header's client, from a trusted peer only.
    assert_eq!(status_of(&raw_from(trusted, proxy, v1("/p").as_bytes())), 404);
    assert_eq!(wait_line(&log, "GET /p HTTP/1.1").client, "203.0.113.7");
    for (from, request) in [(trusted, get("/p-bare")), (untrusted, v1("/p-untrusted"))] {
        let raw = raw_from(from, proxy, request.as_bytes());
        assert!(raw.bytes.is_empty(), "{:?}", String::from_utf8_lossy(&raw.bytes));
    }
    // The plain one beside it: no header is read, so one is a bad request.
    assert_eq!(
        status_of(&raw_from(untrusted, plain, get("/plain").as_bytes())),
        404
    );
    assert_eq!(wait_line(&log, "GET /plain HTTP/1.1").client, "127.0.0.2");
    assert_eq!(status_of(&raw_from(trusted, plain, v1("/x").as_bytes())), 400);

    // Unix sockets: a peer without an address is `-`, unless a PROXY header names one.
    let got = unix_exchange(&plain_unix, get("/unix").as_bytes());
    assert!(
        got.starts_with(b"HTTP/1.1 404 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(wait_line(&log, "GET /unix HTTP/1.1").client, "-");
    let got = unix_exchange(&proxy_unix, v1("/unix-p").as_bytes());
    assert!(
        got.starts_with(b"HTTP/1.1 404 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(wait_line(&log, "GET /unix-p HTTP/1.1").client, "203.0.113.7");
    assert!(unix_exchange(&proxy_unix, get("/unix-bare").as_bytes()).is_empty());

    // Every request answered was logged (the 400 too), and no refused connection.
    let lines = wait_matching(&log, 5, |_| true);
    assert_eq!(lines[2].status, 400, "{lines:?}");
    assert_eq!(server.stats().closed("refused"), 3);
}
