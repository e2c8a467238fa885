//! External tools (curl, python3 and its packages, ffmpeg, Chromium) and other things a
//! test needs from the machine (an IPv6 loopback): where one is missing the test skips,
//! printing `SKIPPED: …` and how to get it, or fails where the tools are required.
//!
//! One meaning of "required", for every test: `CI` or `MIXREPLACE_REQUIRE_TOOLS` set to a
//! non-empty value other than `0` or `false` (`.ci/run` sets both).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// No run of a tool outlives this.
pub const TOOL_LIMIT: Duration = Duration::from_secs(30);

/// Whether a missing tool fails the test instead of skipping it.
pub fn tools_required() -> bool {
    let set = |name: &str| {
        std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    };
    set("CI") || set("MIXREPLACE_REQUIRE_TOOLS")
}

/// Says that `missing` (and how to get it) stops a test here: a failure where tools are
/// required, else a `SKIPPED:` line. The caller returns after it.
pub fn skip_or_fail(missing: &str) {
    assert!(
        !tools_required(),
        "{missing}; CI or MIXREPLACE_REQUIRE_TOOLS says the tests need it"
    );
    eprintln!("SKIPPED: {missing}; set MIXREPLACE_REQUIRE_TOOLS=1 (as .ci/run does) to fail instead");
}

/// The first of `names` found on `PATH`; `None` (skip) when none is, naming the Debian
/// `package` that has it.
pub fn require_tool(names: &[&str], package: &str) -> Option<PathBuf> {
    let found = names.iter().find_map(|name| which(name));
    if found.is_none() {
        skip_or_fail(&format!(
            "{} not found on PATH (Debian package: {package})",
            names.join(" or ")
        ));
    }
    found
}

/// `python3`, if it is there and imports `module` (from the Debian `package`).
pub fn require_python_module(module: &str, package: &str) -> Option<PathBuf> {
    let python = require_tool(&["python3"], "python3")?;
    let mut command = Command::new(&python);
    command.args(["-c", &format!("import {module}")]);
    let imports = super::process::run(&mut command, None, Duration::from_secs(30))
        .status
        .success();
    if !imports {
        skip_or_fail(&format!(
            "python3 cannot import {module} (Debian package: {package}, or pip install {module})"
        ));
        return None;
    }
    Some(python)
}

/// The path of `name` on `PATH`, if it is there.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
