//! [`RateLimitStore`] on Postgres.

use async_trait::async_trait;
use keystead_core::{RateDecision, RateLimit, RateLimitStore, StoreResult, TokenHash};
use time::OffsetDateTime;

use crate::PostgresStore;
use crate::error::map_sqlx_error;

#[async_trait]
impl RateLimitStore for PostgresStore {
    async fn rate_limit_hit(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        // Locks the key's row, creating it when missing: a missing row and `tat = now` mean the
        // same (a full burst). Concurrent hits on the key wait here for this transaction, then
        // see its `tat` (ON CONFLICT DO UPDATE reads the latest committed row version).
        let tat: OffsetDateTime = sqlx::query_scalar(self.sql(
            "INSERT INTO {t}rate_limits AS r (key, tat) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET tat = r.tat \
             RETURNING tat",
        ))
        .bind(&key.as_bytes()[..])
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let admission = rule.admit(Some(tat), now);
        if let Some(new_tat) = admission.new_tat {
            sqlx::query(self.sql("UPDATE {t}rate_limits SET tat = $2 WHERE key = $1"))
                .bind(&key.as_bytes()[..])
                .bind(new_tat)
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx_error)?;
        }
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(admission.decision)
    }

    async fn rate_limit_peek(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision> {
        let tat: Option<OffsetDateTime> =
            sqlx::query_scalar(self.sql("SELECT tat FROM {t}rate_limits WHERE key = $1"))
                .bind(&key.as_bytes()[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
        Ok(rule.admit(tat, now).decision)
    }

    async fn rate_limit_refund(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        // One statement: RateLimit::refund, GREATEST(tat - T, now), applied atomically.
        let interval = i64::try_from(rule.interval().whole_microseconds()).unwrap_or(i64::MAX);
        sqlx::query(self.sql(
            "UPDATE {t}rate_limits SET tat = GREATEST(tat - $2 * interval '1 microsecond', $3) \
             WHERE key = $1",
        ))
        .bind(&key.as_bytes()[..])
        .bind(interval)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn delete_expired_rate_limits(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(self.sql("DELETE FROM {t}rate_limits WHERE tat <= $1"))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
