//! Each live stream's input, in its three forms: the `"inputs"` object of `GET /stats`,
//! the `mixreplace_input_…` families of `GET /metrics` (labelled `stream="PATH"`), and
//! [`LiveInputStats`] in the [`Stats`](crate::Stats) snapshot. All three read the
//! counters the stream's feed leaves on the stream (`Live::input_stats`), at the same
//! "now", so they agree field for field.

use std::fmt::Write as _;
use std::time::Duration;

use crate::clock::Micros;
use crate::routes::Routes;
use crate::stream::Stream;
use crate::stream::input::InputState;

/// The states an input can be in, as `/metrics` lists them (one sample each, 1 for the
/// current one).
const STATES: [InputState; 4] = [
    InputState::Waiting,
    InputState::Running,
    InputState::Stopped,
    InputState::Restarting,
];

/// One live stream's input, in a [`StreamStats`](crate::StreamStats).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LiveInputStats {
    /// Its kind: `stdin`, `pipe`…
    pub kind: &'static str,
    /// `waiting` (for its producer), `running`, `stopped` or `restarting`.
    pub state: &'static str,
    /// Times its producer was started again after it failed or ended.
    pub restarts: u64,
    /// Complete frames it delivered, before any was dropped.
    pub frames_in: u64,
    /// Bytes it read, framing and junk included.
    pub bytes_in: u64,
    /// Frames made the stream's current frame.
    pub published: u64,
    /// Heartbeats: the current frame sent again after `refresh` without a new one.
    pub repeated: u64,
    /// Frames dropped as identical to the current one (`drop_same`).
    pub dropped_same: u64,
    /// Frames dropped for exceeding `max_frame`.
    pub dropped_oversize: u64,
    /// Frames dropped for holding the stream's boundary.
    pub dropped_boundary: u64,
    /// Bytes outside frames, and of broken or cut frames.
    pub junk_bytes: u64,
    /// Frames published a second lately.
    pub fps: f64,
    /// How old the current frame is; `None` before the first.
    pub frame_age: Option<Duration>,
    /// Snapshot requests waiting for the first frame.
    pub waiting_snapshots: u64,
}

impl LiveInputStats {
    /// The input's numbers at `now`, if `stream` is live.
    pub(crate) fn of(stream: &Stream, now: Micros) -> Option<LiveInputStats> {
        let live = stream.as_live()?;
        let s = live.input_stats();
        Some(LiveInputStats {
            kind: s.kind,
            state: s.state.name(),
            restarts: s.restarts,
            frames_in: s.frames_in,
            bytes_in: s.bytes_in,
            published: s.published,
            repeated: s.repeated,
            dropped_same: s.dropped_same,
            dropped_oversize: s.dropped_oversize,
            dropped_boundary: s.dropped_boundary,
            junk_bytes: s.junk_bytes,
            fps: s.fps(now),
            frame_age: s.frame_age(now).map(Duration::from_micros),
            waiting_snapshots: live.waiting(),
        })
    }

    /// The counters, by their names in `/stats`.
    fn counters(&self) -> [(&'static str, u64); 9] {
        [
            ("restarts", self.restarts),
            ("frames_in", self.frames_in),
            ("bytes_in", self.bytes_in),
            ("published", self.published),
            ("repeated", self.repeated),
            ("dropped_same", self.dropped_same),
            ("dropped_oversize", self.dropped_oversize),
            ("dropped_boundary", self.dropped_boundary),
            ("junk_bytes", self.junk_bytes),
        ]
    }
}

/// A counter's value, read from an input's numbers.
type Counter = fn(&LiveInputStats) -> u64;

/// The live streams and their inputs' numbers at `now`.
fn inputs(routes: &Routes, now: Micros) -> impl Iterator<Item = (&str, LiveInputStats, u64)> {
    routes.streams().filter_map(move |(path, stream)| {
        LiveInputStats::of(stream, now).map(|s| (path, s, stream.viewers()))
    })
}

/// `,"inputs":{PATH:{…},…}` for `/stats`; `quote` makes a JSON string.
pub(crate) fn json(out: &mut String, routes: &Routes, now: Micros, quote: fn(&str) -> String) {
    out.push_str(",\"inputs\":{");
    for (i, (path, s, viewers)) in inputs(routes, now).enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(
            out,
            "{comma}{}:{{\"kind\":\"{}\",\"state\":\"{}\"",
            quote(path),
            s.kind,
            s.state
        );
        for (key, value) in s.counters() {
            let _ = write!(out, ",\"{key}\":{value}");
        }
        let age = s
            .frame_age
            .map_or("null".to_owned(), |age| format!("{:.3}", age.as_secs_f64()));
        let _ = write!(
            out,
            ",\"fps\":{:.2},\"frame_age_s\":{age},\"viewers\":{viewers},\"waiting_snapshots\":{}}}",
            s.fps, s.waiting_snapshots
        );
    }
    out.push('}');
}

/// The `mixreplace_input_…` families for `/metrics`; `label` makes a label value.
pub(crate) fn metrics(out: &mut String, routes: &Routes, now: Micros, label: fn(&str) -> String) {
    let all: Vec<(String, LiveInputStats)> = inputs(routes, now).map(|(p, s, _)| (label(p), s)).collect();
    if all.is_empty() {
        return;
    }
    let mut family =
        |name: &str, kind: &str, help: &str, samples: &mut dyn Iterator<Item = (String, String)>| {
            let _ = writeln!(
                out,
                "# HELP mixreplace_input_{name} {help}\n# TYPE mixreplace_input_{name} {kind}"
            );
            for (labels, value) in samples {
                let _ = writeln!(out, "mixreplace_input_{name}{{{labels}}} {value}");
            }
        };
    family(
        "state",
        "gauge",
        "1 for the state each live stream's input is in (waiting, running, stopped, restarting).",
        &mut all.iter().flat_map(|(stream, s)| {
            STATES.iter().map(move |state| {
                let on = u8::from(state.name() == s.state);
                (
                    format!("stream={stream},state=\"{}\"", state.name()),
                    on.to_string(),
                )
            })
        }),
    );
    let counters: [(&str, &str, Counter); 6] = [
        (
            "restarts_total",
            "Times the input's producer was started again.",
            |s| s.restarts,
        ),
        ("frames_total", "Complete frames the input delivered.", |s| {
            s.frames_in
        }),
        ("bytes_total", "Bytes the input read.", |s| s.bytes_in),
        (
            "published_total",
            "Frames made the stream's current frame.",
            |s| s.published,
        ),
        (
            "repeated_total",
            "Heartbeats: the current frame sent again after refresh.",
            |s| s.repeated,
        ),
        (
            "junk_bytes_total",
            "Bytes outside frames, and of broken or cut frames.",
            |s| s.junk_bytes,
        ),
    ];
    for (name, help, get) in counters {
        family(
            name,
            "counter",
            help,
            &mut all
                .iter()
                .map(|(stream, s)| (format!("stream={stream}"), get(s).to_string())),
        );
    }
    family(
        "dropped_total",
        "counter",
        "Frames dropped, by reason: same (drop_same), oversize (max_frame), boundary.",
        &mut all.iter().flat_map(|(stream, s)| {
            [
                ("same", s.dropped_same),
                ("oversize", s.dropped_oversize),
                ("boundary", s.dropped_boundary),
            ]
            .map(|(reason, n)| (format!("stream={stream},reason=\"{reason}\""), n.to_string()))
        }),
    );
    family(
        "fps",
        "gauge",
        "Frames the input published a second lately.",
        &mut all
            .iter()
            .map(|(stream, s)| (format!("stream={stream}"), format!("{:.2}", s.fps))),
    );
    family(
        "frame_age_seconds",
        "gauge",
        "How old the stream's current frame is (no sample before the first frame).",
        &mut all.iter().filter_map(|(stream, s)| {
            s.frame_age
                .map(|age| (format!("stream={stream}"), format!("{:.3}", age.as_secs_f64())))
        }),
    );
    family(
        "waiting_snapshots",
        "gauge",
        "Snapshot requests waiting for the stream's first frame.",
        &mut all
            .iter()
            .map(|(stream, s)| (format!("stream={stream}"), s.waiting_snapshots.to_string())),
    );
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::routes::Route;
    use crate::routes::stats::Counters;
    use crate::stream::input::{Feed, LiveOptions};

    #[test]
    fn stats_metrics_and_the_snapshot_agree() {
        let mut routes = Routes::default();
        let stream = Rc::new(Stream::live("").unwrap());
        routes.add("/c\"am", Route::Stream(stream.clone()));
        routes.add(
            "/demo",
            Route::Stream(Rc::new(Stream::synthetic(1, b"x", 0, "").unwrap())),
        );
        let options = LiveOptions {
            fps: None,
            max_frame: 1024,
            drop_same: 1,
            refresh: 0,
        };
        let mut feed = Feed::new("/c\"am", "pipe", stream, options);
        let frame = b"\xff\xd8\xff\xda\x00\x02x\xff\xd9";
        feed.push_bytes(&[&frame[..], frame, b"junk"].concat(), 1_000_000);
        feed.offer(&[0; 2000], 1_000_000);
        let counters = Counters::default();
        let now = 3_500_000;
        let snapshot = counters.snapshot(now, &routes);
        let input = snapshot.stream("/c\"am").unwrap().input.clone().unwrap();
        assert_eq!((input.kind, input.state), ("pipe", "waiting"));
        assert_eq!((input.frames_in, input.published, input.dropped_same), (3, 1, 1));
        assert_eq!((input.dropped_oversize, input.junk_bytes), (1, 4));
        assert_eq!(input.frame_age, Some(Duration::from_millis(2500)));
        assert!(snapshot.stream("/demo").unwrap().input.is_none());

        let json = counters.to_json(now, &routes);
        let want = "\"inputs\":{\"/c\\\"am\":{\"kind\":\"pipe\",\"state\":\"waiting\",\"restarts\":0,\
                    \"frames_in\":3,\"bytes_in\":2022,\"published\":1,\"repeated\":0,\"dropped_same\":1,\
                    \"dropped_oversize\":1,\"dropped_boundary\":0,\"junk_bytes\":4,\"fps\":0.00,\
                    \"frame_age_s\":2.500,\"viewers\":0,\"waiting_snapshots\":0}}}\n";
        assert!(json.ends_with(want), "{json}");
        let metrics = counters.to_metrics(now, &routes);
        for line in [
            "mixreplace_input_state{stream=\"/c\\\"am\",state=\"waiting\"} 1\n",
            "mixreplace_input_state{stream=\"/c\\\"am\",state=\"running\"} 0\n",
            "mixreplace_input_frames_total{stream=\"/c\\\"am\"} 3\n",
            "mixreplace_input_dropped_total{stream=\"/c\\\"am\",reason=\"same\"} 1\n",
            "mixreplace_input_dropped_total{stream=\"/c\\\"am\",reason=\"oversize\"} 1\n",
            "mixreplace_input_frame_age_seconds{stream=\"/c\\\"am\"} 2.500\n",
        ] {
            assert!(metrics.contains(line), "{line} in\n{metrics}");
        }
    }
}
