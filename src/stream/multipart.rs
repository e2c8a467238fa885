//! RFC 2046 framing for `multipart/x-mixed-replace`, encoded once and shared.
//!
//! The wire format of a stream (CRLF everywhere):
//!
//! ```text
//! --B                                   opening dash-boundary (sent after the response head)
//! Content-Type: image/jpeg              ┐
//! Content-Length: 1795                  │ a part: its head, the stamp of the moment it was
//! X-Timestamp: 1763722800.500000        │ due (and, in a numbered stream, the frame's
//! X-Frame: 42                           │ number), a blank line, the body, and at once the
//!                                       │ delimiter that opens the next part, so a browser
//! <body>                                │ shows this part without waiting for the next one
//! --B                                   ┘ (the last part ends with --B-- instead)
//! ```
//!
//! A part is encoded once per stream ([`Part`]) and shared by every connection; only the
//! stamp, a few bytes, is per connection ([`Stamp`], inline, no allocation). `X-Frame`
//! belongs to the stamp because its number may differ by connection (a testcard's loop
//! counts on for each client). A boundary is random, and checked absent from every body
//! it frames.

use std::fmt;
use std::io;

use memchr::memmem;

/// Length of a generated boundary; RFC 2046 allows up to 70 characters.
const BOUNDARY_LEN: usize = 32;
const BOUNDARY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// A multipart boundary: `[A-Za-z0-9_-]`, never starting with `-` (so never with `--`,
/// which would make a delimiter look like a closing one to lax parsers).
///
/// It carries a prepared substring searcher: every live frame is checked for the boundary
/// on the loop, and a byte-by-byte scan of a multi-MiB frame would stall every client.
#[derive(Clone, Debug)]
pub struct Boundary {
    text: String,
    /// Boxed: a prepared finder is a few hundred bytes, and boundaries sit in every stream.
    finder: Box<memmem::Finder<'static>>,
}

impl PartialEq for Boundary {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Boundary {}

impl Boundary {
    /// A fresh random boundary, from the OS random source.
    pub fn random() -> io::Result<Boundary> {
        let mut bytes = [0u8; BOUNDARY_LEN];
        fill_random(&mut bytes)?;
        // 62 letters and digits first, then `_` and `-`: the first character is taken
        // from the first 62 only.
        let text = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let choices = if i == 0 { 62 } else { BOUNDARY_CHARS.len() };
                BOUNDARY_CHARS[b as usize % choices] as char
            })
            .collect();
        Ok(Boundary::new(text))
    }

    /// A random boundary that occurs in none of `bodies`.
    pub fn absent_from<'a>(bodies: impl Iterator<Item = &'a [u8]> + Clone) -> io::Result<Self> {
        loop {
            let boundary = Boundary::random()?;
            if !bodies.clone().any(|body| boundary.occurs_in(body)) {
                return Ok(boundary);
            }
        }
    }

    fn new(text: String) -> Self {
        let finder = Box::new(memmem::Finder::new(text.as_bytes()).into_owned());
        Boundary { text, finder }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn occurs_in(&self, body: &[u8]) -> bool {
        self.finder.find(body).is_some()
    }

    /// `--B\r\n`: opens the first part.
    pub fn opening(&self) -> Vec<u8> {
        format!("--{}\r\n", self.text).into_bytes()
    }

    /// Ends a stream early, after a part's delimiter: an empty final part of
    /// `content_type`, then the closing delimiter. The part names its type because strict
    /// clients refuse a part without one, or of another type than the stream's (ffmpeg's
    /// mpjpeg reader takes only `image/jpeg`).
    pub fn closing(&self, content_type: &str) -> Vec<u8> {
        format!(
            "Content-Type: {content_type}\r\nContent-Length: 0\r\n\r\n{}",
            self.close_delimiter()
        )
        .into_bytes()
    }

    /// `\r\n--B--\r\n`: only the closing delimiter, for when the final part's header
    /// block already went out (`advance_headers`).
    pub fn close_delimiter(&self) -> String {
        format!("\r\n--{}--\r\n", self.text)
    }
}

impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable slice.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        } else {
            filled += n as usize;
        }
    }
    Ok(())
}

/// One encoded part: everything but the stamp, which goes at `stamp_at`.
#[derive(Debug)]
pub struct Part {
    bytes: Box<[u8]>,
    stamp_at: usize,
    body_at: usize,
    body_len: usize,
}

/// Whether a part is followed by another (`--B`) or ends the stream (`--B--`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    More,
    End,
}

impl Part {
    pub fn encode(boundary: &Boundary, content_type: &str, body: &[u8], then: Then) -> Part {
        let mut bytes = Vec::with_capacity(body.len() + 128);
        bytes.extend_from_slice(b"Content-Type: ");
        bytes.extend_from_slice(content_type.as_bytes());
        bytes.extend_from_slice(format!("\r\nContent-Length: {}\r\nX-Timestamp: ", body.len()).as_bytes());
        let stamp_at = bytes.len();
        bytes.extend_from_slice(b"\r\n\r\n");
        let body_at = bytes.len();
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(b"\r\n--");
        bytes.extend_from_slice(boundary.as_str().as_bytes());
        bytes.extend_from_slice(match then {
            Then::More => b"\r\n",
            Then::End => b"--\r\n",
        });
        Part {
            bytes: bytes.into_boxed_slice(),
            stamp_at,
            body_at,
            body_len: body.len(),
        }
    }

    /// The bytes before the stamp and after it.
    pub fn halves(&self) -> (&[u8], &[u8]) {
        self.bytes.split_at(self.stamp_at)
    }

    /// The body and the delimiter after it: what follows the header block.
    pub fn body_and_delimiter(&self) -> &[u8] {
        &self.bytes[self.body_at..]
    }

    /// What ends its header block after the stamp: CRLF CRLF, or as a fault frames it.
    pub fn header_end(&self) -> &[u8] {
        &self.bytes[self.stamp_at..self.body_at]
    }

    /// Its encoded length: header block (without the stamp), body and delimiter.
    pub fn encoded_len(&self) -> usize {
        let (head, tail) = self.halves();
        head.len() + tail.len()
    }

    /// The part's `Content-Type`, read back from its encoded head (its line may end in
    /// LF alone: see `fault`).
    pub fn content_type(&self) -> &str {
        let line = &self.bytes[b"Content-Type: ".len()..];
        let end = line.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(0);
        std::str::from_utf8(&line[..end]).unwrap_or("")
    }

    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body_at..self.body_at + self.body_len]
    }

    /// A part framed elsewhere (on purpose otherwise: `fault`): `bytes` starts with its
    /// `Content-Type` line, the stamp goes at `stamp_at`, and its body is the `body_len`
    /// bytes at `body_at`.
    pub fn from_framed(bytes: Vec<u8>, stamp_at: usize, body_at: usize, body_len: usize) -> Part {
        assert!(
            bytes.starts_with(b"Content-Type: ") && stamp_at <= body_at && body_at + body_len <= bytes.len(),
            "a framed part's offsets lie within it"
        );
        Part {
            bytes: bytes.into_boxed_slice(),
            stamp_at,
            body_at,
            body_len,
        }
    }
}

/// The `X-Frame` header's name, after the line end that ends the `X-Timestamp` line.
const FRAME_HEADER: &[u8] = b"X-Frame: ";
/// The longest stamp: 21 characters of `u64::MAX` microseconds, a CRLF, then the
/// `X-Frame` header with 20 digits.
const STAMP_MAX: usize = 21 + 2 + FRAME_HEADER.len() + 20;

/// A connection's stamp for one part: the `X-Timestamp` value, `seconds.micros` since the
/// Unix epoch, and for a numbered part its `X-Frame` header; formatted without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    text: [u8; STAMP_MAX],
    len: u8,
}

impl Stamp {
    pub fn new(epoch_us: u64, frame: Option<u64>) -> Stamp {
        Stamp::with_line_end(epoch_us, frame, false)
    }

    /// The stamp, its lines ending in LF alone when `lf_only` (the `lf_only` fault: the
    /// line between `X-Timestamp` and `X-Frame` is framing like any other).
    pub fn with_line_end(epoch_us: u64, frame: Option<u64>, lf_only: bool) -> Stamp {
        let mut stamp = Stamp {
            text: [0; STAMP_MAX],
            len: 0,
        };
        stamp.push_decimal(epoch_us / 1_000_000, 1);
        stamp.push(b".");
        stamp.push_decimal(epoch_us % 1_000_000, 6);
        if let Some(frame) = frame {
            stamp.push(if lf_only { b"\n" } else { b"\r\n" });
            stamp.push(FRAME_HEADER);
            stamp.push_decimal(frame, 1);
        }
        stamp
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len as usize]
    }

    fn push(&mut self, bytes: &[u8]) {
        let at = self.len as usize;
        self.text[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len() as u8;
    }

    /// `n` in decimal, zero-padded to at least `width` digits.
    fn push_decimal(&mut self, mut n: u64, width: usize) {
        let mut digits = [0u8; 20];
        let mut count = 0;
        while n > 0 || count < width {
            digits[digits.len() - 1 - count] = b'0' + (n % 10) as u8;
            n /= 10;
            count += 1;
        }
        self.push(&digits[digits.len() - count..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_long_random_and_well_formed() {
        let a = Boundary::random().unwrap();
        let b = Boundary::random().unwrap();
        assert_ne!(a, b);
        assert!(a.as_str().len() >= 24);
        assert!(!a.as_str().starts_with('-'));
        assert!(a.as_str().bytes().all(|c| BOUNDARY_CHARS.contains(&c)));
    }

    #[test]
    fn a_boundary_avoids_the_bodies_it_frames() {
        let boundary = Boundary::random().unwrap();
        let body = format!("xx{boundary}yy");
        assert!(boundary.occurs_in(body.as_bytes()));
        let chosen = Boundary::absent_from([body.as_bytes()].into_iter()).unwrap();
        assert_ne!(chosen, boundary);
        assert!(!chosen.occurs_in(body.as_bytes()));
    }

    #[test]
    fn a_part_is_framed_with_its_delimiter_and_the_stamp_in_between() {
        let boundary = Boundary::new("B".repeat(24));
        let part = Part::encode(&boundary, "text/plain", b"hi", Then::More);
        let stamp = Stamp::new(1_763_722_800_000_042, None);
        let (head, tail) = part.halves();
        let wire = [head, stamp.as_bytes(), tail].concat();
        let b = "B".repeat(24);
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            format!(
                "Content-Type: text/plain\r\nContent-Length: 2\r\n\
                 X-Timestamp: 1763722800.000042\r\n\r\nhi\r\n--{b}\r\n"
            )
        );
        assert_eq!(part.body(), b"hi");
        assert_eq!(part.content_type(), "text/plain");
        assert_eq!(part.body_and_delimiter(), format!("hi\r\n--{b}\r\n").as_bytes());
        let last = Part::encode(&boundary, "text/plain", b"", Then::End);
        assert!(
            last.halves()
                .1
                .ends_with(format!("\r\n\r\n\r\n--{b}--\r\n").as_bytes())
        );
        assert_eq!(last.body(), b"");
    }

    #[test]
    fn stamps_have_six_digit_micros_and_the_frame_number() {
        assert_eq!(Stamp::new(0, None).as_bytes(), b"0.000000");
        assert_eq!(Stamp::new(1_500_000, None).as_bytes(), b"1.500000");
        assert_eq!(Stamp::new(u64::MAX, None).as_bytes(), b"18446744073709.551615");
        assert_eq!(
            Stamp::new(1_500_000, Some(0)).as_bytes(),
            b"1.500000\r\nX-Frame: 0"
        );
        assert_eq!(
            Stamp::new(u64::MAX, Some(u64::MAX)).as_bytes(),
            b"18446744073709.551615\r\nX-Frame: 18446744073709551615"
        );
        // `lf_only`: the line end inside the stamp is framing too.
        assert_eq!(
            Stamp::with_line_end(1_500_000, Some(7), true).as_bytes(),
            b"1.500000\nX-Frame: 7"
        );
        assert_eq!(Stamp::with_line_end(0, None, true), Stamp::new(0, None));
    }
}
