//! What the two example apps (`axum-saas`, `actix-saas`) share, so that they differ only in
//! the web framework: configuration from the contract's environment variables, the store
//! picked by `DATABASE_URL`, the [`Auth`] built from both, the HTML pages and their assets,
//! and the app's own small domain (projects and deployments).
#![forbid(unsafe_code)]

mod domain;
mod pages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use domain::{Deployment, Project, Projects};
pub use pages::{Pages, STATIC_FILES, StaticFile};

use auth_core::mail::FileMailer;
use auth_core::web::AppOrigin;
use auth_core::{Auth, AuthStore};

/// The app's settings, from the contract's environment variables.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…` (default `sqlite://var/<app>.db`).
    pub database_url: String,
    /// `BIND` (default `127.0.0.1:3000`; port 0 picks a free port).
    pub bind: SocketAddr,
    /// `APP_ORIGIN`, if set; otherwise `http://` + the bound address.
    pub origin: Option<AppOrigin>,
    /// `AUTH_MAIL_DIR` (default `var/mail`).
    pub mail_dir: PathBuf,
    /// `AUTH_KEYS` (default `var/keys`): API token signing keys.
    pub keys_dir: PathBuf,
}

impl Config {
    /// Reads the environment; `app` names the default SQLite file (`var/<app>.db`).
    ///
    /// # Errors
    /// A message naming the variable that is malformed.
    pub fn from_env(app: &str) -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let database_url = var("DATABASE_URL").unwrap_or_else(|| format!("sqlite://var/{app}.db"));
        let bind = var("BIND")
            .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
            .parse()
            .map_err(|e| format!("BIND: {e}"))?;
        let origin = var("APP_ORIGIN")
            .map(|o| AppOrigin::parse(&o).map_err(|e| format!("APP_ORIGIN: {e}")))
            .transpose()?;
        Ok(Self {
            database_url,
            bind,
            origin,
            mail_dir: var("AUTH_MAIL_DIR").map_or_else(|| "var/mail".into(), PathBuf::from),
            keys_dir: var("AUTH_KEYS").map_or_else(|| "var/keys".into(), PathBuf::from),
        })
    }
}

/// Sets up `tracing` from `RUST_LOG` (default `info`), logging to stderr: stdout carries only
/// the `listening on` line.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Opens the store `url` names, running its migrations: Postgres for `postgres://…`, the
/// embedded SQLite otherwise.
///
/// # Errors
/// A message when the database cannot be opened or migrated.
pub async fn open_store(url: &str) -> Result<Arc<dyn AuthStore>, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = auth_postgres::PostgresStore::connect(url)
            .await
            .map_err(|e| format!("could not open Postgres: {e}"))?;
        Ok(Arc::new(store))
    } else {
        let store = auth_sqlite::SqliteStore::connect(url)
            .await
            .map_err(|e| format!("could not open SQLite at {url}: {e}"))?;
        Ok(Arc::new(store))
    }
}

/// Builds the [`Auth`] of the example apps: the store, the origin, the development mailer.
///
/// # Errors
/// A message when the mail directory cannot be created.
pub fn build_auth(
    config: &Config,
    store: Arc<dyn AuthStore>,
    origin: AppOrigin,
) -> Result<Auth, String> {
    let mailer = FileMailer::new(&config.mail_dir)
        .map_err(|e| format!("AUTH_MAIL_DIR {}: {e}", config.mail_dir.display()))?;
    Ok(Auth::builder(store, origin)
        .mailer(Arc::new(mailer))
        .build())
}
