//! `MIXREPLACE_BENCH_ONLY=proxies`: the delay nginx and HAProxy add to each part, run
//! from the documented configurations (`contrib/`, started by the tests' own helpers),
//! in front of one server, against the same stream straight from it.
//!
//! A part's delay is its arrival minus its `X-Timestamp` (the moment it was due), on the
//! same host clock; what a proxy adds is its delay less the direct one. Two clients:
//! - `mixreplace-load`, many viewers, plain HTTP (it speaks no TLS): the proxies' plain
//!   listeners on loopback;
//! - curl over https (a few viewers, TLS at the proxy; straight to the server over plain
//!   HTTP), its raw output (`-i --raw`, chunks and all) parsed by the load generator's
//!   own parser as it arrives through a pipe.
//!
//! Routes take turns within each round, so the machine's other load falls on all alike.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;

use mixreplace::load::multipart::{Parsed, Parser};
use mixreplace::load::report::Histogram;

use crate::Settings;
use crate::machine::loadavg;
use crate::servers::{LoadPlan, json_num, mixreplace, run_load, start};
use crate::support::now_us;
use crate::support::proxy::{Cert, Kind, Proxy};
use crate::table::{fmt_num, median};

const PATH: &str = "/p";
/// Parts of about a small camera frame, 20 a second, for 8 s.
const STREAM: &str = "/p=synthetic:parts=160,size=20000,interval=50";
const CURL_VIEWERS: usize = 4;

/// One route's delays over the rounds, in ms: (p50, p99) per run.
struct Row {
    route: String,
    client: &'static str,
    runs: Vec<(f64, f64)>,
}

/// Runs the section; the table, or why it could not run.
pub fn run_proxies(settings: &Settings) -> Result<String, String> {
    let cert = Cert::new().ok_or("openssl is missing")?;
    let server = start(&mixreplace(), &[STREAM], settings.server_cpu())?;
    let direct = format!("127.0.0.1:{}", server.port)
        .parse()
        .map_err(|e| format!("{e}"))?;
    let proxies: Vec<Proxy> = [Kind::Nginx, Kind::Haproxy]
        .into_iter()
        .filter_map(|kind| Proxy::start(kind, &[direct], &cert))
        .collect();
    let viewers = if settings.quick { 100 } else { 500 };
    eprintln!(
        "\nProxies: {STREAM}, {viewers} mixreplace-load viewers and {CURL_VIEWERS} curl viewers a route \
         (load average {})",
        loadavg()
    );
    let plan = LoadPlan::to_end(viewers, 500);
    let mut routes: Vec<(String, Option<&Proxy>)> = vec![("direct".into(), None)];
    routes.extend(proxies.iter().map(|p| (format!("{:?}", p.kind), Some(p))));
    let mut rows: Vec<Row> = Vec::new();
    for (name, _) in &routes {
        for client in ["mixreplace-load, plain HTTP", "curl, https at the proxy"] {
            rows.push(Row {
                route: name.clone(),
                client,
                runs: Vec::new(),
            });
        }
    }
    for round in 0..settings.runs {
        for (i, (name, proxy)) in routes.iter().enumerate() {
            let port = proxy.map_or(server.port, |p| p.plain_addr().port());
            let (json, _) = run_load(port, PATH, plan, settings.client_cpu())?;
            let completed = json_num(&json, "completed").unwrap_or(0.0);
            let p50 = json_num(&json, "lateness_ms.p50").ok_or("no lateness")?;
            let p99 = json_num(&json, "lateness_ms.p99").ok_or("no lateness")?;
            eprintln!(
                "  round {} {name} load: {completed} completed, p50 {p50} ms, p99 {p99} ms",
                round + 1
            );
            rows[2 * i].runs.push((p50, p99));
            let url = proxy.map_or_else(
                || format!("http://127.0.0.1:{}{PATH}", server.port),
                |p| p.https_url(PATH),
            );
            let delays = curl_delays(&url, &cert)?;
            let (p50, p99) = (ms(delays.percentile(50.0)), ms(delays.percentile(99.0)));
            eprintln!(
                "  round {} {name} curl: {} parts, p50 {p50} ms, p99 {p99} ms",
                round + 1,
                delays.count()
            );
            rows[2 * i + 1].runs.push((p50, p99));
        }
    }
    Ok(table(&rows, viewers))
}

fn ms(us: Option<u64>) -> f64 {
    us.map_or(f64::NAN, |us| us as f64 / 1000.0)
}

/// [`CURL_VIEWERS`] curl processes reading `url` at once; every part's delay, in µs.
fn curl_delays(url: &str, cert: &Cert) -> Result<Histogram, String> {
    let viewers: Vec<thread::JoinHandle<Result<Vec<u64>, String>>> = (0..CURL_VIEWERS)
        .map(|_| {
            let mut command = Command::new("curl");
            command
                .args(["-sS", "-N", "-i", "--raw", "--max-time", "60", "--cacert"])
                .arg(cert.cert())
                .arg(url)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            thread::spawn(move || read_curl(command))
        })
        .collect();
    let mut all = Histogram::default();
    for viewer in viewers {
        for delay in viewer.join().map_err(|_| "a curl reader panicked")?? {
            all.record(delay);
        }
    }
    Ok(all)
}

/// Runs one curl to its end, timing each part as its last byte comes out of the pipe;
/// every part's delay, in µs.
fn read_curl(mut command: Command) -> Result<Vec<u64>, String> {
    let mut child = command.spawn().map_err(|e| format!("curl: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("curl's stdout")?;
    let (mut parser, mut delays, mut buf) = (Parser::new(), Vec::new(), vec![0; 64 * 1024]);
    let result = loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break Err("curl's output ended before the closing delimiter".to_string()),
            Ok(n) => n,
            Err(e) => break Err(format!("reading curl: {e}")),
        };
        let now = now_us();
        let mut on_part = |headers: mixreplace::load::multipart::PartHeaders| {
            if let Some(due) = headers.timestamp {
                delays.push(now.saturating_sub(due));
            }
        };
        match parser.feed(&buf[..n], &mut on_part) {
            Ok(Parsed::Complete) => break Ok(()),
            Ok(Parsed::Partial) => {}
            Err(e) => break Err(format!("curl's output: {e}")),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result.map(|()| delays)
}

/// Median over the runs of each route's p50 and p99, and what each proxy adds.
fn table(rows: &[Row], viewers: u32) -> String {
    let mut out = String::from(
        "| route | client | delay p50 | delay p99 | added p50 | added p99 |\n|---|---|---|---|---|---|\n",
    );
    let medians = |row: &Row| {
        let p50: Vec<f64> = row.runs.iter().map(|r| r.0).collect();
        let p99: Vec<f64> = row.runs.iter().map(|r| r.1).collect();
        (median(&p50).unwrap_or(f64::NAN), median(&p99).unwrap_or(f64::NAN))
    };
    for row in rows {
        let (p50, p99) = medians(row);
        let base = rows
            .iter()
            .find(|r| r.route == "direct" && r.client == row.client)
            .map(medians);
        let added = |v: f64, b: f64| {
            if row.route == "direct" {
                "—".to_string()
            } else {
                format!("{} ms", fmt_num(v - b, 2))
            }
        };
        let (a50, a99) = base.map_or(("?".into(), "?".into()), |(b50, b99)| {
            (added(p50, b50), added(p99, b99))
        });
        out.push_str(&format!(
            "| {} | {} | {} ms | {} ms | {a50} | {a99} |\n",
            row.route,
            row.client,
            fmt_num(p50, 2),
            fmt_num(p99, 2)
        ));
    }
    out.push_str(&format!(
        "\nmixreplace-load: {viewers} viewers, plain HTTP (the proxies' loopback listeners). curl: \
         {CURL_VIEWERS} viewers, https at the proxies, plain HTTP direct. Stream `{STREAM}`. Delay: \
         arrival minus `X-Timestamp`; medians over the rounds.\n"
    ));
    out
}
