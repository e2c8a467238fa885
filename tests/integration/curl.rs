//! curl, a client we did not write: one `curl -sN` and 1,000 concurrent transfers.

use std::path::Path;
use std::process::Command;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::support::demo::check_demo;
use crate::support::multipart::{fetch_stream, parse_written};
use crate::support::process::{Output, run};
use crate::support::server::Server;
use crate::support::tools::require_tool;

const TRANSFERS: usize = 1000;
/// curl 7.x caps `--parallel-max` at 300 (it silently runs at most 300 at once), so the
/// 1,000 concurrent transfers are split over several curl processes, each with all of
/// its transfers in flight at once; the server's `peak_clients` proves they overlapped.
const PER_CURL: usize = 250;

#[test]
fn curl_gets_the_whole_stream_alone_and_1000_times_at_once() {
    let _alone = crate::support::heavy();
    let Some(curl) = require_tool(&["curl"], "curl") else {
        return;
    };
    let server = Server::start(&[]);
    let addr = server.addr();
    let url = format!("http://{addr}/");

    // Our own client alongside, for the exact size every transfer must report.
    let reference = thread::spawn(move || fetch_stream(addr, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"));
    let single = run_curl(&curl, &["-sN", &url], None, Duration::from_secs(30));
    let config: String = (0..PER_CURL)
        .map(|_| format!("url = \"{url}\"\noutput = \"/dev/null\"\n"))
        .collect();
    let parallel = PER_CURL.to_string();
    let bulk: Vec<JoinHandle<Output>> = (0..TRANSFERS / PER_CURL)
        .map(|_| {
            let args = [
                "-Z",
                "--parallel-immediate",
                "--parallel-max",
                &parallel,
                "-s",
                "-w",
                "%{http_code} %{size_download}\\n",
                "-K",
                "-",
            ];
            run_curl(&curl, &args, Some(config.clone()), Duration::from_secs(60))
        })
        .collect();

    // `curl -sN URL` exits 0 with the whole stream on stdout.
    let single = single.join().expect("curl -sN");
    assert!(
        single.status.success(),
        "curl -sN: {:?} {}",
        single.status,
        single.stderr_text()
    );
    let parts = parse_written(&single.stdout, "curl's");
    assert!(parts.stopped.is_none());
    check_demo(&parts.parts);
    let size = reference.join().expect("the reference client").raw.len();
    assert_eq!(
        single.stdout.len(),
        size,
        "curl -sN and our client got different sizes"
    );
    let expected_line = format!("200 {size}");
    for curl in bulk {
        let done = curl.join().expect("curl -Z");
        assert!(
            done.status.success(),
            "curl -Z: {:?} {}",
            done.status,
            done.stderr_text()
        );
        let out = done.stdout_text();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), PER_CURL, "transfers reported");
        let wrong: Vec<&&str> = lines.iter().filter(|l| **l != expected_line).collect();
        assert!(
            wrong.is_empty(),
            "expected {expected_line:?} from every transfer: {wrong:?}"
        );
    }
    let stats = server.stats();
    assert!(
        stats.get("peak_clients") >= TRANSFERS as u64,
        "the transfers did not overlap: {stats}"
    );
    assert_eq!(stats.get("streams"), TRANSFERS as u64 + 2, "{stats}");
}

/// Runs curl with `args` on a thread, so several run at once.
fn run_curl(curl: &Path, args: &[&str], input: Option<String>, limit: Duration) -> JoinHandle<Output> {
    let mut command = Command::new(curl);
    command.args(args);
    thread::spawn(move || run(&mut command, input.map(String::into_bytes), limit))
}
