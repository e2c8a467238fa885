//! `proxy_protocol::parse` on arbitrary bytes: it never panics; a header it accepts is at
//! most `MAX_LEN` bytes and within the input; every shorter prefix of an accepted header
//! answers "read more", and a prefix of refused bytes never answers a header (so the
//! answer does not depend on how the bytes were cut into reads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixreplace::proxy_protocol::{MAX_LEN, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Some(header)) => {
            assert!(header.len <= data.len() && header.len <= MAX_LEN, "{header:?}");
            assert_eq!(parse(&data[..header.len]), Ok(Some(header)));
            for cut in 0..header.len {
                assert_eq!(parse(&data[..cut]), Ok(None), "cut at {cut}");
            }
        }
        Ok(None) => assert!(data.len() < MAX_LEN, "still waiting after {} bytes", data.len()),
        Err(_) => {
            for cut in 0..data.len() {
                assert!(!matches!(parse(&data[..cut]), Ok(Some(_))), "a header at {cut}");
            }
        }
    }
});
