//! API token signing keys in the store (`keystead_core::keys::KeyStore`): for production, so
//! that every instance signs and verifies with the same keys.

use async_trait::async_trait;
use keystead_core::keys::{KeyStore, StoredKey};
use keystead_core::{AuthError, ErrorCode};

use crate::SqliteStore;
use crate::error::map_sqlx_error;

fn malformed(err: &serde_json::Error) -> AuthError {
    tracing::error!(error = %err, "malformed signing key row");
    AuthError::new(ErrorCode::Internal)
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn load_keys(&self) -> Result<Vec<StoredKey>, AuthError> {
        let rows: Vec<String> =
            sqlx::query_scalar(self.sql("SELECT data FROM {t}signing_keys ORDER BY kid"))
                .fetch_all(&self.reader)
                .await
                .map_err(|e| AuthError::from(map_sqlx_error(e)))?;
        rows.iter()
            .map(|data| serde_json::from_str(data).map_err(|e| malformed(&e)))
            .collect()
    }

    async fn save_key(&self, key: &StoredKey) -> Result<(), AuthError> {
        let data = serde_json::to_string(key).map_err(|e| malformed(&e))?;
        sqlx::query(self.sql(
            "INSERT INTO {t}signing_keys (kid, data) VALUES (?1, ?2) \
             ON CONFLICT (kid) DO UPDATE SET data = excluded.data",
        ))
        .bind(&key.kid)
        .bind(data)
        .execute(&self.writer)
        .await
        .map_err(|e| AuthError::from(map_sqlx_error(e)))?;
        Ok(())
    }

    async fn delete_key(&self, kid: &str) -> Result<(), AuthError> {
        sqlx::query(self.sql("DELETE FROM {t}signing_keys WHERE kid = ?1"))
            .bind(kid)
            .execute(&self.writer)
            .await
            .map_err(|e| AuthError::from(map_sqlx_error(e)))?;
        Ok(())
    }
}
