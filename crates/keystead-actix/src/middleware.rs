//! The middleware: authenticates each request once and enforces what applies to every route.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header;
use actix_web::{Error, HttpMessage};
use keystead::gate::{
    Finish, GateFuture, GateHeader, ProtectedPaths, RequestHeaders, ResponseCookies,
    append_session_cookie,
};
use keystead::{Auth, Authentication, telemetry};

use crate::{actix_header_value, into_actix};

/// Authenticates every request (session cookie or `Authorization: Bearer`) and puts the
/// outcome ([`keystead::Authentication`]) and the [`Auth`] into the request's extensions,
/// where the extractors and guards find them. Also, for every route of the app:
/// - fails closed: when the store cannot say whether a credential holds, 503;
/// - applies the CSRF rule to unsafe methods that carry the session cookie (403
///   `csrf_rejected`); the library's routes apply it themselves, with the login variant;
/// - sends anonymous requests under a [protected prefix](Self::protect) to
///   `/sign-in?next=…` (browsers asking for HTML, 303) or answers 401 (everything else);
/// - adds the refreshed (sliding expiry) or cleared (dead session) cookie to the response;
/// - refuses every request (503 `unavailable`, logged at error) that has no peer address (a
///   Unix socket, a test request without one): without it every client would share one
///   rate-limit key.
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthMiddleware {
    auth: Auth,
    protected: ProtectedPaths,
}

impl AuthMiddleware {
    /// A middleware over `auth`, with no protected prefixes.
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

impl<S, B> Transform<S, ServiceRequest> for AuthMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = AuthMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AuthMiddlewareService {
            service: Rc::new(service),
            auth: self.auth.clone(),
            protected: self.protected.clone(),
        }))
    }
}

/// The service of [`AuthMiddleware`].
#[derive(Debug)]
pub struct AuthMiddlewareService<S> {
    service: Rc<S>,
    auth: Auth,
    protected: ProtectedPaths,
}

impl<S, B> Service<ServiceRequest> for AuthMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = AuthFuture<S, B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        // Without the socket peer every client would share one rate-limit key: refuse (fail
        // closed, loudly) rather than invent an address.
        if request.peer_addr().is_none() {
            return GateFuture::answered(
                request
                    .into_response(crate::missing_peer_address())
                    .map_into_right_body(),
            );
        }
        // actix parsed the method already; should it not convert, treat it as unsafe.
        let method = http::Method::from_bytes(request.method().as_str().as_bytes())
            .unwrap_or(http::Method::POST);
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.path(), |pq| pq.as_str());
        let span = telemetry::request_span(&method, path_and_query);
        let future = {
            let _entered = span.enter();
            self.admit_and_call(request, method, &span)
        };
        future.in_span(span)
    }
}

impl<S, B> AuthMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    fn admit_and_call(
        &self,
        request: ServiceRequest,
        method: http::Method,
        span: &tracing::Span,
    ) -> AuthFuture<S, B> {
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.path(), |pq| pq.as_str());
        // The hot path: the caches answer, so the app is called at once, with no boxed future.
        let admitted = self.auth.admit_cached(
            &method,
            path_and_query,
            &ActixHeaders(request.headers()),
            &self.protected,
        );
        match admitted {
            Some(Ok(authn)) => {
                telemetry::record_authentication(span, &authn);
                let set_cookie = authenticated(&request, authn, &self.auth);
                GateFuture::inner(self.service.call(request), set_cookie)
            }
            Some(Err(response)) => GateFuture::answered(
                request
                    .into_response(into_actix(response))
                    .map_into_right_body(),
            ),
            None => {
                let service = self.service.clone();
                let auth = self.auth.clone();
                let protected = self.protected.clone();
                let span = span.clone();
                GateFuture::boxed(Box::pin(async move {
                    let path_and_query = request
                        .uri()
                        .path_and_query()
                        .map_or_else(|| request.path(), |pq| pq.as_str());
                    let headers = ActixHeaders(request.headers());
                    let admitted = auth
                        .admit(&method, path_and_query, &headers, &protected)
                        .await;
                    let authn = match admitted {
                        Ok(authn) => authn,
                        Err(response) => {
                            return Ok(request
                                .into_response(into_actix(response))
                                .map_into_right_body());
                        }
                    };
                    telemetry::record_authentication(&span, &authn);
                    let set_cookie = authenticated(&request, authn, &auth);
                    let response = service.call(request).await?;
                    Ok(Self::finish(response, set_cookie.as_ref()))
                }))
            }
        }
    }
}

/// actix-web's request headers as the core reads them: in place, with no copy into `http` 1.x
/// types.
struct ActixHeaders<'a>(&'a header::HeaderMap);

/// `Sec-Fetch-Site`, which actix's `http` 0.2 has no constant for.
const SEC_FETCH_SITE: header::HeaderName = header::HeaderName::from_static("sec-fetch-site");

const fn actix_name(name: GateHeader) -> header::HeaderName {
    match name {
        GateHeader::Authorization => header::AUTHORIZATION,
        GateHeader::Cookie => header::COOKIE,
        GateHeader::Origin => header::ORIGIN,
        GateHeader::Referer => header::REFERER,
        GateHeader::SecFetchSite => SEC_FETCH_SITE,
        GateHeader::Accept => header::ACCEPT,
    }
}

impl RequestHeaders for ActixHeaders<'_> {
    fn first(&self, name: GateHeader) -> Option<&[u8]> {
        self.0
            .get(actix_name(name))
            .map(header::HeaderValue::as_bytes)
    }

    fn all(&self, name: GateHeader) -> impl Iterator<Item = &[u8]> {
        self.0
            .get_all(actix_name(name))
            .map(header::HeaderValue::as_bytes)
    }
}

/// Puts what the extractors and guards need into the request; returns the cookie for the
/// response.
fn authenticated(
    request: &ServiceRequest,
    authn: Authentication,
    auth: &Auth,
) -> Option<http::HeaderValue> {
    let set_cookie = authn.set_cookie.clone();
    let mut extensions = request.extensions_mut();
    extensions.insert(authn);
    extensions.insert(auth.clone());
    set_cookie
}

/// actix-web's response headers as the core's cookie rule reads and adds them.
struct ActixResponseHeaders<'a>(&'a mut header::HeaderMap);

impl ResponseCookies for ActixResponseHeaders<'_> {
    fn set_cookies(&self) -> impl Iterator<Item = &[u8]> {
        self.0
            .get_all(header::SET_COOKIE)
            .map(header::HeaderValue::as_bytes)
    }

    fn append_set_cookie(&mut self, value: &http::HeaderValue) {
        if let Some(value) = actix_header_value(value) {
            self.0.append(header::SET_COOKIE, value);
        }
    }
}

impl<S, B> Finish for AuthMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
{
    type Inner = ServiceResponse<B>;
    type Output = ServiceResponse<EitherBody<B>>;

    fn finish(
        mut response: ServiceResponse<B>,
        set_cookie: Option<&http::HeaderValue>,
    ) -> ServiceResponse<EitherBody<B>> {
        append_session_cookie(
            &mut ActixResponseHeaders(response.headers_mut()),
            set_cookie,
        );
        response.map_into_left_body()
    }
}

/// The future of [`AuthMiddlewareService`] when authenticating needed the store.
pub type BoxedAuthFuture<B> =
    Pin<Box<dyn Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>>>>;

/// The response future of [`AuthMiddlewareService`] over the app's service `S` with body `B`:
/// the core's [`GateFuture`], in which the app's future runs unboxed when the caches admitted
/// the request.
pub type AuthFuture<S, B> = GateFuture<
    <S as Service<ServiceRequest>>::Future,
    BoxedAuthFuture<B>,
    AuthMiddlewareService<S>,
>;
