//! Signing keys as stored: what a [`KeyStore`] keeps (the key ring that uses them lives in the
//! `keystead` crate).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::AuthError;

/// The signature algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// Ed25519 signatures (`EdDSA`): public verification through the JWKS. The default.
    EdDSA,
    /// HMAC-SHA-256 (`HS256`) with a 256-bit secret: verification only by this app.
    HS256,
}

/// A key as persisted: its id, algorithm, secret material (the Ed25519 seed or the HMAC
/// secret, base64url) and lifecycle.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The key id (`kid`): 128 random bits, base64url.
    pub kid: String,
    /// The algorithm.
    pub algorithm: KeyAlgorithm,
    /// The secret material, base64url.
    pub secret: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When a newer key replaced it as the signer; it verifies until `verify_until`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub retired_at: Option<OffsetDateTime>,
    /// After this, it verifies nothing and is removed (set at retirement: the retirement time
    /// plus the longest token lifetime).
    #[serde(with = "time::serde::rfc3339::option")]
    pub verify_until: Option<OffsetDateTime>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Told about every rotation made through a [`KeyRing`] (the instance's change spreading).
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Every stored key.
    async fn load_keys(&self) -> Result<Vec<StoredKey>, AuthError>;
    /// Stores a key, replacing one with the same `kid`.
    async fn save_key(&self, key: &StoredKey) -> Result<(), AuthError>;
    /// Removes a key.
    async fn delete_key(&self, kid: &str) -> Result<(), AuthError>;
}
