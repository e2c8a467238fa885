//! A client that stops reading a live stream: the server's memory stays bounded (nothing
//! is queued for it) and every other client still gets every frame. Its own test binary,
//! as resource tests are: it pushes 100 MiB through the server and reads its RSS.
//!
//! Everything is shown with numbers the test reads, not with timings: the frame numbers
//! each client receives, the server's peak resident set (`VmHWM` in `/proc/PID/status`)
//! and its `/stats` part count.

mod harness;

use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;

use harness::*;
use socket2::{Domain, Socket, Type};

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
    let mut server = Server::start_live(&["--stream", "/cam=stdin", "--send-timeout", "120"]);
    let addr = server.addr();

    // The stalled client: a tiny receive buffer, a request, and no reading until the end.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap();
    let mut stalled: TcpStream = socket.into();
    stalled.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stalled.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    send_request(&mut stalled, "GET", "/cam");

    // The normal client reads on its own thread and reports each frame it completes.
    let mut normal = Multipart::open(addr, "/cam");
    server.wait_viewers("/cam", 2);
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        while let Some(part) = normal.next_part() {
            if part.last && part.body.is_empty() {
                break;
            }
            let _ = tx.send((frame_id(&part.body), sum(&part.body)));
        }
        normal.expect_eof();
    });

    let idle_kb = server.proc_status_kb("VmRSS");
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
    let peak_kb = server.proc_status_kb("VmHWM");
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
    let stalled_parts = json_u64(&stats, "parts").unwrap() - u64::from(FRAMES);
    assert!((1..=MAX_IN_KERNEL).contains(&stalled_parts), "{stats}");
    assert_eq!(
        json_u64(&stats, "/cam"),
        Some(2),
        "both clients still watch: {stats}"
    );

    // The stalled client reads at last: the frames it had before it stalled, then the
    // newest one, never the frames in between.
    let mut stalled = Multipart::over(stalled);
    let ids: Vec<u32> = (0..=stalled_parts)
        .map(|_| frame_id(&stalled.next_part().unwrap().body))
        .collect();
    let mut want: Vec<u32> = (1..=stalled_parts as u32).collect();
    want.push(FRAMES);
    assert_eq!(ids, want, "the stalled client's frames");
    server.end_input();
    let end = stalled.next_part().unwrap();
    assert!(end.last && end.body.is_empty(), "{:?}", end.headers);
    stalled.expect_eof();
    reader
        .join()
        .expect("the normal client read a clean stream to its end");

    let stats = server.stats();
    assert_eq!(
        json_u64(&stats, "parts"),
        Some(u64::from(FRAMES) + stalled_parts + 1),
        "{stats}"
    );
    // Servers that count skipped live frames per stream say so too.
    if let Some(at) = stats.find("\"skipped_frames\":") {
        let skipped = u64::from(FRAMES) - stalled_parts - 1;
        assert_eq!(json_u64(&stats[at..], "/cam"), Some(skipped), "{stats}");
    }
}
