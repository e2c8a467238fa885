//! Running out of file descriptors, in a test binary of its own (as libuv's
//! `test-emfile.c` does): the server is pinned at a lowered `RLIMIT_NOFILE` with clients
//! waiting in the listen backlog. It must not spin, must warn once (not once per retry),
//! and must accept again as soon as descriptors free up.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::thread;
use std::time::{Duration, Instant};

use support::{Server, connect, read_response, wait_for};

/// The server's descriptor limit, soft and hard: it raises its soft limit to the hard
/// one at start, so the hard limit is what pins it.
const FD_LIMIT: u64 = 64;
/// Clients opened while the server is at its limit: more than it can take.
const HELD: usize = 80;

fn pinned_server() -> Server {
    Server::start_with(
        // More clients allowed than descriptors, so accept really meets EMFILE, and a
        // head timeout that does not expire during the test.
        &["--max-clients", "1000", "--head-timeout", "120"],
        |command| {
            // SAFETY: the closure runs in the child between fork and exec and calls only
            // setrlimit, which is async-signal-safe; it touches no memory of the parent
            // but the local `limit`.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: FD_LIMIT,
                        rlim_max: FD_LIMIT,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    )
}

/// Open descriptors numbered below the limit: those are what the limit caps. (The
/// server may also hold descriptors above it, inherited from whatever started the test,
/// such as a build tool's jobserver pipe.)
fn below_limit(server: &Server) -> u64 {
    server.fd_numbers().iter().filter(|&&fd| fd < FD_LIMIT).count() as u64
}

fn warnings(server: &Server) -> Vec<String> {
    server
        .stderr_lines()
        .into_iter()
        .filter(|line| line.contains("pausing accepts"))
        .collect()
}

#[test]
fn out_of_descriptors_the_server_pauses_accepting_without_spinning_and_resumes() {
    let server = pinned_server();
    assert!(
        server.base_fds < FD_LIMIT as usize / 2,
        "{} descriptors at start",
        server.base_fds
    );
    let stats = server.stats();
    assert_eq!(stats.get("accepted"), 1);

    // Clients that connect and say nothing: each holds one of the server's descriptors
    // until the descriptors run out; the rest wait in the listen backlog.
    let mut held: Vec<TcpStream> = (0..HELD).map(|_| connect(server.addr)).collect();
    wait_for(
        "the server at its descriptor limit",
        Duration::from_secs(10),
        || match below_limit(&server) {
            n if n == FD_LIMIT => Ok(()),
            n => Err(format!("{n} descriptors below {FD_LIMIT} open")),
        },
    );
    wait_for(
        "the out-of-descriptors warning",
        Duration::from_secs(10),
        || match warnings(&server).len() {
            0 => Err(format!("stderr: {:?}", server.stderr_lines())),
            _ => Ok(()),
        },
    );

    // Clients with a request, queued behind the held ones.
    let mut waiting: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream
                .write_all(b"GET /stats HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            stream
        })
        .collect();

    // Pinned at the limit for 3 s: the accept retries must cost next to nothing.
    let cpu_before = server.cpu_time();
    let pinned_from = Instant::now();
    thread::sleep(Duration::from_secs(3));
    let cpu = server.cpu_time() - cpu_before;
    let wall = pinned_from.elapsed();
    eprintln!("pinned at {FD_LIMIT} descriptors for {wall:?}: {cpu:?} of CPU");
    assert!(
        cpu < Duration::from_millis(300),
        "the server used {cpu:?} of CPU in {wall:?} at its limit"
    );
    assert_eq!(below_limit(&server), FD_LIMIT);
    let lines = warnings(&server);
    assert_eq!(lines.len(), 1, "one warning per 10 s, got {lines:?}");
    for stream in &mut waiting {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("a queued client was answered while the server had no descriptor: {other:?}"),
        }
        stream.set_nonblocking(false).unwrap();
    }

    // Free descriptors: the first 40 clients leave. Accepting resumes and the queued
    // clients (held ones and those with a request) are taken in.
    let freed_at = Instant::now();
    held.drain(..40);
    for (i, stream) in waiting.iter_mut().enumerate() {
        let response = read_response(stream, false).unwrap_or_else(|e| panic!("queued client {i}: {e}"));
        assert_eq!(response.status, 200, "queued client {i}");
    }
    eprintln!(
        "queued clients answered {:?} after descriptors were freed",
        freed_at.elapsed()
    );
    drop(waiting);
    drop(held);
    server.assert_clean();
    let stats = server.stats();
    // The first /stats, every held and queued client, the /stats polls of assert_clean,
    // and this one.
    assert!(stats.get("accepted") > 1 + HELD as u64 + 5, "{}", stats.0);
    assert_eq!(stats.get("error"), 0, "{}", stats.0);
}
