//! Stopping: `/quit` with and without `--allow-quit`, SIGTERM, and what a client that
//! does not read can (not) do to a graceful stop.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::common::*;

/// A graceful stop ends within one second; this leaves room for a busy machine.
const EXIT_WITHIN: Duration = Duration::from_millis(1500);
/// Into the demo: parts 0 and 1 (at 0 and 500 ms) are out, part 2 is due at 1000 ms.
const MID_STREAM: Duration = Duration::from_millis(700);

fn open_demo_streams(addr: SocketAddr, count: usize) -> Vec<JoinHandle<Fetched>> {
    (0..count)
        .map(|_| thread::spawn(move || fetch_stream(addr, GET, "HTTP/1.1")))
        .collect()
}

/// A stream stopped mid-way: the parts sent so far, exact, then the empty final part.
fn check_stopped_early(stream: JoinHandle<Fetched>) {
    let got = stream.join().expect("a stream client");
    let parts = &got.multipart.parts;
    assert!(
        got.multipart.stopped_early,
        "no empty final part: {:?}",
        got.multipart
    );
    assert!((1..15).contains(&parts.len()), "{} parts", parts.len());
    check_demo_prefix(parts);
    let b = &got.boundary;
    let tail = format!("\r\n--{b}\r\n\r\n--{b}--\r\n");
    assert!(got.body().ends_with(tail.as_bytes()));
}

#[test]
fn quit_without_the_flag_is_404_and_serving_goes_on() {
    let mut server = Server::start(&[]);
    let bytes = get(server.addr(), "/quit");
    check_answer(&bytes, "HTTP/1.1 404 Not Found", false);
    thread::sleep(Duration::from_millis(100));
    assert!(server.is_running(), "the server stopped");
    let bytes = exchange(server.addr(), b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    let (head, _) = split_head(&bytes).unwrap_or_else(|e| panic!("{e}"));
    check_stream_head(&head, "HTTP/1.1");
    assert_eq!(server.stats().get("202"), 0);
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
    let bytes = get(server.addr(), "/quit");
    check_answer(&bytes, "HTTP/1.1 202 Accepted", false);
    let status = server
        .wait_exit(EXIT_WITHIN)
        .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after /quit"));
    assert_eq!(status.code(), Some(0), "{status:?}");
    streams.into_iter().for_each(check_stopped_early);
    for stream in [&mut silent, &mut partial] {
        let mut rest = Vec::new();
        // Closed without an answer; a reset would be an error here.
        stream.read_to_end(&mut rest).expect("a clean close");
        assert!(rest.is_empty(), "{rest:?}");
    }
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
    let stream =
        thread::spawn(move || fetch_stream(addr, b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1"));
    thread::sleep(Duration::from_millis(300));
    check_answer(&get(addr, "/quit"), "HTTP/1.1 202 Accepted", false);
    let status = server.wait_exit(EXIT_WITHIN).expect("exit after /quit");
    assert_eq!(status.code(), Some(0), "{status:?}");
    // The strict parser refuses any byte after the closing delimiter.
    let got = stream.join().expect("the stream client");
    assert!(!got.multipart.stopped_early);
    assert_eq!(got.multipart.parts.len(), 1);
    let synthetic: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
    assert!(got.multipart.parts[0].body == synthetic);
    assert_eq!(got.multipart.parts[0].content_type, "application/octet-stream");
}

#[test]
fn sigterm_ends_two_open_streams_and_exits_0() {
    let mut server = Server::start(&[]);
    let streams = open_demo_streams(server.addr(), 2);
    thread::sleep(MID_STREAM);
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(EXIT_WITHIN)
        .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "{status:?}");
    streams.into_iter().for_each(check_stopped_early);
}

#[test]
fn sigint_stops_gracefully_too() {
    let mut server = Server::start(&[]);
    server.signal(libc::SIGINT);
    let status = server.wait_exit(EXIT_WITHIN).expect("exit after SIGINT");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

fn server_with_a_stalled_client() -> (Server, Socket) {
    let server = Server::start(&["--stream", BIG_STREAM]);
    let socket = stalled_client(server.addr(), "/big");
    (server, socket)
}

#[test]
fn a_client_that_does_not_read_cannot_hold_the_stop_past_its_grace() {
    let (mut server, _socket) = server_with_a_stalled_client();
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(EXIT_WITHIN)
        .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_second_signal_exits_at_once() {
    let (mut server, _socket) = server_with_a_stalled_client();
    server.signal(libc::SIGTERM);
    thread::sleep(Duration::from_millis(100));
    let second = Instant::now();
    server.signal(libc::SIGINT);
    let status = server
        .wait_exit(EXIT_WITHIN)
        .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after a second signal"));
    // 128 + SIGINT: forced, not the graceful 0 that the grace period would end with.
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{status:?}");
    eprintln!("exited {:?} after the second signal", second.elapsed());
}
