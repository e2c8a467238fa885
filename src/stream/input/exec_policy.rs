//! When an `exec:` input's command runs: [`ExecPolicy`], a sans-IO state machine with
//! the time passed in, so every rule below is a unit test with fake time.
//!
//! It is told what happened (`begin`, `started`, `start_failed`, `frame`,
//! `output_ended`, `exited`, `viewers_changed`, `on_timer`, `shutdown`) and answers the
//! [`Action`] to take; [`ExecPolicy::next_deadline`] says when to call `on_timer` next
//! (a call before it, or a stale timer, does nothing).
//! - Always on (no `on_demand`): started at once. Its end (the process exited) ends the
//!   stream, as standard input's end does, unless `restart`.
//! - `on_demand`: started when the first viewer comes (a snapshot waiting for a frame
//!   counts as one), stopped `idle` after the last leaves. A producer that ends while it
//!   is wanted is started again (with the backoff below), `restart` or not.
//! - Restarts wait a backoff: 1 s, doubling to 30 s; back to 1 s after a run that
//!   delivered frames for 60 s. A command that cannot start at all (not found, not
//!   executable, out of processes) is retried the same way: never fatal, never a spin.
//! - Stopping is `SIGTERM` to the process group, then `SIGKILL` after `kill_timeout`.
//!   A stop on purpose (idle, shutdown) is not a failure: no backoff.
//! - The end of the command's output while it runs is taken as its end: it is stopped
//!   the same way, and what follows is decided when it has exited.
//!
//! Invariants: at most one process per input (`Start` only when none runs); a `Start`
//! other than the first comes only from a backoff deadline or a stop on purpose, so a
//! command that fails at once is started at most once a second; after `shutdown`, never
//! a `Start`.

use crate::clock::Micros;
use crate::stream::input::InputState;
use crate::stream::input::exec_spec::{ExecConfig, SECOND};

const FIRST_BACKOFF: Micros = SECOND;
const MAX_BACKOFF: Micros = 30 * SECOND;
/// A run that delivered frames for this long was good: the backoff starts over.
const GOOD_RUN: Micros = 60 * SECOND;

/// What the loop should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the command; then report [`ExecPolicy::started`] or
    /// [`ExecPolicy::start_failed`].
    Start,
    /// `SIGTERM` to the process group (`SIGKILL` follows as `Kill` if it is still there
    /// after `kill_timeout`).
    Terminate,
    /// `SIGKILL` to the process group.
    Kill,
}

/// What follows a process's exit, for the loop's log line (and its action).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterExit {
    /// Started again after this delay.
    RestartIn(Micros),
    /// Wanted again while it was being stopped: start it now.
    StartNow,
    /// On demand, nobody watching: waits for a viewer.
    Waiting,
    /// The server is stopping.
    Stopped,
    /// Not restarted: the stream ends.
    End,
}

/// How a running process is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stopping {
    No,
    /// `SIGTERM` sent; `deliberate`: for idleness or shutdown, not for a failure.
    Termed {
        kill_at: Micros,
        deliberate: bool,
    },
    Killed {
        deliberate: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not running, and not waiting to restart.
    Idle,
    Running {
        first_frame: Option<Micros>,
        last_frame: Micros,
        stopping: Stopping,
    },
    Backoff {
        until: Micros,
    },
    /// No restart: the stream has ended.
    Ended,
}

/// When an `exec:` input's command runs (see the module doc).
#[derive(Debug)]
pub struct ExecPolicy {
    on_demand: bool,
    restart: bool,
    idle: Micros,
    kill_timeout: Micros,
    phase: Phase,
    viewers: u64,
    /// On demand: when it stops if nobody comes (set when the last viewer leaves, or by
    /// a snapshot); `None` while someone watches.
    idle_at: Option<Micros>,
    /// The next restart's delay.
    backoff: Micros,
    restarts: u64,
    shutting_down: bool,
}

impl ExecPolicy {
    pub fn new(config: &ExecConfig) -> ExecPolicy {
        ExecPolicy {
            on_demand: config.on_demand,
            restart: config.restart,
            idle: config.idle,
            kill_timeout: config.kill_timeout,
            phase: Phase::Idle,
            viewers: 0,
            idle_at: None,
            backoff: FIRST_BACKOFF,
            restarts: 0,
            shutting_down: false,
        }
    }

    /// The server starts: an always-on command starts with it.
    pub fn begin(&mut self) -> Option<Action> {
        (!self.on_demand && self.phase == Phase::Idle).then_some(Action::Start)
    }

    pub fn started(&mut self, now: Micros) {
        self.phase = Phase::Running {
            first_frame: None,
            last_frame: now,
            stopping: Stopping::No,
        };
    }

    /// The command could not be started; returns the delay before the next attempt.
    pub fn start_failed(&mut self, now: Micros) -> Micros {
        self.schedule_restart(now)
    }

    /// A frame came from the command.
    pub fn frame(&mut self, now: Micros) {
        if let Phase::Running {
            first_frame,
            last_frame,
            ..
        } = &mut self.phase
        {
            first_frame.get_or_insert(now);
            *last_frame = now;
        }
    }

    /// The command's output ended while it runs: stop what is left of it.
    pub fn output_ended(&mut self, now: Micros) -> Option<Action> {
        self.terminate(now, false)
    }

    /// The process has exited and is reaped.
    pub fn exited(&mut self, now: Micros) -> AfterExit {
        let Phase::Running {
            first_frame,
            last_frame,
            stopping,
        } = self.phase
        else {
            return AfterExit::Waiting;
        };
        if first_frame.is_some_and(|first| last_frame - first >= GOOD_RUN) {
            self.backoff = FIRST_BACKOFF;
        }
        let deliberate = matches!(
            stopping,
            Stopping::Termed { deliberate: true, .. } | Stopping::Killed { deliberate: true }
        );
        self.phase = Phase::Idle;
        if self.shutting_down {
            self.phase = Phase::Ended;
            AfterExit::Stopped
        } else if deliberate {
            if self.is_wanted() {
                AfterExit::StartNow
            } else {
                AfterExit::Waiting
            }
        } else if self.restart || (self.on_demand && self.is_wanted()) {
            AfterExit::RestartIn(self.schedule_restart(now))
        } else if self.on_demand {
            AfterExit::Waiting
        } else {
            self.phase = Phase::Ended;
            AfterExit::End
        }
    }

    /// The number of viewers changed (a snapshot waiting for a frame counts as one): on
    /// demand, the first starts the command, and the last leaving starts the idle delay.
    pub fn viewers_changed(&mut self, now: Micros, viewers: u64) -> Option<Action> {
        self.viewers = viewers;
        if !self.on_demand {
            return None;
        }
        if viewers > 0 {
            self.idle_at = None;
            return self.start_if_idle();
        }
        if self.phase != Phase::Idle && self.idle_at.is_none() {
            self.idle_at = Some(now + self.idle);
        }
        None
    }

    /// A deadline may have passed: the backoff, the idle delay or the kill timeout. Call
    /// it again while it answers an action (each changes the state: at most three).
    pub fn on_timer(&mut self, now: Micros) -> Option<Action> {
        if let Phase::Running { stopping, .. } = &mut self.phase {
            if let Stopping::Termed { kill_at, deliberate } = *stopping {
                if now >= kill_at {
                    *stopping = Stopping::Killed { deliberate };
                    return Some(Action::Kill);
                }
            }
        }
        if self.idle_at.is_some_and(|at| now >= at) && self.viewers == 0 {
            self.idle_at = None;
            if let Phase::Backoff { .. } = self.phase {
                self.phase = Phase::Idle;
            }
            return self.terminate(now, true);
        }
        match self.phase {
            Phase::Backoff { until } if now >= until => {
                if self.is_wanted() {
                    self.restarts += 1;
                    self.phase = Phase::Idle;
                    Some(Action::Start)
                } else {
                    self.phase = Phase::Idle;
                    None
                }
            }
            _ => None,
        }
    }

    /// The server stops: the command is stopped and never started again.
    pub fn shutdown(&mut self, now: Micros) -> Option<Action> {
        self.shutting_down = true;
        self.idle_at = None;
        match self.phase {
            Phase::Running { .. } => self.terminate(now, true),
            _ => {
                self.phase = Phase::Ended;
                None
            }
        }
    }

    /// When [`on_timer`](Self::on_timer) has something to do next.
    pub fn next_deadline(&self) -> Option<Micros> {
        let phase = match self.phase {
            Phase::Backoff { until } => Some(until),
            Phase::Running {
                stopping: Stopping::Termed { kill_at, .. },
                ..
            } => Some(kill_at),
            _ => None,
        };
        let idle = self
            .idle_at
            .filter(|_| self.viewers == 0 && self.phase != Phase::Idle);
        match (phase, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What `/stats` shows: `waiting` (on demand, for a viewer), `running`,
    /// `restarting` (the backoff), `stopped` (ended, or the server stops).
    pub fn state(&self) -> InputState {
        match self.phase {
            Phase::Running { .. } => InputState::Running,
            Phase::Backoff { .. } => InputState::Restarting,
            Phase::Idle if !self.shutting_down => InputState::Waiting,
            Phase::Idle | Phase::Ended => InputState::Stopped,
        }
    }

    /// Starts after a failure or an unexpected end (not the first start, nor an on-demand
    /// start).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Whether the command should run now.
    fn is_wanted(&self) -> bool {
        !self.shutting_down && (!self.on_demand || self.viewers > 0 || self.idle_at.is_some())
    }

    fn start_if_idle(&mut self) -> Option<Action> {
        (self.phase == Phase::Idle && !self.shutting_down).then_some(Action::Start)
    }

    /// `SIGTERM`, unless it is being stopped already or is not running.
    fn terminate(&mut self, now: Micros, deliberate: bool) -> Option<Action> {
        let kill_at = now + self.kill_timeout;
        match &mut self.phase {
            Phase::Running { stopping, .. } if *stopping == Stopping::No => {
                *stopping = Stopping::Termed { kill_at, deliberate };
                Some(Action::Terminate)
            }
            _ => None,
        }
    }

    fn schedule_restart(&mut self, now: Micros) -> Micros {
        let delay = self.backoff;
        self.backoff = (delay * 2).min(MAX_BACKOFF);
        self.phase = Phase::Backoff { until: now + delay };
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rest: &str) -> ExecConfig {
        ExecConfig::parse(rest).unwrap().0
    }

    const S: Micros = SECOND;

    fn policy(spec: &str) -> ExecPolicy {
        ExecPolicy::new(&parse(spec))
    }

    /// Runs every due timer at `now`, as the loop does.
    fn timers(policy: &mut ExecPolicy, now: Micros) -> Vec<Action> {
        std::iter::from_fn(|| policy.on_timer(now)).take(10).collect()
    }

    /// Fails at once, forever: the delays between attempts.
    fn failing_delays(policy: &mut ExecPolicy, attempts: usize, exit: bool) -> Vec<Micros> {
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..attempts {
            let delay = if exit {
                policy.started(now);
                match policy.exited(now + 1000) {
                    AfterExit::RestartIn(delay) => delay,
                    other => panic!("{other:?}"),
                }
            } else {
                policy.start_failed(now)
            };
            assert_eq!(policy.state(), InputState::Restarting);
            delays.push(delay);
            let at = policy.next_deadline().unwrap();
            // Never a spin: nothing happens before the deadline.
            assert!(timers(policy, at - 1).is_empty());
            assert_eq!(timers(policy, at), [Action::Start]);
            now = at;
        }
        delays
    }

    #[test]
    fn restarts_back_off_from_one_second_to_thirty() {
        let expected = [1, 2, 4, 8, 16, 30, 30].map(|s| s * S);
        let mut p = policy(",restart:cam");
        assert_eq!(p.begin(), Some(Action::Start));
        assert_eq!(failing_delays(&mut p, 7, true), expected);
        assert_eq!(p.restarts(), 7);
        // A command that cannot start at all is retried the same way, restart or not.
        let mut p = policy(":no-such-cam");
        assert_eq!(failing_delays(&mut p, 7, false), expected);
    }

    #[test]
    fn a_minute_of_good_frames_resets_the_backoff() {
        let mut p = policy(",restart:cam");
        p.started(0);
        assert_eq!(p.exited(S), AfterExit::RestartIn(S));
        assert_eq!(timers(&mut p, 2 * S), [Action::Start]);
        p.started(2 * S);
        for t in 3..62 {
            p.frame(t * S);
        }
        // 59 s of frames: not yet.
        assert_eq!(p.exited(62 * S), AfterExit::RestartIn(2 * S));
        assert_eq!(timers(&mut p, 64 * S), [Action::Start]);
        p.started(64 * S);
        for t in 65..=125 {
            p.frame(t * S);
        }
        assert_eq!(p.exited(130 * S), AfterExit::RestartIn(S));
    }

    #[test]
    fn without_restart_the_end_of_the_command_ends_the_stream() {
        let mut p = policy(":cam");
        assert_eq!(p.begin(), Some(Action::Start));
        p.started(0);
        assert_eq!(p.state(), InputState::Running);
        assert_eq!(p.exited(5 * S), AfterExit::End);
        assert_eq!(p.state(), InputState::Stopped);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn the_end_of_the_output_stops_the_process_then_decides() {
        let mut p = policy(",restart,kill_timeout=3:cam");
        p.begin();
        p.started(0);
        assert_eq!(p.output_ended(S), Some(Action::Terminate));
        assert_eq!(p.output_ended(S), None);
        assert_eq!(p.next_deadline(), Some(4 * S));
        assert_eq!(timers(&mut p, 4 * S), [Action::Kill]);
        assert_eq!(timers(&mut p, 5 * S), []);
        // Not a stop on purpose: the backoff applies.
        assert_eq!(p.exited(5 * S), AfterExit::RestartIn(S));
    }

    #[test]
    fn on_demand_runs_while_viewers_watch_and_idle_after() {
        let mut p = policy(",on_demand,idle=10,kill_timeout=2:cam");
        assert_eq!(p.begin(), None);
        assert_eq!(p.state(), InputState::Waiting);
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.viewers_changed(S, 1), Some(Action::Start));
        p.started(S);
        assert_eq!(p.viewers_changed(2 * S, 2), None);
        assert_eq!(p.viewers_changed(3 * S, 0), None);
        assert_eq!(p.next_deadline(), Some(13 * S));
        // Back before the idle delay: it runs on.
        assert_eq!(p.viewers_changed(5 * S, 1), None);
        assert_eq!(p.next_deadline(), None);
        assert_eq!(timers(&mut p, 13 * S), []);
        assert_eq!(p.viewers_changed(20 * S, 0), None);
        assert_eq!(timers(&mut p, 29 * S), []);
        assert_eq!(timers(&mut p, 30 * S), [Action::Terminate]);
        assert_eq!(p.next_deadline(), Some(32 * S));
        // Exits on SIGTERM: on purpose, so no backoff, and nobody wants it.
        assert_eq!(p.exited(31 * S), AfterExit::Waiting);
        assert_eq!(p.state(), InputState::Waiting);
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.restarts(), 0);
        // The next viewer starts it again at once.
        assert_eq!(p.viewers_changed(40 * S, 1), Some(Action::Start));
    }

    #[test]
    fn on_demand_a_snapshot_starts_it_for_the_idle_delay() {
        let mut p = policy(",on_demand,idle=4:cam");
        assert_eq!(p.viewers_changed(0, 1), Some(Action::Start));
        p.started(0);
        // Answered with the first frame: nobody wants it any more.
        p.frame(S);
        assert_eq!(p.viewers_changed(S, 0), None);
        assert_eq!(p.next_deadline(), Some(5 * S));
        assert_eq!(timers(&mut p, 5 * S), [Action::Terminate]);
        // A viewer comes while it is stopping: it starts again once it has exited.
        assert_eq!(p.viewers_changed(5 * S, 1), None);
        assert_eq!(p.exited(6 * S), AfterExit::StartNow);
        p.started(6 * S);
        assert_eq!(p.state(), InputState::Running);
        // A stubborn process: SIGKILL after the kill timeout (2 s by default).
        assert_eq!(p.viewers_changed(7 * S, 0), None);
        assert_eq!(timers(&mut p, 11 * S), [Action::Terminate]);
        assert_eq!(timers(&mut p, 13 * S), [Action::Kill]);
        assert_eq!(p.exited(13 * S), AfterExit::Waiting);
    }

    #[test]
    fn on_demand_restarts_while_wanted_and_gives_up_when_nobody_is_left() {
        let mut p = policy(",on_demand,idle=5:cam");
        assert_eq!(p.viewers_changed(0, 1), Some(Action::Start));
        p.started(0);
        // Dies with a viewer watching: started again after the backoff, restart or not.
        assert_eq!(p.exited(S), AfterExit::RestartIn(S));
        assert_eq!(p.viewers_changed(S, 2), None);
        assert_eq!(timers(&mut p, 2 * S), [Action::Start]);
        assert!(p.start_failed(2 * S) == 2 * S);
        // Everyone leaves during the backoff: past the idle delay, no more attempts.
        assert_eq!(p.viewers_changed(3 * S, 0), None);
        assert_eq!(p.next_deadline(), Some(4 * S));
        assert_eq!(timers(&mut p, 4 * S), [Action::Start]);
        assert!(p.start_failed(4 * S) == 4 * S);
        assert_eq!(p.next_deadline(), Some(8 * S));
        assert_eq!(timers(&mut p, 8 * S), []);
        assert_eq!(p.state(), InputState::Waiting);
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.restarts(), 2);
    }

    #[test]
    fn shutdown_stops_it_for_good() {
        let mut p = policy(",restart:cam");
        p.begin();
        p.started(0);
        assert_eq!(p.shutdown(S), Some(Action::Terminate));
        assert_eq!(p.state(), InputState::Running);
        assert_eq!(p.exited(2 * S), AfterExit::Stopped);
        assert_eq!(p.state(), InputState::Stopped);
        assert_eq!(p.next_deadline(), None);
        // During a backoff: the restart is called off.
        let mut p = policy(",on_demand:cam");
        assert_eq!(p.viewers_changed(0, 1), Some(Action::Start));
        p.start_failed(0);
        assert_eq!(p.shutdown(S), None);
        assert_eq!(timers(&mut p, 60 * S), []);
        assert_eq!(p.viewers_changed(60 * S, 3), None);
        assert_eq!(p.state(), InputState::Stopped);
    }
}
