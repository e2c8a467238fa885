//! Child processes (the server, curl, python, ffmpeg, Chromium), each in a [`Guard`]:
//! killed and reaped when dropped, also when the test panics, and killed by a watchdog
//! past its time limit, so a hung child fails its test instead of hanging it.
//!
//! A pid is signalled only while its process is not reaped (the watchdog and
//! [`Guard::signal`] check under the same lock that reaping takes), so a signal can never
//! reach a process that reused the pid.

use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A child process, killed and reaped when dropped.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    /// The child leads its own process group, killed whole (a browser's helpers too).
    group: bool,
    /// Set, under its lock, when the child has been reaped.
    reaped: Arc<Mutex<bool>>,
    watchdog: Option<Watchdog>,
}

impl Guard {
    /// Starts `command`; past `limit` the watchdog kills it.
    pub fn spawn(command: &mut Command, limit: Duration) -> Guard {
        Guard::start(command, limit, false)
    }

    /// Starts `command` in a process group of its own, killed whole.
    pub fn spawn_group(command: &mut Command, limit: Duration) -> Guard {
        std::os::unix::process::CommandExt::process_group(command, 0);
        Guard::start(command, limit, true)
    }

    fn start(command: &mut Command, limit: Duration, group: bool) -> Guard {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let reaped = Arc::new(Mutex::new(false));
        let target = target(child.id(), group);
        let watchdog = Watchdog::new(target, limit, Arc::clone(&reaped));
        Guard {
            child,
            group,
            reaped,
            watchdog: Some(watchdog),
        }
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process (its group, for a group leader).
    pub fn signal(&self, signal: libc::c_int) {
        let reaped = self.reaped.lock().expect("the reaped flag");
        assert!(!*reaped, "signal {signal} to a process already reaped");
        let target = target(self.id(), self.group);
        // SAFETY: kill(2) has no memory-safety preconditions; the process is not reaped
        // (checked under the lock reaping takes), so its pid is still ours.
        let sent = unsafe { libc::kill(target, signal) };
        assert_eq!(sent, 0, "kill({target}, {signal})");
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        let mut reaped = self.reaped.lock().expect("the reaped flag");
        let status = self.child.try_wait().expect("waitpid on our own child");
        *reaped |= status.is_some();
        status
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.watchdog.take());
        if self.group && !*self.reaped.lock().expect("the reaped flag") {
            // SAFETY: as in `signal`: the group's leader is not reaped, its id is ours.
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `kill` takes for a process, or (negative) for the group it leads.
fn target(pid: u32, group: bool) -> libc::pid_t {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits in pid_t");
    if group { -pid } else { pid }
}

/// Kills a process past its limit unless told to stand down first; joined when dropped.
#[derive(Debug)]
struct Watchdog {
    stand_down: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn new(target: libc::pid_t, limit: Duration, reaped: Arc<Mutex<bool>>) -> Watchdog {
        let (stand_down, told) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = told.recv_timeout(limit) {
                let reaped = reaped.lock().expect("the reaped flag");
                if !*reaped {
                    eprintln!("watchdog: {target} outlived {limit:?}; killing it");
                    // SAFETY: as in `Guard::signal`: not reaped, checked under the lock.
                    unsafe { libc::kill(target, libc::SIGKILL) };
                }
            }
        });
        Watchdog {
            stand_down: Some(stand_down),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stand_down.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How a process run to its end ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs `command` to its exit, with `input` on its standard input and its output
/// collected; past `limit` it is killed and the test fails.
pub fn run(command: &mut Command, input: Option<Vec<u8>>, limit: Duration) -> Output {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut process = Guard::spawn(command, limit);
    if let Some(input) = input {
        let mut stdin = process.child().stdin.take().expect("piped stdin");
        // A thread, so a child that does not read cannot block the test; stdin closes
        // when the thread ends.
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let stdout = drain(process.child().stdout.take().expect("piped stdout"));
    let stderr = drain(process.child().stderr.take().expect("piped stderr"));
    let status = process
        .wait_exit(limit)
        .unwrap_or_else(|| panic!("{command:?} did not exit within {limit:?}"));
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Reads all of `reader` on a thread (so a child never blocks on a full pipe); the handle
/// yields the bytes.
pub fn drain<R: Read + Send + 'static>(mut reader: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    })
}

/// Copies `from` into `to` on a thread, then closes `to`.
pub fn pump<R: Read + Send + 'static, W: Write + Send + 'static>(
    mut from: R,
    mut to: W,
) -> JoinHandle<io::Result<u64>> {
    thread::spawn(move || io::copy(&mut from, &mut to))
}
