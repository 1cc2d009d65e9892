//! The library's routes, mounted on an axum router.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::routing::any;
use keystead::Auth;

use crate::{into_axum, missing_connect_info};

/// Every path of the core's route table ([`Auth::route_paths`], under the base path) goes to
/// [`Auth::handle`]; the core routes, checks and answers (405 with `Allow` for a method the
/// path does not have). An app's own routes beside them (`/orgs/{id}/projects`) stay the
/// app's.
pub(crate) fn router<S>(auth: Auth) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let paths = auth.route_paths();
    let handler = any(move |request: Request| {
        let auth = auth.clone();
        async move { handle(&auth, request).await }
    });
    paths.iter().fold(Router::new(), |router, path| {
        router.route(path, handler.clone())
    })
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
