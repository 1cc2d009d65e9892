//! The contract's cross-site request check: `Origin`, then `Referer` or `Sec-Fetch-Site`.
//!
//! ```
//! use keystead::web::{AppOrigin, CsrfPolicy, CsrfRequest};
//! use keystead::ErrorCode;
//!
//! let policy = CsrfPolicy::new(AppOrigin::parse("http://localhost:3000").unwrap());
//!
//! // A form posted from our own page.
//! let ours = CsrfRequest {
//!     method: "POST",
//!     origin: Some("http://localhost:3000"),
//!     has_session_cookie: true,
//!     ..CsrfRequest::default()
//! };
//! assert!(policy.check(&ours).is_ok());
//!
//! // The same form posted from a look-alike host.
//! let forged = CsrfRequest { origin: Some("http://localhost:3000.evil.com"), ..ours };
//! assert_eq!(policy.check(&forged).unwrap_err().code, ErrorCode::CsrfRejected);
//! ```
//!
//! # The rules, in order
//!
//! 1. Safe methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`, exact case) pass: they must not change
//!    anything. Every other method is checked, not only `POST`, `PUT`, `PATCH` and `DELETE`:
//!    a method the contract does not name (or a lower-case `post`) is no way around the check.
//! 2. Requests authenticated by `Authorization: Bearer` pass. A browser cannot attach that
//!    header to a cross-site request without a CORS preflight, so there is nothing to forge.
//!    The adapter must then authenticate by the token only and ignore any session cookie.
//! 3. Requests that are neither sign-in/sign-up (`login`) nor carry the session cookie pass:
//!    without a credential there is nothing to forge, and a protected route answers 401 anyway.
//!    Routes that create a session must set `login`.
//! 4. An `Origin` header, when present, decides alone: it must be our origin (compared after
//!    parsing: scheme, host and port). `null`, another scheme, a longer host, another port or a
//!    list of origins fail, whatever `Referer` or `Sec-Fetch-Site` say.
//! 5. Without `Origin`: a `Referer` whose *origin* (parsed, never a string prefix) is ours
//!    passes, and so does `Sec-Fetch-Site: same-origin`. `same-site`, `cross-site` and `none`
//!    do not: a sibling subdomain is not us, and `none` (a typed URL or a bookmark) has no page
//!    that could vouch for an unsafe request.
//! 6. With none of the three headers, a request that carries the session cookie fails. On
//!    sign-in and sign-up, a request with no `Origin`, `Referer`, `Sec-Fetch-Site` or session
//!    cookie passes: it comes from a non-browser client (curl, a mobile app), since browsers send
//!    `Origin` on every cross-site `POST`. `Sec-Fetch-Site` is counted as browser evidence here,
//!    which makes the contract's exemption slightly narrower: a browser that sends it also sends
//!    `Origin` on `POST`, so no real client loses.
//!
//! # What adapters pass
//!
//! Header values as they arrived (surrounding white space is ignored). A header that is present
//! but unreadable (not UTF-8) is passed as `Some("")`, never as `None`: an unreadable `Origin`
//! must fail, not be treated as absent. A header that occurs several times is passed with its
//! values joined by `,`, which never matches. `has_session_cookie` is whether a cookie with the
//! session cookie's name is present at all, valid or not
//! ([`CookiePolicy::has_session_cookie`](super::CookiePolicy::has_session_cookie)).

use super::origin::AppOrigin;
use crate::error::{AuthError, ErrorCode};

/// What the CSRF check needs to know about a request: plain header values, no framework types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsrfRequest<'a> {
    /// The request method, as sent (`"POST"`).
    pub method: &'a str,
    /// The `Origin` header, if present.
    pub origin: Option<&'a str>,
    /// The `Referer` header, if present.
    pub referer: Option<&'a str>,
    /// The `Sec-Fetch-Site` header, if present.
    pub sec_fetch_site: Option<&'a str>,
    /// Whether the request carries a cookie with the session cookie's name.
    pub has_session_cookie: bool,
    /// Whether the request is authenticated by `Authorization: Bearer` (and not by the cookie).
    pub bearer: bool,
    /// Whether the route signs in or signs up (login CSRF gets the same origin check).
    pub login: bool,
}

/// Why a request was refused; its [`Display`](std::fmt::Display) is the client-safe detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrfRejection {
    /// `Origin` is present and is not the application's origin.
    #[error("the Origin header does not match the application's origin")]
    OriginMismatch,
    /// No `Origin`; `Referer` is present and names another origin, and the browser did not
    /// report a same-origin request.
    #[error("the Referer header does not match the application's origin")]
    RefererMismatch,
    /// No `Origin` or `Referer`; `Sec-Fetch-Site` says the request is not same-origin.
    #[error("the browser reports a request from another origin")]
    NotSameOrigin,
    /// None of `Origin`, `Referer` or `Sec-Fetch-Site`, on a request that needs one.
    #[error("the request carries no Origin, Referer or Sec-Fetch-Site header")]
    NoProvenance,
}

impl From<CsrfRejection> for AuthError {
    fn from(rejection: CsrfRejection) -> Self {
        AuthError::new(ErrorCode::CsrfRejected).with_detail(rejection.to_string())
    }
}

/// Whether a method is safe (RFC 9110 §9.2.1) and so exempt from the check. Case-sensitive, as
/// methods are.
#[must_use]
pub fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// The contract's CSRF check against one configured origin. See the [module](self) for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfPolicy {
    origin: AppOrigin,
    /// Other origins whose pages may post (a SPA on another subdomain).
    trusted: Vec<AppOrigin>,
}

impl CsrfPolicy {
    /// A policy that accepts requests from `origin` (the configured `APP_ORIGIN`).
    #[must_use]
    pub const fn new(origin: AppOrigin) -> Self {
        Self {
            origin,
            trusted: Vec::new(),
        }
    }

    /// Also accepts requests from `origins` (by `Origin` or `Referer`), such as a single-page
    /// app served from another subdomain. `Sec-Fetch-Site: same-origin` alone still only
    /// vouches for the app's own origin. The app answers their CORS preflights itself.
    #[must_use]
    pub fn with_trusted_origins(mut self, origins: impl IntoIterator<Item = AppOrigin>) -> Self {
        for origin in origins {
            if origin != self.origin && !self.trusted.contains(&origin) {
                self.trusted.push(origin);
            }
        }
        self
    }

    /// The other origins requests may come from.
    #[must_use]
    pub fn trusted_origins(&self) -> &[AppOrigin] {
        &self.trusted
    }

    fn accepts(&self, origin: &AppOrigin) -> bool {
        *origin == self.origin || self.trusted.contains(origin)
    }

    /// The origin requests must come from.
    #[must_use]
    pub const fn origin(&self) -> &AppOrigin {
        &self.origin
    }

    /// Checks a request.
    ///
    /// # Errors
    /// [`ErrorCode::CsrfRejected`] (403), with a detail saying which header failed.
    pub fn check(&self, request: &CsrfRequest<'_>) -> Result<(), AuthError> {
        self.evaluate(request).map_err(AuthError::from)
    }

    /// Like [`check`](Self::check), with the reason as a value (for logs and tests).
    ///
    /// # Errors
    /// The [`CsrfRejection`] that applies.
    pub fn evaluate(&self, request: &CsrfRequest<'_>) -> Result<(), CsrfRejection> {
        if is_safe_method(request.method) || request.bearer {
            return Ok(());
        }
        if !request.login && !request.has_session_cookie {
            return Ok(());
        }
        if let Some(origin) = request.origin {
            return if AppOrigin::parse(origin).is_ok_and(|o| self.accepts(&o)) {
                Ok(())
            } else {
                Err(CsrfRejection::OriginMismatch)
            };
        }
        let referer = request.referer.map(str::trim);
        let fetch_site = request.sec_fetch_site.map(str::trim);
        if referer.is_some_and(|r| AppOrigin::of_url(r).is_ok_and(|o| self.accepts(&o))) {
            return Ok(());
        }
        if fetch_site == Some("same-origin") {
            return Ok(());
        }
        match (referer, fetch_site) {
            (Some(_), _) => Err(CsrfRejection::RefererMismatch),
            (None, Some(_)) => Err(CsrfRejection::NotSameOrigin),
            (None, None) if request.login && !request.has_session_cookie => Ok(()),
            (None, None) => Err(CsrfRejection::NoProvenance),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CsrfPolicy {
        CsrfPolicy::new(AppOrigin::parse("http://localhost:3000").unwrap())
    }

    fn cookie_post() -> CsrfRequest<'static> {
        CsrfRequest {
            method: "POST",
            has_session_cookie: true,
            ..CsrfRequest::default()
        }
    }

    #[test]
    fn rejection_maps_to_csrf_rejected_with_a_detail() {
        let err = policy().check(&cookie_post()).unwrap_err();
        assert_eq!(err.code, ErrorCode::CsrfRejected);
        assert_eq!(err.status(), 403);
        assert_eq!(
            err.detail.as_deref(),
            Some("the request carries no Origin, Referer or Sec-Fetch-Site header")
        );
    }

    #[test]
    fn safe_methods_are_exact_case_and_everything_else_is_checked() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert!(is_safe_method(m), "{m}");
        }
        for m in [
            "POST", "PUT", "PATCH", "DELETE", "post", "get", "PROPFIND", "",
        ] {
            assert!(!is_safe_method(m), "{m}");
            let req = CsrfRequest {
                method: m,
                ..cookie_post()
            };
            assert_eq!(
                policy().evaluate(&req),
                Err(CsrfRejection::NoProvenance),
                "{m}"
            );
        }
    }

    #[test]
    fn a_trusted_origin_is_accepted_and_its_lookalikes_are_not() {
        let spa = AppOrigin::parse("https://spa.example.com").unwrap();
        let policy = policy().with_trusted_origins([spa]);
        let from = |origin| CsrfRequest {
            origin: Some(origin),
            ..cookie_post()
        };
        assert_eq!(policy.evaluate(&from("https://spa.example.com")), Ok(()));
        assert_eq!(policy.evaluate(&from("http://localhost:3000")), Ok(()));
        for evil in [
            "http://spa.example.com",
            "https://spa.example.com.evil.test",
            "https://evil-spa.example.com",
            "https://spa.example.com:8443",
        ] {
            assert_eq!(
                policy.evaluate(&from(evil)),
                Err(CsrfRejection::OriginMismatch),
                "{evil}"
            );
        }
        let by_referer = CsrfRequest {
            referer: Some("https://spa.example.com/settings"),
            ..cookie_post()
        };
        assert_eq!(policy.evaluate(&by_referer), Ok(()));
        // Without the setting, the same origin is refused.
        assert_eq!(
            self::policy().evaluate(&from("https://spa.example.com")),
            Err(CsrfRejection::OriginMismatch)
        );
    }

    #[test]
    fn origin_decides_alone_when_present() {
        let req = CsrfRequest {
            origin: Some("http://evil.example"),
            referer: Some("http://localhost:3000/page"),
            sec_fetch_site: Some("same-origin"),
            ..cookie_post()
        };
        assert_eq!(policy().evaluate(&req), Err(CsrfRejection::OriginMismatch));
    }

    #[test]
    fn a_present_but_unreadable_origin_fails() {
        let req = CsrfRequest {
            origin: Some(""),
            sec_fetch_site: Some("same-origin"),
            ..cookie_post()
        };
        assert_eq!(policy().evaluate(&req), Err(CsrfRejection::OriginMismatch));
    }

    #[test]
    fn fetch_site_other_than_same_origin_fails_without_origin() {
        for site in ["same-site", "cross-site", "none", "Same-Origin", ""] {
            let req = CsrfRequest {
                sec_fetch_site: Some(site),
                ..cookie_post()
            };
            assert_eq!(
                policy().evaluate(&req),
                Err(CsrfRejection::NotSameOrigin),
                "{site}"
            );
        }
        let req = CsrfRequest {
            sec_fetch_site: Some(" same-origin "),
            ..cookie_post()
        };
        assert_eq!(policy().evaluate(&req), Ok(()));
    }

    #[test]
    fn a_foreign_referer_is_rescued_only_by_same_origin_fetch_site() {
        let req = CsrfRequest {
            referer: Some("http://evil.example/"),
            ..cookie_post()
        };
        assert_eq!(policy().evaluate(&req), Err(CsrfRejection::RefererMismatch));
        let req = CsrfRequest {
            sec_fetch_site: Some("same-origin"),
            ..req
        };
        assert_eq!(policy().evaluate(&req), Ok(()));
    }

    #[test]
    fn without_session_cookie_a_non_login_route_is_not_checked() {
        let req = CsrfRequest {
            method: "POST",
            origin: Some("http://evil.example"),
            ..CsrfRequest::default()
        };
        assert_eq!(policy().evaluate(&req), Ok(()));
        // The same request as a sign-in is checked.
        let req = CsrfRequest { login: true, ..req };
        assert_eq!(policy().evaluate(&req), Err(CsrfRejection::OriginMismatch));
    }

    #[test]
    fn login_without_any_browser_evidence_passes_but_fetch_site_counts_as_evidence() {
        let bare = CsrfRequest {
            method: "POST",
            login: true,
            ..CsrfRequest::default()
        };
        assert_eq!(policy().evaluate(&bare), Ok(()));
        let cross = CsrfRequest {
            sec_fetch_site: Some("cross-site"),
            ..bare
        };
        assert_eq!(policy().evaluate(&cross), Err(CsrfRejection::NotSameOrigin));
        let with_cookie = CsrfRequest {
            has_session_cookie: true,
            ..bare
        };
        assert_eq!(
            policy().evaluate(&with_cookie),
            Err(CsrfRejection::NoProvenance)
        );
    }
}
