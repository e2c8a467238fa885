//! `mixreplace`: arguments, logger, then the library's event loop.

use std::io::Write;
use std::process::ExitCode;

use log::{info, warn};
use mixreplace::cli::{self, Command, USAGE};
use mixreplace::server::{Exit, Server};
use mixreplace::sys;

/// Descriptors kept back from clients: stdio, epoll, the listener, the signal pipe, and
/// room to answer clients past the cap with a 503 instead of failing to accept them.
const FD_RESERVE: u64 = 64;

fn main() -> ExitCode {
    let mut options = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
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

    let routes = match options.routes() {
        Ok(routes) => routes,
        Err(e) => {
            eprintln!("mixreplace: {e}");
            return ExitCode::from(2);
        }
    };
    let fd_limit = sys::raise_fd_limit().unwrap_or_else(|e| {
        warn!("cannot raise the file descriptor limit: {e}");
        sys::fd_limit()
    });
    let max_clients = options.max_clients.unwrap_or_else(|| {
        usize::try_from(fd_limit.saturating_sub(FD_RESERVE))
            .unwrap_or(usize::MAX)
            .max(1)
    });
    options.config.max_clients = max_clients;
    info!("file descriptor limit {fd_limit}: up to {max_clients} clients");
    let listen = options.config.listen;
    let server = match Server::bind(&options.config, routes) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("mixreplace: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(cap) = sys::somaxconn() {
        info!("listen backlog {cap} (net.core.somaxconn)");
    }
    // Harnesses wait for this line: print it only once the listener accepts.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on http://{}/", server.local_addr());
    let _ = stdout.flush();

    match server.run() {
        Ok(Exit::Graceful) => ExitCode::SUCCESS,
        Ok(Exit::Forced(signal)) => ExitCode::from(128u8.wrapping_add(signal as u8)),
        Err(e) => {
            eprintln!("mixreplace: {e}");
            ExitCode::from(1)
        }
    }
}
