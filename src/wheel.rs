//! Timer wheel: the crate's one timer structure (PLACEHOLDER, being replaced by the
//! hierarchical wheel of issue 3; the public API below is final).
//!
//! Time is a `u64` tick (1 ms) that the caller passes in; the wheel never reads a clock.

use std::collections::BTreeMap;

/// Handle to a scheduled timer. Carries a generation, so cancelling a timer that already
/// fired, was cancelled, or whose storage was reused is a harmless no-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

/// A timer wheel generic over its payload.
#[derive(Debug)]
pub struct Wheel<T> {
    now: u64,
    next_generation: u32,
    timers: BTreeMap<(u64, u32), T>,
    by_id: std::collections::HashMap<u32, u64>,
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Wheel<T> {
    /// An empty wheel whose current time is tick 0.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty wheel with room for `capacity` timers before it allocates.
    pub fn with_capacity(_capacity: usize) -> Self {
        Wheel {
            now: 0,
            next_generation: 0,
            timers: BTreeMap::new(),
            by_id: Default::default(),
        }
    }

    /// The tick of the last `advance`.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.timers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    /// Schedules `payload` to fire at the first `advance(now)` with `now >= deadline`.
    /// A deadline at or before the current tick fires at the next `advance`.
    pub fn insert(&mut self, deadline: u64, payload: T) -> TimerId {
        self.next_generation += 1;
        let id = self.next_generation;
        self.timers.insert((deadline, id), payload);
        self.by_id.insert(id, deadline);
        TimerId {
            index: id,
            generation: id,
        }
    }

    /// Cancels a pending timer and returns its payload; `None` (and no effect) for a
    /// timer that already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let deadline = self.by_id.remove(&id.index)?;
        self.timers.remove(&(deadline, id.generation))
    }

    /// The earliest tick at which `advance` may have something to do: never later than
    /// the earliest pending deadline (it may be earlier, when a coarse level needs to
    /// cascade). `None` when no timer is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.keys().next().map(|&(d, _)| d)
    }

    /// Moves time to `now` and appends every payload whose deadline is `<= now` to `due`,
    /// in deadline order, before the caller runs any of them.
    pub fn advance(&mut self, now: u64, due: &mut Vec<T>) {
        self.now = self.now.max(now);
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let ((_, id), payload) = entry.remove_entry();
            self.by_id.remove(&id);
            due.push(payload);
        }
    }
}
