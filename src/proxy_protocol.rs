//! The PROXY protocol header (HAProxy's `doc/proxy-protocol.txt`, versions 1 and 2) that a
//! load balancer sends before the client's own bytes, to tell the client's address.
//! Sans-IO: [`parse`] looks at the bytes read so far and answers "read more", "this
//! header, this long" or "not a PROXY header".
//!
//! Invariants:
//! - A header is never longer than [`MAX_LEN`] bytes: version 1 fits in 107 by its
//!   specification; a version 2 header whose length says more is refused, whatever its
//!   TLVs, so a peer cannot make a connection buffer more than that before its request.
//! - [`parse`] of a prefix of a header answers `Ok(None)` (read more) and never an
//!   error: the answer does not depend on how the bytes were cut into reads. Bytes that
//!   cannot begin a header are an error as soon as they are seen (the protocol says a
//!   receiver must not guess: a connection that should carry a header and does not is
//!   refused, not served as HTTP).
//! - The `LOCAL` command (a proxy's own health check), the `UNKNOWN` family of version
//!   1, and version 2's unspecified and unix families give no address
//!   ([`Header::source`] is `None`): the connection's own peer stands.
//! - Version 2's TLVs are skipped, unread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest header accepted: version 2's 16 fixed bytes and up to 496 of addresses
/// and TLVs (HAProxy's own TLVs, SSL ones included, fit well within it).
pub const MAX_LEN: usize = 512;
/// Version 1's longest line, CRLF included (the specification's own figure).
const V1_MAX: usize = 107;
const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2's fixed part: the signature, version and command, family, length.
const V2_FIXED: usize = 16;

/// A complete header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Its length: the client's own bytes start after it.
    pub len: usize,
    /// The client's address, when the header gives one.
    pub source: Option<SocketAddr>,
}

/// Why a connection's first bytes are not a header this server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Neither version's signature.
    NotProxy,
    /// Version 1: no CRLF within 107 bytes, or a field that does not parse.
    BadLine,
    /// Version 2: a version, command or family this protocol does not define, or an
    /// address block shorter than its family needs.
    BadBinary,
    /// Version 2: longer than [`MAX_LEN`].
    TooLong,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invalid::NotProxy => "no PROXY protocol header",
            Invalid::BadLine => "a malformed PROXY v1 line",
            Invalid::BadBinary => "a malformed PROXY v2 header",
            Invalid::TooLong => "a PROXY v2 header over 512 bytes",
        })
    }
}

/// Reads a header from the start of `buf`. `Ok(None)`: too few bytes yet.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, Invalid> {
    if buf.starts_with(V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if buf.starts_with(V1_PREFIX) {
        return parse_v1(buf);
    }
    let seen = buf.len();
    if V2_SIGNATURE.starts_with(buf) || (seen < V1_PREFIX.len() && V1_PREFIX.starts_with(buf)) {
        return Ok(None);
    }
    Err(Invalid::NotProxy)
}

/// `PROXY TCP4 SRC DST SPORT DPORT\r\n`, `PROXY TCP6 …`, or `PROXY UNKNOWN…\r\n`.
fn parse_v1(buf: &[u8]) -> Result<Option<Header>, Invalid> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return match buf.len() < V1_MAX {
            true => Ok(None),
            false => Err(Invalid::BadLine),
        };
    };
    let line = window[..lf].strip_suffix(b"\r").ok_or(Invalid::BadLine)?;
    let line = std::str::from_utf8(&line[V1_PREFIX.len()..]).map_err(|_| Invalid::BadLine)?;
    let len = lf + 1;
    let mut fields = line.split(' ');
    let source = match fields.next() {
        // Whatever follows UNKNOWN is to be ignored.
        Some("UNKNOWN") => None,
        Some(family @ ("TCP4" | "TCP6")) => {
            let [src, dst, sport, dport] = [(); 4].map(|()| fields.next().unwrap_or(""));
            if fields.next().is_some() {
                return Err(Invalid::BadLine);
            }
            let ip = |text: &str| {
                text.parse::<IpAddr>()
                    .ok()
                    .filter(|ip| ip.is_ipv4() == (family == "TCP4"))
            };
            let (src, _dst) = ip(src).zip(ip(dst)).ok_or(Invalid::BadLine)?;
            let (sport, _dport) = port(sport).zip(port(dport)).ok_or(Invalid::BadLine)?;
            Some(SocketAddr::new(src, sport))
        }
        _ => return Err(Invalid::BadLine),
    };
    Ok(Some(Header { len, source }))
}

/// A port in version 1: decimal digits, no sign, no leading zero (the specification's
/// own rule), at most 65535.
fn port(text: &str) -> Option<u16> {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain.then(|| text.parse().ok()).flatten()
}

/// The signature, then version and command, family and protocol, a big-endian length,
/// the addresses and TLVs.
fn parse_v2(buf: &[u8]) -> Result<Option<Header>, Invalid> {
    if buf.len() < V2_FIXED {
        return Ok(None);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    let (family, transport) = (buf[13] >> 4, buf[13] & 0x0f);
    if version != 2 || command > 1 || family > 3 || transport > 2 {
        return Err(Invalid::BadBinary);
    }
    let len = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_LEN {
        return Err(Invalid::TooLong);
    }
    if buf.len() < len {
        return Ok(None);
    }
    let block = &buf[V2_FIXED..len];
    let source = match (command, family) {
        // LOCAL: the proxy speaking for itself; its addresses (if any) are to be ignored.
        (0, _) => None,
        (_, 1) => {
            let a: [u8; 12] = block
                .get(..12)
                .and_then(|b| b.try_into().ok())
                .ok_or(Invalid::BadBinary)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        (_, 2) => {
            let a: [u8; 36] = block
                .get(..36)
                .and_then(|b| b.try_into().ok())
                .ok_or(Invalid::BadBinary)?;
            let mut octets = [0; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[32], a[33]])))
        }
        // Unspecified or unix: no address the access log could show.
        _ => None,
    };
    Ok(Some(Header { len, source }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    /// Every prefix of `bytes` but the whole: "read more".
    fn prefixes_wait(bytes: &[u8], len: usize) {
        for cut in 0..len {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut at {cut} of {bytes:?}");
        }
    }

    #[test]
    fn version_1_gives_the_source_address() {
        let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
        let header = parse(line).unwrap().unwrap();
        assert_eq!(header.len, 45);
        assert_eq!(header.source, Some("192.0.2.7:56324".parse().unwrap()));
        prefixes_wait(line, header.len);
        let six = b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
        let header = parse(six).unwrap().unwrap();
        assert_eq!(header.source, Some("[2001:db8::1]:1".parse().unwrap()));
        let unknown = b"PROXY UNKNOWN whatever follows\r\n";
        assert_eq!(
            parse(unknown),
            Ok(Some(Header {
                len: unknown.len(),
                source: None
            }))
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().source, None);
    }

    #[test]
    fn version_1_refuses_what_it_does_not_define() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
            b"PROXY TCP6 192.0.2.7 ::1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 056324 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +1 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n",
            b"PROXY TCP4  192.0.2.7 198.51.100.1 1 2\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
            b"PROXY \xff\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(Invalid::BadLine),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = [b'x'; 200];
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.extend_from_slice(&endless);
        assert_eq!(parse(&long[..106]), Ok(None));
        assert_eq!(parse(&long[..107]), Err(Invalid::BadLine));
    }

    #[test]
    fn anything_else_is_refused_at_once() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Invalid::NotProxy));
        assert_eq!(parse(b"G"), Err(Invalid::NotProxy));
        assert_eq!(parse(b"PROXX"), Err(Invalid::NotProxy));
        assert_eq!(parse(b"\r\n\r\nX"), Err(Invalid::NotProxy));
        assert_eq!(parse(b"PROX"), Ok(None));
        assert_eq!(parse(b"\r\n\r\n\0"), Ok(None));
    }

    #[test]
    fn version_2_gives_the_source_address_and_skips_tlvs() {
        let mut block = vec![192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb];
        // A TLV (PP2_TYPE_AUTHORITY "example.org") and a NOOP: skipped.
        block.extend_from_slice(b"\x02\x00\x0bexample.org\x04\x00\x00");
        let mut bytes = v2(1, 0x11, &block);
        let len = bytes.len();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let header = parse(&bytes).unwrap().unwrap();
        assert_eq!(header.len, len);
        assert_eq!(header.source, Some("192.0.2.7:56324".parse().unwrap()));
        prefixes_wait(&bytes, len);

        let mut block = [0u8; 36];
        block[0] = 0x20;
        block[1] = 0x01;
        block[15] = 9;
        block[32..34].copy_from_slice(&8080u16.to_be_bytes());
        let header = parse(&v2(1, 0x21, &block)).unwrap().unwrap();
        assert_eq!(header.source, Some("[2001::9]:8080".parse().unwrap()));
    }

    #[test]
    fn version_2_local_and_other_families_give_no_address() {
        let local = v2(0, 0x11, &[1; 12]);
        assert_eq!(
            parse(&local),
            Ok(Some(Header {
                len: 28,
                source: None
            }))
        );
        assert_eq!(parse(&v2(0, 0x00, &[])).unwrap().unwrap().source, None);
        assert_eq!(parse(&v2(1, 0x00, &[])).unwrap().unwrap().source, None);
        assert_eq!(parse(&v2(1, 0x31, &[0; 216])).unwrap().unwrap().source, None);
    }

    #[test]
    fn version_2_refuses_what_it_does_not_define() {
        let mut bad_version = v2(1, 0x11, &[0; 12]);
        bad_version[12] = 0x11;
        assert_eq!(parse(&bad_version), Err(Invalid::BadBinary));
        assert_eq!(parse(&v2(2, 0x11, &[0; 12])), Err(Invalid::BadBinary));
        assert_eq!(parse(&v2(1, 0x41, &[0; 12])), Err(Invalid::BadBinary));
        assert_eq!(parse(&v2(1, 0x13, &[0; 12])), Err(Invalid::BadBinary));
        assert_eq!(parse(&v2(1, 0x11, &[0; 11])), Err(Invalid::BadBinary));
        assert_eq!(parse(&v2(1, 0x21, &[0; 35])), Err(Invalid::BadBinary));
        assert_eq!(
            parse(&v2(1, 0x11, &[0; MAX_LEN - 16])).unwrap().unwrap().len,
            MAX_LEN
        );
        // Refused from its fixed part alone, before the rest arrives.
        let too_long = v2(1, 0x11, &[0; MAX_LEN - 15]);
        assert_eq!(parse(&too_long[..16]), Err(Invalid::TooLong));
    }
}
