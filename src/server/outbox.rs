//! What a connection still has to send: a few shared chunks and an offset, written with
//! vectored writes.
//!
//! The outbox never copies a part: it holds the `Rc` of the encoded part and the
//! connection's own stamp, and hands the kernel up to `MAX_SLICES` slices per `writev`.
//! Its queue lives for the connection's lifetime, so queueing a part allocates nothing.

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
}

impl Chunk {
    /// The chunk's bytes as up to three slices, in order.
    fn slices(&self) -> [&[u8]; 3] {
        match self {
            Chunk::Static(bytes) => [bytes, &[], &[]],
            Chunk::Shared(bytes) => [bytes, &[], &[]],
            Chunk::Owned(bytes) => [bytes, &[], &[]],
            Chunk::Part(part, stamp) => {
                let (head, tail) = part.halves();
                [head, stamp.as_bytes(), tail]
            }
            Chunk::PartHeader(part, stamp) => [part.halves().0, stamp.as_bytes(), b"\r\n\r\n"],
            Chunk::PartBody(part) => [part.body_and_delimiter(), &[], &[]],
            Chunk::Body(part) => [part.body(), &[], &[]],
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
}

#[derive(Debug, Default)]
pub struct Outbox {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
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

    /// Writes until the queue is empty, the socket would block, or `budget` bytes went
    /// out. Returns how it ended and the bytes written.
    ///
    /// No write is handed more than what is left of the budget: one `writev` of a
    /// multi-MiB part would otherwise give the kernel as much as an autotuned send buffer
    /// takes (megabytes), and hundreds of such writes make one loop turn last seconds.
    pub fn flush(&mut self, out: &mut impl Write, budget: usize) -> io::Result<(Flush, usize)> {
        let mut written = 0;
        while !self.chunks.is_empty() {
            if written >= budget {
                return Ok((Flush::Budget, written));
            }
            match self.write_once(out, budget - written) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((Flush::Blocked, written));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((Flush::Done, written))
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
