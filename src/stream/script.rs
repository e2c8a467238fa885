//! Stream scripts: a small line-based text format that describes a timeline of parts.
//!
//! The format (documented for users in the README):
//!
//! ```text
//! # a comment                                     blank lines and comments are ignored
//! part text/plain "Hello\r\n"                     a part: content type, then its body
//! part image/png @frames/one.png                  … read from a file (relative to the script)
//! part text/html "<img src=\"data:image/png;base64," base64(@one.png) "\">"
//! part text/html <<END                            … or the lines up to a line `END`
//! <h1>Hi</h1>
//! END
//! wait 500ms                                      waits: `ms`, or `s` with up to 3 decimals
//! repeat 3 {                                      a block played 3 times (expanded at load)
//! }
//! loop {                                          a block played forever; last statement only
//! }
//! ```
//!
//! Invariants of a parsed [`Script`]:
//! - `parts` is never empty, holds at most [`MAX_PARTS`] parts whose bodies add up to at
//!   most [`MAX_TOTAL_BYTES`]; no single file body is over [`MAX_FILE`].
//! - Every delay (`lead_ms` and each `delay_ms`) is at most [`MAX_WAIT_MS`], one day, so
//!   timeline arithmetic in `u64` microseconds cannot overflow.
//! - `loop_from`, when set, is a valid index into `parts`; the waits of the loop body that
//!   come before its first part are folded into the delay of the part before the loop
//!   (first pass) and of the loop's last part (every later pass), so repeating
//!   `parts[i..]` plays the loop exactly.
//! - Every content type is `type/subtype[;name=value…]` made of HTTP token characters, so
//!   it can go into a part header verbatim (no CR, LF, space or quote can sneak in).
//!
//! Errors carry the 1-based line they are about (the opening line for a block or heredoc
//! that is never closed); only [`load`] uses line 0, when the script itself is unreadable.
//! Parsing reads no file but the `@file` bodies, and those only through one function.

use std::fmt;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::stream::PartSpec;

/// Most parts a script may expand to: `repeat` multiplies, and every part is encoded and
/// held in memory once at start-up.
pub const MAX_PARTS: usize = 100_000;
/// Largest `repeat` count (a count past it is a typo, not an intent).
pub const MAX_REPEAT: u64 = 100_000;
/// Largest body one `@file` may supply.
pub const MAX_FILE: u64 = 64 << 20;
/// Most body bytes a whole script may expand to: `repeat` copies bodies, and the server
/// keeps every encoded part in memory.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;
/// Longest wait, and longest sum of waits between two parts: one day.
pub const MAX_WAIT_MS: u64 = 86_400_000;
/// Largest script file [`load`] reads (a script is text; this stops `/dev/zero`).
const MAX_SCRIPT: u64 = 16 << 20;

/// A parsed script: the timeline of parts, ready for `source::Stream`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// Wait before the first part.
    pub lead_ms: u64,
    /// The parts in order; `parts[i].delay_ms` is the wait after part `i`.
    pub parts: Vec<PartSpec>,
    /// `Some(i)`: the script ends in `loop { … }` whose body starts at `parts[i]`; the
    /// timeline then repeats `parts[i..]` forever.
    pub loop_from: Option<usize>,
}

/// What is wrong with a script, and where: displays as `FILE:LINE: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for ScriptError {}

/// Reads and parses the script at `file`.
pub fn load(file: &Path) -> Result<Script, ScriptError> {
    let text = read_script(file).map_err(|(line, message)| ScriptError {
        file: file.display().to_string(),
        line,
        message,
    })?;
    parse(&text, file)
}

/// Parses `text`, the contents of `file`; `@name` bodies are read relative to the
/// directory of `file`.
pub fn parse(text: &str, file: &Path) -> Result<Script, ScriptError> {
    parse_with(text, file, &mut read_body_file)
}

/// How a body file is read: the real one goes to the file system, tests use a table.
type ReadFn<'r> = dyn FnMut(&Path) -> Result<Vec<u8>, String> + 'r;

fn parse_with(text: &str, file: &Path, read: &mut ReadFn<'_>) -> Result<Script, ScriptError> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut parser = ScriptParser {
        dir,
        read,
        stack: vec![OpenBlock {
            block: Block::Top,
            seq: Seq::default(),
        }],
        total_parts: 0,
        total_bytes: 0,
        loop_from: None,
        looped: false,
    };
    parser.run(text).map_err(|(line, message)| ScriptError {
        file: file.display().to_string(),
        line,
        message,
    })
}

/// The script file as text; errors are `(line, message)` with line 0 for an unreadable
/// file and the line of the first bad byte for one that is not UTF-8.
fn read_script(file: &Path) -> Result<String, (usize, String)> {
    let cannot = |e: std::io::Error| (0, format!("cannot read: {e}"));
    // Checked before `open`: opening a FIFO for reading blocks until a writer appears.
    if !fs::metadata(file).map_err(cannot)?.is_file() {
        return Err((0, "cannot read: not a regular file".to_owned()));
    }
    let mut bytes = Vec::new();
    fs::File::open(file)
        .map_err(cannot)?
        .take(MAX_SCRIPT + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SCRIPT {
        return Err((0, format!("cannot read: larger than {}", size(MAX_SCRIPT))));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
        (line, "not UTF-8 text".to_owned())
    })
}

/// Reads one `@file` body, refusing what could hang start-up (a FIFO, a device) or
/// exhaust memory (over [`MAX_FILE`]) before reading it.
pub(crate) fn read_body_file(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    // Checked before `open`: opening a FIFO for reading blocks until a writer appears.
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("cannot read {shown}: not a regular file"));
    }
    let too_big = || {
        format!(
            "{shown} is larger than {} (the limit for one file)",
            size(MAX_FILE)
        )
    };
    if meta.len() > MAX_FILE {
        return Err(too_big());
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut body))
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    // The file may have grown since `metadata`, and /proc files report length 0.
    if body.len() as u64 > MAX_FILE {
        return Err(too_big());
    }
    Ok(body)
}

fn size(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

type Fail = (usize, String);

/// A run of parts and the waits around them: `lead_ms` before the first part (all of it
/// when there is no part yet), each part's `delay_ms` after it.
#[derive(Default)]
struct Seq {
    lead_ms: u64,
    parts: Vec<PartSpec>,
    bytes: u64,
}

impl Seq {
    /// Adds a wait at the end: to the last part's delay, or to the lead.
    fn wait(&mut self, ms: u64) -> Result<(), String> {
        let slot = match self.parts.last_mut() {
            Some(part) => &mut part.delay_ms,
            None => &mut self.lead_ms,
        };
        *slot = add_wait(*slot, ms)?;
        Ok(())
    }

    /// Appends `next`: its lead becomes a wait after our last part.
    fn append(&mut self, next: Seq) -> Result<(), String> {
        self.wait(next.lead_ms)?;
        self.parts.extend(next.parts);
        self.bytes += next.bytes;
        Ok(())
    }
}

fn add_wait(sum: u64, ms: u64) -> Result<u64, String> {
    match sum.checked_add(ms) {
        Some(total) if total <= MAX_WAIT_MS => Ok(total),
        _ => Err("waits between two parts add up to more than a day".to_owned()),
    }
}

enum Block {
    Top,
    Repeat { count: u64, line: usize },
    Loop { line: usize },
}

struct OpenBlock {
    block: Block,
    seq: Seq,
}

struct ScriptParser<'r, 'p> {
    dir: PathBuf,
    read: &'p mut ReadFn<'r>,
    /// Open blocks; `stack[0]` is the top level and is never popped.
    stack: Vec<OpenBlock>,
    /// Parts and body bytes in all open blocks, counted as they will be once expanded.
    total_parts: usize,
    total_bytes: u64,
    loop_from: Option<usize>,
    /// A loop has been closed: only blank lines and comments may follow.
    looped: bool,
}

impl ScriptParser<'_, '_> {
    fn run(&mut self, text: &str) -> Result<Script, Fail> {
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let mut number = 0;
        while let Some(line) = lines.next() {
            number += 1;
            let heredoc_lines = self.statement(line, number, &mut lines)?;
            number += heredoc_lines;
        }
        self.finish()
    }

    /// One line; returns how many further lines it consumed (a heredoc's).
    fn statement<'t>(
        &mut self,
        text: &'t str,
        line: usize,
        rest: &mut dyn Iterator<Item = &'t str>,
    ) -> Result<usize, Fail> {
        let mut cur = Lexer::new(text);
        if cur.at_end() {
            return Ok(0);
        }
        let keyword = cur.word();
        if self.looped {
            let why = "a loop plays forever, so nothing may follow it";
            return Err((line, format!("'{keyword}' after the loop: {why}")));
        }
        let fail = |message: String| (line, message);
        match keyword {
            "part" => return self.part(&mut cur, line, rest),
            "wait" => {
                let ms = parse_duration(cur.word()).map_err(fail)?;
                cur.end("wait").map_err(fail)?;
                self.top().wait(ms).map_err(fail)?;
            }
            "repeat" => {
                let count = parse_count(cur.word()).map_err(fail)?;
                cur.open_brace("repeat N").map_err(fail)?;
                self.open(Block::Repeat { count, line });
            }
            "loop" => {
                cur.open_brace("loop").map_err(fail)?;
                if self.stack.len() > 1 {
                    let why = "it plays forever, so it must be the last statement";
                    return Err(fail(format!("a loop cannot be inside a repeat or loop: {why}")));
                }
                self.open(Block::Loop { line });
            }
            "}" => {
                cur.end("}").map_err(fail)?;
                self.close(line)?;
            }
            other => {
                return Err(fail(format!(
                    "unknown statement '{other}' (expected part, wait, repeat, loop or }})"
                )));
            }
        }
        Ok(0)
    }

    fn part(
        &mut self,
        cur: &mut Lexer<'_>,
        line: usize,
        rest: &mut dyn Iterator<Item = &str>,
    ) -> Result<usize, Fail> {
        let fail = |message: String| (line, message);
        let content_type = cur.word();
        if content_type.is_empty() {
            return Err(fail(
                "part needs a content type and a body, e.g. part text/plain \"hi\"".into(),
            ));
        }
        check_content_type(content_type).map_err(fail)?;
        let (body, consumed) = if let Some(tag) = cur.heredoc() {
            let tag = check_tag(tag).map_err(fail)?;
            cur.end("<<TAG").map_err(fail)?;
            heredoc(tag, rest).ok_or_else(|| {
                fail(format!(
                    "heredoc <<{tag} is never closed (no line '{tag}' before the end of the file)"
                ))
            })?
        } else {
            (self.pieces(cur).map_err(fail)?, 0)
        };
        self.add_part(PartSpec::new(content_type, body, 0))
            .map_err(fail)?;
        Ok(consumed)
    }

    /// The body of a `part` line: one or more strings, `@file`s and `base64(@file)`s,
    /// concatenated.
    fn pieces(&mut self, cur: &mut Lexer<'_>) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        let mut any = false;
        while !cur.at_end() {
            if cur.eat("\"") {
                body.extend(cur.string()?);
            } else if cur.eat("@") {
                body.extend(self.file_body(cur, false)?);
            } else if cur.eat("base64(") {
                cur.skip_space();
                if !cur.eat("@") {
                    return Err("base64( takes a file: base64(@file)".into());
                }
                let bytes = self.file_body(cur, true)?;
                cur.skip_space();
                if !cur.eat(")") {
                    return Err("base64(@file is missing its closing )".into());
                }
                // Standard base64 with padding (RFC 4648 §4), as `data:` URIs take it.
                body.extend(STANDARD.encode(&bytes).into_bytes());
            } else {
                return Err(format!(
                    "expected a body (\"text\", @file, base64(@file) or <<TAG), found '{}'",
                    cur.word()
                ));
            }
            any = true;
        }
        if !any {
            return Err("part needs a body: \"text\", @file, base64(@file) or <<TAG after the type".into());
        }
        Ok(body)
    }

    /// The name after `@` (quoted, or up to a space, or up to `)` inside `base64(`),
    /// resolved against the script's directory and read.
    fn file_body(&mut self, cur: &mut Lexer<'_>, in_call: bool) -> Result<Vec<u8>, String> {
        let name = if cur.eat("\"") {
            String::from_utf8(cur.string()?).map_err(|_| "file name is not UTF-8".to_owned())?
        } else {
            cur.name(in_call).to_owned()
        };
        if name.is_empty() {
            return Err("@ needs a file name, e.g. @image.png".into());
        }
        (self.read)(&self.dir.join(&name))
    }

    fn add_part(&mut self, part: PartSpec) -> Result<(), String> {
        let bytes = part.body.len() as u64;
        self.count(1, bytes)?;
        let seq = self.top();
        seq.bytes += bytes;
        seq.parts.push(part);
        Ok(())
    }

    /// Counts `parts` more parts and `bytes` more body bytes against the caps.
    fn count(&mut self, parts: usize, bytes: u64) -> Result<(), String> {
        let total_parts = self.total_parts.saturating_add(parts);
        if total_parts > MAX_PARTS {
            return Err(format!("the script expands to more than {MAX_PARTS} parts"));
        }
        let total_bytes = self.total_bytes.saturating_add(bytes);
        if total_bytes > MAX_TOTAL_BYTES {
            return Err(format!(
                "the script's part bodies add up to more than {} (use loop instead of a large repeat?)",
                size(MAX_TOTAL_BYTES)
            ));
        }
        (self.total_parts, self.total_bytes) = (total_parts, total_bytes);
        Ok(())
    }

    fn top(&mut self) -> &mut Seq {
        &mut self.stack.last_mut().expect("the top level is never popped").seq
    }

    fn open(&mut self, block: Block) {
        self.stack.push(OpenBlock {
            block,
            seq: Seq::default(),
        });
    }

    /// A `}` on `line`: expands the block into the one around it.
    fn close(&mut self, line: usize) -> Result<(), Fail> {
        if self.stack.len() == 1 {
            return Err((line, "stray } (no repeat or loop to close)".into()));
        }
        let OpenBlock { block, seq } = self.stack.pop().expect("checked above");
        match block {
            Block::Top => unreachable!("the top level is never pushed"),
            Block::Repeat { count, line: open } => {
                if seq.parts.is_empty() {
                    return Err((open, "this repeat has no part in its body".into()));
                }
                let copies = count - 1;
                let extra_parts = seq.parts.len().saturating_mul(copies as usize);
                self.count(extra_parts, seq.bytes.saturating_mul(copies))
                    .map_err(|m| (line, m))?;
                let repeated = repeat(seq, count).map_err(|m| (line, m))?;
                self.top().append(repeated).map_err(|m| (line, m))
            }
            Block::Loop { line: open } => {
                if seq.parts.is_empty() {
                    return Err((open, "this loop has no part in its body".into()));
                }
                self.close_loop(seq).map_err(|m| (line, m))
            }
        }
    }

    /// The loop body's lead (waits before its first part) is played before the body
    /// each time: after the part before the loop, and after the body's last part.
    fn close_loop(&mut self, mut body: Seq) -> Result<(), String> {
        let lead = body.lead_ms;
        body.wait(lead)?;
        self.loop_from = Some(self.top().parts.len());
        self.top().append(body)?;
        self.looped = true;
        Ok(())
    }

    fn finish(&mut self) -> Result<Script, Fail> {
        if let Some(innermost) = self.stack.get(1..).and_then(|open| open.last()) {
            let (what, line) = match innermost.block {
                Block::Repeat { line, .. } => ("repeat", line),
                Block::Loop { line } => ("loop", line),
                Block::Top => unreachable!("the top level is only at the bottom"),
            };
            return Err((line, format!("this {what} is never closed (missing }})")));
        }
        let seq = std::mem::take(self.top());
        if seq.parts.is_empty() {
            return Err((
                1,
                "the script has no parts (expected at least one part line)".into(),
            ));
        }
        Ok(Script {
            lead_ms: seq.lead_ms,
            parts: seq.parts,
            loop_from: self.loop_from,
        })
    }
}

/// `seq` played `count` times in a row (its lead comes before each pass).
fn repeat(seq: Seq, count: u64) -> Result<Seq, String> {
    let mut out = Seq {
        parts: Vec::with_capacity(seq.parts.len() * count as usize),
        ..Seq::default()
    };
    for _ in 0..count {
        out.append(Seq {
            lead_ms: seq.lead_ms,
            parts: seq.parts.clone(),
            bytes: seq.bytes,
        })?;
    }
    Ok(out)
}

/// The lines after a `<<TAG` line up to the line `TAG`, joined with `\n`; with the count
/// of lines consumed (the terminator included). `None`: the end came first.
fn heredoc(tag: &str, rest: &mut dyn Iterator<Item = &str>) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut consumed = 0;
    for line in rest {
        consumed += 1;
        if line.trim() == tag {
            return Some((body, consumed));
        }
        if consumed > 1 {
            body.push(b'\n');
        }
        body.extend_from_slice(line.as_bytes());
    }
    None
}

fn check_tag(tag: &str) -> Result<&str, String> {
    let ok = !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(tag)
    } else {
        Err(format!(
            "heredoc tag '{tag}' must be letters, digits or _ (e.g. <<END)"
        ))
    }
}

/// `type/subtype` and optional `;name=value` parameters, all HTTP tokens (RFC 9110
/// §5.6.2): what can go into a part header verbatim.
pub(crate) fn check_content_type(text: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("bad content type '{text}': {why}"));
    let mut pieces = text.split(';');
    let essence = pieces.next().unwrap_or_default();
    let Some((kind, sub)) = essence.split_once('/') else {
        return bad("expected type/subtype, e.g. text/plain");
    };
    if !is_token(kind) || !is_token(sub) {
        return bad("type and subtype must be letters, digits or !#$%&'*+-.^_`|~");
    }
    for param in pieces {
        match param.split_once('=') {
            Some((name, value)) if is_token(name) && is_token(value) => {}
            _ => return bad("a parameter must be name=value, without spaces or quotes"),
        }
    }
    Ok(())
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `500ms`, `0ms`, `2s`, `1.5s`, `0.25s`: whole milliseconds, at most a day.
fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("bad duration '{text}' (expected e.g. 500ms, 2s or 1.5s)");
    if text.is_empty() {
        return Err("wait needs a duration, e.g. wait 500ms".into());
    }
    let ms = if let Some(number) = text.strip_suffix("ms") {
        digits(number).ok_or_else(bad)?
    } else if let Some(number) = text.strip_suffix('s') {
        let (whole, frac) = number.split_once('.').unwrap_or((number, "000"));
        if frac.is_empty() || frac.len() > 3 {
            return Err(format!(
                "bad duration '{text}' (seconds take 1 to 3 decimals: waits are whole milliseconds)"
            ));
        }
        let frac = digits(frac).ok_or_else(bad)? * 10u64.pow(3 - frac.len() as u32);
        digits(whole)
            .ok_or_else(bad)?
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(frac))
            .unwrap_or(u64::MAX)
    } else {
        return Err(bad());
    };
    if ms > MAX_WAIT_MS {
        return Err(format!("wait '{text}' is over a day"));
    }
    Ok(ms)
}

/// A run of ASCII digits as a number (saturating: callers cap it anyway).
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

fn parse_count(text: &str) -> Result<u64, String> {
    let count =
        digits(text).ok_or_else(|| format!("repeat needs a whole number of times, found '{text}'"))?;
    match count {
        0 => Err("repeat 0 plays nothing: the count must be at least 1".into()),
        n if n > MAX_REPEAT => Err(format!("repeat count {text} is over the limit of {MAX_REPEAT}")),
        n => Ok(n),
    }
}

/// The lexer of one script line: what is left of the line to read.
struct Lexer<'a> {
    rest: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(line: &'a str) -> Self {
        Lexer { rest: line }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// Nothing but spaces and perhaps a `#` comment is left.
    fn at_end(&mut self) -> bool {
        self.skip_space();
        self.rest.is_empty() || self.rest.starts_with('#')
    }

    /// The next run of non-space characters (empty at the end of the line).
    fn word(&mut self) -> &'a str {
        self.skip_space();
        let end = self.rest.find(char::is_whitespace).unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        word
    }

    /// A bare file name: up to a space, or a `)` when inside `base64(`.
    fn name(&mut self, in_call: bool) -> &'a str {
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || (in_call && c == ')'))
            .unwrap_or(self.rest.len());
        let (name, rest) = self.rest.split_at(end);
        self.rest = rest;
        name
    }

    fn eat(&mut self, prefix: &str) -> bool {
        match self.rest.strip_prefix(prefix) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// The tag of a `<<TAG` body, if that is what comes next.
    fn heredoc(&mut self) -> Option<&'a str> {
        self.skip_space();
        if self.eat("<<") { Some(self.word()) } else { None }
    }

    /// Requires the end of the line after `what`.
    fn end(&mut self, what: &str) -> Result<(), String> {
        if self.at_end() {
            Ok(())
        } else {
            Err(format!("unexpected '{}' after {what}", self.word()))
        }
    }

    fn open_brace(&mut self, what: &str) -> Result<(), String> {
        if self.word() != "{" {
            return Err(format!("{what} must be followed by {{ on the same line"));
        }
        self.end(&format!("{what} {{"))
    }

    /// The rest of a quoted string whose opening `"` is eaten, escapes decoded.
    fn string(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut chars = self.rest.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[at + 1..];
                    return Ok(out);
                }
                '\\' => out.push(escape(&mut chars)?),
                c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        Err("unterminated string (no closing \" on this line)".into())
    }
}

/// The byte an escape after `\` stands for.
fn escape(chars: &mut std::str::CharIndices<'_>) -> Result<u8, String> {
    let byte = match chars.next().map(|(_, c)| c) {
        Some('r') => b'\r',
        Some('n') => b'\n',
        Some('t') => b'\t',
        Some('"') => b'"',
        Some('\\') => b'\\',
        Some('x') => {
            let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
            if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("\\x needs two hex digits, found '\\x{hex}'"));
            }
            u8::from_str_radix(&hex, 16).expect("checked hex digits")
        }
        Some(other) => {
            return Err(format!(
                "unknown escape '\\{other}' (expected \\r \\n \\t \\\" \\\\ or \\xNN)"
            ));
        }
        None => return Err("unterminated string (no closing \" on this line)".into()),
    };
    Ok(byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Parses `text` as `dir/t.script`, with `@` files from `files` (names under `dir/`).
    fn parse_in(text: &str, files: &[(&str, &[u8])]) -> Result<Script, ScriptError> {
        let files: HashMap<PathBuf, Vec<u8>> = files
            .iter()
            .map(|(name, body)| (Path::new("dir").join(name), body.to_vec()))
            .collect();
        let mut read = |path: &Path| {
            files
                .get(path)
                .cloned()
                .ok_or_else(|| format!("cannot read {}: not found", path.display()))
        };
        parse_with(text, Path::new("dir/t.script"), &mut read)
    }

    fn ok(text: &str) -> Script {
        parse_in(text, &[("a.bin", b"AB\xff"), ("sub/c d.txt", b"cd")]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn part(content_type: &str, body: &[u8], delay_ms: u64) -> PartSpec {
        PartSpec::new(content_type, body, delay_ms)
    }

    #[test]
    fn parts_waits_and_comments() {
        let script = ok("# start\n\
             \n\
             wait 1s\n\
             part text/plain \"one\"   # trailing comment\n\
             wait 250ms\n\
             wait 0.5s\n\
             \t part text/html;charset=utf-8 \"two\"\n");
        assert_eq!(script.lead_ms, 1000);
        assert_eq!(
            script.parts,
            [
                part("text/plain", b"one", 750),
                part("text/html;charset=utf-8", b"two", 0)
            ]
        );
        assert_eq!(script.loop_from, None);
    }

    #[test]
    fn string_escapes_and_concatenation() {
        let script = ok(r#"part a/b "\r\n\t\"\\\x00\xFf#é" "" "z""#);
        assert_eq!(script.parts[0].body, b"\r\n\t\"\\\x00\xff#\xc3\xa9z");
        assert_eq!(ok("part a/b \"\"").parts[0].body, b"");
    }

    #[test]
    fn file_bodies_and_base64() {
        let script = ok("part image/png @a.bin\n\
             part text/html \"<\" base64(@a.bin) \">\" @\"sub/c d.txt\"\n\
             part text/plain base64( @\"sub/c d.txt\" )");
        assert_eq!(script.parts[0].body, b"AB\xff");
        assert_eq!(script.parts[1].body, b"<QUL/>cd");
        assert_eq!(script.parts[2].body, b"Y2Q=");
    }

    #[test]
    fn heredocs_keep_lines_verbatim() {
        let script = ok("part text/html <<END\r\n\
             <h1>\"hi\" \\n # not a comment</h1>\r\n\
             \r\n\
             \x20 END\r\n\
             wait 2s\n\
             part text/plain <<E_2 # comment\n\
             E_2\n");
        assert_eq!(
            script.parts,
            [
                part("text/html", b"<h1>\"hi\" \\n # not a comment</h1>\n", 2000),
                part("text/plain", b"", 0)
            ]
        );
    }

    #[test]
    fn repeats_expand_with_their_waits() {
        let script = ok("part a/b \"x\"\n\
             repeat 2 {\n\
               wait 10ms\n\
               repeat 2 {\n\
                 part a/b \"y\"\n\
               }\n\
               wait 5ms\n\
             }\n");
        let delays: Vec<u64> = script.parts.iter().map(|p| p.delay_ms).collect();
        assert_eq!(delays, [10, 0, 15, 0, 5]);
        assert_eq!(script.parts.len(), 5);
        let leading = ok("repeat 3 {\nwait 1ms\npart a/b \"\"\n}");
        assert_eq!(leading.lead_ms, 1);
        assert_eq!(
            leading.parts.iter().map(|p| p.delay_ms).collect::<Vec<_>>(),
            [1, 1, 0]
        );
    }

    #[test]
    fn a_loop_folds_its_leading_wait_into_the_delays_before_each_pass() {
        let script = ok("part a/b \"x\"\n\
             wait 1ms\n\
             loop {\n\
               wait 10ms\n\
               part a/b \"y\"\n\
               repeat 2 {\n\
                 part a/b \"z\"\n\
               }\n\
               wait 100ms\n\
             }\n\
             # only comments after a loop\n");
        assert_eq!(script.loop_from, Some(1));
        let delays: Vec<u64> = script.parts.iter().map(|p| p.delay_ms).collect();
        assert_eq!(delays, [11, 0, 0, 110]);
        let only = ok("loop {\nwait 5ms\npart a/b \"\"\n}");
        assert_eq!((only.lead_ms, only.loop_from), (5, Some(0)));
        assert_eq!(only.parts[0].delay_ms, 5);
        let fast = ok("loop {\npart a/b \"\"\n}");
        assert_eq!(fast.parts[0].delay_ms, 0);
    }

    #[test]
    fn the_demo_script_is_the_demo() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo.script");
        let script = load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(script.lead_ms, 0);
        assert_eq!(script.loop_from, None);
        let demo = crate::stream::spec::demo_parts();
        assert_eq!(script.parts.len(), demo.len());
        for (i, (got, want)) in script.parts.iter().zip(&demo).enumerate() {
            assert_eq!(got, want, "part {i}");
        }
    }

    /// Every error: the script, the line it must name, and words of the message.
    #[test]
    fn errors_name_the_line_and_the_problem() {
        let big = format!("repeat {MAX_REPEAT} {{\nrepeat 2 {{\npart a/b \"\"\n}}\n}}");
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "the script has no parts"),
            ("# nothing\n\n", 1, "the script has no parts"),
            ("wait 1s", 1, "the script has no parts"),
            ("part a/b \"\"\nfrobnicate", 2, "unknown statement 'frobnicate'"),
            ("part", 1, "part needs a content type and a body"),
            ("part text/plain", 1, "part needs a body"),
            ("part text/plain # c", 1, "part needs a body"),
            (
                "part text \"\"",
                1,
                "bad content type 'text': expected type/subtype",
            ),
            ("part text/ \"\"", 1, "type and subtype must be"),
            ("part te(xt/plain \"\"", 1, "type and subtype must be"),
            ("part a/b;charset \"\"", 1, "a parameter must be name=value"),
            ("\npart a/b \"abc", 2, "unterminated string"),
            ("part a/b \"ab\\", 1, "unterminated string"),
            ("part a/b \"\\q\"", 1, "unknown escape '\\q'"),
            ("part a/b \"\\x4\"", 1, "\\x needs two hex digits, found '\\x4\"'"),
            ("part a/b \"\\xg0\"", 1, "\\x needs two hex digits"),
            (
                "part a/b x",
                1,
                "expected a body (\"text\", @file, base64(@file) or <<TAG), found 'x'",
            ),
            ("part a/b @", 1, "@ needs a file name"),
            (
                "part a/b @missing.png",
                1,
                "cannot read dir/missing.png: not found",
            ),
            ("part a/b base64(a.bin)", 1, "base64( takes a file"),
            ("part a/b base64(@a.bin", 1, "missing its closing )"),
            ("part a/b @\"\\xff\"", 1, "file name is not UTF-8"),
            ("part a/b <<", 1, "heredoc tag '' must be"),
            ("part a/b <<E-1", 1, "heredoc tag 'E-1' must be"),
            ("part a/b <<END x", 1, "unexpected 'x' after <<TAG"),
            ("x\npart a/b <<END\ntext\nEND2", 1, "unknown statement 'x'"),
            (
                "part a/b \"\"\npart a/b <<END\ntext\nEND2",
                2,
                "heredoc <<END is never closed",
            ),
            ("part a/b \"\"\nwait", 2, "wait needs a duration"),
            ("part a/b \"\"\nwait 5", 2, "bad duration '5'"),
            ("part a/b \"\"\nwait 1.5ms", 2, "bad duration '1.5ms'"),
            ("part a/b \"\"\nwait 1.2345s", 2, "1 to 3 decimals"),
            ("part a/b \"\"\nwait 1.s", 2, "1 to 3 decimals"),
            ("part a/b \"\"\nwait -1s", 2, "bad duration '-1s'"),
            ("part a/b \"\"\nwait 1m", 2, "bad duration '1m'"),
            ("part a/b \"\"\nwait 86400.001s", 2, "over a day"),
            ("part a/b \"\"\nwait 99999999999999999999999ms", 2, "over a day"),
            ("part a/b \"\"\nwait 1s 2s", 2, "unexpected '2s' after wait"),
            (
                "part a/b \"\"\nwait 86400s\nwait 1ms",
                3,
                "add up to more than a day",
            ),
            (
                "repeat 2 {\nwait 86400s\npart a/b \"\"\nwait 1ms\n}",
                5,
                "add up to more than a day",
            ),
            ("repeat x {", 1, "repeat needs a whole number of times, found 'x'"),
            ("repeat {", 1, "repeat needs a whole number of times, found '{'"),
            ("repeat 0 {", 1, "the count must be at least 1"),
            ("repeat 100001 {", 1, "over the limit of 100000"),
            ("repeat 2", 1, "repeat N must be followed by {"),
            ("repeat 2 { part", 1, "unexpected 'part' after repeat N {"),
            (
                "part a/b \"\"\nrepeat 2 {\n# nothing\n}",
                2,
                "this repeat has no part",
            ),
            (
                "part a/b \"\"\nrepeat 2 {\nwait 1s\n}",
                2,
                "this repeat has no part",
            ),
            (
                "part a/b \"\"\nrepeat 2 {\npart a/b \"\"\n",
                2,
                "this repeat is never closed",
            ),
            (
                "repeat 2 {\nloop {\npart a/b \"\"\n}\n}",
                2,
                "a loop cannot be inside",
            ),
            ("loop {\n\n}", 1, "this loop has no part"),
            ("loop {\npart a/b \"\"\n", 1, "this loop is never closed"),
            ("loop {\npart a/b \"\"\n}\nwait 1s", 4, "'wait' after the loop"),
            ("loop {\npart a/b \"\"\n}\n}", 4, "'}' after the loop"),
            ("part a/b \"\"\n}", 2, "stray }"),
            ("part a/b \"\"\n} x", 2, "unexpected 'x' after }"),
            (&big, 5, "more than 100000 parts"),
        ];
        for &(text, line, says) in cases {
            let err = parse_in(text, &[("a.bin", b"x")]).unwrap_err();
            assert_eq!(err.file, "dir/t.script", "{text:?}");
            assert!(
                err.line == line && err.message.contains(says),
                "{text:?}: got {err}, want line {line}: {says}"
            );
            assert_eq!(
                err.to_string(),
                format!("dir/t.script:{}: {}", err.line, err.message)
            );
        }
    }

    #[test]
    fn the_body_bytes_are_capped() {
        let mb = vec![0u8; 1 << 20];
        let text = "repeat 300 {\npart a/b @mb\n}";
        let err = parse_in(text, &[("mb", &mb)]).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("more than 256 MiB"), "{err}");
    }

    /// A scratch directory for the tests that need the real file system.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mixreplace-script-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn load_reads_files_next_to_the_script() {
        let dir = scratch("load");
        fs::write(dir.join("body.txt"), b"from a file").unwrap();
        let file = dir.join("s.script");
        fs::write(&file, "part text/plain @body.txt\n").unwrap();
        let script = load(&file).unwrap();
        assert_eq!(script.parts[0].body, b"from a file");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_refuses_unreadable_scripts_and_bodies() {
        let dir = scratch("refuse");
        let missing = load(&dir.join("nope.script")).unwrap_err();
        assert_eq!(missing.line, 0);
        assert!(
            missing.to_string().contains("nope.script:0: cannot read: "),
            "{missing}"
        );

        let binary = dir.join("binary.script");
        fs::write(&binary, b"# ok\npart a/b \"\xff\"\n").unwrap();
        let err = load(&binary).unwrap_err();
        assert_eq!((err.line, &*err.message), (2, "not UTF-8 text"));

        let huge = dir.join("huge.bin");
        fs::File::create(&huge).unwrap().set_len(MAX_FILE + 1).unwrap();
        for (body, says) in [
            ("@huge.bin", "is larger than 64 MiB"),
            ("@.", "not a regular file"),
            ("@/dev/null", "not a regular file"),
            ("@gone.png", "cannot read"),
        ] {
            let text = format!("part a/b \"\"\npart a/b {body}\n");
            let err = parse(&text, &dir.join("s.script")).unwrap_err();
            assert_eq!(err.line, 2, "{err}");
            assert!(err.message.contains(says), "{body}: {err}");
        }
        fs::remove_dir_all(dir).unwrap();
    }
}
