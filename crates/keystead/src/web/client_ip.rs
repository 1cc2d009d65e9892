//! The client's address, for rate limits and the audit log: the socket peer unless it is a
//! proxy we were told to trust.
//!
//! ```
//! use std::net::IpAddr;
//! use keystead::web::ClientIpPolicy;
//!
//! let peer: IpAddr = "10.0.0.2".parse().unwrap();
//! let header = Some("6.6.6.6, 203.0.113.7, 10.0.0.9");
//!
//! // By default nothing is trusted: the header is ignored.
//! assert_eq!(ClientIpPolicy::default().client_ip(peer, header), peer);
//!
//! // Behind our load balancers, the first address not ours, from the right, is the client;
//! // "6.6.6.6" was written by the client itself and is never reached.
//! let policy = ClientIpPolicy::from_config("10.0.0.0/8").unwrap();
//! assert_eq!(policy.client_ip(peer, header), "203.0.113.7".parse::<IpAddr>().unwrap());
//! ```
//!
//! # How `X-Forwarded-For` is read
//!
//! Each proxy appends the address it received the connection from, so the header reads
//! `client, proxy1, proxy2` and only its right end is trustworthy: anything to the left of what
//! our first proxy wrote is whatever the client sent. The walk therefore starts at the socket
//! peer and moves left only while the current hop is a trusted proxy:
//!
//! - peer not trusted: the peer, always; the header is not even read, so a client that connects
//!   directly cannot choose its address;
//! - the first untrusted entry from the right is the client;
//! - an entry that is not an address (`unknown`, an obfuscated `_hidden` name, garbage) stops the
//!   walk and the last trusted hop is the answer: the proxy's own address, never something the
//!   client wrote further left;
//! - if every entry is trusted (or the header is absent or empty), the leftmost trusted hop.
//!
//! Entries may carry a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`), which is dropped.
//! IPv4-mapped IPv6 addresses (`::ffff:203.0.113.7`, what a dual-stack socket reports) are
//! turned into plain IPv4 both when matching and in the answer, so one client has one key.
//!
//! Several header lines are one list, in order ([`ClientIpPolicy::client_ip_from_headers`]
//! joins them): a proxy that appends its own line after the client's (instead of extending
//! the client's line) still has the last word, and the client's forged line stays on the left
//! where the walk never reaches. A line that is not text stops the walk like a bad entry.
//!
//! # Which header
//! One header is read, the one the trusted proxies write ([`ForwardedHeader`]):
//! `X-Forwarded-For` by default, or RFC 7239 `Forwarded` (`for=` of each element, quoted or
//! not: `for="[2001:db8::1]:4711"`, `for=192.0.2.60;proto=https`). The other is ignored: a
//! client could send it, and no proxy of ours would correct it.
//!
//! Trusting a range means trusting every machine in it to tell the truth about the client;
//! `0.0.0.0/0` would hand the choice to the client.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A configuration entry that is not an address or a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// Not `address` or `address/prefix`.
    #[error("`{0}` is not an IP address or CIDR block")]
    Malformed(String),
    /// A prefix longer than the address (more than 32 for IPv4, 128 for IPv6).
    #[error("`{0}`: the prefix length is out of range")]
    PrefixTooLong(String),
    /// Bits set after the prefix (`10.0.0.1/8`): probably a typo for the network address.
    #[error("`{entry}` has host bits set; did you mean `{network}`?")]
    HostBitsSet {
        /// The entry as written.
        entry: String,
        /// The network it probably means.
        network: String,
    },
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`, or a single
/// address as `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    network: IpAddr,
    prefix: u8,
}

impl IpCidr {
    /// A block from its network address and prefix length. An IPv4-mapped IPv6 address is not
    /// special here: write IPv4 blocks as IPv4.
    ///
    /// # Errors
    /// [`CidrError::PrefixTooLong`] or [`CidrError::HostBitsSet`].
    pub fn new(network: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let cidr = Self { network, prefix };
        if prefix > cidr.max_prefix() {
            return Err(CidrError::PrefixTooLong(format!("{network}/{prefix}")));
        }
        if mask(network, prefix) != network {
            return Err(CidrError::HostBitsSet {
                entry: format!("{network}/{prefix}"),
                network: format!("{}/{prefix}", mask(network, prefix)),
            });
        }
        Ok(cidr)
    }

    /// The block of exactly one address.
    #[must_use]
    pub const fn single(address: IpAddr) -> Self {
        let prefix = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Self {
            network: address,
            prefix,
        }
    }

    /// The network address.
    #[must_use]
    pub const fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    #[must_use]
    pub const fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the block. IPv4-mapped IPv6 addresses count as their IPv4 address.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }

    const fn max_prefix(&self) -> u8 {
        match self.network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }
}

/// `ip` with every bit after the first `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = bits
                .checked_shr(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            let masked = kept
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(masked.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = bits
                .checked_shr(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            let masked = kept
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(masked.into())
        }
    }
}

impl FromStr for IpCidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let entry = s.trim();
        let malformed = || CidrError::Malformed(entry.to_owned());
        match entry.split_once('/') {
            None => entry.parse().map(Self::single).map_err(|_| malformed()),
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| malformed())?;
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed());
                }
                let prefix: u8 = prefix
                    .parse()
                    .map_err(|_| CidrError::PrefixTooLong(entry.to_owned()))?;
                Self::new(addr, prefix)
            }
        }
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The header trusted proxies write the client's address into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1;proto=https, …`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, in lower case.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

impl FromStr for ForwardedHeader {
    type Err = String;

    /// `x-forwarded-for` or `forwarded`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            other => Err(format!(
                "`{other}`: expected `x-forwarded-for` or `forwarded`"
            )),
        }
    }
}

/// Which peers may tell us the client's address, and in which header. The default trusts no
/// one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpPolicy {
    trusted_proxies: Vec<IpCidr>,
    header: ForwardedHeader,
}

impl ClientIpPolicy {
    /// A policy that trusts these proxies, reading `X-Forwarded-For`.
    #[must_use]
    pub const fn new(trusted_proxies: Vec<IpCidr>) -> Self {
        Self {
            trusted_proxies,
            header: ForwardedHeader::XForwardedFor,
        }
    }

    /// Reads `header` instead (what the trusted proxies write).
    #[must_use]
    pub const fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The header read.
    #[must_use]
    pub const fn header(&self) -> ForwardedHeader {
        self.header
    }

    /// Parses a comma-separated list of addresses and CIDR blocks, such as
    /// `"10.0.0.0/8, 127.0.0.1, fd00::/8"`. An empty or blank string trusts no one; empty
    /// items (a trailing comma) are skipped.
    ///
    /// # Errors
    /// A [`CidrError`] naming the first entry that is not an address or block.
    pub fn from_config(config: &str) -> Result<Self, CidrError> {
        config
            .split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// The trusted blocks.
    #[must_use]
    pub fn trusted_proxies(&self) -> &[IpCidr] {
        &self.trusted_proxies
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client's address, from the socket peer and the `X-Forwarded-For` list (every
    /// header line, joined by `,` in order). See the [module](self) for the walk. IPv4-mapped
    /// IPv6 addresses come back as IPv4.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, x_forwarded_for: Option<&str>) -> IpAddr {
        self.walk(peer, x_forwarded_for.into_iter(), parse_forwarded_entry)
    }

    /// The client's address from the socket peer and the request's headers: every line of the
    /// configured header ([`ForwardedHeader`]), in order, as one list. The headers are read only
    /// when the peer is a trusted proxy.
    #[must_use]
    pub fn client_ip_from_headers(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        let lines = || {
            headers
                .get_all(self.header.name())
                .iter()
                // A line that is not text: an empty stand-in, which stops the walk there.
                .map(|value| value.to_str().unwrap_or(""))
        };
        match self.header {
            ForwardedHeader::XForwardedFor => self.walk(peer, lines(), parse_forwarded_entry),
            ForwardedHeader::Forwarded => self.walk(peer, lines(), parse_forwarded_element),
        }
    }

    /// Walks the list (the lines in order, each a `,`-separated list) from the right, starting
    /// at the peer, while the current hop is trusted.
    fn walk<'a>(
        &self,
        peer: IpAddr,
        lines: impl DoubleEndedIterator<Item = &'a str>,
        parse: fn(&str) -> Option<IpAddr>,
    ) -> IpAddr {
        let mut hop = peer.to_canonical();
        if !self.is_trusted(hop) {
            return hop;
        }
        for line in lines.rev() {
            for entry in split_list(line).into_iter().rev() {
                let Some(ip) = parse(entry.trim()) else {
                    return hop;
                };
                hop = ip;
                if !self.is_trusted(hop) {
                    return hop;
                }
            }
        }
        hop
    }
}

/// Splits a header line at the commas that are not inside a quoted string.
fn split_list(line: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in line.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                parts.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&line[start..]);
    parts
}

/// One RFC 7239 `Forwarded` element (`for=…;proto=…;by=…`): the address of its `for`
/// parameter (quoted or not, with a port or not); `None` without one, or when it is not an
/// address (`unknown`, an obfuscated `_hidden` name).
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    parse_forwarded_entry(value)
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`[v6]:port`, `v4:port`) or
/// brackets (`[v6]`).
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks_parse_and_match() {
        let block: IpCidr = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains(ip("10.255.1.2")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(
            block.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!block.contains(ip("::a00:1")), "IPv4-compatible does not");
        let single: IpCidr = " 127.0.0.1 ".parse().unwrap();
        assert_eq!(single.prefix(), 32);
        assert!(single.contains(ip("127.0.0.1")));
        assert!(!single.contains(ip("127.0.0.2")));
        let v6: IpCidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.7")));
        assert!(!all.contains(ip("2001:db8::1")));
        assert_eq!(block.to_string(), "10.0.0.0/8");
        assert_eq!("::1".parse::<IpCidr>().unwrap().to_string(), "::1/128");
    }

    #[test]
    fn bad_cidr_entries_are_refused_with_the_entry_named() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/+8",
            "localhost",
            "10.0.0/8",
            "/8",
        ] {
            assert!(
                matches!(bad.parse::<IpCidr>(), Err(CidrError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            "10.0.0.0/33".parse::<IpCidr>(),
            Err(CidrError::PrefixTooLong("10.0.0.0/33".to_owned()))
        );
        assert!(matches!(
            "::/129".parse::<IpCidr>(),
            Err(CidrError::PrefixTooLong(_))
        ));
        assert!(matches!(
            "10.0.0.0/999".parse::<IpCidr>(),
            Err(CidrError::PrefixTooLong(_))
        ));
        let err = "10.0.0.1/8".parse::<IpCidr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`10.0.0.1/8` has host bits set; did you mean `10.0.0.0/8`?"
        );
    }

    #[test]
    fn config_lists_parse() {
        let policy = ClientIpPolicy::from_config("10.0.0.0/8, 127.0.0.1,fd00::/8,").unwrap();
        assert_eq!(policy.trusted_proxies().len(), 3);
        assert!(policy.is_trusted(ip("127.0.0.1")));
        assert!(!policy.is_trusted(ip("127.0.0.2")));
        assert_eq!(
            ClientIpPolicy::from_config("  ").unwrap(),
            ClientIpPolicy::default()
        );
        assert_eq!(
            ClientIpPolicy::from_config("10.0.0.0/8, nope"),
            Err(CidrError::Malformed("nope".to_owned()))
        );
    }

    #[test]
    fn forwarded_entries_may_carry_ports_and_brackets() {
        assert_eq!(
            parse_forwarded_entry("203.0.113.7"),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            parse_forwarded_entry("203.0.113.7:4711"),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            parse_forwarded_entry("[2001:db8::1]:4711"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            parse_forwarded_entry("[2001:db8::1]"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            parse_forwarded_entry("::ffff:203.0.113.7"),
            Some(ip("203.0.113.7"))
        );
        for junk in [
            "",
            "unknown",
            "_hidden",
            "1.2.3",
            "1.2.3.4:",
            "[::1",
            "1.2.3.4 5.6.7.8",
        ] {
            assert_eq!(parse_forwarded_entry(junk), None, "{junk:?}");
        }
    }

    fn headers(name: &str, lines: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for line in lines {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(line).unwrap(),
            );
        }
        map
    }

    #[test]
    fn every_x_forwarded_for_line_is_read_in_order() {
        let policy = ClientIpPolicy::from_config("10.0.0.0/8").unwrap();
        let lb = ip("10.0.0.2");
        // The client's forged line first, then the one our proxy appended.
        let map = headers("x-forwarded-for", &["6.6.6.6", "203.0.113.7"]);
        assert_eq!(policy.client_ip_from_headers(lb, &map), ip("203.0.113.7"));
        let map = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.7", "10.0.0.9"]);
        assert_eq!(policy.client_ip_from_headers(lb, &map), ip("203.0.113.7"));
        // Not trusted: the headers are not read.
        let direct = ip("198.51.100.9");
        assert_eq!(policy.client_ip_from_headers(direct, &map), direct);
        // `Forwarded` is ignored while the proxies write `X-Forwarded-For`.
        let map = headers("forwarded", &["for=6.6.6.6"]);
        assert_eq!(policy.client_ip_from_headers(lb, &map), lb);
        // A line that is not text stops the walk at the last trusted hop.
        let mut map = headers("x-forwarded-for", &["203.0.113.7"]);
        map.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        assert_eq!(policy.client_ip_from_headers(lb, &map), lb);
    }

    #[test]
    fn forwarded_elements_are_read_as_rfc_7239_says() {
        let policy = ClientIpPolicy::from_config("10.0.0.0/8")
            .unwrap()
            .with_header(ForwardedHeader::Forwarded);
        let lb = ip("10.0.0.2");
        for (lines, expected) in [
            (&["for=203.0.113.7"][..], "203.0.113.7"),
            (
                &["for=6.6.6.6, for=203.0.113.7;proto=https"][..],
                "203.0.113.7",
            ),
            (
                &["for=6.6.6.6", "for=\"203.0.113.7:4711\""][..],
                "203.0.113.7",
            ),
            (
                &["For=\"[2001:db8::1]:4711\";by=10.0.0.2"][..],
                "2001:db8::1",
            ),
            (
                &["proto=https;for=203.0.113.7, for=10.0.0.9"][..],
                "203.0.113.7",
            ),
            // An obfuscated or unknown hop, or an element without `for`: the proxy's address.
            (&["for=203.0.113.7, for=_hidden"][..], "10.0.0.2"),
            (&["for=unknown"][..], "10.0.0.2"),
            (&["proto=https"][..], "10.0.0.2"),
            (&["for=\"6.6.6.6, 7.7.7.7\""][..], "10.0.0.2"),
        ] {
            let map = headers("forwarded", lines);
            assert_eq!(
                policy.client_ip_from_headers(lb, &map),
                ip(expected),
                "{lines:?}"
            );
        }
        // `X-Forwarded-For` is ignored while the proxies write `Forwarded`.
        let map = headers("x-forwarded-for", &["6.6.6.6"]);
        assert_eq!(policy.client_ip_from_headers(lb, &map), lb);
        assert_eq!(
            "Forwarded".parse::<ForwardedHeader>(),
            Ok(ForwardedHeader::Forwarded)
        );
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }

    #[test]
    fn lists_split_outside_quotes() {
        assert_eq!(split_list("a, b,c"), ["a", " b", "c"]);
        assert_eq!(
            split_list(r#"for="a,b", for=c"#),
            [r#"for="a,b""#, " for=c"]
        );
        assert_eq!(split_list(r#"for="a\",b", c"#), [r#"for="a\",b""#, " c"]);
        assert_eq!(split_list(""), [""]);
    }

    #[test]
    fn mapped_peer_is_reported_as_ipv4() {
        let policy = ClientIpPolicy::default();
        assert_eq!(
            policy.client_ip(ip("::ffff:203.0.113.7"), None),
            ip("203.0.113.7")
        );
    }
}
