//! Constructors for test data, so that cases stay short.
//!
//! Each returns a valid value with fresh ids and random token hashes; a case changes the
//! fields it cares about. Times are passed in (from a [`ManualClock`](keystead::ManualClock)),
//! except a new user's `created_at`, which is [`SystemClock::now`](keystead::SystemClock):
//! both are whole microseconds, so values read back from a store compare equal.

use keystead::id::{ChallengeId, PasskeyId};
use keystead::model::{Challenge, ChallengeKind, Passkey, TotpFactor};
use keystead::secret::generate_token;
use keystead::{
    ApiTokenRecord, AuditEvent, Clock, Email, ExternalAccount, Invitation, InvitationId,
    Membership, NewUser, OneTimeToken, OneTimeTokenId, OrgId, Organization, Permission, Role,
    SecretString, Session, SessionId, SystemClock, TokenHash, TokenPurpose, User, UserId,
};
use time::{Duration, OffsetDateTime};

/// A valid email address, normalized.
///
/// # Panics
/// When `address` is not a valid address (a bug in the case).
#[must_use]
pub fn email(address: &str) -> Email {
    Email::parse(address).unwrap_or_else(|_| panic!("{address:?} is a valid address"))
}

/// The hash of a fresh random token.
#[must_use]
pub fn token_hash() -> TokenHash {
    TokenHash::of(generate_token().expose())
}

/// A PHC-looking password hash (stores keep it as an opaque string).
#[must_use]
pub fn password_hash(salt: &str) -> SecretString {
    SecretString::new(format!(
        "$argon2id$v=19$m=19456,t=2,p=1${salt}$c29tZS1oYXNoLWJ5dGVzLWZvci10ZXN0cw"
    ))
}

/// A new user with this email: no name, unverified, no password, created now.
#[must_use]
pub fn new_user(address: &str) -> NewUser {
    NewUser {
        user: User {
            id: UserId::new(),
            email: email(address),
            name: None,
            email_verified_at: None,
            created_at: SystemClock.now(),
            external_id: None,
            disabled_at: None,
        },
        password_hash: None,
    }
}

/// A new user with this email and a password hash.
#[must_use]
pub fn new_user_with_password(address: &str, hash: SecretString) -> NewUser {
    NewUser {
        password_hash: Some(hash),
        ..new_user(address)
    }
}

/// An organization with this slug, created at `at`.
#[must_use]
pub fn organization(slug: &str, at: OffsetDateTime) -> Organization {
    Organization {
        id: OrgId::new(),
        name: format!("Organization {slug}"),
        slug: slug.to_owned(),
        created_at: at,
        external_id: None,
        mfa_required: false,
    }
}

/// A membership of `user_id` in `org_id` with `role`, joined at `at`.
#[must_use]
pub fn membership(org_id: OrgId, user_id: UserId, role: Role, at: OffsetDateTime) -> Membership {
    Membership {
        org_id,
        user_id,
        role,
        joined_at: at,
    }
}

/// A session of `user_id` started at `now`: sliding expiry in one hour, absolute in one day,
/// no active organization, no client details.
#[must_use]
pub fn session(user_id: UserId, now: OffsetDateTime) -> Session {
    Session {
        id: SessionId::new(),
        token_hash: token_hash(),
        user_id,
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::hours(1),
        absolute_expires_at: now + Duration::days(1),
        active_org_id: None,
        user_agent: None,
        ip: None,
        authenticated_at: now,
    }
}

/// A link of `user_id` to (`issuer`, `subject`), made at `at`, never used, without email.
#[must_use]
pub fn external_account(
    user_id: UserId,
    issuer: &str,
    subject: &str,
    at: OffsetDateTime,
) -> ExternalAccount {
    ExternalAccount {
        id: keystead::ExternalAccountId::new(),
        user_id,
        provider: "oidc".to_owned(),
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
        email: None,
        email_verified: false,
        created_at: at,
        last_used_at: None,
    }
}

/// An invitation of `address` to `org_id` as `role`, by `invited_by`, made at `now` and
/// good for seven days.
#[must_use]
pub fn invitation(
    org_id: OrgId,
    address: &str,
    role: Role,
    invited_by: UserId,
    now: OffsetDateTime,
) -> Invitation {
    Invitation {
        id: InvitationId::new(),
        org_id,
        email: email(address),
        role,
        token_hash: token_hash(),
        invited_by,
        created_at: now,
        expires_at: now + Duration::days(7),
        accepted_at: None,
        accepted_by: None,
        revoked_at: None,
    }
}

/// An unused one-time token of `user_id` for `purpose`, made at `now` and good for one hour.
#[must_use]
pub fn one_time_token(user_id: UserId, purpose: TokenPurpose, now: OffsetDateTime) -> OneTimeToken {
    OneTimeToken {
        id: OneTimeTokenId::new(),
        purpose,
        user_id,
        token_hash: token_hash(),
        email: None,
        created_at: now,
        expires_at: now + Duration::hours(1),
        used_at: None,
    }
}

/// An API token record of `user_id` in `org_id` (created by that user) with the scope
/// `read:projects`, made at `now` and good for thirty days, unused and unrevoked.
#[must_use]
pub fn api_token(org_id: OrgId, user_id: UserId, now: OffsetDateTime) -> ApiTokenRecord {
    ApiTokenRecord {
        id: keystead::ApiTokenId::new(),
        name: "ci".to_owned(),
        user_id,
        org_id,
        scopes: vec![Permission::from_static("read:projects")],
        created_by: user_id,
        created_at: now,
        expires_at: now + Duration::days(30),
        last_used_at: None,
        revoked_at: None,
    }
}

/// An audit event of `kind` at `at`, about nobody, with empty data.
#[must_use]
pub fn audit_event(kind: &str, at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        id: keystead::AuditEventId::new(),
        at,
        kind: kind.to_owned(),
        actor_id: None,
        user_id: None,
        org_id: None,
        ip: None,
        user_agent: None,
        data: serde_json::json!({}),
    }
}

/// An unconfirmed TOTP factor of `user_id`, enrolled at `now`, with a random sealed secret.
#[must_use]
pub fn totp_factor(user_id: UserId, now: OffsetDateTime) -> TotpFactor {
    TotpFactor {
        user_id,
        secret_ciphertext: token_hash().as_bytes().to_vec(),
        created_at: now,
        confirmed_at: None,
        last_used_step: None,
    }
}

/// A passkey of `user_id` named `name`, registered at `now`, with a random credential id,
/// never used.
#[must_use]
pub fn passkey(user_id: UserId, name: &str, now: OffsetDateTime) -> Passkey {
    Passkey {
        id: PasskeyId::new(),
        user_id,
        credential_id: token_hash().as_bytes()[..16].to_vec(),
        name: name.to_owned(),
        credential: format!(r#"{{"cred":"{}","counter":0}}"#, generate_token().expose()),
        backup_eligible: true,
        backup_state: false,
        created_at: now,
        last_used_at: None,
    }
}

/// A challenge of `kind` (of `user_id`, when given), made at `now` and good for five
/// minutes, with a random token hash.
#[must_use]
pub fn challenge(kind: ChallengeKind, user_id: Option<UserId>, now: OffsetDateTime) -> Challenge {
    Challenge {
        id: ChallengeId::new(),
        kind,
        token_hash: token_hash(),
        user_id,
        data: r#"{"method":"password","next":"/home"}"#.to_owned(),
        created_at: now,
        expires_at: now + Duration::minutes(5),
    }
}

/// A sign-in flow with a provider, live for ten minutes from `now`, with random secrets.
#[must_use]
pub fn oauth_flow(now: OffsetDateTime) -> keystead::OAuthFlow {
    keystead::OAuthFlow {
        id_hash: token_hash(),
        provider: "google".to_owned(),
        state_hash: token_hash(),
        nonce: generate_token(),
        pkce_verifier: generate_token(),
        next: Some("/dashboard/tokens?tab=1".to_owned()),
        link_user_id: None,
        created_at: now,
        expires_at: now + Duration::minutes(10),
    }
}
