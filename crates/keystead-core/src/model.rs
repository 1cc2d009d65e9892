//! The domain: plain data, with no behaviour that needs a store or a framework.
//!
//! Every time is UTC and whole microseconds (see [`Clock`](crate::Clock)).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::email::Email;
use crate::id::{
    ApiTokenId, AuditEventId, ExternalAccountId, InvitationId, OneTimeTokenId, OrgId, SessionId,
    UserId,
};
use crate::rbac::{Permission, Role};
use crate::secret::{SecretString, TokenHash};

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id; kept when importing from another provider.
    pub id: UserId,
    /// Normalized, unique (case-insensitively) across users.
    pub email: Email,
    /// Display name.
    pub name: Option<String>,
    /// When the user proved they receive mail at `email`; `None` until then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub email_verified_at: Option<OffsetDateTime>,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl User {
    /// Whether the email address is verified.
    #[must_use]
    pub const fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

/// What a store needs to create a user, optionally with a password, in one step.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The user to create.
    pub user: User,
    /// A PHC-format password hash, if the user signs up with a password.
    pub password_hash: Option<SecretString>,
}

/// A user's password, as a PHC string (argon2id, or an imported bcrypt/argon2 hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordCredential {
    /// Whose password.
    pub user_id: UserId,
    /// The hash. Not the password, but still not for logs.
    pub hash: SecretString,
    /// When it was last set.
    pub updated_at: OffsetDateTime,
}

/// An identity at an external (OpenID Connect) provider, linked to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAccount {
    /// The link's id.
    pub id: ExternalAccountId,
    /// The local user.
    pub user_id: UserId,
    /// The provider's name in our configuration (`google`, `oidc`).
    pub provider: String,
    /// The provider's issuer URL; with `subject`, the identity's key (never the email).
    pub issuer: String,
    /// The provider's stable subject identifier.
    pub subject: String,
    /// The email the provider asserted at the last sign-in.
    pub email: Option<String>,
    /// Whether the provider said that email was verified.
    pub email_verified: bool,
    /// When the link was made.
    pub created_at: OffsetDateTime,
    /// The last sign-in through this link.
    pub last_used_at: Option<OffsetDateTime>,
}

/// A sign-in with a provider in progress: what the callback needs to finish it, stored until
/// then (at most ten minutes) and used once.
///
/// The browser that started the flow holds a random reference in a short-lived cookie; the
/// store holds only its hash, which is the flow's key.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthFlow {
    /// SHA-256 of the reference in the browser's flow cookie.
    pub id_hash: TokenHash,
    /// The provider's name in our configuration (`google`, `oidc`).
    pub provider: String,
    /// SHA-256 of the `state` sent to the provider.
    pub state_hash: TokenHash,
    /// The `nonce` sent to the provider, which its ID token must carry back.
    pub nonce: SecretString,
    /// The PKCE code verifier (the provider got its S256 challenge).
    pub pkce_verifier: SecretString,
    /// Where to go after the sign-in: a local path, already checked.
    pub next: Option<String>,
    /// For a link flow: the signed-in user who asked to link the provider.
    pub link_user_id: Option<UserId>,
    /// When the flow started.
    pub created_at: OffsetDateTime,
    /// When it stops being usable.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for OAuthFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthFlow")
            .field("id_hash", &self.id_hash)
            .field("provider", &self.provider)
            .field("next", &self.next)
            .field("link_user_id", &self.link_user_id)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A browser session. The client holds a random token; the store holds only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's id (not secret; used to list and end sessions).
    pub id: SessionId,
    /// SHA-256 of the cookie's token.
    pub token_hash: TokenHash,
    /// Who is signed in.
    pub user_id: UserId,
    /// When it started.
    pub created_at: OffsetDateTime,
    /// The last request seen (recorded in batches, so it may lag).
    pub last_seen_at: OffsetDateTime,
    /// Sliding expiry: extended as the session is used.
    pub expires_at: OffsetDateTime,
    /// Absolute lifetime: never extended.
    pub absolute_expires_at: OffsetDateTime,
    /// The organization the user works in, if any.
    pub active_org_id: Option<OrgId>,
    /// The browser's `User-Agent`, for the session list (truncated).
    pub user_agent: Option<String>,
    /// The client address at sign-in.
    pub ip: Option<String>,
}

impl Session {
    /// Whether the session is over at `now` (sliding or absolute expiry).
    #[must_use]
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at || now >= self.absolute_expires_at
    }
}

/// A company workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// The organization's id.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// Unique, URL-safe.
    pub slug: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A user's role in an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The organization.
    pub org_id: OrgId,
    /// The member.
    pub user_id: UserId,
    /// Their role.
    pub role: Role,
    /// When they joined.
    pub joined_at: OffsetDateTime,
}

/// A membership with the member's user record, for member lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The membership.
    pub membership: Membership,
    /// The member.
    pub user: User,
}

/// An organization seen from one of its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOrganization {
    /// The organization.
    pub organization: Organization,
    /// The user's role there.
    pub role: Role,
    /// When the user joined.
    pub joined_at: OffsetDateTime,
}

/// An invitation to join an organization. Its token is a one-time token: hashed at rest,
/// single use, expiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The invitation's id.
    pub id: InvitationId,
    /// Where to.
    pub org_id: OrgId,
    /// Who is invited; only a user with this verified email may accept.
    pub email: Email,
    /// The role they get.
    pub role: Role,
    /// SHA-256 of the mailed token.
    pub token_hash: TokenHash,
    /// Who invited.
    pub invited_by: UserId,
    /// When.
    pub created_at: OffsetDateTime,
    /// Until when it may be accepted.
    pub expires_at: OffsetDateTime,
    /// When it was accepted, if it was.
    pub accepted_at: Option<OffsetDateTime>,
    /// Who accepted it.
    pub accepted_by: Option<UserId>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

impl Invitation {
    /// Whether it may still be accepted at `now`.
    #[must_use]
    pub fn is_pending(&self, now: OffsetDateTime) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && now < self.expires_at
    }
}

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenPurpose {
    /// Proves the user receives mail at their address (24 h by default).
    EmailVerification,
    /// Lets the user set a new password (1 h by default).
    PasswordReset,
}

impl TokenPurpose {
    /// The name stores keep.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
        }
    }

    /// The purpose named `s`, if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email_verification" => Some(Self::EmailVerification),
            "password_reset" => Some(Self::PasswordReset),
            _ => None,
        }
    }
}

/// A mailed, single-use, expiring token (email verification, password reset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    /// The token's id.
    pub id: OneTimeTokenId,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// Whose.
    pub user_id: UserId,
    /// SHA-256 of the mailed token.
    pub token_hash: TokenHash,
    /// For email verification: the address it verifies (the user may have changed it since).
    pub email: Option<Email>,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// Until when it is good.
    pub expires_at: OffsetDateTime,
    /// When it was used; a used token is never good again.
    pub used_at: Option<OffsetDateTime>,
}

/// The database's record of an API token. The token itself (a signed JWT) is shown once and
/// never stored; this record lists, audits and revokes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// The token's id: its JWT `jti`.
    pub id: ApiTokenId,
    /// A label chosen by its creator.
    pub name: String,
    /// Whose authority the token carries (`sub`).
    pub user_id: UserId,
    /// Which organization it acts in (`org`).
    pub org_id: OrgId,
    /// What it may do, at most (`scopes`); always further limited by the owner's current role.
    pub scopes: Vec<Permission>,
    /// Who created it.
    pub created_by: UserId,
    /// When.
    pub created_at: OffsetDateTime,
    /// `exp`.
    pub expires_at: OffsetDateTime,
    /// Last authenticated request (recorded in batches).
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked; revoked is forever.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Something security-relevant that happened, kept for audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The event's id.
    pub id: AuditEventId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What, as a dotted name: `sign_in.succeeded`, `session.revoked`, `member.role_changed`, …
    pub kind: String,
    /// Who did it, if known.
    pub actor_id: Option<UserId>,
    /// Whom it concerns, if a user.
    pub user_id: Option<UserId>,
    /// Which organization, if any.
    pub org_id: Option<OrgId>,
    /// The client address.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// Anything else worth keeping (never secrets).
    pub data: serde_json::Value,
}

/// Which audit events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events concerning or done by this user.
    pub user_id: Option<UserId>,
    /// Only events in this organization.
    pub org_id: Option<OrgId>,
    /// Only events older than this one (for paging, newest first).
    pub before: Option<AuditEventId>,
    /// At most this many (the store caps it at 1000).
    pub limit: u32,
}
