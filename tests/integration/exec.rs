//! `exec:` inputs against the real binary, with ffmpeg as the producer: frames reach
//! viewers; the producer's standard error is logged with the stream's path; `on_demand`
//! runs it only while someone watches (or a snapshot waits); `restart` survives a
//! `kill -9` with the viewers' connections open; a command that fails at once is tried
//! again with growing delays, once per attempt; and no way out of the server leaves a
//! zombie or an orphan (checked in the process table: the server's descendants, and the
//! producer's process group).
//!
//! Times are never asserted tight: a bound that a correct server cannot miss (the
//! producer cannot be gone before `idle`), and generous limits as hang guards.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::http::fetch;
use crate::support::media::jpeg_size;
use crate::support::multipart::{Item, Part, PartReader, open};
use crate::support::procs::{self, Proc};
use crate::support::server::Server;
use crate::support::tools::require_tool;
use crate::support::{IO_TIMEOUT, wait_for};

/// Long enough for a busy machine to start ffmpeg and its first frame.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// ffmpeg writing 10 fps of 320x240 MJPEG to its standard output, in real time.
fn producer(ffmpeg: &Path) -> String {
    format!(
        "{} -hide_banner -nostdin -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=10 -f mjpeg -",
        ffmpeg.display()
    )
}

/// The server's children running `marker` (zombies left out: they have no command line).
fn producers(server: &Server, marker: &str) -> Vec<Proc> {
    procs::descendants(server.pid())
        .into_iter()
        .filter(|p| p.cmdline.contains(marker))
        .collect()
}

/// Waits for exactly one producer running `marker`, and returns it.
fn one_producer(server: &Server, marker: &str) -> Proc {
    wait_for("one producer", START_TIMEOUT, || {
        match &producers(server, marker)[..] {
            [one] => Ok(one.clone()),
            many => Err(format!("{many:?}")),
        }
    })
}

/// Waits until no process is left in group `pgid` and no descendant of the server runs
/// `marker` (a killed group member is reaped by init shortly after).
fn wait_gone(server_pid: u32, pgid: u32, marker: &str, within: Duration) {
    wait_for("the producer's group gone", within, || {
        let left: Vec<Proc> = procs::in_group(pgid)
            .into_iter()
            .chain(
                procs::descendants(server_pid)
                    .into_iter()
                    .filter(|p| p.cmdline.contains(marker)),
            )
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}

/// The next part, which must be a JPEG frame of 320x240.
fn next_frame(stream: &mut PartReader<std::net::TcpStream>) -> Part {
    match stream.next().expect("a well-framed part") {
        Item::Part(part) => {
            assert_eq!(part.content_type, "image/jpeg");
            assert_eq!(
                jpeg_size(&part.body),
                Some((320, 240)),
                "{} bytes",
                part.body.len()
            );
            part
        }
        other => panic!("the stream ended: {other:?}"),
    }
}

/// A server with `/cam=exec{options}:` the ffmpeg producer, a viewer that got its first
/// frame, and the producer's process; `None` (skipped) without ffmpeg.
fn watched(options: &str) -> Option<(Server, PartReader<TcpStream>, Proc)> {
    let ffmpeg = require_tool(&["ffmpeg"], "ffmpeg")?;
    let spec = format!("/cam=exec{options}:{}", producer(&ffmpeg));
    let server = Server::start(&["--stream", &spec]);
    let mut viewer = open(server.addr(), "/cam");
    next_frame(&mut viewer);
    let running = one_producer(&server, "testsrc");
    Some((server, viewer, running))
}

/// SIGTERM: a graceful stop, exit code 0.
fn stop_gracefully(server: &mut Server) {
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits");
    assert_eq!(status.code(), Some(0), "{}", server.log());
}

/// Waits until `/stats` says the input at `path` is in `state`.
fn wait_state(server: &Server, path: &str, state: &str) {
    wait_for(&format!("{path} {state}"), START_TIMEOUT, || {
        match server.stats().input(path).str("state") {
            s if s == state => Ok(()),
            s => Err(s.to_owned()),
        }
    });
}

fn wait_log(server: &Server, what: &str, within: Duration) {
    wait_for(&format!("{what:?} in the log"), within, || {
        let log = server.log();
        if log.contains(what) { Ok(()) } else { Err(log) }
    });
}

#[test]
fn frames_reach_viewers_and_stderr_is_logged_with_the_path() {
    let Some(ffmpeg) = require_tool(&["ffmpeg"], "ffmpeg") else {
        return;
    };
    let cam = format!("/cam=exec:{}", producer(&ffmpeg));
    // The shell prints to standard error, then runs the producer in its place.
    let noisy = format!(
        "/noisy=exec,shell:echo \"hello from $MIXREPLACE_STREAM\" >&2; exec {}",
        producer(&ffmpeg)
    );
    let mut server = Server::start(&["--stream", &cam, "--stream", &noisy]);
    let addr = server.addr();
    let mut viewers = [open(addr, "/cam"), open(addr, "/cam"), open(addr, "/noisy")];
    for viewer in &mut viewers {
        let first = next_frame(viewer);
        let later = (0..5).map(|_| next_frame(viewer)).last().unwrap();
        assert!(later.frame_number() > first.frame_number());
    }
    wait_log(&server, "/noisy: hello from /noisy", START_TIMEOUT);
    // Two ffmpegs, each a child of the server (the shell made way for its ffmpeg).
    assert_eq!(producers(&server, "testsrc").len(), 2);
    drop(viewers);
    stop_and_check(&mut server, "testsrc");
}

/// SIGTERM: the server ends its commands and exits 0, leaving nothing behind.
fn stop_and_check(server: &mut Server, marker: &str) {
    let running: Vec<Proc> = producers(server, marker);
    assert!(!running.is_empty());
    stop_gracefully(server);
    for p in running {
        wait_gone(server.pid(), p.pgid, marker, Duration::from_secs(10));
    }
}

#[test]
fn on_demand_runs_only_while_someone_watches() {
    let Some(ffmpeg) = require_tool(&["ffmpeg"], "ffmpeg") else {
        return;
    };
    const IDLE: Duration = Duration::from_secs(2);
    let spec = format!("/cam=exec,on_demand,idle=2:{}", producer(&ffmpeg));
    let mut server = Server::start(&["--stream", &spec]);
    let addr = server.addr();
    let marker = "testsrc";
    // An always-on command would have been started before the server said it listens.
    assert!(
        producers(&server, marker).is_empty(),
        "started with nobody watching"
    );
    assert_eq!(server.stats().input("/cam").str("state"), "waiting");

    // The first viewer starts it; a second shares it.
    let mut first = open(addr, "/cam");
    next_frame(&mut first);
    let running = one_producer(&server, marker);
    let mut second = open(addr, "/cam");
    next_frame(&mut second);
    assert_eq!(one_producer(&server, marker).pid, running.pid);
    assert_eq!(server.stats().input("/cam").str("state"), "running");

    // The last leaves: it runs on for `idle`, then goes.
    drop(first);
    next_frame(&mut second);
    drop(second);
    let left = Instant::now();
    wait_gone(server.pid(), running.pgid, marker, Duration::from_secs(30));
    let took = left.elapsed();
    println!("on_demand: the producer went {took:?} after the last viewer left (idle {IDLE:?})");
    assert!(took >= IDLE, "gone after {took:?}, before the idle delay");
    wait_state(&server, "/cam", "waiting");

    // A snapshot starts it too: it waits for a fresh frame, not the one left from before.
    let snapshot = fetch(addr, "GET", "/cam?action=snapshot");
    assert_eq!(snapshot.status, 200, "{snapshot:?}");
    assert_eq!(jpeg_size(&snapshot.body), Some((320, 240)));
    let again = one_producer(&server, marker);
    assert_ne!(again.pid, running.pid);
    wait_gone(server.pid(), again.pgid, marker, Duration::from_secs(30));
    let input = server.stats().input("/cam").clone();
    assert_eq!((input.str("state"), input.int("restarts")), ("waiting", 0));
    stop_gracefully(&mut server);
}

#[test]
fn restart_brings_frames_back_after_a_kill_9_on_the_same_connection() {
    let Some((mut server, mut viewer, killed)) = watched(",restart") else {
        return;
    };
    // SAFETY: kill(2) with integers; the pid is the server's child, alive (just read).
    assert_eq!(unsafe { libc::kill(killed.pid as libc::pid_t, libc::SIGKILL) }, 0);
    wait_log(&server, "starting it again in 1.0 s", START_TIMEOUT);
    // The same connection gets frames again, from a new process.
    wait_for("frames from a new producer", START_TIMEOUT, || {
        next_frame(&mut viewer);
        match producers(&server, "testsrc").first() {
            Some(p) if p.pid != killed.pid => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    for _ in 0..3 {
        next_frame(&mut viewer);
    }
    let log = server.log();
    assert_eq!(log.matches("/cam: started `").count(), 2, "{log}");
    let input = server.stats().input("/cam").clone();
    assert_eq!((input.str("state"), input.int("restarts")), ("running", 1));
    let zombie = procs::read(killed.pid).filter(|p| p.ppid == server.pid());
    assert_eq!(zombie, None, "the killed producer was not reaped");
    drop(viewer);
    stop_and_check(&mut server, "testsrc");
}

#[test]
fn a_command_that_fails_at_once_is_retried_with_growing_delays() {
    let mut server = Server::start(&[
        "--stream",
        "/fails=exec,restart,shell:echo attempt >&2; exit 3",
        "--stream",
        "/missing=exec:/nonexistent/mixreplace-camera -o -",
    ]);
    // 1 + 2 + 4 s of backoff: the fourth start comes about 7 s after the first.
    wait_log(&server, "starting it again in 8.0 s", Duration::from_secs(60));
    wait_log(
        &server,
        "(attempt 4); trying again in 8.0 s",
        Duration::from_secs(60),
    );
    let log = server.log();
    let exits: Vec<&str> = log.lines().filter(|l| l.contains("/fails: `echo")).collect();
    let delays: Vec<&str> = exits
        .iter()
        .filter_map(|l| l.split("starting it again in ").nth(1))
        .collect();
    assert_eq!(delays[..4], ["1.0 s", "2.0 s", "4.0 s", "8.0 s"], "{log}");
    // Logged once per attempt: as many `attempt` lines from the command as exits.
    let attempts = log.lines().filter(|l| l.ends_with("/fails: attempt")).count();
    assert!(attempts == exits.len() || attempts == exits.len() + 1, "{log}");
    let missing: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("/missing: cannot start"))
        .collect();
    assert!(missing[0].contains("(attempt 1); trying again in 1.0 s"), "{log}");
    assert!(missing[1].contains("(attempt 2); trying again in 2.0 s"), "{log}");
    let stats = server.stats();
    assert_eq!(stats.input("/missing").str("state"), "restarting");
    assert!(stats.input("/fails").int("restarts") >= 3, "{stats}");
    // Never fatal: the server still answers.
    assert_eq!(fetch(server.addr(), "GET", "/nope").status, 404);
    stop_gracefully(&mut server);
}

/// A server whose `/s` command ignores SIGTERM and leaves a second process (ignoring it
/// too) in its group; `name` makes its command line unique. Returns it once both
/// processes run, with the marker and the group.
fn stubborn_server(name: &str) -> (Server, String, u32) {
    let marker = format!("stubborn-{name}-{}", std::process::id());
    let spec = format!(
        "/s=exec,kill_timeout=1,shell:trap '' TERM; sleep 300 >/dev/null 2>&1 & while :; do sleep 1; done # {marker}"
    );
    let server = Server::start(&["--stream", &spec]);
    let shell = one_producer(&server, &marker);
    assert_eq!(shell.pgid, shell.pid, "the command leads a group of its own");
    wait_for("the sleeper in the group", START_TIMEOUT, || {
        let group = procs::in_group(shell.pgid);
        if group.iter().any(|p| p.cmdline == "sleep 300") {
            Ok(())
        } else {
            Err(format!("{group:?}"))
        }
    });
    (server, marker, shell.pgid)
}

#[test]
fn a_graceful_stop_ends_a_stubborn_command_and_all_its_group() {
    let (mut server, marker, group) = stubborn_server("graceful");
    stop_gracefully(&mut server);
    // SIGTERM was ignored: SIGKILL after the kill timeout took the whole group.
    wait_gone(server.pid(), group, &marker, Duration::from_secs(10));
}

#[test]
fn a_second_signal_ends_the_commands_too() {
    let (mut server, marker, group) = stubborn_server("forced");
    // A viewer that never reads nor leaves holds the graceful stop up.
    let mut viewer = TcpStream::connect(server.addr()).unwrap();
    viewer.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    viewer
        .write_all(b"GET /s HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    server.wait_viewers("/s", 1);
    server.signal(libc::SIGTERM);
    // Two signals close together can merge into one: let the first be taken.
    wait_log(&server, "stopping gracefully", START_TIMEOUT);
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{}", server.log());
    wait_gone(server.pid(), group, &marker, Duration::from_secs(10));
    drop(viewer);
}

#[test]
fn a_server_killed_outright_takes_its_command_along() {
    let Some((mut server, _viewer, producer)) = watched("") else {
        return;
    };
    // No code of the server runs: the kernel's parent-death signal does it.
    server.signal(libc::SIGKILL);
    server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits");
    wait_for(
        "the producer gone",
        Duration::from_secs(10),
        || match procs::read(producer.pid) {
            Some(p) if p.pgid == producer.pgid => Err(format!("{p:?}")),
            _ => Ok(()),
        },
    );
}

/// Embedded, the commands are the test process's own children: stopping the server, or
/// dropping its handle, leaves neither a process nor a zombie.
#[test]
fn the_library_stop_and_drop_end_and_reap_the_commands() {
    for stop in [true, false] {
        let marker = format!("mixreplace-embed-{}-{stop}", std::process::id());
        let spec = format!("exec:/bin/sh -c 'sleep 300' {marker}");
        let server = mixreplace::Builder::new()
            .listen(([127, 0, 0, 1], 0))
            .stream("/e", &spec)
            .spawn()
            .expect("the server starts");
        let child = wait_for("the command", START_TIMEOUT, || {
            match procs::descendants(std::process::id())
                .into_iter()
                .find(|p| p.cmdline.contains(&marker))
            {
                Some(p) => Ok(p),
                None => Err("not yet".to_string()),
            }
        });
        assert!(!child.is_zombie());
        if stop {
            server.stop().expect("a clean stop");
        } else {
            drop(server);
        }
        // Reaped before the stop returned: no zombie, not even for a moment.
        let left = procs::read(child.pid).filter(|p| p.ppid == std::process::id());
        assert_eq!(left, None, "stop {stop}");
    }
}
