//! `push` streams against the real binary, fed by real publishers: ffmpeg's
//! `-f mpjpeg -method PUT` (a chunked body without a Content-Type) reaches a viewer frame
//! by frame while a second publisher is refused `409`; `curl -T frame.jpg` makes the
//! snapshot that very JPEG, byte for byte, and a second `-T` goes on the same connection;
//! publishers need the server's credentials or the stream's token; a silent publisher is
//! let go, the stream keeping its frame and viewers; `/stats` shows the input's state and
//! frames.
//!
//! Times are never asserted: generous limits as hang guards only.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use crate::support::Scratch;
use crate::support::ffmpeg::ffmpeg_command;
use crate::support::http::{connect, exchange};
use crate::support::media::{PROGRESSIVE_JPEG, RESTART_JPEG, jpeg_size};
use crate::support::multipart::{Item, open};
use crate::support::process::{Guard, run};
use crate::support::server::{Server, Stats};
use crate::support::tools::{TOOL_LIMIT, require_tool};
use crate::support::{IO_TIMEOUT, wait_for};

/// ffmpeg pushing 30 frames of 320x240 at 10 fps to `url`, as the recipe does.
fn ffmpeg_publisher(ffmpeg: &Path, url: &str) -> Command {
    let mut command = ffmpeg_command(ffmpeg);
    command.args([
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-frames:v",
        "30",
        "-f",
        "mpjpeg",
        "-method",
        "PUT",
        url,
    ]);
    command
}

/// A `PUT` of `body` as one JPEG, with `headers` (each ending in CRLF), on its own
/// connection: the answer's status.
fn put(server: &Server, target: &str, headers: &str, body: &[u8]) -> u16 {
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    exchange(server.addr(), &[head.as_bytes(), body].concat()).status
}

/// The server's stats once `/cam`'s input is `waiting` again (its publisher gone).
fn back_to_waiting(server: &Server) -> Stats {
    wait_for("the input back to waiting", IO_TIMEOUT, || {
        let stats = server.stats();
        match stats.input("/cam").str("state") {
            "waiting" => Ok(stats),
            other => Err(other.to_owned()),
        }
    })
}

#[test]
fn ffmpeg_pushes_mpjpeg_to_a_viewer_and_a_second_publisher_gets_409() {
    let Some(ffmpeg) = require_tool(&["ffmpeg"], "ffmpeg") else {
        return;
    };
    let server = Server::start(&["--stream", "/cam=push"]);
    assert_eq!(server.stats().input("/cam").str("state"), "waiting");
    // The viewer comes first: it waits for the first frame on an open stream.
    let mut viewer = open(server.addr(), "/cam");
    let url = format!("http://{}/cam", server.addr());
    let mut publisher = Guard::spawn(&mut ffmpeg_publisher(&ffmpeg, &url), TOOL_LIMIT);
    let mut frames = 0;
    while frames < 5 {
        match viewer.next().expect("a well-framed part") {
            Item::Part(part) => {
                assert_eq!(part.content_type, "image/jpeg");
                assert_eq!(jpeg_size(&part.body), Some((320, 240)), "a frame of the testsrc");
                frames += 1;
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }
    // ffmpeg is at it (3 s of frames): anyone else is refused, and it goes on.
    assert_eq!(server.stats().input("/cam").str("state"), "running");
    assert_eq!(put(&server, "/cam", "", RESTART_JPEG), 409);
    let status = publisher.wait_exit(TOOL_LIMIT).expect("ffmpeg ends");
    assert!(status.success(), "ffmpeg: {status:?}");
    // Every frame it sent came in; the stream waits for the next publisher, its viewer
    // still there.
    let stats = back_to_waiting(&server);
    let input = stats.input("/cam");
    assert_eq!(input.int("frames_in"), 30, "{input:?}");
    assert!(input.int("published") >= 5, "{input:?}");
    assert_eq!(stats.viewers("/cam"), 1);
    assert_eq!(stats.answers(409), 1);
    // A publisher later feeds the same viewer.
    assert_eq!(put(&server, "/cam", "", PROGRESSIVE_JPEG), 204);
    let next = loop {
        match viewer.next().expect("a well-framed part") {
            Item::Part(part) if part.body == PROGRESSIVE_JPEG => break part,
            Item::Part(_) => {} // a heartbeat of the last ffmpeg frame
            other => panic!("expected a frame, got {other:?}"),
        }
    };
    assert_eq!(next.content_type, "image/jpeg");
}

#[test]
fn curl_puts_one_jpeg_and_the_snapshot_is_that_jpeg() {
    let Some(curl) = require_tool(&["curl"], "curl") else {
        return;
    };
    let server = Server::start(&["--stream", "/cam=push"]);
    let scratch = Scratch::new("push-curl");
    let one = scratch.write("one.jpg", PROGRESSIVE_JPEG);
    let two = scratch.write("two.jpg", RESTART_JPEG);
    let url = format!("http://{}/cam", server.addr());
    let snapshot = "/cam?action=snapshot";
    // Two uploads on one connection: 204 each, one connect (keep-alive after a body).
    let done = run(
        Command::new(&curl)
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n"])
            .arg("-T")
            .arg(&one)
            .arg(&url)
            .arg("-T")
            .arg(&two)
            .arg(&url),
        None,
        TOOL_LIMIT,
    );
    assert!(done.status.success(), "curl: {}", done.stderr_text());
    assert_eq!(done.stdout_text(), "204 1\n204 0\n");
    let got = server.get(snapshot);
    assert_eq!(got.status, 200);
    assert!(
        got.body == RESTART_JPEG,
        "the snapshot is the last JPEG put, byte for byte"
    );
    // A POST of the other, as a phone's or an ESP32's HTTP client sends it.
    let done = run(
        Command::new(&curl)
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Content-Type: image/jpeg",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", one.display()))
            .arg(&url),
        None,
        TOOL_LIMIT,
    );
    assert_eq!(done.stdout_text(), "204", "{}", done.stderr_text());
    assert!(server.get(snapshot).body == PROGRESSIVE_JPEG);
    let stats = server.stats();
    let input = stats.input("/cam");
    assert_eq!(
        (input.int("frames_in"), input.str("state")),
        (3, "waiting"),
        "{input:?}"
    );
}

#[test]
fn publishers_need_the_credentials_or_the_streams_token() {
    let server = Server::start(&[
        "--auth",
        "user:pass",
        "--stream",
        "/cam=push",
        "--stream",
        "/tok=push,token=s3cr3t",
        "--stream",
        "/card=testcard,frames=2",
    ]);
    const BASIC: &str = "Authorization: Basic dXNlcjpwYXNz\r\n";
    let jpeg = PROGRESSIVE_JPEG;
    for (target, headers, status) in [
        ("/cam", "", 401),
        ("/cam", "Authorization: Basic dXNlcjpwYXNx\r\n", 401),
        ("/cam?token=s3cr3t", "", 401),
        ("/cam", BASIC, 204),
        ("/tok", "", 401),
        ("/tok", "Authorization: Bearer s3cr3\r\n", 401),
        ("/tok", "Authorization: Bearer s3cr3t\r\n", 204),
        ("/tok?token=s3cr3t", "", 204),
        ("/tok?token=nope", "", 401),
        ("/tok", BASIC, 204),
        // Not a push stream: the method is refused, as ever.
        ("/card", BASIC, 405),
        ("/nowhere", BASIC, 404),
    ] {
        assert_eq!(
            put(&server, target, headers, jpeg),
            status,
            "PUT {target} {headers:?}"
        );
    }
    // Watching still takes the server's credentials, token or not.
    let watch = exchange(
        server.addr(),
        b"GET /tok?action=snapshot&token=s3cr3t HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(watch.status, 401);
    let watch = exchange(
        server.addr(),
        format!("GET /tok?action=snapshot HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{BASIC}\r\n")
            .as_bytes(),
    );
    assert_eq!(watch.status, 200);
    assert!(watch.body == jpeg);
}

#[test]
fn a_silent_publisher_is_let_go_and_the_stream_keeps_its_frame_and_viewers() {
    let server = Server::start(&["--send-timeout", "1", "--stream", "/cam=push,max_frame=4096"]);
    let mut viewer = open(server.addr(), "/cam");
    // A chunked multipart body: one frame, one part over max_frame, then silence.
    let frame = PROGRESSIVE_JPEG;
    assert!(frame.len() <= 4096);
    let part = |body: &[u8]| {
        let head = format!(
            "--b\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let part = [head.as_bytes(), body, b"\r\n"].concat();
        [format!("{:x}\r\n", part.len()).as_bytes(), &part, b"\r\n"].concat()
    };
    let mut publisher = connect(server.addr());
    let head = "POST /cam HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
                Content-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n";
    let body = [part(frame), part(&[0u8; 5000])].concat();
    publisher
        .write_all(&[head.as_bytes(), &body].concat())
        .expect("send");
    match viewer.next().expect("a well-framed part") {
        Item::Part(part) => assert!(part.body == frame),
        other => panic!("expected the frame, got {other:?}"),
    }
    // Nothing more comes: the server hangs up on the publisher after the send timeout.
    let mut rest = Vec::new();
    let _ = publisher.read_to_end(&mut rest);
    let stats = back_to_waiting(&server);
    let input = stats.input("/cam");
    assert_eq!(
        (input.int("frames_in"), input.int("dropped_oversize")),
        (2, 1),
        "{input:?}"
    );
    assert_eq!(stats.viewers("/cam"), 1);
    assert_eq!(stats.closed("send_timeout"), 1);
    // The viewer keeps the last frame: the heartbeat sends it again.
    match viewer.next().expect("a well-framed part") {
        Item::Part(part) => assert!(part.body == frame),
        other => panic!("expected the frame again, got {other:?}"),
    }
}
