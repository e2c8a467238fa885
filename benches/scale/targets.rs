//! The targets the server is held to, judged on the medians ("all complete" on every
//! run), as a table of checks.

use std::fs;
use std::path::Path;

use crate::demo::{DemoConfig, Runs, demo_metric, values};
use crate::fairness::Fairness;
use crate::servers::Sample;
use crate::table::{markdown_table, median, spread_cell};
use crate::throughput::{Throughput, throughput_ratios};
use crate::{MIB, SCRATCH, Settings};

struct Check {
    target: String,
    measured: String,
    /// `None`: the configuration was not run.
    met: Option<bool>,
}

pub fn targets(
    results: &[(DemoConfig, Runs)],
    throughput: &Throughput,
    fairness: &[Fairness],
    settings: &Settings,
) -> String {
    let mut checks = fairness_checks(fairness);
    let find = |clients: u32, ramp_ms: u64| {
        results
            .iter()
            .find(|(c, _)| c.clients == clients && c.ramp_ms == ramp_ms)
            .map(|(_, runs)| &runs[0])
    };
    // A median against a limit.
    let at_most = |checks: &mut Vec<Check>,
                   runs: Option<&Vec<Result<Sample, String>>>,
                   what: &str,
                   name: &str,
                   limit: f64| {
        let m = demo_metric(name);
        let vals = runs.map(|r| values(r, m.get)).unwrap_or_default();
        checks.push(Check {
            target: format!("{what}: {name} ≤ {limit}"),
            measured: spread_cell(&vals, m.digits),
            met: median(&vals).map(|v| v <= limit),
        });
    };
    let all_complete = |checks: &mut Vec<Check>, runs: Option<&Vec<Result<Sample, String>>>, what: &str| {
        let (measured, met) = match runs {
            Some(runs) => {
                let done: Vec<f64> = values(runs, |s| s.num("completed"));
                let every =
                    !runs.is_empty() && runs.iter().all(|r| r.as_ref().is_ok_and(Sample::all_completed));
                (
                    format!(
                        "{} (every run: {})",
                        spread_cell(&done, 0),
                        if every { "yes" } else { "no" }
                    ),
                    Some(every),
                )
            }
            None => ("not run".into(), None),
        };
        checks.push(Check {
            target: format!("{what}: all complete"),
            measured,
            met,
        });
    };

    let ramp = find(10_000, 1_000);
    let what = "10,000 demo, 1 s ramp";
    all_complete(&mut checks, ramp, what);
    at_most(&mut checks, ramp, what, "lateness p99 ms", 5.0);
    at_most(&mut checks, ramp, what, "lateness max ms", 20.0);
    at_most(&mut checks, ramp, what, "connect p99 ms", 5.0);
    at_most(&mut checks, ramp, what, "listen overflows", 0.0);
    at_most(&mut checks, ramp, what, "CPU ÷ I/O floor", 1.25);
    at_most(&mut checks, ramp, what, "peak RSS MiB", 16.0);
    at_most(&mut checks, ramp, what, "KiB per connection", 1.0);
    let burst = find(10_000, 0);
    let what = "10,000 demo, all at once";
    all_complete(&mut checks, burst, what);
    at_most(&mut checks, burst, what, "listen overflows", 0.0);
    at_most(&mut checks, burst, what, "first byte p99 ms", 250.0);
    all_complete(&mut checks, find(19_000, 0), "19,000 demo, all at once");

    let ratios = throughput_ratios(throughput);
    checks.push(Check {
        target: "Throughput: MB/s ÷ plain writer ≥ 0.8".into(),
        measured: spread_cell(&ratios, 2),
        met: median(&ratios).map(|r| r >= 0.8),
    });
    let every_run = |name: &str| -> Vec<f64> {
        let get = demo_metric(name).get;
        results
            .iter()
            .flat_map(|(_, runs)| values(&runs[0], get))
            .collect()
    };
    let idle = every_run("idle RSS MiB");
    checks.push(Check {
        target: "Idle: RSS ≤ 2 MiB".into(),
        measured: format!(
            "{} MiB, of which file-backed {} (every mixreplace demo run)",
            spread_cell(&idle, 2),
            spread_cell(&every_run("of which file-backed MiB"), 2)
        ),
        met: median(&idle).map(|v| v <= 2.0),
    });
    let stripped = fs::metadata(Path::new(SCRATCH).join("mixreplace.stripped")).ok();
    checks.push(Check {
        target: "Binary ≤ 1 MiB stripped (release profile)".into(),
        measured: stripped.as_ref().map_or("not measured".into(), |m| {
            format!("{} bytes ({:.2} MiB)", m.len(), m.len() as f64 / MIB)
        }),
        met: stripped.map(|m| m.len() as f64 <= MIB),
    });

    table(checks, settings)
}

/// The watcher's lateness against the fairness targets (one run each).
fn fairness_checks(fairness: &[Fairness]) -> Vec<Check> {
    [
        (
            "big parts",
            "max",
            20.0,
            "500 never-reading + 300 reading clients of 8 MiB parts: another stream's client late by",
        ),
        (
            "churn",
            "p99",
            10.0,
            "1,000 new connections a second: another stream's client late by",
        ),
    ]
    .into_iter()
    .map(|(scenario, key, limit, what)| {
        let value = fairness
            .iter()
            .find(|f| f.scenario == scenario)
            .and_then(|f| f.lateness(key));
        Check {
            target: format!("{what} {key} ≤ {limit} ms"),
            measured: value.map_or("not measured".into(), |v| format!("{v:.1} ms")),
            met: value.map(|v| v <= limit),
        }
    })
    .collect()
}

pub fn fairness_targets(fairness: &[Fairness], settings: &Settings) -> String {
    table(fairness_checks(fairness), settings)
}

fn table(checks: Vec<Check>, settings: &Settings) -> String {
    let header = ["target", "measured (median (min–max))", ""].map(String::from);
    let rows: Vec<Vec<String>> = checks
        .into_iter()
        .map(|c| {
            let mark = match c.met {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "–",
            };
            vec![c.target, c.measured, mark.into()]
        })
        .collect();
    let mut text = markdown_table(&header, &rows);
    if settings.quick {
        text.push_str("\nQuick run: the 10,000 and 19,000 configurations were not run (–).\n");
    }
    text
}
