//! The command line: flags in, a [`Builder`] out, each value checked with the flag's
//! name in the message (the builder checks its values again, for embedding programs).

use std::ffi::OsString;
use std::time::Duration;

use crate::auth_file;
use crate::embed::{self, Builder, MAX_TIMEOUT};
use crate::routes::proxies::Cidr;
use crate::server::listen::ListenAddr;

/// The environment variable that holds `USER:PASS`, as `--auth` would (but out of `ps`).
pub const AUTH_VARIABLE: &str = "MIXREPLACE_AUTH";

pub const USAGE: &str = "\
Usage: mixreplace [OPTIONS]

Serves multipart/x-mixed-replace HTTP streams from one event loop.

Options:
  --listen ADDR          Address to listen on (repeatable): IP:PORT, [IPv6]:PORT or
                         unix:PATH [default: 127.0.0.1:8080, unless systemd passed
                         sockets]; port 0 picks a free port. Once the server is
                         ready, one line on stdout lists them all:
                         `listening on http://IP:PORT/ … unix:PATH`. With a proxy:
                         prefix (proxy:IP:PORT, proxy:unix:PATH) every connection
                         there starts with a PROXY protocol header (see
                         --proxy-protocol; on a unix socket, its mode says who may
                         send one).
  --unix-mode OCTAL      Permissions of the unix sockets made (660: owner and group may
                         connect) [default: from the umask].
  --unix-rm              Remove a stale socket file at a unix:PATH (nothing listening
                         on it); without, the server refuses to start. Socket files the
                         server made are removed when it stops.
  --reuse-port           SO_REUSEPORT on the TCP listeners: several servers share a
                         port, and the kernel spreads new clients over them.
  --systemd              Insist on sockets passed by systemd (socket activation:
                         LISTEN_FDS, LISTEN_PID). Without it they are used when passed.
  --stream PATH=SPEC     Serve SPEC at PATH (repeatable). Without any, / serves the demo.
                         PATH may hold spaces and any Unicode but ?, # and controls;
                         %XX escapes in it are decoded, as they are in requests.
                         SPEC is one of:
                           demo                the origin's 15-part demo (about 6.4 s)
                           script:FILE         a stream script (see the README)
                           dir:FOLDER[,fps=N][,loop=BOOL]
                                               the folder's images in name order, N a
                                               second (default 10), looping (default true)
                           stdin[,LIVE…]       live MJPEG piped into standard input
                                               (one stream at most; its end ends it)
                           pipe:FIFO[,LIVE…]   live MJPEG written into FIFO (mkfifo) by
                                               one writer after another; viewers stay
                                               connected between writers
                           exec[,OPTION…]:COMMAND
                                               live MJPEG from COMMAND's standard output
                                               (stderr logged). Options before the first
                                               ':', the command after it as written,
                                               commas and all; split into words as sh
                                               would, run without a shell. OPTION:
                                                 on_demand  run only while someone
                                                   watches, and idle=SECS after [10]
                                                 restart  start it again when it ends
                                                   (after 1 s, doubling to 30 s)
                                                 kill_timeout=SECS  SIGTERM to its
                                                   process group, SIGKILL after [2]
                                                 shell  run COMMAND with /bin/sh -c
                                                 and the LIVE options
                           relay:URL[,on_demand][,idle=SECS][,timeout=SECS]
                                 [,user=NAME,password=PW][,LIVE…]
                                               another multipart server's frames over one
                                               connection (http://[USER:PW@]HOST[:PORT]/
                                               PATH, up to the first comma), reconnecting
                                               1 s doubling to 30 s; on_demand: connect at
                                               the first viewer, close idle (10) s after
                                               the last; timeout (10): a stall
                           push[,token=SECRET][,LIVE…]
                                               frames a client PUTs or POSTs to PATH: a
                                               multipart body (ffmpeg -f mpjpeg -method
                                               PUT) or one JPEG a request (curl -T), 204
                                               after it; one publisher at a time (409);
                                               it gives --auth credentials, or the token
                                               (Authorization: Bearer SECRET or
                                               ?token=SECRET) when set; silent for the
                                               send timeout: let go
                           synthetic:parts=N,size=BYTES,interval=MS
                                               N parts of BYTES deterministic bytes, MS
                                               apart (0: as fast as the client reads)
                           testcard[,size=WxH][,fps=N][,quality=Q][,frames=N]
                                               JPEG test video made at start-up: bars,
                                               a moving box and the frame number, a loop
                                               of N frames (default 640x360, 10 fps,
                                               quality 80, 3 s of frames), X-Frame on
                                               each part
                         LIVE, the options of every live kind:
                           fps=N          publish at most N frames a second (newest wins)
                           max_frame=BYTES  drop larger frames [default: 8 MiB]
                           drop_same=N    skip up to N frames in a row identical to the
                                          current one [default: 0]
                           refresh=SECS   with no new frame for SECS, send the current
                                          one again [default: 1; 0: never]
                         Every scripted kind takes faults on purpose, to test clients
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
                         A push publisher that sends nothing this long is let go too.
  --live-unsent BYTES    Live viewers' unsent data at most [default: 8192]
                         (TCP_NOTSENT_LOWAT): a viewer on a slow link gets the newest
                         frame once its last one is on the wire, not seconds-old frames
                         from its socket's queue. 0: no limit.
  --held-frames-budget BYTES
                         Old frames of a live stream held by viewers still writing
                         them, at most [default: 67108864]; past it the viewers holding
                         the oldest are closed (held_frames in /stats).
  --keepalive-timeout SECS
                         How long a kept-alive connection may wait for its next request
                         [default: 5]. 2xx answers that are not streams keep the
                         connection open (HTTP/1.1, or 1.0 with Connection: keep-alive).
  --keepalive-requests N Requests per connection at most [default: 1000]; the last
                         answer says Connection: close. 1 turns keep-alive off.

Access:
  --auth-file FILE       Require HTTP Basic authentication on every route (401 without)
                         for the users in FILE: one user:password a line, # comments.
                         A warning if group or others can read FILE (chmod 600 it).
  MIXREPLACE_AUTH=USER:PASS
                         The same for one user, from the environment.
  --auth USER:PASS       The same on the command line, where ps shows it to every user
                         (a warning says so). Users from every source are accepted.
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
  --proxy-protocol       Every connection, on every listener, starts with a PROXY
                         protocol v1 or v2 header (HAProxy's send-proxy,
                         send-proxy-v2), read within the head timeout; its address is
                         the client's. Connections from peers not trusted by
                         --trust-proxy are closed unanswered. For some listeners
                         only: --listen proxy:ADDR.

  -h, --help             Print this help.
  -V, --version          Print the version.

Routes: each stream's PATH (GET, HEAD; PUT, POST too for a push stream), GET /stats
(JSON counters), GET /metrics (Prometheus), GET /quit (with --allow-quit); with one
stream, /stream and /snapshot too.
Logs go to stderr; set RUST_LOG (default: info).
Under systemd: sockets passed by socket activation are served; with NOTIFY_SOCKET set the
server sends READY=1, STATUS= (clients, viewers), WATCHDOG=1 (at half of WATCHDOG_USEC,
from the event loop) and STOPPING=1 (see contrib/ and the README).
Exit codes: 0 after a graceful stop, 1 when the address cannot be used, 2 for a bad
command line or a stream that cannot start (a bad folder, script, FIFO or standard input).";

// One `Command` is made per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Command {
    /// Serve what the flags describe (the binary then turns on signals and the file
    /// descriptor limit raise: see `main.rs`). Boxed: a builder is hundreds of bytes.
    Run(Box<Builder>),
    Help,
    Version,
}

/// The flags and [`AUTH_VARIABLE`], as a [`Builder`]; every error names the flag (and
/// the value) at fault.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    parse_with_env(args, std::env::var_os(AUTH_VARIABLE))
}

/// [`parse`], with the value of [`AUTH_VARIABLE`] given.
pub fn parse_with_env(
    args: impl IntoIterator<Item = OsString>,
    auth_variable: Option<OsString>,
) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let mut builder = Builder::new().fallback_listen(([127, 0, 0, 1], 8080).into());
    // `--unix-mode` and `--unix-rm` apply to `--listen unix:PATH`: alone they are a mistake.
    let (mut unix_listeners, mut unix_flag) = (0, None);
    // A PROXY header over TCP is read from trusted proxies only: `--trust-proxy` first.
    let (mut trusts, mut proxy_protocol, mut proxied_tcp) = (false, false, None);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        builder = match arg {
            Long("listen") => {
                let value = string_value(&mut parser, "--listen")?;
                let (proxy, addr) = match value.strip_prefix("proxy:") {
                    Some(addr) => (true, addr),
                    None => (false, value.as_str()),
                };
                let addr = addr
                    .parse()
                    .map_err(|e| format!("invalid value for --listen: {e}"))?;
                match (addr, proxy) {
                    (ListenAddr::Tcp(addr), false) => builder.listen(addr),
                    (ListenAddr::Unix(path), false) => {
                        unix_listeners += 1;
                        builder.listen_unix(path)
                    }
                    (addr, _) => {
                        match &addr {
                            ListenAddr::Tcp(tcp) => proxied_tcp = proxied_tcp.or(Some(*tcp)),
                            ListenAddr::Unix(_) => unix_listeners += 1,
                        }
                        builder.listen_proxy(addr)
                    }
                }
            }
            Long("unix-mode") => {
                let value = string_value(&mut parser, "--unix-mode")?;
                unix_flag = Some("--unix-mode");
                match u32::from_str_radix(&value, 8) {
                    Ok(mode) if mode <= 0o777 => builder.unix_mode(mode),
                    _ => {
                        return Err(format!(
                            "invalid value '{value}' for --unix-mode: expected octal permissions, 0 to 777"
                        ));
                    }
                }
            }
            Long("unix-rm") => {
                unix_flag = Some("--unix-rm");
                builder.unix_remove_stale(true)
            }
            Long("reuse-port") => builder.reuse_port(true),
            Long("systemd") => builder.require_listen_fd(true),
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
                        builder.basic_auth(user, password).warn_at_bind(
                            "--auth puts the password on the command line, where ps shows it to every \
                             user: use --auth-file FILE or MIXREPLACE_AUTH instead"
                                .to_owned(),
                        )
                    }
                    _ => return Err("invalid value for --auth: expected USER:PASS".into()),
                }
            }
            Long("auth-file") => {
                let path = parser.value().map_err(|e| e.to_string())?;
                let file = auth_file::read(path.as_ref())
                    .map_err(|e| format!("invalid value for --auth-file: {e}"))?;
                let builder = with_users(builder, &file.users);
                match file.warning {
                    Some(warning) => builder.warn_at_bind(warning),
                    None => builder,
                }
            }
            Long("allow-origin") => {
                let value = string_value(&mut parser, "--allow-origin")?;
                embed::check_origin(&value).map_err(|e| format!("invalid value for --allow-origin: {e}"))?;
                builder.allow_origin(&value)
            }
            Long("live-unsent") => {
                let value = string_value(&mut parser, "--live-unsent")?;
                let bytes = value.parse::<u32>().map_err(|_| {
                    format!("invalid value '{value}' for --live-unsent: expected bytes, 0 or more")
                })?;
                builder.live_unsent(bytes)
            }
            Long("held-frames-budget") => {
                let value = string_value(&mut parser, "--held-frames-budget")?;
                match value.parse::<usize>() {
                    Ok(n) if n > 0 => builder.held_frames_budget(n),
                    _ => {
                        return Err(format!(
                            "invalid value '{value}' for --held-frames-budget: expected bytes, above 0"
                        ));
                    }
                }
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
            Long("keepalive-timeout") => {
                builder.keepalive_timeout(seconds(&mut parser, "--keepalive-timeout")?)
            }
            Long("keepalive-requests") => {
                let value = string_value(&mut parser, "--keepalive-requests")?;
                match value.parse::<u32>() {
                    Ok(n) if n > 0 => builder.keepalive_requests(n),
                    _ => {
                        return Err(format!(
                            "invalid value '{value}' for --keepalive-requests: expected a number from 1 to 4294967295"
                        ));
                    }
                }
            }
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
    if let Some(addr) = proxied_tcp.filter(|_| !trusts) {
        return Err(format!(
            "--listen proxy:{addr} needs --trust-proxy CIDR: the proxies allowed to send the header"
        ));
    }
    if let Some(value) = auth_variable {
        let value = value
            .into_string()
            .map_err(|_| format!("invalid {AUTH_VARIABLE}: not UTF-8"))?;
        auth_file::check_pair(&value).map_err(|e| format!("invalid {AUTH_VARIABLE}: {e}"))?;
        builder = with_users(builder, &[value]);
    }
    if let Some(flag) = unix_flag.filter(|_| unix_listeners == 0) {
        return Err(format!(
            "{flag} applies to --listen unix:PATH, and none was given"
        ));
    }
    Ok(Command::Run(Box::new(builder)))
}

/// Adds each checked `user:password` to the builder's users.
fn with_users(builder: Builder, users: &[String]) -> Builder {
    users
        .iter()
        .fold(builder, |builder, pair| match pair.split_once(':') {
            Some((user, password)) => builder.basic_auth(user, password),
            None => builder,
        })
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
        match parse_with_env(args.iter().map(OsString::from), None)? {
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
            (&["--live-unsent", "-1"], "for --live-unsent: expected bytes"),
            (
                &["--held-frames-budget", "0"],
                "for --held-frames-budget: expected bytes",
            ),
            (
                &["--listen", "localhost:80"],
                "--listen: invalid address 'localhost:80': expected IP:PORT, [IPv6]:PORT or unix:PATH",
            ),
            (&["--listen", "unix:"], "--listen: invalid unix socket path ''"),
            (
                &["--listen", "unix:/tmp/x", "--unix-mode", "8"],
                "'8' for --unix-mode: expected octal",
            ),
            (
                &["--unix-mode", "660"],
                "--unix-mode applies to --listen unix:PATH",
            ),
            (&["--unix-rm"], "--unix-rm applies to --listen unix:PATH"),
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
                &["--listen", "proxy:127.0.0.1:0"],
                "--listen proxy:127.0.0.1:0 needs --trust-proxy",
            ),
            (
                &["--listen", "proxy:localhost:80"],
                "--listen: invalid address 'localhost:80': expected IP:PORT",
            ),
            (
                &["--forwarded-header", "X-Real-IP"],
                "for --forwarded-header: expected",
            ),
            (&["--access-log", ""], "for --access-log: expected a file or -"),
            (
                &["--keepalive-timeout", "0"],
                "for --keepalive-timeout: expected seconds",
            ),
            (
                &["--keepalive-requests", "0"],
                "'0' for --keepalive-requests: expected a number",
            ),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(says), "{args:?}: {err}");
        }
        assert!(run(&["--head-timeout", "0.0000001", "--auth", "a:b:c"]).is_ok());
    }

    #[test]
    fn the_auth_variable_is_checked_and_named() {
        let parse = |value: &str| parse_with_env(Vec::<OsString>::new(), Some(value.into()));
        assert!(matches!(parse("cam:secret"), Ok(Command::Run(_))));
        for (value, says) in [
            ("nocolon", "invalid MIXREPLACE_AUTH: expected user:password"),
            ("cam:", "invalid MIXREPLACE_AUTH: the password is empty"),
        ] {
            let err = parse(value).unwrap_err();
            assert_eq!(err, says);
        }
    }
}
