//! Running out of file descriptors, in a test binary of its own (as libuv's
//! `test-emfile.c` does): the server is pinned at a lowered `RLIMIT_NOFILE` with clients
//! waiting in the listen backlog. It must not spin, must warn once (not once per retry),
//! and must accept again as soon as descriptors free up.
//!
//! Why a binary of its own: the server's CPU time is asserted (it must not spin), best
//! read while no other test loads the machine. The limit itself is set in the server's
//! process only (`pre_exec`), not in this one.

// This binary uses a few of the helpers the integration binary uses in full; there, unused
// helpers are still reported.
#[allow(dead_code)]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::thread;
use std::time::{Duration, Instant};

use support::http::{connect, read_response};
use support::server::Server;
use support::wait_for;

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

/// CPU time the server used so far (user + system).
fn cpu_time(server: &Server) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).expect("read /proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("comm field") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after comm.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

fn warnings(server: &Server) -> Vec<String> {
    let log = server.log();
    log.lines()
        .filter(|line| line.contains("pausing accepts"))
        .map(str::to_owned)
        .collect()
}

// See: 258be45 (this test) and ffc17a3 (an unexpected accept error spun the loop).
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
    let mut held: Vec<TcpStream> = (0..HELD).map(|_| connect(server.addr())).collect();
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
            0 => Err(format!("log: {:?}", server.log())),
            _ => Ok(()),
        },
    );

    // Clients with a request, queued behind the held ones.
    let mut waiting: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut stream = connect(server.addr());
            stream
                .write_all(b"GET /stats HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            stream
        })
        .collect();

    // Pinned at the limit for 3 s: the accept retries must cost next to nothing.
    let cpu_before = cpu_time(&server);
    let pinned_from = Instant::now();
    thread::sleep(Duration::from_secs(3));
    let cpu = cpu_time(&server) - cpu_before;
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
    assert!(stats.get("accepted") > 1 + HELD as u64 + 5, "{stats}");
    assert_eq!(stats.closed("error"), 0, "{stats}");
}
