//! A child's standard error, as log lines: cut at `\n` or `\r` (ffmpeg ends its progress
//! lines with `\r`), whatever the chunking of the reads.
//!
//! Invariants (a chatty or hostile command cannot flood memory or the log):
//! - at most [`MAX_LINE`] bytes of a line are kept; a longer one is logged cut, with `…`;
//! - at most [`LINES_PER_WINDOW`] lines are logged per [`WINDOW`]; the rest are counted,
//!   and the count is logged when the next window opens (or at the end);
//! - control characters (an escape sequence, say) are logged as `?`; invalid UTF-8 as
//!   `U+FFFD`; empty lines are not logged.

use crate::clock::Micros;

pub const MAX_LINE: usize = 512;
pub const LINES_PER_WINDOW: u32 = 100;
pub const WINDOW: Micros = 10_000_000;

#[derive(Debug, Default)]
pub struct StderrLines {
    line: Vec<u8>,
    /// The line in `line` was longer than [`MAX_LINE`].
    cut: bool,
    window_start: Micros,
    logged_in_window: u32,
    unlogged: u64,
}

impl StderrLines {
    /// Hands each complete line of `data` to `log`.
    pub fn push(&mut self, data: &[u8], now: Micros, log: &mut impl FnMut(&str)) {
        let mut rest = data;
        while let Some(end) = memchr::memchr2(b'\n', b'\r', rest) {
            self.keep(&rest[..end]);
            self.end_line(now, log);
            rest = &rest[end + 1..];
        }
        self.keep(rest);
    }

    /// The pipe ended: the last line, even without its line end, and what went unlogged.
    pub fn finish(&mut self, now: Micros, log: &mut impl FnMut(&str)) {
        self.end_line(now, log);
        self.report_unlogged(log);
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_LINE - self.line.len();
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.cut |= bytes.len() > room;
    }

    fn end_line(&mut self, now: Micros, log: &mut impl FnMut(&str)) {
        if self.line.is_empty() {
            return;
        }
        if now >= self.window_start + WINDOW {
            self.report_unlogged(log);
            self.window_start = now;
            self.logged_in_window = 0;
        }
        if self.logged_in_window < LINES_PER_WINDOW {
            self.logged_in_window += 1;
            let text: String = String::from_utf8_lossy(&self.line)
                .chars()
                .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
                .chain(self.cut.then_some('…'))
                .collect();
            log(&text);
        } else {
            self.unlogged += 1;
        }
        self.line.clear();
        self.cut = false;
    }

    fn report_unlogged(&mut self, log: &mut impl FnMut(&str)) {
        if self.unlogged > 0 {
            log(&format!("({} more lines not logged)", self.unlogged));
            self.unlogged = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]], now: Micros) -> Vec<String> {
        let mut lines = StderrLines::default();
        let mut out = Vec::new();
        for chunk in chunks {
            lines.push(chunk, now, &mut |line| out.push(line.to_string()));
        }
        lines.finish(now, &mut |line| out.push(line.to_string()));
        out
    }

    #[test]
    fn cuts_lines_whatever_the_chunks() {
        let text = b"first\r\nsecond\rthird\n\n\nlast without end";
        let whole = lines_of(&[text], 0);
        assert_eq!(whole, ["first", "second", "third", "last without end"]);
        for cut in 0..text.len() {
            assert_eq!(lines_of(&[&text[..cut], &text[cut..]], 0), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(lines_of(&bytes, 0), whole);
    }

    #[test]
    fn long_lines_are_cut_and_control_characters_shown_as_such() {
        let long = vec![b'x'; 3 * MAX_LINE];
        let lines = lines_of(&[&long[..1000], &long[1000..], b"\nnext\x1b[31m\xff\tend"], 0);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], format!("{}…", "x".repeat(MAX_LINE)));
        assert_eq!(lines[1], "next?[31m\u{fffd}\tend");
    }

    #[test]
    fn a_flood_is_logged_up_to_the_cap_then_counted() {
        let mut lines = StderrLines::default();
        let mut out = Vec::new();
        let flood = "spam\n".repeat(LINES_PER_WINDOW as usize + 50);
        lines.push(flood.as_bytes(), 1, &mut |l| out.push(l.to_string()));
        assert_eq!(out.len(), LINES_PER_WINDOW as usize);
        // The next window opens with the count of what went unlogged.
        lines.push(b"later\n", 1 + WINDOW, &mut |l| out.push(l.to_string()));
        assert_eq!(out[out.len() - 2..], ["(50 more lines not logged)", "later"]);
        lines.push(flood.as_bytes(), 2 + WINDOW, &mut |l| out.push(l.to_string()));
        lines.finish(3 + WINDOW, &mut |l| out.push(l.to_string()));
        assert_eq!(out.last().unwrap(), "(51 more lines not logged)");
    }
}
