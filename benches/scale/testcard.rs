//! Testcard against synthetic: serving a testcard costs no more server CPU per part than a
//! synthetic stream of the same size. Both are encoded once and walked alike; only the
//! per-connection stamp differs (a testcard's also carries `X-Frame`).
//!
//! 1,000 clients (1 s ramp) read the default testcard (640×360, 10 fps, 30 frames); in a
//! fresh server, as many read a synthetic stream of parts the size of the testcard's mean
//! frame, 100 ms apart, long enough not to end. Each run lasts the load generator's
//! `--timeout-s` (the testcard never ends: its clients end as `timeout`, by design). The
//! two take turns within each round on the same pinned CPUs, so the machine's other load
//! falls on both alike. The figure is the server's CPU (user + system, start-up and
//! encoding not counted) per part the load generator received whole, and the ratio of the
//! medians, testcard ÷ synthetic.

use mixreplace::stream::testcard::{self, TestcardConfig};

use std::fmt::Write as _;

use crate::Settings;
use crate::demo::{Metric, metric, values};
use crate::machine::loadavg;
use crate::servers::{Contender, LoadPlan, Sample, failures, log_run, measure};
use crate::table::{fmt_num, markdown_table, median, spread_cell};

const CLIENTS: u32 = 1_000;
const RAMP_MS: u64 = 1_000;

pub struct CardRuns {
    /// The testcard's mean encoded frame, bytes: the synthetic stream's part size.
    pub frame_size: usize,
    pub seconds: u64,
    pub testcard: Vec<Result<Sample, String>>,
    pub synthetic: Vec<Result<Sample, String>>,
}

impl CardRuns {
    /// Testcard ÷ synthetic, server CPU per part, of the medians.
    pub fn ratio(&self) -> Option<f64> {
        let per_part = |runs: &[Result<Sample, String>]| median(&values(runs, cpu_per_part));
        Some(per_part(&self.testcard)? / per_part(&self.synthetic)?)
    }
}

/// The server's CPU microseconds per part received.
fn cpu_per_part(s: &Sample) -> Option<f64> {
    let parts = s.num("parts").filter(|&p| p > 0.0)?;
    Some(s.usage.cpu() * 1e6 / parts)
}

pub fn run_testcard(contender: &Contender, settings: &Settings) -> Result<CardRuns, String> {
    let card = TestcardConfig::new(None, testcard::DEFAULT_FPS, None, None)?;
    let frames = testcard::encode_frames(&card)?;
    let frame_size = frames.iter().map(Vec::len).sum::<usize>() / frames.len();
    let seconds = if settings.quick { 8 } else { 20 };
    eprintln!(
        "\nTestcard against synthetic: {CLIENTS} clients, {seconds} s each, frames of {frame_size} bytes \
         on average (load average {})",
        loadavg()
    );
    let interval_ms = card.interval() / 1000;
    let streams = [
        ("testcard", "/card=testcard".to_string()),
        (
            "synthetic",
            format!("/card=synthetic:parts=1000000,size={frame_size},interval={interval_ms}"),
        ),
    ];
    let plan = LoadPlan {
        clients: CLIENTS,
        ramp_ms: RAMP_MS,
        timeout_s: seconds,
    };
    let mut runs = CardRuns {
        frame_size,
        seconds,
        testcard: Vec::new(),
        synthetic: Vec::new(),
    };
    for round in 0..settings.runs {
        for (name, stream) in &streams {
            let sample = measure(contender, Some(stream), "/card", plan, settings);
            log_run(&format!("{name} run {}", round + 1), &sample);
            match *name {
                "testcard" => runs.testcard.push(sample),
                _ => runs.synthetic.push(sample),
            }
        }
    }
    Ok(runs)
}

const CARD_METRICS: &[Metric] = &[
    metric("parts received", 0, |s| s.num("parts")),
    metric("bytes per part", 0, |s| Some(s.num("bytes")? / s.num("parts")?)),
    metric("numbered parts (X-Frame)", 0, |s| s.num("numbered_parts")),
    metric("dropped frames", 0, |s| s.num("dropped_frames")),
    metric("lateness p99 ms", 2, |s| s.num("lateness_ms.p99")),
    metric("server CPU s", 2, |s| Some(s.usage.cpu())),
    metric("of which user space s", 2, |s| Some(s.usage.user)),
    metric("server CPU µs per part", 2, cpu_per_part),
    metric("server preemptions", 0, |s| Some(s.usage.preempted as f64)),
    metric("other processes' CPU, cores", 2, |s| s.others_cores),
    metric("load average (1 min)", 2, |s| s.load1),
];

pub fn testcard_table(runs: &CardRuns) -> String {
    let header = vec![
        String::new(),
        "testcard (640x360, 10 fps)".to_string(),
        format!("synthetic ({} bytes, 100 ms)", runs.frame_size),
    ];
    let rows = CARD_METRICS
        .iter()
        .map(|m| {
            vec![
                m.name.to_string(),
                spread_cell(&values(&runs.testcard, m.get), m.digits),
                spread_cell(&values(&runs.synthetic, m.get), m.digits),
            ]
        })
        .collect::<Vec<_>>();
    let mut text = markdown_table(&header, &rows);
    for (name, runs) in [("testcard", &runs.testcard), ("synthetic", &runs.synthetic)] {
        for (j, run) in runs.iter().enumerate() {
            // Every client ends at the timeout; any other failure is worth a line.
            let note = match run {
                Ok(s) if s.num("failed_total") != s.num("failed.timeout") => failures(&s.json),
                Ok(_) => continue,
                Err(e) => format!("no result: {e}"),
            };
            let _ = writeln!(text, "{name} run {}: {note}.", j + 1);
        }
    }
    text.push_str(&match runs.ratio() {
        Some(ratio) => format!(
            "\nServer CPU per part, testcard ÷ synthetic (medians): {}. {CLIENTS} clients, \
             {} s a run; every client ends at the timeout, by design.\n",
            fmt_num(ratio, 3),
            runs.seconds
        ),
        None => "\nNo ratio: a run failed.\n".to_string(),
    });
    text
}
