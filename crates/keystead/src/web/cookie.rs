//! Cookie names and attributes, as the contract fixes them, and reading them back.
//!
//! ```
//! use keystead::secret::SecretString;
//! use keystead::web::{AppOrigin, CookiePolicy};
//! use time::Duration;
//!
//! let https = CookiePolicy::for_origin(&AppOrigin::parse("https://app.example.com").unwrap());
//! let token = SecretString::new("A".repeat(43));
//! assert_eq!(
//!     https.session_cookie(&token, Duration::days(30)),
//!     format!(
//!         "__Host-authkit_session={}; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=2592000",
//!         token.expose()
//!     )
//! );
//! let header = format!("theme=dark; __Host-authkit_session={}", token.expose());
//! assert_eq!(https.session_token(&header), Some(token.expose()));
//! ```
//!
//! # Attributes
//!
//! Every cookie is `HttpOnly; SameSite=Lax; Path=/` with no `Domain` (host-only). On an `https`
//! origin it is also `Secure` and its name carries the `__Host-` prefix, which makes browsers
//! refuse the cookie unless it is `Secure`, `Path=/` and host-only: a sibling subdomain cannot
//! plant or overwrite it. On plain `http` (local development) neither is possible. The removal
//! cookie repeats the same name and attributes with an empty value, `Max-Age=0` and an `Expires`
//! in 1970, so every browser drops the cookie it replaces.
//!
//! # Reading the `Cookie` header
//!
//! Pass the request's `Cookie` header; if there are several (HTTP/2 may split it), join them
//! with `"; "`. Only the exact (case-sensitive) name for this origin is read: on https the
//! unprefixed `authkit_session` is ignored, since anyone on a sibling subdomain could have set
//! it. A value is a token only if it looks like one of [`generate_token`]'s (43 base64url
//! characters); other values under our name are ignored. When the name appears more than once
//! with *different* plausible tokens, the result is `None`: browsers send duplicates only when
//! someone else set a cookie with the same name on a parent domain or a longer path ("cookie
//! tossing", possible on http), and taking the first would let that cookie win, since browsers
//! list longer paths first. Failing closed signs the user out instead of into an account the
//! attacker chose.
//!
//! [`generate_token`]: crate::secret::generate_token

use cookie::{Cookie, Expiration, SameSite};
use time::{Duration, OffsetDateTime};

use super::origin::AppOrigin;
use crate::secret::SecretString;

/// Name of the session cookie on an http origin; on https it is prefixed with `__Host-`.
pub const SESSION_COOKIE_NAME: &str = "authkit_session";
/// Name of the OAuth flow cookie on an http origin; on https it is prefixed with `__Host-`.
pub const OAUTH_COOKIE_NAME: &str = "authkit_oauth";
/// Name of the pending sign-in cookie (a sign-in waiting for its second factor) on an http
/// origin; on https it is prefixed with `__Host-`.
pub const MFA_COOKIE_NAME: &str = "authkit_mfa";
/// Lifetime of the pending sign-in cookie: the 5 minutes a second factor may take.
pub const MFA_COOKIE_MAX_AGE: Duration = Duration::minutes(5);
/// Lifetime of the OAuth flow cookie: the 10 minutes a flow may take.
pub const OAUTH_COOKIE_MAX_AGE: Duration = Duration::minutes(10);
/// Length of a token made by [`generate_token`](crate::secret::generate_token).
pub const TOKEN_LEN: usize = 43;

/// Whether `value` could be a token made by [`generate_token`](crate::secret::generate_token):
/// exactly [`TOKEN_LEN`] base64url characters. Anything else is not worth a store lookup.
#[must_use]
pub fn is_plausible_token(value: &str) -> bool {
    // One table lookup a byte, with no early exit: the loop runs a fixed 43 times.
    const BASE64URL: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
            b += 1;
        }
        table
    };
    value.len() == TOKEN_LEN
        && value
            .bytes()
            .fold(true, |ok, b| ok & BASE64URL[usize::from(b)])
}

/// The cookies of one origin: their names and attributes. Built once from `APP_ORIGIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookiePolicy {
    secure: bool,
    session: &'static str,
    oauth: &'static str,
    mfa: &'static str,
    /// The session cookie's `Domain`, when it is shared with subdomains.
    domain: Option<String>,
    /// `false`: session cookies without `Max-Age` (they end with the browser session).
    persistent: bool,
}

/// A cookie domain the app's origin cannot set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieDomainError {
    domain: String,
    host: String,
}

impl std::fmt::Display for CookieDomainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cookie domain {:?} is neither the app's host {:?} nor a parent domain of it \
             (browsers would drop the cookie)",
            self.domain, self.host
        )
    }
}

impl std::error::Error for CookieDomainError {}

impl CookiePolicy {
    /// The policy for an origin: `Secure` and `__Host-` names when it is https; no `Domain`
    /// (the cookie goes to this host only); persistent session cookies (`Max-Age`).
    #[must_use]
    pub const fn for_origin(origin: &AppOrigin) -> Self {
        if origin.is_https() {
            Self {
                secure: true,
                session: "__Host-authkit_session",
                oauth: "__Host-authkit_oauth",
                mfa: "__Host-authkit_mfa",
                domain: None,
                persistent: true,
            }
        } else {
            Self {
                secure: false,
                session: SESSION_COOKIE_NAME,
                oauth: OAUTH_COOKIE_NAME,
                mfa: MFA_COOKIE_NAME,
                domain: None,
                persistent: true,
            }
        }
    }

    /// Shares the session cookie with the subdomains of `domain` (`Domain=example.com`), for
    /// an app whose pages and API are on different subdomains. `domain` must be the origin's
    /// host or a parent domain of it (not an IP address). On https the session cookie is then
    /// `__Secure-` prefixed instead of `__Host-` (which forbids `Domain`); the provider
    /// sign-in flow's cookie stays host-only.
    ///
    /// # Errors
    /// When the origin's host is not `domain` or under it.
    pub fn with_domain(
        mut self,
        origin: &AppOrigin,
        domain: &str,
    ) -> Result<Self, CookieDomainError> {
        let domain = domain.trim_start_matches('.').to_ascii_lowercase();
        let host = origin.host().to_ascii_lowercase();
        let under = host == domain
            || host
                .strip_suffix(domain.as_str())
                .is_some_and(|rest| rest.ends_with('.'));
        let is_name = !domain.is_empty()
            && domain.parse::<std::net::IpAddr>().is_err()
            && !domain.starts_with('[')
            && domain.contains('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !under || !is_name {
            return Err(CookieDomainError { domain, host });
        }
        if self.secure {
            self.session = "__Secure-authkit_session";
        }
        self.domain = Some(domain);
        Ok(self)
    }

    /// `false`: session cookies carry no `Max-Age`, so the browser drops them when it closes
    /// ("remember me" off); the session still ends at its expiry in the store. Default `true`.
    #[must_use]
    pub fn with_persistent_sessions(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// The session cookie's `Domain`, if it is shared with subdomains.
    #[must_use]
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Whether session cookies outlive the browser session (`Max-Age`).
    #[must_use]
    pub const fn persistent_sessions(&self) -> bool {
        self.persistent
    }

    /// Whether cookies are `Secure` (and `__Host-` prefixed).
    #[must_use]
    pub const fn is_secure(&self) -> bool {
        self.secure
    }

    /// The session cookie's name for this origin.
    #[must_use]
    pub const fn session_cookie_name(&self) -> &'static str {
        self.session
    }

    /// The OAuth flow cookie's name for this origin.
    #[must_use]
    pub const fn oauth_cookie_name(&self) -> &'static str {
        self.oauth
    }

    /// A `Set-Cookie` value that stores the session token for `max_age` (negative counts as 0).
    #[must_use]
    pub fn session_cookie(&self, token: &SecretString, max_age: Duration) -> String {
        self.session_cookie_value(token.expose(), max_age)
    }

    /// Like [`session_cookie`](Self::session_cookie), for a token read back from a request
    /// (to send it again with a fresh `Max-Age` after the sliding expiry moved).
    #[must_use]
    pub fn session_cookie_value(&self, token: &str, max_age: Duration) -> String {
        let max_age = self.persistent.then(|| max_age.max(Duration::ZERO));
        self.build(self.session, token, max_age, None, self.domain.as_deref())
    }

    /// A `Set-Cookie` value that clears the session cookie (sign-out), with the same name and
    /// attributes as [`session_cookie`](Self::session_cookie).
    #[must_use]
    pub fn removal_cookie(&self) -> String {
        self.build(
            self.session,
            "",
            Some(Duration::ZERO),
            Some(OffsetDateTime::UNIX_EPOCH),
            self.domain.as_deref(),
        )
    }

    /// The session token in a `Cookie` request header, if there is exactly one plausible one.
    /// See the [module](self) for how duplicates and junk are treated.
    #[must_use]
    pub fn session_token<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        find_token(cookie_header, self.session)
    }

    /// Whether the `Cookie` header holds a cookie with the session cookie's name, whatever its
    /// value: the `has_session_cookie` input of the CSRF check.
    #[must_use]
    pub fn has_session_cookie(&self, cookie_header: &str) -> bool {
        values(cookie_header, self.session).next().is_some()
    }

    /// A `Set-Cookie` value that binds an OAuth flow to this browser for
    /// [`OAUTH_COOKIE_MAX_AGE`]. `SameSite=Lax`, so that it comes back on the provider's
    /// top-level redirect to the callback.
    #[must_use]
    pub fn oauth_cookie(&self, token: &SecretString) -> String {
        self.set_cookie(self.oauth, token.expose(), OAUTH_COOKIE_MAX_AGE, None)
    }

    /// A `Set-Cookie` value that clears the OAuth flow cookie.
    #[must_use]
    pub fn oauth_removal_cookie(&self) -> String {
        self.removal(self.oauth)
    }

    /// The OAuth flow token in a `Cookie` request header, read like
    /// [`session_token`](Self::session_token).
    #[must_use]
    pub fn oauth_token<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        find_token(cookie_header, self.oauth)
    }

    /// The pending sign-in cookie's name for this origin.
    #[must_use]
    pub const fn mfa_cookie_name(&self) -> &'static str {
        self.mfa
    }

    /// A `Set-Cookie` value that holds a pending sign-in (first factor passed, second
    /// awaited) for [`MFA_COOKIE_MAX_AGE`]. `SameSite=Lax`, so that it is set on a provider
    /// sign-in's redirect too.
    #[must_use]
    pub fn mfa_cookie(&self, token: &SecretString) -> String {
        self.set_cookie(self.mfa, token.expose(), MFA_COOKIE_MAX_AGE, None)
    }

    /// A `Set-Cookie` value that clears the pending sign-in cookie.
    #[must_use]
    pub fn mfa_removal_cookie(&self) -> String {
        self.removal(self.mfa)
    }

    /// The pending sign-in token in a `Cookie` request header, read like
    /// [`session_token`](Self::session_token).
    #[must_use]
    pub fn mfa_token<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        find_token(cookie_header, self.mfa)
    }

    fn removal(&self, name: &str) -> String {
        self.set_cookie(name, "", Duration::ZERO, Some(OffsetDateTime::UNIX_EPOCH))
    }

    /// A host-only cookie (the provider flow's).
    fn set_cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Duration,
        expires: Option<OffsetDateTime>,
    ) -> String {
        self.build(name, value, Some(max_age), expires, None)
    }

    /// The one place a `Set-Cookie` value is made: `HttpOnly`, `SameSite=Lax`, `Path=/`,
    /// `Secure` on https; `Max-Age`, `Expires` and `Domain` when given.
    fn build(
        &self,
        name: &str,
        value: &str,
        max_age: Option<Duration>,
        expires: Option<OffsetDateTime>,
        domain: Option<&str>,
    ) -> String {
        let mut builder = Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .path("/");
        if let Some(max_age) = max_age {
            builder = builder.max_age(max_age);
        }
        if let Some(at) = expires {
            builder = builder.expires(Expiration::DateTime(at));
        }
        if let Some(domain) = domain {
            builder = builder.domain(domain.to_owned());
        }
        // `encoded` percent-encodes anything that could end the value early (`;`, white space);
        // tokens are base64url and come out unchanged.
        builder.build().encoded().to_string()
    }
}

/// The raw values of every cookie named `name` in a `Cookie` header, in order.
///
/// The header is RFC 6265's `cookie-string`: `name=value` pairs separated by `;`, white space
/// (SP, HTAB) around names and values ignored, pairs without `=` skipped (as browsers' and the
/// `cookie` crate's parsers do). Values are not percent-decoded: ours are base64url. This runs
/// on every request, so it is one pass over the bytes that looks at a pair only if it starts
/// with `name`: parsing every cookie with the `cookie` crate cost ten times as much, and even
/// `split`/`split_once` spent most of their time setting up `memchr` for a few bytes.
fn values<'a>(cookie_header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let is_ws = |b: u8| b == b' ' || b == b'\t';
    let bytes = cookie_header.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < bytes.len() {
            let start = pos;
            // `memchr` checks 32 bytes a step where it can (a one-cookie header is one step).
            let end = memchr::memchr(b';', &bytes[start..]).map_or(bytes.len(), |i| start + i);
            pos = end + 1;
            // Every index below is at an ASCII byte or at `end`, so the slices are on char
            // boundaries.
            let mut i = start;
            while i < end && is_ws(bytes[i]) {
                i += 1;
            }
            if !bytes[i..end].starts_with(name.as_bytes()) {
                continue;
            }
            i += name.len();
            while i < end && is_ws(bytes[i]) {
                i += 1;
            }
            if i == end || bytes[i] != b'=' {
                continue; // a longer name, or no `=`
            }
            let mut first = i + 1;
            let mut last = end;
            while first < last && is_ws(bytes[first]) {
                first += 1;
            }
            while last > first && is_ws(bytes[last - 1]) {
                last -= 1;
            }
            return Some(&cookie_header[first..last]);
        }
        None
    })
}

/// The value of the cookie `name` in a `Cookie` header, read like the session cookie: `None`
/// when it is absent, empty, or present more than once with different values (cookie tossing
/// fails closed). Any value is taken (the old provider's cookie holds a JWT, not one of our
/// tokens).
pub(crate) fn single_value<'a>(cookie_header: &'a str, name: &'a str) -> Option<&'a str> {
    let mut found: Option<&'a str> = None;
    for value in values(cookie_header, name).filter(|v| !v.is_empty()) {
        match found {
            None => found = Some(value),
            Some(first) if first == value => {}
            Some(_) => return None,
        }
    }
    found
}

/// Whether the `Cookie` header holds a cookie named `name`, whatever its value.
pub(crate) fn has_cookie(cookie_header: &str, name: &str) -> bool {
    values(cookie_header, name).next().is_some()
}

fn find_token<'a>(cookie_header: &'a str, name: &'a str) -> Option<&'a str> {
    let mut found: Option<&'a str> = None;
    for value in values(cookie_header, name).filter(|v| is_plausible_token(v)) {
        match found {
            None => found = Some(value),
            Some(first) if first == value => {}
            Some(_) => return None,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origin: &str) -> CookiePolicy {
        CookiePolicy::for_origin(&AppOrigin::parse(origin).unwrap())
    }

    const T1: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO-_";
    const T2: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

    #[test]
    fn a_shared_domain_must_cover_the_host_and_drops_the_host_prefix() {
        let origin = AppOrigin::parse("https://app.example.com").unwrap();
        let shared = CookiePolicy::for_origin(&origin)
            .with_domain(&origin, ".Example.com")
            .unwrap();
        assert_eq!(shared.session_cookie_name(), "__Secure-authkit_session");
        // The provider flow's cookie stays host-only.
        assert_eq!(shared.oauth_cookie_name(), "__Host-authkit_oauth");
        let set = shared.session_cookie_value(T1, Duration::hours(1));
        assert!(set.contains("Domain=example.com"), "{set}");
        assert!(set.contains("Secure") && set.contains("HttpOnly"), "{set}");
        assert!(shared.removal_cookie().contains("Domain=example.com"));
        assert!(!shared.oauth_removal_cookie().contains("Domain"));
        for bad in [
            "evil.com",
            "ample.com",
            "com",
            "pp.example.com",
            "other.app.example.com",
            "",
            "127.0.0.1",
        ] {
            assert!(
                CookiePolicy::for_origin(&origin)
                    .with_domain(&origin, bad)
                    .is_err(),
                "{bad}"
            );
        }
        let local = AppOrigin::parse("http://127.0.0.1:3000").unwrap();
        assert!(
            CookiePolicy::for_origin(&local)
                .with_domain(&local, "127.0.0.1")
                .is_err()
        );
    }

    #[test]
    fn session_only_cookies_carry_no_max_age_but_removals_do() {
        let policy = policy("http://localhost:3000").with_persistent_sessions(false);
        let set = policy.session_cookie_value(T1, Duration::days(30));
        assert!(!set.contains("Max-Age"), "{set}");
        assert!(!set.contains("Expires"), "{set}");
        assert!(policy.removal_cookie().contains("Max-Age=0"));
        let persistent = self::policy("http://localhost:3000");
        assert!(
            persistent
                .session_cookie_value(T1, Duration::days(30))
                .contains("Max-Age=2592000")
        );
    }

    #[test]
    fn names_follow_the_scheme() {
        let http = policy("http://localhost:3000");
        assert!(!http.is_secure());
        assert_eq!(http.session_cookie_name(), "authkit_session");
        assert_eq!(http.oauth_cookie_name(), "authkit_oauth");
        let https = policy("https://app.example.com");
        assert!(https.is_secure());
        assert_eq!(https.session_cookie_name(), "__Host-authkit_session");
        assert_eq!(https.oauth_cookie_name(), "__Host-authkit_oauth");
    }

    #[test]
    fn plausible_tokens_are_43_base64url_characters() {
        assert_eq!(T1.len(), TOKEN_LEN);
        assert!(is_plausible_token(T1));
        assert!(is_plausible_token(T2));
        assert!(!is_plausible_token(&T1[1..]));
        assert!(!is_plausible_token(&format!("{T1}A")));
        assert!(!is_plausible_token(&T1.replace('-', "+")));
        assert!(!is_plausible_token(&T1.replace('a', "=")));
        assert!(!is_plausible_token(""));
        // 43 bytes but not ASCII.
        assert!(!is_plausible_token(&format!("é{}", &T1[2..])));
        // Every byte value, first and last: exactly the base64url alphabet passes.
        for b in 0..=u8::MAX {
            let base64url = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            for at in [0, TOKEN_LEN - 1] {
                let mut bytes = T1.as_bytes().to_vec();
                bytes[at] = b;
                if let Ok(value) = std::str::from_utf8(&bytes) {
                    assert_eq!(
                        is_plausible_token(value),
                        base64url,
                        "byte {b:#04x} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn generated_tokens_are_plausible() {
        let token = crate::secret::generate_token();
        assert!(is_plausible_token(token.expose()));
        let http = policy("http://localhost:3000");
        let header = http.session_cookie(&token, Duration::hours(1));
        let pair = header.split(';').next().unwrap();
        assert_eq!(http.session_token(pair), Some(token.expose()));
    }

    #[test]
    fn values_that_would_break_the_header_are_encoded() {
        let http = policy("http://localhost:3000");
        let set = http.session_cookie(&SecretString::new("x; Domain=evil"), Duration::ZERO);
        assert_eq!(
            set,
            "authkit_session=x%3B%20Domain%3Devil; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
        );
    }

    #[test]
    fn negative_max_age_is_clamped_to_zero() {
        let http = policy("http://localhost:3000");
        let set = http.session_cookie(&SecretString::new(T1), Duration::seconds(-5));
        assert!(set.ends_with("; Max-Age=0"), "{set}");
    }

    /// The plain reading of RFC 6265 §5.4's `cookie-string`, as `values` did it before it
    /// became a one-pass scanner: split on `;`, then at the first `=`, trim SP and HTAB.
    fn reference<'a>(header: &'a str, name: &str) -> Vec<&'a str> {
        const WS: [char; 2] = [' ', '\t'];
        header
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(n, _)| n.trim_matches(WS) == name)
            .map(|(_, v)| v.trim_matches(WS))
            .collect()
    }

    #[test]
    fn the_scanner_reads_every_header_as_the_plain_split_does() {
        // Every header of up to 6 symbols over the characters that matter (the name is one
        // symbol, and so is a longer name): 8^0 + … + 8^6 = 299 593 headers, all compared.
        let name = "authkit_session";
        let alphabet = [name, "=", ";", " ", "\t", "a", "authkit_sessionx", "é"];
        let mut count = 0;
        let mut stack = vec![(String::new(), 0)];
        while let Some((header, len)) = stack.pop() {
            assert_eq!(
                values(&header, name).collect::<Vec<_>>(),
                reference(&header, name),
                "{header:?}"
            );
            count += 1;
            if len < 6 {
                for symbol in alphabet {
                    stack.push((format!("{header}{symbol}"), len + 1));
                }
            }
        }
        assert_eq!(count, 299_593);
    }

    #[test]
    fn has_session_cookie_sees_any_value_under_the_name() {
        let http = policy("http://localhost:3000");
        assert!(http.has_session_cookie("authkit_session=junk"));
        assert!(http.has_session_cookie("a=b; authkit_session="));
        assert!(!http.has_session_cookie("a=b; authkit_oauth=x"));
        assert!(!http.has_session_cookie(""));
    }
}
