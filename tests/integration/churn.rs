//! 200 clients that leave at random moments, some with a reset, some before their
//! request is complete: afterwards the server holds no connection (its slab, seen
//! through `/stats` `clients`) and no file descriptor more than before, and a
//! well-behaved stream served meanwhile is complete. And clients that stop reading are
//! let go after the send timeout, having cost no memory.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::support::demo::{beside_a_watcher, check_demo};
use crate::support::http::connect;
use crate::support::multipart::fetch_stream;
use crate::support::rng::Rng;
use crate::support::server::Server;
use crate::support::{IO_TIMEOUT, wait_for};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

const CLIENTS: usize = 200;
/// Fixed, so a failure can be replayed; `MIXREPLACE_CHURN_SEED` picks another.
const SEED: u64 = 0x6d69_7872_6570_6c61;
/// Clients leave within the demo's 6.4 s.
const LEAVE_WITHIN_MS: usize = 6300;

#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Connects and sends nothing.
    Silent,
    /// Sends only the first `n` bytes of its request.
    Partial(usize),
    /// Sends the request and reads the stream.
    Reader,
    /// Sends the request and never reads.
    Deaf,
    /// A short request whose answer it does not wait for.
    Short(&'static [u8]),
}

#[derive(Clone, Copy, Debug)]
struct Client {
    plan: Plan,
    leave_after: Duration,
    /// Leave with a reset (SO_LINGER 0) instead of a FIN.
    reset: bool,
}

fn plan(rng: &mut Rng) -> Client {
    let plan = match rng.below(5) {
        0 => Plan::Silent,
        1 => Plan::Partial(1 + rng.below(GET.len() - 1)),
        2 => Plan::Reader,
        3 => Plan::Deaf,
        _ => Plan::Short(
            [
                &b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"[..],
                b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n",
                b"GET /nope HTTP/1.0\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: t\r\n\r\n",
            ][rng.below(4)],
        ),
    };
    Client {
        plan,
        leave_after: Duration::from_millis(rng.below(LEAVE_WITHIN_MS) as u64),
        reset: rng.coin(),
    }
}

fn run(addr: SocketAddr, client: Client) -> io::Result<()> {
    let leave_at = Instant::now() + client.leave_after;
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    match client.plan {
        Plan::Silent => {}
        Plan::Partial(n) => stream.write_all(&GET[..n])?,
        Plan::Reader | Plan::Deaf => stream.write_all(GET)?,
        Plan::Short(request) => stream.write_all(request)?,
    }
    if let Plan::Reader = client.plan {
        let mut buf = [0; 16 * 1024];
        loop {
            let left = leave_at.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(1) {
                break;
            }
            stream.set_read_timeout(Some(left))?;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    } else {
        thread::sleep(leave_at.saturating_duration_since(Instant::now()));
    }
    if client.reset {
        SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
    }
    Ok(())
}

#[test]
fn two_hundred_clients_leaving_at_random_leave_no_fd_or_slot_behind() {
    let seed = std::env::var("MIXREPLACE_CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    eprintln!("churn seed {seed} (set MIXREPLACE_CHURN_SEED to replay another)");
    let server = Server::start(&[]);
    let addr = server.addr();

    let mut rng = Rng::new(seed);
    let clients: Vec<Client> = (0..CLIENTS).map(|_| plan(&mut rng)).collect();
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let threads: Vec<_> = clients
        .iter()
        .map(|&client| {
            let start = Arc::clone(&start);
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    start.wait();
                    run(addr, client).map_err(|e| format!("{client:?}: {e}"))
                })
                .expect("spawn a client thread")
        })
        .collect();
    let well_behaved = thread::spawn(move || {
        start.wait();
        fetch_stream(addr, GET)
    });

    let failures: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().expect("a client thread").err())
        .collect();
    assert!(failures.is_empty(), "clients failed: {failures:#?}");
    let got = well_behaved.join().expect("the well-behaved client");
    check_demo(&got.parts);

    // Every departure is noticed: no connection left, fds back to what they were.
    server.assert_clean();
    let stats = server.stats();
    // Every connection accepted was closed for some reason, but for this one.
    let closed: u64 = ["finished", "client_gone", "send_timeout", "stopped", "error"]
        .iter()
        .map(|reason| stats.closed(reason))
        .sum();
    assert_eq!(closed, stats.get("accepted") - 1, "{stats}");
    assert!(stats.get("accepted") > CLIENTS as u64, "{stats}");
    eprintln!("after the churn: {stats}");
}

/// Clients that request a fast stream and never read: the server queues nothing for them
/// past what the socket buffers take (memory stays flat), and closes them once the send
/// timeout passes without write progress, leaving nothing behind.
#[test]
fn clients_that_never_read_a_fast_stream_are_capped_and_closed_after_the_send_timeout() {
    const NEVER_READERS: u64 = 8;
    let args = [
        "--send-timeout",
        "1",
        "--stream",
        "/=demo",
        "--stream",
        "/fast=synthetic:parts=10000,size=65536,interval=0",
    ];
    beside_a_watcher(&args, |server| {
        let rss_before = server.rss_kib();
        let before = server.stats();
        let started = Instant::now();
        // 655 MB each, of which the kernel's buffers take a few MB before writes block.
        let clients: Vec<TcpStream> = (0..NEVER_READERS)
            .map(|_| {
                let mut stream = connect(server.addr());
                stream
                    .write_all(b"GET /fast HTTP/1.1\r\nHost: test\r\n\r\n")
                    .unwrap();
                stream
            })
            .collect();
        let mut rss_max = 0;
        let closed_at = wait_for(
            "the never-readers closed by the send timeout",
            Duration::from_secs(20),
            || {
                rss_max = rss_max.max(server.rss_kib());
                let timed_out = server.stats().closed("send_timeout") - before.closed("send_timeout");
                if timed_out == NEVER_READERS {
                    Ok(started.elapsed())
                } else {
                    Err(format!("{timed_out} closed"))
                }
            },
        );
        let stats = server.stats();
        let sent = stats.get("bytes") - before.get("bytes");
        let growth = rss_max.saturating_sub(rss_before);
        eprintln!(
            "never-readers: RSS {rss_before} KiB, at most {rss_max} KiB; {sent} bytes sent; closed after {closed_at:?}"
        );
        assert!(growth < 8 * 1024, "RSS grew {growth} KiB (from {rss_before} KiB)");
        assert!(
            closed_at >= Duration::from_millis(950),
            "closed after {closed_at:?}"
        );
        assert!(
            sent < NEVER_READERS * (64 << 20),
            "{sent} bytes went to clients that never read"
        );
        // The parts a never-reader was sent are what fit in the socket buffers.
        let parts = stats.get("parts") - before.get("parts");
        assert!(parts < NEVER_READERS * 1000, "{parts} parts queued");
        drop(clients);
    });
}
