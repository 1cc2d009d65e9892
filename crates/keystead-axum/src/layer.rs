//! The tower layer: authenticates each request once and enforces what applies to every route.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use http::HeaderValue;
use keystead::gate::{Finish, GateFuture, ProtectedPaths, append_session_cookie};
use keystead::{Auth, Authentication, telemetry};
use tower::{Layer, Service};

use crate::{into_axum, missing_connect_info};

/// Authenticates every request (session cookie or `Authorization: Bearer`) and puts the
/// outcome ([`keystead::Authentication`]) into the request's extensions, where the
/// extractors find it. Also, for every route of the app:
/// - fails closed: when the store cannot say whether a credential holds, 503;
/// - applies the CSRF rule to unsafe methods that carry the session cookie (403
///   `csrf_rejected`); the library's routes apply it themselves, with the login variant;
/// - sends anonymous requests under a [protected prefix](Self::protect) to
///   `/sign-in?next=…` (browsers asking for HTML, 303) or answers 401 (everything else);
/// - adds the refreshed (sliding expiry) or cleared (dead session) cookie to the response;
/// - refuses every request (503 `unavailable`, logged at error) when the server does not give
///   the socket peer (`ConnectInfo<SocketAddr>`): serve with
///   `into_make_service_with_connect_info::<SocketAddr>()`. Without it every client would share
///   one rate-limit key.
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthLayer {
    auth: Auth,
    protected: ProtectedPaths,
}

impl AuthLayer {
    /// A layer over `auth`, with no protected prefixes.
    pub fn new(auth: Auth) -> Self {
        Self {
            auth,
            protected: ProtectedPaths::default(),
        }
    }

    /// Requires a signed-in user for `prefix` and every path under it (`/dashboard` covers
    /// `/dashboard` and `/dashboard/…`, not `/dashboards`).
    pub fn protect(mut self, prefix: impl Into<String>) -> Self {
        self.protected.add(prefix);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            protected: self.protected.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Auth,
    protected: ProtectedPaths,
}

impl<S> Service<Request> for AuthService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AuthFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Without the socket peer every client would share one rate-limit key: refuse (fail
        // closed, loudly) rather than invent an address.
        if request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_none()
        {
            return GateFuture::answered(missing_connect_info());
        }
        let span = telemetry::request_span(request.method(), path_and_query(&request));
        let future = {
            let _entered = span.enter();
            self.admit_and_call(request, &span)
        };
        future.in_span(span)
    }
}

impl<S> AuthService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    fn admit_and_call(&mut self, mut request: Request, span: &tracing::Span) -> AuthFuture<S> {
        // The hot path: the caches answer, so the app is called at once, with no boxed
        // future and no clone of the inner service.
        let admitted = self.auth.admit_cached(
            request.method(),
            path_and_query(&request),
            request.headers(),
            &self.protected,
        );
        match admitted {
            Some(Ok(authn)) => {
                telemetry::record_authentication(span, &authn);
                let set_cookie = authenticated(&mut request, authn, &self.auth);
                GateFuture::inner(self.inner.call(request), set_cookie)
            }
            Some(Err(response)) => GateFuture::answered(into_axum(response)),
            None => {
                // The store must be asked: the clone that was polled ready serves this request.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let auth = self.auth.clone();
                let protected = self.protected.clone();
                let span = span.clone();
                GateFuture::boxed(Box::pin(async move {
                    let admitted = auth
                        .admit(
                            request.method(),
                            path_and_query(&request),
                            request.headers(),
                            &protected,
                        )
                        .await;
                    let authn = match admitted {
                        Ok(authn) => authn,
                        Err(response) => return Ok(into_axum(response)),
                    };
                    telemetry::record_authentication(&span, &authn);
                    let set_cookie = authenticated(&mut request, authn, &auth);
                    let response = inner.call(request).await?;
                    Ok(Self::finish(response, set_cookie.as_ref()))
                }))
            }
        }
    }
}

fn path_and_query(request: &Request) -> &str {
    request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path(), |pq| pq.as_str())
}

/// Puts what the extractors need into the request; returns the cookie for the response.
fn authenticated(request: &mut Request, authn: Authentication, auth: &Auth) -> Option<HeaderValue> {
    let set_cookie = authn.set_cookie.clone();
    request.extensions_mut().insert(authn);
    request.extensions_mut().insert(auth.clone());
    set_cookie
}

impl<S> Finish for AuthService<S> {
    type Inner = Response;
    type Output = Response;

    fn finish(mut response: Response, set_cookie: Option<&HeaderValue>) -> Response {
        append_session_cookie(response.headers_mut(), set_cookie);
        response
    }
}

/// The future of [`AuthService`] when authenticating needed the store.
pub type BoxedAuthFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

/// The response future of [`AuthService`] over the app's service `S`: the core's
/// [`GateFuture`], in which the app's future runs unboxed when the caches admitted the request.
pub type AuthFuture<S> = GateFuture<
    <S as Service<Request>>::Future,
    BoxedAuthFuture<<S as Service<Request>>::Error>,
    AuthService<S>,
>;
