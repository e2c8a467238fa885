//! The demo stream, read as the strictest client would: every byte and every delay.

use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::support::demo::{check_arrivals, check_demo, demo_parts};
use crate::support::multipart::fetch_stream;
use crate::support::now_us;
use crate::support::process::run;
use crate::support::server::Server;
use crate::support::tools::require_tool;

#[test]
fn the_demo_is_exact_strict_multipart_over_http_1_1_and_1_0_with_its_delays() {
    let server = Server::start(&[]);
    let addr = server.addr();
    // HTTP/1.0 alongside, so the test costs one stream's time.
    let http10 = thread::spawn(move || fetch_stream(addr, b"GET / HTTP/1.0\r\n\r\n"));
    let requested_us = now_us();
    let got = fetch_stream(addr, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(got.head.status_line, "HTTP/1.1 200 OK");
    check_demo(&got.parts);

    // X-Timestamp is when the part was due: the first one is about now.
    let first = got.parts[0].stamp_us();
    assert!(
        first.abs_diff(requested_us) < 5_000_000,
        "first X-Timestamp {first} µs, requested at {requested_us} µs"
    );

    let lateness = check_arrivals(&got);
    eprintln!("lateness of each part and of the close, in ms: {lateness:?}");

    let got10 = http10.join().expect("the HTTP/1.0 client");
    assert_eq!(got10.head.status_line, "HTTP/1.0 200 OK");
    check_demo(&got10.parts);

    check_with_python_email(&got.raw, &got.boundary);
}

/// Parses the stream with Python's `email` package, a multipart parser we did not write:
/// no defect, 15 parts, each with its content type, headers and exact payload.
fn check_with_python_email(body: &[u8], boundary: &str) {
    let Some(python) = require_tool(&["python3"], "python3") else {
        return;
    };
    const SCRIPT: &str = r#"
import email, email.policy, sys
boundary = sys.argv[1].encode()
body = sys.stdin.buffer.read()
msg = email.message_from_bytes(
    b"Content-Type: multipart/x-mixed-replace; boundary=" + boundary + b"\r\n\r\n" + body,
    policy=email.policy.compat32)
names = lambda defects: ",".join(type(d).__name__ for d in defects)
print(msg.is_multipart(), repr(names(msg.defects)), repr(msg.preamble), repr(msg.epilogue))
for part in msg.get_payload():
    print(part.get_content_type(), repr(names(part.defects)), part["Content-Length"],
          part["X-Timestamp"], part.get_payload(decode=True).hex())
"#;
    let mut command = Command::new(python);
    command.args(["-c", SCRIPT, boundary]);
    let done = run(&mut command, Some(body.to_vec()), Duration::from_secs(30));
    assert!(done.status.success(), "python3: {}", done.stderr_text());
    let out = done.stdout_text();
    let mut lines = out.lines();
    // Multipart, no defect, nothing before the first delimiter nor after the last.
    assert_eq!(lines.next(), Some("True '' None ''"), "{out}");
    let expected = demo_parts();
    let mut count = 0;
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        let want = &expected
            .get(i)
            .unwrap_or_else(|| panic!("extra part: {line:.80}"));
        assert_eq!(fields.len(), 5, "part {i}: {line:.120}");
        assert_eq!(fields[0], want.content_type, "part {i}");
        assert_eq!(fields[1], "''", "part {i}: defects");
        assert_eq!(fields[2], want.body.len().to_string(), "part {i}: Content-Length");
        assert!(fields[3].len() > 7, "part {i}: X-Timestamp {}", fields[3]);
        let hex: String = want.body.iter().map(|b| format!("{b:02x}")).collect();
        assert!(fields[4] == hex, "part {i}: python's payload differs");
        count += 1;
    }
    assert_eq!(count, 15, "parts seen by python");
}
