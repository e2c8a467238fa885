//! The oracle's own tests: the strict multipart reader takes the server's framing (and its
//! early end) and refuses every framing mistake; the expected demo is the issue's; the
//! JSON reader takes escapes and refuses trailing bytes.

use std::time::Duration;

use crate::support::demo::demo_parts;
use crate::support::json::{self, Value};
use crate::support::multipart::parse_all;

#[test]
fn the_reader_takes_a_well_framed_stream_and_its_early_end() {
    let b = "B".repeat(24);
    let part = |t: &str, body: &str, stamp: &str| {
        format!(
            "Content-Type: {t}\r\nContent-Length: {}\r\nX-Timestamp: {stamp}\r\n\r\n{body}",
            body.len()
        )
    };
    let whole = format!(
        "--{b}\r\n{}\r\n--{b}\r\n{}\r\n--{b}--\r\n",
        part("text/plain", "hi", "1.000000"),
        part("text/html", "", "1.500000")
    );
    let parsed = parse_all(whole.as_bytes(), &b).unwrap();
    assert_eq!(parsed.parts.len(), 2);
    assert!(parsed.stopped.is_none());
    assert_eq!(parsed.parts[0].body, b"hi");
    assert_eq!(parsed.parts[1].stamp, Some(1_500_000));
    assert!(parsed.parts[1].last && !parsed.parts[0].last);
    assert_eq!(parsed.parts[1].frame, None);
    // A numbered part: X-Frame after the stamp.
    let numbered = whole.replace("1.500000\r\n", "1.500000\r\nX-Frame: 18446744073709551615\r\n");
    let parsed = parse_all(numbered.as_bytes(), &b).unwrap();
    assert_eq!(parsed.parts[1].frame, Some(u64::MAX));
    let stopped = format!(
        "--{b}\r\n{}\r\n--{b}\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n\r\n--{b}--\r\n",
        part("text/plain", "hi", "1.000000")
    );
    let parsed = parse_all(stopped.as_bytes(), &b).unwrap();
    assert_eq!(parsed.parts.len(), 1);
    assert_eq!(parsed.stopped.unwrap().content_type, "text/plain");
    // Live frames whose header went ahead: no length, no stamp; the end has no length.
    let ahead = format!(
        "--{b}\r\nContent-Type: image/jpeg\r\n\r\n\r\n\r\n-\r\n--{b}\r\nContent-Type: image/jpeg\r\n\r\n\r\n--{b}--\r\n"
    );
    let parsed = parse_all(ahead.as_bytes(), &b).unwrap();
    assert_eq!(parsed.parts[0].body, b"\r\n\r\n-");
    assert_eq!(parsed.parts[0].stamp, None);
    assert_eq!(parsed.stopped.unwrap().headers.len(), 1);
}

#[test]
fn the_reader_refuses_every_framing_mistake() {
    let b = "B".repeat(24);
    let ok = |body: &str| {
        format!(
            "--{b}\r\nContent-Type: t\r\nContent-Length: 2\r\nX-Timestamp: 1.000000\r\n\r\n{body}\r\n--{b}--\r\n"
        )
    };
    assert!(parse_all(ok("hi").as_bytes(), &b).is_ok());
    let stop = format!("--{b}\r\nContent-Type: t\r\nContent-Length: 0\r\n\r\n\r\n--{b}--\r\n");
    for bad in [
        ok("hi") + "x",                                                         // bytes after the end
        ok("hi").replace("\r\n--B", "\n--B"),                                   // LF before a delimiter
        ok("hi").replace("Length: 2", "Length: 3"),                             // wrong length
        ok("hi").replace("Length: 2", "Length: 02"),                            // leading zero
        ok("hi").replace("1.000000", "1.0"),                                    // short micros
        ok("hi").replace("Content-Type: t\r\n", ""),                            // missing header
        ok("hi").replace("Content-Type: t\r\n", "Content-Type: t\r\nX: y\r\n"), // extra header
        ok("hi").replace("Content-Type: t", "Content-Type:  t"),                // padding
        ok("hi").replace(&format!("--{b}--\r\n"), &format!("--{b}\r\n")),       // no end
        ok("hi").replace(&format!("--{b}--\r\n"), &format!("--{b}--")),         // no CRLF
        format!("\r\n{}", ok("hi")),                                            // preamble
        stop.replace(&format!("--{b}--"), &format!("--{b}")),                   // a stop that goes on
        stop.replace("Length: 0", "Length: 1"),                                 // a stop with a length
        ok("hi").replace("1.000000\r\n", "1.000000\r\nX-Frame: 01\r\n"),        // leading zero
        ok("hi").replace("1.000000\r\n", "1.000000\r\nX-Frame: 18446744073709551616\r\n"), // past u64
        ok("hi").replace("1.000000\r\n", "1.000000\r\nX-Frame: 1\r\nX-Frame: 1\r\n"), // twice
        ok("hi").replace("Content-Type: t\r\n", "X-Frame: 1\r\nContent-Type: t\r\n"), // out of place
    ] {
        assert!(parse_all(bad.as_bytes(), &b).is_err(), "{bad:?}");
    }
    // A body holding the delimiter.
    let inside = format!(
        "--{b}\r\nContent-Type: t\r\nContent-Length: {}\r\nX-Timestamp: 1.000000\r\n\r\nx\r\n--{b}y\r\n--{b}--\r\n",
        b.len() + 6
    );
    assert!(parse_all(inside.as_bytes(), &b).is_err());
}

#[test]
fn the_expected_demo_matches_the_issue() {
    let parts = demo_parts();
    assert_eq!(parts.len(), 15);
    let total: Duration = parts.iter().map(|p| p.delay).sum();
    assert_eq!(total, Duration::from_millis(6400));
    assert_eq!(
        parts[13].body,
        b"<!doctype html><h1>Hello, the <i>wonderful</i> world of HTML!</h1>"
    );
}

#[test]
fn the_json_reader_takes_escapes_and_nesting() {
    let value = json::parse(r#" {"a":{"\/we\"ird\\path\u00e9\ud83d\ude00":1.5e1,"b":[true,null]}} "#);
    let inner = value.get("a");
    assert_eq!(inner.keys(), ["/we\"ird\\path\u{e9}\u{1f600}", "b"]);
    assert_eq!(inner.int("/we\"ird\\path\u{e9}\u{1f600}"), 15);
    assert_eq!(inner.get("b"), &Value::Arr(vec![Value::Bool(true), Value::Null]));
    let refused = std::panic::catch_unwind(|| json::parse("{} {}"));
    assert!(refused.is_err(), "trailing bytes");
}
