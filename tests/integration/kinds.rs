//! Each kind of stream over real sockets, against the real binary: scripts (every
//! construct, every error message), folders of mixed image types, live MJPEG from a pipe
//! (junk, split and oversize frames), snapshots and aliases, and `/view`.
//!
//! Timing is checked through the parts' `X-Timestamp`s (the moment each part was due, in
//! microseconds), which the server computes from its own timeline: the gaps between them
//! are exact numbers, whatever the load on the machine.

use std::time::Duration;

use crate::support::http::fetch;
use crate::support::media::{
    EXIF_JPEG, PROGRESSIVE_JPEG, RESTART_JPEG, assert_bytes, frame, frame_id, solid_png, sum,
};
use crate::support::multipart::{Item, Part, PartReader, open};
use crate::support::server::{Server, run_binary};
use crate::support::{Scratch, now_us};

/// Gaps between consecutive parts' stamps, in milliseconds (exact: stamps are due times).
fn gaps_ms(parts: &[Part]) -> Vec<u64> {
    parts
        .windows(2)
        .map(|w| {
            let gap = w[1].stamp_us() - w[0].stamp_us();
            assert_eq!(gap % 1000, 0, "a gap of {gap} µs is not whole milliseconds");
            gap / 1000
        })
        .collect()
}

/// Each part carries exactly the headers the framing promises (the reader checked their
/// order and that the length is the body's).
fn assert_full_headers(part: &Part) {
    assert!(part.stamp.is_some() && part.headers.len() == 3, "{part:?}");
}

/// `count` parts of a stream that goes on.
fn next_parts(stream: &mut PartReader<std::net::TcpStream>, count: usize) -> Vec<Part> {
    (0..count).map(|_| next_part(stream)).collect()
}

/// The next part, which must be one.
fn next_part(stream: &mut PartReader<std::net::TcpStream>) -> Part {
    match stream.next().expect("a well-framed part") {
        Item::Part(part) => part,
        other => panic!("the stream ended: {other:?}"),
    }
}

/// A whole stream that ends with its last part: its parts.
fn read_whole(mut stream: PartReader<std::net::TcpStream>) -> Vec<Part> {
    let whole = stream.read_to_end().expect("a well-framed stream");
    assert!(whole.stopped.is_none(), "stopped early: {:?}", whole.stopped);
    whole.parts
}

const EVERY_CONSTRUCT: &str = r#"# Every construct of the script format, in one script.

wait 100ms
wait 0.1s          # waits in a row add up: a 200 ms lead

part text/plain "esc \r\n\t\"\\ \x00\xFF # not a comment" " + " @body.txt   # a comment after a statement
part text/html;charset=utf-8 <<END
<h1>"heredoc" \n # kept verbatim</h1>

  END
wait 0.05s
repeat 2 {
    wait 10ms
    repeat 2 {
        part image/png @"frame one.png"
        wait 0s
    }
    wait 5ms
}
part text/html "<img src=\"data:image/png;base64," base64( @"frame one.png" ) "\">"
wait 20ms
loop {
    wait 30ms
    part image/png @b.png
    part application/octet-stream "\x01\x02"
    wait 15ms
}
# only comments and blank lines may follow a loop

"#;

#[test]
fn a_script_with_every_construct_plays_part_for_part_and_wait_for_wait() {
    let dir = Scratch::new("script");
    dir.write("body.txt", "from a file\n");
    let one = solid_png(3, 2, [10, 20, 30]);
    let b = solid_png(2, 2, [200, 100, 0]);
    dir.write("frame one.png", &one);
    dir.write("b.png", &b);
    let script = dir.write("every.script", EVERY_CONSTRUCT);
    let server = Server::start(&["--stream", &format!("/s=script:{}", script.display())]);

    let asked_at = now_us();
    let mut stream = open(server.addr(), "/s");
    let parts = next_parts(&mut stream, 12);

    let text = [
        &b"esc \r\n\t\"\\ \x00\xff # not a comment"[..],
        b" + ",
        b"from a file\n",
    ]
    .concat();
    let heredoc = b"<h1>\"heredoc\" \\n # kept verbatim</h1>\n".to_vec();
    let uri = format!(
        "<img src=\"data:image/png;base64,{}\">",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &one)
    );
    let octets = b"\x01\x02".to_vec();
    let want: Vec<(&str, &[u8])> = vec![
        ("text/plain", &text[..]),
        ("text/html;charset=utf-8", &heredoc),
        ("image/png", &one),
        ("image/png", &one),
        ("image/png", &one),
        ("image/png", &one),
        ("text/html", uri.as_bytes()),
        // The loop, over and over.
        ("image/png", &b),
        ("application/octet-stream", &octets),
        ("image/png", &b),
        ("application/octet-stream", &octets),
        ("image/png", &b),
    ];
    let got: Vec<_> = parts
        .iter()
        .map(|p| (p.content_type.as_str(), sum(&p.body)))
        .collect();
    let want: Vec<_> = want.iter().map(|(t, b)| (*t, sum(b))).collect();
    assert_eq!(got, want);
    for part in &parts {
        assert_full_headers(part);
        assert!(!part.last, "a looping script never closes");
    }
    // After the heredoc: 50 ms, plus the outer repeat's leading 10 ms. Inside the repeats:
    // 0, then 5 + 10 between passes, 0, then 5 after the last. Before the loop: 20 ms and
    // the loop's leading 30 ms; at the end of each pass 15 + 30 ms.
    assert_eq!(gaps_ms(&parts), [0, 60, 0, 15, 0, 5, 50, 0, 45, 0, 45]);
    // The lead: the first part was due 200 ms after the request (within a little clock slack).
    let lead = parts[0].stamp_us() as i64 - asked_at as i64;
    assert!((198_000..5_000_000).contains(&lead), "lead {lead} µs");
}

/// Script errors: the text, the files beside it, and the line and message the server
/// must print before exiting with status 2.
#[test]
fn every_script_error_names_file_and_line_and_exits_2() {
    let dir = Scratch::new("errors");
    dir.write("a.bin", "x");
    dir.write("mb.bin", vec![0u8; 1 << 20]);
    // Sparse: the size check comes before any read.
    dir.sparse("huge.bin", (64 << 20) + 1);
    let d = dir.path().display().to_string();
    let big_repeat = "repeat 100000 {\nrepeat 2 {\npart a/b \"\"\n}\n}".to_owned();
    let cases: Vec<(String, usize, String)> = [
        ("", 1, "the script has no parts (expected at least one part line)"),
        (
            "# nothing\n\n",
            1,
            "the script has no parts (expected at least one part line)",
        ),
        (
            "wait 1s",
            1,
            "the script has no parts (expected at least one part line)",
        ),
        (
            "part a/b \"\"\nfrobnicate",
            2,
            "unknown statement 'frobnicate' (expected part, wait, repeat, loop or })",
        ),
        (
            "part",
            1,
            "part needs a content type and a body, e.g. part text/plain \"hi\"",
        ),
        (
            "part text/plain # c",
            1,
            "part needs a body: \"text\", @file, base64(@file) or <<TAG after the type",
        ),
        (
            "part text \"\"",
            1,
            "bad content type 'text': expected type/subtype, e.g. text/plain",
        ),
        (
            "part te(xt/plain \"\"",
            1,
            "bad content type 'te(xt/plain': type and subtype must be letters, digits or !#$%&'*+-.^_`|~",
        ),
        (
            "part a/b;charset \"\"",
            1,
            "bad content type 'a/b;charset': a parameter must be name=value, without spaces or quotes",
        ),
        (
            "\npart a/b \"abc",
            2,
            "unterminated string (no closing \" on this line)",
        ),
        (
            "part a/b \"\\q\"",
            1,
            "unknown escape '\\q' (expected \\r \\n \\t \\\" \\\\ or \\xNN)",
        ),
        ("part a/b \"\\x4\"", 1, "\\x needs two hex digits, found '\\x4\"'"),
        (
            "part a/b x",
            1,
            "expected a body (\"text\", @file, base64(@file) or <<TAG), found 'x'",
        ),
        ("part a/b @", 1, "@ needs a file name, e.g. @image.png"),
        ("part a/b base64(a.bin)", 1, "base64( takes a file: base64(@file)"),
        (
            "part a/b base64(@a.bin",
            1,
            "base64(@file is missing its closing )",
        ),
        ("part a/b @\"\\xff\"", 1, "file name is not UTF-8"),
        (
            "part a/b @/dev/null",
            1,
            "cannot read /dev/null: not a regular file",
        ),
        (
            "part a/b <<E-1",
            1,
            "heredoc tag 'E-1' must be letters, digits or _ (e.g. <<END)",
        ),
        ("part a/b <<END x", 1, "unexpected 'x' after <<TAG"),
        (
            "part a/b \"\"\npart a/b <<END\ntext\nEND2",
            2,
            "heredoc <<END is never closed (no line 'END' before the end of the file)",
        ),
        ("part a/b \"\"\nwait", 2, "wait needs a duration, e.g. wait 500ms"),
        (
            "part a/b \"\"\nwait 5",
            2,
            "bad duration '5' (expected e.g. 500ms, 2s or 1.5s)",
        ),
        (
            "part a/b \"\"\nwait 1.5ms",
            2,
            "bad duration '1.5ms' (expected e.g. 500ms, 2s or 1.5s)",
        ),
        (
            "part a/b \"\"\nwait 1.2345s",
            2,
            "bad duration '1.2345s' (seconds take 1 to 3 decimals: waits are whole milliseconds)",
        ),
        (
            "part a/b \"\"\nwait 86400.001s",
            2,
            "wait '86400.001s' is over a day",
        ),
        ("part a/b \"\"\nwait 1s 2s", 2, "unexpected '2s' after wait"),
        (
            "part a/b \"\"\nwait 86400s\nwait 1ms",
            3,
            "waits between two parts add up to more than a day",
        ),
        ("repeat x {", 1, "repeat needs a whole number of times, found 'x'"),
        (
            "repeat 0 {",
            1,
            "repeat 0 plays nothing: the count must be at least 1",
        ),
        (
            "repeat 100001 {",
            1,
            "repeat count 100001 is over the limit of 100000",
        ),
        ("repeat 2", 1, "repeat N must be followed by { on the same line"),
        ("repeat 2 { part", 1, "unexpected 'part' after repeat N {"),
        ("loop", 1, "loop must be followed by { on the same line"),
        (
            "part a/b \"\"\nrepeat 2 {\nwait 1s\n}",
            2,
            "this repeat has no part in its body",
        ),
        (
            "part a/b \"\"\nrepeat 2 {\npart a/b \"\"\n",
            2,
            "this repeat is never closed (missing })",
        ),
        (
            "repeat 2 {\nloop {\npart a/b \"\"\n}\n}",
            2,
            "a loop cannot be inside a repeat or loop: it plays forever, so it must be the last statement",
        ),
        ("loop {\n\n}", 1, "this loop has no part in its body"),
        (
            "loop {\npart a/b \"\"\n",
            1,
            "this loop is never closed (missing })",
        ),
        (
            "loop {\npart a/b \"\"\n}\nwait 1s",
            4,
            "'wait' after the loop: a loop plays forever, so nothing may follow it",
        ),
        ("part a/b \"\"\n}", 2, "stray } (no repeat or loop to close)"),
        ("part a/b \"\"\n} x", 2, "unexpected 'x' after }"),
        (&big_repeat, 5, "the script expands to more than 100000 parts"),
        (
            "repeat 300 {\npart a/b @mb.bin\n}",
            3,
            "the script's part bodies add up to more than 256 MiB (use loop instead of a large repeat?)",
        ),
    ]
    .into_iter()
    .map(|(text, line, message)| (text.to_owned(), line, message.to_owned()))
    .chain([
        (
            "part a/b @missing.png".to_owned(),
            1,
            format!("cannot read {d}/missing.png: No such file or directory (os error 2)"),
        ),
        (
            "part a/b \"\"\npart a/b @huge.bin".to_owned(),
            2,
            format!("{d}/huge.bin is larger than 64 MiB (the limit for one file)"),
        ),
    ])
    .collect();

    let script = dir.join("t.script");
    let p = script.display().to_string();
    let spec = format!("/s=script:{p}");
    let expect = |what: &str, line: usize, message: &str| {
        let done = run_binary(
            &["--listen", "127.0.0.1:0", "--stream", &spec],
            &[("RUST_LOG", "info")],
        );
        let (code, stderr) = (done.status.code(), done.stderr_text());
        assert_eq!(code, Some(2), "{what}: {stderr}");
        assert_eq!(stderr, format!("mixreplace: {p}:{line}: {message}\n"), "{what}");
    };
    for (text, line, message) in &cases {
        std::fs::write(&script, text).unwrap();
        expect(text, *line, message);
    }

    // The script itself: not UTF-8, too large, missing.
    std::fs::write(&script, b"# ok\npart a/b \"\xff\"\n").unwrap();
    expect("not UTF-8", 2, "not UTF-8 text");
    dir.sparse("t.script", (16 << 20) + 1);
    expect("16 MiB", 0, "cannot read: larger than 16 MiB");
    std::fs::remove_file(&script).unwrap();
    expect(
        "missing",
        0,
        "cannot read: No such file or directory (os error 2)",
    );
}

#[test]
fn a_folder_plays_mixed_image_types_in_name_order() {
    let dir = Scratch::new("mixed");
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\
                \x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
        .to_vec();
    // A 1×1 lossless WebP.
    let webp = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        "UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==",
    )
    .unwrap();
    // A 1×1 24-bit BMP: file header, info header, one pixel padded to 4 bytes.
    let mut bmp = b"BM".to_vec();
    bmp.extend(58u32.to_le_bytes());
    bmp.extend([0, 0, 0, 0]);
    bmp.extend(54u32.to_le_bytes());
    bmp.extend(40u32.to_le_bytes());
    bmp.extend(1i32.to_le_bytes());
    bmp.extend(1i32.to_le_bytes());
    bmp.extend(1u16.to_le_bytes());
    bmp.extend(24u16.to_le_bytes());
    bmp.extend([0; 24]);
    bmp.extend([0, 0, 255, 0]);
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>".to_vec();
    let png = solid_png(2, 2, [0, 255, 0]);
    let files: Vec<(&str, &[u8], &str)> = vec![
        ("a.jpg", PROGRESSIVE_JPEG, "image/jpeg"),
        ("b.PNG", &png, "image/png"),
        ("c.gif", &gif, "image/gif"),
        ("d.webp", &webp, "image/webp"),
        ("e.bmp", &bmp, "image/bmp"),
        ("f.svg", &svg, "image/svg+xml"),
        ("g.JPEG", RESTART_JPEG, "image/jpeg"),
    ];
    // Written out of order, with things that are not images.
    for (name, bytes, _) in files.iter().rev() {
        dir.write(name, bytes);
    }
    dir.write("notes.txt", "not an image");
    dir.write("no-extension", "not an image");
    std::fs::create_dir(dir.join("folder.png")).unwrap();
    let d = dir.path().display();
    let server = Server::start(&[
        "--stream",
        &format!("/once=dir:{d},fps=40,loop=false"),
        "--stream",
        &format!("/loop=dir:{d}"),
    ]);

    let parts = read_whole(open(server.addr(), "/once"));
    let want: Vec<(&str, &[u8])> = files.iter().map(|(_, bytes, t)| (*t, *bytes)).collect();
    let got: Vec<_> = parts
        .iter()
        .map(|p| (p.content_type.as_str(), sum(&p.body)))
        .collect();
    let want: Vec<_> = want.iter().map(|(t, b)| (*t, sum(b))).collect();
    assert_eq!(got, want);
    parts.iter().for_each(assert_full_headers);
    let last: Vec<bool> = parts.iter().map(|p| p.last).collect();
    assert_eq!(last, [false, false, false, false, false, false, true]);
    // fps=40: 25 ms each.
    assert_eq!(gaps_ms(&parts), [25; 6]);

    // Looping by default, at 10 a second: after the last image, the first again.
    let mut looping = open(server.addr(), "/loop");
    let parts = next_parts(&mut looping, 9);
    let bodies: Vec<_> = parts.iter().map(|p| sum(&p.body)).collect();
    let mut once: Vec<_> = files.iter().map(|(_, bytes, _)| sum(bytes)).collect();
    once.extend([sum(PROGRESSIVE_JPEG), sum(&png)]);
    assert_eq!(bodies, once);
    assert_eq!(gaps_ms(&parts), [100; 8]);
    assert!(parts.iter().all(|p| !p.last));
}

/// The live pipe: junk before, between and after frames; a frame split over several
/// writes; a truncated frame, a broken one and an oversize one (all dropped); a frame with
/// an EXIF thumbnail (a JPEG with its own EOI inside). Each client gets exactly the good
/// frames, byte for byte; the server's own counters (its log line at end of input) agree.
#[test]
fn live_frames_from_a_pipe_survive_junk_splits_and_oversize_frames() {
    let still = Scratch::new("still");
    still.write("a.png", solid_png(1, 1, [1, 2, 3]));
    let mut server = Server::start_live(&[
        "--stream",
        // refresh=0: no heartbeat repeats between the frames counted here.
        "/cam=stdin,max_frame=16384,refresh=0",
        "--stream",
        &format!("/still=dir:{},loop=false", still.path().display()),
    ]);
    let addr = server.addr();

    // Before the first frame a snapshot waits for it (up to 10 s).
    let early = std::thread::spawn(move || fetch(addr, "GET", "/cam?action=snapshot"));

    let mut plain = open(addr, "/cam");
    let mut alias = open(addr, "/cam?action=stream");
    let mut early_headers = open(addr, "/cam?advance_headers=1&dual_final_frames=1").record();
    server.wait_viewers("/cam", 3);

    let good: Vec<Vec<u8>> = (1..=4).map(|id| frame(id, 3000 + 1000 * id as usize)).collect();
    let junk_before = b"not a JPEG \x00\xff\x00 at all\r\n".to_vec();
    let truncated = {
        // A frame cut where a marker is due, and the camera restarting with a new SOI.
        let whole = frame(99, 2000);
        whole[..whole.len() - (EXIF_JPEG.len() - 2)].to_vec()
    };
    let broken = b"\xff\xd8XYZ: no marker after SOI".to_vec();
    let oversize = frame(100, 20_000);
    let junk_after = b"trailing junk".to_vec();
    let mut clients = [&mut plain, &mut alias, &mut early_headers];
    let expect_frame = |clients: &mut [&mut PartReader<_>; 3], id: u32| {
        for client in clients.iter_mut() {
            let part = next_part(client);
            assert_eq!(frame_id(&part.body), id);
            assert_bytes(&part.body, &good[id as usize - 1], &format!("frame {id}"));
            assert_eq!(part.content_type, "image/jpeg");
        }
    };

    server.feed(&junk_before);
    server.feed(&good[0]);
    expect_frame(&mut clients, 1);
    let early = early.join().unwrap();
    assert_eq!(early.status, 200);
    assert_bytes(&early.body, &good[0], "the awaited snapshot");
    let snapshot = fetch(addr, "GET", "/cam?action=snapshot");
    assert_eq!(snapshot.status, 200);
    assert_eq!(snapshot.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(
        snapshot.header("Content-Length"),
        Some(&*good[0].len().to_string())
    );
    assert_bytes(&snapshot.body, &good[0], "snapshot");

    // Frame 2 in three writes, apart in time so the server reads it in pieces.
    let (a, rest) = good[1].split_at(7);
    let (b, c) = rest.split_at(rest.len() / 2);
    for piece in [a, b, c] {
        server.feed(piece);
        std::thread::sleep(Duration::from_millis(20));
    }
    expect_frame(&mut clients, 2);

    server.feed(&[&truncated[..], &good[2]].concat());
    expect_frame(&mut clients, 3);
    server.feed(&[&broken[..], &oversize, &good[3], &junk_after].concat());
    expect_frame(&mut clients, 4);
    let head = fetch(addr, "HEAD", "/cam?action=snapshot");
    assert_eq!(head.header("Content-Length"), Some(&*good[3].len().to_string()));
    assert!(head.body.is_empty());

    // End of input: the part left open is closed with the last frame (the picture stays;
    // strict clients such as ffmpeg get a typed part), then the closing delimiter; with
    // dual_final_frames the last frame comes once more first.
    server.end_input();
    for client in [&mut plain, &mut alias] {
        let last = next_part(client);
        assert_eq!((frame_id(&last.body), last.last, last.frame), (4, true, None));
        assert_bytes(&last.body, &good[3], "the last frame, closing");
        assert!(matches!(client.next().unwrap(), Item::End));
    }
    for closing in [false, true] {
        let again = next_part(&mut early_headers);
        assert_eq!(
            (frame_id(&again.body), again.last, again.stamp),
            (4, closing, None)
        );
    }
    assert!(matches!(early_headers.next().unwrap(), Item::End));

    // The server still serves its other streams.
    assert_eq!(read_whole(open(addr, "/still")).len(), 1);
    assert_eq!(server.stats().viewers("/cam"), 0);

    // The early header of every part after the first was just a content type.
    let raw = String::from_utf8_lossy(early_headers.raw()).into_owned();
    let boundary = early_headers.boundary();
    let early = format!("\r\n--{boundary}\r\nContent-Type: image/jpeg\r\n\r\n");
    assert_eq!(
        raw.matches(&early).count(),
        5,
        "frames 2, 3, 4, 4 again and 4 closing"
    );
    assert_eq!(raw.matches("Content-Length").count(), 1);

    let junk = junk_before.len() + truncated.len() + broken.len() + junk_after.len();
    let counted =
        format!("/cam: input ended: 5 frames in, 4 published, {junk} junk bytes, 1 oversize dropped");
    let log = server.log();
    assert!(log.contains(&counted), "want {counted:?} in the log:\n{log}");
}

#[test]
fn snapshots_and_aliases() {
    let dir = Scratch::new("snap");
    let red = solid_png(2, 2, [255, 0, 0]);
    dir.write("a.png", &red);
    dir.write("b.jpg", EXIF_JPEG);
    let scripts = Scratch::new("snap-scripts");
    scripts.write("img.png", &red);
    let mixed = scripts.write(
        "mixed.script",
        "part text/plain \"first, not an image\"\npart image/png @img.png\npart text/plain \"last\"\n",
    );
    let text = scripts.write("text.script", "part text/plain \"no image\"\n");
    let d = dir.path().display();
    let server = Server::start(&[
        "--stream",
        &format!("/dir=dir:{d},fps=2,loop=false"),
        "--stream",
        &format!("/mixed=script:{}", mixed.display()),
        "--stream",
        &format!("/text=script:{}", text.display()),
        "--stream",
        "/demo=demo",
        "--stream",
        "/syn=synthetic:parts=2,size=10,interval=0",
    ]);
    let addr = server.addr();

    // A scripted stream's snapshot is its first image part.
    for (path, content_type, body) in [
        ("/dir", "image/png", &red),
        ("/mixed", "image/png", &red),
        (
            "/demo",
            "image/png",
            &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/src/demo.png")).unwrap(),
        ),
    ] {
        let snapshot = fetch(addr, "GET", &format!("{path}?action=snapshot"));
        assert_eq!(snapshot.status, 200, "{path}");
        assert_eq!(snapshot.header("Content-Type"), Some(content_type), "{path}");
        assert_eq!(
            snapshot.header("Content-Length"),
            Some(&*body.len().to_string()),
            "{path}"
        );
        assert_bytes(&snapshot.body, body, path);
        let head = fetch(addr, "HEAD", &format!("{path}?action=snapshot"));
        assert_eq!(
            (head.status, head.headers.len(), head.body.len()),
            (200, snapshot.headers.len(), 0)
        );
    }
    // No image to show: 404. An unknown action: 400.
    for path in ["/text?action=snapshot", "/syn?action=snapshot"] {
        assert_eq!(fetch(addr, "GET", path).status, 404, "{path}");
    }
    for path in ["/dir?action=nonsense", "/dir?action=", "/demo?action=Snapshot"] {
        assert_eq!(fetch(addr, "GET", path).status, 400, "{path}");
    }

    // `action=stream` is the stream itself.
    let plain = read_whole(open(addr, "/mixed"));
    let alias = read_whole(open(addr, "/mixed?action=stream"));
    let strip = |parts: Vec<Part>| -> Vec<(String, (usize, u64), bool)> {
        parts
            .into_iter()
            .map(|p| (p.content_type, sum(&p.body), p.last))
            .collect()
    };
    let plain = strip(plain);
    assert_eq!(plain.len(), 3);
    assert_eq!(plain, strip(alias));

    // dual_final_frames: the last part twice, only the second one closing.
    let dual = read_whole(open(addr, "/dir?dual_final_frames=1&action=stream"));
    let got: Vec<_> = dual.iter().map(|p| (sum(&p.body), p.last)).collect();
    assert_eq!(
        got,
        [
            (sum(&red), false),
            (sum(EXIF_JPEG), false),
            (sum(EXIF_JPEG), true)
        ]
    );
    assert_eq!(gaps_ms(&dual), [500, 0]);

    // advance_headers: each part's header block goes out right after the previous part,
    // ahead of its time: its stamp (when it is due) is still in the future when it arrives.
    let mut ahead = open(addr, "/dir?advance_headers=1");
    let first = next_part(&mut ahead);
    assert_full_headers(&first);
    let second = next_part(&mut ahead);
    assert_full_headers(&second);
    assert_eq!(second.stamp_us() - first.stamp_us(), 500_000);
    let early_by = second.stamp_us() as i64 - second.head_at_us as i64;
    assert!(
        early_by > 250_000,
        "the header came only {early_by} µs before its part was due"
    );
    assert!(second.last);
    assert!(matches!(ahead.next().unwrap(), Item::End));
}

#[test]
fn the_view_page_shows_image_streams_and_links_the_others() {
    let dir = Scratch::new("view");
    dir.write("a.png", solid_png(1, 1, [0, 0, 0]));
    let images = dir.write(
        "images.script",
        "part image/png @a.png\nwait 1s\npart image/svg+xml \"<svg/>\"\n",
    );
    let mixed = dir.write("mixed.script", "part image/png @a.png\npart text/plain \"x\"\n");
    let d = dir.path().display();
    let server = Server::start_live(&[
        "--stream",
        "/cam=stdin",
        "--stream",
        &format!("/dir=dir:{d}"),
        "--stream",
        &format!("/a&b=dir:{d}"),
        "--stream",
        &format!("/pics=script:{}", images.display()),
        "--stream",
        &format!("/mixed=script:{}", mixed.display()),
        "--stream",
        "/=demo",
        "--stream",
        "/syn=synthetic:parts=1,size=1,interval=0",
    ]);
    let page = fetch(server.addr(), "GET", "/view");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    for path in ["/cam", "/dir", "/a&amp;b", "/pics"] {
        let img = format!("<img src=\"{path}\"");
        assert_eq!(html.matches(&img).count(), 1, "{path} in\n{html}");
    }
    assert_eq!(html.matches("<img ").count(), 4, "{html}");
    for path in ["/mixed", "/", "/syn"] {
        let link = format!("<li><a href=\"{path}\">{path}</a></li>");
        assert_eq!(html.matches(&link).count(), 1, "{path} in\n{html}");
    }
    assert!(!html.contains("a&b"), "unescaped path in\n{html}");
    let head = fetch(server.addr(), "HEAD", "/view");
    assert_eq!(head.header("Content-Length"), Some(&*html.len().to_string()));
    assert!(head.body.is_empty());
}
