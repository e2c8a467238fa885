//! Counters the loop keeps, and their JSON form for `GET /stats` (which also lists each
//! stream's faults on purpose, `[]` for most).

use std::fmt::Write as _;

use crate::clock::Micros;
use crate::http::Status;
use crate::routes::Routes;

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
}

impl Reason {
    const ALL: [Reason; 6] = [
        Reason::Finished,
        Reason::ClientGone,
        Reason::SendTimeout,
        Reason::Stopped,
        Reason::Error,
        Reason::Fault,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Finished => "finished",
            Reason::ClientGone => "client_gone",
            Reason::SendTimeout => "send_timeout",
            Reason::Stopped => "stopped",
            Reason::Error => "error",
            Reason::Fault => "fault",
        }
    }
}

const STATUSES: [Status; Status::ALL.len()] = Status::ALL;

#[derive(Debug, Default)]
pub struct Stats {
    pub clients: u64,
    pub peak_clients: u64,
    pub accepted: u64,
    pub streams: u64,
    pub parts: u64,
    pub bytes: u64,
    answers: [u64; STATUSES.len()],
    closed: [u64; Reason::ALL.len()],
}

impl Stats {
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
        let viewers = routes
            .streams()
            .map(|(path, stream)| (json_string(path), stream.viewers()));
        join_pairs(&mut out, viewers);
        out.push_str("},\"skipped_frames\":{");
        let skipped = routes
            .streams()
            .map(|(path, stream)| (json_string(path), stream.skipped()));
        join_pairs(&mut out, skipped);
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
        out.push_str("}}\n");
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
        let viewers: Vec<_> = routes
            .streams()
            .map(|(path, stream)| (format!("{{path={}}}", label_value(path)), stream.viewers()))
            .collect();
        metric("viewers", "gauge", "Clients watching each stream now.", &viewers);
        let skipped: Vec<_> = routes
            .streams()
            .map(|(path, stream)| (format!("{{path={}}}", label_value(path)), stream.skipped()))
            .collect();
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
        out
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
        let mut stats = Stats::default();
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
}
