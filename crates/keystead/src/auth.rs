//! [`Auth`]: the one object an app builds, and the adapters wrap.
//!
//! It holds the store, the flows and the policies, resolves the [`Principal`] of a request
//! from its headers ([`Auth::authenticate`]), applies the CSRF rule ([`Auth::check_csrf`]) and
//! serves the library's routes ([`Auth::handle`], in [`crate::routes`]).
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<dyn keystead::AuthStore>) -> Result<(), Box<dyn std::error::Error>> {
//! use keystead::Auth;
//! use keystead::mail::FileMailer;
//! use keystead::web::AppOrigin;
//!
//! // Inside a Tokio runtime, `build` starts the background tasks (outside one, the first
//! // request does); they stop when the last clone of `auth` is dropped.
//! let auth = Auth::builder(store, AppOrigin::parse("https://app.example.com")?)
//!     .mailer(std::sync::Arc::new(FileMailer::new("var/mail")?))
//!     .build();
//! # let _ = auth;
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration as StdDuration;
use tracing::Instrument as _;

use http::{HeaderMap, HeaderValue, Method, header};

use crate::accounts::{Accounts, AccountsConfig, ClientInfo};
use crate::gate::{GateHeader, RequestHeaders, visible_text};
use crate::handoff::{OldSession, SessionHandoff};
use crate::mail::{MailTemplates, Mailer, MemoryMailer};
use crate::oauth::{IdentityProvider, OAuth, is_valid_provider_id};
use crate::orgs::{Organizations, OrgsConfig, OrgsState};
use crate::password::{PasswordConfig, PasswordHasher};
use crate::password_policy::PasswordPolicy;
use crate::principal::{Credential, Principal};
use crate::rate_limit::{RateLimitConfig, RateLimiter};
use crate::routes::Surface;
use crate::session::{SessionConfig, SessionManager, SessionMeta, ValidSession};
use crate::tokens::{
    ApiTokens, Change, ChangeFeed, Changes, FeedEvent, InProcessFeed, KeyRing, TokenConfig,
};
use crate::web::{AppOrigin, ClientIpPolicy, CookiePolicy, CsrfPolicy, CsrfRequest};
use crate::{
    AuditEvent, AuditKind, AuthError, AuthStore, Clock, ErrorCode, RolePermissions, SystemClock,
    TokenHash,
};

/// What authenticating a request found: a principal, or why there is none.
///
/// Adapters put this into the request's extensions once per request; extractors and the
/// library routes read it from there.
#[derive(Debug, Clone, Default)]
pub struct Authentication {
    /// The caller, when a credential was presented and held.
    pub principal: Option<Principal>,
    /// Why a presented credential did not hold (`unauthenticated` for an unknown or ended
    /// session, `session_expired`, `token_invalid`, …), or `unavailable` when the store could
    /// not answer. `None` when no credential was presented.
    pub failure: Option<AuthError>,
    /// A `Set-Cookie` value to send with the response: the session cookie with a fresh
    /// `Max-Age` after the sliding expiry moved, or its removal when it no longer works.
    pub set_cookie: Option<HeaderValue>,
    /// The request carried `Authorization: Bearer`.
    pub bearer: bool,
}

impl Authentication {
    /// The error that must end the request whatever the route (fail closed): the store could
    /// not answer whether the credential holds.
    #[must_use]
    pub fn fatal(&self) -> Option<&AuthError> {
        self.failure
            .as_ref()
            .filter(|e| matches!(e.code, ErrorCode::Unavailable | ErrorCode::Internal))
    }

    /// The principal, or the error a route that needs one answers: the credential's failure
    /// if one was presented, else `unauthenticated`.
    ///
    /// # Errors
    /// As above.
    pub fn require(&self) -> Result<&Principal, AuthError> {
        self.principal.as_ref().ok_or_else(|| {
            self.failure
                .clone()
                .unwrap_or_else(|| AuthError::new(ErrorCode::Unauthenticated))
        })
    }
}

/// What [`Auth::readiness`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    /// The store answered.
    pub database: bool,
    /// The change log was read within the staleness bound (changes of other instances are
    /// seen).
    pub change_feed: bool,
    /// A signing key for API tokens is loaded (true when API tokens are off).
    pub signing_keys: bool,
}

impl Readiness {
    /// Every check holds.
    #[must_use]
    pub const fn is_ready(&self) -> bool {
        self.database && self.change_feed && self.signing_keys
    }
}

/// The credential a request presents, found in its headers. A short-lived value on the stack of
/// one request, never stored: boxing the large variant would cost an allocation on every
/// anonymous request instead.
#[allow(clippy::large_enum_variant)]
enum Presented<'h> {
    /// `Authorization: Bearer <token>`: the token's bytes as sent (see [`bearer_token`]).
    Bearer(&'h [u8]),
    /// The session cookie's token.
    Session(&'h str),
    /// No credential of ours, and the old provider's session token inside the hand-off window
    /// (see [`crate::handoff`]).
    Handoff(String),
    /// Nothing to look up: no credential, another `Authorization` scheme, or junk under the
    /// session cookie's name.
    Answered(Authentication),
}

/// Builds an [`Auth`]. Every setting has a safe default; see each method.
#[must_use]
pub struct AuthBuilder {
    store: Arc<dyn AuthStore>,
    origin: AppOrigin,
    clock: Arc<dyn Clock>,
    mailer: Option<Arc<dyn Mailer>>,
    sessions: SessionConfig,
    rate_limits: RateLimitConfig,
    password: PasswordConfig,
    policy: PasswordPolicy,
    roles: RolePermissions,
    client_ip: ClientIpPolicy,
    accounts: AccountsConfig,
    orgs: OrgsConfig,
    templates: Option<MailTemplates>,
    feed: Option<Arc<dyn ChangeFeed>>,
    tokens: Option<(KeyRing, TokenConfig)>,
    providers: Vec<Arc<dyn IdentityProvider>>,
    maintenance_interval: StdDuration,
    audit_retention: Option<time::Duration>,
    surface: Surface,
    cookies: CookiePolicy,
    trusted_origins: Vec<AppOrigin>,
    handoff: Option<SessionHandoff>,
    mfa: crate::mfa::MfaConfig,
}

/// The account flows' links with the library's default verification route under the base
/// path (an app that set its own path keeps it).
fn under_base_path(mut accounts: AccountsConfig, surface: &Surface) -> AccountsConfig {
    if accounts.verify_email_path == AccountsConfig::default().verify_email_path {
        accounts.verify_email_path = surface.library_path(&accounts.verify_email_path);
    }
    accounts
}

/// How often the background tasks delete what has expired, by default.
pub const DEFAULT_MAINTENANCE_INTERVAL: StdDuration = StdDuration::from_secs(10 * 60);

/// How many audit events one statement of the retention sweep deletes at most.
pub const AUDIT_PRUNE_BATCH: u32 = 1000;

/// How many batches of [`AUDIT_PRUNE_BATCH`] one sweep deletes at most; what is left goes in
/// the next sweep.
pub const AUDIT_PRUNE_BATCHES: u32 = 100;

/// How long entries stay in the store's change log: an instance that could not read it for
/// longer drops all its caches instead (it notices the gap).
const CHANGE_LOG_RETENTION: time::Duration = time::Duration::hours(1);

impl fmt::Debug for AuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthBuilder")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl AuthBuilder {
    /// The clock (default: the system clock). Tests pass a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where verification, reset and invitation mails go. Without one, mails are kept in
    /// memory and logged as not delivered: set a real mailer
    /// ([`FileMailer`](crate::mail::FileMailer) in development,
    /// `mail::SmtpMailer` (feature `smtp`) in production).
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Session lifetimes and caching (default: 30 days sliding, 90 days absolute).
    pub fn sessions(mut self, config: SessionConfig) -> Self {
        self.sessions = config;
        self
    }

    /// Rate limits (default: the contract's table).
    pub fn rate_limits(mut self, config: RateLimitConfig) -> Self {
        self.rate_limits = config;
        self
    }

    /// Password hashing (default: argon2id m=19 MiB, t=2, p=1).
    pub fn password_hashing(mut self, config: PasswordConfig) -> Self {
        self.password = config;
        self
    }

    /// The password policy (default: NIST 800-63B, 8–256 characters, shipped blocklist).
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Roles and what they grant (default: the contract's owner/admin/member map).
    pub fn roles(mut self, roles: RolePermissions) -> Self {
        self.roles = roles;
        self
    }

    /// Which peers are trusted proxies whose `X-Forwarded-For` names the client (default:
    /// none: the client address is the socket's).
    pub fn trusted_proxies(mut self, policy: ClientIpPolicy) -> Self {
        self.client_ip = policy;
        self
    }

    /// Link lifetimes and paths of the account flows.
    pub fn accounts(mut self, config: AccountsConfig) -> Self {
        self.accounts = config;
        self
    }

    /// Invitation lifetime and link path, and what a former owner becomes (default: 7 days,
    /// `/accept-invitation`, `admin`).
    pub fn orgs(mut self, config: OrgsConfig) -> Self {
        self.orgs = config;
        self
    }

    /// The change feed that carries changes to the caches of every instance at once (default:
    /// the store's own, [`ChangeLogStore::default_change_feed`](crate::ChangeLogStore): a
    /// `PostgresChangeFeed` for `PostgresStore`; else in-process, right for one instance).
    /// Whatever the feed, every change is also recorded in the store's change log, which
    /// every instance reads within the staleness bound.
    pub fn change_feed(mut self, feed: Arc<dyn ChangeFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// How often the background tasks delete what has expired: idle rate-limit keys,
    /// sessions, one-time tokens, sign-in flows with a provider, passkey ceremonies, old change log entries, and
    /// the in-memory revocations of expired API tokens (default [`DEFAULT_MAINTENANCE_INTERVAL`], 10 minutes; the first sweep runs as the
    /// tasks start). At least 10 ms.
    pub fn maintenance_interval(mut self, interval: StdDuration) -> Self {
        self.maintenance_interval = interval.max(StdDuration::from_millis(10));
        self
    }

    /// How long audit events are kept (default: forever). With a retention set, the
    /// maintenance sweep (every [`maintenance_interval`](Self::maintenance_interval)) deletes
    /// the events older than it, in batches of [`AUDIT_PRUNE_BATCH`], at most
    /// [`AUDIT_PRUNE_BATCHES`] batches a sweep (the rest go in the next one). At least one
    /// hour: a shorter one is taken as an hour.
    pub fn audit_retention(mut self, retention: time::Duration) -> Self {
        self.audit_retention = Some(retention.max(time::Duration::HOUR));
        self
    }

    /// Turns on API tokens (`/api/tokens`, `/.well-known/jwks.json`, `Authorization: Bearer`),
    /// signed with `keys`. Without this, every Bearer credential is refused.
    pub fn api_tokens(mut self, keys: KeyRing, config: TokenConfig) -> Self {
        self.tokens = Some((keys, config));
        self
    }

    /// Adds a provider for sign-in with a provider (`/auth/oauth/{id}`); `keystead-oidc` makes
    /// them (Google, any OpenID Connect issuer). Several may be added, each with its own id.
    ///
    /// # Panics
    /// When the provider's id is not 1 to 32 of `a-z`, `0-9`, `-`, or another provider has it:
    /// a configuration mistake, found at start.
    pub fn identity_provider(mut self, provider: Arc<dyn IdentityProvider>) -> Self {
        let id = provider.id();
        assert!(
            is_valid_provider_id(id),
            "provider id {id:?}: use 1 to 32 of a-z, 0-9 and -"
        );
        assert!(
            self.providers.iter().all(|p| p.id() != id),
            "two providers are named {id:?}"
        );
        self.providers.push(provider);
        self
    }

    /// Where the library's routes are mounted (a base path) and which pages of the app it
    /// sends browsers to (sign-in, after sign-in). Default: [`Surface::default`].
    pub fn surface(mut self, surface: Surface) -> Self {
        self.surface = surface;
        self
    }

    /// Shares the session cookie with the subdomains of `domain` (`Domain=example.com`): for
    /// an app whose pages and API are on different subdomains. See
    /// [`CookiePolicy::with_domain`].
    ///
    /// # Errors
    /// When the app's host is not `domain` or under it.
    pub fn cookie_domain(mut self, domain: &str) -> Result<Self, crate::web::CookieDomainError> {
        self.cookies = self.cookies.with_domain(&self.origin, domain)?;
        Ok(self)
    }

    /// `false`: session cookies end with the browser session ("remember me" off: no
    /// `Max-Age`); the session still expires in the store as configured. Default `true`.
    pub fn persistent_session_cookies(mut self, persistent: bool) -> Self {
        self.cookies = self.cookies.with_persistent_sessions(persistent);
        self
    }

    /// Other origins whose pages may send unsafe requests with the session cookie (a
    /// single-page app on another subdomain), besides the app's origin. The CSRF rule is
    /// otherwise unchanged; the app answers their CORS preflights itself.
    pub fn trusted_origins(mut self, origins: impl IntoIterator<Item = AppOrigin>) -> Self {
        self.trusted_origins.extend(origins);
        self
    }

    /// Turns on the hand-off from the old provider (off by default): inside its window, a
    /// request with no credential of ours that carries the old provider's session token is
    /// swapped for one of our sessions, once per old session. See [`crate::handoff`].
    pub fn session_handoff(mut self, handoff: SessionHandoff) -> Self {
        self.handoff = Some(handoff);
        self
    }

    /// Second factors: the key that seals TOTP secrets, the step-up age. Without a key, TOTP
    /// and recovery codes answer 503 `unavailable` (passkeys and step-up work without one).
    pub fn mfa(mut self, config: crate::mfa::MfaConfig) -> Self {
        self.mfa = config;
        self
    }

    /// The mail texts.
    pub fn templates(mut self, templates: MailTemplates) -> Self {
        self.templates = Some(templates);
        self
    }

    /// Builds the [`Auth`].
    pub fn build(self) -> Auth {
        let mailer = self.mailer.unwrap_or_else(|| {
            tracing::warn!("no mailer configured: mails are kept in memory, not delivered");
            Arc::new(MemoryMailer::default())
        });
        let sessions = SessionManager::new(self.store.clone(), self.clock.clone(), self.sessions);
        let rate_limiter =
            RateLimiter::new(self.store.clone(), self.rate_limits, self.clock.clone());
        let templates = self
            .templates
            .unwrap_or_else(|| MailTemplates::new(self.origin.host()));
        let accounts = Accounts::new(
            self.store.clone(),
            self.clock.clone(),
            sessions.clone(),
            mailer.clone(),
            self.origin.clone(),
        )
        .with_password_hasher(PasswordHasher::new(self.password))
        .with_password_policy(self.policy)
        .with_rate_limiter(rate_limiter)
        .with_config(under_base_path(self.accounts, &self.surface))
        .with_templates(templates.clone());
        let orgs = OrgsState {
            config: self.orgs,
            templates,
        };
        let feed = self
            .feed
            .or_else(|| self.store.default_change_feed())
            .unwrap_or_else(|| Arc::new(InProcessFeed::new()));
        let changes = Arc::new(Changes::new(
            self.store.clone(),
            feed.clone(),
            self.clock.clone(),
        ));
        let staleness = self
            .tokens
            .as_ref()
            .map_or_else(|| TokenConfig::default().staleness, |(_, c)| c.staleness);
        let tokens = self.tokens.map(|(keys, config)| {
            ApiTokens::with_changes(
                self.store.clone(),
                self.clock.clone(),
                keys,
                changes.clone(),
                config,
                &self.origin,
            )
        });
        let webauthn = crate::passkeys::relying_party(&self.origin);
        let auth = Auth {
            inner: Arc::new(Inner {
                feed,
                changes,
                staleness: StdDuration::try_from(staleness)
                    .unwrap_or(StdDuration::from_secs(1))
                    .max(StdDuration::from_millis(20)),
                maintenance_interval: self.maintenance_interval,
                audit_retention: self.audit_retention,
                tasks: OnceLock::new(),
                tokens,
                cookies: self.cookies,
                csrf: CsrfPolicy::new(self.origin.clone())
                    .with_trusted_origins(self.trusted_origins),
                store: self.store,
                origin: self.origin,
                clock: self.clock,
                mailer,
                sessions,
                accounts,
                orgs,
                roles: self.roles,
                client_ip: self.client_ip,
                providers: self.providers,
                surface: self.surface,
                handoff: self.handoff,
                webauthn,
                mfa: self.mfa,
            }),
        };
        // Inside a runtime the tasks start now; else the first request starts them.
        auth.ensure_tasks();
        auth
    }
}

/// The configured library: cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Auth {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn AuthStore>,
    pub(crate) origin: AppOrigin,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) sessions: SessionManager,
    pub(crate) accounts: Accounts,
    pub(crate) orgs: OrgsState,
    pub(crate) feed: Arc<dyn ChangeFeed>,
    pub(crate) changes: Arc<Changes>,
    /// The staleness bound: the change log is read every half of it.
    staleness: StdDuration,
    maintenance_interval: StdDuration,
    /// How long audit events are kept; `None`: forever.
    audit_retention: Option<time::Duration>,
    /// The background tasks, started once; dropped (so stopped) with the last `Auth` clone.
    tasks: OnceLock<Tasks>,
    pub(crate) tokens: Option<ApiTokens>,
    pub(crate) roles: RolePermissions,
    pub(crate) cookies: CookiePolicy,
    pub(crate) csrf: CsrfPolicy,
    pub(crate) client_ip: ClientIpPolicy,
    pub(crate) providers: Vec<Arc<dyn IdentityProvider>>,
    pub(crate) surface: Surface,
    pub(crate) handoff: Option<SessionHandoff>,
    /// The WebAuthn relying party (the app's host and origin); `None` when the origin's host
    /// is an IP address.
    pub(crate) webauthn: Option<webauthn_rs::Webauthn>,
    pub(crate) mfa: crate::mfa::MfaConfig,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("origin", &self.inner.origin)
            .field("sessions", &self.inner.sessions)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Starts a builder over `store` for the app served at `origin`.
    pub fn builder(store: Arc<dyn AuthStore>, origin: AppOrigin) -> AuthBuilder {
        let cookies = CookiePolicy::for_origin(&origin);
        AuthBuilder {
            store,
            origin,
            clock: Arc::new(SystemClock),
            mailer: None,
            sessions: SessionConfig::default(),
            rate_limits: RateLimitConfig::default(),
            password: PasswordConfig::default(),
            policy: PasswordPolicy::default(),
            roles: RolePermissions::default(),
            client_ip: ClientIpPolicy::default(),
            accounts: AccountsConfig::default(),
            orgs: OrgsConfig::default(),
            templates: None,
            feed: None,
            tokens: None,
            providers: Vec::new(),
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            audit_retention: None,
            surface: Surface::default(),
            cookies,
            trusted_origins: Vec::new(),
            handoff: None,
            mfa: crate::mfa::MfaConfig::default(),
        }
    }

    /// The second-factor operations: TOTP, recovery codes, pending sign-ins, re-authentication.
    #[must_use]
    pub const fn mfa(&self) -> crate::mfa::Mfa<'_> {
        crate::mfa::Mfa::new(self)
    }

    /// How old a session's authentication may be on a step-up route
    /// ([`MfaConfig::with_step_up_max_age`](crate::mfa::MfaConfig::with_step_up_max_age);
    /// 10 minutes by default).
    #[must_use]
    pub fn step_up_max_age(&self) -> time::Duration {
        self.inner.mfa.step_up_max_age
    }

    /// The step-up check for `principal` now: `reauthentication_required` when its session's
    /// authentication is older than [`Auth::step_up_max_age`], `forbidden` for an API token.
    ///
    /// # Errors
    /// As above.
    pub fn require_recent_auth(&self, principal: &Principal) -> Result<(), AuthError> {
        principal.require_recent_auth(self.step_up_max_age(), self.inner.clock.now())
    }

    /// Mails `user` a security notice (a factor added or removed, a recovery code used…).
    /// Failures are logged, not returned.
    pub async fn notify(&self, user: &crate::User, notice: crate::mail::SecurityNotice) {
        self.inner.accounts.notify(user, &notice).await;
    }

    /// After a sign-in: a new-device notice unless another live session of the user came from
    /// the same browser.
    pub async fn notify_new_device(&self, user: &crate::User, session: &crate::Session) {
        self.inner.accounts.notify_new_device(user, session).await;
    }

    /// The app's public origin.
    #[must_use]
    pub fn origin(&self) -> &AppOrigin {
        &self.inner.origin
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn AuthStore> {
        &self.inner.store
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The mailer.
    #[must_use]
    pub fn mailer(&self) -> &Arc<dyn Mailer> {
        &self.inner.mailer
    }

    /// Where the library's routes are and which app pages it sends browsers to.
    #[must_use]
    pub fn surface(&self) -> &Surface {
        &self.inner.surface
    }

    /// The session manager.
    #[must_use]
    pub fn sessions(&self) -> &SessionManager {
        &self.inner.sessions
    }

    /// The account flows.
    #[must_use]
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// The organization flows: organizations, members, roles, invitations.
    #[must_use]
    pub const fn orgs(&self) -> Organizations<'_> {
        Organizations::new(self)
    }

    /// Sign-in with a provider: the flows, links and unlinks.
    #[must_use]
    pub const fn oauth(&self) -> OAuth<'_> {
        OAuth::new(self)
    }

    /// The configured providers, in the order they were added (for sign-in buttons).
    #[must_use]
    pub fn identity_providers(&self) -> &[Arc<dyn IdentityProvider>] {
        &self.inner.providers
    }

    /// Roles and their permissions.
    #[must_use]
    pub fn roles(&self) -> &RolePermissions {
        &self.inner.roles
    }

    /// Checks, at start-up, the role names the app's routes require (`#[require_role]` with
    /// `custom`, actix's `guard::role`): an unknown one would refuse everyone at run time (403,
    /// logged); this finds it before the first request. See [`RolePermissions::check_roles`].
    ///
    /// ```
    /// # fn check(auth: &keystead::Auth) {
    /// auth.check_roles(["admin", "billing-admin"]).expect("every role the routes use exists");
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`UnknownRoles`](crate::UnknownRoles) naming each unknown name.
    pub fn check_roles<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), crate::UnknownRoles> {
        self.inner.roles.check_roles(names)
    }

    /// Cookie names and attributes.
    #[must_use]
    pub fn cookies(&self) -> &CookiePolicy {
        &self.inner.cookies
    }

    /// Starts the background tasks if they are not running yet (they normally start with
    /// [`AuthBuilder::build`], or with the first request when `build` ran outside a Tokio
    /// runtime), and returns a handle that is already finished.
    ///
    /// No longer needed: the tasks belong to the `Auth` and stop when its last clone is
    /// dropped; aborting the returned handle stops nothing. Kept so that existing callers
    /// keep working. The tasks are the batched `last_seen_at` and `last_used_at` writers, the
    /// change feed's consumer, the reader of the store's change log, and the sweep of
    /// expired rows.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn_background_tasks(&self) -> tokio::task::JoinHandle<()> {
        self.ensure_tasks();
        tokio::spawn(async {})
    }

    /// Whether the background tasks run: starts them when they do not and a Tokio runtime is
    /// at hand. When they cannot run, API tokens are refused (503): no change from other
    /// instances would reach this one.
    pub(crate) fn ensure_tasks(&self) -> bool {
        if self.inner.tasks.get().is_some() {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.changes.set_fresh(false);
            return false;
        };
        self.inner
            .tasks
            .get_or_init(|| Tasks::start(&runtime, self));
        true
    }

    /// Applies a change-feed event to this instance's caches.
    pub async fn apply(&self, event: &FeedEvent) {
        match event {
            FeedEvent::Change(
                Change::MembershipChanged { user_id, .. } | Change::UserChanged { user_id },
            ) => self.inner.sessions.invalidate_user(*user_id),
            FeedEvent::Resync => self.inner.sessions.invalidate_all(),
            FeedEvent::Change(_) => {}
        }
        if let Some(tokens) = &self.inner.tokens {
            tokens.apply(event).await;
        }
    }

    /// Tells every instance (this one at once) about a change: after a membership or role
    /// change, or anything else the caches must see. The change is recorded in the store's
    /// change log, then published on the feed: another instance applies it when the feed
    /// brings it, and at the latest when it reads the log (within the staleness bound). A
    /// failure to record is logged and retried by the background tasks.
    pub async fn publish(&self, change: Change) {
        self.apply(&FeedEvent::Change(change.clone())).await;
        self.inner.changes.announce(&change).await;
    }

    /// Whether this instance can answer correctly now, for a readiness probe (`/readyz` in the
    /// examples): the store answers a single-row read within 2 s, the change log has been read
    /// within the staleness bound (else API tokens are refused), and, with API tokens on, a
    /// signing key is loaded.
    pub async fn readiness(&self) -> Readiness {
        self.ensure_tasks();
        let database =
            tokio::time::timeout(StdDuration::from_secs(2), self.inner.store.change_version())
                .await
                .is_ok_and(|answer| answer.is_ok());
        Readiness {
            database,
            change_feed: self.inner.changes.is_fresh(),
            signing_keys: self
                .inner
                .tokens
                .as_ref()
                .is_none_or(|tokens| tokens.keys().signing_key().is_some()),
        }
    }

    /// Copies what the hot path counts (cache lookups, tokens that verified) and the gauges
    /// (change feed, password hashing) to the installed `metrics` recorder; see
    /// [`telemetry`](crate::telemetry) for the names. Call it before rendering a scrape; the
    /// background tasks also call it every [`EXPORT_INTERVAL`](crate::telemetry::EXPORT_INTERVAL).
    pub fn export_metrics(&self) {
        let sessions = self.inner.sessions.stats();
        let (member_hits, member_misses, tokens_valid) = self
            .inner
            .tokens
            .as_ref()
            .map_or((0, 0, 0), ApiTokens::counts);
        let hasher = self.inner.accounts.hasher();
        crate::telemetry::Snapshot {
            session_hits: sessions.cache_hits,
            session_misses: sessions.store_reads,
            member_hits,
            member_misses,
            tokens_valid,
            feed_fresh: self.inner.changes.is_fresh(),
            feed_lag_seconds: self.inner.changes.read_lag_seconds(),
            hashes_in_flight: hasher.in_flight(),
            hash_queue_depth: hasher.queued(),
        }
        .export();
    }

    /// API tokens, when turned on.
    #[must_use]
    pub fn tokens(&self) -> Option<&ApiTokens> {
        self.inner.tokens.as_ref()
    }

    /// The client's address: the socket peer, or what trusted proxies forwarded (every line of
    /// their header, in order; see [`ClientIpPolicy`]).
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.inner.client_ip.client_ip_from_headers(peer, headers)
    }

    /// Who is asking and from where, for the flows.
    #[must_use]
    pub fn client_info(&self, peer: IpAddr, headers: &HeaderMap) -> ClientInfo {
        ClientInfo {
            ip: self.client_ip(peer, headers),
            user_agent: header_str(headers, header::USER_AGENT).map(str::to_owned),
        }
    }

    /// Resolves the caller from the request's headers: an `Authorization: Bearer` credential
    /// when there is one, else the session cookie. On the hot path this is one SHA-256 and one
    /// in-process lookup; the store is read only when the cache has no fresh entry.
    pub async fn authenticate<H: RequestHeaders + ?Sized>(&self, headers: &H) -> Authentication {
        self.ensure_tasks();
        match self.credential(headers) {
            Presented::Bearer(token) => {
                let result = match &self.inner.tokens {
                    Some(tokens) => tokens.authenticate(token, &self.inner.roles).await,
                    None => Err(AuthError::new(ErrorCode::TokenInvalid)),
                };
                Self::bearer_authentication(token, result)
            }
            Presented::Session(token) => {
                let result = self.inner.sessions.validate(token).await;
                self.session_authentication(token, result)
            }
            Presented::Handoff(token) => self.hand_off(&token, headers).await,
            Presented::Answered(authn) => authn,
        }
    }

    /// [`authenticate`](Self::authenticate)'s answer when this instance's caches can give it
    /// without waiting on the store: the steady state of a signed-in browser or an API token
    /// in use, and every request without a credential. `None` when the answer needs the
    /// store (a cache miss, an expiry to extend, a refusal to audit); call `authenticate`
    /// then. Adapters use it to skip the asynchronous machinery on the hot path.
    #[must_use]
    pub fn authenticate_cached<H: RequestHeaders + ?Sized>(
        &self,
        headers: &H,
    ) -> Option<Authentication> {
        self.ensure_tasks();
        match self.credential(headers) {
            Presented::Bearer(token) => {
                let result = match &self.inner.tokens {
                    Some(tokens) => tokens.authenticate_cached(token, &self.inner.roles)?,
                    None => Err(AuthError::new(ErrorCode::TokenInvalid)),
                };
                Some(Self::bearer_authentication(token, result))
            }
            Presented::Session(token) => {
                let valid = self.inner.sessions.validate_cached(token)?;
                Some(self.session_authentication(token, Ok(valid)))
            }
            // The swap needs the store.
            Presented::Handoff(_) => None,
            Presented::Answered(authn) => Some(authn),
        }
    }

    /// The credential a request presents: an `Authorization` header wins over the cookie.
    fn credential<'h, H: RequestHeaders + ?Sized>(&self, headers: &'h H) -> Presented<'h> {
        if let Some(authorization) = headers.first(GateHeader::Authorization) {
            return match bearer_token(authorization) {
                Some(token) => Presented::Bearer(token),
                // Another scheme (Basic, …) is no credential of ours.
                None => Presented::Answered(Authentication {
                    failure: Some(AuthError::new(ErrorCode::TokenInvalid)),
                    ..Authentication::default()
                }),
            };
        }
        let cookies = &self.inner.cookies;
        let cookie_header = cookie_header(headers);
        let token = match &cookie_header {
            std::borrow::Cow::Borrowed(header) => cookies.session_token(header),
            // HTTP/2 split the cookies over several headers: the token is read from all of
            // them joined (duplicates are refused), then taken from the header that holds it.
            std::borrow::Cow::Owned(joined) => cookies.session_token(joined).and_then(|token| {
                headers
                    .all(GateHeader::Cookie)
                    .filter_map(visible_text)
                    .find_map(|v| cookies.session_token(v).filter(|t| *t == token))
            }),
        };
        if let Some(token) = token {
            return Presented::Session(token);
        }
        if cookies.has_session_cookie(&cookie_header) {
            // A cookie of our name that is not one of our tokens: clear it.
            return Presented::Answered(Authentication {
                failure: Some(AuthError::new(ErrorCode::Unauthenticated)),
                set_cookie: HeaderValue::from_str(&cookies.removal_cookie()).ok(),
                ..Authentication::default()
            });
        }
        if let Some(handoff) = &self.inner.handoff
            && handoff.is_open(self.inner.clock.now())
            && let Some(token) = crate::web::cookie::single_value(&cookie_header, handoff.cookie())
        {
            return Presented::Handoff(token.to_owned());
        }
        Presented::Answered(Authentication::default())
    }

    /// Swaps the old provider's session `token` for one of ours (see [`crate::handoff`]):
    /// anonymous when it does not verify, names no user of ours, was swapped before, or the
    /// account is disabled; `unavailable` when the store cannot answer.
    async fn hand_off<H: RequestHeaders + ?Sized>(
        &self,
        token: &str,
        headers: &H,
    ) -> Authentication {
        let Some(handoff) = &self.inner.handoff else {
            return Authentication::default();
        };
        // A cross-origin request (a form another site posts) is not swapped: the CSRF check
        // refuses it anyway, and swapping first would spend the old session for nothing.
        if let Some(origin) = headers.first_text(GateHeader::Origin) {
            let cross = self
                .inner
                .csrf
                .evaluate(&CsrfRequest {
                    method: "POST",
                    origin: Some(origin.unwrap_or("")),
                    has_session_cookie: true,
                    ..CsrfRequest::default()
                })
                .is_err();
            if cross {
                return Authentication::default();
            }
        }
        let now = self.inner.clock.now();
        let Some(old) = handoff.verify(token, now) else {
            return Authentication::default();
        };
        let span = tracing::info_span!(
            "keystead.handoff",
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty
        );
        let swapped = self.swap(&old).instrument(span.clone()).await;
        let counted = match &swapped {
            Ok(authn) => match &authn.principal {
                Some(principal) => {
                    span.record("user_id", tracing::field::display(principal.user.id));
                    Ok(())
                }
                None => Err(AuthError::new(ErrorCode::Unauthenticated)),
            },
            Err(err) => Err(err.clone()),
        };
        crate::telemetry::sign_in("handoff", &span, &counted);
        match swapped {
            Ok(authn) => authn,
            Err(err) if matches!(err.code, ErrorCode::Unavailable | ErrorCode::Internal) => {
                Authentication {
                    failure: Some(err),
                    ..Authentication::default()
                }
            }
            Err(err) => {
                tracing::debug!(code = %err.code, "old session not handed off");
                Authentication::default()
            }
        }
    }

    /// The user, claim, new session and audit event of a verified old session.
    async fn swap(&self, old: &OldSession) -> Result<Authentication, AuthError> {
        let store = &self.inner.store;
        let Some(user) = store.user_by_external_id(&old.subject).await? else {
            return Ok(Authentication::default());
        };
        if user.disabled() {
            return Ok(Authentication::default());
        }
        let key = TokenHash::of(&format!("{}\n{}", old.issuer, old.sid));
        let now = self.inner.clock.now();
        if !store.claim_session_handoff(&key, user.id, now).await? {
            // Swapped before: a replayed (or stolen) old token, or a request racing the first.
            return Ok(Authentication::default());
        }
        let created = self
            .inner
            .sessions
            .create(user.id, SessionMeta::default())
            .await?;
        let event = AuditEvent {
            actor_id: Some(user.id),
            user_id: Some(user.id),
            data: serde_json::json!({
                "issuer": old.issuer,
                "sid": old.sid,
                "session_id": created.session.id.to_string(),
            }),
            ..AuditEvent::new(AuditKind::SessionHandoff, now)
        };
        crate::audit::record(&**store, &event).await;
        let token = created.token.expose();
        let result = self.inner.sessions.validate(token).await;
        let mut authn = self.session_authentication(token, result);
        if authn.principal.is_some() {
            let max_age = created.session.expires_at - now;
            authn.set_cookie =
                HeaderValue::from_str(&self.inner.cookies.session_cookie_value(token, max_age))
                    .ok();
        }
        Ok(authn)
    }

    fn session_authentication(
        &self,
        token: &str,
        result: Result<ValidSession, AuthError>,
    ) -> Authentication {
        let cookies = &self.inner.cookies;
        match result {
            Ok(valid) => {
                let set_cookie = if valid.extended {
                    let max_age = valid.session.expires_at - self.inner.clock.now();
                    HeaderValue::from_str(&cookies.session_cookie_value(token, max_age)).ok()
                } else {
                    None
                };
                let blocked = valid
                    .access
                    .as_ref()
                    .is_some_and(|a| a.mfa_required && !a.second_factor);
                let org = valid
                    .access
                    .map(|a| (a.membership.org_id, a.membership.role));
                let credential = Credential::Session {
                    id: valid.session.id,
                    expires_at: valid.session.expires_at,
                    authenticated_at: valid.session.authenticated_at,
                };
                let principal = Principal::new(valid.user, credential, org, &self.inner.roles);
                Authentication {
                    principal: Some(if blocked {
                        principal.blocked_by_org_mfa_policy()
                    } else {
                        principal
                    }),
                    failure: None,
                    set_cookie,
                    bearer: false,
                }
            }
            Err(err) => {
                let set_cookie = matches!(
                    err.code,
                    ErrorCode::Unauthenticated | ErrorCode::SessionExpired
                )
                .then(|| HeaderValue::from_str(&cookies.removal_cookie()).ok())
                .flatten();
                Authentication {
                    principal: None,
                    failure: Some(err),
                    set_cookie,
                    bearer: false,
                }
            }
        }
    }

    fn bearer_authentication(token: &[u8], result: Result<Principal, AuthError>) -> Authentication {
        match result {
            Ok(principal) => Authentication {
                principal: Some(principal),
                bearer: true,
                ..Authentication::default()
            },
            // A header that is not text is no Bearer credential, whatever else failed: answered
            // as when the header was read as text first (`token_invalid`, and not a Bearer
            // request). Checked only here, on a refusal, so the hot path never pays for it.
            Err(_) if visible_text(token).is_none() => {
                let err = AuthError::new(ErrorCode::TokenInvalid);
                crate::telemetry::token_refused(&err);
                Authentication {
                    failure: Some(err),
                    ..Authentication::default()
                }
            }
            Err(err) => {
                crate::telemetry::token_refused(&err);
                Authentication {
                    failure: Some(err),
                    bearer: true,
                    ..Authentication::default()
                }
            }
        }
    }

    /// The contract's CSRF rule for a request: unsafe methods that carry the session cookie
    /// (or, with the hand-off configured, the old provider's session cookie) must come from
    /// the app's origin; `login` (sign-in, sign-up) applies the origin check
    /// to cookie-less browser requests too. Requests with `Authorization: Bearer` are exempt.
    ///
    /// # Errors
    /// `csrf_rejected`.
    pub fn check_csrf<H: RequestHeaders + ?Sized>(
        &self,
        method: &Method,
        headers: &H,
        login: bool,
    ) -> Result<(), AuthError> {
        let cookie_header = cookie_header(headers);
        let bearer = headers
            .first_text(GateHeader::Authorization)
            .flatten()
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
        let text = |header| headers.first_text(header).flatten();
        self.inner.csrf.check(&CsrfRequest {
            method: method.as_str(),
            origin: text(GateHeader::Origin),
            referer: text(GateHeader::Referer),
            sec_fetch_site: text(GateHeader::SecFetchSite),
            has_session_cookie: self.inner.cookies.has_session_cookie(&cookie_header)
                || self.inner.handoff.as_ref().is_some_and(|handoff| {
                    crate::web::cookie::has_cookie(&cookie_header, handoff.cookie())
                }),
            bearer,
            login,
        })
    }
}

/// A header's value as text, if it is visible ASCII.
pub(crate) fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer <token>` header value, as bytes: the value is not
/// checked to be text here. The token cache answers only for the exact bytes of a token it
/// verified (which were text); anything else is checked as text before its signature, and
/// bytes that are not visible ASCII are `token_invalid` there, as a value `to_str` refuses
/// always was. Only SP and HTAB are trimmed, the only whitespace that text holds.
pub(crate) fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let space = memchr::memchr(b' ', value)?;
    let (scheme, token) = (&value[..space], &value[space + 1..]);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = token.iter().position(|b| !is_ws(b)).unwrap_or(token.len());
    let end = token
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    Some(&token[start..end])
}

/// All `Cookie` headers joined (HTTP/2 may send several); borrowed when there is one.
pub(crate) fn cookie_header<H: RequestHeaders + ?Sized>(headers: &H) -> std::borrow::Cow<'_, str> {
    let mut all = headers.all(GateHeader::Cookie);
    if all.next().is_none() {
        return std::borrow::Cow::Borrowed("");
    }
    if all.next().is_none() {
        // The usual case: one header, read as text in one pass.
        return std::borrow::Cow::Borrowed(
            headers
                .first_text(GateHeader::Cookie)
                .flatten()
                .unwrap_or(""),
        );
    }
    let mut values = headers.all(GateHeader::Cookie).filter_map(visible_text);
    let mut joined = values.next().unwrap_or_default().to_owned();
    for value in values {
        joined.push_str("; ");
        joined.push_str(value);
    }
    std::borrow::Cow::Owned(joined)
}

/// The background tasks of an [`Auth`]: they hold it weakly, and are aborted when it goes.
struct Tasks {
    _handles: Vec<AbortOnDrop>,
}

impl Tasks {
    fn start(runtime: &tokio::runtime::Handle, auth: &Auth) -> Self {
        let _entered = runtime.enter();
        let sessions = auth.inner.sessions.spawn_activity_flusher();
        let weak = Arc::downgrade(&auth.inner);
        let mut handles = vec![AbortOnDrop(sessions)];
        handles.push(AbortOnDrop(
            runtime.spawn(consume_feed(weak.clone(), auth.inner.feed.subscribe())),
        ));
        handles.push(AbortOnDrop(
            runtime.spawn(read_change_log(weak.clone(), auth.inner.staleness)),
        ));
        handles.push(AbortOnDrop(runtime.spawn(sweep(
            weak.clone(),
            auth.inner.maintenance_interval,
            auth.inner.clock.now(),
        ))));
        handles.push(AbortOnDrop(runtime.spawn(export_metrics(weak.clone()))));
        if let Some(tokens) = &auth.inner.tokens {
            let period = StdDuration::try_from(tokens.config().use_interval)
                .unwrap_or(StdDuration::from_secs(5))
                .max(StdDuration::from_millis(10));
            handles.push(AbortOnDrop(runtime.spawn(flush_token_use(weak, period))));
        }
        Self { _handles: handles }
    }
}

/// The `Auth` of a task, while it exists.
fn upgrade(weak: &Weak<Inner>) -> Option<Auth> {
    weak.upgrade().map(|inner| Auth { inner })
}

/// Applies what the change feed brings.
async fn consume_feed(weak: Weak<Inner>, mut events: tokio::sync::broadcast::Receiver<FeedEvent>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => FeedEvent::Resync,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(auth) = upgrade(&weak) else { return };
        auth.apply(&event).await;
    }
}

/// Hands the hot path's counts and the gauges to the metrics recorder every
/// [`EXPORT_INTERVAL`](crate::telemetry::EXPORT_INTERVAL).
async fn export_metrics(weak: Weak<Inner>) {
    let mut ticker = tokio::time::interval(crate::telemetry::EXPORT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(auth) = upgrade(&weak) else { return };
        auth.export_metrics();
    }
}

/// Writes the noted `last_used_at` times every `period`.
async fn flush_token_use(weak: Weak<Inner>, period: StdDuration) {
    // The first write one period after the start (nothing has been noted at the start).
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(auth) = upgrade(&weak) else { return };
        if let Some(tokens) = &auth.inner.tokens
            && let Err(e) = tokens.flush_usage().await
        {
            tracing::warn!(error = %e, "could not record API token use");
        }
    }
}

/// Deletes what has expired every `period`: the first time at once, of what had expired at
/// `started` (when the tasks started), then of what has expired by then; and drops the
/// revocations of expired tokens from the in-memory list.
async fn sweep(weak: Weak<Inner>, period: StdDuration, started: time::OffsetDateTime) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = Some(started);
    loop {
        ticker.tick().await;
        let Some(auth) = upgrade(&weak) else { return };
        let now = first.take().unwrap_or_else(|| auth.inner.clock.now());
        auth.delete_expired(now).await;
        if let Some(tokens) = &auth.inner.tokens {
            let dropped = tokens.prune_revocations().await;
            if dropped > 0 {
                tracing::debug!(dropped, "pruned expired revocations");
            }
        }
    }
}

/// How many change log entries one read applies at most.
const CHANGE_LOG_PAGE: u32 = 500;

/// Reads the store's change log every half staleness bound and applies what this instance has
/// not applied; marks the changes stale (token requests refused) when it could not for longer
/// than the bound.
async fn read_change_log(weak: Weak<Inner>, staleness: StdDuration) {
    let period = staleness / 2;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Option<i64> = None;
    let mut last_read = std::time::Instant::now();
    loop {
        ticker.tick().await;
        let Some(auth) = upgrade(&weak) else { return };
        let changes = auth.inner.changes.clone();
        changes.record_pending().await;
        match tokio::time::timeout(staleness, auth.catch_up(seen)).await {
            Ok(Ok(version)) => {
                seen = Some(version);
                last_read = std::time::Instant::now();
                changes.note_read();
                changes.set_fresh(true);
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "could not read the change log");
            }
            Err(_) => tracing::warn!("reading the change log timed out"),
        }
        if last_read.elapsed() > staleness {
            changes.set_fresh(false);
        }
    }
}

impl Auth {
    /// Applies the change log's entries after version `seen` made by other instances (all
    /// caches are dropped when entries are missing); returns the version now applied.
    async fn catch_up(&self, seen: Option<i64>) -> Result<i64, crate::StoreError> {
        let store = self.inner.changes.store();
        let current = store.change_version().await?;
        // The first read applies every entry the log still holds (its retention, an hour)
        // that another instance made: a change recorded between this instance's start and
        // this read, whose feed message was lost, is among them. Entries from before the
        // start find nothing cached and cost nothing; the caches keep whatever no change
        // touched.
        let mut applied = match seen {
            Some(version) => version,
            None => match store.changes_after(0, 1).await?.first() {
                Some(oldest) => oldest.version - 1,
                None => return Ok(current),
            },
        };
        if current == applied {
            return Ok(current);
        }
        if current < applied {
            // The log was reset under us: nothing it says can be trusted to be complete.
            self.apply(&FeedEvent::Resync).await;
            return Ok(current);
        }
        while applied < current {
            let entries = store.changes_after(applied, CHANGE_LOG_PAGE).await?;
            if entries.first().is_none_or(|e| e.version != applied + 1) {
                // Entries were pruned before this instance read them.
                self.apply(&FeedEvent::Resync).await;
                return Ok(current);
            }
            for entry in entries {
                if entry.version != applied + 1 {
                    self.apply(&FeedEvent::Resync).await;
                    return Ok(current);
                }
                if self.inner.changes.take_own(entry.version) {
                    // Made here, and applied here when it was made.
                    applied = entry.version;
                    continue;
                }
                match serde_json::from_str::<Change>(&entry.payload) {
                    Ok(change) => self.apply(&FeedEvent::Change(change)).await,
                    Err(err) => {
                        tracing::warn!(error = %err, "unreadable change log entry: resyncing");
                        self.apply(&FeedEvent::Resync).await;
                    }
                }
                applied = entry.version;
            }
        }
        Ok(applied)
    }

    /// Deletes what has expired (each failure logged): idle rate-limit keys, sessions,
    /// one-time tokens, sign-in flows with a provider, passkey ceremonies, change log entries past their
    /// retention, and audit events past theirs when one is set.
    async fn delete_expired(&self, now: time::OffsetDateTime) {
        let store = &self.inner.store;
        let log = |what: &str, result: Result<u64, crate::StoreError>| match result {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, what, "swept expired rows"),
            Err(err) => tracing::warn!(error = %err, what, "could not sweep expired rows"),
        };
        log("rate limits", store.delete_expired_rate_limits(now).await);
        log("sessions", store.delete_expired_sessions(now).await);
        log(
            "one-time tokens",
            store.delete_expired_one_time_tokens(now).await,
        );
        log("oauth flows", store.delete_expired_oauth_flows(now).await);
        log(
            "challenges (pending sign-ins, passkey ceremonies)",
            store.delete_expired_challenges(now).await,
        );
        log(
            "change log",
            store
                .delete_changes_before(now - CHANGE_LOG_RETENTION)
                .await,
        );
        if let Some(retention) = self.inner.audit_retention {
            log(
                "audit events",
                self.prune_audit_events(now - retention).await,
            );
        }
    }

    /// Deletes audit events older than `before`, batch by batch, at most
    /// [`AUDIT_PRUNE_BATCHES`] batches; answers how many went.
    async fn prune_audit_events(
        &self,
        before: time::OffsetDateTime,
    ) -> Result<u64, crate::StoreError> {
        let mut deleted = 0;
        for _ in 0..AUDIT_PRUNE_BATCHES {
            let n = self
                .inner
                .store
                .delete_audit_events_before(before, AUDIT_PRUNE_BATCH)
                .await?;
            deleted += n;
            if n < u64::from(AUDIT_PRUNE_BATCH) {
                break;
            }
        }
        Ok(deleted)
    }

    /// How long audit events are kept (`None`: forever), as
    /// [`AuthBuilder::audit_retention`] set it.
    #[must_use]
    pub fn audit_retention(&self) -> Option<time::Duration> {
        self.inner.audit_retention
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
