//! The application's public origin (`APP_ORIGIN`), parsed once and normalized.
//!
//! Everything that needs "our own address" takes it from here: the CSRF check compares request
//! headers against it, the cookie policy reads its scheme, and links in mail and redirect URIs
//! are built with [`AppOrigin::join`]. None of them is ever built from the request's `Host`
//! header, which the client chooses.
//!
//! ```
//! use keystead::web::AppOrigin;
//!
//! let origin = AppOrigin::parse("HTTPS://App.Example.com:443/").unwrap();
//! assert_eq!(origin.as_str(), "https://app.example.com");
//! assert!(origin.is_https());
//! assert_eq!(
//!     origin.join("/auth/verify-email?token=abc"),
//!     "https://app.example.com/auth/verify-email?token=abc"
//! );
//! assert!(AppOrigin::parse("ftp://example.com").is_err());
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Longest host name accepted (a DNS name is at most 253 characters, plus a trailing dot).
const MAX_HOST_LEN: usize = 254;

/// Why a string is not an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// Not of the form `scheme://host[:port]`.
    #[error("not an origin: expected scheme://host[:port]")]
    Malformed,
    /// A scheme other than `http` or `https`.
    #[error("only http and https origins are supported")]
    UnsupportedScheme,
    /// A `user:password@` part.
    #[error("an origin has no user information")]
    Userinfo,
    /// An empty host, a host with characters outside `[A-Za-z0-9.-_]` (use the punycode form
    /// of international names), or a malformed IPv6 literal.
    #[error("the host is not valid (international names must be given in punycode)")]
    InvalidHost,
    /// A port that is not a number from 1 to 65535.
    #[error("the port is not a number from 1 to 65535")]
    InvalidPort,
    /// A path (other than a single `/`), a query or a fragment.
    #[error("an origin has no path, query or fragment")]
    HasPath,
}

/// A normalized `http` or `https` origin: lower-case scheme and host, no default port, no path.
///
/// Two values are equal exactly when they are the same origin in the browser's sense (RFC 6454):
/// same scheme, host and port. Normalization never merges two different origins: only case, a
/// default port written out, a port's leading zeros and the spelling of an IPv6 literal are
/// folded.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AppOrigin {
    /// `scheme://host[:port]`, the form browsers send in `Origin`.
    serialized: String,
    https: bool,
    /// Byte range of the host inside `serialized`.
    host: (usize, usize),
    port: u16,
}

impl AppOrigin {
    /// Parses a configured origin such as `https://app.example.com` or `http://127.0.0.1:3000`.
    ///
    /// Accepted: `http` or `https` (any case), a host name (ASCII, any case), an IPv4 address or
    /// a bracketed IPv6 address, an optional port, and at most one trailing `/`. Surrounding
    /// white space is ignored.
    ///
    /// # Errors
    /// An [`OriginError`] saying what is wrong; a path, query, fragment or `user@` is refused
    /// rather than silently dropped, so that a misconfiguration shows at start-up.
    pub fn parse(input: &str) -> Result<Self, OriginError> {
        let (origin, rest) = Self::split(input.trim())?;
        if rest.is_empty() || rest == "/" {
            Ok(origin)
        } else {
            Err(OriginError::HasPath)
        }
    }

    /// The origin of an absolute `http` or `https` URL, such as a `Referer` header value.
    ///
    /// The origin is parsed out of the URL (scheme, host, port), never compared as a string
    /// prefix: the origin of `http://localhost:3000.evil.com/` is `http://localhost:3000.evil.com`
    /// and that of `http://localhost:3000@evil.com/` is refused (user information).
    ///
    /// # Errors
    /// An [`OriginError`] when the URL is not absolute `http(s)` or its authority is malformed.
    pub fn of_url(url: &str) -> Result<Self, OriginError> {
        Self::split(url.trim()).map(|(origin, _rest)| origin)
    }

    /// `http://` and the address, the contract's default when `APP_ORIGIN` is not set.
    #[must_use]
    pub fn http_for(addr: SocketAddr) -> Self {
        let host = match addr.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        Self::from_parts(false, &host, addr.port())
    }

    /// The origin as browsers send it in `Origin`: `scheme://host[:port]`, no trailing slash.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.serialized
    }

    /// Whether the scheme is `https` (then cookies get `Secure` and the `__Host-` prefix).
    #[must_use]
    pub const fn is_https(&self) -> bool {
        self.https
    }

    /// `"http"` or `"https"`.
    #[must_use]
    pub const fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// The lower-case host; an IPv6 address keeps its brackets.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.serialized[self.host.0..self.host.1]
    }

    /// The port, the scheme's default (80 or 443) when none is written.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// An absolute URL on this origin: `join("/auth/reset?token=…")`.
    ///
    /// Leading slashes of `path` are collapsed into one, so the result always stays on this
    /// origin (`join("//evil.example")` is `https://app/evil.example`, not a
    /// protocol-relative link).
    #[must_use]
    pub fn join(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        let mut url = String::with_capacity(self.serialized.len() + 1 + path.len());
        url.push_str(&self.serialized);
        url.push('/');
        url.push_str(path);
        url
    }

    /// Splits `scheme://authority` off `input`, returning the origin and what follows the
    /// authority (starting with `/`, `?` or `#`, or empty).
    fn split(input: &str) -> Result<(Self, &str), OriginError> {
        let (scheme, after) = input.split_once("://").ok_or(OriginError::Malformed)?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(OriginError::Malformed);
        } else {
            return Err(OriginError::UnsupportedScheme);
        };
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        if authority.contains('@') {
            return Err(OriginError::Userinfo);
        }
        let (host, port) = parse_authority(authority)?;
        let default_port = if https { 443 } else { 80 };
        Ok((
            Self::from_parts(https, &host, port.unwrap_or(default_port)),
            rest,
        ))
    }

    /// Builds the value from a normalized host; drops the port when it is the default.
    fn from_parts(https: bool, host: &str, port: u16) -> Self {
        let scheme = if https { "https" } else { "http" };
        let default_port = if https { 443 } else { 80 };
        let mut serialized = format!("{scheme}://{host}");
        let host_range = (scheme.len() + 3, serialized.len());
        if port != default_port {
            serialized.push(':');
            serialized.push_str(&port.to_string());
        }
        Self {
            serialized,
            https,
            host: host_range,
            port,
        }
    }
}

/// Parses `host[:port]` into a normalized host and an explicit port.
fn parse_authority(authority: &str) -> Result<(String, Option<u16>), OriginError> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (literal, after) = bracketed.split_once(']').ok_or(OriginError::InvalidHost)?;
        let ip = Ipv6Addr::from_str(literal).map_err(|_| OriginError::InvalidHost)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(OriginError::InvalidHost)?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let valid = !host.is_empty()
            && host.len() <= MAX_HOST_LEN
            && !host.starts_with('.')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(OriginError::InvalidHost);
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(digits) => Some(parse_port(digits)?),
    };
    Ok((host, port))
}

fn parse_port(digits: &str) -> Result<u16, OriginError> {
    // `u16::from_str` accepts a leading `+`; a port is digits only.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OriginError::InvalidPort);
    }
    match digits.parse::<u16>() {
        Ok(0) | Err(_) => Err(OriginError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

impl FromStr for AppOrigin {
    type Err = OriginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AppOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.serialized)
    }
}

impl fmt::Debug for AppOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AppOrigin").field(&self.serialized).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> AppOrigin {
        AppOrigin::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn scheme_and_host_are_lower_cased_and_default_ports_dropped() {
        assert_eq!(
            origin("HTTPS://App.EXAMPLE.com:443").as_str(),
            "https://app.example.com"
        );
        assert_eq!(origin("http://LocalHost:80/").as_str(), "http://localhost");
        assert_eq!(
            origin(" http://localhost:3000 ").as_str(),
            "http://localhost:3000"
        );
        // 443 is not the default for http, nor 80 for https.
        assert_eq!(
            origin("http://example.com:443").as_str(),
            "http://example.com:443"
        );
        assert_eq!(
            origin("https://example.com:80").as_str(),
            "https://example.com:80"
        );
        assert_eq!(
            origin("http://example.com:03000").as_str(),
            "http://example.com:3000"
        );
    }

    #[test]
    fn accessors_report_the_parts() {
        let o = origin("https://App.example.com:8443");
        assert!(o.is_https());
        assert_eq!(o.scheme(), "https");
        assert_eq!(o.host(), "app.example.com");
        assert_eq!(o.port(), 8443);
        let o = origin("http://example.com");
        assert!(!o.is_https());
        assert_eq!(o.port(), 80);
        assert_eq!(o.host(), "example.com");
    }

    #[test]
    fn ipv6_literals_are_normalized() {
        let o = origin("http://[0:0:0:0:0:0:0:1]:3000");
        assert_eq!(o.as_str(), "http://[::1]:3000");
        assert_eq!(o.host(), "[::1]");
        assert_eq!(origin("http://[::1]:3000"), o);
        assert_eq!(
            AppOrigin::parse("http://[::1"),
            Err(OriginError::InvalidHost)
        );
        assert_eq!(
            AppOrigin::parse("http://[fe80::1%25eth0]"),
            Err(OriginError::InvalidHost)
        );
        assert_eq!(
            AppOrigin::parse("http://[::1]3000"),
            Err(OriginError::InvalidHost)
        );
    }

    #[test]
    fn refuses_what_is_not_an_http_origin() {
        use OriginError::*;
        let cases = [
            ("", Malformed),
            ("localhost:3000", Malformed),
            ("//example.com", Malformed),
            ("null", Malformed),
            ("ftp://example.com", UnsupportedScheme),
            ("javascript://example.com", UnsupportedScheme),
            ("ht tp://example.com", Malformed),
            ("http://user:pw@example.com", Userinfo),
            ("http://example.com@evil.com", Userinfo),
            ("http://", InvalidHost),
            ("http://:3000", InvalidHost),
            ("http://exa mple.com", InvalidHost),
            ("http://exämple.com", InvalidHost),
            ("http://.example.com", InvalidHost),
            ("http://example.com\\evil.com", InvalidHost),
            ("http://example.com\\@evil.com", Userinfo),
            ("http://example.com:", InvalidPort),
            ("http://example.com:0", InvalidPort),
            ("http://example.com:65536", InvalidPort),
            ("http://example.com:+80", InvalidPort),
            ("http://example.com:80:80", InvalidPort),
            ("http://example.com/app", HasPath),
            ("http://example.com//", HasPath),
            ("http://example.com?x", HasPath),
            ("http://example.com#x", HasPath),
        ];
        for (input, expected) in cases {
            assert_eq!(AppOrigin::parse(input), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn the_origin_of_a_url_is_parsed_not_prefix_matched() {
        let app = origin("http://localhost:3000");
        let of = |url: &str| AppOrigin::of_url(url);
        assert_eq!(of("http://localhost:3000/dashboard?x=1#y"), Ok(app.clone()));
        assert_eq!(of("http://localhost:3000"), Ok(app.clone()));
        assert_eq!(of("http://localhost:3000?q"), Ok(app.clone()));
        assert_ne!(of("http://localhost:3000.evil.com/"), Ok(app.clone()));
        assert_ne!(of("http://localhost:30001/"), Ok(app));
        assert_eq!(
            of("http://localhost:3000@evil.com/"),
            Err(OriginError::Userinfo)
        );
        assert_eq!(of("/relative/path"), Err(OriginError::Malformed));
    }

    #[test]
    fn join_always_stays_on_the_origin() {
        let o = origin("https://app.example.com/");
        assert_eq!(o.join("/a/b?c=d"), "https://app.example.com/a/b?c=d");
        assert_eq!(o.join("a"), "https://app.example.com/a");
        assert_eq!(o.join(""), "https://app.example.com/");
        assert_eq!(
            o.join("//evil.example/x"),
            "https://app.example.com/evil.example/x"
        );
    }

    #[test]
    fn default_origin_from_the_bound_address() {
        let v4: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(AppOrigin::http_for(v4).as_str(), "http://127.0.0.1:3000");
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        let o = AppOrigin::http_for(v6);
        assert_eq!(o.as_str(), "http://[::1]:8080");
        assert_eq!(o, origin("http://[::1]:8080"));
        let port80: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(AppOrigin::http_for(port80).as_str(), "http://10.0.0.1");
    }

    #[test]
    fn display_debug_and_from_str_agree() {
        let o: AppOrigin = "HTTP://Example.com:8080".parse().unwrap();
        assert_eq!(o.to_string(), "http://example.com:8080");
        assert_eq!(format!("{o:?}"), "AppOrigin(\"http://example.com:8080\")");
    }
}
