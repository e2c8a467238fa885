//! Live fan-out (issue 9): 1,000 viewers of one live stream of 30 fps, ~100 KB frames,
//! fed into the server's standard input by this bench (a thread writing a loop of
//! testcard frames, 1920×1080 at quality 90, on a fixed timeline). The figures: the
//! server's CPU per GB sent (user + system, start-up not counted, over the bytes the
//! load generator received), frames per viewer against frames fed, and the lateness of
//! each frame at the viewer (arrival minus its `X-Timestamp`, when it reached the
//! server).
//!
//! Two configurations take turns within each round on the same pinned CPUs: the
//! default unsent-data watermark (`--live-unsent`, `TCP_NOTSENT_LOWAT` and the
//! `SIOCOUTQNSD` check before each frame) and none (`--live-unsent 0`), so its cost on
//! fast readers shows. Every viewer ends at the load generator's timeout, by design: a
//! live stream does not end. `MIXREPLACE_BENCH_ONLY=fanout` runs this part alone.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mixreplace::stream::testcard::{self, TestcardConfig};

use crate::demo::{Metric, metric, values};
use crate::machine::{Proc, Usage, load1, loadavg, pinned, status};
use crate::servers::{Contender, LoadPlan, Sample, failures, log_run, ready_line, run_load};
use crate::table::{markdown_table, spread_cell};
use crate::{SCRATCH, SETTLE, Settings};

const CLIENTS: u32 = 1_000;
const RAMP_MS: u64 = 1_000;
const FPS: u64 = 30;

/// One configuration's runs.
pub struct FanoutRuns {
    pub name: &'static str,
    pub runs: Vec<Result<Sample, String>>,
}

pub fn run_fanout(contender: &Contender, settings: &Settings) -> Result<Vec<FanoutRuns>, String> {
    let card = TestcardConfig::new(Some("1920x1080"), FPS as f64, Some(90), Some(30))?;
    let frames = Arc::new(testcard::encode_frames(&card)?);
    let mean = frames.iter().map(Vec::len).sum::<usize>() / frames.len();
    let seconds = if settings.quick { 8 } else { 20 };
    eprintln!(
        "\nLive fan-out: {CLIENTS} viewers, {seconds} s a run, {FPS} fps of {mean} bytes on average \
         (load average {})",
        loadavg()
    );
    let mut all = [("default watermark", None), ("no watermark", Some("0"))].map(|(name, unsent)| {
        (
            FanoutRuns {
                name,
                runs: Vec::new(),
            },
            unsent,
        )
    });
    let plan = LoadPlan {
        clients: CLIENTS,
        ramp_ms: RAMP_MS,
        timeout_s: seconds,
    };
    for round in 0..settings.runs {
        for (config, unsent) in &mut all {
            let sample = measure_live(contender, *unsent, &frames, plan, settings);
            log_run(&format!("{} run {}", config.name, round + 1), &sample);
            config.runs.push(sample);
        }
    }
    Ok(all.into_iter().map(|(config, _)| config).collect())
}

/// A fresh server with a live stream at `/cam` fed `frames` in a loop at [`FPS`], loaded
/// by `plan`; its usage over the load, and the frames fed meanwhile (`fed` in the JSON).
fn measure_live(
    contender: &Contender,
    unsent: Option<&str>,
    frames: &Arc<Vec<Vec<u8>>>,
    plan: LoadPlan,
    settings: &Settings,
) -> Result<Sample, String> {
    let log =
        std::fs::File::create(std::path::Path::new(SCRATCH).join("fanout.log")).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&contender.program);
    cmd.args(["--listen", "127.0.0.1:0", "--stream", "/cam=stdin"])
        .args(unsent.map(|bytes| ["--live-unsent", bytes]).iter().flatten())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log);
    let mut proc = Proc::spawn(pinned(&mut cmd, settings.server_cpu()), "mixreplace (live)")?;
    let port = ready_line(&mut proc)?;
    let pid = proc.pid();
    let mut stdin = proc.child.stdin.take().ok_or("no stdin")?;
    let (stop, fed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let feeder = {
        let (frames, stop, fed) = (frames.clone(), stop.clone(), fed.clone());
        // Frames on a fixed timeline until told to stop (or the server goes).
        thread::spawn(move || {
            let began = Instant::now();
            for n in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let due = began + Duration::from_micros(n * 1_000_000 / FPS);
                thread::sleep(due.saturating_duration_since(Instant::now()));
                if stdin.write_all(&frames[n as usize % frames.len()]).is_err() {
                    break;
                }
                fed.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    thread::sleep(SETTLE);
    let load1 = load1();
    let usage_before = Usage::of(pid);
    let fed_before = fed.load(Ordering::Relaxed);
    let (json, load_cpu_s) = run_load(port, "/cam", plan, settings.client_cpu())?;
    let fed_during = fed.load(Ordering::Relaxed) - fed_before;
    let usage_after = Usage::of(pid);
    let peak = status(pid, "VmHWM");
    stop.store(true, Ordering::Relaxed);
    proc.stop();
    let _ = feeder.join();
    let (Some(before), Some(after)) = (usage_before, usage_after) else {
        return Err("the server exited during the run".into());
    };
    // The fed count and peak memory ride in the report's JSON, read back by key.
    let json = format!(
        "{},\"fed\":{fed_during},\"peak_kib\":{}}}",
        json.trim_end_matches('}'),
        peak.unwrap_or(0)
    );
    Ok(Sample {
        json,
        usage: after.since(before),
        load_cpu_s,
        others_cores: None,
        memory: None,
        listen: [0, 0],
        load1,
        floor_s: 0.0,
    })
}

/// Server CPU seconds per GB received by the viewers.
fn cpu_per_gb(s: &Sample) -> Option<f64> {
    let gb = s.num("bytes").filter(|&b| b > 0.0)? / 1e9;
    Some(s.usage.cpu() / gb)
}

const FANOUT_METRICS: &[Metric] = &[
    metric("frames fed", 0, |s| s.num("fed")),
    metric("frames per viewer", 1, |s| {
        Some(s.num("parts")? / s.num("clients")?)
    }),
    metric("dropped frames per viewer", 1, |s| {
        Some(s.num("dropped_frames")? / s.num("clients")?)
    }),
    metric("GB sent", 2, |s| Some(s.num("bytes")? / 1e9)),
    metric("lateness p50 ms", 1, |s| s.num("lateness_ms.p50")),
    metric("lateness p99 ms", 1, |s| s.num("lateness_ms.p99")),
    metric("server CPU s", 2, |s| Some(s.usage.cpu())),
    metric("server CPU s per GB", 2, cpu_per_gb),
    metric("server peak RSS MiB", 1, |s| Some(s.num("peak_kib")? / 1024.0)),
    metric("load average (1 min)", 2, |s| s.load1),
];

pub fn fanout_table(configs: &[FanoutRuns]) -> String {
    let header: Vec<String> = std::iter::once(String::new())
        .chain(configs.iter().map(|c| c.name.to_string()))
        .collect();
    let rows: Vec<Vec<String>> = FANOUT_METRICS
        .iter()
        .map(|m| {
            std::iter::once(m.name.to_string())
                .chain(
                    configs
                        .iter()
                        .map(|c| spread_cell(&values(&c.runs, m.get), m.digits)),
                )
                .collect()
        })
        .collect();
    let mut text = markdown_table(&header, &rows);
    for config in configs {
        for (j, run) in config.runs.iter().enumerate() {
            // Every viewer ends at the timeout; any other failure is worth a line.
            let note = match run {
                Ok(s) if s.num("failed_total") != s.num("failed.timeout") => failures(&s.json),
                Ok(_) => continue,
                Err(e) => format!("no result: {e}"),
            };
            let _ = writeln!(text, "{} run {}: {note}.", config.name, j + 1);
        }
    }
    text
}
