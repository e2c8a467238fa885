//! ffmpeg as a client and as a tool: commands that print only errors, decoding checked
//! clean, decoded frames as hashes. Every run is bounded by [`TOOL_LIMIT`].

use std::path::Path;
use std::process::{Command, Stdio};

use super::process::{Output, run};
use super::tools::TOOL_LIMIT;

/// Runs ffmpeg with `args` to its end (bounded); fails the test unless it succeeds.
pub fn run_ffmpeg(ffmpeg: &Path, args: &[&str], what: &str) -> Output {
    let done = run(ffmpeg_command(ffmpeg).args(args), None, TOOL_LIMIT);
    assert!(done.status.success(), "{what}: {}", done.stderr_text());
    done
}

pub fn ffmpeg_command(ffmpeg: &Path) -> Command {
    let mut command = Command::new(ffmpeg);
    command
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The MD5 of each decoded frame, from `-f framemd5` output.
pub fn frame_hashes(framemd5: &str) -> Vec<String> {
    framemd5
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.rsplit(',').next().unwrap().trim().to_owned())
        .collect()
}

/// Whether a line of ffmpeg's stderr is what its HTTP reader says about every response
/// that ends by closing the connection without a Content-Length, as every stream does,
/// however well framed: "Stream ends prematurely at N, should be 18446744073709551615",
/// then "URL: Input/output error" (libavformat/http.c, `http_buf_read`; the exit status
/// is 0).
pub fn is_ffmpeg_http_eof(line: &str) -> bool {
    line.contains("Stream ends prematurely at ") && line.ends_with("should be 18446744073709551615")
        || line.ends_with(": Input/output error")
}

/// ffmpeg's stderr holds nothing but, at the very end, what its HTTP reader says about
/// every stream ([`is_ffmpeg_http_eof`]). A live stream that ends closes with an empty
/// final part that names its Content-Type, as ffmpeg's mpjpeg demuxer requires of every
/// part, so it says nothing about it.
pub fn assert_clean_decode(stderr: &str, what: &str) {
    let unexpected: Vec<&str> = stderr.lines().filter(|line| !is_ffmpeg_http_eof(line)).collect();
    assert!(unexpected.is_empty(), "{what}: ffmpeg said:\n{stderr}");
}

/// [`assert_clean_decode`] for a body sent chunked, as nginx re-frames a stream for an
/// HTTP/1.1 client: there the body has a clean end, and ffmpeg's mpjpeg demuxer, reading
/// on after the closing delimiter for another part's headers, meets it and says
/// "URL: Invalid data found when processing input" as its last line (exit status 0; the
/// same straight from the server with `fault=chunked`). That line may end it, nothing else.
pub fn assert_clean_chunked_decode(stderr: &str, what: &str) {
    let rest = match stderr.trim_end().rsplit_once('\n') {
        Some((rest, last)) if last.ends_with(": Invalid data found when processing input") => rest,
        None if stderr
            .trim_end()
            .ends_with(": Invalid data found when processing input") =>
        {
            ""
        }
        _ => stderr,
    };
    assert_clean_decode(rest, what);
}

/// ffmpeg reads `url` with the mpjpeg demuxer and decodes every frame.
pub fn ffmpeg_client(ffmpeg: &Path, url: &str) -> Command {
    let mut command = ffmpeg_command(ffmpeg);
    command.args(["-f", "mpjpeg", "-i", url, "-f", "framemd5", "-"]);
    command
}
