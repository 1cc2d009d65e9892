//! The library's routes, mounted on an axum router.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::routing::any;
use keystead::Auth;

use crate::{into_axum, missing_connect_info};

/// Every path the core serves goes to [`Auth::handle`]; the core routes, checks and answers.
pub(crate) fn router<S>(auth: Auth) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let handler = any(move |request: Request| {
        let auth = auth.clone();
        async move { handle(&auth, request).await }
    });
    Router::new()
        .route("/auth/{*rest}", handler.clone())
        .route("/orgs", handler.clone())
        .route("/orgs/{*rest}", handler.clone())
        .route("/invitations/{*rest}", handler.clone())
        .route("/api/tokens", handler.clone())
        .route("/api/tokens/{*rest}", handler.clone())
        .route("/.well-known/jwks.json", handler)
}

async fn handle(auth: &Auth, request: Request) -> Response {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return missing_connect_info();
    };
    into_axum(auth.handle(request, peer).await)
}
