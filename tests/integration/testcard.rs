//! The `testcard` kind against real clients: ffmpeg decodes its frames without a word,
//! frame for frame in a loop; its `X-Frame` numbers count on across the loop at the
//! configured rate; headless Chromium shows the frame's number on `/view`.
//!
//! What the Chromium test proves, and what it does not: the screenshot's image region,
//! and within it the number's region alone, match ffmpeg's decode of one frame of the
//! loop (the one whose `X-Frame` the server sent), and not the others, which differ there
//! only by their digits. That the digits drawn are the frame's number is the unit test
//! `each_frame_shows_its_number_zero_padded` in `src/stream/testcard.rs`, which reads the
//! glyphs back from the pixels. No OCR: nothing here reads a digit off the screen.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::support::Scratch;
use crate::support::browser::Browser;
use crate::support::ffmpeg::{frame_hashes, run_ffmpeg};
use crate::support::json::Value;
use crate::support::media::Rgb;
use crate::support::multipart::{Item, Part, open};
use crate::support::process::run;
use crate::support::server::Server;
use crate::support::tools::{TOOL_LIMIT, require_tool};

/// The next `n` parts of the stream at `path`.
fn read_parts(addr: SocketAddr, path: &str, n: usize) -> Vec<Part> {
    let mut reader = open(addr, path);
    (0..n)
        .map(
            |i| match reader.next().unwrap_or_else(|e| panic!("{path}: part {i}: {e}")) {
                Item::Part(part) => part,
                other => panic!("{path}: a testcard ended: {other:?}"),
            },
        )
        .collect()
}

/// `ffmpeg -v warning` reading `url` as MJPEG over HTTP for `frames` frames: it must say
/// nothing and succeed; returns the decoded frames' hashes and the framemd5 header.
fn decode_quietly(ffmpeg: &Path, url: &str, frames: usize) -> (Vec<String>, String) {
    let mut command = Command::new(ffmpeg);
    command
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "warning",
            "-f",
            "mpjpeg",
            "-i",
            url,
        ])
        .args(["-frames:v", &frames.to_string(), "-f", "framemd5", "-"]);
    let done = run(&mut command, None, TOOL_LIMIT);
    assert!(done.status.success(), "{url}: {}", done.stderr_text());
    assert_eq!(done.stderr_text(), "", "{url}: ffmpeg warned");
    let out = done.stdout_text();
    (frame_hashes(&out), out)
}

#[test]
fn ffmpeg_decodes_a_testcard_without_a_warning_frame_for_frame_in_a_loop() {
    let Some(ffmpeg) = require_tool(&["ffmpeg"], "ffmpeg") else {
        return;
    };
    const LOOP: usize = 10;
    let server = Server::start(&[
        "--stream",
        &format!("/card=testcard,size=320x180,fps=50,frames={LOOP}"),
        "--stream",
        "/default=testcard",
    ]);
    let url = |path: &str| format!("http://{}{path}", server.addr());

    let (hashes, _) = decode_quietly(&ffmpeg, &url("/card"), 2 * LOOP + 5);
    assert_eq!(hashes.len(), 2 * LOOP + 5, "the frames ffmpeg read");
    let mut distinct = hashes[..LOOP].to_vec();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        LOOP,
        "every frame of the loop differs: {hashes:?}"
    );
    for (i, hash) in hashes.iter().enumerate().skip(LOOP) {
        assert_eq!(hash, &hashes[i - LOOP], "frame {i} is frame {} again", i - LOOP);
    }

    // The defaults: 640x360, and as ffmpeg sees it, a JPEG of full-range 4:2:0.
    let (hashes, header) = decode_quietly(&ffmpeg, &url("/default"), 3);
    assert_eq!(hashes.len(), 3);
    assert!(header.contains("#dimensions 0: 640x360"), "{header}");
    server.assert_clean();
}

#[test]
fn x_frame_counts_on_across_the_loop_at_the_configured_fps() {
    const LOOP: usize = 7;
    const PARTS: usize = 24;
    let server = Server::start(&[
        "--stream",
        &format!("/card=testcard,size=64x48,fps=20,frames={LOOP}"),
    ]);
    for path in ["/card", "/card?advance_headers=1"] {
        let parts = read_parts(server.addr(), path, PARTS);
        let frames: Vec<u64> = parts.iter().map(Part::frame_number).collect();
        assert_eq!(frames, (0..PARTS as u64).collect::<Vec<_>>(), "{path}");
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(part.content_type, "image/jpeg");
            assert!(part.body.starts_with(&[0xFF, 0xD8]) && part.body.ends_with(&[0xFF, 0xD9]));
            let again = parts.get(i + LOOP).map_or(&part.body, |p| &p.body);
            assert_eq!(&part.body, again, "{path}: frame {i} and {}", i + LOOP);
            if i + 1 < LOOP {
                assert_ne!(part.body, parts[i + 1].body, "{path}: frame {i}");
            }
        }
        // 20 frames a second: each part due 50 ms after the one before. A client the
        // loaded machine made late waits its own timeline (a later stamp, never an
        // earlier one), so the steps are at least 50 ms and most of them exactly that.
        let mut steps: Vec<u64> = parts
            .windows(2)
            .map(|w| w[1].stamp_us() - w[0].stamp_us())
            .collect();
        assert!(steps.iter().all(|&step| step >= 50_000), "{path}: {steps:?}");
        steps.sort_unstable();
        assert_eq!(steps[steps.len() / 2], 50_000, "{path}: the median step");
    }
    server.assert_clean();
}

/// The frames ffmpeg decodes from `parts`, as RGB.
fn decode_each(ffmpeg: &Path, parts: &[Part]) -> Vec<Rgb> {
    let scratch = Scratch::new("testcard-frames");
    parts
        .iter()
        .map(|part| {
            let name = format!("frame{}", part.frame_number());
            let jpeg = scratch.write(&format!("{name}.jpg"), &part.body);
            let png = scratch.join(&format!("{name}.png"));
            let (jpeg, png) = (jpeg.display().to_string(), png.display().to_string());
            run_ffmpeg(
                ffmpeg,
                &["-i", &jpeg, "-pix_fmt", "rgb24", &png],
                "decoding a frame",
            );
            Rgb::from_png(&std::fs::read(&png).expect("ffmpeg's PNG"))
        })
        .collect()
}

/// Mean absolute difference per channel between `shot` at (`left`, `top`) and `frame`,
/// over the frame's pixels in `area` (x, y, width, height).
fn distance(shot: &Rgb, left: usize, top: usize, frame: &Rgb, area: [usize; 4]) -> f64 {
    let [x0, y0, w, h] = area;
    let mut sum = 0u64;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            let (a, b) = (shot.pixel(left + x, top + y), frame.pixel(x, y));
            sum += a
                .iter()
                .zip(b)
                .map(|(&a, b)| u64::from(a.abs_diff(b)))
                .sum::<u64>();
        }
    }
    sum as f64 / (w * h * 3) as f64
}

/// The frame `area` of `shot` matches best, and how well: (index, distance, next best).
fn best_match(shot: &Rgb, at: (usize, usize), frames: &[Rgb], area: [usize; 4]) -> (usize, f64, f64) {
    let mut scored: Vec<(usize, f64)> = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| (i, distance(shot, at.0, at.1, frame, area)))
        .collect();
    scored.sort_by(|a, b| a.1.total_cmp(&b.1));
    (scored[0].0, scored[0].1, scored[1].1)
}

#[test]
fn chromium_shows_the_frame_number_of_a_testcard_on_the_view_page() {
    let Some(chromium) = require_tool(&["chromium", "chromium-browser", "google-chrome"], "chromium") else {
        return;
    };
    let Some(ffmpeg) = require_tool(&["ffmpeg"], "ffmpeg") else {
        return;
    };
    const LOOP: usize = 3;
    const W: usize = 320;
    const H: usize = 180;
    // Quality 90: full-resolution chroma, so two decoders agree closely.
    let server = Server::start(&[
        "--stream",
        &format!("/card=testcard,size={W}x{H},fps=2,frames={LOOP},quality=90"),
    ]);
    let frames = decode_each(&ffmpeg, &read_parts(server.addr(), "/card", LOOP));

    let mut browser = Browser::launch(&chromium, TOOL_LIMIT);
    let page = browser.open(&format!("http://{}/view", server.addr()), 600, 400);
    // The image's content box, once the page and the image are there.
    let script = "(() => { const i = document.querySelector('img'); if (!i) return []; \
                  const r = i.getBoundingClientRect(); \
                  return [r.left + i.clientLeft, r.top + i.clientTop, i.clientWidth, i.clientHeight]; })()";
    let mut at = None;
    for _ in 0..50 {
        let box_px: Vec<f64> = match browser.evaluate(&page, script) {
            Value::Arr(values) => values.iter().filter_map(Value::as_num).collect(),
            _ => Vec::new(),
        };
        if let [left, top, width, height] = box_px[..] {
            if (width, height) == (W as f64, H as f64) {
                at = Some((left as usize, top as usize));
                break;
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    let at = at.expect("the testcard's <img> at its size");

    // The whole image, and the number's region alone: the middle third, where the frames
    // differ only by their digits.
    let whole = [0, 0, W, H];
    let number = [W / 3, H / 3, W / 3, H / 3];
    let mut seen = Vec::new();
    for _ in 0..30 {
        thread::sleep(Duration::from_millis(200));
        let shot = Rgb::from_png(&browser.screenshot(&page));
        assert_eq!((shot.width, shot.height), (600, 400), "one pixel per CSS pixel");
        let (frame, close, next) = best_match(&shot, at, &frames, whole);
        let (digits, digits_close, digits_next) = best_match(&shot, at, &frames, number);
        eprintln!(
            "screenshot: frame {frame} ({close:.2}, next {next:.2}); number region: frame {digits} \
             ({digits_close:.2}, next {digits_next:.2})"
        );
        // Two decoders differ a little (by 2 to 3 on average, up to 7 around the sharp
        // edges of the number); another frame differs by over 13, by over 20 there.
        assert!(
            close < 5.0 && next > 2.0 * close,
            "the image is no frame of the loop"
        );
        assert!(
            digits == frame && digits_close < 10.0 && digits_next > 2.0 * digits_close,
            "the number region shows frame {frame}'s digits"
        );
        if !seen.contains(&frame) {
            seen.push(frame);
        }
        if seen.len() == LOOP {
            break;
        }
    }
    assert!(seen.len() >= 2, "Chromium showed only frames {seen:?}");
}
