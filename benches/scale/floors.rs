//! The floors: plain blocking I/O doing the server's work, measured here rather than
//! assumed (the method is in the header of `main.rs`). The CPU floor of one demo client,
//! and the plain writer of the throughput run.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mixreplace::http::{self, Version};
use mixreplace::load;
use mixreplace::stream::multipart::{Boundary, Part, Stamp, Then};
use mixreplace::stream::spec;

use crate::machine::{Usage, load1, machine_busy, pin_thread, thread_cpu};
use crate::servers::{LoadPlan, Sample, others_cores, run_load};
use crate::{PART_SIZE, STEP_LIMIT, Settings, THROUGHPUT_CLIENTS};

/// The same request `mixreplace-load` sends.
fn request(port: u16, path: &str) -> Vec<u8> {
    let url = format!("http://127.0.0.1:{port}{path}");
    load::LoadConfig::new(load::parse_url(&url).expect("a loopback URL")).request()
}

/// A part's wire bytes, with a stamp of now.
fn wire(part: &Part) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let stamp = Stamp::new(now.as_micros() as u64, None);
    let (head, tail) = part.halves();
    [head, stamp.as_bytes(), tail].concat()
}

/// The response head and the opening boundary, as the server sends them.
fn stream_head(boundary: &Boundary) -> Vec<u8> {
    let mut head = http::stream_head(Version::Http11, boundary, "").into_bytes();
    head.extend_from_slice(&boundary.opening());
    head
}

/// Accepts a client as a plain blocking server would (`TCP_NODELAY`, as the server sets
/// it), and reads its request head. No socket timeouts: they would cost system calls the
/// server does not make; the threads' results are waited for with a limit instead.
fn accept_request(listener: &TcpListener) -> io::Result<TcpStream> {
    let (mut stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 1024];
    let mut request = Vec::new();
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || request.len() > 8192 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        request.extend_from_slice(&buf[..n]);
    }
    Ok(stream)
}

/// Reads to the client's EOF: the client closes first, as it does with the server.
fn await_eof(stream: &mut TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    while stream.read(&mut buf)? > 0 {}
    Ok(())
}

/// The CPU floor of one demo client, split as measured.
#[derive(Clone, Copy)]
pub struct IoFloor {
    /// Seconds of one `write` of a head or a part, on average.
    pub write: f64,
    /// Seconds of the rest: accept, `TCP_NODELAY`, read the request, read EOF, close.
    pub connection: f64,
    /// Writes a client: the head and the 15 parts.
    pub writes: usize,
}

impl IoFloor {
    pub fn per_client(&self) -> f64 {
        self.write * self.writes as f64 + self.connection
    }
}

/// Clients handled in one go by the CPU floor: connected (and their requests sent)
/// before the server thread looks, so its accepts and reads never wait.
const FLOOR_BATCH: usize = 100;

/// Measures the CPU floor, one [`IoFloor`] a sample; the method is in `main.rs`.
pub fn io_floor(settings: &Settings) -> Result<Vec<IoFloor>, String> {
    let (batches, samples) = if settings.quick { (5, 1) } else { (20, 3) };
    eprintln!(
        "CPU floor: {samples} × {} demo clients of bare blocking I/O",
        batches * FLOOR_BATCH
    );
    (0..samples).map(|_| io_floor_sample(batches, settings)).collect()
}

/// Server and client threads take turns a batch at a time (connect and send the
/// requests; accept, read and write everything; read it all and close; read EOF and
/// close), so the server's accepts, reads and writes never block and never wake a
/// waiting reader. Only the server's I/O is timed, not its waits between turns.
fn io_floor_sample(batches: usize, settings: &Settings) -> Result<IoFloor, String> {
    let demo = spec::demo_parts();
    let boundary = Boundary::absent_from(demo.iter().map(|p| &p.body[..])).map_err(|e| e.to_string())?;
    let head = stream_head(&boundary);
    let parts: Vec<Vec<u8>> = demo
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let then = if i + 1 == demo.len() {
                Then::End
            } else {
                Then::More
            };
            wire(&Part::encode(&boundary, &p.content_type, &p.body, then))
        })
        .collect();
    let expected = head.len() + parts.iter().map(Vec::len).sum::<usize>();
    let writes = 1 + parts.len();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Turns: client → server "requests sent", server → client "written", client → server
    // "closed"; either side dropping its sender ends the other.
    let (to_server, server_turn) = mpsc::channel::<()>();
    let (to_client, client_turn) = mpsc::channel::<()>();
    let (result_tx, result) = mpsc::channel();

    let server_cpu = settings.server_cpu();
    thread::spawn(move || {
        pin_thread(server_cpu);
        let (mut write, mut connection) = (Duration::ZERO, Duration::ZERO);
        let mut batch = || -> io::Result<()> {
            let wait = || {
                server_turn
                    .recv_timeout(STEP_LIMIT)
                    .map_err(|_| io::ErrorKind::TimedOut)
            };
            wait()?;
            let t0 = thread_cpu();
            let mut streams = (0..FLOOR_BATCH)
                .map(|_| accept_request(&listener))
                .collect::<io::Result<Vec<_>>>()?;
            let t1 = thread_cpu();
            for stream in &mut streams {
                stream.write_all(&head)?;
                for part in &parts {
                    stream.write_all(part)?;
                }
            }
            let t2 = thread_cpu();
            let _ = to_client.send(());
            wait()?;
            let t3 = thread_cpu();
            for mut stream in streams {
                await_eof(&mut stream)?;
            }
            let t4 = thread_cpu();
            write += t2 - t1;
            connection += (t1 - t0) + (t4 - t3);
            Ok(())
        };
        let served = (0..batches).try_for_each(|_| batch());
        let _ = result_tx.send(served.map(|()| (write, connection)));
    });
    let client_cpu = settings.client_cpu();
    let request = request(addr.port(), "/");
    let client = thread::spawn(move || -> io::Result<()> {
        pin_thread(client_cpu);
        let mut buf = vec![0u8; 16 * 1024];
        let wait = || {
            client_turn
                .recv_timeout(STEP_LIMIT)
                .map_err(|_| io::ErrorKind::TimedOut)
        };
        for _ in 0..batches {
            let mut streams = Vec::with_capacity(FLOOR_BATCH);
            for _ in 0..FLOOR_BATCH {
                let mut stream = TcpStream::connect(addr)?;
                stream.set_read_timeout(Some(STEP_LIMIT))?;
                stream.write_all(&request)?;
                streams.push(stream);
            }
            let _ = to_server.send(());
            wait()?;
            for mut stream in streams {
                let mut got = 0;
                while got < expected {
                    match stream.read(&mut buf)? {
                        0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                        n => got += n,
                    }
                }
            }
            let _ = to_server.send(());
        }
        Ok(())
    });
    let (write, connection) = result
        .recv_timeout(STEP_LIMIT * 2)
        .map_err(|_| "the floor's server thread did not finish".to_string())?
        .map_err(|e| format!("the floor's server thread: {e}"))?;
    client
        .join()
        .map_err(|_| "the floor's client thread panicked".to_string())?
        .map_err(|e| format!("the floor's client thread: {e}"))?;
    let clients = (batches * FLOOR_BATCH) as f64;
    Ok(IoFloor {
        write: write.as_secs_f64() / (clients * writes as f64),
        connection: connection.as_secs_f64() / clients,
        writes,
    })
}

/// The throughput floor's run: one thread, plain blocking calls. It accepts every client
/// and reads its request, writes each a head, then part after part to each client in
/// turn (a `write_all` blocks while that client's socket buffer is full; the load
/// generator reads them all, so the turn comes round), then reads every EOF.
pub fn plain_writer(parts: u64, settings: &Settings) -> Result<Sample, String> {
    let body = spec::synthetic_body(PART_SIZE);
    let boundary = Boundary::absent_from([&body[..]].into_iter()).map_err(|e| e.to_string())?;
    let encode = |then| wire(&Part::encode(&boundary, "application/octet-stream", &body, then));
    let (head, more, last) = (stream_head(&boundary), encode(Then::More), encode(Then::End));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (tx, rx) = mpsc::channel();
    let cpu = settings.server_cpu();
    thread::spawn(move || {
        pin_thread(cpu);
        let served = (|| -> io::Result<()> {
            let mut streams = (0..THROUGHPUT_CLIENTS)
                .map(|_| accept_request(&listener))
                .collect::<io::Result<Vec<_>>>()?;
            for stream in &mut streams {
                stream.write_all(&head)?;
            }
            for i in 1..=parts {
                for stream in &mut streams {
                    stream.write_all(if i == parts { &last } else { &more })?;
                }
            }
            streams.iter_mut().try_for_each(await_eof)
        })();
        let _ = tx.send(served.map(|()| Usage::of_thread()));
    });
    let load1 = load1();
    let (busy_before, started) = (machine_busy(), Instant::now());
    let plan = LoadPlan::to_end(THROUGHPUT_CLIENTS, 0);
    let (json, load_cpu_s) = run_load(port, "/syn", plan, settings.client_cpu())?;
    let usage = rx
        .recv_timeout(STEP_LIMIT)
        .map_err(|_| "the plain writer did not finish".to_string())?
        .map_err(|e| format!("the plain writer: {e}"))?;
    let (busy_after, wall) = (machine_busy(), started.elapsed());
    Ok(Sample {
        json,
        usage,
        load_cpu_s,
        others_cores: others_cores(busy_before, busy_after, wall, usage.cpu() + load_cpu_s),
        memory: None,
        listen: [0; 2],
        load1,
        floor_s: 0.0,
    })
}
