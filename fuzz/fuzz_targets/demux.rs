//! The live inputs' multipart demuxer (`stream::input::demux::Demux`) on arbitrary bytes,
//! cut into chunks whose sizes come from the first bytes: it never panics, never hands out
//! a frame over its cap or an empty one, keeps its buffer bounded, and the chunking changes
//! nothing — the same frames, counters and final flow or error as one push of the whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixreplace::stream::input::demux::{Demux, DemuxStats, MAX_PART_HEAD, Transfer};

/// Byte 0: the Content-Type; byte 1: the transfer coding; byte 2: the frame cap (1 to
/// 256); bytes 3–6: a cycle of chunk sizes (1 to 64); the rest: the body.
const HEADER: usize = 7;

const CONTENT_TYPES: [Option<&[u8]>; 6] = [
    None,
    Some(b"multipart/x-mixed-replace; boundary=frame"),
    Some(b"multipart/x-mixed-replace; boundary=\"fr ame\""),
    Some(b"multipart/x-mixed-replace;boundary=--frame"),
    Some(b"multipart/mixed"),
    Some(b"image/jpeg"),
];

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let content_type = CONTENT_TYPES[usize::from(data[0]) % CONTENT_TYPES.len()];
    let body = &data[HEADER..];
    let transfer = match data[1] % 3 {
        0 => Transfer::Close,
        1 => Transfer::Chunked,
        _ => Transfer::Length(body.len() as u64 / 2),
    };
    let max_frame = 1 + usize::from(data[2]);
    let sizes: Vec<usize> = data[3..HEADER].iter().map(|&b| 1 + usize::from(b % 64)).collect();
    let chunked = demux(content_type, transfer, max_frame, body, &sizes);
    let whole = demux(content_type, transfer, max_frame, body, &[body.len().max(1)]);
    assert_eq!(chunked, whole, "the chunking changed the result");
});

/// The frames handed out, the counters, then the final flow or error (as text).
fn demux(
    content_type: Option<&[u8]>,
    transfer: Transfer,
    max_frame: usize,
    body: &[u8],
    sizes: &[usize],
) -> (Vec<Vec<u8>>, DemuxStats, String) {
    let Ok(mut demux) = Demux::new(content_type, transfer, max_frame) else {
        return (Vec::new(), DemuxStats::default(), String::from("refused"));
    };
    let mut frames = Vec::new();
    let mut on_frame = |frame: &[u8]| {
        assert!(!frame.is_empty() && frame.len() <= max_frame, "frame of {} bytes", frame.len());
        frames.push(frame.to_vec());
    };
    let mut rest = body;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        if let Err(e) = demux.push(piece, &mut on_frame) {
            return (frames, demux.stats(), format!("error: {e}"));
        }
        // The cap, a part's head, a delimiter and the last push: nothing more is held.
        assert!(demux.buffered() <= max_frame + MAX_PART_HEAD + 256 + piece.len(), "{} held", demux.buffered());
        rest = tail;
    }
    demux.finish(&mut on_frame);
    (frames, demux.stats(), format!("{:?}", demux.flow()))
}
