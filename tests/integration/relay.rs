//! `relay:` inputs over real sockets: upstreams with each quirk real servers have (a
//! quoted boundary, a `--`-prefixed boundary parameter, no first delimiter, parts without
//! `Content-Length`, a chunked body, no Content-Type and bare-LF lines), each served by a
//! small canned server in the test; and a relay chain, origin → edge → 500 viewers, where
//! every viewer gets frames byte-identical to the origin's and the edge reconnects after
//! the origin restarts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::http::reset;
use crate::support::media::{frame, frame_id};
use crate::support::multipart::{Item, Part, PartReader, open};
use crate::support::server::Server;
use crate::support::{IO_TIMEOUT, wait_for};

fn next_part(reader: &mut PartReader<TcpStream>) -> Part {
    match reader.next() {
        Ok(Item::Part(part)) => part,
        other => panic!("expected a part, got {other:?}"),
    }
}

/// How a canned upstream frames its answer.
#[derive(Clone, Copy, Debug)]
enum Quirk {
    /// `boundary="…"`, parts with lengths, HTTP/1.0, close-delimited.
    Quoted,
    /// `boundary=--frame`, and delimiter lines `--frame`.
    DashedParameter,
    /// The body starts with the first part's headers.
    NoFirstDelimiter,
    /// No part has a `Content-Length`: the delimiter ends each.
    NoLength,
    /// `Transfer-Encoding: chunked`, a chunk cut inside every part.
    Chunked,
    /// No Content-Type at all, and lines ending in LF alone.
    NoContentTypeLfOnly,
}

/// The answer's head and the bytes of each part (its delimiter before it, as the quirk
/// has it), and what follows the last part so that it is complete.
fn canned(quirk: Quirk, frames: &[Vec<u8>]) -> (String, Vec<Vec<u8>>, Vec<u8>) {
    let (content_type, delimiter, eol) = match quirk {
        Quirk::Quoted => (
            "multipart/x-mixed-replace; boundary=\"my frame\"",
            "--my frame",
            "\r\n",
        ),
        Quirk::DashedParameter => ("multipart/x-mixed-replace;boundary=--frame", "--frame", "\r\n"),
        Quirk::NoContentTypeLfOnly => ("", "--frame", "\n"),
        _ => ("multipart/x-mixed-replace;boundary=frame", "--frame", "\r\n"),
    };
    let with_length = !matches!(quirk, Quirk::NoLength | Quirk::NoContentTypeLfOnly);
    let parts = frames
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut part = Vec::new();
            if i > 0 || !matches!(quirk, Quirk::NoFirstDelimiter) {
                part.extend_from_slice(format!("{delimiter}{eol}").as_bytes());
            }
            part.extend_from_slice(format!("content-type: image/jpeg{eol}").as_bytes());
            if with_length {
                part.extend_from_slice(format!("Content-Length: {}{eol}", body.len()).as_bytes());
            }
            part.extend_from_slice(eol.as_bytes());
            part.extend_from_slice(body);
            part.extend_from_slice(eol.as_bytes());
            part
        })
        .collect();
    let (version, framing) = match quirk {
        Quirk::Quoted => ("HTTP/1.0", ""),
        Quirk::Chunked => ("HTTP/1.1", "Transfer-Encoding: chunked\r\n"),
        _ => ("HTTP/1.1", ""),
    };
    let content_type = match content_type {
        "" => String::new(),
        value => format!("Content-Type: {value}\r\n"),
    };
    let head = format!("{version} 200 OK\r\n{content_type}{framing}Connection: close\r\n\r\n");
    // Without lengths a part ends at the next delimiter: send one more.
    let tail = format!("{delimiter}{eol}").into_bytes();
    (head, parts, tail)
}

fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // Two chunks per piece: a chunk boundary falls inside every part.
    for piece in bytes.chunks(bytes.len() / 2 + 1) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A canned upstream: accepts one connection, returns the request it read, writes the
/// head and the parts 150 ms apart, then holds the connection until the relay closes it
/// (bounded by the I/O timeout).
fn canned_upstream(quirk: Quirk, frames: Vec<Vec<u8>>) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a canned upstream");
    let addr = listener.local_addr().expect("its address");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let handle = thread::spawn(move || {
        let (mut socket, request) = accept_relay(&listener);
        let (head, parts, tail) = canned(quirk, &frames);
        let chunked = matches!(quirk, Quirk::Chunked);
        let body = |bytes: &[u8]| if chunked { chunk(bytes) } else { bytes.to_vec() };
        socket.write_all(head.as_bytes()).expect("write the head");
        for part in parts {
            socket.write_all(&body(&part)).expect("write a part");
            thread::sleep(Duration::from_millis(150));
        }
        socket.write_all(&body(&tail)).expect("write the tail");
        // Hold the connection until the relay goes (a read of 0 or an error).
        let _ = socket.read(&mut [0; 64]);
        request
    });
    (addr, handle)
}

#[test]
fn upstreams_with_each_quirk_are_relayed_frame_for_frame() {
    let quirks = [
        Quirk::Quoted,
        Quirk::DashedParameter,
        Quirk::NoFirstDelimiter,
        Quirk::NoLength,
        Quirk::Chunked,
        Quirk::NoContentTypeLfOnly,
    ];
    for quirk in quirks {
        let frames: Vec<Vec<u8>> = (1..=4).map(|id| frame(id, 3000 + id as usize * 1000)).collect();
        let (upstream, request) = canned_upstream(quirk, frames.clone());
        // On demand: the relay connects when the viewer comes, so it sees every frame.
        let spec =
            format!("/edge=relay:http://cam:secret@{upstream}/stream?action=stream,on_demand=1,refresh=0");
        let server = Server::start(&["--stream", &spec]);
        let mut viewer = open(server.addr(), "/edge");
        let mut got = Vec::new();
        while got.len() < frames.len() {
            let part = next_part(&mut viewer);
            assert_eq!(part.content_type, "image/jpeg", "{quirk:?}");
            got.push(part.body);
        }
        assert_eq!(got, frames, "{quirk:?}: every frame, byte for byte, in order");
        drop(viewer);
        drop(server);
        let request = request.join().expect("the canned upstream");
        assert!(
            request.starts_with("GET /stream?action=stream HTTP/1.1\r\n"),
            "{request}"
        );
        // base64("cam:secret")
        assert!(
            request.contains("\r\nAuthorization: Basic Y2FtOnNlY3JldA==\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!("\r\nHost: {upstream}\r\n")),
            "{request}"
        );
    }
}

/// A loopback port free now (bound, then let go) for a server that must come back on it.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    listener.local_addr().expect("its address").port()
}

fn start_origin(port: u16) -> Server {
    let listen = format!("127.0.0.1:{port}");
    Server::start_live(&["--listen", &listen, "--stream", "/cam=stdin,refresh=0"])
}

/// Reads parts until frame `id` comes; returns the bodies read.
fn read_until(viewer: &mut PartReader<TcpStream>, id: u32) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    loop {
        let part = next_part(viewer);
        let got = frame_id(&part.body);
        bodies.push(part.body);
        if got == id {
            return bodies;
        }
        assert!(got < id, "frame {got} after waiting for {id}");
    }
}

#[test]
fn a_relay_chain_gives_500_viewers_the_origins_frames_and_survives_an_origin_restart() {
    let _alone = crate::support::heavy();
    const VIEWERS: usize = 500;
    let port = free_port();
    let mut origin = start_origin(port);
    let spec = format!("/edge=relay:http://127.0.0.1:{port}/cam,refresh=0");
    let edge = Server::start(&["--stream", &spec]);
    origin.wait_viewers("/cam", 1);
    let mut viewers: Vec<_> = (0..VIEWERS).map(|_| open(edge.addr(), "/edge")).collect();
    edge.wait_viewers("/edge", VIEWERS as u64);
    let sent: Vec<Vec<u8>> = (1..=5).map(|id| frame(id, 20_000 + id as usize * 7)).collect();
    for body in &sent {
        origin.feed(body);
        thread::sleep(Duration::from_millis(200));
    }
    for viewer in &mut viewers {
        for body in read_until(viewer, 5) {
            let id = frame_id(&body) as usize;
            assert!(body == sent[id - 1], "frame {id} differs from the origin's");
        }
    }
    // The origin goes and comes back on the same port: the edge reconnects (1 s, 2 s…)
    // and the same viewers, still connected, get the new origin's frames.
    drop(origin);
    let origin = start_origin(port);
    wait_for("the edge to reconnect", IO_TIMEOUT * 3, || {
        match origin.stats().viewers("/cam") {
            1 => Ok(()),
            n => Err(format!("{n} viewers at the origin")),
        }
    });
    let mut origin = origin;
    let again = frame(6, 30_000);
    origin.feed(&again);
    for viewer in &mut viewers {
        let bodies = read_until(viewer, 6);
        assert!(bodies.last() == Some(&again), "frame 6 differs from the origin's");
    }
    let edge_stats = edge.get("/stats");
    let text = String::from_utf8_lossy(&edge_stats.body);
    assert!(text.contains("\"kind\":\"relay\""), "{text}");
    assert!(edge.log().contains("next attempt in"), "{}", edge.log());
}

/// Accepts a relay's connection on the non-blocking `listener` (a bounded wait); returns
/// it and the request head it read.
fn accept_relay(listener: &TcpListener) -> (TcpStream, String) {
    let started = Instant::now();
    let mut socket = loop {
        match listener.accept() {
            Ok((socket, _)) => break socket,
            Err(_) if started.elapsed() < IO_TIMEOUT * 3 => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("no relay connection: {e}"),
        }
    };
    socket.set_nonblocking(false).expect("blocking socket");
    socket.set_read_timeout(Some(IO_TIMEOUT)).expect("a read timeout");
    let mut request = Vec::new();
    let mut byte = [0; 1];
    while !request.ends_with(b"\r\n\r\n") && request.len() < 8192 {
        socket.read_exact(&mut byte).expect("the relay's request");
        request.push(byte[0]);
    }
    (socket, String::from_utf8_lossy(&request).into_owned())
}

#[test]
fn a_stalled_upstream_is_dropped_after_the_timeout_and_reconnected() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an upstream");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let upstream = listener.local_addr().expect("its address");
    let spec = format!("/edge=relay:http://{upstream}/,timeout=1,refresh=0");
    let server = Server::start(&["--stream", &spec]);
    let mut viewer = open(server.addr(), "/edge");
    server.wait_viewers("/edge", 1);
    let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\r\n";
    let part = |id: u32| {
        let body = frame(id, 2000);
        [
            format!("--b\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(),
            body,
            b"\r\n".to_vec(),
        ]
        .concat()
    };
    // The first connection: one frame, then silence, the socket held open.
    let (mut first, _) = accept_relay(&listener);
    first
        .write_all(&[head.as_bytes(), &part(1)].concat())
        .expect("write");
    assert_eq!(frame_id(&next_part(&mut viewer).body), 1);
    // After the 1 s timeout the relay hangs up (our read sees its FIN) and comes back.
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).expect("the relay's close");
    let (mut second, _) = accept_relay(&listener);
    second
        .write_all(&[head.as_bytes(), &part(2)].concat())
        .expect("write");
    assert_eq!(frame_id(&next_part(&mut viewer).body), 2, "the viewer stayed");
    assert!(server.log().contains("nothing came for 1 s"), "{}", server.log());
}

#[test]
fn on_demand_connects_at_the_first_viewer_and_hangs_up_idle_seconds_after_the_last() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an upstream");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let upstream = listener.local_addr().expect("its address");
    let spec = format!("/edge=relay:http://{upstream}/,on_demand,idle=1,refresh=0");
    let server = Server::start(&["--stream", &spec]);
    // Nobody watches: no connection.
    thread::sleep(Duration::from_millis(500));
    assert!(listener.accept().is_err(), "connected with no viewer");
    let mut viewer = open(server.addr(), "/edge");
    let (mut socket, _) = accept_relay(&listener);
    let body = frame(1, 2000);
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\r\n--b\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket
        .write_all(&[answer.as_bytes(), &body, b"\r\n"].concat())
        .expect("write");
    assert_eq!(frame_id(&next_part(&mut viewer).body), 1);
    // The viewer leaves (a reset: a FIN alone could be a half-close, and with no frame to
    // write the server would keep it up to the send timeout); the relay hangs up `idle`
    // (1 s) later, the server still running.
    reset(viewer.into_inner());
    let left = Instant::now();
    let mut rest = Vec::new();
    socket.read_to_end(&mut rest).expect("the relay's close");
    assert!(
        left.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        left.elapsed()
    );
    assert!(
        server.log().contains("nobody watching; closing the relay"),
        "{}",
        server.log()
    );
    assert!(listener.accept().is_err(), "reconnected with no viewer");
}
