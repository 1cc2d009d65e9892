//! From sqlx errors to [`StoreError`]s.

use std::future::Future;

use keystead_core::{Conflict, StoreError};

/// SQLSTATE `unique_violation`.
pub(crate) const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE `foreign_key_violation`.
pub(crate) const FOREIGN_KEY_VIOLATION: &str = "23503";
/// SQLSTATE `serialization_failure`.
const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE `deadlock_detected`.
const DEADLOCK_DETECTED: &str = "40P01";

/// How many times a transaction that lost a deadlock or a serialization race is run again.
const MAX_RETRIES: u32 = 4;

/// Converts a sqlx error to a store error:
/// - unique violation (`23505`) → [`StoreError::Conflict`], by constraint name;
/// - foreign key violation (`23503`) → [`StoreError::NotFound`];
/// - pool timeout, closed pool, I/O and TLS errors, and the SQLSTATEs that mean the server
///   cannot serve us (classes `08`, `53`, `57P0x`) → [`StoreError::Unavailable`];
/// - anything else → [`StoreError::Backend`] (the sqlx error is kept as the source, for logs;
///   it never reaches a client).
pub(crate) fn map_sqlx_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) => {
            let code = db.code();
            match code.as_deref() {
                Some(UNIQUE_VIOLATION) => match db.constraint().and_then(conflict_for) {
                    Some(conflict) => StoreError::Conflict(conflict),
                    None => StoreError::backend(err),
                },
                Some(FOREIGN_KEY_VIOLATION) => StoreError::NotFound,
                Some(code) if is_unavailable_sqlstate(code) => StoreError::unavailable(err),
                _ => StoreError::backend(err),
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(err),
        sqlx::Error::RowNotFound => StoreError::NotFound,
        _ => StoreError::backend(err),
    }
}

/// The conflict a unique constraint (or unique index) stands for. Names are those of the
/// migrations; an unknown name is not a conflict we can name, so it stays a backend error.
fn conflict_for(constraint: &str) -> Option<Conflict> {
    Some(match constraint {
        "users_email_lower_key" => Conflict::Email,
        "users_pkey" => Conflict::UserId,
        "users_external_id_key" => Conflict::UserExternalId,
        "organizations_external_id_key" => Conflict::OrgExternalId,
        "organizations_slug_key" => Conflict::OrgSlug,
        "memberships_pkey" => Conflict::Membership,
        "external_accounts_issuer_subject_key" | "external_accounts_pkey" => {
            Conflict::ExternalAccount
        }
        "external_accounts_user_provider_key" => Conflict::ProviderLinked,
        "passkeys_credential_id_key" | "passkeys_pkey" => Conflict::Passkey,
        "totp_factors_pkey" => Conflict::TotpFactor,
        "sessions_pkey"
        | "sessions_token_hash_key"
        | "invitations_pkey"
        | "invitations_token_hash_key"
        | "one_time_tokens_pkey"
        | "one_time_tokens_token_hash_key"
        | "api_tokens_pkey"
        | "oauth_flows_pkey"
        | "session_handoffs_pkey"
        | "challenges_pkey"
        | "challenges_token_hash_key"
        | "recovery_codes_pkey" => Conflict::Token,
        _ => return None,
    })
}

/// SQLSTATEs that mean the server cannot serve us right now: connection exceptions (class
/// `08`), insufficient resources (class `53`, e.g. too many connections), and shutdown or
/// start-up (`57P01`, `57P02`, `57P03`).
fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// Whether the error is a deadlock or serialization failure, after which running the whole
/// transaction again is the documented remedy.
fn is_retryable(err: &StoreError) -> bool {
    let StoreError::Backend(source) = err else {
        return false;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(sqlx::Error::as_database_error)
        .and_then(|db| db.code())
        .is_some_and(|code| code == DEADLOCK_DETECTED || code == SERIALIZATION_FAILURE)
}

/// Runs `attempt` (one whole transaction) again when Postgres aborted it to break a deadlock
/// or a serialization conflict; any other outcome is returned as is.
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(err) if tries < MAX_RETRIES && is_retryable(&err) => {
                tries += 1;
                tracing::debug!(error = %err, tries, "retrying a transaction after a deadlock");
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_map_to_conflicts() {
        assert_eq!(conflict_for("users_email_lower_key"), Some(Conflict::Email));
        assert_eq!(conflict_for("users_pkey"), Some(Conflict::UserId));
        assert_eq!(
            conflict_for("organizations_slug_key"),
            Some(Conflict::OrgSlug)
        );
        assert_eq!(conflict_for("memberships_pkey"), Some(Conflict::Membership));
        assert_eq!(
            conflict_for("external_accounts_issuer_subject_key"),
            Some(Conflict::ExternalAccount)
        );
        assert_eq!(
            conflict_for("external_accounts_user_provider_key"),
            Some(Conflict::ProviderLinked)
        );
        assert_eq!(
            conflict_for("sessions_token_hash_key"),
            Some(Conflict::Token)
        );
        assert_eq!(
            conflict_for("passkeys_credential_id_key"),
            Some(Conflict::Passkey)
        );
        assert_eq!(
            conflict_for("challenges_token_hash_key"),
            Some(Conflict::Token)
        );
        assert_eq!(conflict_for("something_else"), None);
    }

    #[test]
    fn connection_problems_are_unavailable() {
        assert!(matches!(
            map_sqlx_error(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_sqlx_error(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(
            map_sqlx_error(sqlx::Error::Io(io)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_sqlx_error(sqlx::Error::Protocol("garbage".to_owned())),
            StoreError::Backend(_)
        ));
        assert!(is_unavailable_sqlstate("08006"));
        assert!(is_unavailable_sqlstate("53300"));
        assert!(is_unavailable_sqlstate("57P01"));
        assert!(!is_unavailable_sqlstate("23505"));
        assert!(!is_unavailable_sqlstate("42601"));
    }

    #[test]
    fn only_backend_errors_of_a_lost_race_are_retried() {
        assert!(!is_retryable(&StoreError::NotFound));
        assert!(!is_retryable(&StoreError::corrupt("bad row")));
        assert!(!is_retryable(&map_sqlx_error(sqlx::Error::PoolTimedOut)));
    }
}
