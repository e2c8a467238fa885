//! `script::parse` on arbitrary UTF-8: it never panics; an error names a line of the
//! text (or the one just past its end); a script it accepts keeps the invariants the
//! server relies on (see the `script` module comment).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mixreplace::stream::script::{self, MAX_PARTS, MAX_WAIT_MS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `@file` names resolve under a directory that does not exist, so the fuzzer's
    // scripts read no file (absolute names still reach the file system, which the
    // parser refuses unless they are regular files under the size cap).
    match script::parse(text, Path::new("/nonexistent-fuzz-dir/fuzz.script")) {
        Err(err) => {
            let lines = text.lines().count();
            assert!(
                err.line >= 1 && err.line <= lines + 1,
                "line {} of {lines}: {err}",
                err.line
            );
            assert!(!err.message.is_empty());
        }
        Ok(script) => {
            assert!(!script.parts.is_empty() && script.parts.len() <= MAX_PARTS);
            assert!(script.loop_from.is_none_or(|i| i < script.parts.len()));
            assert!(script.lead_ms <= MAX_WAIT_MS);
            for part in &script.parts {
                assert!(part.delay_ms <= MAX_WAIT_MS);
                assert!(!part.content_type.contains(|c: char| c.is_whitespace()));
            }
        }
    }
});
