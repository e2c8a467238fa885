//! Who the client is when the server runs behind proxies: the operator's trusted proxies
//! (`--trust-proxy CIDR`), the PROXY protocol switch (`--proxy-protocol`), and the client
//! address a request's `Forwarded` or `X-Forwarded-For` header gives.
//!
//! Invariants:
//! - Only a trusted peer's headers are read: from anyone else they are ignored, since any
//!   client can write them. A peer's address is compared in its canonical form, so an
//!   IPv4 client on a dual-stack socket (`::ffff:192.0.2.7`) matches `192.0.2.0/24`.
//! - The client is the rightmost address that is not a trusted proxy: each proxy appends
//!   the address it received the request from, so entries left of the first untrusted
//!   one were written by the client itself. Every entry trusted: the leftmost is the
//!   client. An entry that is not an address (`unknown`, an obfuscated `_node`, junk)
//!   ends the walk at the last address known, never further left.
//! - One header is read, the one the operator says the proxies write: `X-Forwarded-For`
//!   (the default: nginx, HAProxy's `option forwardfor`, most others) or `Forwarded`
//!   (RFC 7239, [`Proxies::forwarded`]). Never whichever a request happens to have: a
//!   proxy passes on a header it does not write, so a client could send the other one
//!   with any address in it. The header is walked across all its lines, in order.
//! - No allocation: the walk goes over the header values in place.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::http::Request;

/// An address block, `IP/PREFIX` (a bare IP is the block of that address alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Canonical, with the bits past the prefix cleared.
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    /// Bits set past the prefix (`10.1.2.3/8`) are cleared, as most tools do.
    fn from_str(text: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or IP/PREFIX block"))?;
        let ip = ip.to_canonical();
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= bits)
                .ok_or_else(|| format!("'{text}': the prefix length is at most {bits}"))?,
            Some(_) => return Err(format!("'{text}': the prefix length is not a number")),
        };
        Ok(Cidr {
            net: masked(ip, prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && masked(ip, self.prefix) == self.net
    }
}

/// `ip` with the bits past `prefix` cleared (`prefix` at most the family's width).
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// The trusted proxies, and whether connections start with a PROXY protocol header.
#[derive(Clone, Debug, Default)]
pub struct Proxies {
    trusted: Vec<Cidr>,
    /// `--proxy-protocol`: every connection from a trusted peer must start with a PROXY
    /// header (v1 or v2); connections from anyone else are refused.
    pub protocol: bool,
    /// `--forwarded-header forwarded`: the proxies write `Forwarded`, not
    /// `X-Forwarded-For`.
    pub forwarded: bool,
}

impl Proxies {
    pub fn new(trusted: Vec<Cidr>, protocol: bool) -> Proxies {
        Proxies {
            trusted,
            protocol,
            forwarded: false,
        }
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client's address for a request that came from `peer` (the socket's peer, or
    /// the address a PROXY header gave).
    pub fn client(&self, peer: IpAddr, request: &Request<'_>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        match self.forwarded {
            true => self.walk(peer, nodes(&request.forwarded, for_parameter)),
            false => self.walk(peer, nodes(&request.forwarded_for, |entry| entry)),
        }
    }

    fn walk(&self, peer: IpAddr, nodes: impl Iterator<Item = Option<IpAddr>>) -> IpAddr {
        let mut client = peer;
        for node in nodes {
            let Some(ip) = node else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The addresses of a header's entries, nearest hop first: the last line's last entry
/// comes first. `pick`: an entry's node (the whole entry, or `Forwarded`'s `for=`).
fn nodes<'r>(values: &'r [&'r [u8]], pick: fn(&str) -> &str) -> impl Iterator<Item = Option<IpAddr>> + 'r {
    values
        .iter()
        .rev()
        .flat_map(|line| std::str::from_utf8(line).unwrap_or("?").rsplit(','))
        .map(move |entry| node_ip(pick(entry.trim())))
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.7;proto=https`), or `""`.
fn for_parameter(element: &str) -> &str {
    element
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
        .map_or("", |(_, value)| value.trim())
}

/// A node's address: `192.0.2.7`, `192.0.2.7:8080`, `2001:db8::1`, `[2001:db8::1]:8080`,
/// quoted or not; `None` for anything else (`unknown`, `_hidden`).
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    // IPv4 with a port: one colon (a bare IPv6 address parsed above).
    let (ip, port) = node.split_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;

    fn proxies(cidrs: &[&str]) -> Proxies {
        Proxies::new(cidrs.iter().map(|c| c.parse().unwrap()).collect(), false)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// The client of a request with these header lines, from `peer`.
    fn client(proxies: &Proxies, peer: &str, headers: &str) -> IpAddr {
        let head = format!("GET / HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
        let request = http::parse(head.as_bytes()).unwrap().unwrap();
        proxies.client(ip(peer), &request)
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::a00:1")));
        let six: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(six.contains(ip("2001:db8:ffff::1")));
        assert!(!six.contains(ip("2001:db9::1")));
        let host: Cidr = "::1".parse().unwrap();
        assert_eq!(host.to_string(), "::1/128");
        assert!(host.contains(ip("::1")) && !host.contains(ip("127.0.0.1")));
        let everyone: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everyone.contains(ip("192.0.2.1")) && !everyone.contains(ip("::2")));
        assert!("::/0".parse::<Cidr>().unwrap().contains(ip("2001::1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0/8",
            "host",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let p = proxies(&["127.0.0.1"]);
        assert_eq!(
            client(&p, "192.0.2.9", "X-Forwarded-For: 203.0.113.5\r\n"),
            ip("192.0.2.9")
        );
        assert_eq!(
            client(&p, "192.0.2.9", "Forwarded: for=203.0.113.5\r\n"),
            ip("192.0.2.9")
        );
        assert_eq!(client(&p, "127.0.0.1", ""), ip("127.0.0.1"));
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let p = proxies(&["127.0.0.0/8", "10.0.0.0/8"]);
        let peer = "127.0.0.1";
        let xff = |v: &str| client(&p, peer, &format!("X-Forwarded-For: {v}\r\n"));
        // The client forged the leftmost entry; the proxies appended the rest.
        assert_eq!(xff("6.6.6.6, 203.0.113.5, 10.0.0.2"), ip("203.0.113.5"));
        assert_eq!(xff("10.0.0.3,10.0.0.2"), ip("10.0.0.3"));
        assert_eq!(xff("203.0.113.5:4711"), ip("203.0.113.5"));
        assert_eq!(xff("2001:db8::5"), ip("2001:db8::5"));
        assert_eq!(xff("[2001:db8::5]:80"), ip("2001:db8::5"));
        // Not an address: the walk stops at the last one known.
        assert_eq!(xff("203.0.113.5, unknown, 10.0.0.2"), ip("10.0.0.2"));
        assert_eq!(xff("junk"), ip(peer));
        // Lines in order: the second line's entries are nearer.
        let two = "X-Forwarded-For: 203.0.113.5\r\nX-Forwarded-For: 198.51.100.7, 10.0.0.1\r\n";
        assert_eq!(client(&p, peer, two), ip("198.51.100.7"));
    }

    #[test]
    fn only_the_header_the_proxies_write_is_read() {
        let both = "X-Forwarded-For: 198.51.100.7\r\n\
                    Forwarded: for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\";proto=https\r\n";
        let mut p = proxies(&["127.0.0.1"]);
        assert_eq!(client(&p, "127.0.0.1", both), ip("198.51.100.7"));
        // The client's own Forwarded, passed on by a proxy that writes X-Forwarded-For.
        let forged = "Forwarded: for=6.6.6.6\r\n";
        assert_eq!(client(&p, "127.0.0.1", forged), ip("127.0.0.1"));
        p.forwarded = true;
        assert_eq!(client(&p, "127.0.0.1", both), ip("2001:db8:cafe::17"));
        let forged = "X-Forwarded-For: 6.6.6.6\r\n";
        assert_eq!(client(&p, "127.0.0.1", forged), ip("127.0.0.1"));
        let with_port = "Forwarded: proto=http;For=\"192.0.2.43:8080\"\r\n";
        assert_eq!(client(&p, "127.0.0.1", with_port), ip("192.0.2.43"));
        let hidden = "Forwarded: for=192.0.2.43, for=_hidden\r\n";
        assert_eq!(client(&p, "127.0.0.1", hidden), ip("127.0.0.1"));
        let no_for = "Forwarded: proto=https\r\n";
        assert_eq!(client(&p, "127.0.0.1", no_for), ip("127.0.0.1"));
    }
}
