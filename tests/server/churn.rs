//! 200 clients that leave at random moments, some with a reset, some before their
//! request is complete: afterwards the server holds no connection (its slab, seen
//! through `/stats` `clients`) and no file descriptor more than before, and a
//! well-behaved stream served meanwhile is complete. And a client that stops reading is
//! let go after the send timeout.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::common::*;

const CLIENTS: usize = 200;
/// Fixed, so a failure can be replayed; `MIXREPLACE_CHURN_SEED` picks another.
const SEED: u64 = 0x6d69_7872_6570_6c61;
/// Clients leave within the demo's 6.4 s.
const LEAVE_WITHIN_MS: u64 = 6300;

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
        1 => Plan::Partial(1 + rng.below(GET.len() as u64 - 1) as usize),
        2 => Plan::Reader,
        3 => Plan::Deaf,
        _ => Plan::Short(
            [
                &b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"[..],
                b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n",
                b"GET /nope HTTP/1.0\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: t\r\n\r\n",
            ][rng.below(4) as usize],
        ),
    };
    Client {
        plan,
        leave_after: Duration::from_millis(rng.below(LEAVE_WITHIN_MS)),
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
    let baseline = server.fd_count();

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
        fetch_stream(addr, GET, "HTTP/1.1")
    });

    let failures: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().expect("a client thread").err())
        .collect();
    assert!(failures.is_empty(), "clients failed: {failures:#?}");
    let got = well_behaved.join().expect("the well-behaved client");
    check_demo(&got.multipart);

    // Every departure is noticed: no connection left, fds back to what they were.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = server.stats();
        let fds = server.fd_count();
        if stats.get("clients") == 1 && fds == baseline {
            // Every connection accepted was closed for some reason, but for this one.
            let closed: u64 = ["finished", "client_gone", "send_timeout", "stopped", "error"]
                .iter()
                .map(|reason| stats.get(reason))
                .sum();
            assert_eq!(closed, stats.get("accepted") - 1, "{}", stats.0);
            assert!(stats.get("accepted") > CLIENTS as u64, "{}", stats.0);
            eprintln!("after the churn: {}", stats.0.trim_end());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "5 s after the churn: {fds} fds (baseline {baseline}), stats {}",
            stats.0
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let server = Server::start(&["--send-timeout", "1", "--stream", BIG_STREAM]);
    let baseline = server.fd_count();
    let _stalled = stalled_client(server.addr(), "/big");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = server.stats();
        if stats.get("send_timeout") == 1 {
            assert_eq!(stats.get("clients"), 1, "{}", stats.0);
            break;
        }
        assert!(Instant::now() < deadline, "not closed: {}", stats.0);
        thread::sleep(Duration::from_millis(50));
    }
    // The stats connection may not be reaped yet: wait for the count to settle.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.fd_count() != baseline {
        assert!(
            Instant::now() < deadline,
            "{} fds, baseline {baseline}",
            server.fd_count()
        );
        thread::sleep(Duration::from_millis(20));
    }
}
