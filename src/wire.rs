//! Pieces of HTTP/1.x message framing shared by the crate's two body readers: the load
//! generator's strict response parser (`load::multipart`) and the live inputs' lenient
//! multipart demuxer (`stream::input::demux`).
//!
//! Invariants: no allocation except a boundary's own bytes; no I/O, no clock; every
//! function takes any split of its input (the chunk decoder keeps its place in a few
//! bytes of state). Errors are short static strings; each caller wraps them in its own
//! error type and decides what is fatal.

/// `name: value` with the value's optional whitespace trimmed. Refuses a CR inside the
/// line, a folded (indented) line, a line without a colon and a name that is not a token.
pub(crate) fn header(line: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    if line.contains(&b'\r') {
        return Err("CR inside a header line");
    }
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err("folded header line");
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or("header line without a colon")?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err("bad header name");
    }
    Ok((name, trim(&line[colon + 1..])))
}

/// A `tchar` of RFC 9110 §5.6.2: what header names and parameter names are made of.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `s` without leading and trailing spaces and tabs.
pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses at most `max_digits` ASCII digits (and nothing else); `None` past `u64::MAX`.
pub(crate) fn decimal(s: &[u8], max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// A Content-Type value split at its first `;`: the media type (trimmed) and the
/// parameters (from the `;` on, for [`boundary_param`]).
pub(crate) fn media_type(value: &[u8]) -> (&[u8], &[u8]) {
    let semi = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    (trim(&value[..semi]), &value[semi..])
}

/// The `boundary` parameter among a Content-Type's parameters (`*( OWS ";" OWS [ name
/// "=" ( token / quoted-string ) ] ) OWS`), unquoted, if there is one. Refuses malformed
/// parameters and a second `boundary`; the caller judges the value.
pub(crate) fn boundary_param(mut rest: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let mut found = None;
    loop {
        rest = trim(rest);
        match rest {
            [] => break,
            [b';', tail @ ..] => rest = trim(tail),
            _ => return Err("bad Content-Type parameters"),
        }
        if rest.is_empty() || rest[0] == b';' {
            continue;
        }
        let eq = rest
            .iter()
            .position(|&b| !is_tchar(b))
            .filter(|&p| p > 0 && rest[p] == b'=')
            .ok_or("bad Content-Type parameter")?;
        let name = &rest[..eq];
        rest = &rest[eq + 1..];
        let mut param = Vec::new();
        if let [b'"', tail @ ..] = rest {
            let mut i = 0;
            loop {
                match tail.get(i) {
                    Some(b'"') => break,
                    Some(b'\\') if i + 1 < tail.len() => {
                        param.push(tail[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        param.push(b);
                        i += 1;
                    }
                    None => return Err("unterminated quoted boundary"),
                }
            }
            rest = &tail[i + 1..];
        } else {
            let end = rest.iter().position(|&b| !is_tchar(b)).unwrap_or(rest.len());
            param.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
        }
        if name.eq_ignore_ascii_case(b"boundary") {
            if found.is_some() {
                return Err("two boundary parameters");
            }
            found = Some(param);
        }
    }
    Ok(found)
}

/// What [`ChunkDecoder::decode`] found at the start of its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Only chunk framing (sizes, extensions, line ends): nothing for the reader.
    Framing,
    /// Payload bytes.
    Data(&'a [u8]),
    /// The last chunk's size line (`0`): the payload is over. Trailers are not read.
    Last,
}

/// A decoder of the `chunked` transfer coding (RFC 9112 §7.1), fed any split of the
/// body. Chunk extensions are skipped; a size of more than 15 hex digits is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkDecoder(ChunkState);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Size {
        value: u64,
        digits: u8,
    },
    /// Chunk extensions (ignored) or whitespace after the size, up to CR.
    Ext {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        ChunkDecoder(ChunkState::Size { value: 0, digits: 0 })
    }
}

impl ChunkDecoder {
    /// Decodes the start of `data` (not empty): returns how many bytes it used and what
    /// they held. Framing is consumed up to the next payload byte, so one call returns at
    /// most one payload slice and the caller loops on the rest.
    pub(crate) fn decode<'a>(&mut self, data: &'a [u8]) -> Result<(usize, Piece<'a>), &'static str> {
        let mut i = 0;
        while i < data.len() {
            if let ChunkState::Data { remaining } = self.0 {
                if i > 0 {
                    return Ok((i, Piece::Framing));
                }
                let n = remaining.min(data.len() as u64);
                self.0 = match remaining - n {
                    0 => ChunkState::DataCr,
                    remaining => ChunkState::Data { remaining },
                };
                return Ok((n as usize, Piece::Data(&data[..n as usize])));
            }
            let b = data[i];
            i += 1;
            self.0 = match self.0 {
                ChunkState::Size { value, digits } => match (b as char).to_digit(16) {
                    Some(_) if digits == 15 => return Err("chunk size too large"),
                    Some(d) => ChunkState::Size {
                        value: value << 4 | u64::from(d),
                        digits: digits + 1,
                    },
                    None if digits == 0 => return Err("bad chunk size"),
                    None if b == b'\r' => ChunkState::SizeLf { size: value },
                    None if matches!(b, b';' | b' ' | b'\t') => ChunkState::Ext { size: value },
                    None => return Err("bad chunk size"),
                },
                ChunkState::Ext { size } if b == b'\r' => ChunkState::SizeLf { size },
                ChunkState::Ext { size } => ChunkState::Ext { size },
                ChunkState::SizeLf { size: 0 } if b == b'\n' => return Ok((i, Piece::Last)),
                ChunkState::SizeLf { size } if b == b'\n' => ChunkState::Data { remaining: size },
                ChunkState::SizeLf { .. } => return Err("chunk size line without CRLF"),
                ChunkState::DataCr if b == b'\r' => ChunkState::DataLf,
                ChunkState::DataLf if b == b'\n' => ChunkState::Size { value: 0, digits: 0 },
                ChunkState::DataCr | ChunkState::DataLf => return Err("chunk data without CRLF"),
                ChunkState::Data { .. } => unreachable!("handled above"),
            };
        }
        Ok((i, Piece::Framing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `body` cut into `step`-byte reads: the payload and whether the last chunk
    /// was seen.
    fn dechunk(body: &[u8], step: usize) -> Result<(Vec<u8>, bool), &'static str> {
        let mut decoder = ChunkDecoder::default();
        let mut payload = Vec::new();
        for piece in body.chunks(step) {
            let mut rest = piece;
            while !rest.is_empty() {
                let (used, found) = decoder.decode(rest)?;
                rest = &rest[used..];
                match found {
                    Piece::Data(data) => payload.extend_from_slice(data),
                    Piece::Last => return Ok((payload, true)),
                    Piece::Framing => {}
                }
            }
        }
        Ok((payload, false))
    }

    #[test]
    fn chunks_in_any_split() {
        let body = b"5\r\nhello\r\n1;ext=1\r\n,\r\nA \r\n0123456789\r\n0\r\n\r\n";
        for step in 1..body.len() {
            assert_eq!(
                dechunk(body, step),
                Ok((b"hello,0123456789".to_vec(), true)),
                "{step}"
            );
        }
        assert_eq!(dechunk(b"3\r\nabc\r\n", 2), Ok((b"abc".to_vec(), false)));
    }

    #[test]
    fn chunk_errors() {
        assert_eq!(dechunk(b"x\r\n", 1), Err("bad chunk size"));
        assert_eq!(dechunk(b"1000000000000000\r\n", 4), Err("chunk size too large"));
        assert_eq!(dechunk(b"3\r\rabc", 4), Err("chunk size line without CRLF"));
        assert_eq!(dechunk(b"3\r\nabcd", 4), Err("chunk data without CRLF"));
    }

    #[test]
    fn content_type_parameters() {
        let (essence, rest) = media_type(b" multipart/x-mixed-replace ; boundary=\"a b\" ; x=1");
        assert_eq!(essence, b"multipart/x-mixed-replace");
        assert_eq!(boundary_param(rest), Ok(Some(b"a b".to_vec())));
        assert_eq!(boundary_param(b";boundary=--x"), Ok(Some(b"--x".to_vec())));
        assert_eq!(boundary_param(b";charset=x"), Ok(None));
        assert_eq!(
            boundary_param(b";boundary=a;boundary=b"),
            Err("two boundary parameters")
        );
        assert_eq!(
            boundary_param(b";boundary=\"a"),
            Err("unterminated quoted boundary")
        );
        assert_eq!(
            header(b"Content-Length:  12 "),
            Ok((&b"Content-Length"[..], &b"12"[..]))
        );
        assert_eq!(header(b" folded"), Err("folded header line"));
        assert_eq!(decimal(b"18446744073709551616", 20), None);
    }
}
