//! Servers and load: the contenders (`mixreplace` and the peers found), a fresh server
//! for each run, `mixreplace-load` run against it, and what both used: one [`Sample`] a
//! run.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use std::{fs, thread};

use mixreplace::load;

use crate::machine::{Proc, Usage, listen_counters, load1, machine_busy, on_path, pinned, status};
use crate::table::fmt_num;
use crate::{LOAD, LOAD_TIMEOUT_S, MANIFEST, Report, SCRATCH, SERVER, SETTLE, STEP_LIMIT, Settings};

/// A server to measure: `mixreplace` itself, or a peer script run by an interpreter.
pub struct Contender {
    pub name: &'static str,
    pub program: PathBuf,
    /// The peer's script; `None` for `mixreplace`.
    script: Option<PathBuf>,
}

impl Contender {
    pub fn is_peer(&self) -> bool {
        self.script.is_some()
    }
}

/// The server this package builds, or the binary `MIXREPLACE_BENCH_SERVER` names (to
/// measure another build, before a change say, with the same bench).
pub fn mixreplace() -> Contender {
    Contender {
        name: "mixreplace",
        program: std::env::var_os("MIXREPLACE_BENCH_SERVER").map_or_else(|| SERVER.into(), PathBuf::from),
        script: None,
    }
}

/// `mixreplace` first (the ratios and the targets read it there), then the peers found.
pub fn contenders(settings: &Settings, report: &mut Report) -> Vec<Contender> {
    let mut all = vec![mixreplace()];
    if !settings.peers {
        report.line("Peers: left out (MIXREPLACE_BENCH_PEERS=0)");
        return all;
    }
    let peers = Path::new(MANIFEST).join("../shared/peers");
    // The real interpreter, not a version manager's shim, so its pid is the server's.
    let python = on_path("python3").and_then(|shim| {
        let out = Command::new(shim)
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()?;
        Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
    });
    for (name, program, script) in [
        ("node", on_path("node"), "node-peer.js"),
        ("python", python, "py-peer.py"),
    ] {
        let script = peers.join(script);
        match program {
            Some(program) if script.is_file() => {
                let version = Command::new(&program)
                    .arg("--version")
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .unwrap_or_default();
                report.line(&format!("Peer {name}: {} {}", program.display(), version));
                all.push(Contender {
                    name,
                    program,
                    script: Some(script),
                });
            }
            Some(_) => report.line(&format!("Peer {name}: left out ({} missing)", script.display())),
            None => report.line(&format!("Peer {name}: left out (not installed)")),
        }
    }
    all
}

/// A started server.
pub struct Running {
    pub proc: Proc,
    pub port: u16,
    /// `VmRSS` and its file-backed part (`RssFile`: the binary's and shared libraries'
    /// pages) before any client, KiB.
    idle_kib: (u64, u64),
}

pub fn start(contender: &Contender, streams: &[&str], cpu: Option<usize>) -> Result<Running, String> {
    let log_path = Path::new(SCRATCH).join(format!("{}.log", contender.name));
    let log = fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(&contender.program);
    cmd.stdin(Stdio::null()).stderr(log);
    let (proc, port) = match &contender.script {
        None => {
            cmd.args(["--listen", "127.0.0.1:0"]).stdout(Stdio::piped());
            for stream in streams {
                cmd.args(["--stream", stream]);
            }
            let mut proc = Proc::spawn(pinned(&mut cmd, cpu), contender.name)?;
            let port = ready_line(&mut proc)?;
            (proc, port)
        }
        Some(script) => {
            let port = free_port()?;
            cmd.arg(script).arg(port.to_string()).stdout(Stdio::null());
            let mut proc = Proc::spawn(pinned(&mut cmd, cpu), contender.name)?;
            wait_accepting(&mut proc, port)?;
            (proc, port)
        }
    };
    thread::sleep(SETTLE);
    let pid = proc.pid();
    let idle_kib = status(pid, "VmRSS")
        .zip(status(pid, "RssFile"))
        .ok_or_else(|| format!("{} exited before any client came", contender.name))?;
    Ok(Running { proc, port, idle_kib })
}

/// Reads `listening on http://IP:PORT/ …` from the server's stdout; returns the port of
/// its first listener.
pub fn ready_line(proc: &mut Proc) -> Result<u16, String> {
    let stdout = proc.child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    // A thread, so the wait is bounded: if the server hangs, it is killed on drop, which
    // ends the read.
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(STEP_LIMIT)
        .map_err(|_| format!("{} printed no ready line", proc.name))?;
    line.trim()
        .strip_prefix("listening on http://")
        .and_then(|rest| {
            rest.split(' ')
                .next()?
                .trim_end_matches('/')
                .parse::<SocketAddr>()
                .ok()
        })
        .map(|addr| addr.port())
        .ok_or_else(|| format!("{}: unexpected first line {line:?}", proc.name))
}

/// A port free a moment ago, for a peer that takes a port number.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn wait_accepting(proc: &mut Proc, port: u16) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STEP_LIMIT;
    while Instant::now() < deadline {
        if let Some(status) = proc.exited() {
            return Err(format!("{} exited at start: {status}", proc.name));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "{} not accepting on port {port} after {STEP_LIMIT:?}",
        proc.name
    ))
}

/// How a run loads its server: `mixreplace-load --clients --ramp-ms --timeout-s`.
#[derive(Clone, Copy, Debug)]
pub struct LoadPlan {
    pub clients: u32,
    pub ramp_ms: u64,
    /// The run ends by then, streams still open failing as `timeout`.
    pub timeout_s: u64,
}

impl LoadPlan {
    /// `clients` over `ramp_ms`, to the end of their streams (within [`LOAD_TIMEOUT_S`]).
    pub fn to_end(clients: u32, ramp_ms: u64) -> LoadPlan {
        LoadPlan {
            clients,
            ramp_ms,
            timeout_s: LOAD_TIMEOUT_S,
        }
    }
}

/// Runs `mixreplace-load` to its end; returns its JSON report and its CPU seconds (the
/// change of [`Usage::of_children`]: the server it loads is reaped only after).
pub fn run_load(port: u16, path: &str, plan: LoadPlan, cpu: Option<usize>) -> Result<(String, f64), String> {
    let children_before = Usage::of_children();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut cmd = Command::new(LOAD);
    cmd.args(["--url", &url, "--json", "-q"])
        .args(["--clients", &plan.clients.to_string()])
        .args(["--ramp-ms", &plan.ramp_ms.to_string()])
        .args(["--timeout-s", &plan.timeout_s.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn(pinned(&mut cmd, cpu), "mixreplace-load")?;
    // Its output is one line and a warning or two: the pipes cannot fill up meanwhile.
    proc.wait(Duration::from_secs(plan.timeout_s) + STEP_LIMIT)?;
    let load_cpu = Usage::of_children().since(children_before).cpu();
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut stdout) = proc.child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if let Some(mut stderr) = proc.child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    out.lines()
        .find(|l| l.starts_with('{'))
        .map(|json| (json.to_string(), load_cpu))
        .ok_or_else(|| format!("mixreplace-load gave no report: {}", err.trim()))
}

/// A number from the load generator's one-line JSON report, by `key` or `object.key`
/// (its keys are fixed and unique at their level: see `mixreplace-load --help`).
/// `None` for `null`.
pub fn json_num(json: &str, path: &str) -> Option<f64> {
    let mut at = 0;
    for key in path.split('.') {
        let pattern = format!("\"{key}\":");
        at += json[at..].find(&pattern)? + pattern.len();
    }
    let end = json[at..].find([',', '}']).map_or(json.len(), |e| at + e);
    json[at..end].parse().ok()
}

/// The report's non-zero failure counts, `reason n, ...`.
pub fn failures(json: &str) -> String {
    load::Failure::NAMES
        .iter()
        .filter_map(|name| {
            let n = json_num(json, &format!("failed.{name}"))?;
            (n > 0.0).then(|| format!("{name} {n}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One measured run.
pub struct Sample {
    /// The load generator's report.
    pub json: String,
    /// The server's (or the plain writer's) usage during the run.
    pub usage: Usage,
    /// The load generator's CPU seconds.
    pub load_cpu_s: f64,
    /// CPU cores' worth the rest of the machine used meanwhile: its busy time less the
    /// server's and the load generator's, over the run's wall time.
    pub others_cores: Option<f64>,
    /// The server's memory; `None` for the in-process plain writer.
    pub memory: Option<Memory>,
    /// Change of `ListenOverflows` and `ListenDrops` during the run.
    pub listen: [u64; 2],
    pub load1: Option<f64>,
    /// The CPU floor for this run's clients.
    pub floor_s: f64,
}

impl Sample {
    pub fn num(&self, path: &str) -> Option<f64> {
        json_num(&self.json, path)
    }

    pub fn clients(&self) -> f64 {
        self.num("clients").unwrap_or(0.0)
    }

    pub fn all_completed(&self) -> bool {
        self.num("completed") == Some(self.clients())
    }
}

/// A server's resident memory, KiB.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// `VmRSS` before any client, and its file-backed part (`RssFile`).
    pub idle: u64,
    pub idle_file: u64,
    /// `VmHWM` after the run.
    pub peak: u64,
}

/// See [`Sample::others_cores`].
pub fn others_cores(before: Option<f64>, after: Option<f64>, wall: Duration, ours: f64) -> Option<f64> {
    Some(((after? - before?) - ours).max(0.0) / wall.as_secs_f64())
}

/// Starts a fresh server, loads it as `plan` says, reads its counters and stops it. A
/// stream that never ends (a testcard) is measured until the plan's timeout.
pub fn measure(
    contender: &Contender,
    stream: Option<&str>,
    path: &str,
    plan: LoadPlan,
    settings: &Settings,
) -> Result<Sample, String> {
    let load1 = load1();
    let mut server = start(contender, stream.as_slice(), settings.server_cpu())?;
    let pid = server.proc.pid();
    // Start-up (an interpreter's, the demo's encoding) is not serving: count from here.
    let usage_before = Usage::of(pid);
    let (busy_before, started) = (machine_busy(), Instant::now());
    let before = listen_counters();
    let (json, load_cpu_s) = run_load(server.port, path, plan, settings.client_cpu())?;
    let after = listen_counters();
    thread::sleep(SETTLE);
    let usage_after = Usage::of(pid);
    let (busy_after, wall) = (machine_busy(), started.elapsed());
    let peak = status(pid, "VmHWM");
    server.proc.stop();
    let (Some(usage_before), Some(usage_after), Some(peak)) = (usage_before, usage_after, peak) else {
        return Err(format!("{} exited during the run", contender.name));
    };
    let usage = usage_after.since(usage_before);
    Ok(Sample {
        json,
        usage,
        load_cpu_s,
        others_cores: others_cores(busy_before, busy_after, wall, usage.cpu() + load_cpu_s),
        memory: Some(Memory {
            idle: server.idle_kib.0,
            idle_file: server.idle_kib.1,
            peak,
        }),
        listen: [after[0] - before[0], after[1] - before[1]],
        load1,
        floor_s: 0.0,
    })
}

pub fn log_run(what: &str, sample: &Result<Sample, String>) {
    match sample {
        Ok(s) => {
            let fails = failures(&s.json);
            eprintln!(
                "  {what}: {}/{} completed{}, CPU {:.2} s, lateness p99 {} ms, first byte p99 {} ms, \
                 {:.0} MB/s",
                s.num("completed").unwrap_or(0.0),
                s.clients(),
                if fails.is_empty() {
                    String::new()
                } else {
                    format!(" ({fails})")
                },
                s.usage.cpu(),
                s.num("lateness_ms.p99").map_or("-".into(), |v| fmt_num(v, 2)),
                s.num("first_byte_ms.p99").map_or("-".into(), |v| fmt_num(v, 2)),
                s.num("throughput_mb_per_s").unwrap_or(0.0),
            );
        }
        Err(e) => eprintln!("  {what}: failed: {e}"),
    }
}
