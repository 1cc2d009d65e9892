//! Values to and from their SQLite columns, and rows to domain types.
//!
//! Reading never panics: a value that does not make sense (a malformed id, an unknown
//! purpose, a short hash, a time out of range) is a [`StoreError::corrupt`].

use keystead_core::{
    ApiTokenRecord, AuditEvent, Challenge, ChallengeKind, Email, ExternalAccount, Invitation,
    Membership, OneTimeToken, Organization, Passkey, Permission, Role, Session, StoreError,
    StoreResult, TokenHash, TokenPurpose, TotpFactor, User,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// A time as microseconds since the Unix epoch (times are whole microseconds already; any
/// rest is floored). Every `OffsetDateTime` fits: its range is far inside `i64`'s.
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    let us = t.unix_timestamp_nanos().div_euclid(1_000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// [`micros`] of an optional time.
pub(crate) fn opt_micros(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(micros)
}

/// The time `us` microseconds after the Unix epoch, in UTC.
pub(crate) fn from_micros(us: i64, column: &str) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|_| StoreError::corrupt(format!("{column}: time {us} out of range")))
}

/// A JSON array of permission names, as `api_tokens.scopes` keeps them.
pub(crate) fn scopes_json(scopes: &[Permission]) -> String {
    serde_json::Value::Array(
        scopes
            .iter()
            .map(|p| serde_json::Value::String(p.as_str().to_owned()))
            .collect(),
    )
    .to_string()
}

/// Typed access to a row's columns.
pub(crate) trait RowExt {
    /// A non-null text column.
    fn text(&self, column: &str) -> StoreResult<String>;
    /// A nullable text column.
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    /// A non-null integer column.
    fn int(&self, column: &str) -> StoreResult<i64>;
    /// A nullable integer column.
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>>;
    /// A non-null blob column.
    fn blob(&self, column: &str) -> StoreResult<Vec<u8>>;

    /// An id column.
    fn id<T: From<Uuid>>(&self, column: &str) -> StoreResult<T> {
        parse_uuid(&self.text(column)?, column).map(T::from)
    }
    /// A nullable id column.
    fn opt_id<T: From<Uuid>>(&self, column: &str) -> StoreResult<Option<T>> {
        self.opt_text(column)?
            .map(|s| parse_uuid(&s, column).map(T::from))
            .transpose()
    }
    /// A time column.
    fn time(&self, column: &str) -> StoreResult<OffsetDateTime> {
        from_micros(self.int(column)?, column)
    }
    /// A nullable time column.
    fn opt_time(&self, column: &str) -> StoreResult<Option<OffsetDateTime>> {
        self.opt_int(column)?
            .map(|us| from_micros(us, column))
            .transpose()
    }
    /// A token hash column.
    fn hash(&self, column: &str) -> StoreResult<TokenHash> {
        let bytes = self.blob(column)?;
        TokenHash::from_slice(&bytes).ok_or_else(|| {
            StoreError::corrupt(format!("{column}: a hash of {} bytes, not 32", bytes.len()))
        })
    }
    /// An email column.
    fn email(&self, column: &str) -> StoreResult<Email> {
        parse_email(&self.text(column)?, column)
    }
    /// A nullable email column.
    fn opt_email(&self, column: &str) -> StoreResult<Option<Email>> {
        self.opt_text(column)?
            .map(|s| parse_email(&s, column))
            .transpose()
    }
    /// A role column.
    fn role(&self, column: &str) -> StoreResult<Role> {
        let name = self.text(column)?;
        Role::new(name).map_err(|_| StoreError::corrupt(format!("{column}: invalid role name")))
    }
    /// A boolean (0 or 1) column.
    fn boolean(&self, column: &str) -> StoreResult<bool> {
        match self.int(column)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(StoreError::corrupt(format!(
                "{column}: {other} is not a boolean"
            ))),
        }
    }
}

impl RowExt for SqliteRow {
    fn text(&self, column: &str) -> StoreResult<String> {
        self.try_get(column).map_err(StoreError::backend)
    }
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
        self.try_get(column).map_err(StoreError::backend)
    }
    fn int(&self, column: &str) -> StoreResult<i64> {
        self.try_get(column).map_err(StoreError::backend)
    }
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>> {
        self.try_get(column).map_err(StoreError::backend)
    }
    fn blob(&self, column: &str) -> StoreResult<Vec<u8>> {
        self.try_get(column).map_err(StoreError::backend)
    }
}

fn parse_uuid(s: &str, column: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| StoreError::corrupt(format!("{column}: not a UUID")))
}

fn parse_email(s: &str, column: &str) -> StoreResult<Email> {
    Email::parse(s).map_err(|_| StoreError::corrupt(format!("{column}: not an email address")))
}

/// Columns of `users`, in the order [`user`] reads them (prefixed by an alias in joins).
macro_rules! user_columns {
    () => {
        "id, email, name, email_verified_at, created_at, external_id, disabled_at"
    };
}
pub(crate) use user_columns;

pub(crate) fn user(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: row.id("id")?,
        email: row.email("email")?,
        name: row.opt_text("name")?,
        email_verified_at: row.opt_time("email_verified_at")?,
        created_at: row.time("created_at")?,
        external_id: row.opt_text("external_id")?,
        disabled_at: row.opt_time("disabled_at")?,
    })
}

macro_rules! external_account_columns {
    () => {
        "id, user_id, provider, issuer, subject, email, email_verified, created_at, last_used_at"
    };
}
pub(crate) use external_account_columns;

pub(crate) fn external_account(row: &SqliteRow) -> StoreResult<ExternalAccount> {
    Ok(ExternalAccount {
        id: row.id("id")?,
        user_id: row.id("user_id")?,
        provider: row.text("provider")?,
        issuer: row.text("issuer")?,
        subject: row.text("subject")?,
        email: row.opt_text("email")?,
        email_verified: row.boolean("email_verified")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

macro_rules! session_columns {
    () => {
        "id, token_hash, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, \
         active_org_id, user_agent, ip, authenticated_at"
    };
}
pub(crate) use session_columns;

pub(crate) fn session(row: &SqliteRow) -> StoreResult<Session> {
    Ok(Session {
        id: row.id("id")?,
        token_hash: row.hash("token_hash")?,
        user_id: row.id("user_id")?,
        created_at: row.time("created_at")?,
        last_seen_at: row.time("last_seen_at")?,
        expires_at: row.time("expires_at")?,
        absolute_expires_at: row.time("absolute_expires_at")?,
        active_org_id: row.opt_id("active_org_id")?,
        user_agent: row.opt_text("user_agent")?,
        ip: row.opt_text("ip")?,
        authenticated_at: row.time("authenticated_at")?,
    })
}

macro_rules! organization_columns {
    () => {
        "id, name, slug, created_at, external_id, mfa_required"
    };
}
pub(crate) use organization_columns;

pub(crate) fn organization(row: &SqliteRow) -> StoreResult<Organization> {
    Ok(Organization {
        id: row.id("id")?,
        name: row.text("name")?,
        slug: row.text("slug")?,
        created_at: row.time("created_at")?,
        external_id: row.opt_text("external_id")?,
        mfa_required: row.boolean("mfa_required")?,
    })
}

/// Whether the user `m.user_id` has a second factor (a confirmed TOTP or a passkey), as the
/// 0/1 column `second_factor`.
macro_rules! second_factor_of_m {
    () => {
        "(EXISTS (SELECT 1 FROM {t}totp_factors AS tf \
                  WHERE tf.user_id = m.user_id AND tf.confirmed_at IS NOT NULL) \
          OR EXISTS (SELECT 1 FROM {t}passkeys AS pk WHERE pk.user_id = m.user_id)) \
         AS second_factor"
    };
}
pub(crate) use second_factor_of_m;

macro_rules! membership_columns {
    () => {
        "org_id, user_id, role, joined_at"
    };
}
pub(crate) use membership_columns;

pub(crate) fn membership(row: &SqliteRow) -> StoreResult<Membership> {
    Ok(Membership {
        org_id: row.id("org_id")?,
        user_id: row.id("user_id")?,
        role: row.role("role")?,
        joined_at: row.time("joined_at")?,
    })
}

macro_rules! invitation_columns {
    () => {
        "id, org_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, \
         accepted_by, revoked_at"
    };
}
pub(crate) use invitation_columns;

pub(crate) fn invitation(row: &SqliteRow) -> StoreResult<Invitation> {
    Ok(Invitation {
        id: row.id("id")?,
        org_id: row.id("org_id")?,
        email: row.email("email")?,
        role: row.role("role")?,
        token_hash: row.hash("token_hash")?,
        invited_by: row.id("invited_by")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        accepted_at: row.opt_time("accepted_at")?,
        accepted_by: row.opt_id("accepted_by")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

macro_rules! one_time_token_columns {
    () => {
        "id, purpose, user_id, token_hash, email, created_at, expires_at, used_at"
    };
}
pub(crate) use one_time_token_columns;

pub(crate) fn one_time_token(row: &SqliteRow) -> StoreResult<OneTimeToken> {
    let purpose = row.text("purpose")?;
    Ok(OneTimeToken {
        id: row.id("id")?,
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::corrupt(format!("purpose: unknown {purpose:?}")))?,
        user_id: row.id("user_id")?,
        token_hash: row.hash("token_hash")?,
        email: row.opt_email("email")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        used_at: row.opt_time("used_at")?,
    })
}

macro_rules! api_token_columns {
    () => {
        "id, name, user_id, org_id, scopes, created_by, created_at, expires_at, last_used_at, \
         revoked_at"
    };
}
pub(crate) use api_token_columns;

pub(crate) fn api_token(row: &SqliteRow) -> StoreResult<ApiTokenRecord> {
    let scopes: Vec<String> = serde_json::from_str(&row.text("scopes")?)
        .map_err(|_| StoreError::corrupt("scopes: not a JSON array of strings"))?;
    let scopes = scopes
        .into_iter()
        .map(|s| Permission::new(s).map_err(|_| StoreError::corrupt("scopes: invalid permission")))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(ApiTokenRecord {
        id: row.id("id")?,
        name: row.text("name")?,
        user_id: row.id("user_id")?,
        org_id: row.id("org_id")?,
        scopes,
        created_by: row.id("created_by")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

macro_rules! audit_event_columns {
    () => {
        "id, at, kind, actor_id, user_id, org_id, ip, user_agent, data"
    };
}
pub(crate) use audit_event_columns;

pub(crate) fn audit_event(row: &SqliteRow) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        id: row.id("id")?,
        at: row.time("at")?,
        kind: row.text("kind")?,
        actor_id: row.opt_id("actor_id")?,
        user_id: row.opt_id("user_id")?,
        org_id: row.opt_id("org_id")?,
        ip: row.opt_text("ip")?,
        user_agent: row.opt_text("user_agent")?,
        data: serde_json::from_str(&row.text("data")?)
            .map_err(|_| StoreError::corrupt("data: not JSON"))?,
    })
}

macro_rules! totp_factor_columns {
    () => {
        "user_id, secret_ciphertext, created_at, confirmed_at, last_used_step"
    };
}
pub(crate) use totp_factor_columns;

pub(crate) fn totp_factor(row: &SqliteRow) -> StoreResult<TotpFactor> {
    Ok(TotpFactor {
        user_id: row.id("user_id")?,
        secret_ciphertext: row.blob("secret_ciphertext")?,
        created_at: row.time("created_at")?,
        confirmed_at: row.opt_time("confirmed_at")?,
        last_used_step: row.opt_int("last_used_step")?,
    })
}

macro_rules! passkey_columns {
    () => {
        "id, user_id, credential_id, name, credential, backup_eligible, backup_state, \
         created_at, last_used_at"
    };
}
pub(crate) use passkey_columns;

pub(crate) fn passkey(row: &SqliteRow) -> StoreResult<Passkey> {
    Ok(Passkey {
        id: row.id("id")?,
        user_id: row.id("user_id")?,
        credential_id: row.blob("credential_id")?,
        name: row.text("name")?,
        credential: row.text("credential")?,
        backup_eligible: row.boolean("backup_eligible")?,
        backup_state: row.boolean("backup_state")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

macro_rules! challenge_columns {
    () => {
        "id, kind, token_hash, user_id, data, created_at, expires_at"
    };
}
pub(crate) use challenge_columns;

pub(crate) fn challenge(row: &SqliteRow) -> StoreResult<Challenge> {
    let kind = row.text("kind")?;
    Ok(Challenge {
        id: row.id("id")?,
        kind: ChallengeKind::parse(&kind)
            .ok_or_else(|| StoreError::corrupt(format!("kind: unknown {kind:?}")))?,
        token_hash: row.hash("token_hash")?,
        user_id: row.opt_id("user_id")?,
        data: row.text("data")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
    })
}

/// Maps every row, stopping at the first that does not decode.
pub(crate) fn all<T>(
    rows: &[SqliteRow],
    decode: impl Fn(&SqliteRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    rows.iter().map(decode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_exactly() {
        for t in [
            time::macros::datetime!(2026-03-01 12:00:00.123456 UTC),
            time::macros::datetime!(1969-12-31 23:59:59.999999 UTC),
            OffsetDateTime::UNIX_EPOCH,
        ] {
            assert_eq!(from_micros(micros(t), "t").unwrap(), t);
        }
        assert_eq!(
            micros(OffsetDateTime::UNIX_EPOCH + time::Duration::microseconds(-1)),
            -1
        );
        assert!(from_micros(i64::MAX, "t").is_err());
    }

    #[test]
    fn scopes_are_a_json_array() {
        let scopes = [
            Permission::from_static("read:projects"),
            Permission::from_static("a.b"),
        ];
        assert_eq!(scopes_json(&scopes), r#"["read:projects","a.b"]"#);
        assert_eq!(scopes_json(&[]), "[]");
    }
}
