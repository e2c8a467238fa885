//! `mixreplace`: arguments, logger, then the library's server with the program's own
//! choices turned on (signals, the file descriptor limit raised, systemd's sockets and
//! notifications).

use std::io::Write;
use std::process::ExitCode;

use mixreplace::cli::{self, Command, USAGE};
use mixreplace::systemd::{self, Inherited};
use mixreplace::{Error, Exit, ListenAddr};

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread: nothing else reads or writes the
    // environment while the variables are removed.
    let passed = unsafe { systemd::take_listen_fds() };
    let builder = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(builder)) => *builder,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("mixreplace {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mixreplace: {e}; try 'mixreplace --help'");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let passed = match passed {
        Ok(passed) => passed,
        Err(e) => {
            eprintln!("mixreplace: {e}");
            return ExitCode::from(2);
        }
    };
    let builder = passed
        .into_iter()
        .fold(builder, |builder, Inherited { fd, name }| {
            let name = name.as_deref().unwrap_or("unnamed");
            log::info!(
                "systemd passed descriptor {} ({name})",
                std::os::fd::AsRawFd::as_raw_fd(&fd)
            );
            builder.listen_fd(fd)
        });

    let builder = builder.signals(true).raise_fd_limit(true).sd_notify(true);
    let server = match builder.bind() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("mixreplace: {e}");
            return failure(&e);
        }
    };
    // Harnesses wait for this line: print it only once the listener accepts.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", ready_line(server.addrs()));
    let _ = stdout.flush();

    match server.run() {
        Ok(Exit::Graceful) => ExitCode::SUCCESS,
        Ok(Exit::Forced(signal)) => ExitCode::from(128u8.wrapping_add(signal as u8)),
        Err(e) => {
            eprintln!("mixreplace: {e}");
            failure(&e)
        }
    }
}

/// Every listener, as a client would name it: `http://IP:PORT/`, `unix:PATH`.
fn ready_line(addrs: &[ListenAddr]) -> String {
    let shown: Vec<String> = addrs
        .iter()
        .map(|addr| match addr {
            ListenAddr::Tcp(ip) => format!("http://{ip}/"),
            ListenAddr::Unix(_) => addr.to_string(),
        })
        .collect();
    shown.join(" ")
}

/// 2 for what the command line asked (a value, a stream that cannot start), 1 for what
/// the system refused (the address, a system call).
fn failure(e: &Error) -> ExitCode {
    match e {
        Error::Config(_) | Error::Stream(_) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}
