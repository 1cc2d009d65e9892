//! The domain: plain data, with no behaviour that needs a store or a framework.
//!
//! Every time is UTC and whole microseconds (see [`Clock`](crate::Clock)).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::email::Email;
use crate::id::{
    ApiTokenId, AuditEventId, ChallengeId, ExternalAccountId, InvitationId, OneTimeTokenId, OrgId,
    PasskeyId, SessionId, UserId,
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
    /// The user's id at the provider they were imported from (Clerk's `user_…`, Auth0's
    /// `auth0|…`): unique across users, so that the app's own rows that hold the old id can be
    /// mapped to this user (`UserStore::user_by_external_id`). `None` for users made here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// When an operator disabled the account: it cannot sign in, and its sessions and API
    /// tokens were ended then. `None` for an account in use.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub disabled_at: Option<OffsetDateTime>,
}

impl User {
    /// Whether the email address is verified.
    #[must_use]
    pub const fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }

    /// Whether an operator disabled the account.
    #[must_use]
    pub const fn disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// The longest external id a store keeps (bytes).
pub const MAX_EXTERNAL_ID_LEN: usize = 255;

/// Whether `id` can be an external id: 1 to [`MAX_EXTERNAL_ID_LEN`] bytes of visible ASCII
/// (what Clerk, Auth0 and other providers use: `user_2abc…`, `auth0|5f…`, `google-oauth2|1…`).
#[must_use]
pub fn is_valid_external_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_EXTERNAL_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
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
    /// When the user last proved who they are in this session: at sign-in (after the second
    /// factor, if any), and again at each re-authentication. Step-up routes need it recent.
    pub authenticated_at: OffsetDateTime,
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
    /// Its id at the provider it was imported from (Clerk's `org_…`): unique across
    /// organizations. `None` for organizations made here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Whether its members must have a second factor (TOTP or a passkey) to act in it.
    #[serde(default)]
    pub mfa_required: bool,
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
    /// Whether the member has a second factor (a confirmed TOTP or a passkey): what an
    /// organization's MFA policy asks.
    pub second_factor: bool,
}

/// A user's membership in an organization, with what the organization's MFA policy needs to
/// know: read in one query whenever a session or token acts in the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccess {
    /// The membership.
    pub membership: Membership,
    /// Whether the organization requires a second factor of its members.
    pub mfa_required: bool,
    /// Whether the member has one (a confirmed TOTP or a passkey).
    pub second_factor: bool,
}

/// A user's TOTP authenticator (RFC 6238): one per user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// Whose.
    pub user_id: UserId,
    /// The shared secret, sealed by the library (an AEAD under a key the store never holds):
    /// stores keep these bytes as they are.
    pub secret_ciphertext: Vec<u8>,
    /// When enrolment began.
    pub created_at: OffsetDateTime,
    /// When a first code confirmed it. An unconfirmed factor is no second factor yet.
    pub confirmed_at: Option<OffsetDateTime>,
    /// The time step (Unix time / period) of the last code accepted: a code of this step or
    /// an earlier one is refused, on every instance (each code is usable once).
    pub last_used_step: Option<i64>,
}

/// What second factors a user has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MfaStatus {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    /// How many passkeys.
    pub passkeys: u32,
    /// How many unused recovery codes.
    pub recovery_codes: u32,
}

impl MfaStatus {
    /// Whether the user has a second factor (TOTP or a passkey; recovery codes only back
    /// one up).
    #[must_use]
    pub fn has_second_factor(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

/// A WebAuthn credential (a passkey) registered by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// The library's id for it (for naming and removal).
    pub id: PasskeyId,
    /// Whose.
    pub user_id: UserId,
    /// The WebAuthn credential id (raw bytes): unique across users.
    pub credential_id: Vec<u8>,
    /// A name the user chose ("MacBook Touch ID").
    pub name: String,
    /// The credential as the WebAuthn library serializes it (public key, signature counter,
    /// backup flags): stores keep it as it is.
    pub credential: String,
    /// Whether the authenticator may sync it (a multi-device passkey).
    pub backup_eligible: bool,
    /// Whether it is backed up (synced) now, as of its last use.
    pub backup_state: bool,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it was last used to sign in.
    pub last_used_at: Option<OffsetDateTime>,
}

/// What a [`Challenge`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChallengeKind {
    /// A sign-in whose first factor passed and that waits for the second.
    MfaSignIn,
    /// A passkey registration ceremony in progress.
    PasskeyRegistration,
    /// A passkey authentication ceremony in progress.
    PasskeyAuthentication,
}

impl ChallengeKind {
    /// The name stores keep.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MfaSignIn => "mfa_sign_in",
            Self::PasskeyRegistration => "passkey_registration",
            Self::PasskeyAuthentication => "passkey_authentication",
        }
    }

    /// The kind named `s`, if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mfa_sign_in" => Some(Self::MfaSignIn),
            "passkey_registration" => Some(Self::PasskeyRegistration),
            "passkey_authentication" => Some(Self::PasskeyAuthentication),
            _ => None,
        }
    }
}

/// Short-lived server-side state between two steps of a flow (a pending sign-in, a WebAuthn
/// ceremony), found by the hash of a random token the client holds. Single use: taking it
/// deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Its id.
    pub id: ChallengeId,
    /// What it is for.
    pub kind: ChallengeKind,
    /// SHA-256 of the token the client holds (in a cookie or a request body).
    pub token_hash: TokenHash,
    /// Whose, when known (a passwordless passkey sign-in learns it only at the end).
    pub user_id: Option<UserId>,
    /// The flow's state, as the library serializes it (JSON).
    pub data: String,
    /// When it began.
    pub created_at: OffsetDateTime,
    /// Until when it may be completed.
    pub expires_at: OffsetDateTime,
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
    /// What: the library's own kinds are [`AuditKind::as_str`] (`sign_in.succeeded`,
    /// `member.role_changed`, …; [`AuditEvent::known_kind`] reads one back), an app's own are
    /// whatever it recorded with [`AuditEvent::custom`]. Stored as this text.
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

impl AuditEvent {
    /// An event of one of the library's kinds at `at`, with a fresh id, about nobody yet (no
    /// actor, user, organization or client) and empty `data` (`{}`): set the rest with struct
    /// update syntax (`AuditEvent { actor_id: Some(id), ..AuditEvent::new(kind, at) }`).
    #[must_use]
    pub fn new(kind: AuditKind, at: OffsetDateTime) -> Self {
        Self::custom(kind.as_str(), at)
    }

    /// An event of an app's own kind (`"invoice.paid"`, say), otherwise as [`AuditEvent::new`].
    /// The text is stored as given; pick names that are no [`AuditKind`]'s (a prefix of the
    /// app's own, such as `app.`, keeps them apart from kinds a later version may add).
    #[must_use]
    pub fn custom(kind: impl Into<String>, at: OffsetDateTime) -> Self {
        Self {
            id: AuditEventId::new(),
            at,
            kind: kind.into(),
            actor_id: None,
            user_id: None,
            org_id: None,
            ip: None,
            user_agent: None,
            data: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The library's kind of this event; `None` for an app's own kind.
    #[must_use]
    pub fn known_kind(&self) -> Option<AuditKind> {
        self.kind.parse().ok()
    }
}

/// Generates [`AuditKind`] from one table: each row is the variant (with its doc) and the text
/// stored for it. The enum, `ALL`, `as_str` and `FromStr` come from the table.
macro_rules! audit_kinds {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal,)+) => {
        /// The kinds of audit event the library records. Stored as [`as_str`](Self::as_str):
        /// those strings never change (databases hold them). An app records its own kinds
        /// with [`AuditEvent::custom`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum AuditKind {
            $($(#[doc = $doc])* $variant,)+
        }

        impl AuditKind {
            /// Every kind, for exhaustive tests and documentation.
            pub const ALL: [AuditKind; [$(AuditKind::$variant),+].len()] = [$(Self::$variant),+];

            /// The text stored for the kind (`AuditEvent::kind`).
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for AuditKind {
            type Err = UnknownAuditKind;

            /// The kind stored as `s`.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownAuditKind),
                }
            }
        }
    };
}

audit_kinds! {
    /// An account was created with a password.
    SignUp = "sign_up",
    /// An account was created through an external provider.
    SignUpOAuth = "sign_up.oauth",
    /// A password sign-in succeeded.
    SignInSucceeded = "sign_in.succeeded",
    /// A password sign-in failed (unknown email, wrong password).
    SignInFailed = "sign_in.failed",
    /// A sign-in through an external provider succeeded.
    SignInOAuth = "sign_in.oauth",
    /// A session was ended.
    SignOut = "sign_out",
    /// Every session of a user was ended.
    SignOutEverywhere = "sign_out.everywhere",
    /// An email address was verified.
    EmailVerified = "email.verified",
    /// A password reset was asked for.
    PasswordResetRequested = "password.reset_requested",
    /// A password was reset through an emailed link.
    PasswordReset = "password.reset",
    /// A password change was refused (the current password was wrong).
    PasswordChangeFailed = "password.change_failed",
    /// A password was changed.
    PasswordChanged = "password.changed",
    /// An external provider's flow failed.
    OAuthFailed = "oauth.failed",
    /// An external provider's identity was refused.
    OAuthRefused = "oauth.refused",
    /// An external account was linked to a user.
    OAuthLinked = "oauth.linked",
    /// An external account was unlinked from a user.
    OAuthUnlinked = "oauth.unlinked",
    /// An account registered before its owner signed in through a provider was taken over by
    /// that provider's verified identity (its earlier credentials ended).
    OAuthPreRegistrationEnded = "oauth.pre_registration_ended",
    /// An API token was created.
    ApiTokenCreated = "api_token.created",
    /// An API token was refused.
    ApiTokenRefused = "api_token.refused",
    /// An API token was used (recorded in batches).
    ApiTokenUsed = "api_token.used",
    /// An API token was revoked.
    ApiTokenRevoked = "api_token.revoked",
    /// An organization was created.
    OrgCreated = "org.created",
    /// An organization's ownership was transferred.
    OrgOwnershipTransferred = "org.ownership_transferred",
    /// An organization was deleted.
    OrgDeleted = "org.deleted",
    /// Someone was invited into an organization.
    MemberInvited = "member.invited",
    /// A member's role was changed.
    MemberRoleChanged = "member.role_changed",
    /// A member left an organization.
    MemberLeft = "member.left",
    /// A member was removed from an organization.
    MemberRemoved = "member.removed",
    /// An invitation was revoked.
    InvitationRevoked = "invitation.revoked",
    /// An invitation was accepted.
    InvitationAccepted = "invitation.accepted",
    /// A session of the provider the app moved from was swapped for one of ours (the hand-off window).
    SessionHandoff = "session.handoff",
    /// A user was imported from another provider.
    UserImported = "import.user",
    /// An imported user was updated by a later run of the import.
    UserImportUpdated = "import.user_updated",
    /// An organization was imported from another provider.
    OrgImported = "import.org",
    /// A membership was imported (or its role updated) from another provider.
    MembershipImported = "import.membership",
    /// An operator created a user.
    AdminUserCreated = "admin.user_created",
    /// An operator disabled a user (sessions ended, API tokens revoked).
    AdminUserDisabled = "admin.user_disabled",
    /// An operator enabled a disabled user again.
    AdminUserEnabled = "admin.user_enabled",
    /// An operator deleted a user.
    AdminUserDeleted = "admin.user_deleted",
    /// An operator marked a user's email verified.
    AdminEmailVerified = "admin.email_verified",
    /// An operator mailed a user a password reset link.
    AdminPasswordResetSent = "admin.password_reset_sent",
    /// An operator ended a user's sessions.
    AdminSessionsRevoked = "admin.sessions_revoked",
    /// An operator revoked an API token.
    AdminApiTokenRevoked = "admin.api_token_revoked",
    /// An operator changed a member's role.
    AdminRoleChanged = "admin.role_changed",
    /// An operator rotated the API token signing keys.
    AdminKeysRotated = "admin.keys_rotated",
    /// An operator retired a signing key (it verifies nothing from then on).
    AdminKeyRetired = "admin.key_retired",
    /// TOTP enrolment began (a secret was issued; not yet a factor).
    MfaTotpEnrolmentStarted = "mfa.totp_enrolment_started",
    /// A TOTP factor was confirmed by its first code: it is a second factor now.
    MfaTotpEnabled = "mfa.totp_enabled",
    /// The TOTP factor was removed.
    MfaTotpDisabled = "mfa.totp_disabled",
    /// A new set of recovery codes was issued (the old set is void).
    MfaRecoveryCodesRegenerated = "mfa.recovery_codes_regenerated",
    /// A recovery code was used.
    MfaRecoveryCodeUsed = "mfa.recovery_code_used",
    /// A passkey was registered.
    PasskeyAdded = "passkey.added",
    /// A passkey was renamed.
    PasskeyRenamed = "passkey.renamed",
    /// A passkey was removed.
    PasskeyRemoved = "passkey.removed",
    /// A second-factor code or passkey answer was refused.
    MfaFailed = "mfa.failed",
    /// The first factor of a sign-in passed; the sign-in waits for the second.
    MfaChallenged = "mfa.challenged",
    /// The user authenticated again in a session (step-up).
    Reauthenticated = "session.reauthenticated",
    /// An organization's MFA policy changed.
    OrgMfaPolicyChanged = "org.mfa_policy_changed",
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is no [`AuditKind`]'s text (an app's own kind, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not one of the library's audit kinds")]
pub struct UnknownAuditKind;

/// Which audit events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events concerning or done by this user.
    pub user_id: Option<UserId>,
    /// Only events in this organization.
    pub org_id: Option<OrgId>,
    /// Only events of this kind (`sign_in.failed`, `admin.user_disabled`, …).
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
    /// Only events older than this one (for paging, newest first).
    pub before: Option<AuditEventId>,
    /// At most this many (the store caps it at 1000).
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::{AuditEvent, AuditKind, UnknownAuditKind};

    /// The text of every kind, as databases hold it: a change here breaks every reader of an
    /// existing audit log.
    #[test]
    fn every_audit_kind_keeps_its_stored_text() {
        let pinned: [(AuditKind, &str); 58] = [
            (AuditKind::SignUp, "sign_up"),
            (AuditKind::SignUpOAuth, "sign_up.oauth"),
            (AuditKind::SignInSucceeded, "sign_in.succeeded"),
            (AuditKind::SignInFailed, "sign_in.failed"),
            (AuditKind::SignInOAuth, "sign_in.oauth"),
            (AuditKind::SignOut, "sign_out"),
            (AuditKind::SignOutEverywhere, "sign_out.everywhere"),
            (AuditKind::EmailVerified, "email.verified"),
            (
                AuditKind::PasswordResetRequested,
                "password.reset_requested",
            ),
            (AuditKind::PasswordReset, "password.reset"),
            (AuditKind::PasswordChangeFailed, "password.change_failed"),
            (AuditKind::PasswordChanged, "password.changed"),
            (AuditKind::OAuthFailed, "oauth.failed"),
            (AuditKind::OAuthRefused, "oauth.refused"),
            (AuditKind::OAuthLinked, "oauth.linked"),
            (AuditKind::OAuthUnlinked, "oauth.unlinked"),
            (
                AuditKind::OAuthPreRegistrationEnded,
                "oauth.pre_registration_ended",
            ),
            (AuditKind::ApiTokenCreated, "api_token.created"),
            (AuditKind::ApiTokenRefused, "api_token.refused"),
            (AuditKind::ApiTokenUsed, "api_token.used"),
            (AuditKind::ApiTokenRevoked, "api_token.revoked"),
            (AuditKind::OrgCreated, "org.created"),
            (
                AuditKind::OrgOwnershipTransferred,
                "org.ownership_transferred",
            ),
            (AuditKind::OrgDeleted, "org.deleted"),
            (AuditKind::MemberInvited, "member.invited"),
            (AuditKind::MemberRoleChanged, "member.role_changed"),
            (AuditKind::MemberLeft, "member.left"),
            (AuditKind::MemberRemoved, "member.removed"),
            (AuditKind::InvitationRevoked, "invitation.revoked"),
            (AuditKind::InvitationAccepted, "invitation.accepted"),
            (AuditKind::SessionHandoff, "session.handoff"),
            (AuditKind::UserImported, "import.user"),
            (AuditKind::UserImportUpdated, "import.user_updated"),
            (AuditKind::OrgImported, "import.org"),
            (AuditKind::MembershipImported, "import.membership"),
            (AuditKind::AdminUserCreated, "admin.user_created"),
            (AuditKind::AdminUserDisabled, "admin.user_disabled"),
            (AuditKind::AdminUserEnabled, "admin.user_enabled"),
            (AuditKind::AdminUserDeleted, "admin.user_deleted"),
            (AuditKind::AdminEmailVerified, "admin.email_verified"),
            (
                AuditKind::AdminPasswordResetSent,
                "admin.password_reset_sent",
            ),
            (AuditKind::AdminSessionsRevoked, "admin.sessions_revoked"),
            (AuditKind::AdminApiTokenRevoked, "admin.api_token_revoked"),
            (AuditKind::AdminRoleChanged, "admin.role_changed"),
            (AuditKind::AdminKeysRotated, "admin.keys_rotated"),
            (AuditKind::AdminKeyRetired, "admin.key_retired"),
            (
                AuditKind::MfaTotpEnrolmentStarted,
                "mfa.totp_enrolment_started",
            ),
            (AuditKind::MfaTotpEnabled, "mfa.totp_enabled"),
            (AuditKind::MfaTotpDisabled, "mfa.totp_disabled"),
            (
                AuditKind::MfaRecoveryCodesRegenerated,
                "mfa.recovery_codes_regenerated",
            ),
            (AuditKind::MfaRecoveryCodeUsed, "mfa.recovery_code_used"),
            (AuditKind::PasskeyAdded, "passkey.added"),
            (AuditKind::PasskeyRenamed, "passkey.renamed"),
            (AuditKind::PasskeyRemoved, "passkey.removed"),
            (AuditKind::MfaFailed, "mfa.failed"),
            (AuditKind::MfaChallenged, "mfa.challenged"),
            (AuditKind::Reauthenticated, "session.reauthenticated"),
            (AuditKind::OrgMfaPolicyChanged, "org.mfa_policy_changed"),
        ];
        assert_eq!(AuditKind::ALL.len(), pinned.len());
        for (kind, (pinned_kind, text)) in AuditKind::ALL.into_iter().zip(pinned) {
            assert_eq!(kind, pinned_kind);
            assert_eq!(kind.as_str(), text);
            assert_eq!(kind.to_string(), text);
            assert_eq!(text.parse::<AuditKind>(), Ok(kind));
            let event = AuditEvent::new(kind, time::OffsetDateTime::UNIX_EPOCH);
            assert_eq!(event.kind, text);
            assert_eq!(event.known_kind(), Some(kind));
        }
    }

    #[test]
    fn an_apps_own_kind_is_stored_as_given_and_is_no_library_kind() {
        let event = AuditEvent::custom("app.invoice_paid", time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(event.kind, "app.invoice_paid");
        assert_eq!(event.known_kind(), None);
        assert_eq!(
            "app.invoice_paid".parse::<AuditKind>(),
            Err(UnknownAuditKind)
        );
        assert_eq!(event.data, serde_json::json!({}));
        assert!(event.actor_id.is_none() && event.user_id.is_none() && event.org_id.is_none());
    }
}
