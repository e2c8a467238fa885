//! What a load run counts, and how it is shown: the one-line progress, the final table
//! and the final JSON object.
//!
//! Invariants:
//! - Memory is fixed whatever the run's length: latencies go into [`Histogram`]s of
//!   log-linear buckets (exact below 256 µs, then 128 buckets per power of two, so a
//!   reported percentile is at most 1/128 above the true one and never below it).
//! - Every wanted client ends exactly once, completed or failed for one [`Failure`], so
//!   `completed + failed_total == clients` in the final report.
//! - The JSON is written by hand (no serde at run time) with a fixed set of snake_case
//!   keys, always all present, in the order documented on [`Report::json`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Why a client failed. Counted separately; the `name` is the JSON key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connect was answered with a reset (nothing listening, or a full backlog with
    /// `tcp_abort_on_overflow`).
    ConnectRefused,
    /// Any other connect failure: out of ports or file descriptors, unreachable, ...
    ConnectError,
    /// Not connected within `--connect-timeout-ms`.
    ConnectTimeout,
    /// A read or write error (reset) after the connect, before the closing delimiter.
    Reset,
    /// A clean end of stream before the closing delimiter.
    Eof,
    /// A status other than 200.
    BadStatus(u16),
    /// Not a well-formed `multipart/x-mixed-replace` response.
    BadFraming,
    /// Still open, or not yet started, at `--timeout-s`.
    Timeout,
}

impl Failure {
    pub const COUNT: usize = 8;
    /// The JSON keys, in the order of [`Failure::index`].
    pub const NAMES: [&'static str; Self::COUNT] = [
        "connect_refused",
        "connect_error",
        "connect_timeout",
        "reset",
        "eof",
        "bad_status",
        "bad_framing",
        "timeout",
    ];

    pub fn index(self) -> usize {
        match self {
            Failure::ConnectRefused => 0,
            Failure::ConnectError => 1,
            Failure::ConnectTimeout => 2,
            Failure::Reset => 3,
            Failure::Eof => 4,
            Failure::BadStatus(_) => 5,
            Failure::BadFraming => 6,
            Failure::Timeout => 7,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

/// Values below this are counted exactly.
const EXACT: u64 = 256;
/// Sub-buckets per power of two above `EXACT` (half of `EXACT`: the top 8 bits are kept).
const SUB: u64 = EXACT / 2;
const BUCKETS: usize = (EXACT + (64 - 8) * SUB) as usize;

/// A fixed-size histogram of `u64` values (microseconds here). See the module docs.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("max", &self.max)
            .finish()
    }
}

impl Histogram {
    fn bucket(v: u64) -> usize {
        if v < EXACT {
            return v as usize;
        }
        let e = 63 - u64::from(v.leading_zeros()); // >= 8
        let top = v >> (e - 7); // in SUB..EXACT
        (EXACT + (e - 8) * SUB + (top - SUB)) as usize
    }

    /// The largest value that lands in bucket `i`.
    fn highest(i: usize) -> u64 {
        let i = i as u64;
        if i < EXACT {
            return i;
        }
        let e = (i - EXACT) / SUB + 8;
        let top = (i - EXACT) % SUB + SUB;
        // In the very last bucket the shift drops the only set bit: 0 - 1 wraps to MAX.
        ((top + 1) << (e - 7)).wrapping_sub(1)
    }

    pub fn record(&mut self, v: u64) {
        self.counts[Self::bucket(v)] += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// The smallest recorded value `v` (to bucket precision, rounded up, never past the
    /// max) such that at least `p` percent of the values are `<= v`.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::highest(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// Everything a run counts. The loop and the clients update it in place.
#[derive(Debug, Default)]
pub struct Tally {
    /// Clients wanted (`--clients`).
    pub clients: u64,
    /// Clients whose TCP connect completed.
    pub connected: u64,
    /// Connected clients not finished yet.
    pub open: u64,
    /// Clients that saw the closing delimiter.
    pub completed: u64,
    /// Failures, indexed by [`Failure::index`].
    pub failed: [u64; Failure::COUNT],
    /// Failures for [`Failure::BadStatus`], by status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Parts whose body was received completely.
    pub parts: u64,
    /// Parts among those with a readable `X-Timestamp`.
    pub timestamped_parts: u64,
    /// Timestamped parts that arrived before their due time (lateness counted as 0).
    pub early_parts: u64,
    /// Parts among those with a readable `X-Frame`.
    pub numbered_parts: u64,
    /// Frames missing between the `X-Frame` numbers each client got, summed over clients.
    pub dropped_frames: u64,
    /// Clients that missed at least one frame.
    pub clients_with_drops: u64,
    /// Numbered parts whose `X-Frame` was not above the client's previous one.
    pub out_of_order_frames: u64,
    /// Bytes received, HTTP heads included.
    pub bytes: u64,
    /// Part arrival minus `X-Timestamp`, µs.
    pub lateness: Histogram,
    /// Connect start to TCP connected, µs.
    pub connect: Histogram,
    /// Connect start to the first response byte, µs.
    pub first_byte: Histogram,
}

impl Tally {
    pub fn new(clients: u64) -> Self {
        Tally {
            clients,
            ..Tally::default()
        }
    }

    /// Counts a part that completed at `now_us` (µs since the Unix epoch).
    pub fn part(&mut self, timestamp_us: Option<u64>, now_us: u64) {
        self.parts += 1;
        if let Some(due) = timestamp_us {
            self.timestamped_parts += 1;
            if now_us < due {
                self.early_parts += 1;
            }
            self.lateness.record(now_us.saturating_sub(due));
        }
    }

    pub fn fail(&mut self, reason: Failure, n: u64) {
        self.failed[reason.index()] += n;
        if let Failure::BadStatus(code) = reason {
            *self.status_codes.entry(code).or_default() += n;
        }
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// The one-line progress report.
    pub fn progress_line(&self, elapsed: Duration) -> String {
        format!(
            "{:7.1}s  connected {}  open {}  completed {}  failed {}  parts {}  {:.1} MB",
            elapsed.as_secs_f64(),
            self.connected,
            self.open,
            self.completed,
            self.failed_total(),
            self.parts,
            self.bytes as f64 / 1e6,
        )
    }
}

/// The final report of a run.
#[derive(Debug)]
pub struct Report {
    pub stats: Tally,
    pub duration: Duration,
}

const PERCENTILES: [(&str, f64); 3] = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0)];

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|us| us as f64 / 1000.0)
}

impl Report {
    /// Whether every wanted client saw its stream's closing delimiter.
    pub fn all_completed(&self) -> bool {
        self.stats.completed == self.stats.clients
    }

    fn per_second(&self, n: u64) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    }

    fn summary(h: &Histogram) -> [Option<f64>; 4] {
        let [p50, p90, p99] = PERCENTILES.map(|(_, p)| ms(h.percentile(p)));
        [p50, p90, p99, ms(h.max())]
    }

    /// The final table, for people.
    pub fn table(&self) -> String {
        let s = &self.stats;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "clients     {} wanted, {} connected, {} completed, {} failed",
            s.clients,
            s.connected,
            s.completed,
            s.failed_total()
        );
        let mut reasons: Vec<String> = Failure::NAMES
            .iter()
            .zip(s.failed)
            .filter(|&(_, n)| n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        if !s.status_codes.is_empty() {
            let codes: Vec<String> = s
                .status_codes
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect();
            reasons.push(format!("(status {})", codes.join(", ")));
        }
        if !reasons.is_empty() {
            let _ = writeln!(t, "failed      {}", reasons.join(", "));
        }
        let _ = writeln!(
            t,
            "parts       {} ({} with X-Timestamp, {} early)",
            s.parts, s.timestamped_parts, s.early_parts
        );
        if s.numbered_parts > 0 {
            let _ = writeln!(
                t,
                "frames      {} with X-Frame: {} dropped by {} clients, {} out of order",
                s.numbered_parts, s.dropped_frames, s.clients_with_drops, s.out_of_order_frames
            );
        }
        let _ = writeln!(t, "bytes       {} ({:.1} MB)", s.bytes, s.bytes as f64 / 1e6);
        let _ = writeln!(
            t,
            "{:<12}{:>10}{:>10}{:>10}{:>10}",
            "ms", "p50", "p90", "p99", "max"
        );
        for (name, h) in [
            ("lateness", &s.lateness),
            ("connect", &s.connect),
            ("first byte", &s.first_byte),
        ] {
            let _ = write!(t, "{name:<12}");
            for v in Self::summary(h) {
                match v {
                    Some(v) => write!(t, "{v:>10.3}"),
                    None => write!(t, "{:>10}", "-"),
                }
                .unwrap();
            }
            t.push('\n');
        }
        let _ = writeln!(
            t,
            "throughput  {:.2} MB/s, {:.1} parts/s",
            self.per_second(s.bytes) / 1e6,
            self.per_second(s.parts)
        );
        let _ = writeln!(t, "duration    {:.3} s", self.duration.as_secs_f64());
        t
    }

    /// The final report as one JSON object on one line, keys in this order:
    ///
    /// | key | meaning |
    /// | --- | --- |
    /// | `clients` | clients wanted (`--clients`) |
    /// | `connected` | clients whose TCP connect completed |
    /// | `completed` | clients that saw the closing delimiter |
    /// | `failed_total` | clients that failed; `completed + failed_total == clients` |
    /// | `failed` | object: failures by reason, every key always present: `connect_refused`, `connect_error`, `connect_timeout`, `reset`, `eof`, `bad_status`, `bad_framing`, `timeout` |
    /// | `bad_status_codes` | object: status code (as a string key) to count, for `bad_status` |
    /// | `parts` | parts received whole |
    /// | `timestamped_parts` | parts among those with an `X-Timestamp` |
    /// | `early_parts` | timestamped parts that arrived before their due time (lateness 0) |
    /// | `numbered_parts` | parts among those with an `X-Frame` |
    /// | `dropped_frames` | frames each client skipped (gaps in the `X-Frame` numbers it got), summed |
    /// | `clients_with_drops` | clients that skipped at least one frame |
    /// | `out_of_order_frames` | numbered parts whose `X-Frame` was not above the client's previous one |
    /// | `bytes` | bytes received, HTTP heads included |
    /// | `lateness_ms`, `connect_ms`, `first_byte_ms` | objects `{p50, p90, p99, max}` in milliseconds, `null` without samples |
    /// | `duration_s` | wall time of the run |
    /// | `throughput_mb_per_s` | `bytes / duration_s / 1e6` |
    /// | `parts_per_s` | `parts / duration_s` |
    pub fn json(&self) -> String {
        let s = &self.stats;
        let mut j = String::from("{");
        let _ = write!(
            j,
            "\"clients\":{},\"connected\":{},\"completed\":{},\"failed_total\":{},\"failed\":{{",
            s.clients,
            s.connected,
            s.completed,
            s.failed_total()
        );
        for (i, (name, n)) in Failure::NAMES.iter().zip(s.failed).enumerate() {
            let _ = write!(j, "{}\"{name}\":{n}", if i > 0 { "," } else { "" });
        }
        j.push_str("},\"bad_status_codes\":{");
        for (i, (code, n)) in s.status_codes.iter().enumerate() {
            let _ = write!(j, "{}\"{code}\":{n}", if i > 0 { "," } else { "" });
        }
        let _ = write!(
            j,
            "}},\"parts\":{},\"timestamped_parts\":{},\"early_parts\":{}",
            s.parts, s.timestamped_parts, s.early_parts
        );
        let _ = write!(
            j,
            ",\"numbered_parts\":{},\"dropped_frames\":{},\"clients_with_drops\":{},\
             \"out_of_order_frames\":{},\"bytes\":{}",
            s.numbered_parts, s.dropped_frames, s.clients_with_drops, s.out_of_order_frames, s.bytes
        );
        for (name, h) in [
            ("lateness_ms", &s.lateness),
            ("connect_ms", &s.connect),
            ("first_byte_ms", &s.first_byte),
        ] {
            let _ = write!(j, ",\"{name}\":{{");
            for (i, (key, v)) in ["p50", "p90", "p99", "max"]
                .iter()
                .zip(Self::summary(h))
                .enumerate()
            {
                let sep = if i > 0 { "," } else { "" };
                match v {
                    Some(v) => write!(j, "{sep}\"{key}\":{v:.3}"),
                    None => write!(j, "{sep}\"{key}\":null"),
                }
                .unwrap();
            }
            j.push('}');
        }
        let _ = write!(
            j,
            ",\"duration_s\":{:.3},\"throughput_mb_per_s\":{:.3},\"parts_per_s\":{:.1}}}",
            self.duration.as_secs_f64(),
            self.per_second(s.bytes) / 1e6,
            self.per_second(s.parts)
        );
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic values without a dev-dependency.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        assert_eq!(Histogram::bucket(0), 0);
        assert_eq!(Histogram::bucket(255), 255);
        assert_eq!(Histogram::bucket(256), 256);
        assert_eq!(Histogram::bucket(u64::MAX), BUCKETS - 1);
        for i in 0..BUCKETS - 1 {
            let hi = Histogram::highest(i);
            assert_eq!(Histogram::bucket(hi), i, "bucket {i}");
            assert_eq!(Histogram::bucket(hi + 1), i + 1, "bucket {i}");
        }
        assert_eq!(Histogram::highest(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn percentiles_match_a_sorted_model() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for n in [1usize, 2, 3, 10, 99, 100, 1000, 12345] {
            let mut h = Histogram::default();
            let mut values: Vec<u64> = (0..n)
                .map(|_| {
                    let v = rng(&mut seed);
                    // Spread over many magnitudes: 0 .. ~2^40.
                    v >> (24 + v % 40)
                })
                .collect();
            for &v in &values {
                h.record(v);
            }
            values.sort_unstable();
            for p in [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
                let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n);
                let exact = values[rank - 1];
                let got = h.percentile(p).unwrap();
                assert!(got >= exact, "n {n} p {p}: {got} < {exact}");
                assert!(
                    got - exact <= exact / 128,
                    "n {n} p {p}: {got} too far above {exact}"
                );
            }
            assert_eq!(h.max(), values.last().copied());
            assert_eq!(h.percentile(100.0), values.last().copied());
        }
        assert_eq!(Histogram::default().percentile(50.0), None);
    }

    fn sample() -> Report {
        let mut stats = Tally::new(5);
        stats.connected = 4;
        stats.completed = 2;
        stats.fail(Failure::BadStatus(503), 2);
        stats.fail(Failure::ConnectRefused, 1);
        stats.part(Some(1_000_000), 1_002_500);
        stats.part(Some(1_000_000), 999_000);
        stats.part(None, 5);
        (stats.numbered_parts, stats.dropped_frames) = (5, 3);
        (stats.clients_with_drops, stats.out_of_order_frames) = (1, 1);
        stats.bytes = 3_000_000;
        stats.connect.record(120);
        Report {
            stats,
            duration: Duration::from_millis(1500),
        }
    }

    #[test]
    fn json_golden() {
        assert_eq!(
            sample().json(),
            "{\"clients\":5,\"connected\":4,\"completed\":2,\"failed_total\":3,\
             \"failed\":{\"connect_refused\":1,\"connect_error\":0,\"connect_timeout\":0,\
             \"reset\":0,\"eof\":0,\"bad_status\":2,\"bad_framing\":0,\"timeout\":0},\
             \"bad_status_codes\":{\"503\":2},\"parts\":3,\"timestamped_parts\":2,\
             \"early_parts\":1,\"numbered_parts\":5,\"dropped_frames\":3,\
             \"clients_with_drops\":1,\"out_of_order_frames\":1,\"bytes\":3000000,\
             \"lateness_ms\":{\"p50\":0.000,\"p90\":2.500,\"p99\":2.500,\"max\":2.500},\
             \"connect_ms\":{\"p50\":0.120,\"p90\":0.120,\"p99\":0.120,\"max\":0.120},\
             \"first_byte_ms\":{\"p50\":null,\"p90\":null,\"p99\":null,\"max\":null},\
             \"duration_s\":1.500,\"throughput_mb_per_s\":2.000,\"parts_per_s\":2.0}"
        );
    }

    #[test]
    fn table_golden() {
        let expected = "\
clients     5 wanted, 4 connected, 2 completed, 3 failed
failed      connect_refused 1, bad_status 2, (status 503: 2)
parts       3 (2 with X-Timestamp, 1 early)
frames      5 with X-Frame: 3 dropped by 1 clients, 1 out of order
bytes       3000000 (3.0 MB)
ms                 p50       p90       p99       max
lateness         0.000     2.500     2.500     2.500
connect          0.120     0.120     0.120     0.120
first byte           -         -         -         -
throughput  2.00 MB/s, 2.0 parts/s
duration    1.500 s
";
        assert_eq!(sample().table(), expected);
        // A run that saw no X-Frame has no frames line.
        let mut plain = sample();
        plain.stats.numbered_parts = 0;
        assert!(!plain.table().contains("frames"));
    }
}
