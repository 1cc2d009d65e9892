//! The account flows of the contract's `/auth` routes, without HTTP: sign-up, sign-in,
//! sign-out, email verification, password reset and change of password.
//!
//! [`Accounts`] ties together what the flows need: the store, the clock, the
//! [`SessionManager`], the [`PasswordHasher`], the [`PasswordPolicy`], the [`RateLimiter`], a
//! [`Mailer`] with its [`MailTemplates`], and the [`AppOrigin`] that mailed links point to.
//! Adapters parse requests, call these functions and turn the results into responses; every
//! error is an [`AuthError`] with the contract's code.
//!
//! What the flows guarantee:
//! - Sign-in answers `invalid_credentials` alike for an unknown email, a user without a
//!   password, a wrong password and a malformed email, and spends a password verification in
//!   every case (a dummy one when there is no hash), so neither the answer nor its time tells
//!   whether an account exists. Failed sign-ins count against the per-email and per-address
//!   limits; past them the answer is `rate_limited`, even for the right password.
//! - Every sign-in and sign-up makes a new session (new id, new token); none is reused.
//! - Mailed tokens are 256-bit random strings; the store keeps only their SHA-256, with a
//!   purpose, and consumes them once. A verification link lasts
//!   [`AccountsConfig::verification_ttl`] (24 h), a reset link [`AccountsConfig::reset_ttl`]
//!   (1 h); a new reset link voids the older ones.
//! - [`Accounts::request_password_reset`] answers `Ok(())` whatever happens for a well-formed
//!   request: unknown account, mail limit reached or mailer down are not told.
//! - A password reset ends every session of the user; a change of password ends all but the
//!   current one.
//! - Mail and audit failures after the action succeeded are logged, not returned: the user's
//!   action happened, and answering an error would invite a retry that repeats it.
//!
//! Links: verification `APP_ORIGIN/auth/verify-email?token=…` (the contract's GET route, which
//! verifies and redirects); reset `APP_ORIGIN/reset-password?token=…`, a page of the app with
//! the form that posts `{token, password}` to `/auth/password-reset/confirm` (a GET of the
//! confirm route cannot set a password). Both paths are settings of [`AccountsConfig`].

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::json;
use time::Duration;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::audit;
use crate::mail::{MailTemplates, Mailer};
use crate::password::{PasswordConfig, PasswordError, PasswordHasher, Verified};
use crate::password_policy::PasswordPolicy;
use crate::rate_limit::{RateLimitConfig, RateLimiter};
use crate::secret::generate_token;
use crate::session::{CreatedSession, SessionManager, SessionMeta};
use crate::telemetry;
use crate::web::AppOrigin;
use crate::{
    AuditEvent, AuditKind, AuthError, AuthStore, Clock, Email, ErrorCode, NewUser, OneTimeToken,
    OneTimeTokenId, SecretString, SessionId, TokenHash, TokenPurpose, User, UserId,
};

/// What a sign-in with a password came to.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignIn {
    /// Signed in: a new session.
    Session {
        /// The user.
        user: User,
        /// The new session.
        session: CreatedSession,
    },
    /// The password was right and the user has a second factor: no session yet; the
    /// pending sign-in waits for the factor ([`crate::mfa::Mfa::verify`]).
    SecondFactor {
        /// The user.
        user: User,
        /// The pending sign-in.
        pending: crate::mfa::PendingSignIn,
    },
}

impl SignIn {
    /// The user and the new session, when the sign-in is complete; `None` while a second
    /// factor is awaited.
    #[must_use]
    pub fn into_session(self) -> Option<(User, CreatedSession)> {
        match self {
            Self::Session { user, session } => Some((user, session)),
            Self::SecondFactor { .. } => None,
        }
    }

    /// The user, either way.
    #[must_use]
    pub const fn user(&self) -> &User {
        match self {
            Self::Session { user, .. } | Self::SecondFactor { user, .. } => user,
        }
    }
}

/// Settings of the account flows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountsConfig {
    /// How long an email verification link works (default 24 hours).
    pub verification_ttl: Duration,
    /// How long a password reset link works (default 1 hour).
    pub reset_ttl: Duration,
    /// The path of the verification link, on the app's origin; `?token=…` is appended
    /// (default `/auth/verify-email`, the contract's GET route).
    pub verify_email_path: String,
    /// The path of the reset link, on the app's origin; `?token=…` is appended (default
    /// `/reset-password`: a page with a form that posts to `/auth/password-reset/confirm`).
    pub reset_password_path: String,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            verification_ttl: Duration::hours(24),
            reset_ttl: Duration::hours(1),
            verify_email_path: "/auth/verify-email".to_owned(),
            reset_password_path: "/reset-password".to_owned(),
        }
    }
}

/// Who is asking: the client address (from the socket, or from trusted proxies) and the user
/// agent. Recorded on sessions and audit events; the address keys the rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address.
    pub ip: IpAddr,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// A client at `ip` without a user agent.
    #[must_use]
    pub const fn new(ip: IpAddr) -> Self {
        Self {
            ip,
            user_agent: None,
        }
    }

    pub(crate) fn session_meta(&self) -> SessionMeta {
        SessionMeta {
            user_agent: self.user_agent.clone(),
            ip: Some(self.ip.to_string()),
            active_org_id: None,
        }
    }
}

/// The account flows. Cheap to clone: clones share the store, the session cache, the hasher's
/// limits and the mailer.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn AuthStore>,
    clock: Arc<dyn Clock>,
    sessions: SessionManager,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    rate_limiter: RateLimiter,
    mailer: Arc<dyn Mailer>,
    templates: MailTemplates,
    origin: AppOrigin,
    config: AccountsConfig,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("sessions", &self.sessions)
            .field("hasher", &self.hasher)
            .field("policy", &self.policy)
            .field("rate_limiter", &self.rate_limiter)
            .field("mailer", &self.mailer)
            .field("templates", &self.templates)
            .field("origin", &self.origin)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// The flows over `store`, with times from `clock`, sessions from `sessions` (share it
    /// with the adapter that validates cookies), mail through `mailer` and links on `origin`.
    ///
    /// Defaults for the rest: [`PasswordConfig::default`], [`PasswordPolicy::default`],
    /// [`RateLimitConfig::default`] (the contract's limits), templates named after the
    /// origin's host, [`AccountsConfig::default`]; the `with_*` methods replace them.
    #[must_use]
    pub fn new(
        store: Arc<dyn AuthStore>,
        clock: Arc<dyn Clock>,
        sessions: SessionManager,
        mailer: Arc<dyn Mailer>,
        origin: AppOrigin,
    ) -> Self {
        let rate_limiter =
            RateLimiter::new(store.clone(), RateLimitConfig::default(), clock.clone());
        Self {
            store,
            clock,
            sessions,
            hasher: PasswordHasher::new(PasswordConfig::default()),
            policy: PasswordPolicy::default(),
            rate_limiter,
            mailer,
            templates: MailTemplates::new(origin.host()),
            origin,
            config: AccountsConfig::default(),
        }
    }

    /// The password hasher (its queue and work in flight are metrics).
    #[must_use]
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Replaces the password hasher.
    #[must_use]
    pub fn with_password_hasher(mut self, hasher: PasswordHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Replaces the password policy.
    #[must_use]
    pub fn with_password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Replaces the rate limiter.
    #[must_use]
    pub fn with_rate_limiter(mut self, rate_limiter: RateLimiter) -> Self {
        self.rate_limiter = rate_limiter;
        self
    }

    /// Replaces the mail templates.
    #[must_use]
    pub fn with_templates(mut self, templates: MailTemplates) -> Self {
        self.templates = templates;
        self
    }

    /// Replaces the settings.
    #[must_use]
    pub fn with_config(mut self, config: AccountsConfig) -> Self {
        self.config = config;
        self
    }

    /// The session manager the flows start and end sessions with.
    #[must_use]
    pub const fn sessions(&self) -> &SessionManager {
        &self.sessions
    }

    /// The rate limiter the flows count attempts with.
    #[must_use]
    pub const fn rate_limiter(&self) -> &RateLimiter {
        &self.rate_limiter
    }

    /// The settings.
    #[must_use]
    pub const fn config(&self) -> &AccountsConfig {
        &self.config
    }

    /// Creates an account with a password and signs it in; mails a verification link.
    ///
    /// # Errors
    /// `rate_limited` past the sign-up limit of the client address; `invalid_request` for a
    /// malformed email; `weak_password` for a password the policy refuses; `email_taken` when
    /// the email (compared case-insensitively) has an account; store errors.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &SecretString,
        name: Option<String>,
        client: &ClientInfo,
    ) -> Result<(User, CreatedSession), AuthError> {
        let span = tracing::info_span!("keystead.sign_up", user_id = Empty, outcome = Empty);
        let result = self
            .sign_up_with_password(email, password, name, client)
            .instrument(span.clone())
            .await;
        if let Ok((user, _)) = &result {
            span.record("user_id", tracing::field::display(user.id));
        }
        telemetry::sign_up(&span, &result);
        result
    }

    async fn sign_up_with_password(
        &self,
        email: &str,
        password: &SecretString,
        name: Option<String>,
        client: &ClientInfo,
    ) -> Result<(User, CreatedSession), AuthError> {
        self.rate_limiter.hit_sign_up(client.ip).await?;
        let email = Email::parse(email).map_err(|_| {
            AuthError::new(ErrorCode::InvalidRequest).with_detail("The email address is invalid.")
        })?;
        let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        self.check_policy(password, &email, name.as_deref())?;
        let hash = self.hash(password).await?;
        let user = self
            .store
            .create_user(&NewUser {
                user: User {
                    id: UserId::new(),
                    email,
                    name,
                    email_verified_at: None,
                    created_at: self.clock.now(),
                    external_id: None,
                    disabled_at: None,
                },
                password_hash: Some(hash),
            })
            .await?;
        let created = self.sessions.create(user.id, client.session_meta()).await?;
        audit::record(
            &*self.store,
            &AuditEvent {
                actor_id: Some(user.id),
                user_id: Some(user.id),
                ..client.audit_event(AuditKind::SignUp, self.clock.now())
            },
        )
        .await;
        if let Err(err) = self.send_verification(&user).await {
            // The account exists and is signed in; the user can ask for another link.
            tracing::error!(user_id = %user.id, error = %err.code, "verification mail failed");
        }
        Ok((user, created))
    }

    /// Signs in with email and password: a new session on success.
    ///
    /// # Errors
    /// `invalid_credentials` for a malformed or unknown email, a user without a password and
    /// a wrong password alike; `rate_limited` (with `retry_after_secs`) past the failed
    /// sign-in limits, whatever the password; store errors.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<SignIn, AuthError> {
        let span = tracing::info_span!(
            "keystead.sign_in",
            method = "password",
            user_id = Empty,
            outcome = Empty
        );
        let result = self
            .sign_in_with_password(email, password, client)
            .instrument(span.clone())
            .await;
        if let Ok(signed_in) = &result {
            span.record("user_id", tracing::field::display(signed_in.user().id));
        }
        telemetry::sign_in("password", &span, &result);
        result
    }

    async fn sign_in_with_password(
        &self,
        email: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<SignIn, AuthError> {
        let Ok(email) = Email::parse(email) else {
            // The address's limit first: no password work for a client past it.
            let attempt = self
                .rate_limiter
                .begin_sign_in_without_email(client.ip)
                .await?;
            // Spend the same work as for a well-formed unknown email.
            if let Err(err) = busy(self.hasher.verify_dummy(password).await) {
                attempt.succeeded().await?;
                return Err(err);
            }
            drop(attempt);
            return Err(AuthError::new(ErrorCode::InvalidCredentials));
        };
        let attempt = self.rate_limiter.begin_sign_in(&email, client.ip).await?;
        let user = self.store.user_by_email(&email).await?;
        let credential = match &user {
            Some(user) => self.store.password_credential(user.id).await?,
            None => None,
        };
        let (user, credential) = match (user, credential) {
            (Some(user), Some(credential)) => (user, credential),
            (user, _) => {
                if let Err(err) = busy(self.hasher.verify_dummy(password).await) {
                    // Nothing was verified: the slots go back.
                    attempt.succeeded().await?;
                    return Err(err);
                }
                let reason = if user.is_some() {
                    "no_password"
                } else {
                    "unknown_user"
                };
                let user_id = user.map(|u| u.id);
                audit::record(
                    &*self.store,
                    &AuditEvent {
                        user_id,
                        data: json!({ "email": email.as_str(), "reason": reason }),
                        ..client.audit_event(AuditKind::SignInFailed, self.clock.now())
                    },
                )
                .await;
                drop(attempt);
                return Err(AuthError::new(ErrorCode::InvalidCredentials));
            }
        };
        let needs_rehash = match self.hasher.verify(password, &credential.hash).await {
            Ok(Verified::Valid { needs_rehash }) => needs_rehash,
            Err(err @ PasswordError::Busy { .. }) => {
                attempt.succeeded().await?;
                return Err(busy_error(&err));
            }
            outcome => {
                if let Err(err) = &outcome {
                    tracing::warn!(user_id = %user.id, error = %err, "password not verifiable");
                }
                audit::record(
                    &*self.store,
                    &AuditEvent {
                        user_id: Some(user.id),
                        data: json!({ "email": email.as_str(), "reason": "wrong_password" }),
                        ..client.audit_event(AuditKind::SignInFailed, self.clock.now())
                    },
                )
                .await;
                drop(attempt);
                return Err(AuthError::new(ErrorCode::InvalidCredentials));
            }
        };
        attempt.succeeded().await?;
        if needs_rehash {
            self.upgrade_hash(user.id, password).await;
        }
        let status = self.store.mfa_status(user.id).await?;
        if status.has_second_factor() {
            if user.disabled() {
                return Err(AuthError::new(ErrorCode::AccountDisabled));
            }
            // The password was right; the session waits for the second factor.
            let pending = crate::mfa::begin_pending_sign_in(
                &*self.store,
                self.clock.now(),
                user.id,
                &status,
                "password",
                None,
                client,
            )
            .await?;
            return Ok(SignIn::SecondFactor { user, pending });
        }
        let created = self.sessions.create(user.id, client.session_meta()).await?;
        audit::record(
            &*self.store,
            &AuditEvent {
                actor_id: Some(user.id),
                user_id: Some(user.id),
                data: json!({ "session_id": created.session.id.to_string() }),
                ..client.audit_event(AuditKind::SignInSucceeded, self.clock.now())
            },
        )
        .await;
        self.notify_new_device(&user, &created.session).await;
        Ok(SignIn::Session {
            user,
            session: created,
        })
    }

    /// Checks the current password of `user` (a re-authentication, or the proof a password
    /// change asks for). Wrong guesses count like failed sign-ins (a stolen session cannot
    /// brute-force the password) and are audited as `failure`.
    ///
    /// # Errors
    /// `invalid_request` for a user without a password; `invalid_credentials` for a wrong
    /// one; `rate_limited`; store errors.
    pub async fn check_password(
        &self,
        user: &User,
        password: &SecretString,
        failure: AuditKind,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let credential = self
            .store
            .password_credential(user.id)
            .await?
            .ok_or_else(|| {
                AuthError::new(ErrorCode::InvalidRequest)
                    .with_detail("The account has no password; set one through a password reset.")
            })?;
        let attempt = self
            .rate_limiter
            .begin_sign_in(&user.email, client.ip)
            .await?;
        match self.hasher.verify(password, &credential.hash).await {
            Ok(Verified::Valid { .. }) => attempt.succeeded().await?,
            Err(err @ PasswordError::Busy { .. }) => {
                attempt.succeeded().await?;
                return Err(busy_error(&err));
            }
            Ok(Verified::Invalid) | Err(_) => {
                drop(attempt);
                audit::record(
                    &*self.store,
                    &AuditEvent {
                        actor_id: Some(user.id),
                        user_id: Some(user.id),
                        data: json!({ "reason": "wrong_password" }),
                        ..client.audit_event(failure, self.clock.now())
                    },
                )
                .await;
                return Err(AuthError::new(ErrorCode::InvalidCredentials));
            }
        }
        Ok(())
    }

    /// Mails `user` a security notice (failures are logged: the change stands).
    pub async fn notify(&self, user: &User, notice: &crate::mail::SecurityNotice) {
        let message = self.templates.security_notice(user.email.clone(), notice);
        self.send(&message).await;
    }

    /// After a sign-in: when none of the user's other live sessions came from the same browser
    /// (`User-Agent`), mails a new-device notice. Failures are logged.
    pub async fn notify_new_device(&self, user: &User, session: &crate::Session) {
        let sessions = match self.sessions.list(user.id).await {
            Ok(sessions) => sessions,
            Err(err) => {
                tracing::warn!(error = %err.code, "could not list sessions for the new-device check");
                return;
            }
        };
        let seen = sessions
            .iter()
            .any(|s| s.id != session.id && s.user_agent == session.user_agent);
        if !seen {
            self.notify(
                user,
                &crate::mail::SecurityNotice::NewDevice {
                    user_agent: session.user_agent.clone(),
                    ip: session.ip.clone(),
                },
            )
            .await;
        }
    }

    /// Ends one session (sign-out): its token fails from now on. Returns whether it existed.
    ///
    /// # Errors
    /// Store errors.
    #[tracing::instrument(name = "keystead.sign_out", skip_all)]
    pub async fn sign_out(
        &self,
        session_id: SessionId,
        client: &ClientInfo,
    ) -> Result<bool, AuthError> {
        let user_id = self
            .store
            .session_by_id(session_id)
            .await?
            .map(|s| s.user_id);
        let existed = self.sessions.end(session_id).await?;
        if existed {
            audit::record(
                &*self.store,
                &AuditEvent {
                    actor_id: user_id,
                    user_id,
                    data: json!({ "session_id": session_id.to_string() }),
                    ..client.audit_event(AuditKind::SignOut, self.clock.now())
                },
            )
            .await;
        }
        Ok(existed)
    }

    /// Ends every session of `user_id`, the current one included. Returns how many ended.
    ///
    /// # Errors
    /// Store errors.
    #[tracing::instrument(name = "keystead.sign_out_everywhere", skip_all)]
    pub async fn sign_out_everywhere(
        &self,
        user_id: UserId,
        client: &ClientInfo,
    ) -> Result<u64, AuthError> {
        let ended = self.sessions.end_all_for_user(user_id, None).await?;
        audit::record(
            &*self.store,
            &AuditEvent {
                actor_id: Some(user_id),
                user_id: Some(user_id),
                data: json!({ "sessions_ended": ended }),
                ..client.audit_event(AuditKind::SignOutEverywhere, self.clock.now())
            },
        )
        .await;
        Ok(ended)
    }

    /// Mails `user` a new verification link (also called by sign-up). Past the per-account
    /// mail limit nothing is sent, and the answer is the same.
    ///
    /// # Errors
    /// Store errors. A mailer failure is logged, not returned.
    pub async fn send_verification(&self, user: &User) -> Result<(), AuthError> {
        if !self.rate_limiter.hit_account_mail(user.id).await? {
            tracing::info!(user_id = %user.id, "verification mail not sent: mail limit reached");
            return Ok(());
        }
        let ttl = self.config.verification_ttl;
        let token = self
            .issue_token(user, TokenPurpose::EmailVerification, ttl)
            .await?;
        let url = self.link(&self.config.verify_email_path, &token);
        let message = self
            .templates
            .email_verification(user.email.clone(), &url, ttl);
        self.send(&message).await;
        Ok(())
    }

    /// Verifies the email address with a mailed token: once, before it expires, and only
    /// while the user's address is still the one the link was sent to.
    ///
    /// # Errors
    /// `invalid_link` for an unknown, used or expired token (or one for an address the user no
    /// longer has); store errors.
    #[tracing::instrument(name = "keystead.verify_email", skip_all)]
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> Result<User, AuthError> {
        let now = self.clock.now();
        let consumed = self
            .store
            .consume_one_time_token(TokenPurpose::EmailVerification, &TokenHash::of(token), now)
            .await?
            .ok_or(AuthError::new(ErrorCode::InvalidLink))?;
        let user = self
            .store
            .user_by_id(consumed.user_id)
            .await?
            .ok_or(AuthError::new(ErrorCode::InvalidLink))?;
        if consumed.email.as_ref().is_some_and(|e| *e != user.email) {
            return Err(AuthError::new(ErrorCode::InvalidLink));
        }
        let user = self.store.mark_email_verified(user.id, now).await?;
        // Cached sessions hold the user record: let them see the verified address at once.
        self.sessions.invalidate_user(user.id);
        audit::record(
            &*self.store,
            &AuditEvent {
                actor_id: Some(user.id),
                user_id: Some(user.id),
                ..client.audit_event(AuditKind::EmailVerified, self.clock.now())
            },
        )
        .await;
        Ok(user)
    }

    /// Mails a reset link if an account has this email. Always `Ok(())` for any input: the
    /// answer never tells whether the account exists, whether the mail limit was reached or
    /// whether the mailer worked (those are logged).
    ///
    /// A new link voids the account's older reset links.
    #[tracing::instrument(name = "keystead.password_reset.request", skip_all)]
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) {
        if let Err(err) = self.try_request_password_reset(email, client).await {
            tracing::error!(error = %err.code, "password reset request failed");
        }
    }

    async fn try_request_password_reset(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        let Some(user) = self.store.user_by_email(&email).await? else {
            return Ok(());
        };
        if !self.rate_limiter.hit_account_mail(user.id).await? {
            tracing::info!(user_id = %user.id, "reset mail not sent: mail limit reached");
            return Ok(());
        }
        let message = self.reset_message(&user).await?;
        self.send(&message).await;
        audit::record(
            &*self.store,
            &AuditEvent {
                user_id: Some(user.id),
                ..client.audit_event(AuditKind::PasswordResetRequested, self.clock.now())
            },
        )
        .await;
        Ok(())
    }

    /// A new reset link for `user` (voiding their older ones), as the mail to send.
    async fn reset_message(&self, user: &User) -> Result<crate::mail::MailMessage, AuthError> {
        self.store
            .delete_one_time_tokens(user.id, TokenPurpose::PasswordReset)
            .await?;
        let ttl = self.config.reset_ttl;
        let token = self
            .issue_token(user, TokenPurpose::PasswordReset, ttl)
            .await?;
        let url = self.link(&self.config.reset_password_path, &token);
        Ok(self.templates.password_reset(user.email.clone(), &url, ttl))
    }

    /// Mails `user` a reset link at an operator's request: no rate limit, and a mailer
    /// failure is the caller's error (the operator is told), not only logged.
    pub(crate) async fn send_password_reset_now(&self, user: &User) -> Result<(), AuthError> {
        let message = self.reset_message(user).await?;
        self.mailer.send(&message).await.map_err(|err| {
            tracing::error!(error = %err, "reset mail failed");
            AuthError::new(ErrorCode::Unavailable).with_detail("The mail could not be sent.")
        })
    }

    /// Checks `password` against the policy and hashes it, for an account made by an operator.
    pub(crate) async fn hash_new_password(
        &self,
        password: &SecretString,
        email: &Email,
        name: Option<&str>,
    ) -> Result<SecretString, AuthError> {
        self.check_policy(password, email, name)?;
        self.hash(password).await
    }

    /// Sets a new password with a mailed reset token, and ends every session of the user; the
    /// user's id.
    ///
    /// The token is checked (and used up) before the password: a weak password spends the
    /// link, and the user asks for a new one. This keeps one store call deciding validity.
    ///
    /// # Errors
    /// `invalid_link` for an unknown, used or expired token; `weak_password`; store errors.
    #[tracing::instrument(name = "keystead.password_reset.confirm", skip_all)]
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &SecretString,
        client: &ClientInfo,
    ) -> Result<UserId, AuthError> {
        let now = self.clock.now();
        let consumed = self
            .store
            .consume_one_time_token(TokenPurpose::PasswordReset, &TokenHash::of(token), now)
            .await?
            .ok_or(AuthError::new(ErrorCode::InvalidLink))?;
        let user = self
            .store
            .user_by_id(consumed.user_id)
            .await?
            .ok_or(AuthError::new(ErrorCode::InvalidLink))?;
        self.check_policy(new_password, &user.email, user.name.as_deref())?;
        let hash = self.hash(new_password).await?;
        self.store.set_password_hash(user.id, &hash, now).await?;
        let ended = self.sessions.end_all_for_user(user.id, None).await?;
        audit::record(
            &*self.store,
            &AuditEvent {
                actor_id: Some(user.id),
                user_id: Some(user.id),
                data: json!({ "sessions_ended": ended }),
                ..client.audit_event(AuditKind::PasswordReset, self.clock.now())
            },
        )
        .await;
        Ok(user.id)
    }

    /// Changes the password of a signed-in user who knows the current one; every other
    /// session of the user ends, `current_session` stays.
    ///
    /// # Errors
    /// `invalid_request` for a user without a password (they set one through a reset);
    /// `invalid_credentials` for a wrong current password, counted against the failed
    /// sign-in limits (`rate_limited` past them); `weak_password`; `not_found` for an
    /// unknown user; store errors.
    #[tracing::instrument(name = "keystead.change_password", skip_all)]
    pub async fn change_password(
        &self,
        user_id: UserId,
        current_session: SessionId,
        current_password: &SecretString,
        new_password: &SecretString,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::new(ErrorCode::NotFound))?;
        // Guesses at the current password count like failed sign-ins: a stolen session
        // cannot be used to brute-force the password.
        self.check_password(
            &user,
            current_password,
            AuditKind::PasswordChangeFailed,
            client,
        )
        .await?;
        self.check_policy(new_password, &user.email, user.name.as_deref())?;
        let hash = self.hash(new_password).await?;
        self.store
            .set_password_hash(user_id, &hash, self.clock.now())
            .await?;
        let ended = self
            .sessions
            .end_all_for_user(user_id, Some(current_session))
            .await?;
        audit::record(
            &*self.store,
            &AuditEvent {
                actor_id: Some(user_id),
                user_id: Some(user_id),
                data: json!({ "sessions_ended": ended }),
                ..client.audit_event(AuditKind::PasswordChanged, self.clock.now())
            },
        )
        .await;
        self.notify(&user, &crate::mail::SecurityNotice::PasswordChanged)
            .await;
        Ok(())
    }

    fn check_policy(
        &self,
        password: &SecretString,
        email: &Email,
        name: Option<&str>,
    ) -> Result<(), AuthError> {
        let mut context = vec![email.as_str()];
        context.extend(name);
        Ok(self.policy.check(password.expose(), &context)?)
    }

    async fn hash(&self, password: &SecretString) -> Result<SecretString, AuthError> {
        self.hasher.hash(password).await.map_err(|err| match err {
            PasswordError::TooLong { max } => AuthError::new(ErrorCode::WeakPassword)
                .with_detail(format!("The password must be at most {max} bytes long.")),
            busy @ PasswordError::Busy { .. } => busy_error(&busy),
            other => {
                tracing::error!(error = %other, "password hashing failed");
                AuthError::new(ErrorCode::Internal)
            }
        })
    }

    /// Stores a hash of the configured kind for a password that verified against an older
    /// one. A failure is logged: the old hash still works.
    async fn upgrade_hash(&self, user_id: UserId, password: &SecretString) {
        let result = match self.hasher.hash(password).await {
            Ok(hash) => self
                .store
                .set_password_hash(user_id, &hash, self.clock.now())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = result {
            tracing::warn!(%user_id, %error, "could not upgrade the password hash");
        }
    }

    /// Makes and stores a one-time token; returns the token to mail.
    async fn issue_token(
        &self,
        user: &User,
        purpose: TokenPurpose,
        ttl: Duration,
    ) -> Result<SecretString, AuthError> {
        let now = self.clock.now();
        let token = generate_token();
        self.store
            .create_one_time_token(&OneTimeToken {
                id: OneTimeTokenId::new(),
                purpose,
                user_id: user.id,
                token_hash: TokenHash::of(token.expose()),
                email: Some(user.email.clone()),
                created_at: now,
                expires_at: now + ttl,
                used_at: None,
            })
            .await?;
        Ok(token)
    }

    /// `origin + path + ?token=…`; the token is base64url, safe in a query as it is.
    fn link(&self, path: &str, token: &SecretString) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        self.origin
            .join(&format!("{path}{separator}token={}", token.expose()))
    }

    async fn send(&self, message: &crate::mail::MailMessage) {
        if let Err(err) = self.mailer.send(message).await {
            tracing::error!(error = %err, subject = %message.subject, "mail not sent");
        }
    }
}

/// Seconds a client is asked to wait when password hashing is saturated.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// 503 `unavailable` with `Retry-After`, for [`PasswordError::Busy`]: the hashing queue is full
/// and nothing was checked.
fn busy_error(err: &PasswordError) -> AuthError {
    tracing::warn!(error = %err, "password hashing saturated: request shed");
    let mut error = AuthError::new(ErrorCode::Unavailable)
        .with_detail("Too many sign-ins at once; try again in a moment.");
    error.retry_after_secs = Some(BUSY_RETRY_AFTER_SECS);
    error
}

/// The outcome of a dummy verification: only [`PasswordError::Busy`] matters (as a 503); the
/// answer is "invalid" either way.
fn busy(outcome: Result<Verified, PasswordError>) -> Result<(), AuthError> {
    match outcome {
        Err(err @ PasswordError::Busy { .. }) => Err(busy_error(&err)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_hashing_queue_is_503_with_retry_after() {
        let err = busy_error(&PasswordError::Busy { queued: 16 });
        let response = crate::routes::problem_response(&err);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["code"], "unavailable");
        assert!(busy(Ok(Verified::Invalid)).is_ok());
        assert!(busy(Err(PasswordError::TooLong { max: 1 })).is_ok());
        assert_eq!(
            busy(Err(PasswordError::Busy { queued: 1 }))
                .unwrap_err()
                .code,
            ErrorCode::Unavailable
        );
    }
}
