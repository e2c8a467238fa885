//! Real clients that we did not write, against the real server: headless Chromium shows
//! the `/view` page, `ffmpeg` decodes MJPEG over HTTP, and Python's `email` package
//! parses every stream kind as MIME.
//!
//! Each test skips with a message where its tool is missing; `MIXREPLACE_REQUIRE_TOOLS=1`
//! (set by `.ci/run`, which installs the tools) or `CI=true` turns a missing tool into a
//! failure, so CI always runs them. Every tool runs under a guard that kills it (Chromium:
//! its whole process group) and reaps it when the test ends, and under a watchdog.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::support::Scratch;
use crate::support::browser::Browser;
use crate::support::ffmpeg::{assert_clean_decode, ffmpeg_client, ffmpeg_command, frame_hashes, run_ffmpeg};
use crate::support::media::{EXIF_JPEG, Rgb, frame, solid_png, sum};
use crate::support::multipart::{Item, Part, PartReader, open_with};
use crate::support::process::{Guard, drain, pump, run};
use crate::support::server::Server;
use crate::support::tools::{TOOL_LIMIT, require_tool};

// ---------------------------------------------------------------------------------------
// Python's email package: a strict MIME parser.

/// Parses a response body as the MIME message `Content-Type: CTYPE` + body (compat32, the
/// policy that keeps bytes as they are) and prints its defects and every part: the part's
/// own Content-Type (or `-`), its defects, and its payload in hex.
const EMAIL_CHECK: &str = r#"
import email, email.policy, sys
ctype, path = sys.argv[1], sys.argv[2]
with open(path, 'rb') as f:
    body = f.read()
msg = email.message_from_bytes(b'Content-Type: ' + ctype.encode() + b'\r\n\r\n' + body,
                               policy=email.policy.compat32)
def defects(m):
    return ','.join(type(d).__name__ for d in m.defects) or '-'
print('message', msg.get_content_type(), msg.is_multipart(), defects(msg), sep='\t')
for part in (msg.get_payload() if msg.is_multipart() else []):
    payload = part.get_payload(decode=True)
    print('part', part.get('Content-Type', '-'), defects(part), payload.hex(), sep='\t')
"#;

/// One part as Python's `email` saw it.
#[derive(Debug, PartialEq, Eq)]
struct MimePart {
    content_type: String,
    body: (usize, u64),
}

/// A stream client: what it asked for, the stream's Content-Type, and its reader.
struct Client {
    what: String,
    content_type: String,
    reader: PartReader<TcpStream>,
}

/// Runs [`EMAIL_CHECK`] on what `client` read; asserts no defects anywhere and returns
/// the parts.
fn parse_with_email(python: &Path, client: &Client) -> Vec<MimePart> {
    let what = &client.what;
    let scratch = Scratch::new("email");
    let body = scratch.write("body", client.reader.raw());
    let mut command = Command::new(python);
    command.args(["-c", EMAIL_CHECK, &client.content_type]).arg(&body);
    let done = run(&mut command, None, TOOL_LIMIT);
    assert!(
        done.status.success(),
        "{what}: python failed: {}",
        done.stderr_text()
    );
    let stdout = done.stdout_text();
    let mut lines = stdout.lines();
    let message: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(
        message,
        ["message", "multipart/x-mixed-replace", "True", "-"],
        "{what}: the message as a whole"
    );
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [tag, content_type, defects, hex] = fields[..] else {
                panic!("{what}: unexpected line {line:?}")
            };
            assert_eq!((tag, defects), ("part", "-"), "{what}: a part with defects");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            MimePart {
                content_type: content_type.to_owned(),
                body: sum(&bytes),
            }
        })
        .collect()
}

/// The parts our own strict reader found, as `email` should see them.
fn as_mime(parts: &[Part]) -> Vec<MimePart> {
    parts
        .iter()
        .map(|p| MimePart {
            content_type: p.content_type.clone(),
            body: sum(&p.body),
        })
        .collect()
}

/// Reads the rest of `client`'s stream, after the parts `got` already read; `email` must
/// see the same parts (the empty final part of a stop included) with no defects.
fn check_with_email(python: &Path, client: &mut Client, mut got: Vec<Part>, min_parts: usize) {
    let whole = client.reader.read_to_end().expect("a well-framed stream");
    got.extend(whole.parts.into_iter().chain(whole.stopped));
    let what = &client.what;
    assert!(got.len() >= min_parts, "{what}: {} parts", got.len());
    assert_eq!(parse_with_email(python, client), as_mime(&got), "{what}");
}

/// Both clients of a stream (plain, and with both browser switches) read it to its end.
fn check_kind(python: &Path, clients: Vec<Client>, min_parts: usize) {
    for mut client in clients {
        check_with_email(python, &mut client, Vec::new(), min_parts);
    }
}

fn both_ways(addr: SocketAddr, path: &str) -> Vec<Client> {
    [
        path.to_owned(),
        format!("{path}?advance_headers=1&dual_final_frames=1"),
    ]
    .into_iter()
    .map(|what| {
        let request = format!("GET {what} HTTP/1.1\r\nHost: test\r\n\r\n");
        let (reader, head) = open_with(addr, request.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let content_type = head.header("Content-Type").expect("a Content-Type").to_owned();
        let reader = reader.record();
        Client {
            what,
            content_type,
            reader,
        }
    })
    .collect()
}

/// The next part of a stream that goes on.
fn next_part(client: &mut Client) -> Part {
    match client
        .reader
        .next()
        .unwrap_or_else(|e| panic!("{}: {e}", client.what))
    {
        Item::Part(part) => part,
        other => panic!("{}: the stream ended: {other:?}", client.what),
    }
}

#[test]
fn python_email_parses_every_stream_kind_without_defects() {
    let Some(python) = require_tool(&["python3"], "python3") else {
        return;
    };
    let dir = Scratch::new("kinds");
    let images = Scratch::new("kinds-images");
    images.write("a.jpg", EXIF_JPEG);
    images.write("b.png", solid_png(3, 3, [9, 9, 9]));
    images.write("c.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\r\n");
    dir.write("a.png", solid_png(2, 2, [1, 2, 3]));
    // Bodies that end in CR, hold CRLF and dashes, or look like another boundary's line.
    let script = dir.write(
        "kinds.script",
        "part text/plain \"bytes \\x00\\xff\\r\\n--not-the-boundary\\r\\n\\r\"\n\
         part text/html <<END\n<p>heredoc</p>\n\nEND\n\
         repeat 2 {\n  part image/png @a.png\n  wait 10ms\n}\n\
         part text/html \"<img src=\\\"data:image/png;base64,\" base64(@a.png) \"\\\">\"\n",
    );
    let mut server = Server::start_live(&[
        "--stream",
        "/demo=demo",
        "--stream",
        &format!("/script=script:{}", script.display()),
        "--stream",
        &format!("/dir=dir:{},fps=50,loop=false", images.path().display()),
        "--stream",
        // refresh=0: no heartbeat repeats between the lockstep frames.
        "/cam=stdin,refresh=0",
        "--stream",
        "/syn=synthetic:parts=5,size=1000,interval=0",
    ]);
    let addr = server.addr();

    // The demo takes 6.4 s: both of its clients start first and run meanwhile.
    let demo = both_ways(addr, "/demo");
    check_kind(&python, both_ways(addr, "/script"), 5);
    check_kind(&python, both_ways(addr, "/dir"), 3);
    check_kind(&python, both_ways(addr, "/syn"), 5);

    // Live: three frames, each fed once both clients have the one before; then the end.
    let mut live = both_ways(addr, "/cam");
    server.wait_viewers("/cam", 2);
    let mut parts: Vec<Vec<Part>> = vec![Vec::new(), Vec::new()];
    for id in 1..=3 {
        server.feed(&frame(id, 2000));
        for (client, got) in live.iter_mut().zip(&mut parts) {
            got.push(next_part(client));
        }
    }
    server.end_input();
    for (client, got) in live.iter_mut().zip(parts) {
        check_with_email(&python, client, got, 4);
    }

    check_kind(&python, demo, 15);
}

// ---------------------------------------------------------------------------------------
// ffmpeg: the mpjpeg demuxer over HTTP.

#[test]
fn ffmpeg_decodes_every_frame_of_a_folder_stream() {
    let Some(ffmpeg) = require_tool(&["ffmpeg"], "ffmpeg") else {
        return;
    };
    let dir = Scratch::new("ffmpeg-dir");
    let pattern = dir.join("f%03d.jpg");
    let pattern = pattern.display().to_string();
    let frames = [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=10",
        "-frames:v",
        "12",
        &pattern,
    ];
    run_ffmpeg(&ffmpeg, &frames, "making the frames");
    // What decoding the files themselves gives, frame for frame.
    let reference = run_ffmpeg(
        &ffmpeg,
        &["-i", &pattern, "-f", "framemd5", "-"],
        "decoding the files",
    );
    let reference = frame_hashes(&reference.stdout_text());
    assert_eq!(reference.len(), 12);

    let server = Server::start(&[
        "--stream",
        &format!("/cam=dir:{},fps=50,loop=false", dir.path().display()),
    ]);
    let url = format!("http://{}/cam", server.addr());
    let done = run(&mut ffmpeg_client(&ffmpeg, &url), None, TOOL_LIMIT);
    assert!(done.status.success(), "{}", done.stderr_text());
    assert_clean_decode(&done.stderr_text(), &url);
    assert_eq!(frame_hashes(&done.stdout_text()), reference, "the decoded frames");
}

// See: bcc6676 (ffmpeg said "Invalid data found" at the end of a live stream).
#[test]
fn ffmpeg_decodes_a_live_stream_that_ffmpeg_feeds() {
    let Some(ffmpeg) = require_tool(&["ffmpeg"], "ffmpeg") else {
        return;
    };
    const FRAMES: usize = 20;
    let source = [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-frames:v",
        "20",
        "-f",
        "mjpeg",
        "-",
    ];
    // The reference: the same (deterministic) MJPEG, decoded straight from ffmpeg's output.
    let mjpeg = run_ffmpeg(&ffmpeg, &source, "the reference encode").stdout;
    let scratch = Scratch::new("ffmpeg-live");
    let file = scratch.write("reference.mjpeg", &mjpeg).display().to_string();
    let decode = ["-f", "mjpeg", "-i", &file, "-f", "framemd5", "-"];
    let reference = run_ffmpeg(&ffmpeg, &decode, "decoding the reference");
    let reference = frame_hashes(&reference.stdout_text());
    assert_eq!(reference.len(), FRAMES);

    // The client joins first; then ffmpeg, in real time (-re), feeds the server's stdin.
    // refresh=0: no heartbeat repeats between the frames compared with the source.
    let mut server = Server::start_live(&["--stream", "/cam=stdin,refresh=0"]);
    let url = format!("http://{}/cam", server.addr());
    let mut client = Guard::spawn(&mut ffmpeg_client(&ffmpeg, &url), TOOL_LIMIT);
    let client_out = drain(client.child().stdout.take().unwrap());
    let client_err = drain(client.child().stderr.take().unwrap());
    server.wait_viewers("/cam", 1);
    let mut producer = Guard::spawn(ffmpeg_command(&ffmpeg).arg("-re").args(source), TOOL_LIMIT);
    let producer_err = drain(producer.child().stderr.take().unwrap());
    let feeding = pump(producer.child().stdout.take().unwrap(), server.take_stdin());
    let status = producer.wait_exit(TOOL_LIMIT).expect("the producer finishes");
    assert!(
        status.success(),
        "{}",
        String::from_utf8_lossy(&producer_err.join().unwrap())
    );
    assert_eq!(
        feeding.join().unwrap().unwrap(),
        mjpeg.len() as u64,
        "the producer's output"
    );

    // Its end of output ends the stream, and so the client.
    let status = client.wait_exit(TOOL_LIMIT).expect("the client finishes");
    let stderr = String::from_utf8_lossy(&client_err.join().unwrap()).into_owned();
    assert!(status.success(), "{stderr}");
    assert_clean_decode(&stderr, &url);
    let mut got = frame_hashes(&String::from_utf8_lossy(&client_out.join().unwrap()));
    // The input's end closed the open part with the last frame (the picture stays): a
    // typed, whole JPEG that ffmpeg decodes once more.
    let closing = got.pop().expect("decoded frames");
    assert_eq!(
        Some(&closing),
        got.last(),
        "the closing part is the last frame again"
    );
    assert_eq!(
        Some(&closing),
        reference.last(),
        "the last frame is the source's last"
    );
    // A live client may skip a frame when it is still busy with the one before (never on
    // an idle loopback at 10 frames a second, but the machine may be loaded); whatever it
    // got is the source's frames, in order.
    assert!(
        got.len() >= FRAMES * 3 / 4,
        "decoded only {} of {FRAMES} frames",
        got.len()
    );
    let mut rest = reference.iter();
    for (i, hash) in got.iter().enumerate() {
        assert!(
            rest.any(|r| r == hash),
            "decoded frame {i} is no source frame in order: {got:?}"
        );
    }
    eprintln!("the live client decoded {} of {FRAMES} frames", got.len());
}

// ---------------------------------------------------------------------------------------
// Headless Chromium.

const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const FRAME_W: u32 = 120;
const FRAME_H: u32 = 90;

#[test]
fn chromium_shows_both_frames_of_a_folder_stream_on_the_view_page() {
    let Some(chromium) = require_tool(&["chromium", "chromium-browser", "google-chrome"], "chromium") else {
        return;
    };
    let dir = Scratch::new("colours");
    dir.write("1-red.png", solid_png(FRAME_W, FRAME_H, RED));
    dir.write("2-blue.png", solid_png(FRAME_W, FRAME_H, BLUE));
    let server = Server::start(&["--stream", &format!("/cam=dir:{},fps=2", dir.path().display())]);

    let mut browser = Browser::launch(&chromium, TOOL_LIMIT);
    let page = browser.open(&format!("http://{}/view", server.addr()), 400, 300);

    // Screenshots a moment apart until both colours have been on screen (each frame
    // shows for 500 ms), at most 40 of them.
    let whole_frame = (FRAME_W * FRAME_H) as usize;
    let mut seen = Vec::new();
    for _ in 0..40 {
        thread::sleep(Duration::from_millis(150));
        let shot = Rgb::from_png(&browser.screenshot(&page));
        let (red, blue) = (shot.count(RED, 8), shot.count(BLUE, 8));
        seen.push(match (red, blue) {
            (r, 0) if r >= whole_frame => "red",
            (0, b) if b >= whole_frame => "blue",
            (0, 0) => "none",
            _ => "mixed",
        });
        if seen.contains(&"red") && seen.contains(&"blue") {
            break;
        }
    }
    assert!(
        seen.contains(&"red") && seen.contains(&"blue") && !seen.contains(&"mixed"),
        "screenshots showed {seen:?}"
    );
    eprintln!("screenshots showed {seen:?}");
}
