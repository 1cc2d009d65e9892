//! The tower layer: authenticates each request once and enforces what applies to every route.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use auth_core::Auth;
use auth_core::gate::{ProtectedPaths, with_refreshed_cookie};
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use tower::{Layer, Service};

use crate::into_axum;

/// Authenticates every request (session cookie or `Authorization: Bearer`) and puts the
/// outcome ([`auth_core::Authentication`]) into the request's extensions, where the
/// extractors find it. Also, for every route of the app:
/// - fails closed: when the store cannot say whether a credential holds, 503;
/// - applies the CSRF rule to unsafe methods that carry the session cookie (403
///   `csrf_rejected`); the library's routes apply it themselves, with the login variant;
/// - sends anonymous requests under a [protected prefix](Self::protect) to
///   `/sign-in?next=…` (browsers asking for HTML, 303) or answers 401 (everything else);
/// - adds the refreshed (sliding expiry) or cleared (dead session) cookie to the response.
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
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let protected = self.protected.clone();
        Box::pin(async move {
            let path_and_query = request
                .uri()
                .path_and_query()
                .map_or_else(|| request.uri().path(), |pq| pq.as_str());
            let authn = match auth
                .admit(
                    request.method(),
                    path_and_query,
                    request.headers(),
                    &protected,
                )
                .await
            {
                Ok(authn) => authn,
                Err(response) => return Ok(into_axum(response)),
            };
            if request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_none()
            {
                tracing::warn!(
                    "no ConnectInfo<SocketAddr>: serve with into_make_service_with_connect_info; \
                     client addresses are unknown"
                );
                request
                    .extensions_mut()
                    .insert(ConnectInfo(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))));
            }
            let set_cookie = authn.set_cookie.clone();
            request.extensions_mut().insert(authn);
            request.extensions_mut().insert(auth);
            let mut response = inner.call(request).await?;
            with_refreshed_cookie(response.headers_mut(), set_cookie);
            Ok(response)
        })
    }
}
