//! Signing keys for API tokens: a key ring with rotation, persisted through a [`KeyStore`].
//!
//! The newest key signs; keys retired by a rotation keep verifying until the last token they
//! could have signed expires, then [`KeyRing::prune`] drops them. Ed25519 (`EdDSA`) is the
//! default; HS256 is available for apps that verify their own tokens only (its secret is never
//! published in the JWKS).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub use keystead_core::keys::{KeyAlgorithm, KeyStore, StoredKey};

use crate::{AuthError, Clock, ErrorCode};

/// The `jsonwebtoken` algorithm of a key: what the verifier pins for it.
pub(crate) const fn jwt_algorithm(algorithm: KeyAlgorithm) -> Algorithm {
    match algorithm {
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::HS256 => Algorithm::HS256,
    }
}

#[async_trait]
pub(crate) trait KeyListener: Send + Sync {
    /// The ring's keys changed.
    async fn keys_changed(&self);
}

/// A key ready to sign and verify.
pub(crate) struct LoadedKey {
    pub(crate) stored: StoredKey,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// Ed25519 public key (base64url `x` of the JWK); `None` for HS256.
    pub(crate) public_x: Option<String>,
}

/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the DER `jsonwebtoken` signs with
/// is this followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl LoadedKey {
    fn load(stored: StoredKey) -> Result<Self, AuthError> {
        let bad = || {
            tracing::error!(kid = %stored.kid, "malformed signing key");
            AuthError::new(ErrorCode::Internal)
        };
        let secret = Zeroizing::new(URL_SAFE_NO_PAD.decode(&stored.secret).map_err(|_| bad())?);
        let (encoding, decoding, public_x) = match stored.algorithm {
            KeyAlgorithm::EdDSA => {
                let seed: [u8; 32] = secret.as_slice().try_into().map_err(|_| bad())?;
                let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
                let public = signing.verifying_key().to_bytes();
                let mut der = Zeroizing::new(Vec::with_capacity(48));
                der.extend_from_slice(&ED25519_PKCS8_PREFIX);
                der.extend_from_slice(&seed);
                (
                    EncodingKey::from_ed_der(&der),
                    DecodingKey::from_ed_der(&public),
                    Some(URL_SAFE_NO_PAD.encode(public)),
                )
            }
            KeyAlgorithm::HS256 => {
                if secret.len() < 32 {
                    return Err(bad());
                }
                (
                    EncodingKey::from_secret(&secret),
                    DecodingKey::from_secret(&secret),
                    None,
                )
            }
        };
        Ok(Self {
            stored,
            encoding,
            decoding,
            public_x,
        })
    }

    fn generate(algorithm: KeyAlgorithm, now: OffsetDateTime) -> Result<Self, AuthError> {
        let mut secret = Zeroizing::new([0_u8; 32]);
        crate::secret::fill_random(secret.as_mut());
        let mut kid = [0_u8; 16];
        crate::secret::fill_random(&mut kid);
        Self::load(StoredKey {
            kid: URL_SAFE_NO_PAD.encode(kid),
            algorithm,
            secret: URL_SAFE_NO_PAD.encode(secret.as_ref()),
            created_at: now,
            retired_at: None,
            verify_until: None,
        })
    }
}

/// Every key of `store`, loaded.
async fn load_all(store: &dyn KeyStore) -> Result<HashMap<String, Arc<LoadedKey>>, AuthError> {
    let mut keys = HashMap::new();
    for stored in store.load_keys().await? {
        let key = LoadedKey::load(stored)?;
        keys.insert(key.stored.kid.clone(), Arc::new(key));
    }
    Ok(keys)
}

/// The signing keys: the newest one signs, the others verify until their tokens are gone.
///
/// A rotation made through [`KeyRing::rotate`] is spread: the `Auth` whose tokens use the
/// ring records it in the store's change log and publishes it, and every other instance
/// reloads its keys within the staleness bound. A token whose `kid` an instance does not hold
/// makes it reload its keys first (at most once a second) before refusing it.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<RingInner>,
}

struct RingInner {
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    algorithm: KeyAlgorithm,
    /// The longest token lifetime: how long a retired key keeps verifying.
    max_token_ttl: Duration,
    keys: RwLock<HashMap<String, Arc<LoadedKey>>>,
    /// Told after each rotation: they spread it to the other instances.
    listeners: Mutex<Vec<Weak<dyn KeyListener>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("algorithm", &self.inner.algorithm)
            .field("keys", &self.read().len())
            .finish_non_exhaustive()
    }
}

/// A key as [`KeyRing::keys`] lists it: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// The key id.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When a newer key replaced it as the signer.
    #[serde(with = "time::serde::rfc3339::option")]
    pub retired_at: Option<OffsetDateTime>,
    /// When it stops verifying (`None`: it signs).
    #[serde(with = "time::serde::rfc3339::option")]
    pub verify_until: Option<OffsetDateTime>,
}

impl KeyRing {
    /// Loads the keys from `store`, making a first one of `algorithm` when there is none that
    /// signs with it, and dropping those past their last use.
    ///
    /// # Errors
    /// Key store errors; `internal` for a malformed stored key.
    pub async fn load_or_create(
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        algorithm: KeyAlgorithm,
        max_token_ttl: Duration,
    ) -> Result<Self, AuthError> {
        let keys = load_all(store.as_ref()).await?;
        let ring = Self {
            inner: Arc::new(RingInner {
                store,
                clock,
                algorithm,
                max_token_ttl,
                keys: RwLock::new(keys),
                listeners: Mutex::new(Vec::new()),
            }),
        };
        ring.prune().await?;
        if ring.signing_key().is_none() {
            ring.rotate().await?;
        }
        Ok(ring)
    }

    /// Reads the keys from the key store again, replacing those held: after a rotation made
    /// by another instance (or by hand), this instance verifies the new key's tokens, signs
    /// with the newest key and publishes it in its JWKS. The keys held stay when the store
    /// cannot be read.
    ///
    /// # Errors
    /// Key store errors; `internal` for a malformed stored key.
    pub async fn reload(&self) -> Result<(), AuthError> {
        let keys = load_all(self.inner.store.as_ref()).await?;
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }

    /// Whether the ring holds a key with this `kid` (one that verifies or not).
    pub(crate) fn holds(&self, kid: &str) -> bool {
        self.read().contains_key(kid)
    }

    /// Tells `listener` about every rotation from now on.
    pub(crate) fn add_listener(&self, listener: Weak<dyn KeyListener>) {
        let mut listeners = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|l| l.strong_count() > 0);
        listeners.push(listener);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<LoadedKey>>> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The key that signs new tokens: the newest unretired key of the configured algorithm.
    pub(crate) fn signing_key(&self) -> Option<Arc<LoadedKey>> {
        self.read()
            .values()
            .filter(|k| k.stored.retired_at.is_none() && k.stored.algorithm == self.inner.algorithm)
            .max_by_key(|k| k.stored.created_at)
            .cloned()
    }

    /// The key with this `kid`, if it still verifies: looked up in the ring, never taken from
    /// the token (no `jwk`, `jku` or `x5u`, no file named by a `kid`).
    pub(crate) fn verifying_key(&self, kid: &str) -> Option<Arc<LoadedKey>> {
        let now = self.inner.clock.now();
        self.read()
            .get(kid)
            .filter(|k| k.stored.verify_until.is_none_or(|until| now < until))
            .cloned()
    }

    /// Makes a new signing key and retires the current one (it verifies for the longest token
    /// lifetime more). Returns the new `kid`.
    ///
    /// # Errors
    /// Key store errors.
    pub async fn rotate(&self) -> Result<String, AuthError> {
        let now = self.inner.clock.now();
        let new = LoadedKey::generate(self.inner.algorithm, now)?;
        self.inner.store.save_key(&new.stored).await?;
        let kid = new.stored.kid.clone();
        let retiring: Vec<StoredKey> = self
            .read()
            .values()
            .filter(|k| k.stored.retired_at.is_none())
            .map(|k| StoredKey {
                retired_at: Some(now),
                verify_until: Some(now + self.inner.max_token_ttl),
                ..k.stored.clone()
            })
            .collect();
        for stored in &retiring {
            self.inner.store.save_key(stored).await?;
        }
        {
            let mut keys = self
                .inner
                .keys
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for stored in retiring {
                let key = LoadedKey::load(stored)?;
                keys.insert(key.stored.kid.clone(), Arc::new(key));
            }
            keys.insert(kid.clone(), Arc::new(new));
        }
        tracing::info!(%kid, "new API token signing key");
        self.tell_listeners().await;
        Ok(kid)
    }

    /// Retires the key `kid` at once: from now on it verifies nothing (every token it signed
    /// fails), for a key that may have leaked. When it is the signing key, a new one is made
    /// first ([`rotate`](Self::rotate)). Returns `false` for a `kid` the ring does not hold.
    ///
    /// # Errors
    /// Key store errors.
    pub async fn retire(&self, kid: &str) -> Result<bool, AuthError> {
        if self
            .signing_key()
            .is_some_and(|signer| signer.stored.kid == kid)
        {
            self.rotate().await?;
        }
        let Some(held) = self.read().get(kid).cloned() else {
            return Ok(false);
        };
        let now = self.inner.clock.now();
        let stored = StoredKey {
            retired_at: Some(held.stored.retired_at.unwrap_or(now)),
            verify_until: Some(now),
            ..held.stored.clone()
        };
        self.inner.store.save_key(&stored).await?;
        let key = LoadedKey::load(stored)?;
        self.inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kid.to_owned(), Arc::new(key));
        tracing::warn!(%kid, "API token signing key retired: its tokens fail from now on");
        self.tell_listeners().await;
        Ok(true)
    }

    /// The keys held, newest first, without their secrets.
    #[must_use]
    pub fn keys(&self) -> Vec<KeyInfo> {
        let mut keys: Vec<KeyInfo> = self
            .read()
            .values()
            .map(|k| KeyInfo {
                kid: k.stored.kid.clone(),
                algorithm: k.stored.algorithm,
                created_at: k.stored.created_at,
                retired_at: k.stored.retired_at,
                verify_until: k.stored.verify_until,
            })
            .collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.kid.cmp(&a.kid)));
        keys
    }

    /// Tells every listener that the keys changed (a rotation or a retirement).
    async fn tell_listeners(&self) {
        let listeners: Vec<Arc<dyn KeyListener>> = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for listener in listeners {
            listener.keys_changed().await;
        }
    }

    /// Removes retired keys whose tokens have all expired. Returns how many went.
    ///
    /// # Errors
    /// Key store errors.
    pub async fn prune(&self) -> Result<usize, AuthError> {
        let now = self.inner.clock.now();
        let expired: Vec<String> = self
            .read()
            .values()
            .filter(|k| k.stored.verify_until.is_some_and(|until| now >= until))
            .map(|k| k.stored.kid.clone())
            .collect();
        for kid in &expired {
            self.inner.store.delete_key(kid).await?;
            self.inner
                .keys
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(kid);
        }
        Ok(expired.len())
    }

    /// The public keys as a JWKS (`{"keys": [...]}`): every Ed25519 key that still verifies.
    /// HS256 secrets are never published.
    #[must_use]
    pub fn jwks(&self) -> Value {
        let now = self.inner.clock.now();
        let mut keys: Vec<(OffsetDateTime, String, Value)> = self
            .read()
            .values()
            .filter(|k| k.stored.verify_until.is_none_or(|until| now < until))
            .filter_map(|k| {
                k.public_x.as_ref().map(|x| {
                    (
                        k.stored.created_at,
                        k.stored.kid.clone(),
                        json!({
                            "kty": "OKP",
                            "crv": "Ed25519",
                            "x": x,
                            "kid": k.stored.kid,
                            "alg": "EdDSA",
                            "use": "sig",
                        }),
                    )
                })
            })
            .collect();
        // Newest first; the kid breaks ties, so the order is stable.
        keys.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        json!({ "keys": keys.into_iter().map(|(_, _, k)| k).collect::<Vec<_>>() })
    }
}
