//! `mixreplace-load` end to end: the built binary against small test servers on loopback
//! sockets (threads on the test side) and against the real server (the demo, a cap, live
//! frames it skips, a testcard), asserting on its `--json` report and exit code.
//! Every server and every run is bounded in time; nothing is timed for speed.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::json;
use crate::support::media::frame;
use crate::support::process::{Guard, drain, run};
use crate::support::server::Server;

/// No test server or run outlives this.
const LIMIT: Duration = Duration::from_secs(30);

/// What a test server does with each connection, by accept order.
#[derive(Clone)]
enum Behavior {
    /// A multipart stream of `parts` parts, `gap` apart. Parts alternate with and without
    /// Content-Length; `timestamps` adds `X-Timestamp`; `chunked` uses chunked coding.
    Stream {
        parts: usize,
        gap: Duration,
        timestamps: bool,
        chunked: bool,
    },
    /// The first `capacity` connections get a stream, the rest a 503 and a close.
    Capacity { capacity: usize, parts: usize },
    /// Read the request and say nothing, holding the connection open.
    Silent,
    /// Write these bytes and close.
    Raw(&'static [u8]),
}

struct TestServer {
    addr: SocketAddr,
    /// The peer address of every accepted connection.
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    /// The request heads received.
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(behavior: Behavior) -> TestServer {
    serve_on(TcpListener::bind("127.0.0.1:0").unwrap(), behavior)
}

fn serve_on(listener: TcpListener, behavior: Behavior) -> TestServer {
    let addr = listener.local_addr().unwrap();
    let server = TestServer {
        addr,
        peers: Arc::default(),
        requests: Arc::default(),
        stop: Arc::default(),
    };
    let (peers, requests, stop) = (server.peers.clone(), server.requests.clone(), server.stop.clone());
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let accepted = AtomicUsize::new(0);
        let end = Instant::now() + LIMIT;
        while !stop.load(Ordering::SeqCst) && Instant::now() < end {
            match listener.accept() {
                Ok((stream, peer)) => {
                    peers.lock().unwrap().push(peer);
                    let n = accepted.fetch_add(1, Ordering::SeqCst);
                    let (behavior, requests, stop) = (behavior.clone(), requests.clone(), stop.clone());
                    thread::spawn(move || {
                        // Errors only mean the client went away.
                        let _ = handle(stream, n, &behavior, &requests, &stop, end);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    server
}

fn handle(
    mut stream: TcpStream,
    n: usize,
    behavior: &Behavior,
    requests: &Mutex<Vec<String>>,
    stop: &AtomicBool,
    end: Instant,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    requests
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    match *behavior {
        Behavior::Stream {
            parts,
            gap,
            timestamps,
            chunked,
        } => write_stream(&mut stream, parts, gap, timestamps, chunked),
        Behavior::Capacity { capacity, parts } if n < capacity => {
            write_stream(&mut stream, parts, Duration::from_millis(20), true, false)
        }
        Behavior::Capacity { .. } => stream
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        Behavior::Silent => {
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        }
        Behavior::Raw(bytes) => stream.write_all(bytes),
    }
}

fn write_stream(
    stream: &mut TcpStream,
    parts: usize,
    gap: Duration,
    timestamps: bool,
    chunked: bool,
) -> std::io::Result<()> {
    let send = |stream: &mut TcpStream, data: &[u8]| {
        if chunked {
            stream.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
            stream.write_all(data)?;
            stream.write_all(b"\r\n")
        } else {
            stream.write_all(data)
        }
    };
    let te = if chunked {
        "Transfer-Encoding: chunked\r\n"
    } else {
        ""
    };
    stream.write_all(
        format!("HTTP/1.1 200 OK\r\n{te}Content-Type: multipart/x-mixed-replace; boundary=\"frame\"\r\n\r\n")
            .as_bytes(),
    )?;
    send(stream, b"--frame\r\n")?;
    for i in 0..parts {
        let due = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let body = format!("part {i}").repeat(i + 1);
        let mut part = String::from("Content-Type: text/plain\r\n");
        if i % 2 == 0 {
            part += &format!("Content-Length: {}\r\n", body.len());
        }
        if timestamps {
            part += &format!("X-Timestamp: {}.{:06}\r\n", due.as_secs(), due.subsec_micros());
        }
        let last = i + 1 == parts;
        part += &format!("\r\n{body}\r\n--frame{}\r\n", if last { "--" } else { "" });
        send(stream, part.as_bytes())?;
        if !last {
            thread::sleep(gap);
        }
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n")?;
    }
    Ok(())
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn report(&self) -> json::Value {
        json::parse(&self.stdout)
    }
}

/// Runs the binary to its end, killing it (and failing) past `LIMIT`.
fn load(args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mixreplace-load"));
    command.args(args);
    let done = run(&mut command, None, LIMIT);
    Run {
        code: done.status.code().expect("killed by a signal"),
        stdout: String::from_utf8(done.stdout).expect("UTF-8 output"),
        stderr: String::from_utf8(done.stderr).expect("UTF-8 output"),
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

fn failed(report: &json::Value, reason: &str) -> u64 {
    report.get("failed").int(reason)
}

/// `completed + failed_total == clients`, and the reasons add up.
fn check_totals(report: &json::Value) {
    let by_reason: u64 = report
        .get("failed")
        .keys()
        .iter()
        .map(|k| failed(report, k))
        .sum();
    assert_eq!(by_reason, report.int("failed_total"));
    assert_eq!(
        report.int("completed") + report.int("failed_total"),
        report.int("clients")
    );
}

#[test]
fn streams_with_timestamps_complete() {
    let server = serve(Behavior::Stream {
        parts: 5,
        gap: Duration::from_millis(20),
        timestamps: true,
        chunked: false,
    });
    let run = load(&[
        "--url",
        &url(server.addr, "/stream?x=1"),
        "--clients",
        "10",
        "--timeout-s",
        "20",
        "--json",
        "-q",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = run.report();
    check_totals(&r);
    assert_eq!(r.int("clients"), 10);
    assert_eq!(r.int("connected"), 10);
    assert_eq!(r.int("completed"), 10);
    assert_eq!(r.int("parts"), 50);
    assert_eq!(r.int("timestamped_parts"), 50);
    assert!(r.int("bytes") > 50 * 20);
    for key in ["p50", "p90", "p99", "max"] {
        assert!(r.get("lateness_ms").num(key) >= 0.0);
        assert!(r.get("connect_ms").num(key) >= 0.0);
        assert!(r.get("first_byte_ms").num(key) >= 0.0);
    }
    assert!(r.num("duration_s") > 0.0);
    assert!(r.num("throughput_mb_per_s") > 0.0);
    assert!(r.num("parts_per_s") > 0.0);
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 10);
    assert_eq!(
        requests[0],
        format!(
            "GET /stream?x=1 HTTP/1.1\r\nHost: {}\r\nUser-Agent: mixreplace-load\r\n\r\n",
            server.addr
        )
    );
}

#[test]
fn chunked_streams_without_timestamps_still_count() {
    // The shape of the Node peer: chunked coding, no X-Timestamp.
    let server = serve(Behavior::Stream {
        parts: 4,
        gap: Duration::from_millis(10),
        timestamps: false,
        chunked: true,
    });
    let run = load(&["--url", &url(server.addr, "/"), "-c", "3", "--json", "-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = run.report();
    check_totals(&r);
    assert_eq!((r.int("completed"), r.int("parts")), (3, 12));
    assert_eq!(r.int("timestamped_parts"), 0);
    assert_eq!(r.get("lateness_ms").get("p99"), &json::Value::Null);
}

#[test]
fn the_table_is_the_default_and_progress_goes_to_stderr() {
    let server = serve(Behavior::Stream {
        parts: 3,
        gap: Duration::from_millis(600),
        timestamps: true,
        chunked: false,
    });
    let run = load(&["--url", &url(server.addr, "/"), "-c", "2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("clients     2 wanted, 2 connected, 2 completed, 0 failed\n")
    );
    assert!(run.stdout.contains("\nlateness "), "{}", run.stdout);
    assert!(run.stdout.contains("\nthroughput "), "{}", run.stdout);
    // The run lasts over a second: at least one progress line, one line each.
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("connected"))
        .unwrap_or_else(|| panic!("no progress line in {:?}", run.stderr));
    for word in ["s  connected", "open", "completed", "failed", "parts", "MB"] {
        assert!(line.contains(word), "{line}");
    }
}

#[test]
fn source_addresses_are_spread() {
    let server = serve(Behavior::Stream {
        parts: 1,
        gap: Duration::ZERO,
        timestamps: true,
        chunked: false,
    });
    let run = load(&["--url", &url(server.addr, "/"), "-c", "16", "--json", "-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report().int("completed"), 16);
    let mut ips: Vec<IpAddr> = server.peers.lock().unwrap().iter().map(|p| p.ip()).collect();
    ips.sort();
    ips.dedup();
    let expected: Vec<IpAddr> = (2..=9).map(|d| IpAddr::V4(Ipv4Addr::new(127, 0, 0, d))).collect();
    assert_eq!(ips, expected);

    let server = serve(Behavior::Stream {
        parts: 1,
        gap: Duration::ZERO,
        timestamps: true,
        chunked: false,
    });
    let run = load(&["--url", &url(server.addr, "/"), "-c", "4", "--sources", "1", "-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let peers = server.peers.lock().unwrap();
    assert_eq!(peers.len(), 4);
    assert!(peers.iter().all(|p| p.ip() == Ipv4Addr::LOCALHOST));
}

#[test]
fn timeout_ends_a_run_against_a_silent_server() {
    let server = serve(Behavior::Silent);
    let started = Instant::now();
    let run = load(&[
        "--url",
        &url(server.addr, "/"),
        "-c",
        "5",
        "--timeout-s",
        "1",
        "--json",
        "-q",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    let r = run.report();
    check_totals(&r);
    assert_eq!(r.int("connected"), 5);
    assert_eq!(r.int("completed"), 0);
    assert_eq!(failed(&r, "timeout"), 5);
    assert!(r.num("duration_s") >= 1.0);
    assert_eq!(r.get("first_byte_ms").get("max"), &json::Value::Null);

    // Clients the ramp has not reached yet at the deadline count as timeouts too.
    let run = load(&[
        "--url",
        &url(server.addr, "/"),
        "-c",
        "4",
        "--ramp-ms",
        "60000",
        "--timeout-s",
        "0.5",
        "--json",
        "-q",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.report();
    check_totals(&r);
    assert_eq!(r.int("connected"), 1);
    assert_eq!(failed(&r, "timeout"), 4);
}

#[test]
fn a_server_under_capacity_answers_503_and_nothing_hangs() {
    let server = serve(Behavior::Capacity {
        capacity: 3,
        parts: 3,
    });
    let run = load(&[
        "--url",
        &url(server.addr, "/"),
        "-c",
        "10",
        "--timeout-s",
        "20",
        "--json",
        "-q",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.report();
    check_totals(&r);
    assert_eq!(r.int("connected"), 10);
    assert_eq!(r.int("completed"), 3);
    assert_eq!(r.int("parts"), 9);
    assert_eq!(failed(&r, "bad_status"), 7);
    assert_eq!(r.get("bad_status_codes").int("503"), 7);
    assert_eq!(r.get("bad_status_codes").keys(), ["503"]);
}

#[test]
fn nothing_listening_is_refused() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // The listener is closed: connects get a reset.
    let run = load(&["--url", &url(addr, "/"), "-c", "5", "--json", "-q"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.report();
    check_totals(&r);
    assert_eq!((r.int("connected"), failed(&r, "connect_refused")), (0, 5));
}

#[test]
fn a_full_backlog_is_a_connect_timeout() {
    // A listener that never accepts, with the smallest backlog: the kernel completes one
    // or two handshakes and drops the other SYNs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let run = load(&[
        "--url",
        &url(addr, "/"),
        "-c",
        "6",
        "--connect-timeout-ms",
        "300",
        "--timeout-s",
        "1.5",
        "--json",
        "-q",
    ]);
    drop(socket);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.report();
    check_totals(&r);
    assert!(failed(&r, "connect_timeout") >= 1, "{}", run.stdout);
    assert_eq!(
        failed(&r, "connect_timeout") + failed(&r, "timeout"),
        6,
        "{}",
        run.stdout
    );
    assert_eq!(r.int("connected"), failed(&r, "timeout"));
}

#[test]
fn broken_responses_are_counted_by_reason() {
    let cases: [(&'static [u8], &str); 4] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
            "bad_framing",
        ),
        (b"HTTP/1.0 404 Not Found\r\n\r\n", "bad_status"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=x\r\n\r\n\
              --x\r\n\r\npart\r\n--x\r\n\r\nhalf a pa",
            "eof",
        ),
        (b"", "eof"),
    ];
    for (bytes, reason) in cases {
        let server = serve(Behavior::Raw(bytes));
        let run = load(&["--url", &url(server.addr, "/"), "-c", "2", "--json", "-q"]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        let r = run.report();
        check_totals(&r);
        assert_eq!(failed(&r, reason), 2, "{reason}: {}", run.stdout);
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for (args, needle) in [
        (&["--url", "http://10.1.2.3:80/"][..], "not a loopback address"),
        (&["--url", "http://example.com/"], "not an IP literal"),
        (&["--url", "https://127.0.0.1/"], "only http://"),
        (&["--url", "http://127.0.0.1:1/", "--clients", "0"], "--clients"),
        (&["--url", "http://127.0.0.1:1/", "--ramp-ms", "x"], "--ramp-ms"),
        (
            &["--url", "http://127.0.0.1:1/", "--timeout-s", "-1"],
            "--timeout-s",
        ),
        (&["--url", "http://127.0.0.1:1/", "--sources", "300"], "--sources"),
        (&["--url", "http://127.0.0.1:1/", "--bogus"], "--bogus"),
        (&["--clients", "3"], "missing --url"),
        (&["--url"], "missing value for --url"),
    ] {
        let run = load(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
        let mut lines = run.stderr.lines();
        let first = lines.next().unwrap();
        assert!(first.starts_with("mixreplace-load: "), "{first}");
        assert!(first.contains(needle), "{args:?}: {first}");
        assert!(lines.next().unwrap().contains("--help"));
        assert_eq!(lines.next(), None);
    }
}

/// Every key of a `--json` report, and every failure reason, has its line in `--help`.
#[test]
fn the_help_documents_every_json_key() {
    let server = serve(Behavior::Stream {
        parts: 1,
        gap: Duration::ZERO,
        timestamps: true,
        chunked: false,
    });
    let run = load(&["--url", &url(server.addr, "/"), "--json", "-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.report();
    let help = load(&["--help"]).stdout;
    let (_, documented) = help.split_once("The JSON report").expect("a JSON section");
    for key in report.keys() {
        let line = format!("\n  {key} ");
        assert!(documented.contains(&line), "--help does not document {key}");
    }
    let (_, reasons) = help.split_once("Failure reasons:").expect("the failure reasons");
    for reason in report.get("failed").keys() {
        assert!(reasons.contains(reason), "--help does not name {reason}");
    }
}

#[test]
fn help_and_version() {
    let run = load(&["--help"]);
    assert_eq!(run.code, 0);
    for word in [
        "--url",
        "--clients",
        "--ramp-ms",
        "--timeout-s",
        "--sources",
        "--json",
        "Exit status",
    ] {
        assert!(run.stdout.contains(word), "{word}");
    }
    let run = load(&["-V"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        format!("mixreplace-load {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// The load generator against the real server: every demo part arrives, stamped, none
/// early, and the server's own count agrees.
#[test]
fn against_the_real_server_every_demo_part_arrives_stamped() {
    let server = Server::start(&[]);
    let url = format!("http://{}/", server.addr());
    let run = load(&[
        "--url",
        &url,
        "-c",
        "50",
        "--ramp-ms",
        "200",
        "--timeout-s",
        "20",
        "--json",
        "-q",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = run.report();
    check_totals(&r);
    assert_eq!(r.int("completed"), 50);
    assert_eq!(r.int("parts"), 50 * 15);
    assert_eq!(r.int("timestamped_parts"), 50 * 15);
    assert_eq!(r.int("early_parts"), 0);
    assert_eq!(server.stats().get("parts"), 50 * 15);
}

/// The real server with fewer client slots than clients: the rest are answered 503, and
/// the run ends by itself with every client accounted for.
#[test]
fn against_the_real_server_at_its_cap_the_rest_get_503_and_nothing_hangs() {
    let server = Server::start(&["--max-clients", "5"]);
    let url = format!("http://{}/", server.addr());
    let run = load(&["--url", &url, "-c", "20", "--timeout-s", "20", "--json", "-q"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.report();
    check_totals(&r);
    let refused = r.get("bad_status_codes").int("503");
    assert!(refused >= 15, "{refused} refused");
    assert_eq!(failed(&r, "bad_status"), refused);
    assert_eq!(r.int("completed") + refused, 20);
    assert_eq!(r.get("bad_status_codes").keys(), ["503"]);
    assert_eq!(server.stats().answers(503), refused);
}

/// The load generator's drop count against the server's own: a live stream fed while
/// the load generator is stopped (SIGSTOP), so the server skips frames for its one client
/// (the frames it had no time for: far more bytes than socket buffers hold), then let go.
/// Its `dropped_frames` (gaps in `X-Frame`) must be the server's `skipped_frames`, and
/// with the frames it got, every frame fed.
#[test]
fn against_the_real_server_dropped_frames_are_the_frames_the_server_skipped() {
    const FRAMES: u32 = 40;
    const FRAME_SIZE: usize = 1 << 20;
    // refresh=0: a heartbeat would be a part of its own, numbered, while the client is stopped.
    let mut server = Server::start_live(&["--stream", "/cam=stdin,refresh=0"]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_mixreplace-load"));
    command
        .args(["--url", &format!("http://{}/cam", server.addr()), "--json", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut client = Guard::spawn(&mut command, LIMIT);
    let (stdout, stderr) = (
        drain(client.child().stdout.take().unwrap()),
        drain(client.child().stderr.take().unwrap()),
    );
    server.wait_viewers("/cam", 1);
    client.signal(libc::SIGSTOP);
    for id in 1..=FRAMES {
        server.feed(&frame(id, FRAME_SIZE));
    }
    client.signal(libc::SIGCONT);
    server.end_input();
    let status = client.wait_exit(LIMIT).expect("the load generator finishes");
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert!(status.success(), "{stderr}");
    let r = json::parse(&String::from_utf8(stdout.join().unwrap()).unwrap());
    let skipped = server.stats().skipped("/cam");
    eprintln!(
        "server skipped {skipped}; load generator: {} parts, {} numbered, {} dropped",
        r.int("parts"),
        r.int("numbered_parts"),
        r.int("dropped_frames")
    );
    assert!(skipped >= 1, "the stopped client skipped no frame");
    assert_eq!(r.int("dropped_frames"), skipped);
    assert_eq!(r.int("numbered_parts") + skipped, u64::from(FRAMES));
    assert_eq!(
        (r.int("clients_with_drops"), r.int("out_of_order_frames")),
        (1, 0)
    );
    // Every frame part, and the last frame again (no X-Frame) closing at the input's end.
    assert_eq!(r.int("parts"), r.int("numbered_parts") + 1);
}

/// A testcard never skips: each client gets every frame, numbered in order. It loops
/// forever, so the run ends at its timeout, every client counted as `timeout`.
#[test]
fn against_a_testcard_every_frame_arrives_numbered_in_order() {
    let server = Server::start(&["--stream", "/card=testcard,size=64x48,fps=50,frames=7"]);
    let url = format!("http://{}/card", server.addr());
    let run = load(&["--url", &url, "-c", "5", "--timeout-s", "1.5", "--json", "-q"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.report();
    check_totals(&r);
    assert_eq!(failed(&r, "timeout"), 5);
    assert!(r.int("parts") >= 5 * 10, "{}", run.stdout);
    assert_eq!(r.int("numbered_parts"), r.int("parts"));
    assert_eq!(r.int("timestamped_parts"), r.int("parts"));
    assert_eq!(r.int("dropped_frames") + r.int("out_of_order_frames"), 0);
}
