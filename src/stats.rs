//! Counters the loop keeps, and their JSON form for `GET /stats`.

use std::fmt::Write as _;

use crate::clock::Micros;
use crate::http::Status;

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
}

impl Reason {
    const ALL: [Reason; 5] = [
        Reason::Finished,
        Reason::ClientGone,
        Reason::SendTimeout,
        Reason::Stopped,
        Reason::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Finished => "finished",
            Reason::ClientGone => "client_gone",
            Reason::SendTimeout => "send_timeout",
            Reason::Stopped => "stopped",
            Reason::Error => "error",
        }
    }
}

const STATUSES: [Status; 8] = [
    Status::Ok,
    Status::Accepted,
    Status::BadRequest,
    Status::NotFound,
    Status::MethodNotAllowed,
    Status::RequestTimeout,
    Status::HeadTooLarge,
    Status::ServiceUnavailable,
];

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

    pub fn to_json(&self, uptime: Micros) -> String {
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            "{{\"uptime_s\":{:.3},\"clients\":{},\"peak_clients\":{},\"accepted\":{},\
             \"streams\":{},\"parts\":{},\"bytes\":{},\"answers\":{{",
            uptime as f64 / 1e6,
            self.clients,
            self.peak_clients,
            self.accepted,
            self.streams,
            self.parts,
            self.bytes,
        );
        let answers = STATUSES
            .iter()
            .zip(self.answers)
            .map(|(s, n)| (s.code().to_string(), n));
        join_pairs(&mut out, answers);
        out.push_str("},\"closed\":{");
        let closed = Reason::ALL
            .iter()
            .zip(self.closed)
            .map(|(r, n)| (r.name().to_owned(), n));
        join_pairs(&mut out, closed);
        out.push_str("}}\n");
        out
    }
}

fn join_pairs(out: &mut String, pairs: impl Iterator<Item = (String, u64)>) {
    for (i, (key, value)) in pairs.enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{key}\":{value}");
    }
}
