//! Tests that count what the test process itself holds (threads, descriptors, signal
//! handlers) cannot share it with the harness's other tests, which start and end their
//! own meanwhile: such a test runs again, alone, in a fresh copy of the test binary
//! ([`run_solo`]), and does its counting there ([`is_solo`]). Also what `/proc` says
//! about a process.

use std::process::Command;
use std::time::Duration;

use super::process;

/// Set in the environment of the copy [`run_solo`] starts.
const SOLO: &str = "MIXREPLACE_TEST_SOLO";
/// No solo run outlives this.
const SOLO_LIMIT: Duration = Duration::from_secs(120);

/// Whether this process is the copy [`run_solo`] started.
pub fn is_solo() -> bool {
    std::env::var_os(SOLO).is_some()
}

/// Runs the test `name` (its path in the binary, `module::test`) in a fresh copy of the
/// test binary, alone, and fails with its output unless it passed.
pub fn run_solo(name: &str) {
    let binary = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(binary);
    command
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(SOLO, "1");
    let done = process::run(&mut command, None, SOLO_LIMIT);
    let stdout = done.stdout_text();
    assert!(
        done.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name}, run alone: {}\n{stdout}\n{}",
        done.status,
        done.stderr_text()
    );
}

/// The numbers of the open file descriptors of process `pid` (`self`: this one).
pub fn fd_numbers(pid: &str) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .count()
}

/// The signals this process has handlers for (`SigCgt` in `/proc/self/status`), a bit
/// for each: bit `n - 1` for signal `n`.
pub fn caught_signals() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .expect("a SigCgt line in /proc/self/status")
}
