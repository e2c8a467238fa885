//! A client that stops reading a live stream: the server's memory stays bounded (nothing
//! is queued for it) and every other client still gets every frame. It pushes 100 MiB
//! through the server and reads the server's RSS (not this process's, so the tests
//! running beside it do not disturb the measure).
//!
//! Everything is shown with numbers the test reads, not with timings: the frame numbers
//! each client receives, the server's peak resident set (`VmHWM` in `/proc/PID/status`)
//! and its `/stats` part count.

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;

use socket2::{Domain, Socket, Type};

use crate::support::IO_TIMEOUT;
use crate::support::media::{frame, frame_id, sum};
use crate::support::multipart::{Item, open, over};
use crate::support::server::Server;

/// Frames fed through standard input, each this large: 100 MiB in all, far more than
/// the memory bound asserted below.
const FRAMES: u32 = 100;
const FRAME_SIZE: usize = 1 << 20;
/// What the server may hold beyond its idle size: the splitter's buffer, the current
/// frame, the frame still in flight to the stalled client, and allocator slack. Queueing
/// the frames the stalled client missed would need ~100 MiB.
const MEMORY_BOUND_KB: u64 = 16 * 1024;
/// Frames the kernel may take for the stalled client before its writes block: its
/// receive buffer is tiny, but the server's send buffer grows on its own (up to
/// `net.ipv4.tcp_wmem`'s 4 MiB by default).
const MAX_IN_KERNEL: u64 = 8;

#[test]
fn a_reader_that_stops_reading_holds_no_backlog_and_stalls_nobody() {
    // refresh=0: no heartbeat repeats between the lockstep frames.
    let mut server = Server::start_live(&["--stream", "/cam=stdin,refresh=0", "--send-timeout", "120"]);
    let addr = server.addr();

    // The stalled client: a tiny receive buffer, a request, and no reading until the end.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap();
    let mut stalled: TcpStream = socket.into();
    stalled.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stalled.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stalled
        .write_all(b"GET /cam HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();

    // The normal client reads on its own thread and reports each frame it completes.
    let mut normal = open(addr, "/cam");
    server.wait_viewers("/cam", 2);
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        // Bounded: the frames, then the end of the input: the last frame again, closing.
        for _ in 0..=FRAMES + 1 {
            match normal.next().expect("a clean stream") {
                Item::Part(part) if part.last => assert_eq!(frame_id(&part.body), FRAMES),
                Item::Part(part) => {
                    let _ = tx.send((frame_id(&part.body), sum(&part.body)));
                }
                Item::End => return,
                Item::Stopped(_) => panic!("a live stream with frames ended with an empty part"),
            }
        }
        panic!("more parts than frames fed");
    });

    let idle_kb = server.rss_kib();
    // Lockstep: frame n+1 is fed only once the normal client has all of frame n, so it
    // should miss none; the stalled client meanwhile misses them all.
    for id in 1..=FRAMES {
        let frame = frame(id, FRAME_SIZE);
        server.feed(&frame);
        let (got, got_sum) = rx
            .recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("frame {id} never reached the normal client: {e}"));
        assert_eq!(
            (got, got_sum),
            (id, sum(&frame)),
            "the normal client's frame {id}"
        );
    }
    let peak_kb = server.memory_kib("VmHWM");
    let stats = server.stats();
    let fed_mib = (FRAMES as usize * FRAME_SIZE) >> 20;
    eprintln!(
        "fed {fed_mib} MiB; server RSS {idle_kb} kB idle, peak {peak_kb} kB (+{} kB); stats {stats}",
        peak_kb - idle_kb
    );
    assert!(
        peak_kb < idle_kb + MEMORY_BOUND_KB,
        "the server's peak RSS grew by {} kB while {fed_mib} MiB went through it",
        peak_kb - idle_kb
    );
    // One part for each frame to the normal client, and a few to the stalled one: those
    // the kernel's socket buffers took before its writes blocked, the last of them still
    // in flight. Nothing was queued behind them.
    let stalled_parts = stats.get("parts") - u64::from(FRAMES);
    assert!((1..=MAX_IN_KERNEL).contains(&stalled_parts), "{stats}");
    assert_eq!(stats.viewers("/cam"), 2, "both clients still watch: {stats}");

    // The stalled client reads at last: the frames it had before it stalled, then the
    // newest one, never the frames in between.
    let (mut stalled, _) = over(stalled).expect("the stalled client's stream head");
    let mut ids = Vec::new();
    for _ in 0..=stalled_parts {
        match stalled.next().expect("a clean stream") {
            Item::Part(part) => ids.push(frame_id(&part.body)),
            other => panic!("the stalled client's stream ended early: {other:?}"),
        }
    }
    let mut want: Vec<u32> = (1..=stalled_parts as u32).collect();
    want.push(FRAMES);
    assert_eq!(ids, want, "the stalled client's frames");
    server.end_input();
    match stalled.next().unwrap() {
        Item::Part(part) => assert_eq!((frame_id(&part.body), part.last), (FRAMES, true)),
        other => panic!("not the last frame, closing: {other:?}"),
    }
    assert!(matches!(stalled.next().unwrap(), Item::End));
    reader
        .join()
        .expect("the normal client read a clean stream to its end");

    let stats = server.stats();
    assert_eq!(
        stats.get("parts"),
        u64::from(FRAMES) + stalled_parts + 1,
        "{stats}"
    );
    // The frames the stalled client missed are counted as skipped, per stream.
    let skipped = u64::from(FRAMES) - stalled_parts - 1;
    assert_eq!(stats.skipped("/cam"), skipped, "{stats}");
}
