//! API tokens: `sk_live_` + a compact JWS, scoped, revocable, audited — and cheap to check.
//!
//! Issuing writes the metadata row and signs claims `sub`, `org`, `scopes`, `jti` (the row's
//! id), `iat`, `exp`, `iss` (the app's origin) and `aud` (origin + `/api`) with the newest key
//! of the [`KeyRing`] (header `typ: at+jwt`, `kid`). The token is shown once and never stored.
//!
//! Verifying a token, in order: the `sk_live_` prefix; a cache of verified claims (a signature is
//! checked once per token, not once per request, see [`Verified`]); on a miss, the
//! header's `kid` looked up in our key ring only, the algorithm pinned by that key (never read
//! from the token; `jwk`, `jku`, `x5u` ignored), `typ`, signature, `iss`, `aud`, `exp`, `nbf`;
//! then the revocation list (in memory, kept current by the [change feed](feed), and bounded:
//! a revocation is dropped once its token has expired, see
//! [`ApiTokens::prune_revocations`]); then the
//! owner's current role in the token's organization (cached, invalidated by the feed). The
//! effective permissions are the token's scopes that the role still grants. If the feed has been
//! down longer than the staleness bound, token requests fail closed (503).

#[cfg(feature = "dir-key-store")]
mod dir_store;
pub mod feed;
pub mod keys;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Duration, OffsetDateTime};

#[cfg(feature = "dir-key-store")]
pub use dir_store::DirKeyStore;
pub(crate) use feed::Changes;
pub use feed::{Change, ChangeFeed, FeedEvent, InProcessFeed};
pub use keys::{KeyAlgorithm, KeyInfo, KeyRing, KeyStore, StoredKey};

use crate::audit;
use crate::clock::{from_unix_micros, unix_micros_ceil};
use crate::gate::visible_text;
use crate::principal::{Credential, token_permissions};
use crate::secret::TokenHashBuilder;
use crate::web::AppOrigin;
use crate::{
    ApiTokenId, ApiTokenRecord, AuditEvent, AuditKind, AuthError, AuthStore, Clock, ErrorCode,
    OrgId, Permission, Principal, Role, RolePermissions, SecretString, TokenHash, User, UserId,
};

/// The prefix of every API token.
pub const TOKEN_PREFIX: &str = "sk_live_";
/// The `typ` header of our tokens (RFC 9068).
const TOKEN_TYPE: &str = "at+jwt";
/// Longer tokens are refused before any parsing.
const MAX_TOKEN_LEN: usize = 4096;

/// Settings of API tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenConfig {
    /// Lifetime when the request names none (default 90 days).
    pub default_ttl: Duration,
    /// The longest lifetime a request may ask for (default 365 days).
    pub max_ttl: Duration,
    /// How stale the revocation, membership and key caches may be: a change the feed lost
    /// reaches every instance within it (the store's change log is read every half of it),
    /// and when the feed is down or the log cannot be read for longer, token requests are
    /// refused (default 1 s).
    pub staleness: Duration,
    /// How long a cached membership is used without a change from the feed (default 60 s).
    pub membership_ttl: Duration,
    /// How many verified tokens the cache holds (default 100,000).
    pub cache_capacity: usize,
    /// How often `last_used_at` is written, in one batch (default 5 s).
    pub use_interval: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::days(90),
            max_ttl: Duration::days(365),
            staleness: Duration::seconds(1),
            membership_ttl: Duration::seconds(60),
            cache_capacity: 100_000,
            use_interval: Duration::seconds(5),
        }
    }
}

/// The claims of our tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    org: String,
    scopes: Vec<String>,
    jti: String,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
}

/// Claims that passed the signature and claim checks, parsed: an entry of the cache of
/// verified tokens.
///
/// The cache is keyed by the SHA-256 of the token's signature segment, and an entry is used
/// only if the presented token's signing input (`header.payload`) is byte for byte the one
/// that was verified. A hit thus needs the exact token that passed the checks, as a key by
/// the whole token's SHA-256 would; a token whose claims or header were changed under a
/// genuine signature misses and is verified (and refused) in full. The hash runs over the
/// 86-character signature instead of the whole ~500-byte token (two SHA-256 blocks instead
/// of nine; that hash was the largest cost of a Bearer request), and the comparison is a
/// `memcmp`. Memory never holds a usable token: the signing input is the claims we keep
/// anyway, and the signature, the only secret part, is kept as its hash.
#[derive(Debug, Clone)]
struct Verified {
    /// `header.payload` as it was verified, compared on every hit.
    signing_input: Box<str>,
    id: ApiTokenId,
    user_id: UserId,
    org_id: OrgId,
    scopes: Arc<BTreeSet<Permission>>,
    expires_at: i64,
    /// The token's effective permissions under one role's set of permissions (that set, and
    /// the scopes it grants): worked out at the first use instead of on every request.
    effective: OnceLock<(Permissions, Permissions)>,
}

/// A shared set of permissions.
type Permissions = Arc<BTreeSet<Permission>>;

#[derive(Debug, Clone)]
struct Member {
    user: Option<Arc<User>>,
    role: Option<Role>,
    /// The organization requires a second factor and the owner has none.
    mfa_blocked: bool,
    /// Used while `now < fresh_until` (microseconds since the epoch): `membership_ttl` after
    /// it was read.
    fresh_until: i64,
}

/// An entry of the revocation list: until when the token needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Revocation {
    /// The token's expiry (microseconds since the epoch, rounded up): from then on it is
    /// refused as expired before the revocation list is consulted, and the entry may go.
    until_us: i64,
    /// Whether `until_us` is the token's recorded expiry. A revocation that came from the
    /// feed names only the id: it is held until now + the longest lifetime
    /// ([`TokenConfig::max_ttl`]), then the prune reads the token's expiry from the store
    /// before letting it go (a token issued under a longer lifetime is not dropped early).
    exact: bool,
}

/// Hashes the maps keyed by our own ids (UUIDs we generated, read from the store or from
/// tokens we signed, never chosen by a client) with `foldhash`, seeded per process, instead
/// of SipHash: these lookups run on every Bearer request.
type IdHasher = foldhash::fast::RandomState;

/// API tokens: issue, verify, list, revoke. Cheap to clone.
#[derive(Clone)]
pub struct ApiTokens {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn AuthStore>,
    clock: Arc<dyn Clock>,
    keys: KeyRing,
    changes: Arc<Changes>,
    /// When a token of a `kid` this instance does not hold last made it reload its keys.
    kid_reloaded_at: Mutex<Option<std::time::Instant>>,
    config: TokenConfig,
    issuer: String,
    audience: String,
    verified: RwLock<HashMap<TokenHash, Arc<Verified>, TokenHashBuilder>>,
    /// The revoked tokens that have not expired yet; `None` until loaded from the store.
    revoked: RwLock<Option<HashMap<ApiTokenId, Revocation, IdHasher>>>,
    members: RwLock<HashMap<(UserId, OrgId), Member, IdHasher>>,
    /// Bumped by every membership invalidation: a read that started before one does not put
    /// its (possibly stale) answer into the cache.
    members_generation: AtomicU64,
    /// Membership cache lookups answered from the cache, and read from the store
    /// (`keystead_cache_lookups_total`).
    member_hits: AtomicU64,
    member_misses: AtomicU64,
    /// Tokens that verified (`keystead_token_verifications_total{outcome="valid"}`).
    valid: AtomicU64,
    /// Last use (microseconds since the epoch) and count of uses, per token, to flush.
    used: Mutex<HashMap<ApiTokenId, (i64, u64), IdHasher>>,
    refusals_noted: Mutex<HashMap<ApiTokenId, OffsetDateTime>>,
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokens")
            .field("keys", &self.inner.keys)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn invalid() -> AuthError {
    AuthError::new(ErrorCode::TokenInvalid)
}

impl ApiTokens {
    /// Tokens for the app at `origin`, signed by `keys`, kept current by `feed`.
    #[must_use]
    pub fn new(
        store: Arc<dyn AuthStore>,
        clock: Arc<dyn Clock>,
        keys: KeyRing,
        feed: Arc<dyn ChangeFeed>,
        config: TokenConfig,
        origin: &AppOrigin,
    ) -> Self {
        let changes = Arc::new(Changes::new(store.clone(), feed, clock.clone()));
        Self::with_changes(store, clock, keys, changes, config, origin)
    }

    /// Tokens that spread their changes through `changes` (the `Auth`'s).
    pub(crate) fn with_changes(
        store: Arc<dyn AuthStore>,
        clock: Arc<dyn Clock>,
        keys: KeyRing,
        changes: Arc<Changes>,
        config: TokenConfig,
        origin: &AppOrigin,
    ) -> Self {
        let listener: Arc<dyn keys::KeyListener> = changes.clone();
        keys.add_listener(Arc::downgrade(&listener));
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                keys,
                changes,
                kid_reloaded_at: Mutex::new(None),
                config,
                issuer: origin.as_str().to_owned(),
                audience: origin.join("/api"),
                verified: RwLock::new(HashMap::default()),
                revoked: RwLock::new(None),
                members: RwLock::new(HashMap::default()),
                members_generation: AtomicU64::new(0),
                member_hits: AtomicU64::new(0),
                member_misses: AtomicU64::new(0),
                valid: AtomicU64::new(0),
                used: Mutex::new(HashMap::default()),
                refusals_noted: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &TokenConfig {
        &self.inner.config
    }

    /// The key ring.
    #[must_use]
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The change feed.
    #[must_use]
    pub fn feed(&self) -> &Arc<dyn ChangeFeed> {
        self.inner.changes.feed()
    }

    /// Issues a token for `principal` (a session in an organization): scopes must be a
    /// non-empty set of known permissions (else `invalid_scope`) that the principal has now
    /// (else `forbidden`); `ttl_days` at most the configured maximum (else `invalid_request`).
    /// Returns the stored record and the token, which is shown once.
    ///
    /// # Errors
    /// As above; `forbidden` without an active organization; store errors.
    #[tracing::instrument(name = "keystead.token.issue", skip_all)]
    pub async fn issue(
        &self,
        principal: &Principal,
        roles: &RolePermissions,
        name: &str,
        scopes: &[String],
        ttl_days: Option<i64>,
    ) -> Result<(ApiTokenRecord, SecretString), AuthError> {
        let org_id = principal.org_id().ok_or_else(|| {
            AuthError::new(ErrorCode::Forbidden).with_detail("No active organization.")
        })?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AuthError::new(ErrorCode::InvalidRequest)
                .with_detail("The name must be 1 to 100 characters."));
        }
        if scopes.is_empty() {
            return Err(AuthError::new(ErrorCode::InvalidScope)
                .with_detail("A token needs at least one scope."));
        }
        let mut wanted = BTreeSet::new();
        for scope in scopes {
            let permission = Permission::new(scope.clone())
                .ok()
                .filter(|p| roles.knows_permission(p))
                .ok_or_else(|| {
                    AuthError::new(ErrorCode::InvalidScope)
                        .with_detail(format!("Unknown scope: {scope}"))
                })?;
            wanted.insert(permission);
        }
        if !wanted.is_subset(principal.permissions()) {
            return Err(AuthError::new(ErrorCode::Forbidden)
                .with_detail("A token cannot have scopes beyond your own permissions."));
        }
        let ttl = match ttl_days {
            None => self.inner.config.default_ttl,
            // Compared as whole days: `Duration::days` panics past about 10^14 days.
            Some(days) if (1..=self.inner.config.max_ttl.whole_days()).contains(&days) => {
                Duration::days(days)
            }
            Some(_) => {
                return Err(
                    AuthError::new(ErrorCode::InvalidRequest).with_detail(format!(
                        "expires_in_days must be between 1 and {}.",
                        self.inner.config.max_ttl.whole_days()
                    )),
                );
            }
        };
        let key = self.inner.keys.signing_key().ok_or_else(|| {
            tracing::error!("no signing key");
            AuthError::new(ErrorCode::Internal)
        })?;
        let now = self.inner.clock.now();
        let record = ApiTokenRecord {
            id: ApiTokenId::new(),
            name: name.to_owned(),
            user_id: principal.user.id,
            org_id,
            scopes: wanted.iter().cloned().collect(),
            created_by: principal.user.id,
            created_at: now,
            expires_at: now + ttl,
            last_used_at: None,
            revoked_at: None,
        };
        let claims = Claims {
            sub: record.user_id.to_string(),
            org: org_id.to_string(),
            scopes: wanted.iter().map(|p| p.as_str().to_owned()).collect(),
            jti: record.id.to_string(),
            iat: now.unix_timestamp(),
            exp: record.expires_at.unix_timestamp(),
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone(),
        };
        let mut header = Header::new(keys::jwt_algorithm(key.stored.algorithm));
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(key.stored.kid.clone());
        let jws = jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(|e| {
            tracing::error!(error = %e, "could not sign a token");
            AuthError::new(ErrorCode::Internal)
        })?;
        self.inner.store.create_api_token(&record).await?;
        audit::record(&*self.inner.store, &AuditEvent { actor_id: Some(principal.user.id), user_id: Some(principal.user.id), org_id: Some(org_id), data: json!({ "token_id": record.id.to_string(), "name": record.name, "scopes": claims.scopes }), ..AuditEvent::new(AuditKind::ApiTokenCreated, self.inner.clock.now()) })
        .await;
        Ok((record, SecretString::new(format!("{TOKEN_PREFIX}{jws}"))))
    }

    /// Checks a presented token and returns the principal it stands for.
    ///
    /// # Errors
    /// `token_invalid` (malformed, forged, wrong key, algorithm, type, issuer or audience, not
    /// yet valid), `token_expired`, `token_revoked` (revoked, or its owner no longer a member),
    /// `unavailable` (the change feed is down past the staleness bound, or the store on a miss).
    ///
    /// `token` is the credential as sent (`sk_live_…`), text or bytes: bytes that are not
    /// visible ASCII are `token_invalid`.
    pub async fn authenticate(
        &self,
        token: impl AsRef<[u8]>,
        roles: &RolePermissions,
    ) -> Result<Principal, AuthError> {
        self.ensure_fresh()?;
        let now_us = self.inner.clock.now_micros();
        let token = token.as_ref();
        let verified = match self.verify(token, now_us) {
            Ok(verified) => verified,
            Err(err) if self.should_reload_keys_for(token, &err) => {
                // Perhaps another instance rotated the keys: reload them, then try again.
                self.note_kid_reload();
                if let Err(e) = self.inner.keys.reload().await {
                    tracing::warn!(error = %e.code, "could not reload the signing keys");
                }
                self.verify(token, now_us)?
            }
            Err(err) => return Err(err),
        };
        self.ensure_revocations_loaded().await?;
        if self.is_revoked(verified.id) {
            self.refused(&verified, "revoked").await;
            return Err(AuthError::new(ErrorCode::TokenRevoked));
        }
        let member = self
            .member(verified.user_id, verified.org_id, now_us)
            .await?;
        let mfa_blocked = member.mfa_blocked;
        let (Some(user), Some(role)) = (member.user, member.role) else {
            self.refused(&verified, "not_a_member").await;
            return Err(AuthError::new(ErrorCode::TokenRevoked));
        };
        Ok(self.admit(&verified, user, role, mfa_blocked, now_us, roles))
    }

    /// [`authenticate`](Self::authenticate)'s answer when this instance's caches can give it
    /// without the store, as the adapters' synchronous fast path: a good token whose
    /// owner's membership is cached, or a token refused on its own (malformed, forged,
    /// expired; or the feed down past the staleness bound). `None` when the answer needs the
    /// store (a cache miss, or a refusal to audit): call `authenticate` then.
    #[must_use]
    pub fn authenticate_cached(
        &self,
        token: impl AsRef<[u8]>,
        roles: &RolePermissions,
    ) -> Option<Result<Principal, AuthError>> {
        if let Err(err) = self.ensure_fresh() {
            return Some(Err(err));
        }
        let now_us = self.inner.clock.now_micros();
        let verified = match self.verify(token.as_ref(), now_us) {
            Ok(verified) => verified,
            // A `kid` this instance does not hold: the keys are reloaded on the store's path.
            Err(err) if self.should_reload_keys_for(token.as_ref(), &err) => return None,
            Err(err) => return Some(Err(err)),
        };
        // Not loaded yet, or revoked (a refusal to audit): the store's path.
        if self.revoked(verified.id) != Some(false) {
            return None;
        }
        let member = self.cached_member(verified.user_id, verified.org_id, now_us)?;
        let mfa_blocked = member.mfa_blocked;
        let (Some(user), Some(role)) = (member.user, member.role) else {
            return None;
        };
        Some(Ok(self.admit(
            &verified,
            user,
            role,
            mfa_blocked,
            now_us,
            roles,
        )))
    }

    /// The principal of a good token, its use noted (recorded in batches).
    fn admit(
        &self,
        verified: &Verified,
        user: Arc<User>,
        role: Role,
        mfa_blocked: bool,
        now_us: i64,
        roles: &RolePermissions,
    ) -> Principal {
        self.note_use(verified.id, now_us);
        self.inner.valid.fetch_add(1, Ordering::Relaxed);
        let granted = roles.permissions(&role);
        let permissions = match verified.effective.get() {
            // The role grants the very set it granted when this token's permissions were
            // worked out (the memo holds that set, so its address is not reused).
            Some((for_granted, effective)) if std::ptr::eq(for_granted.as_ref(), granted) => {
                effective.clone()
            }
            _ => {
                let granted = roles.permissions_shared(&role);
                let effective = token_permissions(&verified.scopes, granted.clone());
                // The first role seen is memoized; after a change of role (rare), the
                // permissions are worked out per request, as `Principal::new` does.
                let _ = verified.effective.set((granted, effective.clone()));
                effective
            }
        };
        let principal = Principal::with_permissions(
            user,
            Credential::ApiToken {
                id: verified.id,
                scopes: verified.scopes.clone(),
            },
            Some((verified.org_id, role)),
            permissions,
        );
        // A token never grants more than its owner: under the organization's MFA policy, an
        // owner without a second factor can do nothing there, and neither can their tokens.
        if mfa_blocked {
            principal.blocked_by_org_mfa_policy()
        } else {
            principal
        }
    }

    /// Whether a refused token names a `kid` this instance does not hold, and a reload of
    /// the keys is due (at most one a second): a rotation made elsewhere is picked up at once.
    /// Only refusals pay for this.
    fn should_reload_keys_for(&self, token: &[u8], err: &AuthError) -> bool {
        if err.code != ErrorCode::TokenInvalid {
            return false;
        }
        let due = self
            .inner
            .kid_reloaded_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1));
        if !due {
            return false;
        }
        let Some(jws) = token
            .strip_prefix(TOKEN_PREFIX.as_bytes())
            .filter(|t| t.len() <= MAX_TOKEN_LEN)
            .and_then(visible_text)
        else {
            return false;
        };
        let Ok(header) = jsonwebtoken::decode_header(jws) else {
            return false;
        };
        header.typ.as_deref() == Some(TOKEN_TYPE)
            && header.kid.as_deref().is_some_and(|kid| {
                kid.len() <= 64
                    && kid
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && !self.inner.keys.holds(kid)
            })
    }

    fn note_kid_reload(&self) {
        *self
            .inner
            .kid_reloaded_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(std::time::Instant::now());
    }

    /// Fail closed when the feed has been down, or the change log unread, longer than the
    /// staleness bound.
    fn ensure_fresh(&self) -> Result<(), AuthError> {
        if !self.inner.changes.is_fresh() {
            return Err(AuthError::new(ErrorCode::Unavailable));
        }
        let feed = self.inner.changes.feed();
        if feed.is_healthy() {
            return Ok(());
        }
        let since = feed.unhealthy_since_ms().unwrap_or(0);
        let now_ms = (self.inner.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
        if now_ms - since > self.inner.config.staleness.whole_milliseconds() as i64 {
            tracing::warn!("change feed down past the staleness bound: refusing API tokens");
            return Err(AuthError::new(ErrorCode::Unavailable));
        }
        Ok(())
    }

    /// Signature and claims, through the cache of verified tokens.
    ///
    /// The token is looked up as the bytes sent: a hit means the signature's SHA-256 and the
    /// signing input, byte for byte, are those of a token verified before, so the bytes are
    /// that token's text. Only a miss checks that they are text (visible ASCII) at all, once,
    /// before the signature; a request then pays no pass over a 540-byte header to validate it.
    fn verify(&self, token: &[u8], now_us: i64) -> Result<Arc<Verified>, AuthError> {
        let jws = token
            .strip_prefix(TOKEN_PREFIX.as_bytes())
            .filter(|t| t.len() <= MAX_TOKEN_LEN)
            .ok_or_else(invalid)?;
        let dot = memchr::memrchr(b'.', jws).ok_or_else(invalid)?;
        let (signing_input, signature) = (&jws[..dot], &jws[dot + 1..]);
        let hash = TokenHash::of_bytes(signature);
        let cached = self
            .inner
            .verified
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
            .filter(|verified| verified.signing_input.as_bytes() == signing_input)
            .cloned();
        if let Some(verified) = cached {
            // `exp` is in whole seconds: expired from its first microsecond.
            if now_us >= verified.expires_at.saturating_mul(1_000_000) {
                return Err(AuthError::new(ErrorCode::TokenExpired));
            }
            return Ok(verified);
        }
        let jws = visible_text(jws).ok_or_else(invalid)?;
        let now = from_unix_micros(now_us);
        let verified = Arc::new(self.verify_signature(jws, now)?);
        let mut cache = self
            .inner
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= self.inner.config.cache_capacity {
            let now_s = now.unix_timestamp();
            cache.retain(|_, v| v.expires_at > now_s);
            if cache.len() >= self.inner.config.cache_capacity {
                cache.clear();
            }
        }
        cache.insert(hash, verified.clone());
        Ok(verified)
    }

    fn verify_signature(&self, jws: &str, now: OffsetDateTime) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(jws).map_err(|_| invalid())?;
        let kid = header.kid.as_deref().ok_or_else(invalid)?;
        let key = self.inner.keys.verifying_key(kid).ok_or_else(invalid)?;
        let algorithm = keys::jwt_algorithm(key.stored.algorithm);
        if header.alg != algorithm || header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(invalid());
        }
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[self.inner.issuer.as_str()]);
        validation.set_audience(&[self.inner.audience.as_str()]);
        let data =
            jsonwebtoken::decode::<Claims>(jws, &key.decoding, &validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::ExpiredSignature => AuthError::new(ErrorCode::TokenExpired),
                _ => invalid(),
            })?;
        let claims = data.claims;
        // `jsonwebtoken` compares `exp` with its own clock; ours is the one that counts.
        if now.unix_timestamp() >= claims.exp {
            return Err(AuthError::new(ErrorCode::TokenExpired));
        }
        if claims.iat > now.unix_timestamp() + 60 {
            return Err(invalid());
        }
        let scopes = claims
            .scopes
            .into_iter()
            .map(|s| Permission::new(s).map_err(|_| invalid()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let signing_input = jws.rsplit_once('.').ok_or_else(invalid)?.0;
        Ok(Verified {
            signing_input: signing_input.into(),
            id: claims.jti.parse().map_err(|_| invalid())?,
            user_id: claims.sub.parse().map_err(|_| invalid())?,
            org_id: claims.org.parse().map_err(|_| invalid())?,
            scopes: Arc::new(scopes),
            expires_at: claims.exp,
            effective: OnceLock::new(),
        })
    }

    async fn ensure_revocations_loaded(&self) -> Result<(), AuthError> {
        let loaded = self
            .inner
            .revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if !loaded {
            self.reload_revocations().await?;
        }
        Ok(())
    }

    /// Loads the revocation list from the store: the tokens revoked and not expired, each
    /// with its expiry. The entries already held are kept (a revocation is never undone): a
    /// revocation marked while the store was read is not lost, and whatever has expired among
    /// them goes with the next prune.
    async fn reload_revocations(&self) -> Result<(), AuthError> {
        let rows = self
            .inner
            .store
            .revoked_api_token_ids(self.inner.clock.now())
            .await?;
        let mut loaded: HashMap<ApiTokenId, Revocation, IdHasher> =
            HashMap::with_capacity_and_hasher(rows.len(), IdHasher::default());
        for (id, expires_at) in rows {
            loaded.insert(
                id,
                Revocation {
                    until_us: unix_micros_ceil(expires_at),
                    exact: true,
                },
            );
        }
        let mut revoked = self
            .inner
            .revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = revoked.take() {
            for (id, revocation) in held {
                loaded.entry(id).or_insert(revocation);
            }
        }
        *revoked = Some(loaded);
        Ok(())
    }

    /// Drops from the revocation list the tokens that have expired: they are refused as
    /// expired before the list is consulted (the token's `exp` is at most its recorded
    /// expiry), so the list holds only the revocations still in force, however many tokens
    /// were ever revoked. An entry that came from the feed without the token's expiry is
    /// dropped only once the store shows that the token has expired (or re-dated with its
    /// recorded expiry); when the store cannot answer, it is kept for the next prune.
    /// Runs with the maintenance sweep ([`AuthBuilder::maintenance_interval`](crate::AuthBuilder::maintenance_interval));
    /// returns how many entries were dropped.
    pub async fn prune_revocations(&self) -> usize {
        let now_us = self.inner.clock.now_micros();
        let mut dropped = 0;
        let mut to_check = Vec::new();
        {
            let mut revoked = self
                .inner
                .revoked
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(set) = revoked.as_mut() else {
                return 0;
            };
            set.retain(|id, revocation| {
                if now_us < revocation.until_us {
                    return true;
                }
                if revocation.exact {
                    dropped += 1;
                    return false;
                }
                to_check.push(*id);
                true
            });
        }
        for id in to_check {
            let update = match self.inner.store.api_token(id).await {
                Ok(Some(record)) => Some(unix_micros_ceil(record.expires_at)),
                // The record is gone (its user or organization was deleted): without its
                // expiry, the entry is held for another longest lifetime.
                Ok(None) => None,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read a revoked token's expiry");
                    continue;
                }
            };
            let mut revoked = self
                .inner
                .revoked
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(set) = revoked.as_mut() else {
                return dropped;
            };
            let Some(entry) = set.get_mut(&id) else {
                continue;
            };
            match update {
                Some(until_us) if now_us >= until_us => {
                    set.remove(&id);
                    dropped += 1;
                }
                Some(until_us) => {
                    *entry = Revocation {
                        until_us,
                        exact: true,
                    };
                }
                None => entry.until_us = self.estimated_expiry(now_us),
            }
        }
        dropped
    }

    /// How many revocations this instance holds (0 before the list is loaded): the tokens
    /// revoked and not known to have expired.
    #[must_use]
    pub fn revocations_held(&self) -> usize {
        self.inner
            .revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, HashMap::len)
    }

    /// The latest expiry a token revoked at `now_us` can have under this configuration.
    fn estimated_expiry(&self, now_us: i64) -> i64 {
        from_unix_micros(now_us)
            .checked_add(self.inner.config.max_ttl)
            .map_or(i64::MAX, unix_micros_ceil)
    }

    fn is_revoked(&self, id: ApiTokenId) -> bool {
        self.revoked(id) == Some(true)
    }

    /// Whether the token is revoked; `None` while the revocation list is not loaded.
    fn revoked(&self, id: ApiTokenId) -> Option<bool> {
        self.inner
            .revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|set| set.contains_key(&id))
    }

    async fn member(
        &self,
        user_id: UserId,
        org_id: OrgId,
        now_us: i64,
    ) -> Result<Member, AuthError> {
        if let Some(member) = self.cached_member(user_id, org_id, now_us) {
            return Ok(member);
        }
        self.inner.member_misses.fetch_add(1, Ordering::Relaxed);
        let generation = self.inner.members_generation.load(Ordering::Acquire);
        let access = self.inner.store.org_access(org_id, user_id).await?;
        let user = match access {
            Some(_) => self.inner.store.user_by_id(user_id).await?,
            None => None,
        };
        let member = Member {
            user: user.map(Arc::new),
            mfa_blocked: access
                .as_ref()
                .is_some_and(|a| a.mfa_required && !a.second_factor),
            role: access.map(|a| a.membership.role),
            fresh_until: from_unix_micros(now_us)
                .checked_add(self.inner.config.membership_ttl)
                .map_or(i64::MAX, unix_micros_ceil),
        };
        let mut members = self
            .inner
            .members
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.inner.members_generation.load(Ordering::Acquire) == generation {
            members.insert((user_id, org_id), member.clone());
        }
        Ok(member)
    }

    /// The owner's membership from the cache, while fresh.
    fn cached_member(&self, user_id: UserId, org_id: OrgId, now_us: i64) -> Option<Member> {
        let member = self
            .inner
            .members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(user_id, org_id))
            .filter(|m| now_us < m.fresh_until)
            .cloned();
        if member.is_some() {
            self.inner.member_hits.fetch_add(1, Ordering::Relaxed);
        }
        member
    }

    /// Membership cache hits and misses, and tokens that verified, so far.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (
            self.inner.member_hits.load(Ordering::Relaxed),
            self.inner.member_misses.load(Ordering::Relaxed),
            self.inner.valid.load(Ordering::Relaxed),
        )
    }

    fn note_use(&self, id: ApiTokenId, now_us: i64) {
        let mut used = self
            .inner
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = used.entry(id).or_insert((now_us, 0));
        entry.0 = entry.0.max(now_us);
        entry.1 += 1;
    }

    /// Records refusals of genuine (well-signed) tokens: at most one audit event per token a
    /// minute, so that replaying a revoked token cannot flood the audit log.
    async fn refused(&self, verified: &Verified, reason: &str) {
        let now = self.inner.clock.now();
        {
            let mut noted = self
                .inner
                .refusals_noted
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if noted
                .get(&verified.id)
                .is_some_and(|at| now - *at < Duration::minutes(1))
            {
                return;
            }
            if noted.len() > 10_000 {
                noted.clear();
            }
            noted.insert(verified.id, now);
        }
        audit::record(
            &*self.inner.store,
            &AuditEvent {
                actor_id: Some(verified.user_id),
                user_id: Some(verified.user_id),
                org_id: Some(verified.org_id),
                data: json!({ "token_id": verified.id.to_string(), "reason": reason }),
                ..AuditEvent::new(AuditKind::ApiTokenRefused, self.inner.clock.now())
            },
        )
        .await;
    }

    /// Writes the noted `last_used_at` times in one store call, with one `api_token.used` audit
    /// event per token (and its count of uses). Returns how many tokens were written.
    ///
    /// # Errors
    /// Store errors; the noted uses are kept for the next attempt.
    pub async fn flush_usage(&self) -> Result<usize, AuthError> {
        let batch: Vec<(ApiTokenId, (i64, u64))> = self
            .inner
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        if batch.is_empty() {
            return Ok(0);
        }
        let times: Vec<(ApiTokenId, OffsetDateTime)> = batch
            .iter()
            .map(|(id, (at, _))| (*id, from_unix_micros(*at)))
            .collect();
        if let Err(err) = self.inner.store.record_api_token_use(&times).await {
            let mut used = self
                .inner
                .used
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (id, (at, count)) in batch {
                let entry = used.entry(id).or_insert((at, 0));
                entry.0 = entry.0.max(at);
                entry.1 += count;
            }
            return Err(err.into());
        }
        for (id, (at, count)) in &batch {
            audit::record(&*self.inner.store, &AuditEvent { data: json!({ "token_id": id.to_string(), "uses": count, "last_used_at": at.div_euclid(1_000_000) }), ..AuditEvent::new(AuditKind::ApiTokenUsed, self.inner.clock.now()) })
            .await;
        }
        Ok(batch.len())
    }

    /// Revokes a token: from now on it fails on every instance (through the feed).
    ///
    /// # Errors
    /// `not_found`; store errors.
    #[tracing::instrument(name = "keystead.token.revoke", skip_all)]
    pub async fn revoke(&self, id: ApiTokenId, actor: UserId) -> Result<ApiTokenRecord, AuthError> {
        let record = self
            .inner
            .store
            .revoke_api_token(id, self.inner.clock.now())
            .await?;
        self.mark_revoked(id, Some(record.expires_at));
        self.inner
            .changes
            .announce(&Change::TokenRevoked { id })
            .await;
        audit::record(
            &*self.inner.store,
            &AuditEvent {
                actor_id: Some(actor),
                user_id: Some(actor),
                org_id: Some(record.org_id),
                data: json!({ "token_id": id.to_string() }),
                ..AuditEvent::new(AuditKind::ApiTokenRevoked, self.inner.clock.now())
            },
        )
        .await;
        Ok(record)
    }

    /// Adds a revocation to the list (when loaded): until the token's expiry when known, else
    /// until the latest expiry a token can have (see [`Revocation::exact`]).
    fn mark_revoked(&self, id: ApiTokenId, expires_at: Option<OffsetDateTime>) {
        let revocation = match expires_at {
            Some(at) => Revocation {
                until_us: unix_micros_ceil(at),
                exact: true,
            },
            None => Revocation {
                until_us: self.estimated_expiry(self.inner.clock.now_micros()),
                exact: false,
            },
        };
        if let Some(set) = self
            .inner
            .revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            let entry = set.entry(id).or_insert(revocation);
            // An exact expiry wins over an estimate.
            if revocation.exact && !entry.exact {
                *entry = revocation;
            }
        }
    }

    /// Applies a feed event to the caches.
    pub async fn apply(&self, event: &FeedEvent) {
        if !matches!(event, FeedEvent::Change(Change::TokenRevoked { .. })) {
            // Before the entry goes: a read in flight then sees the new generation and does not
            // put back what it read before the change.
            self.inner.members_generation.fetch_add(1, Ordering::AcqRel);
        }
        match event {
            FeedEvent::Change(Change::TokenRevoked { id }) => self.mark_revoked(*id, None),
            FeedEvent::Change(Change::MembershipChanged { org_id, user_id }) => {
                self.inner
                    .members
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&(*user_id, *org_id));
            }
            FeedEvent::Change(Change::UserChanged { user_id }) => {
                self.inner
                    .members
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|(user, _), _| user != user_id);
            }
            FeedEvent::Change(Change::KeysRotated) => self.reload_keys().await,
            // A kind of change this version does not know (`Change` is non-exhaustive): drop
            // every cache, as for a resync.
            FeedEvent::Resync | FeedEvent::Change(_) => {
                self.reload_keys().await;
                self.inner
                    .members
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                if let Err(err) = self.reload_revocations().await {
                    tracing::error!(error = %err.code, "could not reload revoked tokens");
                    *self
                        .inner
                        .revoked
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = None;
                }
            }
        }
    }

    async fn reload_keys(&self) {
        if let Err(err) = self.inner.keys.reload().await {
            tracing::error!(error = %err.code, "could not reload the signing keys");
        }
    }
}
