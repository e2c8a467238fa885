//! `http::parse` on arbitrary bytes: it never panics, and a request it accepts has an
//! origin-form path (starting with `/`) or the asterisk form `*`, which is all routing
//! is prepared for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(req)) = mixreplace::http::parse(data) {
        assert!(
            req.path.starts_with('/') || req.path == "*",
            "accepted path {:?}",
            req.path
        );
    }
});
