//! Time for the event loop: one monotonic origin, sampled once per loop iteration.
//!
//! Deadlines are kept in microseconds since the origin (so a stream's schedule is exact),
//! while the timer wheel counts 1 ms ticks. A deadline becomes the tick it falls in,
//! rounded **up**, and "now" becomes the tick it falls in, rounded **down**: the wheel
//! fires a timer only once the deadline has truly passed, never early.
//!
//! `X-Timestamp` headers need wall-clock time; it is derived from the same monotonic
//! reading (wall clock at the origin + elapsed), so the stamps of one stream are evenly
//! spaced even if the system clock is stepped while it runs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Microseconds since the clock's origin.
pub type Micros = u64;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
    origin_epoch_us: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Clock {
            origin: Instant::now(),
            origin_epoch_us: epoch.as_micros() as u64,
        }
    }

    /// A clock whose origin is at `origin_epoch_us` on the wall clock: tests that compare
    /// bytes (stamps, `Date`) across runs drive time by hand from a fixed point.
    pub fn at_epoch(origin_epoch_us: u64) -> Self {
        Clock {
            origin: Instant::now(),
            origin_epoch_us,
        }
    }

    pub fn now(&self) -> Micros {
        self.origin.elapsed().as_micros() as u64
    }

    /// Microseconds since the Unix epoch of an instant on this clock.
    pub fn epoch_us(&self, at: Micros) -> u64 {
        self.origin_epoch_us + at
    }
}

/// The wheel tick of "now": rounded down, so a timer is never taken as due too soon.
pub fn tick_of_now(now: Micros) -> u64 {
    now / 1000
}

/// The wheel tick of a deadline: rounded up, so it fires at or after the deadline.
pub fn tick_of_deadline(deadline: Micros) -> u64 {
    deadline.div_ceil(1000)
}

/// How long `poll` may sleep from `now` until the wheel's next tick is due.
pub fn until_tick(now: Micros, tick: u64) -> Duration {
    Duration::from_micros((tick * 1000).saturating_sub(now))
}

pub fn ms(ms: u64) -> Micros {
    ms * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_and_now_rounds_down() {
        assert_eq!(tick_of_deadline(0), 0);
        assert_eq!(tick_of_deadline(1), 1);
        assert_eq!(tick_of_deadline(1000), 1);
        assert_eq!(tick_of_deadline(1001), 2);
        assert_eq!(tick_of_now(1999), 1);
        assert_eq!(tick_of_now(2000), 2);
        // A deadline's tick is reached only once now is at or past the deadline.
        for deadline in [0, 1, 999, 1000, 1001, 123_456] {
            let tick = tick_of_deadline(deadline);
            assert!(tick_of_now(deadline) <= tick);
            assert!(tick_of_now(tick * 1000) >= tick && tick * 1000 >= deadline);
        }
    }

    #[test]
    fn sleeps_until_the_tick_and_never_negative() {
        assert_eq!(until_tick(1500, 3), Duration::from_micros(1500));
        assert_eq!(until_tick(5000, 3), Duration::ZERO);
    }
}
