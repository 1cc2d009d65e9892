//! From sqlx errors to [`StoreError`]s.

use keystead_core::{Conflict, StoreError};
use sqlx::error::{DatabaseError, ErrorKind};

/// SQLite's primary result codes that mean "the database cannot be reached right now".
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_NOMEM: i64 = 7;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_PROTOCOL: i64 = 15;
const SQLITE_READONLY: i64 = 8;
/// The extended code of `RAISE(ABORT, …)` in a trigger.
const SQLITE_CONSTRAINT_TRIGGER: i64 = 1811;

/// The message the schema's triggers raise when a change would leave an organization
/// without an owner.
const LAST_OWNER: &str = "last_owner";

/// Maps a sqlx error: unique violations to the [`Conflict`] their columns mean, foreign-key
/// violations to [`StoreError::NotFound`], the owner triggers to [`StoreError::LastOwner`],
/// pool timeouts, I/O and lock contention to [`StoreError::Unavailable`], the rest to
/// [`StoreError::Backend`].
pub(crate) fn map_sqlx_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) => map_database_error(db),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => StoreError::unavailable(err),
        other => StoreError::backend(other),
    }
}

fn map_database_error(db: Box<dyn DatabaseError>) -> StoreError {
    match db.kind() {
        ErrorKind::UniqueViolation => match conflict_for(db.message()) {
            Some(conflict) => StoreError::Conflict(conflict),
            None => StoreError::Backend(db.into_error()),
        },
        ErrorKind::ForeignKeyViolation => StoreError::NotFound,
        _ => {
            let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
            if code == SQLITE_CONSTRAINT_TRIGGER && db.message() == LAST_OWNER {
                return StoreError::LastOwner;
            }
            match code & 0xff {
                SQLITE_BUSY | SQLITE_LOCKED | SQLITE_NOMEM | SQLITE_IOERR | SQLITE_FULL
                | SQLITE_CANTOPEN | SQLITE_PROTOCOL | SQLITE_READONLY => {
                    StoreError::Unavailable(db.into_error())
                }
                _ => StoreError::Backend(db.into_error()),
            }
        }
    }
}

/// The tables whose unique violations name a conflict, longest first.
const CONFLICT_TABLES: [&str; 14] = [
    "session_handoffs",
    "external_accounts",
    "one_time_tokens",
    "recovery_codes",
    "totp_factors",
    "organizations",
    "memberships",
    "invitations",
    "oauth_flows",
    "challenges",
    "api_tokens",
    "passkeys",
    "sessions",
    "users",
];

/// The conflict a `UNIQUE constraint failed: <table>.<column>, …` message is about. SQLite
/// names the constrained columns (not the constraint), so the columns decide. The table names
/// carry the store's prefix (`auth_users.email`), which is taken off first: any prefix, as
/// only the store's own statements reach here.
fn conflict_for(message: &str) -> Option<Conflict> {
    let named = message.strip_prefix("UNIQUE constraint failed: ")?;
    let first = named.split_once('.').map(|(table, _)| table)?;
    let table = CONFLICT_TABLES.into_iter().find(|t| first.ends_with(t))?;
    let prefix = &first[..first.len() - table.len()];
    let columns = named
        .split(", ")
        .map(|column| column.strip_prefix(prefix))
        .collect::<Option<Vec<_>>>()?
        .join(", ");
    Some(match (table, columns.as_str()) {
        (_, "users.email") => Conflict::Email,
        (_, "users.id") => Conflict::UserId,
        (_, "users.external_id") => Conflict::UserExternalId,
        (_, "organizations.external_id") => Conflict::OrgExternalId,
        (_, "organizations.slug") => Conflict::OrgSlug,
        (_, "memberships.org_id, memberships.user_id") => Conflict::Membership,
        (_, "external_accounts.user_id, external_accounts.provider") => Conflict::ProviderLinked,
        ("external_accounts", _) => Conflict::ExternalAccount,
        ("passkeys", _) => Conflict::Passkey,
        ("totp_factors", _) => Conflict::TotpFactor,
        (
            "sessions" | "invitations" | "one_time_tokens" | "api_tokens" | "oauth_flows"
            | "session_handoffs" | "challenges" | "recovery_codes",
            _,
        ) => Conflict::Token,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_messages_map_to_their_conflicts() {
        let cases = [
            (
                "UNIQUE constraint failed: users.email",
                Some(Conflict::Email),
            ),
            ("UNIQUE constraint failed: users.id", Some(Conflict::UserId)),
            (
                "UNIQUE constraint failed: organizations.slug",
                Some(Conflict::OrgSlug),
            ),
            (
                "UNIQUE constraint failed: memberships.org_id, memberships.user_id",
                Some(Conflict::Membership),
            ),
            (
                "UNIQUE constraint failed: external_accounts.issuer, external_accounts.subject",
                Some(Conflict::ExternalAccount),
            ),
            (
                "UNIQUE constraint failed: external_accounts.user_id, external_accounts.provider",
                Some(Conflict::ProviderLinked),
            ),
            (
                "UNIQUE constraint failed: sessions.token_hash",
                Some(Conflict::Token),
            ),
            (
                "UNIQUE constraint failed: sessions.id",
                Some(Conflict::Token),
            ),
            (
                "UNIQUE constraint failed: invitations.token_hash",
                Some(Conflict::Token),
            ),
            (
                "UNIQUE constraint failed: one_time_tokens.token_hash",
                Some(Conflict::Token),
            ),
            (
                "UNIQUE constraint failed: api_tokens.id",
                Some(Conflict::Token),
            ),
            (
                "UNIQUE constraint failed: passkeys.credential_id",
                Some(Conflict::Passkey),
            ),
            (
                "UNIQUE constraint failed: challenges.token_hash",
                Some(Conflict::Token),
            ),
            ("UNIQUE constraint failed: audit_events.id", None),
            ("something else", None),
        ];
        for (message, expected) in cases {
            assert_eq!(conflict_for(message), expected, "{message}");
            // The same with the tables' prefix, as the store's tables have.
            for prefix in ["auth_", "t2_"] {
                let prefixed = message
                    .replace(": ", &format!(": {prefix}"))
                    .replace(", ", &format!(", {prefix}"));
                assert_eq!(conflict_for(&prefixed), expected, "{prefixed}");
            }
        }
    }

    #[test]
    fn pool_errors_are_unavailable() {
        assert!(matches!(
            map_sqlx_error(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_sqlx_error(sqlx::Error::RowNotFound),
            StoreError::Backend(_)
        ));
    }
}
