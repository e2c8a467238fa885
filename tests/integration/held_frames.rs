//! Bounded memory whatever live viewers do (issue 9): viewers that stop reading at
//! different moments each pin the frame they were writing. One stalled viewer joins per
//! frame, so without a budget the server would hold one old frame per viewer; with
//! `--held-frames-budget` it closes the viewers holding the oldest frames (`held_frames`
//! in `/stats`) and its resident memory stays within the budget over its size before.
//!
//! The same run with a budget far above what the viewers can pin shows the growth the
//! budget prevents; both are printed. Memory is the server's `VmRSS` from `/proc`, not
//! this process's, so the tests running beside it do not disturb the measure.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use socket2::{Domain, Socket, Type};

use crate::support::IO_TIMEOUT;
use crate::support::media::frame;
use crate::support::multipart::{Item, PartReader, open};
use crate::support::server::Server;

/// Frames of this size, one stalled viewer joining after each: 40 MiB pinned without a
/// budget.
const FRAME_SIZE: usize = 256 * 1024;
const VIEWERS: u32 = 160;
const BUDGET: usize = 4 << 20;
/// What the server may hold beyond its size before and the budget: the current frame,
/// the splitter's buffer, frames in flight to the stalled viewers that are not old yet,
/// and the allocator's slack.
const SLACK_KIB: u64 = 12 * 1024;

#[test]
fn stalled_viewers_joining_one_per_frame_hold_no_more_than_the_budget() {
    let _alone = crate::support::heavy();
    let bounded = pin_frames(BUDGET);
    let unbounded = pin_frames(1 << 30);
    eprintln!(
        "{VIEWERS} stalled viewers of {} KiB frames: with a {} MiB budget the server grew {} KiB and closed {} of them (held_frames); with 1 GiB it grew {} KiB and closed {}",
        FRAME_SIZE / 1024,
        BUDGET >> 20,
        bounded.grew_kib,
        bounded.closed,
        unbounded.grew_kib,
        unbounded.closed
    );
    assert!(
        bounded.grew_kib <= (BUDGET / 1024) as u64 + SLACK_KIB,
        "{bounded:?}"
    );
    assert!(bounded.closed >= u64::from(VIEWERS) / 2, "{bounded:?}");
    assert_eq!(unbounded.closed, 0, "{unbounded:?}");
    // What the budget saved: the same viewers pin several times as much without it.
    assert!(
        unbounded.grew_kib >= 2 * bounded.grew_kib,
        "{unbounded:?} {bounded:?}"
    );
}

#[derive(Debug)]
struct Pinned {
    /// The server's resident memory, after the viewers, over its size before them.
    grew_kib: u64,
    /// Viewers closed for holding old frames over the budget.
    closed: u64,
}

/// A live server with `budget`, fed [`VIEWERS`] frames, a stalled viewer joining after
/// each; a reading viewer watches throughout and must get the last frame.
fn pin_frames(budget: usize) -> Pinned {
    let budget_arg = budget.to_string();
    let mut server = Server::start_live(&[
        "--stream",
        // refresh=0: the frames held are the frames fed, with no heartbeat between.
        "/cam=stdin,refresh=0",
        "--held-frames-budget",
        &budget_arg,
        "--send-timeout",
        "120",
    ]);
    let addr = server.addr();
    let mut reader = open(addr, "/cam");
    server.wait_viewers("/cam", 1);
    server.feed(&frame(0, FRAME_SIZE));
    expect_frame(&mut reader, 0);
    let before_kib = server.rss_kib();

    let mut stalled = Vec::new();
    for id in 1..=VIEWERS {
        server.feed(&frame(id, FRAME_SIZE));
        // The reader has it whole, so the server has published it.
        expect_frame(&mut reader, u64::from(id));
        stalled.push(stall(addr));
        // The new viewer is served (and stuck writing frame `id`) before the next frame.
        // (Viewers are closed only as a frame is published, never meanwhile.)
        let closed = server.stats().closed("held_frames");
        server.wait_viewers("/cam", 1 + stalled.len() as u64 - closed);
    }
    let grew_kib = server.rss_kib().saturating_sub(before_kib);
    let closed = server.stats().closed("held_frames");
    server.end_input();
    drop(stalled);
    Pinned { grew_kib, closed }
}

/// The next part of `reader` is live frame `number`.
fn expect_frame(reader: &mut PartReader<TcpStream>, number: u64) {
    match reader.next().expect("a clean stream") {
        Item::Part(part) => assert_eq!(part.frame, Some(number)),
        other => panic!("frame {number}: {other:?}"),
    }
}

/// A viewer that asks for the stream and never reads: a tiny receive buffer, so the
/// server's write of its first frame blocks at once.
fn stall(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /cam HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    stream
}
