//! [`MfaStore`] and [`ChallengeStore`] on Postgres.
//!
//! Every single-use step is one conditional statement: a TOTP step is recorded by an
//! `UPDATE … WHERE last_used_step < $step`, a recovery code is used by an `UPDATE … WHERE
//! used_at IS NULL`, a challenge is taken by a `DELETE … RETURNING`. Concurrent callers on
//! any instance wait on the row lock, and the loser re-reads the row and matches nothing.

use async_trait::async_trait;
use keystead_core::{
    Challenge, ChallengeKind, ChallengeStore, Conflict, MfaStatus, MfaStore, Passkey, PasskeyId,
    StoreError, StoreResult, TokenHash, TotpFactor, UserId,
};
use sqlx::Row as _;
use time::OffsetDateTime;

use crate::PostgresStore;
use crate::error::{map_sqlx_error, retrying};
use crate::rows::{self, challenge_columns, passkey_columns, totp_factor_columns};

/// A count read from Postgres as a `u32`.
fn count(row: &sqlx::postgres::PgRow, column: &str) -> StoreResult<u32> {
    let n: i64 = row.try_get(column).map_err(map_sqlx_error)?;
    u32::try_from(n).map_err(|_| StoreError::corrupt(format!("{column}: count {n} out of range")))
}

impl PostgresStore {
    async fn replace_recovery_codes_once(
        &self,
        user_id: UserId,
        hashes: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        // Locks the user row (not its key: foreign key checks of other writers go on), so
        // that two replacements run one after the other and the last one's set is the set.
        sqlx::query(self.sql("SELECT id FROM {t}users WHERE id = $1 FOR NO KEY UPDATE"))
            .bind(user_id.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx_error)?
            .ok_or(StoreError::NotFound)?;
        sqlx::query(self.sql("DELETE FROM {t}recovery_codes WHERE user_id = $1"))
            .bind(user_id.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        sqlx::query(self.sql(
            "INSERT INTO {t}recovery_codes (user_id, code_hash, created_at) \
             SELECT $1, h, $3 FROM unnest($2::bytea[]) AS h",
        ))
        .bind(user_id.into_uuid())
        .bind(hashes)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)
    }
}

#[async_trait]
impl MfaStore for PostgresStore {
    async fn mfa_status(&self, user_id: UserId) -> StoreResult<MfaStatus> {
        let row = sqlx::query(self.sql(
            "SELECT EXISTS (SELECT 1 FROM {t}totp_factors \
                            WHERE user_id = $1 AND confirmed_at IS NOT NULL) AS totp, \
                    (SELECT count(*) FROM {t}passkeys WHERE user_id = $1) AS passkeys, \
                    (SELECT count(*) FROM {t}recovery_codes \
                     WHERE user_id = $1 AND used_at IS NULL) AS recovery_codes",
        ))
        .bind(user_id.into_uuid())
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(MfaStatus {
            totp: row.try_get("totp").map_err(map_sqlx_error)?,
            passkeys: count(&row, "passkeys")?,
            recovery_codes: count(&row, "recovery_codes")?,
        })
    }

    async fn put_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()> {
        // One statement: an unconfirmed factor is replaced, a confirmed one is left alone
        // (no row written: a conflict), an unknown user fails the foreign key (NotFound).
        let done = sqlx::query(self.sql(
            "INSERT INTO {t}totp_factors AS f \
                 (user_id, secret_ciphertext, created_at, confirmed_at, last_used_step) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET \
                 secret_ciphertext = excluded.secret_ciphertext, \
                 created_at = excluded.created_at, \
                 confirmed_at = excluded.confirmed_at, \
                 last_used_step = excluded.last_used_step \
             WHERE f.confirmed_at IS NULL",
        ))
        .bind(factor.user_id.into_uuid())
        .bind(&factor.secret_ciphertext)
        .bind(factor.created_at)
        .bind(factor.confirmed_at)
        .bind(factor.last_used_step)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::TotpFactor));
        }
        Ok(())
    }

    async fn totp_factor(&self, user_id: UserId) -> StoreResult<Option<TotpFactor>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            totp_factor_columns!(),
            " FROM {t}totp_factors WHERE user_id = $1"
        )))
        .bind(user_id.into_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::totp_factor)
        .transpose()
    }

    async fn confirm_totp_factor(
        &self,
        user_id: UserId,
        step: i64,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done = sqlx::query(self.sql(
            "UPDATE {t}totp_factors SET confirmed_at = $3, last_used_step = $2 \
             WHERE user_id = $1 AND confirmed_at IS NULL",
        ))
        .bind(user_id.into_uuid())
        .bind(step)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn use_totp_step(&self, user_id: UserId, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(self.sql(
            "UPDATE {t}totp_factors SET last_used_step = $2 \
             WHERE user_id = $1 AND confirmed_at IS NOT NULL \
               AND (last_used_step IS NULL OR last_used_step < $2)",
        ))
        .bind(user_id.into_uuid())
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_totp_factor(&self, user_id: UserId) -> StoreResult<bool> {
        let done = sqlx::query(self.sql("DELETE FROM {t}totp_factors WHERE user_id = $1"))
            .bind(user_id.into_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        hashes: &[TokenHash],
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.as_bytes().to_vec()).collect();
        retrying(|| self.replace_recovery_codes_once(user_id, &hashes, at)).await
    }

    async fn use_recovery_code(
        &self,
        user_id: UserId,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done = sqlx::query(self.sql(
            "UPDATE {t}recovery_codes SET used_at = $3 \
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        ))
        .bind(user_id.into_uuid())
        .bind(&hash.as_bytes()[..])
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_recovery_codes(&self, user_id: UserId) -> StoreResult<u64> {
        let done = sqlx::query(self.sql("DELETE FROM {t}recovery_codes WHERE user_id = $1"))
            .bind(user_id.into_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }

    async fn create_passkey(&self, passkey: &Passkey) -> StoreResult<()> {
        sqlx::query(self.sql(
            "INSERT INTO {t}passkeys (id, user_id, credential_id, name, credential, \
                 backup_eligible, backup_state, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        ))
        .bind(passkey.id.into_uuid())
        .bind(passkey.user_id.into_uuid())
        .bind(&passkey.credential_id)
        .bind(passkey.name.as_str())
        .bind(passkey.credential.as_str())
        .bind(passkey.backup_eligible)
        .bind(passkey.backup_state)
        .bind(passkey.created_at)
        .bind(passkey.last_used_at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn passkeys_for_user(&self, user_id: UserId) -> StoreResult<Vec<Passkey>> {
        let found = sqlx::query(self.sql(concat!(
            "SELECT ",
            passkey_columns!(),
            " FROM {t}passkeys WHERE user_id = $1 ORDER BY created_at, id"
        )))
        .bind(user_id.into_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&found, rows::passkey)
    }

    async fn passkey_by_credential_id(&self, credential_id: &[u8]) -> StoreResult<Option<Passkey>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            passkey_columns!(),
            " FROM {t}passkeys WHERE credential_id = $1"
        )))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::passkey)
        .transpose()
    }

    async fn record_passkey_use(
        &self,
        id: PasskeyId,
        credential: &str,
        backup_state: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let done = sqlx::query(self.sql(
            "UPDATE {t}passkeys SET credential = $2, backup_state = $3, last_used_at = $4 \
             WHERE id = $1",
        ))
        .bind(id.into_uuid())
        .bind(credential)
        .bind(backup_state)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn rename_passkey(
        &self,
        user_id: UserId,
        id: PasskeyId,
        name: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            self.sql("UPDATE {t}passkeys SET name = $3 WHERE id = $1 AND user_id = $2"),
        )
        .bind(id.into_uuid())
        .bind(user_id.into_uuid())
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> StoreResult<bool> {
        let done = sqlx::query(self.sql("DELETE FROM {t}passkeys WHERE id = $1 AND user_id = $2"))
            .bind(id.into_uuid())
            .bind(user_id.into_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl ChallengeStore for PostgresStore {
    async fn create_challenge(&self, challenge: &Challenge) -> StoreResult<()> {
        sqlx::query(self.sql(
            "INSERT INTO {t}challenges (id, kind, token_hash, user_id, data, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        ))
        .bind(challenge.id.into_uuid())
        .bind(challenge.kind.as_str())
        .bind(&challenge.token_hash.as_bytes()[..])
        .bind(challenge.user_id.map(UserId::into_uuid))
        .bind(challenge.data.as_str())
        .bind(challenge.created_at)
        .bind(challenge.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn challenge(
        &self,
        kind: ChallengeKind,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM {t}challenges WHERE token_hash = $1 AND kind = $2 AND expires_at > $3"
        )))
        .bind(&hash.as_bytes()[..])
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::challenge)
        .transpose()
    }

    async fn take_challenge(
        &self,
        kind: ChallengeKind,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>> {
        sqlx::query(self.sql(concat!(
            "DELETE FROM {t}challenges WHERE token_hash = $1 AND kind = $2 AND expires_at > $3 \
             RETURNING ",
            challenge_columns!()
        )))
        .bind(&hash.as_bytes()[..])
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::challenge)
        .transpose()
    }

    async fn delete_expired_challenges(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(self.sql("DELETE FROM {t}challenges WHERE expires_at <= $1"))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
