//! The step every adapter runs for every request before the app's handler: one function, so
//! that the axum layer and the actix middleware cannot drift apart.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, header};

use crate::auth::{Auth, Authentication};
use crate::routes::problem_response;
use crate::web::is_safe_method;

/// Path prefixes that need a signed-in user: `/dashboard` covers `/dashboard` and
/// `/dashboard/…`, not `/dashboards`. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedPaths(Arc<Vec<String>>);

impl ProtectedPaths {
    /// Adds a prefix (a trailing `/` is ignored).
    pub fn add(&mut self, prefix: impl Into<String>) {
        let prefix = prefix.into().trim_end_matches('/').to_owned();
        Arc::make_mut(&mut self.0).push(prefix);
    }

    /// Whether `path` is under one of the prefixes.
    #[must_use]
    pub fn contains(&self, path: &str) -> bool {
        self.0.iter().any(|prefix| {
            path.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// A request header that [`Auth::admit`] reads: the credential (`Authorization`, `Cookie`),
/// what the CSRF rule looks at (`Origin`, `Referer`, `Sec-Fetch-Site`) and what tells a
/// browser from an API client (`Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateHeader {
    /// `Authorization`.
    Authorization,
    /// `Cookie` (HTTP/2 may send several).
    Cookie,
    /// `Origin`.
    Origin,
    /// `Referer`.
    Referer,
    /// `Sec-Fetch-Site`.
    SecFetchSite,
    /// `Accept`.
    Accept,
}

impl GateHeader {
    /// Every header the gate reads.
    pub const ALL: [Self; 6] = [
        Self::Authorization,
        Self::Cookie,
        Self::Origin,
        Self::Referer,
        Self::SecFetchSite,
        Self::Accept,
    ];

    /// The header's name, in lower case.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Authorization => "authorization",
            Self::Cookie => "cookie",
            Self::Origin => "origin",
            Self::Referer => "referer",
            Self::SecFetchSite => "sec-fetch-site",
            Self::Accept => "accept",
        }
    }

    const fn http_name(self) -> header::HeaderName {
        match self {
            Self::Authorization => header::AUTHORIZATION,
            Self::Cookie => header::COOKIE,
            Self::Origin => header::ORIGIN,
            Self::Referer => header::REFERER,
            Self::SecFetchSite => header::HeaderName::from_static("sec-fetch-site"),
            Self::Accept => header::ACCEPT,
        }
    }
}

/// Read access to a request's headers, as [`Auth::admit`] and [`Auth::authenticate`] need it:
/// implemented for `http::HeaderMap`, and by an adapter over its framework's own header map
/// (actix-web's are `http` 0.2 types), so that the hot path reads the request's headers where
/// they are instead of copying them into another map.
pub trait RequestHeaders {
    /// The first value of `header`, as sent.
    fn first(&self, header: GateHeader) -> Option<&[u8]>;

    /// Every value of `header`, in the order sent.
    fn all(&self, header: GateHeader) -> impl Iterator<Item = &[u8]>;

    /// The first value of `header` as text: `None` without one, `Some(None)` when it holds
    /// bytes other than visible ASCII and tab (what `HeaderValue::to_str` refuses).
    fn first_text(&self, header: GateHeader) -> Option<Option<&str>> {
        self.first(header).map(visible_text)
    }
}

impl RequestHeaders for HeaderMap {
    fn first(&self, header: GateHeader) -> Option<&[u8]> {
        self.get(header.http_name()).map(HeaderValue::as_bytes)
    }

    fn all(&self, header: GateHeader) -> impl Iterator<Item = &[u8]> {
        self.get_all(header.http_name())
            .into_iter()
            .map(HeaderValue::as_bytes)
    }

    fn first_text(&self, header: GateHeader) -> Option<Option<&str>> {
        // One pass over the value (`to_str`), where the provided method makes two.
        self.get(header.http_name())
            .map(|value| value.to_str().ok())
    }
}

/// A header value as text, if it is visible ASCII (or tab): what `HeaderValue::to_str` accepts.
#[must_use]
pub fn visible_text(value: &[u8]) -> Option<&str> {
    // No early exit, so that the loop vectorizes.
    let bad = value.iter().fold(false, |bad, &b| {
        bad | !(b == b'\t' || (32..127).contains(&b))
    });
    if bad {
        None
    } else {
        std::str::from_utf8(value).ok()
    }
}

impl Auth {
    /// Admits a request to the app, or answers it: authenticates it once (the
    /// [`Authentication`] to put into the request's extensions), and
    /// - fails closed: 503 when the store cannot say whether a presented credential holds;
    /// - applies the CSRF rule to unsafe methods on the app's own routes (the library's routes
    ///   apply it themselves, with the login variant): 403 `csrf_rejected`;
    /// - sends anonymous requests under a protected prefix to `/sign-in?next=…` (browsers,
    ///   303) or answers them 401 (see [`Auth::unauthenticated_response`]).
    ///
    /// When admitted, the adapter adds [`Authentication::set_cookie`] to the app's response
    /// unless it sets a cookie of its own ([`with_refreshed_cookie`]).
    ///
    /// # Errors
    /// The response to send instead of calling the app.
    pub async fn admit<H: RequestHeaders + ?Sized>(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &H,
        protected: &ProtectedPaths,
    ) -> Result<Authentication, Response<Bytes>> {
        let authn = self.authenticate(headers).await;
        self.admit_authenticated(authn, method, path_and_query, headers, protected)
    }

    /// [`admit`](Self::admit)'s answer when the in-process caches can give it without waiting
    /// on the store (see [`Auth::authenticate_cached`]); `None` otherwise: call `admit` then.
    /// Adapters try this first, so that the hot path needs no boxed future.
    #[must_use]
    pub fn admit_cached<H: RequestHeaders + ?Sized>(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &H,
        protected: &ProtectedPaths,
    ) -> Option<Result<Authentication, Response<Bytes>>> {
        let authn = self.authenticate_cached(headers)?;
        Some(self.admit_authenticated(authn, method, path_and_query, headers, protected))
    }

    // The error is the response to send instead of the app's: moved once, never propagated.
    #[allow(clippy::result_large_err)]
    fn admit_authenticated<H: RequestHeaders + ?Sized>(
        &self,
        authn: Authentication,
        method: &Method,
        path_and_query: &str,
        headers: &H,
        protected: &ProtectedPaths,
    ) -> Result<Authentication, Response<Bytes>> {
        if let Some(fatal) = authn.fatal() {
            return Err(problem_response(fatal));
        }
        let path = memchr::memchr(b'?', path_and_query.as_bytes())
            .map_or(path_and_query, |query| &path_and_query[..query]);
        if !Self::is_library_path(path)
            && !is_safe_method(method.as_str())
            && let Err(err) = self.check_csrf(method, headers, false)
        {
            return Err(problem_response(&err));
        }
        if authn.principal.is_none() && protected.contains(path) {
            let mut response = self.unauthenticated_response(
                method,
                path_and_query,
                headers,
                authn.failure.as_ref(),
            );
            if let Some(cookie) = authn.set_cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            return Err(response);
        }
        Ok(authn)
    }
}

/// Adds `cookie` (a refreshed or cleared session cookie) to a response's headers unless the
/// response sets a cookie of its own.
pub fn with_refreshed_cookie(headers: &mut HeaderMap, cookie: Option<HeaderValue>) {
    if let Some(cookie) = cookie
        && !headers.contains_key(header::SET_COOKIE)
    {
        headers.append(header::SET_COOKIE, cookie);
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::{GateHeader, ProtectedPaths, RequestHeaders, visible_text};

    /// A header map read through the trait's provided `first_text`, as an adapter that only
    /// implements `first` and `all` reads it.
    struct Provided(HeaderMap);

    impl RequestHeaders for Provided {
        fn first(&self, header: GateHeader) -> Option<&[u8]> {
            self.0.first(header)
        }

        fn all(&self, header: GateHeader) -> impl Iterator<Item = &[u8]> {
            self.0.all(header)
        }
    }

    #[test]
    fn header_text_is_what_to_str_accepts_for_every_byte() {
        for b in 0..=255u8 {
            let bytes = [b'a', b, b'z'];
            let visible = b == b'\t' || (32..127).contains(&b);
            assert_eq!(visible_text(&bytes).is_some(), visible, "byte {b:#04x}");
            // The bytes a header value can hold at all (not NUL, CR, LF, …).
            let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                continue;
            };
            let mut headers = HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, value.clone());
            let expected = Some(value.to_str().ok());
            assert_eq!(headers.first_text(GateHeader::Authorization), expected);
            let provided = Provided(headers);
            assert_eq!(
                provided.first_text(GateHeader::Authorization),
                expected,
                "byte {b:#04x}"
            );
        }
        let empty = Provided(HeaderMap::new());
        assert_eq!(empty.first_text(GateHeader::Authorization), None);
    }

    #[test]
    fn every_gate_header_is_found_by_its_name() {
        let mut headers = HeaderMap::new();
        for header in GateHeader::ALL {
            headers.append(header.name(), HeaderValue::from_static("one"));
            headers.append(header.name(), HeaderValue::from_static("two"));
        }
        for header in GateHeader::ALL {
            assert_eq!(headers.first(header), Some(&b"one"[..]), "{header:?}");
            let all: Vec<&[u8]> = headers.all(header).collect();
            assert_eq!(all, [&b"one"[..], &b"two"[..]], "{header:?}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let mut paths = ProtectedPaths::default();
        paths.add("/dashboard/");
        assert!(paths.contains("/dashboard"));
        assert!(paths.contains("/dashboard/tokens"));
        assert!(!paths.contains("/dashboards"));
        assert!(!paths.contains("/"));
    }
}
