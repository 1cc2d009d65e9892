//! # keystead-axum
//!
//! The axum adapter of `keystead`: a tower layer that resolves the caller once per request,
//! extractors that hand it to handlers, route annotations, and the library's ready-made
//! routes. The adapter translates; every decision (CSRF, cookies, errors, the routes
//! themselves) is the core's.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! use keystead_axum::{AuthExt, CurrentUser, require_permission};
//! use keystead::{Auth, mail::FileMailer, web::AppOrigin};
//! use axum::{Router, routing::get};
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
//! let app = Router::new()
//!     .route("/api/projects", get(projects))
//!     .merge(auth.routes())
//!     .layer(auth.layer().protect("/dashboard"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! Serve with `into_make_service_with_connect_info::<SocketAddr>()`: the client address
//! (rate limits, audit) comes from the connection. Without it the layer and the library's
//! routes refuse every request with 503 `unavailable` (logged at error), rather than let every
//! client share one rate-limit key.
#![forbid(unsafe_code)]

mod extract;
mod layer;
mod routes;

pub use extract::{ActiveOrg, AuthRejection, CurrentUser, OrgMember, Principal, Require};
/// The framework-agnostic crate this adapter wraps (flows, configuration, the model), so that
/// an app needs only this adapter and a store crate.
pub use keystead;
pub use keystead::time;
pub use keystead::{Auth, AuthBuilder, AuthError, ErrorCode, Permission, Role, RolePermissions};
pub use keystead_macros::{require_permission, require_recent_auth, require_role, require_scope};
pub use layer::{AuthFuture, AuthLayer, AuthService, BoxedAuthFuture};

/// `auth.routes()` and `auth.layer()` on an [`Auth`].
pub trait AuthExt {
    /// The library's routes (`/auth/…`, `/orgs…`, `/invitations/…`, `/api/tokens…`,
    /// `/.well-known/jwks.json`) as a router to merge into the app's. Works with any router
    /// state.
    fn routes<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static;

    /// The layer that authenticates every request; add protected path prefixes with
    /// [`AuthLayer::protect`].
    fn layer(&self) -> AuthLayer;
}

impl AuthExt for Auth {
    fn routes<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        routes::router(self.clone())
    }

    fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
    }
}

/// What the route annotations' generated code names. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use keystead::{
        AuthError, ErrorCode, Principal, RecentAuth, Requirement, Role, RolePermissions,
    };
}

/// Converts the core's response into axum's.
pub(crate) fn into_axum(response: http::Response<bytes::Bytes>) -> axum::response::Response {
    response.map(axum::body::Body::from)
}

/// What the message of a request refused for want of `ConnectInfo` says.
const HOW_TO_SERVE: &str = "The server does not pass the client's socket address, so rate \
     limits cannot tell clients apart: serve the app with \
     `axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())`.";

/// The answer to a request without `ConnectInfo<SocketAddr>`: 503 `unavailable` saying how to
/// serve, logged at error ([`keystead::gate::missing_peer_response`]).
pub(crate) fn missing_connect_info() -> axum::response::Response {
    into_axum(keystead::gate::missing_peer_response(HOW_TO_SERVE))
}
