//! The server that `benches/load.sh` drives (docs/benchmarks.md): the example apps' API route
//! `GET /api/projects` behind the auth layer, with the library's routes (sign-up, organizations,
//! API tokens) that the script sets its user up with, and beside it the baseline
//! `GET /bench/projects`: the same handler work without the auth layer, routed the same way.
//! The difference between the two is the auth layer's cost.
//!
//! Two binaries, one per adapter: `load-target-axum` and `load-target-actix`. Both read the
//! example apps' settings (`DATABASE_URL`, `BIND`, `AUTH_MAIL_DIR`, `AUTH_KEYS`, …, through
//! `saas_common::Config`) and print `listening on http://ADDR` once they accept connections.

use keystead_axum::keystead::{Auth, OrgId};
use saas_common::{Config, Projects};

/// What both binaries share: the auth, on the store `DATABASE_URL` names, and the demo data.
#[derive(Clone, Debug)]
pub struct Target {
    /// The auth, built as the example apps build it.
    pub auth: Auth,
    /// The demo projects the API lists.
    pub projects: Projects,
    /// The address the server listens on.
    pub addr: std::net::SocketAddr,
}

/// Reads the settings, opens the store and builds the auth; returns the bound listener too.
pub async fn setup(name: &str) -> Result<(Target, std::net::TcpListener), String> {
    let config = Config::from_env(name)?;
    let backend = saas_common::open_store(&config.database_url).await?;
    let listener = std::net::TcpListener::bind(config.bind)
        .map_err(|e| format!("BIND {}: {e}", config.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let origin = config
        .origin
        .clone()
        .unwrap_or_else(|| keystead_axum::keystead::web::AppOrigin::http_for(addr));
    let auth = saas_common::build_auth(&config, backend, origin).await?;
    Ok((
        Target {
            auth,
            projects: Projects::default(),
            addr,
        },
        listener,
    ))
}

/// The organization whose projects the baseline lists: one fixed id, so the baseline does the
/// same lookup as the authenticated route without needing a principal.
pub fn demo_org() -> OrgId {
    static DEMO_ORG: std::sync::OnceLock<OrgId> = std::sync::OnceLock::new();
    *DEMO_ORG.get_or_init(OrgId::new)
}
