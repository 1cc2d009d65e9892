//! [`SessionStore`] for [`SqliteStore`].

use async_trait::async_trait;
use keystead_core::{
    OrgId, Session, SessionId, SessionStore, StoreError, StoreResult, TokenHash, UserId,
};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::error::map_sqlx_error;
use crate::rows::{self, RowExt, micros, session_columns};

/// `[[id, time], …]` as one JSON parameter, for batched updates in a single statement.
pub(crate) fn batch_json<I: std::fmt::Display>(items: &[(I, OffsetDateTime)]) -> String {
    serde_json::Value::Array(
        items
            .iter()
            .map(|(id, at)| serde_json::json!([id.to_string(), micros(*at)]))
            .collect(),
    )
    .to_string()
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        sqlx::query(self.sql(
            "INSERT INTO {t}sessions (id, token_hash, user_id, created_at, last_seen_at, \
                 expires_at, absolute_expires_at, active_org_id, user_agent, ip, \
                 authenticated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        ))
        .bind(session.id.to_string())
        .bind(session.token_hash.as_bytes().as_slice())
        .bind(session.user_id.to_string())
        .bind(micros(session.created_at))
        .bind(micros(session.last_seen_at))
        .bind(micros(session.expires_at))
        .bind(micros(session.absolute_expires_at))
        .bind(session.active_org_id.map(|id| id.to_string()))
        .bind(session.user_agent.as_deref())
        .bind(session.ip.as_deref())
        .bind(micros(session.authenticated_at))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn session_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            session_columns!(),
            " FROM {t}sessions WHERE token_hash = ?1"
        )))
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::session)
        .transpose()
    }

    async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<Session>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            session_columns!(),
            " FROM {t}sessions WHERE id = ?1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::session)
        .transpose()
    }

    async fn sessions_for_user(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(self.sql(concat!(
            "SELECT ",
            session_columns!(),
            " FROM {t}sessions WHERE user_id = ?1 AND expires_at > ?2 AND absolute_expires_at > ?2 \
              ORDER BY created_at DESC, id DESC"
        )))
        .bind(user_id.to_string())
        .bind(micros(now))
        .fetch_all(&self.reader)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&rows, rows::session)
    }

    async fn extend_session(&self, id: SessionId, expires_at: OffsetDateTime) -> StoreResult<()> {
        let done =
            sqlx::query(self.sql(
                "UPDATE {t}sessions SET expires_at = min(?1, absolute_expires_at) WHERE id = ?2",
            ))
            .bind(micros(expires_at))
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_sqlx_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn record_session_activity(
        &self,
        seen: &[(SessionId, OffsetDateTime)],
    ) -> StoreResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        sqlx::query(self.sql(
            "UPDATE {t}sessions SET last_seen_at = max({t}sessions.last_seen_at, seen.at) \
             FROM (SELECT value ->> 0 AS id, max(value ->> 1) AS at \
                   FROM json_each(?1) GROUP BY 1) AS seen \
             WHERE {t}sessions.id = seen.id",
        ))
        .bind(batch_json(seen))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn set_active_org(&self, id: SessionId, org_id: Option<OrgId>) -> StoreResult<()> {
        // An unknown organization fails the foreign key: NotFound.
        let done = sqlx::query(self.sql("UPDATE {t}sessions SET active_org_id = ?1 WHERE id = ?2"))
            .bind(org_id.map(|id| id.to_string()))
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_sqlx_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_session_authenticated_at(
        &self,
        id: SessionId,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query(self.sql("UPDATE {t}sessions SET authenticated_at = ?1 WHERE id = ?2"))
                .bind(micros(at))
                .bind(id.to_string())
                .execute(&self.writer)
                .await
                .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_session(&self, id: SessionId) -> StoreResult<bool> {
        let done = sqlx::query(self.sql("DELETE FROM {t}sessions WHERE id = ?1"))
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_sessions_for_user(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            self.sql("DELETE FROM {t}sessions WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2)"),
        )
        .bind(user_id.to_string())
        .bind(except.map(|id| id.to_string()))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }

    async fn clear_active_org_for_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
    ) -> StoreResult<Vec<SessionId>> {
        let rows = sqlx::query(self.sql(
            "UPDATE {t}sessions SET active_org_id = NULL \
             WHERE user_id = ?1 AND active_org_id = ?2 RETURNING id",
        ))
        .bind(user_id.to_string())
        .bind(org_id.to_string())
        .fetch_all(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        rows.iter().map(|row| row.id("id")).collect()
    }

    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(
            self.sql("DELETE FROM {t}sessions WHERE expires_at <= ?1 OR absolute_expires_at <= ?1"),
        )
        .bind(micros(now))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
