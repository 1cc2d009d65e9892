//! [`OAuthFlowStore`] on Postgres.

use async_trait::async_trait;
use keystead_core::{OAuthFlow, OAuthFlowStore, SecretString, StoreError, StoreResult, TokenHash};
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::map_sqlx_error;

fn hash(row: &PgRow, column: &str) -> StoreResult<TokenHash> {
    let raw: Vec<u8> = row.try_get(column).map_err(map_sqlx_error)?;
    TokenHash::from_slice(&raw)
        .ok_or_else(|| StoreError::corrupt(format!("a hash of {} bytes in {column}", raw.len())))
}

fn oauth_flow(row: &PgRow) -> StoreResult<OAuthFlow> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(map_sqlx_error);
    Ok(OAuthFlow {
        id_hash: hash(row, "id_hash")?,
        provider: text("provider")?,
        state_hash: hash(row, "state_hash")?,
        nonce: SecretString::new(text("nonce")?),
        pkce_verifier: SecretString::new(text("pkce_verifier")?),
        next: row.try_get("next").map_err(map_sqlx_error)?,
        link_user_id: row
            .try_get::<Option<Uuid>, _>("link_user_id")
            .map_err(map_sqlx_error)?
            .map(Into::into),
        created_at: row.try_get("created_at").map_err(map_sqlx_error)?,
        expires_at: row.try_get("expires_at").map_err(map_sqlx_error)?,
    })
}

#[async_trait]
impl OAuthFlowStore for PostgresStore {
    async fn create_oauth_flow(&self, flow: &OAuthFlow) -> StoreResult<()> {
        sqlx::query(self.sql("INSERT INTO {t}oauth_flows (id_hash, provider, state_hash, nonce, pkce_verifier, next, \
             link_user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
        )
        .bind(flow.id_hash.as_bytes().as_slice())
        .bind(flow.provider.as_str())
        .bind(flow.state_hash.as_bytes().as_slice())
        .bind(flow.nonce.expose())
        .bind(flow.pkce_verifier.expose())
        .bind(flow.next.as_deref())
        .bind(flow.link_user_id.map(|id| id.into_uuid()))
        .bind(flow.created_at)
        .bind(flow.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn take_oauth_flow(
        &self,
        id_hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OAuthFlow>> {
        // DELETE … RETURNING: of two concurrent takes, one gets the row.
        let row = sqlx::query(self.sql("DELETE FROM {t}oauth_flows WHERE id_hash = $1 RETURNING id_hash, provider, state_hash, \
             nonce, pkce_verifier, next, link_user_id, created_at, expires_at"),
        )
        .bind(id_hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let flow = oauth_flow(&row)?;
        Ok((now < flow.expires_at).then_some(flow))
    }

    async fn delete_expired_oauth_flows(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(self.sql("DELETE FROM {t}oauth_flows WHERE expires_at <= $1"))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
