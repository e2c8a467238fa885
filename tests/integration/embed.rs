//! The library embedded in the test process: servers built with `mixreplace::Builder`,
//! spawned on their own threads or run on the calling one, read over real sockets, and
//! stopped; two at once leave no thread, descriptor or signal handler behind.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use mixreplace::{Builder, Error, Exit, Handle, PartSpec};

use crate::support::http::{check_answer, fetch, reset};
use crate::support::multipart::{Item, Part, PartReader, open};
use crate::support::solo::{self, caught_signals, fd_numbers, thread_count};
use crate::support::{IO_TIMEOUT, wait_for};

/// Longer than any read here may wait ([`IO_TIMEOUT`]): a stream with this delay sends
/// its first part, then only what a stop makes it send.
const FOREVER_MS: u64 = 60_000;

/// A stream of one text part repeated every `delay_ms`.
fn repeating(path: &str, text: &str, delay_ms: u64) -> Builder {
    Builder::new().looping_parts(path, [PartSpec::new("text/plain", text, delay_ms)])
}

fn next_part(reader: &mut PartReader<TcpStream>) -> Part {
    match reader.next() {
        Ok(Item::Part(part)) => part,
        other => panic!("expected a part, got {other:?}"),
    }
}

/// Reads the rest of a stream that is being stopped: no more parts, then the empty final
/// part of the stream's type and the closing delimiter, then a clean close.
fn expect_stopped(reader: &mut PartReader<TcpStream>, content_type: &str) {
    for _ in 0..1000 {
        match reader.next() {
            Ok(Item::Part(_)) => continue,
            Ok(Item::Stopped(last)) => {
                assert_eq!(last.content_type, content_type, "{last:?}");
                return;
            }
            other => panic!("expected the closing delimiter, got {other:?}"),
        }
    }
    panic!("no end after 1000 parts");
}

/// Stops the server on another thread while `reader` reads its stream to the end, so
/// that the client takes the closing delimiter and closes at once (the server waits for
/// that close, up to its grace period).
fn stop_while_reading(server: Handle, mut reader: PartReader<TcpStream>, content_type: &str) {
    let stopping = thread::spawn(move || server.stop());
    expect_stopped(&mut reader, content_type);
    drop(reader);
    let stats = stopping
        .join()
        .expect("stop does not panic")
        .expect("a graceful stop");
    assert_eq!(stats.clients, 0, "{stats:?}");
    assert_eq!(stats.closed_for("finished"), stats.accepted, "{stats:?}");
}

/// Counts threads, descriptors and signal handlers in a process of its own (see
/// `support::solo`): two servers serve at once on their ports, one stopped, one
/// dropped, and the process is as it was.
#[test]
fn two_servers_in_one_process_leave_no_thread_descriptor_or_signal_handler() {
    if !solo::is_solo() {
        solo::run_solo("embed::two_servers_in_one_process_leave_no_thread_descriptor_or_signal_handler");
        return;
    }
    let (threads, fds, signals) = (thread_count(), fd_numbers("self"), caught_signals());
    let a = repeating("/a", "from a", 20).spawn().expect("server a");
    let b = Builder::new()
        .stream("/b", "synthetic:parts=100000,size=64,interval=20")
        .spawn()
        .expect("server b");
    assert_ne!(a.local_addr().port(), b.local_addr().port());
    assert_eq!(thread_count(), threads + 2, "one thread per server");
    assert_eq!(
        caught_signals(),
        signals,
        "an embedded server installs no signal handler"
    );

    let (mut from_a, mut from_b) = (open(a.local_addr(), "/a"), open(b.local_addr(), "/b"));
    for _ in 0..3 {
        assert_eq!(next_part(&mut from_a).body, b"from a");
        let part = next_part(&mut from_b);
        assert_eq!(
            (part.content_type.as_str(), part.body.len()),
            ("application/octet-stream", 64)
        );
        assert_eq!(part.body[..3], [0, 1, 2]);
    }
    assert!(
        fd_numbers("self").len() > fds.len() + 4,
        "servers and clients hold descriptors"
    );
    let (stats_a, stats_b) = (a.stats(), b.stats());
    assert_eq!(stats_a.stream("/a").map(|s| s.viewers), Some(1), "{stats_a:?}");
    assert_eq!(stats_a.stream("/b"), None, "{stats_a:?}");
    assert_eq!(stats_b.stream("/b").map(|s| s.viewers), Some(1), "{stats_b:?}");

    stop_while_reading(a, from_a, "text/plain");
    let dropping = thread::spawn(move || drop(b));
    expect_stopped(&mut from_b, "application/octet-stream");
    drop(from_b);
    dropping.join().expect("dropping a handle does not panic");

    // A thread that `join` has seen end may linger in /proc for a moment.
    wait_for(
        "the servers' threads to leave /proc",
        IO_TIMEOUT,
        || match thread_count() {
            n if n == threads => Ok(()),
            n => Err(format!("{n} threads, {threads} before")),
        },
    );
    assert_eq!(fd_numbers("self"), fds, "descriptors before and after");
    assert_eq!(caught_signals(), signals);
}

/// The loop sleeps until the next part, a minute away; `stop` must wake it, and it ends
/// the open stream with its closing delimiter.
#[test]
fn stop_wakes_the_loop_and_ends_an_open_stream_with_its_closing_delimiter() {
    let server = repeating("/slow", "once a minute", FOREVER_MS)
        .spawn()
        .expect("a server");
    let mut reader = open(server.local_addr(), "/slow");
    assert_eq!(next_part(&mut reader).body, b"once a minute");
    stop_while_reading(server, reader, "text/plain");
}

#[test]
fn the_stats_show_a_viewer_while_one_watches() {
    let server = repeating("/cam", "frame", FOREVER_MS)
        .stream("/other", "demo")
        .spawn()
        .expect("a server");
    let before = server.stats();
    assert_eq!(before.stream("/cam").map(|s| s.viewers), Some(0), "{before:?}");
    assert_eq!(
        (before.accepted, before.streams, before.parts, before.bytes),
        (0, 0, 0, 0)
    );

    let mut reader = open(server.local_addr(), "/cam");
    let part = next_part(&mut reader);
    let watching = server.stats();
    assert_eq!(
        watching.stream("/cam").map(|s| s.viewers),
        Some(1),
        "{watching:?}"
    );
    assert_eq!(
        watching.stream("/other").map(|s| s.viewers),
        Some(0),
        "{watching:?}"
    );
    assert_eq!(
        (
            watching.clients,
            watching.accepted,
            watching.streams,
            watching.parts
        ),
        (1, 1, 1, 1)
    );
    assert!(watching.bytes > part.body.len() as u64, "{watching:?}");
    assert_eq!(watching.answered(200), 1, "{watching:?}");
    assert!(watching.uptime > before.uptime, "{before:?} then {watching:?}");

    // A FIN would be a half-close, which a stream outlives: leave with a reset.
    reset(reader.into_inner());
    wait_for("the viewer to leave", IO_TIMEOUT, || match server.stats() {
        stats if stats.clients == 0 => Ok(stats),
        stats => Err(format!("{stats:?}")),
    });
    let after = server.stop().expect("a graceful stop");
    assert_eq!(after.stream("/cam").map(|s| s.viewers), Some(0), "{after:?}");
    assert_eq!(after.closed_for("client_gone"), 1, "{after:?}");
}

#[test]
fn a_taken_address_comes_back_as_an_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let addr = taken.local_addr().expect("its address");
    for result in [
        Builder::new()
            .listen(addr)
            .spawn()
            .map(|handle| handle.local_addr()),
        Builder::new()
            .listen(addr)
            .bind()
            .map(|server| server.local_addr()),
    ] {
        match result {
            Err(Error::Bind {
                addr: refused,
                source,
            }) => {
                assert_eq!(refused, addr);
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse, "{source}");
            }
            other => panic!("{addr} is taken, yet: {other:?}"),
        }
    }
    let message = Builder::new().listen(addr).spawn().unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("cannot listen on {addr}: ")),
        "{message}"
    );
}

/// `bind` then `run` on a thread the test made (a server is not `Send`: it is built where
/// it runs), ended by `/quit`.
#[test]
fn a_server_runs_on_the_calling_thread_until_quit() {
    let (bound, addr) = mpsc::channel::<SocketAddr>();
    let serving = thread::spawn(move || {
        let server = repeating("/", "hello", 100)
            .allow_quit(true)
            .head_timeout(Duration::from_secs(5))
            .bind()?;
        let _ = bound.send(server.local_addr());
        server.run()
    });
    let addr = addr.recv_timeout(IO_TIMEOUT).expect("the bound address");
    let mut reader = open(addr, "/");
    assert_eq!(next_part(&mut reader).body, b"hello");
    check_answer(&fetch(addr, "GET", "/quit"), "HTTP/1.1 202 Accepted");
    expect_stopped(&mut reader, "text/plain");
    drop(reader);
    let exit = serving.join().expect("run does not panic");
    assert!(matches!(exit, Ok(Exit::Graceful)), "{exit:?}");
}
