//! Live inputs, plural: three live streams at once (a `pipe:` that ffmpeg writes into, an
//! `exec:` ffmpeg, and `stdin`), each viewer getting its own stream's frames; a FIFO's writer leaving mid-frame
//! and the next one coming, the viewer's connection surviving; `drop_same` and the
//! `refresh` heartbeat, counted in `/stats` and `/metrics`; a snapshot that waits for the
//! first frame; bad specs refused at start-up.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;

use crate::support::ffmpeg::ffmpeg_command;
use crate::support::http::fetch;
use crate::support::json::{self, Value};
use crate::support::media::{EXIF_JPEG, frame, frame_id, jpeg_size};
use crate::support::multipart::{Item, Part, PartReader, find, open};
use crate::support::process::Guard;
use crate::support::server::{Server, check_refused, run_binary};
use crate::support::tools::{TOOL_LIMIT, require_tool};
use crate::support::{IO_TIMEOUT, Scratch, wait_for};

fn next_part(reader: &mut PartReader<TcpStream>) -> Part {
    match reader.next() {
        Ok(Item::Part(part)) => part,
        other => panic!("expected a part, got {other:?}"),
    }
}

/// A baseline JPEG's (width, height), from its SOF0 segment.
/// The `/stats` entry of the input at `path`.
fn input(server: &Server, path: &str) -> Value {
    let stats = server.get("/stats");
    let text = String::from_utf8(stats.body).expect("UTF-8 stats");
    json::parse(&text).get("inputs").get(path).clone()
}

fn metrics(server: &Server) -> String {
    String::from_utf8(server.get("/metrics").body).expect("UTF-8 metrics")
}

/// Opens the FIFO for writing (the server holds its read end, so this does not block).
fn writer(fifo: &Path) -> std::fs::File {
    OpenOptions::new()
        .write(true)
        .open(fifo)
        .expect("open the FIFO for writing")
}

#[test]
fn three_cameras_a_pipe_a_command_and_stdin_each_viewer_gets_its_own_cameras_frames() {
    let Some(ffmpeg) = require_tool(&["ffmpeg"], "ffmpeg") else {
        return;
    };
    let scratch = Scratch::new("inputs-two");
    let fifo = scratch.fifo("cam0");
    // Camera three: a command the server runs, another size of the test pattern.
    let command = format!(
        "/c=exec:{} -hide_banner -loglevel error -re -f lavfi -i testsrc=size=160x120:rate=10 \
         -t 60 -f mjpeg -q:v 5 -",
        ffmpeg.display()
    );
    let mut server = Server::start_live(&[
        "--stream",
        &format!("/a=pipe:{}", fifo.display()),
        "--stream",
        "/b=stdin,refresh=0",
        "--stream",
        &command,
    ]);
    let addr = server.addr();
    let mut a = open(addr, "/a");
    let mut b = open(addr, "/b");
    let mut c = open(addr, "/c");
    server.wait_viewers("/a", 1);
    server.wait_viewers("/b", 1);
    server.wait_viewers("/c", 1);
    // Camera one: ffmpeg's test pattern, 320x240, in real time, into the FIFO.
    let mut producer = ffmpeg_command(&ffmpeg);
    producer.args([
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-t",
        "60",
    ]);
    producer.args(["-f", "mjpeg", "-q:v", "5", "-y"]).arg(&fifo);
    let mut producer = Guard::spawn(&mut producer, TOOL_LIMIT);
    // Camera two: numbered frames of another picture, from the test.
    let other = jpeg_size(EXIF_JPEG).expect("a baseline JPEG");
    assert_ne!(other, (320, 240));
    for id in 1..=3 {
        server.feed(&frame(id, 4000));
        let got = next_part(&mut b);
        assert_eq!((frame_id(&got.body), jpeg_size(&got.body)), (id, Some(other)));
        let got = next_part(&mut a);
        assert_eq!(jpeg_size(&got.body), Some((320, 240)));
        assert!(find(&got.body, b"mixreplace test frame").is_none());
        let got = next_part(&mut c);
        assert_eq!(jpeg_size(&got.body), Some((160, 120)));
    }
    let a_stats = input(&server, "/a");
    assert_eq!((a_stats.str("kind"), a_stats.str("state")), ("pipe", "running"));
    assert!(a_stats.int("published") >= 3, "{a_stats:?}");
    let b_stats = input(&server, "/b");
    assert_eq!((b_stats.str("kind"), b_stats.int("published")), ("stdin", 3));
    let c_stats = input(&server, "/c");
    assert_eq!((c_stats.str("kind"), c_stats.str("state")), ("exec", "running"));
    producer.signal(libc::SIGKILL);
    producer.wait_exit(IO_TIMEOUT).expect("ffmpeg killed");
}

#[test]
fn a_fifo_writer_that_leaves_mid_frame_costs_that_frame_and_the_next_writer_is_served() {
    let scratch = Scratch::new("inputs-writers");
    let fifo = scratch.fifo("cam");
    let server = Server::start(&["--stream", &format!("/cam=pipe:{},refresh=0", fifo.display())]);
    let mut viewer = open(server.addr(), "/cam");
    server.wait_viewers("/cam", 1);
    assert_eq!(input(&server, "/cam").str("state"), "waiting");

    let mut first = writer(&fifo);
    first.write_all(&frame(1, 3000)).unwrap();
    assert_eq!(frame_id(&next_part(&mut viewer).body), 1);
    // Frame 2 cut 100 bytes into its EXIF segment, whose length would swallow the next
    // writer's frame whole if the cut were not seen; then the writer leaves.
    let whole = frame(2, 3000);
    let exif = whole.len() - (EXIF_JPEG.len() - 2) + 2 + 16;
    assert_eq!(&whole[exif..exif + 2], b"\xff\xe1");
    let cut = &whole[..exif + 100];
    first.write_all(cut).unwrap();
    drop(first);
    wait_for("the writer's departure seen", IO_TIMEOUT, || {
        let cam = input(&server, "/cam");
        match (cam.str("state"), cam.int("junk_bytes")) {
            ("waiting", junk) if junk == cut.len() as u64 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // With no writer the FIFO stays hung up, which must not spin the loop.
    let turns = |text: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with("mixreplace_loop_turn_seconds_count"));
        line.and_then(|l| l.split(' ').nth(1)?.parse().ok())
            .expect("a turn count")
    };
    let before = turns(&metrics(&server));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let idle = turns(&metrics(&server)) - before;
    eprintln!("loop turns in 300 ms with no writer: {idle}");
    assert!(idle < 50, "{idle} turns: the hung-up FIFO spins the loop");

    let mut second = writer(&fifo);
    second.write_all(&frame(3, 3000)).unwrap();
    let got = next_part(&mut viewer);
    assert_eq!(
        frame_id(&got.body),
        3,
        "the same connection gets the next writer's frame"
    );
    let cam = input(&server, "/cam");
    assert_eq!(
        (cam.str("state"), cam.int("published"), cam.int("frames_in")),
        ("running", 2, 2)
    );
    drop(second);
    server.assert_settled();
}

#[test]
fn drop_same_and_the_heartbeat_are_counted_and_the_heartbeat_reaches_the_viewer() {
    let mut server = Server::start_live(&["--stream", "/cam=stdin,drop_same=2,refresh=0.2"]);
    let mut viewer = open(server.addr(), "/cam");
    server.wait_viewers("/cam", 1);
    let same = frame(7, 2500);
    for _ in 0..4 {
        server.feed(&same);
    }
    wait_for("four frames in", IO_TIMEOUT, || {
        match input(&server, "/cam").int("frames_in") {
            4 => Ok(()),
            n => Err(format!("{n} in")),
        }
    });
    let cam = input(&server, "/cam");
    // Frame 1 published, 2 and 3 dropped (two in a row at most), 4 published.
    assert_eq!((cam.int("published"), cam.int("dropped_same")), (2, 2), "{cam:?}");
    // No new frame now: the heartbeat sends the current one again, numbered on.
    let mut numbers = Vec::new();
    for _ in 0..4 {
        let part = next_part(&mut viewer);
        assert_eq!(part.body, same);
        numbers.push(part.frame_number());
    }
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    let repeated = input(&server, "/cam").int("repeated");
    assert!(repeated >= 2, "{repeated} heartbeats for 4 parts of 2 frames");
    let text = metrics(&server);
    for line in [
        "mixreplace_input_state{stream=\"/cam\",state=\"running\"} 1\n",
        "mixreplace_input_dropped_total{stream=\"/cam\",reason=\"same\"} 2\n",
        "mixreplace_input_frames_total{stream=\"/cam\"} 4\n",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    server.end_input();
    wait_for("the input stopped", IO_TIMEOUT, || {
        match input(&server, "/cam").str("state") {
            "stopped" => Ok(()),
            state => Err(state.to_owned()),
        }
    });
}

#[test]
fn a_snapshot_before_the_first_frame_waits_for_it() {
    let scratch = Scratch::new("inputs-snapshot");
    let fifo = scratch.fifo("cam");
    let server = Server::start(&["--stream", &format!("/cam=pipe:{}", fifo.display())]);
    let addr = server.addr();
    let early = std::thread::spawn(move || fetch(addr, "GET", "/cam?action=snapshot"));
    wait_for("the snapshot waiting", IO_TIMEOUT, || {
        match input(&server, "/cam").int("waiting_snapshots") {
            1 => Ok(()),
            n => Err(format!("{n} waiting")),
        }
    });
    let first = frame(5, 2000);
    writer(&fifo).write_all(&first).unwrap();
    let got = early.join().unwrap();
    assert_eq!((got.status, frame_id(&got.body)), (200, 5));
    assert_eq!(input(&server, "/cam").int("waiting_snapshots"), 0);
}

#[test]
fn bad_live_specs_are_refused_with_one_line_and_exit_2() {
    let scratch = Scratch::new("inputs-bad");
    let file = scratch.write("file.mjpeg", b"not a fifo");
    let missing = scratch.join("missing");
    let cases = [
        (
            format!("/a=pipe:{}", file.display()),
            vec!["pipe", "regular file"],
        ),
        (
            format!("/a=pipe:{}", missing.display()),
            vec!["does not exist", "mkfifo"],
        ),
        (format!("/a=pipe:{}", scratch.path().display()), vec!["a folder"]),
        ("/a=pipe".to_owned(), vec!["pipe: expected pipe:PATH"]),
        ("/a=stdin,refresh=-1".to_owned(), vec!["refresh must be seconds"]),
        (
            "/a=stdin,drop_same=many".to_owned(),
            vec!["drop_same must be a whole number"],
        ),
        ("/a=stdin,speed=2".to_owned(), vec!["unknown option 'speed'"]),
    ];
    for (spec, names) in cases {
        let done = run_binary(&["--listen", "127.0.0.1:0", "--stream", &spec], &[]);
        check_refused(&done, &spec, &names);
    }
}
