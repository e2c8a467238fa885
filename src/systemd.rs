//! systemd's two protocols for services, written out by hand (each is a few lines, and
//! a crate would bring more than it saves): socket activation, the listeners systemd
//! opened and passed as descriptors 3, 4, … (`sd_listen_fds`), and notification,
//! datagrams of `KEY=VALUE` lines to the socket in `NOTIFY_SOCKET` (`sd_notify`).
//!
//! Invariants:
//! - Passed descriptors are taken only when `LISTEN_PID` is this process (a child that
//!   inherited the variables is not addressed), and only once: the variables are
//!   removed, as `sd_listen_fds(1)` does, so no child sees them either.
//! - Every descriptor taken is close-on-exec at once, and checked to be open.
//! - Notifying never blocks the caller: the datagram socket is non-blocking, and a
//!   message that cannot go at once is lost (the caller sends the next one later).
//!
//! Nothing here knows the server: the loop decides what to send and when.

use std::env;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// More passed descriptors than this is a broken environment, not a configuration.
const MAX_LISTEN_FDS: usize = 4096;

/// A listener passed by systemd, with its name (`FileDescriptorName=`, else the socket
/// unit's name) when `LISTEN_FDNAMES` gives one.
#[derive(Debug)]
pub struct Inherited {
    pub fd: OwnedFd,
    pub name: Option<String>,
}

/// Takes the listeners systemd passed to this process (none when `LISTEN_PID` is unset
/// or names another process), and removes `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES` from the environment. A malformed variable, or a descriptor that
/// is not open, is an error naming it.
///
/// # Safety
///
/// It changes the environment: no other thread may read or write the environment
/// while it runs. Call it first thing in `main`, before any thread starts.
pub unsafe fn take_listen_fds() -> Result<Vec<Inherited>, String> {
    let var = |name: &str| env::var(name).ok();
    let parsed = parse_listen(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    );
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: the caller promises that no other thread touches the environment.
        unsafe { env::remove_var(name) };
    }
    let mut names = parsed?.into_iter();
    let mut taken = Vec::with_capacity(names.len());
    for fd in LISTEN_FDS_START.. {
        let Some(name) = names.next() else { break };
        // SAFETY: fcntl on any number is sound; F_SETFD with FD_CLOEXEC only sets a flag.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            let e = io::Error::last_os_error();
            return Err(format!("LISTEN_FDS: descriptor {fd} passed by systemd: {e}"));
        }
        // SAFETY: the descriptor is open (fcntl succeeded) and owned by nothing else in
        // this process: systemd passed it to this process (LISTEN_PID), and the
        // variables that name it were just removed, so it is taken this once.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        taken.push(Inherited { fd, name });
    }
    Ok(taken)
}

/// The names of the passed descriptors (one per descriptor, `None` without a name), or
/// none when the variables are not addressed to process `me`.
fn parse_listen(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    me: u32,
) -> Result<Vec<Option<String>>, String> {
    let Some(pid) = pid else { return Ok(Vec::new()) };
    let pid: u32 = pid.parse().map_err(|_| {
        format!(
            "invalid LISTEN_PID '{}': expected a process id",
            pid.escape_debug()
        )
    })?;
    if pid != me {
        return Ok(Vec::new());
    }
    let fds = fds.unwrap_or("0");
    let count = match fds.parse::<usize>() {
        Ok(n) if n <= MAX_LISTEN_FDS => n,
        _ => {
            return Err(format!(
                "invalid LISTEN_FDS '{}': expected a count up to {MAX_LISTEN_FDS}",
                fds.escape_debug()
            ));
        }
    };
    let mut named: Vec<Option<String>> = names
        .map(|names| {
            names
                .split(':')
                .map(|name| Some(name.to_owned()).filter(|name| !name.is_empty()))
                .collect()
        })
        .unwrap_or_default();
    // systemd sends one name per descriptor; a mismatch is no reason to refuse them.
    named.resize(count, None);
    Ok(named)
}

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notify {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notify {
    /// The socket `NOTIFY_SOCKET` names (a path, or `@NAME` for an abstract one); `None`
    /// when it is unset (not run by systemd, or not as `Type=notify`).
    pub fn from_env() -> io::Result<Option<Notify>> {
        let Some(name) = env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let bytes = name.as_encoded_bytes();
        let to = match bytes.strip_prefix(b"@") {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name)?,
            None if bytes.starts_with(b"/") => SocketAddr::from_pathname(&name)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "NOTIFY_SOCKET={}: only paths and @abstract names",
                        name.to_string_lossy()
                    ),
                ));
            }
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Some(Notify { socket, to }))
    }

    /// Sends `state`: newline-separated `KEY=VALUE` assignments (`READY=1`, …).
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket.send_to_addr(state.as_bytes(), &self.to).map(drop)
    }
}

/// How often systemd wants `WATCHDOG=1` at the latest (`WATCHDOG_USEC`, in
/// microseconds), when it asks this process (`WATCHDOG_PID` unset or ours).
pub fn watchdog_usec() -> Option<u64> {
    let usec = env::var("WATCHDOG_USEC")
        .ok()?
        .parse()
        .ok()
        .filter(|&us| us > 0)?;
    match env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse::<u32>() != Ok(std::process::id()) => None,
        _ => Some(usec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_variables_are_read_only_when_addressed_to_us() {
        assert_eq!(parse_listen(None, Some("2"), None, 7), Ok(vec![]));
        assert_eq!(parse_listen(Some("8"), Some("2"), None, 7), Ok(vec![]));
        assert_eq!(parse_listen(Some("7"), Some("2"), None, 7), Ok(vec![None, None]));
        assert_eq!(
            parse_listen(Some("7"), Some("2"), Some("http:"), 7),
            Ok(vec![Some("http".to_owned()), None])
        );
        assert_eq!(
            parse_listen(Some("7"), Some("1"), Some("a:b:c"), 7),
            Ok(vec![Some("a".to_owned())])
        );
        assert_eq!(parse_listen(Some("7"), None, None, 7), Ok(vec![]));
        for (pid, fds, says) in [
            ("x", "1", "invalid LISTEN_PID 'x'"),
            ("7", "-1", "invalid LISTEN_FDS '-1'"),
            ("7", "99999", "invalid LISTEN_FDS '99999'"),
        ] {
            let err = parse_listen(Some(pid), Some(fds), None, 7).unwrap_err();
            assert!(err.starts_with(says), "{err}");
        }
    }

    #[test]
    fn notify_sends_datagrams_to_the_named_socket() {
        let dir = env::temp_dir().join(format!("mixreplace-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notify = Notify {
            socket: UnixDatagram::unbound().unwrap(),
            to: SocketAddr::from_pathname(&path).unwrap(),
        };
        notify.send("READY=1\nSTATUS=ok").unwrap();
        let mut buf = [0; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
        drop(receiver);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
