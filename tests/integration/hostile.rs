//! Hostile and careless clients against the real binary, over real sockets: pipelined
//! requests, resets at every stage, more clients than the cap, credentials and origins,
//! and a client that half-closes. (Malformed, oversized, slow and body-carrying requests
//! are in `answers`, clients that stop reading in `churn`, stops in `stop`; running out
//! of file descriptors is `tests/emfile.rs`, a binary of its own.)
//!
//! Most cases run beside a well-behaved demo client ([`beside_a_watcher`]) that must get
//! every run of the demo complete and on time, and end with the server cleaned up: no
//! connection left but the `/stats` request asking, descriptors back to the start.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::support::demo::{Watcher, beside_a_watcher, check_demo};
use crate::support::http::{Response, connect, exchange, read_response, reset};
use crate::support::multipart::{Item, open, open_with};
use crate::support::process::run;
use crate::support::server::{Server, Stats};
use crate::support::tools::require_python_module;
use crate::support::{IO_TIMEOUT, wait_for};

/// Pipelined requests are answered in order while the connection stays open (see
/// `keepalive.rs`); after an answer that closes it (an error, a stream) the rest is
/// never read as requests.
#[test]
fn pipelined_requests_after_a_closing_answer_are_ignored() {
    let server = beside_a_watcher(&["--allow-quit"], |server| {
        let pipelined = b"GET /stats HTTP/1.1\r\nHost: test\r\n\r\n\
                          GET /nowhere HTTP/1.1\r\nHost: test\r\n\r\n\
                          GET /quit HTTP/1.1\r\nHost: test\r\n\r\n";
        let response = exchange(server.addr(), pipelined);
        assert_eq!(response.status, 200);
        let rest = String::from_utf8_lossy(&response.trailing);
        assert!(
            rest.starts_with("HTTP/1.1 404 Not Found\r\n") && rest.ends_with("\r\n\r\n404 Not Found\n"),
            "the 404 and nothing after it: {rest:?}"
        );
        assert!(response.clean_eof);

        // After a stream request: the whole stream, and nothing else.
        let pipelined = b"GET / HTTP/1.1\r\nHost: test\r\n\r\nGET /quit HTTP/1.1\r\nHost: test\r\n\r\n";
        let (mut reader, _) = open_with(server.addr(), pipelined).unwrap();
        check_demo(&reader.read_to_end().unwrap().parts);

        // HTTP/1.0 and HEAD, pipelined with a quit.
        let pipelined = b"HEAD / HTTP/1.0\r\n\r\nGET /quit HTTP/1.0\r\n\r\n";
        let mut stream = connect(server.addr());
        stream.write_all(pipelined).unwrap();
        let response = read_response(&mut stream, true).unwrap();
        assert_eq!(response.status, 200);
        assert!(
            response.trailing.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&response.trailing)
        );
    });
    let stats = server.stats();
    assert_eq!(stats.answers(202), 0, "a pipelined /quit was obeyed");
    assert_eq!(stats.answers(404), 1, "the pipelined 404");
}

#[test]
fn a_reset_mid_part_or_mid_head_is_cleaned_up() {
    let args = [
        "--stream",
        "/=demo",
        "--stream",
        "/big=synthetic:parts=1000,size=1048576,interval=0",
    ];
    beside_a_watcher(&args, |server| {
        let before = server.stats();
        // Resets inside a 1 MiB part, at different depths.
        for i in 0..10 {
            let mut stream = connect(server.addr());
            stream
                .write_all(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            let mut got = vec![0; 1000 + i * 50_000];
            stream.read_exact(&mut got).unwrap();
            reset(stream);
        }
        // Resets while the server's writes are blocked (nothing read at all).
        for _ in 0..5 {
            let mut stream = connect(server.addr());
            stream
                .write_all(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            thread::sleep(Duration::from_millis(50));
            reset(stream);
        }
        // Resets in the middle of a request head.
        for _ in 0..5 {
            let mut stream = connect(server.addr());
            stream.write_all(b"GET /big HTTP/1.1\r\nHo").unwrap();
            thread::sleep(Duration::from_millis(20));
            reset(stream);
        }
        server.assert_settled();
        let after = server.stats();
        let gone = after.closed("client_gone") - before.closed("client_gone");
        assert_eq!(gone, 20, "{after}");
        assert_eq!(after.closed("error"), 0, "{after}");
    });
}

#[test]
fn past_the_client_cap_clients_get_503_then_service_recovers() {
    let args = [
        "--max-clients",
        "8",
        "--stream",
        "/=demo",
        "--stream",
        "/slow=synthetic:parts=1000,size=100,interval=200",
    ];
    beside_a_watcher(&args, |server| {
        server.wait_viewers("/", 1);
        // Every earlier request reaped: only the demo client open.
        server.wait_fds(server.base_fds + 1);
        // The demo client and seven streams fill the eight places.
        let held: Vec<_> = (0..7).map(|_| open(server.addr(), "/slow")).collect();
        for _ in 0..5 {
            let response = exchange(server.addr(), b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
            assert_eq!(response.status, 503, "{response:?}");
            assert_eq!(response.header("retry-after"), Some("1"));
            assert_eq!(response.header("connection"), Some("close"));
            assert!(response.header("content-length").is_some());
            assert!(response.clean_eof, "the 503 ends with a clean close");
        }
        drop(held);
        let mut refused = 5;
        let stats = wait_for("a place free again", Duration::from_secs(10), || {
            let response = exchange(server.addr(), b"GET /stats HTTP/1.1\r\nHost: test\r\n\r\n");
            match response.status {
                200 => Ok(Stats::parse(String::from_utf8(response.body).unwrap())),
                503 => {
                    refused += 1;
                    Err("503".into())
                }
                other => Err(format!("status {other}")),
            }
        });
        assert_eq!(stats.answers(503), refused);
        assert!(stats.get("peak_clients") >= 8);
        let mut reader = open(server.addr(), "/slow");
        assert!(
            matches!(reader.next().unwrap(), Item::Part(_)),
            "streams again after the cap"
        );
    });
}

/// Parses Prometheus text with the `prometheus_client` package's parser: the family,
/// type, sample name, labels and value of every sample; `None` (skip) where the package
/// is missing.
fn parse_with_prometheus_client(text: &str) -> Option<Vec<[String; 5]>> {
    const SCRIPT: &str = "\
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))
        print(f'{family.name}\\t{family.type}\\t{s.name}\\t{labels}\\t{s.value}')
";
    let python = require_python_module("prometheus_client", "python3-prometheus-client")?;
    let mut command = Command::new(python);
    command.args(["-c", SCRIPT]);
    let done = run(
        &mut command,
        Some(text.as_bytes().to_vec()),
        Duration::from_secs(30),
    );
    assert!(
        done.status.success(),
        "prometheus_client rejected /metrics: {}\n{text}",
        done.stderr_text()
    );
    let samples = done
        .stdout_text()
        .lines()
        .map(|line| {
            let fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
            fields.try_into().expect("five fields")
        })
        .collect();
    Some(samples)
}

#[test]
fn metrics_are_accepted_by_the_prometheus_client_parser() {
    beside_a_watcher(
        &["--stream", "/=demo", "--stream", "/we\"ird\\path=demo"],
        |server| {
            server.wait_viewers("/", 1);
            exchange(server.addr(), b"GET /nowhere HTTP/1.1\r\nHost: test\r\n\r\n");
            // Only the demo client left open, so the count below is exact.
            server.wait_fds(server.base_fds + 1);
            let response = server.get("/metrics");
            assert_eq!(response.status, 200);
            assert_eq!(
                response.header("content-type"),
                Some("text/plain; version=0.0.4; charset=utf-8")
            );
            let text = String::from_utf8(response.body).unwrap();
            let Some(samples) = parse_with_prometheus_client(&text) else {
                return;
            };
            let value = |name: &str, labels: &str| -> f64 {
                samples
                    .iter()
                    .find(|s| s[2] == name && s[3] == labels)
                    .unwrap_or_else(|| panic!("no sample {name}{{{labels}}} in {samples:?}"))[4]
                    .parse()
                    .unwrap()
            };
            let kind = |family: &str| -> &str {
                &samples
                    .iter()
                    .find(|s| s[0] == family)
                    .unwrap_or_else(|| panic!("no family {family}"))[1]
            };
            // Every sample line of the text came through the parser.
            let lines = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .count();
            assert_eq!(samples.len(), lines);
            assert_eq!(kind("mixreplace_clients"), "gauge");
            assert_eq!(kind("mixreplace_viewers"), "gauge");
            assert_eq!(kind("mixreplace_uptime_seconds"), "gauge");
            for counter in [
                "mixreplace_responses",
                "mixreplace_closed",
                "mixreplace_connections",
            ] {
                assert_eq!(kind(counter), "counter", "{counter}");
            }
            // The demo client and this request.
            assert_eq!(value("mixreplace_clients", ""), 2.0);
            assert_eq!(value("mixreplace_viewers", "path=/"), 1.0);
            assert_eq!(value("mixreplace_viewers", "path=/we\"ird\\path"), 0.0);
            assert_eq!(value("mixreplace_responses_total", "code=404"), 1.0);
            assert_eq!(value("mixreplace_responses_total", "code=503"), 0.0);
            assert_eq!(value("mixreplace_closed_total", "reason=send_timeout"), 0.0);
            assert!(value("mixreplace_connections_total", "") >= 3.0);
            // The server's own view of timing, for harnesses: each part handed to the
            // watcher counted once, with how late it was, by stream; and the loop's turns.
            assert_eq!(kind("mixreplace_part_lateness_seconds"), "histogram");
            assert_eq!(kind("mixreplace_loop_turn_seconds"), "histogram");
            assert_eq!(kind("mixreplace_stream_parts"), "counter");
            let parts = value("mixreplace_stream_parts_total", "path=/");
            assert!(parts >= 1.0, "{parts} parts");
            assert_eq!(value("mixreplace_part_lateness_seconds_count", "path=/"), parts);
            assert_eq!(
                value("mixreplace_part_lateness_seconds_bucket", "le=+Inf,path=/"),
                parts
            );
            assert!(value("mixreplace_stream_part_bytes_total", "path=/") > 100.0 * parts);
            assert_eq!(value("mixreplace_stream_parts_total", "path=/we\"ird\\path"), 0.0);
            assert!(value("mixreplace_loop_turn_seconds_count", "") >= 1.0);
        },
    );
}

const BASIC_USER_PASS: &str = "Authorization: Basic dXNlcjpwYTpzcw==\r\n"; // user:pa:ss

#[test]
fn auth_guards_every_route_and_cors_headers_go_on_every_answer() {
    let args = ["--auth", "user:pa:ss", "--allow-origin", "https://example.org"];
    let mut server = Server::start(&args);
    server.request_headers = BASIC_USER_PASS.to_owned();
    let watcher = Watcher::start_with(server.addr(), BASIC_USER_PASS);
    let cors = |response: &Response| {
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("https://example.org")
        );
        assert_eq!(response.header("vary"), Some("Origin"));
        assert_eq!(response.header("access-control-allow-credentials"), Some("true"));
    };
    let challenge = "Basic realm=\"mixreplace\", charset=\"UTF-8\"";
    for (request, what) in [
        ("GET / HTTP/1.1\r\nHost: t\r\n\r\n", "no credentials"),
        ("GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", "no credentials"),
        ("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", "no credentials"),
        ("GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n", "no credentials"),
        (
            "GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Basic dXNlcjpwYTpzeA==\r\n\r\n",
            "a wrong password",
        ),
        (
            "GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer dXNlcjpwYTpzcw==\r\n\r\n",
            "another scheme",
        ),
        (
            "GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Basic\r\n\r\n",
            "no token",
        ),
    ] {
        let response = exchange(server.addr(), request.as_bytes());
        assert_eq!(response.status, 401, "{what}: {request:?}");
        assert_eq!(response.header("www-authenticate"), Some(challenge), "{what}");
        cors(&response);
    }
    let mut stream = connect(server.addr());
    stream.write_all(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let response = read_response(&mut stream, true).unwrap();
    assert_eq!(response.status, 401);
    assert!(response.trailing.is_empty(), "HEAD gets no body");

    // With credentials: the stream head and the short answers carry CORS headers.
    let request = format!("GET / HTTP/1.1\r\nHost: t\r\n{BASIC_USER_PASS}\r\n");
    let (_, head) = open_with(server.addr(), request.as_bytes()).unwrap();
    cors(&head);
    let response = server.get("/stats");
    assert_eq!(response.status, 200);
    cors(&response);
    let response = server.get("/nowhere");
    assert_eq!(response.status, 404);
    cors(&response);
    let post = format!("POST / HTTP/1.1\r\nHost: t\r\n{BASIC_USER_PASS}Content-Length: 0\r\n\r\n");
    let response = exchange(server.addr(), post.as_bytes());
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
    cors(&response);

    // A preflight carries no credentials and is answered all the same.
    let preflight = "OPTIONS / HTTP/1.1\r\nHost: t\r\nOrigin: https://example.org\r\n\
                     Access-Control-Request-Method: GET\r\n\
                     Access-Control-Request-Headers: authorization\r\n\r\n";
    let response = exchange(server.addr(), preflight.as_bytes());
    assert_eq!(response.status, 204, "{response:?}");
    cors(&response);
    assert_eq!(response.header("access-control-allow-methods"), Some("GET, HEAD"));
    assert_eq!(
        response.header("access-control-allow-headers"),
        Some("Authorization")
    );
    assert!(response.body.is_empty() && response.trailing.is_empty());
    drop(stream);

    server.assert_settled();
    let stats = server.stats();
    assert_eq!(stats.answers(401), 8);
    assert_eq!(stats.answers(204), 1);
    assert!(watcher.finish() >= 1);
    server.assert_clean();
}

// See: 5ae64ba (the 408 was the one answer without the CORS header).
#[test]
fn any_origin_without_auth() {
    beside_a_watcher(&["--allow-origin", "*", "--head-timeout", "0.5"], |server| {
        let response = server.get("/stats");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        // Answers given before a request was understood carry them too.
        let bad = exchange(server.addr(), b"nonsense\r\n\r\n");
        let timed_out = exchange(server.addr(), b"GET / HTTP/1.1\r\n");
        for (response, status) in [(bad, 400), (timed_out, 408)] {
            assert_eq!(response.status, status, "{response:?}");
            assert_eq!(
                response.header("access-control-allow-origin"),
                Some("*"),
                "{status}"
            );
        }
        assert_eq!(response.header("vary"), None);
        assert_eq!(response.header("access-control-allow-credentials"), None);
        let (_, head) = open_with(server.addr(), b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(head.header("access-control-allow-origin"), Some("*"));
        let response = exchange(server.addr(), b"OPTIONS /stats HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(response.status, 204);
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    });
    // Without --allow-origin: no CORS headers, and OPTIONS is not a preflight.
    let server = Server::start(&[]);
    let response = server.get("/stats");
    assert_eq!(response.header("access-control-allow-origin"), None);
    let response = exchange(server.addr(), b"OPTIONS / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
}

/// The half-close rule, in one place: a client that half-closes after its request
/// (`printf 'GET / HTTP/1.0\r\n\r\n' | nc -N host port`) is served until a write fails,
/// whatever the packet timing: its FIN may arrive with the request (read in the same read)
/// or later, and both get the whole stream and a close counted as `finished`.
// See: issue 12, "a departed client can be held forever"; the old rule (ffc17a3) took the
// FIN as the client leaving, and a FIN read with the request went unnoticed.
#[test]
fn a_client_that_half_closes_after_its_request_is_served_to_the_end() {
    let server = Server::start(&[]);
    let before = server.stats();
    // The FIN right behind the request (often read with it), and one after three parts.
    for fin_after_parts in [0, 3] {
        let (mut reader, _) = open_with(server.addr(), b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut parts = Vec::new();
        if fin_after_parts == 0 {
            reader.get_mut().shutdown(Shutdown::Write).unwrap();
        }
        let ended = loop {
            match reader.next() {
                Ok(Item::Part(part)) => parts.push(part),
                other => break other,
            }
            if parts.len() == fin_after_parts {
                reader.get_mut().shutdown(Shutdown::Write).unwrap();
            }
        };
        assert!(
            matches!(ended, Ok(Item::End)),
            "FIN after {fin_after_parts} parts: {ended:?}"
        );
        check_demo(&parts);
    }
    // (Every /stats read is a finished connection too: only client_gone says it here.)
    server.assert_settled();
    assert_eq!(server.stats().closed("client_gone"), before.closed("client_gone"));
}

/// A FIN looks the same whether the client half-closed or left: a client that sent its
/// request and FIN and then vanished, on a stream with nothing to send, is released once
/// the send timeout passes without a write, never held for good.
// See: issue 12, "a departed client can be held forever" (CLOSE_WAIT, a slot and a viewer).
#[test]
fn departed_clients_of_a_silent_stream_are_released_after_the_send_timeout() {
    let server = Server::start_live(&["--stream", "/live=stdin", "--send-timeout", "2"]);
    let before = server.stats();
    for _ in 0..5 {
        let mut stream = connect(server.addr());
        stream
            .write_all(b"GET /live HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        drop(stream);
    }
    server.wait_viewers("/live", 5);
    wait_for("the departed viewers released as client_gone", IO_TIMEOUT, || {
        let now = server.stats();
        match (
            now.viewers("/live"),
            now.closed("client_gone") - before.closed("client_gone"),
        ) {
            (0, 5) => Ok(()),
            other => Err(format!("viewers, client_gone rose by {other:?}")),
        }
    });
    server.assert_settled();
}
