//! Sign-in with a provider (OpenID Connect): the flow, its state, and the rules for accounts.
//!
//! The core owns everything but the talk with the provider, which goes through the small
//! [`IdentityProvider`] trait (`keystead-oidc` implements it with the `openidconnect` crate, so the
//! core's dependency tree keeps no HTTP client):
//!
//! 1. [`OAuth::start`] makes a flow: a random reference for the browser's flow cookie, `state`,
//!    `nonce` and a PKCE verifier (256 bits each, from the OS), stores it (the reference only as
//!    its hash) for [`OAUTH_FLOW_TTL`], and asks the provider for its authorization URL with the
//!    verifier's S256 challenge. The redirect URI is `APP_ORIGIN/auth/oauth/{provider}/callback`.
//! 2. [`OAuth::callback`] takes the flow that the cookie names out of the store (once: a replay
//!    finds nothing), checks the provider and `state`, and only then looks at the provider's
//!    answer: an `error` ends the flow as [`FlowFailure::Denied`] or
//!    [`FlowFailure::Failed`]; a `code` is exchanged with the verifier, and the provider
//!    checks the ID token (signature, `iss`, `aud`, `exp`, nonce) before returning its claims.
//! 3. The identity is resolved to a user by (issuer, subject), never by email; see
//!    [`OAuth::callback`] for the linking rules, including the end of a pre-registered
//!    account's other ways in.
//!
//! A callback that is not a live flow of this browser is `invalid_link` (400) and changes
//! nothing; a live flow that fails says why in a [`FlowFailure`] and creates nothing.

use std::fmt;
use std::sync::Arc;
use tracing::Instrument as _;

use async_trait::async_trait;
use serde_json::json;
use time::Duration;

use crate::accounts::ClientInfo;
use crate::audit;
use crate::auth::Auth;
use crate::routes::local_path;
use crate::secret::generate_token;
use crate::session::{CreatedSession, SessionMeta};
use crate::tokens::Change;
use crate::{
    AuditEvent, AuditKind, AuthError, Email, ErrorCode, ExternalAccount, ExternalAccountId,
    NewUser, OAuthFlow, SecretString, StoreError, TokenHash, TokenPurpose, User, UserId,
};

/// How long a flow may take, from the redirect to the provider to the callback.
pub const OAUTH_FLOW_TTL: Duration = Duration::minutes(10);

/// What the provider needs to build the authorization URL, and to redeem the code.
#[derive(Clone, Copy)]
pub struct AuthorizationParams<'a> {
    /// `APP_ORIGIN/auth/oauth/{provider}/callback`.
    pub redirect_uri: &'a str,
    /// The `state` to send (and that comes back).
    pub state: &'a str,
    /// The `nonce` the ID token must carry.
    pub nonce: &'a str,
    /// The PKCE code verifier: the authorization URL carries its S256 challenge, the token
    /// request the verifier itself.
    pub pkce_verifier: &'a str,
}

impl fmt::Debug for AuthorizationParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationParams")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// The claims of a verified ID token that the core uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// `iss`, as the provider's configuration names it (Google's `accounts.google.com` alias
    /// is reported as the configured issuer, so one person has one key).
    pub issuer: String,
    /// `sub`: stable at the issuer.
    pub subject: String,
    /// `email`, if the provider gave one.
    pub email: Option<String>,
    /// `email_verified`; `false` when absent.
    pub email_verified: bool,
    /// `name`, if given.
    pub name: Option<String>,
}

/// Why the provider side of a flow failed. Logged; the user sees `oauth_failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider could not be reached, or its discovery document, keys or answer made no
    /// sense (including a discovered issuer other than the configured one).
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The token endpoint refused the code (used, expired, another client's, wrong verifier).
    #[error("the provider refused the code: {0}")]
    Refused(String),
    /// The ID token did not verify: signature, `iss`, `aud`, `azp`, `exp` or nonce.
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),
}

/// Whether a sign-in with a provider may link its identity to an existing account because
/// the emails match.
///
/// An identity that is not linked yet, whose email belongs to an existing account, is either
/// linked to that account ([`EmailLinking::VerifiedEmail`]) or refused with
/// [`FlowFailure::LinkRequired`] ([`EmailLinking::Never`]): the owner signs in (with their
/// password or a linked provider) and links the provider from there. Linking by email trusts
/// the provider's `email_verified` as much as a mailed link: turn it on only for providers
/// that are authoritative for the addresses they assert (the Google preset is); a generic
/// OpenID provider may let its users set any address, so the default is `Never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EmailLinking {
    /// Never link by email: an identity whose email belongs to an existing account is refused
    /// with `link_required` (nothing is created or linked).
    #[default]
    Never,
    /// Link to the account with the same email when the provider says the email is verified
    /// (`email_verified: true`); an account that never verified that address loses its other
    /// ways in (see [`OAuth::callback`]). An unverified provider email is refused
    /// (`account_exists`).
    VerifiedEmail,
}

/// An OpenID Connect provider, as the flow needs it.
#[async_trait]
pub trait IdentityProvider: Send + Sync + fmt::Debug {
    /// The name in routes and links (`google`, `oidc`): 1 to 32 of `a-z`, `0-9`, `-`.
    fn id(&self) -> &str;

    /// The name on buttons ("Google").
    fn display_name(&self) -> &str;

    /// Whether an identity of this provider may be linked to an existing account by its
    /// email. The default is the safe one, [`EmailLinking::Never`].
    fn email_linking(&self) -> EmailLinking {
        EmailLinking::Never
    }

    /// The URL to send the browser to: `response_type=code`, `scope=openid email profile`,
    /// the given `state`, `nonce` and redirect URI, and `code_challenge` = S256 of the
    /// verifier with `code_challenge_method=S256`.
    async fn authorization_url(
        &self,
        params: &AuthorizationParams<'_>,
    ) -> Result<String, ProviderError>;

    /// Redeems `code` with the verifier and the redirect URI, and verifies the ID token that
    /// comes back (signature by the provider's keys, `iss`, `aud`, `azp`, `exp`, and that its
    /// `nonce` is `params.nonce`).
    async fn exchange_code(
        &self,
        code: &str,
        params: &AuthorizationParams<'_>,
    ) -> Result<ProviderIdentity, ProviderError>;
}

/// `path` with every byte that may not stand in a `Location` header as it is (non-ASCII,
/// spaces) percent-encoded; the rest (`/`, `?`, `&`, `%`, …) kept.
fn encode_for_location(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_graphic() {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Whether `id` can name a provider: 1 to 32 of `a-z`, `0-9`, `-`.
#[must_use]
pub fn is_valid_provider_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A live flow failed; the user goes back to `/sign-in?error=<code>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowFailure {
    /// The user declined at the provider (`error=access_denied`): `oauth_denied`.
    Denied,
    /// The provider or its token failed, or the flow could not finish: `oauth_failed`.
    Failed,
    /// The identity may not be used here: its unverified email belongs to an existing
    /// account, or (linking) it is linked to another user, or the account has another
    /// identity at this provider: `account_exists`.
    AccountExists,
    /// The identity's email belongs to an existing account and the provider does not link by
    /// email ([`EmailLinking::Never`]): the owner signs in and links the provider from
    /// there: `link_required`.
    LinkRequired,
}

impl FlowFailure {
    /// The `error` code on the sign-in page.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Denied => "oauth_denied",
            Self::Failed => "oauth_failed",
            Self::AccountExists => "account_exists",
            Self::LinkRequired => "link_required",
        }
    }
}

/// A started flow: where to send the browser, and the reference for its flow cookie.
#[derive(Debug)]
pub struct StartedFlow {
    /// The provider's authorization URL.
    pub authorization_url: String,
    /// The reference that goes into the flow cookie.
    pub cookie_token: SecretString,
}

/// The end of a live flow.
#[derive(Debug)]
#[non_exhaustive]
pub enum FlowOutcome {
    /// Signed in: a new session for `user`.
    SignedIn {
        /// Who.
        user: Box<User>,
        /// The new session and its token.
        session: Box<CreatedSession>,
        /// Where to go: the flow's `next`, or `/dashboard`.
        next: String,
    },
    /// The provider vouched for `user`, who has a second factor: no session yet; the pending
    /// sign-in waits for the factor (the route sends the browser to the sign-in page's second
    /// step).
    SecondFactor {
        /// Who.
        user: Box<User>,
        /// The pending sign-in.
        pending: Box<crate::mfa::PendingSignIn>,
        /// Where to go afterwards: the flow's `next`, or `/dashboard`.
        next: String,
    },
    /// The provider was linked to the signed-in user, whose session stays.
    Linked {
        /// Where to go: the flow's `next`, or `/dashboard`.
        next: String,
    },
    /// The flow failed; nothing was created.
    Failed {
        /// Why.
        failure: FlowFailure,
        /// The flow's `next`, to keep on the sign-in page.
        next: Option<String>,
    },
}

/// What the callback request brought.
#[derive(Debug, Default, Clone)]
pub struct CallbackParams {
    /// `state`.
    pub state: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `error` (`access_denied`, …).
    pub error: Option<String>,
}

/// The sign-in flows with providers of one [`Auth`].
#[derive(Clone, Copy)]
pub struct OAuth<'a> {
    auth: &'a Auth,
}

impl fmt::Debug for OAuth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("providers", &self.auth.inner.providers)
            .finish()
    }
}

impl<'a> OAuth<'a> {
    pub(crate) const fn new(auth: &'a Auth) -> Self {
        Self { auth }
    }

    /// The configured provider with this id.
    #[must_use]
    pub fn provider(&self, id: &str) -> Option<&'a Arc<dyn IdentityProvider>> {
        self.auth.inner.providers.iter().find(|p| p.id() == id)
    }

    /// The redirect URI of a provider: `APP_ORIGIN<base>/auth/oauth/{id}/callback`.
    #[must_use]
    pub fn redirect_uri(&self, provider_id: &str) -> String {
        self.auth.origin().join(
            &self
                .auth
                .surface()
                .library_path(&format!("/auth/oauth/{provider_id}/callback")),
        )
    }

    /// Starts a flow with `provider_id`: to sign in, or to link the provider to `link_user`.
    ///
    /// `Ok(Err(FlowFailure::Failed))` when the provider cannot give an authorization URL
    /// (its discovery failed, or found another issuer): the user goes back to the sign-in page.
    ///
    /// A link flow (`link_user`) needs a user whose email is verified: an unverified account
    /// may be a squatter's registration of someone else's address, and a provider linked to
    /// it would be a way into the account after the owner claims it.
    ///
    /// # Errors
    /// `not_found` for an unknown provider; `invalid_request` for a `next` that is not a local
    /// path; `email_not_verified` (403) for a link flow of a user whose email is not
    /// verified (`unauthenticated` for an unknown user); `rate_limited` past the flow starts
    /// allowed per client address; store errors.
    #[tracing::instrument(name = "keystead.oauth.start", skip_all, fields(provider = provider_id))]
    pub async fn start(
        &self,
        provider_id: &str,
        next: Option<&str>,
        link_user: Option<UserId>,
        client: &ClientInfo,
    ) -> Result<Result<StartedFlow, FlowFailure>, AuthError> {
        let provider = self
            .provider(provider_id)
            .ok_or(AuthError::new(ErrorCode::NotFound))?;
        let next = match next {
            None | Some("") => None,
            Some(next) => Some(encode_for_location(local_path(next).ok_or_else(|| {
                AuthError::new(ErrorCode::InvalidRequest)
                    .with_detail("`next` must be a path on this site.")
            })?)),
        };
        if let Some(user_id) = link_user {
            let user = self
                .auth
                .store()
                .user_by_id(user_id)
                .await?
                .ok_or(AuthError::new(ErrorCode::Unauthenticated))?;
            if !user.email_verified() {
                return Err(AuthError::new(ErrorCode::EmailNotVerified)
                    .with_detail("Verify your email address before linking a provider."));
            }
        }
        self.auth
            .accounts()
            .rate_limiter()
            .hit_oauth_start(client.ip)
            .await?;
        let reference = generate_token();
        let state = generate_token();
        let nonce = generate_token();
        let verifier = generate_token();
        let redirect_uri = self.redirect_uri(provider_id);
        let url = match provider
            .authorization_url(&AuthorizationParams {
                redirect_uri: &redirect_uri,
                state: state.expose(),
                nonce: nonce.expose(),
                pkce_verifier: verifier.expose(),
            })
            .await
        {
            Ok(url) => url,
            Err(err) => {
                tracing::error!(provider = provider_id, error = %err, "could not start a sign-in");
                return Ok(Err(FlowFailure::Failed));
            }
        };
        let now = self.auth.clock().now();
        let store = self.auth.store();
        if let Err(err) = store.delete_expired_oauth_flows(now).await {
            tracing::warn!(error = %err, "could not delete expired sign-in flows");
        }
        store
            .create_oauth_flow(&OAuthFlow {
                id_hash: TokenHash::of(reference.expose()),
                provider: provider_id.to_owned(),
                state_hash: TokenHash::of(state.expose()),
                nonce,
                pkce_verifier: verifier,
                next,
                link_user_id: link_user,
                created_at: now,
                expires_at: now + OAUTH_FLOW_TTL,
            })
            .await?;
        Ok(Ok(StartedFlow {
            authorization_url: url,
            cookie_token: reference,
        }))
    }

    /// Finishes the flow that `cookie_token` (from the flow cookie) names, with the
    /// provider's answer on the callback for `provider_id`.
    ///
    /// `signed_in` is the user of the request's session, if any: a link flow finishes only
    /// for the user who started it.
    ///
    /// Which user an identity signs in:
    /// - (issuer, subject) is linked: its user.
    /// - Not linked, and the email is unverified but belongs to an existing user:
    ///   [`FlowFailure::AccountExists`]; nothing is created or linked.
    /// - Not linked, the email belongs to an existing user, and the provider does not link by
    ///   email ([`IdentityProvider::email_linking`] is [`EmailLinking::Never`], the default):
    ///   [`FlowFailure::LinkRequired`]; nothing is created or linked.
    /// - Not linked, the provider links by email ([`EmailLinking::VerifiedEmail`]) and says
    ///   `email_verified: true` for the email of an existing user: linked to that user
    ///   ([`FlowFailure::AccountExists`] if the user has another identity at this provider).
    ///   If that user had not verified the address, the account was perhaps registered by
    ///   someone else first: its password, its sessions, its API tokens, its mailed links and
    ///   every provider identity linked to it end, and the address counts as verified.
    /// - Not linked, no such email: a new user without a password, `email_verified` as the
    ///   provider says, and the link.
    ///
    /// A link flow links the identity to the user who started it, unless the identity is
    /// linked to someone else, or the user has another identity at this provider
    /// ([`FlowFailure::AccountExists`]).
    ///
    /// # Errors
    /// `invalid_link` when there is no live flow of this browser for this provider and state
    /// (none, expired, used, another provider's, a wrong `state`); store errors.
    pub async fn callback(
        &self,
        provider_id: &str,
        cookie_token: Option<&str>,
        params: &CallbackParams,
        signed_in: Option<UserId>,
        client: &ClientInfo,
    ) -> Result<FlowOutcome, AuthError> {
        let span = tracing::info_span!(
            "keystead.oauth.callback",
            provider = provider_id,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty
        );
        let result = self
            .finish_flow(provider_id, cookie_token, params, signed_in, client)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(FlowOutcome::SignedIn { user, .. }) => {
                span.record("user_id", tracing::field::display(user.id));
                crate::telemetry::sign_in("provider", &span, &Ok::<(), AuthError>(()));
            }
            Ok(FlowOutcome::SecondFactor { user, .. }) => {
                span.record("user_id", tracing::field::display(user.id));
                span.record("outcome", "second_factor");
            }
            Ok(FlowOutcome::Linked { .. }) => {
                span.record("outcome", "linked");
            }
            Ok(FlowOutcome::Failed { failure, .. }) => {
                span.record("outcome", failure.code());
                metrics::counter!(
                    crate::telemetry::SIGN_INS,
                    "method" => "provider",
                    "outcome" => failure.code()
                )
                .increment(1);
            }
            Err(err) => {
                crate::telemetry::sign_in("provider", &span, &Err::<(), _>(err.clone()));
            }
        }
        result
    }

    async fn finish_flow(
        &self,
        provider_id: &str,
        cookie_token: Option<&str>,
        params: &CallbackParams,
        signed_in: Option<UserId>,
        client: &ClientInfo,
    ) -> Result<FlowOutcome, AuthError> {
        let invalid = || AuthError::new(ErrorCode::InvalidLink);
        let token = cookie_token.ok_or_else(invalid)?;
        let now = self.auth.clock().now();
        let flow = self
            .auth
            .store()
            .take_oauth_flow(&TokenHash::of(token), now)
            .await?
            .ok_or_else(invalid)?;
        let state_ok = params
            .state
            .as_deref()
            .is_some_and(|state| flow.state_hash.matches(state));
        if flow.provider != provider_id || !state_ok {
            return Err(invalid());
        }
        let provider = self.provider(provider_id).ok_or_else(invalid)?;
        let failed = |failure: FlowFailure| FlowOutcome::Failed {
            failure,
            next: flow.next.clone(),
        };
        if let Some(error) = &params.error {
            tracing::info!(provider = provider_id, error = %error, "the provider ended the flow");
            return Ok(failed(if error == "access_denied" {
                FlowFailure::Denied
            } else {
                FlowFailure::Failed
            }));
        }
        let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(failed(FlowFailure::Failed));
        };
        let redirect_uri = self.redirect_uri(provider_id);
        let identity = match provider
            .exchange_code(
                code,
                &AuthorizationParams {
                    redirect_uri: &redirect_uri,
                    state: params.state.as_deref().unwrap_or_default(),
                    nonce: flow.nonce.expose(),
                    pkce_verifier: flow.pkce_verifier.expose(),
                },
            )
            .await
        {
            Ok(identity) => identity,
            Err(err) => {
                tracing::warn!(provider = provider_id, error = %err, "sign-in with a provider failed");
                audit::record(
                    &**self.auth.store(),
                    &AuditEvent {
                        actor_id: signed_in,
                        user_id: signed_in,
                        data: json!({ "provider": provider_id, "reason": err.to_string() }),
                        ..client.audit_event(AuditKind::OAuthFailed, self.auth.clock().now())
                    },
                )
                .await;
                return Ok(failed(FlowFailure::Failed));
            }
        };
        let next = flow
            .next
            .clone()
            .unwrap_or_else(|| self.auth.surface().after_sign_in_path().to_owned());
        if let Some(link_user) = flow.link_user_id {
            if signed_in != Some(link_user) {
                // The session that asked for the link is gone, or another user signed in
                // meanwhile: link nothing.
                return Ok(failed(FlowFailure::Failed));
            }
            return Ok(
                match self.link(provider_id, &identity, link_user, client).await? {
                    Ok(()) => FlowOutcome::Linked { next },
                    Err(failure) => failed(failure),
                },
            );
        }
        let user = match self
            .resolve(provider_id, provider.email_linking(), &identity, client)
            .await?
        {
            Ok(user) => user,
            Err(failure) => return Ok(failed(failure)),
        };
        let status = self.auth.store().mfa_status(user.id).await?;
        if status.has_second_factor() && !user.disabled() {
            // The provider is the first factor; the session waits for the second.
            let pending = crate::mfa::begin_pending_sign_in(
                &**self.auth.store(),
                self.auth.clock().now(),
                user.id,
                &status,
                provider_id,
                Some(next.clone()),
                client,
            )
            .await?;
            return Ok(FlowOutcome::SecondFactor {
                user: Box::new(user),
                pending: Box::new(pending),
                next,
            });
        }
        let session = self
            .auth
            .sessions()
            .create(
                user.id,
                SessionMeta {
                    user_agent: client.user_agent.clone(),
                    ip: Some(client.ip.to_string()),
                    active_org_id: None,
                },
            )
            .await?;
        audit::record(&**self.auth.store(), &AuditEvent { actor_id: Some(user.id), user_id: Some(user.id), data: json!({ "provider": provider_id, "session_id": session.session.id.to_string() }), ..client.audit_event(AuditKind::SignInOAuth, self.auth.clock().now()) })
        .await;
        self.auth.notify_new_device(&user, &session.session).await;
        Ok(FlowOutcome::SignedIn {
            user: Box::new(user),
            session: Box::new(session),
            next,
        })
    }

    /// The user an identity signs in, by the rules of [`OAuth::callback`].
    async fn resolve(
        &self,
        provider_id: &str,
        linking: EmailLinking,
        identity: &ProviderIdentity,
        client: &ClientInfo,
    ) -> Result<Result<User, FlowFailure>, AuthError> {
        let store = self.auth.store();
        let now = self.auth.clock().now();
        if let Some(link) = store
            .external_account(&identity.issuer, &identity.subject)
            .await?
        {
            store
                .touch_external_account(
                    link.id,
                    identity.email.as_deref(),
                    identity.email_verified,
                    now,
                )
                .await?;
            return Ok(store
                .user_by_id(link.user_id)
                .await?
                .ok_or(FlowFailure::Failed));
        }
        let Some(email) = identity.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
            tracing::warn!(
                provider = provider_id,
                "the provider gave no usable email address"
            );
            return Ok(Err(FlowFailure::Failed));
        };
        if let Some(user) = store.user_by_email(&email).await? {
            if !identity.email_verified {
                audit::record(&**self.auth.store(), &AuditEvent { data: json!({ "provider": provider_id, "reason": "unverified_email_of_existing_account", "user_id": user.id.to_string() }), ..client.audit_event(AuditKind::OAuthRefused, self.auth.clock().now()) })
                .await;
                return Ok(Err(FlowFailure::AccountExists));
            }
            if linking == EmailLinking::Never {
                audit::record(&**self.auth.store(), &AuditEvent { data: json!({ "provider": provider_id, "reason": "email_of_existing_account_not_linked_by_email", "user_id": user.id.to_string() }), ..client.audit_event(AuditKind::OAuthRefused, self.auth.clock().now()) })
                .await;
                return Ok(Err(FlowFailure::LinkRequired));
            }
            let user = if user.email_verified() {
                let has_this_provider = store
                    .external_accounts_for_user(user.id)
                    .await?
                    .iter()
                    .any(|a| a.provider == provider_id);
                if has_this_provider {
                    return Ok(Err(FlowFailure::AccountExists));
                }
                user
            } else {
                self.end_pre_registration(&user, provider_id, client)
                    .await?
            };
            return Ok(
                match self
                    .store_link(provider_id, identity, user.id, client)
                    .await?
                {
                    Ok(()) => Ok(user),
                    Err(failure) => Err(failure),
                },
            );
        }
        let created = store
            .create_user(&NewUser {
                user: User {
                    id: UserId::new(),
                    email,
                    name: identity
                        .name
                        .as_deref()
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned),
                    email_verified_at: identity.email_verified.then_some(now),
                    created_at: now,
                    external_id: None,
                    disabled_at: None,
                },
                password_hash: None,
            })
            .await;
        let user = match created {
            Ok(user) => user,
            // Someone signed up with this email a moment ago.
            Err(StoreError::Conflict(_)) => return Ok(Err(FlowFailure::AccountExists)),
            Err(err) => return Err(err.into()),
        };
        match self
            .store_link(provider_id, identity, user.id, client)
            .await
        {
            Ok(Ok(())) => {
                audit::record(
                    &**self.auth.store(),
                    &AuditEvent {
                        actor_id: Some(user.id),
                        user_id: Some(user.id),
                        data: json!({ "provider": provider_id }),
                        ..client.audit_event(AuditKind::SignUpOAuth, self.auth.clock().now())
                    },
                )
                .await;
                Ok(Ok(user))
            }
            other => {
                // Nothing half-created: the user goes when the link could not be made.
                if let Err(err) = store.delete_user(user.id).await {
                    tracing::error!(user_id = %user.id, error = %err, "could not remove a user without a link");
                }
                other.map(|r| r.map(|()| user))
            }
        }
    }

    /// A link flow: the identity becomes one of `user_id`'s ways to sign in.
    async fn link(
        &self,
        provider_id: &str,
        identity: &ProviderIdentity,
        user_id: UserId,
        client: &ClientInfo,
    ) -> Result<Result<(), FlowFailure>, AuthError> {
        let store = self.auth.store();
        if let Some(link) = store
            .external_account(&identity.issuer, &identity.subject)
            .await?
        {
            if link.user_id != user_id {
                return Ok(Err(FlowFailure::AccountExists));
            }
            store
                .touch_external_account(
                    link.id,
                    identity.email.as_deref(),
                    identity.email_verified,
                    self.auth.clock().now(),
                )
                .await?;
            return Ok(Ok(()));
        }
        let has_this_provider = store
            .external_accounts_for_user(user_id)
            .await?
            .iter()
            .any(|a| a.provider == provider_id);
        if has_this_provider {
            return Ok(Err(FlowFailure::AccountExists));
        }
        self.store_link(provider_id, identity, user_id, client)
            .await
    }

    async fn store_link(
        &self,
        provider_id: &str,
        identity: &ProviderIdentity,
        user_id: UserId,
        client: &ClientInfo,
    ) -> Result<Result<(), FlowFailure>, AuthError> {
        let now = self.auth.clock().now();
        let account = ExternalAccount {
            id: ExternalAccountId::new(),
            user_id,
            provider: provider_id.to_owned(),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            email_verified: identity.email_verified,
            created_at: now,
            last_used_at: Some(now),
        };
        match self.auth.store().link_external_account(&account).await {
            Ok(()) => {}
            // The user has an identity at this provider already (one per user and provider).
            Err(StoreError::Conflict(crate::Conflict::ProviderLinked)) => {
                return Ok(Err(FlowFailure::AccountExists));
            }
            // Linked by a concurrent callback, or the user went meanwhile.
            Err(StoreError::Conflict(_) | StoreError::NotFound) => {
                return Ok(Err(FlowFailure::Failed));
            }
            Err(err) => return Err(err.into()),
        }
        audit::record(&**self.auth.store(), &AuditEvent { actor_id: Some(user_id), user_id: Some(user_id), data: json!({ "provider": provider_id, "external_account_id": account.id.to_string() }), ..client.audit_event(AuditKind::OAuthLinked, self.auth.clock().now()) })
        .await;
        Ok(Ok(()))
    }

    /// A verified provider email claims an account whose owner never verified it: whoever
    /// registered the address first loses every way in they had (password, sessions, API
    /// tokens, mailed links, and every provider identity linked to the account: the one that
    /// claims the address is linked after this), and the address counts as verified from now
    /// on.
    async fn end_pre_registration(
        &self,
        user: &User,
        provider_id: &str,
        client: &ClientInfo,
    ) -> Result<User, AuthError> {
        let store = self.auth.store();
        let now = self.auth.clock().now();
        let had_password = store.remove_password(user.id).await?;
        let mut identities = 0usize;
        for link in store.external_accounts_for_user(user.id).await? {
            match store.unlink_external_account(user.id, link.id).await {
                // Gone meanwhile is gone.
                Ok(()) | Err(StoreError::NotFound) => identities += 1,
                Err(err) => return Err(err.into()),
            }
        }
        let sessions = self.auth.sessions().end_all_for_user(user.id, None).await?;
        for purpose in [TokenPurpose::PasswordReset, TokenPurpose::EmailVerification] {
            store.delete_one_time_tokens(user.id, purpose).await?;
        }
        let mut tokens = 0usize;
        for org in store.organizations_for_user(user.id).await? {
            let revoked = store
                .revoke_api_tokens_for_member(org.organization.id, user.id, now)
                .await?;
            tokens += revoked.len();
            for id in revoked {
                self.auth.publish(Change::TokenRevoked { id }).await;
            }
        }
        let user = store.mark_email_verified(user.id, now).await?;
        self.auth
            .publish(Change::UserChanged { user_id: user.id })
            .await;
        audit::record(
            &**self.auth.store(),
            &AuditEvent {
                actor_id: Some(user.id),
                user_id: Some(user.id),
                data: json!({
                    "provider": provider_id,
                    "password_removed": had_password,
                    "identities_unlinked": identities,
                    "sessions_ended": sessions,
                    "api_tokens_revoked": tokens,
                }),
                ..client.audit_event(
                    AuditKind::OAuthPreRegistrationEnded,
                    self.auth.clock().now(),
                )
            },
        )
        .await;
        Ok(user)
    }

    /// The user's linked providers, oldest first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn links(&self, user_id: UserId) -> Result<Vec<ExternalAccount>, AuthError> {
        Ok(self
            .auth
            .store()
            .external_accounts_for_user(user_id)
            .await?)
    }

    /// Unlinks the user's identity at `provider_id`, unless it is their last way to sign in
    /// (no password and no other link).
    ///
    /// # Errors
    /// `not_found` when no such link exists; `last_sign_in_method` (409); store errors.
    pub async fn unlink(
        &self,
        user_id: UserId,
        provider_id: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let store = self.auth.store();
        let links = store.external_accounts_for_user(user_id).await?;
        let (these, others): (Vec<_>, Vec<_>) =
            links.into_iter().partition(|a| a.provider == provider_id);
        if these.is_empty() {
            return Err(AuthError::new(ErrorCode::NotFound));
        }
        let has_password = store.password_credential(user_id).await?.is_some();
        if !has_password && others.is_empty() {
            return Err(AuthError::new(ErrorCode::LastSignInMethod).with_detail(
                "Set a password (through a password reset) or link another provider first.",
            ));
        }
        for link in these {
            store.unlink_external_account(user_id, link.id).await?;
            audit::record(&**self.auth.store(), &AuditEvent { actor_id: Some(user_id), user_id: Some(user_id), data: json!({ "provider": provider_id, "external_account_id": link.id.to_string() }), ..client.audit_event(AuditKind::OAuthUnlinked, self.auth.clock().now()) })
            .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_are_route_safe() {
        for ok in ["google", "oidc", "my-idp-2"] {
            assert!(is_valid_provider_id(ok), "{ok}");
        }
        for bad in ["", "Google", "a/b", "a b", "..", &"x".repeat(33)] {
            assert!(!is_valid_provider_id(bad), "{bad}");
        }
    }

    #[test]
    fn next_is_encoded_for_the_location_header() {
        assert_eq!(encode_for_location("/a?b=c&d=%2F"), "/a?b=c&d=%2F");
        assert_eq!(encode_for_location("/é b"), "/%C3%A9%20b");
    }

    #[test]
    fn failures_have_the_contract_codes() {
        assert_eq!(FlowFailure::Denied.code(), "oauth_denied");
        assert_eq!(FlowFailure::Failed.code(), "oauth_failed");
        assert_eq!(FlowFailure::AccountExists.code(), "account_exists");
        assert_eq!(FlowFailure::LinkRequired.code(), "link_required");
        assert_eq!(EmailLinking::default(), EmailLinking::Never);
    }
}
