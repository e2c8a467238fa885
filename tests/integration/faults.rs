//! Faults on purpose (`--stream PATH=KIND…,fault=NAME`), byte for byte: each fault's
//! response is read raw to the close and compared with the bytes spelled out here from
//! the README's table, built from the stream's known parts and the boundary read from the
//! response head (it is random), with the parts' `X-Timestamp`s read from the wire.
//!
//! The timing faults (`stall`, `drip`) are checked by lower bounds only: the server never
//! sends early, whatever the load on the machine.

use std::time::Duration;

use crate::support::Scratch;
use crate::support::http::{End, Raw, read_raw, undated};
use crate::support::media::assert_bytes;
use crate::support::multipart::find;
use crate::support::server::{Server, run_binary};

/// The stream every fault is tried on: three parts, all due at once.
const PARTS: [&str; 3] = ["one", "second", "third!"];
const SCRIPT: &str = "part text/plain \"one\"\npart text/plain \"second\"\npart text/plain \"third!\"\n";
/// What `jpeg_trailer` appends to every body.
const TRAILER: &[u8] = b"\0\0\0\0\0\0\0\0\r\njunk\r\n";
const BUSY_PAGE: &str = "<!doctype html>\n<html><head><title>Busy</title></head><body><h1>Busy</h1>\
     <p>Another client is watching this camera.</p></body></html>\n";

/// What the framing faults make of the stream, as the README describes each.
#[derive(Clone, Copy, Debug, Default)]
struct Shape {
    no_first_boundary: bool,
    dashed_boundary: bool,
    quoted_boundary: bool,
    no_length: bool,
    bare_delimiter: bool,
    lf_only: bool,
    duplicate_length: bool,
    /// `(part, by)`: part numbers from 1.
    wrong_length: Option<(usize, i64)>,
    jpeg_trailer: bool,
    no_close: bool,
    chunked: bool,
}

impl Shape {
    /// The `boundary` parameter for `boundary`.
    fn param(&self, boundary: &str) -> String {
        let dashed = if self.dashed_boundary { "--" } else { "" };
        match self.quoted_boundary {
            true => format!("\"{dashed}{boundary}\""),
            false => format!("{dashed}{boundary}"),
        }
    }

    /// The boundary, from the head's parameter.
    fn boundary_of(&self, head: &str) -> String {
        let param = head
            .split_once("boundary=")
            .and_then(|(_, rest)| rest.split_once("\r\n"))
            .expect("a boundary parameter")
            .0;
        let param = match self.quoted_boundary {
            true => param
                .strip_prefix('"')
                .and_then(|p| p.strip_suffix('"'))
                .expect("quoted"),
            false => param,
        };
        let param = match self.dashed_boundary {
            true => param.strip_prefix("--").expect("dashed"),
            false => param,
        };
        param.to_owned()
    }

    fn head(&self, version: &str, boundary: &str) -> String {
        let chunked = match self.chunked && version == "HTTP/1.1" {
            true => "Transfer-Encoding: chunked\r\n",
            false => "",
        };
        format!(
            "{version} 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={}\r\n\
             Cache-Control: no-cache, no-store, must-revalidate\r\nPragma: no-cache\r\n\
             X-Accel-Buffering: no\r\nConnection: close\r\n{chunked}\r\n",
            self.param(boundary)
        )
    }

    /// The pieces of the body in order: the opening delimiter (empty without it), then
    /// each part with the delimiter after it; `stamps`: the parts' `X-Timestamp`s (a
    /// part cut short before its stamp gets none).
    fn pieces(&self, boundary: &str, stamps: &[String]) -> Vec<Vec<u8>> {
        let eol = if self.lf_only { "\n" } else { "\r\n" };
        let mut pieces = vec![match self.no_first_boundary {
            true => Vec::new(),
            false => format!("--{boundary}{eol}").into_bytes(),
        }];
        for (i, body) in PARTS.iter().enumerate() {
            let mut body = body.as_bytes().to_vec();
            if self.jpeg_trailer {
                body.extend_from_slice(TRAILER);
            }
            let off = match self.wrong_length {
                Some((part, by)) if part == i + 1 => by,
                _ => 0,
            };
            let length = format!("Content-Length: {}{eol}", body.len() as i64 + off);
            let lengths = match (self.no_length, self.duplicate_length) {
                (true, _) => String::new(),
                (_, true) => length.repeat(2),
                _ => length,
            };
            let last = i + 1 == PARTS.len();
            let before = if self.bare_delimiter { "" } else { eol };
            let closes = if last && !self.no_close { "--" } else { "" };
            let mut piece = format!(
                "Content-Type: text/plain{eol}{lengths}X-Timestamp: {}{eol}{eol}",
                stamps.get(i).map_or("", String::as_str)
            )
            .into_bytes();
            piece.extend_from_slice(&body);
            piece.extend_from_slice(format!("{before}--{boundary}{closes}{eol}").as_bytes());
            pieces.push(piece);
        }
        pieces
    }
}

/// The `X-Timestamp` values on the wire, in order.
fn stamps(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(at) = find(rest, b"X-Timestamp: ") {
        rest = &rest[at + b"X-Timestamp: ".len()..];
        let len = rest
            .iter()
            .position(|b| !b.is_ascii_digit() && *b != b'.')
            .unwrap_or(rest.len());
        out.push(String::from_utf8(rest[..len].to_vec()).unwrap());
    }
    out
}

/// A server with `/PATH` for each `(path, faults)` on the three-part script.
fn serve(streams: &[(&str, &[&str])]) -> (Server, Scratch) {
    let scratch = Scratch::new("faults");
    let script = scratch.write("three.script", SCRIPT);
    let args: Vec<String> = streams
        .iter()
        .flat_map(|(path, faults)| {
            let faults: String = faults.iter().map(|f| format!(",fault={f}")).collect();
            [
                "--stream".to_owned(),
                format!("/{path}=script:{}{faults}", script.display()),
            ]
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Server::start(&args), scratch)
}

fn get(server: &Server, path: &str, version: &str) -> Raw {
    let request = format!("GET /{path} {version}\r\nHost: test\r\n\r\n");
    read_raw(server.addr(), request.as_bytes())
}

/// The whole response to `GET /path` must be exactly what `shape` says, closed by a FIN.
fn check_whole(server: &Server, path: &str, shape: Shape) -> Raw {
    let raw = get(server, path, "HTTP/1.1");
    let (head, body) = raw.split_head();
    let boundary = shape.boundary_of(&head);
    assert_eq!(head, shape.head("HTTP/1.1", &boundary), "{path}: the head");
    let want = shape.pieces(&boundary, &stamps(body)).concat();
    assert_bytes(body, &want, path);
    assert_eq!(raw.end, End::Eof, "{path}");
    raw
}

#[test]
fn each_framing_fault_sends_exactly_its_bytes() {
    let s = Shape::default;
    let cases: [(&str, &[&str], Shape); 14] = [
        ("plain", &[], s()),
        (
            "a",
            &["no_first_boundary"],
            Shape {
                no_first_boundary: true,
                ..s()
            },
        ),
        (
            "b",
            &["dashed_boundary"],
            Shape {
                dashed_boundary: true,
                ..s()
            },
        ),
        (
            "c",
            &["quoted_boundary"],
            Shape {
                quoted_boundary: true,
                ..s()
            },
        ),
        (
            "d",
            &["no_length"],
            Shape {
                no_length: true,
                ..s()
            },
        ),
        (
            "e",
            &["bare_delimiter"],
            Shape {
                bare_delimiter: true,
                ..s()
            },
        ),
        ("f", &["lf_only"], Shape { lf_only: true, ..s() }),
        (
            "g",
            &["duplicate_length"],
            Shape {
                duplicate_length: true,
                ..s()
            },
        ),
        (
            "h",
            &["wrong_length=+3@2"],
            Shape {
                wrong_length: Some((2, 3)),
                ..s()
            },
        ),
        (
            "i",
            &["wrong_length=-1@3"],
            Shape {
                wrong_length: Some((3, -1)),
                ..s()
            },
        ),
        (
            "j",
            &["jpeg_trailer"],
            Shape {
                jpeg_trailer: true,
                ..s()
            },
        ),
        (
            "k",
            &["no_close"],
            Shape {
                no_close: true,
                ..s()
            },
        ),
        (
            "l",
            &[
                "lf_only",
                "bare_delimiter",
                "no_length",
                "no_close",
                "no_first_boundary",
            ],
            Shape {
                lf_only: true,
                bare_delimiter: true,
                no_length: true,
                no_close: true,
                no_first_boundary: true,
                ..s()
            },
        ),
        (
            "m",
            &[
                "quoted_boundary",
                "dashed_boundary",
                "jpeg_trailer",
                "duplicate_length",
                "wrong_length=+2@1",
            ],
            Shape {
                quoted_boundary: true,
                dashed_boundary: true,
                jpeg_trailer: true,
                duplicate_length: true,
                wrong_length: Some((1, 2)),
                ..s()
            },
        ),
    ];
    let streams: Vec<(&str, &[&str])> = cases.iter().map(|(path, faults, _)| (*path, *faults)).collect();
    let (server, _scratch) = serve(&streams);
    for (path, faults, shape) in cases {
        let raw = check_whole(&server, path, shape);
        eprintln!("{faults:?}: {} bytes", raw.bytes.len());
    }
    // Every part was written whole: the stream's counters are those of a good one.
    let stats = server.stats();
    assert_eq!(stats.get("parts"), 3 * cases.len() as u64, "{stats}");
    server.assert_clean();
}

#[test]
fn a_chunked_body_is_one_chunk_a_piece_then_the_last_chunk_and_plain_over_http_10() {
    let (server, _scratch) = serve(&[("c", &["chunked"]), ("cl", &["chunked", "lf_only"])]);
    for (path, lf_only) in [("c", false), ("cl", true)] {
        let shape = Shape {
            chunked: true,
            lf_only,
            ..Shape::default()
        };
        let raw = get(&server, path, "HTTP/1.1");
        let (head, body) = raw.split_head();
        let boundary = shape.boundary_of(&head);
        assert_eq!(head, shape.head("HTTP/1.1", &boundary));
        let mut want = Vec::new();
        for piece in shape.pieces(&boundary, &stamps(body)) {
            want.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            want.extend_from_slice(&piece);
            want.extend_from_slice(b"\r\n");
        }
        want.extend_from_slice(b"0\r\n\r\n");
        assert_bytes(body, &want, path);
        assert_eq!(raw.end, End::Eof);
        // HTTP/1.0 knows no chunked bodies: the stream as it is.
        let raw = get(&server, path, "HTTP/1.0");
        let (head, body) = raw.split_head();
        assert_eq!(head, shape.head("HTTP/1.0", &boundary));
        assert_bytes(body, &shape.pieces(&boundary, &stamps(body)).concat(), path);
    }
    server.assert_clean();
}

#[test]
fn a_reset_or_a_truncate_cuts_its_part_after_the_header_block_and_half_the_body() {
    let streams: [(&str, &[&str]); 4] = [
        ("r1", &["reset@1"]),
        ("t2", &["truncate@2"]),
        ("r3", &["reset@3", "lf_only"]),
        ("tc", &["truncate@2", "chunked"]),
    ];
    let (server, _scratch) = serve(&streams);
    for (path, part, end, shape) in [
        ("r1", 1, End::Reset, Shape::default()),
        ("t2", 2, End::Eof, Shape::default()),
        (
            "r3",
            3,
            End::Reset,
            Shape {
                lf_only: true,
                ..Shape::default()
            },
        ),
        (
            "tc",
            2,
            End::Eof,
            Shape {
                chunked: true,
                ..Shape::default()
            },
        ),
    ] {
        let raw = get(&server, path, "HTTP/1.1");
        let (head, body) = raw.split_head();
        let boundary = shape.boundary_of(&head);
        assert_eq!(head, shape.head("HTTP/1.1", &boundary), "{path}");
        let pieces = shape.pieces(&boundary, &stamps(body));
        let mut want = Vec::new();
        for (i, piece) in pieces.iter().enumerate().take(part + 1) {
            if shape.chunked {
                want.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            }
            if i < part {
                want.extend_from_slice(piece);
                if shape.chunked {
                    want.extend_from_slice(b"\r\n");
                }
                continue;
            }
            // The cut part: its header block and half its body, rounded down.
            let text = PARTS[part - 1].as_bytes();
            let body_at = find(piece, text).unwrap();
            want.extend_from_slice(&piece[..body_at + text.len() / 2]);
        }
        assert_bytes(body, &want, path);
        assert_eq!(raw.end, end, "{path}");
    }
    let stats = server.stats();
    assert_eq!(stats.closed("fault"), 4, "{stats}");
    server.assert_clean();
}

#[test]
fn a_stall_and_a_drip_send_every_byte_and_never_early() {
    const STALL_MS: u64 = 400;
    let (server, _scratch) = serve(&[("s", &["stall=400@2"]), ("d", &["drip=40/30"]), ("p", &[])]);
    let plain = check_whole(&server, "p", Shape::default());
    let stall = check_whole(&server, "s", Shape::default());
    let drip = check_whole(&server, "d", Shape::default());
    // Lower bounds only: a stall lasts its time at least; 40 bytes every 30 ms.
    let body = drip.split_head().1.len() as u64;
    let drip_floor = (body.div_ceil(40) - 1) * 30;
    eprintln!(
        "whole stream: plain {:?}, stall=400@2 {:?}, drip=40/30 {:?} ({body} bytes, at least {drip_floor} ms)",
        plain.elapsed, stall.elapsed, drip.elapsed
    );
    assert!(
        stall.elapsed >= Duration::from_millis(STALL_MS),
        "{:?}",
        stall.elapsed
    );
    assert!(
        drip.elapsed >= Duration::from_millis(drip_floor),
        "{:?}",
        drip.elapsed
    );
    server.assert_clean();
}

/// The header block at the start of `rest`, up to its blank line in LF alone, and what
/// follows it.
fn lf_header_block(rest: &[u8]) -> (String, &[u8]) {
    let end = find(rest, b"\n\n").expect("a header block ending in LF LF") + 2;
    let block = String::from_utf8(rest[..end].to_vec()).expect("a UTF-8 header block");
    (block, &rest[end..])
}

#[test]
fn a_testcard_takes_faults_and_lf_only_reaches_the_line_before_x_frame() {
    let server = Server::start(&[
        "--stream",
        "/card=testcard,size=64x48,fps=50,frames=8,fault=lf_only,fault=truncate@3",
    ]);
    // Header blocks sent ahead (`advance_headers`) are framed alike.
    for query in ["", "?advance_headers=1"] {
        let raw = get(&server, &format!("card{query}"), "HTTP/1.1");
        assert_eq!(raw.end, End::Eof, "{query}: truncate@3 closes");
        let (head, body) = raw.split_head();
        let boundary = Shape::default().boundary_of(&head);
        let delimiter = format!("\n--{boundary}\n");
        let mut rest = body
            .strip_prefix(format!("--{boundary}\n").as_bytes())
            .expect("the opening delimiter in LF");
        for frame in 0..3 {
            let (block, after) = lf_header_block(rest);
            assert!(!block.contains('\r'), "{query}: a CR in {block:?}");
            let lines: Vec<&str> = block.lines().collect();
            assert_eq!(lines[0], "Content-Type: image/jpeg", "{query}");
            assert!(lines[2].starts_with("X-Timestamp: "), "{query}: {block:?}");
            assert_eq!(lines[3], format!("X-Frame: {frame}"), "{query}");
            let length: usize = lines[1]
                .strip_prefix("Content-Length: ")
                .and_then(|n| n.parse().ok())
                .expect("a Content-Length");
            if frame == 2 {
                // Cut after the header block and half the body.
                assert_eq!(after.len(), length / 2, "{query}");
                break;
            }
            assert!(after[..2] == [0xff, 0xd8], "{query}: a JPEG body");
            let tail = &after[length..];
            assert!(tail.starts_with(delimiter.as_bytes()), "{query}: frame {frame}");
            rest = &tail[delimiter.len()..];
        }
    }
    server.assert_clean();
}

#[test]
fn busy_page_answers_a_page_for_the_stream_and_its_snapshot_as_ever() {
    let scratch = Scratch::new("busy");
    let png = scratch.write("a.png", crate::support::media::solid_png(2, 2, [1, 2, 3]));
    let script = scratch.write("busy.script", format!("part image/png @{}\n", png.display()));
    let server = Server::start(&[
        "--stream",
        &format!("/cam=script:{},fault=busy_page", script.display()),
    ]);
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let raw = read_raw(
            server.addr(),
            format!("GET /cam {version}\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let want = format!(
            "{version} 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n{BUSY_PAGE}",
            BUSY_PAGE.len()
        );
        let got = undated(&String::from_utf8(raw.bytes).expect("a UTF-8 answer"));
        assert_bytes(got.as_bytes(), want.as_bytes(), version);
        assert_eq!(raw.end, End::Eof);
    }
    let snapshot = server.get("/cam?action=snapshot");
    assert_eq!(snapshot.header("Content-Type"), Some("image/png"));
    // No stream started; 200s: two pages, the snapshot and this /stats.
    let stats = server.stats();
    assert_eq!((stats.get("streams"), stats.answers(200)), (0, 4), "{stats}");
    server.assert_clean();
}

#[test]
fn stats_and_view_list_each_streams_faults_and_no_stream_has_any_unasked() {
    let (server, _scratch) = serve(&[("plain", &[]), ("odd", &["wrong_length=-1@2", "stall=5@1"])]);
    let stats = server.get("/stats");
    let json = String::from_utf8(stats.body).unwrap();
    assert!(
        json.contains(r#""faults":{"/plain":[],"/odd":["wrong_length=-1@2","stall=5@1"]}"#),
        "{json}"
    );
    let view = String::from_utf8(server.get("/view").body).unwrap();
    assert!(
        view.contains(r#"<a href="/odd">/odd</a> <small class="faults">faults on purpose: wrong_length=-1@2, stall=5@1</small>"#),
        "{view}"
    );
    assert_eq!(view.matches("faults on purpose").count(), 1, "{view}");
}

#[test]
fn a_fault_that_cannot_apply_is_refused_before_the_server_listens() {
    let scratch = Scratch::new("bad-faults");
    let script = scratch.write("three.script", SCRIPT);
    let script = format!("script:{}", script.display());
    for (spec, says) in [
        (
            format!("/x={script},fault=nope"),
            "unknown fault 'nope' (expected no_first_boundary, ",
        ),
        (
            format!("/x={script},fault=reset@4"),
            "fault reset@4: the stream has only 3 parts",
        ),
        (format!("/x={script},fault=stall=10"), "expected stall=MS@PART"),
        (
            format!("/x={script},fault=busy_page,fault=chunked"),
            "busy_page sends no stream",
        ),
        (
            format!("/x={script},fault=wrong_length=-4@1"),
            "fault wrong_length=-4@1: the part has only 3 bytes",
        ),
        (
            "/x=stdin,fault=chunked".to_owned(),
            "faults apply to scripted streams",
        ),
    ] {
        let done = run_binary(&["--stream", &spec], &[]);
        assert_eq!(done.status.code(), Some(2), "{spec}");
        let stderr = done.stderr_text();
        assert!(stderr.contains(says), "{spec}: {stderr}");
    }
}
