//! [`SessionStore`] on Postgres.

use async_trait::async_trait;
use keystead_core::{
    OrgId, Session, SessionId, SessionStore, StoreError, StoreResult, TokenHash, UserId,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::{map_sqlx_error, retrying};
use crate::rows::{self, session_columns};

impl PostgresStore {
    async fn record_session_activity_once(
        &self,
        ids: &[Uuid],
        times: &[OffsetDateTime],
    ) -> StoreResult<()> {
        // One statement for the batch; a repeated id counts with its latest time, and a time
        // earlier than the stored one changes nothing.
        sqlx::query(self.sql("UPDATE {t}sessions AS s SET last_seen_at = v.at \
             FROM (SELECT id, max(at) AS at FROM unnest($1::uuid[], $2::timestamptz[]) AS t(id, at) \
                   GROUP BY id) AS v \
             WHERE s.id = v.id AND v.at > s.last_seen_at"),
        )
        .bind(ids)
        .bind(times)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        sqlx::query(self.sql("INSERT INTO {t}sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, \
             absolute_expires_at, active_org_id, user_agent, ip, authenticated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
        )
        .bind(session.id.into_uuid())
        .bind(&session.token_hash.as_bytes()[..])
        .bind(session.user_id.into_uuid())
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .bind(session.expires_at)
        .bind(session.absolute_expires_at)
        .bind(session.active_org_id.map(OrgId::into_uuid))
        .bind(session.user_agent.as_deref())
        .bind(session.ip.as_deref())
        .bind(session.authenticated_at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn session_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            session_columns!(),
            " FROM {t}sessions WHERE token_hash = $1"
        )))
        .bind(&hash.as_bytes()[..])
        .fetch_optional(&self.pool)
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
            " FROM {t}sessions WHERE id = $1"
        )))
        .bind(id.into_uuid())
        .fetch_optional(&self.pool)
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
        let found = sqlx::query(self.sql(concat!(
            "SELECT ",
            session_columns!(),
            " FROM {t}sessions WHERE user_id = $1 AND expires_at > $2 AND absolute_expires_at > $2 \
             ORDER BY created_at DESC, id DESC"
        )))
        .bind(user_id.into_uuid())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&found, rows::session)
    }

    async fn extend_session(&self, id: SessionId, expires_at: OffsetDateTime) -> StoreResult<()> {
        let done = sqlx::query(self.sql(
            "UPDATE {t}sessions SET expires_at = LEAST($2, absolute_expires_at) WHERE id = $1",
        ))
        .bind(id.into_uuid())
        .bind(expires_at)
        .execute(&self.pool)
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
        let ids: Vec<Uuid> = seen.iter().map(|(id, _)| id.into_uuid()).collect();
        let times: Vec<OffsetDateTime> = seen.iter().map(|(_, at)| *at).collect();
        // Two batches that touch the same sessions in another order may deadlock; Postgres
        // aborts one, and it runs again.
        retrying(|| self.record_session_activity_once(&ids, &times)).await
    }

    async fn set_active_org(&self, id: SessionId, org_id: Option<OrgId>) -> StoreResult<()> {
        // An unknown organization fails the foreign key: NotFound.
        let done = sqlx::query(self.sql("UPDATE {t}sessions SET active_org_id = $2 WHERE id = $1"))
            .bind(id.into_uuid())
            .bind(org_id.map(OrgId::into_uuid))
            .execute(&self.pool)
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
            sqlx::query(self.sql("UPDATE {t}sessions SET authenticated_at = $2 WHERE id = $1"))
                .bind(id.into_uuid())
                .bind(at)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_session(&self, id: SessionId) -> StoreResult<bool> {
        let done = sqlx::query(self.sql("DELETE FROM {t}sessions WHERE id = $1"))
            .bind(id.into_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_sessions_for_user(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
    ) -> StoreResult<u64> {
        let done =
            sqlx::query(self.sql(
                "DELETE FROM {t}sessions WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2)",
            ))
            .bind(user_id.into_uuid())
            .bind(except.map(SessionId::into_uuid))
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }

    async fn clear_active_org_for_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
    ) -> StoreResult<Vec<SessionId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(self.sql(
            "UPDATE {t}sessions SET active_org_id = NULL \
             WHERE user_id = $1 AND active_org_id = $2 RETURNING id",
        ))
        .bind(user_id.into_uuid())
        .bind(org_id.into_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(ids.into_iter().map(SessionId::from_uuid).collect())
    }

    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(
            self.sql("DELETE FROM {t}sessions WHERE expires_at <= $1 OR absolute_expires_at <= $1"),
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
