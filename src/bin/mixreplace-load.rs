//! `mixreplace-load`: arguments, logger, then `mixreplace::load::run`.

use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use mixreplace::load::{self, LoadConfig};

const HELP: &str = "\
Usage: mixreplace-load --url http://127.0.0.1:PORT/PATH [options]

Opens N connections to a multipart/x-mixed-replace server on this machine, reads every
stream to its closing delimiter (--BOUNDARY--) and reports clients, parts, bytes, part
lateness (arrival minus the part's X-Timestamp, same host clock), frames dropped (gaps in
each client's X-Frame numbers), connect and first-byte times and throughput. Parts without
X-Timestamp or X-Frame are counted, with no lateness and no frame number.
A progress line goes to stderr each second; the final report to stdout.

Options:
  --url URL                 http://HOST[:PORT][/PATH]; HOST must be a loopback address:
                            127.x.x.x, [::1] or localhost (required; anything else is refused)
  -c, --clients N           connections to open [default: 1]
  --ramp-ms MS              spread the connects evenly over MS milliseconds
                            [default: 0: all at once]
  --timeout-s S             stop after S seconds; streams still open (or not yet started)
                            then fail as \"timeout\" [default: 60]
  --connect-timeout-ms MS   a connect not done after MS fails as \"connect_timeout\"
                            [default: 10000]
  --sources N               for a 127.x.x.x target, bind the clients round-robin to the
                            N source addresses 127.0.0.2 .. 127.0.0.(N+1), each with its
                            own ~28k ephemeral ports; 1 = no bind (IPv6: always no bind)
                            [default: 8]
  --json                    print the final report as one JSON object instead of the table
  -q, --quiet               no progress line
  -h, --help                print this help
  -V, --version             print the version

Exit status: 0 if every client saw its closing delimiter, 1 otherwise, 2 for a usage error.

Failure reasons: connect_refused, connect_error, connect_timeout, reset (read/write error
after connect), eof (stream ended before the closing delimiter), bad_status (not 200),
bad_framing (not a well-formed multipart/x-mixed-replace response), timeout.

The JSON report: one object on one line, every key always present, in this order.
  clients               clients wanted (--clients)
  connected             clients whose TCP connect completed
  completed             clients that saw the closing delimiter
  failed_total          clients that failed; completed + failed_total == clients
  failed                {reason: count} for every failure reason above, zeros included
  bad_status_codes      {\"CODE\": count} of the bad_status answers, by status code
  parts                 parts received whole
  timestamped_parts     parts among those with a readable X-Timestamp
  early_parts           timestamped parts that arrived before their X-Timestamp
                        (their lateness counts as 0)
  numbered_parts        parts among those with a readable X-Frame
  dropped_frames        frames missing between the X-Frame numbers each client got (its
                        first number starts the count), summed over clients
  clients_with_drops    clients that missed at least one frame
  out_of_order_frames   numbered parts whose X-Frame was not above the client's previous
                        one (a repeat, or a server that counts again; counting goes on
                        from there)
  bytes                 bytes received, HTTP heads included
  lateness_ms           part arrival minus X-Timestamp, over the timestamped parts,
  connect_ms            connect start to TCP connected,
  first_byte_ms         connect start to the first response byte: each an object
                        {p50, p90, p99, max} in milliseconds (percentiles at most 1/128
                        above the true value), its members null without samples
  duration_s            wall time of the run, seconds
  throughput_mb_per_s   bytes / duration_s / 1e6
  parts_per_s           parts / duration_s

Logging: RUST_LOG=debug (default warn).
";

struct Args {
    config: LoadConfig,
    json: bool,
}

/// Parses `--flag VALUE` into `T`, checking `ok`; errors name the flag.
fn value<T: FromStr>(
    parser: &mut lexopt::Parser,
    flag: &str,
    ok: impl Fn(&T) -> bool,
    expected: &str,
) -> Result<T, String> {
    let raw = parser.value().map_err(|_| format!("missing value for {flag}"))?;
    let text = raw.to_string_lossy();
    text.parse::<T>()
        .ok()
        .filter(|v| ok(v))
        .ok_or_else(|| format!("invalid value {text:?} for {flag}: expected {expected}"))
}

/// `Ok(None)` when --help or --version was printed.
fn parse_args() -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut url = None;
    let mut clients = 1;
    let mut ramp_ms = 0;
    let mut timeout_s = 60.0;
    let mut connect_timeout_ms = 10_000;
    let mut sources = 8;
    let mut json = false;
    let mut quiet = false;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("url") => url = Some(value::<String>(&mut parser, "--url", |_| true, "a URL")?),
            Short('c') | Long("clients") => {
                clients = value(&mut parser, "--clients", |&n| n >= 1, "1 ..= 4294967295")?;
            }
            Long("ramp-ms") => {
                ramp_ms = value(&mut parser, "--ramp-ms", |&n| n <= 86_400_000, "0 ..= 86400000")?;
            }
            Long("timeout-s") => {
                timeout_s = value(
                    &mut parser,
                    "--timeout-s",
                    |&s: &f64| s > 0.0 && s <= 86_400.0,
                    "seconds, > 0 and <= 86400",
                )?;
            }
            Long("connect-timeout-ms") => {
                connect_timeout_ms = value(
                    &mut parser,
                    "--connect-timeout-ms",
                    |&n| (1..=86_400_000).contains(&n),
                    "1 ..= 86400000",
                )?;
            }
            Long("sources") => {
                sources = value(&mut parser, "--sources", |&n| (1..=254).contains(&n), "1 ..= 254")?;
            }
            Long("json") => json = true,
            Short('q') | Long("quiet") => quiet = true,
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(None);
            }
            Short('V') | Long("version") => {
                println!("mixreplace-load {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    let url = url.ok_or("missing --url")?;
    let target = load::parse_url(&url).map_err(|e| format!("--url {url}: {e}"))?;
    let mut config = LoadConfig::new(target);
    config.clients = clients;
    config.ramp = Duration::from_millis(ramp_ms);
    config.timeout = Duration::from_secs_f64(timeout_s);
    config.connect_timeout = Duration::from_millis(connect_timeout_ms);
    config.sources = sources;
    config.progress = !quiet;
    Ok(Some(Args { config, json }))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mixreplace-load: {e}");
            eprintln!("Usage: mixreplace-load --url http://127.0.0.1:PORT/PATH [options] (see --help)");
            return ExitCode::from(2);
        }
    };
    match load::run(&args.config) {
        Ok(report) => {
            if args.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.table());
            }
            if report.all_completed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("mixreplace-load: cannot run the event loop: {e}");
            ExitCode::FAILURE
        }
    }
}
