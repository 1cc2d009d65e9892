//! The client's address, for rate limits and the audit log: the socket peer unless it is a
//! proxy we were told to trust.
//!
//! ```
//! use std::net::IpAddr;
//! use auth_core::web::ClientIpPolicy;
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
//! Several `X-Forwarded-For` header lines are passed joined by `,`, in order.
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

/// Which peers may tell us the client's address. The default trusts no one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpPolicy {
    trusted_proxies: Vec<IpCidr>,
}

impl ClientIpPolicy {
    /// A policy that trusts these proxies.
    #[must_use]
    pub const fn new(trusted_proxies: Vec<IpCidr>) -> Self {
        Self { trusted_proxies }
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

    /// The client's address, from the socket peer and the `X-Forwarded-For` header. See the
    /// [module](self) for the walk. IPv4-mapped IPv6 addresses come back as IPv4.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, x_forwarded_for: Option<&str>) -> IpAddr {
        let mut hop = peer.to_canonical();
        if !self.is_trusted(hop) {
            return hop;
        }
        let Some(header) = x_forwarded_for else {
            return hop;
        };
        for entry in header.rsplit(',') {
            let Some(ip) = parse_forwarded_entry(entry.trim()) else {
                break;
            };
            hop = ip;
            if !self.is_trusted(hop) {
                break;
            }
        }
        hop
    }
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

    #[test]
    fn mapped_peer_is_reported_as_ipv4() {
        let policy = ClientIpPolicy::default();
        assert_eq!(
            policy.client_ip(ip("::ffff:203.0.113.7"), None),
            ip("203.0.113.7")
        );
    }
}
