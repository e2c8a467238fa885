//! Splitting live MJPEG: a byte stream of concatenated JPEG images (what
//! `ffmpeg -f mjpeg -`, `libcamera-vid --codec mjpeg -o -` and `raspivid` write) into
//! frames, whatever the chunking of the reads.
//!
//! A frame is found by walking its structure (ITU T.81 Annex B), not by searching for
//! `FF D9`: an EXIF APP1 segment holds a whole thumbnail JPEG, EOI and all, and only its
//! length field says where it ends. So, after SOI (`FF D8`):
//! - a marker is `FF` (any number of them: fill bytes) then a code; `D0`–`D7` (RSTn),
//!   `01` (TEM) stand alone; every other code but SOI and EOI is followed by a 16-bit
//!   length that counts itself, and the segment is skipped by it;
//! - after SOS (`FF DA`) and its header come entropy-coded data, where `FF 00` is a data
//!   byte and `FF D0`–`FF D7` restart markers; any other marker ends the scan (another
//!   segment, another scan in a progressive image, or EOI);
//! - EOI (`FF D9`) ends the frame.
//!
//! Invariants:
//! - A delivered frame starts `FF D8`, ends `FF D9`, had a scan, and is at most
//!   `max_frame` bytes; frames come out in stream order.
//! - The output (frames and [`SplitStats`]) depends only on the bytes, not on how they are
//!   cut into [`Splitter::push`] calls: the state machine advances byte by byte in
//!   meaning, and the fast paths only skip bytes that cannot change the state (to the
//!   next `FF` by `memchr`, a vectorised search: frames of megabytes are walked on the
//!   loop's thread).
//! - At most `max_frame` bytes are ever buffered, in one reused buffer; a frame that grows
//!   past it is dropped and its remaining bytes walked (not stored) to its end.
//! - Bytes outside frames are junk: counted and dropped. A frame whose structure breaks
//!   (a length under 2, a non-marker where a marker must be, `FF 00` outside a scan) is
//!   dropped as junk; a new SOI where a marker is expected, or in a scan, abandons the
//!   frame in progress as junk (a truncated frame: the camera restarted) and starts anew.
//! - A frame cut short costs at most itself, not the next whole frame: a frame cut
//!   inside a segment has that segment's length walk on into the next frame, past its
//!   SOI. Three things undo that: `FF D8` where a length should be is an SOI (a cut
//!   right after a marker); when the walk breaks, or a new SOI abandons the frame, its
//!   buffered bytes are walked again from the first SOI after its own (`MAX_RESCANS`
//!   deep); and a frame that ends well is checked for an SOI inside one of its header
//!   segments that starts a JPEG running past that segment's end (an EXIF thumbnail
//!   ends inside its segment), and walked again from there if so. What is left: a
//!   segment whose length runs over the whole next frame and ends exactly on a marker
//!   of the one after (about 1 cut in 100 in the unit test's tiny frames, far rarer in
//!   real ones, where markers are a few bytes in many thousands); and a rescan can put
//!   out the EXIF thumbnail of a frame cut after it, which no camera sent as a frame.

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;
const MARK: u8 = 0xFF;
/// Rescans of a broken frame's bytes within one another: each starts later in the same
/// buffer, so a frame costs at most this many passes over its bytes.
const MAX_RESCANS: u8 = 4;
/// Header segments of a frame remembered for the check at its end (see [`Splitter::end`]).
const MAX_SPANS: usize = 32;

/// Counters since the splitter was made.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitStats {
    /// Frames handed to `on_frame`.
    pub frames: u64,
    /// Bytes outside any frame, and bytes of broken or abandoned frames.
    pub junk_bytes: u64,
    /// Frames dropped for growing past `max_frame`.
    pub oversize_dropped: u64,
}

/// Where in the stream the next byte falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Outside a frame, looking for SOI; `ff`: the last byte was `FF`.
    Seek { ff: bool },
    /// Between segments: a marker must come next; `ff`: its `FF` has been read.
    Marker { ff: bool },
    /// The length of a segment: `hi` once its first byte has been read.
    Length { sos: bool, hi: Option<u8> },
    /// `left` bytes of a segment still to skip; then a scan if the segment was SOS.
    Skip { left: u16, sos: bool },
    /// Entropy-coded data; `ff`: the last byte was `FF`.
    Scan { ff: bool },
}

/// What one step of the state machine did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Continue,
    /// An SOI was read: a frame starts (abandoning any frame in progress).
    Begin,
    /// An EOI was read: the frame is complete.
    End,
    /// The frame's structure is broken; the byte after the consumed ones starts the
    /// search for the next SOI.
    Broken,
}

/// Splits concatenated JPEG images into frames. See the module comment.
#[derive(Debug)]
pub struct Splitter {
    max_frame: usize,
    state: State,
    /// The frame in progress while it fits (`keep`), else empty.
    buf: Vec<u8>,
    /// Length of the frame in progress, buffered or not.
    frame_len: usize,
    /// The frame in progress is being buffered; false once it outgrew `max_frame`.
    keep: bool,
    /// The frame in progress has had an SOS: without one it is no image.
    scanned: bool,
    /// The last byte of the previous `push`, for a resync that must look one byte back.
    last: u8,
    /// The frame's header segments (payload start and end, as frame offsets) long
    /// enough to hide an SOI: checked when the frame ends (see [`Splitter::end`]).
    spans: Vec<(usize, usize)>,
    stats: SplitStats,
}

impl Splitter {
    /// A splitter that drops any frame over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Splitter {
        Splitter {
            max_frame,
            state: State::Seek { ff: false },
            buf: Vec::new(),
            frame_len: 0,
            keep: false,
            scanned: false,
            last: 0,
            spans: Vec::new(),
            stats: SplitStats::default(),
        }
    }

    /// Feeds bytes (any chunking); calls `on_frame` with each complete frame (SOI..EOI
    /// inclusive), in order.
    pub fn push(&mut self, data: &[u8], mut on_frame: impl FnMut(&[u8])) {
        self.push_at(data, &mut on_frame, 0);
    }

    /// [`Splitter::push`], `depth` rescans deep.
    fn push_at(&mut self, data: &[u8], on_frame: &mut impl FnMut(&[u8]), depth: u8) {
        // Bytes of a kept frame are copied into `buf` in runs, from `run` up to the
        // current position, when the frame ends or the data does.
        let mut run = 0;
        let mut at = 0;
        while at < data.len() {
            let in_frame = !matches!(self.state, State::Seek { .. });
            let (used, event) = self.step(&data[at..]);
            let next = at + used;
            match event {
                Event::Continue => {
                    if in_frame {
                        self.grow(used);
                    }
                }
                Event::Begin => {
                    let rescued = in_frame
                        && self.keep
                        && depth < MAX_RESCANS
                        && self.rescan_abandoned(&data[run..next], on_frame, depth);
                    if in_frame && !rescued {
                        // The SOI's two bytes belong to the new frame.
                        self.abandon((self.frame_len + used).saturating_sub(2));
                    }
                    self.begin();
                    run = next;
                }
                Event::End => {
                    self.grow(used);
                    if self.keep {
                        self.buf.extend_from_slice(&data[run..next]);
                    }
                    self.end(on_frame, depth);
                }
                Event::Broken => {
                    self.grow(used);
                    if self.keep && depth < MAX_RESCANS && self.rescan(&data[run..next], on_frame, depth) {
                        run = next;
                        at = next;
                        continue;
                    }
                    let before = if next > 0 { data[next - 1] } else { self.last };
                    // A structure walked astray may have just passed the FF of an SOI.
                    let ff = used == 0 && before == MARK;
                    self.abandon(self.frame_len - usize::from(ff));
                    self.state = State::Seek { ff };
                }
            }
            at = next;
        }
        if self.keep && !matches!(self.state, State::Seek { .. }) {
            self.buf.extend_from_slice(&data[run..]);
        }
        if let Some(&byte) = data.last() {
            self.last = byte;
        }
    }

    /// The frame broke: looks for an SOI in its bytes after its own (`tail`: those not
    /// yet buffered) and, if there is one, drops what is before it as junk and walks the
    /// rest again. `false` when there is none (nothing was done).
    fn rescan(&mut self, tail: &[u8], on_frame: &mut impl FnMut(&[u8]), depth: u8) -> bool {
        let mut bytes = std::mem::take(&mut self.buf);
        bytes.extend_from_slice(tail);
        let Some(soi) = memchr::memmem::find(&bytes[1..], &[MARK, SOI]).map(|i| i + 1) else {
            bytes.truncate(bytes.len() - tail.len());
            self.buf = bytes;
            return false;
        };
        self.stats.junk_bytes += soi as u64;
        self.close_frame();
        self.push_at(&bytes[soi..], on_frame, depth + 1);
        true
    }

    /// A new SOI abandons the frame in progress (`tail`: its bytes not yet buffered,
    /// then the new SOI's two): a frame whose segment swallowed the start of the next
    /// one may hold it whole, so its bytes after its own SOI are walked again first.
    /// `false` when they hold no SOI (nothing was done).
    fn rescan_abandoned(&mut self, tail: &[u8], on_frame: &mut impl FnMut(&[u8]), depth: u8) -> bool {
        let mut bytes = std::mem::take(&mut self.buf);
        bytes.extend_from_slice(tail);
        let body = &bytes[..bytes.len().saturating_sub(2)];
        let Some(soi) = body
            .get(1..)
            .and_then(|rest| memchr::memmem::find(rest, &[MARK, SOI]))
        else {
            return false;
        };
        self.stats.junk_bytes += soi as u64 + 1;
        self.close_frame();
        self.push_at(&body[soi + 1..], on_frame, depth + 1);
        if !matches!(self.state, State::Seek { .. }) {
            self.abandon(self.frame_len);
        }
        true
    }

    pub fn stats(&self) -> SplitStats {
        self.stats
    }

    /// Bytes held for an incomplete frame (at most `max_frame`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Consumes bytes from the front of `data` (never none, unless reporting `Broken`)
    /// and says what happened.
    fn step(&mut self, data: &[u8]) -> (usize, Event) {
        let byte = data[0];
        match self.state {
            State::Seek { ff: false } => {
                // Everything up to the next FF is junk.
                let (used, ff) = match memchr::memchr(MARK, data) {
                    Some(i) => (i + 1, true),
                    None => (data.len(), false),
                };
                self.stats.junk_bytes += (used - usize::from(ff)) as u64;
                self.state = State::Seek { ff };
                (used, Event::Continue)
            }
            State::Seek { ff: true } => match byte {
                SOI => (1, Event::Begin),
                // Fill: the earlier FF was junk, this one may still start an SOI.
                MARK => {
                    self.stats.junk_bytes += 1;
                    (1, Event::Continue)
                }
                _ => {
                    self.stats.junk_bytes += 2;
                    self.state = State::Seek { ff: false };
                    (1, Event::Continue)
                }
            },
            State::Marker { ff: false } if byte == MARK => {
                self.state = State::Marker { ff: true };
                (1, Event::Continue)
            }
            State::Marker { ff: false } => (0, Event::Broken),
            State::Marker { ff: true } => match byte {
                MARK => (1, Event::Continue),
                0x00 => (1, Event::Broken),
                code => (1, self.marker(code)),
            },
            State::Length { sos, hi: None } => {
                self.state = State::Length { sos, hi: Some(byte) };
                (1, Event::Continue)
            }
            // `FF D8` where a length should be: a frame cut right after a marker, and the
            // next one's SOI (a length of 65496 would swallow that frame whole).
            State::Length { hi: Some(MARK), .. } if byte == SOI => (1, Event::Begin),
            State::Length { sos, hi: Some(hi) } => {
                let Some(left) = u16::from_be_bytes([hi, byte]).checked_sub(2) else {
                    return (1, Event::Broken);
                };
                if !sos && left >= 3 && self.spans.len() < MAX_SPANS {
                    let start = self.frame_len + 1;
                    self.spans.push((start, start + usize::from(left)));
                }
                self.state = State::Skip { left, sos };
                if left == 0 {
                    self.segment_done(sos);
                }
                (1, Event::Continue)
            }
            State::Skip { left, sos } => {
                let used = data.len().min(usize::from(left));
                let left = left - used as u16;
                self.state = State::Skip { left, sos };
                if left == 0 {
                    self.segment_done(sos);
                }
                (used, Event::Continue)
            }
            State::Scan { ff: false } => {
                // Entropy-coded bytes up to the next FF cannot change anything.
                let (used, ff) = match memchr::memchr(MARK, data) {
                    Some(i) => (i + 1, true),
                    None => (data.len(), false),
                };
                self.state = State::Scan { ff };
                (used, Event::Continue)
            }
            State::Scan { ff: true } => match byte {
                // A stuffed data byte, or a restart marker: the scan goes on.
                0x00 | 0xD0..=0xD7 => {
                    self.state = State::Scan { ff: false };
                    (1, Event::Continue)
                }
                MARK => (1, Event::Continue),
                code => (1, self.marker(code)),
            },
        }
    }

    /// A marker code (after its `FF`) where a marker may stand.
    fn marker(&mut self, code: u8) -> Event {
        match code {
            SOI => Event::Begin,
            EOI => Event::End,
            0xD0..=0xD7 | TEM => {
                self.state = State::Marker { ff: false };
                Event::Continue
            }
            code => {
                self.state = State::Length {
                    sos: code == SOS,
                    hi: None,
                };
                Event::Continue
            }
        }
    }

    fn segment_done(&mut self, sos: bool) {
        self.scanned |= sos;
        self.state = if sos {
            State::Scan { ff: false }
        } else {
            State::Marker { ff: false }
        };
    }

    fn begin(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[MARK, SOI]);
        self.frame_len = 0;
        self.keep = true;
        self.scanned = false;
        self.state = State::Marker { ff: false };
        self.grow(2);
    }

    /// Counts `used` more bytes of the frame; drops it once it is over the cap.
    fn grow(&mut self, used: usize) {
        self.frame_len = self.frame_len.saturating_add(used);
        if self.keep && self.frame_len > self.max_frame {
            self.keep = false;
            self.buf.clear();
            self.stats.oversize_dropped += 1;
        }
    }

    /// The frame in progress is not an image: its `junk` bytes are dropped.
    fn abandon(&mut self, junk: usize) {
        if self.keep {
            self.stats.junk_bytes += junk as u64;
        }
        self.close_frame();
    }

    /// The frame's EOI. One check first: a frame cut inside a segment whose length then
    /// swallowed the next frame's start can still end well, if the walk happened to land
    /// on that frame's markers. Its sign: an SOI inside a header segment whose JPEG runs
    /// on past the segment's end (an EXIF thumbnail ends inside its segment). Then the
    /// frame is dropped up to that SOI, and the rest walked again.
    fn end(&mut self, on_frame: &mut impl FnMut(&[u8]), depth: u8) {
        if self.keep && depth < MAX_RESCANS {
            if let Some(soi) = self.swallowed_soi() {
                let bytes = std::mem::take(&mut self.buf);
                self.stats.junk_bytes += soi as u64;
                self.close_frame();
                self.push_at(&bytes[soi..], on_frame, depth + 1);
                return;
            }
        }
        if self.keep && self.scanned {
            self.stats.frames += 1;
            on_frame(&self.buf);
        } else if self.keep {
            self.stats.junk_bytes += self.frame_len as u64;
        }
        self.close_frame();
    }

    /// The first SOI in one of the frame's header segments that starts a JPEG ending
    /// past that segment (see [`Splitter::end`]).
    fn swallowed_soi(&self) -> Option<usize> {
        self.spans.iter().find_map(|&(start, end)| {
            let at = start + memchr::memmem::find(self.buf.get(start..end)?, &[MARK, SOI, MARK])?;
            // The segment's own bytes first: a thumbnail ends within them, and then the
            // rest of the frame is not walked again (the usual case, and a cheap one).
            let rest = &self.buf[at..];
            let mut probe = Splitter::new(self.max_frame);
            let mut first = None;
            for piece in [&rest[..end - at], &rest[end - at..]] {
                probe.push(piece, |frame| {
                    // Only a frame from this SOI on counts, not one found further.
                    first.get_or_insert(rest.starts_with(frame).then_some(frame.len()));
                });
                if first.is_some() {
                    break;
                }
            }
            first.flatten().is_some_and(|len| at + len > end).then_some(at)
        })
    }

    fn close_frame(&mut self) {
        self.spans.clear();
        self.buf.clear();
        self.frame_len = 0;
        self.keep = false;
        self.state = State::Seek { ff: false };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment: marker code, then its payload with the length in front.
    fn segment(code: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len() + 2).unwrap();
        let mut out = vec![MARK, code];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A small but structurally complete baseline JPEG: SOI, APP0, DQT, SOF0, DHT, SOS,
    /// `scan` as entropy-coded data, EOI.
    fn jpeg(scan: &[u8]) -> Vec<u8> {
        let mut out = vec![MARK, SOI];
        out.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        out.extend(segment(0xDB, &[0; 65]));
        out.extend(segment(0xC0, &[8, 0, 16, 0, 16, 1, 1, 0x11, 0]));
        out.extend(segment(0xC4, &[0; 17]));
        out.extend(segment(SOS, &[1, 1, 0, 0, 63, 0]));
        out.extend_from_slice(scan);
        out.extend_from_slice(&[MARK, EOI]);
        out
    }

    /// Frames and stats from pushing `data` in pieces of `chunk` bytes.
    fn split(max: usize, data: &[u8], chunk: usize) -> (Vec<Vec<u8>>, SplitStats, usize) {
        let mut splitter = Splitter::new(max);
        let mut frames = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            splitter.push(piece, |f| frames.push(f.to_vec()));
            assert!(splitter.buffered() <= max);
        }
        (frames, splitter.stats(), splitter.buffered())
    }

    /// Splits `data` whole and in every chunk size up to 16, and in two pieces cut at
    /// every offset: the results must all agree. Returns them.
    fn split_every_way(max: usize, data: &[u8]) -> (Vec<Vec<u8>>, SplitStats) {
        let whole = split(max, data, data.len());
        for chunk in 1..=16 {
            assert_eq!(split(max, data, chunk), whole, "chunk {chunk}");
        }
        for cut in 0..=data.len() {
            let mut splitter = Splitter::new(max);
            let mut frames = Vec::new();
            splitter.push(&data[..cut], |f| frames.push(f.to_vec()));
            splitter.push(&data[cut..], |f| frames.push(f.to_vec()));
            assert_eq!(
                (frames, splitter.stats(), splitter.buffered()),
                whole,
                "cut at {cut}"
            );
        }
        (whole.0, whole.1)
    }

    #[test]
    fn frames_split_at_every_byte_boundary() {
        let (a, b) = (jpeg(b"\x12\x34"), jpeg(b"\x56"));
        let data = [&a[..], &b[..], &a[..]].concat();
        let (frames, stats) = split_every_way(1 << 16, &data);
        assert_eq!(frames, [a.clone(), b, a]);
        assert_eq!(
            stats,
            SplitStats {
                frames: 3,
                junk_bytes: 0,
                oversize_dropped: 0
            }
        );
    }

    #[test]
    fn junk_between_frames_is_counted_and_dropped() {
        let a = jpeg(b"\x01");
        let data = [&b"junk\xff\xff\xd9"[..], &a, b"\xff\x00\xff", &a, b"trailing\xff"].concat();
        let (frames, stats) = split_every_way(1 << 16, &data);
        assert_eq!(frames, [a.clone(), a]);
        // The last FF may still begin an SOI: it is not counted yet.
        assert_eq!(stats.junk_bytes, 7 + 3 + 8);
        assert_eq!(stats.frames, 2);
    }

    #[test]
    fn an_exif_thumbnail_does_not_end_the_frame() {
        let thumbnail = jpeg(b"\x77");
        let exif = [&b"Exif\0\0"[..], &thumbnail, b"\xff\xd9\xff\xd8"].concat();
        let mut frame = vec![MARK, SOI];
        frame.extend(segment(0xE1, &exif));
        frame.extend_from_slice(&jpeg(b"\x42")[2..]);
        let data = [&frame[..], &jpeg(b"")].concat();
        let (frames, stats) = split_every_way(1 << 16, &data);
        assert_eq!(frames, [frame, jpeg(b"")]);
        assert_eq!(stats.junk_bytes, 0);
    }

    #[test]
    fn stuffed_bytes_and_restart_markers_stay_in_the_scan() {
        // FF 00 (a data byte FF), RST0..RST7, fill bytes before a marker, and a second
        // scan as in a progressive JPEG.
        let mut scan = b"\x01\xff\x00\xd9\xff\xd0\x02\xff\xff\xd7\xd8\xff\x00\xff\x00".to_vec();
        scan.extend(segment(0xC4, b"\xff\xd9"));
        scan.extend(segment(SOS, &[1, 1, 0, 0, 63, 0]));
        scan.extend_from_slice(b"\x03\xff\x00");
        let frame = jpeg(&scan);
        let (frames, stats) = split_every_way(1 << 16, &frame);
        assert_eq!(frames, [frame]);
        assert_eq!(stats.frames, 1);
    }

    #[test]
    fn an_oversize_frame_is_dropped_and_the_next_delivered() {
        let small = jpeg(b"\x01");
        let big = jpeg(&[0x55; 500]);
        let max = small.len() + 10;
        let data = [&small[..], &big, &small].concat();
        let (frames, stats) = split_every_way(max, &data);
        assert_eq!(frames, [small.clone(), small.clone()]);
        assert_eq!(stats.oversize_dropped, 1);
        assert_eq!(stats.junk_bytes, 0);
        // A frame of exactly the cap fits.
        let (frames, _) = split_every_way(small.len(), &small);
        assert_eq!(frames, [small]);
    }

    #[test]
    fn a_truncated_frame_is_abandoned_at_the_next_soi() {
        let whole = jpeg(b"\x10\x20\x30\x40");
        let cut_in_scan = &whole[..whole.len() - 4];
        let data = [cut_in_scan, &whole, &whole].concat();
        let (frames, stats) = split_every_way(1 << 16, &data);
        assert_eq!(frames, [whole.clone(), whole.clone()]);
        assert_eq!(stats.junk_bytes, cut_in_scan.len() as u64);
    }

    /// A frame cut inside a segment has that segment's length walk into the next
    /// frame; the rescan finds the next frame where it began, so the cut costs only
    /// itself.
    #[test]
    fn a_frame_cut_inside_a_segment_costs_only_itself() {
        let whole = jpeg(b"\x10\x20\x30\x40");
        let cut_in_header = &whole[..10];
        let data = [cut_in_header, &whole, &whole].concat();
        let (frames, stats) = split_every_way(1 << 16, &data);
        assert_eq!(frames, [whole.clone(), whole.clone()]);
        assert_eq!(stats.junk_bytes, cut_in_header.len() as u64);
    }

    /// A frame with every kind of segment: APP0, an EXIF APP1 holding a thumbnail,
    /// DQT, SOF0, DHT, SOS, entropy data with `FF 00` stuffing and RSTn, EOI.
    fn rich_frame() -> (Vec<u8>, Vec<u8>) {
        let thumbnail = jpeg(b"\x77");
        let mut frame = vec![MARK, SOI];
        frame.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        frame.extend(segment(0xE1, &[&b"Exif\0\0"[..], &thumbnail].concat()));
        frame.extend_from_slice(&jpeg(b"\x01\xff\x00\x02\xff\xd0\x03\xff\x00\xff\xd7\x04")[2..]);
        (frame, thumbnail)
    }

    /// Never lose a good frame: the rich frame cut at every offset (inside every kind of
    /// segment, its length, its marker, the scan), then three good frames: all three
    /// pictures come out, whatever the chunking, but for one coincidence, counted here:
    /// the cut segment's length runs over the whole next frame and ends exactly on a
    /// marker of the one after, whose picture then comes out behind the cut frame's
    /// head. (From a cut after the EXIF thumbnail, the thumbnail may come out first; see
    /// the module header.)
    #[test]
    fn a_frame_cut_anywhere_costs_at_most_itself() {
        let (rich, thumbnail) = rich_frame();
        let good = jpeg(b"\x42\xff\x00\x43");
        assert_eq!(split(1 << 16, &rich, 5).0, std::slice::from_ref(&rich));
        let mut coincidences = Vec::new();
        for cut in 1..rich.len() {
            let data = [&rich[..cut], &good, &good, &good].concat();
            let (frames, stats, _) = split(1 << 16, &data, data.len());
            let pictures = match frames.first() {
                Some(first) if *first == thumbnail => &frames[1..],
                _ => &frames[..],
            };
            assert!(
                pictures.iter().all(|p| p.ends_with(&good[2..])),
                "cut at {cut}: {:?} good {} thumb {}",
                frames.iter().map(|f| f.len()).collect::<Vec<_>>(),
                good.len(),
                thumbnail.len()
            );
            match pictures.len() {
                3 => assert_eq!(pictures[1..], [good.clone(), good.clone()], "cut at {cut}"),
                2 => coincidences.push(cut),
                n => panic!("cut at {cut}: {n} pictures"),
            }
            assert!(
                stats.junk_bytes <= cut as u64,
                "cut at {cut}: junk {} frames {:?}",
                stats.junk_bytes,
                frames.iter().map(|f| f.len()).collect::<Vec<_>>()
            );
            for chunk in [1, 2, 3, 7, 16] {
                assert_eq!(
                    split(1 << 16, &data, chunk).0,
                    frames,
                    "cut at {cut}, chunk {chunk}"
                );
            }
        }
        eprintln!(
            "{} cuts of {}; the next frame lost at {coincidences:?}",
            rich.len() - 1,
            rich.len()
        );
        assert!(coincidences.len() <= 3, "{coincidences:?}");
    }

    #[test]
    fn broken_structure_drops_the_frame_and_resyncs() {
        let good = jpeg(b"\x01");
        // Each prefix, then a good frame: is the prefix a frame of its own?
        for (prefix, is_frame) in [
            (&b"\xff\xd8\xff\xe0\x00\x01"[..], false), // length under 2
            (b"\xff\xd8\xff\xe0\x00\x02\x33", false),  // no marker after a segment
            (b"\xff\xd8\xff\x00", false),              // FF 00 outside a scan
            (b"\xff\xd8\xff\xd9", false),              // no scan: not an image
            // Structure only: no SOF, yet a scan and an EOI make a frame.
            (b"\xff\xd8\xff\xda\x00\x02\xff\xd9", true),
        ] {
            let data = [prefix, &good].concat();
            let (frames, stats) = split_every_way(1 << 16, &data);
            let expect: &[&[u8]] = if is_frame { &[prefix, &good] } else { &[&good] };
            assert_eq!(frames, expect, "{prefix:02x?}");
            let junk = if is_frame { 0 } else { prefix.len() as u64 };
            assert_eq!(stats.junk_bytes, junk, "{prefix:02x?}");
        }
        // A segment that walks astray and ends right on an SOI's FF still finds it.
        let astray = [&b"\xff\xd8\xff\xe0\x00\x03\xff"[..], &good[1..]].concat();
        let (frames, _) = split_every_way(1 << 16, &astray);
        assert_eq!(frames, [good]);
    }

    /// Real encoder output, made with libjpeg-turbo's `cjpeg` from a noise image
    /// (`-restart 1`: RST markers and FF 00 stuffing; `-progressive`: ten scans) and
    /// `exiftool "-ThumbnailImage<=thumb.jpg"` (an APP1 holding a whole JPEG).
    #[test]
    fn real_jpegs_split_whole() {
        const RESTART: &[u8] = include_bytes!("../../tests/data/mjpeg/restart.jpg");
        const PROGRESSIVE: &[u8] = include_bytes!("../../tests/data/mjpeg/progressive.jpg");
        const EXIF: &[u8] = include_bytes!("../../tests/data/mjpeg/exif.jpg");
        // What makes them hard: an EOI (and an SOI) inside the EXIF frame.
        assert!(EXIF[..EXIF.len() - 2].windows(2).any(|w| w == [MARK, EOI]));
        let expect = [RESTART, PROGRESSIVE, EXIF, RESTART];
        let data = [RESTART, b"\r\n--junk\r\n", PROGRESSIVE, EXIF, RESTART].concat();
        let whole = split(1 << 20, &data, data.len());
        assert_eq!(whole.0, expect);
        assert_eq!(whole.1.junk_bytes, 10);
        for chunk in [1, 2, 3, 7, 64, 1000, 4096] {
            assert_eq!(split(1 << 20, &data, chunk), whole, "chunk {chunk}");
        }
        // A cap between the sizes drops exactly the frames over it.
        let (frames, stats, _) = split(EXIF.len(), &data, 512);
        assert_eq!(frames, [EXIF]);
        assert_eq!(stats.oversize_dropped, 3);
    }

    #[test]
    fn garbage_alone_gives_nothing() {
        let garbage: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (frames, stats) = split_every_way(64, &garbage);
        assert!(frames.is_empty());
        assert_eq!(stats.frames, 0);
        let (frames, stats) = split_every_way(64, b"\xff\xff\xff");
        assert!(frames.is_empty());
        assert_eq!(stats.junk_bytes, 2);
    }

    #[test]
    fn the_buffer_never_outgrows_the_cap() {
        let mut splitter = Splitter::new(100);
        let mut frames = 0;
        let endless_scan = [&jpeg(b"")[..jpeg(b"").len() - 2], &[0x11; 10_000]].concat();
        for piece in endless_scan.chunks(37) {
            splitter.push(piece, |_| frames += 1);
            assert!(splitter.buffered() <= 100);
        }
        splitter.push(b"\xff\xd9", |_| frames += 1);
        assert_eq!((frames, splitter.stats().oversize_dropped), (0, 1));
        assert_eq!(splitter.buffered(), 0);
        let tiny = split(1, &jpeg(b""), 5);
        assert_eq!((tiny.0.len(), tiny.1.oversize_dropped), (0, 1));
    }
}
