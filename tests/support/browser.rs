//! Headless Chromium, driven over the DevTools protocol on a pipe (no extra crates):
//! pages opened at a size and closed, screenshots, JavaScript values.
//!
//! The browser runs in a process group of its own under a [`Guard`] (killed whole, with
//! its helpers, when dropped, and by its watchdog past the caller's limit) with a profile
//! in a [`Scratch`] folder; every answer is awaited for at most [`ANSWER_TIMEOUT`], and a
//! missing one fails the test with Chromium's log.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::Scratch;
use super::json;
use super::process::Guard;

/// The longest one DevTools command may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// A headless Chromium whose DevTools protocol runs over fds 3 (commands in) and 4
/// (answers out), NUL-separated JSON messages: `--remote-debugging-pipe`.
#[derive(Debug)]
pub struct Browser {
    to_browser: File,
    answers: mpsc::Receiver<String>,
    next_id: u64,
    log: PathBuf,
    // Dropped in this order: the process group first, then its profile.
    _process: Guard,
    _profile: Scratch,
}

impl Browser {
    /// Starts headless Chromium on `about:blank`; past `limit` its watchdog kills it.
    pub fn launch(chromium: &Path, limit: Duration) -> Browser {
        let profile = Scratch::new("chromium");
        let log = profile.join("stderr.log");
        let (commands_read, commands_write) = pipe();
        let (answers_read, answers_write) = pipe();
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.join("data").display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        let (child_in, child_out) = (raw(&commands_read), raw(&answers_write));
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                // Out of the way first, so that placing one cannot close the other.
                let high_in = libc::fcntl(child_in, libc::F_DUPFD_CLOEXEC, 10);
                let high_out = libc::fcntl(child_out, libc::F_DUPFD_CLOEXEC, 10);
                if high_in < 0 || high_out < 0 || libc::dup2(high_in, 3) < 0 || libc::dup2(high_out, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let process = Guard::spawn_group(&mut command, limit);
        // The browser's ends stay only in the browser, so its exit closes the pipes.
        drop((commands_read, answers_write));
        let (tx, answers) = mpsc::channel();
        thread::spawn(move || {
            use std::io::{BufRead, BufReader};
            for message in BufReader::new(answers_read).split(0) {
                let Ok(message) = message else { break };
                if tx.send(String::from_utf8_lossy(&message).into_owned()).is_err() {
                    break;
                }
            }
        });
        Browser {
            to_browser: commands_write,
            answers,
            next_id: 0,
            log,
            _process: process,
            _profile: profile,
        }
    }

    /// Sends a command (to a page when `session` is given) and returns its answer.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: &str) -> json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let session = session.map_or(String::new(), |s| format!(",\"sessionId\":\"{s}\""));
        let message = format!("{{\"id\":{id},\"method\":\"{method}\",\"params\":{params}{session}}}\0");
        self.to_browser.write_all(message.as_bytes()).unwrap();
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self.answers.recv_timeout(left).unwrap_or_else(|e| {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("no answer to {method}: {e}; chromium's log:\n{log}")
            });
            // Events (no id) and answers to nothing else we sent are skipped.
            let message = json::parse(&answer);
            if message.find("id") == Some(&json::Value::Num(id as f64)) {
                assert!(message.find("error").is_none(), "{method}: {answer}");
                return message;
            }
        }
    }

    /// Opens `url` in a new page of `width` × `height` CSS pixels at one device pixel
    /// each. Headless Chromium renders only the page opened last: screenshots of the
    /// others never come.
    pub fn open(&mut self, url: &str, width: u32, height: u32) -> Page {
        let target = self.call(None, "Target.createTarget", &format!("{{\"url\":\"{url}\"}}"));
        let target = target.get("result").str("targetId").to_owned();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            &format!("{{\"targetId\":\"{target}\",\"flatten\":true}}"),
        );
        let session = attached.get("result").str("sessionId").to_owned();
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            &format!("{{\"width\":{width},\"height\":{height},\"deviceScaleFactor\":1,\"mobile\":false}}"),
        );
        Page { target, session }
    }

    /// Closes a page.
    pub fn close(&mut self, page: Page) {
        let params = format!("{{\"targetId\":\"{}\"}}", page.target);
        self.call(None, "Target.closeTarget", &params);
    }

    /// A PNG screenshot of the page.
    pub fn screenshot(&mut self, page: &Page) -> Vec<u8> {
        let shot = self.call(
            Some(&page.session),
            "Page.captureScreenshot",
            "{\"format\":\"png\"}",
        );
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            shot.get("result").str("data"),
        )
        .expect("a base64 screenshot")
    }

    /// The value of the JavaScript `expression` in the page (returned by value); `Null`
    /// for `undefined`, and a thrown exception fails the test.
    pub fn evaluate(&mut self, page: &Page, expression: &str) -> json::Value {
        let params = format!("{{\"expression\":{expression:?},\"returnByValue\":true}}");
        let answer = self.call(Some(&page.session), "Runtime.evaluate", &params);
        let result = answer.get("result");
        assert!(
            result.find("exceptionDetails").is_none(),
            "{expression}: {result:?}"
        );
        result
            .get("result")
            .find("value")
            .cloned()
            .unwrap_or(json::Value::Null)
    }
}

/// A page (a DevTools target) and the session attached to it.
#[derive(Debug)]
pub struct Page {
    target: String,
    session: String,
}

fn pipe() -> (File, File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by nothing else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

fn raw(file: &File) -> i32 {
    std::os::fd::AsRawFd::as_raw_fd(file)
}
