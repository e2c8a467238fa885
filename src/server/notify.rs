//! The loop's side of systemd's notification protocol (`Type=notify` units): `READY=1`
//! once the listeners are up, `STATUS=` (clients, viewers, streams) when it changed,
//! `WATCHDOG=1` at half of `WATCHDOG_USEC`, `STOPPING=1` when a graceful stop begins.
//!
//! Invariants:
//! - The watchdog ping comes from a timer of the loop's own wheel, not from a thread: a
//!   loop that stops turning stops pinging, and systemd restarts the service. Half the
//!   period leaves the other half for a slow turn.
//! - The status is looked at every [`STATUS_EVERY`] and sent only when it changed, so a
//!   busy server sends at most one status a period and an idle one none.
//! - Without `NOTIFY_SOCKET` there is no notifier, no timer and no cost.
//! - A failed send is logged (rate-limited to once per [`STATUS_EVERY`]) and never ends
//!   the server: systemd being slow to read is not the server's failure.

use log::{debug, warn};

use crate::clock::{Micros, tick_of_deadline};
use crate::server::Timer;
use crate::systemd::{self, Notify};
use crate::wheel::Wheel;

/// How often the status is looked at: 2 s.
pub const STATUS_EVERY: Micros = 2_000_000;

/// The notification socket, and what was last told through it.
#[derive(Debug)]
pub(crate) struct Notifier {
    notify: Notify,
    /// Half of `WATCHDOG_USEC`, if systemd watches this process.
    ping_every: Option<Micros>,
    /// The last status sent.
    status: String,
    /// When a failed send was last logged.
    warned_at: Option<Micros>,
}

impl Notifier {
    /// A notifier if systemd gave a `NOTIFY_SOCKET` (a bad one is logged and ignored:
    /// the server serves without telling).
    pub fn from_env() -> Option<Notifier> {
        match Notify::from_env() {
            Ok(notify) => notify.map(|notify| Notifier {
                notify,
                ping_every: systemd::watchdog_usec().map(|us| (us / 2).max(1)),
                status: String::new(),
                warned_at: None,
            }),
            Err(e) => {
                warn!("NOTIFY_SOCKET: {e}; not notifying systemd");
                None
            }
        }
    }

    /// The server listens: `READY=1` with the first status, and the timers start.
    pub fn ready(&mut self, now: Micros, timers: &mut Wheel<Timer>, status: String) {
        self.send(now, &format!("READY=1\nSTATUS={status}"));
        self.status = status;
        timers.insert(tick_of_deadline(now + STATUS_EVERY), Timer::NotifyStatus);
        if let Some(every) = self.ping_every {
            debug!("systemd watchdog: a ping every {} ms", every / 1000);
            self.ping(now, timers);
        }
    }

    /// [`Timer::Watchdog`] fired: ping, and set the next one.
    pub fn ping(&mut self, now: Micros, timers: &mut Wheel<Timer>) {
        let Some(every) = self.ping_every else { return };
        self.send(now, "WATCHDOG=1");
        timers.insert(tick_of_deadline(now + every), Timer::Watchdog);
    }

    /// [`Timer::NotifyStatus`] fired: send `status` if it changed; look again later.
    pub fn on_status(&mut self, now: Micros, timers: &mut Wheel<Timer>, status: String) {
        if status != self.status {
            self.send(now, &format!("STATUS={status}"));
            self.status = status;
        }
        timers.insert(tick_of_deadline(now + STATUS_EVERY), Timer::NotifyStatus);
    }

    /// A graceful stop began.
    pub fn stopping(&mut self, now: Micros) {
        self.send(now, "STOPPING=1\nSTATUS=stopping");
    }

    fn send(&mut self, now: Micros, state: &str) {
        if let Err(e) = self.notify.send(state) {
            if self.warned_at.is_none_or(|at| now >= at + STATUS_EVERY) {
                warn!("sd_notify: {e}");
                self.warned_at = Some(now);
            }
        }
    }
}
