//! Fairness: one stream's heavy traffic must not make a client of another stream late.
//!
//! Two scenarios, each with one watcher: `mixreplace-load` reading a 50 Hz stream of
//! 1,000-byte parts (`/tick`), whose lateness (arrival minus `X-Timestamp`) is the figure.
//! - Big parts: 500 clients that never read and 300 that read as fast as they can, all
//!   on a stream of 8 MiB parts (`interval=0`), beside the watcher.
//! - Churn: 1,000 new connections a second, each sending a request for `/tick`, reading
//!   the response head and closing, for a minute (quick: 10 s), beside the watcher.
//!
//! The server runs on its CPU; everything else runs on the other. The watcher runs with
//! `SCHED_FIFO` priority where the bench may set it (as root), so its own wake-up delay on
//! a CPU shared with the load stays out of the figure. The server's involuntary context
//! switches (`nonvoluntary_ctxt_switches`) are shown beside: a server preempted by the
//! rest of the machine is late for reasons of the machine, not of the loop.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::machine::{Proc, Usage, pin_thread, pinned, status};
use crate::servers::{Contender, start};
use crate::table::{fmt_num, markdown_table};
use crate::{LOAD, STEP_LIMIT, Settings};

/// The watcher's stream: 50 parts a second.
const TICK_INTERVAL_MS: u64 = 20;
const BIG_PART: usize = 8 * 1024 * 1024;
const NEVER_READING: usize = 500;
const READING: u32 = 300;
const CHURN_PER_S: u64 = 1_000;
/// Churning threads; each opens its share of the connections at a steady pace.
const CHURNERS: u64 = 4;

/// One scenario's figures.
pub struct Fairness {
    pub scenario: &'static str,
    /// The watcher's report (`mixreplace-load --json`), or why there is none.
    pub watcher: Result<String, String>,
    pub server_cpu_s: f64,
    pub preemptions: u64,
    pub note: String,
}

impl Fairness {
    pub fn lateness(&self, key: &str) -> Option<f64> {
        crate::servers::json_num(self.watcher.as_ref().ok()?, &format!("lateness_ms.{key}"))
    }
}

pub fn run_fairness(contender: &Contender, settings: &Settings) -> Vec<Fairness> {
    let (big_s, churn_s) = if settings.quick { (8, 10) } else { (20, 60) };
    vec![
        scenario(contender, settings, "big parts", big_s, big_parts_load),
        scenario(contender, settings, "churn", churn_s, churn_load),
    ]
}

/// The load beside the watcher; dropped (and so stopped) when the watcher is done.
type Load = fn(port: u16, seconds: u64, settings: &Settings) -> Result<Box<dyn Beside>, String>;

/// Whatever a scenario runs beside the watcher; stops when dropped.
pub trait Beside {
    fn note(&self) -> String;
}

fn scenario(
    contender: &Contender,
    settings: &Settings,
    name: &'static str,
    seconds: u64,
    load: Load,
) -> Fairness {
    let tick = format!(
        "/tick=synthetic:parts={},size=1000,interval={TICK_INTERVAL_MS}",
        seconds * 1000 / TICK_INTERVAL_MS
    );
    let big = format!("/big=synthetic:parts=1000000,size={BIG_PART},interval=0");
    let failed = |e: String| Fairness {
        scenario: name,
        watcher: Err(e),
        server_cpu_s: 0.0,
        preemptions: 0,
        note: String::new(),
    };
    let mut server = match start(contender, &[&tick, &big], settings.server_cpu()) {
        Ok(server) => server,
        Err(e) => return failed(e),
    };
    let pid = server.proc.pid();
    let before = (Usage::of(pid), status(pid, "nonvoluntary_ctxt_switches"));
    let beside = match load(server.port, seconds, settings) {
        Ok(beside) => beside,
        Err(e) => return failed(e),
    };
    let watcher = watch(server.port, seconds, settings);
    let after = (Usage::of(pid), status(pid, "nonvoluntary_ctxt_switches"));
    let note = beside.note();
    drop(beside);
    server.proc.stop();
    let cpu = after.0.zip(before.0).map_or(0.0, |(a, b)| a.since(b).cpu());
    let preemptions = after.1.zip(before.1).map_or(0, |(a, b)| a - b);
    eprintln!("  fairness, {name}: watcher {watcher:?}; {note}");
    Fairness {
        scenario: name,
        watcher,
        server_cpu_s: cpu,
        preemptions,
        note,
    }
}

/// Runs the watcher to the end of `/tick`; returns its JSON report.
fn watch(port: u16, seconds: u64, settings: &Settings) -> Result<String, String> {
    let mut cmd = Command::new(LOAD);
    cmd.args(["--url", &format!("http://127.0.0.1:{port}/tick"), "--json", "-q"])
        .args(["--timeout-s", &(seconds + 10).to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: one system call, no allocation: async-signal-safe, as `pre_exec` requires.
    // Refused (not root): the watcher runs at normal priority, and the figure includes
    // its own wake-up delay.
    unsafe {
        cmd.pre_exec(|| {
            let param = libc::sched_param { sched_priority: 10 };
            libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
            Ok(())
        });
    }
    let mut proc = Proc::spawn(pinned(&mut cmd, settings.client_cpu()), "watcher")?;
    proc.wait(Duration::from_secs(seconds + 10) + STEP_LIMIT)?;
    let mut out = String::new();
    if let Some(mut stdout) = proc.child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    out.lines()
        .find(|l| l.starts_with('{'))
        .map(str::to_string)
        .ok_or_else(|| "the watcher gave no report".to_string())
}

/// 500 clients that send a request for `/big` and never read, with 4 KiB receive
/// buffers, and a `mixreplace-load` of 300 clients reading `/big` as fast as they can.
struct BigParts {
    _never_reading: Vec<TcpStream>,
    _reading: Proc,
}

impl Beside for BigParts {
    fn note(&self) -> String {
        format!("{NEVER_READING} never-reading and {READING} reading clients of 8 MiB parts")
    }
}

fn big_parts_load(port: u16, seconds: u64, settings: &Settings) -> Result<Box<dyn Beside>, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let request = format!("GET /big HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let never_reading = (0..NEVER_READING)
        .map(|_| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            socket.set_recv_buffer_size(4096)?;
            socket.connect_timeout(&addr.into(), STEP_LIMIT)?;
            let mut stream = TcpStream::from(socket);
            stream.write_all(request.as_bytes())?;
            Ok(stream)
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("never-reading clients: {e}"))?;
    let mut cmd = Command::new(LOAD);
    cmd.args(["--url", &format!("http://127.0.0.1:{port}/big"), "-q"])
        .args(["--clients", &READING.to_string()])
        .args(["--timeout-s", &(seconds + 15).to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let reading = Proc::spawn(pinned(&mut cmd, settings.client_cpu()), "readers")?;
    // Let every reader get going before the watcher starts.
    thread::sleep(Duration::from_secs(1));
    Ok(Box::new(BigParts {
        _never_reading: never_reading,
        _reading: reading,
    }))
}

/// Threads that open `CHURN_PER_S` connections a second between them until dropped.
struct Churn {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<()>>,
    started: Instant,
}

impl Beside for Churn {
    fn note(&self) -> String {
        let done = self.done.load(Ordering::Relaxed);
        format!(
            "{done} connections churned ({}/s), {} failed",
            fmt_num(done as f64 / self.started.elapsed().as_secs_f64(), 0),
            self.failed.load(Ordering::Relaxed)
        )
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn churn_load(port: u16, _seconds: u64, settings: &Settings) -> Result<Box<dyn Beside>, String> {
    let (stop, done, failed) = (
        Arc::<AtomicBool>::default(),
        Arc::<AtomicU64>::default(),
        Arc::<AtomicU64>::default(),
    );
    let period = Duration::from_micros(1_000_000 * CHURNERS / CHURN_PER_S);
    let threads = (0..CHURNERS)
        .map(|n| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            let cpu = settings.client_cpu();
            thread::spawn(move || {
                pin_thread(cpu);
                // Each thread from its own source address, so 60,000 closes leave no
                // shortage of ephemeral ports behind them (TIME_WAIT is the client's).
                let source = Ipv4Addr::new(127, 0, 0, 2 + n as u8);
                let start = Instant::now();
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(wait) = (start + period * i).checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    i += 1;
                    let counter = if churn_once(source, port).is_ok() {
                        &done
                    } else {
                        &failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    Ok(Box::new(Churn {
        stop,
        done,
        failed,
        threads,
        started: Instant::now(),
    }))
}

/// Connects, asks for `/tick`, reads the response head and closes.
fn churn_once(source: Ipv4Addr, port: u16) -> std::io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SockAddr::from(SocketAddr::from((source, 0))))?;
    socket.connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into(), STEP_LIMIT)?;
    let mut stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(STEP_LIMIT))?;
    stream.write_all(format!("GET /tick HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())?;
    let mut head = [0u8; 512];
    let mut got = 0;
    while !head[..got].windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut head[got..])? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
        if got == head.len() {
            break;
        }
    }
    Ok(())
}

pub fn fairness_table(results: &[Fairness]) -> String {
    let header: Vec<String> = [
        "scenario",
        "watcher lateness p50 / p90 / p99 / max",
        "parts",
        "server CPU",
        "server preemptions",
        "beside the watcher",
    ]
    .map(String::from)
    .to_vec();
    let rows = results
        .iter()
        .map(|r| {
            let ms = |key| r.lateness(key).map_or("-".into(), |v| fmt_num(v, 1));
            let parts = r
                .watcher
                .as_ref()
                .ok()
                .and_then(|json| crate::servers::json_num(json, "parts"))
                .map_or("-".into(), |v| fmt_num(v, 0));
            vec![
                r.scenario.to_string(),
                match &r.watcher {
                    Ok(_) => format!("{} / {} / {} / {} ms", ms("p50"), ms("p90"), ms("p99"), ms("max")),
                    Err(e) => format!("failed: {e}"),
                },
                parts,
                format!("{} s", fmt_num(r.server_cpu_s, 2)),
                r.preemptions.to_string(),
                r.note.clone(),
            ]
        })
        .collect::<Vec<_>>();
    markdown_table(&header, &rows)
}
