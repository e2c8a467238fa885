//! `--stream PATH=SPEC`: what each kind of stream asks for, and how it is built.
//!
//! A spec reads `KIND[:ARG][,key=value…]`. Everything a stream serves is read and encoded
//! here, at start-up, so a bad folder, file or standard input is refused before the
//! server listens.
//!
//! `fault=NAME` (repeatable) is an option of every kind but `stdin`: it is taken out
//! before the kind reads its options, and the spec wraps the kind's
//! ([`StreamSpec::WithFaults`]); see `fault` for the names.
//!
//! Start-up memory: a scripted stream keeps every part in memory, so every kind that
//! reads files shares the scripts' caps — [`MAX_FILE`] per file, [`MAX_PARTS`] parts and
//! [`MAX_TOTAL_BYTES`] of bodies per stream — and holds each body once while it starts
//! (`Stream::scripted` drops each body as it encodes it). A folder is measured from its
//! metadata before any image is read, so one over the caps costs no memory at all.
//! Only regular files are opened (a FIFO would block start-up): a folder's FIFOs,
//! devices and subfolders are skipped, as its files of other types are. A testcard's
//! frames, encoded here too, count against the same caps (see `testcard`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::clock::Micros;
use crate::stream::fault::Faults;
use crate::stream::input::exec_spec::EXEC_OPTIONS;
use crate::stream::input::push::PushSpec;
use crate::stream::input::relay::RelaySpec;
use crate::stream::input::upstream::RelayUrl;
use crate::stream::input::{ExecConfig, InputSpec, LiveOptions, Source};
use crate::stream::script::{self, MAX_FILE, MAX_PARTS, MAX_TOTAL_BYTES};
use crate::stream::testcard::{self, TestcardConfig};
use crate::stream::{PartSpec, Stream};

/// The largest synthetic part: it is held in memory once, shared by all clients.
const MAX_SYNTHETIC_SIZE: u64 = 64 << 20;
/// Frames a second, from one every 1000 s to 1000 a second: a frame's delay is then 1 ms
/// to 1000 s, within the day a script's wait may last, so the timeline's arithmetic in
/// microseconds cannot overflow (a tiny fps once made a delay of `u64::MAX` ms).
const MIN_FPS: f64 = 0.001;
const MAX_FPS: f64 = 1000.0;
/// The default cap on one live frame: far above a 4K JPEG, far below memory trouble.
const DEFAULT_MAX_FRAME: u64 = 8 << 20;
const MAX_MAX_FRAME: u64 = 256 << 20;
/// The live heartbeat's default: µStreamer's, and below every proxy's read timeout.
const DEFAULT_REFRESH_SECS: f64 = 1.0;
/// The options every live kind takes (see [`parse_live`]).
pub(crate) const LIVE_OPTIONS: [&str; 4] = ["fps", "max_frame", "drop_same", "refresh"];

#[derive(Clone, Debug, PartialEq)]
pub enum StreamSpec {
    Demo,
    Synthetic {
        parts: u64,
        size: usize,
        interval_ms: u64,
    },
    Dir {
        dir: PathBuf,
        fps: f64,
        repeat: bool,
    },
    /// A stream script (see `script`).
    Script(PathBuf),
    /// A live stream, fed by an input (see `input`).
    Live(InputSpec),
    /// JPEG frames drawn and encoded at start-up, played in a loop.
    Testcard(TestcardConfig),
    /// Another kind, with faults on purpose.
    WithFaults(Box<StreamSpec>, Faults),
}

/// A spec split into its kind, its argument and its `key=value` options.
struct Pieces<'a> {
    kind: &'a str,
    arg: Option<&'a str>,
    options: Vec<(&'a str, &'a str)>,
}

impl<'a> Pieces<'a> {
    fn split(text: &'a str) -> Result<Self, String> {
        let kind_end = text.find([':', ',']).unwrap_or(text.len());
        let (kind, rest) = text.split_at(kind_end);
        let mut items = rest
            .get(1..)
            .unwrap_or("")
            .split(',')
            .filter(|i| !i.is_empty())
            .peekable();
        let arg = if rest.starts_with(':') {
            items.next_if(|item| !item.contains('='))
        } else {
            None
        };
        // A bare word is a flag set (`on_demand`): its value is empty, which only
        // `flag` accepts; any other option given so is refused by its own parser.
        let options = items
            .map(|item| item.split_once('=').unwrap_or((item, "")))
            .collect();
        Ok(Pieces { kind, arg, options })
    }

    fn refuse_unknown(&self, known: &[&str]) -> Result<(), String> {
        match self.options.iter().find(|(key, _)| !known.contains(key)) {
            None => Ok(()),
            Some((key, _)) if known.is_empty() => Err(format!("{}: unknown option '{key}'", self.kind)),
            Some((key, _)) => Err(format!(
                "{}: unknown option '{key}' (expected {})",
                self.kind,
                known.join(", ")
            )),
        }
    }

    fn option(&self, key: &str) -> Option<&'a str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    fn number(&self, key: &str) -> Result<Option<u64>, String> {
        self.option(key)
            .map(|value| {
                value
                    .parse()
                    .map_err(|_| format!("{}: {key} must be a whole number, got '{value}'", self.kind))
            })
            .transpose()
    }

    fn required(&self, key: &str) -> Result<u64, String> {
        self.number(key)?
            .ok_or_else(|| format!("{}: {key}= is required", self.kind))
    }

    fn fps(&self, default: f64) -> Result<f64, String> {
        let Some(value) = self.option("fps") else {
            return Ok(default);
        };
        match value.parse::<f64>() {
            Ok(fps) if (MIN_FPS..=MAX_FPS).contains(&fps) => Ok(fps),
            _ => Err(format!(
                "{}: fps must be a number from {MIN_FPS} to {MAX_FPS}, got '{value}'",
                self.kind
            )),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.option(key) {
            None => Ok(default),
            Some("" | "true" | "yes" | "1") => Ok(true),
            Some("false" | "no" | "0") => Ok(false),
            Some(value) => Err(format!(
                "{}: {key} must be true or false, got '{value}'",
                self.kind
            )),
        }
    }
}

impl StreamSpec {
    pub fn parse(text: &str) -> Result<StreamSpec, String> {
        if let Some(rest) = text.strip_prefix("relay:") {
            return parse_relay(rest);
        }
        // `exec`'s command is everything after the first ':', commas and all: it is
        // not split into options like the other kinds' specs.
        if let Some(rest) = text
            .strip_prefix("exec")
            .filter(|rest| rest.is_empty() || rest.starts_with([',', ':']))
        {
            return parse_exec(rest);
        }
        let mut pieces = Pieces::split(text)?;
        let (faults, options) = pieces.options.into_iter().partition(|(key, _)| *key == "fault");
        pieces.options = options;
        let spec = StreamSpec::parse_kind(&pieces)?;
        let faults = Faults::parse(faults.iter().map(|(_, value): &(_, &str)| *value))
            .map_err(|e| format!("{}: {e}", pieces.kind))?;
        match spec {
            _ if faults.is_empty() => Ok(spec),
            StreamSpec::Live(input) => Err(format!(
                "{}: faults apply to scripted streams, not to live ones",
                input.source.kind()
            )),
            spec => Ok(StreamSpec::WithFaults(Box::new(spec), faults)),
        }
    }

    fn parse_kind(pieces: &Pieces<'_>) -> Result<StreamSpec, String> {
        match pieces.kind {
            "demo" => {
                pieces.refuse_unknown(&[])?;
                match pieces.arg {
                    None => Ok(StreamSpec::Demo),
                    Some(_) => Err("demo takes no argument".into()),
                }
            }
            "synthetic" => parse_synthetic(pieces),
            "dir" => {
                pieces.refuse_unknown(&["fps", "loop"])?;
                let dir = pieces.arg.ok_or("dir: expected dir:FOLDER")?;
                Ok(StreamSpec::Dir {
                    dir: PathBuf::from(dir),
                    fps: pieces.fps(10.0)?,
                    repeat: pieces.flag("loop", true)?,
                })
            }
            "script" => {
                pieces.refuse_unknown(&[])?;
                let file = pieces.arg.ok_or("script: expected script:FILE")?;
                Ok(StreamSpec::Script(PathBuf::from(file)))
            }
            "stdin" => {
                if pieces.arg.is_some() {
                    return Err(
                        "stdin takes no argument (options: fps, max_frame, drop_same, refresh)".into(),
                    );
                }
                parse_live(pieces, Source::Stdin, &[])
            }
            "pipe" => {
                let path = pieces.arg.ok_or("pipe: expected pipe:PATH (a FIFO)")?;
                parse_live(pieces, Source::Pipe(PathBuf::from(path)), &[])
            }
            "relay" => Err("relay: expected relay:http://[USER:PASSWORD@]HOST[:PORT]/PATH".into()),
            "push" => {
                if pieces.arg.is_some() {
                    return Err(
                        "push takes no argument (options: token, fps, max_frame, drop_same, refresh)".into(),
                    );
                }
                let token = pieces.option("token").map(str::to_owned);
                if token.as_deref() == Some("") {
                    return Err("push: token= must not be empty".into());
                }
                parse_live(pieces, Source::Push(PushSpec { token }), &["token"])
            }
            "testcard" => {
                pieces.refuse_unknown(&["size", "fps", "quality", "frames"])?;
                if pieces.arg.is_some() {
                    return Err("testcard takes no argument (options: size, fps, quality, frames)".into());
                }
                let config = TestcardConfig::new(
                    pieces.option("size"),
                    pieces.fps(testcard::DEFAULT_FPS)?,
                    pieces.number("quality")?,
                    pieces.number("frames")?,
                )?;
                Ok(StreamSpec::Testcard(config))
            }
            kind => Err(format!(
                "unknown stream kind '{kind}' (expected demo, dir, script, stdin, pipe, exec, relay:URL, push, synthetic or testcard)"
            )),
        }
    }

    /// Reads and encodes the stream; `extra`: header lines every response head carries.
    pub fn build(&self, extra: &str) -> Result<Stream, String> {
        let stream = match self {
            StreamSpec::Demo => Stream::scripted(demo_parts(), 0, None, extra),
            StreamSpec::Synthetic {
                parts,
                size,
                interval_ms,
            } => Stream::synthetic(*parts, &synthetic_body(*size), *interval_ms, extra),
            StreamSpec::Dir { dir, fps, repeat } => {
                // `fps` is within [MIN_FPS, MAX_FPS]: 1 to 1,000,000 ms.
                let delay_ms = (1000.0 / fps).round() as u64;
                let parts = load_images(dir, delay_ms)?;
                Stream::scripted(parts, 0, repeat.then_some(0), extra)
            }
            StreamSpec::Script(file) => {
                // The script's own message already reads FILE:LINE: what is wrong.
                let script = script::load(file).map_err(|e| e.to_string())?;
                Stream::scripted(script.parts, script.lead_ms, script.loop_from, extra)
            }
            StreamSpec::Live(input) => {
                let kind = input.source.kind();
                input.source.check().map_err(|e| format!("{kind}: {e}"))?;
                match &input.source {
                    Source::Push(spec) => Stream::pushed(extra, spec, input.options.max_frame),
                    _ => Stream::live(extra),
                }
            }
            StreamSpec::Testcard(config) => {
                let frames = testcard::encode_frames(config)?;
                Stream::numbered_loop(frames, config.interval(), extra)
            }
            StreamSpec::WithFaults(spec, faults) => {
                return spec.build(extra)?.with_faults(faults.clone(), extra);
            }
        };
        stream.map_err(|e| e.to_string())
    }
}

/// `exec[,OPTION…]:COMMAND` (`rest`: what follows `exec`), with the live options among
/// its own.
fn parse_exec(rest: &str) -> Result<StreamSpec, String> {
    let (config, options) = ExecConfig::parse(rest)?;
    if options.iter().any(|(key, _)| *key == "fault") {
        return Err("exec: faults apply to scripted streams, not to live ones".into());
    }
    let pieces = Pieces {
        kind: "exec",
        arg: None,
        options,
    };
    parse_live(&pieces, Source::Exec(config), &EXEC_OPTIONS)
}

/// A live kind's spec: `source`, and the options every live kind shares (`fps`,
/// `max_frame`, `drop_same`, `refresh`) besides the kind's own, `known` (which the kind
/// reads from `pieces` itself).
fn parse_live(pieces: &Pieces<'_>, source: Source, known: &[&str]) -> Result<StreamSpec, String> {
    let kind = pieces.kind;
    let mut all = LIVE_OPTIONS.to_vec();
    all.extend_from_slice(known);
    pieces.refuse_unknown(&all)?;
    let fps = pieces
        .option("fps")
        .is_some()
        .then(|| pieces.fps(0.0))
        .transpose()?;
    let max_frame = pieces.number("max_frame")?.unwrap_or(DEFAULT_MAX_FRAME);
    if !(1024..=MAX_MAX_FRAME).contains(&max_frame) {
        return Err(format!("{kind}: max_frame must be from 1024 to {MAX_MAX_FRAME}"));
    }
    let drop_same = pieces.number("drop_same")?.unwrap_or(0);
    let drop_same =
        u32::try_from(drop_same).map_err(|_| format!("{kind}: drop_same must be at most {}", u32::MAX))?;
    let refresh = match pieces.option("refresh") {
        None => DEFAULT_REFRESH_SECS,
        Some(value) => match value.parse::<f64>() {
            Ok(secs) if (0.0..=86_400.0).contains(&secs) => secs,
            _ => {
                return Err(format!(
                    "{kind}: refresh must be seconds from 0 (never) to 86400, got '{value}'"
                ));
            }
        },
    };
    let options = LiveOptions {
        fps,
        max_frame: max_frame as usize,
        drop_same,
        refresh: (refresh * 1e6).round() as Micros,
    };
    Ok(StreamSpec::Live(InputSpec { source, options }))
}

/// `relay:URL[,options]`. The URL runs to the first comma (write a comma in it as `%2C`),
/// so that its query may hold `=` and `&` (`?action=stream`).
fn parse_relay(rest: &str) -> Result<StreamSpec, String> {
    const OWN: [&str; 5] = ["on_demand", "idle", "timeout", "user", "password"];
    let (url, options) = rest.split_once(',').unwrap_or((rest, ""));
    let url = RelayUrl::parse(url).map_err(|e| format!("relay: {e}"))?;
    let text = format!("relay,{options}");
    let pieces = Pieces::split(&text)?;
    let credentials = match (pieces.option("user"), pieces.option("password")) {
        (Some(user), password) => Some(format!("{user}:{}", password.unwrap_or(""))),
        (None, Some(_)) => return Err("relay: password= needs user=".into()),
        (None, None) => None,
    };
    let seconds = |key: &str, default: f64| match pieces.option(key) {
        None => Ok((default * 1e6) as Micros),
        Some(value) => match value.parse::<f64>() {
            Ok(secs) if (0.001..=86_400.0).contains(&secs) => Ok((secs * 1e6).round() as Micros),
            _ => Err(format!(
                "relay: {key} must be seconds from 0.001 to 86400, got '{value}'"
            )),
        },
    };
    let spec = RelaySpec {
        url,
        credentials,
        on_demand: pieces.flag("on_demand", false)?,
        idle: seconds("idle", 10.0)?,
        timeout: seconds("timeout", 10.0)?,
    };
    parse_live(&pieces, Source::Relay(Box::new(spec)), &OWN)
}

fn parse_synthetic(pieces: &Pieces<'_>) -> Result<StreamSpec, String> {
    pieces.refuse_unknown(&["parts", "size", "interval"])?;
    let parts = pieces.required("parts")?;
    let size = pieces.required("size")?;
    let interval_ms = pieces.required("interval")?;
    if parts == 0 {
        return Err("synthetic: parts must be at least 1".into());
    }
    if size > MAX_SYNTHETIC_SIZE {
        return Err(format!("synthetic: size must be at most {MAX_SYNTHETIC_SIZE}"));
    }
    if interval_ms > 86_400_000 {
        return Err("synthetic: interval must be at most a day (86400000 ms)".into());
    }
    Ok(StreamSpec::Synthetic {
        parts,
        size: size as usize,
        interval_ms,
    })
}

/// The content type of an image file, from its extension.
pub fn image_type(path: &Path) -> Option<&'static str> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        _ => return None,
    })
}

/// The image files of a folder, in name order, each shown for `delay_ms`; see the
/// module doc for the caps and the files skipped.
fn load_images(dir: &Path, delay_ms: u64) -> Result<Vec<PartSpec>, String> {
    let shown = dir.display();
    let entries = fs::read_dir(dir).map_err(|e| format!("dir:{shown}: {e}"))?;
    // `fs::metadata` follows symlinks and opens nothing.
    let mut files: Vec<(PathBuf, &str, u64)> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| image_type(&path).map(|t| (path, t)))
        .filter_map(|(path, t)| {
            let meta = fs::metadata(&path).ok()?;
            meta.is_file().then_some((path, t, meta.len()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "dir:{shown}: no image files (jpg, jpeg, png, gif, webp, bmp, svg)"
        ));
    }
    check_folder_caps(&files).map_err(|e| format!("dir:{shown}: {e}"))?;
    let mut total: u64 = 0;
    files
        .into_iter()
        .map(|(path, content_type, _)| {
            // Checks again, before opening, what may have changed since the listing.
            let body = script::read_body_file(&path).map_err(|e| format!("dir:{shown}: {e}"))?;
            total += body.len() as u64;
            if total > MAX_TOTAL_BYTES {
                return Err(format!("dir:{shown}: {}", over_total(total)));
            }
            Ok(PartSpec::new(content_type, body, delay_ms))
        })
        .collect()
}

/// The caps, checked on the listing's sizes before any image is read.
fn check_folder_caps(files: &[(PathBuf, &str, u64)]) -> Result<(), String> {
    if files.len() > MAX_PARTS {
        return Err(format!("more than {MAX_PARTS} images (the limit for a stream)"));
    }
    if let Some((path, _, len)) = files.iter().find(|(_, _, len)| *len > MAX_FILE) {
        return Err(format!(
            "{} is {} MiB, larger than {} MiB (the limit for one file)",
            path.display(),
            mib(*len),
            mib(MAX_FILE)
        ));
    }
    // At most MAX_PARTS lengths of at most MAX_FILE each: the sum fits in a u64.
    let total: u64 = files.iter().map(|(_, _, len)| len).sum();
    if total > MAX_TOTAL_BYTES {
        return Err(over_total(total));
    }
    Ok(())
}

fn over_total(total: u64) -> String {
    format!(
        "the images add up to {} MiB, more than the {} MiB a stream may hold in memory",
        mib(total),
        mib(MAX_TOTAL_BYTES)
    )
}

/// Whole MiB, rounded up (so a size just over a cap never reads as equal to it).
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// Deterministic, recognisable filler: the bytes `0, 1, …, 250, 0, 1, …` (251 is prime,
/// so the pattern does not line up with power-of-two buffer sizes).
pub fn synthetic_body(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// The origin's demo, part for part and delay for delay (about 6.4 s in all).
pub fn demo_parts() -> Vec<PartSpec> {
    const PNG: &[u8] = include_bytes!("../demo.png");
    let mut parts = Vec::with_capacity(15);
    for _ in 0..3 {
        parts.push(PartSpec::new("text/plain", "Hello,       text       ", 500));
        parts.push(PartSpec::new("text/plain", "       plain      world!", 500));
    }
    parts.push(PartSpec::new("image/png", PNG, 1000));
    // The "typewriter": 0, 1, … all the words, then all of them again with the image.
    let words = ["Hello,", "the", "<i>wonderful</i>", "world", "of", "HTML!"];
    let heading = |n: usize| format!("<!doctype html><h1>{}</h1>", words[..n].join(" "));
    for n in 0..=words.len() {
        parts.push(PartSpec::new("text/html", heading(n), 300));
    }
    let image = format!(
        "{}\r\n<img src=\"data:image/png;base64,{}\">",
        heading(words.len()),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, PNG)
    );
    parts.push(PartSpec::new("text/html", image, 300));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_has_the_origins_parts_and_delays() {
        let parts = demo_parts();
        assert_eq!(parts.len(), 15);
        let total: u64 = parts.iter().map(|p| p.delay_ms).sum();
        assert_eq!(total, 6400);
        assert_eq!(parts[0].body, b"Hello,       text       ");
        assert_eq!(parts[5].body, b"       plain      world!");
        assert!(parts[6].body.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(parts[7].body, b"<!doctype html><h1></h1>");
        assert_eq!(
            parts[13].body,
            b"<!doctype html><h1>Hello, the <i>wonderful</i> world of HTML!</h1>"
        );
        assert!(parts[14].body.ends_with(b"\">"));
    }

    #[test]
    fn parses_the_kinds() {
        assert_eq!(StreamSpec::parse("demo"), Ok(StreamSpec::Demo));
        let synthetic = StreamSpec::Synthetic {
            parts: 3,
            size: 10,
            interval_ms: 0,
        };
        assert_eq!(
            StreamSpec::parse("synthetic:parts=3,size=10,interval=0"),
            Ok(synthetic)
        );
        let dir = StreamSpec::Dir {
            dir: "frames".into(),
            fps: 2.5,
            repeat: false,
        };
        assert_eq!(StreamSpec::parse("dir:frames,fps=2.5,loop=false"), Ok(dir));
        let dir = StreamSpec::Dir {
            dir: "f".into(),
            fps: 10.0,
            repeat: true,
        };
        assert_eq!(StreamSpec::parse("dir:f"), Ok(dir));
        let live = |source, options| Ok(StreamSpec::Live(InputSpec { source, options }));
        let options = LiveOptions {
            fps: Some(5.0),
            max_frame: 4096,
            drop_same: 3,
            refresh: 2_500_000,
        };
        assert_eq!(
            StreamSpec::parse("stdin,fps=5,max_frame=4096,drop_same=3,refresh=2.5"),
            live(Source::Stdin, options)
        );
        let defaults = LiveOptions {
            fps: None,
            max_frame: 8 << 20,
            drop_same: 0,
            refresh: 1_000_000,
        };
        assert_eq!(StreamSpec::parse("stdin"), live(Source::Stdin, defaults));
        assert_eq!(
            StreamSpec::parse("pipe:/run/cam,refresh=0"),
            live(
                Source::Pipe("/run/cam".into()),
                LiveOptions {
                    refresh: 0,
                    ..defaults
                }
            )
        );
        let card = TestcardConfig {
            width: 320,
            height: 240,
            fps: 25.0,
            quality: 90,
            frames: 50,
        };
        assert_eq!(
            StreamSpec::parse("testcard,size=320x240,fps=25,quality=90,frames=50"),
            Ok(StreamSpec::Testcard(card))
        );
        let defaults = TestcardConfig::new(None, 10.0, None, None).unwrap();
        assert_eq!(StreamSpec::parse("testcard"), Ok(StreamSpec::Testcard(defaults)));
        assert_eq!(synthetic_body(253)[251..], [0, 1]);
    }

    #[test]
    fn explains_what_is_wrong() {
        for (spec, says) in [
            ("video", "unknown stream kind 'video'"),
            ("demo:x", "demo takes no argument"),
            ("demo,fps=1", "demo: unknown option 'fps'"),
            ("synthetic:parts=3,size=10", "interval= is required"),
            (
                "synthetic:parts=x,size=1,interval=1",
                "parts must be a whole number",
            ),
            ("synthetic:parts=0,size=1,interval=1", "at least 1"),
            (
                "synthetic:parts=1,size=1,interval=1,fps=2",
                "unknown option 'fps'",
            ),
            ("synthetic:parts=1,size", "size must be a whole number, got ''"),
            ("dir", "expected dir:FOLDER"),
            ("dir:x,fps=0", "fps must be a number from 0.001 to 1000"),
            ("dir:x,fps=0.0009", "fps must be a number from 0.001 to 1000"),
            ("dir:x,fps=1e-300", "fps must be a number from 0.001 to 1000"),
            ("dir:x,fps=1000.1", "fps must be a number from 0.001 to 1000"),
            ("dir:x,fps=NaN", "fps must be a number from 0.001 to 1000"),
            ("stdin,fps=inf", "fps must be a number from 0.001 to 1000"),
            ("dir:x,loop=maybe", "loop must be true or false"),
            ("stdin:x", "stdin takes no argument"),
            ("script", "expected script:FILE"),
            ("stdin,max_frame=10", "max_frame must be from 1024"),
            ("stdin,fps=-1", "fps must be a number from 0.001 to 1000"),
            (
                "stdin,refresh=-1",
                "stdin: refresh must be seconds from 0 (never) to 86400",
            ),
            ("stdin,refresh=soon", "stdin: refresh must be seconds"),
            ("stdin,drop_same=x", "stdin: drop_same must be a whole number"),
            ("stdin,size=1", "stdin: unknown option 'size'"),
            ("pipe", "pipe: expected pipe:PATH"),
            ("pipe:/x,max_frame=1", "pipe: max_frame must be from 1024"),
            ("testcard:x", "testcard takes no argument"),
            ("testcard,speed=2", "testcard: unknown option 'speed'"),
            (
                "testcard,fps=0",
                "testcard: fps must be a number from 0.001 to 1000",
            ),
            (
                "testcard,quality=high",
                "testcard: quality must be a whole number",
            ),
            ("testcard,size=1x1", "testcard: size must be WIDTHxHEIGHT"),
            ("testcard,frames=-3", "testcard: frames must be a whole number"),
        ] {
            let err = StreamSpec::parse(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }

    #[test]
    fn every_scripted_kind_takes_faults_and_live_input_does_not() {
        let faults = |texts: &[&str]| Faults::parse(texts.iter().copied()).unwrap();
        assert_eq!(
            StreamSpec::parse("demo,fault=no_length,fault=stall=10@2"),
            Ok(StreamSpec::WithFaults(
                Box::new(StreamSpec::Demo),
                faults(&["no_length", "stall=10@2"])
            ))
        );
        let dir = StreamSpec::Dir {
            dir: "f".into(),
            fps: 2.0,
            repeat: true,
        };
        assert_eq!(
            StreamSpec::parse("dir:f,fault=chunked,fps=2"),
            Ok(StreamSpec::WithFaults(Box::new(dir), faults(&["chunked"])))
        );
        for (spec, says) in [
            ("stdin,fault=chunked", "stdin: faults apply to scripted streams"),
            ("pipe:/x,fault=chunked", "pipe: faults apply to scripted streams"),
            ("demo,fault=nope", "demo: unknown fault 'nope'"),
            (
                "script:x,fault=reset",
                "script: fault 'reset': expected reset@PART",
            ),
            ("synthetic:parts=1,size=1,interval=0,fault", "unknown fault ''"),
        ] {
            let err = StreamSpec::parse(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
        // What depends on the stream is checked when it is built.
        for (spec, says) in [
            (
                "demo,fault=reset@16",
                "fault reset@16: the stream has only 15 parts",
            ),
            (
                "synthetic:parts=2,size=3,interval=0,fault=wrong_length=-4@2",
                "fault wrong_length=-4@2: the part has only 3 bytes",
            ),
        ] {
            let err = StreamSpec::parse(spec).unwrap().build("").unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
        let built = StreamSpec::parse("synthetic:parts=2,size=3,interval=0,fault=wrong_length=-3@2");
        assert_eq!(built.unwrap().build("").unwrap().faults().len(), 1);
    }

    #[test]
    fn a_folder_plays_its_images_in_name_order() {
        let dir = std::env::temp_dir().join(format!("mixreplace-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in [("b.PNG", "2"), ("a.jpg", "1"), ("c.svg", "3"), ("notes.txt", "x")] {
            std::fs::write(dir.join(name), body).unwrap();
        }
        let parts = load_images(&dir, 100).unwrap();
        let got: Vec<_> = parts
            .iter()
            .map(|p| (p.content_type.as_str(), p.body.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("image/jpeg", &b"1"[..]),
                ("image/png", b"2"),
                ("image/svg+xml", b"3")
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load_images(&dir, 100).unwrap_err().starts_with("dir:"));
    }
}

#[cfg(test)]
mod relay_tests {
    use super::*;

    fn relay(text: &str) -> Result<(RelaySpec, LiveOptions), String> {
        match StreamSpec::parse(text)? {
            StreamSpec::Live(InputSpec {
                source: Source::Relay(spec),
                options,
            }) => Ok((*spec, options)),
            other => panic!("not a relay: {other:?}"),
        }
    }

    #[test]
    fn relay_specs() {
        // The URL runs to the first comma: its query keeps `=` and `&`.
        let (spec, options) =
            relay("relay:http://192.168.4.1:81/stream?action=stream&x=1,on_demand,idle=2.5,fps=5").unwrap();
        assert_eq!(spec.url.target, "/stream?action=stream&x=1");
        assert_eq!(
            (spec.on_demand, spec.idle, spec.timeout),
            (true, 2_500_000, 10_000_000)
        );
        assert_eq!(options.fps, Some(5.0));
        let (spec, _) = relay("relay:http://u:p@cam/,user=admin,password=x").unwrap();
        assert_eq!(spec.credentials.as_deref(), Some("admin:x"));
        assert_eq!(spec.url.credentials.as_deref(), Some("u:p"));
        for (bad, says) in [
            ("relay", "relay: expected relay:http://"),
            ("relay:https://cam/", "only http:// is supported"),
            ("relay:http://cam/,password=x", "password= needs user="),
            ("relay:http://cam/,timeout=0", "timeout must be seconds"),
            (
                "relay:http://cam/,on_demand=maybe",
                "on_demand must be true or false",
            ),
            ("relay:http://cam/,size=1", "unknown option 'size'"),
        ] {
            let error = StreamSpec::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}

#[cfg(test)]
mod push_tests {
    use super::*;
    use crate::stream::Live;

    #[test]
    fn parses_push_with_its_token_and_the_live_options() {
        let pushed = |text: &str| match StreamSpec::parse(text) {
            Ok(StreamSpec::Live(input)) => Ok((input.source, input.options.max_frame, input.options.fps)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let open = Source::Push(PushSpec::default());
        assert_eq!(pushed("push"), Ok((open, DEFAULT_MAX_FRAME as usize, None)));
        let token = Source::Push(PushSpec {
            token: Some("s3cr3t".into()),
        });
        assert_eq!(
            pushed("push,token=s3cr3t,max_frame=2048,fps=5"),
            Ok((token, 2048, Some(5.0)))
        );
        assert!(
            pushed("push,token=")
                .unwrap_err()
                .contains("token= must not be empty")
        );
        assert!(pushed("push:x").unwrap_err().contains("push takes no argument"));
        assert!(pushed("push,tokn=1").is_err());
        assert!(
            pushed("push,fault=busy_page")
                .unwrap_err()
                .contains("faults apply")
        );
        let stream = StreamSpec::parse("push,token=t").unwrap().build("").unwrap();
        let port = stream.as_live().and_then(Live::push_port).unwrap();
        assert_eq!(
            (port.token(), port.max_frame()),
            (Some("t"), DEFAULT_MAX_FRAME as usize)
        );
    }
}
