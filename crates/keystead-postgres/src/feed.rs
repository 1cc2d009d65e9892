//! [`PostgresChangeFeed`]: the change feed of several instances on one database, over
//! `LISTEN`/`NOTIFY`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use keystead_core::feed::{Change, ChangeFeed, FeedEvent, InProcessFeed};
use keystead_core::{AuthError, ErrorCode, StoreError};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use tokio::sync::broadcast;

use crate::error;
use crate::sql::Schema;

/// The channel the changes of the stores in `schema` are published on
/// (`keystead_changes.<schema>`): the payload is the JSON of a [`Change`]. Stores in other
/// schemas of the database publish and listen on channels of their own.
#[must_use]
pub fn change_channel(schema: &Schema) -> String {
    format!("keystead_changes.{schema}")
}

/// The channel of the feed's liveness pings (empty payloads) in `schema`
/// (`keystead_ping.<schema>`), kept apart from the changes.
#[must_use]
pub fn ping_channel(schema: &Schema) -> String {
    format!("keystead_ping.{schema}")
}

/// The first wait before connecting again after a failed attempt; it doubles up to
/// [`ChangeFeedOptions::max_backoff`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(50);

/// Settings of a [`PostgresChangeFeed`]. `Default` gives the documented defaults; change them
/// with the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeFeedOptions {
    /// How often the feed sends itself a ping (default 250 ms). The feed is unhealthy after
    /// twice this without any notification, and drops its connection for a new one after four
    /// times this. Keep it below half of `TokenConfig::staleness` so that a silently dead
    /// connection is noticed within the bound.
    pub ping_interval: Duration,
    /// The longest wait between two attempts to connect again (default 2 s).
    pub max_backoff: Duration,
    /// The `application_name` of the feed's own connections, to tell them apart in
    /// `pg_stat_activity` (default `authkit-change-feed`).
    pub application_name: String,
    /// The schema of the store whose changes the feed carries (default
    /// [`DEFAULT_SCHEMA`](crate::DEFAULT_SCHEMA)): it publishes and listens on that schema's
    /// channels ([`change_channel`], [`ping_channel`]). The store's default feed has the
    /// store's schema.
    pub schema: Schema,
}

impl Default for ChangeFeedOptions {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            application_name: "authkit-change-feed".to_owned(),
            schema: Schema::default(),
        }
    }
}

impl ChangeFeedOptions {
    /// Sets [`ChangeFeedOptions::ping_interval`] (at least 10 ms).
    #[must_use]
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Sets [`ChangeFeedOptions::max_backoff`].
    #[must_use]
    pub fn with_max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff.max(INITIAL_BACKOFF);
        self
    }

    /// Sets [`ChangeFeedOptions::schema`].
    #[must_use]
    pub fn with_schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }

    /// Sets [`ChangeFeedOptions::application_name`].
    #[must_use]
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }
}

/// The change feed of several app instances on one Postgres database.
///
/// Every instance starts one on its pool and passes it to `AuthBuilder::change_feed`.
/// [`publish`](ChangeFeed::publish) runs `SELECT pg_notify('keystead_changes.<schema>', <JSON>)`
/// on the pool; a task of the feed `LISTEN`s on a connection of its own (not one of the pool's) and
/// delivers each change to the subscribers of this instance, the publisher's included.
///
/// ## Health
/// Notifications sent while a listener is disconnected are lost, so the feed says when it may
/// have missed some ([`ChangeFeed::is_healthy`]) and `keystead` refuses API tokens once that
/// lasted longer than its staleness bound:
/// - a lost connection (the server ended it, a network error) makes the feed unhealthy at
///   once; it connects again with a backoff (50 ms doubling up to
///   [`ChangeFeedOptions::max_backoff`]), then delivers [`FeedEvent::Resync`] (the caches are
///   dropped and the revocation list reloaded) and is healthy again;
/// - a connection that died silently (no reset ever arrives) is caught by pings: every
///   [`ChangeFeedOptions::ping_interval`] the feed sends an empty notification on
///   [`ping_channel`] (from a second connection of its own, so that a busy app pool does not
///   delay it). Any notification received (ping or change, from any instance) proves the
///   listening connection alive; after two intervals without one the feed is unhealthy, after
///   four it drops the connection and makes a new one (with a `Resync`).
///
/// [`ChangeFeed::unhealthy_since_ms`] is the time (system clock) of the last notification
/// received before the outage. Between the moment the feed is healthy again and the moment a
/// subscriber has applied the `Resync`, a request may still be answered from the old caches.
///
/// Dropping the feed stops its task and closes its connections.
pub struct PostgresChangeFeed {
    state: Arc<State>,
    pool: PgPool,
    task: Option<tokio::task::AbortHandle>,
}

impl fmt::Debug for PostgresChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the pool's own Debug: its connect options hold the password.
        f.debug_struct("PostgresChangeFeed")
            .field("healthy", &self.is_healthy())
            .field("unhealthy_since_ms", &self.unhealthy_since_ms())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresChangeFeed {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl PostgresChangeFeed {
    /// Starts a feed with the default [`ChangeFeedOptions`]: connects the listener (with the
    /// pool's connect options) and spawns its task. Call it inside a Tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the listener cannot connect, [`StoreError::Backend`]
    /// when `LISTEN` fails.
    pub async fn start(pool: PgPool) -> Result<Arc<Self>, StoreError> {
        Self::start_with(pool, ChangeFeedOptions::default()).await
    }

    /// Starts a feed with these options; see [`PostgresChangeFeed::start`].
    ///
    /// # Errors
    /// As [`PostgresChangeFeed::start`].
    pub async fn start_with(
        pool: PgPool,
        options: ChangeFeedOptions,
    ) -> Result<Arc<Self>, StoreError> {
        let connect = (*pool.connect_options())
            .clone()
            .application_name(&options.application_name);
        let listener = listen(&connect, &options.schema)
            .await
            .map_err(error::map_sqlx_error)?;
        let ping_pool = ping_pool(&connect, &options);
        let silence_limit = options.ping_interval * 2;
        let state = Arc::new(State {
            local: InProcessFeed::new(),
            connected: AtomicBool::new(true),
            last_alive_ms: AtomicI64::new(now_ms()),
            silence_limit_ms: i64::try_from(silence_limit.as_millis()).unwrap_or(i64::MAX),
            change_channel: change_channel(&options.schema),
            ping_channel: ping_channel(&options.schema),
        });
        let task = tokio::spawn(run(
            state.clone(),
            connect,
            Some(listener),
            ping_pool,
            options,
        ));
        Ok(Arc::new(Self {
            state,
            pool,
            task: Some(task.abort_handle()),
        }))
    }
}

impl PostgresChangeFeed {
    /// A feed with these options that connects in the background: it is unhealthy (and API
    /// tokens fail closed past the staleness bound) until its listener is connected, then
    /// resyncs and is healthy. The default feed of a `PostgresStore`. Outside a Tokio
    /// runtime it cannot start and stays unhealthy.
    #[must_use]
    pub fn spawn(pool: PgPool, options: ChangeFeedOptions) -> Arc<Self> {
        let connect = (*pool.connect_options())
            .clone()
            .application_name(&options.application_name);
        let state = Arc::new(State {
            local: InProcessFeed::new(),
            connected: AtomicBool::new(false),
            last_alive_ms: AtomicI64::new(now_ms()),
            silence_limit_ms: i64::try_from((options.ping_interval * 2).as_millis())
                .unwrap_or(i64::MAX),
            change_channel: change_channel(&options.schema),
            ping_channel: ping_channel(&options.schema),
        });
        let task = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let ping_pool = ping_pool(&connect, &options);
                Some(
                    runtime
                        .spawn(run(state.clone(), connect, None, ping_pool, options))
                        .abort_handle(),
                )
            }
            Err(_) => {
                tracing::error!(
                    "the Postgres change feed needs a Tokio runtime: it cannot start, and API \
                     tokens fail closed"
                );
                None
            }
        };
        Arc::new(Self { state, pool, task })
    }
}

#[async_trait]
impl ChangeFeed for PostgresChangeFeed {
    async fn publish(&self, change: &Change) -> Result<(), AuthError> {
        let payload = serde_json::to_string(change).map_err(|e| {
            tracing::error!(error = %e, "could not encode a change");
            AuthError::new(ErrorCode::Internal)
        })?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.state.change_channel)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map_err(error::map_sqlx_error)?;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.state.local.subscribe()
    }

    fn is_healthy(&self) -> bool {
        self.state.is_healthy_at(now_ms())
    }

    fn unhealthy_since_ms(&self) -> Option<i64> {
        (!self.is_healthy()).then(|| self.state.last_alive_ms.load(Ordering::Acquire))
    }
}

/// What the feed and its task share.
struct State {
    /// Delivers to this instance's subscribers.
    local: InProcessFeed,
    /// `false` from a lost connection until a new one listens.
    connected: AtomicBool,
    /// When the last notification arrived (or the listener connected), ms since the epoch.
    last_alive_ms: AtomicI64,
    /// Silence longer than this makes the feed unhealthy.
    silence_limit_ms: i64,
    /// The channel of the changes ([`change_channel`]).
    change_channel: String,
    /// The channel of the pings ([`ping_channel`]).
    ping_channel: String,
}

impl State {
    fn is_healthy_at(&self, now_ms: i64) -> bool {
        self.connected.load(Ordering::Acquire)
            && now_ms - self.last_alive_ms.load(Ordering::Acquire) <= self.silence_limit_ms
    }

    fn received(&self, notification: &PgNotification) {
        self.last_alive_ms.store(now_ms(), Ordering::Release);
        if notification.channel() != self.change_channel {
            return;
        }
        match serde_json::from_str::<Change>(notification.payload()) {
            Ok(change) => self.local.deliver(FeedEvent::Change(change)),
            Err(e) => {
                // A change this version does not know (a rolling upgrade?) or a stranger's
                // message: whatever it was, the caches must not miss it.
                tracing::warn!(error = %e, "unreadable change notification: resyncing");
                self.local.deliver(FeedEvent::Resync);
            }
        }
    }

    fn lost(&self) {
        if self.connected.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                "change feed disconnected: API tokens fail closed past the staleness bound"
            );
        }
    }

    /// A listener is connected again: whatever was sent meanwhile is lost, so resync first.
    fn recovered(&self) {
        self.last_alive_ms.store(now_ms(), Ordering::Release);
        self.local.deliver(FeedEvent::Resync);
        self.connected.store(true, Ordering::Release);
        tracing::info!("change feed connected again");
    }
}

/// The pool of the pinger: one connection of its own.
fn ping_pool(connect: &PgConnectOptions, options: &ChangeFeedOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(options.ping_interval * 4)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(connect.clone())
}

/// A listener on the feed's channels, on a pool of its own.
async fn listen(connect: &PgConnectOptions, schema: &Schema) -> Result<PgListener, sqlx::Error> {
    // Two slots: a dead connection being closed must not block the next one.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(connect.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.ignore_pool_close_event(true);
    listener
        .listen_all([
            change_channel(schema).as_str(),
            ping_channel(schema).as_str(),
        ])
        .await?;
    Ok(listener)
}

/// The feed's task: the listener and the pinger, until the feed is dropped.
async fn run(
    state: Arc<State>,
    connect: PgConnectOptions,
    listener: Option<PgListener>,
    ping_pool: PgPool,
    options: ChangeFeedOptions,
) {
    let pinging = async {
        let mut ticker = tokio::time::interval(options.ping_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let ping = sqlx::query("SELECT pg_notify($1, '')")
                .bind(&state.ping_channel)
                .execute(&ping_pool);
            match tokio::time::timeout(options.ping_interval * 2, ping).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "change feed ping failed"),
                Err(_) => tracing::debug!("change feed ping timed out"),
            }
        }
    };
    let listening = async {
        let reconnect_after = options.ping_interval * 4;
        let mut next = listener;
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let mut listener = match next.take() {
                Some(listener) => listener,
                None => match listen(&connect, &options.schema).await {
                    Ok(listener) => {
                        backoff = INITIAL_BACKOFF;
                        state.recovered();
                        listener
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "change feed cannot connect yet");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(options.max_backoff);
                        continue;
                    }
                },
            };
            loop {
                match tokio::time::timeout(reconnect_after, listener.try_recv()).await {
                    Ok(Ok(Some(notification))) => state.received(&notification),
                    // sqlx lost the connection and has made a new one that listens again.
                    Ok(Ok(None)) => {
                        state.lost();
                        state.recovered();
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "change feed connection lost");
                        state.lost();
                        break;
                    }
                    Err(_) => {
                        tracing::warn!("change feed silent: connecting again");
                        state.lost();
                        break;
                    }
                }
            }
            // The old listener (and its pool) go; the loop makes a new one.
        }
    };
    tokio::select! {
        () = pinging => {}
        () = listening => {}
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}
