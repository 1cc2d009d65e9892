//! From rows to domain types. A row that does not make sense (an invalid email, a short hash,
//! an unknown purpose) is a [`StoreError`], never a panic.

use keystead_core::{
    ApiTokenRecord, AuditEvent, Challenge, ChallengeKind, Email, ExternalAccount, Invitation,
    Membership, OneTimeToken, Organization, Passkey, Permission, Role, Session, StoreError,
    TokenHash, TokenPurpose, TotpFactor, User,
};
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::map_sqlx_error;

/// The columns [`user`] reads, in `SELECT` order.
macro_rules! user_columns {
    () => {
        "id, email, name, email_verified_at, created_at, external_id, disabled_at"
    };
}

/// The same columns, qualified with the alias `u` for joins.
macro_rules! user_columns_u {
    () => {
        "u.id, u.email, u.name, u.email_verified_at, u.created_at, u.external_id, u.disabled_at"
    };
}

/// The columns [`external_account`] reads.
macro_rules! external_account_columns {
    () => {
        "id, user_id, provider, issuer, subject, email, email_verified, created_at, last_used_at"
    };
}

/// The columns [`session`] reads.
macro_rules! session_columns {
    () => {
        "id, token_hash, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, \
         active_org_id, user_agent, ip, authenticated_at"
    };
}

/// The columns [`organization`] reads.
macro_rules! organization_columns {
    () => {
        "id, name, slug, created_at, external_id, mfa_required"
    };
}

/// The same columns, qualified with the alias `o` for joins.
macro_rules! organization_columns_o {
    () => {
        "o.id, o.name, o.slug, o.created_at, o.external_id, o.mfa_required"
    };
}

/// Whether the user `m.user_id` has a second factor (a confirmed TOTP or a passkey), as the
/// boolean column `second_factor`.
macro_rules! second_factor_of_m {
    () => {
        "(EXISTS (SELECT 1 FROM {t}totp_factors tf \
                  WHERE tf.user_id = m.user_id AND tf.confirmed_at IS NOT NULL) \
          OR EXISTS (SELECT 1 FROM {t}passkeys pk WHERE pk.user_id = m.user_id)) \
         AS second_factor"
    };
}

/// The columns [`totp_factor`] reads.
macro_rules! totp_factor_columns {
    () => {
        "user_id, secret_ciphertext, created_at, confirmed_at, last_used_step"
    };
}

/// The columns [`passkey`] reads.
macro_rules! passkey_columns {
    () => {
        "id, user_id, credential_id, name, credential, backup_eligible, backup_state, \
         created_at, last_used_at"
    };
}

/// The columns [`challenge`] reads.
macro_rules! challenge_columns {
    () => {
        "id, kind, token_hash, user_id, data, created_at, expires_at"
    };
}

/// The columns [`membership`] reads.
macro_rules! membership_columns {
    () => {
        "org_id, user_id, role, joined_at"
    };
}

/// The columns [`invitation`] reads.
macro_rules! invitation_columns {
    () => {
        "id, org_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, \
         accepted_by, revoked_at"
    };
}

/// The columns [`one_time_token`] reads.
macro_rules! one_time_token_columns {
    () => {
        "id, purpose, user_id, token_hash, email, created_at, expires_at, used_at"
    };
}

/// The columns [`api_token`] reads.
macro_rules! api_token_columns {
    () => {
        "id, name, user_id, org_id, scopes, created_by, created_at, expires_at, last_used_at, \
         revoked_at"
    };
}

/// The columns [`audit_event`] reads (`data` as text, parsed here).
macro_rules! audit_event_columns {
    () => {
        "id, at, kind, actor_id, user_id, org_id, ip, user_agent, data::text AS data"
    };
}

pub(crate) use {
    api_token_columns, audit_event_columns, challenge_columns, external_account_columns,
    invitation_columns, membership_columns, one_time_token_columns, organization_columns,
    organization_columns_o, passkey_columns, second_factor_of_m, session_columns,
    totp_factor_columns, user_columns, user_columns_u,
};

/// Reads one column; a missing column or a value of the wrong type is a backend error.
fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(map_sqlx_error)
}

fn time(row: &PgRow, column: &str) -> Result<OffsetDateTime, StoreError> {
    get(row, column)
}

fn opt_time(row: &PgRow, column: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    get(row, column)
}

fn id<T: From<Uuid>>(row: &PgRow, column: &str) -> Result<T, StoreError> {
    get::<Uuid>(row, column).map(T::from)
}

fn opt_id<T: From<Uuid>>(row: &PgRow, column: &str) -> Result<Option<T>, StoreError> {
    get::<Option<Uuid>>(row, column).map(|id| id.map(T::from))
}

fn email(row: &PgRow, column: &str) -> Result<Email, StoreError> {
    let raw: String = get(row, column)?;
    parse_email(&raw, column)
}

fn parse_email(raw: &str, column: &str) -> Result<Email, StoreError> {
    Email::parse(raw).map_err(|_| StoreError::corrupt(format!("invalid email in column {column}")))
}

fn role(row: &PgRow, column: &str) -> Result<Role, StoreError> {
    let raw: String = get(row, column)?;
    Role::new(raw).map_err(|_| StoreError::corrupt(format!("invalid role name in column {column}")))
}

fn token_hash(row: &PgRow, column: &str) -> Result<TokenHash, StoreError> {
    let raw: Vec<u8> = get(row, column)?;
    TokenHash::from_slice(&raw).ok_or_else(|| {
        StoreError::corrupt(format!(
            "token hash of {} bytes in column {column}",
            raw.len()
        ))
    })
}

pub(crate) fn user(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: id(row, "id")?,
        email: email(row, "email")?,
        name: get(row, "name")?,
        email_verified_at: opt_time(row, "email_verified_at")?,
        created_at: time(row, "created_at")?,
        external_id: get(row, "external_id")?,
        disabled_at: opt_time(row, "disabled_at")?,
    })
}

pub(crate) fn external_account(row: &PgRow) -> Result<ExternalAccount, StoreError> {
    Ok(ExternalAccount {
        id: id(row, "id")?,
        user_id: id(row, "user_id")?,
        provider: get(row, "provider")?,
        issuer: get(row, "issuer")?,
        subject: get(row, "subject")?,
        email: get(row, "email")?,
        email_verified: get(row, "email_verified")?,
        created_at: time(row, "created_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
    })
}

pub(crate) fn session(row: &PgRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: id(row, "id")?,
        token_hash: token_hash(row, "token_hash")?,
        user_id: id(row, "user_id")?,
        created_at: time(row, "created_at")?,
        last_seen_at: time(row, "last_seen_at")?,
        expires_at: time(row, "expires_at")?,
        absolute_expires_at: time(row, "absolute_expires_at")?,
        active_org_id: opt_id(row, "active_org_id")?,
        user_agent: get(row, "user_agent")?,
        ip: get(row, "ip")?,
        authenticated_at: time(row, "authenticated_at")?,
    })
}

pub(crate) fn organization(row: &PgRow) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: id(row, "id")?,
        name: get(row, "name")?,
        slug: get(row, "slug")?,
        created_at: time(row, "created_at")?,
        external_id: get(row, "external_id")?,
        mfa_required: get(row, "mfa_required")?,
    })
}

pub(crate) fn membership(row: &PgRow) -> Result<Membership, StoreError> {
    Ok(Membership {
        org_id: id(row, "org_id")?,
        user_id: id(row, "user_id")?,
        role: role(row, "role")?,
        joined_at: time(row, "joined_at")?,
    })
}

/// The role and join time of a membership read in a join, as `m_role` and `m_joined_at`.
pub(crate) fn role_and_joined_at(row: &PgRow) -> Result<(Role, OffsetDateTime), StoreError> {
    Ok((role(row, "m_role")?, time(row, "m_joined_at")?))
}

pub(crate) fn invitation(row: &PgRow) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: id(row, "id")?,
        org_id: id(row, "org_id")?,
        email: email(row, "email")?,
        role: role(row, "role")?,
        token_hash: token_hash(row, "token_hash")?,
        invited_by: id(row, "invited_by")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        accepted_at: opt_time(row, "accepted_at")?,
        accepted_by: opt_id(row, "accepted_by")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

pub(crate) fn one_time_token(row: &PgRow) -> Result<OneTimeToken, StoreError> {
    let purpose: String = get(row, "purpose")?;
    let email: Option<String> = get(row, "email")?;
    Ok(OneTimeToken {
        id: id(row, "id")?,
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::corrupt("unknown one-time token purpose"))?,
        user_id: id(row, "user_id")?,
        token_hash: token_hash(row, "token_hash")?,
        email: email
            .as_deref()
            .map(|e| parse_email(e, "email"))
            .transpose()?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        used_at: opt_time(row, "used_at")?,
    })
}

pub(crate) fn api_token(row: &PgRow) -> Result<ApiTokenRecord, StoreError> {
    let scopes: Vec<String> = get(row, "scopes")?;
    let scopes = scopes
        .into_iter()
        .map(|s| Permission::new(s).map_err(|_| StoreError::corrupt("invalid API token scope")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApiTokenRecord {
        id: id(row, "id")?,
        name: get(row, "name")?,
        user_id: id(row, "user_id")?,
        org_id: id(row, "org_id")?,
        scopes,
        created_by: id(row, "created_by")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

pub(crate) fn audit_event(row: &PgRow) -> Result<AuditEvent, StoreError> {
    let data: String = get(row, "data")?;
    Ok(AuditEvent {
        id: id(row, "id")?,
        at: time(row, "at")?,
        kind: get(row, "kind")?,
        actor_id: opt_id(row, "actor_id")?,
        user_id: opt_id(row, "user_id")?,
        org_id: opt_id(row, "org_id")?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
        data: serde_json::from_str(&data)
            .map_err(|_| StoreError::corrupt("audit event data is not JSON"))?,
    })
}

pub(crate) fn totp_factor(row: &PgRow) -> Result<TotpFactor, StoreError> {
    Ok(TotpFactor {
        user_id: id(row, "user_id")?,
        secret_ciphertext: get(row, "secret_ciphertext")?,
        created_at: time(row, "created_at")?,
        confirmed_at: opt_time(row, "confirmed_at")?,
        last_used_step: get(row, "last_used_step")?,
    })
}

pub(crate) fn passkey(row: &PgRow) -> Result<Passkey, StoreError> {
    Ok(Passkey {
        id: id(row, "id")?,
        user_id: id(row, "user_id")?,
        credential_id: get(row, "credential_id")?,
        name: get(row, "name")?,
        credential: get(row, "credential")?,
        backup_eligible: get(row, "backup_eligible")?,
        backup_state: get(row, "backup_state")?,
        created_at: time(row, "created_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
    })
}

pub(crate) fn challenge(row: &PgRow) -> Result<Challenge, StoreError> {
    let kind: String = get(row, "kind")?;
    Ok(Challenge {
        id: id(row, "id")?,
        kind: ChallengeKind::parse(&kind)
            .ok_or_else(|| StoreError::corrupt("unknown challenge kind"))?,
        token_hash: token_hash(row, "token_hash")?,
        user_id: opt_id(row, "user_id")?,
        data: get(row, "data")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
    })
}

/// Decodes every row, stopping at the first bad one.
pub(crate) fn all<T>(
    rows: &[PgRow],
    decode: impl Fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(decode).collect()
}
