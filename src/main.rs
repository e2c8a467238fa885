//! `mixreplace`: arguments, logger, then the library's server with the program's own
//! choices turned on (signals, the file descriptor limit raised).

use std::io::Write;
use std::process::ExitCode;

use mixreplace::cli::{self, Command, USAGE};
use mixreplace::{Error, Exit};

fn main() -> ExitCode {
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

    let server = match builder.signals(true).raise_fd_limit(true).bind() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("mixreplace: {e}");
            return failure(&e);
        }
    };
    // Harnesses wait for this line: print it only once the listener accepts.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on http://{}/", server.local_addr());
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

/// 2 for what the command line asked (a value, a stream that cannot start), 1 for what
/// the system refused (the address, a system call).
fn failure(e: &Error) -> ExitCode {
    match e {
        Error::Config(_) | Error::Stream(_) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}
