//! Seeded randomized tests of the three parsers and the PROXY header: thousands of generated inputs each, with
//! the invariants the fuzz targets in `fuzz/` check, plus model checks where a simple
//! model exists. Fixed seeds: a failure reproduces, and its seed and case number say
//! which input.

use std::path::Path;

use mixreplace::http;
use mixreplace::stream::jpeg::{SplitStats, Splitter};
use mixreplace::stream::script::{self, MAX_PARTS, MAX_WAIT_MS, Script};

use crate::support::rng::Rng;

// ---- HTTP requests ----

#[test]
fn random_requests_never_panic_and_paths_are_absolute() {
    const PIECES: &[&str] = &[
        "GET",
        "HEAD",
        "POST",
        "OPTIONS",
        " ",
        "  ",
        "/",
        "*",
        "/cam?action=stream",
        "?",
        "http://h/x",
        "x",
        " HTTP/1.1",
        " HTTP/1.0",
        " HTTP/2",
        "\r\n",
        "\n",
        "\r",
        "Host: a",
        "Host:",
        ": ",
        "X-A: b",
        "\0",
        "\x7f",
        "\t",
        "é",
        "%2F",
    ];
    let mut rng = Rng::new(0x5EED_0001);
    let mut complete = 0;
    for case in 0..20_000 {
        let mut buf = Vec::new();
        if rng.chance(80) {
            // Mostly well-formed, so the parser gets past the request line.
            let method = rng.pick(&["GET ", "HEAD ", "PUT ", "GET  "]);
            let target = rng.pick(&["/", "/a?b", "*", "x", "//", "/?", "", "http://h/"]);
            let version = rng.pick(&[" HTTP/1.1\r\n", " HTTP/1.0\r\n", " HTTP/1.1\n"]);
            buf.extend_from_slice(format!("{method}{target}{version}").as_bytes());
            let headers = rng.pick(&[
                "Host: a\r\n",
                "Host: a\r\nX-A: b\r\n",
                "",
                "Host: a\r\nHost: b\r\n",
            ]);
            buf.extend_from_slice(headers.as_bytes());
        }
        for _ in 0..rng.below(3) {
            let at = rng.below(buf.len() + 1);
            let piece = if rng.chance(85) {
                rng.pick(PIECES).as_bytes().to_vec()
            } else {
                rng.noise(4)
            };
            buf.splice(at..at, piece);
        }
        if rng.chance(70) {
            buf.extend_from_slice(b"\r\n");
        }
        if let Ok(Some(req)) = http::parse(&buf) {
            complete += 1;
            assert!(
                req.path.starts_with('/') || req.path == "*",
                "case {case}: {:?} gave path {:?}",
                String::from_utf8_lossy(&buf),
                req.path
            );
        }
    }
    assert!(
        complete > 1000,
        "{complete}: the generator should reach complete requests"
    );
}

// ---- Scripts ----

/// A line of script, right or (often) subtly wrong.
fn script_line(rng: &mut Rng) -> String {
    let types = [
        "text/plain",
        "image/png",
        "a/b;c=d",
        "text",
        "a/",
        "x/y z",
        "te\"xt/a",
    ];
    let bodies = [
        "\"hi\"",
        "\"a\\r\\n\\t\\\"\\\\\\x41\"",
        "\"\\q\"",
        "\"open",
        "\"\\x4\"",
        "\"\" \"x\"",
        "@missing.png",
        "@",
        "base64(@missing.png)",
        "base64(\"x\")",
        "<<END",
        "<<",
        "# comment",
        "x",
        "",
    ];
    let durations = [
        "0ms",
        "500ms",
        "1s",
        "1.5s",
        "0.001s",
        "86400s",
        "86401s",
        "5",
        "1.2345s",
        "-1s",
        "ms",
        "99999999999999999999s",
    ];
    match rng.below(12) {
        0..=2 => format!("part {} {}", rng.pick(&types), rng.pick(&bodies)),
        3 | 4 => format!("wait {}", rng.pick(&durations)),
        5 => format!("repeat {} {{", rng.pick(&["1", "2", "3", "0", "100001", "x", ""])),
        6 => "loop {".to_owned(),
        7 | 8 => "}".to_owned(),
        9 => rng.pick(&["", "# note", "   ", "END", "\r", "\t}"]).to_string(),
        10 => rng
            .pick(&["frob", "part", "wait", "repeat 2", "loop", "} x"])
            .to_string(),
        _ => String::from_utf8_lossy(&rng.noise(8)).into_owned(),
    }
}

fn check_script(text: &str, result: &Result<Script, script::ScriptError>) {
    match result {
        Err(err) => {
            let lines = text.lines().count();
            assert!(
                err.line >= 1 && err.line <= lines + 1,
                "line {} of {lines}: {err}\n{text}",
                err.line
            );
            assert!(!err.message.is_empty());
            assert!(
                err.to_string()
                    .starts_with(&format!("{}:{}: ", err.file, err.line))
            );
        }
        Ok(script) => {
            assert!(!script.parts.is_empty() && script.parts.len() <= MAX_PARTS);
            assert!(script.loop_from.is_none_or(|i| i < script.parts.len()));
            assert!(script.lead_ms <= MAX_WAIT_MS);
            for part in &script.parts {
                assert!(part.delay_ms <= MAX_WAIT_MS);
                assert!(part.content_type.contains('/'));
                assert!(
                    !part
                        .content_type
                        .contains(|c: char| c.is_whitespace() || c == '"')
                );
            }
        }
    }
}

#[test]
fn random_scripts_never_panic_and_errors_name_a_real_line() {
    let mut rng = Rng::new(0x5EED_0002);
    let (mut parsed, mut refused) = (0, 0);
    for _ in 0..20_000 {
        // A valid script with a few lines replaced, inserted or removed.
        let (valid, _, _) = valid_script(&mut rng);
        let mut lines: Vec<String> = valid.lines().map(str::to_owned).collect();
        for _ in 0..rng.below(4) {
            let at = rng.below(lines.len() + 1);
            match rng.below(3) {
                0 if at < lines.len() => lines[at] = script_line(&mut rng),
                1 if at < lines.len() => drop(lines.remove(at)),
                _ => lines.insert(at, script_line(&mut rng)),
            }
        }
        let text = lines.join(if rng.chance(20) { "\r\n" } else { "\n" });
        let result = script::parse(&text, Path::new("/nonexistent/r.script"));
        check_script(&text, &result);
        match result {
            Ok(_) => parsed += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        parsed > 100 && refused > 100,
        "{parsed} parsed, {refused} refused"
    );
}

/// What the script means, the slow way: every part and wait in order, `repeat`s
/// unrolled and the loop played `passes` times.
#[derive(Clone, Debug)]
enum Event {
    Part(String),
    Wait(u64),
}

/// A random valid script, and its events with the loop (if any) played 3 times.
fn valid_script(rng: &mut Rng) -> (String, Vec<Event>, bool) {
    fn block(rng: &mut Rng, depth: usize, text: &mut String, events: &mut Vec<Event>) {
        let mut has_part = false;
        for _ in 0..1 + rng.below(4) {
            match rng.below(if depth < 3 { 4 } else { 3 }) {
                0 | 1 => {
                    let body = format!("p{}", rng.below(1000));
                    text.push_str(&format!("part text/plain \"{body}\"\n"));
                    events.push(Event::Part(body));
                    has_part = true;
                }
                2 => {
                    let ms = rng.below(2000) as u64;
                    let written = if rng.chance(50) {
                        format!("{ms}ms")
                    } else {
                        format!("{}.{:03}s", ms / 1000, ms % 1000)
                    };
                    text.push_str(&format!("wait {written}\n"));
                    events.push(Event::Wait(ms));
                }
                _ => {
                    let count = 1 + rng.below(3);
                    text.push_str(&format!("repeat {count} {{\n"));
                    let mut body = Vec::new();
                    block(rng, depth + 1, text, &mut body);
                    text.push_str("}\n");
                    for _ in 0..count {
                        events.extend(body.iter().cloned());
                    }
                    has_part = true;
                }
            }
        }
        if !has_part {
            text.push_str("part a/b \"last\"\n");
            events.push(Event::Part("last".into()));
        }
    }
    let mut text = String::new();
    let mut events = Vec::new();
    block(rng, 0, &mut text, &mut events);
    let looped = rng.chance(40);
    if looped {
        text.push_str("loop {\n");
        let mut body = Vec::new();
        block(rng, 1, &mut text, &mut body);
        text.push_str("}\n# the end\n");
        for _ in 0..3 {
            events.extend(body.iter().cloned());
        }
    }
    (text, events, looped)
}

/// Folds events into (lead, [(body, delay)]): waits add up into the delay after the
/// part before them.
fn fold(events: &[Event]) -> (u64, Vec<(String, u64)>) {
    let mut lead = 0;
    let mut parts: Vec<(String, u64)> = Vec::new();
    for event in events {
        match event {
            Event::Part(body) => parts.push((body.clone(), 0)),
            Event::Wait(ms) => match parts.last_mut() {
                Some(part) => part.1 += ms,
                None => lead += ms,
            },
        }
    }
    (lead, parts)
}

#[test]
fn random_valid_scripts_play_like_their_unrolled_model() {
    let mut rng = Rng::new(0x5EED_0003);
    for case in 0..3_000 {
        let (text, events, looped) = valid_script(&mut rng);
        let script = script::parse(&text, Path::new("m.script"))
            .unwrap_or_else(|e| panic!("case {case}: {e}\n{text}"));
        assert_eq!(script.loop_from.is_some(), looped, "case {case}");
        // The script's timeline, its loop played 3 times.
        let mut played: Vec<(String, u64)> = script
            .parts
            .iter()
            .map(|p| (String::from_utf8(p.body.clone()).unwrap(), p.delay_ms))
            .collect();
        if let Some(from) = script.loop_from {
            let body = played[from..].to_vec();
            played.extend(body.iter().cloned());
            played.extend(body);
        }
        let (lead, want) = fold(&events);
        assert_eq!(script.lead_ms, lead, "case {case}\n{text}");
        // After the very last part the model has no next pass to wait for.
        if looped {
            let last = played.len() - 1;
            played[last].1 = want[last].1;
        }
        assert_eq!(played, want, "case {case}\n{text}");
    }
}

// ---- JPEG splitting ----

fn segment(code: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, code];
    out.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A structurally valid frame with random segments (whose payloads may hold SOI and EOI),
/// fill bytes, one or more scans with stuffed bytes and restart markers.
fn valid_frame(rng: &mut Rng) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let payload = |rng: &mut Rng| {
        let mut p = rng.noise(40);
        if rng.chance(30) {
            p.extend_from_slice(&[0xFF, 0xD9, 0xFF, 0xD8]);
        }
        p
    };
    for _ in 0..rng.below(4) {
        if rng.chance(20) {
            out.push(0xFF); // fill
        }
        let code = *rng.pick(&[0xE0, 0xE1, 0xDB, 0xC0, 0xC4, 0xFE, 0xDD]);
        out.extend(segment(code, &payload(rng)));
    }
    for _ in 0..1 + rng.below(3) {
        out.extend(segment(0xDA, &rng.noise(10)));
        for _ in 0..rng.below(60) {
            match rng.below(10) {
                0 => out.extend_from_slice(&[0xFF, 0x00]),
                1 => out.extend_from_slice(&[0xFF, 0xD0 + rng.below(8) as u8]),
                _ => out.push(rng.below(255) as u8),
            }
        }
        if rng.chance(30) {
            out.extend(segment(0xC4, &payload(rng)));
        }
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// Splits `data` in random chunks; checks the invariants on the way.
fn split_random(rng: &mut Rng, max: usize, data: &[u8]) -> (Vec<Vec<u8>>, SplitStats) {
    let mut splitter = Splitter::new(max);
    let mut frames = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let most = *rng.pick(&[3, 50, 5000]);
        let n = (1 + rng.below(most)).min(rest.len());
        splitter.push(&rest[..n], |f| frames.push(f.to_vec()));
        assert!(splitter.buffered() <= max);
        rest = &rest[n..];
    }
    for frame in &frames {
        assert!(frame.starts_with(&[0xFF, 0xD8]) && frame.ends_with(&[0xFF, 0xD9]));
        assert!(frame.len() <= max);
    }
    (frames, splitter.stats())
}

#[test]
fn random_valid_streams_split_into_exactly_their_frames() {
    let mut rng = Rng::new(0x5EED_0004);
    for case in 0..3_000 {
        let max = *rng.pick(&[40, 120, 400, 1 << 20]);
        let (mut data, mut want, mut junk, mut oversize) = (Vec::new(), Vec::new(), 0, 0);
        for _ in 0..rng.below(6) {
            if rng.chance(30) {
                // Junk without FF cannot be mistaken for a marker.
                let n = rng.below(30);
                data.extend((0..n).map(|_| rng.below(255) as u8));
                junk += n as u64;
            }
            let frame = valid_frame(&mut rng);
            data.extend_from_slice(&frame);
            if frame.len() <= max {
                want.push(frame);
            } else {
                oversize += 1;
            }
        }
        let (frames, stats) = split_random(&mut rng, max, &data);
        assert_eq!(frames, want, "case {case}");
        let expect = SplitStats {
            frames: want.len() as u64,
            junk_bytes: junk,
            oversize_dropped: oversize,
        };
        assert_eq!(stats, expect, "case {case}");
    }
}

#[test]
fn random_broken_streams_split_the_same_whatever_the_chunking() {
    let mut rng = Rng::new(0x5EED_0005);
    for case in 0..3_000 {
        let max = *rng.pick(&[2, 30, 200, 1 << 16]);
        let mut data = Vec::new();
        for _ in 0..rng.below(6) {
            match rng.below(4) {
                0 => {
                    let n = rng.below(100);
                    data.extend(rng.bytes(n));
                }
                1 => {
                    // A frame cut short, or with a byte changed.
                    let mut frame = valid_frame(&mut rng);
                    let at = rng.below(frame.len());
                    if rng.chance(50) {
                        frame.truncate(at);
                    } else {
                        frame[at] = rng.next_u64() as u8;
                    }
                    data.extend(frame);
                }
                _ => data.extend(valid_frame(&mut rng)),
            }
        }
        let once = split_random(&mut Rng::new(1), max, &data);
        let whole = {
            let mut splitter = Splitter::new(max);
            let mut frames = Vec::new();
            splitter.push(&data, |f| frames.push(f.to_vec()));
            (frames, splitter.stats())
        };
        assert_eq!(once, whole, "case {case}");
        assert_eq!(split_random(&mut rng, max, &data), whole, "case {case}");
    }
}

// ---- PROXY protocol headers ----

#[test]
fn random_proxy_headers_answer_the_same_whatever_the_cut() {
    use mixreplace::proxy_protocol::{MAX_LEN, parse};
    const PIECES: &[&[u8]] = &[
        b"PROXY ",
        b"TCP4 ",
        b"TCP6 ",
        b"UNKNOWN",
        b"192.0.2.7 ",
        b"2001:db8::1 ",
        b"4711 ",
        b"80",
        b"\r\n",
        b"\r\n\r\n\0\r\nQUIT\n",
        b"\x21\x11\x00\x0c",
        b"\x20\x00\x00\x00",
        b"\x21\x21\x00\x24",
        b"\x21\x11\x01\xff",
    ];
    let mut rng = Rng::new(0x5EED_0005);
    let mut headers = 0;
    for case in 0..20_000 {
        let mut buf = Vec::new();
        // Mostly a signature first, so the parser gets past it.
        if rng.chance(70) {
            let signatures: [&[u8]; 2] = [b"PROXY ", b"\r\n\r\n\0\r\nQUIT\n"];
            let signature = *rng.pick(&signatures);
            buf.extend_from_slice(signature);
        }
        for _ in 0..1 + rng.below(8) {
            match rng.chance(85) {
                true => {
                    let piece = *rng.pick(PIECES);
                    buf.extend_from_slice(piece)
                }
                false => buf.extend(rng.noise(40)),
            }
        }
        match parse(&buf) {
            Ok(Some(header)) => {
                headers += 1;
                assert!(header.len <= buf.len() && header.len <= MAX_LEN, "case {case}");
                for cut in 0..header.len {
                    assert_eq!(parse(&buf[..cut]), Ok(None), "case {case}, cut {cut}");
                }
            }
            Ok(None) => assert!(buf.len() < MAX_LEN, "case {case}"),
            Err(_) => {
                for cut in 0..buf.len() {
                    assert!(
                        !matches!(parse(&buf[..cut]), Ok(Some(_))),
                        "case {case}, cut {cut}"
                    );
                }
            }
        }
    }
    // The pieces make whole headers often enough for the checks to mean something.
    assert!(headers > 400, "{headers} headers");
    println!("{headers} of 20000 inputs were whole headers");
}
