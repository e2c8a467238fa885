//! A relay tier against direct serving: the same viewers of the same live-sized stream,
//! read from the origin itself, or from an edge that relays the origin over one upstream
//! connection (`relay:`).
//!
//! 1,000 viewers (1 s ramp) of a 1920×1080 testcard at 30 fps (frames of about 100 KB).
//! Direct: a fresh origin, measured as every run is (its CPU from the first client on).
//! Relay tier: a fresh origin (pinned with the load generator, out of the way of the
//! edge) and a fresh edge relaying it, the edge measured the same way and the origin's CPU
//! read over the same run: it serves one client, the edge. The figures are each process's
//! CPU, the parts and bytes the viewers received, and server CPU seconds per GB sent. The
//! testcard loops forever: every viewer ends at the run's timeout, by design.

use std::fmt::Write as _;

use crate::Settings;
use crate::demo::{Metric, metric, values};
use crate::machine::{Usage, loadavg};
use crate::servers::{Contender, LoadPlan, Sample, failures, log_run, measure, start};
use crate::table::{markdown_table, spread_cell};

const VIEWERS: u32 = 1_000;
const RAMP_MS: u64 = 1_000;
const CARD: &str = "/cam=testcard,size=1920x1080,fps=30,quality=90";

pub struct RelayRuns {
    pub seconds: u64,
    pub direct: Vec<Result<Sample, String>>,
    /// The edge's samples.
    pub edge: Vec<Result<Sample, String>>,
    /// The origin's CPU seconds over each edge run.
    pub origin_cpu: Vec<f64>,
}

pub fn run_relay(contender: &Contender, settings: &Settings) -> RelayRuns {
    let seconds = if settings.quick { 8 } else { 20 };
    eprintln!(
        "\nRelay tier against direct serving: {VIEWERS} viewers, {seconds} s each (load average {})",
        loadavg()
    );
    let plan = LoadPlan {
        clients: VIEWERS,
        ramp_ms: RAMP_MS,
        timeout_s: seconds,
    };
    let mut runs = RelayRuns {
        seconds,
        direct: Vec::new(),
        edge: Vec::new(),
        origin_cpu: Vec::new(),
    };
    for round in 0..settings.runs {
        let direct = measure(contender, Some(CARD), "/cam", plan, settings);
        log_run(&format!("direct run {}", round + 1), &direct);
        runs.direct.push(direct);
        let edge = match relay_run(contender, plan, settings) {
            Ok((sample, origin_cpu)) => {
                runs.origin_cpu.push(origin_cpu);
                Ok(sample)
            }
            Err(e) => Err(e),
        };
        log_run(&format!("relay tier run {}", round + 1), &edge);
        runs.edge.push(edge);
    }
    runs
}

/// One relay-tier run: an origin, then the edge measured; the origin's CPU meanwhile.
fn relay_run(contender: &Contender, plan: LoadPlan, settings: &Settings) -> Result<(Sample, f64), String> {
    let mut origin = start(contender, &[CARD], settings.client_cpu())?;
    let pid = origin.proc.pid();
    let edge = format!("/edge=relay:http://127.0.0.1:{}/cam,refresh=0", origin.port);
    let before = Usage::of(pid);
    let sample = measure(contender, Some(&edge), "/edge", plan, settings);
    let after = Usage::of(pid);
    origin.proc.stop();
    let (Some(before), Some(after)) = (before, after) else {
        return Err("the origin exited during the run".into());
    };
    Ok((sample?, after.since(before).cpu()))
}

const GB: f64 = 1e9;

const RELAY_METRICS: &[Metric] = &[
    metric("parts received", 0, |s| s.num("parts")),
    metric("GB received", 2, |s| Some(s.num("bytes")? / GB)),
    metric("bytes per part", 0, |s| Some(s.num("bytes")? / s.num("parts")?)),
    metric("serving server's CPU s", 2, |s| Some(s.usage.cpu())),
    metric("its CPU s per GB sent", 3, |s| {
        Some(s.usage.cpu() / (s.num("bytes")? / GB))
    }),
    metric("other processes' CPU, cores", 2, |s| s.others_cores),
    metric("load average (1 min)", 2, |s| s.load1),
];

pub fn relay_table(runs: &RelayRuns) -> String {
    let edges = &runs.edge;
    let header = vec![
        String::new(),
        "direct (origin serves the viewers)".to_string(),
        "relay tier (edge serves them)".to_string(),
    ];
    let mut rows: Vec<Vec<String>> = RELAY_METRICS
        .iter()
        .map(|m| {
            vec![
                m.name.to_string(),
                spread_cell(&values(&runs.direct, m.get), m.digits),
                spread_cell(&values(edges, m.get), m.digits),
            ]
        })
        .collect();
    rows.push(vec![
        "origin's CPU s (one client: the edge)".to_string(),
        "(it is the serving server)".to_string(),
        spread_cell(&runs.origin_cpu, 2),
    ]);
    let mut text = markdown_table(&header, &rows);
    for (name, runs) in [("direct", &runs.direct), ("relay tier", edges)] {
        for (j, run) in runs.iter().enumerate() {
            let note = match run {
                Ok(s) if s.num("failed_total") != s.num("failed.timeout") => failures(&s.json),
                Ok(_) => continue,
                Err(e) => format!("no result: {e}"),
            };
            let _ = writeln!(text, "{name} run {}: {note}.", j + 1);
        }
    }
    let _ = writeln!(
        text,
        "\n{VIEWERS} viewers of `{CARD}`, {} s a run; every viewer ends at the timeout, by design.",
        runs.seconds
    );
    text
}
