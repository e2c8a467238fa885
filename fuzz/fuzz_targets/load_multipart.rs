//! The load generator's response parser on arbitrary bytes, cut into chunks whose sizes
//! come from the first bytes: it never panics, and the chunking changes nothing it
//! reports — the same parts (with the same `X-Timestamp`s and `X-Frame`s), in the same
//! order, and the same final status or error, as when the response is fed in one piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixreplace::load::multipart::{PartHeaders, Parser};

/// Bytes 0–3: a cycle of chunk sizes (1 to 64); the rest: the response.
const HEADER: usize = 4;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let sizes: Vec<usize> = data[..HEADER]
        .iter()
        .map(|&b| 1 + usize::from(b % 64))
        .collect();
    let response = &data[HEADER..];
    let chunked = parse(response, &sizes);
    let whole = parse(response, &[response.len().max(1)]);
    assert_eq!(chunked, whole, "the chunking changed the result");
});

/// The parts reported, then the final status or error (as text: what a run reports).
fn parse(response: &[u8], sizes: &[usize]) -> (Vec<PartHeaders>, String) {
    let mut parser = Parser::new();
    let mut parts = Vec::new();
    let mut rest = response;
    let mut last = String::from("nothing fed");
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        match parser.feed(piece, &mut |headers| parts.push(headers)) {
            Ok(status) => last = format!("{status:?}"),
            Err(e) => return (parts, format!("error: {e:?}")),
        }
        rest = tail;
    }
    (parts, last)
}
