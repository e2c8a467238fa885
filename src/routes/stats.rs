//! Counters the loop keeps, and their three forms: JSON for `GET /stats` (which also
//! lists each stream's faults on purpose, `[]` for most), the Prometheus text for
//! `GET /metrics`, and the [`Stats`] snapshot an embedding program reads
//! (`Handle::stats`). All three read the same [`Counters`] and the streams' own gauges,
//! so they agree field for field.

use std::fmt::Write as _;
use std::time::Duration;

use crate::clock::Micros;
use crate::histogram::FixedBuckets;
use crate::http::Status;
use crate::routes::Routes;
use crate::routes::live_stats::{self, LiveInputStats};
use crate::stream::Stream;

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// We finished: the answer or the stream went out and the client closed or lingering
    /// ended.
    Finished,
    /// The client closed or reset the connection first.
    ClientGone,
    /// No write progress for the send timeout.
    SendTimeout,
    /// The server stopped before the connection could finish.
    Stopped,
    /// Any other socket error.
    Error,
    /// A fault on purpose ended it (`reset@PART`, `truncate@PART`).
    Fault,
    /// It held one of the oldest live frames when the frames held by connections went
    /// over their budget (`--held-frames-budget`).
    HeldFrames,
    /// With `--proxy-protocol`: the peer is not a trusted proxy, or its PROXY header is
    /// malformed.
    Refused,
}

impl Reason {
    const ALL: [Reason; 8] = [
        Reason::Finished,
        Reason::ClientGone,
        Reason::SendTimeout,
        Reason::Stopped,
        Reason::Error,
        Reason::Fault,
        Reason::HeldFrames,
        Reason::Refused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Finished => "finished",
            Reason::ClientGone => "client_gone",
            Reason::SendTimeout => "send_timeout",
            Reason::Stopped => "stopped",
            Reason::Error => "error",
            Reason::Fault => "fault",
            Reason::HeldFrames => "held_frames",
            Reason::Refused => "refused",
        }
    }
}

const STATUSES: [Status; Status::ALL.len()] = Status::ALL;

#[derive(Debug, Default)]
pub struct Counters {
    pub clients: u64,
    pub peak_clients: u64,
    pub accepted: u64,
    pub streams: u64,
    pub parts: u64,
    pub bytes: u64,
    answers: [u64; STATUSES.len()],
    closed: [u64; Reason::ALL.len()],
    /// How long each turn of the loop took, from `poll`'s return to the next `poll`: a
    /// long turn makes every client due meanwhile late.
    pub turns: FixedBuckets,
}

impl Counters {
    pub fn opened(&mut self) {
        self.accepted += 1;
        self.clients += 1;
        self.peak_clients = self.peak_clients.max(self.clients);
    }

    pub fn closed(&mut self, reason: Reason) {
        self.clients -= 1;
        self.closed[reason as usize] += 1;
    }

    pub fn answered(&mut self, status: Status) {
        if let Some(i) = STATUSES.iter().position(|&s| s == status) {
            self.answers[i] += 1;
        }
    }

    pub fn to_json(&self, uptime: Micros, routes: &Routes) -> String {
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            "{{\"uptime_s\":{:.3},\"clients\":{},\"peak_clients\":{},\"accepted\":{},\
             \"streams\":{},\"parts\":{},\"bytes\":{},\"viewers\":{{",
            uptime as f64 / 1e6,
            self.clients,
            self.peak_clients,
            self.accepted,
            self.streams,
            self.parts,
            self.bytes,
        );
        // One object per counter, keyed by path.
        let per_stream = |out: &mut String, key: &str, get: fn(&Stream) -> u64| {
            if !key.is_empty() {
                let _ = write!(out, "}},\"{key}\":{{");
            }
            join_pairs(
                out,
                routes
                    .streams()
                    .map(|(path, stream)| (json_string(path), get(stream))),
            );
        };
        per_stream(&mut out, "", Stream::viewers);
        per_stream(&mut out, "skipped_frames", Stream::skipped);
        per_stream(&mut out, "stream_parts", |s| s.delivery().parts);
        per_stream(&mut out, "stream_part_bytes", |s| s.delivery().part_bytes);
        out.push_str("},\"faults\":{");
        for (i, (path, stream)) in routes.streams().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let names: Vec<String> = stream
                .faults()
                .iter()
                .map(|f| json_string(&f.to_string()))
                .collect();
            let _ = write!(out, "{comma}{}:[{}]", json_string(path), names.join(","));
        }
        out.push_str("},\"answers\":{");
        let answers = STATUSES
            .iter()
            .zip(self.answers)
            .map(|(s, n)| (format!("\"{}\"", s.code()), n));
        join_pairs(&mut out, answers);
        out.push_str("},\"closed\":{");
        let closed = Reason::ALL
            .iter()
            .zip(self.closed)
            .map(|(r, n)| (format!("\"{}\"", r.name()), n));
        join_pairs(&mut out, closed);
        out.push('}');
        live_stats::json(&mut out, routes, uptime, json_string);
        out.push_str("}\n");
        out
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_metrics(&self, uptime: Micros, routes: &Routes) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(
                out,
                "# HELP mixreplace_{name} {help}\n# TYPE mixreplace_{name} {kind}"
            );
            for (labels, value) in samples {
                let _ = writeln!(out, "mixreplace_{name}{labels} {value}");
            }
        };
        let one = |value| [(String::new(), value)];
        metric(
            "uptime_seconds",
            "gauge",
            "Whole seconds since the server started.",
            &one(uptime / 1_000_000),
        );
        metric("clients", "gauge", "Open client connections.", &one(self.clients));
        metric(
            "clients_peak",
            "gauge",
            "Most client connections open at once.",
            &one(self.peak_clients),
        );
        metric(
            "connections_total",
            "counter",
            "Connections accepted.",
            &one(self.accepted),
        );
        metric("streams_total", "counter", "Streams started.", &one(self.streams));
        metric(
            "parts_total",
            "counter",
            "Parts queued to clients.",
            &one(self.parts),
        );
        metric(
            "sent_bytes_total",
            "counter",
            "Bytes written to clients.",
            &one(self.bytes),
        );
        let per_stream = |get: fn(&Stream) -> u64| -> Vec<(String, u64)> {
            routes
                .streams()
                .map(|(path, stream)| (format!("{{path={}}}", label_value(path)), get(stream)))
                .collect()
        };
        let viewers = per_stream(Stream::viewers);
        let skipped = per_stream(Stream::skipped);
        let parts = per_stream(|s| s.delivery().parts);
        let part_bytes = per_stream(|s| s.delivery().part_bytes);
        metric("viewers", "gauge", "Clients watching each stream now.", &viewers);
        let help = "Live frames a client skipped because it was still sending an earlier one.";
        metric("skipped_frames_total", "counter", help, &skipped);
        let answers: Vec<_> = STATUSES
            .iter()
            .zip(self.answers)
            .map(|(status, n)| (format!("{{code=\"{}\"}}", status.code()), n))
            .collect();
        metric(
            "responses_total",
            "counter",
            "Responses by status code.",
            &answers,
        );
        let closed: Vec<_> = Reason::ALL
            .iter()
            .zip(self.closed)
            .map(|(reason, n)| (format!("{{reason=\"{}\"}}", reason.name()), n))
            .collect();
        metric(
            "closed_total",
            "counter",
            "Connections closed, by reason.",
            &closed,
        );
        metric(
            "stream_parts_total",
            "counter",
            "Parts handed to clients, by stream (one per part per client).",
            &parts,
        );
        metric(
            "stream_part_bytes_total",
            "counter",
            "Bytes of the parts handed to clients, by stream.",
            &part_bytes,
        );
        histogram_header(
            &mut out,
            "part_lateness_seconds",
            "How long after its due time (a live frame: its arrival) each part was handed to \
             a client's socket, by stream.",
        );
        for (path, stream) in routes.streams() {
            histogram_samples(
                &mut out,
                "part_lateness_seconds",
                &label_value(path),
                &stream.delivery().lateness,
            );
        }
        histogram_header(
            &mut out,
            "loop_turn_seconds",
            "How long each turn of the event loop took, from poll's return to the next poll.",
        );
        histogram_samples(&mut out, "loop_turn_seconds", "", &self.turns);
        live_stats::metrics(&mut out, routes, uptime, label_value);
        out
    }
}

fn histogram_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP mixreplace_{name} {help}\n# TYPE mixreplace_{name} histogram"
    );
}

/// One histogram's `_bucket`, `_sum` and `_count` lines; `path`: a quoted label value, or
/// empty for none.
fn histogram_samples(out: &mut String, name: &str, path: &str, histogram: &FixedBuckets) {
    let labels = |more: &str| match (path.is_empty(), more.is_empty()) {
        (true, true) => String::new(),
        (true, false) => format!("{{{more}}}"),
        (false, true) => format!("{{path={path}}}"),
        (false, false) => format!("{{path={path},{more}}}"),
    };
    for (le, n) in histogram.cumulative() {
        let _ = writeln!(
            out,
            "mixreplace_{name}_bucket{} {n}",
            labels(&format!("le=\"{le}\""))
        );
    }
    let _ = writeln!(
        out,
        "mixreplace_{name}_sum{} {}",
        labels(""),
        histogram.sum_seconds()
    );
    let _ = writeln!(out, "mixreplace_{name}_count{} {}", labels(""), histogram.count());
}

/// The counters `GET /stats` shows, as a plain value: what [`Handle::stats`] returns,
/// taken by the loop between two of its turns (so the numbers agree with each other).
///
/// Totals count from the server's start; `clients` and each stream's `viewers` are the
/// numbers now.
///
/// [`Handle::stats`]: crate::Handle::stats
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Since the server was bound.
    pub uptime: Duration,
    /// Connections open now.
    pub clients: u64,
    /// The most connections open at once.
    pub peak_clients: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Streams started (stream responses begun).
    pub streams: u64,
    /// Parts queued to clients.
    pub parts: u64,
    /// Bytes written to clients.
    pub bytes: u64,
    /// Each stream, in the order it was added to the builder.
    pub per_stream: Vec<StreamStats>,
    /// Responses by status code, for every code the server sends (`0` for the ones not
    /// sent yet).
    pub answers: Vec<(u16, u64)>,
    /// Connections closed, by reason: `finished`, `client_gone`, `send_timeout`,
    /// `stopped`, `error`, `fault` (on purpose), `held_frames`, `refused` (a PROXY protocol connection).
    pub closed: Vec<(&'static str, u64)>,
}

/// One stream's numbers in a [`Stats`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct StreamStats {
    /// The path it is served at, decoded (`/my cam`, not `/my%20cam`).
    pub path: String,
    /// Clients watching it now.
    pub viewers: u64,
    /// Live frames a client skipped because it was still sending an earlier one.
    pub skipped_frames: u64,
    /// Parts handed to its clients (one per part per client).
    pub parts: u64,
    /// Those parts' encoded bytes.
    pub part_bytes: u64,
    /// A live stream's input; `None` for other streams.
    pub input: Option<LiveInputStats>,
}

impl Stats {
    /// The numbers of the stream at `path` (decoded), if one is served there.
    pub fn stream(&self, path: &str) -> Option<&StreamStats> {
        self.per_stream.iter().find(|s| s.path == path)
    }

    /// Responses sent with status `code`.
    pub fn answered(&self, code: u16) -> u64 {
        lookup(&self.answers, &code)
    }

    /// Connections closed for `reason` (see [`Stats::closed`]).
    pub fn closed_for(&self, reason: &str) -> u64 {
        lookup(&self.closed, &reason)
    }
}

fn lookup<K: PartialEq>(counts: &[(K, u64)], key: &K) -> u64 {
    counts.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
}

impl Counters {
    /// The counters and the streams' gauges as one [`Stats`] value.
    pub fn snapshot(&self, uptime: Micros, routes: &Routes) -> Stats {
        Stats {
            uptime: Duration::from_micros(uptime),
            clients: self.clients,
            peak_clients: self.peak_clients,
            accepted: self.accepted,
            streams: self.streams,
            parts: self.parts,
            bytes: self.bytes,
            per_stream: routes
                .streams()
                .map(|(path, stream)| StreamStats {
                    path: path.to_owned(),
                    viewers: stream.viewers(),
                    skipped_frames: stream.skipped(),
                    parts: stream.delivery().parts,
                    part_bytes: stream.delivery().part_bytes,
                    input: LiveInputStats::of(stream, uptime),
                })
                .collect(),
            answers: STATUSES.iter().map(|s| s.code()).zip(self.answers).collect(),
            closed: Reason::ALL.iter().map(|r| r.name()).zip(self.closed).collect(),
        }
    }
}

/// A JSON string literal (paths come from the command line and may hold anything).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Prometheus label value: quoted, with backslash, quote and newline escaped.
fn label_value(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn join_pairs(out: &mut String, pairs: impl Iterator<Item = (String, u64)>) {
    for (i, (key, value)) in pairs.enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(out, "{comma}{key}:{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_json_and_prometheus_need() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        assert_eq!(label_value("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }

    #[test]
    fn counts_clients_answers_and_closes() {
        let mut stats = Counters::default();
        stats.opened();
        stats.opened();
        stats.closed(Reason::SendTimeout);
        stats.answered(Status::ServiceUnavailable);
        let routes = Routes::default();
        let json = stats.to_json(1_500_000, &routes);
        assert!(json.starts_with("{\"uptime_s\":1.500,\"clients\":1,\"peak_clients\":2,\"accepted\":2,"));
        assert!(json.contains("\"503\":1") && json.contains("\"send_timeout\":1"));
        let metrics = stats.to_metrics(1_500_000, &routes);
        assert!(metrics.contains("# TYPE mixreplace_clients gauge\nmixreplace_clients 1\n"));
        assert!(metrics.contains("mixreplace_responses_total{code=\"503\"} 1\n"));
        assert!(metrics.contains("mixreplace_closed_total{reason=\"send_timeout\"} 1\n"));
    }

    /// The snapshot an embedding program reads says what `/stats` says, field for field.
    #[test]
    fn the_snapshot_agrees_with_the_json() {
        let mut counters = Counters::default();
        counters.opened();
        counters.opened();
        counters.closed(Reason::ClientGone);
        counters.answered(Status::Ok);
        (counters.streams, counters.parts, counters.bytes) = (1, 7, 12_345);
        let mut routes = Routes::default();
        let stream = crate::stream::Stream::synthetic(2, b"x", 0, "").expect("a stream");
        routes.add("/a \"b\"", crate::routes::Route::Stream(std::rc::Rc::new(stream)));
        let json = counters.to_json(2_000_000, &routes);
        let snapshot = counters.snapshot(2_000_000, &routes);
        assert_eq!(snapshot.uptime, Duration::from_secs(2));
        assert!(json.starts_with("{\"uptime_s\":2.000,"), "{json}");
        let totals = [
            ("clients", snapshot.clients),
            ("peak_clients", snapshot.peak_clients),
            ("accepted", snapshot.accepted),
            ("streams", snapshot.streams),
            ("parts", snapshot.parts),
            ("bytes", snapshot.bytes),
        ];
        for (key, value) in totals {
            assert!(
                json.contains(&format!("\"{key}\":{value},")),
                "{key}={value}: {json}"
            );
        }
        assert_eq!(snapshot.per_stream.len(), 1);
        let stream = &snapshot.per_stream[0];
        assert_eq!(snapshot.stream("/a \"b\""), Some(stream));
        let path = json_string(&stream.path);
        assert!(json.contains(&format!("\"viewers\":{{{path}:{}}}", stream.viewers)));
        assert!(json.contains(&format!(
            "\"skipped_frames\":{{{path}:{}}}",
            stream.skipped_frames
        )));
        for (code, n) in &snapshot.answers {
            assert!(json.contains(&format!("\"{code}\":{n}")), "{code}: {json}");
        }
        for (reason, n) in &snapshot.closed {
            assert!(json.contains(&format!("\"{reason}\":{n}")), "{reason}: {json}");
        }
        assert_eq!((snapshot.answered(200), snapshot.answered(404)), (1, 0));
        assert_eq!(snapshot.closed_for("client_gone"), 1);
        assert_eq!(snapshot.answers.len(), STATUSES.len());
    }
}
