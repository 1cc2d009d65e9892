//! [`ChangeLogStore`] on Postgres, whose default change feed is a [`PostgresChangeFeed`].

use std::sync::Arc;

use async_trait::async_trait;
use keystead_core::feed::ChangeFeed;
use keystead_core::{ChangeLogStore, LoggedChange, StoreError, StoreResult};
use sqlx::Row as _;
use time::OffsetDateTime;

use crate::error::map_sqlx_error;
use crate::{ChangeFeedOptions, PostgresChangeFeed, PostgresStore};

#[async_trait]
impl ChangeLogStore for PostgresStore {
    async fn record_change(&self, payload: &str, at: OffsetDateTime) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        // The row lock orders concurrent recorders: versions follow commit order, no gaps.
        let version: i64 = sqlx::query_scalar(self.sql(
            "UPDATE {t}change_version SET version = version + 1 WHERE id = 1 RETURNING version",
        ))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        sqlx::query(
            self.sql("INSERT INTO {t}change_log (version, payload, at) VALUES ($1, $2, $3)"),
        )
        .bind(version)
        .bind(payload)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(version)
    }

    async fn change_version(&self) -> StoreResult<i64> {
        let version: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT version FROM {t}change_version WHERE id = 1"))
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
        Ok(version.unwrap_or(0))
    }

    async fn changes_after(&self, after: i64, limit: u32) -> StoreResult<Vec<LoggedChange>> {
        let rows = sqlx::query(self.sql(
            "SELECT version, payload, at FROM {t}change_log WHERE version > $1 \
             ORDER BY version LIMIT $2",
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows.iter()
            .map(|row| {
                Ok(LoggedChange {
                    version: row.try_get("version").map_err(map_sqlx_error)?,
                    payload: row.try_get("payload").map_err(map_sqlx_error)?,
                    at: row.try_get("at").map_err(map_sqlx_error)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
    }

    async fn delete_changes_before(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(self.sql("DELETE FROM {t}change_log WHERE at < $1"))
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }

    /// A [`PostgresChangeFeed`] on this store's pool, with the default options, shared by
    /// every `Auth` built over this store value: several instances on one database see each
    /// other's changes at once without any setting. It connects in the background.
    fn default_change_feed(&self) -> Option<Arc<dyn ChangeFeed>> {
        let feed = self
            .default_feed
            .get_or_init(|| {
                PostgresChangeFeed::spawn(
                    self.pool.clone(),
                    ChangeFeedOptions::default().with_schema(self.schema.clone()),
                )
            })
            .clone();
        Some(feed)
    }
}
