//! The demo stream, read as the strictest client would: every byte and every delay.

use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;

/// A part may arrive this much before it is due. Counted from the request, which comes
/// before the server starts the timeline, a part can never be early: this is a margin.
const EARLY: Duration = Duration::from_millis(5);
/// And this much after: generous, as the machine is shared. No speed is asserted.
const LATE: Duration = Duration::from_millis(250);

#[test]
fn the_demo_is_exact_strict_multipart_over_http_1_1_and_1_0_with_its_delays() {
    let server = Server::start(&[]);
    let addr = server.addr();
    // HTTP/1.0 alongside, so the test costs one stream's time.
    let http10 = thread::spawn(move || fetch_stream(addr, GET_1_0, "HTTP/1.0"));
    let requested_us = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros();
    let got = fetch_stream(addr, GET, "HTTP/1.1");
    check_demo(&got.multipart);

    // X-Timestamp is when the part was due: the first one is about now.
    let first = u128::from(got.multipart.parts[0].stamp_us);
    assert!(
        first.abs_diff(requested_us) < 5_000_000,
        "first X-Timestamp {first} µs, requested at {requested_us} µs"
    );

    check_delays(&got);

    let got10 = http10.join().expect("the HTTP/1.0 client");
    check_demo(&got10.multipart);

    check_with_python_email(got.body(), &got.boundary);
}

/// Each part arrives after its delay, counted on the stream's own timeline from the
/// request: never early, and late by at most [`LATE`], so each gap is its delay within
/// a generous margin.
///
/// Why not each gap alone, from the previous part's arrival: the timeline is absolute
/// (a late part does not push back the ones after it, so lateness never accumulates),
/// hence the gap after a late part is shorter than its delay by that lateness. On a busy
/// machine a part is now and then a few tens of ms late, and `gap >= delay - 5 ms`
/// failed ("part 10 to the next part: 268 ms, expected 300 ms") with the server right.
fn check_delays(got: &Fetched) {
    let expected = demo_parts();
    // After the last part (its delimiter is the closing one) comes the close.
    let arrivals: Vec<Duration> = (0..15)
        .map(|i| got.arrival(i))
        .chain([got.capture.closed_at])
        .map(|at| at - got.sent_at)
        .collect();
    let mut due = Duration::ZERO;
    let mut lateness = Vec::new();
    for (i, &at) in arrivals.iter().enumerate() {
        let what = match i {
            15 => "the close".to_owned(),
            _ => format!("part {i}"),
        };
        assert!(
            at + EARLY >= due && at <= due + LATE,
            "{what} came {at:?} after the request, due at {due:?} (-{EARLY:?}/+{LATE:?})"
        );
        if i > 0 {
            let (gap, delay) = (at - arrivals[i - 1], expected[i - 1].delay);
            assert!(
                gap <= delay + LATE,
                "{what}: {gap:?} after the one before, not {delay:?}"
            );
        }
        lateness.push(at.saturating_sub(due).as_millis());
        due += expected.get(i).map_or(Duration::ZERO, |part| part.delay);
    }
    eprintln!("lateness of each part and of the close, in ms: {lateness:?}");
}

/// Parses the stream with Python's `email` package, a multipart parser we did not write:
/// no defect, 15 parts, each with its content type, headers and exact payload.
fn check_with_python_email(body: &[u8], boundary: &str) {
    if !have_tool("python3") {
        return;
    }
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
    let mut command = Command::new("python3");
    command.args(["-c", SCRIPT, boundary]);
    let done = Proc::spawn(command, Some(body.to_vec()))
        .expect("spawn python3")
        .finish(Duration::from_secs(30));
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
