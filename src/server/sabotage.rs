//! One connection following its stream's connection faults ([`WirePlan`]): a chunked
//! body, a trickle, a stall, reset or close in the middle of a part.
//!
//! Sans-IO, like the connection: it frames what is queued and moves the outbox's mark
//! ([`Outbox::set_mark`]); when writing reaches the mark, [`Sabotage::at_mark`] says what
//! the connection does there ([`Act`]), and the connection does it (arms its one timer,
//! resets or closes its socket).
//!
//! Invariants:
//! - Only a connection of a stream with a plan has one, and only while it sends the
//!   stream (not for `HEAD`): every other connection's write path is as it was.
//! - The mark is the nearest of two stops: the cut of the part the next cut names, once
//!   that part is queued (after its header block and half its body, rounded down), and
//!   the next drip stop. A wait leaves the mark where it is, so nothing is written until
//!   the connection's timer ends it ([`Sabotage::resume`]).
//! - A chunked body ends with the zero-length chunk once everything else is out
//!   ([`Sabotage::finish`]), but not after a reset or a close on purpose.

use std::rc::Rc;

use crate::clock::Micros;
use crate::http::Version;
use crate::server::outbox::{Chunk, Outbox};
use crate::stream::fault::{Cut, WirePlan};

/// What a connection does when writing reaches the mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Write nothing for this long (arm the timer), then [`Sabotage::resume`].
    Wait(Micros),
    /// Already waiting: nothing to do until the timer.
    Waiting,
    /// Not a stop: write on.
    WriteOn,
    /// Reset the connection (`SO_LINGER` 0, then close).
    Reset,
    /// Close the connection (a FIN).
    Truncate,
}

/// The connection faults of one connection, and how far it is through them.
#[derive(Debug)]
pub struct Sabotage {
    plan: Rc<WirePlan>,
    /// `plan.chunked`, for an HTTP/1.1 client.
    chunked: bool,
    /// Parts queued so far: the number of the last one.
    parts: u64,
    /// The index in `plan.cuts` of the next cut to place.
    next_cut: usize,
    /// The placed cut: where (a byte of the response) and what.
    cut: Option<(u64, Cut)>,
    /// The next drip stop.
    drip_at: Option<u64>,
    waiting: bool,
    /// The zero-length chunk is queued.
    finished: bool,
}

impl Sabotage {
    /// Starts with what is queued so far (the response head) going out whole: the drip
    /// starts after it.
    pub fn new(plan: Rc<WirePlan>, version: Version, out: &mut Outbox) -> Sabotage {
        let head_end = out.sent() + out.pending() as u64;
        let sabotage = Sabotage {
            chunked: plan.chunked && version == Version::Http11,
            drip_at: plan.drip.map(|(bytes, _)| head_end + bytes as u64),
            plan,
            parts: 0,
            next_cut: 0,
            cut: None,
            waiting: false,
            finished: false,
        };
        sabotage.mark(out);
        sabotage
    }

    /// The chunks from index `from` on were just queued (`part`: they hold the next part):
    /// frames them as HTTP chunks, and places the cut that names this part.
    pub fn queued(&mut self, out: &mut Outbox, from: usize, part: bool) {
        if self.chunked {
            out.frame_chunks(from);
        }
        if !part {
            return;
        }
        self.parts += 1;
        match self.plan.cuts.get(self.next_cut) {
            Some(&(number, cut)) if number == self.parts => {
                self.next_cut += 1;
                // The header block is out, half the body is not.
                self.cut = out
                    .body_position(from)
                    .map(|(start, len)| (start + len as u64 / 2, cut));
            }
            _ => {}
        }
        self.mark(out);
    }

    /// Writing reached the mark: what to do there.
    pub fn at_mark(&mut self, out: &mut Outbox) -> Act {
        if self.waiting {
            return Act::Waiting;
        }
        let here = out.sent();
        if let Some((at, cut)) = self.cut {
            if at == here {
                self.cut = None;
                match cut {
                    Cut::Stall(delay) => {
                        self.waiting = true;
                        return Act::Wait(delay);
                    }
                    Cut::Reset => return Act::Reset,
                    Cut::Truncate => return Act::Truncate,
                }
            }
        }
        match (self.drip_at, self.plan.drip) {
            (Some(at), Some((_, every))) if at == here => {
                self.waiting = true;
                Act::Wait(every)
            }
            // Stops are never behind what is written, so this is not reached; were it,
            // they move on rather than leave the connection waiting for nothing.
            _ => {
                debug_assert!(false, "a mark at no stop: {self:?}");
                self.cut = self.cut.filter(|&(at, _)| at > here);
                self.drip_at = self.drip_at.map(|at| at.max(here + 1));
                self.mark(out);
                Act::WriteOn
            }
        }
    }

    /// The connection's timer fired: `true` when it ended a wait, and writing goes on.
    pub fn resume(&mut self, out: &mut Outbox) -> bool {
        if !std::mem::take(&mut self.waiting) {
            return false;
        }
        if let (Some(at), Some((bytes, _))) = (self.drip_at, self.plan.drip) {
            if at <= out.sent() {
                self.drip_at = Some(out.sent() + bytes as u64);
            }
        }
        self.mark(out);
        true
    }

    /// Everything is out: queues the end of a chunked body, once; `true` when it did.
    pub fn finish(&mut self, out: &mut Outbox) -> bool {
        if !self.chunked || std::mem::replace(&mut self.finished, true) {
            return false;
        }
        out.push(Chunk::Static(b"0\r\n\r\n"));
        true
    }

    /// Sets the outbox's mark at the nearest stop.
    fn mark(&self, out: &mut Outbox) {
        let cut = self.cut.map_or(u64::MAX, |(at, _)| at);
        out.set_mark(cut.min(self.drip_at.unwrap_or(u64::MAX)));
    }
}
