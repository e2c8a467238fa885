//! Snapshots at speed, side by side with µStreamer (`MIXREPLACE_BENCH_ONLY=snapshot`): the
//! dashboards' polling pattern (Mainsail, Home Assistant), 50 kept-alive pollers asking
//! for the current JPEG as fast as they can.
//!
//! µStreamer runs with no camera (`--device` a path that does not exist): it serves its
//! "no signal" JPEG at `/snapshot`. That JPEG is fetched once and piped into `mixreplace`'s
//! standard input as a live stream (`--stream /cam=stdin`; its one stream, so `/snapshot`
//! is the alias µStreamer's users know): both servers answer with the same frame. Each
//! server is pinned to the server CPU and `wrk -t2 -c50 -d10s` to the other; the two take
//! turns within each round so the machine's other load falls on both alike. The figure is
//! wrk's requests per second, every answer a `200` (wrk counts anything else as "Non-2xx");
//! the target is the issue's: at least 1.5× µStreamer's, of the medians. Beside it, the
//! server's CPU time (user + system, all threads, from `/proc/PID/stat`) per request:
//! on a shared machine, where others take the two servers' CPU in different measure, it
//! says more than the rate.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::machine::{Proc, Usage, loadavg, on_path, pinned};
use crate::servers::ready_line;
use crate::table::{fmt_num, markdown_table, median, spread_cell};
use crate::{SERVER, STEP_LIMIT, Settings};

const CONNECTIONS: u32 = 50;
const TARGET_RATIO: f64 = 1.5;

/// Each run, per server; `Err`: why a run failed.
pub struct SnapshotRuns {
    pub frame_size: usize,
    pub seconds: u64,
    pub ours: Vec<Result<Run, String>>,
    pub ustreamer: Vec<Result<Run, String>>,
}

/// One wrk run against one server.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub per_second: f64,
    /// The server's CPU time per request answered, µs.
    pub cpu_us: f64,
}

pub fn run_snapshot(settings: &Settings) -> Result<SnapshotRuns, String> {
    let wrk = on_path("wrk").ok_or("wrk is not installed")?;
    let ustreamer = on_path("ustreamer").ok_or("ustreamer is not installed")?;
    let frame = {
        let (_proc, port) = start_ustreamer(&ustreamer, settings)?;
        fetch_snapshot(port)?
    };
    let seconds = 10;
    eprintln!(
        "\nSnapshots: wrk -t2 -c{CONNECTIONS} -d{seconds}s, a {} byte JPEG (load average {})",
        frame.len(),
        loadavg()
    );
    let mut runs = SnapshotRuns {
        frame_size: frame.len(),
        seconds,
        ours: Vec::new(),
        ustreamer: Vec::new(),
    };
    for round in 0..settings.runs {
        let ours = start_ours(&frame, settings)
            .and_then(|(proc, port)| run_wrk(&wrk, &proc, port, seconds, settings));
        eprintln!("  round {}: mixreplace {}", round + 1, shown(&ours));
        runs.ours.push(ours);
        let theirs = start_ustreamer(&ustreamer, settings)
            .and_then(|(proc, port)| run_wrk(&wrk, &proc, port, seconds, settings));
        eprintln!("  round {}: ustreamer {}", round + 1, shown(&theirs));
        runs.ustreamer.push(theirs);
    }
    Ok(runs)
}

fn shown(run: &Result<Run, String>) -> String {
    match run {
        Ok(run) => format!(
            "{} req/s, {} µs of server CPU a request",
            fmt_num(run.per_second, 0),
            fmt_num(run.cpu_us, 1)
        ),
        Err(e) => format!("failed: {e}"),
    }
}

/// The table and the target line.
pub fn snapshot_table(runs: &SnapshotRuns) -> String {
    let values = |runs: &[Result<Run, String>], get: fn(&Run) -> f64| {
        runs.iter()
            .filter_map(|r| r.as_ref().ok().map(get))
            .collect::<Vec<f64>>()
    };
    let (ours, theirs) = (
        values(&runs.ours, |r| r.per_second),
        values(&runs.ustreamer, |r| r.per_second),
    );
    let (our_cpu, their_cpu) = (
        values(&runs.ours, |r| r.cpu_us),
        values(&runs.ustreamer, |r| r.cpu_us),
    );
    let ratio = median(&ours).zip(median(&theirs)).map(|(a, b)| a / b);
    let cpu_ratio = median(&their_cpu).zip(median(&our_cpu)).map(|(a, b)| a / b);
    let rows = vec![
        vec![
            "requests/s".to_string(),
            spread_cell(&ours, 0),
            spread_cell(&theirs, 0),
        ],
        vec![
            "server CPU a request, µs".to_string(),
            spread_cell(&our_cpu, 1),
            spread_cell(&their_cpu, 1),
        ],
        vec![
            "failed runs".to_string(),
            (runs.ours.len() - ours.len()).to_string(),
            (runs.ustreamer.len() - theirs.len()).to_string(),
        ],
    ];
    let mut text = format!(
        "{CONNECTIONS} kept-alive connections, wrk -t2 -d{}s, the same {} byte JPEG\n\n",
        runs.seconds, runs.frame_size
    );
    let header = ["", "mixreplace", "ustreamer"].map(String::from);
    text.push_str(&markdown_table(&header, &rows));
    let verdict = match ratio {
        Some(r) if r >= TARGET_RATIO => "met",
        Some(_) => "NOT met",
        None => "not measured",
    };
    let _ = writeln!(
        text,
        "\nmixreplace ÷ ustreamer: {} the requests per second (target ≥ {TARGET_RATIO}×: {verdict}); \
         {} less server CPU a request",
        ratio.map_or("-".into(), |r| format!("{}×", fmt_num(r, 2))),
        cpu_ratio.map_or("-".into(), |r| format!("{}×", fmt_num(r, 2)))
    );
    text
}

/// `mixreplace` with `frame` as its live stream's current frame; its standard input stays
/// open (the frame stays current) until the returned process is dropped.
fn start_ours(frame: &[u8], settings: &Settings) -> Result<(Proc, u16), String> {
    let mut cmd = Command::new(SERVER);
    cmd.args(["--listen", "127.0.0.1:0", "--stream", "/cam=stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut proc = Proc::spawn(pinned(&mut cmd, settings.server_cpu()), "mixreplace")?;
    let port = ready_line(&mut proc)?;
    let stdin = proc.child.stdin.as_mut().ok_or("no stdin")?;
    stdin
        .write_all(frame)
        .map_err(|e| format!("feeding the frame: {e}"))?;
    stdin.flush().map_err(|e| format!("feeding the frame: {e}"))?;
    // The frame is published once it is read: wait until the snapshot answers 200.
    wait_until(STEP_LIMIT, || fetch_snapshot(port).map(drop))?;
    Ok((proc, port))
}

/// µStreamer without a camera on a free port, once it answers `/snapshot`.
fn start_ustreamer(program: &std::path::Path, settings: &Settings) -> Result<(Proc, u16), String> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut cmd = Command::new(program);
    cmd.args([
        "--device",
        "/dev/nonexistent-mixreplace-bench",
        "--host",
        "127.0.0.1",
    ])
    .args(["--port", &port.to_string()])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let proc = Proc::spawn(pinned(&mut cmd, settings.server_cpu()), "ustreamer")?;
    wait_until(STEP_LIMIT, || fetch_snapshot(port).map(drop))?;
    Ok((proc, port))
}

/// Retries `probe` every 50 ms until it succeeds or `limit` passes.
fn wait_until(limit: Duration, mut probe: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match probe() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(format!("not ready after {limit:?}: {e}")),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `GET /snapshot` on its own connection: the body of a `200`.
fn fetch_snapshot(port: u16) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /snapshot HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no response head")?;
    let head = String::from_utf8_lossy(&answer[..at]);
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(format!("answered {:?}", head.lines().next().unwrap_or_default()));
    }
    Ok(answer[at + 4..].to_vec())
}

/// wrk against `/snapshot` of `server`; a run with errors or non-2xx answers fails.
fn run_wrk(
    wrk: &std::path::Path,
    server: &Proc,
    port: u16,
    seconds: u64,
    settings: &Settings,
) -> Result<Run, String> {
    let before = Usage::of(server.pid()).ok_or("the server is gone")?;
    let mut cmd = Command::new(wrk);
    cmd.args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{seconds}s")])
        .arg(format!("http://127.0.0.1:{port}/snapshot"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn(pinned(&mut cmd, settings.client_cpu()), "wrk")?;
    let mut stdout = proc.child.stdout.take().ok_or("no stdout")?;
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    proc.wait(Duration::from_secs(seconds) + STEP_LIMIT)?;
    let used = Usage::of(server.pid()).ok_or("the server is gone")?.since(before);
    let text = reader.join().map_err(|_| "wrk's reader panicked")?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk saw errors:\n{text}"));
    }
    let per_second: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    // `N requests in 10.00s, …`
    let requests: f64 = text
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .filter(|&n: &f64| n > 0.0)
        .ok_or_else(|| format!("no request count in wrk's output:\n{text}"))?;
    Ok(Run {
        per_second,
        cpu_us: used.cpu() * 1e6 / requests,
    })
}
