//! [`ChangeLogStore`] for [`SqliteStore`].

use async_trait::async_trait;
use keystead_core::{ChangeLogStore, LoggedChange, StoreResult};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::error::map_sqlx_error;
use crate::rows::{RowExt as _, micros};

#[async_trait]
impl ChangeLogStore for SqliteStore {
    async fn record_change(&self, payload: &str, at: OffsetDateTime) -> StoreResult<i64> {
        // BEGIN IMMEDIATE: the bump and the entry commit together, under the write lock.
        let mut tx = self.begin().await?;
        let version: i64 = sqlx::query_scalar(self.sql(
            "UPDATE {t}change_version SET version = version + 1 WHERE id = 1 RETURNING version",
        ))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        sqlx::query(
            self.sql("INSERT INTO {t}change_log (version, payload, at) VALUES (?1, ?2, ?3)"),
        )
        .bind(version)
        .bind(payload)
        .bind(micros(at))
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(version)
    }

    async fn change_version(&self) -> StoreResult<i64> {
        let version: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT version FROM {t}change_version WHERE id = 1"))
                .fetch_optional(&self.reader)
                .await
                .map_err(map_sqlx_error)?;
        Ok(version.unwrap_or(0))
    }

    async fn changes_after(&self, after: i64, limit: u32) -> StoreResult<Vec<LoggedChange>> {
        let rows = sqlx::query(self.sql(
            "SELECT version, payload, at FROM {t}change_log WHERE version > ?1 \
             ORDER BY version LIMIT ?2",
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_sqlx_error)?;
        rows.iter()
            .map(|row| {
                Ok(LoggedChange {
                    version: row.int("version")?,
                    payload: row.text("payload")?,
                    at: row.time("at")?,
                })
            })
            .collect()
    }

    async fn delete_changes_before(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(self.sql("DELETE FROM {t}change_log WHERE at < ?1"))
            .bind(micros(before))
            .execute(&self.writer)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
