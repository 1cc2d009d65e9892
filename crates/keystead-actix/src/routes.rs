//! The library's routes, registered on an actix app.

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, guard, web};
use keystead::{Auth, Authentication};

use crate::{PayloadBody, http_headers, into_actix};

/// The path prefixes the core serves. `true`: the prefix itself is a route (`/orgs`);
/// `false`: only paths under it (`/auth/…`). The same paths as keystead-axum's `auth.routes()`.
const PREFIXES: &[(&str, bool)] = &[
    ("/auth", false),
    ("/orgs", true),
    ("/invitations", false),
    ("/api/tokens", true),
];

/// The core's one path outside those prefixes.
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Whether the core serves `path`. A few string comparisons: actix matches every request of
/// the app against the library's routes before its own, and regular-expression patterns
/// (`/auth/{tail:.*}`) cost more there than authenticating the request.
fn serves(path: &str) -> bool {
    path == JWKS_PATH
        || PREFIXES.iter().any(|&(prefix, exact)| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/') || (exact && rest.is_empty()))
        })
}

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
        // One scope over the library's paths: its guard is a few string comparisons, so the
        // app's own routes behind it cost no pattern matching.
        web::scope("")
            .guard(guard::fn_guard(|ctx| serves(ctx.head().uri.path())))
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

#[cfg(test)]
mod tests {
    use super::serves;

    #[test]
    fn serves_the_paths_of_the_axum_adapter() {
        for path in [
            "/auth/sign-in",
            "/auth/",
            "/orgs",
            "/orgs/01",
            "/invitations/accept",
            "/api/tokens",
            "/api/tokens/01",
            "/.well-known/jwks.json",
        ] {
            assert!(serves(path), "{path}");
        }
        for path in [
            "/auth",
            "/authx",
            "/orgsx",
            "/invitations",
            "/api/tokensx",
            "/api/projects",
            "/",
            "/.well-known/jwks.jsonx",
        ] {
            assert!(!serves(path), "{path}");
        }
    }
}
