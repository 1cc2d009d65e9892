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

/// The request headers [`Auth::admit`] reads: an adapter whose framework has its own header
/// types (actix-web's are `http` 0.2) converts only these on the hot path.
pub static ADMIT_HEADERS: [header::HeaderName; 6] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::ORIGIN,
    header::REFERER,
    header::HeaderName::from_static("sec-fetch-site"),
    header::ACCEPT,
];

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
    pub async fn admit(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        protected: &ProtectedPaths,
    ) -> Result<Authentication, Response<Bytes>> {
        let authn = self.authenticate(headers).await;
        self.admit_authenticated(authn, method, path_and_query, headers, protected)
    }

    /// [`admit`](Self::admit)'s answer when the in-process caches can give it without waiting
    /// on the store (see [`Auth::authenticate_cached`]); `None` otherwise: call `admit` then.
    /// Adapters try this first, so that the hot path needs no boxed future.
    #[must_use]
    pub fn admit_cached(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        protected: &ProtectedPaths,
    ) -> Option<Result<Authentication, Response<Bytes>>> {
        let authn = self.authenticate_cached(headers)?;
        Some(self.admit_authenticated(authn, method, path_and_query, headers, protected))
    }

    // The error is the response to send instead of the app's: moved once, never propagated.
    #[allow(clippy::result_large_err)]
    fn admit_authenticated(
        &self,
        authn: Authentication,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        protected: &ProtectedPaths,
    ) -> Result<Authentication, Response<Bytes>> {
        if let Some(fatal) = authn.fatal() {
            return Err(problem_response(fatal));
        }
        let path = path_and_query.split('?').next().unwrap_or_default();
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
    use super::ProtectedPaths;

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
