//! Stopping: `/quit` with and without `--allow-quit`, SIGTERM and SIGINT, a second
//! signal, and what clients that are mid-stream, mid-head or not reading can (not) do to
//! a graceful stop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::support::demo::check_demo_prefix;
use crate::support::http::{check_answer, check_stream_head, connect, fetch};
use crate::support::multipart::{Fetched, Item, fetch_stream, open};
use crate::support::server::Server;
use crate::support::{IO_TIMEOUT, wait_for};

/// A graceful stop ends within one second; this leaves room for a busy machine.
const EXIT_WITHIN: Duration = Duration::from_millis(1500);
/// Into the demo: parts 0 and 1 (at 0 and 500 ms) are out, part 2 is due at 1000 ms.
const MID_STREAM: Duration = Duration::from_millis(700);
/// A stream of 64 MiB, far more than the socket buffers, sent as fast as the client
/// reads: a [`stalled_client`] keeps the server's write blocked.
const BIG_STREAM: &str = "/big=synthetic:parts=1024,size=65536,interval=0";

fn open_demo_streams(addr: SocketAddr, count: usize) -> Vec<JoinHandle<Fetched>> {
    (0..count)
        .map(|_| thread::spawn(move || fetch_stream(addr, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")))
        .collect()
}

/// A demo stream stopped mid-way: the parts sent so far, exact, then the empty final
/// part of the demo's type.
// See: bcc6676 (the empty final part names the stream's type; ffmpeg refuses it untyped).
fn check_stopped_early(got: &Fetched) {
    let stop = got.stopped.as_ref().expect("no empty final part");
    assert_eq!(stop.content_type, "text/plain", "{stop:?}");
    assert!((1..15).contains(&got.parts.len()), "{} parts", got.parts.len());
    check_demo_prefix(&got.parts);
}

/// A client with a tiny receive buffer that requests `path` and never reads: once the
/// buffers are full (after a short wait here) the server's write stays blocked in the
/// middle of a part.
fn stalled_client(addr: SocketAddr, path: &str) -> Socket {
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

/// Reads to the close; a connection still in its head gets no answer, and a clean FIN.
fn closed_without_an_answer(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("a clean close, not a reset");
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn quit_without_the_flag_is_404_and_serving_goes_on() {
    let mut server = Server::start(&[]);
    check_answer(&fetch(server.addr(), "GET", "/quit"), "HTTP/1.1 404 Not Found");
    thread::sleep(Duration::from_millis(100));
    assert!(server.is_running(), "the server stopped");
    check_stream_head(&fetch(server.addr(), "HEAD", "/"));
    assert_eq!(server.stats().answers(202), 0);
}

#[test]
fn quit_with_the_flag_ends_the_open_stream_and_exits_0() {
    let mut server = Server::start(&["--allow-quit"]);
    let streams = open_demo_streams(server.addr(), 1);
    // Connections still in their request head do not hold the stop up either.
    let mut silent = connect(server.addr());
    let mut partial = connect(server.addr());
    partial.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    thread::sleep(MID_STREAM);
    check_answer(&fetch(server.addr(), "GET", "/quit"), "HTTP/1.1 202 Accepted");
    let status = server
        .wait_exit(EXIT_WITHIN)
        .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after /quit"));
    assert_eq!(status.code(), Some(0), "{status:?}");
    for stream in streams {
        check_stopped_early(&stream.join().expect("a stream client"));
    }
    closed_without_an_answer(&mut silent);
    closed_without_an_answer(&mut partial);
}

#[test]
fn a_stop_after_the_last_part_adds_nothing_after_the_closing_delimiter() {
    // One part, which carries the closing delimiter, then 5 s before the close.
    let mut server = Server::start(&[
        "--allow-quit",
        "--stream",
        "/one=synthetic:parts=1,size=1000,interval=5000",
    ]);
    let addr = server.addr();
    let stream = thread::spawn(move || fetch_stream(addr, b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n"));
    thread::sleep(Duration::from_millis(300));
    check_answer(&fetch(addr, "GET", "/quit"), "HTTP/1.1 202 Accepted");
    let status = server.wait_exit(EXIT_WITHIN).expect("exit after /quit");
    assert_eq!(status.code(), Some(0), "{status:?}");
    // The strict reader refuses any byte after the closing delimiter.
    let got = stream.join().expect("the stream client");
    assert!(got.stopped.is_none());
    assert_eq!(got.parts.len(), 1);
    let synthetic: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
    assert!(got.parts[0].body == synthetic);
    assert_eq!(got.parts[0].content_type, "application/octet-stream");
}

/// Demo clients at different points of the demo, readers of big parts with a part in
/// flight, and a client still sending its head: SIGTERM ends every stream after its part
/// in flight with the empty final part and the closing delimiter, closes the head, stops
/// listening and exits 0.
#[test]
fn sigterm_ends_every_open_stream_with_the_closing_delimiter_and_exits_0() {
    let mut server = Server::start(&[
        "--stream",
        "/=demo",
        "--stream",
        "/big=synthetic:parts=100000,size=262144,interval=0",
    ]);
    let addr = server.addr();
    // Demo clients joining over 1.5 s: each is somewhere else in the demo at the signal.
    let demo: Vec<_> = (0..6u64)
        .map(|i| {
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(300 * i));
                fetch_stream(addr, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            })
        })
        .collect();
    // Readers of big parts, throttled until the signal, so a part is in flight then.
    let signalled = Arc::new(AtomicBool::new(false));
    let big: Vec<_> = (0..2)
        .map(|_| {
            let signalled = signalled.clone();
            thread::spawn(move || read_big_parts_until_stopped(addr, &signalled))
        })
        .collect();
    let mut in_head = connect(addr);
    in_head.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    wait_for("every stream open", IO_TIMEOUT, || {
        match server.stats().all_viewers() {
            8 => Ok(()),
            n => Err(format!("{n} viewers")),
        }
    });
    thread::sleep(Duration::from_millis(500));
    let signalled_at = Instant::now();
    signalled.store(true, Ordering::SeqCst);
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("the server exits after SIGTERM");
    let took = signalled_at.elapsed();
    eprintln!("SIGTERM: exit {status:?} after {took:?}");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status:?}");
    assert!(took < Duration::from_millis(2500), "graceful stop took {took:?}");
    for (i, client) in demo.into_iter().enumerate() {
        let got = client.join().unwrap_or_else(|_| panic!("demo client {i}"));
        check_stopped_early(&got);
    }
    for (i, client) in big.into_iter().enumerate() {
        let parts = client.join().unwrap_or_else(|_| panic!("big-part client {i}"));
        assert!(parts >= 1, "big-part client {i} got {parts} parts");
    }
    closed_without_an_answer(&mut in_head);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "still listening"
    );
}

/// Reads 256 KiB synthetic parts (slowly until `signalled`), each intact, to the empty
/// final part of a stop; returns how many there were.
fn read_big_parts_until_stopped(addr: SocketAddr, signalled: &AtomicBool) -> usize {
    let mut reader = open(addr, "/big");
    // Bounded: a few thousand parts at most before the stop.
    for parts in 0..100_000 {
        match reader
            .next()
            .unwrap_or_else(|e| panic!("after {parts} big parts: {e}"))
        {
            Item::Part(part) => {
                let intact = part.body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8);
                assert!(part.body.len() == 262_144 && intact, "part {parts} is damaged");
                assert!(!part.last, "the big stream ended by itself");
            }
            Item::Stopped(stop) => {
                assert_eq!(stop.content_type, "application/octet-stream");
                return parts;
            }
            Item::End => panic!("the big stream ended by itself"),
        }
        if !signalled.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("too many big parts");
}

#[test]
fn sigint_stops_gracefully_too() {
    let mut server = Server::start(&[]);
    server.signal(libc::SIGINT);
    let status = server.wait_exit(EXIT_WITHIN).expect("exit after SIGINT");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_client_that_does_not_read_cannot_hold_the_stop_past_its_grace() {
    let mut server = Server::start(&["--stream", BIG_STREAM]);
    let _stalled = stalled_client(server.addr(), "/big");
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(EXIT_WITHIN)
        .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_second_signal_exits_at_once() {
    for second in [libc::SIGINT, libc::SIGTERM] {
        let mut server = Server::start(&["--stream", BIG_STREAM]);
        // A client that never reads keeps the graceful stop from finishing.
        let _stalled = stalled_client(server.addr(), "/big");
        server.signal(libc::SIGTERM);
        thread::sleep(Duration::from_millis(100));
        let signalled_at = Instant::now();
        server.signal(second);
        let status = server
            .wait_exit(EXIT_WITHIN)
            .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after a second signal"));
        // 128 + the signal: forced, not the graceful 0 the grace period would end with.
        assert_eq!(status.code(), Some(128 + second), "{status:?}");
        eprintln!("exited {:?} after the second signal", signalled_at.elapsed());
    }
}
