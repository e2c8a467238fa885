//! Listeners and systemd (issue 10): unix sockets read by `curl --unix-socket`, several
//! listeners at once, socket activation by `systemd-socket-activate`, `sd_notify` on a
//! datagram socket the test binds, `SO_REUSEPORT` shared by two servers, the library's
//! listeners, and the units in `contrib/` checked by `systemd-analyze verify`.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mixreplace::{Builder, ListenAddr, PartSpec};

use crate::support::http::{self, exchange};
use crate::support::multipart::{self, parse_written};
use crate::support::process::{Output, run};
use crate::support::server::{Server, check_refused, run_binary};
use crate::support::tools::{TOOL_LIMIT, require_tool, skip_or_fail};
use crate::support::{IO_TIMEOUT, Scratch, json, spare_addr, wait_for};

/// Five 64-byte parts, 10 ms apart: a stream that ends quickly.
const SHORT: &str = "/clip=synthetic:parts=5,size=64,interval=10";
/// A small JPEG test video (its snapshot: its first frame).
const CAM: &str = "/cam=testcard,size=160x120,frames=2";
/// A stream that runs for minutes: parts of 32 bytes every 50 ms.
const LONG: &str = "/live=synthetic:parts=5000,size=32,interval=50";

/// `curl --unix-socket SOCKET` with `args`, to its exit.
fn curl_unix(curl: &Path, socket: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(curl);
    command.arg("--unix-socket").arg(socket).args(args);
    run(&mut command, None, TOOL_LIMIT)
}

/// `GET /stats` through a unix socket with curl, as JSON.
fn stats_over_unix(curl: &Path, socket: &Path) -> json::Value {
    let done = curl_unix(curl, socket, &["-sf", "http://localhost/stats"]);
    assert!(done.status.success(), "curl /stats: {}", done.stderr_text());
    json::parse(&done.stdout_text())
}

/// A HTTP/1.0 request over a unix socket, its stream's head read: the reader of its parts.
fn open_unix(path: &Path, target: &str) -> multipart::PartReader<UnixStream> {
    let mut stream = UnixStream::connect(path).expect("connect to the unix socket");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("a read timeout");
    let request = format!("GET {target} HTTP/1.0\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send the request");
    multipart::over(stream).expect("a stream head").0
}

fn mode_of(path: &Path) -> u32 {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.file_type().is_socket(), "{} is not a socket", path.display());
    meta.permissions().mode() & 0o777
}

fn unix_arg(path: &Path) -> String {
    format!("unix:{}", path.display())
}

#[test]
fn curl_reads_a_stream_and_a_snapshot_over_a_unix_socket_made_with_its_mode() {
    let Some(curl) = require_tool(&["curl"], "curl") else {
        return;
    };
    let scratch = Scratch::new("unix");
    let socket = scratch.join("mixreplace.sock");
    let listen = unix_arg(&socket);
    let mut server = Server::start(&[
        "--listen",
        &listen,
        "--unix-mode",
        "640",
        "--stream",
        SHORT,
        "--stream",
        CAM,
    ]);
    assert_eq!(server.listening().len(), 2, "{:?}", server.listening());
    assert_eq!(server.listening()[1], listen);
    assert_eq!(mode_of(&socket), 0o640);

    let streamed = curl_unix(&curl, &socket, &["-sN", "http://localhost/clip"]);
    assert!(streamed.status.success(), "curl: {}", streamed.stderr_text());
    let parts = parse_written(&streamed.stdout, "curl's");
    assert_eq!(parts.parts.len(), 5);
    assert!(parts.parts.iter().all(|part| part.body.len() == 64));
    assert!(parts.parts[4].last && parts.stopped.is_none());

    let snap = scratch.join("snapshot");
    let snapshot = curl_unix(
        &curl,
        &socket,
        &[
            "-s",
            "-o",
            snap.to_str().expect("a UTF-8 path"),
            "-w",
            "%{http_code} %{content_type}",
            "http://localhost/cam?action=snapshot",
        ],
    );
    assert_eq!(
        snapshot.stdout_text(),
        "200 image/jpeg",
        "{}",
        snapshot.stderr_text()
    );
    let image = std::fs::read(&snap).expect("the snapshot curl wrote");
    let over_tcp = server.get("/cam?action=snapshot");
    assert!(image.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    assert_eq!(
        image, over_tcp.body,
        "the same snapshot over TCP and the unix socket"
    );

    // The stream, the snapshot and this request came through the unix socket, and
    // the snapshot over TCP.
    let stats = stats_over_unix(&curl, &socket);
    assert_eq!(stats.int("accepted"), 4, "{stats:?}");
    assert_eq!(stats.get("answers").int("200"), 4, "{stats:?}");

    // A graceful stop removes the socket file the server made.
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("an exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(!socket.exists(), "the socket file outlived the server");
}

#[test]
fn a_stale_socket_is_refused_without_unix_rm_and_replaced_with_it() {
    let Some(curl) = require_tool(&["curl"], "curl") else {
        return;
    };
    let scratch = Scratch::new("stale");
    // A socket nothing listens on any more: what a crash leaves.
    let stale = scratch.join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind a socket"));
    // A live server's socket, and a file that is not a socket.
    let live = scratch.join("live.sock");
    let _owner = UnixListener::bind(&live).expect("bind a socket");
    let plain = scratch.write("plain", "not a socket");

    for (path, rm, says) in [
        (&stale, false, "--unix-rm"),
        (&live, false, "--unix-rm"),
        (&live, true, "a server is listening on it"),
        (&plain, true, "not a socket"),
    ] {
        let listen = unix_arg(path);
        let mut args = vec!["--listen", &listen];
        if rm {
            args.push("--unix-rm");
        }
        let done = run_binary(&args, &[("RUST_LOG", "off")]);
        let stderr = done.stderr_text();
        assert_eq!(done.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&listen) && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(done.stdout.is_empty(), "{args:?}: {}", done.stdout_text());
        assert!(path.exists(), "{args:?} removed {}", path.display());
    }

    let listen = unix_arg(&stale);
    let server = Server::start(&["--listen", &listen, "--unix-rm"]);
    assert_eq!(server.listening()[1], listen);
    assert_eq!(stats_over_unix(&curl, &stale).int("accepted"), 1);
}

#[test]
fn unix_options_without_a_unix_listener_are_refused() {
    for (args, names) in [
        (&["--unix-mode", "660"][..], &["--unix-mode", "unix:PATH"][..]),
        (&["--unix-rm"], &["--unix-rm", "unix:PATH"]),
        (&["--listen", "unix:"], &["--listen", "unix socket path"]),
        (
            &["--listen", "unix:/tmp/x.sock", "--unix-mode", "999"],
            &["--unix-mode", "999"],
        ),
        (&["--systemd"], &["LISTEN_FDS"]),
    ] {
        check_refused(&run_binary(args, &[]), &format!("{args:?}"), names);
    }
    // Variables meant for another process are not taken.
    let elsewhere = [("LISTEN_PID", "1"), ("LISTEN_FDS", "1")];
    check_refused(
        &run_binary(&["--systemd"], &elsewhere),
        "LISTEN_PID=1",
        &["LISTEN_FDS"],
    );
}

#[test]
fn one_server_serves_ipv4_ipv6_and_a_unix_socket_at_once() {
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    if !ipv6 {
        skip_or_fail("no IPv6 loopback here; enable it with sysctl net.ipv6.conf.lo.disable_ipv6=0");
        return;
    }
    let scratch = Scratch::new("three");
    let socket = scratch.join("s.sock");
    let listen = unix_arg(&socket);
    let server = Server::start(&["--listen", "[::1]:0", "--listen", &listen, "--stream", LONG]);
    let listening = server.listening();
    assert_eq!(listening.len(), 3, "{listening:?}");
    assert_eq!(listening[2], listen);
    let v6: SocketAddr = listening[1]
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/')?.parse().ok())
        .unwrap_or_else(|| panic!("{listening:?}"));
    assert!(v6.is_ipv6() && v6.ip().is_loopback(), "{v6}");

    let mut over_v4 = multipart::open(server.addr(), "/live");
    let mut over_v6 = multipart::open(v6, "/live");
    let mut over_unix = open_unix(&socket, "/live");
    for _ in 0..2 {
        for (name, part) in [
            ("IPv4", over_v4.next()),
            ("IPv6", over_v6.next()),
            ("unix", over_unix.next()),
        ] {
            match part {
                Ok(multipart::Item::Part(part)) => assert_eq!(part.body.len(), 32, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
    let stats = server.stats();
    assert_eq!(stats.viewers("/live"), 3, "{stats}");
    assert_eq!(stats.get("accepted"), 4, "{stats}");
}

/// What `systemd-socket-activate` needs to start the server: a first client. It connects
/// as soon as the wrapper listens, and its request waits in the backlog for the server.
fn first_client(addr: SocketAddr) -> std::thread::JoinHandle<http::Response> {
    std::thread::spawn(move || {
        let mut stream = wait_for(
            "systemd-socket-activate to listen",
            Duration::from_secs(20),
            || TcpStream::connect(addr).map_err(|e| e.to_string()),
        );
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("a read timeout");
        stream
            .write_all(b"GET /stats HTTP/1.0\r\n\r\n")
            .expect("send the first request");
        http::read_response(&mut stream, false).expect("the first client's answer")
    })
}

#[test]
fn socket_activation_by_systemd_socket_activate_over_tcp_and_unix() {
    let Some(activate) = require_tool(&["systemd-socket-activate"], "systemd") else {
        return;
    };
    let Some(curl) = require_tool(&["curl"], "curl") else {
        return;
    };
    let scratch = Scratch::new("activated");
    let socket = scratch.join("activated.sock");
    let tcp = spare_addr();
    let (tcp_arg, unix_path) = (tcp.to_string(), socket.to_str().expect("a UTF-8 path").to_owned());
    let first = first_client(tcp);
    let wrapper = [
        activate.to_str().expect("a UTF-8 path"),
        "-l",
        &tcp_arg,
        "-l",
        &unix_path,
        "--fdname=web:local",
    ];
    let mut server = Server::start_via(&wrapper, &["--systemd"], |_| {});
    // The passed listeners first, then the helpers' own --listen 127.0.0.1:0.
    let listening = server.listening();
    assert_eq!(
        listening[..2],
        [format!("http://{tcp}/"), unix_arg(&socket)],
        "{listening:?}"
    );
    assert_eq!(listening.len(), 3, "{listening:?}");

    let answer = first.join().expect("the first client");
    assert_eq!(
        answer.status, 200,
        "the client that started the server: {answer:?}"
    );
    let stats = stats_over_unix(&curl, &socket);
    assert_eq!(
        stats.int("accepted"),
        2,
        "the first client, then this one: {stats:?}"
    );
    let log = server.log();
    for line in [
        "systemd passed descriptor 3 (web)",
        "systemd passed descriptor 4 (local)",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    // The server took the descriptors as its own: close-on-exec (no child of its holds
    // them) and non-blocking. (Its /proc/PID/environ is the one it started with: it
    // cannot show the variables removed.)
    let fdinfo = std::fs::read_to_string(format!("/proc/{}/fdinfo/3", server.pid())).expect("fd 3's flags");
    let flags = fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|octal| u32::from_str_radix(octal.trim(), 8).ok())
        .expect("fd 3's flags");
    assert_ne!(
        flags & libc::O_CLOEXEC as u32,
        0,
        "fd 3 is not close-on-exec: {flags:o}"
    );
    assert_ne!(flags & libc::O_NONBLOCK as u32, 0, "fd 3 is blocking: {flags:o}");

    // The socket file is systemd's (here, the wrapper's): the server leaves it.
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("an exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(socket.exists(), "the server removed a socket it did not make");
}

/// Datagrams from the server, with when each came.
struct Notifications {
    socket: UnixDatagram,
    got: Vec<(Instant, String)>,
}

impl Notifications {
    fn bind(addr: &UnixAddr) -> Notifications {
        let socket = UnixDatagram::bind_addr(addr).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a read timeout");
        Notifications {
            socket,
            got: Vec::new(),
        }
    }

    /// Reads until a message satisfies `done`; fails after `timeout`.
    fn until(&mut self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(message) = self.receive().filter(|m| done(m)) {
                return message;
            }
        }
        panic!(
            "no {what} within {timeout:?}; got {:?}",
            self.got.iter().map(|(_, m)| m).collect::<Vec<_>>()
        );
    }

    /// Reads whatever comes for `window`.
    fn listen_for(&mut self, window: Duration) {
        let end = Instant::now() + window;
        while Instant::now() < end {
            self.receive();
        }
    }

    /// The next message, if one comes within the read timeout.
    fn receive(&mut self) -> Option<String> {
        let mut buf = [0; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        self.got.push((Instant::now(), message.clone()));
        Some(message)
    }

    fn count_since(&self, since: Instant, message: &str) -> usize {
        self.got
            .iter()
            .filter(|(at, m)| *at >= since && m == message)
            .count()
    }
}

#[test]
fn sd_notify_says_ready_status_watchdog_and_stopping() {
    let scratch = Scratch::new("notify");
    let path = scratch.join("notify");
    let mut notes = Notifications::bind(&UnixAddr::from_pathname(&path).expect("a socket path"));
    // A ping every 100 ms (half of WATCHDOG_USEC).
    let mut server = Server::start_with(&["--stream", LONG], |command| {
        command.env("NOTIFY_SOCKET", &path).env("WATCHDOG_USEC", "200000");
    });
    let ready = notes.until("READY=1", Duration::from_secs(10), |m| m.starts_with("READY=1\n"));
    assert!(
        ready.contains("\nSTATUS=0 clients, 0 viewers of 1 streams"),
        "{ready:?}"
    );

    // The pings over a window: about one per 100 ms, counted, not timed.
    let window = Instant::now();
    notes.listen_for(Duration::from_secs(2));
    let elapsed = window.elapsed();
    let pings = notes.count_since(window, "WATCHDOG=1");
    let expected = elapsed.as_secs_f64() / 0.1;
    eprintln!("watchdog: {pings} pings in {elapsed:?} (expected about {expected:.0})");
    assert!(
        (pings as f64) >= expected / 4.0 && (pings as f64) <= expected * 1.5 + 2.0,
        "{pings} pings in {elapsed:?}"
    );

    // A viewer shows in the status (looked at every 2 s, sent when it changed).
    let mut viewer = multipart::open(server.addr(), "/live");
    assert!(matches!(viewer.next(), Ok(multipart::Item::Part(_))));
    notes.until("a status with the viewer", Duration::from_secs(10), |m| {
        m == "STATUS=1 clients, 1 viewers of 1 streams"
    });

    server.signal(libc::SIGTERM);
    notes.until("STOPPING=1", Duration::from_secs(10), |m| {
        m.starts_with("STOPPING=1")
    });
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("an exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sd_notify_reaches_an_abstract_socket_and_pings_only_its_own_watchdog() {
    let name = format!("mixreplace-test-notify-{}", std::process::id());
    let mut notes = Notifications::bind(&UnixAddr::from_abstract_name(name.as_bytes()).expect("a name"));
    // WATCHDOG_PID names another process: the server must not ping for it.
    let server = Server::start_with(&[], |command| {
        command
            .env("NOTIFY_SOCKET", format!("@{name}"))
            .env("WATCHDOG_USEC", "100000")
            .env("WATCHDOG_PID", "1");
    });
    notes.until("READY=1", Duration::from_secs(10), |m| m.starts_with("READY=1\n"));
    let since = Instant::now();
    notes.listen_for(Duration::from_secs(1));
    assert_eq!(notes.count_since(since, "WATCHDOG=1"), 0, "{:?}", notes.got);
    drop(server);
}

#[test]
fn two_servers_share_a_port_with_reuse_port() {
    let shared = spare_addr().to_string();
    let a = Server::start(&["--reuse-port", "--listen", &shared, "--stream", LONG]);
    let b = Server::start(&["--reuse-port", "--listen", &shared, "--stream", LONG]);
    // Without the option the port is taken.
    let done = run_binary(&["--listen", &shared], &[("RUST_LOG", "off")]);
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr_text());

    let addr: SocketAddr = shared.parse().expect("an address");
    const CONNECTIONS: u64 = 64;
    for _ in 0..CONNECTIONS {
        let answer = exchange(addr, b"GET /stats HTTP/1.0\r\n\r\n");
        assert_eq!(answer.status, 200);
    }
    // Each server's own /stats (on its private 127.0.0.1 listener) counts itself too.
    let (to_a, to_b) = (a.stats().get("accepted") - 1, b.stats().get("accepted") - 1);
    eprintln!("reuse-port: {to_a} + {to_b} of {CONNECTIONS} connections");
    assert_eq!(to_a + to_b, CONNECTIONS);
    assert!(
        to_a > 0 && to_b > 0,
        "one server got every connection: {to_a} + {to_b}"
    );

    // Viewers spread too, and each gets its stream from the process it reached.
    const VIEWERS: u64 = 32;
    let mut viewers: Vec<_> = (0..VIEWERS).map(|_| multipart::open(addr, "/live")).collect();
    for viewer in &mut viewers {
        assert!(matches!(viewer.next(), Ok(multipart::Item::Part(_))));
    }
    let (on_a, on_b) = (a.stats().viewers("/live"), b.stats().viewers("/live"));
    eprintln!("reuse-port: {on_a} + {on_b} of {VIEWERS} viewers");
    assert_eq!(on_a + on_b, VIEWERS);
    assert!(
        on_a > 0 && on_b > 0,
        "one server got every viewer: {on_a} + {on_b}"
    );
}

#[test]
fn the_library_listens_on_a_unix_socket_and_on_a_listener_handed_over() {
    let scratch = Scratch::new("embed-listen");
    let socket = scratch.join("embedded.sock");
    let handed = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let handed_addr = handed.local_addr().expect("its address");
    let server = Builder::new()
        .listen_fd(OwnedFd::from(handed))
        .listen_unix(&socket)
        .unix_mode(0o600)
        .parts("/hi", [PartSpec::new("text/plain", "hi", 0)])
        .spawn()
        .expect("spawn");
    assert_eq!(
        server.addrs(),
        [ListenAddr::Tcp(handed_addr), ListenAddr::Unix(socket.clone())]
    );
    assert_eq!(server.local_addr(), handed_addr);
    assert_eq!(mode_of(&socket), 0o600);

    let over_tcp = multipart::fetch_stream(handed_addr, b"GET /hi HTTP/1.0\r\n\r\n");
    assert_eq!(over_tcp.parts.len(), 1);
    let mut over_unix = UnixStream::connect(&socket).expect("connect");
    over_unix
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("a read timeout");
    over_unix.write_all(b"GET /stats HTTP/1.0\r\n\r\n").expect("send");
    let mut reader = BufReader::new(over_unix);
    let head = http::read_head(&mut reader).expect("a head");
    assert_eq!(head.status, 200);
    let mut body = String::new();
    reader.read_to_string(&mut body).expect("the body");
    assert_eq!(json::parse(&body).int("accepted"), 2);

    let stats = server.stop().expect("a graceful stop");
    assert_eq!(stats.accepted, 2);
    assert!(!socket.exists(), "the socket file outlived the server");
    // A path too long for a unix socket is a configuration error.
    let long = PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
    let err = Builder::new().listen_unix(long).bind().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("listen_unix: invalid unix socket path"),
        "{err}"
    );
}

#[test]
fn the_systemd_units_in_contrib_pass_systemd_analyze_verify() {
    let Some(analyze) = require_tool(&["systemd-analyze"], "systemd") else {
        return;
    };
    let scratch = Scratch::new("units");
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    // The service's ExecStart must name an executable: this build's binary.
    let original = std::fs::read_to_string(contrib.join("mixreplace.service")).expect("the service unit");
    assert!(
        original.contains("\nExecStart=/usr/local/bin/mixreplace "),
        "{original}"
    );
    let service = original.replace("/usr/local/bin/mixreplace", crate::support::server::BIN);
    let units = [
        scratch.write("mixreplace.service", service),
        scratch.write(
            "mixreplace.socket",
            std::fs::read(contrib.join("mixreplace.socket")).expect("the socket unit"),
        ),
    ];
    let mut command = Command::new(analyze);
    command.arg("verify").args(&units).current_dir(scratch.path());
    let verified = run(&mut command, None, TOOL_LIMIT);
    let stderr = verified.stderr_text();
    assert!(verified.status.success(), "systemd-analyze verify: {stderr}");
    // Unknown keys and bad values are warnings: none may be left.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("mixreplace"))
        .collect();
    assert!(warnings.is_empty(), "systemd-analyze verify: {stderr}");
    for hardening in [
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "MemoryMax=",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "SupplementaryGroups=video",
    ] {
        assert!(
            original.lines().any(|line| line.starts_with(hardening)),
            "the service lacks {hardening}"
        );
    }
}
