//! The process table, read from `/proc`: who is whose child and who is in which process
//! group, for tests that a server's children come and go when they should and leave no
//! zombie and no orphan behind.

use std::fs;

/// One process, from `/proc/PID/stat` (and its command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    /// `R`, `S`, `D`, `Z` (a zombie: exited, not reaped), …
    pub state: char,
    /// The arguments, joined by spaces (empty for a zombie).
    pub cmdline: String,
}

impl Proc {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// One process, if it exists (a zombie exists until it is reaped).
pub fn read(pid: u32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces and parentheses: the
    // fields after it start after its last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .filter(|arg| !arg.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some(Proc {
        pid,
        ppid,
        pgid,
        state,
        cmdline,
    })
}

/// Every process now (those that exit while the table is read are left out).
pub fn all() -> Vec<Proc> {
    let entries = fs::read_dir("/proc").expect("read /proc");
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(read)
        .collect()
}

/// The children of `pid`, then theirs, and so on.
pub fn descendants(pid: u32) -> Vec<Proc> {
    let table = all();
    let mut found: Vec<Proc> = Vec::new();
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        for p in table.iter().filter(|p| p.ppid == parent) {
            // A pid cannot be its own ancestor; the check only bounds the walk.
            if found.iter().all(|f| f.pid != p.pid) {
                parents.push(p.pid);
                found.push(p.clone());
            }
        }
    }
    found
}

/// The processes in process group `pgid` (zombies included).
pub fn in_group(pgid: u32) -> Vec<Proc> {
    all().into_iter().filter(|p| p.pgid == pgid).collect()
}
