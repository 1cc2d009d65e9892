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
//! ## Its own schema
//! Every table and index of the library lives in one Postgres schema, `auth` unless chosen
//! otherwise ([`PostgresStore::connect_with_schema`], [`PostgresStore::with_schema`]), and
//! every statement names it (`"auth".users`): the app's own tables, whatever their names
//! (its `public.users`), and its connections' `search_path` are never touched, so the store
//! may share the app's pool. The migrations are recorded in `<schema>.migrations`, not in
//! sqlx's `_sqlx_migrations`, so the app's own `sqlx::migrate!()` and ours never see each
//! other's rows. Two stores in two schemas of one database are independent, their change
//! feeds included. A database made by earlier versions (tables in `public`) is moved into the
//! schema by [`PostgresStore::migrate`]. See `docs/database.md`.
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
//! one database over `LISTEN`/`NOTIFY` (the [`change_channel`] of the store's schema), so that
//! each instance's caches of API tokens, memberships and sessions stay current. It watches its own connection
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
//!     ChangeFeedOptions::default()
//!         .with_schema(store.schema().clone())
//!         .with_application_name("my-app-feed"),
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

use crate::sql::Tables;

/// The small core this store implements (the model and the store traits).
pub use keystead_core;
mod audit;
mod changes;
mod error;
mod external;
mod feed;
mod invitations;
mod keys;
mod mfa;
mod migrate;
mod oauth_flows;
mod orgs;
mod rate_limits;
mod rows;
mod sessions;
mod sql;
mod tokens;
mod users;

pub use feed::{ChangeFeedOptions, PostgresChangeFeed, change_channel, ping_channel};
pub use keystead_core::sql::SchemaStatus;
pub use sql::{DEFAULT_SCHEMA, InvalidName, MAX_SCHEMA_LEN, Schema};

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
    schema: Schema,
    tables: Tables,
    /// The feed of [`ChangeLogStore::default_change_feed`](keystead_core::ChangeLogStore), made
    /// at its first use.
    default_feed: Arc<OnceLock<Arc<PostgresChangeFeed>>>,
}

impl PostgresStore {
    /// Connects to `url` with a pool of sensible defaults ([`DEFAULT_MAX_CONNECTIONS`],
    /// [`DEFAULT_ACQUIRE_TIMEOUT`], idle connections closed after 10 minutes, every connection
    /// renewed after 30), with its tables in the schema [`DEFAULT_SCHEMA`] (`auth`), and
    /// runs the migrations ([`PostgresStore::migrate`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Postgres cannot be reached; [`StoreError::Backend`] for
    /// a malformed URL or a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_schema(url, Schema::default()).await
    }

    /// As [`PostgresStore::connect`], with the library's tables in `schema`.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn connect_with_schema(url: &str, schema: Schema) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(10 * 60))
            .max_lifetime(Duration::from_secs(30 * 60))
            .connect(url)
            .await
            .map_err(error::map_sqlx_error)?;
        let store = Self::from_pool(pool).with_schema(schema);
        store.migrate().await?;
        Ok(store)
    }

    /// A store on an existing pool (the app's own may do: every statement names the store's
    /// schema, so the pool's connections need no setting and keep theirs), with its tables in
    /// the schema [`DEFAULT_SCHEMA`]; [`with_schema`](Self::with_schema) changes it. Does not
    /// run migrations: see [`PostgresStore::migrate`].
    #[must_use]
    pub fn from_pool(pool: PgPool) -> Self {
        let schema = Schema::default();
        Self {
            pool,
            tables: schema.tables(),
            schema,
            default_feed: Arc::new(OnceLock::new()),
        }
    }

    /// This store with its tables in `schema` (and its own default change feed, whose
    /// channels are those of `schema`).
    #[must_use]
    pub fn with_schema(self, schema: Schema) -> Self {
        Self {
            pool: self.pool,
            tables: schema.tables(),
            schema,
            default_feed: Arc::new(OnceLock::new()),
        }
    }

    /// The schema of the store's tables.
    #[must_use]
    pub const fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Brings the schema up to date with the embedded migrations (`migrations/`); running it
    /// again is a no-op. Creates the schema when missing, records what it applied in
    /// `<schema>.migrations` (never in sqlx's `_sqlx_migrations`), and first moves a
    /// database of the old layout (tables in the current schema, rows in its
    /// `_sqlx_migrations`) into the schema. Concurrent runs wait for each other (an advisory
    /// lock). See `docs/database.md`.
    ///
    /// # Errors
    /// When a migration fails, one applied earlier was changed since, the database holds a
    /// migration this version does not know, or both layouts are present.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(&self.pool, &self.schema, &self.tables).await
    }

    /// Where the schema stands against this version's migrations, without changing anything:
    /// [`SchemaStatus::is_current`] is the "is the schema current" check of a deployment.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        migrate::status(&self.pool, &self.schema, &self.tables).await
    }

    /// `template` (a statement with `{t}` before each table name) with the store's tables.
    pub(crate) fn sql(&self, template: &'static str) -> &'static str {
        self.tables.sql(template)
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
            .field("schema", &self.schema.as_str())
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
