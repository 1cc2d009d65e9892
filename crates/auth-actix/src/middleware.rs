//! The middleware: authenticates each request once and enforces what applies to every route.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header;
use auth_core::Auth;
use auth_core::web::is_safe_method;

use crate::{actix_header_value, http_headers, into_actix};

/// Authenticates every request (session cookie or `Authorization: Bearer`) and puts the
/// outcome ([`auth_core::Authentication`]) and the [`Auth`] into the request's extensions,
/// where the extractors and guards find them. Also, for every route of the app:
/// - fails closed: when the store cannot say whether a credential holds, 503;
/// - applies the CSRF rule to unsafe methods that carry the session cookie (403
///   `csrf_rejected`); the library's routes apply it themselves, with the login variant;
/// - sends anonymous requests under a [protected prefix](Self::protect) to
///   `/sign-in?next=…` (browsers asking for HTML, 303) or answers 401 (everything else);
/// - adds the refreshed (sliding expiry) or cleared (dead session) cookie to the response.
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthMiddleware {
    auth: Auth,
    protected: Arc<Vec<String>>,
}

impl AuthMiddleware {
    /// A middleware over `auth`, with no protected prefixes.
    pub fn new(auth: Auth) -> Self {
        Self {
            auth,
            protected: Arc::new(Vec::new()),
        }
    }

    /// Requires a signed-in user for `prefix` and every path under it (`/dashboard` covers
    /// `/dashboard` and `/dashboard/…`, not `/dashboards`).
    pub fn protect(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into().trim_end_matches('/').to_owned();
        Arc::make_mut(&mut self.protected).push(prefix);
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
    protected: Arc<Vec<String>>,
}

fn is_protected(prefixes: &[String], path: &str) -> bool {
    prefixes.iter().any(|prefix| {
        path.strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

impl<S, B> Service<ServiceRequest> for AuthMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let auth = self.auth.clone();
        let protected = self.protected.clone();
        Box::pin(async move {
            let headers = http_headers(request.headers());
            let authn = auth.authenticate(&headers).await;
            if let Some(fatal) = authn.fatal() {
                let response = into_actix(auth_core::routes::problem_response(fatal));
                return Ok(request.into_response(response).map_into_right_body());
            }
            let path = request.path();
            // actix parsed the method already; should it not convert, treat it as unsafe.
            let method = http::Method::from_bytes(request.method().as_str().as_bytes())
                .unwrap_or(http::Method::POST);
            if !Auth::is_library_path(path)
                && !is_safe_method(method.as_str())
                && let Err(err) = auth.check_csrf(&method, &headers, false)
            {
                let response = into_actix(auth_core::routes::problem_response(&err));
                return Ok(request.into_response(response).map_into_right_body());
            }
            if authn.principal.is_none() && is_protected(&protected, path) {
                let path_and_query = request
                    .uri()
                    .path_and_query()
                    .map_or(path, |pq| pq.as_str());
                let mut response = into_actix(auth.unauthenticated_response(
                    &method,
                    path_and_query,
                    &headers,
                    authn.failure.as_ref(),
                ));
                if let Some(cookie) = authn.set_cookie.as_ref().and_then(actix_header_value) {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                return Ok(request.into_response(response).map_into_right_body());
            }
            let set_cookie = authn.set_cookie.as_ref().and_then(actix_header_value);
            request.extensions_mut().insert(authn);
            request.extensions_mut().insert(auth);
            let mut response = service.call(request).await?;
            if let Some(cookie) = set_cookie
                && !response.headers().contains_key(header::SET_COOKIE)
            {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response.map_into_left_body())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_protected;

    #[test]
    fn prefixes_match_whole_segments() {
        let prefixes = vec!["/dashboard".to_owned()];
        assert!(is_protected(&prefixes, "/dashboard"));
        assert!(is_protected(&prefixes, "/dashboard/tokens"));
        assert!(!is_protected(&prefixes, "/dashboards"));
        assert!(!is_protected(&prefixes, "/"));
    }
}
