//! Behind nginx and HAProxy with TLS at the proxy, each run from its documented
//! configuration (`contrib/`): curl and ffmpeg over https get every frame of a scripted
//! stream, byte for byte and decoded; a part comes through while the next one is still
//! held back (nothing buffers it); a snapshot comes through; a graceful stop of the server
//! ends every stream with its closing delimiter, which the client sees through the proxy;
//! and the scale-out topology, an origin's live stream relayed by two edges behind
//! HAProxy, carries 4,000 viewers the origin's very frames, and moves new viewers to the
//! other edge with no failed request when one is stopped.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::support::ffmpeg::{
    assert_clean_chunked_decode, assert_clean_decode, ffmpeg_command, frame_hashes, run_ffmpeg,
};
use crate::support::json;
use crate::support::media::{frame, frame_id};
use crate::support::multipart::{Item, PartReader, Parts, open, parse_written};
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
// Scale-out: an origin, two edges relaying it, HAProxy in front of the edges.

/// Viewers through HAProxy at once, and new ones that come while an edge stops.
const VIEWERS: u64 = 4000;
const LATECOMERS: u64 = 1000;
/// The origin's live frames: small and two a second, which keeps the load (4,000
/// viewers through HAProxy and two edges) light for the tests running beside.
const LIVE_FRAME_BYTES: usize = 2000;
const LIVE_FRAME_EVERY: Duration = Duration::from_millis(500);
/// A bound on the frames fed (5 minutes' worth), whatever happens to the test.
const LIVE_FRAMES_MAX: u32 = 600;
/// Viewers through HAProxy whose frames are compared with the origin's, and parts each.
const SAMPLED: usize = 3;
const SAMPLED_PARTS: usize = 3;

#[test]
fn an_origin_relayed_by_two_edges_behind_haproxy_reaches_4000_viewers_and_a_stopped_edge_fails_no_request() {
    let _alone = crate::support::heavy();
    let Some(cert) = Cert::new() else { return };
    // origin (fed live frames on stdin) -> edge1, edge2 (each relays it over one
    // connection) -> HAProxy -> viewers.
    let mut origin = Server::start_live(&["--stream", "/cam=stdin,refresh=0"]);
    let feeder = Feeder::start(origin.take_stdin());
    let relay = format!("/s=relay:http://{}/cam", origin.addr());
    let mut edge1 = Server::start(&["--stream", &relay]);
    let mut edge2 = Server::start(&["--stream", &relay]);
    origin.wait_viewers("/cam", 2);
    let Some(proxy) = Proxy::start(Kind::Haproxy, &[edge1.addr(), edge2.addr()], &cert) else {
        return;
    };
    let url = format!("http://{}/s", proxy.plain_addr());

    let mut first = Load::start(&url, VIEWERS, 2000);
    // Live streams last until their edge stops: every viewer is on one edge or the other.
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
    // One upstream connection per edge, however many watch.
    assert_eq!(origin.stats().viewers("/cam"), 2, "the origin's viewers");
    same_frames_as_the_origin(&origin, proxy.plain_addr(), [edge1.addr(), edge2.addr()]);
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
    // Every newcomer either reached edge1 before it stopped (and then saw its closing
    // delimiter) or has a stream on edge2; only then may edge2 stop too, ending the rest.
    wait_for("every newcomer served", Duration::from_secs(120), || {
        let on_two = edge2.stats().get("streams") - before;
        let ended = second.completed();
        if on_two + ended >= LATECOMERS {
            Ok(())
        } else {
            Err(format!("{on_two} on edge2, {ended} ended on edge1"))
        }
    });
    let took = edge2.stats().get("streams") - before;
    edge2.signal(libc::SIGTERM);
    let status = edge2
        .wait_exit(Duration::from_secs(30))
        .expect("edge2 exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    let fed = feeder.stop();
    println!("the origin was fed {fed} frames");

    for (load, clients) in [(&mut first, VIEWERS), (&mut second, LATECOMERS)] {
        let (text, report) = load.finish();
        println!("{text}");
        assert_eq!(report.int("failed_total"), 0, "{text}");
        assert_eq!(report.int("completed"), clients, "{text}");
        assert!(report.int("parts") > 0, "{text}");
    }
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

/// Viewers through HAProxy (`proxy`), and one straight at each edge, get the frames the
/// origin was fed, byte for byte: the same bytes as a viewer of the origin itself gets
/// for each frame.
fn same_frames_as_the_origin(origin: &Server, proxy: SocketAddr, edges: [SocketAddr; 2]) {
    let mut direct = open(origin.addr(), "/cam");
    let mut viewers: Vec<(String, PartReader<TcpStream>)> = (0..SAMPLED)
        .map(|i| (format!("HAProxy viewer {i}"), open(proxy, "/s")))
        .collect();
    for (i, edge) in edges.into_iter().enumerate() {
        viewers.push((format!("edge{} viewer", i + 1), open(edge, "/s")));
    }
    let mut seen: Vec<(String, u32, Vec<u8>)> = Vec::new();
    for (what, viewer) in &mut viewers {
        for _ in 0..SAMPLED_PARTS {
            let body = next_live_part(viewer, what);
            let id = frame_id(&body);
            assert!(
                body == frame(id, LIVE_FRAME_BYTES),
                "{what}: frame {id} is not the origin's"
            );
            seen.push((what.clone(), id, body));
        }
    }
    drop(viewers);
    // The origin's own viewer, up to the last frame sampled.
    let last = seen.iter().map(|(_, id, _)| *id).max().expect("frames sampled");
    let mut at_origin = std::collections::HashMap::new();
    while !at_origin.contains_key(&last) {
        let body = next_live_part(&mut direct, "the origin's viewer");
        at_origin.insert(frame_id(&body), body);
    }
    let mut compared = 0;
    for (what, id, body) in &seen {
        if let Some(original) = at_origin.get(id) {
            assert!(body == original, "{what}: frame {id} differs from the origin's");
            compared += 1;
        }
    }
    println!(
        "{} frames sampled through HAProxy and at each edge, {compared} compared with the origin's viewer's",
        seen.len()
    );
    // The first part a viewer gets may be older than the origin viewer's first; the next
    // ones are fresh and the origin's viewer saw them too.
    assert!(
        compared >= seen.len() / 2,
        "{compared} of {} compared",
        seen.len()
    );
}

fn next_live_part(viewer: &mut PartReader<TcpStream>, what: &str) -> Vec<u8> {
    match viewer.next() {
        Ok(Item::Part(part)) => part.body,
        other => panic!("{what}: {other:?} instead of a part"),
    }
}

/// Feeds a live server's standard input numbered frames ([`frame`]) at
/// [`LIVE_FRAME_EVERY`], from a thread, until stopped (or the server goes, or
/// [`LIVE_FRAMES_MAX`]).
struct Feeder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u32>,
}

impl Feeder {
    fn start(mut stdin: ChildStdin) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut id = 1;
            while id <= LIVE_FRAMES_MAX && !stopping.load(Ordering::Relaxed) {
                if stdin.write_all(&frame(id, LIVE_FRAME_BYTES)).is_err() {
                    break;
                }
                id += 1;
                thread::sleep(LIVE_FRAME_EVERY);
            }
            id - 1
        });
        Feeder { stop, thread }
    }

    /// Stops feeding; how many frames were fed.
    fn stop(self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the feeding thread")
    }
}

/// `mixreplace-load --json` running in the background, its progress followed.
struct Load {
    process: Guard,
    stdout: Option<JoinHandle<Vec<u8>>>,
    /// `completed` in its latest progress line (one a second, on stderr).
    completed: Arc<AtomicU64>,
}

/// A run's longest life: its `--timeout-s`, and a margin for its report.
const LOAD_TIMEOUT_S: u64 = 180;
const LOAD_LIMIT: Duration = Duration::from_secs(LOAD_TIMEOUT_S + 30);

impl Load {
    fn start(url: &str, clients: u64, ramp_ms: u64) -> Load {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mixreplace-load"));
        command
            .args(["--json", "--url", url, "--timeout-s", &LOAD_TIMEOUT_S.to_string()])
            .args([
                "--clients",
                &clients.to_string(),
                "--ramp-ms",
                &ramp_ms.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = Guard::spawn(&mut command, LOAD_LIMIT);
        let stdout = drain(process.child().stdout.take().expect("piped stdout"));
        let stderr = process.child().stderr.take().expect("piped stderr");
        let completed = Arc::new(AtomicU64::new(0));
        let progress = Arc::clone(&completed);
        // Ends when mixreplace-load does (killed with its guard at the latest).
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = progress_count(&line, "completed") {
                    progress.store(n, Ordering::Relaxed);
                }
            }
        });
        Load {
            process,
            stdout: Some(stdout),
            completed,
        }
    }

    /// Clients that saw their closing delimiter, as of the latest progress line.
    fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Its JSON report, as text and read, once it has exited.
    fn finish(&mut self) -> (String, json::Value) {
        self.process
            .wait_exit(LOAD_LIMIT)
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

/// The number after `name` in a progress line (`  3.0s  connected 10  open 4  completed
/// 6  failed 0 …`), or `None` for another line (a log line).
fn progress_count(line: &str, name: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == name)?;
    words.next()?.parse().ok()
}
