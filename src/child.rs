//! Child processes the loop runs (the `exec:` inputs): the operating-system side only —
//! start, read, signal, reap. When to do which is the caller's policy.
//!
//! A [`Child`] is started with standard input on `/dev/null`, standard output and
//! standard error on pipes whose reading ends are non-blocking (for the loop's `Poll`),
//! in a process group of its own (so one signal reaches everything it started, and a
//! Ctrl-C on the server's terminal does not reach it), and with `PR_SET_PDEATHSIG`
//! `SIGKILL` (so it dies with the server even when the server is killed with `SIGKILL`
//! and no code of ours runs).
//!
//! Its exit is watched without a thread and without blocking: a pidfd
//! (`pidfd_open`, Linux 5.3 and later) becomes readable when the process exits, and the
//! loop registers it with the same `Poll` as everything else. Chosen over `SIGCHLD`
//! because it needs no process-wide signal handler (an embedded server must leave the
//! host program's signals alone) and it names one process, so children of other parts
//! of the program are never reaped by mistake. Where `pidfd_open` is refused (older
//! kernels, seccomp), [`Child::pidfd`] is `None` and the caller polls [`Child::try_reap`]
//! on a timer instead.
//!
//! Invariants:
//! - Never a zombie: a `Child` is reaped exactly once, by [`Child::try_reap`] once it
//!   exited, by [`stop_all`], or by `Drop` (`SIGKILL` to the group, then a blocking
//!   `waitpid`, which `SIGKILL` makes short).
//! - Never an orphan: the group is sent `SIGKILL` just before the leader is reaped, so
//!   whatever the command started in its group goes with it (a descendant that made a
//!   session of its own with `setsid` escapes; nothing can stop that).
//! - The group is signalled only while its leader is not yet reaped: until then the
//!   leader's pid, which is the group's id, cannot be given to another process.
//! - Every descriptor is close-on-exec (the standard library's pipes, the pidfd), so one
//!   child never inherits another's pipes or the server's sockets.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mio::unix::pipe::Receiver;

/// How often [`stop_all`] looks again for children that have not exited yet.
const STOP_POLL: Duration = Duration::from_millis(5);

/// A running (or exited, not yet reaped) child process and its pipes.
#[derive(Debug)]
pub struct Child {
    process: std::process::Child,
    stdout: Option<Receiver>,
    stderr: Option<Receiver>,
    pidfd: Option<OwnedFd>,
    status: Option<ExitStatus>,
}

impl Child {
    /// Starts `argv[0]` with the arguments `argv[1..]` (found on `PATH` as a shell
    /// would), with `env` added to the server's environment. An error means nothing was
    /// started: no process, no descriptor left.
    pub fn spawn(argv: &[String], env: &[(&str, &str)]) -> io::Result<Child> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: it makes system calls (prctl, getppid,
        // close_range) and builds an io::Error from an error number, which does not
        // allocate.
        unsafe {
            command.pre_exec(move || before_exec(parent));
        }
        let mut process = command.spawn()?;
        let pipes = (process.stdout.take(), process.stderr.take());
        let (Some(stdout), Some(stderr)) = pipes else {
            // Not reachable with both piped; the child still must not outlive us.
            kill_and_wait(&mut process);
            return Err(io::Error::other("the child's pipes are missing"));
        };
        let child = Child {
            pidfd: pidfd_open(process.id()),
            process,
            stdout: Some(Receiver::from(stdout)),
            stderr: Some(Receiver::from(stderr)),
            status: None,
        };
        // On failure `child` drops here, and Drop kills and reaps it.
        for pipe in [&child.stdout, &child.stderr].into_iter().flatten() {
            pipe.set_nonblocking(true)?;
        }
        Ok(child)
    }

    /// The process id, which is also its group's id.
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// The reading end of its standard output, until [`close_stdout`](Self::close_stdout).
    pub fn stdout(&mut self) -> Option<&mut Receiver> {
        self.stdout.as_mut()
    }

    /// The reading end of its standard error, until [`close_stderr`](Self::close_stderr).
    pub fn stderr(&mut self) -> Option<&mut Receiver> {
        self.stderr.as_mut()
    }

    /// Closes our end of its standard output (the caller deregisters it first); a
    /// child that writes on gets `SIGPIPE`.
    pub fn close_stdout(&mut self) {
        self.stdout = None;
    }

    pub fn close_stderr(&mut self) {
        self.stderr = None;
    }

    /// The descriptor that becomes readable when the process exits; `None` where the
    /// kernel has no `pidfd_open`.
    pub fn pidfd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Sends `signal` to the whole process group, unless the child was reaped already.
    pub fn signal_group(&self, signal: libc::c_int) {
        if self.status.is_none() {
            signal_group(self.process.id(), signal);
        }
    }

    /// The exit status once the child has exited and is reaped (the rest of its group
    /// killed first); `None` while it runs. Never blocks.
    pub fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        if !has_exited(self.process.id())? {
            return Ok(None);
        }
        signal_group(self.process.id(), libc::SIGKILL);
        // The leader has exited: this wait returns at once.
        let status = self.process.wait()?;
        self.status = Some(status);
        Ok(Some(status))
    }

    /// Whether the child has been reaped.
    pub fn is_reaped(&self) -> bool {
        self.status.is_some()
    }
}

/// Never a zombie, never an orphan, whatever path drops it.
impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            kill_and_wait(&mut self.process);
        }
    }
}

/// Ends every child: `SIGTERM` to each group, up to `grace` for them to exit, then
/// `SIGKILL` to the groups left; every one is reaped when this returns. For the loop's
/// end, where blocking for a bounded time is fine.
pub fn stop_all(children: &mut [&mut Child], grace: Duration) {
    for child in children.iter() {
        child.signal_group(libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    loop {
        let mut running = 0;
        for child in children.iter_mut() {
            // An error here (there is none for a child of ours) ends in the SIGKILL below.
            if !matches!(child.try_reap(), Ok(Some(_))) {
                running += 1;
            }
        }
        if running == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(STOP_POLL);
    }
    for child in children.iter_mut() {
        if child.status.is_none() {
            child.status = Some(kill_and_wait(&mut child.process));
        }
    }
}

/// In the child, before exec: die when the server does, and do not start at all if it
/// already has (then the signal was asked for too late to come); and close at exec the
/// descriptors the server inherited without close-on-exec (a harness's pipes, a service
/// manager's sockets), which are not the command's business.
fn before_exec(parent: libc::pid_t) -> io::Result<()> {
    let signal = libc::SIGKILL as libc::c_ulong;
    // SAFETY: prctl with integer arguments only; async-signal-safe.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getppid has no arguments and cannot fail.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // Marked close-on-exec rather than closed: the standard library's own pipe (which
    // reports a failed exec) is among them and must stay open until the exec. Before
    // Linux 5.11 the call fails, and they are inherited as they were.
    let (first, last, flags) = (3 as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC);
    // SAFETY: close_range with integer arguments only; async-signal-safe.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    Ok(())
}

/// `SIGKILL` to the group, then a blocking wait (short: nothing survives `SIGKILL` but a
/// process in an uninterruptible sleep, and only until that ends).
fn kill_and_wait(process: &mut std::process::Child) -> ExitStatus {
    signal_group(process.id(), libc::SIGKILL);
    // wait() fails only for a child already reaped (not the case: the callers check),
    // and is retried on EINTR by the standard library.
    process
        .wait()
        .unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(0))
}

fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: kill with integer arguments only. A negative pid names the group; ESRCH
    // (the group is empty) is fine.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// Whether the child has exited, leaving it a zombie (`WNOWAIT`) so its group can still
/// be signalled safely before it is reaped.
fn has_exited(pid: u32) -> io::Result<bool> {
    // SAFETY: siginfo_t is plain data, for which all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid writes one siginfo_t through a pointer to a live, writable one.
    if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // With WNOHANG, si_pid stays 0 while the child runs.
    // SAFETY: waitid filled `info` for a child-state change (or left it zeroed).
    Ok(unsafe { info.si_pid() } != 0)
}

/// A pidfd for `pid`, or `None` where the kernel refuses (`ENOSYS` before Linux 5.3).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: the pidfd_open system call with integer arguments; it returns a new
    // descriptor (close-on-exec, as the kernel always makes pidfds) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a descriptor just returned to us, owned by nothing else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    /// Whether a process with this id exists (a zombie counts).
    fn exists(pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Reads a blocking-free pipe to its end, bounded in time.
    fn read_all(pipe: &mut Receiver) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match pipe.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(STOP_POLL),
                Err(e) => panic!("read: {e}"),
            }
        }
        panic!("the pipe did not end in 10 s");
    }

    fn reap_within(child: &mut Child, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = child.try_reap().unwrap() {
                return status;
            }
            std::thread::sleep(STOP_POLL);
        }
        panic!("the child did not exit in {limit:?}");
    }

    #[test]
    fn reads_output_and_error_and_reaps() {
        let script = "echo out; echo err >&2; read line; echo \"stdin:$line\"; exit 3";
        let mut child = Child::spawn(&argv(&["/bin/sh", "-c", script]), &[]).unwrap();
        let out = read_all(child.stdout().unwrap());
        let err = read_all(child.stderr().unwrap());
        // Standard input is /dev/null: `read` sees its end at once.
        assert_eq!(String::from_utf8_lossy(&out), "out\nstdin:\n");
        assert_eq!(String::from_utf8_lossy(&err), "err\n");
        let status = reap_within(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(3));
        assert!(child.pidfd().is_some(), "this kernel has pidfd_open");
        assert!(!exists(child.id()));
    }

    #[test]
    fn passes_the_environment_and_its_own_group() {
        let script = "echo \"$MIXREPLACE_TEST_VAR $$ $(cut -d' ' -f5 /proc/$$/stat)\"";
        let mut child =
            Child::spawn(&argv(&["/bin/sh", "-c", script]), &[("MIXREPLACE_TEST_VAR", "x")]).unwrap();
        let out = String::from_utf8(read_all(child.stdout().unwrap())).unwrap();
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words[0], "x");
        // Its own group: the group id is its own pid.
        assert_eq!(words[1], child.id().to_string());
        assert_eq!(words[2], child.id().to_string());
        reap_within(&mut child, Duration::from_secs(10));
    }

    #[test]
    fn the_child_gets_no_descriptor_the_server_inherited() {
        // A descriptor without close-on-exec, as a harness may leave the server.
        // SAFETY: dup of standard error, a descriptor this process has; closed below.
        let leaked = unsafe { libc::dup(2) };
        assert!(leaked > 2);
        let script = "test -e /proc/$$/fd/$0 && echo open || echo closed";
        let spawned = Child::spawn(&argv(&["/bin/sh", "-c", script, &leaked.to_string()]), &[]);
        // SAFETY: closes the descriptor duplicated above, owned by nothing else.
        unsafe { libc::close(leaked) };
        let mut child = spawned.unwrap();
        let out = String::from_utf8(read_all(child.stdout().unwrap())).unwrap();
        reap_within(&mut child, Duration::from_secs(10));
        assert_eq!(out, "closed\n", "descriptor {leaked}");
    }

    #[test]
    fn a_missing_program_is_an_error_and_leaves_nothing() {
        let err = Child::spawn(&argv(&["/nonexistent/mixreplace-no-such-program"]), &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(Child::spawn(&[], &[]).is_err());
    }

    #[test]
    fn reaping_the_leader_kills_what_it_left_in_its_group() {
        // The shell starts a sleeper in the background (off the pipes, so that they
        // end with the shell), prints its pid and exits.
        let script = "sleep 60 >/dev/null 2>&1 & echo $!";
        let mut child = Child::spawn(&argv(&["/bin/sh", "-c", script]), &[]).unwrap();
        let out = String::from_utf8(read_all(child.stdout().unwrap())).unwrap();
        let sleeper: u32 = out.trim().parse().unwrap();
        reap_within(&mut child, Duration::from_secs(10));
        // The sleeper, reparented to init (or a subreaper), dies of the SIGKILL; its
        // new parent reaps it. Its /proc entry can stay a moment as a zombie there.
        let deadline = Instant::now() + Duration::from_secs(10);
        while exists(sleeper) && !is_zombie(sleeper) && Instant::now() < deadline {
            std::thread::sleep(STOP_POLL);
        }
        assert!(
            !exists(sleeper) || is_zombie(sleeper),
            "the sleeper {sleeper} lives on"
        );
    }

    fn is_zombie(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit(')')
                    .next()
                    .map(|rest| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    }

    #[test]
    fn stop_all_terms_then_kills_and_reaps_every_one() {
        // One exits on SIGTERM; one ignores it and needs the SIGKILL.
        let polite = Child::spawn(&argv(&["sleep", "60"]), &[]).unwrap();
        let stubborn = Child::spawn(
            &argv(&[
                "/bin/sh",
                "-c",
                "trap '' TERM; echo ready; while :; do sleep 1; done",
            ]),
            &[],
        )
        .unwrap();
        let (mut polite, mut stubborn) = (polite, stubborn);
        // Wait until the trap is set, or the SIGTERM could come before it.
        let mut ready = [0; 6];
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = 0;
        while got < ready.len() && Instant::now() < deadline {
            match stubborn.stdout().unwrap().read(&mut ready[got..]) {
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(STOP_POLL),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&ready, b"ready\n");
        let pids = [polite.id(), stubborn.id()];
        let started = Instant::now();
        stop_all(&mut [&mut polite, &mut stubborn], Duration::from_millis(300));
        let took = started.elapsed();
        println!("stop_all took {took:?}");
        assert!(polite.is_reaped() && stubborn.is_reaped());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(polite.try_reap().unwrap().unwrap().signal(), Some(libc::SIGTERM));
        assert_eq!(
            stubborn.try_reap().unwrap().unwrap().signal(),
            Some(libc::SIGKILL)
        );
        for pid in pids {
            assert!(!exists(pid));
        }
    }

    #[test]
    fn dropping_a_running_child_kills_and_reaps_it() {
        let child = Child::spawn(&argv(&["sleep", "60"]), &[]).unwrap();
        let pid = child.id();
        assert!(exists(pid));
        drop(child);
        assert!(!exists(pid));
    }
}
