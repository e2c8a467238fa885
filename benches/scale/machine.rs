//! The machine and its processes: what the machine is (the report's first lines), CPU
//! pinning, the process guard and the `/proc` readers that measure a server.
//!
//! Invariants: every process started through [`Proc`] is killed and reaped when it is
//! dropped, and every wait for one is bounded.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};
use std::{fs, io, thread};

use crate::{MANIFEST, MIB, SCRATCH, SERVER};

fn read_trim(path: &str) -> String {
    fs::read_to_string(path).map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

pub fn summary() -> String {
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
        mixreplace::sys::somaxconn().map_or("?".into(), |n| n.to_string()),
    )
}

pub fn loadavg() -> String {
    let text = read_trim("/proc/loadavg");
    text.split(' ').take(3).collect::<Vec<_>>().join(" ")
}

pub fn load1() -> Option<f64> {
    read_trim("/proc/loadavg").split(' ').next()?.parse().ok()
}

/// The commit and date the results come from.
pub fn provenance() -> String {
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
pub fn pick_cpus() -> Option<[usize; 2]> {
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

pub fn pinned(cmd: &mut Command, cpu: Option<usize>) -> &mut Command {
    if let Some(cpu) = cpu {
        // SAFETY: `pin` is async-signal-safe (see there).
        unsafe {
            cmd.pre_exec(move || pin(cpu));
        }
    }
    cmd
}

pub fn pin_thread(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        if let Err(e) = pin(cpu) {
            eprintln!("scale: cannot pin a thread to CPU {cpu}: {e}");
        }
    }
}

/// The CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A child process, killed and reaped when dropped: no run leaves one behind.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, name: &str) -> Result<Proc, String> {
        let child = cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            child,
            name: name.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
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
    pub fn stop(&mut self) {
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

pub fn status(pid: u32, key: &str) -> Option<u64> {
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
pub struct Usage {
    /// CPU seconds in user space and in the kernel, all threads.
    pub user: f64,
    pub system: f64,
    /// Involuntary context switches of the main thread: the times another task took
    /// its CPU while it still had work.
    pub preempted: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Option<Usage> {
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
    pub fn of_thread() -> Usage {
        Usage::of_rusage(libc::RUSAGE_THREAD)
    }

    /// This process's children reaped so far, together.
    pub fn of_children() -> Usage {
        Usage::of_rusage(libc::RUSAGE_CHILDREN)
    }

    /// `getrusage(who)`; `preempted` then counts every thread of `who`.
    fn of_rusage(who: libc::c_int) -> Usage {
        // SAFETY: an all-zero rusage is valid; getrusage only writes into it.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut usage);
            usage
        };
        Usage {
            user: seconds(usage.ru_utime),
            system: seconds(usage.ru_stime),
            preempted: usage.ru_nivcsw as u64,
        }
    }

    pub fn since(self, before: Usage) -> Usage {
        Usage {
            user: self.user - before.user,
            system: self.system - before.system,
            preempted: self.preempted.saturating_sub(before.preempted),
        }
    }

    pub fn cpu(&self) -> f64 {
        self.user + self.system
    }
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// CPU seconds every CPU of the machine has been busy (steal included: the hypervisor's
/// other guests), from the `cpu` line of `/proc/stat`.
pub fn machine_busy() -> Option<f64> {
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
pub fn listen_counters() -> [u64; 2] {
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

pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// The size of the server binary, as the release profile would leave it.
pub fn binary_size() -> String {
    let profile: Vec<&str> = include_str!("../../Cargo.toml")
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
