//! The library's routes, registered on an actix app.

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, guard, web};
use keystead::{Auth, Authentication};

use crate::{PayloadBody, http_headers, into_actix};

/// The library's routes: every method on the paths the core serves, all answered by
/// [`Auth::handle`]. Register with `App::service(auth.service())`: a scope guarded by those
/// paths, so the app's own routes beside it keep working.
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
        let auth = self.auth;
        let serves = auth.clone();
        // One scope over the library's paths ([`Auth::is_library_path`]: the core's route
        // table, under its base path).
        web::scope("")
            .guard(guard::fn_guard(move |ctx| {
                serves.is_library_path(ctx.head().uri.path())
            }))
            .default_service(web::to(
                move |request: HttpRequest, payload: web::Payload| {
                    let auth = auth.clone();
                    async move { handle(&auth, &request, payload).await }
                },
            ))
            .register(config);
    }
}

/// Converts the request (method, URI, headers, streamed body, the middleware's
/// authentication) for the core; the core routes, checks and answers.
async fn handle(auth: &Auth, request: &HttpRequest, payload: web::Payload) -> HttpResponse {
    let Some(peer) = request.peer_addr().map(|addr| addr.ip()) else {
        return crate::missing_peer_address();
    };
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
            into_actix(keystead::routes::problem_response(
                &keystead::AuthError::new(keystead::ErrorCode::InvalidRequest),
            ))
        }
    }
}
