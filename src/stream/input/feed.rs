//! A live stream's frame policy, the same for every kind of input: given bytes (split
//! here at JPEG markers) or whole frames, decide which become the stream's current
//! frame, and count what happened.
//!
//! In order, for each complete frame:
//! 1. counted in (`frames_in`); over `max_frame` bytes: dropped (`dropped_oversize`);
//! 2. `drop_same=N`: byte-identical to the current frame, and fewer than N dropped in a
//!    row: dropped (`dropped_same`) — a static scene costs no bandwidth, and every
//!    N+1st copy still goes out;
//! 3. `fps` cap: too soon after the last published frame, it is held back, and a newer
//!    frame replaces it until its slot ([`Feed::on_timer`]): the newest frame wins;
//! 4. published to the stream ([`Live::publish`]), unless it holds the stream's
//!    boundary, which would cut the part short for every client: then dropped, counted
//!    (`dropped_boundary`) and logged.
//!
//! Heartbeat (`refresh`): with no frame published for `refresh`, the current frame is
//! published again ([`Live::repeat`]: the same encoded part, shared by `Rc`, under a new
//! frame number; nothing is copied or encoded), so proxies' read timeouts and browsers
//! that show a part only once the next one starts keep working.
//!
//! Invariants: at most one frame is held (the newest), plus the splitter's buffer of at
//! most `max_frame`; the counters are copied to the stream after every call
//! ([`Live::input_stats`]), so `/stats` never sees them half-updated; after
//! [`Feed::end`] nothing more is published.

use std::rc::Rc;

use log::{info, warn};

use crate::clock::Micros;
use crate::stream::input::LiveOptions;
use crate::stream::jpeg::Splitter;
use crate::stream::{Live, Stream};

/// The window the current fps is measured over.
const FPS_WINDOW: Micros = 1_000_000;

/// What an input is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputState {
    /// Ready, waiting for its producer (a pipe's writer, an on-demand viewer).
    #[default]
    Waiting,
    /// Its producer is there and frames may come.
    Running,
    /// Not running, and not coming back by itself (ended, or on demand with no viewer).
    Stopped,
    /// Its producer failed; it tries again after a pause.
    Restarting,
}

impl InputState {
    /// The name in `/stats` and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            InputState::Waiting => "waiting",
            InputState::Running => "running",
            InputState::Stopped => "stopped",
            InputState::Restarting => "restarting",
        }
    }
}

/// One input's counters, since the server started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InputStats {
    /// The input's kind (`Source::kind`).
    pub kind: &'static str,
    pub state: InputState,
    /// Times its producer was started again after it failed or ended.
    pub restarts: u64,
    /// Complete frames it delivered (before any was dropped).
    pub frames_in: u64,
    /// Bytes it read (framing and junk included).
    pub bytes_in: u64,
    /// Frames made current.
    pub published: u64,
    /// Heartbeats: the current frame published again after `refresh`.
    pub repeated: u64,
    pub dropped_same: u64,
    pub dropped_oversize: u64,
    pub dropped_boundary: u64,
    /// Bytes outside frames, and of broken or cut frames.
    pub junk_bytes: u64,
    /// Frames published a second over the last full window.
    fps: f64,
    /// When that window began.
    window_start: Micros,
    /// Frames published in the window in progress.
    window_frames: u64,
    /// When the current frame arrived.
    frame_at: Option<Micros>,
}

impl InputStats {
    /// Frames published a second lately (0 once none came for two windows).
    pub fn fps(&self, now: Micros) -> f64 {
        if now.saturating_sub(self.window_start) > 2 * FPS_WINDOW {
            0.0
        } else {
            self.fps
        }
    }

    /// How old the current frame is, if there is one.
    pub fn frame_age(&self, now: Micros) -> Option<Micros> {
        self.frame_at.map(|at| now.saturating_sub(at))
    }

    fn count_published(&mut self, now: Micros) {
        self.published += 1;
        self.frame_at = Some(now);
        let elapsed = now.saturating_sub(self.window_start);
        if elapsed >= FPS_WINDOW {
            self.fps = self.window_frames as f64 * 1e6 / elapsed as f64;
            self.window_start = now;
            self.window_frames = 0;
        }
        self.window_frames += 1;
    }
}

/// A live stream's frame policy and counters (see the module header).
#[derive(Debug)]
pub struct Feed {
    splitter: Splitter,
    gate: Gate,
}

/// Everything but the splitter, so that the splitter's frames can be handed to it.
#[derive(Debug)]
struct Gate {
    stream: Rc<Stream>,
    options: LiveOptions,
    min_interval: Micros,
    /// When the last new frame was published (the fps cap counts from it).
    last_new: Option<Micros>,
    /// When viewers last got a frame, new or repeated (the heartbeat counts from it).
    last_sent: Micros,
    /// The newest frame waiting for the fps cap.
    held: Option<Vec<u8>>,
    /// Identical frames dropped in a row.
    same_run: u32,
    /// Something was published since the loop last asked: wake the viewers.
    wake: bool,
    ended: bool,
    stats: InputStats,
    path: String,
}

impl Feed {
    /// The feed of `stream` (a live one) at `path`, from an input of `kind`.
    pub fn new(path: &str, kind: &'static str, stream: Rc<Stream>, options: LiveOptions) -> Feed {
        let min_interval = options.fps.map_or(0, |fps| (1e6 / fps).round() as Micros);
        Feed {
            splitter: Splitter::new(options.max_frame),
            gate: Gate {
                stream,
                options,
                min_interval,
                last_new: None,
                last_sent: 0,
                held: None,
                same_run: 0,
                wake: false,
                ended: false,
                stats: InputStats {
                    kind,
                    ..InputStats::default()
                },
                path: path.to_owned(),
            },
        }
    }

    /// The stream's path.
    pub fn path(&self) -> &str {
        &self.gate.path
    }

    /// Its stream.
    pub fn stream(&self) -> &Rc<Stream> {
        &self.gate.stream
    }

    /// The options it was made with.
    pub fn options(&self) -> LiveOptions {
        self.gate.options
    }

    /// Bytes of a byte-stream producer, in any chunking: each complete frame goes
    /// through the policy.
    pub fn push_bytes(&mut self, data: &[u8], now: Micros) {
        if self.gate.ended {
            return;
        }
        self.gate.stats.bytes_in += data.len() as u64;
        let gate = &mut self.gate;
        self.splitter.push(data, |frame| gate.take(frame, now));
        self.sync();
    }

    /// One whole frame from a framed producer (relay, push).
    pub fn offer(&mut self, frame: &[u8], now: Micros) {
        if self.gate.ended {
            return;
        }
        self.gate.stats.bytes_in += frame.len() as u64;
        if frame.len() > self.gate.options.max_frame {
            self.gate.stats.frames_in += 1;
            self.gate.stats.dropped_oversize += 1;
        } else {
            self.gate.take(frame, now);
        }
        self.sync();
    }

    /// Frames a framed producer (relay, push) dropped for their size before they were
    /// whole: counted as if offered (`frames_in`, `dropped_oversize`).
    pub fn count_oversize(&mut self, frames: u64) {
        self.gate.stats.frames_in += frames;
        self.gate.stats.dropped_oversize += frames;
        self.sync();
    }

    /// The producer went away (it closed, died, or restarts): a frame it left half
    /// written is dropped, so its bytes are never glued to the next producer's.
    pub fn cut(&mut self) {
        let stale = std::mem::replace(&mut self.splitter, Splitter::new(self.gate.options.max_frame));
        self.gate.add_split_stats(&stale, stale.buffered() as u64);
        self.sync();
    }

    pub fn set_state(&mut self, state: InputState) {
        self.gate.stats.state = state;
        self.sync();
    }

    /// The producer stopped on purpose (an on-demand input idle, see [`Live::retire`]):
    /// its last frame is not served to newcomers, nor repeated, until the next one.
    pub fn retire(&mut self) {
        if let Some(live) = self.gate.live() {
            live.retire();
        }
        self.gate.held = None;
        self.sync();
    }

    /// Counts a start of the producer after it failed or ended.
    pub fn count_restart(&mut self) {
        self.gate.stats.restarts += 1;
        self.sync();
    }

    /// The input is over for good: a held frame is published, then every viewer gets
    /// the closing delimiter.
    pub fn end(&mut self, now: Micros) {
        if self.gate.ended {
            return;
        }
        self.cut();
        if let Some(frame) = self.gate.held.take() {
            self.gate.publish(&frame, now);
        }
        let stats = &self.gate.stats;
        info!(
            "{}: input ended: {} frames in, {} published, {} junk bytes, {} oversize dropped",
            self.gate.path, stats.frames_in, stats.published, stats.junk_bytes, stats.dropped_oversize
        );
        if let Some(live) = self.gate.live() {
            live.end();
        }
        self.gate.ended = true;
        self.gate.wake = true;
        self.gate.stats.state = InputState::Stopped;
        self.sync();
    }

    pub fn is_ended(&self) -> bool {
        self.gate.ended
    }

    /// When [`Feed::on_timer`] has something to do: a held frame's slot, or the next
    /// heartbeat.
    pub fn next_deadline(&self) -> Option<Micros> {
        let gate = &self.gate;
        if gate.ended {
            return None;
        }
        let slot = gate.held.as_ref().map(|_| gate.next_slot());
        let has_frame = gate.stats.frame_at.is_some() && gate.live().is_some_and(|l| !l.stale.get());
        let beat = (gate.options.refresh > 0 && has_frame).then(|| gate.last_sent + gate.options.refresh);
        match (slot, beat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Publishes a held frame whose slot came, or the heartbeat that is due.
    pub fn on_timer(&mut self, now: Micros) {
        let gate = &mut self.gate;
        if gate.ended {
            return;
        }
        if gate.held.is_some() && now >= gate.next_slot() {
            if let Some(frame) = gate.held.take() {
                gate.publish(&frame, now);
            }
        }
        let due = gate.last_sent + gate.options.refresh;
        if gate.options.refresh > 0 && now >= due && gate.held.is_none() {
            gate.repeat(now);
        }
        self.sync();
    }

    /// Whether anything was published (or the stream ended) since the last call: the
    /// loop wakes the stream's viewers then.
    pub fn take_wake(&mut self) -> bool {
        std::mem::take(&mut self.gate.wake)
    }

    /// The counters now.
    pub fn stats(&self) -> InputStats {
        self.gate.stats
    }

    /// Copies the counters, the splitter's included, to the stream for `/stats`.
    fn sync(&mut self) {
        let split = self.splitter.stats();
        let mut stats = self.gate.stats;
        stats.junk_bytes += split.junk_bytes;
        stats.dropped_oversize += split.oversize_dropped;
        stats.frames_in += split.oversize_dropped;
        if let Some(live) = self.gate.live() {
            live.set_input_stats(stats);
        }
    }
}

impl Gate {
    fn next_slot(&self) -> Micros {
        self.last_new
            .map_or(0, |last| last.saturating_add(self.min_interval))
    }

    /// One complete frame of at most `max_frame` bytes.
    fn take(&mut self, frame: &[u8], now: Micros) {
        self.stats.frames_in += 1;
        let live = self.live();
        let limit = self.options.drop_same;
        if self.held.is_none() && self.same_run < limit && live.is_some_and(|l| l.is_current(frame)) {
            self.same_run += 1;
            self.stats.dropped_same += 1;
            return;
        }
        if now >= self.next_slot() && self.held.is_none() {
            self.publish(frame, now);
        } else {
            // Too soon for the cap: keep only the newest frame for the next slot.
            let slot = self.held.get_or_insert_with(Vec::new);
            slot.clear();
            slot.extend_from_slice(frame);
        }
    }

    fn publish(&mut self, frame: &[u8], now: Micros) {
        let published = self.live().is_some_and(|live| live.publish(frame, now));
        if published {
            self.last_new = Some(now);
            self.last_sent = now;
            self.same_run = 0;
            self.wake = true;
            self.stats.count_published(now);
        } else {
            self.stats.dropped_boundary += 1;
            // A producer that keeps doing it is logged at 1, 2, 4, 8… drops, not each time.
            if self.stats.dropped_boundary.is_power_of_two() {
                warn!(
                    "{}: dropped a frame that holds the stream's boundary ({} so far)",
                    self.path, self.stats.dropped_boundary
                );
            }
        }
    }

    fn repeat(&mut self, now: Micros) {
        if self.live().is_some_and(Live::repeat) {
            self.last_sent = now;
            self.stats.repeated += 1;
            self.wake = true;
        }
    }

    /// Folds a splitter's counters in (it is being replaced), with `cut` bytes of a
    /// frame it held unfinished.
    fn add_split_stats(&mut self, splitter: &Splitter, cut: u64) {
        let split = splitter.stats();
        self.stats.junk_bytes += split.junk_bytes + cut;
        self.stats.dropped_oversize += split.oversize_dropped;
        self.stats.frames_in += split.oversize_dropped;
    }

    fn live(&self) -> Option<&Live> {
        self.stream.as_live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Next;

    const SECOND: Micros = 1_000_000;

    fn options() -> LiveOptions {
        LiveOptions {
            fps: None,
            max_frame: 1 << 16,
            drop_same: 0,
            refresh: 0,
        }
    }

    /// A minimal JPEG the splitter takes: SOI, an SOS with `body` as its data, EOI.
    fn jpeg(body: &[u8]) -> Vec<u8> {
        [&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02][..], body, &[0xFF, 0xD9]].concat()
    }

    fn feed(options: LiveOptions) -> (Feed, Rc<Stream>) {
        let stream = Rc::new(Stream::live("").unwrap());
        (Feed::new("/cam", "stdin", stream.clone(), options), stream)
    }

    /// The body and frame number a new viewer gets now.
    fn current(stream: &Stream) -> Option<(Vec<u8>, Option<u64>)> {
        match stream.next(&mut stream.cursor(0, false), 0) {
            Next::Part { part, frame, .. } => Some((part.body().to_vec(), frame)),
            _ => None,
        }
    }

    #[test]
    fn bytes_in_any_chunking_publish_each_frame_and_wake() {
        let (mut feed, stream) = feed(options());
        let bytes = [jpeg(b"a"), jpeg(b"b")].concat();
        for chunk in bytes.chunks(3) {
            feed.push_bytes(chunk, 0);
        }
        assert!(feed.take_wake());
        assert!(!feed.take_wake());
        assert_eq!(current(&stream), Some((jpeg(b"b"), Some(1))));
        let stats = stream.as_live().unwrap().input_stats();
        assert_eq!(
            (stats.frames_in, stats.published, stats.bytes_in),
            (2, 2, bytes.len() as u64)
        );
    }

    #[test]
    fn the_fps_cap_holds_the_newest_frame_for_its_slot() {
        let (mut feed, stream) = feed(LiveOptions {
            fps: Some(2.0),
            ..options()
        });
        feed.push_bytes(&jpeg(b"1"), 0);
        feed.push_bytes(&jpeg(b"2"), SECOND / 10);
        feed.push_bytes(&jpeg(b"3"), SECOND / 5);
        assert_eq!(feed.next_deadline(), Some(SECOND / 2));
        feed.on_timer(SECOND / 4);
        assert_eq!(current(&stream).unwrap().0, jpeg(b"1"));
        feed.on_timer(SECOND / 2);
        assert_eq!(current(&stream).unwrap().0, jpeg(b"3"));
        assert_eq!(feed.stats().published, 2);
        assert_eq!(feed.next_deadline(), None);
    }

    #[test]
    fn drop_same_skips_at_most_n_identical_frames_in_a_row() {
        let (mut feed, stream) = feed(LiveOptions {
            drop_same: 2,
            ..options()
        });
        for _ in 0..4 {
            feed.push_bytes(&jpeg(b"same"), 0);
        }
        feed.push_bytes(&jpeg(b"new"), 0);
        let stats = stream.as_live().unwrap().input_stats();
        // Frame 1 published, 2 and 3 dropped, 4 published (the run was full), then "new".
        assert_eq!((stats.published, stats.dropped_same), (3, 2));
    }

    #[test]
    fn a_frame_holding_the_boundary_is_counted_and_the_next_one_published() {
        let (mut feed, stream) = feed(options());
        let boundary = stream.as_live().unwrap().boundary.to_string();
        feed.offer(&jpeg(boundary.as_bytes()), 0);
        feed.offer(&jpeg(b"ok"), 0);
        feed.offer(&vec![0; (1 << 16) + 1], 0);
        let stats = stream.as_live().unwrap().input_stats();
        assert_eq!((stats.dropped_boundary, stats.dropped_oversize), (1, 1));
        assert_eq!((stats.frames_in, stats.published), (3, 1));
        assert_eq!(current(&stream), Some((jpeg(b"ok"), Some(0))));
    }

    #[test]
    fn the_heartbeat_republishes_the_current_frame_under_a_new_number() {
        let (mut feed, stream) = feed(LiveOptions {
            refresh: SECOND,
            ..options()
        });
        assert_eq!(feed.next_deadline(), None, "no frame, no heartbeat");
        feed.push_bytes(&jpeg(b"x"), 5);
        feed.take_wake();
        assert_eq!(feed.next_deadline(), Some(SECOND + 5));
        feed.on_timer(SECOND);
        assert!(!feed.take_wake());
        feed.on_timer(SECOND + 5);
        assert!(feed.take_wake());
        assert_eq!(current(&stream), Some((jpeg(b"x"), Some(1))));
        assert_eq!(feed.stats().repeated, 1);
        assert_eq!(feed.next_deadline(), Some(2 * SECOND + 5));
        feed.end(2 * SECOND);
        assert_eq!(feed.next_deadline(), None);
        assert!(stream.as_live().unwrap().is_ended());
    }

    #[test]
    fn a_retired_frame_goes_to_no_newcomer_and_is_not_repeated() {
        let (mut feed, stream) = feed(LiveOptions {
            refresh: SECOND,
            ..options()
        });
        feed.push_bytes(&jpeg(b"old"), 0);
        feed.retire();
        assert_eq!(feed.next_deadline(), None);
        assert_eq!(current(&stream), None);
        assert!(stream.snapshot().is_none());
        feed.push_bytes(&jpeg(b"new"), 5);
        assert_eq!(current(&stream), Some((jpeg(b"new"), Some(1))));
        assert!(stream.snapshot().is_some());
    }

    #[test]
    fn a_cut_drops_the_unfinished_frame_not_the_next_writers_first() {
        let (mut feed, stream) = feed(options());
        let first = jpeg(b"first writer");
        feed.push_bytes(&first[..first.len() - 3], 0);
        feed.cut();
        // The next writer's frame, whole: its SOI is not read as part of the cut one.
        feed.push_bytes(&jpeg(b"second"), 0);
        assert_eq!(current(&stream), Some((jpeg(b"second"), Some(0))));
        assert_eq!(feed.stats().junk_bytes, (first.len() - 3) as u64);
    }
}
