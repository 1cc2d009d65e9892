//! # keystead-postgres
//!
//! The production store for `keystead`: Postgres through sqlx, with embedded migrations.
//! [`PostgresStore`] implements every store trait of `keystead_core::store`, so it is an
//! [`AuthStore`](keystead_core::AuthStore), and it passes the shared conformance suite.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use keystead_core::AuthStore;
//! use keystead_postgres::PostgresStore;
//!
//! # async fn example() -> Result<(), keystead_core::StoreError> {
//! // Connects with a pool and brings the schema up to date.
//! let store = PostgresStore::connect("postgres://app@localhost/app").await?;
//! let store: Arc<dyn AuthStore> = Arc::new(store);
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! ## What the schema guarantees
//! The invariants of the store traits are enforced by Postgres, not only by this crate: a
//! unique index on `lower(email)`, a primary key on `(org_id, user_id)` for memberships, unique
//! slugs, unique 32-byte token hashes, `CHECK`s on token purposes and role names, and foreign
//! keys that cascade where the traits say a deletion does (audit events keep their rows and
//! lose the reference). Rules over several rows (an organization keeps an owner) run in one
//! transaction that first locks the organization row (`SELECT … FOR UPDATE`), so concurrent
//! demotions across connections and app instances cannot both win. Single-use tokens and
//! invitations are claimed with one conditional `UPDATE … RETURNING`. A rate limit hit locks
//! its key's row (`INSERT … ON CONFLICT DO UPDATE`, which also creates it) and decides in the
//! same transaction.
//!
//! ## Errors
//! Unique violations become [`StoreError::Conflict`] (by constraint name), foreign key
//! violations [`StoreError::NotFound`], pool time-outs and connection failures
//! [`StoreError::Unavailable`] (the caller fails closed with a 503), everything else
//! [`StoreError::Backend`]. A transaction Postgres aborts to break a deadlock is run again.
//!
//! ## Several instances: the change feed
//! [`PostgresChangeFeed`] carries revocations and membership changes between app instances on
//! one database over `LISTEN`/`NOTIFY` (channel [`CHANGE_CHANNEL`]), so that each instance's
//! caches of API tokens, memberships and sessions stay current. It watches its own connection
//! (pings every [`ChangeFeedOptions::ping_interval`]) and says when it may have missed changes,
//! so that API tokens fail closed rather than trust stale caches.
//!
//! It is the store's default feed: an `Auth` built over a [`PostgresStore`] without
//! `change_feed(...)` gets one on the store's pool (shared by clones of the store value).
//! Every change is also recorded in the store's change log (table `change_log`, version row
//! `change_version`) before it is announced, and every instance polls the version: a change
//! the feed lost still reaches it within the staleness bound.
//!
//! ```no_run
//! use keystead::Auth;
//! use keystead::web::AppOrigin;
//! use keystead_postgres::{ChangeFeedOptions, PostgresChangeFeed, PostgresStore};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://app@localhost/app").await?;
//! // Only to change the feed's options; without this line the store's default feed is used.
//! let feed = PostgresChangeFeed::start_with(
//!     store.pool().clone(),
//!     ChangeFeedOptions::default().with_application_name("my-app-feed"),
//! )
//! .await?;
//! let auth = Auth::builder(std::sync::Arc::new(store), AppOrigin::parse("https://app.example.com")?)
//!     .change_feed(feed)
//!     .build();
//! # let _ = auth;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use keystead_core::StoreError;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The small core this store implements (the model and the store traits).
pub use keystead_core;
mod audit;
mod changes;
mod error;
mod external;
mod feed;
mod invitations;
mod keys;
mod oauth_flows;
mod orgs;
mod rate_limits;
mod rows;
mod sessions;
mod tokens;
mod users;

pub use feed::{CHANGE_CHANNEL, ChangeFeedOptions, PING_CHANNEL, PostgresChangeFeed};

/// The embedded migrations (`crates/keystead-postgres/migrations`).
///
/// [`PostgresStore::connect`] runs them; with [`PostgresStore::from_pool`], run them yourself
/// (`MIGRATOR.run(&pool)` or [`PostgresStore::migrate`]) or with `sqlx migrate`. Concurrent runs
/// from several instances are safe: sqlx takes an advisory lock.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Connections the pool made by [`PostgresStore::connect`] keeps at most.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long [`PostgresStore::connect`]'s pool waits for a free connection before the store
/// answers [`StoreError::Unavailable`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A store on Postgres.
///
/// Cheap to clone: clones share one connection pool (and one default change feed).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The feed of [`ChangeLogStore::default_change_feed`](keystead_core::ChangeLogStore), made
    /// at its first use.
    default_feed: Arc<OnceLock<Arc<PostgresChangeFeed>>>,
}

impl PostgresStore {
    /// Connects to `url` with a pool of sensible defaults ([`DEFAULT_MAX_CONNECTIONS`],
    /// [`DEFAULT_ACQUIRE_TIMEOUT`], idle connections closed after 10 minutes, every connection
    /// renewed after 30) and runs the [`MIGRATOR`].
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Postgres cannot be reached; [`StoreError::Backend`] for
    /// a malformed URL or a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(10 * 60))
            .max_lifetime(Duration::from_secs(30 * 60))
            .connect(url)
            .await
            .map_err(error::map_sqlx)?;
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// A store on an existing pool. Does not run migrations: see [`PostgresStore::migrate`].
    #[must_use]
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            default_feed: Arc::new(OnceLock::new()),
        }
    }

    /// Brings the schema up to date with the [`MIGRATOR`]; running it again is a no-op.
    ///
    /// # Errors
    /// When a migration fails, or one applied earlier was changed since.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(error::map_migrate)
    }

    /// The connection pool, for the app's own queries or for closing it.
    #[must_use]
    pub const fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the pool's own Debug: its connect options hold the password.
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .field(
                "max_connections",
                &self.pool.options().get_max_connections(),
            )
            .field("closed", &self.pool.is_closed())
            .finish()
    }
}
