//! # keystead-actix
//!
//! The actix-web adapter of `keystead`: a middleware that resolves the caller once per
//! request, extractors that hand it to handlers, guards, route annotations, and the library's
//! ready-made routes. The adapter translates; every decision (CSRF, cookies, errors, the
//! routes themselves) is the core's.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use actix_web::{App, HttpServer, web};
//! use keystead_actix::{AuthExt, CurrentUser, require_permission};
//! use keystead::{Auth, mail::FileMailer, web::AppOrigin};
//!
//! #[require_permission("read:projects")]
//! async fn projects(user: CurrentUser) -> String {
//!     format!("projects visible to {}", user.email)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = keystead_sqlite::SqliteStore::open("var/app.db").await?;
//! let auth = Auth::builder(Arc::new(store), AppOrigin::parse("http://127.0.0.1:3000")?)
//!     .mailer(Arc::new(FileMailer::new("var/mail")?))
//!     .build();
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(auth.middleware().protect("/dashboard"))
//!         .service(auth.service())
//!         .route("/api/projects", web::get().to(projects))
//! })
//! .bind("127.0.0.1:3000")?
//! .run()
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Differences from `keystead-axum` that come from actix itself:
//! - `Option<CurrentUser>` (and `Option<Principal>`, …) is actix's own `Option<T>` extractor,
//!   which turns *every* error of the inner extractor into `None`: no principal, but also a
//!   missing middleware (logged as an error). Either way the handler sees an anonymous caller,
//!   never more rights than it has.
//! - [`guard`]s choose between routes; a guard that does not match makes actix look further
//!   and finally answer 405 or 404, never 401/403. To refuse a request, use the extractors or
//!   the annotations.
#![forbid(unsafe_code)]

mod body;
mod extract;
pub mod guard;
mod middleware;
mod routes;

pub use body::{PayloadBody, read_json};
pub use extract::{ActiveOrg, AuthRejection, CurrentUser, OrgMember, Principal, Require};
/// The framework-agnostic crate this adapter wraps (flows, configuration, the model), so that
/// an app needs only this adapter and a store crate.
pub use keystead;
pub use keystead::time;
pub use keystead::{Auth, AuthBuilder, AuthError, ErrorCode, Permission, Role, RolePermissions};
pub use keystead_macros::{require_permission, require_recent_auth, require_role, require_scope};
pub use middleware::{AuthFuture, AuthMiddleware, AuthMiddlewareService, BoxedAuthFuture};
pub use routes::AuthRoutes;

use actix_web::HttpResponse;

/// `auth.middleware()` and `auth.service()` on an [`Auth`].
pub trait AuthExt {
    /// The library's routes (`/auth/…`, `/orgs…`, `/invitations/…`, `/api/tokens…`,
    /// `/.well-known/jwks.json`), to register with `App::service`.
    fn service(&self) -> AuthRoutes;

    /// The middleware that authenticates every request; add protected path prefixes with
    /// [`AuthMiddleware::protect`].
    fn middleware(&self) -> AuthMiddleware;
}

impl AuthExt for Auth {
    fn service(&self) -> AuthRoutes {
        AuthRoutes::new(self.clone())
    }

    fn middleware(&self) -> AuthMiddleware {
        AuthMiddleware::new(self.clone())
    }
}

/// What the route annotations' generated code names. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use keystead::{
        AuthError, ErrorCode, Principal, RecentAuth, Requirement, Role, RolePermissions,
    };
}

/// actix's headers (http 0.2 types) as the `http` 1.x map the core takes.
pub(crate) fn http_headers(headers: &actix_web::http::header::HeaderMap) -> http::HeaderMap {
    let mut converted = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            converted.append(name, value);
        }
    }
    converted
}

/// A header value of the core as actix's.
pub(crate) fn actix_header_value(
    value: &http::HeaderValue,
) -> Option<actix_web::http::header::HeaderValue> {
    actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// Converts the core's response into actix's.
pub(crate) fn into_actix(response: http::Response<bytes::Bytes>) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut converted = HttpResponse::with_body(status, body);
    for (name, value) in &parts.headers {
        if let (Ok(name), Some(value)) = (
            actix_web::http::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            actix_header_value(value),
        ) {
            converted.headers_mut().append(name, value);
        }
    }
    converted.map_into_boxed_body()
}

/// What the message of a request refused for want of a peer address says.
const NO_PEER_ADDRESS: &str = "The request has no peer address, so rate limits cannot tell \
     clients apart: serve the app with `HttpServer` over TCP (it gives each connection's peer \
     address); in tests, set one with `TestRequest::peer_addr`.";

/// The answer to a request without a peer address: 503 `unavailable` saying why, logged at
/// error ([`keystead::gate::missing_peer_response`]).
pub(crate) fn missing_peer_address() -> HttpResponse {
    into_actix(keystead::gate::missing_peer_response(NO_PEER_ADDRESS))
}
