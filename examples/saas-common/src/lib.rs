//! What the two example apps (`axum-saas`, `actix-saas`) share, so that they differ only in
//! the web framework: configuration from the contract's environment variables, the store
//! picked by `DATABASE_URL`, the [`Auth`] built from both, the HTML pages and their assets,
//! and the app's own small domain (projects and deployments).
#![forbid(unsafe_code)]

mod audit;
mod domain;
mod members;
mod openapi;
mod pages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use audit::{audit_page_context, security_page_context};
pub use domain::{Deployment, Project, Projects};
pub use members::{accept_invitation_context, members_page_context};
pub use openapi::openapi_json;
pub use pages::{Pages, STATIC_FILES, StaticFile};

use keystead::mail::FileMailer;
use keystead::tokens::{ChangeFeed, DirKeyStore, KeyAlgorithm, KeyRing, TokenConfig};
use keystead::web::{AppOrigin, ClientIpPolicy, ForwardedHeader};
use keystead::{Auth, AuthStore, SystemClock};
use metrics_exporter_prometheus::PrometheusBuilder;
pub use metrics_exporter_prometheus::PrometheusHandle;

/// The app's settings, from the contract's environment variables.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…` (default `sqlite://var/<app>.db`).
    pub database_url: String,
    /// `BIND` (default `127.0.0.1:3000`; port 0 picks a free port).
    pub bind: SocketAddr,
    /// `APP_ORIGIN`, if set; otherwise `http://` + the bound address.
    pub origin: Option<AppOrigin>,
    /// `METRICS_BIND`, if set: the address of a second listener that serves only
    /// `GET /metrics` (Prometheus), kept off the public listener. Port 0 picks a free port;
    /// the app prints `metrics on http://ADDR`.
    pub metrics_bind: Option<SocketAddr>,
    /// `AUTH_MAIL_DIR` (default `var/mail`).
    pub mail_dir: PathBuf,
    /// `AUTH_KEYS` (default `var/keys`): API token signing keys.
    pub keys_dir: PathBuf,
    /// `GOOGLE_CLIENT_ID`, `GOOGLE_CLIENT_SECRET`, `GOOGLE_ISSUER`: the `google` provider,
    /// when the id and secret are set.
    pub google: Option<ProviderConfig>,
    /// `OIDC_ISSUER`, `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET`: the generic `oidc` provider,
    /// when all three are set.
    pub oidc: Option<ProviderConfig>,
    /// `TRUSTED_PROXIES` (addresses and CIDR blocks, comma-separated; default none) and
    /// `TRUSTED_PROXY_HEADER` (`x-forwarded-for`, the default, or `forwarded`): the reverse
    /// proxies whose forwarded client address the rate limits and the audit log use.
    pub trusted_proxies: ClientIpPolicy,
    /// `OIDC_EMAIL_LINKING`: `never` (default) or `verified`: whether a sign-in with the
    /// `oidc` provider links to the existing account with the same, provider-verified, email.
    pub oidc_email_linking: keystead::oauth::EmailLinking,
    /// `AUDIT_RETENTION_DAYS`: how many days audit events are kept (a whole number from 1;
    /// unset or empty: forever); older ones are deleted by the library's maintenance sweep.
    pub audit_retention_days: Option<u32>,
    /// `HANDOFF_ISSUER`, `HANDOFF_JWKS_URL`, `HANDOFF_UNTIL`, `HANDOFF_AUTHORIZED_PARTIES`,
    /// `HANDOFF_COOKIE`: the hand-off from the old provider (Clerk), when the issuer is set.
    pub handoff: Option<HandoffConfig>,
    /// `AUTH_PASSWORD_CONCURRENCY`: how many password hashes and verifications may run at once
    /// (a positive number; default the library's, one per CPU the process may run on). The
    /// line of callers waiting for one is 16 per permit; past it sign-ins and sign-ups are
    /// shed with 503 `unavailable`. Each hash in flight holds 19 MiB.
    pub password_concurrency: Option<usize>,
    /// `MFA_ENCRYPTION_KEY`: the key (32 bytes, base64) that seals TOTP secrets and keys the
    /// recovery codes' hashes. Unset: `mfa.key` in `AUTH_KEYS`, made on first start and kept
    /// (for development; in production give the key from a secrets manager, outside the
    /// database and its backups).
    pub mfa_key: Option<keystead::mfa::MfaKey>,
    /// `AUTH_STEP_UP_MAX_AGE_SECS`: how old a session's authentication may be on the step-up
    /// routes (changing the password, managing second factors, creating API tokens, deleting
    /// an organization…), in seconds (default 600).
    pub step_up_max_age_secs: Option<u32>,
}

/// The hand-off from the old provider: who issued its session tokens, where its keys are, and
/// until when its sessions are swapped for ours (see `keystead::handoff`).
#[derive(Debug, Clone)]
pub struct HandoffConfig {
    /// `HANDOFF_ISSUER`: the `iss` of the old provider's session tokens (Clerk: the Frontend
    /// API URL, `https://clerk.example.com`).
    pub issuer: String,
    /// `HANDOFF_JWKS_URL`: its JWKS, fetched once at start.
    pub jwks_url: String,
    /// `HANDOFF_AUTHORIZED_PARTIES`: the origins accepted in `azp`, comma-separated (default:
    /// the app's origin, where Clerk's frontend ran and so what its tokens name).
    pub authorized_parties: Vec<String>,
    /// `HANDOFF_UNTIL` (RFC 3339): the end of the window; old sessions are ignored after it.
    pub until: keystead::time::OffsetDateTime,
    /// `HANDOFF_COOKIE` (default `__session`, Clerk's): the cookie that holds the old
    /// provider's session token.
    pub cookie: String,
}

impl HandoffConfig {
    /// Reads the `HANDOFF_*` variables through `var`: `None` when none is set.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let issuer = var("HANDOFF_ISSUER");
        let jwks_url = var("HANDOFF_JWKS_URL");
        let until = var("HANDOFF_UNTIL");
        let parties = var("HANDOFF_AUTHORIZED_PARTIES");
        let cookie = var("HANDOFF_COOKIE");
        let Some(issuer) = issuer else {
            if jwks_url.is_some() || until.is_some() || parties.is_some() || cookie.is_some() {
                return Err(
                    "HANDOFF_JWKS_URL, HANDOFF_UNTIL, HANDOFF_AUTHORIZED_PARTIES and \
                            HANDOFF_COOKIE need HANDOFF_ISSUER: set it, or none of them"
                        .into(),
                );
            }
            return Ok(None);
        };
        let (Some(jwks_url), Some(until)) = (jwks_url, until) else {
            return Err(
                "HANDOFF_ISSUER, HANDOFF_JWKS_URL and HANDOFF_UNTIL: set all three or none".into(),
            );
        };
        if !(jwks_url.starts_with("https://") || jwks_url.starts_with("http://")) {
            return Err(format!(
                "HANDOFF_JWKS_URL: {jwks_url:?} is not an http(s) URL"
            ));
        }
        let until = keystead::time::OffsetDateTime::parse(
            until.trim(),
            &keystead::time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| format!("HANDOFF_UNTIL: {until:?} is not an RFC 3339 time ({e})"))?;
        let authorized_parties = parties
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        let cookie = cookie.map_or_else(
            || keystead::handoff::DEFAULT_HANDOFF_COOKIE.to_owned(),
            |c| c.trim().to_owned(),
        );
        if !cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!("HANDOFF_COOKIE: {cookie:?} is not a cookie name"));
        }
        Ok(Some(Self {
            issuer: issuer.trim().to_owned(),
            jwks_url,
            authorized_parties,
            until,
            cookie,
        }))
    }

    /// Fetches the JWKS and makes the hand-off; `azp` must be one of the authorized parties,
    /// or the app's `origin` when none are set.
    async fn session_handoff(
        &self,
        origin: &AppOrigin,
    ) -> Result<keystead::handoff::SessionHandoff, String> {
        let fetch = async {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?
                .get(&self.jwks_url)
                .send()
                .await?
                .error_for_status()?
                .json::<keystead::handoff::JwkSet>()
                .await
        };
        let jwks = fetch
            .await
            .map_err(|e| format!("HANDOFF_JWKS_URL {}: {e}", self.jwks_url))?;
        let handoff = keystead::handoff::SessionHandoff::new(
            &self.issuer,
            jwks,
            if self.authorized_parties.is_empty() {
                vec![origin.to_string()]
            } else {
                self.authorized_parties.clone()
            },
            self.until,
        )
        .cookie_name(&self.cookie);
        if handoff.key_count() == 0 {
            return Err(format!(
                "HANDOFF_JWKS_URL {}: no RS256 or ES256 key with a kid",
                self.jwks_url
            ));
        }
        Ok(handoff)
    }
}

/// A provider's issuer and the client registered there.
#[derive(Clone)]
pub struct ProviderConfig {
    /// The issuer URL.
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
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
        let google = match (var("GOOGLE_CLIENT_ID"), var("GOOGLE_CLIENT_SECRET")) {
            (Some(client_id), Some(client_secret)) => Some(ProviderConfig {
                issuer: var("GOOGLE_ISSUER")
                    .unwrap_or_else(|| keystead_oidc::GOOGLE_ISSUER.to_owned()),
                client_id,
                client_secret,
            }),
            (None, None) => None,
            _ => {
                return Err(
                    "GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET: set both or neither".into(),
                );
            }
        };
        let oidc = match (
            var("OIDC_ISSUER"),
            var("OIDC_CLIENT_ID"),
            var("OIDC_CLIENT_SECRET"),
        ) {
            (Some(issuer), Some(client_id), Some(client_secret)) => Some(ProviderConfig {
                issuer,
                client_id,
                client_secret,
            }),
            (None, None, None) => None,
            _ => {
                return Err(
                    "OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET: set all three or none"
                        .into(),
                );
            }
        };
        let header = var("TRUSTED_PROXY_HEADER")
            .map(|h| h.parse::<ForwardedHeader>())
            .transpose()
            .map_err(|e| format!("TRUSTED_PROXY_HEADER: {e}"))?
            .unwrap_or_default();
        let trusted_proxies =
            ClientIpPolicy::from_config(&var("TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|e| format!("TRUSTED_PROXIES: {e}"))?
                .with_header(header);
        let oidc_email_linking = match var("OIDC_EMAIL_LINKING").as_deref() {
            None | Some("never") => keystead::oauth::EmailLinking::Never,
            Some("verified") => keystead::oauth::EmailLinking::VerifiedEmail,
            Some(other) => {
                return Err(format!(
                    "OIDC_EMAIL_LINKING: {other:?} is neither `never` nor `verified`"
                ));
            }
        };
        let audit_retention_days = var("AUDIT_RETENTION_DAYS")
            .map(|days| {
                days.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=36_500).contains(d))
                    .ok_or_else(|| {
                        format!(
                            "AUDIT_RETENTION_DAYS: {days:?} is not a whole number of days \
                             from 1 to 36500 (unset keeps events forever)"
                        )
                    })
            })
            .transpose()?;
        let handoff = HandoffConfig::from_vars(var)?;
        let metrics_bind = var("METRICS_BIND")
            .map(|b| b.parse().map_err(|e| format!("METRICS_BIND: {e}")))
            .transpose()?;
        let password_concurrency = parse_password_concurrency(var("AUTH_PASSWORD_CONCURRENCY"))?;
        let mfa_key = var("MFA_ENCRYPTION_KEY")
            .map(|k| {
                keystead::mfa::MfaKey::from_base64(&k)
                    .map_err(|e| format!("MFA_ENCRYPTION_KEY: {e}"))
            })
            .transpose()?;
        let step_up_max_age_secs = var("AUTH_STEP_UP_MAX_AGE_SECS")
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|s| (1..=86_400).contains(s))
                    .ok_or_else(|| {
                        format!("AUTH_STEP_UP_MAX_AGE_SECS: {v:?} is not a number of seconds from 1 to 86400")
                    })
            })
            .transpose()?;
        Ok(Self {
            mfa_key,
            step_up_max_age_secs,
            metrics_bind,
            audit_retention_days,
            handoff,
            password_concurrency,
            trusted_proxies,
            database_url,
            bind,
            origin,
            mail_dir: var("AUTH_MAIL_DIR").map_or_else(|| "var/mail".into(), PathBuf::from),
            keys_dir: var("AUTH_KEYS").map_or_else(|| "var/keys".into(), PathBuf::from),
            google,
            oidc,
            oidc_email_linking,
        })
    }
}

/// `AUTH_PASSWORD_CONCURRENCY`: unset, or a positive number the library accepts as its bound.
fn parse_password_concurrency(value: Option<String>) -> Result<Option<usize>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| {
            keystead::password::PasswordConfig::default()
                .max_concurrent(*n)
                .is_ok()
        })
        .map(Some)
        .ok_or_else(|| {
            format!("AUTH_PASSWORD_CONCURRENCY: expected a positive number, got {value:?}")
        })
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

/// The Prometheus recorder of `GET /metrics`, installed as the process's `metrics` recorder
/// (before the `Auth` is built, so that no event is missed). Its histograms are trimmed every
/// [`EXPORT_INTERVAL`](keystead::telemetry::EXPORT_INTERVAL) by a task on the current Tokio
/// runtime.
///
/// # Errors
/// When a recorder is installed already.
pub fn install_metrics() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("METRICS_BIND: could not install the metrics recorder: {e}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(keystead::telemetry::EXPORT_INTERVAL);
        loop {
            ticker.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// `GET /metrics` (on the `METRICS_BIND` listener only): the Prometheus text format, with the
/// library's counts brought up to date first.
#[must_use]
pub fn metrics_body(auth: &Auth, handle: &PrometheusHandle) -> String {
    auth.export_metrics();
    handle.render()
}

/// The content type of [`metrics_body`]: Prometheus's text format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The store, and the change feed that goes with it.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The store.
    pub store: Arc<dyn AuthStore>,
    /// `LISTEN`/`NOTIFY` on Postgres (several instances may share the database); `None` for
    /// SQLite, whose one instance uses the in-process feed.
    pub feed: Option<Arc<dyn ChangeFeed>>,
}

/// Opens the store `url` names, running its migrations: Postgres for `postgres://…` (with its
/// change feed), the embedded SQLite otherwise.
///
/// # Errors
/// A message when the database cannot be opened or migrated, or `AUTH_DB_SCHEMA` /
/// `AUTH_DB_PREFIX` is malformed.
///
/// The library's tables go into the Postgres schema `AUTH_DB_SCHEMA` (default `auth`), or
/// get the SQLite table prefix `AUTH_DB_PREFIX` (default `auth_`).
pub async fn open_store(url: &str) -> Result<Backend, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let schema = var("AUTH_DB_SCHEMA")
            .map(|s| s.parse::<keystead_postgres::Schema>())
            .transpose()
            .map_err(|e| format!("AUTH_DB_SCHEMA: {e}"))?
            .unwrap_or_default();
        let store = keystead_postgres::PostgresStore::connect_with_schema(url, schema)
            .await
            .map_err(|e| format!("could not open Postgres: {e}"))?;
        let feed = keystead_postgres::PostgresChangeFeed::start_with(
            store.pool().clone(),
            keystead_postgres::ChangeFeedOptions::default().with_schema(store.schema().clone()),
        )
        .await
        .map_err(|e| format!("could not listen on Postgres: {e}"))?;
        Ok(Backend {
            store: Arc::new(store),
            feed: Some(feed),
        })
    } else {
        let prefix = var("AUTH_DB_PREFIX")
            .map(|p| p.parse::<keystead_sqlite::TablePrefix>())
            .transpose()
            .map_err(|e| format!("AUTH_DB_PREFIX: {e}"))?
            .unwrap_or_default();
        let store = keystead_sqlite::SqliteStore::connect_with_prefix(url, prefix)
            .await
            .map_err(|e| format!("could not open SQLite at {url}: {e}"))?;
        Ok(Backend {
            store: Arc::new(store),
            feed: None,
        })
    }
}

/// Builds the [`Auth`] of the example apps: the store, the origin, the development mailer,
/// and API tokens signed with the keys in `AUTH_KEYS` (made on first start, kept after).
///
/// # Errors
/// A message when the mail or key directory cannot be used.
pub async fn build_auth(
    config: &Config,
    backend: Backend,
    origin: AppOrigin,
) -> Result<Auth, String> {
    let app_origin = origin.clone();
    let mailer = FileMailer::new(&config.mail_dir)
        .map_err(|e| format!("AUTH_MAIL_DIR {}: {e}", config.mail_dir.display()))?;
    let key_store = DirKeyStore::new(&config.keys_dir)
        .map_err(|e| format!("AUTH_KEYS {}: {e}", config.keys_dir.display()))?;
    let token_config = TokenConfig::default();
    let keys = KeyRing::load_or_create(
        Arc::new(key_store),
        Arc::new(SystemClock),
        KeyAlgorithm::EdDSA,
        token_config.max_ttl,
    )
    .await
    .map_err(|e| format!("AUTH_KEYS {}: {e}", config.keys_dir.display()))?;
    let mut builder = Auth::builder(backend.store, origin)
        .trusted_proxies(config.trusted_proxies.clone())
        .mailer(Arc::new(mailer))
        .api_tokens(keys, token_config);
    if let Some(feed) = backend.feed {
        builder = builder.change_feed(feed);
    }
    if let Some(days) = config.audit_retention_days {
        builder = builder.audit_retention(keystead::time::Duration::days(i64::from(days)));
    }
    if let Some(permits) = config.password_concurrency {
        let hashing = keystead::password::PasswordConfig::default()
            .max_concurrent(permits)
            .map_err(|e| format!("AUTH_PASSWORD_CONCURRENCY: {e}"))?;
        builder = builder.password_hashing(hashing);
    }
    if let Some(google) = &config.google {
        let provider = keystead_oidc::OidcProvider::google_at(
            &google.issuer,
            &google.client_id,
            &google.client_secret,
        )
        .map_err(|e| format!("GOOGLE_*: {e}"))?;
        builder = builder.identity_provider(Arc::new(provider));
    }
    if let Some(oidc) = &config.oidc {
        let provider = keystead_oidc::OidcProvider::new(
            "oidc",
            "Single sign-on",
            &oidc.issuer,
            &oidc.client_id,
            &oidc.client_secret,
        )
        .map_err(|e| format!("OIDC_*: {e}"))?
        .with_email_linking(config.oidc_email_linking);
        builder = builder.identity_provider(Arc::new(provider));
    }
    if let Some(handoff) = &config.handoff {
        let handoff = handoff.session_handoff(&app_origin).await?;
        tracing::info!(
            issuer = handoff.issuer(),
            keys = handoff.key_count(),
            until = %handoff.not_after(),
            "hand-off from the old provider on"
        );
        builder = builder.session_handoff(handoff);
    }
    let mfa_key = match &config.mfa_key {
        Some(key) => key.clone(),
        None => dev_mfa_key(&config.keys_dir.join("mfa.key"))?,
    };
    let mut mfa = keystead::mfa::MfaConfig::new(mfa_key).with_issuer("Keystead SaaS");
    if let Some(secs) = config.step_up_max_age_secs {
        mfa = mfa.with_step_up_max_age(keystead::time::Duration::seconds(i64::from(secs)));
    }
    builder = builder.mfa(mfa);
    // On this runtime, `build` starts the library's background tasks (change feed, change
    // log, batched writes, sweeps); they stop when the last clone of the `Auth` goes.
    Ok(builder.build())
}

/// The development MFA key in `path`: read, or made (and written owner-only) on first start.
fn dev_mfa_key(path: &std::path::Path) -> Result<keystead::mfa::MfaKey, String> {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => keystead::mfa::MfaKey::from_base64(&text).map_err(|e| format!("{shown}: {e}")),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = keystead::mfa::MfaKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, text.as_bytes())
                        .map_err(|e| format!("{shown}: {e}"))?;
                    tracing::warn!(
                        path = %shown,
                        "made a development MFA key; set MFA_ENCRYPTION_KEY in production"
                    );
                    Ok(key)
                }
                // Another instance made it meanwhile: use theirs.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text =
                        std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
                    keystead::mfa::MfaKey::from_base64(&text).map_err(|e| format!("{shown}: {e}"))
                }
                Err(err) => Err(format!("{shown}: {err}")),
            }
        }
        Err(err) => Err(format!("{shown}: {err}")),
    }
}

/// `GET /healthz`: the process is up (a liveness probe; it reads nothing).
#[must_use]
pub fn health_body() -> String {
    serde_json::json!({ "status": "ok" }).to_string()
}

/// `GET /readyz`: 200 `{status: "ready", checks}` when [`Auth::readiness`] holds, else 503
/// `{status: "not_ready", checks}` naming what failed (a readiness probe: take the instance out
/// of the load balancer until it answers correctly again).
pub async fn readiness(auth: &Auth) -> (u16, String) {
    let checks = auth.readiness().await;
    let status = if checks.is_ready() {
        "ready"
    } else {
        "not_ready"
    };
    let body = serde_json::json!({ "status": status, "checks": checks }).to_string();
    (if checks.is_ready() { 200 } else { 503 }, body)
}

/// The sign-in buttons of the configured providers: `[{id, name, label}]`.
#[must_use]
pub fn provider_buttons(auth: &Auth) -> serde_json::Value {
    auth.identity_providers()
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id(),
                "name": p.display_name(),
                "label": format!("Continue with {}", p.display_name()),
            })
        })
        .collect()
}

/// The dashboard's "Sign-in methods": whether the user has a password, and each configured
/// provider with whether it is linked (`[{id, name, linked}]`).
///
/// # Errors
/// Store errors.
pub async fn sign_in_methods(
    auth: &Auth,
    user_id: keystead::UserId,
) -> Result<serde_json::Value, keystead::AuthError> {
    let links = auth.oauth().links(user_id).await?;
    let has_password = auth.store().password_credential(user_id).await?.is_some();
    let providers: Vec<serde_json::Value> = auth
        .identity_providers()
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id(),
                "name": p.display_name(),
                "linked": links.iter().any(|l| l.provider == p.id()),
            })
        })
        .collect();
    Ok(serde_json::json!({ "password": has_password, "providers": providers }))
}

/// What the sign-in page shows for an `?error=` code from a sign-in with a provider.
#[must_use]
pub fn sign_in_error_message(code: &str) -> &'static str {
    match code {
        "oauth_denied" => "Sign-in with the provider was cancelled.",
        "account_exists" => {
            "An account with this email exists. Sign in with your password, then link the provider."
        }
        "link_required" => {
            "An account with this email exists. Please sign in to it first, then link the provider from your dashboard."
        }
        _ => "Sign-in with the provider failed. Please try again.",
    }
}

/// The context of the sign-in page: `next` (a local path, or nothing), the message for
/// `error`, and the provider buttons.
#[must_use]
pub fn sign_in_context(auth: &Auth, next: Option<&str>, error: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "next": next,
        "error": error.map(sign_in_error_message),
        "providers": provider_buttons(auth),
    })
}

/// The context of the sign-up page: `next` and the provider buttons.
#[must_use]
pub fn sign_up_context(auth: &Auth, next: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "next": next, "providers": provider_buttons(auth) })
}

/// What the API tokens page shows: the active organization, the permissions a new token may
/// have (the user's own), and the tokens the user may see (all of the organization's with
/// `tokens:manage`, else their own).
///
/// # Errors
/// Store errors.
pub async fn tokens_page_context(
    auth: &Auth,
    principal: &keystead::Principal,
) -> Result<serde_json::Value, keystead::AuthError> {
    let Some(org_id) = principal.org_id() else {
        return Ok(serde_json::json!({ "user": principal.user, "org": null }));
    };
    let org = auth.store().organization(org_id).await?;
    let only = (!principal.has("tokens:manage")).then_some(principal.user.id);
    let tokens: Vec<serde_json::Value> = auth
        .store()
        .api_tokens_for_org(org_id, only)
        .await?
        .iter()
        .map(|t| {
            serde_json::json!({
                "id": t.id.to_string(),
                "name": t.name,
                "scopes": t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "expires_at": t.expires_at.date().to_string(),
                "last_used_at": t.last_used_at.map(|at| at.date().to_string()),
                "revoked": t.revoked_at.is_some(),
            })
        })
        .collect();
    let permissions: Vec<&str> = principal.permissions().iter().map(|p| p.as_str()).collect();
    Ok(serde_json::json!({
        "user": principal.user,
        "org": org.map(|o| serde_json::json!({ "id": o.id.to_string(), "name": o.name })),
        "permissions": permissions,
        "tokens": tokens,
    }))
}

#[cfg(test)]
mod tests {
    use super::{HandoffConfig, parse_password_concurrency};

    fn read(vars: &[(&str, &str)]) -> Result<Option<HandoffConfig>, String> {
        HandoffConfig::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn password_concurrency_is_a_positive_number() {
        assert_eq!(parse_password_concurrency(None), Ok(None));
        assert_eq!(
            parse_password_concurrency(Some(" 64 ".into())),
            Ok(Some(64))
        );
        for bad in ["0", "-1", "two", "1.5"] {
            let err = parse_password_concurrency(Some(bad.into())).unwrap_err();
            assert!(err.contains("AUTH_PASSWORD_CONCURRENCY"), "{err}");
        }
    }

    #[test]
    fn handoff_variables_are_all_or_none() {
        assert!(read(&[]).unwrap().is_none());
        let full = [
            ("HANDOFF_ISSUER", "https://clerk.example.com"),
            (
                "HANDOFF_JWKS_URL",
                "https://clerk.example.com/.well-known/jwks.json",
            ),
            ("HANDOFF_UNTIL", "2026-09-01T00:00:00Z"),
            (
                "HANDOFF_AUTHORIZED_PARTIES",
                "https://app.example.com, https://www.example.com",
            ),
        ];
        let config = read(&full).unwrap().unwrap();
        assert_eq!(config.cookie, "__session");
        assert_eq!(
            config.authorized_parties,
            ["https://app.example.com", "https://www.example.com"]
        );
        assert_eq!(config.until.year(), 2026);
        let err = read(&full[..2]).unwrap_err();
        assert!(err.contains("HANDOFF_UNTIL"), "{err}");
        let err = read(&full[1..]).unwrap_err();
        assert!(err.contains("HANDOFF_ISSUER"), "{err}");
        let mut bad = full.to_vec();
        bad[2] = ("HANDOFF_UNTIL", "next summer");
        assert!(read(&bad).unwrap_err().starts_with("HANDOFF_UNTIL"));
        bad[2] = full[2];
        bad.push(("HANDOFF_COOKIE", "a cookie; b"));
        assert!(read(&bad).unwrap_err().starts_with("HANDOFF_COOKIE"));
    }
}
