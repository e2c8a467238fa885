//! The command line: flags in, a validated configuration out.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::clock::Micros;
use crate::http;
use crate::routes::access::Access;
use crate::routes::{Route, Routes};
use crate::server::Config;
use crate::server::conn::Limits;
use crate::stream::spec::StreamSpec;

pub const USAGE: &str = "\
Usage: mixreplace [OPTIONS]

Serves multipart/x-mixed-replace HTTP streams from one event loop.

Options:
  --listen ADDR          Address to listen on [default: 127.0.0.1:8080]; port 0 picks a
                         free port. The line `listening on http://IP:PORT/` on stdout
                         says where, once the server is ready.
  --stream PATH=SPEC     Serve SPEC at PATH (repeatable). Without any, / serves the demo.
                         PATH may hold spaces and any Unicode but ?, # and controls;
                         %XX escapes in it are decoded, as they are in requests.
                         SPEC is one of:
                           demo                the origin's 15-part demo (about 6.4 s)
                           script:FILE         a stream script (see the README)
                           dir:FOLDER[,fps=N][,loop=BOOL]
                                               the folder's images in name order, N a
                                               second (default 10), looping (default true)
                           stdin[,fps=N][,max_frame=BYTES]
                                               live MJPEG piped into standard input, at
                                               most N frames a second; frames over
                                               BYTES (default 8 MiB) are dropped
                           synthetic:parts=N,size=BYTES,interval=MS
                                               N parts of BYTES deterministic bytes, MS
                                               apart (0: as fast as the client reads)
                         Every kind but stdin takes faults on purpose, to test clients
                         with the malformed streams real devices send: ,fault=NAME
                         (repeatable; never applied unless asked for), NAME one of
                           no_first_boundary  dashed_boundary  quoted_boundary
                           no_length  bare_delimiter  lf_only  duplicate_length
                           wrong_length=±N@PART  jpeg_trailer  no_close  busy_page
                           stall=MS@PART  reset@PART  truncate@PART  chunked
                           drip=BYTES/MS
                         PART counts the parts a client is sent, from 1; the README
                         says what each one sends and which clients break on it.
  --allow-quit           GET /quit answers 202 and stops the server gracefully.

Limits:
  --max-clients N        Open connections at most [default: the file descriptor limit,
                         raised to its hard limit, less 64]; past it clients get 503
                         with Retry-After.
  --head-timeout SECS    Time allowed for the request head [default: 10] (then 408).
  --send-timeout SECS    Close a connection whose writes make no progress this long
                         [default: 30]. A connection holds at most one part in flight
                         (shared, not copied): a slow reader makes its own timeline wait.

Access:
  --auth USER:PASS       Require HTTP Basic authentication on every route (401 without).
  --allow-origin ORIGIN  Send CORS headers allowing ORIGIN (or *); answer preflights.

  -h, --help             Print this help.
  -V, --version          Print the version.

Routes: each stream's PATH (GET, HEAD), GET /stats (JSON counters), GET /metrics
(Prometheus), GET /quit (with --allow-quit). Logs go to stderr; set RUST_LOG (default: info).
Exit codes: 0 after a graceful stop, 1 when the address cannot be used, 2 for a bad
command line or a stream that cannot start (a bad folder, script or standard input).";

#[derive(Debug)]
pub enum Command {
    Run(Options),
    Help,
    Version,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub config: Config,
    /// `None`: derived from the file descriptor limit at start-up.
    pub max_clients: Option<usize>,
    pub allow_quit: bool,
    pub streams: Vec<(String, StreamSpec)>,
}

impl Options {
    /// Builds every stream (encoding its parts once) and the routing table.
    pub fn routes(&self) -> Result<Routes, String> {
        let mut routes = Routes::default();
        let headers = self.config.access.headers();
        for (path, spec) in &self.streams {
            let stream = spec.build(headers)?;
            routes.add(path, Route::Stream(Rc::new(stream)));
        }
        routes.add("/stats", Route::Stats);
        routes.add("/metrics", Route::Metrics);
        routes.add("/view", Route::View);
        if self.allow_quit {
            routes.add("/quit", Route::Quit);
        }
        Ok(routes)
    }
}

/// Paths the server answers itself, which a stream cannot take.
const RESERVED: [&str; 4] = ["/stats", "/metrics", "/view", "/quit"];

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let (mut credentials, mut origin) = (None, None);
    let mut options = Options {
        config: Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            limits: Limits::default(),
            max_clients: usize::MAX,
            access: Access::default(),
            live: None,
        },
        max_clients: None,
        allow_quit: false,
        streams: Vec::new(),
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("listen") => {
                let value = string_value(&mut parser, "--listen")?;
                options.config.listen = value
                    .parse()
                    .map_err(|_| format!("invalid value '{value}' for --listen: expected IP:PORT"))?;
            }
            Long("stream") => {
                let value = string_value(&mut parser, "--stream")?;
                let (path, spec) = parse_stream(&value, &options.streams)?;
                if let StreamSpec::Stdin(live) = spec {
                    if options.config.live.is_some() {
                        return Err(format!(
                            "--stream {path}: standard input already feeds another stream"
                        ));
                    }
                    options.config.live = Some(live);
                }
                options.streams.push((path, spec));
            }
            Long("allow-quit") => options.allow_quit = true,
            Long("max-clients") => {
                let value = string_value(&mut parser, "--max-clients")?;
                match value.parse::<usize>() {
                    Ok(n) if n > 0 => options.max_clients = Some(n),
                    _ => {
                        return Err(format!(
                            "invalid value '{value}' for --max-clients: expected a number above 0"
                        ));
                    }
                }
            }
            Long("auth") => {
                let value = string_value(&mut parser, "--auth")?;
                if !value.contains(':') || value.contains(['\r', '\n']) {
                    return Err("invalid value for --auth: expected USER:PASS".into());
                }
                credentials = Some(value);
            }
            Long("allow-origin") => {
                let value = string_value(&mut parser, "--allow-origin")?;
                if value.is_empty() || value.contains(|c: char| c.is_ascii_control() || c == ' ') {
                    return Err(format!(
                        "invalid value '{value}' for --allow-origin: expected an origin or *"
                    ));
                }
                origin = Some(value);
            }
            Long("head-timeout") => {
                options.config.limits.head_timeout = seconds(&mut parser, "--head-timeout")?
            }
            Long("send-timeout") => {
                options.config.limits.send_timeout = seconds(&mut parser, "--send-timeout")?
            }
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    options.config.access = Access::new(credentials.as_deref(), origin.as_deref());
    if options.streams.is_empty() {
        options.streams.push(("/".to_owned(), StreamSpec::Demo));
    }
    Ok(Command::Run(options))
}

fn string_value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    parser
        .value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| format!("invalid value for {flag}: not UTF-8"))
}

fn parse_stream(value: &str, taken: &[(String, StreamSpec)]) -> Result<(String, StreamSpec), String> {
    let (written, spec) = value
        .split_once('=')
        .ok_or_else(|| format!("invalid value '{value}' for --stream: expected PATH=SPEC"))?;
    // Decoded as request paths are, so `/my cam` and `/my%20cam` name the same stream and
    // routes compare decoded paths on both sides. A raw `?` or `#` would end the path in
    // a URL: written here it is a mistake, not a path.
    let path = match http::percent_decode(written) {
        Some(path) if written.starts_with('/') && !written.contains(['?', '#']) => path.into_owned(),
        _ => {
            return Err(format!(
                "invalid path '{}' for --stream: must start with / and hold no ?, #, control \
                 character or bad %-escape (write % as %25)",
                written.escape_debug()
            ));
        }
    };
    if RESERVED.contains(&path.as_str()) || taken.iter().any(|(p, _)| *p == path) {
        return Err(format!("--stream {path}: that path is already taken"));
    }
    let spec = StreamSpec::parse(spec).map_err(|e| format!("invalid value for --stream {path}: {e}"))?;
    Ok((path, spec))
}

/// A positive number of seconds, fractions allowed, up to a day.
fn seconds(parser: &mut lexopt::Parser, flag: &str) -> Result<Micros, String> {
    let value = string_value(parser, flag)?;
    match value.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok((secs * 1e6).round() as Micros),
        _ => Err(format!(
            "invalid value '{value}' for {flag}: expected seconds, more than 0 and at most 86400"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_paths_are_decoded_like_request_paths() {
        let path = |written: &str| parse_stream(&format!("{written}=demo"), &[]).map(|(path, _)| path);
        for (written, decoded) in [
            ("/my cam", "/my cam"),
            ("/my%20cam", "/my cam"),
            ("/caméra", "/caméra"),
            ("/cam{1}", "/cam{1}"),
            ("/100%25", "/100%"),
            ("/a%3Fb", "/a?b"),
        ] {
            assert_eq!(path(written).as_deref(), Ok(decoded), "{written}");
        }
        for bad in ["cam", "/a?b", "/a#b", "/100%", "/a%zz", "/a%00", "/a\tb", "/%FF"] {
            let err = path(bad).unwrap_err();
            assert!(err.starts_with("invalid path"), "{bad}: {err}");
        }
        let taken = [("/my cam".to_owned(), StreamSpec::Demo)];
        for same in ["/my%20cam=demo", "/st%61ts=demo"] {
            let taken = if same.starts_with("/my") { &taken[..] } else { &[] };
            let err = parse_stream(same, taken).unwrap_err();
            assert!(err.ends_with("that path is already taken"), "{same}: {err}");
        }
    }
}
