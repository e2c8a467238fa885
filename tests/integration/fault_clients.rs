//! Which real clients break on which fault: each fault on purpose is served to the real
//! clients CI installs — ffmpeg (`-f mpjpeg`, and its auto-detection), GStreamer
//! (`souphttpsrc ! multipartdemux`), Python (`http.client` and the `email` parser), curl,
//! and Chromium (an `<img>`) — and the outcomes are printed as the README's table, which
//! must be what this run printed (the README is only ever pasted from a run).
//!
//! The stream: five copies of one real JPEG (ffmpeg's test pattern), 100 ms apart. A
//! client's cell reads `✓` when it got all five frames intact and said nothing; else
//! `✗`, the frames it got intact (where it counts frames), and the first things it said.
//! Every tool runs under a guard with a time limit; the clients of one fault run at once.
//!
//! Reproduce the table: `cargo test --release --test integration fault_clients -- --nocapture`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::Scratch;
use crate::support::browser::Browser;
use crate::support::ffmpeg::{frame_hashes, is_ffmpeg_http_eof};
use crate::support::media::Rgb;
use crate::support::process::run;
use crate::support::server::Server;
use crate::support::tools::{TOOL_LIMIT, require_tool, skip_or_fail};

const FRAMES: usize = 5;
const WIDTH: u32 = 160;
const HEIGHT: u32 = 120;
/// How long a stream may take in Chromium: well past the slowest (the stall).
const BROWSER_WAIT: Duration = Duration::from_secs(8);
/// Long enough for Chromium's request to have reached the server.
const STREAM_START: Duration = Duration::from_millis(500);

/// The README's rows: each fault, and what it sends.
const ROWS: [(&str, &str); 18] = [
    ("", "the stream as it should be"),
    (
        "no_first_boundary",
        "no `--B` before the first part (Tasmota, ESP32 cameras)",
    ),
    (
        "dashed_boundary",
        "`boundary=--B` in the head, `--B` on the wire (py-mjpeg)",
    ),
    ("quoted_boundary", "`boundary=\"B\"` (legal; the Tcl origin)"),
    ("no_length", "parts without `Content-Length` (Flask's snippet)"),
    (
        "bare_delimiter",
        "`--B` right after the body, no CRLF (the Tcl origin)",
    ),
    ("lf_only", "LF line ends in the multipart framing"),
    ("duplicate_length", "two `Content-Length` lines, both right"),
    ("wrong_length=+5@3", "part 3's `Content-Length` 5 over its body"),
    ("wrong_length=-5@3", "part 3's `Content-Length` 5 under its body"),
    (
        "jpeg_trailer",
        "16 junk bytes after each JPEG's end, inside the part",
    ),
    (
        "no_close",
        "no closing `--B--`: the last part ends with `--B`, then the close",
    ),
    (
        "busy_page",
        "`200 text/html`, a busy page (DroidCam to a second viewer)",
    ),
    ("stall=1500@3", "part 3 stops for 1.5 s after half its body"),
    ("reset@3", "a reset (RST) after half of part 3's body"),
    ("truncate@3", "a close (FIN) after half of part 3's body"),
    (
        "chunked",
        "`Transfer-Encoding: chunked`, a chunk a part (Go, Node)",
    ),
    (
        "drip=1000/20",
        "every byte after the head, 1000 bytes every 20 ms",
    ),
];

/// What a client made of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cell {
    /// Frames it got intact, for the clients that count them.
    frames: Option<usize>,
    /// What it said (errors, warnings), shortened; empty when nothing.
    said: Vec<String>,
    /// Whether it did what it should: all frames, nothing said, or the transfer or image
    /// as it should be.
    ok: bool,
}

impl Cell {
    fn counted(frames: usize, said: Vec<String>) -> Cell {
        Cell {
            ok: frames == FRAMES && said.is_empty(),
            frames: Some(frames),
            said,
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.ok { "✓" } else { "✗" })?;
        if let Some(frames) = self.frames.filter(|_| !self.ok) {
            write!(f, " {frames}/{FRAMES}")?;
        }
        if !self.said.is_empty() {
            write!(f, ": {}", self.said.join("; "))?;
        }
        Ok(())
    }
}

/// A message shortened to its gist: no `[demuxer @ 0x…]` or `URL: ` prefix, cut before
/// its details (`, instead found …`, ` (stream = 0 …)`), no final period.
fn gist(line: &str) -> String {
    let mut text = line.trim();
    if let Some(rest) = text.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        text = rest.1;
    }
    if let Some((_, rest)) = text.split_once("://").and_then(|(_, r)| r.split_once(": ")) {
        text = rest;
    }
    let cut = [", ", " ("].iter().filter_map(|sep| text.find(sep)).min();
    let text = &text[..cut.unwrap_or(text.len())];
    text.trim_end_matches('.').replace('|', "\\|")
}

/// The first `most` distinct gists of `lines`.
fn first_said<'a>(lines: impl Iterator<Item = &'a str>, most: usize) -> Vec<String> {
    let mut said: Vec<String> = Vec::new();
    for line in lines {
        let line = gist(line);
        if !line.is_empty() && !said.contains(&line) && said.len() < most {
            said.push(line);
        }
    }
    said
}

struct Tools {
    ffmpeg: PathBuf,
    gst: PathBuf,
    python: PathBuf,
    curl: PathBuf,
    chromium: PathBuf,
}

fn tools() -> Option<Tools> {
    Some(Tools {
        ffmpeg: require_tool(&["ffmpeg"], "ffmpeg")?,
        gst: require_gstreamer()?,
        python: require_tool(&["python3"], "python3")?,
        curl: require_tool(&["curl"], "curl")?,
        chromium: require_tool(&["chromium", "chromium-browser", "google-chrome"], "chromium")?,
    })
}

/// `gst-launch-1.0`, with the two elements the test uses.
fn require_gstreamer() -> Option<PathBuf> {
    let packages = "gstreamer1.0-tools gstreamer1.0-plugins-good";
    let launch = require_tool(&["gst-launch-1.0"], packages)?;
    let inspect = require_tool(&["gst-inspect-1.0"], packages)?;
    for element in ["souphttpsrc", "multipartdemux"] {
        if !run(quiet(&inspect).arg(element), None, TOOL_LIMIT)
            .status
            .success()
        {
            skip_or_fail(&format!(
                "GStreamer has no {element} (Debian package: {packages})"
            ));
            return None;
        }
    }
    Some(launch)
}

fn quiet(program: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// ffmpeg decodes `url` (`-f mpjpeg` unless `auto`): frames whose MD5 is the frame's.
fn ffmpeg_cell(ffmpeg: &Path, url: &str, auto: bool, frame_md5: &str) -> Cell {
    let mut command = quiet(ffmpeg);
    command.args(["-hide_banner", "-nostdin", "-loglevel", "warning"]);
    if !auto {
        command.args(["-f", "mpjpeg"]);
    }
    command.args(["-i", url, "-f", "framemd5", "-"]);
    let done = run(&mut command, None, TOOL_LIMIT);
    let frames = frame_hashes(&done.stdout_text())
        .iter()
        .filter(|hash| *hash == frame_md5)
        .count();
    let stderr = done.stderr_text();
    let lines = stderr.lines().filter(|line| !is_ffmpeg_http_eof(line));
    let mut said = first_said(lines, 2);
    if !done.status.success() && said.is_empty() {
        said.push(format!("exit {}", done.status.code().unwrap_or(-1)));
    }
    Cell::counted(frames, said)
}

/// GStreamer demultiplexes `url` into files: the parts that begin with the frame.
fn gst_cell(gst: &Path, url: &str, frame: &[u8]) -> Cell {
    let out = Scratch::new("gst");
    let files = out.join("%03d.jpg");
    let mut command = quiet(gst);
    command.args(["-q", "souphttpsrc"]).arg(format!("location={url}"));
    command.args(["!", "multipartdemux", "!", "multifilesink"]);
    command.arg(format!("location={}", files.display()));
    let done = run(&mut command, None, TOOL_LIMIT);
    let frames = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .filter(|part| part.starts_with(frame))
        .count();
    let (stdout, stderr) = (done.stdout_text(), done.stderr_text());
    let errors = stdout.lines().chain(stderr.lines()).filter_map(|line| {
        let error = line.strip_prefix("ERROR: ")?;
        // `from element /GstPipeline:pipeline0/…: What went wrong.`
        Some(error.rsplit_once(": ").map_or(error, |(_, what)| what))
    });
    let mut said = first_said(errors, 2);
    if !done.status.success() && said.is_empty() {
        said.push(format!("exit {}", done.status.code().unwrap_or(-1)));
    }
    Cell::counted(frames, said)
}

/// Reads the stream with `http.client` (which takes chunked bodies and reports resets)
/// and parses it with `email`: parts that begin with the frame, the defects found, and
/// the error that ended the read.
const PYTHON_READ: &str = r#"
import email, email.policy, http.client, sys
host, port, path, frame = sys.argv[1], int(sys.argv[2]), sys.argv[3], open(sys.argv[4], 'rb').read()
conn = http.client.HTTPConnection(host, port, timeout=20)
conn.request('GET', path)
resp = conn.getresponse()
ctype = resp.getheader('Content-Type', '')
try:
    body, error = resp.read(), None
except http.client.IncompleteRead as e:
    body, error = e.partial, 'IncompleteRead'
except OSError as e:
    body, error = b'', type(e).__name__
msg = email.message_from_bytes(b'Content-Type: ' + ctype.encode() + b'\r\n\r\n' + body,
                               policy=email.policy.compat32)
parts = msg.get_payload() if msg.is_multipart() else []
intact = sum(1 for p in parts if (p.get_payload(decode=True) or b'').startswith(frame))
said = sorted({type(d).__name__ for m in [msg, *parts] for d in m.defects})
if not msg.is_multipart():
    said.insert(0, 'not multipart: ' + msg.get_content_type())
if error:
    said = [error] + (said if body else [])
print(intact, *said, sep='\n')
"#;

fn python_cell(python: &Path, url: &str, frame_file: &Path) -> Cell {
    let address = url.strip_prefix("http://").unwrap();
    let (host_port, path) = address.split_at(address.find('/').unwrap());
    let (host, port) = host_port.rsplit_once(':').unwrap();
    let mut command = quiet(python);
    command
        .args(["-c", PYTHON_READ, host, port, path])
        .arg(frame_file);
    let done = run(&mut command, None, TOOL_LIMIT);
    let stdout = done.stdout_text();
    let mut lines = stdout.lines();
    let Some(frames) = lines.next().and_then(|n| n.parse().ok()) else {
        let said = first_said(done.stderr_text().lines().rev(), 1);
        return Cell::counted(0, said);
    };
    Cell::counted(frames, lines.map(str::to_owned).collect())
}

/// curl fetches `url` to its end: the transfer completes, or the exit code and message.
fn curl_cell(curl: &Path, url: &str) -> Cell {
    let mut command = quiet(curl);
    command.args(["-sS", "-o", "/dev/null", "--max-time", "20", url]);
    let done = run(&mut command, None, TOOL_LIMIT);
    let said = match done.status.code() {
        Some(0) => Vec::new(),
        code => {
            let message = done.stderr_text();
            let message = message.lines().next().unwrap_or_default();
            // `curl: (56) Recv failure: …`
            let message = message.split_once(") ").map_or(message, |(_, m)| m);
            vec![format!("exit {}, {}", code.unwrap_or(-1), gist(message))]
        }
    };
    Cell {
        ok: said.is_empty(),
        frames: None,
        said,
    }
}

/// Chromium shows each path in an `<img>`, one page at a time (headless Chromium renders
/// only the newest page): whether a frame is on screen (most of its pixels not the
/// page's white) once the stream is over — its viewer gone, at most [`BROWSER_WAIT`]
/// on — as a user would find it.
///
/// The page is the server's own `/stats`, its body replaced by the `<img>`: a page of
/// another origin (a `data:` URL) may not load images from a loopback address at all.
fn chromium_cells(chromium: &Path, server: &Server, paths: &[String]) -> Vec<Cell> {
    let mut browser = Browser::launch(chromium, TOOL_LIMIT * 8);
    paths
        .iter()
        .map(|path| {
            let stats = format!("http://{}/stats", server.addr());
            let page = browser.open(&stats, 2 * WIDTH, 2 * HEIGHT);
            let loaded = (0..100).any(|_| {
                thread::sleep(Duration::from_millis(20));
                browser.evaluate(&page, "document.readyState").as_str() == Some("complete")
            });
            assert!(loaded, "{stats} never loaded");
            let show = format!(
                "document.body.style = 'margin:0;background:white'; \
                 document.body.innerHTML = '<img src={path}>'; 'shown'"
            );
            assert_eq!(browser.evaluate(&page, &show).as_str(), Some("shown"));
            let started = Instant::now();
            while started.elapsed() < BROWSER_WAIT {
                thread::sleep(Duration::from_millis(100));
                if started.elapsed() >= STREAM_START && server.stats().viewers(path) == 0 {
                    break;
                }
            }
            // Time to show what came last.
            thread::sleep(Duration::from_millis(300));
            let shot = Rgb::from_png(&browser.screenshot(&page));
            let coloured = shot
                .pixels
                .chunks_exact(3)
                .filter(|px| px.iter().any(|&c| c < 200))
                .count();
            let shown = coloured >= (WIDTH * HEIGHT / 2) as usize;
            browser.close(page);
            Cell {
                ok: shown,
                frames: None,
                said: if shown {
                    Vec::new()
                } else {
                    vec!["no image".to_owned()]
                },
            }
        })
        .collect()
}

/// The table, as the README has it.
fn table(cells: &[Vec<Cell>]) -> String {
    let mut out = String::from(
        "| fault | what it sends | ffmpeg `-f mpjpeg` | ffmpeg (detected) | GStreamer | \
         Python `email` | curl | Chromium `<img>` |\n|---|---|---|---|---|---|---|---|\n",
    );
    for ((fault, sends), row) in ROWS.iter().zip(cells) {
        let fault = if fault.is_empty() {
            "(none)".to_owned()
        } else {
            format!("`{fault}`")
        };
        let row: Vec<String> = row.iter().map(Cell::to_string).collect();
        out.push_str(&format!("| {fault} | {sends} | {} |\n", row.join(" | ")));
    }
    out
}

#[test]
fn each_fault_against_the_real_clients_gives_the_readmes_table() {
    let Some(tools) = tools() else {
        return;
    };
    let scratch = Scratch::new("fault-clients");
    let frame_file = scratch.join("frame.jpg");
    let make = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=1",
        "-frames:v",
        "1",
    ];
    let done = run(quiet(&tools.ffmpeg).args(make).arg(&frame_file), None, TOOL_LIMIT);
    assert!(done.status.success(), "making the frame: {}", done.stderr_text());
    let frame = std::fs::read(&frame_file).unwrap();
    let decode = ["-hide_banner", "-loglevel", "error", "-i"];
    let mut command = quiet(&tools.ffmpeg);
    command
        .args(decode)
        .arg(&frame_file)
        .args(["-f", "framemd5", "-"]);
    let reference = frame_hashes(&run(&mut command, None, TOOL_LIMIT).stdout_text());
    let [frame_md5] = &reference[..] else {
        panic!("one frame: {reference:?}")
    };
    let parts = vec![format!("part image/jpeg @{}", frame_file.display()); FRAMES];
    let script = scratch.write("five.script", parts.join("\nwait 100ms\n") + "\n");

    let args: Vec<String> = ROWS
        .iter()
        .enumerate()
        .flat_map(|(i, (fault, _))| {
            let fault = if fault.is_empty() {
                String::new()
            } else {
                format!(",fault={fault}")
            };
            [
                "--stream".to_owned(),
                format!("/f{i}=script:{}{fault}", script.display()),
            ]
        })
        .collect();
    let server = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let urls: Vec<String> = (0..ROWS.len())
        .map(|i| format!("http://{}/f{i}", server.addr()))
        .collect();

    let mut cells: Vec<Vec<Cell>> = Vec::new();
    for url in &urls {
        // The clients of one fault at once: each is mostly waiting on the stream.
        let row = thread::scope(|s| {
            let runs = [
                s.spawn(|| ffmpeg_cell(&tools.ffmpeg, url, false, frame_md5)),
                s.spawn(|| ffmpeg_cell(&tools.ffmpeg, url, true, frame_md5)),
                s.spawn(|| gst_cell(&tools.gst, url, &frame)),
                s.spawn(|| python_cell(&tools.python, url, &frame_file)),
                s.spawn(|| curl_cell(&tools.curl, url)),
            ];
            runs.map(|run| run.join().expect("a client thread"))
        });
        cells.push(row.to_vec());
    }
    let paths: Vec<String> = (0..ROWS.len()).map(|i| format!("/f{i}")).collect();
    for (row, cell) in cells
        .iter_mut()
        .zip(chromium_cells(&tools.chromium, &server, &paths))
    {
        row.push(cell);
    }
    let table = table(&cells);
    println!("{table}");

    // A stream without faults is fine for every client: the tools and the test work.
    assert!(cells[0].iter().all(|cell| cell.ok), "{table}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's table of faults is not this run's; paste the table above into it"
    );
}
