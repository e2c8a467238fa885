//! `exec[,OPTION…]:COMMAND`: the server runs a command and reads live MJPEG from its
//! standard output. This is the runtime, joining three parts made to be tested alone:
//! the process (`crate::child`: its own process group, non-blocking pipes, a pidfd),
//! the policy ([`ExecPolicy`]: when to start, stop and start again; sans-IO) and the
//! spec ([`ExecConfig`], in `exec_spec`).
//!
//! Its descriptors, each under a token of its own ([`InputCx::token`]):
//! - `STDOUT`: the command's standard output, read into the feed (split at JPEG markers
//!   there). Its end while the process runs is taken as the producer's end: the policy
//!   stops what is left of it; the feed drops a frame cut short ([`Feed::cut`]), so it
//!   cannot swallow the next producer's first frame.
//! - `STDERR`: its standard error, logged line by line with the stream's path
//!   ([`StderrLines`]: bounded lines, at most 100 lines logged per 10 s).
//! - `EXITED`: the pidfd, readable once the process has exited: the output left in the
//!   pipe is read, the process reaped (its group killed first: no orphan), and the
//!   policy decides what follows. Without a pidfd (a kernel before 5.3), a timer looks
//!   every 250 ms instead.
//!
//! One timer at a time: armed for the policy's next deadline when it is earlier than
//! the one armed (the loop's timers cannot be cancelled; one that fires early or stale
//! finds nothing due and re-arms).
//!
//! Every way out: a graceful stop ([`Input::on_stop`]) sends `SIGTERM` to the group;
//! [`Input::shutdown`], on every way out of the loop, gives it what is left of its kill
//! timeout (at most 1 s from the stop's start, the server's own grace; none without a
//! graceful stop), then `SIGKILL`s the group and reaps it: a bounded wait, at the end.
//!
//! The command's environment has `MIXREPLACE_STREAM` set to the stream's path.
//!
//! [`Feed::cut`]: crate::stream::input::Feed::cut

use std::io::{self, Read};
use std::time::Duration;

use log::{info, warn};
use mio::Interest;
use mio::unix::SourceFd;

use crate::child::{self, Child};
use crate::clock::Micros;
use crate::stream::input::exec_policy::{Action, AfterExit, ExecPolicy};
use crate::stream::input::exec_spec::ExecConfig;
use crate::stream::input::stderr_lines::StderrLines;
use crate::stream::input::{Demand, Drained, Input, InputCx, READ_BUDGET, drain_fd};

const STDOUT: usize = 0;
const STDERR: usize = 1;
const EXITED: usize = 2;
/// Without a pidfd: how often the loop looks whether the process has exited.
const REAP_POLL: Micros = 250_000;
/// At the server's end, the longest a command that got `SIGTERM` is waited for before
/// `SIGKILL`: the server's own stop takes about a second at most, and so do its commands.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// The tag of its one timer.
const TIMER: u32 = 0;

#[derive(Debug)]
pub struct ExecInput {
    config: ExecConfig,
    policy: ExecPolicy,
    child: Option<Child>,
    /// When the running process started.
    started_at: Micros,
    stderr: StderrLines,
    /// The deadline its timer is armed for.
    armed: Option<Micros>,
    /// Starts tried since the server began (for the log).
    attempts: u64,
    /// Restarts already counted in the feed.
    restarts_counted: u64,
    /// A graceful stop began: shutdown waits out the kill timeout from here.
    stop_began: Option<std::time::Instant>,
}

impl ExecInput {
    pub fn new(config: ExecConfig) -> ExecInput {
        ExecInput {
            policy: ExecPolicy::new(&config),
            config,
            child: None,
            started_at: 0,
            stderr: StderrLines::default(),
            armed: None,
            attempts: 0,
            restarts_counted: 0,
            stop_began: None,
        }
    }

    /// Does what the policy asked.
    fn act(&mut self, action: Option<Action>, cx: &mut InputCx<'_>) {
        match action {
            None => {}
            Some(Action::Start) => self.spawn(cx),
            Some(Action::Terminate) => {
                if let Some(child) = self.child.as_ref().filter(|c| !c.is_reaped()) {
                    info!(
                        "{}: stopping `{}` (pid {})",
                        cx.feed.path(),
                        self.config.command,
                        child.id()
                    );
                    child.signal_group(libc::SIGTERM);
                }
            }
            Some(Action::Kill) => {
                if let Some(child) = &self.child {
                    warn!(
                        "{}: `{}` (pid {}) is still there {} s after SIGTERM; sending SIGKILL",
                        cx.feed.path(),
                        self.config.command,
                        child.id(),
                        secs(self.config.kill_timeout)
                    );
                    child.signal_group(libc::SIGKILL);
                }
            }
        }
    }

    fn spawn(&mut self, cx: &mut InputCx<'_>) {
        self.attempts += 1;
        let path = cx.feed.path().to_owned();
        match Child::spawn(&self.config.argv, &[("MIXREPLACE_STREAM", &path)]).and_then(|mut child| {
            register(&mut child, cx)?;
            Ok(child)
        }) {
            Ok(child) => {
                info!("{path}: started `{}` (pid {})", self.config.command, child.id());
                self.child = Some(child);
                self.started_at = cx.now;
                self.stderr = StderrLines::default();
                self.policy.started(cx.now);
            }
            Err(e) => {
                let delay = self.policy.start_failed(cx.now);
                warn!(
                    "{path}: cannot start `{}`: {e} (attempt {}); trying again in {} s",
                    self.config.argv[0],
                    self.attempts,
                    secs(delay)
                );
            }
        }
    }

    /// Reads its standard output into the feed; `true` once it has ended (or failed),
    /// our end closed and a frame it cut short dropped.
    fn read_stdout(&mut self, cx: &mut InputCx<'_>) -> bool {
        let Some(fd) = self.child.as_mut().and_then(|c| c.stdout()).map(|p| raw(p)) else {
            return false;
        };
        let frames = cx.feed.stats().frames_in;
        let drained = drain_fd(fd, STDOUT, cx);
        if cx.feed.stats().frames_in > frames {
            self.policy.frame(cx.now);
        }
        match drained {
            Drained::Dry | Drained::Budget => return false,
            Drained::End => {}
            Drained::Failed(e) => warn!(
                "{}: reading the output of `{}`: {e}",
                cx.feed.path(),
                self.config.command
            ),
        }
        if let Some(child) = &mut self.child {
            if let Some(pipe) = child.stdout() {
                let _ = cx.registry.deregister(pipe);
            }
            child.close_stdout();
        }
        cx.feed.cut();
        true
    }

    fn on_stdout(&mut self, cx: &mut InputCx<'_>) {
        if self.read_stdout(cx) {
            self.output_ended(cx);
        }
    }

    /// Its standard output ended: usually the process has exited (then it is reaped
    /// here, whichever event came first); otherwise what is left of it is stopped.
    fn output_ended(&mut self, cx: &mut InputCx<'_>) {
        self.check_exit(cx);
        if let Some(child) = &self.child {
            info!(
                "{}: the output of `{}` (pid {}) ended",
                cx.feed.path(),
                self.config.command,
                child.id()
            );
            let action = self.policy.output_ended(cx.now);
            self.act(action, cx);
        }
    }

    fn read_stderr(&mut self, cx: &mut InputCx<'_>) {
        let Some(child) = &mut self.child else {
            return;
        };
        let Some(pipe) = child.stderr() else {
            return;
        };
        let path = cx.feed.path().to_owned();
        let mut log = |line: &str| info!("{path}: {line}");
        let mut read = 0;
        let ended = loop {
            if read >= READ_BUDGET {
                cx.again(STDERR);
                break false;
            }
            match pipe.read(cx.scratch) {
                Ok(0) => break true,
                Ok(n) => {
                    read += n;
                    self.stderr.push(&cx.scratch[..n], cx.now, &mut log);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        if ended {
            self.stderr.finish(cx.now, &mut log);
            let _ = cx.registry.deregister(pipe);
            child.close_stderr();
        }
    }

    /// Reaps the process if it has exited, and does what the policy says next.
    fn check_exit(&mut self, cx: &mut InputCx<'_>) {
        let Some(child) = &mut self.child else {
            return;
        };
        let status = match child.try_reap() {
            Ok(Some(status)) => status,
            Ok(None) => return,
            Err(e) => {
                warn!("{}: waiting for `{}`: {e}", cx.feed.path(), self.config.command);
                return;
            }
        };
        let pid = child.id();
        // What it wrote before it exited is still in the pipes.
        self.read_stdout(cx);
        self.read_stderr(cx);
        if let Some(mut child) = self.child.take() {
            deregister(&mut child, cx);
        }
        // A last line without its line end (a group member may hold the pipe open).
        let path = cx.feed.path().to_owned();
        self.stderr.finish(cx.now, &mut |line| info!("{path}: {line}"));
        cx.feed.cut();
        let ran = secs(cx.now.saturating_sub(self.started_at));
        let next = self.policy.exited(cx.now);
        let what = format!(
            "`{}` (pid {pid}) exited ({status}) after {ran} s",
            self.config.command
        );
        match next {
            AfterExit::RestartIn(delay) => {
                warn!("{path}: {what}; starting it again in {} s", secs(delay));
            }
            AfterExit::StartNow => {
                info!("{path}: {what}; wanted again, starting it");
                self.spawn(cx);
            }
            AfterExit::Waiting => {
                info!("{path}: {what}; waiting for a viewer");
                cx.feed.retire();
            }
            AfterExit::Stopped => {
                info!("{path}: {what}");
            }
            AfterExit::End => {
                warn!("{path}: {what}; the stream ends (add the restart option to start it again)");
                cx.feed.end(cx.now);
            }
        }
    }

    /// After every call: the state and restarts told to the feed, the timer armed for
    /// the next deadline.
    fn settle(&mut self, cx: &mut InputCx<'_>) {
        if !cx.feed.is_ended() {
            cx.feed.set_state(self.policy.state());
        }
        while self.restarts_counted < self.policy.restarts() {
            self.restarts_counted += 1;
            cx.feed.count_restart();
        }
        let poll = self
            .child
            .as_ref()
            .filter(|c| c.pidfd().is_none())
            .map(|_| cx.now + REAP_POLL);
        let next = match (self.policy.next_deadline(), poll) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(next) = next else {
            return;
        };
        if self.armed.is_none_or(|armed| next < armed || armed <= cx.now) {
            self.armed = Some(next);
            cx.wake_at(next, TIMER);
        }
    }
}

impl Input for ExecInput {
    fn start(&mut self, cx: &mut InputCx<'_>) -> io::Result<()> {
        let action = self.policy.begin();
        self.act(action, cx);
        self.settle(cx);
        Ok(())
    }

    fn on_ready(&mut self, sub: usize, cx: &mut InputCx<'_>) {
        match sub {
            STDOUT => self.on_stdout(cx),
            STDERR => self.read_stderr(cx),
            EXITED => self.check_exit(cx),
            _ => {}
        }
        self.settle(cx);
    }

    fn on_timer(&mut self, _tag: u32, cx: &mut InputCx<'_>) {
        if self.armed.is_some_and(|armed| armed <= cx.now) {
            self.armed = None;
        }
        // Each action changes the policy's state: a handful at most.
        while let Some(action) = self.policy.on_timer(cx.now) {
            self.act(Some(action), cx);
        }
        if self.child.as_ref().is_some_and(|c| c.pidfd().is_none()) {
            self.check_exit(cx);
        }
        self.settle(cx);
    }

    fn on_demand(&mut self, demand: Demand, cx: &mut InputCx<'_>) {
        let action = self
            .policy
            .viewers_changed(cx.now, demand.viewers + demand.snapshots);
        self.act(action, cx);
        self.settle(cx);
    }

    fn on_stop(&mut self, cx: &mut InputCx<'_>) {
        self.stop_began = Some(std::time::Instant::now());
        let action = self.policy.shutdown(cx.now);
        self.act(action, cx);
        self.settle(cx);
    }

    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // After a graceful stop's SIGTERM, what is left of the kill timeout (within the
        // server's own stop grace); otherwise (an error, a server never run) none.
        let grace = self.stop_began.map_or(Duration::ZERO, |began| {
            let timeout = Duration::from_micros(self.config.kill_timeout).min(SHUTDOWN_GRACE);
            timeout.saturating_sub(began.elapsed())
        });
        child::stop_all(&mut [&mut child], grace);
    }
}

/// Registers the new process's descriptors under the input's tokens.
fn register(child: &mut Child, cx: &mut InputCx<'_>) -> io::Result<()> {
    if let Some(pipe) = child.stdout() {
        cx.registry.register(pipe, cx.token(STDOUT), Interest::READABLE)?;
    }
    if let Some(pipe) = child.stderr() {
        cx.registry.register(pipe, cx.token(STDERR), Interest::READABLE)?;
    }
    if let Some(fd) = child.pidfd() {
        cx.registry
            .register(&mut SourceFd(&fd), cx.token(EXITED), Interest::READABLE)?;
    }
    Ok(())
}

/// Takes the process's descriptors out of the loop's `Poll` (closing them would too;
/// this says so).
fn deregister(child: &mut Child, cx: &mut InputCx<'_>) {
    if let Some(pipe) = child.stdout() {
        let _ = cx.registry.deregister(pipe);
    }
    if let Some(pipe) = child.stderr() {
        let _ = cx.registry.deregister(pipe);
    }
    if let Some(fd) = child.pidfd() {
        let _ = cx.registry.deregister(&mut SourceFd(&fd));
    }
}

fn raw(pipe: &mio::unix::pipe::Receiver) -> std::os::fd::RawFd {
    std::os::fd::AsRawFd::as_raw_fd(pipe)
}

/// Microseconds as seconds, for log lines.
fn secs(us: Micros) -> String {
    format!("{:.1}", us as f64 / 1e6)
}
