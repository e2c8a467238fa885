//! The MJPEG splitter on arbitrary data, cut into chunks whose sizes come from the first
//! bytes: every frame starts `FF D8`, ends `FF D9` and fits the cap; the buffer never
//! holds more than the cap; and the frames and counters are the same as when the data
//! is pushed in one piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixreplace::stream::jpeg::{SplitStats, Splitter};

/// Bytes 0–1: the frame cap (1 to 4096, small so that oversize frames are common);
/// bytes 2–5: a cycle of chunk sizes (1 to 64); the rest: the stream.
const HEADER: usize = 6;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let max = 1 + usize::from(u16::from_le_bytes([data[0], data[1]]) % 4096);
    let sizes: Vec<usize> = data[2..HEADER]
        .iter()
        .map(|&b| 1 + usize::from(b % 64))
        .collect();
    let stream = &data[HEADER..];

    let chunked = split(max, stream, &sizes);
    let whole = split(max, stream, &[stream.len().max(1)]);
    assert_eq!(chunked, whole, "the chunking changed the result");
});

fn split(max: usize, stream: &[u8], sizes: &[usize]) -> (Vec<Vec<u8>>, SplitStats, usize) {
    let mut splitter = Splitter::new(max);
    let mut frames = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        splitter.push(piece, |frame| {
            assert!(
                frame.starts_with(&[0xFF, 0xD8]),
                "frame does not start with SOI"
            );
            assert!(
                frame.ends_with(&[0xFF, 0xD9]),
                "frame does not end with EOI"
            );
            assert!(
                frame.len() <= max,
                "frame of {} over the cap {max}",
                frame.len()
            );
            frames.push(frame.to_vec());
        });
        assert!(splitter.buffered() <= max, "buffered over the cap");
        rest = tail;
    }
    (frames, splitter.stats(), splitter.buffered())
}
