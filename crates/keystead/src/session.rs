//! Browser sessions, Lucia/Copenhagen-style, with a hot path that does not touch the store.
//!
//! The client holds an opaque 256-bit token (in a cookie); the store holds only its SHA-256.
//! [`SessionManager::validate`] hashes the token and looks the hash up in an in-process cache;
//! the store is read only on a miss or when the cached entry is older than
//! [`SessionConfig::cache_ttl`], the bound on how stale another instance's view may be.
//! Changes made through this manager (sign-out, revocation, rotation, the active organization)
//! update or drop the cache entry at once.
//!
//! Expiry follows the usual three clocks, all configurable:
//! - a *sliding* expiry ([`SessionConfig::lifetime`], 30 days): once less than half of it is
//!   left, the next request moves it to `now + lifetime` (at most one write per half-lifetime,
//!   never one per request), and the adapter re-sends the cookie;
//! - an optional *idle timeout*: a session unused for that long ends;
//! - an *absolute* lifetime ([`SessionConfig::absolute_lifetime`], 90 days), never extended.
//!
//! `last_seen_at` is recorded in batches: requests note the time in memory, and
//! [`SessionManager::flush_activity`] (run it on an interval with
//! [`SessionManager::spawn_activity_flusher`]) writes them all in one store call.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn keystead::AuthStore>, user: keystead::User) -> Result<(), keystead::AuthError> {
//! use std::sync::Arc;
//! use keystead::session::{SessionConfig, SessionManager, SessionMeta};
//! use keystead::SystemClock;
//!
//! let sessions = SessionManager::new(store, Arc::new(SystemClock), SessionConfig::default());
//! let created = sessions.create(user.id, SessionMeta::default()).await?;
//! // Put `created.token` in the cookie; on each request:
//! let valid = sessions.validate(created.token.expose()).await?;
//! assert_eq!(valid.session.user_id, user.id);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use time::{Duration, OffsetDateTime};

use crate::clock::{Clock, from_unix_micros, unix_micros, unix_micros_ceil};
use crate::error::{AuthError, ErrorCode};
use crate::id::{OrgId, SessionId, UserId};
use crate::model::{OrgAccess, Session, User};
use crate::secret::{SecretString, TokenHash, TokenHashBuilder, generate_token};
use crate::store::AuthStore;

/// Longest `User-Agent` kept with a session.
pub const MAX_USER_AGENT_LEN: usize = 256;

/// Session lifetimes and cache settings. Every setting has a safe default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct SessionConfig {
    lifetime: Duration,
    idle_timeout: Option<Duration>,
    absolute_lifetime: Duration,
    cache_ttl: Duration,
    cache_capacity: usize,
    activity_interval: Duration,
}

/// A session setting was out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionConfigError {
    /// A duration was zero or negative.
    #[error("session durations must be positive")]
    NonPositive,
    /// The absolute lifetime was shorter than the sliding one.
    #[error("the absolute lifetime must be at least the sliding lifetime")]
    AbsoluteShorterThanSliding,
    /// The cache must hold at least one entry.
    #[error("the session cache must hold at least one entry")]
    ZeroCapacity,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            lifetime: Duration::days(30),
            idle_timeout: None,
            absolute_lifetime: Duration::days(90),
            cache_ttl: Duration::seconds(1),
            cache_capacity: 100_000,
            activity_interval: Duration::minutes(1),
        }
    }
}

fn positive(d: Duration) -> Result<Duration, SessionConfigError> {
    if d.is_positive() {
        Ok(d)
    } else {
        Err(SessionConfigError::NonPositive)
    }
}

impl SessionConfig {
    /// The defaults: 30-day sliding expiry, no idle timeout, 90-day absolute lifetime, cache
    /// entries trusted for 1 s, 100,000 cached sessions, activity recorded once a minute.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sliding lifetime: how long a session lives past its last extension.
    ///
    /// # Errors
    /// For a non-positive duration, or one longer than the absolute lifetime.
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self, SessionConfigError> {
        self.lifetime = positive(lifetime)?;
        if self.absolute_lifetime < self.lifetime {
            return Err(SessionConfigError::AbsoluteShorterThanSliding);
        }
        Ok(self)
    }

    /// Idle timeout: a session unused for this long ends (`None`: only the sliding expiry).
    ///
    /// # Errors
    /// For a non-positive duration.
    pub fn idle_timeout(mut self, idle: Option<Duration>) -> Result<Self, SessionConfigError> {
        self.idle_timeout = idle.map(positive).transpose()?;
        Ok(self)
    }

    /// Absolute lifetime: how long a session may live at most, however much it is used.
    ///
    /// # Errors
    /// For a non-positive duration, or one shorter than the sliding lifetime.
    pub fn absolute_lifetime(mut self, absolute: Duration) -> Result<Self, SessionConfigError> {
        self.absolute_lifetime = positive(absolute)?;
        if self.absolute_lifetime < self.lifetime {
            return Err(SessionConfigError::AbsoluteShorterThanSliding);
        }
        Ok(self)
    }

    /// How long a cached session is trusted before the store is asked again: the bound on how
    /// late a change made by another instance is seen here.
    ///
    /// # Errors
    /// For a non-positive duration.
    pub fn cache_ttl(mut self, ttl: Duration) -> Result<Self, SessionConfigError> {
        self.cache_ttl = positive(ttl)?;
        Ok(self)
    }

    /// How many sessions the cache holds at most.
    ///
    /// # Errors
    /// For zero.
    pub fn cache_capacity(mut self, capacity: usize) -> Result<Self, SessionConfigError> {
        if capacity == 0 {
            return Err(SessionConfigError::ZeroCapacity);
        }
        self.cache_capacity = capacity;
        Ok(self)
    }

    /// How often a session's `last_seen_at` is recorded at most.
    ///
    /// # Errors
    /// For a non-positive duration.
    pub fn activity_interval(mut self, interval: Duration) -> Result<Self, SessionConfigError> {
        self.activity_interval = positive(interval)?;
        Ok(self)
    }

    /// The sliding lifetime (also the cookie's `Max-Age` after an extension).
    #[must_use]
    pub const fn sliding_lifetime(&self) -> Duration {
        self.lifetime
    }
}

/// Facts about the client, kept with the session for the session list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionMeta {
    /// The `User-Agent` header (truncated to [`MAX_USER_AGENT_LEN`] bytes).
    pub user_agent: Option<String>,
    /// The client address.
    pub ip: Option<String>,
    /// The organization to make active.
    pub active_org_id: Option<OrgId>,
}

/// A new session and the token that proves it. The token goes to the client once and is
/// never stored.
#[derive(Debug)]
pub struct CreatedSession {
    /// The token for the cookie.
    pub token: SecretString,
    /// The stored session.
    pub session: Session,
}

/// A session that passed validation, with its user.
#[derive(Debug, Clone)]
pub struct ValidSession {
    /// The session (as cached: `last_seen_at` may lag), shared with the cache.
    pub session: Arc<Session>,
    /// The signed-in user, shared with the cache.
    pub user: Arc<User>,
    /// The user's membership in the session's active organization, if it has one and the
    /// user is still a member there, with the organization's MFA policy (as cached: at most
    /// `cache_ttl` old, and dropped at once on this instance by
    /// [`SessionManager::invalidate_user`]).
    pub access: Option<OrgAccess>,
    /// The sliding expiry moved: the adapter should send the cookie again with a fresh
    /// `Max-Age`.
    pub extended: bool,
}

#[derive(Debug, Clone)]
struct Cached {
    // Shared, so that a cache hit copies no strings.
    session: Arc<Session>,
    user: Arc<User>,
    access: Option<OrgAccess>,
    /// When this entry was read from the store.
    fetched_at: OffsetDateTime,
    /// When activity was last noted for the batch.
    activity_noted_at: OffsetDateTime,
    /// The instants the checks of a request compare with, worked out when the entry changes.
    deadlines: Deadlines,
}

/// An entry's deadlines in microseconds since the Unix epoch, so that a request compares
/// integers instead of doing `time` arithmetic. Each is exact: a time that is not a whole
/// microsecond is rounded the way that keeps the comparison the same.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    /// Fresh while `now <= fresh_until` (`now - fetched_at <= cache_ttl`).
    fresh_until: i64,
    /// Ended once `now >= ends` (sliding or absolute expiry, or the idle timeout).
    ends: i64,
    /// The sliding expiry moves once `now > extend_after` (less than half its lifetime left).
    extend_after: i64,
    /// Activity is noted again once `now >= note_from`.
    note_from: i64,
}

impl Cached {
    fn new(
        session: Arc<Session>,
        user: Arc<User>,
        access: Option<OrgAccess>,
        fetched_at: OffsetDateTime,
        activity_noted_at: OffsetDateTime,
        config: &SessionConfig,
    ) -> Self {
        let mut entry = Self {
            session,
            user,
            access,
            fetched_at,
            activity_noted_at,
            deadlines: Deadlines {
                fresh_until: i64::MIN,
                ends: i64::MIN,
                extend_after: i64::MIN,
                note_from: i64::MIN,
            },
        };
        entry.update_deadlines(config);
        entry
    }

    /// Works the deadlines out again after the session's expiry or the noted activity moved.
    fn update_deadlines(&mut self, config: &SessionConfig) {
        let session = &self.session;
        let last_activity = session.last_seen_at.max(self.activity_noted_at);
        let mut ends = session.expires_at.min(session.absolute_expires_at);
        if let Some(idle) = config.idle_timeout {
            // Past `OffsetDateTime`'s range the idle timeout cannot come first.
            if let Some(idle_end) = last_activity.checked_add(idle) {
                ends = ends.min(idle_end);
            }
        }
        let extend_after = if session.expires_at < session.absolute_expires_at {
            session
                .expires_at
                .checked_sub(config.lifetime / 2)
                .map_or(i64::MIN, unix_micros)
        } else {
            i64::MAX
        };
        self.deadlines = Deadlines {
            fresh_until: self
                .fetched_at
                .checked_add(config.cache_ttl)
                .map_or(i64::MAX, unix_micros),
            ends: unix_micros_ceil(ends),
            extend_after,
            note_from: self
                .activity_noted_at
                .checked_add(config.activity_interval)
                .map_or(i64::MAX, unix_micros_ceil),
        };
    }
}

/// What a cached or freshly read session needs before it admits a request.
enum Step {
    /// Past its sliding, idle or absolute expiry: end it.
    Expired,
    /// Past half its sliding lifetime: move its expiry (in the store).
    Extend,
    /// Good as it is.
    Valid,
}

#[derive(Debug, Default)]
struct Cache {
    by_hash: HashMap<TokenHash, Cached, TokenHashBuilder>,
    by_id: HashMap<SessionId, TokenHash>,
}

impl Cache {
    fn insert(&mut self, entry: Cached, capacity: usize, now: OffsetDateTime, ttl: Duration) {
        if self.by_hash.len() >= capacity {
            // Drop what is stale first; if that is not enough, an arbitrary part (the map's
            // order is randomized per process), so an attacker cannot pin which entries go.
            self.by_hash.retain(|_, c| now - c.fetched_at <= ttl);
            if self.by_hash.len() >= capacity {
                let drop_count = self.by_hash.len() - capacity / 2;
                let victims: Vec<TokenHash> =
                    self.by_hash.keys().take(drop_count).copied().collect();
                for hash in victims {
                    self.by_hash.remove(&hash);
                }
            }
            let by_hash = &self.by_hash;
            self.by_id.retain(|_, hash| by_hash.contains_key(hash));
        }
        self.by_id
            .insert(entry.session.id, entry.session.token_hash);
        self.by_hash.insert(entry.session.token_hash, entry);
    }

    fn remove_hash(&mut self, hash: &TokenHash) {
        if let Some(c) = self.by_hash.remove(hash) {
            self.by_id.remove(&c.session.id);
        }
    }

    fn remove_id(&mut self, id: SessionId) {
        if let Some(hash) = self.by_id.remove(&id) {
            self.by_hash.remove(&hash);
        }
    }

    fn remove_user(&mut self, user_id: UserId, except: Option<SessionId>) {
        let by_id = &mut self.by_id;
        self.by_hash.retain(|_, c| {
            let keep = c.session.user_id != user_id || Some(c.session.id) == except;
            if !keep {
                by_id.remove(&c.session.id);
            }
            keep
        });
    }
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionStats {
    /// Validations answered from the cache.
    pub cache_hits: u64,
    /// Validations that read the store.
    pub store_reads: u64,
    /// Batched activity writes.
    pub activity_flushes: u64,
}

/// Creates, validates, lists and ends sessions. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn AuthStore>,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    cache: RwLock<Cache>,
    /// Moves (under the cache's write lock) whenever entries are dropped because something
    /// changed in the store. A store read that began before a move may have seen the old state,
    /// so its result is not cached: a request in flight during a removal cannot put back what
    /// the removal dropped.
    generation: AtomicU64,
    activity: Mutex<HashMap<SessionId, OffsetDateTime>>,
    cache_hits: AtomicU64,
    store_reads: AtomicU64,
    activity_flushes: AtomicU64,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn truncate_user_agent(ua: Option<String>) -> Option<String> {
    ua.map(|mut ua| {
        if ua.len() > MAX_USER_AGENT_LEN {
            let mut end = MAX_USER_AGENT_LEN;
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua.truncate(end);
        }
        ua
    })
}

impl SessionManager {
    /// A manager over `store`, reading time from `clock`.
    #[must_use]
    pub fn new(store: Arc<dyn AuthStore>, clock: Arc<dyn Clock>, config: SessionConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                config,
                cache: RwLock::new(Cache::default()),
                generation: AtomicU64::new(0),
                activity: Mutex::new(HashMap::new()),
                cache_hits: AtomicU64::new(0),
                store_reads: AtomicU64::new(0),
                activity_flushes: AtomicU64::new(0),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// Counters since start.
    #[must_use]
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            cache_hits: self.inner.cache_hits.load(Ordering::Relaxed),
            store_reads: self.inner.store_reads.load(Ordering::Relaxed),
            activity_flushes: self.inner.activity_flushes.load(Ordering::Relaxed),
        }
    }

    fn cache_read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn cache_write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The cache generation now: take it before reading the store.
    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Caches `entry` unless entries were dropped since `generation` was taken.
    fn insert_if_current(&self, entry: Cached, generation: u64, now: OffsetDateTime) {
        let config = &self.inner.config;
        let mut cache = self.cache_write();
        if self.generation() == generation {
            cache.insert(entry, config.cache_capacity, now, config.cache_ttl);
        }
    }

    /// Runs `drop` on the cache and moves the generation, under one write lock.
    fn drop_entries(&self, drop: impl FnOnce(&mut Cache)) {
        let mut cache = self.cache_write();
        drop(&mut cache);
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Starts a session for `user_id` (at sign-in: always a new id and token, never a renamed
    /// old one).
    ///
    /// # Errors
    /// `account_disabled` for a disabled user; store errors (`unavailable` when it cannot be
    /// reached; `not_found` for an unknown user).
    pub async fn create(
        &self,
        user_id: UserId,
        meta: SessionMeta,
    ) -> Result<CreatedSession, AuthError> {
        self.create_until(user_id, meta, None).await
    }

    /// [`SessionManager::create`], with the absolute expiry no later than `absolute_until`.
    async fn create_until(
        &self,
        user_id: UserId,
        meta: SessionMeta,
        absolute_until: Option<OffsetDateTime>,
    ) -> Result<CreatedSession, AuthError> {
        let now = self.inner.clock.now();
        let generation = self.generation();
        let user = self
            .inner
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::new(ErrorCode::NotFound))?;
        // Whatever the way in (password, provider, reset link, hand-off), a disabled account
        // gets no session.
        if user.disabled() {
            return Err(AuthError::new(ErrorCode::AccountDisabled));
        }
        let token = generate_token();
        let config = &self.inner.config;
        let absolute_expires_at = absolute_until.map_or(now + config.absolute_lifetime, |until| {
            until.min(now + config.absolute_lifetime)
        });
        let session = Session {
            id: SessionId::new(),
            token_hash: TokenHash::of(token.expose()),
            user_id,
            created_at: now,
            last_seen_at: now,
            expires_at: (now + config.lifetime).min(absolute_expires_at),
            absolute_expires_at,
            active_org_id: meta.active_org_id,
            user_agent: truncate_user_agent(meta.user_agent),
            ip: meta.ip,
            authenticated_at: now,
        };
        let membership = self.active_membership(&session).await?;
        self.inner.store.create_session(&session).await?;
        self.insert_if_current(
            Cached::new(
                Arc::new(session.clone()),
                Arc::new(user),
                membership,
                now,
                now,
                &self.inner.config,
            ),
            generation,
            now,
        );
        Ok(CreatedSession { token, session })
    }

    /// Validates a session token: the hot path. A fresh cache entry answers without the store.
    ///
    /// # Errors
    /// `unauthenticated` for an unknown token (forged, or ended by sign-out),
    /// `session_expired` for one past its sliding, idle or absolute expiry (its row is then
    /// deleted), `unavailable` when the store cannot be reached on a miss (fail closed).
    pub async fn validate(&self, token: &str) -> Result<ValidSession, AuthError> {
        let hash = TokenHash::of(token);
        let now = self.inner.clock.now();
        let now_us = unix_micros(now);
        let mut entry = if let Some(entry) = self.cached(&hash, now_us) {
            self.inner.cache_hits.fetch_add(1, Ordering::Relaxed);
            entry
        } else {
            self.inner.store_reads.fetch_add(1, Ordering::Relaxed);
            let generation = self.generation();
            let Some(session) = self.inner.store.session_by_token_hash(&hash).await? else {
                self.cache_write().remove_hash(&hash);
                return Err(AuthError::new(ErrorCode::Unauthenticated));
            };
            let Some(user) = self.inner.store.user_by_id(session.user_id).await? else {
                self.cache_write().remove_id(session.id);
                return Err(AuthError::new(ErrorCode::Unauthenticated));
            };
            // Disabling ends the account's sessions; one that outlived that (made in the
            // instant between) holds nothing either.
            if user.disabled() {
                self.cache_write().remove_id(session.id);
                return Err(AuthError::new(ErrorCode::Unauthenticated));
            }
            let membership = self.active_membership(&session).await?;
            // Activity noted here but not yet flushed is newer than what the store says.
            let pending = self
                .inner
                .activity
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&session.id)
                .copied();
            let activity_noted_at =
                pending.map_or(session.last_seen_at, |at| at.max(session.last_seen_at));
            let entry = Cached::new(
                Arc::new(session),
                Arc::new(user),
                membership,
                now,
                activity_noted_at,
                &self.inner.config,
            );
            self.insert_if_current(entry.clone(), generation, now);
            entry
        };

        let extended = match Self::step(&entry, now_us) {
            Step::Expired => {
                self.end(entry.session.id).await?;
                return Err(AuthError::new(ErrorCode::SessionExpired));
            }
            Step::Extend => {
                let new_expiry =
                    (now + self.inner.config.lifetime).min(entry.session.absolute_expires_at);
                self.inner
                    .store
                    .extend_session(entry.session.id, new_expiry)
                    .await?;
                Arc::make_mut(&mut entry.session).expires_at = new_expiry;
                entry.update_deadlines(&self.inner.config);
                true
            }
            Step::Valid => false,
        };
        Ok(self.admit(&hash, entry, now_us, extended))
    }

    /// [`validate`](Self::validate)'s answer when this instance's cache can give it without
    /// the store, as the adapters' synchronous fast path; `None` when the answer needs the
    /// store (a miss, a stale entry, an expiry to extend or a session to end): call
    /// `validate` then.
    #[must_use]
    pub fn validate_cached(&self, token: &str) -> Option<ValidSession> {
        let hash = TokenHash::of(token);
        let now_us = self.inner.clock.now_micros();
        let entry = self.cached(&hash, now_us)?;
        if !matches!(Self::step(&entry, now_us), Step::Valid) {
            return None;
        }
        self.inner.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(self.admit(&hash, entry, now_us, false))
    }

    /// The fresh cache entry for `hash`, if there is one.
    fn cached(&self, hash: &TokenHash, now_us: i64) -> Option<Cached> {
        self.cache_read()
            .by_hash
            .get(hash)
            .filter(|c| now_us <= c.deadlines.fresh_until)
            .cloned()
    }

    /// What a valid-looking entry needs before it admits the request.
    fn step(entry: &Cached, now_us: i64) -> Step {
        let deadlines = &entry.deadlines;
        if now_us >= deadlines.ends {
            Step::Expired
        } else if now_us > deadlines.extend_after {
            Step::Extend
        } else {
            Step::Valid
        }
    }

    /// Notes the request's activity (flushed in batches) and answers.
    fn admit(
        &self,
        hash: &TokenHash,
        mut entry: Cached,
        now_us: i64,
        extended: bool,
    ) -> ValidSession {
        let note_activity = now_us >= entry.deadlines.note_from;
        if note_activity {
            let now = from_unix_micros(now_us);
            self.inner
                .activity
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(entry.session.id, now);
            entry.activity_noted_at = now;
        }
        if extended || note_activity {
            let config = &self.inner.config;
            let mut cache = self.cache_write();
            if let Some(c) = cache.by_hash.get_mut(hash) {
                // Only the expiry: the entry may have changed since it was read (an org switch).
                if extended && c.session.expires_at != entry.session.expires_at {
                    Arc::make_mut(&mut c.session).expires_at = entry.session.expires_at;
                }
                c.activity_noted_at = entry.activity_noted_at;
                c.update_deadlines(config);
            }
        }
        ValidSession {
            session: entry.session,
            user: entry.user,
            access: entry.access,
            extended,
        }
    }

    /// The user's membership in the session's active organization, with its MFA policy.
    async fn active_membership(&self, session: &Session) -> Result<Option<OrgAccess>, AuthError> {
        match session.active_org_id {
            Some(org_id) => Ok(self.inner.store.org_access(org_id, session.user_id).await?),
            None => Ok(None),
        }
    }

    /// Writes the noted activity (`last_seen_at`) of every session in one store call.
    ///
    /// # Errors
    /// Store errors; the noted times are kept for the next attempt.
    pub async fn flush_activity(&self) -> Result<usize, AuthError> {
        let batch: Vec<(SessionId, OffsetDateTime)> = {
            let mut pending = self
                .inner
                .activity
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.inner.store.record_session_activity(&batch).await {
            let mut pending = self
                .inner
                .activity
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (id, at) in batch {
                let slot = pending.entry(id).or_insert(at);
                *slot = (*slot).max(at);
            }
            return Err(e.into());
        }
        self.inner.activity_flushes.fetch_add(1, Ordering::Relaxed);
        Ok(batch.len())
    }

    /// Runs [`flush_activity`](Self::flush_activity) every activity interval on the current
    /// tokio runtime, until the returned handle is aborted.
    #[must_use = "abort the handle to stop the flusher"]
    pub fn spawn_activity_flusher(&self) -> tokio::task::JoinHandle<()> {
        let manager = self.clone();
        let period = std::time::Duration::try_from(self.inner.config.activity_interval)
            .unwrap_or(std::time::Duration::from_secs(60));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(e) = manager.flush_activity().await {
                    tracing::warn!(error = %e, "could not record session activity");
                }
            }
        })
    }

    /// Ends one session (sign-out, or revocation from the session list). Returns whether it
    /// existed.
    ///
    /// # Errors
    /// Store errors.
    pub async fn end(&self, id: SessionId) -> Result<bool, AuthError> {
        // Drop the cache entry first: from here on the token fails on this instance, whatever
        // the store answers.
        self.drop_entries(|cache| cache.remove_id(id));
        self.inner
            .activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        Ok(self.inner.store.delete_session(id).await?)
    }

    /// Ends every session of `user_id` except `except` (sign out everywhere, password reset,
    /// change of password). Returns how many ended.
    ///
    /// # Errors
    /// Store errors.
    pub async fn end_all_for_user(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
    ) -> Result<u64, AuthError> {
        self.drop_entries(|cache| cache.remove_user(user_id, except));
        Ok(self
            .inner
            .store
            .delete_sessions_for_user(user_id, except)
            .await?)
    }

    /// Replaces a session with a new one (new id, new token) for the same user and active
    /// organization: for privilege changes, so that a token seen before the change is
    /// worthless after it. The new session keeps the old one's absolute expiry (a rotation
    /// is no new sign-in), and the old one ends.
    ///
    /// # Errors
    /// Store errors; `unauthenticated` if the session no longer exists.
    pub async fn rotate(&self, id: SessionId) -> Result<CreatedSession, AuthError> {
        let old = self
            .inner
            .store
            .session_by_id(id)
            .await?
            .ok_or(AuthError::new(ErrorCode::Unauthenticated))?;
        let created = self
            .create_until(
                old.user_id,
                SessionMeta {
                    user_agent: old.user_agent.clone(),
                    ip: old.ip.clone(),
                    active_org_id: old.active_org_id,
                },
                Some(old.absolute_expires_at),
            )
            .await?;
        // A rotation is no authentication: the new session keeps the old one's time.
        let mut created = created;
        if old.authenticated_at < created.session.authenticated_at {
            self.inner
                .store
                .set_session_authenticated_at(created.session.id, old.authenticated_at)
                .await?;
            created.session.authenticated_at = old.authenticated_at;
            self.forget(created.session.id);
        }
        self.end(id).await?;
        Ok(created)
    }

    /// Records that the user of session `id` proved who they are again (step-up): its
    /// `authenticated_at` becomes now. The cached entry is dropped so every request after this
    /// one sees the new time.
    ///
    /// # Errors
    /// `unauthenticated` when the session no longer exists; store errors.
    pub async fn reauthenticated(&self, id: SessionId) -> Result<OffsetDateTime, AuthError> {
        let now = self.inner.clock.now();
        if !self
            .inner
            .store
            .set_session_authenticated_at(id, now)
            .await?
        {
            return Err(AuthError::new(ErrorCode::Unauthenticated));
        }
        self.forget(id);
        Ok(now)
    }

    /// Drops session `id`'s cached entry (its row changed), so the next request reads it.
    fn forget(&self, id: SessionId) {
        self.drop_entries(|cache| cache.remove_id(id));
    }

    /// Sets the session's active organization (membership is the caller's check).
    ///
    /// # Errors
    /// Store errors; `not_found` for an unknown session.
    pub async fn set_active_org(
        &self,
        id: SessionId,
        org_id: Option<OrgId>,
    ) -> Result<(), AuthError> {
        let generation = self.generation();
        self.inner.store.set_active_org(id, org_id).await?;
        let user_id = {
            let cache = self.cache_read();
            cache
                .by_id
                .get(&id)
                .and_then(|hash| cache.by_hash.get(hash))
                .map(|c| c.session.user_id)
        };
        let Some(user_id) = user_id else {
            return Ok(());
        };
        // Keep the cached entry, with the new organization and the membership there, so the
        // next request sees the switch at once without a store read.
        let membership = match org_id {
            Some(org_id) => self.inner.store.org_access(org_id, user_id).await?,
            None => None,
        };
        let mut cache = self.cache_write();
        if self.generation() != generation {
            // The membership read may predate a removal: let the next request read the store.
            cache.remove_id(id);
        } else if let Some(hash) = cache.by_id.get(&id).copied()
            && let Some(c) = cache.by_hash.get_mut(&hash)
        {
            Arc::make_mut(&mut c.session).active_org_id = org_id;
            c.access = membership;
        }
        Ok(())
    }

    /// Forgets every cached session (after changes may have been missed), so the next
    /// requests read the store.
    pub fn invalidate_all(&self) {
        self.drop_entries(|cache| {
            cache.by_hash.clear();
            cache.by_id.clear();
        });
    }

    /// Forgets what the cache holds for `user_id` (after a change made elsewhere: their
    /// membership, their verified email), so the next request reads the store.
    pub fn invalidate_user(&self, user_id: UserId) {
        self.drop_entries(|cache| cache.remove_user(user_id, None));
    }

    /// The user's live sessions, newest first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list(&self, user_id: UserId) -> Result<Vec<Session>, AuthError> {
        let now = self.inner.clock.now();
        let mut sessions = self.inner.store.sessions_for_user(user_id, now).await?;
        // Show activity noted but not yet flushed.
        let pending = self
            .inner
            .activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for s in &mut sessions {
            if let Some(at) = pending.get(&s.id) {
                s.last_seen_at = s.last_seen_at.max(*at);
            }
        }
        if let Some(idle) = self.inner.config.idle_timeout {
            sessions.retain(|s| now - s.last_seen_at < idle);
        }
        Ok(sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_refuses_nonsense() {
        assert_eq!(
            SessionConfig::new().lifetime(Duration::ZERO).unwrap_err(),
            SessionConfigError::NonPositive
        );
        assert_eq!(
            SessionConfig::new()
                .absolute_lifetime(Duration::days(1))
                .unwrap_err(),
            SessionConfigError::AbsoluteShorterThanSliding
        );
        assert_eq!(
            SessionConfig::new().cache_capacity(0).unwrap_err(),
            SessionConfigError::ZeroCapacity
        );
        assert!(
            SessionConfig::new()
                .idle_timeout(Some(Duration::hours(8)))
                .is_ok()
        );
    }

    #[test]
    fn user_agents_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(200);
        let cut = truncate_user_agent(Some(long)).unwrap();
        assert!(cut.len() <= MAX_USER_AGENT_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
