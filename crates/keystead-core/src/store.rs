//! The storage traits. `keystead-postgres` and `keystead-sqlite` implement them, and both pass the one
//! conformance suite in `keystead-conformance`.
//!
//! Conventions every implementation follows:
//! - Times are passed in by the caller (from its [`Clock`](crate::Clock)); a store never reads
//!   the system time, so expiry is testable.
//! - Invariants that span rows hold under concurrent calls, across connections and instances:
//!   one user per email, one membership per (org, user), an organization keeps an owner,
//!   a one-time token or invitation is used at most once.
//! - "Not there" is `Ok(None)` for lookups and [`StoreError::NotFound`] for updates, and for
//!   writes that reference a row that does not exist (a foreign key).
//! - Expiry: a thing with `expires_at` is expired at `now` exactly when `now >= expires_at`
//!   (as [`Session::is_expired`](crate::Session::is_expired) and
//!   [`Invitation::is_pending`](crate::Invitation::is_pending) say).
//! - Times a store must derive take the nearest given time: a password set by `create_user`
//!   was updated at `user.created_at`; the owner made by `create_organization` joined at
//!   `org.created_at`.
//! - Lists are ordered as documented; ties are broken by id in the same direction.
//! - Errors never carry SQL to clients: [`StoreError`] converts to
//!   [`AuthError`](crate::AuthError) with a stable code.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::email::Email;
use crate::error::{AuthError, ErrorCode};
use crate::feed::ChangeFeed;
use crate::id::{ApiTokenId, ExternalAccountId, InvitationId, OrgId, PasskeyId, SessionId, UserId};
use crate::model::{
    ApiTokenRecord, AuditEvent, AuditQuery, Challenge, ChallengeKind, ExternalAccount, Invitation,
    Member, Membership, MfaStatus, NewUser, OAuthFlow, OneTimeToken, OrgAccess, Organization,
    Passkey, PasswordCredential, Session, TokenPurpose, TotpFactor, User, UserOrganization,
};
use crate::rate_limit::{RateDecision, RateLimit};
use crate::rbac::Role;
use crate::secret::{SecretString, TokenHash};

/// What a uniqueness conflict was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conflict {
    /// A user with this email (case-insensitively) exists.
    Email,
    /// A user with this id exists (an import reused an id).
    UserId,
    /// An organization with this slug exists.
    OrgSlug,
    /// The user is already a member of the organization.
    Membership,
    /// This (issuer, subject) is already linked to a user.
    ExternalAccount,
    /// The user already has an identity linked at this provider (one per user and provider).
    ProviderLinked,
    /// A token with this hash or id exists (only a broken random generator gets here).
    Token,
    /// Another user has this external id.
    UserExternalId,
    /// Another organization has this external id.
    OrgExternalId,
    /// The user has a confirmed TOTP factor already (remove it before enrolling another).
    TotpFactor,
    /// A passkey with this WebAuthn credential id is registered.
    Passkey,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Email => "an account with this email",
            Self::UserId => "a user with this id",
            Self::OrgSlug => "an organization with this slug",
            Self::Membership => "this membership",
            Self::ExternalAccount => "this external account",
            Self::ProviderLinked => "a link of this user at this provider",
            Self::Token => "this token",
            Self::UserExternalId => "a user with this external id",
            Self::OrgExternalId => "an organization with this external id",
            Self::TotpFactor => "a confirmed TOTP factor",
            Self::Passkey => "a passkey with this credential id",
        })
    }
}

/// An error from a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness constraint refused the write.
    #[error("conflict: {0} already exists")]
    Conflict(Conflict),
    /// The row to update or delete does not exist (or no longer qualifies).
    #[error("not found")]
    NotFound,
    /// The change would leave an organization without an owner.
    #[error("an organization must keep at least one owner")]
    LastOwner,
    /// A conditional membership change found another role than the one it was judged on
    /// (someone changed it meanwhile); nothing was written.
    #[error("the member's role is now {current}")]
    RoleChanged {
        /// The role found.
        current: Role,
    },
    /// The store cannot be reached (pool timeout, connection refused): fail closed, 503.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else (a bug, corrupt data): 500.
    #[error("store error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps an unexpected backend error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(err))
    }

    /// Wraps an error that means the store cannot be reached.
    pub fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(err))
    }

    /// Data read back from the store did not make sense (a bad enum value, a short hash).
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::Backend(what.into().into())
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Users and their passwords.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user, and its password credential when `new.password_hash` is set, in one
    /// transaction. [`Conflict::Email`] when the email is taken (also under concurrent
    /// sign-ups: exactly one wins), [`Conflict::UserId`] when the id is.
    async fn create_user(&self, new: &NewUser) -> StoreResult<User>;

    /// The user with this id.
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;

    /// The user with this (normalized) email.
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;

    /// The user with this external id (their id at the provider they were imported from).
    async fn user_by_external_id(&self, external_id: &str) -> StoreResult<Option<User>>;

    /// Creates an imported user in one transaction: the user (with its `external_id`,
    /// `created_at` and verification as given), its password credential when
    /// `new.password_hash` is set, and its links to identity providers. Nothing is written
    /// when any part is refused: [`Conflict::Email`], [`Conflict::UserId`],
    /// [`Conflict::UserExternalId`], [`Conflict::ExternalAccount`] or
    /// [`Conflict::ProviderLinked`]. Each link's `user_id` must be the new user's id.
    async fn import_user(&self, new: &NewUser, links: &[ExternalAccount]) -> StoreResult<User>;

    /// Sets or clears the user's external id. [`Conflict::UserExternalId`] when another user
    /// has it; [`StoreError::NotFound`] for an unknown user.
    async fn set_user_external_id(
        &self,
        id: UserId,
        external_id: Option<&str>,
    ) -> StoreResult<User>;

    /// Disables the user at `at` (keeping an earlier time if already disabled), or enables
    /// them again with `None`. [`StoreError::NotFound`] for an unknown user.
    async fn set_user_disabled(&self, id: UserId, at: Option<OffsetDateTime>) -> StoreResult<User>;

    /// Records that the old provider's session `key` (a hash the caller makes of its issuer
    /// and session id) was swapped for one of `user_id`'s sessions at `at`. `true` the first
    /// time; `false` when it was swapped before (also under concurrent calls: exactly one
    /// gets `true`). [`StoreError::NotFound`] for an unknown user.
    async fn claim_session_handoff(
        &self,
        key: &TokenHash,
        user_id: UserId,
        at: OffsetDateTime,
    ) -> StoreResult<bool>;

    /// Sets the display name. [`StoreError::NotFound`] for an unknown user.
    async fn set_user_name(&self, id: UserId, name: Option<&str>) -> StoreResult<User>;

    /// Marks the email verified at `at` (keeps an earlier time if already verified).
    /// [`StoreError::NotFound`] for an unknown user.
    async fn mark_email_verified(&self, id: UserId, at: OffsetDateTime) -> StoreResult<User>;

    /// Deletes a user and, by cascade, everything that is theirs: password, external
    /// accounts, sessions, memberships, one-time tokens, API tokens. Audit events stay, with
    /// the user reference cleared. [`StoreError::NotFound`] for an unknown user; an
    /// organization's last owner cannot be deleted ([`StoreError::LastOwner`]).
    async fn delete_user(&self, id: UserId) -> StoreResult<()>;

    /// The user's password, if they have one.
    async fn password_credential(&self, user_id: UserId)
    -> StoreResult<Option<PasswordCredential>>;

    /// Sets (or replaces) the user's password hash. [`StoreError::NotFound`] for an unknown
    /// user.
    async fn set_password_hash(
        &self,
        user_id: UserId,
        hash: &SecretString,
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Removes the user's password; returns whether there was one.
    async fn remove_password(&self, user_id: UserId) -> StoreResult<bool>;
}

/// Identities at OpenID Connect providers.
#[async_trait]
pub trait ExternalAccountStore: Send + Sync {
    /// Links an identity. [`Conflict::ExternalAccount`] when (issuer, subject) is linked
    /// already; [`Conflict::ProviderLinked`] when the user has an identity at this provider
    /// already (one link per user and provider); [`StoreError::NotFound`] when the user does
    /// not exist.
    async fn link_external_account(&self, account: &ExternalAccount) -> StoreResult<()>;

    /// The link for (issuer, subject).
    async fn external_account(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<ExternalAccount>>;

    /// The user's links, oldest first.
    async fn external_accounts_for_user(
        &self,
        user_id: UserId,
    ) -> StoreResult<Vec<ExternalAccount>>;

    /// Records a sign-in through a link: the provider's current email claim and the time
    /// (`last_used_at` never moves backwards). [`StoreError::NotFound`] for an unknown link.
    async fn touch_external_account(
        &self,
        id: ExternalAccountId,
        email: Option<&str>,
        email_verified: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Removes one of the user's links. [`StoreError::NotFound`] when the user has no such link.
    async fn unlink_external_account(
        &self,
        user_id: UserId,
        id: ExternalAccountId,
    ) -> StoreResult<()>;
}

/// Sign-in flows with a provider in progress (see [`OAuthFlow`]).
#[async_trait]
pub trait OAuthFlowStore: Send + Sync {
    /// Stores a flow. [`Conflict::Token`] when a flow with this `id_hash` exists;
    /// [`StoreError::NotFound`] when `link_user_id` names no user.
    async fn create_oauth_flow(&self, flow: &OAuthFlow) -> StoreResult<()>;

    /// Takes the flow with this `id_hash` out of the store (deletes it) and returns it if it
    /// was still live at `now`; an expired one is deleted too, and `None` is returned. Of
    /// concurrent calls for one flow at most one gets it: a flow is used once.
    async fn take_oauth_flow(
        &self,
        id_hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OAuthFlow>>;

    /// Deletes the flows expired at `now`; returns how many.
    async fn delete_expired_oauth_flows(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// Browser sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session. [`Conflict::Token`] for a duplicate id or token hash;
    /// [`StoreError::NotFound`] when the user does not exist.
    async fn create_session(&self, session: &Session) -> StoreResult<()>;

    /// The session whose token hashes to `hash`, expired or not (the caller decides).
    async fn session_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Session>>;

    /// The session with this id, expired or not.
    async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<Session>>;

    /// The user's sessions that are live at `now`, newest first.
    async fn sessions_for_user(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>>;

    /// Moves the sliding expiry (never past the absolute one; the store clamps).
    /// [`StoreError::NotFound`] for an unknown session.
    async fn extend_session(&self, id: SessionId, expires_at: OffsetDateTime) -> StoreResult<()>;

    /// Records activity for many sessions in one write. A time earlier than the stored one is
    /// ignored; unknown ids are skipped.
    async fn record_session_activity(
        &self,
        seen: &[(SessionId, OffsetDateTime)],
    ) -> StoreResult<()>;

    /// Sets the session's active organization. [`StoreError::NotFound`] for an unknown session.
    async fn set_active_org(&self, id: SessionId, org_id: Option<OrgId>) -> StoreResult<()>;

    /// Records a re-authentication: the session's `authenticated_at` becomes `at`. Returns
    /// whether the session exists.
    async fn set_session_authenticated_at(
        &self,
        id: SessionId,
        at: OffsetDateTime,
    ) -> StoreResult<bool>;

    /// Ends a session; returns whether it existed.
    async fn delete_session(&self, id: SessionId) -> StoreResult<bool>;

    /// Ends every session of the user except `except`; returns how many ended.
    async fn delete_sessions_for_user(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
    ) -> StoreResult<u64>;

    /// Removes the active organization from every session of `user_id` that has `org_id`
    /// active (after the user left or was removed); returns the sessions changed.
    async fn clear_active_org_for_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
    ) -> StoreResult<Vec<SessionId>>;

    /// Deletes sessions expired at `now`; returns how many.
    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// Organizations and memberships.
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// Creates an organization with `owner` as its owner, in one transaction.
    /// [`Conflict::OrgSlug`] for a taken slug; [`StoreError::NotFound`] for an unknown owner.
    async fn create_organization(
        &self,
        org: &Organization,
        owner: UserId,
    ) -> StoreResult<Membership>;

    /// The organization with this id.
    async fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>>;

    /// The organization with this slug.
    async fn organization_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>>;

    /// The organization with this external id (its id at the provider it was imported from).
    async fn organization_by_external_id(
        &self,
        external_id: &str,
    ) -> StoreResult<Option<Organization>>;

    /// Organizations by id (ascending), after `after` when given, at most `limit` (capped at
    /// 1000): every organization, a page at a time.
    async fn organizations(
        &self,
        after: Option<OrgId>,
        limit: u32,
    ) -> StoreResult<Vec<Organization>>;

    /// Renames an organization. [`StoreError::NotFound`] for an unknown one.
    async fn rename_organization(&self, id: OrgId, name: &str) -> StoreResult<Organization>;

    /// Deletes an organization with its memberships, invitations and API tokens; sessions that
    /// had it active lose it. [`StoreError::NotFound`] for an unknown one.
    async fn delete_organization(&self, id: OrgId) -> StoreResult<()>;

    /// The user's organizations with their role, oldest membership first.
    async fn organizations_for_user(&self, user_id: UserId) -> StoreResult<Vec<UserOrganization>>;

    /// The user's membership in the organization.
    async fn membership(&self, org_id: OrgId, user_id: UserId) -> StoreResult<Option<Membership>>;

    /// The user's membership with the organization's MFA policy and whether the user has a
    /// second factor (a confirmed TOTP or a passkey), in one query; `None` for a non-member.
    async fn org_access(&self, org_id: OrgId, user_id: UserId) -> StoreResult<Option<OrgAccess>>;

    /// Sets whether the organization requires a second factor of its members.
    /// [`StoreError::NotFound`] for an unknown organization.
    async fn set_org_mfa_required(&self, id: OrgId, required: bool) -> StoreResult<Organization>;

    /// The organization's members with their user records, oldest membership first.
    async fn members(&self, org_id: OrgId) -> StoreResult<Vec<Member>>;

    /// Adds a member. [`Conflict::Membership`] if they are one already;
    /// [`StoreError::NotFound`] for an unknown organization or user.
    async fn add_member(&self, membership: &Membership) -> StoreResult<()>;

    /// Changes a member's role. [`StoreError::LastOwner`] when it would demote the last owner
    /// (also when two owners demote each other at once: one of them stays owner);
    /// [`StoreError::NotFound`] for a non-member.
    async fn change_role(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &Role,
    ) -> StoreResult<Membership>;

    /// Removes a member. [`StoreError::LastOwner`] for the last owner (under concurrency too);
    /// [`StoreError::NotFound`] for a non-member.
    async fn remove_member(&self, org_id: OrgId, user_id: UserId) -> StoreResult<()>;

    /// [`change_role`](Self::change_role), only while the member's role is still `expected`
    /// (read in the same transaction, under the lock that serializes the organization's
    /// membership changes): [`StoreError::RoleChanged`] with the role found otherwise. The flow
    /// decides whether the caller may touch the member's role on what it read, and this makes
    /// that decision hold when the change is written.
    async fn change_role_if(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: &Role,
        role: &Role,
    ) -> StoreResult<Membership>;

    /// [`remove_member`](Self::remove_member), only while the member's role is still
    /// `expected`: [`StoreError::RoleChanged`] with the role found otherwise.
    async fn remove_member_if(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: &Role,
    ) -> StoreResult<()>;

    /// Makes `to` (a member) an owner and `from` (an owner) `from_becomes`, in one
    /// transaction. [`StoreError::NotFound`] when either is not a member;
    /// [`StoreError::LastOwner`] when `from` is not an owner.
    async fn transfer_ownership(
        &self,
        org_id: OrgId,
        from: UserId,
        to: UserId,
        from_becomes: &Role,
    ) -> StoreResult<()>;
}

/// Invitations to organizations.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores an invitation. [`Conflict::Token`] for a duplicate hash;
    /// [`StoreError::NotFound`] for an unknown organization or inviter.
    async fn create_invitation(&self, invitation: &Invitation) -> StoreResult<()>;

    /// The invitation with this id.
    async fn invitation(&self, id: InvitationId) -> StoreResult<Option<Invitation>>;

    /// The invitation whose token hashes to `hash`, in whatever state.
    async fn invitation_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Invitation>>;

    /// The organization's invitations pending at `now`, newest first.
    async fn pending_invitations(
        &self,
        org_id: OrgId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Invitation>>;

    /// Revokes a pending invitation of the organization. [`StoreError::NotFound`] when there
    /// is no such pending invitation.
    async fn revoke_invitation(
        &self,
        org_id: OrgId,
        id: InvitationId,
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Accepts the invitation with this token hash for `user_id`, in one transaction: marks it
    /// used and adds the membership. Of concurrent accepts of one invitation exactly one
    /// succeeds. [`StoreError::NotFound`] when it is unknown, used, revoked or expired at
    /// `now`; [`Conflict::Membership`] (and nothing changes) when the user is a member already.
    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Membership>;
}

/// Mailed one-time tokens.
#[async_trait]
pub trait OneTimeTokenStore: Send + Sync {
    /// Stores a token. [`Conflict::Token`] for a duplicate hash; [`StoreError::NotFound`] for
    /// an unknown user.
    async fn create_one_time_token(&self, token: &OneTimeToken) -> StoreResult<()>;

    /// Uses the token: if one with this purpose and hash is unused and unexpired at `now`,
    /// marks it used at `now` and returns it; else `None`. Of concurrent calls exactly one
    /// gets it.
    async fn consume_one_time_token(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OneTimeToken>>;

    /// Deletes the user's outstanding (unused) tokens of this purpose (a new reset link voids
    /// the old ones); returns how many.
    async fn delete_one_time_tokens(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
    ) -> StoreResult<u64>;

    /// Deletes tokens expired or used before `now`; returns how many.
    async fn delete_expired_one_time_tokens(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// API token records (the tokens themselves are never stored).
#[async_trait]
pub trait ApiTokenStore: Send + Sync {
    /// Stores a record. [`Conflict::Token`] for a duplicate id; [`StoreError::NotFound`] for
    /// an unknown user or organization.
    async fn create_api_token(&self, record: &ApiTokenRecord) -> StoreResult<()>;

    /// The record with this id (`jti`).
    async fn api_token(&self, id: ApiTokenId) -> StoreResult<Option<ApiTokenRecord>>;

    /// The organization's tokens (revoked and expired ones included, for audit), newest first;
    /// only `user_id`'s when given.
    async fn api_tokens_for_org(
        &self,
        org_id: OrgId,
        user_id: Option<UserId>,
    ) -> StoreResult<Vec<ApiTokenRecord>>;

    /// Revokes a token at `at` (a second revocation keeps the first time) and returns the
    /// record. [`StoreError::NotFound`] for an unknown id.
    async fn revoke_api_token(
        &self,
        id: ApiTokenId,
        at: OffsetDateTime,
    ) -> StoreResult<ApiTokenRecord>;

    /// Revokes every unrevoked token of `user_id` in `org_id` (on removal from the org);
    /// returns the ids revoked.
    async fn revoke_api_tokens_for_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
        at: OffsetDateTime,
    ) -> StoreResult<Vec<ApiTokenId>>;

    /// Records use of many tokens in one write. Earlier times than stored are ignored;
    /// unknown ids are skipped.
    async fn record_api_token_use(&self, used: &[(ApiTokenId, OffsetDateTime)]) -> StoreResult<()>;

    /// Tokens that are revoked but not yet expired at `now`, each id with its expiry (the
    /// record's `expires_at`), in no particular order: the revocation list a verifier must
    /// hold, and when each entry may leave it.
    async fn revoked_api_token_ids(
        &self,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(ApiTokenId, OffsetDateTime)>>;
}

/// The audit log. Append-only; events leave only by age ([`AuditStore::delete_audit_events_before`],
/// the retention an app sets).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event.
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()>;

    /// Events matching the query, newest first by `(at, id)`; `before` pages past the named
    /// event (an unknown `before` gives nothing). `limit` is capped at 1000; 0 gives nothing.
    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;

    /// Deletes at most `limit` of the events that happened before `before` (oldest first), in
    /// one statement; answers how many went. The retention sweep calls it until it answers
    /// fewer than `limit`, so no one statement holds the table for long.
    async fn delete_audit_events_before(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<u64>;
}

/// Rate limit state: one theoretical arrival time (`tat`) per key, decided by
/// [`RateLimit::admit`] (see [`rate_limit`](crate::rate_limit) for the algorithm). Keys are
/// hashes made by the caller, so no email or address is stored.
///
/// Every write is an atomic read-modify-write of the key's row: of concurrent hits on one key,
/// exactly as many are allowed as the rule lets fit, across connections and instances.
#[async_trait]
pub trait RateLimitStore: Send + Sync + fmt::Debug {
    /// One more event on `key` at `now`: if it fits the rule ([`RateLimit::admit`] on the
    /// stored `tat`), records it and answers allowed; else records nothing and answers refused
    /// with how long until one would fit.
    async fn rate_limit_hit(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision>;

    /// Whether one more event on `key` would fit at `now`, without recording anything.
    async fn rate_limit_peek(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision>;

    /// Gives back one event recorded earlier on `key` (its `tat` becomes
    /// [`RateLimit::refund`] of it); nothing for an unknown key.
    async fn rate_limit_refund(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Deletes the keys that are idle at `now` (`tat <= now`: back to a full burst, the same
    /// as a key never seen); returns how many.
    async fn delete_expired_rate_limits(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// An entry of the change log (see [`ChangeLogStore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    /// Its version: 1 for the first change ever recorded, then one more for each.
    pub version: i64,
    /// The change, as the core encoded it (JSON).
    pub payload: String,
    /// When it was recorded.
    pub at: OffsetDateTime,
}

/// The change log: every change that the caches of other instances must see (a revocation,
/// a membership change, a key rotation), recorded durably before it is announced on the
/// change feed. Each instance reads the current version often (a single-row read) and applies
/// the entries it has not seen, so a change the feed lost reaches it all the same.
#[async_trait]
pub trait ChangeLogStore: Send + Sync {
    /// Records a change and bumps the change version, in one transaction; returns the new
    /// version. Versions are 1, 2, 3, … in commit order, without gaps: a reader that saw
    /// version `v` has seen every change up to `v`.
    async fn record_change(&self, payload: &str, at: OffsetDateTime) -> StoreResult<i64>;

    /// The current version: that of the last change recorded, 0 before any.
    async fn change_version(&self) -> StoreResult<i64>;

    /// The changes after version `after`, oldest first, at most `limit` of them. Entries
    /// deleted by [`delete_changes_before`](Self::delete_changes_before) are missing: a reader
    /// tells by the first version returned not being `after + 1`.
    async fn changes_after(&self, after: i64, limit: u32) -> StoreResult<Vec<LoggedChange>>;

    /// Deletes the entries recorded before `before` (the version stays); returns how many.
    async fn delete_changes_before(&self, before: OffsetDateTime) -> StoreResult<u64>;

    /// The change feed this store brings for instances that share it, used when the app
    /// sets none (`AuthBuilder::change_feed`). `None` (the default): the in-process feed,
    /// right for a store that only one process uses.
    fn default_change_feed(&self) -> Option<Arc<dyn ChangeFeed>> {
        None
    }
}

/// Second factors: TOTP authenticators, recovery codes and passkeys. Rows go with their user.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// What second factors the user has.
    async fn mfa_status(&self, user_id: UserId) -> StoreResult<MfaStatus>;

    /// Stores the user's TOTP factor as given (unconfirmed, at enrolment), replacing an
    /// unconfirmed one. [`Conflict::TotpFactor`] when the user has a confirmed one;
    /// [`StoreError::NotFound`] for an unknown user.
    async fn put_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()>;

    /// The user's TOTP factor, confirmed or not.
    async fn totp_factor(&self, user_id: UserId) -> StoreResult<Option<TotpFactor>>;

    /// Confirms the user's unconfirmed factor at `at`, recording `step` as its last used
    /// step. Returns `false` when there is no unconfirmed factor (none, or confirmed already:
    /// of concurrent calls exactly one gets `true`).
    async fn confirm_totp_factor(
        &self,
        user_id: UserId,
        step: i64,
        at: OffsetDateTime,
    ) -> StoreResult<bool>;

    /// Uses a code of time step `step`: if the user's confirmed factor's last used step is
    /// older (or unset), records `step` and returns `true`; else `false` (a replay). Atomic:
    /// of concurrent calls with the same step, on any instance, exactly one gets `true`.
    async fn use_totp_step(&self, user_id: UserId, step: i64) -> StoreResult<bool>;

    /// Deletes the user's TOTP factor; returns whether there was one.
    async fn delete_totp_factor(&self, user_id: UserId) -> StoreResult<bool>;

    /// Replaces the user's recovery codes with `hashes` (unused, created at `at`), in one
    /// transaction: the old set is void. [`StoreError::NotFound`] for an unknown user.
    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        hashes: &[TokenHash],
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Uses a recovery code: if the user has an unused one with this hash, marks it used at
    /// `at` and returns `true`. Of concurrent calls exactly one gets `true`.
    async fn use_recovery_code(
        &self,
        user_id: UserId,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> StoreResult<bool>;

    /// Deletes the user's recovery codes; returns how many.
    async fn delete_recovery_codes(&self, user_id: UserId) -> StoreResult<u64>;

    /// Stores a passkey. [`Conflict::Passkey`] for a credential id registered already;
    /// [`StoreError::NotFound`] for an unknown user.
    async fn create_passkey(&self, passkey: &Passkey) -> StoreResult<()>;

    /// The user's passkeys, oldest first.
    async fn passkeys_for_user(&self, user_id: UserId) -> StoreResult<Vec<Passkey>>;

    /// The passkey with this WebAuthn credential id.
    async fn passkey_by_credential_id(&self, credential_id: &[u8]) -> StoreResult<Option<Passkey>>;

    /// After a use: the credential's new serialized state (its counter), its backup state
    /// and the time. [`StoreError::NotFound`] for an unknown passkey.
    async fn record_passkey_use(
        &self,
        id: PasskeyId,
        credential: &str,
        backup_state: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Renames one of the user's passkeys; `false` when the user has no passkey `id`.
    async fn rename_passkey(&self, user_id: UserId, id: PasskeyId, name: &str)
    -> StoreResult<bool>;

    /// Deletes one of the user's passkeys; `false` when the user has no passkey `id`.
    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> StoreResult<bool>;
}

/// Short-lived flow state: pending sign-ins, WebAuthn ceremonies.
#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Stores a challenge. [`Conflict::Token`] for a duplicate hash; [`StoreError::NotFound`]
    /// for an unknown user.
    async fn create_challenge(&self, challenge: &Challenge) -> StoreResult<()>;

    /// The challenge of this kind and hash if it is unexpired at `now`, left in place.
    async fn challenge(
        &self,
        kind: ChallengeKind,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>>;

    /// Takes the challenge: if one of this kind and hash is unexpired at `now`, deletes it
    /// and returns it. Of concurrent calls exactly one gets it.
    async fn take_challenge(
        &self,
        kind: ChallengeKind,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>>;

    /// Deletes challenges expired at `now`; returns how many.
    async fn delete_expired_challenges(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// Everything the core needs from a store.
pub trait AuthStore:
    UserStore
    + ExternalAccountStore
    + OAuthFlowStore
    + SessionStore
    + OrganizationStore
    + InvitationStore
    + OneTimeTokenStore
    + ApiTokenStore
    + AuditStore
    + RateLimitStore
    + ChangeLogStore
    + MfaStore
    + ChallengeStore
    + fmt::Debug
    + 'static
{
}

impl<T> AuthStore for T where
    T: UserStore
        + ExternalAccountStore
        + OAuthFlowStore
        + SessionStore
        + OrganizationStore
        + InvitationStore
        + OneTimeTokenStore
        + ApiTokenStore
        + AuditStore
        + RateLimitStore
        + ChangeLogStore
        + MfaStore
        + ChallengeStore
        + fmt::Debug
        + 'static
{
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(Conflict::Email) => Self::new(ErrorCode::EmailTaken),
            StoreError::Conflict(other) => {
                Self::new(ErrorCode::Conflict).with_detail(format!("{other} already exists"))
            }
            StoreError::NotFound => Self::new(ErrorCode::NotFound),
            StoreError::LastOwner => Self::new(ErrorCode::LastOwner),
            StoreError::RoleChanged { .. } => Self::new(ErrorCode::Conflict)
                .with_detail("The member's role changed meanwhile; try again."),
            StoreError::Unavailable(source) => {
                tracing::error!(error = %source, "store unavailable");
                Self::new(ErrorCode::Unavailable)
            }
            StoreError::Backend(source) => {
                tracing::error!(error = %source, "store error");
                Self::new(ErrorCode::Internal)
            }
        }
    }
}
