//! What a connection still has to send: a few shared chunks and an offset, written with
//! vectored writes.
//!
//! The outbox never copies a part: it holds the `Rc` of the encoded part and the
//! connection's own stamp, and hands the kernel up to `MAX_SLICES` slices per `writev`.
//! Its queue lives for the connection's lifetime, so queueing a part allocates nothing.
//!
//! For faults on purpose (`server::sabotage`) it also keeps a mark: a byte of the
//! response past which nothing is written until the mark moves ([`Flush::Mark`]), and it
//! frames chunks of an HTTP chunked body around what is queued, without copying it. An
//! outbox without a mark has it at `u64::MAX`: the check is one `min` per flush.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

use crate::stream::multipart::{Part, Stamp};

/// Slices handed to one `writev`: a response head, the opening delimiter, a part (three
/// slices) and the closing delimiter fit in one call.
const MAX_SLICES: usize = 8;

/// A piece of output.
#[derive(Debug)]
pub enum Chunk {
    /// Bytes fixed at compile time.
    Static(&'static [u8]),
    /// Bytes encoded once and shared by many connections (a stream's head, delimiters).
    Shared(Rc<[u8]>),
    /// Bytes made for this connection alone (a short answer; not on the streaming path).
    Owned(Box<[u8]>),
    /// A part, with this connection's stamp between its head and its body.
    Part(Rc<Part>, Stamp),
    /// Only a part's header block (sent ahead of its body, for `?advance_headers=1`).
    PartHeader(Rc<Part>, Stamp),
    /// Only a part's body and delimiter (its header block went ahead).
    PartBody(Rc<Part>),
    /// Only a part's body (a snapshot).
    Body(Rc<Part>),
    /// The size line of an HTTP chunk: the length of the chunk after it.
    ChunkSize(ChunkSize),
}

/// `{length in hex}\r\n`, formatted without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSize {
    text: [u8; 18],
    len: u8,
}

impl ChunkSize {
    pub fn new(length: usize) -> ChunkSize {
        let mut text = [0u8; 18];
        let digits = ((usize::BITS - length.leading_zeros()).div_ceil(4)).max(1) as usize;
        for (i, byte) in text[..digits].iter_mut().enumerate() {
            let nibble = (length >> (4 * (digits - 1 - i))) & 0xf;
            *byte = b"0123456789abcdef"[nibble];
        }
        text[digits..digits + 2].copy_from_slice(b"\r\n");
        ChunkSize {
            text,
            len: digits as u8 + 2,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len as usize]
    }
}

impl Chunk {
    /// The chunk's bytes as up to three slices, in order. Always inlined: `pending` and
    /// every write walk the queue through it, and since the enum has a variant for the
    /// faults' chunk lines LLVM makes it a call, which cost a stream without faults 57
    /// instructions a part more than before the faults (callgrind); inlined, 13 more.
    #[inline(always)]
    fn slices(&self) -> [&[u8]; 3] {
        match self {
            Chunk::Static(bytes) => [bytes, &[], &[]],
            Chunk::Shared(bytes) => [bytes, &[], &[]],
            Chunk::Owned(bytes) => [bytes, &[], &[]],
            Chunk::Part(part, stamp) => {
                let (head, tail) = part.halves();
                [head, stamp.as_bytes(), tail]
            }
            Chunk::PartHeader(part, stamp) => [part.halves().0, stamp.as_bytes(), part.header_end()],
            Chunk::PartBody(part) => [part.body_and_delimiter(), &[], &[]],
            Chunk::Body(part) => [part.body(), &[], &[]],
            Chunk::ChunkSize(size) => [size.as_bytes(), &[], &[]],
        }
    }

    fn len(&self) -> usize {
        self.slices().iter().map(|s| s.len()).sum()
    }
}

/// How a flush ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was written.
    Done,
    /// The socket's send buffer is full; wait for it to become writable.
    Blocked,
    /// The byte budget for this turn ran out with the socket still writable.
    Budget,
    /// Writing reached the mark ([`Outbox::set_mark`]) with more queued.
    Mark,
}

#[derive(Debug)]
pub struct Outbox {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
    /// Bytes written over the connection's life.
    sent: u64,
    /// Nothing past this many bytes of the response is written; `u64::MAX`: no mark.
    mark: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            chunks: VecDeque::new(),
            offset: 0,
            sent: 0,
            mark: u64::MAX,
        }
    }
}

impl Outbox {
    pub fn push(&mut self, chunk: Chunk) {
        self.chunks.push_back(chunk);
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Whether any part (or part of one) is still queued: the connection checks it before
    /// queueing the next, as it holds at most one part at a time.
    pub fn holds_part(&self) -> bool {
        self.chunks.iter().any(|chunk| {
            matches!(
                chunk,
                Chunk::Part(..) | Chunk::PartHeader(..) | Chunk::PartBody(_) | Chunk::Body(_)
            )
        })
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum::<usize>() - self.offset
    }

    /// Writes until the queue is empty, the socket would block, `budget` bytes went out,
    /// or the mark is reached. Returns how it ended and the bytes written.
    ///
    /// No write is handed more than what is left of the budget: one `writev` of a
    /// multi-MiB part would otherwise give the kernel as much as an autotuned send buffer
    /// takes (megabytes), and hundreds of such writes make one loop turn last seconds.
    pub fn flush(&mut self, out: &mut impl Write, budget: usize) -> io::Result<(Flush, usize)> {
        let to_mark = usize::try_from(self.mark - self.sent).unwrap_or(usize::MAX);
        let limit = budget.min(to_mark);
        let mut written = 0;
        let result = loop {
            if self.chunks.is_empty() {
                break Ok(Flush::Done);
            }
            if written >= limit {
                break Ok(if written == to_mark {
                    Flush::Mark
                } else {
                    Flush::Budget
                });
            }
            match self.write_once(out, limit - written) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(Flush::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.sent += written as u64;
        result.map(|flush| (flush, written))
    }

    /// Bytes written over the connection's life.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Chunks queued: where the next push goes, for [`Outbox::frame_chunks`].
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Writes stop once the response's first `at` bytes are out (at once, if they are);
    /// `u64::MAX`: never.
    pub fn set_mark(&mut self, at: u64) {
        self.mark = at.max(self.sent);
    }

    /// Frames each chunk queued from index `from` on as an HTTP chunk: its size line
    /// before it, CRLF after it. Empty chunks stay as they are, as an empty HTTP chunk
    /// would end the body.
    pub fn frame_chunks(&mut self, from: usize) {
        let mut i = from;
        while i < self.chunks.len() {
            let len = self.chunks[i].len();
            if len == 0 {
                i += 1;
                continue;
            }
            self.chunks.insert(i, Chunk::ChunkSize(ChunkSize::new(len)));
            self.chunks.insert(i + 2, Chunk::Static(b"\r\n"));
            i += 3;
        }
    }

    /// Where the body of the part queued from index `from` on starts, counted from the
    /// response's first byte, and its length; `None` when no part body is queued there.
    pub fn body_position(&self, from: usize) -> Option<(u64, usize)> {
        let mut at = self.sent - self.offset as u64;
        for (i, chunk) in self.chunks.iter().enumerate() {
            match chunk {
                Chunk::Part(part, _) | Chunk::PartBody(part) if i >= from => {
                    let header = chunk.len() - part.body_and_delimiter().len();
                    return Some((at + header as u64, part.body().len()));
                }
                _ => at += chunk.len() as u64,
            }
        }
        None
    }

    /// One `writev` of at most `limit` bytes (and at least one, with anything queued).
    fn write_once(&self, out: &mut impl Write, mut limit: usize) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        let mut skip = self.offset;
        'chunks: for chunk in &self.chunks {
            for slice in chunk.slices() {
                if skip >= slice.len() {
                    skip -= slice.len();
                    continue;
                }
                let rest = &slice[skip..];
                let take = rest.len().min(limit);
                slices[count] = IoSlice::new(&rest[..take]);
                skip = 0;
                count += 1;
                limit -= take;
                if count == MAX_SLICES || limit == 0 {
                    break 'chunks;
                }
            }
        }
        out.write_vectored(&slices[..count])
    }

    fn consume(&mut self, mut n: usize) {
        n += self.offset;
        while let Some(front) = self.chunks.front() {
            let len = front.len();
            if n < len {
                break;
            }
            n -= len;
            self.chunks.pop_front();
        }
        self.offset = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::multipart::{Boundary, Then};

    /// A writer that takes at most `step` bytes a call and then blocks after `limit`.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
        limit: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = self.limit - self.got.len();
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.step).min(room);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn queued() -> (Outbox, Vec<u8>) {
        let boundary = Boundary::random().unwrap();
        let part = Rc::new(Part::encode(&boundary, "text/plain", b"body", Then::More));
        let stamp = Stamp::new(12_345_678, None);
        let mut expected = b"HEAD".to_vec();
        let (head, tail) = part.halves();
        expected.extend_from_slice(&[head, stamp.as_bytes(), tail].concat());
        expected.extend_from_slice(b"bodyend");
        let mut outbox = Outbox::default();
        outbox.push(Chunk::Shared(Rc::from(&b"HEAD"[..])));
        outbox.push(Chunk::PartHeader(part.clone(), stamp));
        outbox.push(Chunk::PartBody(part.clone()));
        outbox.push(Chunk::Body(part));
        outbox.push(Chunk::Owned(Box::from(&b"end"[..])));
        (outbox, expected)
    }

    #[test]
    fn writes_every_byte_in_order_whatever_the_write_sizes() {
        for step in [1, 2, 3, 7, 64, 1000] {
            let (mut outbox, expected) = queued();
            assert_eq!(outbox.pending(), expected.len());
            let mut sink = Trickle {
                got: vec![],
                step,
                limit: usize::MAX,
            };
            assert_eq!(
                outbox.flush(&mut sink, usize::MAX).unwrap(),
                (Flush::Done, expected.len())
            );
            assert_eq!(sink.got, expected, "step {step}");
            assert!(outbox.is_empty());
        }
    }

    #[test]
    fn resumes_where_it_blocked() {
        let (mut outbox, expected) = queued();
        let mut sink = Trickle {
            got: vec![],
            step: 5,
            limit: 30,
        };
        assert_eq!(outbox.flush(&mut sink, usize::MAX).unwrap(), (Flush::Blocked, 30));
        assert_eq!(outbox.pending(), expected.len() - 30);
        sink.limit = usize::MAX;
        outbox.flush(&mut sink, usize::MAX).unwrap();
        assert_eq!(sink.got, expected);
    }

    /// A writer that takes everything it is handed, like a socket with a huge send buffer.
    #[derive(Default)]
    struct Greedy {
        got: Vec<u8>,
        largest_write: usize,
    }

    impl Write for Greedy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let n: usize = bufs.iter().map(|b| b.len()).sum();
            bufs.iter().for_each(|b| self.got.extend_from_slice(b));
            self.largest_write = self.largest_write.max(n);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    // See: issue 12, one stream's big parts stalled every client for seconds.
    #[test]
    fn a_big_part_is_written_in_budget_sized_writes() {
        let boundary = Boundary::random().unwrap();
        let body = vec![7u8; 3 * 1024 * 1024];
        let part = Rc::new(Part::encode(&boundary, "image/jpeg", &body, Then::More));
        let mut outbox = Outbox::default();
        outbox.push(Chunk::Part(part.clone(), Stamp::new(1, None)));
        let total = outbox.pending();
        let budget = 64 * 1024;
        let mut sink = Greedy::default();
        let mut turns = 0;
        loop {
            turns += 1;
            let (how, written) = outbox.flush(&mut sink, budget).unwrap();
            assert!(written <= budget, "turn {turns} wrote {written}");
            if how == Flush::Done {
                break;
            }
            assert_eq!((how, written), (Flush::Budget, budget));
        }
        assert_eq!(sink.largest_write, budget);
        assert_eq!(sink.got.len(), total);
        assert_eq!(turns, total.div_ceil(budget));
        assert!(sink.got.ends_with(part.halves().1));
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex_lines() {
        for (length, text) in [(0, "0\r\n"), (9, "9\r\n"), (26, "1a\r\n"), (4096, "1000\r\n")] {
            assert_eq!(ChunkSize::new(length).as_bytes(), text.as_bytes());
        }
        assert_eq!(ChunkSize::new(usize::MAX).as_bytes(), b"ffffffffffffffff\r\n");
    }

    #[test]
    fn writing_stops_at_the_mark_and_goes_on_when_it_moves() {
        let (mut outbox, expected) = queued();
        let mut sink = Trickle {
            got: vec![],
            step: 7,
            limit: usize::MAX,
        };
        outbox.set_mark(10);
        assert_eq!(outbox.flush(&mut sink, usize::MAX).unwrap(), (Flush::Mark, 10));
        // At the mark nothing more goes out, whatever the budget.
        assert_eq!(outbox.flush(&mut sink, usize::MAX).unwrap(), (Flush::Mark, 0));
        assert_eq!(outbox.sent(), 10);
        // A mark behind what went out is where writing is.
        outbox.set_mark(3);
        assert_eq!(outbox.flush(&mut sink, usize::MAX).unwrap(), (Flush::Mark, 0));
        outbox.set_mark(u64::MAX);
        let (how, _) = outbox.flush(&mut sink, usize::MAX).unwrap();
        assert_eq!((how, outbox.sent()), (Flush::Done, expected.len() as u64));
        assert_eq!(sink.got, expected);
    }

    #[test]
    fn chunks_are_framed_in_place_and_a_part_body_is_found_in_them() {
        let boundary = Boundary::random().unwrap();
        let part = Rc::new(Part::encode(&boundary, "text/plain", b"0123456789", Then::More));
        let stamp = Stamp::new(1, None);
        let mut outbox = Outbox::default();
        outbox.push(Chunk::Static(b"HEAD"));
        outbox.push(Chunk::Static(b""));
        outbox.push(Chunk::Part(part.clone(), stamp));
        outbox.frame_chunks(1);
        let (head, tail) = part.halves();
        let wire = [head, stamp.as_bytes(), tail].concat();
        let mut expected = format!("HEAD{:x}\r\n", wire.len()).into_bytes();
        expected.extend_from_slice(&wire);
        expected.extend_from_slice(b"\r\n");
        let body_at = expected.len() - 2 - part.body_and_delimiter().len();
        assert_eq!(outbox.body_position(1), Some((body_at as u64, 10)));
        assert_eq!(outbox.body_position(4), None);
        let mut sink = Greedy::default();
        outbox.set_mark(body_at as u64 + 5);
        assert_eq!(outbox.flush(&mut sink, usize::MAX).unwrap().0, Flush::Mark);
        assert!(sink.got.ends_with(b"\r\n\r\n01234"));
        // Found the same once part of it is written.
        assert_eq!(outbox.body_position(0), Some((body_at as u64, 10)));
        outbox.set_mark(u64::MAX);
        outbox.flush(&mut sink, usize::MAX).unwrap();
        assert_eq!(sink.got, expected);
    }

    #[test]
    fn stops_at_the_budget_with_the_rest_queued() {
        let (mut outbox, expected) = queued();
        let mut sink = Trickle {
            got: vec![],
            step: 10,
            limit: usize::MAX,
        };
        let (how, written) = outbox.flush(&mut sink, 20).unwrap();
        assert_eq!((how, written), (Flush::Budget, 20));
        assert_eq!(outbox.flush(&mut sink, usize::MAX).unwrap().0, Flush::Done);
        assert_eq!(sink.got, expected);
    }
}
