//! Scale benchmarks: `mixreplace` under its own load generator, beside two floors (plain
//! blocking I/O doing the same work) and, where installed, the Node and Python peers.
//!
//! `cargo bench --bench scale` runs everything (several minutes) and writes the tables to
//! `benches/RESULTS.md`; `MIXREPLACE_BENCH_QUICK=1` runs each configuration once, smaller,
//! and writes nothing; `MIXREPLACE_BENCH_PEERS=0` leaves the peers out.
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

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mixreplace::http::{self, Version};
use mixreplace::load;
use mixreplace::stream::multipart::{Boundary, Part, Stamp, Then};
use mixreplace::stream::spec;

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
    report.line(&format!("Machine: {}", machine()));
    report.line(&format!("Load average at start: {}", loadavg()));
    match settings.cpus {
        Some([server, client]) => report.line(&format!(
            "Pinning: server on CPU {server}, load generator on CPU {client}"
        )),
        None => report.line("Pinning: none (fewer than two CPUs available)"),
    }
    report.line(&binary_size());

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

    report.section("Targets");
    report.text(&targets(&results, &throughput, &settings));
    report.line(&format!("Load average at end: {}", loadavg()));
    report.section("Reading the tables");
    report.text(LEGEND);

    if !settings.quick {
        let path = Path::new(MANIFEST).join("benches/RESULTS.md");
        let text = format!(
            "# Scale benchmark\n\n\
             Reproduce with `cargo bench --bench scale` (several minutes; see the header of \
             `benches/scale.rs` for the method). {}\n\n{}",
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

// ---------------------------------------------------------------------------------------
// The machine and its processes

fn read_trim(path: &str) -> String {
    fs::read_to_string(path).map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("unknown CPU");
    let nproc = thread::available_parallelism().map_or(1, |n| n.get());
    let mem_kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| status_field(&m, "MemTotal"))
        .unwrap_or(0);
    let nofile = match mixreplace::sys::raise_fd_limit() {
        Ok(limit) => limit.to_string(),
        Err(e) => format!("? ({e})"),
    };
    format!(
        "{nproc} CPUs ({model}), {:.0} GiB, Linux {}, ulimit -n {nofile}, somaxconn {}",
        mem_kib as f64 / MIB,
        read_trim("/proc/sys/kernel/osrelease"),
        read_trim("/proc/sys/net/core/somaxconn"),
    )
}

fn loadavg() -> String {
    let text = read_trim("/proc/loadavg");
    text.split(' ').take(3).collect::<Vec<_>>().join(" ")
}

fn load1() -> Option<f64> {
    read_trim("/proc/loadavg").split(' ').next()?.parse().ok()
}

/// The commit and date the results come from.
fn provenance() -> String {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(MANIFEST)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let date = run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    format!(
        "Commit {commit}{}, {date}.",
        if dirty { " (with uncommitted changes)" } else { "" }
    )
}

/// The first two CPUs this process may run on.
fn pick_cpus() -> Option<[usize; 2]> {
    // SAFETY: an all-zero cpu_set_t is an empty set; sched_getaffinity writes into it and
    // CPU_ISSET only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        let mut cpus = (0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set));
        Some([cpus.next()?, cpus.next()?])
    }
}

/// Pins the calling thread (or, in `pre_exec`, the new process) to `cpu`.
fn pin(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `pick_cpus`. One system call and no allocation: async-signal-safe, as
    // `pre_exec` requires.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn pinned(cmd: &mut Command, cpu: Option<usize>) -> &mut Command {
    if let Some(cpu) = cpu {
        // SAFETY: `pin` is async-signal-safe (see there).
        unsafe {
            cmd.pre_exec(move || pin(cpu));
        }
    }
    cmd
}

fn pin_thread(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        if let Err(e) = pin(cpu) {
            eprintln!("scale: cannot pin a thread to CPU {cpu}: {e}");
        }
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A child process, killed and reaped when dropped: no run leaves one behind.
struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn spawn(cmd: &mut Command, name: &str) -> Result<Proc, String> {
        let child = cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            child,
            name: name.to_string(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!("{} still running after {limit:?}", self.name));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then SIGKILL if it is still there after a few seconds.
    fn stop(&mut self) {
        if self.exited().is_none() {
            // SAFETY: signals our own child, not yet reaped, so the pid is still its own.
            unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
            if self.wait(Duration::from_secs(3)).is_err() {
                eprintln!("scale: {} ignored SIGTERM; killing it", self.name);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A number field of a `/proc` status-like text (`VmHWM:   2308 kB`).
fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn status(pid: u32, key: &str) -> Option<u64> {
    status_field(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?, key)
}

/// Clock ticks a second, the unit of `/proc/PID/stat` and `/proc/stat` times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// What a server has used so far, or during a run.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    /// CPU seconds in user space and in the kernel, all threads.
    user: f64,
    system: f64,
    /// Involuntary context switches of the main thread: the times another task took
    /// its CPU while it still had work.
    preempted: u64,
}

impl Usage {
    fn of(pid: u32) -> Option<Usage> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses: count from its end.
        // What follows starts at field 3, so utime (14) and stime (15) are at 11 and 12.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
        let ticks = |i: usize| Some(fields.get(i)?.parse::<u64>().ok()? as f64 / clock_ticks());
        Some(Usage {
            user: ticks(11)?,
            system: ticks(12)?,
            preempted: status(pid, "nonvoluntary_ctxt_switches")?,
        })
    }

    /// The calling thread's.
    fn of_thread() -> Usage {
        // SAFETY: an all-zero rusage is valid; getrusage only writes into it.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
            usage
        };
        Usage {
            user: seconds(usage.ru_utime),
            system: seconds(usage.ru_stime),
            preempted: usage.ru_nivcsw as u64,
        }
    }

    fn since(self, before: Usage) -> Usage {
        Usage {
            user: self.user - before.user,
            system: self.system - before.system,
            preempted: self.preempted.saturating_sub(before.preempted),
        }
    }

    fn cpu(&self) -> f64 {
        self.user + self.system
    }
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// CPU seconds every CPU of the machine has been busy (steal included: the hypervisor's
/// other guests), from the `cpu` line of `/proc/stat`.
fn machine_busy() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum::<u64>();
    Some(busy as f64 / clock_ticks())
}

/// `TcpExt: ListenOverflows` and `ListenDrops`, for the whole network namespace.
fn listen_counters() -> [u64; 2] {
    let text = fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return [0; 2];
    };
    let get = |key: &str| {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|&(name, _)| name == key)
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0)
    };
    [get("ListenOverflows"), get("ListenDrops")]
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// The size of the server binary, as the release profile would leave it.
fn binary_size() -> String {
    let profile: Vec<&str> = include_str!("../Cargo.toml")
        .lines()
        .skip_while(|l| l.trim() != "[profile.release]")
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with('['))
        .map(str::trim)
        .collect();
    let unstripped = fs::metadata(SERVER).map_or(0, |m| m.len());
    // The bench profile is the release one plus symbols (`debug = 1`, `strip = false`):
    // stripping a copy gives the release profile's size without a second build.
    let copy = Path::new(SCRATCH).join("mixreplace.stripped");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(SERVER)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| fs::metadata(&copy).ok())
        .map(|m| m.len());
    match stripped {
        Some(size) => format!(
            "Binary: mixreplace {} bytes ({:.2} MiB) stripped (release profile: {}; measured on \
             the bench build, {unstripped} bytes with symbols, after `strip`)",
            size,
            size as f64 / MIB,
            profile.join(", ")
        ),
        None => format!(
            "Binary: mixreplace {unstripped} bytes with symbols (`strip` not found; release \
             profile: {})",
            profile.join(", ")
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Servers and load

/// A server to measure: `mixreplace` itself, or a peer script run by an interpreter.
struct Contender {
    name: &'static str,
    program: PathBuf,
    /// The peer's script; `None` for `mixreplace`.
    script: Option<PathBuf>,
}

impl Contender {
    fn is_peer(&self) -> bool {
        self.script.is_some()
    }
}

/// `mixreplace` first (the ratios and the targets read it there), then the peers found.
fn contenders(settings: &Settings, report: &mut Report) -> Vec<Contender> {
    let mut all = vec![Contender {
        name: "mixreplace",
        program: SERVER.into(),
        script: None,
    }];
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
struct Running {
    proc: Proc,
    port: u16,
    /// `VmRSS` and its file-backed part (`RssFile`: the binary's and shared libraries'
    /// pages) before any client, KiB.
    idle_kib: (u64, u64),
}

fn start(contender: &Contender, stream: Option<&str>, cpu: Option<usize>) -> Result<Running, String> {
    let log_path = Path::new(SCRATCH).join(format!("{}.log", contender.name));
    let log = fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(&contender.program);
    cmd.stdin(Stdio::null()).stderr(log);
    let (proc, port) = match &contender.script {
        None => {
            cmd.args(["--listen", "127.0.0.1:0"]).stdout(Stdio::piped());
            if let Some(stream) = stream {
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

/// Reads `listening on http://IP:PORT/` from the server's stdout; returns the port.
fn ready_line(proc: &mut Proc) -> Result<u16, String> {
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
        .and_then(|rest| rest.trim_end_matches('/').parse::<SocketAddr>().ok())
        .map(|addr| addr.port())
        .ok_or_else(|| format!("{}: unexpected first line {line:?}", proc.name))
}

/// A port free a moment ago, for a peer that takes a port number.
fn free_port() -> Result<u16, String> {
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

/// User + system CPU seconds of this process's children reaped so far.
fn children_cpu() -> f64 {
    // SAFETY: an all-zero rusage is valid; getrusage only writes into it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Runs `mixreplace-load` to its end; returns its JSON report and its CPU seconds (the
/// change of [`children_cpu`]: the server it loads is reaped only after).
fn run_load(
    port: u16,
    path: &str,
    clients: u32,
    ramp_ms: u64,
    cpu: Option<usize>,
) -> Result<(String, f64), String> {
    let children_before = children_cpu();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut cmd = Command::new(LOAD);
    cmd.args(["--url", &url, "--json", "-q"])
        .args(["--clients", &clients.to_string()])
        .args(["--ramp-ms", &ramp_ms.to_string()])
        .args(["--timeout-s", &LOAD_TIMEOUT_S.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn(pinned(&mut cmd, cpu), "mixreplace-load")?;
    // Its output is one line and a warning or two: the pipes cannot fill up meanwhile.
    proc.wait(Duration::from_secs(LOAD_TIMEOUT_S) + STEP_LIMIT)?;
    let load_cpu = children_cpu() - children_before;
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
fn json_num(json: &str, path: &str) -> Option<f64> {
    let mut at = 0;
    for key in path.split('.') {
        let pattern = format!("\"{key}\":");
        at += json[at..].find(&pattern)? + pattern.len();
    }
    let end = json[at..].find([',', '}']).map_or(json.len(), |e| at + e);
    json[at..end].parse().ok()
}

/// The report's non-zero failure counts, `reason n, ...`.
fn failures(json: &str) -> String {
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
struct Sample {
    /// The load generator's report.
    json: String,
    /// The server's (or the plain writer's) usage during the run.
    usage: Usage,
    /// The load generator's CPU seconds.
    load_cpu_s: f64,
    /// CPU cores' worth the rest of the machine used meanwhile: its busy time less the
    /// server's and the load generator's, over the run's wall time.
    others_cores: Option<f64>,
    /// The server's memory; `None` for the in-process plain writer.
    memory: Option<Memory>,
    /// Change of `ListenOverflows` and `ListenDrops` during the run.
    listen: [u64; 2],
    load1: Option<f64>,
    /// The CPU floor for this run's clients.
    floor_s: f64,
}

impl Sample {
    fn num(&self, path: &str) -> Option<f64> {
        json_num(&self.json, path)
    }

    fn clients(&self) -> f64 {
        self.num("clients").unwrap_or(0.0)
    }

    fn all_completed(&self) -> bool {
        self.num("completed") == Some(self.clients())
    }
}

/// A server's resident memory, KiB.
#[derive(Clone, Copy, Debug)]
struct Memory {
    /// `VmRSS` before any client, and its file-backed part (`RssFile`).
    idle: u64,
    idle_file: u64,
    /// `VmHWM` after the run.
    peak: u64,
}

/// See [`Sample::others_cores`].
fn others_cores(before: Option<f64>, after: Option<f64>, wall: Duration, ours: f64) -> Option<f64> {
    Some(((after? - before?) - ours).max(0.0) / wall.as_secs_f64())
}

/// Starts a fresh server, loads it, reads its counters and stops it.
fn measure(
    contender: &Contender,
    stream: Option<&str>,
    path: &str,
    clients: u32,
    ramp_ms: u64,
    settings: &Settings,
) -> Result<Sample, String> {
    let load1 = load1();
    let mut server = start(contender, stream, settings.server_cpu())?;
    let pid = server.proc.pid();
    // Start-up (an interpreter's, the demo's encoding) is not serving: count from here.
    let usage_before = Usage::of(pid);
    let (busy_before, started) = (machine_busy(), Instant::now());
    let before = listen_counters();
    let (json, load_cpu_s) = run_load(server.port, path, clients, ramp_ms, settings.client_cpu())?;
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

fn log_run(what: &str, sample: &Result<Sample, String>) {
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

// ---------------------------------------------------------------------------------------
// The demo configurations

struct DemoConfig {
    clients: u32,
    ramp_ms: u64,
    /// Peers not run here, and why.
    skip: &'static [&'static str],
    why: &'static str,
}

impl DemoConfig {
    fn title(&self) -> String {
        let ramp = match self.ramp_ms {
            0 => "all at once".to_string(),
            ms => format!("{} s ramp", fmt_num(ms as f64 / 1000.0, 1)),
        };
        format!("Demo: {} clients, {ramp}", thousands(self.clients))
    }
}

fn demo_configs(quick: bool) -> Vec<DemoConfig> {
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
type Runs = Vec<Vec<Result<Sample, String>>>;

fn run_demo(
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
            let mut sample = measure(contender, None, "/", config.clients, config.ramp_ms, settings);
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
struct Metric {
    name: &'static str,
    digits: usize,
    get: fn(&Sample) -> Option<f64>,
}

const fn metric(name: &'static str, digits: usize, get: fn(&Sample) -> Option<f64>) -> Metric {
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

fn demo_metric(name: &str) -> &'static Metric {
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

fn values(runs: &[Result<Sample, String>], get: fn(&Sample) -> Option<f64>) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(get)
        .collect()
}

fn demo_table(config: &DemoConfig, contenders: &[Contender], runs: &Runs) -> String {
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
fn failure_notes(text: &mut String, name: &str, runs: &[Result<Sample, String>]) {
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

// ---------------------------------------------------------------------------------------
// The floors

/// The same request `mixreplace-load` sends.
fn request(port: u16, path: &str) -> Vec<u8> {
    let url = format!("http://127.0.0.1:{port}{path}");
    load::LoadConfig::new(load::parse_url(&url).expect("a loopback URL")).request()
}

/// A part's wire bytes, with a stamp of now.
fn wire(part: &Part) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let stamp = Stamp::new(now.as_micros() as u64);
    let (head, tail) = part.halves();
    [head, stamp.as_bytes(), tail].concat()
}

/// The response head and the opening boundary, as the server sends them.
fn stream_head(boundary: &Boundary) -> Vec<u8> {
    let mut head = http::stream_head(Version::Http11, boundary, "").into_bytes();
    head.extend_from_slice(&boundary.opening());
    head
}

/// Accepts a client as a plain blocking server would (`TCP_NODELAY`, as the server sets
/// it), and reads its request head. No socket timeouts: they would cost system calls the
/// server does not make; the threads' results are waited for with a limit instead.
fn accept_request(listener: &TcpListener) -> io::Result<TcpStream> {
    let (mut stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 1024];
    let mut request = Vec::new();
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || request.len() > 8192 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        request.extend_from_slice(&buf[..n]);
    }
    Ok(stream)
}

/// Reads to the client's EOF: the client closes first, as it does with the server.
fn await_eof(stream: &mut TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    while stream.read(&mut buf)? > 0 {}
    Ok(())
}

/// The CPU floor of one demo client, split as measured.
#[derive(Clone, Copy)]
struct IoFloor {
    /// Seconds of one `write` of a head or a part, on average.
    write: f64,
    /// Seconds of the rest: accept, `TCP_NODELAY`, read the request, read EOF, close.
    connection: f64,
    /// Writes a client: the head and the 15 parts.
    writes: usize,
}

impl IoFloor {
    fn per_client(&self) -> f64 {
        self.write * self.writes as f64 + self.connection
    }
}

/// Clients handled in one go by the CPU floor: connected (and their requests sent)
/// before the server thread looks, so its accepts and reads never wait.
const FLOOR_BATCH: usize = 100;

/// Measures the CPU floor, one [`IoFloor`] a sample; see the module docs.
fn io_floor(settings: &Settings) -> Result<Vec<IoFloor>, String> {
    let (batches, samples) = if settings.quick { (5, 1) } else { (20, 3) };
    eprintln!(
        "CPU floor: {samples} × {} demo clients of bare blocking I/O",
        batches * FLOOR_BATCH
    );
    (0..samples).map(|_| io_floor_sample(batches, settings)).collect()
}

/// Server and client threads take turns a batch at a time (connect and send the
/// requests; accept, read and write everything; read it all and close; read EOF and
/// close), so the server's accepts, reads and writes never block and never wake a
/// waiting reader. Only the server's I/O is timed, not its waits between turns.
fn io_floor_sample(batches: usize, settings: &Settings) -> Result<IoFloor, String> {
    let demo = spec::demo_parts();
    let boundary = Boundary::absent_from(demo.iter().map(|p| &p.body[..])).map_err(|e| e.to_string())?;
    let head = stream_head(&boundary);
    let parts: Vec<Vec<u8>> = demo
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let then = if i + 1 == demo.len() {
                Then::End
            } else {
                Then::More
            };
            wire(&Part::encode(&boundary, &p.content_type, &p.body, then))
        })
        .collect();
    let expected = head.len() + parts.iter().map(Vec::len).sum::<usize>();
    let writes = 1 + parts.len();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Turns: client → server "requests sent", server → client "written", client → server
    // "closed"; either side dropping its sender ends the other.
    let (to_server, server_turn) = mpsc::channel::<()>();
    let (to_client, client_turn) = mpsc::channel::<()>();
    let (result_tx, result) = mpsc::channel();

    let server_cpu = settings.server_cpu();
    thread::spawn(move || {
        pin_thread(server_cpu);
        let (mut write, mut connection) = (Duration::ZERO, Duration::ZERO);
        let mut batch = || -> io::Result<()> {
            let wait = || {
                server_turn
                    .recv_timeout(STEP_LIMIT)
                    .map_err(|_| io::ErrorKind::TimedOut)
            };
            wait()?;
            let t0 = thread_cpu();
            let mut streams = (0..FLOOR_BATCH)
                .map(|_| accept_request(&listener))
                .collect::<io::Result<Vec<_>>>()?;
            let t1 = thread_cpu();
            for stream in &mut streams {
                stream.write_all(&head)?;
                for part in &parts {
                    stream.write_all(part)?;
                }
            }
            let t2 = thread_cpu();
            let _ = to_client.send(());
            wait()?;
            let t3 = thread_cpu();
            for mut stream in streams {
                await_eof(&mut stream)?;
            }
            let t4 = thread_cpu();
            write += t2 - t1;
            connection += (t1 - t0) + (t4 - t3);
            Ok(())
        };
        let served = (0..batches).try_for_each(|_| batch());
        let _ = result_tx.send(served.map(|()| (write, connection)));
    });
    let client_cpu = settings.client_cpu();
    let request = request(addr.port(), "/");
    let client = thread::spawn(move || -> io::Result<()> {
        pin_thread(client_cpu);
        let mut buf = vec![0u8; 16 * 1024];
        let wait = || {
            client_turn
                .recv_timeout(STEP_LIMIT)
                .map_err(|_| io::ErrorKind::TimedOut)
        };
        for _ in 0..batches {
            let mut streams = Vec::with_capacity(FLOOR_BATCH);
            for _ in 0..FLOOR_BATCH {
                let mut stream = TcpStream::connect(addr)?;
                stream.set_read_timeout(Some(STEP_LIMIT))?;
                stream.write_all(&request)?;
                streams.push(stream);
            }
            let _ = to_server.send(());
            wait()?;
            for mut stream in streams {
                let mut got = 0;
                while got < expected {
                    match stream.read(&mut buf)? {
                        0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                        n => got += n,
                    }
                }
            }
            let _ = to_server.send(());
        }
        Ok(())
    });
    let (write, connection) = result
        .recv_timeout(STEP_LIMIT * 2)
        .map_err(|_| "the floor's server thread did not finish".to_string())?
        .map_err(|e| format!("the floor's server thread: {e}"))?;
    client
        .join()
        .map_err(|_| "the floor's client thread panicked".to_string())?
        .map_err(|e| format!("the floor's client thread: {e}"))?;
    let clients = (batches * FLOOR_BATCH) as f64;
    Ok(IoFloor {
        write: write.as_secs_f64() / (clients * writes as f64),
        connection: connection.as_secs_f64() / clients,
        writes,
    })
}

/// The throughput floor's run: one thread, plain blocking calls. It accepts every client
/// and reads its request, writes each a head, then part after part to each client in
/// turn (a `write_all` blocks while that client's socket buffer is full; the load
/// generator reads them all, so the turn comes round), then reads every EOF.
fn plain_writer(parts: u64, settings: &Settings) -> Result<Sample, String> {
    let body = spec::synthetic_body(PART_SIZE);
    let boundary = Boundary::absent_from([&body[..]].into_iter()).map_err(|e| e.to_string())?;
    let encode = |then| wire(&Part::encode(&boundary, "application/octet-stream", &body, then));
    let (head, more, last) = (stream_head(&boundary), encode(Then::More), encode(Then::End));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (tx, rx) = mpsc::channel();
    let cpu = settings.server_cpu();
    thread::spawn(move || {
        pin_thread(cpu);
        let served = (|| -> io::Result<()> {
            let mut streams = (0..THROUGHPUT_CLIENTS)
                .map(|_| accept_request(&listener))
                .collect::<io::Result<Vec<_>>>()?;
            for stream in &mut streams {
                stream.write_all(&head)?;
            }
            for i in 1..=parts {
                for stream in &mut streams {
                    stream.write_all(if i == parts { &last } else { &more })?;
                }
            }
            streams.iter_mut().try_for_each(await_eof)
        })();
        let _ = tx.send(served.map(|()| Usage::of_thread()));
    });
    let load1 = load1();
    let (busy_before, started) = (machine_busy(), Instant::now());
    let (json, load_cpu_s) = run_load(port, "/syn", THROUGHPUT_CLIENTS, 0, settings.client_cpu())?;
    let usage = rx
        .recv_timeout(STEP_LIMIT)
        .map_err(|_| "the plain writer did not finish".to_string())?
        .map_err(|e| format!("the plain writer: {e}"))?;
    let (busy_after, wall) = (machine_busy(), started.elapsed());
    Ok(Sample {
        json,
        usage,
        load_cpu_s,
        others_cores: others_cores(busy_before, busy_after, wall, usage.cpu() + load_cpu_s),
        memory: None,
        listen: [0; 2],
        load1,
        floor_s: 0.0,
    })
}

// ---------------------------------------------------------------------------------------
// Throughput

struct Throughput {
    parts: u64,
    /// Runs of mixreplace and of the plain writer, alternating.
    server: Vec<Result<Sample, String>>,
    plain: Vec<Result<Sample, String>>,
}

fn run_throughput(mixreplace: &Contender, settings: &Settings, parts: u64) -> Throughput {
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
        let server = measure(mixreplace, Some(&stream), "/syn", THROUGHPUT_CLIENTS, 0, settings);
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
fn throughput_ratios(t: &Throughput) -> Vec<f64> {
    t.server
        .iter()
        .zip(&t.plain)
        .filter_map(|(s, p)| Some(mb_per_s(s.as_ref().ok()?)? / mb_per_s(p.as_ref().ok()?)?))
        .collect()
}

fn throughput_table(t: &Throughput) -> String {
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

// ---------------------------------------------------------------------------------------
// Targets

struct Check {
    target: String,
    measured: String,
    /// `None`: the configuration was not run.
    met: Option<bool>,
}

fn targets(results: &[(DemoConfig, Runs)], throughput: &Throughput, settings: &Settings) -> String {
    let mut checks = Vec::new();
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

// ---------------------------------------------------------------------------------------
// Numbers and tables

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// `median (min–max)`, or the one value, or `n/a`.
fn spread_cell(values: &[f64], digits: usize) -> String {
    let Some(median) = median(values) else {
        return "n/a".into();
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (median, min, max) = (
        fmt_num(median, digits),
        fmt_num(min, digits),
        fmt_num(max, digits),
    );
    if min == max {
        median
    } else {
        format!("{median} ({min}–{max})")
    }
}

fn fmt_num(v: f64, digits: usize) -> String {
    format!("{v:.digits$}")
}

fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A Markdown table with padded columns, readable as plain text too.
fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, &w)| format!("{c}{}", " ".repeat(w - width(c))))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut text = line(header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    text.push_str(&line(&rule));
    for row in rows {
        text.push_str(&line(row));
    }
    text
}
