//! Everything but a stream: HEAD, 404, 405, 400, 431, 408 and /stats. Each answer is a
//! complete response read up to a clean close (a reset fails the read).

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn head_gets_the_stream_head_and_no_body_in_both_versions() {
    let server = Server::start(&[]);
    for (request, version) in [
        (&b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n"[..], "HTTP/1.1"),
        (b"HEAD / HTTP/1.0\r\n\r\n", "HTTP/1.0"),
    ] {
        let bytes = exchange(server.addr(), request);
        let (head, rest) = split_head(&bytes).unwrap_or_else(|e| panic!("{e}"));
        check_stream_head(&head, version);
        assert!(rest.is_empty(), "{version}: {} bytes after the head", rest.len());
    }
    // A request that arrives a byte at a time is the same request.
    let mut stream = connect(server.addr());
    for &byte in b"HEAD / HTTP/1.1\r\nhost: test\r\n\r\n" {
        stream.write_all(&[byte]).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    let got = read_to_close(&mut stream, Instant::now() + STREAM_TIMEOUT);
    let (head, rest) = split_head(&got.bytes).unwrap_or_else(|e| panic!("{e}"));
    check_stream_head(&head, "HTTP/1.1");
    assert!(rest.is_empty());
}

#[test]
fn other_paths_are_404() {
    let server = Server::start(&[]);
    let addr = server.addr();
    let bytes = get(addr, "/nope");
    check_answer(&bytes, "HTTP/1.1 404 Not Found", false);
    let bytes = exchange(addr, b"GET /index.html HTTP/1.0\r\n\r\n");
    check_answer(&bytes, "HTTP/1.0 404 Not Found", false);
    let bytes = exchange(addr, b"HEAD /nope HTTP/1.1\r\nHost: test\r\n\r\n");
    check_answer(&bytes, "HTTP/1.1 404 Not Found", true);
    // One answer per connection: a pipelined second request is read and dropped.
    let bytes = exchange(
        addr,
        b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    check_answer(&bytes, "HTTP/1.1 404 Not Found", false);
    assert_eq!(server.stats().get("404"), 4);
}

#[test]
fn other_methods_on_the_stream_are_405_with_allow() {
    let server = Server::start(&[]);
    for (request, version) in [
        (
            &b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello"[..],
            "HTTP/1.1",
        ),
        (b"DELETE / HTTP/1.1\r\nHost: test\r\n\r\n", "HTTP/1.1"),
        (b"PUT / HTTP/1.0\r\nContent-Length: 0\r\n\r\n", "HTTP/1.0"),
    ] {
        let bytes = exchange(server.addr(), request);
        let head = check_answer(&bytes, &format!("{version} 405 Method Not Allowed"), false);
        assert_eq!(head.get("Allow"), Some("GET, HEAD"), "{head:?}");
    }
}

/// RFC 9112 §9.6 and the server's own promise: after an answer it shuts down its side and
/// reads and drops what the client still sends, so the client gets the answer, not a
/// reset. A client that sends its whole body before it reads (Python's `http.client`
/// does) relies on that.
#[test]
fn a_client_sending_a_large_body_before_reading_gets_the_answer_not_a_reset() {
    let server = Server::start(&[]);
    let body = vec![b'x'; 16 << 20];
    let mut stream = connect(server.addr());
    let head = format!(
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    if let Err(e) = stream.write_all(&body) {
        panic!(
            "sending the 16 MiB body failed after {:?}: {e}",
            started.elapsed()
        );
    }
    let got = read_to_close(&mut stream, Instant::now() + STREAM_TIMEOUT);
    check_answer(&got.bytes, "HTTP/1.1 405 Method Not Allowed", false);
}

#[test]
fn invalid_requests_are_400() {
    let server = Server::start(&["--head-timeout", "3"]);
    for request in [
        &b"hello there\r\n\r\n"[..],
        b"GET /\0 HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\rX-Bare-CR: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET nopath HTTP/1.1\r\nHost: test\r\n\r\n",
        // The start of a TLS ClientHello: https spoken to an http port.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        let started = Instant::now();
        let bytes = exchange(server.addr(), request);
        check_answer(&bytes, "HTTP/1.1 400 Bad Request", false);
        // At once, not after the head timeout.
        assert!(started.elapsed() < Duration::from_secs(2), "{request:?}");
    }
    assert!(server.stats().get("400") >= 7);
}

#[test]
fn heads_over_8_kib_are_431() {
    let server = Server::start(&[]);
    let addr = server.addr();
    // A head of exactly 8 KiB is fine; one byte more is not.
    let padded = |total: usize| {
        let start = "HEAD / HTTP/1.1\r\nHost: test\r\nX-Pad: ";
        let end = "\r\n\r\n";
        format!("{start}{}{end}", "p".repeat(total - start.len() - end.len()))
    };
    let bytes = exchange(addr, padded(8192).as_bytes());
    let (head, _) = split_head(&bytes).unwrap_or_else(|e| panic!("{e}"));
    check_stream_head(&head, "HTTP/1.1");
    let bytes = exchange(addr, padded(8193).as_bytes());
    check_answer(&bytes, "HTTP/1.1 431 Request Header Fields Too Large", false);
    // Far over, and never finished: the answer comes without waiting for the rest.
    let mut stream = connect(addr);
    let long = format!("GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}", "b".repeat(20_000));
    stream.write_all(long.as_bytes()).unwrap();
    let got = read_to_close(&mut stream, Instant::now() + STREAM_TIMEOUT);
    check_answer(&got.bytes, "HTTP/1.1 431 Request Header Fields Too Large", false);
    // Many small headers.
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let bytes = exchange(
        addr,
        format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes(),
    );
    check_answer(&bytes, "HTTP/1.1 431 Request Header Fields Too Large", false);
}

#[test]
fn a_head_not_complete_within_the_head_timeout_is_408() {
    let server = Server::start(&["--head-timeout", "1"]);
    let addr = server.addr();
    let clients: Vec<_> = ["silent", "partial", "trickle"]
        .into_iter()
        .map(|kind| {
            thread::spawn(move || {
                // Before connecting: the server's deadline starts at its accept.
                let started = Instant::now();
                let mut stream = connect(addr);
                match kind {
                    "silent" => {}
                    "partial" => stream.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap(),
                    _ => {
                        // A byte every 200 ms: progress does not extend the deadline.
                        let mut writer = stream.try_clone().unwrap();
                        thread::spawn(move || {
                            for &byte in b"GET / HTTP/1.1\r\nHost: t\r\n" {
                                if writer.write_all(&[byte]).is_err() {
                                    break;
                                }
                                thread::sleep(Duration::from_millis(200));
                            }
                        });
                    }
                }
                let got = read_to_close(&mut stream, Instant::now() + STREAM_TIMEOUT);
                (kind, started.elapsed(), got.bytes)
            })
        })
        .collect();
    for client in clients {
        let (kind, elapsed, bytes) = client.join().unwrap();
        check_answer(&bytes, "HTTP/1.1 408 Request Timeout", false);
        // Never early; the upper bound only catches a timeout that does not fire.
        assert!(
            elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(4),
            "{kind}: 408 after {elapsed:?}"
        );
    }
    assert_eq!(server.stats().get("408"), 3);
}

#[test]
fn stats_counts_clients_and_answers() {
    let server = Server::start(&[]);
    let stats = server.stats();
    assert!(
        stats.0.starts_with('{') && stats.0.trim_end().ends_with('}'),
        "{}",
        stats.0
    );
    // The /stats request itself is the one open connection.
    assert_eq!(stats.get("clients"), 1, "{}", stats.0);
    assert_eq!(stats.get("accepted"), 1, "{}", stats.0);
    get(server.addr(), "/nope");
    // A stream in progress counts as a client.
    let mut stream = connect(server.addr());
    stream.write_all(GET).unwrap();
    let mut first = [0; 64];
    let n = stream.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    let stats = server.stats();
    assert_eq!(stats.get("clients"), 2, "{}", stats.0);
    assert_eq!(stats.get("accepted"), 4, "{}", stats.0);
    assert_eq!(stats.get("404"), 1, "{}", stats.0);
    assert_eq!(stats.get("200"), 3, "{}", stats.0);
    assert_eq!(stats.get("streams"), 1, "{}", stats.0);
    assert_eq!(stats.get("finished"), 2, "{}", stats.0);
}
