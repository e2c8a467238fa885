//! Credentials kept off the command line, where `ps` shows them to every user: the
//! `--auth-file FILE` format and the `MIXREPLACE_AUTH` variable's value.
//!
//! The file holds one `user:password` per line, for as many users as there are lines.
//! The password is everything after the first `:` (it may hold `:` and spaces); the user
//! is not empty, the password is not empty, and neither holds a control character. Lines
//! that are blank or start with `#` (after spaces) are skipped; a line ending in CRLF is
//! read without its CR. Any other line is refused, with `FILE:LINE` in the message, and
//! so is a file without a single user: a typo must not leave the server open.
//!
//! Invariants: nothing here logs or prints a password, and an error names the line but
//! never quotes it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The users of an auth file (`user:password` each), and a warning when the file's mode
/// lets group or others read it.
#[derive(Debug)]
pub struct AuthFile {
    pub users: Vec<String>,
    pub warning: Option<String>,
}

/// Reads and checks `path` (see the module header).
pub fn read(path: &Path) -> Result<AuthFile, String> {
    let shown = path.display();
    let text = fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let users = parse(&text, &shown.to_string())?;
    let mode = fs::metadata(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .permissions()
        .mode();
    Ok(AuthFile {
        users,
        warning: mode_warning(&shown.to_string(), mode),
    })
}

/// The users of an auth file's `text`; `shown`: the file's name for the messages.
pub fn parse(text: &str, shown: &str) -> Result<Vec<String>, String> {
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        check_pair(line).map_err(|e| format!("{shown}:{}: {e}", i + 1))?;
        users.push(line.to_owned());
    }
    if users.is_empty() {
        return Err(format!("{shown}: no user:password line"));
    }
    Ok(users)
}

/// Checks one `user:password` (a line of the file, or `MIXREPLACE_AUTH`'s value).
pub fn check_pair(pair: &str) -> Result<(), &'static str> {
    let Some((user, password)) = pair.split_once(':') else {
        return Err("expected user:password");
    };
    if user.is_empty() {
        Err("the user name is empty")
    } else if password.is_empty() {
        Err("the password is empty")
    } else if pair.contains(|c: char| c.is_control()) {
        Err("a control character in user:password")
    } else {
        Ok(())
    }
}

/// A warning when group or others may read the file (any of the mode's `0o044` bits).
fn mode_warning(shown: &str, mode: u32) -> Option<String> {
    (mode & 0o044 != 0).then(|| {
        format!(
            "{shown} can be read by other users (mode {:04o}); make it private: chmod 600 {shown}",
            mode & 0o7777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_users_skipping_comments_and_blank_lines() {
        let text = "# cameras\nalice:pa:ss word\r\n\n   # indented comment\nbob:x\n";
        assert_eq!(parse(text, "f").unwrap(), ["alice:pa:ss word", "bob:x"]);
    }

    #[test]
    fn refuses_a_bad_line_with_its_number_and_never_its_text() {
        for (text, says) in [
            ("alice:a\nnocolon\n", "f:2: expected user:password"),
            (":secret\n", "f:1: the user name is empty"),
            ("# c\nalice:\n", "f:2: the password is empty"),
            ("alice:a\tb\n", "f:1: a control character"),
            ("# only a comment\n\n", "f: no user:password line"),
            ("", "f: no user:password line"),
        ] {
            let err = parse(text, "f").unwrap_err();
            assert!(err.starts_with(says), "{text:?}: {err}");
            assert!(!err.contains("secret") && !err.contains("a\tb"), "{err}");
        }
    }

    #[test]
    fn warns_when_group_or_others_can_read() {
        assert_eq!(mode_warning("f", 0o100600), None);
        assert_eq!(mode_warning("f", 0o100400), None);
        assert_eq!(mode_warning("f", 0o100620), None);
        let warning = mode_warning("f", 0o100644).unwrap();
        assert!(
            warning.contains("(mode 0644)") && warning.ends_with("chmod 600 f"),
            "{warning}"
        );
        assert!(mode_warning("f", 0o100640).is_some());
    }
}
