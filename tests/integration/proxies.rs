//! Behind nginx and HAProxy with TLS at the proxy, each run from its documented
//! configuration (`contrib/`): curl and ffmpeg over https get every frame of a scripted
//! stream, byte for byte and decoded; a part comes through while the next one is still
//! held back (nothing buffers it); a snapshot comes through; a graceful stop of the server
//! ends every stream with its closing delimiter, which the client sees through the proxy;
//! and HAProxy in front of two servers carries 4,000 viewers, and moves new viewers to the
//! other server with no failed request when one is stopped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::support::ffmpeg::{
    assert_clean_chunked_decode, assert_clean_decode, ffmpeg_command, frame_hashes, run_ffmpeg,
};
use crate::support::json;
use crate::support::multipart::{Item, PartReader, Parts, parse_written};
use crate::support::process::{Guard, Output, drain, run};
use crate::support::proxy::{Cert, Kind, Proxy, curl_https};
use crate::support::server::Server;
use crate::support::tools::{TOOL_LIMIT, require_tool};
use crate::support::{Scratch, wait_for};

/// Frames of the scripted stream.
const FRAMES: usize = 12;
/// Viewers held open across a graceful stop.
const STOP_VIEWERS: u64 = 3;

/// A scripted stream of real JPEGs (ffmpeg's test pattern, each frame different), the
/// frames' bytes and what decoding them gives.
struct Show {
    dir: Scratch,
    frames: Vec<Vec<u8>>,
    /// ffmpeg's MD5 of each decoded frame.
    hashes: Vec<String>,
}

impl Show {
    fn new(ffmpeg: &Path) -> Show {
        let dir = Scratch::new("proxies-show");
        let pattern = dir.join("f%03d.jpg").display().to_string();
        let count = FRAMES.to_string();
        let make = [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=96x64:rate=10",
            "-frames:v",
            &count,
            &pattern,
        ];
        run_ffmpeg(ffmpeg, &make, "making the frames");
        let decoded = run_ffmpeg(
            ffmpeg,
            &["-i", &pattern, "-f", "framemd5", "-"],
            "decoding the frames",
        );
        let hashes = frame_hashes(&decoded.stdout_text());
        let frames: Vec<Vec<u8>> = (1..=FRAMES)
            .map(|i| std::fs::read(dir.join(&format!("f{i:03}.jpg"))).expect("a frame ffmpeg made"))
            .collect();
        assert_eq!(hashes.len(), FRAMES);
        Show { dir, frames, hashes }
    }

    /// Writes a script that shows the frames `wait` apart, once or (`looping`) forever;
    /// returns the `--stream` value serving it at `/show`.
    fn stream(&self, wait: &str, looping: bool) -> String {
        let parts: String = (1..=FRAMES)
            .map(|i| format!("part image/jpeg @f{i:03}.jpg\nwait {wait}\n"))
            .collect();
        let script = if looping {
            format!("loop {{\n{parts}}}\n")
        } else {
            parts
        };
        let name = if looping { "loop.script" } else { "once.script" };
        format!("/show=script:{}", self.dir.write(name, script).display())
    }

    /// Every part is the next frame (from the first, round and round for a loop).
    fn check_parts(&self, parts: &Parts, what: &str) {
        for (i, part) in parts.parts.iter().enumerate() {
            assert_eq!(part.content_type, "image/jpeg", "{what}: part {i}");
            assert!(
                part.body == self.frames[i % FRAMES],
                "{what}: part {i} is not frame {}",
                i % FRAMES
            );
        }
    }
}

/// What a test needs, or `None` (skipped) where a tool is missing.
struct Tools {
    curl: std::path::PathBuf,
    ffmpeg: std::path::PathBuf,
    cert: Cert,
}

fn tools() -> Option<Tools> {
    Some(Tools {
        curl: require_tool(&["curl"], "curl")?,
        ffmpeg: require_tool(&["ffmpeg"], "ffmpeg")?,
        cert: Cert::new()?,
    })
}

/// Runs `curl` on a thread (so several run at once), its output collected.
fn curl_on_thread(mut command: Command) -> JoinHandle<Output> {
    thread::spawn(move || run(&mut command, None, TOOL_LIMIT))
}

/// curl's output, a whole multipart body, read strictly.
fn parse_curl(done: &Output, what: &str) -> Parts {
    assert!(
        done.status.success(),
        "{what}: curl {:?}: {}",
        done.status,
        done.stderr_text()
    );
    parse_written(&done.stdout, what)
}

// ---------------------------------------------------------------------------------------
// Every frame, to curl and to ffmpeg, and a snapshot.

#[test]
fn nginx_with_tls_passes_every_frame_to_curl_and_ffmpeg() {
    every_frame_over_https(Kind::Nginx);
}

#[test]
fn haproxy_with_tls_passes_every_frame_to_curl_and_ffmpeg() {
    every_frame_over_https(Kind::Haproxy);
}

fn every_frame_over_https(kind: Kind) {
    let Some(tools) = tools() else { return };
    let show = Show::new(&tools.ffmpeg);
    let server = Server::start(&["--stream", &show.stream("40ms", false)]);
    let Some(proxy) = Proxy::start(kind, &[server.addr()], &tools.cert) else {
        return;
    };
    let url = proxy.https_url("/show");
    let what = format!("{kind:?} {url}");

    // curl: every part, byte for byte, then the closing delimiter.
    let mut curl = curl_https(&tools.curl, &tools.cert);
    curl.arg(&url);
    let parts = parse_curl(&run(&mut curl, None, TOOL_LIMIT), &what);
    assert_eq!(parts.parts.len(), FRAMES, "{what}: parts");
    assert!(parts.stopped.is_none(), "{what}: stopped early");
    show.check_parts(&parts, &what);

    // ffmpeg, verifying the certificate: every frame decoded, the same pictures.
    let mut ffmpeg = ffmpeg_command(&tools.ffmpeg);
    ffmpeg
        .args(["-tls_verify", "1", "-ca_file"])
        .arg(tools.cert.cert())
        .args(["-f", "mpjpeg", "-i", &url, "-f", "framemd5", "-"]);
    let decoded = run(&mut ffmpeg, None, TOOL_LIMIT);
    assert!(
        decoded.status.success(),
        "{what}: ffmpeg: {}",
        decoded.stderr_text()
    );
    match kind {
        // nginx answers an HTTP/1.1 client chunked; HAProxy passes the close-delimited
        // body on as it is.
        Kind::Nginx => assert_clean_chunked_decode(&decoded.stderr_text(), &what),
        Kind::Haproxy => assert_clean_decode(&decoded.stderr_text(), &what),
    }
    assert_eq!(
        frame_hashes(&decoded.stdout_text()),
        show.hashes,
        "{what}: the decoded frames"
    );

    // A snapshot: the stream's first image, with its type and length.
    let mut snapshot = curl_https(&tools.curl, &tools.cert);
    snapshot
        .args(["-w", "\n%{http_code} %{content_type}"])
        .arg(proxy.https_url("/show?action=snapshot"));
    let done = run(&mut snapshot, None, TOOL_LIMIT);
    assert!(done.status.success(), "{what}: snapshot: {}", done.stderr_text());
    let status_at = done.stdout.len() - "\n200 image/jpeg".len();
    assert_eq!(
        &done.stdout[status_at..],
        b"\n200 image/jpeg",
        "{what}: snapshot answer"
    );
    assert!(
        done.stdout[..status_at] == show.frames[0],
        "{what}: the snapshot is not the first frame"
    );

    let stats = server.stats();
    assert_eq!(stats.get("streams"), 2, "{what}: curl's and ffmpeg's: {stats}");
}

// ---------------------------------------------------------------------------------------
// A graceful stop behind the proxy.

#[test]
fn a_graceful_stop_behind_nginx_ends_every_stream_with_its_closing_delimiter() {
    graceful_stop_through(Kind::Nginx);
}

#[test]
fn a_graceful_stop_behind_haproxy_ends_every_stream_with_its_closing_delimiter() {
    graceful_stop_through(Kind::Haproxy);
}

fn graceful_stop_through(kind: Kind) {
    let Some(tools) = tools() else { return };
    let show = Show::new(&tools.ffmpeg);
    let mut server = Server::start(&["--stream", &show.stream("50ms", true)]);
    let Some(proxy) = Proxy::start(kind, &[server.addr()], &tools.cert) else {
        return;
    };
    let url = proxy.https_url("/show");
    let viewers: Vec<JoinHandle<Output>> = (0..STOP_VIEWERS)
        .map(|_| {
            let mut curl = curl_https(&tools.curl, &tools.cert);
            curl.arg(&url);
            curl_on_thread(curl)
        })
        .collect();
    server.wait_viewers("/show", STOP_VIEWERS);
    // Some frames in, so the stop comes mid-stream.
    thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    for (i, viewer) in viewers.into_iter().enumerate() {
        let what = format!("{kind:?} viewer {i}");
        let parts = parse_curl(&viewer.join().expect("a curl thread"), &what);
        // The empty final part of the stream's type and the closing delimiter came
        // through; parse_curl refused anything after them.
        let stop = parts
            .stopped
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no empty final part"));
        assert_eq!(stop.content_type, "image/jpeg", "{what}");
        assert!(!parts.parts.is_empty(), "{what}: no frame before the stop");
        show.check_parts(&parts, &what);
    }
}

// ---------------------------------------------------------------------------------------
// Unbuffered: a part goes on at once, not when the next one comes.

/// How long the server holds the second part back: far longer than the first part may
/// take to come through (the bound below is a hang guard, not a measure).
const HELD_BACK: &str = "60s";
const FIRST_PART_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn nginx_passes_a_part_on_before_the_next_is_due() {
    part_before_the_next(Kind::Nginx);
}

#[test]
fn haproxy_passes_a_part_on_before_the_next_is_due() {
    part_before_the_next(Kind::Haproxy);
}

fn part_before_the_next(kind: Kind) {
    let Some(tools) = tools() else { return };
    let show = Show::new(&tools.ffmpeg);
    let script = format!("part image/jpeg @f001.jpg\nwait {HELD_BACK}\npart image/jpeg @f002.jpg\n");
    let path = show.dir.write("held.script", script);
    let server = Server::start(&["--stream", &format!("/held=script:{}", path.display())]);
    let Some(proxy) = Proxy::start(kind, &[server.addr()], &tools.cert) else {
        return;
    };
    let mut curl = curl_https(&tools.curl, &tools.cert);
    curl.arg(proxy.https_url("/held"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut viewer = Guard::spawn(&mut curl, TOOL_LIMIT + Duration::from_secs(60));
    let stdout = viewer.child().stdout.take().expect("curl's stdout");
    let (sent, first) = std::sync::mpsc::channel();
    // Ends when curl does (killed with the guard at the latest).
    thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut reader, &mut line);
        let boundary = line.trim_end().trim_start_matches("--").to_owned();
        let replay = std::io::Read::chain(line.as_bytes(), reader);
        let first = match PartReader::new(replay, &boundary).next() {
            Ok(Item::Part(part)) => Ok(part.body),
            other => Err(format!("{other:?} instead of the first part")),
        };
        let _ = sent.send(first);
    });
    let body = first
        .recv_timeout(FIRST_PART_WITHIN)
        .unwrap_or_else(|_| {
            panic!("{kind:?}: the first part did not come through while the second was held back")
        })
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    assert!(body == show.frames[0], "{kind:?}: the first part");
    assert_eq!(
        server.stats().get("parts"),
        1,
        "{kind:?}: the second part went out early"
    );
}

// ---------------------------------------------------------------------------------------
// Scale-out: HAProxy in front of two servers.

/// Viewers through HAProxy at once, and new ones that come while an edge stops.
const VIEWERS: u64 = 4000;
const LATECOMERS: u64 = 1000;
/// Each edge's stream: 20 parts a second apart, 20 s; a part a second keeps the load
/// (4,000 viewers through HAProxy and two servers) light for the tests running beside.
const EDGE_STREAM: &str = "/s=synthetic:parts=20,size=2000,interval=1000";

// The edges serve a scripted stream. RELAY: once the `relay:` kind lands (branch
// wt-relay), the topology of the README's "At scale" is an origin whose live stream each
// edge relays (`--stream /s=relay:http://ORIGIN/s`): start the origin first, point both
// edges at it, and check the same here (every viewer gets frames; X-Frame numbers are the
// origin's).
#[test]
fn haproxy_over_two_servers_carries_4000_viewers_and_a_stopped_edge_fails_no_request() {
    let Some(cert) = Cert::new() else { return };
    let mut edge1 = Server::start(&["--stream", EDGE_STREAM]);
    let edge2 = Server::start(&["--stream", EDGE_STREAM]);
    let Some(proxy) = Proxy::start(Kind::Haproxy, &[edge1.addr(), edge2.addr()], &cert) else {
        return;
    };
    let url = format!("http://{}/s", proxy.plain_addr());

    let mut first = Load::start(&url, VIEWERS, 2000);
    // Every viewer's stream started, on one edge or the other (counted as started, not
    // as open at once: on a slow machine the first ones may have ended already).
    let started = || (edge1.stats().get("streams"), edge2.stats().get("streams"));
    let (one, two) = wait_for("every viewer on an edge", Duration::from_secs(120), || {
        let (one, two) = started();
        if one + two >= VIEWERS {
            Ok((one, two))
        } else {
            Err(format!("{one} + {two}"))
        }
    });
    println!("streams started: edge1 {one}, edge2 {two}");
    assert!(one > 0 && two > 0, "leastconn spreads viewers: {one} and {two}");
    let before = edge2.stats().get("streams");

    // Newcomers while edge1 stops: refused connects and requests it read but never
    // answered are retried on edge2; its own viewers get the closing delimiter.
    let mut second = Load::start(&url, LATECOMERS, 3000);
    thread::sleep(Duration::from_millis(500));
    edge1.signal(libc::SIGTERM);
    let status = edge1
        .wait_exit(Duration::from_secs(10))
        .expect("edge1 exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");

    for (load, clients) in [(&mut first, VIEWERS), (&mut second, LATECOMERS)] {
        let (text, report) = load.finish();
        println!("{text}");
        assert_eq!(report.int("failed_total"), 0, "{text}");
        assert_eq!(report.int("completed"), clients, "{text}");
        assert!(report.int("parts") > 0, "{text}");
    }
    let took = edge2.stats().get("streams") - before;
    println!("edge2 took {took} of the {LATECOMERS} latecomers");
    assert!(took > 0, "no latecomer reached edge2");
    assert!(
        proxy
            .log()
            .lines()
            .any(|l| l.contains("edge1") && l.contains("DOWN")),
        "{}",
        proxy.log()
    );
}

/// `mixreplace-load --json -q` running in the background.
struct Load {
    process: Guard,
    stdout: Option<JoinHandle<Vec<u8>>>,
}

impl Load {
    fn start(url: &str, clients: u64, ramp_ms: u64) -> Load {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mixreplace-load"));
        command
            .args(["--json", "-q", "--timeout-s", "120", "--url", url])
            .args([
                "--clients",
                &clients.to_string(),
                "--ramp-ms",
                &ramp_ms.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut process = Guard::spawn(&mut command, Duration::from_secs(150));
        let stdout = drain(process.child().stdout.take().expect("piped stdout"));
        Load {
            process,
            stdout: Some(stdout),
        }
    }

    /// Its JSON report, as text and read, once it has exited.
    fn finish(&mut self) -> (String, json::Value) {
        self.process
            .wait_exit(Duration::from_secs(150))
            .expect("mixreplace-load ends at its --timeout-s");
        let out = self
            .stdout
            .take()
            .expect("finished once")
            .join()
            .unwrap_or_default();
        let text = String::from_utf8(out).expect("UTF-8 JSON");
        let report = json::parse(&text);
        (text, report)
    }
}
