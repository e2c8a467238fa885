//! Keep-alive and what rides on it (issue 10): pipelined requests answered in order, byte
//! for byte; the idle timeout and the cap on requests; HTTP/1.0 keep-alive; a stream
//! after kept-alive snapshots; bodies never read as requests; `Date` on every answer;
//! µStreamer's paths and the pollers' cache-busting parameters; users from an auth file,
//! the environment and the command line; curl and wrk reusing their connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::support::http::{connect, parse_imf_fixdate, read_head, undated};
use crate::support::multipart::{Item, find, open, open_with, parse_all};
use crate::support::process::run;
use crate::support::server::{Server, check_refused, run_binary};
use crate::support::tools::{TOOL_LIMIT, require_tool};
use crate::support::{Scratch, now_us};

const SNAPSHOT: &str = "GET /?action=snapshot HTTP/1.1\r\nHost: test\r\n\r\n";

/// The demo's snapshot (its first image), read on a connection of its own: the body
/// every snapshot answer below must carry, and its content type.
fn reference_snapshot(server: &Server) -> (Vec<u8>, String) {
    let response = server.get("/?action=snapshot");
    assert_eq!(response.status, 200, "{response:?}");
    let content_type = response
        .header("Content-Type")
        .expect("a content type")
        .to_owned();
    (response.body, content_type)
}

/// The head a snapshot answer has, its `Date` line left out (see [`undated`]).
fn snapshot_head(version: &str, content_type: &str, length: usize, connection: &str) -> String {
    format!(
        "{version} 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\
         Cache-Control: no-store\r\nConnection: {connection}\r\n\r\n"
    )
}

/// Everything the server sends on `stream` until it closes (a clean EOF, checked).
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("a clean close");
    bytes
}

/// Takes the first answer off `bytes`: its head without `Date` and its body of
/// `body_len` bytes.
fn take_answer(bytes: &mut Vec<u8>, body_len: usize) -> (String, Vec<u8>) {
    let head_end = find(bytes, b"\r\n\r\n").expect("an answer's head") + 4;
    let head = undated(std::str::from_utf8(&bytes[..head_end]).expect("a UTF-8 head"));
    let rest = bytes.split_off(head_end);
    let body = rest[..body_len].to_vec();
    *bytes = rest[body_len..].to_vec();
    (head, body)
}

/// One answer read off a kept-alive connection: its head (parsed) and its body.
fn next_answer(stream: &mut TcpStream) -> (crate::support::http::Response, Vec<u8>) {
    let mut head_bytes = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the blank line, so nothing of what follows is taken.
    while !head_bytes.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("an answer's head");
        head_bytes.push(byte[0]);
        assert!(head_bytes.len() < 64 * 1024, "a head over 64 KiB");
    }
    let response = read_head(&mut head_bytes.as_slice()).expect("a well-formed head");
    let length: usize = response
        .header("Content-Length")
        .map_or(0, |n| n.parse().expect("a numeric Content-Length"));
    let mut body = vec![0; length];
    stream.read_exact(&mut body).expect("the body");
    (response, body)
}

#[test]
fn pipelined_requests_get_their_answers_in_order_byte_for_byte() {
    let server = Server::start(&[]);
    let (image, content_type) = reference_snapshot(&server);
    let pipeline = format!(
        "{SNAPSHOT}HEAD /snapshot?_=1700000000000 HTTP/1.1\r\nHost: test\r\n\r\n\
         GET /snapshot?timestamp=1700000000000&1234 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    );
    let mut stream = connect(server.addr());
    stream.write_all(pipeline.as_bytes()).expect("send the pipeline");
    let mut bytes = read_to_close(&mut stream);
    let keep = snapshot_head("HTTP/1.1", &content_type, image.len(), "keep-alive");
    assert_eq!(
        take_answer(&mut bytes, image.len()),
        (keep.clone(), image.clone())
    );
    assert_eq!(take_answer(&mut bytes, 0), (keep, Vec::new()));
    let close = snapshot_head("HTTP/1.1", &content_type, image.len(), "close");
    assert_eq!(take_answer(&mut bytes, image.len()), (close, image));
    assert!(bytes.is_empty(), "more after the last answer: {bytes:?}");
    // The reference, the pipeline's three, this /stats.
    let stats = server.stats();
    assert_eq!(stats.answers(200), 5, "{stats}");
    server.assert_clean();
}

#[test]
fn an_idle_kept_alive_connection_is_closed_at_the_timeout_never_before() {
    let server = Server::start(&["--keepalive-timeout", "0.3"]);
    let mut stream = connect(server.addr());
    // The server's idle wait starts in the loop turn that sends the answer, at a time
    // sampled when the turn began, which may be before this client has read it; it
    // cannot be before the request was sent: the bound is kept from there.
    let idle_since = Instant::now();
    stream.write_all(SNAPSHOT.as_bytes()).unwrap();
    let (response, _) = next_answer(&mut stream);
    assert_eq!(response.header("Connection"), Some("keep-alive"));
    assert!(read_to_close(&mut stream).is_empty(), "nothing but the close");
    let idle = idle_since.elapsed();
    println!("closed after {idle:?} idle (timeout 0.3 s)");
    assert!(idle >= Duration::from_millis(300), "closed early: {idle:?}");
    server.assert_clean();
    assert!(server.stats().closed("finished") >= 1);
}

#[test]
fn the_last_request_the_cap_allows_is_answered_with_close() {
    let server = Server::start(&["--keepalive-requests", "3"]);
    let mut stream = connect(server.addr());
    for connection in ["keep-alive", "keep-alive", "close"] {
        stream.write_all(SNAPSHOT.as_bytes()).unwrap();
        let (response, _) = next_answer(&mut stream);
        assert_eq!(
            (response.status, response.header("Connection")),
            (200, Some(connection))
        );
    }
    assert!(read_to_close(&mut stream).is_empty());
    let stats = server.stats();
    // One connection for the three, one for this /stats.
    assert_eq!((stats.get("accepted"), stats.answers(200)), (2, 4), "{stats}");
}

#[test]
fn http_1_0_keeps_the_connection_only_when_it_asks() {
    let server = Server::start(&[]);
    let (image, content_type) = reference_snapshot(&server);
    let mut stream = connect(server.addr());
    stream
        .write_all(b"GET /snapshot HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let (response, body) = next_answer(&mut stream);
    assert_eq!(response.status_line, "HTTP/1.0 200 OK");
    assert_eq!(response.header("Connection"), Some("keep-alive"));
    assert_eq!(body, image);
    stream.write_all(b"GET /snapshot HTTP/1.0\r\n\r\n").unwrap();
    let mut bytes = read_to_close(&mut stream);
    let close = snapshot_head("HTTP/1.0", &content_type, image.len(), "close");
    assert_eq!(take_answer(&mut bytes, image.len()), (close, image));
    assert!(bytes.is_empty());
}

#[test]
fn a_stream_after_kept_alive_snapshots_on_one_connection_is_close_delimited() {
    let server = Server::start(&[
        "--stream",
        "/=demo",
        "--stream",
        "/s=synthetic:parts=3,size=16,interval=0",
    ]);
    let (image, _) = reference_snapshot(&server);
    let pipeline = format!("{SNAPSHOT}{SNAPSHOT}GET /s HTTP/1.1\r\nHost: test\r\n\r\n{SNAPSHOT}");
    let mut stream = connect(server.addr());
    stream.write_all(pipeline.as_bytes()).unwrap();
    let mut bytes = read_to_close(&mut stream);
    for _ in 0..2 {
        assert_eq!(take_answer(&mut bytes, image.len()).1, image);
    }
    // The stream: its head says close, its parts follow, and the snapshot pipelined
    // after it is never answered.
    let (head, _) = take_answer(&mut bytes, 0);
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    let boundary = head
        .split("boundary=")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .expect("a boundary");
    let parts = parse_all(&bytes, boundary).expect("the stream's parts").parts;
    assert_eq!(parts.len(), 3);
    // The reference, two snapshots, the stream, this /stats: the last snapshot never.
    assert_eq!(server.stats().answers(200), 5);
}

#[test]
fn a_body_on_a_get_is_never_read_as_the_next_request() {
    let server = Server::start(&["--allow-quit"]);
    let smuggled = "GET /quit HTTP/1.1\r\nHost: test\r\n\r\n";
    for framing in [
        format!("Content-Length: {}\r\n", smuggled.len()),
        "Transfer-Encoding: chunked\r\n".to_owned(),
    ] {
        let request = format!("GET /?action=snapshot HTTP/1.1\r\nHost: test\r\n{framing}\r\n{smuggled}");
        let mut stream = connect(server.addr());
        stream.write_all(request.as_bytes()).unwrap();
        let (response, _) = next_answer(&mut stream);
        assert_eq!(
            (response.status, response.header("Connection")),
            (200, Some("close")),
            "{framing}"
        );
        assert!(
            read_to_close(&mut stream).is_empty(),
            "{framing}: one answer only"
        );
    }
    let stats = server.stats();
    assert_eq!(stats.answers(202), 0, "the /quit in a body was obeyed");
    server.assert_clean();
}

#[test]
fn a_bad_request_in_a_pipeline_is_answered_and_closes_the_connection() {
    let server = Server::start(&["--allow-quit"]);
    let (image, _) = reference_snapshot(&server);
    let pipeline = format!("{SNAPSHOT}NOT A REQUEST\r\n\r\nGET /quit HTTP/1.1\r\nHost: test\r\n\r\n");
    let mut stream = connect(server.addr());
    stream.write_all(pipeline.as_bytes()).unwrap();
    let mut bytes = read_to_close(&mut stream);
    assert_eq!(take_answer(&mut bytes, image.len()).1, image);
    let (head, body) = take_answer(&mut bytes, "400 Bad Request\n".len());
    assert!(
        head.starts_with("HTTP/1.1 400 Bad Request\r\n") && head.contains("\r\nConnection: close\r\n"),
        "{head}"
    );
    assert_eq!(
        (body.as_slice(), bytes.as_slice()),
        (&b"400 Bad Request\n"[..], &b""[..])
    );
    assert_eq!(server.stats().answers(202), 0);
}

#[test]
fn every_answer_carries_a_date_of_now() {
    let server = Server::start(&[]);
    let before = now_us() / 1_000_000;
    let mut dates = Vec::new();
    for request in [
        SNAPSHOT,
        "GET /nowhere HTTP/1.1\r\nHost: test\r\n\r\n",
        "GET /stats HTTP/1.0\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: test\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: test\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n",
        "BAD\r\n\r\n",
    ] {
        let mut stream = connect(server.addr());
        stream.write_all(request.as_bytes()).unwrap();
        let (response, _) = next_answer(&mut stream);
        let date = response
            .header("Date")
            .unwrap_or_else(|| panic!("no Date for {request:?}"));
        dates.push(parse_imf_fixdate(date).unwrap_or_else(|| panic!("{date:?} is no IMF-fixdate")));
    }
    // A stream's head too.
    let (_, head) = open_with(server.addr(), b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").expect("the demo");
    let date = head.header("Date").expect("a Date on the stream's head");
    dates.push(parse_imf_fixdate(date).expect("an IMF-fixdate"));
    let after = now_us() / 1_000_000;
    println!("dates {dates:?}, test clock {before}..={after}");
    // The server's clock is the machine's: the same second, give or take rounding.
    assert!(
        dates.iter().all(|&d| d + 1 >= before && d <= after + 1),
        "{dates:?}"
    );
}

#[test]
fn ustreamer_paths_and_cache_busting_parameters_reach_the_one_stream() {
    let server = Server::start(&[]);
    let (image, _) = reference_snapshot(&server);
    for target in [
        "/snapshot",
        "/snapshot?timestamp=1700000000000",
        "/snapshot?_=1700000000000&bypassCache=1700000000001",
        "/snapshot?1700000000000",
        "/?action=snapshot&1700000000000",
        "/?1700000000000&action=snapshot",
    ] {
        let response = server.get(target);
        assert_eq!((response.status, &response.body), (200, &image), "{target}");
    }
    // /stream is the stream; ?timestamp= (Mainsail's) changes nothing.
    for target in ["/stream", "/stream?timestamp=1700000000000", "/?1700000000000"] {
        let mut reader = open(server.addr(), target);
        let first = reader.next().expect("a first part");
        assert!(matches!(first, Item::Part(_)), "{target}: {first:?}");
    }
    // With two streams neither path names one.
    let two = Server::start(&["--stream", "/a=demo", "--stream", "/b=demo"]);
    assert_eq!(two.get("/snapshot").status, 404);
    assert_eq!(two.get("/stream").status, 404);
}

/// `Authorization: Basic …` for `user:password`.
fn basic(pair: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(pair);
    format!("Authorization: Basic {token}\r\n")
}

/// The status of `GET /stats` with these credentials.
fn status_as(server: &mut Server, pair: Option<&str>) -> u16 {
    server.request_headers = pair.map(basic).unwrap_or_default();
    server.get("/stats").status
}

#[test]
fn users_come_from_an_auth_file_the_environment_and_the_command_line() {
    let scratch = Scratch::new("auth");
    let file = scratch.write(
        "users",
        "# cameras\nalice:wonder:land\n\n  # the dashboard\nbob:builder\n",
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file_arg = file.to_str().unwrap();
    let mut server = Server::start(&["--auth-file", file_arg]);
    assert_eq!(status_as(&mut server, Some("alice:wonder:land")), 200);
    assert_eq!(status_as(&mut server, Some("bob:builder")), 200);
    assert_eq!(status_as(&mut server, Some("bob:wonder:land")), 401);
    assert_eq!(status_as(&mut server, None), 401);
    assert!(!server.log().contains("WARN"), "{}", server.log());

    // Readable by others: served, with a warning naming the file and the fix.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut server = Server::start(&["--auth-file", file_arg]);
    assert_eq!(status_as(&mut server, Some("bob:builder")), 200);
    let log = server.log();
    assert!(
        log.contains(&format!("{file_arg} can be read by other users (mode 0644)"))
            && log.contains("chmod 600"),
        "{log}"
    );

    // The environment, beside a file: both users are let in.
    let mut server = Server::start_with(&["--auth-file", file_arg], |command| {
        command.env("MIXREPLACE_AUTH", "cam:env-secret");
    });
    assert_eq!(status_as(&mut server, Some("cam:env-secret")), 200);
    assert_eq!(status_as(&mut server, Some("alice:wonder:land")), 200);

    // The command line works, with a warning that ps shows it.
    let mut server = Server::start(&["--auth", "carol:visible"]);
    assert_eq!(status_as(&mut server, Some("carol:visible")), 200);
    assert!(server.log().contains("where ps shows it"), "{}", server.log());
}

#[test]
fn a_bad_auth_file_or_variable_is_refused_naming_the_line() {
    let scratch = Scratch::new("auth-bad");
    let bad = scratch.write("users", "alice:a\n# fine\nno colon here\n");
    let bad_arg = bad.to_str().unwrap();
    let done = run_binary(&["--auth-file", bad_arg], &[]);
    check_refused(
        &done,
        "a line without ':'",
        &[&format!("{bad_arg}:3"), "user:password"],
    );
    let empty = scratch.write("empty", "# nobody\n");
    let empty_arg = empty.to_str().unwrap();
    let done = run_binary(&["--auth-file", empty_arg], &[]);
    check_refused(&done, "no users", &[empty_arg, "no user:password line"]);
    let done = run_binary(&["--auth-file", "/nonexistent/mixreplace-users"], &[]);
    check_refused(&done, "a missing file", &["/nonexistent/mixreplace-users"]);
    let done = run_binary(&[], &[("MIXREPLACE_AUTH", "nopassword:")]);
    check_refused(
        &done,
        "an empty password",
        &["MIXREPLACE_AUTH", "the password is empty"],
    );
}

#[test]
fn curl_reuses_one_connection_for_several_urls() {
    let Some(curl) = require_tool(&["curl"], "curl") else {
        return;
    };
    let server = Server::start(&[]);
    let (image, _) = reference_snapshot(&server);
    let accepted = server.stats().get("accepted");
    let url = format!("http://{}/snapshot", server.addr());
    let out = scratch_outputs(3);
    let mut command = Command::new(curl);
    command.args(["-sv", "--fail"]);
    for path in &out.1 {
        command.arg(&url).arg("-o").arg(path);
    }
    let done = run(&mut command, None, TOOL_LIMIT);
    let stderr = done.stderr_text();
    assert!(done.status.success(), "{stderr}");
    assert_eq!(stderr.matches("Re-using existing").count(), 2, "{stderr}");
    for path in &out.1 {
        assert_eq!(std::fs::read(path).unwrap(), image);
    }
    // curl's one connection, and the /stats that counts it.
    assert_eq!(server.stats().get("accepted"), accepted + 2);
}

/// `n` output paths in a scratch folder (kept alive by the returned value).
fn scratch_outputs(n: usize) -> (Scratch, Vec<std::path::PathBuf>) {
    let scratch = Scratch::new("curl-out");
    let paths = (0..n).map(|i| scratch.join(&format!("{i}.jpg"))).collect();
    (scratch, paths)
}

#[test]
fn wrk_polls_snapshots_over_a_few_kept_alive_connections() {
    let Some(wrk) = require_tool(&["wrk"], "wrk") else {
        return;
    };
    let server = Server::start(&[]);
    let url = format!("http://{}/snapshot?timestamp=1", server.addr());
    let mut command = Command::new(wrk);
    command.args(["-t1", "-c4", "-d1s", &url]);
    let done = run(&mut command, None, TOOL_LIMIT);
    let text = done.stdout_text();
    assert!(done.status.success(), "{text}{}", done.stderr_text());
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "{text}"
    );
    let rate: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec: {text}"));
    let stats = server.stats();
    println!("wrk: {rate} requests/s; {stats}");
    // wrk's 4 connections carried every answer, each anew after its 1,000 (the
    // default --keepalive-requests; wrk may also open a few more as its run ends), and
    // this /stats.
    let (accepted, answered) = (stats.get("accepted"), stats.answers(200));
    assert!(accepted <= answered / 1000 + 2 * 4 + 1, "{stats}");
    assert!(answered > 10 * accepted, "{stats}");
}
