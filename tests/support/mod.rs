//! The one helper module of the integration tests (`tests/integration/`, and
//! `tests/emfile.rs`, which needs a process of its own): the real binaries on
//! `127.0.0.1:0`, plain sockets, and strict readers of what comes back.
//!
//! The readers are written from the specification, independent of `src/`: they are the
//! oracle, so a change on one side cannot silently move the other.
//!
//! Invariants, so that a failing test never hangs and never leaves anything behind:
//! - every socket has read and write timeouts ([`IO_TIMEOUT`]), every loop a deadline or
//!   a count, and every wait ([`wait_for`]) names what it waited for when it gives up;
//! - every process a test starts sits in a [`process::Guard`], killed (with its process
//!   group, where it leads one) and reaped when dropped, also when the test panics, and
//!   killed by a watchdog past its time limit;
//! - every temporary file lives in a [`Scratch`] folder, removed when dropped.

pub mod browser;
pub mod demo;
pub mod ffmpeg;
pub mod http;
pub mod json;
pub mod media;
pub mod multipart;
pub mod process;
pub mod procs;
pub mod proxy;
pub mod rng;
pub mod server;
pub mod solo;
pub mod tools;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest one socket operation may block: long enough for a loaded machine (the
/// demo's longest pause is 1 s), short enough that a stuck test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Tests that load the machine (thousands of viewers, a shaped link, many megabytes a
/// second) take it in turns, alone, and tests that check arrivals against a schedule
/// (the demo's parts, due within +300 ms) never run beside one: on a 2-core machine the
/// harness's other test would otherwise make them fail for the load, not for the server.
static MACHINE: RwLock<()> = RwLock::new(());

/// Held by a test that loads the machine, for its whole run: no other such test, and no
/// schedule check ([`on_schedule`]), runs meanwhile.
pub fn heavy() -> RwLockWriteGuard<'static, ()> {
    // A test that panicked while holding it leaves it poisoned; the next one still runs.
    MACHINE.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Held while a test checks arrivals against a schedule: no [`heavy`] test runs meanwhile.
pub fn on_schedule() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `probe` every 20 ms until it returns `Ok`, or panics after `timeout` naming
/// `what` and the last state `probe` reported.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// An address nothing listens on, for a program that must be told its port
/// (`systemd-socket-activate -l ADDR`): a loopback address of this process's own
/// (`127.x.y.z`, from the process id and a count), where no other test's `127.0.0.1:0`
/// can take the port meanwhile, and a port the system had free there.
pub fn spare_addr() -> SocketAddr {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let (n, pid) = (COUNT.fetch_add(1, Ordering::Relaxed), std::process::id() as usize);
    let byte = |x: usize| 1 + (x % 250) as u8;
    let ip = Ipv4Addr::new(127, byte(pid), byte(pid / 250), byte(n));
    let probe = TcpListener::bind((ip, 0)).expect("bind a spare loopback address");
    probe.local_addr().expect("its address")
}

/// Microseconds since the Unix epoch, now: the clock of the parts' `X-Timestamp`.
pub fn now_us() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    u64::try_from(since.as_micros()).expect("microseconds fit in u64")
}

/// The `q` quantile (0 to 1; 1 is the largest) of `sorted`, an ascending list of
/// measures; NaN for an empty one.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(at).copied().unwrap_or(f64::NAN)
}

/// A temporary folder, removed with everything in it when dropped.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mixreplace-it-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch folder");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `bytes` to `name` and returns its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, bytes).expect("write a scratch file");
        path
    }

    /// A sparse file of `len` bytes at `name`: its size without the disk space (reads
    /// give zeros), for size caps checked before any read.
    pub fn sparse(&self, name: &str, len: u64) -> PathBuf {
        let path = self.join(name);
        let file = std::fs::File::create(&path).expect("create a sparse file");
        file.set_len(len).expect("size the sparse file");
        path
    }

    /// A FIFO at `name`: opening it for reading blocks until a writer comes.
    pub fn fifo(&self, name: &str) -> PathBuf {
        let path = self.join(name);
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("a path without NUL");
        // SAFETY: mkfifo reads a NUL-terminated path that lives across the call.
        let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
        assert_eq!(made, 0, "mkfifo {path:?}: {}", std::io::Error::last_os_error());
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
