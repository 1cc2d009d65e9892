//! The smallest keystead app on actix-web: the library's routes (sign-up, sign-in, …), one
//! route that needs a signed-in user, on a SQLite file. `DATA_DIR` (default `var`) holds the
//! database and the mails; `BIND` (default `127.0.0.1:3000`) is the address.

use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use keystead_actix::keystead::{mail::FileMailer, web::AppOrigin};
use keystead_actix::{Auth, AuthExt, CurrentUser};
use keystead_sqlite::SqliteStore;

/// The protected route: 401 without a session, the user's email with one.
async fn me(user: CurrentUser) -> String {
    format!("signed in as {}", user.email)
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let data = std::path::PathBuf::from(env("DATA_DIR", "var"));
    let listener = std::net::TcpListener::bind(env("BIND", "127.0.0.1:3000"))?;
    let addr = listener.local_addr()?;
    let store = SqliteStore::open(data.join("actix-minimal.db")).await?;
    let auth = Auth::builder(Arc::new(store), AppOrigin::http_for(addr))
        .mailer(Arc::new(FileMailer::new(data.join("mail"))?))
        .build();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(auth.middleware()) // resolves the caller on every request
            .service(auth.service()) // POST /auth/sign-up, /auth/sign-in, …
            .route("/me", web::get().to(me))
    })
    .listen(listener)?
    .run();
    println!("listening on http://{addr}");
    server.await?;
    Ok(())
}
