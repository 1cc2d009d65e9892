//! The step every adapter runs for every request before the app's handler: one function, so
//! that the axum layer and the actix middleware cannot drift apart.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, header};
use pin_project_lite::pin_project;

use crate::auth::{Auth, Authentication};
use crate::error::{AuthError, ErrorCode};
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

    /// Whether `path` (as sent) is under one of the prefixes, or the path a router may make
    /// of it is: percent-decoded (actix routes `/%64ashboard` to `/dashboard`), with empty
    /// and `.` segments dropped and `..` applied. Either match protects the request, so no
    /// spelling of a protected path reaches a handler anonymously.
    #[must_use]
    pub fn contains_routed(&self, path: &str) -> bool {
        if self.0.is_empty() {
            return false;
        }
        self.contains(path) || routed_path(path).is_some_and(|routed| self.contains(&routed))
    }
}

/// The path a router may route `path` to, when it differs from `path`: percent-decoded (every
/// escape, `%2F` too: deciding on more paths than the router does only protects more), then
/// with empty and `.` segments dropped and `..` segments applied. `None` when `path` is
/// already in that form (the common case: no allocation).
#[must_use]
pub fn routed_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let needs_work = memchr::memchr(b'%', bytes).is_some()
        || path.contains("//")
        || path.contains("/.")
        || path.ends_with('/') && path.len() > 1;
    if !needs_work {
        return None;
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits: at most 255.
                decoded.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let routed = format!("/{}", segments.join("/"));
    (routed != path).then_some(routed)
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
    /// unless it sets the session cookie itself ([`append_session_cookie`]).
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
        if !is_safe_method(method.as_str())
            && !self.is_library_route(method, path)
            && let Err(err) = self.check_csrf(method, headers, false)
        {
            return Err(problem_response(&err));
        }
        if authn.principal.is_none() && protected.contains_routed(path) {
            let mut response = self.unauthenticated_response(
                method,
                path_and_query,
                headers,
                authn.failure.as_ref(),
            );
            append_session_cookie(response.headers_mut(), authn.set_cookie.as_ref());
            return Err(response);
        }
        Ok(authn)
    }
}

/// A response's `Set-Cookie` headers, as [`append_session_cookie`] reads and adds them:
/// implemented for `http::HeaderMap`, and by an adapter over its framework's own header map.
pub trait ResponseCookies {
    /// Every `Set-Cookie` value the response has, in order.
    fn set_cookies(&self) -> impl Iterator<Item = &[u8]>;

    /// Adds a `Set-Cookie` header with `value`, after those there are.
    fn append_set_cookie(&mut self, value: &HeaderValue);
}

impl ResponseCookies for HeaderMap {
    fn set_cookies(&self) -> impl Iterator<Item = &[u8]> {
        self.get_all(header::SET_COOKIE)
            .into_iter()
            .map(HeaderValue::as_bytes)
    }

    fn append_set_cookie(&mut self, value: &HeaderValue) {
        self.append(header::SET_COOKIE, value.clone());
    }
}

/// The one rule for the session cookie that authenticating a request produced
/// ([`Authentication::set_cookie`]: refreshed for the sliding expiry, or cleared for a dead
/// session): it is added to the response unless the response sets that cookie itself (a
/// `Set-Cookie` of the same name: the handler signed the user out or in). A cookie of another
/// name (a theme, a consent flag, a provider flow's cookie) does not drop it. The library's
/// routes, the axum layer and the actix middleware all add it through this function.
pub fn append_session_cookie<H: ResponseCookies + ?Sized>(
    headers: &mut H,
    cookie: Option<&HeaderValue>,
) {
    let Some(cookie) = cookie else {
        return;
    };
    let sets_it = cookie_name(cookie.as_bytes()).is_some_and(|name| {
        headers
            .set_cookies()
            .any(|set| cookie_name(set) == Some(name))
    });
    if !sets_it {
        headers.append_set_cookie(cookie);
    }
}

/// The answer to a request whose server gives no client address (the socket peer): 503
/// `unavailable` with `how_to_serve` as the detail, logged at error. Adapters refuse such
/// requests before anything else: inventing an address would put every client into one
/// rate-limit bucket, so they fail closed.
#[must_use]
pub fn missing_peer_response(how_to_serve: &str) -> Response<Bytes> {
    tracing::error!("{how_to_serve}");
    problem_response(&AuthError::new(ErrorCode::Unavailable).with_detail(how_to_serve))
}

/// How an adapter turns the app's response into its own once [`GateFuture`] has it: adds the
/// session cookie with [`append_session_cookie`] (through the adapter's [`ResponseCookies`])
/// and converts the body type if the adapter's differs. Implemented by each adapter's service
/// type.
pub trait Finish {
    /// The app's response.
    type Inner;
    /// The response the adapter's service answers with.
    type Output;

    /// `inner` with `set_cookie` added under the rule of [`append_session_cookie`].
    fn finish(inner: Self::Inner, set_cookie: Option<&HeaderValue>) -> Self::Output;
}

pin_project! {
    /// The response future of an adapter's service (`keystead_axum::AuthFuture`,
    /// `keystead_actix::AuthFuture`), in one of three states:
    /// - the app's own future, called at once when the caches admitted the request (the hot
    ///   path: no boxed future); the session cookie goes onto its response ([`Finish`]);
    /// - an answer the gate gave instead of calling the app (503, 403, 401, 303);
    /// - a boxed future `B`, when admitting the request had to ask the store.
    pub struct GateFuture<F, B, A: Finish> {
        #[pin]
        state: GateState<F, B, A::Output>,
        // The request's span (`keystead.request`), entered while the app's future runs.
        span: tracing::Span,
        finish: PhantomData<fn() -> A>,
    }
}

pin_project! {
    #[project = GateStateProj]
    enum GateState<F, B, R> {
        Inner { #[pin] future: F, set_cookie: Option<HeaderValue> },
        Answered { response: Option<R> },
        Boxed { #[pin] future: B },
    }
}

impl<F, B, A: Finish> GateFuture<F, B, A> {
    /// The app's future, whose response gets `set_cookie`.
    pub fn inner(future: F, set_cookie: Option<HeaderValue>) -> Self {
        Self::from_state(GateState::Inner { future, set_cookie })
    }

    /// An answer given without calling the app.
    pub fn answered(response: A::Output) -> Self {
        Self::from_state(GateState::Answered {
            response: Some(response),
        })
    }

    /// A future that authenticates with the store, calls the app and finishes its response
    /// itself.
    pub fn boxed(future: B) -> Self {
        Self::from_state(GateState::Boxed { future })
    }

    /// This future with `span` (the request's, from
    /// [`telemetry::request_span`](crate::telemetry::request_span)) entered whenever it is
    /// polled.
    #[must_use]
    pub fn in_span(mut self, span: tracing::Span) -> Self {
        self.span = span;
        self
    }

    fn from_state(state: GateState<F, B, A::Output>) -> Self {
        Self {
            state,
            span: tracing::Span::none(),
            finish: PhantomData,
        }
    }
}

impl<F, B, A, E> Future for GateFuture<F, B, A>
where
    A: Finish,
    F: Future<Output = Result<A::Inner, E>>,
    B: Future<Output = Result<A::Output, E>>,
{
    type Output = Result<A::Output, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        match this.state.project() {
            GateStateProj::Inner { future, set_cookie } => {
                let inner = std::task::ready!(future.poll(cx))?;
                Poll::Ready(Ok(A::finish(inner, set_cookie.take().as_ref())))
            }
            GateStateProj::Answered { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("GateFuture polled after completion"),
            },
            GateStateProj::Boxed { future } => future.poll(cx),
        }
    }
}

impl<F, B, A: Finish> std::fmt::Debug for GateFuture<F, B, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GateFuture")
    }
}

/// The name of the cookie a `Set-Cookie` value sets: the bytes before the first `=`, trimmed.
#[must_use]
pub fn cookie_name(set_cookie: &[u8]) -> Option<&[u8]> {
    let eq = memchr::memchr(b'=', set_cookie)?;
    Some(set_cookie[..eq].trim_ascii())
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::{GateHeader, ProtectedPaths, RequestHeaders, append_session_cookie, visible_text};

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
    fn the_refresh_is_dropped_only_for_a_cookie_of_the_same_name() {
        let refresh = HeaderValue::from_static("authkit_session=new; Path=/");
        let mut headers = HeaderMap::new();
        headers.append(
            http::header::SET_COOKIE,
            HeaderValue::from_static("theme=dark"),
        );
        append_session_cookie(&mut headers, Some(&refresh));
        assert_eq!(headers.get_all(http::header::SET_COOKIE).iter().count(), 2);
        let mut headers = HeaderMap::new();
        headers.append(
            http::header::SET_COOKIE,
            HeaderValue::from_static("authkit_session=; Max-Age=0"),
        );
        append_session_cookie(&mut headers, Some(&refresh));
        let all: Vec<_> = headers.get_all(http::header::SET_COOKIE).iter().collect();
        assert_eq!(
            all,
            [HeaderValue::from_static("authkit_session=; Max-Age=0")]
        );
        let mut headers = HeaderMap::new();
        append_session_cookie(&mut headers, Some(&refresh));
        assert_eq!(headers.get_all(http::header::SET_COOKIE).iter().count(), 1);
    }

    #[test]
    fn protected_prefixes_hold_for_every_spelling_a_router_may_route() {
        let mut paths = ProtectedPaths::default();
        paths.add("/dashboard");
        for path in [
            "/dashboard",
            "/%64ashboard",
            "/%64%61shboard/tokens",
            "/dashboard%2Ftokens",
            "//dashboard",
            "/./dashboard",
            "/x/../dashboard",
            "/dashboard/",
        ] {
            assert!(paths.contains_routed(path), "{path}");
        }
        for path in [
            "/",
            "/dashboards",
            "/%64ashboards",
            "/sign-in",
            "/%zzdashboard",
        ] {
            assert!(!paths.contains_routed(path), "{path}");
        }
        assert_eq!(super::routed_path("/api/projects"), None);
        assert_eq!(
            super::routed_path("/%64ashboard").as_deref(),
            Some("/dashboard")
        );
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
