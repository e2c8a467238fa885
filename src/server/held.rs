//! The budget for old live frames held by connections
//! ([`Limits::held_frames_budget`](crate::server::conn::Limits::held_frames_budget)), per
//! live stream.
//!
//! A connection writes at most one part at a time, and a live stream shares each frame
//! by `Rc`; a frame stays in memory after a newer one replaced it only while some
//! connection still writes it. Viewers that stop reading at different moments would each
//! pin a different old frame until their send timeout: an attacker joining one
//! never-reading viewer per frame period would hold fps × send-timeout frames. So each
//! time a live stream's viewers are woken (after a frame, a heartbeat or the end), the
//! loop counts that stream's replaced frames still held
//! ([`Live::evict_below`](crate::stream::Live::evict_below)) and, past the budget, closes
//! the connections of its wake list holding the oldest ones (`held_frames` in the stats)
//! until what is left fits. Invariant: after the check, a live stream's old frames held
//! by its viewers total at most the budget once the turn's closed connections are reaped
//! (other holders, snapshot answers, are not evicted: they are short and counted in the
//! total like the rest). Only a stream's own publishing adds to what it holds, so
//! checking each stream when it wakes its viewers is enough.

use log::debug;

use crate::routes::stats::Reason;
use crate::server::Server;

impl Server {
    /// Closes the viewers on wake list `list` that hold its stream's oldest replaced
    /// frames while those frames go over the budget.
    pub(super) fn enforce_held_frames_budget(&mut self, list: usize) {
        let Some(bound) = self
            .shared
            .watchers
            .stream(list)
            .as_live()
            .and_then(|live| live.evict_below(self.shared.limits.held_frames_budget))
        else {
            return;
        };
        for i in 0..self.shared.watchers.len(list) {
            let (key, serial) = self.shared.watchers.get(list, i);
            let Some(slot) = self.conns.get_mut(key) else {
                continue;
            };
            let holds = slot.conn.serial() == serial && slot.conn.holds_frame_before(bound);
            if holds && slot.closed.is_none() {
                debug!("#{key} closed: it held a frame below {bound} over the budget");
                slot.closed = Some(Reason::HeldFrames);
                self.closed.push(key);
            }
        }
    }
}
