//! The command line: flags in, a [`Builder`] out, each value checked with the flag's
//! name in the message (the builder checks its values again, for embedding programs).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use crate::embed::{self, Builder, MAX_TIMEOUT};
use crate::routes::proxies::Cidr;

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
                           testcard[,size=WxH][,fps=N][,quality=Q][,frames=N]
                                               JPEG test video made at start-up: bars,
                                               a moving box and the frame number, a loop
                                               of N frames (default 640x360, 10 fps,
                                               quality 80, 3 s of frames), X-Frame on
                                               each part
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

Logging and proxies:
  --access-log FILE|-    One line per finished request (a stream's when it ends) to
                         FILE (appended; SIGHUP reopens it, for logrotate) or to
                         stderr (-): the combined log format, then the seconds taken:
                         IP - USER [TIME] \"REQUEST\" STATUS BYTES \"REFERER\" \"AGENT\" SECS
  --trust-proxy CIDR     Trust the proxies at CIDR (IP or IP/PREFIX, v4 or v6;
                         repeatable): their requests' client address comes from
                         X-Forwarded-For (the rightmost untrusted entry). From anyone
                         else it is ignored.
  --forwarded-header NAME
                         The header the trusted proxies write: X-Forwarded-For
                         [default] or Forwarded (RFC 7239). Only that one is read.
  --proxy-protocol       Every connection starts with a PROXY protocol v1 or v2 header
                         (HAProxy's send-proxy, send-proxy-v2), read within the head
                         timeout; its address is the client's. Connections from peers
                         not trusted by --trust-proxy are closed unanswered.

  -h, --help             Print this help.
  -V, --version          Print the version.

Routes: each stream's PATH (GET, HEAD), GET /stats (JSON counters), GET /metrics
(Prometheus), GET /quit (with --allow-quit). Logs go to stderr; set RUST_LOG (default: info).
Exit codes: 0 after a graceful stop, 1 when the address cannot be used, 2 for a bad
command line or a stream that cannot start (a bad folder, script or standard input).";

#[derive(Debug)]
pub enum Command {
    /// Serve what the flags describe (the binary then turns on signals and the file
    /// descriptor limit raise: see `main.rs`). Boxed: a builder is hundreds of bytes.
    Run(Box<Builder>),
    Help,
    Version,
}

/// The flags, as a [`Builder`]; every error names the flag (and the value) at fault.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let mut builder = Builder::new().listen(([127, 0, 0, 1], 8080));
    let (mut trusts, mut proxy_protocol) = (false, false);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        builder = match arg {
            Long("listen") => {
                let value = string_value(&mut parser, "--listen")?;
                let addr: SocketAddr = value
                    .parse()
                    .map_err(|_| format!("invalid value '{value}' for --listen: expected IP:PORT"))?;
                builder.listen(addr)
            }
            Long("stream") => {
                let value = string_value(&mut parser, "--stream")?;
                let (path, spec) = value
                    .split_once('=')
                    .ok_or_else(|| format!("invalid value '{value}' for --stream: expected PATH=SPEC"))?;
                builder
                    .try_stream(path, spec)
                    .map_err(|e| format!("invalid value for --stream {}: {e}", path.escape_debug()))?;
                builder
            }
            Long("allow-quit") => builder.allow_quit(true),
            Long("max-clients") => {
                let value = string_value(&mut parser, "--max-clients")?;
                match value.parse::<usize>() {
                    Ok(n) if n > 0 => builder.max_clients(n),
                    _ => {
                        return Err(format!(
                            "invalid value '{value}' for --max-clients: expected a number above 0"
                        ));
                    }
                }
            }
            Long("auth") => {
                let value = string_value(&mut parser, "--auth")?;
                match value.split_once(':') {
                    Some((user, password)) if !value.contains(['\r', '\n']) => {
                        builder.basic_auth(user, password)
                    }
                    _ => return Err("invalid value for --auth: expected USER:PASS".into()),
                }
            }
            Long("allow-origin") => {
                let value = string_value(&mut parser, "--allow-origin")?;
                embed::check_origin(&value).map_err(|e| format!("invalid value for --allow-origin: {e}"))?;
                builder.allow_origin(&value)
            }
            Long("access-log") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                if value.is_empty() {
                    return Err("invalid value '' for --access-log: expected a file or -".into());
                }
                builder.access_log(value)
            }
            Long("trust-proxy") => {
                let value = string_value(&mut parser, "--trust-proxy")?;
                value
                    .parse::<Cidr>()
                    .map_err(|e| format!("invalid value for --trust-proxy: {e}"))?;
                trusts = true;
                builder.trust_proxy(&value)
            }
            Long("forwarded-header") => {
                let value = string_value(&mut parser, "--forwarded-header")?;
                match value.to_ascii_lowercase().as_str() {
                    "x-forwarded-for" | "forwarded" => builder.forwarded_header(&value),
                    _ => {
                        return Err(format!(
                            "invalid value '{value}' for --forwarded-header: expected X-Forwarded-For or Forwarded"
                        ));
                    }
                }
            }
            Long("proxy-protocol") => {
                proxy_protocol = true;
                builder.proxy_protocol(true)
            }
            Long("head-timeout") => builder.head_timeout(seconds(&mut parser, "--head-timeout")?),
            Long("send-timeout") => builder.send_timeout(seconds(&mut parser, "--send-timeout")?),
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            _ => return Err(arg.unexpected().to_string()),
        };
    }
    if proxy_protocol && !trusts {
        return Err(
            "--proxy-protocol needs --trust-proxy CIDR: the proxies allowed to send the header".into(),
        );
    }
    Ok(Command::Run(Box::new(builder)))
}

fn string_value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    parser
        .value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| format!("invalid value for {flag}: not UTF-8"))
}

/// A positive number of seconds, fractions allowed, up to a day.
fn seconds(parser: &mut lexopt::Parser, flag: &str) -> Result<Duration, String> {
    let value = string_value(parser, flag)?;
    match value.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= MAX_TIMEOUT.as_secs_f64() => {
            // At least a microsecond: the loop's unit.
            Ok(Duration::from_secs_f64(secs).max(Duration::from_micros(1)))
        }
        _ => Err(format!(
            "invalid value '{value}' for {flag}: expected seconds, more than 0 and at most 86400"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Builder, String> {
        match parse(args.iter().map(OsString::from))? {
            Command::Run(builder) => Ok(*builder),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn every_error_names_its_flag() {
        for (args, says) in [
            (
                &["--stream", "/a=demo", "--stream", "/a=demo"][..],
                "--stream /a: that path is already taken",
            ),
            (
                &["--stream", "a=demo"],
                "invalid value for --stream a: invalid path 'a'",
            ),
            (
                &["--stream", "/a"],
                "invalid value '/a' for --stream: expected PATH=SPEC",
            ),
            (
                &["--stream", "/a=stdin", "--stream", "/b=stdin"],
                "--stream /b: standard input already",
            ),
            (&["--auth", "nocolon"], "--auth: expected USER:PASS"),
            (&["--allow-origin", "a b"], "--allow-origin: invalid origin"),
            (
                &["--head-timeout", "86401"],
                "for --head-timeout: expected seconds",
            ),
            (
                &["--trust-proxy", "10.0.0.0/33"],
                "--trust-proxy: '10.0.0.0/33': the prefix length is at most 32",
            ),
            (
                &["--trust-proxy", "localhost"],
                "--trust-proxy: 'localhost' is not",
            ),
            (&["--proxy-protocol"], "--proxy-protocol needs --trust-proxy"),
            (
                &["--forwarded-header", "X-Real-IP"],
                "for --forwarded-header: expected",
            ),
            (&["--access-log", ""], "for --access-log: expected a file or -"),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(says), "{args:?}: {err}");
        }
        assert!(run(&["--head-timeout", "0.0000001", "--auth", "a:b:c"]).is_ok());
    }
}
