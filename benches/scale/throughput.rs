//! Throughput: `mixreplace` and the plain writer, taking turns, read by the same load
//! generator; its table.

use std::fmt::Write as _;

use crate::demo::{Metric, failure_notes, metric, values};
use crate::floors::plain_writer;
use crate::machine::loadavg;
use crate::servers::{Contender, LoadPlan, Sample, log_run, measure};
use crate::table::{markdown_table, spread_cell};
use crate::{PART_SIZE, Settings, THROUGHPUT_CLIENTS};

pub struct Throughput {
    parts: u64,
    /// Runs of mixreplace and of the plain writer, alternating.
    server: Vec<Result<Sample, String>>,
    plain: Vec<Result<Sample, String>>,
}

pub fn run_throughput(mixreplace: &Contender, settings: &Settings, parts: u64) -> Throughput {
    eprintln!(
        "\nThroughput: {parts} parts of 64 KiB to {THROUGHPUT_CLIENTS} clients (load average {})",
        loadavg()
    );
    let stream = format!("/syn=synthetic:parts={parts},size={PART_SIZE},interval=0");
    let mut result = Throughput {
        parts,
        server: Vec::new(),
        plain: Vec::new(),
    };
    for round in 0..settings.runs {
        let plain = plain_writer(parts, settings);
        log_run(&format!("plain writer run {}", round + 1), &plain);
        result.plain.push(plain);
        let plan = LoadPlan::to_end(THROUGHPUT_CLIENTS, 0);
        let server = measure(mixreplace, Some(&stream), "/syn", plan, settings);
        log_run(&format!("mixreplace run {}", round + 1), &server);
        result.server.push(server);
    }
    result
}

const THROUGHPUT_METRICS: &[Metric] = &[
    metric("completed", 0, |s| s.num("completed")),
    metric("MB/s (1e6 bytes)", 0, |s| s.num("throughput_mb_per_s")),
    metric("run time s", 2, |s| s.num("duration_s")),
    metric("writer CPU s", 2, |s| Some(s.usage.cpu())),
    metric("of which user space s", 2, |s| Some(s.usage.user)),
    metric("writer CPU busy %", 0, |s| {
        Some(100.0 * s.usage.cpu() / s.num("duration_s")?)
    }),
    metric("reader (load generator) CPU busy %", 0, |s| {
        Some(100.0 * s.load_cpu_s / s.num("duration_s")?)
    }),
    metric("writer CPU s per GB", 3, |s| {
        Some(s.usage.cpu() / (s.num("bytes")? / 1e9))
    }),
    metric("peak RSS MiB", 2, |s| s.memory.map(|m| m.peak as f64 / 1024.0)),
    metric("writer preemptions", 0, |s| Some(s.usage.preempted as f64)),
    metric("other processes' CPU, cores", 2, |s| s.others_cores),
    metric("load average (1 min)", 2, |s| s.load1),
];

fn mb_per_s(s: &Sample) -> Option<f64> {
    s.num("throughput_mb_per_s")
}

/// mixreplace's bytes per second ÷ the plain writer's, round by round.
pub fn throughput_ratios(t: &Throughput) -> Vec<f64> {
    t.server
        .iter()
        .zip(&t.plain)
        .filter_map(|(s, p)| Some(mb_per_s(s.as_ref().ok()?)? / mb_per_s(p.as_ref().ok()?)?))
        .collect()
}

pub fn throughput_table(t: &Throughput) -> String {
    let header = ["metric", "mixreplace", "plain blocking writer"].map(String::from);
    let mut rows: Vec<Vec<String>> = THROUGHPUT_METRICS
        .iter()
        .map(|m| {
            vec![
                m.name.to_string(),
                spread_cell(&values(&t.server, m.get), m.digits),
                spread_cell(&values(&t.plain, m.get), m.digits),
            ]
        })
        .collect();
    let ratios = throughput_ratios(t);
    rows.insert(
        2,
        vec!["MB/s ÷ plain writer".into(), spread_cell(&ratios, 2), "1".into()],
    );
    let mut text = markdown_table(&header, &rows);
    let _ = writeln!(
        text,
        "\n{THROUGHPUT_CLIENTS} clients at once, {} parts of {PART_SIZE} bytes each ({:.2} GB in all); \
         median (min–max) of {} run(s), the two taking turns; the ratio is taken run by run.",
        t.parts,
        THROUGHPUT_CLIENTS as f64 * t.parts as f64 * PART_SIZE as f64 / 1e9,
        t.server.len()
    );
    failure_notes(&mut text, "mixreplace", &t.server);
    failure_notes(&mut text, "plain writer", &t.plain);
    text
}
