//! Hierarchical timer wheel (Varghese & Lauck), the crate's one timer structure.
//!
//! Every open stream has a pending timer (its next part) and every connection a head
//! timeout, so with tens of thousands of clients this is the event loop's hottest data
//! structure after the sockets. It knows nothing of mio and never reads a clock: time is a
//! `u64` tick of 1 ms that the caller passes in.
//!
//! # Levels
//!
//! Six levels of 64 slots. A slot of level `l` spans `64^l` ticks, the whole level `64^(l+1)`:
//!
//! | level | slot granularity     | level range             |
//! |------:|---------------------:|------------------------:|
//! |     0 | 1 ms                 | 64 ms                   |
//! |     1 | 64 ms                | 4.1 s                   |
//! |     2 | 4.1 s                | 4.4 min                 |
//! |     3 | 4.4 min              | 4.7 h                   |
//! |     4 | 4.7 h                | 12.4 days               |
//! |     5 | 12.4 days            | 2.2 years (a ring)      |
//!
//! A timer sits in the lowest level whose current rotation holds its deadline: the level of
//! the highest 6-bit group in which the deadline differs from the current tick, in the slot
//! those 6 bits name. When time reaches a slot of level `l > 0`, its timers cascade: each
//! moves down to the level its now closer deadline calls for. A level-0 slot is one tick, so
//! it fires whole. The top level is a ring of the 63 slots after the current one, hence
//! [`MAX_DELAY`]: a deadline further ahead is clamped to `now() + MAX_DELAY` (≈ 2.14 years)
//! and fires then; a caller that really means longer re-arms.
//!
//! # Why this design
//!
//! - Insert and cancel are O(1): a timer is an entry of a slab (a `Vec` with a free list),
//!   linked by `u32` index into its slot's doubly linked list. There is nothing to sift, so
//!   the common case (a timeout cancelled long before it would fire) costs two unlinks,
//!   where a heap either pays `log n` or, cancelling lazily, keeps the dead entry until its
//!   deadline and pays `log n` then.
//! - Finding the next deadline never walks empty ticks: each level keeps an `occupied: u64`
//!   bitmap and the next occupied slot is one `rotate_right` and one `trailing_zeros`.
//! - A timer cascades at most once per level it starts above 0; the server's timeouts (under
//!   a minute) start in levels 0 to 2.
//! - No allocation in steady state: freed entries are reused, [`Wheel::with_capacity`]
//!   reserves the slab up front.
//!
//! # Guarantees
//!
//! - Never early, no rounding: a timer fires at the first [`Wheel::advance`] whose `now` is
//!   at or past its deadline. A deadline already past at insert counts as [`Wheel::now`]
//!   and fires at the next `advance`.
//! - `advance` collects every due payload before the caller runs any, so a timer re-armed
//!   for 0 ms waits for the next `advance` instead of spinning; after a long gap it fires
//!   everything due, in deadline order, ties in insertion order.
//! - [`Wheel::next_deadline`] is the tick at which `advance` next has work: exact when the
//!   earliest timer is in level 0 (due within the current 64 ms block), otherwise the start
//!   of the coarse slot that must cascade; never later than the earliest deadline.
//! - [`TimerId`] carries a generation, so cancelling a timer that fired, was cancelled, or
//!   whose entry was reused is a no-op (until one entry is reused 2^32 times).

use std::fmt;

const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
const LEVELS: usize = 6;
const TOP: usize = LEVELS - 1;
const NIL: u32 = u32::MAX;

/// How far ahead of [`Wheel::now`] a deadline may lie: 63 top-level slots, 63 × 64^5 ms
/// (≈ 2.14 years). A later deadline is clamped to `now() + MAX_DELAY`.
pub const MAX_DELAY: u64 = 63 << (LEVEL_BITS * TOP as u32);

/// Handle to a scheduled timer. Carries a generation, so cancelling a timer that already
/// fired, was cancelled, or whose storage was reused is a harmless no-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

/// A timer wheel generic over its payload. See the module documentation.
pub struct Wheel<T> {
    /// The current tick: every timer due at or before it has fired, except those inserted
    /// since with a past deadline, which wait in its level-0 slot.
    elapsed: u64,
    len: usize,
    occupied: [u64; LEVELS],
    slots: [Slot; LEVELS * SLOTS],
    entries: Vec<Entry<T>>,
    /// Head of the free list of `entries`, linked through `Entry::next`.
    free: u32,
}

/// A doubly linked list of entries; the tail makes appends O(1), which keeps ties in
/// insertion order.
#[derive(Clone, Copy)]
struct Slot {
    head: u32,
    tail: u32,
}

const EMPTY: Slot = Slot { head: NIL, tail: NIL };

struct Entry<T> {
    /// `None` while the entry is on the free list.
    payload: Option<T>,
    /// Already clamped to `elapsed..=elapsed + MAX_DELAY` at insert.
    deadline: u64,
    prev: u32,
    next: u32,
    generation: u32,
    /// Index into `Wheel::slots`, so cancel need not recompute it.
    slot: u16,
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("now", &self.elapsed)
            .field("len", &self.len)
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

impl<T> Wheel<T> {
    /// An empty wheel whose current time is tick 0.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty wheel with room for `capacity` timers before it allocates.
    pub fn with_capacity(capacity: usize) -> Self {
        Wheel {
            elapsed: 0,
            len: 0,
            occupied: [0; LEVELS],
            slots: [EMPTY; LEVELS * SLOTS],
            entries: Vec::with_capacity(capacity),
            free: NIL,
        }
    }

    /// The tick of the last `advance`.
    pub fn now(&self) -> u64 {
        self.elapsed
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `payload` to fire at the first `advance(now)` with `now >= deadline`.
    /// A deadline at or before the current tick fires at the next `advance`; one more than
    /// [`MAX_DELAY`] ahead is clamped to `now() + MAX_DELAY`.
    pub fn insert(&mut self, deadline: u64, payload: T) -> TimerId {
        let deadline = deadline.clamp(self.elapsed, self.elapsed.saturating_add(MAX_DELAY));
        let index = self.alloc(deadline, payload);
        self.link(index);
        self.len += 1;
        TimerId {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Cancels a pending timer and returns its payload; `None` (and no effect) for a
    /// timer that already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let entry = self.entries.get(id.index as usize)?;
        if entry.generation != id.generation || entry.payload.is_none() {
            return None;
        }
        self.unlink(id.index);
        Some(self.release(id.index))
    }

    /// The earliest tick at which `advance` may have something to do: never later than
    /// the earliest pending deadline (it may be earlier, when a coarse level needs to
    /// cascade). `None` when no timer is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_slot().map(|(_, start)| start)
    }

    /// Moves time to `now` and appends every payload whose deadline is `<= now` to `due`,
    /// in deadline order (ties in insertion order), before the caller runs any of them.
    /// A `now` before [`Wheel::now`] counts as `now()`: time never goes back.
    pub fn advance(&mut self, now: u64, due: &mut Vec<T>) {
        let now = now.max(self.elapsed);
        while let Some((slot, start)) = self.next_slot() {
            if start > now {
                break;
            }
            // Cascaded timers are placed relative to the slot's start, which keeps every
            // level's "current rotation" consistent for the timers still above.
            self.elapsed = start;
            self.expire(slot, due);
        }
        self.elapsed = now;
    }

    /// The first occupied slot and the tick it starts at. Levels are scanned bottom-up:
    /// every timer of a level is later than every timer of the levels below it.
    fn next_slot(&self) -> Option<(usize, u64)> {
        let (level, &bits) = self.occupied.iter().enumerate().find(|(_, bits)| **bits != 0)?;
        let shift = LEVEL_BITS * level as u32;
        let current = self.elapsed >> shift;
        let ahead = bits
            .rotate_right((current % SLOTS as u64) as u32)
            .trailing_zeros();
        let tick = current + u64::from(ahead);
        Some((level * SLOTS + (tick % SLOTS as u64) as usize, tick << shift))
    }

    /// Empties `slot`: a level-0 slot fires, a coarser one cascades down.
    fn expire(&mut self, slot: usize, due: &mut Vec<T>) {
        let mut index = std::mem::replace(&mut self.slots[slot], EMPTY).head;
        self.occupied[slot / SLOTS] &= !(1 << (slot % SLOTS));
        let fires = slot < SLOTS;
        while index != NIL {
            let next = self.entries[index as usize].next;
            if fires {
                due.push(self.release(index));
            } else {
                self.link(index);
            }
            index = next;
        }
    }

    /// An entry holding `payload`, from the free list if it has one.
    fn alloc(&mut self, deadline: u64, payload: T) -> u32 {
        if self.free == NIL {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&index| index != NIL)
                .expect("timer wheel holds at most 2^32 - 1 timers");
            self.entries.push(Entry {
                payload: Some(payload),
                deadline,
                prev: NIL,
                next: NIL,
                generation: 0,
                slot: 0,
            });
            return index;
        }
        let index = self.free;
        let entry = &mut self.entries[index as usize];
        self.free = entry.next;
        entry.payload = Some(payload);
        entry.deadline = deadline;
        index
    }

    /// Returns an unlinked entry to the free list; the new generation stales its ids.
    fn release(&mut self, index: u32) -> T {
        let entry = &mut self.entries[index as usize];
        entry.generation = entry.generation.wrapping_add(1);
        entry.next = self.free;
        self.free = index;
        self.len -= 1;
        entry.payload.take().expect("a linked entry holds a payload")
    }

    /// Appends the entry to the slot its deadline calls for at the current tick.
    fn link(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        let level = level_for(self.elapsed, entry.deadline);
        let slot = level * SLOTS + slot_in_level(level, entry.deadline);
        let tail = self.slots[slot].tail;
        entry.prev = tail;
        entry.next = NIL;
        entry.slot = slot as u16;
        if tail == NIL {
            self.slots[slot].head = index;
            self.occupied[level] |= 1 << (slot % SLOTS);
        } else {
            self.entries[tail as usize].next = index;
        }
        self.slots[slot].tail = index;
    }

    fn unlink(&mut self, index: u32) {
        let Entry { prev, next, slot, .. } = self.entries[index as usize];
        let slot = usize::from(slot);
        match prev {
            NIL => self.slots[slot].head = next,
            prev => self.entries[prev as usize].next = next,
        }
        match next {
            NIL => self.slots[slot].tail = prev,
            next => self.entries[next as usize].prev = prev,
        }
        if self.slots[slot].head == NIL {
            self.occupied[slot / SLOTS] &= !(1 << (slot % SLOTS));
        }
    }
}

/// The level of the highest 6-bit group in which `deadline` differs from `elapsed`, capped
/// at the top level (a ring, which `MAX_DELAY` keeps from wrapping onto its current slot).
fn level_for(elapsed: u64, deadline: u64) -> usize {
    let highest_bit = 63 - ((elapsed ^ deadline) | (SLOTS as u64 - 1)).leading_zeros();
    (highest_bit / LEVEL_BITS).min(TOP as u32) as usize
}

fn slot_in_level(level: usize, deadline: u64) -> usize {
    (deadline >> (LEVEL_BITS * level as u32)) as usize % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn fire<T>(wheel: &mut Wheel<T>, now: u64) -> Vec<T> {
        let mut due = Vec::new();
        wheel.advance(now, &mut due);
        due
    }

    /// Asserts each deadline fires exactly at its tick: not one tick before, and alone.
    fn assert_fires_exactly_at(wheel: &mut Wheel<u64>, deadlines: &[u64]) {
        for &deadline in deadlines {
            assert_eq!(fire(wheel, deadline - 1), [], "early before {deadline}");
            assert_eq!(fire(wheel, deadline), [deadline], "late at {deadline}");
        }
        assert!(wheel.is_empty());
    }

    #[test]
    fn same_tick_fires_together_in_insertion_order() {
        let mut wheel = Wheel::new();
        for payload in ["a", "b", "c"] {
            wheel.insert(10, payload);
        }
        assert_eq!(wheel.next_deadline(), Some(10));
        assert_eq!(fire(&mut wheel, 9), [] as [&str; 0]);
        assert_eq!(fire(&mut wheel, 10), ["a", "b", "c"]);
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn slot_collision_one_rotation_later() {
        let mut wheel = Wheel::new();
        fire(&mut wheel, 3);
        // Same level-0 slot index (5), one and two rotations apart, and the same at level 1.
        let deadlines = [5, 5 + 64, 5 + 128, 5 + 64 * 64, 5 + 2 * 64 * 64];
        for &deadline in deadlines.iter().rev() {
            wheel.insert(deadline, deadline);
        }
        assert_fires_exactly_at(&mut wheel, &deadlines);
    }

    #[test]
    fn cascades_across_each_level_boundary() {
        for start in [0, 1, 12_345, (1 << 36) - 70] {
            for level in 1..LEVELS as u32 {
                let span = 1u64 << (LEVEL_BITS * level);
                let boundary = (start / span + 1) * span;
                let mut wheel = Wheel::new();
                fire(&mut wheel, start);
                let deadlines = [boundary - 1, boundary, boundary + 1, boundary + span];
                for &deadline in &deadlines {
                    wheel.insert(deadline, deadline);
                }
                assert_fires_exactly_at(&mut wheel, &deadlines);
            }
        }
    }

    #[test]
    fn catches_up_after_a_long_gap_in_deadline_order() {
        let mut wheel = Wheel::new();
        fire(&mut wheel, 1000);
        let deadlines = [
            1 << 33,
            1001,
            70_000,
            1063,
            5_000_000,
            1064,
            300_000_000,
            1 << 31,
            4200,
        ];
        for deadline in deadlines {
            wheel.insert(deadline, deadline);
        }
        let mut sorted = deadlines;
        sorted.sort_unstable();
        assert_eq!(fire(&mut wheel, 1 << 34), sorted);
        assert_eq!(wheel.now(), 1 << 34);
    }

    #[test]
    fn cancel_between_triggers() {
        let mut wheel = Wheel::new();
        let a = wheel.insert(10, 'a');
        let b = wheel.insert(200, 'b');
        let c = wheel.insert(5000, 'c');
        assert_eq!(fire(&mut wheel, 10), ['a']);
        assert_eq!(wheel.cancel(b), Some('b'));
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.next_deadline(), Some(4096), "start of c's level-1 slot");
        assert_eq!(fire(&mut wheel, 4999), []);
        assert_eq!(wheel.cancel(a), None, "already fired");
        assert_eq!(fire(&mut wheel, 5000), ['c']);
        assert_eq!(wheel.cancel(c), None);
    }

    #[test]
    fn stale_ids_are_harmless() {
        let mut wheel = Wheel::new();
        let fired = wheel.insert(1, "fired");
        fire(&mut wheel, 1);
        let cancelled = wheel.insert(5, "cancelled");
        assert_eq!(wheel.cancel(cancelled), Some("cancelled"));
        // Both entries are free again; these reuse them.
        let x = wheel.insert(7, "x");
        let y = wheel.insert(7, "y");
        assert_eq!(wheel.cancel(fired), None);
        assert_eq!(wheel.cancel(cancelled), None);
        assert_eq!(wheel.len(), 2);
        assert_eq!(wheel.cancel(y), Some("y"));
        assert_eq!(fire(&mut wheel, 7), ["x"]);
        assert_eq!(wheel.cancel(x), None);
        assert_eq!(wheel.cancel(y), None);
    }

    #[test]
    fn clamps_far_deadlines_to_max_delay() {
        for start in [0, 999, (1 << 36) - 5, 3 << 40] {
            let mut wheel = Wheel::new();
            fire(&mut wheel, start);
            wheel.insert(u64::MAX, "never");
            wheel.insert(start + MAX_DELAY + 1, "just too far");
            let limit = start + MAX_DELAY;
            assert!(wheel.next_deadline().unwrap() <= limit);
            assert_eq!(fire(&mut wheel, limit - 1), [] as [&str; 0]);
            assert_eq!(fire(&mut wheel, limit), ["never", "just too far"]);
        }
    }

    #[test]
    fn past_deadlines_fire_at_the_next_advance_and_time_never_goes_back() {
        let mut wheel = Wheel::new();
        fire(&mut wheel, 500);
        wheel.insert(20, "late");
        wheel.insert(500, "now");
        assert_eq!(wheel.next_deadline(), Some(500));
        assert_eq!(fire(&mut wheel, 100), ["late", "now"]);
        assert_eq!(wheel.now(), 500);
        wheel.insert(501, "next");
        assert_eq!(fire(&mut wheel, 0), [] as [&str; 0]);
        assert_eq!(fire(&mut wheel, 501), ["next"]);
    }

    #[test]
    fn zero_ms_rearm_waits_for_the_next_advance() {
        let mut wheel = Wheel::new();
        wheel.insert(3, ());
        let mut due = Vec::new();
        wheel.advance(3, &mut due);
        assert_eq!(due.len(), 1);
        for () in due.drain(..) {
            wheel.insert(wheel.now(), ());
        }
        assert_eq!(wheel.len(), 1);
        wheel.advance(3, &mut due);
        assert_eq!(due.len(), 1);
    }

    #[test]
    fn next_deadline_is_exact_in_level_0_and_a_slot_start_above() {
        let mut wheel = Wheel::new();
        fire(&mut wheel, 100);
        assert_eq!(wheel.next_deadline(), None);
        wheel.insert(300, ());
        assert_eq!(wheel.next_deadline(), Some(256));
        fire(&mut wheel, 256);
        assert_eq!(wheel.next_deadline(), Some(300));
        wheel.insert(120, ());
        assert_eq!(wheel.next_deadline(), Some(256), "120 was due at 256 already");
        fire(&mut wheel, 256);
        assert_eq!(wheel.next_deadline(), Some(300));
    }

    #[test]
    fn steady_state_does_not_allocate() {
        let mut wheel = Wheel::with_capacity(100);
        let capacity = wheel.entries.capacity();
        let mut due = Vec::with_capacity(100);
        let mut ids = Vec::with_capacity(100);
        for round in 0..50u64 {
            ids.extend((0..100).map(|i| wheel.insert(round * 1000 + i * 37 % 900, i)));
            for id in ids.drain(..).step_by(2) {
                wheel.cancel(id);
            }
            due.clear();
            wheel.advance(round * 1000 + 999, &mut due);
            assert_eq!(due.len(), 50);
        }
        assert_eq!(wheel.entries.capacity(), capacity);
        assert_eq!(wheel.entries.len(), 100);
    }

    /// SplitMix64: a seeded generator, so a failing sequence reproduces from its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    /// The reference: pending timers keyed by (effective deadline, insertion sequence).
    #[derive(Default)]
    struct Model {
        timers: BTreeMap<(u64, u64), u64>,
        keys: HashMap<TimerId, (u64, u64)>,
    }

    /// A delay that lands near level boundaries, beyond `MAX_DELAY`, or in the past.
    fn random_deadline(rng: &mut Rng, now: u64) -> u64 {
        let span = 1u64 << (LEVEL_BITS * rng.below(7) as u32);
        match rng.below(8) {
            0 => now.saturating_sub(rng.below(100)),
            1 => (now / span + 1 + rng.below(2)) * span + rng.below(3) - 1,
            2 => now + rng.below(1 << 40),
            _ => now + rng.below(span.max(130)),
        }
    }

    fn random_now(rng: &mut Rng, now: u64) -> u64 {
        match rng.below(8) {
            0 => now.saturating_sub(rng.below(10)),
            1 => now + (1 << (LEVEL_BITS * rng.below(7) as u32)) - now % 64,
            2 => now + rng.below(1 << 38),
            _ => now + rng.below(200),
        }
    }

    fn check_next_deadline(wheel: &Wheel<u64>, model: &Model, context: &str) {
        assert_eq!(wheel.len(), model.timers.len(), "{context}");
        let earliest = model.timers.keys().next().map(|&(deadline, _)| deadline);
        let next = wheel.next_deadline();
        assert_eq!(next.is_some(), earliest.is_some(), "{context}");
        if let (Some(next), Some(earliest)) = (next, earliest) {
            assert!(wheel.now() <= next && next <= earliest, "{context}");
            if earliest ^ wheel.now() < SLOTS as u64 {
                assert_eq!(next, earliest, "{context}: level 0 is exact");
            }
        }
    }

    fn run_model(seed: u64) {
        let mut rng = Rng(seed);
        let mut wheel = Wheel::new();
        let mut model = Model::default();
        let mut ids = Vec::new();
        let mut due = Vec::new();
        let start = match rng.below(3) {
            0 => 0,
            1 => rng.below(1 << 40),
            _ => ((1 + rng.below(4)) << 36) - rng.below(5000),
        };
        wheel.advance(start, &mut due);
        for step in 0..300u64 {
            let context = format!("seed {seed}, step {step}");
            let now = wheel.now();
            match rng.below(20) {
                0..=8 => {
                    let deadline = random_deadline(&mut rng, now);
                    let id = wheel.insert(deadline, step);
                    let key = (deadline.clamp(now, now + MAX_DELAY), step);
                    model.timers.insert(key, step);
                    model.keys.insert(id, key);
                    ids.push(id);
                }
                9..=12 if !ids.is_empty() => {
                    let id = ids[rng.below(ids.len() as u64) as usize];
                    let expected = model.keys.remove(&id).and_then(|key| model.timers.remove(&key));
                    assert_eq!(wheel.cancel(id), expected, "{context}");
                }
                _ => {
                    let target = random_now(&mut rng, now);
                    due.clear();
                    wheel.advance(target, &mut due);
                    let target = target.max(now);
                    let later = model.timers.split_off(&(target + 1, 0));
                    let expected: Vec<u64> = std::mem::replace(&mut model.timers, later)
                        .into_values()
                        .collect();
                    model.keys.retain(|_, &mut (deadline, _)| deadline > target);
                    assert_eq!(due, expected, "{context}: advance({target})");
                    assert_eq!(wheel.now(), target, "{context}");
                }
            }
            check_next_deadline(&wheel, &model, &context);
        }
    }

    #[test]
    fn matches_a_btreemap_model() {
        for seed in 0..3000 {
            run_model(seed);
        }
    }
}
