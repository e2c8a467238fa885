//! The integration tests: one binary (one release+LTO link), so every test runs in the
//! harness's parallel pool. Most start the real `mixreplace` binary on `127.0.0.1:0` and
//! talk to it over real sockets; most of their time is spent waiting on the 6.4 s demo,
//! not on the CPU. `tests/emfile.rs` stays a binary of its own.

#[path = "../support/mod.rs"]
mod support;

// Everything but a stream: HEAD, 404, 405, 400, 431, 408, a body nobody asked for, /stats.
mod answers;
// Live frames of 2–8 MiB beside a testcard: the testcard's parts stay on time.
mod big_frames;
// Chromium shows each live frame in a plain <img> as it arrives, not one frame late.
mod browser_live;
// 200 clients leaving at random leave nothing behind; clients that stop reading are let go.
mod churn;
// The command line: bad flags, a taken address, help and version, IPv6.
mod cli;
// Chromium shows /view, ffmpeg decodes MJPEG, Python's email parses every stream kind.
mod clients;
// curl, a client we did not write: one `curl -sN` and 1,000 transfers at once.
mod curl;
// The demo stream byte for byte and on time, over HTTP/1.1 and 1.0, and in Python's email.
mod demo;
// The library embedded: two servers in one process, spawned or run, stats, stop, errors.
mod embed;
// `exec:` inputs with ffmpeg as the producer: on demand, restarts, retries, nothing left behind.
mod exec;
// Which real clients break on which fault on purpose: the README's table, from a run.
mod fault_clients;
// Faults on purpose, byte for byte: framing, chunked, resets, truncations, stalls, drips.
mod faults;
// Stalled live viewers joining one per frame: memory within the held-frames budget.
mod held_frames;
// Hostile and careless clients beside an on-time demo client.
mod hostile;
// Behind nginx and HAProxy with TLS (contrib/), and HAProxy over two servers at 4,000 viewers.
mod proxies;
// Keep-alive, pipelining, Date, µStreamer's aliases, auth files, curl and wrk (issue 10).
mod keepalive;
// Live inputs, plural: pipe: and stdin at once, writers coming and going, heartbeats.
mod inputs;
// Every stream kind: scripts, folders, live MJPEG from a pipe, snapshots, aliases, /view.
mod kinds;
// mixreplace-load against test servers and against the real server.
mod load;
// Behind a proxy: the access log, SIGHUP, PROXY v1/v2 and X-Forwarded-For from trusted
// peers only, HAProxy with send-proxy-v2 in front.
mod proxied;
// Seeded random inputs for the request parser, scripts and the JPEG splitter (library only).
mod randomized;
// The test readers themselves: what they accept and what they refuse.
mod readers;
// relay: inputs: upstreams with every quirk, origin → edge → 500 viewers, an origin restart.
mod relay;
// push streams: ffmpeg's PUT and curl -T feed viewers; one publisher; credentials or token.
mod push;
// Requests by RFC 9110/9112, percent-decoded paths and queries, /view links (issue 12).
mod rfc;
// Listeners and systemd: unix sockets, several addresses, socket activation, sd_notify,
// SO_REUSEPORT, the library's listeners, the units in contrib/.
mod service;
// A live viewer behind a 5 Mbit/s link (a namespace, veth and tbf) gets fresh frames.
mod slow_link;
// A live viewer that stops reading holds no backlog and stalls nobody.
mod slow_reader;
// What start-up refuses before it listens, skips unopened, and holds once (issue 12).
mod startup;
// Stopping: /quit, SIGTERM and SIGINT, a second signal, and clients that hold a stop up.
mod stop;
// The testcard kind: ffmpeg decodes it quietly, X-Frame counts at its fps, Chromium shows it.
mod testcard;
