//! One connection driven in memory by a script the fuzzer writes: the client's bytes in
//! arbitrary chunks (canned requests, valid and not, cut anywhere, or raw bytes), its
//! FIN or reset, readable and writable events, a send buffer that fills and drains,
//! time passing and timers, a stop, live frames, extra turns, publishers' bodies
//! (`/push`); with an access log always (to `/dev/null`), and for half the setups behind
//! a trusted proxy that must send a PROXY header first (canned v1 and v2 headers among
//! the requests). Checks: nothing panics (the connection's own `debug_assert!`s
//! included, and the in-memory socket panics on a write after the server shut its side
//! down), what is written is an HTTP response, and once the client has sent its FIN and
//! reads everything, the connection always ends closed or still streaming.
#![no_main]

use std::io;
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use mixreplace::routes::access::Access;
use mixreplace::routes::proxies::Proxies;
use mixreplace::routes::{Route, Routes};
use mixreplace::server::access_log::AccessLog;
use mixreplace::server::conn::{Conn, Input, Limits, Outcome};
use mixreplace::server::memory::{Harness, MemorySocket, PeerEnd};
use mixreplace::stream::fault::Faults;
use mixreplace::stream::input::push::PushSpec;
use mixreplace::stream::{PartSpec, Stream};

/// Requests worth cutting up; the fuzzer's raw bytes reach the rest.
const REQUESTS: [&[u8]; 19] = [
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /live?advance_headers=1&dual_final_frames=1 HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /?advance_headers=1&dual_final_frames=1 HTTP/1.0\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /?action=snapshot HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /live?action=snapshot HTTP/1.0\r\n\r\n",
    b"GET /nowhere HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /quit HTTP/1.1\r\nHost: t\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n",
    b"GET /stats HTTP/1.0\r\n\r\n",
    b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /faulty HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /faulty?advance_headers=1&dual_final_frames=1 HTTP/1.1\r\nHost: t\r\n\r\n",
    b"PUT /push HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n\xff\xd8ab\xff\xd9",
    b"POST /push HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n15\r\n--b\r\n\r\n\xff\xd8xyz\xff\xd9\r\n--b\r\n\r\n0\r\n\r\n",
    b"PUT /push?token=t HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Type: multipart/mixed; boundary=b\r\nContent-Length: 30\r\n\r\n",
    b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x07\x7f\x00\x00\x01\x12\x67\x00\x50GET /live HTTP/1.1\r\nX-Forwarded-For: 192.0.2.8\r\n\r\n",
];

/// The fuzzer's bytes, read as a script.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

fn routes() -> Routes {
    let mut routes = Routes::default();
    let parts = [
        PartSpec::new("image/png", "one", 30),
        PartSpec::new("text/plain", "two", 0),
        PartSpec::new("image/png", "three", 500),
    ];
    let scripted = Stream::scripted(parts.to_vec(), 5, None, "").expect("parts");
    routes.add("/", Route::Stream(Rc::new(scripted)));
    routes.add("/live", Route::Stream(Rc::new(Stream::live("").expect("boundary"))));
    let big = Stream::synthetic(3, &[b'x'; 5000], 10, "").expect("parts");
    routes.add("/big", Route::Stream(Rc::new(big)));
    // Every connection fault but the ones that end the connection at once.
    let faults = ["chunked", "drip=700/3", "stall=5@2", "lf_only", "no_close"];
    let faulty = Stream::synthetic(3, &[b'y'; 2000], 10, "").expect("parts");
    let faulty = faulty.with_faults(Faults::parse(faults).expect("faults"), "").expect("faults");
    routes.add("/faulty", Route::Stream(Rc::new(faulty)));
    routes.add("/stats", Route::Stats);
    routes.add("/quit", Route::Quit);
    let pushed = Stream::pushed("", &PushSpec::default(), 4096).expect("boundary");
    routes.add("/push", Route::Stream(Rc::new(pushed)));
    routes
}

/// Byte `setup`: below 128 a plain server, from 128 behind a proxy; within each half,
/// the access settings and the write budget.
fn harness(setup: u8) -> Harness {
    let (behind_proxy, setup) = (setup >= 128, setup % 128);
    let access = match setup % 3 {
        0 => Access::default(),
        1 => Access::new(Some("user:pass"), None),
        _ => Access::new(None, Some("*")),
    };
    let limits = Limits {
        write_budget: 1 + usize::from(setup / 3) * 64,
        ..Limits::default()
    };
    let mut h = Harness::new(routes(), access, limits);
    h.set_access_log(AccessLog::open("/dev/null".as_ref()).expect("/dev/null"));
    let trusted = vec!["127.0.0.0/8".parse().expect("a CIDR")];
    h.set_proxies(Proxies::new(trusted, behind_proxy));
    h
}

fn live(h: &Harness) -> Rc<Stream> {
    match h.routes().get("/live") {
        Some(Route::Stream(stream)) => stream.clone(),
        _ => unreachable!("routes() serves /live"),
    }
}

/// Runs one step of the script: an op byte, then its argument bytes.
fn step(h: &mut Harness, conn: &mut Conn<MemorySocket>, op: u8, script: &mut Script<'_>) -> Outcome {
    let arg = script.byte().unwrap_or(0);
    let socket = conn.socket_mut();
    match op % 14 {
        // A canned request, cut at `arg`: the first piece now, the rest queued behind.
        0 => {
            let request = REQUESTS[usize::from(arg) % REQUESTS.len()];
            let cut = usize::from(script.byte().unwrap_or(0)) % (request.len() + 1);
            socket.incoming.push_back(request[..cut].to_vec());
            socket.incoming.push_back(request[cut..].to_vec());
            socket.incoming.retain(|chunk| !chunk.is_empty());
            Outcome::Continue
        }
        1 => {
            let raw = script.bytes(usize::from(arg % 64) + 1).to_vec();
            socket.incoming.push_back(raw);
            Outcome::Continue
        }
        2 => h.input(conn, Input::Readable { read_closed: arg % 2 == 1 }),
        3 => h.input(conn, Input::Writable),
        4 => {
            socket.room = match arg % 4 {
                0 => 0,
                1 => usize::from(arg),
                2 => usize::from(arg) * 100,
                _ => usize::MAX,
            };
            Outcome::Continue
        }
        5 => {
            socket.step = usize::from(arg).max(1);
            Outcome::Continue
        }
        6 => {
            socket.end = PeerEnd::Fin;
            h.input(conn, Input::Readable { read_closed: arg % 2 == 1 })
        }
        7 => {
            socket.end = PeerEnd::Reset;
            h.input(conn, if arg % 2 == 0 { Input::Readable { read_closed: true } } else { Input::Writable })
        }
        8 => {
            let now = h.now() + u64::from(arg) * 1000;
            h.advance(conn, now)
        }
        9 => match conn.deadline() {
            Some(at) => h.advance(conn, at),
            None => Outcome::Continue,
        },
        10 => h.input(conn, Input::Stop),
        11 => {
            let stream = live(h);
            let live = stream.as_live().expect("a live stream");
            if arg == 0 {
                live.end();
            } else {
                live.publish(&vec![b'j'; usize::from(arg)], h.now());
            }
            h.input(conn, Input::Frame)
        }
        12 => h.again(conn),
        _ => {
            socket.shutdown_error = (arg % 2 == 1).then_some(io::ErrorKind::NotConnected);
            Outcome::Continue
        }
    }
}

/// The client sends its FIN and reads whatever comes: every timer fires in turn.
fn settle(h: &mut Harness, conn: &mut Conn<MemorySocket>) -> Outcome {
    let socket = conn.socket_mut();
    socket.room = usize::MAX;
    socket.step = usize::MAX;
    if socket.end == PeerEnd::Open {
        socket.end = PeerEnd::Fin;
    }
    let mut outcome = h.input(conn, Input::Readable { read_closed: true });
    // No write is larger than the write budget, which can be one byte: enough turns for
    // the largest response (`/big`, about 5 KiB) a byte a turn, and its timers.
    for _ in 0..20_000 {
        if let Outcome::Close(_) = outcome {
            return outcome;
        }
        outcome = if h.wants_again() {
            h.again(conn)
        } else if let Some(at) = conn.deadline() {
            h.advance(conn, at)
        } else {
            h.input(conn, Input::Writable)
        };
    }
    outcome
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script(data);
    let mut h = harness(script.byte().unwrap_or(0));
    let mut conn = h.open(MemorySocket {
        peer: Some([127, 0, 0, 1].into()),
        ..MemorySocket::default()
    });
    let mut outcome = Outcome::Continue;
    for _ in 0..256 {
        let Some(op) = script.byte() else { break };
        outcome = step(&mut h, &mut conn, op, &mut script);
        if let Outcome::Close(_) = outcome {
            break;
        }
    }
    if outcome == Outcome::Continue {
        outcome = settle(&mut h, &mut conn);
    }
    // What went out (perhaps cut short by a reset) begins as an HTTP/1.x response.
    let written = &conn.socket_mut().written;
    let start = &written[..written.len().min(9)];
    assert!(
        b"HTTP/1.1 ".starts_with(start) || b"HTTP/1.0 ".starts_with(start),
        "not an HTTP response: {:?}",
        String::from_utf8_lossy(&written[..written.len().min(64)])
    );
    assert!(
        matches!(outcome, Outcome::Close(_)) || conn.is_streaming(),
        "neither closed nor streaming"
    );
});
