//! Scale benchmarks: `mixreplace` under its own load generator, beside two floors (plain
//! blocking I/O doing the same work) and, where installed, the Node and Python peers.
//!
//! `cargo bench --bench scale` runs everything (several minutes) and writes the tables to
//! `benches/RESULTS.md`; `MIXREPLACE_BENCH_QUICK=1` runs each configuration once, smaller,
//! and writes nothing; `MIXREPLACE_BENCH_PEERS=0` leaves the peers out;
//! `MIXREPLACE_BENCH_ONLY=NAME` runs one section alone and writes nothing: `fairness`,
//! `testcard`, `proxies`, `snapshot`, `reuseport`, `relay`, `fanout` (see the file of that
//! name).
//!
//! How a run is measured:
//! - A fresh server each run (`--listen 127.0.0.1:0`, ready once it prints its
//!   `listening on` line; a peer on a free port, ready once it accepts), pinned to one CPU;
//!   `mixreplace-load --json -q` pinned to another. Pinning is `sched_setaffinity` in
//!   `pre_exec`: the call `taskset` makes, without depending on util-linux being there.
//! - Idle RSS is `VmRSS` just after start, before any client. The server's CPU time is
//!   `utime + stime` of `/proc/PID/stat` (all threads) after the load generator exits (and
//!   a short settle, so the server's last closes count) less the same just before the
//!   first client: start-up is not counted. Then its peak RSS (`VmHWM`) is read and it gets
//!   SIGTERM. Memory per connection is (peak − idle) / clients. Every process started is
//!   killed and reaped on drop, and every wait is bounded.
//! - Listen-queue overflows are the change of `TcpExt: ListenOverflows` / `ListenDrops`
//!   in `/proc/net/netstat` around the run. They count the whole network namespace: on a
//!   shared machine another program's overflow lands here too. With SYN cookies on, a
//!   connection dropped from a full accept queue still completes its connect on the
//!   client; it shows as first-byte time (the dropped ACK is resent with the request).
//! - Three runs a configuration, the servers taking turns within each round so the
//!   machine's other load falls on all of them alike; cells are median (min–max). The
//!   targets are judged on the medians, except "all complete", which every run must be.
//!
//! The floors, measured here rather than assumed:
//! - CPU: a plain blocking thread doing nothing but the demo's I/O, 100 clients at a time:
//!   accept, `TCP_NODELAY`, read the request, write the head and the 15 parts (the
//!   server's own bytes, encoded by this crate, one `write` each), read the client's EOF,
//!   close. The client side connects and reads in turns with it, so nothing it times ever
//!   waits or wakes a waiting reader: system calls only. Its thread CPU time per client
//!   (printed, split into writes and the rest), times a run's clients, is the floor the
//!   server's CPU is shown against. The server also sleeps in and wakes from `epoll_wait`,
//!   and its writes wake the load generator: the floor has none of that.
//! - Throughput: the synthetic stream's exact bytes (head, 64 KiB parts) written by one
//!   thread with plain blocking `write_all` calls, part after part to each client in turn,
//!   no event loop, pinned to the server's CPU and read by the same `mixreplace-load` run
//!   as the server: only the writer differs. Its bytes per second (as the load generator
//!   counts them) is the floor; its CPU time is shown beside the server's. (One thread
//!   per connection, the other plain design, was slower in trials here, 100 threads taking
//!   turns on one CPU, so the faster one is the floor.)

mod demo;
mod fairness;
mod fanout;
mod floors;
mod machine;
mod proxies;
mod relay;
mod reuseport;
mod servers;
mod snapshot;
mod table;
mod targets;
mod testcard;
mod throughput;

// The tests' helpers, for the proxies section: the certificate and nginx and HAProxy
// started from contrib/, as the tests run them. Most of the module is unused here.
#[allow(dead_code)]
#[path = "../../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::demo::{demo_configs, demo_table, run_demo};
use crate::fairness::{fairness_table, run_fairness};
use crate::fanout::{fanout_table, run_fanout};
use crate::floors::{IoFloor, io_floor};
use crate::machine::{binary_size, loadavg, pick_cpus, provenance};
use crate::proxies::run_proxies;
use crate::relay::{relay_table, run_relay};
use crate::reuseport::{reuseport_table, run_reuseport};
use crate::servers::{contenders, mixreplace};
use crate::snapshot::{run_snapshot, snapshot_table};
use crate::table::{fmt_num, median, spread_cell};
use crate::targets::{fairness_targets, targets};
use crate::testcard::{run_testcard, testcard_table};
use crate::throughput::{run_throughput, throughput_table};

const SERVER: &str = env!("CARGO_BIN_EXE_mixreplace");
const LOAD: &str = env!("CARGO_BIN_EXE_mixreplace-load");
/// Server logs (one file per server kind, overwritten each run) and scratch files.
const SCRATCH: &str = env!("CARGO_TARGET_TMPDIR");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const MIB: f64 = 1024.0 * 1024.0;
/// Parts of the throughput run.
const PART_SIZE: usize = 64 * 1024;
const THROUGHPUT_CLIENTS: u32 = 100;
/// Each start, stop and floor step ends within this.
const STEP_LIMIT: Duration = Duration::from_secs(15);
/// The load generator's own `--timeout-s`: the demo takes 6.4 s plus the ramp; the slow
/// peers get the rest.
const LOAD_TIMEOUT_S: u64 = 60;
/// Time for a server to settle: after start before idle RSS, after the load before CPU.
const SETTLE: Duration = Duration::from_millis(200);

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would mean nothing here.
    let settings = Settings::from_env();
    let mut report = Report::default();
    report.line(&format!("Machine: {}", machine::summary()));
    report.line(&format!("Load average at start: {}", loadavg()));
    match settings.cpus {
        Some([server, client]) => report.line(&format!(
            "Pinning: server on CPU {server}, load generator on CPU {client}"
        )),
        None => report.line("Pinning: none (fewer than two CPUs available)"),
    }
    report.line(&binary_size());
    match settings.only.as_deref() {
        None => {}
        Some("fairness") => {
            let fairness = run_fairness(&mixreplace(), &settings);
            report.section("Fairness");
            report.text(&fairness_table(&fairness));
            report.text(&fairness_targets(&fairness, &settings));
            return;
        }
        Some("proxies") => {
            report.section("Behind nginx and HAProxy: the delay each adds to a part");
            match run_proxies(&settings) {
                Ok(table) => report.text(&table),
                Err(e) => report.line(&format!("The proxies could not be measured: {e}")),
            }
            return;
        }
        Some("snapshot") => {
            report.section("Snapshots: 50 kept-alive pollers, mixreplace and ustreamer");
            match run_snapshot(&settings) {
                Ok(runs) => report.text(&snapshot_table(&runs)),
                Err(e) => report.line(&format!("The snapshot bench could not run: {e}")),
            }
            return;
        }
        Some("reuseport") => {
            report.section("Scale-out: two processes on one port (--reuse-port)");
            report.text(&reuseport_table(&run_reuseport(&settings)));
            return;
        }
        Some("relay") => {
            report.section("Relay tier against direct serving");
            report.text(&relay_table(&run_relay(&mixreplace(), &settings)));
            return;
        }
        Some("testcard") => {
            report.section("Testcard against synthetic: server CPU per part");
            match run_testcard(&mixreplace(), &settings) {
                Ok(runs) => report.text(&testcard_table(&runs)),
                Err(e) => report.line(&format!("The testcard could not be made: {e}")),
            }
            return;
        }
        Some("fanout") => {
            report.section("Live fan-out: 1,000 viewers of 30 fps, ~100 KB frames");
            match run_fanout(&mixreplace(), &settings) {
                Ok(runs) => report.text(&fanout_table(&runs)),
                Err(e) => report.line(&format!("The frames could not be made: {e}")),
            }
            return;
        }
        Some(other) => {
            eprintln!("scale: MIXREPLACE_BENCH_ONLY={other} names no section");
            std::process::exit(2);
        }
    }

    let floor = match io_floor(&settings) {
        Ok(floor) => floor,
        Err(e) => {
            eprintln!("scale: the CPU floor could not be measured: {e}");
            std::process::exit(1);
        }
    };
    let us = |get: fn(&IoFloor) -> f64| floor.iter().map(|f| get(f) * 1e6).collect::<Vec<f64>>();
    let per_client = us(IoFloor::per_client);
    report.line(&format!(
        "CPU floor, bare blocking I/O of one demo client: {} µs = {} writes × {} µs + {} µs for \
         accept, read, read EOF and close; {} s for 10,000 clients",
        spread_cell(&per_client, 1),
        floor[0].writes,
        spread_cell(&us(|f| f.write), 2),
        spread_cell(&us(|f| f.connection), 1),
        fmt_num(median(&per_client).unwrap_or(0.0) * 1e-6 * 10_000.0, 2),
    ));
    let floor_per_client = median(&per_client).unwrap_or(0.0) * 1e-6;

    let contenders = contenders(&settings, &mut report);
    let mut results = Vec::new();
    for config in demo_configs(settings.quick) {
        let runs = run_demo(&config, &contenders, &settings, floor_per_client);
        report.section(&config.title());
        report.text(&demo_table(&config, &contenders, &runs));
        results.push((config, runs));
    }
    let parts = if settings.quick { 300 } else { 600 };
    let throughput = run_throughput(&contenders[0], &settings, parts);
    report.section(&format!(
        "Throughput: {THROUGHPUT_CLIENTS} clients, {parts} parts of 64 KiB each, interval=0"
    ));
    report.text(&throughput_table(&throughput));
    let fairness = run_fairness(&contenders[0], &settings);
    report.section("Fairness: a client of another stream beside heavy traffic");
    report.text(&fairness_table(&fairness));

    report.section("Targets");
    report.text(&targets(&results, &throughput, &fairness, &settings));
    report.line(&format!("Load average at end: {}", loadavg()));
    report.section("Reading the tables");
    report.text(LEGEND);

    if !settings.quick {
        let path = Path::new(MANIFEST).join("benches/RESULTS.md");
        let text = format!(
            "# Scale benchmark\n\n\
             Reproduce with `cargo bench --bench scale` (several minutes; see the header of \
             `benches/scale/main.rs` for the method). {}\n\n{}",
            provenance(),
            report.text
        );
        match fs::write(&path, text) {
            Ok(()) => println!("\nWritten to {}", path.display()),
            Err(e) => eprintln!("scale: cannot write {}: {e}", path.display()),
        }
    }
}

/// What the rows mean; printed after the tables.
const LEGEND: &str = "\
- Lateness: a part's arrival at the load generator minus its `X-Timestamp` (the moment it was
  due). Connect: connect start until the load generator's loop sees the connection complete.
  First byte: connect start until the first response byte. All three are timed by the load
  generator, so its own delays (a busy CPU, a long loop turn) are in them too. The peers
  send no `X-Timestamp`: no lateness for them; their run time shows how far they fall behind.
- Server CPU: user + system time during the run (start-up not counted), all threads.
  CPU ÷ I/O floor: that over the run's clients times the CPU floor above.
- Idle RSS counts the pages of the binary and of shared libraries it has touched
  (file-backed, shared with other processes), shown on the next row; the rest is its own.
  KiB per connection: (peak RSS − idle RSS) / clients, user-space memory only (socket
  buffers are the kernel's).
- Listen overflows, drops: the change of `TcpExt` `ListenOverflows`, `ListenDrops` during
  the run, machine-wide.
- Server preemptions: involuntary context switches of the server's main thread. Other
  processes' CPU: the machine's busy time (steal included) less the server's and the load
  generator's, over the run, in cores: the share of the machine others took meanwhile.
- Cells: median (min–max) over the runs. Ratios (÷ mixreplace) are of the medians.
";

struct Settings {
    quick: bool,
    /// `MIXREPLACE_BENCH_ONLY`: the one section to run, written nowhere.
    only: Option<String>,
    peers: bool,
    runs: usize,
    /// The server's CPU and the load generator's.
    cpus: Option<[usize; 2]>,
}

impl Settings {
    fn from_env() -> Settings {
        let flag = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let quick = flag("MIXREPLACE_BENCH_QUICK").is_some_and(|v| v != "0");
        Settings {
            quick,
            only: flag("MIXREPLACE_BENCH_ONLY"),
            peers: flag("MIXREPLACE_BENCH_PEERS").is_none_or(|v| v != "0"),
            runs: if quick { 1 } else { 3 },
            cpus: pick_cpus(),
        }
    }

    fn server_cpu(&self) -> Option<usize> {
        self.cpus.map(|[server, _]| server)
    }

    fn client_cpu(&self) -> Option<usize> {
        self.cpus.map(|[_, client]| client)
    }
}

/// What is printed and, after a full run, written to `RESULTS.md`.
#[derive(Default)]
struct Report {
    text: String,
}

impl Report {
    fn line(&mut self, line: &str) {
        println!("{line}");
        self.text.push_str(line);
        self.text.push_str("  \n");
    }

    fn section(&mut self, title: &str) {
        println!("\n## {title}\n");
        let _ = write!(self.text, "\n## {title}\n\n");
    }

    fn text(&mut self, text: &str) {
        print!("{text}");
        self.text.push_str(text);
    }
}
