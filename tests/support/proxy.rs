//! nginx and HAProxy in front of the server, with TLS at the proxy: a self-signed
//! certificate made by `openssl` ([`Cert`]), and each proxy ([`Proxy`]) started on free
//! loopback ports from the configuration the README documents, `contrib/nginx.conf` and
//! `contrib/haproxy.cfg`, with only its addresses, ports and certificate paths replaced.
//!
//! Invariants:
//! - the documented file is the one run: each value replaced must occur exactly once in
//!   it, so a change to the file that the tests no longer match fails them loudly instead
//!   of testing something else;
//! - everything a proxy writes (its configuration, logs, temporary files, pid file) is in
//!   its [`Scratch`] folder; the proxy runs in a process group of its own, killed whole
//!   (nginx's workers too) and reaped when the [`Proxy`] is dropped;
//! - ports are picked free just before the proxy starts; a proxy that loses one to another
//!   test in between is started again on new ones, a bounded number of times.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use super::process::{Guard, run};
use super::tools::{TOOL_LIMIT, require_tool};
use super::{IO_TIMEOUT, Scratch, wait_for};

/// No proxy outlives this, whatever its test does.
const PROXY_LIMIT: Duration = Duration::from_secs(300);
/// How long a proxy may take to listen on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Starts on fresh ports after losing one to another program.
const START_ATTEMPTS: usize = 3;
const NGINX_SITE: &str = include_str!("../../contrib/nginx.conf");
const HAPROXY_CFG: &str = include_str!("../../contrib/haproxy.cfg");

/// A self-signed certificate for `localhost` (P-256, one day), in a scratch folder.
#[derive(Debug)]
pub struct Cert {
    scratch: Scratch,
}

impl Cert {
    /// Made by `openssl req -x509`; `None` (the test skips) without openssl.
    pub fn new() -> Option<Cert> {
        let openssl = require_tool(&["openssl"], "openssl")?;
        let scratch = Scratch::new("cert");
        let cert = Cert { scratch };
        let (key, crt) = (cert.key(), cert.cert());
        let mut command = Command::new(openssl);
        command
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&crt);
        let done = run(&mut command, None, TOOL_LIMIT);
        assert!(done.status.success(), "openssl req: {}", done.stderr_text());
        // HAProxy takes one PEM file: the certificate, then its key.
        let pem = [std::fs::read(&crt).unwrap(), std::fs::read(&key).unwrap()].concat();
        std::fs::write(cert.pem(), pem).expect("write the PEM bundle");
        Some(cert)
    }

    /// The certificate alone: what a client trusts (`curl --cacert`, ffmpeg `-ca_file`).
    pub fn cert(&self) -> PathBuf {
        self.scratch.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.scratch.join("key.pem")
    }

    /// Certificate and key in one file, for HAProxy's `crt`.
    pub fn pem(&self) -> PathBuf {
        self.scratch.join("site.pem")
    }
}

/// Which proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Haproxy,
}

impl Kind {
    fn program(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
        }
    }

    /// The Debian package that has it.
    fn package(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx-light",
            Kind::Haproxy => "haproxy",
        }
    }
}

/// A running proxy: TLS on one loopback port, plain HTTP on another, in front of the
/// given servers.
#[derive(Debug)]
pub struct Proxy {
    process: Guard,
    pub kind: Kind,
    https: SocketAddr,
    plain: SocketAddr,
    /// Holds the configuration, the log (`stderr`) and nginx's temporary files.
    scratch: Scratch,
}

impl Proxy {
    /// `kind` in front of `servers`, with TLS from `cert`; `None` (the test skips) when
    /// the proxy is not installed.
    pub fn start(kind: Kind, servers: &[SocketAddr], cert: &Cert) -> Option<Proxy> {
        let program = require_tool(&[kind.program()], kind.package())?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let scratch = Scratch::new(kind.program());
            let (https, plain) = (free_addr(), free_addr());
            let site = Site {
                https,
                plain,
                servers,
                cert,
            };
            let config = match kind {
                Kind::Nginx => nginx_config(&scratch, &site),
                Kind::Haproxy => haproxy_config(&scratch, &site),
            };
            let mut command = proxy_command(kind, &program, &scratch, &config);
            let process = Guard::spawn_group(&mut command, PROXY_LIMIT);
            let mut proxy = Proxy {
                process,
                kind,
                https,
                plain,
                scratch,
            };
            match proxy.wait_listening() {
                Ok(()) => return Some(proxy),
                Err(log) if log.contains("Address already in use") => last = log,
                Err(log) => panic!("{} did not start; its log:\n{log}", kind.program()),
            }
        }
        panic!(
            "{} lost its ports {START_ATTEMPTS} times; last log:\n{last}",
            kind.program()
        )
    }

    /// `https://localhost:PORT{path}`: the name the certificate is for.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https.port())
    }

    /// The plain-HTTP listener on loopback (for `mixreplace-load`, which speaks no TLS).
    pub fn plain_addr(&self) -> SocketAddr {
        self.plain
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.join("stderr")).unwrap_or_default()
    }

    /// Waits until both ports accept; the log if the proxy exits first.
    fn wait_listening(&mut self) -> Result<(), String> {
        let (https, plain) = (self.https, self.plain);
        let mut exited = None;
        wait_for(
            &format!("{} to listen", self.kind.program()),
            READY_TIMEOUT,
            || {
                if !self.process.is_running() {
                    exited = Some(self.log());
                    return Ok(());
                }
                match (accepts(https), accepts(plain)) {
                    (true, true) => Ok(()),
                    answer => Err(format!("(https, plain) accepting: {answer:?}")),
                }
            },
        );
        exited.map_or(Ok(()), Err)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            eprintln!(
                "--- {}'s last log lines ---\n{}",
                self.kind.program(),
                tail.join("\n")
            );
        }
    }
}

/// The command that runs `kind` in the foreground on `config`, its output in the
/// scratch folder's `stderr`.
fn proxy_command(kind: Kind, program: &Path, scratch: &Scratch, config: &Path) -> Command {
    let log = File::create(scratch.join("stderr")).expect("create the proxy's log");
    let mut command = Command::new(program);
    match kind {
        Kind::Nginx => {
            let prefix = format!("{}/", scratch.path().display());
            let globals = format!(
                "daemon off; pid {}; error_log stderr;",
                scratch.join("nginx.pid").display()
            );
            command
                .args(["-p", &prefix, "-c"])
                .arg(config)
                .args(["-g", &globals]);
        }
        Kind::Haproxy => {
            command.arg("-db").arg("-f").arg(config);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a second handle on the log"))
        .stderr(log);
    raise_fd_limit(&mut command);
    command
}

/// The proxy's soft descriptor limit raised to the hard one (each viewer costs a proxy
/// two descriptors, and HAProxy sizes its connection limit from this one).
fn raise_fd_limit(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // getrlimit and setrlimit, which are async-signal-safe, on a local struct.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, || {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            Ok(())
        });
    }
}

/// What a proxy's configuration is filled in with.
struct Site<'a> {
    https: SocketAddr,
    plain: SocketAddr,
    servers: &'a [SocketAddr],
    cert: &'a Cert,
}

/// `contrib/nginx.conf` as a site of a main configuration of the test's own: temporary
/// files in the scratch folder, no access log, one worker.
fn nginx_config(scratch: &Scratch, site: &Site<'_>) -> PathBuf {
    let upstream: String = site
        .servers
        .iter()
        .map(|addr| format!("    server {addr};\n"))
        .collect();
    let site = fill(
        NGINX_SITE,
        "contrib/nginx.conf",
        &[
            ("    server 127.0.0.1:8080;\n", upstream),
            ("listen 443 ssl;", format!("listen {} ssl;", site.https)),
            ("listen 127.0.0.1:8081;", format!("listen {};", site.plain)),
            (
                "/etc/ssl/mixreplace/cert.pem",
                site.cert.cert().display().to_string(),
            ),
            (
                "/etc/ssl/mixreplace/key.pem",
                site.cert.key().display().to_string(),
            ),
        ],
    );
    let site_path = scratch.write("site.conf", site);
    let temp = scratch.join("temp");
    std::fs::create_dir_all(&temp).expect("nginx's temporary folder");
    let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|name| format!("    {name}_temp_path {}/{name};\n", temp.display()))
        .collect();
    let main = format!(
        "worker_processes 1;\n\
         worker_shutdown_timeout 10s;\n\
         events {{ worker_connections 16384; }}\n\
         http {{\n{temp_paths}    access_log off;\n    include {};\n}}\n",
        site_path.display()
    );
    scratch.write("nginx.conf", main)
}

/// `contrib/haproxy.cfg` with the test's ports, certificate and servers.
fn haproxy_config(scratch: &Scratch, site: &Site<'_>) -> PathBuf {
    let backend: String = site
        .servers
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("    server edge{} {addr}\n", i + 1))
        .collect();
    let config = fill(
        HAPROXY_CFG,
        "contrib/haproxy.cfg",
        &[
            (
                "    server edge1 127.0.0.1:8080\n    server edge2 127.0.0.1:8082\n",
                backend,
            ),
            (
                "bind :443 ssl crt /etc/haproxy/mixreplace.pem",
                format!("bind {} ssl crt {}", site.https, site.cert.pem().display()),
            ),
            ("bind 127.0.0.1:8443", format!("bind {}", site.plain)),
        ],
    );
    scratch.write("haproxy.cfg", config)
}

/// `template` with each `(from, to)` replaced; each `from` must occur exactly once.
fn fill(template: &str, name: &str, replacements: &[(&str, String)]) -> String {
    let mut text = template.to_owned();
    for (from, to) in replacements {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{name} should hold {from:?} exactly once: the tests replace it"
        );
        text = text.replacen(from, to, 1);
    }
    text
}

/// A loopback address whose port was free a moment ago.
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("its address")
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, IO_TIMEOUT).is_ok()
}

/// curl for https, trusting the test's certificate, printing errors only, passing each
/// byte on as it comes (`-N`).
pub fn curl_https(curl: &Path, cert: &Cert) -> Command {
    let mut command = Command::new(curl);
    command
        .args(["-sS", "-N", "--max-time", "60", "--cacert"])
        .arg(cert.cert());
    command
}
