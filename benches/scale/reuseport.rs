//! Scale-out on one machine (`MIXREPLACE_BENCH_ONLY=reuseport`): two server processes
//! share one port with `--reuse-port`, and the kernel spreads the viewers over them by a
//! hash of each client's address and port. The same clients read the same synthetic
//! stream through the shared port, in turns: from one process alone, then from two.
//!
//! Each process also listens on a private port of its own, where the bench asks its
//! `/stats` for the connections it accepted: the spread. The load generator binds its
//! clients to 8 source addresses (its default), so the hash has addresses and ports to
//! work with. Every server is pinned to the same CPU, the load generator to the other:
//! the two processes share one CPU's budget, so the figures show the spread and what
//! splitting costs, not a speed-up (that needs a core per process, which a two-CPU
//! machine cannot give beside the load generator).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::machine::{Proc, Usage, loadavg, pinned};
use crate::servers::{LoadPlan, failures, free_port, json_num, ready_line, run_load};
use crate::table::{fmt_num, markdown_table};
use crate::{SERVER, SETTLE, Settings};

/// 100 parts of 16 KiB, 50 ms apart: a 5 s stream.
const STREAM: &str = "/s=synthetic:parts=100,size=16384,interval=50";

/// One run: `procs` processes behind the shared port.
pub struct ScaleOut {
    pub procs: usize,
    /// The load generator's report.
    pub json: String,
    /// Connections each process accepted from the load generator.
    pub accepted: Vec<u64>,
    /// Each process's CPU seconds during the run.
    pub cpu: Vec<f64>,
}

pub fn run_reuseport(settings: &Settings) -> Vec<Result<ScaleOut, String>> {
    let clients = if settings.quick { 500 } else { 2_000 };
    let plan = LoadPlan::to_end(clients, 1_000);
    eprintln!(
        "\nScale-out with --reuse-port: {clients} clients, one process then two (load average {})",
        loadavg()
    );
    let mut runs = Vec::new();
    for round in 0..settings.runs {
        for procs in [1, 2] {
            let run = run_shared(procs, plan, settings);
            match &run {
                Ok(r) => eprintln!(
                    "  round {round}, {procs} process(es): accepted {:?}, CPU {:?} s, {}/{clients} complete",
                    r.accepted,
                    r.cpu.iter().map(|c| fmt_num(*c, 2)).collect::<Vec<_>>(),
                    json_num(&r.json, "completed").unwrap_or(0.0),
                ),
                Err(e) => eprintln!("  round {round}, {procs} process(es): failed: {e}"),
            }
            runs.push(run);
        }
    }
    runs
}

/// Starts `procs` servers on one shared port, loads it, reads their counters, stops them.
fn run_shared(procs: usize, plan: LoadPlan, settings: &Settings) -> Result<ScaleOut, String> {
    let shared = free_port()?;
    let mut servers = Vec::new();
    for _ in 0..procs {
        servers.push(start_sharing(shared, settings.server_cpu())?);
    }
    thread::sleep(SETTLE);
    let before: Vec<Option<Usage>> = servers.iter().map(|(proc, _)| Usage::of(proc.pid())).collect();
    let (json, _) = run_load(shared, "/s", plan, settings.client_cpu())?;
    thread::sleep(SETTLE);
    let mut accepted = Vec::new();
    let mut cpu = Vec::new();
    for ((proc, private), before) in servers.iter_mut().zip(before) {
        // The /stats request counts itself.
        accepted.push(accepted_on(*private)?.saturating_sub(1));
        let used = Usage::of(proc.pid())
            .zip(before)
            .map(|(after, before)| after.since(before).cpu());
        cpu.push(used.ok_or("a server exited during the run")?);
        proc.stop();
    }
    Ok(ScaleOut {
        procs,
        json,
        accepted,
        cpu,
    })
}

/// A server on a private port of its own (listed first) and on `shared` with
/// `--reuse-port`; returns it and its private port.
fn start_sharing(shared: u16, cpu: Option<usize>) -> Result<(Proc, u16), String> {
    let mut cmd = Command::new(SERVER);
    cmd.args(["--listen", "127.0.0.1:0", "--reuse-port"])
        .args(["--listen", &format!("127.0.0.1:{shared}")])
        .args(["--stream", STREAM])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut proc = Proc::spawn(pinned(&mut cmd, cpu), "mixreplace")?;
    let private = ready_line(&mut proc)?;
    Ok((proc, private))
}

/// The `accepted` counter of the server on `port`.
fn accepted_on(port: u16) -> Result<u64, String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /stats HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    json_num(body, "accepted")
        .map(|n| n as u64)
        .ok_or_else(|| format!("no accepted count in {answer:?}"))
}

/// One row a run: processes, completion, the spread, CPU, lateness.
pub fn reuseport_table(runs: &[Result<ScaleOut, String>]) -> String {
    let header: Vec<String> = [
        "processes",
        "complete",
        "accepted by each",
        "largest share",
        "CPU s, each",
        "CPU s, all",
        "lateness p99 ms",
    ]
    .map(String::from)
    .to_vec();
    let rows = runs
        .iter()
        .map(|run| match run {
            Ok(r) => {
                let total: u64 = r.accepted.iter().sum();
                let largest = r.accepted.iter().max().copied().unwrap_or(0);
                let fails = failures(&r.json);
                vec![
                    r.procs.to_string(),
                    format!(
                        "{}/{}{}",
                        json_num(&r.json, "completed").unwrap_or(0.0),
                        json_num(&r.json, "clients").unwrap_or(0.0),
                        if fails.is_empty() {
                            String::new()
                        } else {
                            format!(" ({fails})")
                        }
                    ),
                    r.accepted
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(" + "),
                    format!("{:.1}%", 100.0 * largest as f64 / total.max(1) as f64),
                    r.cpu
                        .iter()
                        .map(|c| fmt_num(*c, 2))
                        .collect::<Vec<_>>()
                        .join(" + "),
                    fmt_num(r.cpu.iter().sum(), 2),
                    json_num(&r.json, "lateness_ms.p99").map_or("-".into(), |v| fmt_num(v, 2)),
                ]
            }
            Err(e) => vec![
                "?".into(),
                format!("failed: {e}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ],
        })
        .collect::<Vec<_>>();
    markdown_table(&header, &rows)
}
