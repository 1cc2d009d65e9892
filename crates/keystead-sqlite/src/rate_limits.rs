//! [`RateLimitStore`] for [`SqliteStore`].

use async_trait::async_trait;
use keystead_core::{RateDecision, RateLimit, RateLimitStore, StoreResult, TokenHash};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::error::map_sqlx_error;
use crate::rows::{from_micros, micros};

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn rate_limit_hit(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision> {
        // BEGIN IMMEDIATE: the read and the write happen under the write lock, so concurrent
        // hits (in this process or another) are decided one after the other.
        let mut tx = self.begin().await?;
        let tat: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT tat FROM {t}rate_limits WHERE key = ?1"))
                .bind(key.as_bytes().as_slice())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_sqlx_error)?;
        let tat = tat
            .map(|us| from_micros(us, "rate_limits.tat"))
            .transpose()?;
        let admission = rule.admit(tat, now);
        if let Some(new_tat) = admission.new_tat {
            sqlx::query(self.sql(
                "INSERT INTO {t}rate_limits (key, tat) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
            ))
            .bind(key.as_bytes().as_slice())
            .bind(micros(new_tat))
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
        let tat: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT tat FROM {t}rate_limits WHERE key = ?1"))
                .bind(key.as_bytes().as_slice())
                .fetch_optional(&self.reader)
                .await
                .map_err(map_sqlx_error)?;
        let tat = tat
            .map(|us| from_micros(us, "rate_limits.tat"))
            .transpose()?;
        Ok(rule.admit(tat, now).decision)
    }

    async fn rate_limit_refund(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        // One statement: RateLimit::refund, max(tat - T, now), applied atomically.
        let interval = rule.interval().whole_microseconds();
        let interval = i64::try_from(interval).unwrap_or(i64::MAX);
        sqlx::query(self.sql("UPDATE {t}rate_limits SET tat = max(tat - ?2, ?3) WHERE key = ?1"))
            .bind(key.as_bytes().as_slice())
            .bind(interval)
            .bind(micros(now))
            .execute(&self.writer)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn delete_expired_rate_limits(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(self.sql("DELETE FROM {t}rate_limits WHERE tat <= ?1"))
            .bind(micros(now))
            .execute(&self.writer)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
