//! [`OneTimeTokenStore`] and [`ApiTokenStore`] on Postgres.

use async_trait::async_trait;
use keystead_core::{
    ApiTokenId, ApiTokenRecord, ApiTokenStore, OneTimeToken, OneTimeTokenStore, OrgId, StoreError,
    StoreResult, TokenHash, TokenPurpose, UserId,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::{map_sqlx_error, retrying};
use crate::rows::{self, api_token_columns, one_time_token_columns};

#[async_trait]
impl OneTimeTokenStore for PostgresStore {
    async fn create_one_time_token(&self, token: &OneTimeToken) -> StoreResult<()> {
        sqlx::query(self.sql(
            "INSERT INTO {t}one_time_tokens (id, purpose, user_id, token_hash, email, created_at, \
             expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        ))
        .bind(token.id.into_uuid())
        .bind(token.purpose.as_str())
        .bind(token.user_id.into_uuid())
        .bind(&token.token_hash.as_bytes()[..])
        .bind(token.email.as_ref().map(keystead_core::Email::as_str))
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.used_at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn consume_one_time_token(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OneTimeToken>> {
        // One statement claims it: of concurrent calls, the first takes the row lock and the
        // others, re-checking the WHERE against the used row, match nothing.
        sqlx::query(self.sql(concat!(
            "UPDATE {t}one_time_tokens SET used_at = $3 \
             WHERE token_hash = $2 AND purpose = $1 AND used_at IS NULL AND expires_at > $3 \
             RETURNING ",
            one_time_token_columns!()
        )))
        .bind(purpose.as_str())
        .bind(&hash.as_bytes()[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::one_time_token)
        .transpose()
    }

    async fn delete_one_time_tokens(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
    ) -> StoreResult<u64> {
        // Outstanding tokens: the unused ones. Used ones are history, removed by the sweep.
        let done = sqlx::query(self.sql("DELETE FROM {t}one_time_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL"),
        )
        .bind(user_id.into_uuid())
        .bind(purpose.as_str())
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }

    async fn delete_expired_one_time_tokens(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(
            self.sql("DELETE FROM {t}one_time_tokens WHERE expires_at <= $1 OR used_at <= $1"),
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}

impl PostgresStore {
    async fn record_api_token_use_once(
        &self,
        ids: &[Uuid],
        times: &[OffsetDateTime],
    ) -> StoreResult<()> {
        sqlx::query(self.sql("UPDATE {t}api_tokens AS a SET last_used_at = v.at \
             FROM (SELECT id, max(at) AS at FROM unnest($1::uuid[], $2::timestamptz[]) AS t(id, at) \
                   GROUP BY id) AS v \
             WHERE a.id = v.id AND (a.last_used_at IS NULL OR v.at > a.last_used_at)"),
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
impl ApiTokenStore for PostgresStore {
    async fn create_api_token(&self, record: &ApiTokenRecord) -> StoreResult<()> {
        let scopes: Vec<&str> = record
            .scopes
            .iter()
            .map(keystead_core::Permission::as_str)
            .collect();
        sqlx::query(self.sql("INSERT INTO {t}api_tokens (id, name, user_id, org_id, scopes, created_by, created_at, \
             expires_at, last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
        )
        .bind(record.id.into_uuid())
        .bind(record.name.as_str())
        .bind(record.user_id.into_uuid())
        .bind(record.org_id.into_uuid())
        .bind(scopes)
        .bind(record.created_by.into_uuid())
        .bind(record.created_at)
        .bind(record.expires_at)
        .bind(record.last_used_at)
        .bind(record.revoked_at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn api_token(&self, id: ApiTokenId) -> StoreResult<Option<ApiTokenRecord>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            api_token_columns!(),
            " FROM {t}api_tokens WHERE id = $1"
        )))
        .bind(id.into_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::api_token)
        .transpose()
    }

    async fn api_tokens_for_org(
        &self,
        org_id: OrgId,
        user_id: Option<UserId>,
    ) -> StoreResult<Vec<ApiTokenRecord>> {
        let found = sqlx::query(self.sql(concat!(
            "SELECT ",
            api_token_columns!(),
            " FROM {t}api_tokens WHERE org_id = $1 AND ($2::uuid IS NULL OR user_id = $2) \
             ORDER BY created_at DESC, id DESC"
        )))
        .bind(org_id.into_uuid())
        .bind(user_id.map(UserId::into_uuid))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&found, rows::api_token)
    }

    async fn revoke_api_token(
        &self,
        id: ApiTokenId,
        at: OffsetDateTime,
    ) -> StoreResult<ApiTokenRecord> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING ",
            api_token_columns!()
        )))
        .bind(id.into_uuid())
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map_or(Err(StoreError::NotFound), rows::api_token)
    }

    async fn revoke_api_tokens_for_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
        at: OffsetDateTime,
    ) -> StoreResult<Vec<ApiTokenId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(self.sql(
            "UPDATE {t}api_tokens SET revoked_at = $3 \
             WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id",
        ))
        .bind(org_id.into_uuid())
        .bind(user_id.into_uuid())
        .bind(at)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(ids.into_iter().map(ApiTokenId::from_uuid).collect())
    }

    async fn record_api_token_use(&self, used: &[(ApiTokenId, OffsetDateTime)]) -> StoreResult<()> {
        if used.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = used.iter().map(|(id, _)| id.into_uuid()).collect();
        let times: Vec<OffsetDateTime> = used.iter().map(|(_, at)| *at).collect();
        retrying(|| self.record_api_token_use_once(&ids, &times)).await
    }

    async fn revoked_api_token_ids(
        &self,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(ApiTokenId, OffsetDateTime)>> {
        // The partial index `api_tokens_revoked_idx` (expires_at WHERE revoked_at IS NOT NULL)
        // finds these rows without reading the unrevoked ones. No `ORDER BY id`: SQLite's
        // planner would walk the whole table by its primary key for it.
        let rows: Vec<(Uuid, OffsetDateTime)> = sqlx::query_as(self.sql(
            "SELECT id, expires_at FROM {t}api_tokens \
             WHERE revoked_at IS NOT NULL AND expires_at > $1",
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, expires_at)| (ApiTokenId::from_uuid(id), expires_at))
            .collect())
    }
}
