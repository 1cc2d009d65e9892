//! The library's routes, registered on an actix app.

use std::net::Ipv4Addr;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use auth_core::{Auth, Authentication};

use crate::{PayloadBody, http_headers, into_actix};

/// The paths the core serves, as actix patterns.
const PATHS: &[&str] = &[
    "/auth/{tail:.*}",
    "/orgs",
    "/orgs/{tail:.*}",
    "/invitations/{tail:.*}",
    "/api/tokens",
    "/api/tokens/{tail:.*}",
    "/.well-known/jwks.json",
];

/// The library's routes: one resource per path prefix, every method, all answered by
/// [`Auth::handle`]. Register with `App::service(auth.service())`; they are plain
/// resources, so the app's own routes beside them keep working.
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthRoutes {
    auth: Auth,
}

impl AuthRoutes {
    /// The routes of `auth`.
    pub fn new(auth: Auth) -> Self {
        Self { auth }
    }
}

impl HttpServiceFactory for AuthRoutes {
    fn register(self, config: &mut AppService) {
        for path in PATHS {
            let auth = self.auth.clone();
            web::resource(*path)
                .route(
                    web::route().to(move |request: HttpRequest, payload: web::Payload| {
                        let auth = auth.clone();
                        async move { handle(&auth, &request, payload).await }
                    }),
                )
                .register(config);
        }
    }
}

/// Converts the request (method, URI, headers, streamed body, the middleware's
/// authentication) for the core; the core routes, checks and answers.
async fn handle(auth: &Auth, request: &HttpRequest, payload: web::Payload) -> HttpResponse {
    let peer = request.peer_addr().map_or_else(
        || {
            tracing::warn!("no peer address: client addresses are unknown");
            Ipv4Addr::UNSPECIFIED.into()
        },
        |addr| addr.ip(),
    );
    let mut builder = http::Request::builder()
        .method(request.method().as_str())
        .uri(request.uri().to_string());
    if let Some(headers) = builder.headers_mut() {
        *headers = http_headers(request.headers());
    }
    if let Some(authn) = request.extensions_mut().remove::<Authentication>() {
        builder = builder.extension(authn);
    }
    match builder.body(PayloadBody::new(payload)) {
        Ok(converted) => into_actix(auth.handle(converted, peer).await),
        Err(err) => {
            tracing::debug!(error = %err, "request not convertible");
            into_actix(auth_core::routes::problem_response(
                &auth_core::AuthError::new(auth_core::ErrorCode::InvalidRequest),
            ))
        }
    }
}
