//! The smallest keystead app on axum: the library's routes (sign-up, sign-in, …), one route
//! that needs a signed-in user, on a SQLite file. `DATA_DIR` (default `var`) holds the
//! database and the mails; `BIND` (default `127.0.0.1:3000`) is the address.

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, routing::get};
use keystead_axum::keystead::{mail::FileMailer, web::AppOrigin};
use keystead_axum::{Auth, AuthExt, CurrentUser};
use keystead_sqlite::SqliteStore;

/// The protected route: 401 without a session, the user's email with one.
async fn me(user: CurrentUser) -> String {
    format!("signed in as {}", user.email)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let data = std::path::PathBuf::from(env("DATA_DIR", "var"));
    let listener = tokio::net::TcpListener::bind(env("BIND", "127.0.0.1:3000")).await?;
    let addr = listener.local_addr()?;
    let store = SqliteStore::open(data.join("axum-minimal.db")).await?;
    let auth = Auth::builder(Arc::new(store), AppOrigin::http_for(addr))
        .mailer(Arc::new(FileMailer::new(data.join("mail"))?))
        .build();
    let app = Router::new()
        .route("/me", get(me))
        .merge(auth.routes()) // POST /auth/sign-up, /auth/sign-in, …
        .layer(auth.layer()); // resolves the caller on every request
    println!("listening on http://{addr}");
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
