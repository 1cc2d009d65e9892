//! [`OAuthFlowStore`] for [`SqliteStore`].

use async_trait::async_trait;
use keystead_core::{OAuthFlow, OAuthFlowStore, SecretString, StoreResult, TokenHash};
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::error::map_sqlx_error;
use crate::rows::{RowExt as _, micros};

fn oauth_flow(row: &SqliteRow) -> StoreResult<OAuthFlow> {
    Ok(OAuthFlow {
        id_hash: row.hash("id_hash")?,
        provider: row.text("provider")?,
        state_hash: row.hash("state_hash")?,
        nonce: SecretString::new(row.text("nonce")?),
        pkce_verifier: SecretString::new(row.text("pkce_verifier")?),
        next: row.opt_text("next")?,
        link_user_id: row.opt_id("link_user_id")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
    })
}

#[async_trait]
impl OAuthFlowStore for SqliteStore {
    async fn create_oauth_flow(&self, flow: &OAuthFlow) -> StoreResult<()> {
        sqlx::query(self.sql("INSERT INTO {t}oauth_flows (id_hash, provider, state_hash, nonce, pkce_verifier, next, \
                 link_user_id, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        )
        .bind(flow.id_hash.as_bytes().as_slice())
        .bind(flow.provider.as_str())
        .bind(flow.state_hash.as_bytes().as_slice())
        .bind(flow.nonce.expose())
        .bind(flow.pkce_verifier.expose())
        .bind(flow.next.as_deref())
        .bind(flow.link_user_id.map(|id| id.to_string()))
        .bind(micros(flow.created_at))
        .bind(micros(flow.expires_at))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn take_oauth_flow(
        &self,
        id_hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OAuthFlow>> {
        // One statement on the single writer: of two concurrent takes, one deletes the row.
        let row = sqlx::query(self.sql(
            "DELETE FROM {t}oauth_flows WHERE id_hash = ?1 \
             RETURNING id_hash, provider, state_hash, nonce, pkce_verifier, next, link_user_id, \
                 created_at, expires_at",
        ))
        .bind(id_hash.as_bytes().as_slice())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let flow = oauth_flow(&row)?;
        Ok((now < flow.expires_at).then_some(flow))
    }

    async fn delete_expired_oauth_flows(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(self.sql("DELETE FROM {t}oauth_flows WHERE expires_at <= ?1"))
            .bind(micros(now))
            .execute(&self.writer)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
