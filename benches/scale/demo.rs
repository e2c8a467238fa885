//! The demo configurations: client counts and ramps, their runs (the servers taking
//! turns within each round), and the table of each.

use std::fmt::Write as _;

use crate::Settings;
use crate::machine::loadavg;
use crate::servers::{Contender, LoadPlan, Sample, failures, log_run, measure};
use crate::table::{fmt_num, markdown_table, median, spread_cell, thousands};

pub struct DemoConfig {
    pub clients: u32,
    pub ramp_ms: u64,
    /// Peers not run here, and why.
    skip: &'static [&'static str],
    why: &'static str,
}

impl DemoConfig {
    pub fn title(&self) -> String {
        let ramp = match self.ramp_ms {
            0 => "all at once".to_string(),
            ms => format!("{} s ramp", fmt_num(ms as f64 / 1000.0, 1)),
        };
        format!("Demo: {} clients, {ramp}", thousands(self.clients))
    }
}

pub fn demo_configs(quick: bool) -> Vec<DemoConfig> {
    let all = |clients, ramp_ms| DemoConfig {
        clients,
        ramp_ms,
        skip: &[],
        why: "",
    };
    if quick {
        return vec![all(1_000, 1_000), all(2_000, 0)];
    }
    // The peers' small listen backlogs (Node 511, Python's asyncio 100) overflow at these
    // rates: the SYN retries stretch a run to tens of seconds, up to the load timeout.
    vec![
        all(1_000, 1_000),
        all(10_000, 1_000),
        DemoConfig {
            skip: &["python"],
            why: "python not run: at 10,000 clients it already takes about 35 s a run; at \
                  19,000 it runs into the 60 s timeout, three times over",
            ..all(19_000, 1_000)
        },
        all(10_000, 0),
        DemoConfig {
            skip: &["node", "python"],
            why: "peers not run: the 10,000 at once runs already show their listen queues \
                  overflowing; 19,000 only takes longer",
            ..all(19_000, 0)
        },
    ]
}

/// `runs[i][j]`: contender `i`'s run `j`.
pub type Runs = Vec<Vec<Result<Sample, String>>>;

pub fn run_demo(
    config: &DemoConfig,
    contenders: &[Contender],
    settings: &Settings,
    floor_per_client: f64,
) -> Runs {
    eprintln!("\n{} (load average {})", config.title(), loadavg());
    let mut runs: Runs = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..settings.runs {
        for (i, contender) in contenders.iter().enumerate() {
            if config.skip.contains(&contender.name) {
                continue;
            }
            let plan = LoadPlan::to_end(config.clients, config.ramp_ms);
            let mut sample = measure(contender, None, "/", plan, settings);
            if let Ok(s) = &mut sample {
                s.floor_s = floor_per_client * f64::from(config.clients);
            }
            log_run(&format!("{} run {}", contender.name, round + 1), &sample);
            runs[i].push(sample);
        }
    }
    runs
}

/// One row of a results table: a name and how to read it from a run.
pub struct Metric {
    pub name: &'static str,
    pub digits: usize,
    pub get: fn(&Sample) -> Option<f64>,
}

pub const fn metric(name: &'static str, digits: usize, get: fn(&Sample) -> Option<f64>) -> Metric {
    Metric { name, digits, get }
}

const DEMO_METRICS: &[Metric] = &[
    metric("completed", 0, |s| s.num("completed")),
    metric("lateness p50 ms", 2, |s| s.num("lateness_ms.p50")),
    metric("lateness p99 ms", 2, |s| s.num("lateness_ms.p99")),
    metric("lateness max ms", 2, |s| s.num("lateness_ms.max")),
    metric("connect p99 ms", 2, |s| s.num("connect_ms.p99")),
    metric("connect max ms", 2, |s| s.num("connect_ms.max")),
    metric("first byte p99 ms", 2, |s| s.num("first_byte_ms.p99")),
    metric("run time s", 2, |s| s.num("duration_s")),
    metric("server CPU s", 2, |s| Some(s.usage.cpu())),
    metric("of which user space s", 2, |s| Some(s.usage.user)),
    metric("load generator CPU s", 2, |s| Some(s.load_cpu_s)),
    metric("CPU ÷ I/O floor", 2, |s| {
        (s.floor_s > 0.0).then(|| s.usage.cpu() / s.floor_s)
    }),
    metric("idle RSS MiB", 2, |s| s.memory.map(|m| m.idle as f64 / 1024.0)),
    metric("of which file-backed MiB", 2, |s| {
        s.memory.map(|m| m.idle_file as f64 / 1024.0)
    }),
    metric("peak RSS MiB", 2, |s| s.memory.map(|m| m.peak as f64 / 1024.0)),
    metric("KiB per connection", 3, |s| {
        let m = s.memory?;
        Some(m.peak.saturating_sub(m.idle) as f64 / s.clients())
    }),
    metric("listen overflows", 0, |s| Some(s.listen[0] as f64)),
    metric("listen drops", 0, |s| Some(s.listen[1] as f64)),
    metric("server preemptions", 0, |s| Some(s.usage.preempted as f64)),
    metric("other processes' CPU, cores", 2, |s| s.others_cores),
    metric("load average (1 min)", 2, |s| s.load1),
];

pub fn demo_metric(name: &str) -> &'static Metric {
    DEMO_METRICS
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name:?}"))
}

/// The rows shown as peer ÷ mixreplace: metric name, label.
const RATIOS: [(&str, &str); 4] = [
    ("server CPU s", "CPU ÷ mixreplace"),
    ("peak RSS MiB", "peak RSS ÷ mixreplace"),
    ("lateness p99 ms", "lateness p99 ÷ mixreplace"),
    ("run time s", "run time ÷ mixreplace"),
];

pub fn values(runs: &[Result<Sample, String>], get: fn(&Sample) -> Option<f64>) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(get)
        .collect()
}

pub fn demo_table(config: &DemoConfig, contenders: &[Contender], runs: &Runs) -> String {
    let shown: Vec<usize> = (0..contenders.len()).filter(|&i| !runs[i].is_empty()).collect();
    let mut header = vec!["metric".to_string()];
    header.extend(shown.iter().map(|&i| contenders[i].name.to_string()));
    let mut rows = Vec::new();
    for metric in DEMO_METRICS {
        let mut row = vec![match metric.name {
            "completed" => format!("completed of {}", thousands(config.clients)),
            name => name.to_string(),
        }];
        row.extend(
            shown
                .iter()
                .map(|&i| spread_cell(&values(&runs[i], metric.get), metric.digits)),
        );
        rows.push(row);
    }
    // Against the first column, mixreplace; shown when there is something to compare.
    for &(name, label) in RATIOS.iter().filter(|_| shown.len() > 1) {
        let metric = demo_metric(name);
        let base = median(&values(&runs[0], metric.get));
        let mut row = vec![label.to_string()];
        row.extend(
            shown
                .iter()
                .map(|&i| match (median(&values(&runs[i], metric.get)), base) {
                    (Some(v), Some(b)) if b > 0.0 => format!("{}×", fmt_num(v / b, 2)),
                    _ if name == "lateness p99 ms" && contenders[i].is_peer() => {
                        "n/a (no X-Timestamp)".into()
                    }
                    _ => "n/a".into(),
                }),
        );
        rows.push(row);
    }
    let mut text = markdown_table(&header, &rows);
    text.push('\n');
    let runs_each = shown.iter().map(|&i| runs[i].len()).max().unwrap_or(0);
    let _ = writeln!(
        text,
        "{} clients; median (min–max) of {runs_each} run{}.",
        thousands(config.clients),
        if runs_each == 1 { "" } else { "s" }
    );
    if !config.skip.is_empty() {
        let _ = writeln!(text, "{}{}.", config.why[..1].to_uppercase(), &config.why[1..]);
    }
    for &i in &shown {
        failure_notes(&mut text, contenders[i].name, &runs[i]);
    }
    text
}

/// A line for each run that did not complete every client, or gave no result.
pub fn failure_notes(text: &mut String, name: &str, runs: &[Result<Sample, String>]) {
    for (j, run) in runs.iter().enumerate() {
        match run {
            Ok(s) if !s.all_completed() => {
                let _ = writeln!(text, "{name} run {}: {}.", j + 1, failures(&s.json));
            }
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(text, "{name} run {}: no result: {e}.", j + 1);
            }
        }
    }
}
